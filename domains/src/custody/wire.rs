//! The boundary between the custody domain and the `tongban.v1` wire contract
//! (`custody.proto`): steps, document kinds and anomaly states to and from their enum numbers;
//! scans to and from `Scan` messages and their stored bytes; the bodies of the two custody events
//! (`CustodyScan`, `AnomalyNote`); and what the `Custody` service answers (whereabouts, trip
//! summaries, anomalies, upload outcomes).
//!
//! The only custody code that knows protobuf. Decoding refuses what the domain cannot represent
//! (an unknown or unspecified step, an unknown document kind or anomaly state, an unknown anomaly
//! kind or trip state name) with a [`WireError`] that says so in a sentence; encoding never fails.
//! Enum numbers are also what the custody tables store (`step`, `kind`, `state` columns), so the
//! projection writes and reads them through here too.

use prost::Message;
use tongban_proto::v1::{self as pb, event_body::Body, scan_outcome};

use super::model::{
    Anomaly, AnomalyKind, AnomalyNote, AnomalyState, CustodyLink, DocumentInfo, DocumentKind, Location, Scan, Step,
    TripState, WhereTarget, Whereabouts,
};
use super::trip::{RecordedScan, TripView};
use crate::custody::projection::ScanResult;

/// Why a wire message or a stored value does not convert to a custody value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An enum number the contract does not define, or one that means nothing here (an
    /// unspecified step).
    #[error("{field}: {value} is not {what}")]
    UnknownNumber {
        field: &'static str,
        value: i32,
        what: &'static str,
    },
    /// A name (an anomaly kind, a trip state) the domain does not know.
    #[error("{field}: {name:?} is not {what}")]
    UnknownName {
        field: &'static str,
        name: String,
        what: &'static str,
    },
    /// A `CustodyScan` event that carries no scan.
    #[error("custody record without a scan")]
    NoScan,
    /// A `CustodyScan` event whose scan does not convert.
    #[error("scan {scan_id:?} is malformed: {source}")]
    MalformedScan {
        scan_id: String,
        #[source]
        source: Box<WireError>,
    },
    /// An `AnomalyNote` that neither explains nor closes.
    #[error("anomaly note on {key} must explain or close it with a text")]
    NoteState { key: String, value: i32 },
    /// Stored bytes that are not a `Scan` message.
    #[error("not a Scan message: {0}")]
    Undecodable(String),
    /// `WhereIs` with no target.
    #[error("say what to look for: a document_id, a box_id or a case_id")]
    NoTarget,
}

impl Step {
    /// Decodes the `i32` a prost message (or the `step` column) carries; `field` names it in the
    /// error. Unspecified is refused: every scan records a step.
    pub fn from_wire(value: i32, field: &'static str) -> Result<Self, WireError> {
        use pb::CustodyStep as W;
        let unknown = || WireError::UnknownNumber {
            field,
            value,
            what: "a custody step",
        };
        Ok(match W::try_from(value).map_err(|_| unknown())? {
            W::Unspecified => return Err(unknown()),
            W::RegisterDocument => Step::RegisterDocument,
            W::RegisterBox => Step::RegisterBox,
            W::Pack => Step::Pack,
            W::Seal => Step::Seal,
            W::ReleaseToCourier => Step::ReleaseToCourier,
            W::CourierAccept => Step::CourierAccept,
            W::EnRoute => Step::EnRoute,
            W::ReleaseAtDestination => Step::ReleaseAtDestination,
            W::DestinationAccept => Step::DestinationAccept,
            W::Unpack => Step::Unpack,
            W::VoidDeparture => Step::VoidDeparture,
            W::ErrorDeclaration => Step::ErrorDeclaration,
        })
    }

    /// The step's name in the `tongban.v1` contract (`CUSTODY_STEP_COURIER_ACCEPT`), as the
    /// EPCIS export's `tongban:step` and the anomaly details print it.
    pub fn contract_name(self) -> &'static str {
        self.to_pb().as_str_name()
    }

    /// The contract's enum value.
    pub fn to_pb(self) -> pb::CustodyStep {
        use pb::CustodyStep as W;
        match self {
            Step::RegisterDocument => W::RegisterDocument,
            Step::RegisterBox => W::RegisterBox,
            Step::Pack => W::Pack,
            Step::Seal => W::Seal,
            Step::ReleaseToCourier => W::ReleaseToCourier,
            Step::CourierAccept => W::CourierAccept,
            Step::EnRoute => W::EnRoute,
            Step::ReleaseAtDestination => W::ReleaseAtDestination,
            Step::DestinationAccept => W::DestinationAccept,
            Step::Unpack => W::Unpack,
            Step::VoidDeparture => W::VoidDeparture,
            Step::ErrorDeclaration => W::ErrorDeclaration,
        }
    }

    /// The `i32` a prost message (or the `step` column) carries for this step.
    pub fn to_wire(self) -> i32 {
        self.to_pb() as i32
    }
}

impl DocumentKind {
    /// Decodes a document kind; unspecified (0) is `None`, the device did not say.
    pub fn from_wire(value: i32, field: &'static str) -> Result<Option<Self>, WireError> {
        use pb::DocumentKind as W;
        match W::try_from(value) {
            Ok(W::Unspecified) => Ok(None),
            Ok(W::Original) => Ok(Some(DocumentKind::Original)),
            Ok(W::Copy) => Ok(Some(DocumentKind::Copy)),
            Ok(W::ResultCertificate) => Ok(Some(DocumentKind::ResultCertificate)),
            Err(_) => Err(WireError::UnknownNumber {
                field,
                value,
                what: "a document kind",
            }),
        }
    }

    /// The `i32` a prost message (or the `kind` column) carries; 0 for `None`.
    pub fn to_wire(kind: Option<Self>) -> i32 {
        use pb::DocumentKind as W;
        let w = match kind {
            None => W::Unspecified,
            Some(DocumentKind::Original) => W::Original,
            Some(DocumentKind::Copy) => W::Copy,
            Some(DocumentKind::ResultCertificate) => W::ResultCertificate,
        };
        w as i32
    }
}

impl AnomalyState {
    /// Decodes an anomaly state; unspecified (0) is `None` (in a listing request: every anomaly
    /// not closed).
    pub fn from_wire(value: i32, field: &'static str) -> Result<Option<Self>, WireError> {
        use pb::AnomalyState as W;
        match W::try_from(value) {
            Ok(W::Unspecified) => Ok(None),
            Ok(W::Open) => Ok(Some(AnomalyState::Open)),
            Ok(W::Explained) => Ok(Some(AnomalyState::Explained)),
            Ok(W::Closed) => Ok(Some(AnomalyState::Closed)),
            Err(_) => Err(WireError::UnknownNumber {
                field,
                value,
                what: "an anomaly state",
            }),
        }
    }

    /// The `i32` a prost message (or the notes' `state` column) carries.
    pub fn to_wire(self) -> i32 {
        use pb::AnomalyState as W;
        let w = match self {
            AnomalyState::Open => W::Open,
            AnomalyState::Explained => W::Explained,
            AnomalyState::Closed => W::Closed,
        };
        w as i32
    }
}

/// A trip state as `TripSummary.state` spells it: its name, and empty for a trip nothing has
/// put in a state (the contract lists no name for that).
pub fn trip_state_to_wire(state: TripState) -> &'static str {
    match state {
        TripState::NotPacked => "",
        other => other.as_str(),
    }
}

/// The trip state a `TripSummary.state` names.
pub fn trip_state_from_wire(name: &str) -> Result<TripState, WireError> {
    if name.is_empty() {
        return Ok(TripState::NotPacked);
    }
    name.parse().map_err(|_| WireError::UnknownName {
        field: "state",
        name: name.to_owned(),
        what: "a trip state",
    })
}

impl From<&DocumentInfo> for pb::DocumentInfo {
    fn from(d: &DocumentInfo) -> Self {
        pb::DocumentInfo {
            document_id: d.document_id.clone(),
            case_id: d.case_id.clone(),
            kind: DocumentKind::to_wire(d.kind),
            pages: d.pages,
            title: d.title.clone(),
        }
    }
}

impl TryFrom<pb::DocumentInfo> for DocumentInfo {
    type Error = WireError;
    fn try_from(d: pb::DocumentInfo) -> Result<Self, WireError> {
        Ok(DocumentInfo {
            kind: DocumentKind::from_wire(d.kind, "document.kind")?,
            document_id: d.document_id,
            case_id: d.case_id,
            pages: d.pages,
            title: d.title,
        })
    }
}

impl From<&Scan> for pb::Scan {
    fn from(s: &Scan) -> Self {
        pb::Scan {
            scan_id: s.scan_id.clone(),
            device_id: s.device_id.clone(),
            device_seq: s.device_seq,
            scanned_unix_ms: s.scanned_unix_ms,
            principal: s.principal.clone(),
            step: s.step.to_wire(),
            box_id: s.box_id.clone(),
            trip_id: s.trip_id.clone(),
            origin: s.origin.clone(),
            destination: s.destination.clone(),
            document_ids: s.document_ids.clone(),
            seal_number: s.seal_number.clone(),
            seal_intact: s.seal_intact,
            counterparty: s.counterparty.clone(),
            place: s.place.clone(),
            document: s.document.as_ref().map(pb::DocumentInfo::from),
            box_label: s.box_label.clone(),
            corrects_scan_id: s.corrects_scan_id.clone(),
            reason: s.reason.clone(),
        }
    }
}

/// Lossless for every scan it accepts: encoding the result gives the same message back, so
/// copies of one scan compare equal by their stored bytes.
impl TryFrom<pb::Scan> for Scan {
    type Error = WireError;
    fn try_from(s: pb::Scan) -> Result<Self, WireError> {
        Ok(Scan {
            step: Step::from_wire(s.step, "step")?,
            document: s.document.map(DocumentInfo::try_from).transpose()?,
            scan_id: s.scan_id,
            device_id: s.device_id,
            device_seq: s.device_seq,
            scanned_unix_ms: s.scanned_unix_ms,
            principal: s.principal,
            box_id: s.box_id,
            trip_id: s.trip_id,
            origin: s.origin,
            destination: s.destination,
            document_ids: s.document_ids,
            seal_number: s.seal_number,
            seal_intact: s.seal_intact,
            counterparty: s.counterparty,
            place: s.place,
            box_label: s.box_label,
            corrects_scan_id: s.corrects_scan_id,
            reason: s.reason,
        })
    }
}

/// A scan as stored and replicated: the bytes of its `Scan` message.
pub fn encode_scan(scan: &Scan) -> Vec<u8> {
    pb::Scan::from(scan).encode_to_vec()
}

/// A stored scan.
pub fn decode_scan(bytes: &[u8]) -> Result<Scan, WireError> {
    let scan = pb::Scan::decode(bytes).map_err(|e| WireError::Undecodable(e.to_string()))?;
    Scan::try_from(scan)
}

/// The `CustodyScan` event body recording `scan` at node `recorded_at`, received then.
pub fn scan_body(scan: &Scan, recorded_at: &str, received_unix_ms: i64) -> Body {
    Body::CustodyScan(pb::CustodyScan {
        scan: Some(scan.into()),
        recorded_at: recorded_at.to_owned(),
        received_unix_ms,
    })
}

/// The scan a `CustodyScan` event body records, with where and when it was recorded.
pub fn recorded_scan_from_body(body: &pb::CustodyScan) -> Result<RecordedScan, WireError> {
    let scan = body.scan.clone().ok_or(WireError::NoScan)?;
    let scan_id = scan.scan_id.clone();
    let scan = Scan::try_from(scan).map_err(|e| WireError::MalformedScan {
        scan_id,
        source: Box::new(e),
    })?;
    Ok(RecordedScan {
        scan,
        recorded_at: body.recorded_at.clone(),
        recorded_ms: body.received_unix_ms,
    })
}

/// The `AnomalyNote` event body for `note`.
pub fn note_body(note: &AnomalyNote) -> Body {
    Body::AnomalyNote(pb::AnomalyNote {
        anomaly_key: note.key.clone(),
        to_state: note.to.to_wire(),
        text: note.text.clone(),
        by: note.by.clone(),
    })
}

/// The note an `AnomalyNote` event body records. Its state must be one a note moves to
/// (explained or closed).
pub fn note_from_body(body: &pb::AnomalyNote) -> Result<AnomalyNote, WireError> {
    let refused = || WireError::NoteState {
        key: body.anomaly_key.clone(),
        value: body.to_state,
    };
    let to = match AnomalyState::from_wire(body.to_state, "to_state") {
        Ok(Some(to @ (AnomalyState::Explained | AnomalyState::Closed))) => to,
        _ => return Err(refused()),
    };
    Ok(AnomalyNote {
        key: body.anomaly_key.clone(),
        to,
        text: body.text.clone(),
        by: body.by.clone(),
    })
}

/// What a `WhereIs` request asks about.
pub fn where_target_from_wire(target: Option<pb::where_is_request::Target>) -> Result<WhereTarget, WireError> {
    use pb::where_is_request::Target;
    Ok(match target.ok_or(WireError::NoTarget)? {
        Target::DocumentId(id) => WhereTarget::Document(id),
        Target::BoxId(id) => WhereTarget::Box(id),
        Target::CaseId(id) => WhereTarget::Case(id),
    })
}

/// The `WhereIs` target for a domain one.
pub fn where_target_to_wire(target: &WhereTarget) -> pb::where_is_request::Target {
    use pb::where_is_request::Target;
    match target {
        WhereTarget::Document(id) => Target::DocumentId(id.clone()),
        WhereTarget::Box(id) => Target::BoxId(id.clone()),
        WhereTarget::Case(id) => Target::CaseId(id.clone()),
    }
}

impl From<&Location> for pb::Location {
    fn from(l: &Location) -> Self {
        pb::Location {
            object_kind: l.object_kind.as_str().to_owned(),
            object_id: l.object_id.clone(),
            container: l.container.clone(),
            trip_id: l.trip_id.clone(),
            custodian: l.custodian.clone(),
            pending_custodian: l.pending_custodian.clone(),
            place: l.place.clone(),
            since_unix_ms: l.since_unix_ms,
            verified: l.verified,
            case_id: l.case_id.clone(),
        }
    }
}

impl From<&CustodyLink> for pb::CustodyLink {
    fn from(l: &CustodyLink) -> Self {
        pb::CustodyLink {
            scan_id: l.scan_id.clone(),
            step: l.step.to_wire(),
            biz_step: l.biz_step.to_owned(),
            disposition: l.disposition.unwrap_or_default().to_owned(),
            scanned_unix_ms: l.scanned_unix_ms,
            principal: l.principal.clone(),
            place: l.place.clone(),
            custodian_after: l.custodian_after.clone(),
            via_container: l.via_container,
            voided: l.voided,
            recorded_at: l.recorded_at.clone(),
        }
    }
}

impl From<&Whereabouts> for pb::ObjectWhereabouts {
    fn from(w: &Whereabouts) -> Self {
        pb::ObjectWhereabouts {
            location: Some((&w.location).into()),
            chain: w.chain.iter().map(pb::CustodyLink::from).collect(),
        }
    }
}

/// A trip as `BoxHistory` lists it.
pub fn trip_summary(t: &TripView) -> pb::TripSummary {
    pb::TripSummary {
        trip_id: t.trip_id.clone(),
        box_id: t.box_id.clone(),
        origin: t.origin.clone(),
        destination: t.destination.clone(),
        seal_number: t.seal_number.clone(),
        state: trip_state_to_wire(t.state).to_owned(),
        manifest: t.manifest.clone(),
        packed_unix_ms: t.packed_ms,
    }
}

impl From<&Anomaly> for pb::Anomaly {
    fn from(a: &Anomaly) -> Self {
        pb::Anomaly {
            anomaly_key: a.key.clone(),
            kind: a.kind.as_str().to_owned(),
            state: a.state.to_wire(),
            detail: a.detail.clone(),
            box_id: a.box_id.clone(),
            trip_id: a.trip_id.clone(),
            document_id: a.document_id.clone(),
            township: a.township.clone(),
            detected_unix_ms: a.detected_unix_ms,
            explanation: a.explanation.clone(),
            close_reason: a.close_reason.clone(),
            noted_by: a.noted_by.clone(),
            scan_id: a.scan_id.clone(),
        }
    }
}

impl TryFrom<pb::Anomaly> for Anomaly {
    type Error = WireError;
    fn try_from(a: pb::Anomaly) -> Result<Self, WireError> {
        let kind: AnomalyKind = a.kind.parse().map_err(|_| WireError::UnknownName {
            field: "kind",
            name: a.kind.clone(),
            what: "an anomaly kind",
        })?;
        let state = AnomalyState::from_wire(a.state, "state")?.ok_or(WireError::UnknownNumber {
            field: "state",
            value: a.state,
            what: "an anomaly state",
        })?;
        Ok(Anomaly {
            key: a.anomaly_key,
            kind,
            state,
            detail: a.detail,
            box_id: a.box_id,
            trip_id: a.trip_id,
            document_id: a.document_id,
            township: a.township,
            detected_unix_ms: a.detected_unix_ms,
            explanation: a.explanation,
            close_reason: a.close_reason,
            noted_by: a.noted_by,
            scan_id: a.scan_id,
        })
    }
}

/// The reply to an upload: each scan's outcome in order, and the totals.
pub fn upload_reply(outcomes: Vec<(String, ScanResult)>) -> pb::UploadScansResponse {
    let mut reply = pb::UploadScansResponse::default();
    for (scan_id, result) in outcomes {
        let (result, message) = match result {
            ScanResult::Recorded => {
                reply.recorded += 1;
                (scan_outcome::Result::Recorded, String::new())
            }
            ScanResult::Conflicting(message) => {
                reply.recorded += 1;
                (scan_outcome::Result::Recorded, message)
            }
            ScanResult::Duplicate => {
                reply.duplicates += 1;
                (scan_outcome::Result::Duplicate, "already recorded".to_owned())
            }
            ScanResult::Refused(reason) => {
                reply.refused += 1;
                (scan_outcome::Result::Refused, reason)
            }
        };
        reply.outcomes.push(pb::ScanOutcome {
            scan_id,
            result: result as i32,
            message,
        });
    }
    reply
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn full_scan(step: Step) -> Scan {
        Scan {
            box_id: "BOX-7".into(),
            trip_id: "T-1".into(),
            origin: "441424".into(),
            destination: "441424100".into(),
            document_ids: vec!["D-1".into(), "D-2".into()],
            seal_number: "S-9".into(),
            seal_intact: true,
            counterparty: "courier:441424:pda".into(),
            place: "岐岭".into(),
            document: Some(DocumentInfo {
                document_id: "D-1".into(),
                case_id: "441424100201-0123".into(),
                kind: Some(DocumentKind::Copy),
                pages: 2,
                title: "身份证复印件".into(),
            }),
            box_label: "材料流转箱".into(),
            corrects_scan_id: "s-0".into(),
            reason: "typo".into(),
            ..Scan::new("s-1", "pda", 3, 1_790_000_000_000, "courier:441424:pda", step)
        }
    }

    #[test]
    fn every_step_round_trips_and_unspecified_or_unknown_is_refused() {
        let mut numbers = std::collections::BTreeSet::new();
        for &step in Step::ALL {
            let wire = step.to_wire();
            assert!(numbers.insert(wire), "{step:?} shares number {wire}");
            assert_eq!(Step::from_wire(wire, "step").unwrap(), step);
        }
        // Every step of the contract has a domain step.
        let contract: Vec<i32> = (1..64).filter(|v| pb::CustodyStep::try_from(*v).is_ok()).collect();
        assert_eq!(contract, numbers.into_iter().collect::<Vec<_>>());
        assert_eq!(
            Step::from_wire(0, "step").unwrap_err().to_string(),
            "step: 0 is not a custody step"
        );
        assert_eq!(
            Step::from_wire(42, "step").unwrap_err().to_string(),
            "step: 42 is not a custody step"
        );
    }

    #[test]
    fn every_document_kind_and_anomaly_state_round_trips() {
        for kind in DocumentKind::ALL.iter().copied().map(Some).chain([None]) {
            let wire = DocumentKind::to_wire(kind);
            assert_eq!(DocumentKind::from_wire(wire, "kind").unwrap(), kind);
        }
        assert!(DocumentKind::from_wire(9, "document.kind").is_err());
        for &state in AnomalyState::ALL {
            assert_eq!(AnomalyState::from_wire(state.to_wire(), "state").unwrap(), Some(state));
            assert_eq!(
                pb::AnomalyState::try_from(state.to_wire()).unwrap().as_str_name(),
                format!("ANOMALY_STATE_{}", state.as_str().to_uppercase())
            );
        }
        assert_eq!(AnomalyState::from_wire(0, "state").unwrap(), None);
        assert_eq!(
            AnomalyState::from_wire(7, "to_state").unwrap_err().to_string(),
            "to_state: 7 is not an anomaly state"
        );
    }

    #[test]
    fn every_trip_state_round_trips() {
        for &state in TripState::ALL {
            assert_eq!(trip_state_from_wire(trip_state_to_wire(state)).unwrap(), state);
        }
        assert_eq!(trip_state_to_wire(TripState::NotPacked), "");
        assert_eq!(trip_state_to_wire(TripState::InTransit), "in_transit");
        assert!(trip_state_from_wire("lost").is_err());
    }

    #[test]
    fn scans_of_every_step_round_trip_through_messages_and_bytes() {
        for &step in Step::ALL {
            let scan = full_scan(step);
            let wire = pb::Scan::from(&scan);
            assert_eq!(wire.step, step.to_wire());
            assert_eq!(Scan::try_from(wire.clone()).unwrap(), scan);
            // Stored bytes are the message's: copies compare equal byte for byte.
            assert_eq!(encode_scan(&scan), wire.encode_to_vec());
            assert_eq!(decode_scan(&encode_scan(&scan)).unwrap(), scan);
        }
        let bare = Scan::new("s-2", "desk", 1, 5, "operator:441424:wang", Step::RegisterBox);
        assert_eq!(decode_scan(&encode_scan(&bare)).unwrap(), bare);
        let unspecified_kind = Scan {
            document: Some(DocumentInfo::default()),
            ..bare.clone()
        };
        assert_eq!(decode_scan(&encode_scan(&unspecified_kind)).unwrap(), unspecified_kind);
        assert!(decode_scan(b"\xff\xff").is_err());
    }

    #[test]
    fn a_bad_step_in_an_event_names_the_scan() {
        let wire = pb::Scan {
            step: 42,
            ..pb::Scan::from(&full_scan(Step::Seal))
        };
        let body = pb::CustodyScan {
            scan: Some(wire),
            recorded_at: "441424".into(),
            received_unix_ms: 9,
        };
        assert_eq!(
            recorded_scan_from_body(&body).unwrap_err().to_string(),
            "scan \"s-1\" is malformed: step: 42 is not a custody step"
        );
        let empty = pb::CustodyScan::default();
        assert_eq!(recorded_scan_from_body(&empty).unwrap_err(), WireError::NoScan);
        let Body::CustodyScan(body) = scan_body(&full_scan(Step::Pack), "441424", 9) else {
            panic!("not a scan body");
        };
        let recorded = recorded_scan_from_body(&body).unwrap();
        assert_eq!(
            (recorded.scan, recorded.recorded_at, recorded.recorded_ms),
            (full_scan(Step::Pack), "441424".to_owned(), 9)
        );
    }

    #[test]
    fn notes_round_trip_and_only_explain_or_close() {
        for to in [AnomalyState::Explained, AnomalyState::Closed] {
            let note = AnomalyNote {
                key: "seal_broken/trip/T-1".into(),
                to,
                text: "贴错封条".into(),
                by: "operator:441424100:li".into(),
            };
            let Body::AnomalyNote(body) = note_body(&note) else {
                panic!("not a note body");
            };
            assert_eq!(note_from_body(&body).unwrap(), note);
        }
        for to_state in [0, AnomalyState::Open.to_wire(), 9] {
            let body = pb::AnomalyNote {
                anomaly_key: "misroute/trip/T-1".into(),
                to_state,
                ..Default::default()
            };
            assert_eq!(
                note_from_body(&body).unwrap_err().to_string(),
                "anomaly note on misroute/trip/T-1 must explain or close it with a text"
            );
        }
    }

    #[test]
    fn every_anomaly_kind_and_state_round_trips() {
        for &kind in AnomalyKind::ALL {
            for &state in AnomalyState::ALL {
                let anomaly = Anomaly {
                    key: format!("{kind}/trip/T-1"),
                    kind,
                    state,
                    detail: "box BOX-7 …".into(),
                    box_id: "BOX-7".into(),
                    trip_id: "T-1".into(),
                    document_id: "D-1".into(),
                    township: "441424100".into(),
                    detected_unix_ms: 12,
                    explanation: "说明".into(),
                    close_reason: "关闭".into(),
                    noted_by: "operator:441424:admin".into(),
                    scan_id: "s-1".into(),
                };
                let wire = pb::Anomaly::from(&anomaly);
                assert_eq!(wire.kind, kind.as_str());
                assert_eq!(Anomaly::try_from(wire).unwrap(), anomaly);
            }
        }
        let unknown = pb::Anomaly {
            kind: "lost_in_the_post".into(),
            state: AnomalyState::Open.to_wire(),
            ..Default::default()
        };
        assert_eq!(
            Anomaly::try_from(unknown).unwrap_err().to_string(),
            "kind: \"lost_in_the_post\" is not an anomaly kind"
        );
    }

    #[test]
    fn where_targets_round_trip() {
        for target in [
            WhereTarget::Document("D-1".into()),
            WhereTarget::Box("BOX-7".into()),
            WhereTarget::Case("C-1".into()),
        ] {
            assert_eq!(
                where_target_from_wire(Some(where_target_to_wire(&target))).unwrap(),
                target
            );
        }
        assert_eq!(where_target_from_wire(None).unwrap_err(), WireError::NoTarget);
    }

    #[test]
    fn upload_outcomes_are_counted() {
        let reply = upload_reply(vec![
            ("a".into(), ScanResult::Recorded),
            ("b".into(), ScanResult::Conflicting("differs".into())),
            ("c".into(), ScanResult::Duplicate),
            ("d".into(), ScanResult::Refused("no".into())),
        ]);
        assert_eq!((reply.recorded, reply.duplicates, reply.refused), (2, 1, 1));
        assert_eq!(reply.outcomes[1].message, "differs");
        assert_eq!(reply.outcomes[3].result, scan_outcome::Result::Refused as i32);
    }
}
