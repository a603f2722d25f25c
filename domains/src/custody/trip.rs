//! One trip of one box, folded from its scans: who holds the box at each moment (custody moves
//! only when the receiver accepts), where it is, and the breaks in the chain that one trip can
//! show on its own. Pure: the store loads the scans, this module judges them.
//!
//! Scans are taken in event-time order (the device clocks), so a scan uploaded late takes its
//! place in the history instead of being appended. Retracted scans (voided or corrected by an
//! error declaration) are left out by the caller.

use super::model::{AnomalyKind, Scan, Step, TripState};

use crate::ids::NodeId;
use crate::pki::Principal;

/// How long each waiting state may last before it is an anomaly. Configurable per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustodyLimits {
    /// A hand-over released but not accepted.
    pub handover_ms: i64,
    /// A box sealed and not released to a courier.
    pub pickup_ms: i64,
    /// From the courier's acceptance to the release at the destination (the route time).
    pub transit_ms: i64,
    /// How far a scan's device time may lie ahead of the time it was recorded.
    pub future_tolerance_ms: i64,
}

impl Default for CustodyLimits {
    fn default() -> Self {
        const HOUR: i64 = 3_600_000;
        CustodyLimits {
            handover_ms: 2 * HOUR,
            pickup_ms: 24 * HOUR,
            transit_ms: 8 * HOUR,
            future_tolerance_ms: 10 * 60_000,
        }
    }
}

/// A break in the chain found by folding scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable across nodes: `<kind>/<subject>`.
    pub key: String,
    pub kind: AnomalyKind,
    pub detail: String,
    pub scan_id: String,
    pub document_id: String,
}

/// Where the box of a trip is, and with whom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Custody {
    /// `node:<code>` or the courier principal.
    pub custodian: String,
    /// Released to this party, not yet accepted.
    pub pending: String,
    /// A division code, or `in transit` with the last place seen.
    pub place: String,
    /// Event time of the scan that put it there.
    pub since_ms: i64,
    /// The scan that put it there.
    pub scan_id: String,
}

/// A scan with the node that recorded it.
#[derive(Debug, Clone)]
pub struct RecordedScan {
    pub scan: Scan,
    pub recorded_at: String,
    pub recorded_ms: i64,
}

/// One trip folded.
#[derive(Debug, Clone, Default)]
pub struct TripView {
    pub trip_id: String,
    pub box_id: String,
    pub origin: String,
    pub destination: String,
    pub seal_number: String,
    pub state: TripState,
    pub manifest: Vec<String>,
    pub unpacked: Vec<String>,
    pub packed_ms: i64,
    pub custody: Custody,
    /// Custody after each scan, in order: (scan id, custodian after it).
    pub custodian_after: Vec<(String, String)>,
    pub findings: Vec<Finding>,
}

impl TripView {
    /// Whether the box is still on this trip (packed and neither unpacked nor voided).
    pub fn open(&self) -> bool {
        !matches!(
            self.state,
            TripState::Unpacked | TripState::Voided | TripState::NotPacked
        )
    }
}

fn node_of(principal: &str) -> Option<NodeId> {
    match principal.parse::<Principal>() {
        Ok(Principal::Operator { place, .. }) | Ok(Principal::Node(place)) => Some(place),
        _ => None,
    }
}

fn is_courier(principal: &str) -> bool {
    matches!(principal.parse::<Principal>(), Ok(Principal::Courier { .. }))
}

/// The order steps of a trip happen in; a scan earlier in time than a scan of an earlier step
/// is an impossible time.
fn stage(step: Step) -> u8 {
    match step {
        Step::Pack => 1,
        Step::Seal => 2,
        Step::ReleaseToCourier => 3,
        Step::CourierAccept => 4,
        Step::EnRoute => 5,
        Step::ReleaseAtDestination => 6,
        Step::DestinationAccept => 7,
        Step::Unpack => 8,
        _ => 0,
    }
}

/// Folds the (unretracted) scans of one trip, sorted here by event time, and judges them at
/// `now_ms` with `limits`.
pub fn fold_trip(trip_id: &str, scans: &[RecordedScan], now_ms: i64, limits: &CustodyLimits) -> TripView {
    let mut sorted: Vec<&RecordedScan> = scans.iter().collect();
    sorted.sort_by(|a, b| {
        (a.scan.scanned_unix_ms, a.scan.device_seq, &a.scan.scan_id).cmp(&(
            b.scan.scanned_unix_ms,
            b.scan.device_seq,
            &b.scan.scan_id,
        ))
    });
    let mut t = TripView {
        trip_id: trip_id.to_owned(),
        ..Default::default()
    };
    let find =
        |findings: &mut Vec<Finding>, kind: AnomalyKind, subject: String, detail: String, scan: &Scan, doc: &str| {
            let key = format!("{kind}/{subject}");
            if findings.iter().all(|f| f.key != key) {
                findings.push(Finding {
                    key,
                    kind,
                    detail,
                    scan_id: scan.scan_id.clone(),
                    document_id: doc.to_owned(),
                });
            }
        };
    let mut sealed_at = None;
    let mut released_at = None;
    let mut accepted_by_courier_at = None;
    let mut arrived_at = None;
    for recorded in &sorted {
        let s = &recorded.scan;
        let step = s.step;
        let when = s.scanned_unix_ms;
        if when > recorded.recorded_ms + limits.future_tolerance_ms {
            find(
                &mut t.findings,
                AnomalyKind::ImpossibleTime,
                format!("scan/{}", s.scan_id),
                format!(
                    "scan {} of trip {trip_id} is dated {} s after it was recorded at {}: the device clock is wrong",
                    s.scan_id,
                    (when - recorded.recorded_ms) / 1000,
                    recorded.recorded_at
                ),
                s,
                "",
            );
        }
        let st = stage(step);
        // A scan dated before a scan of an earlier step of the same trip cannot be right: it
        // is the one named (a handheld whose clock is behind, or a scan recorded for the wrong
        // trip).
        if let Some(first) = sorted.iter().find(|o| {
            let earlier_step = stage(o.scan.step);
            earlier_step > 0 && earlier_step < st && o.scan.scanned_unix_ms > when
        }) {
            find(
                &mut t.findings,
                AnomalyKind::ImpossibleTime,
                format!("scan/{}", s.scan_id),
                format!(
                    "{} scan {} on trip {trip_id} is dated before the {} scan {} that must come first",
                    step.contract_name(),
                    s.scan_id,
                    first.scan.step.contract_name(),
                    first.scan.scan_id
                ),
                s,
                "",
            );
        }
        let courier_step = step.is_courier_step();
        if courier_step != is_courier(&s.principal) && st > 0 {
            find(
                &mut t.findings,
                AnomalyKind::ScanNotAllowed,
                format!("scan/{}", s.scan_id),
                format!(
                    "{} on trip {trip_id} was scanned by {}, who may not make that scan ({} scans are for {})",
                    step.contract_name(),
                    s.principal,
                    step.contract_name(),
                    if courier_step { "couriers" } else { "clerks" }
                ),
                s,
                "",
            );
        }
        match step {
            Step::Pack => {
                t.box_id = s.box_id.clone();
                t.origin = s.origin.clone();
                t.destination = s.destination.clone();
                t.manifest = s.document_ids.clone();
                t.packed_ms = when;
                t.state = TripState::Packed;
                t.custody = Custody {
                    custodian: format!("node:{}", s.origin),
                    pending: String::new(),
                    place: s.origin.clone(),
                    since_ms: when,
                    scan_id: s.scan_id.clone(),
                };
            }
            Step::Seal => {
                t.seal_number = s.seal_number.clone();
                t.state = TripState::Sealed;
                sealed_at = Some(when);
            }
            Step::ReleaseToCourier => {
                t.state = TripState::Released;
                t.custody.pending = s.counterparty.clone();
                released_at = Some((when, s.scan_id.clone()));
            }
            Step::CourierAccept => {
                t.state = TripState::InTransit;
                t.custody = Custody {
                    custodian: s.principal.clone(),
                    pending: String::new(),
                    place: "in transit".to_owned(),
                    since_ms: when,
                    scan_id: s.scan_id.clone(),
                };
                accepted_by_courier_at = Some(when);
            }
            Step::EnRoute => {
                t.custody.place = if s.place.is_empty() {
                    "in transit".to_owned()
                } else {
                    format!("in transit, last seen at {}", s.place)
                };
            }
            Step::ReleaseAtDestination => {
                t.state = TripState::Arrived;
                t.custody.pending = s.counterparty.clone();
                arrived_at = Some((when, s.scan_id.clone()));
            }
            Step::DestinationAccept => {
                t.state = TripState::Received;
                let at = node_of(&s.principal).map(|n| n.to_string()).unwrap_or_default();
                t.custody = Custody {
                    custodian: format!("node:{at}"),
                    pending: String::new(),
                    place: at.clone(),
                    since_ms: when,
                    scan_id: s.scan_id.clone(),
                };
                if !t.destination.is_empty() && at != t.destination {
                    find(
                        &mut t.findings,
                        AnomalyKind::Misroute,
                        format!("trip/{trip_id}"),
                        format!(
                            "box {} of trip {trip_id} was accepted at {at}, but it was sent to {}",
                            t.box_id, t.destination
                        ),
                        s,
                        "",
                    );
                }
                if !s.seal_intact || (!t.seal_number.is_empty() && s.seal_number != t.seal_number) {
                    let detail = if s.seal_intact {
                        format!(
                            "box {} of trip {trip_id} arrived with seal {:?}, but it was sealed with {:?}",
                            t.box_id, s.seal_number, t.seal_number
                        )
                    } else {
                        format!(
                            "box {} of trip {trip_id} arrived with its seal {:?} broken",
                            t.box_id, s.seal_number
                        )
                    };
                    find(
                        &mut t.findings,
                        AnomalyKind::SealBroken,
                        format!("trip/{trip_id}"),
                        detail,
                        s,
                        "",
                    );
                }
            }
            Step::Unpack => {
                t.state = TripState::Unpacked;
                t.unpacked = s.document_ids.clone();
                for missing in t.manifest.iter().filter(|d| !s.document_ids.contains(d)) {
                    find(
                        &mut t.findings,
                        AnomalyKind::ManifestShortage,
                        format!("trip/{trip_id}/{missing}"),
                        format!(
                            "document {missing} was packed in box {} for trip {trip_id} but not found at unpacking",
                            t.box_id
                        ),
                        s,
                        missing,
                    );
                }
                for extra in s.document_ids.iter().filter(|d| !t.manifest.contains(d)) {
                    find(
                        &mut t.findings,
                        AnomalyKind::ManifestOverage,
                        format!("trip/{trip_id}/{extra}"),
                        format!(
                            "document {extra} was found in box {} on trip {trip_id} but was not packed for it",
                            t.box_id
                        ),
                        s,
                        extra,
                    );
                }
            }
            Step::VoidDeparture => {
                t.state = TripState::Voided;
                t.custody = Custody {
                    custodian: format!("node:{}", t.origin),
                    pending: String::new(),
                    place: t.origin.clone(),
                    since_ms: when,
                    scan_id: s.scan_id.clone(),
                };
            }
            _ => {}
        }
        t.custodian_after.push((s.scan_id.clone(), t.custody.custodian.clone()));
    }
    // Scans for a trip nobody packed (here): an unknown trip id.
    if let Some(first) = sorted.first()
        && !sorted.iter().any(|r| r.scan.step == Step::Pack)
    {
        find(
            &mut t.findings,
            AnomalyKind::UnknownId,
            format!("trip/{trip_id}"),
            format!(
                "{} scanned for trip {trip_id}, which was never packed (box {})",
                first.scan.step.contract_name(),
                first.scan.box_id
            ),
            &first.scan,
            "",
        );
    }
    // Waiting too long, judged at `now_ms`.
    let waited = |since: i64, limit: i64| now_ms - since > limit;
    match t.state {
        TripState::Sealed if sealed_at.is_some_and(|at| waited(at, limits.pickup_ms)) => t.findings.push(Finding {
            key: format!("sealed_not_picked_up/trip/{trip_id}"),
            kind: AnomalyKind::SealedNotPickedUp,
            detail: format!(
                "box {} was sealed for trip {trip_id} and has not been released to a courier",
                t.box_id
            ),
            scan_id: t.custody.scan_id.clone(),
            document_id: String::new(),
        }),
        TripState::Released => {
            if let Some((at, scan)) = released_at.clone()
                && waited(at, limits.handover_ms)
            {
                t.findings.push(Finding {
                    key: format!("unacknowledged_handover/trip/{trip_id}/courier"),
                    kind: AnomalyKind::UnacknowledgedHandover,
                    detail: format!(
                        "box {} of trip {trip_id} was released to {} and the courier has not accepted it",
                        t.box_id, t.custody.pending
                    ),
                    scan_id: scan,
                    document_id: String::new(),
                });
            }
        }
        TripState::InTransit if accepted_by_courier_at.is_some_and(|at| waited(at, limits.transit_ms)) => {
            t.findings.push(Finding {
                key: format!("overdue_in_transit/trip/{trip_id}"),
                kind: AnomalyKind::OverdueInTransit,
                detail: format!(
                    "box {} of trip {trip_id} has been with courier {} longer than the route time to {}",
                    t.box_id, t.custody.custodian, t.destination
                ),
                scan_id: t.custody.scan_id.clone(),
                document_id: String::new(),
            })
        }
        TripState::Arrived => {
            if let Some((at, scan)) = arrived_at.clone()
                && waited(at, limits.handover_ms)
            {
                t.findings.push(Finding {
                    key: format!("unacknowledged_handover/trip/{trip_id}/destination"),
                    kind: AnomalyKind::UnacknowledgedHandover,
                    detail: format!(
                        "box {} of trip {trip_id} was released at {} to {} and nobody there has accepted it",
                        t.box_id, t.destination, t.custody.pending
                    ),
                    scan_id: scan,
                    document_id: String::new(),
                });
            }
        }
        _ => {}
    }
    t
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const T0: i64 = 1_790_000_000_000;

    fn scan(seq: u64, step: Step, at_h: i64, principal: &str) -> RecordedScan {
        RecordedScan {
            scan: Scan {
                box_id: "B1".into(),
                trip_id: "T1".into(),
                origin: "441424".into(),
                destination: "441424100".into(),
                document_ids: vec!["D1".into(), "D2".into()],
                seal_number: "S-9".into(),
                seal_intact: true,
                counterparty: "courier:441424:pda".into(),
                ..Scan::new(format!("s{seq}"), "pda", seq, T0 + at_h * HOUR, principal, step)
            },
            recorded_at: "441424".into(),
            recorded_ms: T0 + at_h * HOUR,
        }
    }

    const CLERK: &str = "operator:441424:wang";
    const COURIER: &str = "courier:441424:pda";
    const DEST: &str = "operator:441424100:li";

    fn normal_trip() -> Vec<RecordedScan> {
        vec![
            scan(1, Step::Pack, 0, CLERK),
            scan(2, Step::Seal, 0, CLERK),
            scan(3, Step::ReleaseToCourier, 1, CLERK),
            scan(4, Step::CourierAccept, 1, COURIER),
            scan(5, Step::EnRoute, 2, COURIER),
            scan(6, Step::ReleaseAtDestination, 3, COURIER),
            scan(7, Step::DestinationAccept, 3, DEST),
            scan(8, Step::Unpack, 4, DEST),
        ]
    }

    #[test]
    fn a_normal_trip_moves_custody_on_acceptance_and_raises_nothing() {
        let scans = normal_trip();
        let t = fold_trip("T1", &scans, T0 + 100 * HOUR, &CustodyLimits::default());
        assert_eq!(t.findings, vec![]);
        assert_eq!(t.state, TripState::Unpacked);
        assert_eq!(t.custody.custodian, "node:441424100");
        // Released but not accepted: the sender still holds it, the courier is pending.
        let t = fold_trip("T1", &scans[..3], T0 + HOUR, &CustodyLimits::default());
        assert_eq!(t.custody.custodian, "node:441424");
        assert_eq!(t.custody.pending, COURIER);
        let t = fold_trip("T1", &scans[..4], T0 + HOUR, &CustodyLimits::default());
        assert_eq!(t.custody.custodian, COURIER);
    }

    #[test]
    fn late_scans_take_their_place_by_event_time() {
        let mut scans = normal_trip();
        let accept = scans.remove(3);
        scans.push(accept);
        let t = fold_trip("T1", &scans, T0 + 100 * HOUR, &CustodyLimits::default());
        assert_eq!(t.findings, vec![]);
        assert_eq!(t.custodian_after[3].0, "s4");
    }

    #[test]
    fn each_break_is_found_by_what_causes_it() {
        let limits = CustodyLimits::default();
        let kinds = |scans: &[RecordedScan], now_h: i64| {
            let t = fold_trip("T1", scans, T0 + now_h * HOUR, &limits);
            t.findings.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>()
        };
        let n = normal_trip();
        assert_eq!(kinds(&n[..2], 30), vec!["sealed_not_picked_up"]);
        assert_eq!(kinds(&n[..3], 4), vec!["unacknowledged_handover"]);
        assert_eq!(kinds(&n[..5], 12), vec!["overdue_in_transit"]);
        assert_eq!(kinds(&n[..6], 6), vec!["unacknowledged_handover"]);
        let mut broken = n.clone();
        broken[6].scan.seal_intact = false;
        assert_eq!(kinds(&broken, 5), vec!["seal_broken"]);
        let mut changed = n.clone();
        changed[6].scan.seal_number = "S-10".into();
        assert_eq!(kinds(&changed, 5), vec!["seal_broken"]);
        let mut wrong = n.clone();
        wrong[6].scan.principal = "operator:441424104:zhao".into();
        assert_eq!(kinds(&wrong, 5), vec!["misroute"]);
        let mut short = n.clone();
        short[7].scan.document_ids = vec!["D1".into(), "D3".into()];
        assert_eq!(kinds(&short, 5), vec!["manifest_shortage", "manifest_overage"]);
        let mut early = n.clone();
        early[3].scan.scanned_unix_ms = T0 - HOUR; // accepted before it was packed
        assert!(kinds(&early, 5).contains(&"impossible_time"));
        let mut future = n.clone();
        future[4].scan.scanned_unix_ms += 5 * HOUR;
        future[4].recorded_ms = T0 + 2 * HOUR;
        assert!(kinds(&future, 50).contains(&"impossible_time"));
        let mut clerk_as_courier = n.clone();
        clerk_as_courier[3].scan.principal = CLERK.into();
        assert_eq!(kinds(&clerk_as_courier, 5), vec!["scan_not_allowed"]);
        assert_eq!(kinds(&n[3..4], 2), vec!["unknown_id"]);
    }
}
