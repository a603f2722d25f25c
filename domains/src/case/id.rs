//! Case identities: the [`CaseId`] a node mints on its own when a case starts, and the
//! [`CaseNumber`] printed on the applicant's receipt (受理回执).
//!
//! Both are made at the node where the case starts, without asking anyone: the id carries the
//! origin node and 128 bits (the node's HLC time and a random nonce), the number carries the
//! origin node, the local date and a daily sequence the origin node allocates. Neither is ever
//! reissued or renumbered when the case moves to another tier.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::ids::NodeId;

/// Why a text is not a case id or case number, or why one cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseIdError {
    #[error("{0:?} is not a case id (expected <node code>-<32 hex digits>)")]
    BadId(String),
    #[error("{0:?} is not a case number (expected <node code>-<YYYYMMDD>-<sequence of 4 or more digits>)")]
    BadNumber(String),
    #[error("the daily sequence starts at 1 (got 0)")]
    ZeroSequence,
}

/// A case's identity, unique across the county without coordination.
///
/// Text form: `<origin node>-<32 lowercase hex digits>`, e.g.
/// `441424100201-0192f3a4b5c60001a1b2c3d4e5f60718`. The 128 bits are the origin node's HLC
/// timestamp (high 64) and a random nonce (low 64): the origin prefix keeps nodes apart, the HLC
/// is strictly increasing on one node, and the nonce keeps a node restored from an old backup
/// (whose clock state went back) from minting an id twice. Ids of one node sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseId {
    origin: NodeId,
    bits: u128,
}

impl CaseId {
    /// The id a node mints for a case it starts: `hlc` from the node's clock
    /// ([`crate::hlc::Hlc::now`]), `nonce` random.
    pub fn new(origin: &NodeId, hlc: u64, nonce: u64) -> Self {
        CaseId {
            origin: origin.clone(),
            bits: (u128::from(hlc) << 64) | u128::from(nonce),
        }
    }

    /// An id from its two parts, as read back from storage.
    pub fn from_parts(origin: NodeId, bits: u128) -> Self {
        CaseId { origin, bits }
    }

    /// The node where the case started.
    pub fn origin(&self) -> &NodeId {
        &self.origin
    }

    /// The 128 bits after the origin prefix.
    pub fn bits(&self) -> u128 {
        self.bits
    }

    /// The HLC timestamp the id was minted at.
    pub fn hlc(&self) -> u64 {
        (self.bits >> 64) as u64
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:032x}", self.origin, self.bits)
    }
}

impl FromStr for CaseId {
    type Err = CaseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CaseIdError::BadId(s.to_owned());
        let (node, hex) = s.split_once('-').ok_or_else(bad)?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad());
        }
        let origin = NodeId::new(node).map_err(|_| bad())?;
        let bits = u128::from_str_radix(hex, 16).map_err(|_| bad())?;
        Ok(CaseId { origin, bits })
    }
}

impl TryFrom<String> for CaseId {
    type Error = CaseIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CaseId> for String {
    fn from(id: CaseId) -> String {
        id.to_string()
    }
}

/// The human receipt number of a case (办件编号): the origin node's code, the local date the case
/// started and the origin node's daily sequence, e.g. `441424100201-20261127-0007`.
///
/// The sequence is allocated by the node that starts the case (the engine keeps one counter per
/// node and date); it has at least four digits and grows wider past 9999.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseNumber {
    node: NodeId,
    date: NaiveDate,
    seq: u32,
}

impl CaseNumber {
    /// The number for the `seq`-th case started at `node` on `date` (the first case of a day is 1).
    pub fn new(node: &NodeId, date: NaiveDate, seq: u32) -> Result<Self, CaseIdError> {
        if seq == 0 {
            return Err(CaseIdError::ZeroSequence);
        }
        Ok(CaseNumber {
            node: node.clone(),
            date,
            seq,
        })
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn date(&self) -> NaiveDate {
        self.date
    }

    pub fn seq(&self) -> u32 {
        self.seq
    }
}

impl fmt::Display for CaseNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{:04}", self.node, self.date.format("%Y%m%d"), self.seq)
    }
}

impl FromStr for CaseNumber {
    type Err = CaseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CaseIdError::BadNumber(s.to_owned());
        let mut parts = s.split('-');
        let (Some(node), Some(date), Some(seq), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let node = NodeId::new(node).map_err(|_| bad())?;
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let date = NaiveDate::parse_from_str(date, "%Y%m%d").map_err(|_| bad())?;
        if seq.len() < 4 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = seq.parse().map_err(|_| bad())?;
        // One spelling per number: no zero padding beyond four digits.
        if n == 0 || format!("{n:04}") != seq {
            return Err(bad());
        }
        Ok(CaseNumber { node, date, seq: n })
    }
}

impl TryFrom<String> for CaseNumber {
    type Error = CaseIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CaseNumber> for String {
    fn from(n: CaseNumber) -> String {
        n.to_string()
    }
}

/// China Standard Time (UTC+8, no daylight saving): the zone case numbers are dated in.
const CST_OFFSET_SECS: i32 = 8 * 3600;

/// The date in China Standard Time of a Unix time in milliseconds: the date a case number
/// started at that moment carries. Times beyond chrono's range fall back to 1970-01-01.
pub fn local_date(unix_ms: u64) -> NaiveDate {
    let utc = i64::try_from(unix_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::UNIX_EPOCH);
    match FixedOffset::east_opt(CST_OFFSET_SECS) {
        Some(cst) => utc.with_timezone(&cst).date_naive(),
        None => utc.date_naive(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn node(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn case_ids_round_trip_and_carry_their_origin() {
        let id = CaseId::new(&node("441424100201"), 0x0192_f3a4_b5c6_0001, 0xa1b2_c3d4_e5f6_0718);
        let text = id.to_string();
        assert_eq!(text, "441424100201-0192f3a4b5c60001a1b2c3d4e5f60718");
        let back: CaseId = text.parse().unwrap();
        assert_eq!(back, id);
        assert_eq!(back.origin(), &node("441424100201"));
        assert_eq!(back.hlc(), 0x0192_f3a4_b5c6_0001);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<CaseId>(&format!("\"{text}\"")).unwrap(), id);
        // Two ids minted at the same HLC differ by their nonce; ids of one node sort by time.
        let a = CaseId::new(&node("441424100"), 5, 1);
        assert_ne!(a, CaseId::new(&node("441424100"), 5, 2));
        assert!(a < CaseId::new(&node("441424100"), 6, 0));
    }

    #[test]
    fn malformed_case_ids_are_refused() {
        for bad in [
            "",
            "441424100",
            "441424100-",
            "44142-0192f3a4b5c60001a1b2c3d4e5f60718",
            "441424100-0192f3a4b5c60001a1b2c3d4e5f6071",
            "441424100-0192F3A4B5C60001A1B2C3D4E5F60718",
            "441424100-0192f3a4b5c60001a1b2c3d4e5f6071g",
            "441424100-+192f3a4b5c60001a1b2c3d4e5f6071",
        ] {
            assert!(bad.parse::<CaseId>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn case_numbers_print_node_date_and_sequence() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let n = CaseNumber::new(&node("441424100201"), date, 7).unwrap();
        assert_eq!(n.to_string(), "441424100201-20261127-0007");
        assert_eq!("441424100201-20261127-0007".parse::<CaseNumber>().unwrap(), n);
        let wide = CaseNumber::new(&node("441424100"), date, 12345).unwrap();
        assert_eq!(wide.to_string(), "441424100-20261127-12345");
        assert_eq!(wide.to_string().parse::<CaseNumber>().unwrap(), wide);
        assert_eq!(
            CaseNumber::new(&node("441424100"), date, 0),
            Err(CaseIdError::ZeroSequence)
        );
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"441424100201-20261127-0007\"");
        for bad in [
            "441424100201-20261127-007",
            "441424100201-20261127-0000",
            "441424100201-20261127-00007",
            "441424100201-20261327-0007",
            "441424100201-2026112-0007",
            "441424100201-20261127",
            "441424100201-20261127-0007-1",
            "4414241002-20261127-0007",
        ] {
            assert!(bad.parse::<CaseNumber>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn local_date_is_china_standard_time() {
        // 2026-11-26T16:00:00Z is midnight of the 27th in Guangdong.
        let ms = 1_795_708_800_000;
        assert_eq!(local_date(ms), NaiveDate::from_ymd_opt(2026, 11, 27).unwrap());
        assert_eq!(local_date(ms - 1), NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        assert_eq!(local_date(u64::MAX), NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
    }
}
