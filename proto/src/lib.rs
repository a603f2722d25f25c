//! The `tongban.v1` wire contract: protobuf messages and tonic client/server stubs, generated at
//! build time from `proto/tongban/v1/*.proto`. This crate does no I/O; domain types live in
//! `tongban-domains` and convert to and from these at the API boundary.

/// Generated code for package `tongban.v1`.
#[allow(clippy::doc_lazy_continuation, clippy::large_enum_variant, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tongban.v1");
}

/// Encoded `FileDescriptorSet` of the contract, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tongban_descriptor");

impl v1::event_body::Body {
    /// The `EventKind` that names this body in the envelope. The two enums mirror each other by
    /// design (`events.proto`), so the envelope's kind can be read without decoding the body;
    /// this is the one place that pairs them.
    pub fn kind(&self) -> v1::EventKind {
        use v1::{EventKind, event_body::Body};
        match self {
            Body::CatalogueVersion(_) => EventKind::CatalogueVersion,
            Body::Probe(_) => EventKind::Probe,
            Body::CaseOpened(_) => EventKind::CaseOpened,
            Body::CaseStep(_) => EventKind::CaseStep,
            Body::RectificationResponse(_) => EventKind::RectificationResponse,
            Body::CalendarPublished(_) => EventKind::CalendarPublished,
            Body::CustodyScan(_) => EventKind::CustodyScan,
            Body::AnomalyNote(_) => EventKind::AnomalyNote,
            Body::RosterChange(_) => EventKind::RosterChange,
            Body::EntrustmentLetter(_) => EventKind::EntrustmentLetter,
        }
    }
}
