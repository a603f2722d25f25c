//! Material boxes and the custody of paper files: the scan model (GS1 EPCIS 2.0 steps and
//! dispositions), where every box and document is, and the anomalies in the chain.
//!
//! - [`trip`]: one trip of one box folded from its scans — custody (moving only when the
//!   receiver accepts), place, and the breaks one trip shows on its own;
//! - [`epcis`]: box and document scans as an EPCIS 2.0 JSON-LD query document.
//!
//! Storing scans, the cross-trip checks (a document in two boxes, a box packed while on a trip,
//! device sequence gaps, conflicting copies) and the where-is answers are the store's
//! (`store/custody.rs`).

pub mod epcis;
pub mod trip;
