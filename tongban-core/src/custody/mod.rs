//! Material boxes and the custody of paper files: the scan model (GS1 EPCIS 2.0 steps and
//! dispositions), where every box and document is, and the anomalies in the chain.
//!
//! - [`epcis`]: box and document scans as an EPCIS 2.0 JSON-LD query document.

pub mod epcis;
