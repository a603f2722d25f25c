//! A scanning device: a courier's handheld or a clerk's desk scanner. It numbers its scans
//! densely from its first number and names each one itself, as the custody contract asks:
//! a node flags a gap in a device's numbers as scans lost after they left the device, and it
//! records a scan id once however often the scan arrives.

use tongban_engine::pki::Principal;
use tongban_proto::v1 as pb;

use crate::{Error, Result};

/// Longest device id; it becomes part of every scan id.
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// How a device names its scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanIds {
    /// `<device>-<seq>-<8 random hex>`. The random part keeps an id unique for ever even when a
    /// lost device's queue is re-created under the same device id and its numbers restart.
    Unique,
    /// `<device>-<seq>`: for scripted devices that are never re-created (test scenarios), whose
    /// expected custody chains name scans by number.
    Numbered,
}

/// A device: its id, whose scans it makes, and the number its next scan gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// As printed on the device (e.g. `pda-0042`, `desk-441424100-wang`).
    pub id: String,
    /// Who scans: a courier, or the operator at a desk. Written into every scan exactly as the
    /// certificate names it, because a node accepts a courier's upload only for their own scans.
    pub principal: Principal,
    next_seq: u64,
    ids: ScanIds,
}

impl Device {
    /// A new device whose first scan is number 1.
    pub fn new(id: impl Into<String>, principal: Principal) -> Result<Device> {
        Device::resume(id, principal, 1)
    }

    /// A device whose next scan is number `next_seq`: a queue reopened, or a device carrying on
    /// after its queue was lost (one more than the last number the nodes have from it).
    pub fn resume(id: impl Into<String>, principal: Principal, next_seq: u64) -> Result<Device> {
        let id = id.into();
        check_device_id(&id)?;
        if next_seq == 0 {
            return Err(Error::FirstSeq);
        }
        if let Principal::Node(_) = principal {
            return Err(Error::NodeScans(principal.to_string()));
        }
        Ok(Device {
            id,
            principal,
            next_seq,
            ids: ScanIds::Unique,
        })
    }

    /// The same device, naming its scans as `ids` says.
    pub fn with_scan_ids(self, ids: ScanIds) -> Device {
        Device { ids, ..self }
    }

    /// The number the next scan gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The principal string scans carry (`operator:<node>:<name>` or `courier:<place>:<name>`).
    pub fn who(&self) -> String {
        self.principal.to_string()
    }

    /// Makes `scan` this device's next one: gives it the next number and an id, and fills in
    /// the device and the principal. A clerk's scan without a place was made at their node.
    pub fn stamp(&mut self, mut scan: pb::Scan) -> pb::Scan {
        let seq = self.next_seq;
        self.next_seq += 1;
        scan.scan_id = match self.ids {
            ScanIds::Unique => format!("{}-{seq}-{:08x}", self.id, rand::random::<u32>()),
            ScanIds::Numbered => format!("{}-{seq}", self.id),
        };
        scan.device_id = self.id.clone();
        scan.device_seq = seq;
        scan.principal = self.who();
        if scan.place.is_empty()
            && let Principal::Operator { place, .. } = &self.principal
        {
            scan.place = place.to_string();
        }
        scan
    }

    /// A new scan of `step` at `at_ms` by this device's clock, numbered and named.
    pub fn scan(&mut self, step: pb::CustodyStep, at_ms: i64) -> pb::Scan {
        self.stamp(pb::Scan {
            step: step as i32,
            scanned_unix_ms: at_ms,
            ..Default::default()
        })
    }
}

/// A device id goes into every scan id and file name: letters, digits, `.`, `_` and `-` only.
fn check_device_id(device: &str) -> Result<()> {
    let ok_chars = device.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if device.is_empty() || device.len() > MAX_DEVICE_ID_LEN || !ok_chars {
        return Err(Error::DeviceId(device.to_owned()));
    }
    Ok(())
}

/// `courier-accept` for `CUSTODY_STEP_COURIER_ACCEPT`: the step as the command line and the
/// queue listing name it.
pub fn step_name(step: impl TryInto<pb::CustodyStep>) -> String {
    match step.try_into() {
        Ok(s) => {
            let name = s.as_str_name();
            name.strip_prefix("CUSTODY_STEP_")
                .unwrap_or(name)
                .to_ascii_lowercase()
                .replace('_', "-")
        }
        Err(_) => "unknown-step".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use tongban_engine::ids::NodeId;

    use super::*;

    fn clerk() -> Principal {
        Principal::operator(NodeId::new("441424100").unwrap(), "wang").unwrap()
    }

    #[test]
    fn scans_are_numbered_densely_and_named_by_the_device() {
        let mut desk = Device::new("desk-441424100-wang", clerk()).unwrap();
        let first = desk.scan(pb::CustodyStep::RegisterBox, 5);
        let second = desk.scan(pb::CustodyStep::Pack, 6);
        assert_eq!((first.device_seq, second.device_seq, desk.next_seq()), (1, 2, 3));
        assert!(first.scan_id.starts_with("desk-441424100-wang-1-"), "{}", first.scan_id);
        assert_eq!(first.scan_id.len(), "desk-441424100-wang-1-".len() + 8);
        assert_eq!(first.principal, "operator:441424100:wang");
        // A clerk's scan says where it was made, unless it says so itself.
        assert_eq!(first.place, "441424100");
        let on_road = desk.stamp(pb::Scan {
            place: "K12".into(),
            ..Default::default()
        });
        assert_eq!(on_road.place, "K12");

        let courier = Principal::courier(NodeId::new("441424100").unwrap(), "pda-7").unwrap();
        let mut pda = Device::resume("pda-7", courier, 41)
            .unwrap()
            .with_scan_ids(ScanIds::Numbered);
        let scan = pda.scan(pb::CustodyStep::EnRoute, 7);
        assert_eq!((scan.scan_id.as_str(), scan.place.as_str()), ("pda-7-41", ""));
    }

    #[test]
    fn bad_devices_are_refused() {
        assert!(Device::new("bad id", clerk()).is_err());
        assert!(Device::new("x".repeat(65), clerk()).is_err());
        assert!(Device::resume("pda-1", clerk(), 0).is_err());
        let node = Principal::Node(NodeId::new("441424").unwrap());
        assert!(Device::new("pda-1", node).is_err());
    }

    #[test]
    fn steps_have_kebab_names() {
        assert_eq!(step_name(pb::CustodyStep::CourierAccept), "courier-accept");
        assert_eq!(step_name(7), "en-route");
        assert_eq!(step_name(99), "unknown-step");
    }
}
