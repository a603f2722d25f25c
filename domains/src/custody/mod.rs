//! Material boxes and the custody of paper files: the scan model (GS1 EPCIS 2.0 steps and
//! dispositions), where every box and document is, and the anomalies in the chain — as plain Rust
//! types and rules, with protobuf only at the boundary, in [`wire`].
//!
//! - [`model`]: the vocabulary as plain Rust — steps, scans, trip states, anomaly kinds and
//!   states, locations and custody chains — each enum with its stable snake_case names;
//! - [`wire`]: the conversions to and from the `tongban.v1` contract (`custody.proto`), the only
//!   part that knows protobuf;
//! - [`trip`]: one trip of one box folded from its scans — custody (moving only when the
//!   receiver accepts), place, and the breaks one trip shows on its own;
//! - [`epcis`]: box and document scans as an EPCIS 2.0 JSON-LD query document;
//! - [`labels`]: box, trip and document labels as millimetre SVG with QR codes;
//! - [`projection`]: storing scans once per scan id, the cross-trip checks (a document in two
//!   boxes, a box packed while on a trip, device sequence gaps, conflicting copies), where-is
//!   and anomalies;
//! - [`service`]: the `Custody` gRPC service.

pub mod epcis;
pub mod labels;
pub mod model;
pub mod projection;
pub mod service;
pub mod trip;
pub mod wire;

pub use model::{
    Anomaly, AnomalyKind, AnomalyNote, AnomalyState, CustodyLink, DocumentInfo, DocumentKind, Location, ObjectKind,
    Scan, Step, TripState, UnknownName, WhereTarget, Whereabouts, document_id, document_seq,
};
pub use wire::WireError;
