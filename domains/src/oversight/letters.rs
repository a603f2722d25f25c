//! Letters of entrustment (授权委托书): which class of entrusted items each township handles in the
//! county departments' name, and so which entrusted seal it keeps.
//!
//! The seed's rule is "one class of item, one seal": a township entrusted with government-service
//! items keeps the 行政审批委托专用章, one entrusted with public-service items the 业务专用章, each
//! under a letter per township. The county's back office decides entrusted items (its decision
//! is not stamped); the township's seal keeper stamps the result with the entrusted seal when it
//! issues it, and the register entry is made there. This module owns:
//! - the letter and its checks ([`Letter`]);
//! - folding `EntrustmentLetter` events (authored by the county, sent down to the township as
//!   subtree-class events keyed by it) into
//!   `entrustment_letters`, one row per township and class, a later letter replacing an earlier;
//! - issuing a letter at the county ([`Store::issue_letter`]) and reading them;
//! - the gate of issuing an entrusted item's result ([`Store::check_entrusted_issue`]).
//!
//! The gate is checked where the step is authored, like the roster's: the township holds every
//! letter the county sent it, and the step it authors then travels with the decision already made.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use tongban_proto::v1::{self as pb, RouteClass, event_body::Body};

use crate::case::CaseView;
use crate::catalogue::{Category, DelegationMode, SealType};
use crate::event::{CheckedEvent, EventError, NewEvent};
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::store::{Store, StoreError, WriteTx};
use crate::{with_pool, with_tx};

/// Characters of a letter's number.
pub const MAX_LETTER_NUMBER_CHARS: usize = 64;
/// Basic item codes one letter may name.
pub const MAX_LETTER_ITEMS: usize = 500;
/// Characters of one basic item code in a letter.
const MAX_ITEM_CODE_CHARS: usize = 64;

/// One township's letter for one class of entrusted items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub township: NodeId,
    pub number: String,
    pub date: NaiveDate,
    pub class: Category,
    /// Only these basic item codes; empty for the whole class.
    pub item_codes: BTreeSet<String>,
    pub revoked: bool,
}

impl Letter {
    /// The entrusted seal the letter lets the township keep.
    pub fn seal(&self) -> SealType {
        SealType::derive(DelegationMode::Entrusted, self.class)
    }

    /// Whether the letter covers the item with basic code `item_code` of class `class`.
    pub fn covers(&self, class: Category, item_code: &str) -> bool {
        !self.revoked && self.class == class && (self.item_codes.is_empty() || self.item_codes.contains(item_code))
    }
}

/// A letter as the wire carries it, checked: the field named in the error.
pub fn letter_from_wire(w: &pb::EntrustmentLetter) -> Result<Letter, (&'static str, String)> {
    let township = NodeId::new(w.township.trim()).map_err(|e| ("township", e.to_string()))?;
    if township.tier() != Tier::Township {
        return Err(("township", format!("{township} 不是乡镇；委托书只发给乡镇")));
    }
    let number = w.letter_number.trim().to_owned();
    let chars = number.chars().count();
    if chars == 0 || chars > MAX_LETTER_NUMBER_CHARS || number.chars().any(char::is_control) {
        return Err((
            "letter_number",
            format!("委托书文号须为 1 到 {MAX_LETTER_NUMBER_CHARS} 个字符"),
        ));
    }
    let date = NaiveDate::parse_from_str(w.letter_date.trim(), "%Y-%m-%d")
        .map_err(|_| ("letter_date", format!("{:?} 不是 YYYY-MM-DD 格式的日期", w.letter_date)))?;
    let class = Category::from_wire(w.item_class, "item_class").map_err(|e| ("item_class", e.to_string()))?;
    if w.item_codes.len() > MAX_LETTER_ITEMS {
        return Err((
            "item_codes",
            format!(
                "一份委托书至多列 {MAX_LETTER_ITEMS} 个事项，不是 {}",
                w.item_codes.len()
            ),
        ));
    }
    let mut item_codes = BTreeSet::new();
    for code in &w.item_codes {
        let code = code.trim();
        if code.is_empty()
            || code.len() > MAX_ITEM_CODE_CHARS
            || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(("item_codes", format!("{code:?} 不是基本编码")));
        }
        item_codes.insert(code.to_owned());
    }
    Ok(Letter {
        township,
        number,
        date,
        class,
        item_codes,
        revoked: w.revoked,
    })
}

pub fn letter_to_wire(l: &Letter) -> pb::EntrustmentLetter {
    pb::EntrustmentLetter {
        township: l.township.to_string(),
        letter_number: l.number.clone(),
        letter_date: l.date.format("%Y-%m-%d").to_string(),
        item_class: l.class.to_wire(),
        item_codes: l.item_codes.iter().cloned().collect(),
        revoked: l.revoked,
        seal: l.seal().to_wire(),
    }
}

/// A letter travels from the county down to the township it names, and only the county writes one.
pub(crate) fn check_letter_authorship(event: &CheckedEvent) -> Result<(), EventError> {
    let Body::EntrustmentLetter(body) = &event.body else {
        return Err(EventError::Rule("not a letter of entrustment".into()));
    };
    if event.origin.tier() != Tier::County {
        return Err(EventError::Rule(format!(
            "only the county issues letters of entrustment, not {}",
            event.origin
        )));
    }
    if event.route_class() != RouteClass::Subtree || event.route_key.as_str() != body.township {
        return Err(EventError::Rule(
            "a letter of entrustment travels down to the township it names".into(),
        ));
    }
    Ok(())
}

/// Folds a letter: replaces the township's letter for its class. A malformed one is refused.
pub(crate) async fn fold_letter(
    tx: &mut WriteTx,
    event: &CheckedEvent,
    body: &pb::EntrustmentLetter,
) -> Result<Result<(), String>, StoreError> {
    let letter = match letter_from_wire(body) {
        Ok(letter) => letter,
        Err((field, message)) => return Ok(Err(format!("letter of entrustment: {field}: {message}"))),
    };
    let codes = serde_json::to_string(&letter.item_codes).map_err(|e| StoreError::Corrupt(format!("letter: {e}")))?;
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO entrustment_letters (township, item_class, letter_number, letter_date, item_codes, revoked, issued_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (township, item_class) DO UPDATE SET \
             letter_number = excluded.letter_number, letter_date = excluded.letter_date, \
             item_codes = excluded.item_codes, revoked = excluded.revoked, issued_seq = excluded.issued_seq",
        )
        .bind(letter.township.as_str())
        .bind(letter.class.as_str())
        .bind(letter.number.as_str())
        .bind(letter.date.format("%Y-%m-%d").to_string())
        .bind(codes.as_str())
        .bind(i64::from(letter.revoked))
        .bind(event.event.seq as i64)
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(Ok(()))
}

type LetterRow = (String, String, String, String, String, i64);

fn letter_from_row((township, class, number, date, codes, revoked): LetterRow) -> Result<Letter, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("entrustment letter of {township}: {what}"));
    Ok(Letter {
        township: NodeId::new(&township).map_err(|_| corrupt("township"))?,
        class: Category::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == class)
            .ok_or_else(|| corrupt("class"))?,
        date: NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| corrupt("date"))?,
        item_codes: serde_json::from_str(&codes).map_err(|_| corrupt("item codes"))?,
        number,
        revoked: revoked == 1,
    })
}

impl Store {
    /// Issues, replaces or revokes a letter at the county, as `principal`; returns it as folded.
    pub async fn issue_letter(&self, letter: &Letter, principal: &Principal) -> Result<Letter, StoreError> {
        if self.node().tier() != Tier::County {
            return Err(StoreError::Refused(format!(
                "letters of entrustment are issued at the county, not at {}",
                self.node()
            )));
        }
        let new = NewEvent {
            principal: principal.to_string(),
            subject: format!("entrustment:{}:{}", letter.township, letter.class.as_str()),
            route_key: letter.township.clone(),
            // Down from the county to the township it names (and on to its villages).
            route_class: RouteClass::Subtree,
            body: Body::EntrustmentLetter(letter_to_wire(letter)),
        };
        self.author(vec![new]).await?;
        Ok(letter.clone())
    }

    /// The letters this node knows, of `township` or of every township, by township and class.
    pub async fn letters(&self, township: Option<&NodeId>) -> Result<Vec<Letter>, StoreError> {
        let rows: Vec<LetterRow> = with_pool!(self.pool(), conn => {
            sqlx::query_as(
                "SELECT township, item_class, letter_number, letter_date, item_codes, revoked FROM entrustment_letters \
                 WHERE $1 = '' OR township = $1 ORDER BY township, item_class",
            )
            .bind(township.map(NodeId::as_str).unwrap_or(""))
            .fetch_all(conn)
            .await
        })?;
        rows.into_iter().map(letter_from_row).collect()
    }

    /// Refuses issuing the result of an entrusted case at this node unless the county's letter
    /// to it covers the item: the entrusted seal is the township's only under that letter.
    /// Other cases pass.
    pub async fn check_entrusted_issue(&self, view: &CaseView) -> Result<(), LetterRefusal> {
        if view.terms.delegation != DelegationMode::Entrusted {
            return Ok(());
        }
        let here = self.node();
        let seal = SealType::derive(DelegationMode::Entrusted, view.terms.category);
        let letters = self.letters(Some(here)).await?;
        let letter = letters.iter().find(|l| l.class == view.terms.category && !l.revoked);
        match letter {
            Some(l) if l.covers(view.terms.category, &view.terms.item_code) => Ok(()),
            Some(l) => Err(LetterRefusal::OutOfScope(format!(
                "事项 {}（{}）不在委托书 {} 的范围内，{} 不能用{}为它出件；下一步：请县政务服务中心在委托书中列入该事项（tongban seals letter …）",
                view.terms.name,
                view.terms.item_code,
                l.number,
                crate::places::label(here.as_str()),
                seal.label_zh()
            ))),
            None => Err(LetterRefusal::NotHeld(format!(
                "{} 没有县里的{}委托书，不持有{}，不能为委托事项 {} 出件；下一步：请县政务服务中心发放委托书（tongban seals letter --township {} …）",
                crate::places::label(here.as_str()),
                view.terms.category.label_zh(),
                seal.label_zh(),
                view.terms.item_code,
                here
            ))),
        }
    }
}

/// Why an entrusted item's result may not be issued here.
#[derive(Debug, thiserror::Error)]
pub enum LetterRefusal {
    /// The township holds no letter for the item's class (or it was revoked).
    #[error("{0}")]
    NotHeld(String),
    /// The township's letter names other items.
    #[error("{0}")]
    OutOfScope(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn wire() -> pb::EntrustmentLetter {
        pb::EntrustmentLetter {
            township: "441424100".into(),
            letter_number: "五政服委〔2026〕3号".into(),
            letter_date: "2026-01-15".into(),
            item_class: Category::GovernmentService.to_wire(),
            item_codes: vec!["000201001000".into()],
            revoked: false,
            seal: 0,
        }
    }

    #[test]
    fn a_letter_keeps_one_seal_for_one_class_and_covers_what_it_names() {
        let letter = letter_from_wire(&wire()).unwrap();
        assert_eq!(letter.seal(), SealType::EntrustedApproval);
        assert!(letter.covers(Category::GovernmentService, "000201001000"));
        assert!(!letter.covers(Category::GovernmentService, "000201002000"), "not named");
        assert!(!letter.covers(Category::PublicService, "000201001000"), "other class");
        let whole = Letter {
            item_codes: BTreeSet::new(),
            ..letter.clone()
        };
        assert!(whole.covers(Category::GovernmentService, "000201002000"));
        let revoked = Letter { revoked: true, ..whole };
        assert!(!revoked.covers(Category::GovernmentService, "000201002000"));
    }

    #[test]
    fn malformed_letters_name_their_field() {
        let field = |w: pb::EntrustmentLetter| letter_from_wire(&w).unwrap_err().0;
        assert_eq!(
            field(pb::EntrustmentLetter {
                township: "441424".into(),
                ..wire()
            }),
            "township"
        );
        assert_eq!(
            field(pb::EntrustmentLetter {
                letter_number: " ".into(),
                ..wire()
            }),
            "letter_number"
        );
        assert_eq!(
            field(pb::EntrustmentLetter {
                letter_date: "2026/1/15".into(),
                ..wire()
            }),
            "letter_date"
        );
        assert_eq!(
            field(pb::EntrustmentLetter {
                item_class: 0,
                ..wire()
            }),
            "item_class"
        );
        assert_eq!(
            field(pb::EntrustmentLetter {
                item_codes: vec!["a b".into()],
                ..wire()
            }),
            "item_codes"
        );
    }
}
