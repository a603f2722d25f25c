//! EPCIS 2.0 JSON-LD export of custody scans (being written).
