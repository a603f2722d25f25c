//! The custody vocabulary as plain Rust: the steps a scan records, the scan itself and the
//! document it may register, the states of a trip, the kinds and states of anomalies, and what
//! where-is answers (a location and its custody chain).
//!
//! Every enum names its values in snake_case ([`Step::as_str`], [`AnomalyKind::as_str`], …) and
//! parses them back ([`std::str::FromStr`]). Those names are part of the system's data, not just
//! display: anomaly keys (`<kind>/<subject>`) replicate between nodes, and the names appear in the
//! EPCIS export and on the command line, so a name never changes once it is in use. Protobuf
//! lives in [`super::wire`], not here.

use std::fmt;
use std::str::FromStr;

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not {what}")]
pub struct UnknownName {
    /// What was expected, e.g. "a custody step".
    pub what: &'static str,
    pub name: String,
}

/// Declares a fieldless enum with its snake_case names: `ALL`, `as_str`, `Display` and `FromStr`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$variant_meta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value's stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(name: &str) -> Result<Self, UnknownName> {
                match name {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { what: $what, name: name.to_owned() }),
                }
            }
        }
    };
}

named_enum! {
    /// What a scan says happened: the custody steps of `custody.proto`, each mapped to a CBV
    /// business step by [`super::epcis`].
    pub enum Step ("a custody step") {
        /// A paper file of a case registered at intake with its printed id.
        RegisterDocument => "register_document",
        /// A reusable box registered with its printed label.
        RegisterBox => "register_box",
        /// Documents packed into a box for a new trip: opens the trip.
        Pack => "pack",
        /// The box closed with a numbered tamper seal.
        Seal => "seal",
        /// The sending clerk releases the box to a courier (custody moves when the courier accepts).
        ReleaseToCourier => "release_to_courier",
        /// The courier accepts the box: custody moves to the courier.
        CourierAccept => "courier_accept",
        /// The courier scans the box on the way.
        EnRoute => "en_route",
        /// The courier releases the box at the destination (custody moves when a clerk accepts).
        ReleaseAtDestination => "release_at_destination",
        /// The destination clerk accepts the box and checks its seal: custody moves there.
        DestinationAccept => "destination_accept",
        /// The box opened and every document scanned out: the trip ends.
        Unpack => "unpack",
        /// The departure did not happen: the trip is cancelled.
        VoidDeparture => "void_departure",
        /// The scan named by `corrects_scan_id` no longer counts.
        ErrorDeclaration => "error_declaration",
    }
}

impl Step {
    /// Whether the step is a courier's to scan (acceptance, en route, release at the
    /// destination); the other trip steps are clerks'.
    pub fn is_courier_step(self) -> bool {
        matches!(self, Step::CourierAccept | Step::EnRoute | Step::ReleaseAtDestination)
    }
}

named_enum! {
    /// The kind of a paper file.
    pub enum DocumentKind ("a document kind") {
        /// An original the applicant handed in (原件).
        Original => "original",
        /// A copy (复印件).
        Copy => "copy",
        /// A result certificate or licence going back to the applicant (结果证照).
        ResultCertificate => "result_certificate",
    }
}

named_enum! {
    /// Where one trip of a box stands, after the last of its scans that moves it.
    #[derive(Default)]
    pub enum TripState ("a trip state") {
        /// Nothing that sets a state has been scanned: the trip is known only from scans that do
        /// not (en-route scans, say) because its PACK is not here.
        #[default]
        NotPacked => "not_packed",
        Packed => "packed",
        Sealed => "sealed",
        /// Released to a courier who has not accepted it yet.
        Released => "released",
        /// With the courier.
        InTransit => "in_transit",
        /// Released at the destination, not yet accepted there.
        Arrived => "arrived",
        /// Accepted at the destination.
        Received => "received",
        Unpacked => "unpacked",
        Voided => "voided",
    }
}

impl TripState {
    /// Whether the trip has ended (unpacked, or its departure voided).
    pub fn ended(self) -> bool {
        matches!(self, TripState::Unpacked | TripState::Voided)
    }
}

named_enum! {
    /// A kind of break in the chain of custody. The name opens every anomaly key.
    pub enum AnomalyKind ("an anomaly kind") {
        /// Released to a party who has not accepted it in time.
        UnacknowledgedHandover => "unacknowledged_handover",
        /// Sealed and not released to a courier in time.
        SealedNotPickedUp => "sealed_not_picked_up",
        /// With the courier longer than the route time.
        OverdueInTransit => "overdue_in_transit",
        /// Accepted somewhere other than the trip's destination.
        Misroute => "misroute",
        /// Arrived with its seal broken or a different seal.
        SealBroken => "seal_broken",
        /// Packed for the trip, not found at unpacking.
        ManifestShortage => "manifest_shortage",
        /// Found at unpacking, not packed for the trip.
        ManifestOverage => "manifest_overage",
        /// Packed while still in another box on a trip that has not ended.
        DocumentInTwoContainers => "document_in_two_containers",
        /// A box packed for a trip while still on another.
        PackedNotEmpty => "packed_not_empty",
        /// A scan dated in the future, or before a scan that must come first.
        ImpossibleTime => "impossible_time",
        /// Scans of a device that have not arrived.
        DeviceSequenceGap => "device_sequence_gap",
        /// Two different scans under one scan id, or one device number.
        ConflictingDuplicate => "conflicting_duplicate",
        /// A trip never packed, or a document never registered.
        UnknownId => "unknown_id",
        /// A scan made by someone who may not make it (a clerk's step by a courier or back).
        ScanNotAllowed => "scan_not_allowed",
    }
}

named_enum! {
    /// An anomaly's life: open → explained → closed (with a reason).
    pub enum AnomalyState ("an anomaly state") {
        Open => "open",
        Explained => "explained",
        Closed => "closed",
    }
}

named_enum! {
    /// What a where-is location is about.
    pub enum ObjectKind ("an object kind") {
        Document => "document",
        Box => "box",
    }
}

/// The id the system gives the `seq`-th paper file registered for the case with receipt number
/// `case_number` (from 1): `<case number>-D01`, `-D02`, … (three digits from the hundredth on),
/// e.g. `441424100201-20261127-0001-D01`.
///
/// Why this form: the receipt number (`<origin node>-<YYYYMMDD>-<daily sequence>`) is unique in
/// the county, short and printed on the applicant's receipt, so the label of every paper reads as
/// belonging to that receipt, no two cases can produce the same id, and the id follows from the
/// case and the order of registration alone (deterministic: a replay or a demo makes the same
/// ids). The case id (32 hex digits) would be as unique but is not what a clerk reads.
pub fn document_id(case_number: &str, seq: u32) -> String {
    format!("{case_number}-D{seq:02}")
}

/// The sequence of `document_id` among the ids [`document_id`] makes for `case_number`, or `None`
/// for an id of another form (typed by hand before ids were assigned, or another case's).
pub fn document_seq(case_number: &str, document_id: &str) -> Option<u32> {
    let digits = document_id.strip_prefix(case_number)?.strip_prefix("-D")?;
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// A paper file registered at intake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentInfo {
    /// The printed id on the document's label (what its QR code holds).
    pub document_id: String,
    /// The case it belongs to.
    pub case_id: String,
    /// `None` when the registering device did not say.
    pub kind: Option<DocumentKind>,
    pub pages: u32,
    /// What it is, e.g. "户口簿原件".
    pub title: String,
}

/// One scan as made on a device. The device fields identify it for good; the rest depend on the
/// step (see [`Step`]); a field a step does not use is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Made on the device, unique for ever; the same scan uploaded twice carries the same id.
    pub scan_id: String,
    pub device_id: String,
    /// Dense per device, from 1.
    pub device_seq: u64,
    /// When the scan happened by the device's clock (Unix ms): histories are ordered by it.
    pub scanned_unix_ms: i64,
    /// Who scanned (the principal of the scanner's certificate).
    pub principal: String,
    pub step: Step,
    pub box_id: String,
    pub trip_id: String,
    /// The trip's two ends (division codes).
    pub origin: String,
    pub destination: String,
    /// PACK: the manifest; UNPACK: the documents found.
    pub document_ids: Vec<String>,
    /// SEAL: the seal applied; DESTINATION_ACCEPT: the seal read on arrival.
    pub seal_number: String,
    /// DESTINATION_ACCEPT: the seal was found intact.
    pub seal_intact: bool,
    /// RELEASE_*: the party the box is handed to.
    pub counterparty: String,
    /// Where the scan was made: a division code, or a free description on the road.
    pub place: String,
    /// REGISTER_DOCUMENT: the document.
    pub document: Option<DocumentInfo>,
    /// REGISTER_BOX: the label text.
    pub box_label: String,
    /// ERROR_DECLARATION: the scan that no longer counts.
    pub corrects_scan_id: String,
    /// VOID_DEPARTURE and ERROR_DECLARATION: why.
    pub reason: String,
}

impl Scan {
    /// A scan of `step` with its device fields and everything else empty.
    pub fn new(
        scan_id: impl Into<String>,
        device_id: impl Into<String>,
        device_seq: u64,
        scanned_unix_ms: i64,
        principal: impl Into<String>,
        step: Step,
    ) -> Self {
        Scan {
            scan_id: scan_id.into(),
            device_id: device_id.into(),
            device_seq,
            scanned_unix_ms,
            principal: principal.into(),
            step,
            box_id: String::new(),
            trip_id: String::new(),
            origin: String::new(),
            destination: String::new(),
            document_ids: Vec::new(),
            seal_number: String::new(),
            seal_intact: false,
            counterparty: String::new(),
            place: String::new(),
            document: None,
            box_label: String::new(),
            corrects_scan_id: String::new(),
            reason: String::new(),
        }
    }
}

/// A break in the chain of custody, as listed, with the latest note on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Stable across nodes: `<kind>/<subject>`.
    pub key: String,
    pub kind: AnomalyKind,
    pub state: AnomalyState,
    /// A sentence a clerk can act on.
    pub detail: String,
    pub box_id: String,
    pub trip_id: String,
    pub document_id: String,
    /// The township concerned (whose clerks must explain it).
    pub township: String,
    pub detected_unix_ms: i64,
    pub explanation: String,
    pub close_reason: String,
    pub noted_by: String,
    pub scan_id: String,
}

/// A note that moves an anomaly along (explained or closed), as its event records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyNote {
    pub key: String,
    pub to: AnomalyState,
    /// The explanation, or the reason it is closed.
    pub text: String,
    /// Who wrote it (`operator:<node>:<name>`).
    pub by: String,
}

/// What a where-is asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhereTarget {
    Document(String),
    Box(String),
    /// Every document registered for the case.
    Case(String),
}

/// Where one object is now, by this node's knowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub object_kind: ObjectKind,
    pub object_id: String,
    /// The box it is in, if any, and that box's trip.
    pub container: String,
    pub trip_id: String,
    /// Who holds it: `node:<code>` or a courier principal.
    pub custodian: String,
    /// Released to this party, not yet accepted.
    pub pending_custodian: String,
    /// A division code, or `in transit` with the last place seen.
    pub place: String,
    /// Event time of the scan that put it there.
    pub since_unix_ms: i64,
    /// The object itself was scanned there (not inferred from its box's scans).
    pub verified: bool,
    /// The case it belongs to (documents).
    pub case_id: String,
}

impl Location {
    /// Nothing known yet about `object_id`'s whereabouts.
    pub fn unknown(object_kind: ObjectKind, object_id: &str) -> Self {
        Location {
            object_kind,
            object_id: object_id.to_owned(),
            container: String::new(),
            trip_id: String::new(),
            custodian: String::new(),
            pending_custodian: String::new(),
            place: String::new(),
            since_unix_ms: 0,
            verified: false,
            case_id: String::new(),
        }
    }
}

/// One link of a custody chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyLink {
    pub scan_id: String,
    pub step: Step,
    /// The CBV words the step maps to (the same the EPCIS export uses).
    pub biz_step: &'static str,
    pub disposition: Option<&'static str>,
    pub scanned_unix_ms: i64,
    pub principal: String,
    pub place: String,
    pub custodian_after: String,
    /// The scan was about the object's box rather than the object itself.
    pub via_container: bool,
    /// Voided or corrected: stays in the chain, marked, and no longer counts.
    pub voided: bool,
    pub recorded_at: String,
}

/// Where one object is, and how it got there (the chain oldest first by event time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whereabouts {
    pub location: Location,
    pub chain: Vec<CustodyLink>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_read_as_the_receipt_number_and_the_paper_sequence() {
        let number = "441424100201-20261127-0001";
        assert_eq!(document_id(number, 1), "441424100201-20261127-0001-D01");
        assert_eq!(document_id(number, 12), "441424100201-20261127-0001-D12");
        assert_eq!(document_id(number, 100), "441424100201-20261127-0001-D100");
        for seq in [1, 9, 99, 100, 1234] {
            assert_eq!(document_seq(number, &document_id(number, seq)), Some(seq));
        }
        // Another case's ids, hand-typed ids and near misses are not this case's.
        assert_eq!(
            document_seq(number, &document_id("441424100201-20261127-0002", 1)),
            None
        );
        assert_eq!(document_seq("441424100201-20261127-000", &document_id(number, 1)), None);
        for other in [
            "D-0001",
            "441424100201-20261127-0001-D1",
            "441424100201-20261127-0001-D00",
            "441424100201-20261127-0001-Dx1",
        ] {
            assert_eq!(document_seq(number, other), None, "{other}");
        }
    }

    fn names_round_trip<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + FromStr<Err = UnknownName>,
    {
        let mut seen = std::collections::BTreeSet::new();
        for value in all {
            let name = value.to_string();
            assert!(seen.insert(name.clone()), "{name} named twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name} is not snake_case"
            );
            assert_eq!(name.parse::<T>().unwrap(), *value);
        }
        assert!("".parse::<T>().is_err());
        assert!("no_such_name".parse::<T>().is_err());
    }

    #[test]
    fn names_and_parsing_are_inverse() {
        names_round_trip(Step::ALL);
        names_round_trip(DocumentKind::ALL);
        names_round_trip(TripState::ALL);
        names_round_trip(AnomalyKind::ALL);
        names_round_trip(AnomalyState::ALL);
        names_round_trip(ObjectKind::ALL);
    }

    #[test]
    fn names_are_the_ones_in_use() {
        // These strings replicate (anomaly keys) and are printed and exported: they never change.
        let kinds: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "unacknowledged_handover",
                "sealed_not_picked_up",
                "overdue_in_transit",
                "misroute",
                "seal_broken",
                "manifest_shortage",
                "manifest_overage",
                "document_in_two_containers",
                "packed_not_empty",
                "impossible_time",
                "device_sequence_gap",
                "conflicting_duplicate",
                "unknown_id",
                "scan_not_allowed",
            ]
        );
        let states: Vec<&str> = TripState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            states,
            [
                "not_packed",
                "packed",
                "sealed",
                "released",
                "in_transit",
                "arrived",
                "received",
                "unpacked",
                "voided",
            ]
        );
        assert_eq!(Step::CourierAccept.as_str(), "courier_accept");
        assert_eq!(DocumentKind::ResultCertificate.as_str(), "result_certificate");
        assert_eq!(
            "seal-broken".parse::<AnomalyKind>().unwrap_err().to_string(),
            "\"seal-broken\" is not an anomaly kind"
        );
    }
}
