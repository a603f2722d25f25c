//! Custody scans as one GS1 EPCIS 2.0 JSON-LD document (an `EPCISQueryDocument`), for the postal
//! and provincial systems. [`query_document`] is pure: the caller (the `Custody.ExportEpcis`
//! handler) picks the scans and says which of them were taken back; this module only writes them.
//!
//! # Mapping
//!
//! Each scan becomes one event; `bizStep`, `disposition` and `action` use the CBV 2.0 bare words
//! that the EPCIS 2.0 JSON-LD context defines.
//!
//! | [`Step`]                 | event              | action  | `bizStep`       | `disposition`        |
//! | ------------------------ | ------------------ | ------- | --------------- | -------------------- |
//! | `REGISTER_DOCUMENT`      | `ObjectEvent`      | ADD     | `commissioning` | `active`             |
//! | `REGISTER_BOX`           | `ObjectEvent`      | ADD     | `commissioning` | `active`             |
//! | `PACK`                   | `AggregationEvent` | ADD     | `packing`       | `container_open`     |
//! | `SEAL`                   | `ObjectEvent`      | OBSERVE | `packing`       | `container_closed`   |
//! | `RELEASE_TO_COURIER`     | `ObjectEvent`      | OBSERVE | `shipping`      | `in_transit`         |
//! | `COURIER_ACCEPT`         | `ObjectEvent`      | OBSERVE | `accepting`     | `in_transit`         |
//! | `EN_ROUTE`               | `ObjectEvent`      | OBSERVE | `transporting`  | `in_transit`         |
//! | `RELEASE_AT_DESTINATION` | `ObjectEvent`      | OBSERVE | `arriving`      | `in_progress`        |
//! | `DESTINATION_ACCEPT`     | `ObjectEvent`      | OBSERVE | `receiving`     | `container_closed` ¹ |
//! | `UNPACK`                 | `AggregationEvent` | DELETE  | `unpacking`     | `container_open`     |
//! | `VOID_DEPARTURE`         | `ObjectEvent`      | OBSERVE | `void_shipping` | — ²                  |
//! | `ERROR_DECLARATION`      | — ³                |         | (`other`)       | —                    |
//!
//! ¹ `non_conformant` when the receiving clerk found the tamper seal broken (the receipt is an
//! inspection). ² No disposition: the void changes nothing about the box by itself; the shipping
//! scans it cancels carry an error declaration (below), so the box's last standing disposition
//! applies again. ³ An error declaration is not an event of its own in EPCIS: the scan it
//! corrects is exported as it was, with its own `bizStep`, plus an `errorDeclaration`.
//! [`biz_step`] returns `other` for it only so that every step has a CBV word; a custody chain
//! that shows an error declaration should show the corrected scan's step ([`biz_step_of`]).
//!
//! A *retracted* scan (one that an error declaration or a void took back) is exported as it was,
//! plus `"errorDeclaration": {"declarationTime", "reason"}`: reason `incorrect_data` when an
//! error declaration among the exported scans names it; else `did_not_occur` when it is a
//! departure scan (release, courier acceptance, en route, release at destination) made no later
//! than a void of its trip among the exported scans (packing and sealing did happen, whatever
//! became of the departure); else `incorrect_data`. The declaration time is the event time of
//! that error declaration or void, or, when neither is exported, the document's creation time
//! (the latest moment we know the scan had been taken back). So export, with the scans, the error
//! declarations and voids that retract them: an error declaration carries no box or trip of its
//! own, and a filter on those would miss it.
//!
//! # Identifiers
//!
//! We have no GS1 keys (GLN, SSCC, GDTI): every object, place and party is a stable web URI under
//! `https://tongban.example/`, which EPCIS 2.0 accepts wherever it takes an EPC:
//!
//! - documents `…/doc/<document id>`, boxes `…/box/<box id>` (`epcList`, `parentID`,
//!   `childEPCs`), trips `…/trip/<trip id>` (`bizTransactionList`, type `desadv`);
//! - places `…/place/<division code>` (`readPoint`, `bizLocation`, `location` sources and
//!   destinations); a place written as free text on the road is percent-encoded the same way and
//!   never used as a `bizLocation`;
//! - parties `…/party/<division code>` (`owning_party`) and `…/party/<principal>`, e.g.
//!   `…/party/courier:zhang` (`possessing_party` of a hand-over).
//!
//! Ids are percent-encoded as one path segment (unreserved characters and `:` kept), so any id
//! the scanners accept makes a valid URI.
//!
//! `eventID` is `urn:uuid:<scan id>` when the device's scan id is a UUID. Otherwise it is
//! `ni:///sha-256;<hex>`, the SHA-256 of `tongban-scan:<scan id>`: stable across exports and
//! nodes, since a scan id is unique for ever. It deliberately carries no `?ver=CBV2.0`, because
//! that parameter claims the digest is the CBV 2.0 canonical event hash, which a consumer may
//! recompute and would not match.
//!
//! Times are written in China Standard Time (`+08:00`, no daylight saving): `eventTime` is the
//! device's scan time, `recordTime` when the recording node received it.
//!
//! # Extension fields
//!
//! What EPCIS has no field for goes under the project namespace `tongban:`
//! (`https://tongban.example/epcis/`): on every event `tongban:scanId`, `tongban:deviceId`,
//! `tongban:deviceSeq`, `tongban:scannedBy`, `tongban:recordedAt`, `tongban:step`; where they
//! apply `tongban:sealNumber`, `tongban:sealIntact`, `tongban:counterparty`, `tongban:place` (a
//! free-text place), `tongban:reason` (a void's reason), `tongban:retractedBy` and
//! `tongban:retractionReason` (the scan that took this one back, and why); in the `ilmd` of a
//! registration `tongban:caseId`, `tongban:documentKind`, `tongban:pages`, `tongban:title`,
//! `tongban:boxLabel`; on the document `tongban:county`. No sensor data is exported.

use std::collections::HashMap;

use super::model::{DocumentKind, Scan, Step};
use chrono::DateTime;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The EPCIS 2.0 JSON-LD context.
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld";
/// The project's extension namespace (the `tongban:` prefix).
pub const TONGBAN_NAMESPACE: &str = "https://tongban.example/epcis/";
/// Where our object, place and party URIs live.
pub const URI_BASE: &str = "https://tongban.example";
/// China Standard Time, every event's `eventTimeZoneOffset`.
pub const TIME_ZONE_OFFSET: &str = "+08:00";
const OFFSET_MS: i64 = 8 * 3600 * 1000;

/// One scan as exported: the scan, the node that recorded it, and whether an error declaration
/// or a void took it back.
#[derive(Debug, Clone, Copy)]
pub struct ExportedScan<'a> {
    pub scan: &'a Scan,
    /// The node that recorded it (its division code).
    pub recorded_at: &'a str,
    /// When that node received it (Unix ms).
    pub recorded_unix_ms: i64,
    /// An error declaration or a void took it back; it no longer counts.
    pub retracted: bool,
}

/// The CBV 2.0 business step of a custody step (see the module's table).
pub fn biz_step(step: Step) -> &'static str {
    match step {
        Step::RegisterDocument | Step::RegisterBox => "commissioning",
        Step::Pack | Step::Seal => "packing",
        Step::ReleaseToCourier => "shipping",
        Step::CourierAccept => "accepting",
        Step::EnRoute => "transporting",
        Step::ReleaseAtDestination => "arriving",
        Step::DestinationAccept => "receiving",
        Step::Unpack => "unpacking",
        Step::VoidDeparture => "void_shipping",
        // No step of its own: see `biz_step_of`.
        Step::ErrorDeclaration => "other",
    }
}

/// The business step to show for `scan`: its own, or for an error declaration the step of the
/// scan it corrects (`corrected`, when known).
pub fn biz_step_of(scan: &Scan, corrected: Option<&Scan>) -> &'static str {
    let step = scan.step;
    match (step, corrected) {
        (Step::ErrorDeclaration, Some(c)) if c.step != Step::ErrorDeclaration => biz_step(c.step),
        _ => biz_step(step),
    }
}

/// The CBV 2.0 disposition a custody step leaves its objects in, if it says anything about it
/// (see the module's table).
pub fn disposition(step: Step) -> Option<&'static str> {
    match step {
        Step::RegisterDocument | Step::RegisterBox => Some("active"),
        Step::Pack | Step::Unpack => Some("container_open"),
        Step::Seal | Step::DestinationAccept => Some("container_closed"),
        Step::ReleaseToCourier | Step::CourierAccept | Step::EnRoute => Some("in_transit"),
        Step::ReleaseAtDestination => Some("in_progress"),
        Step::VoidDeparture | Step::ErrorDeclaration => None,
    }
}

/// The disposition of one scan: the step's, except a receipt that found the seal broken.
pub fn scan_disposition(scan: &Scan) -> Option<&'static str> {
    match scan.step {
        Step::DestinationAccept if !scan.seal_intact => Some("non_conformant"),
        step => disposition(step),
    }
}

/// The EPCIS `eventID` of a scan: `urn:uuid:` for a UUID scan id, else a stable `ni:///sha-256;`
/// name of the scan id.
pub fn event_id(scan_id: &str) -> String {
    if is_uuid(scan_id) {
        return format!("urn:uuid:{}", scan_id.to_ascii_lowercase());
    }
    let digest = Sha256::digest(format!("tongban-scan:{scan_id}").as_bytes());
    format!("ni:///sha-256;{}", hex::encode(digest))
}

/// A Unix-ms instant in China Standard Time, RFC 3339 with milliseconds:
/// `2026-11-27T09:30:00.000+08:00`.
pub fn china_time(unix_ms: i64) -> String {
    match DateTime::from_timestamp_millis(unix_ms.saturating_add(OFFSET_MS)) {
        Some(shifted) => shifted.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f+08:00").to_string(),
        // Beyond chrono's range (about ±262,000 years): clamp to the epoch rather than fail.
        None => "1970-01-01T08:00:00.000+08:00".to_owned(),
    }
}

/// `https://tongban.example/doc/<id>`.
pub fn document_uri(document_id: &str) -> String {
    uri("doc", document_id)
}

/// `https://tongban.example/box/<id>`.
pub fn box_uri(box_id: &str) -> String {
    uri("box", box_id)
}

/// `https://tongban.example/trip/<id>`.
pub fn trip_uri(trip_id: &str) -> String {
    uri("trip", trip_id)
}

/// `https://tongban.example/place/<division code or encoded description>`.
pub fn place_uri(place: &str) -> String {
    uri("place", place)
}

/// `https://tongban.example/party/<division code or principal>`.
pub fn party_uri(party: &str) -> String {
    uri("party", party)
}

/// The scans as one EPCIS 2.0 `EPCISQueryDocument` (JSON-LD), events in event-time order.
///
/// Error declarations are not events of their own: each one marks the scan it corrects (which
/// must be among `scans`, flagged `retracted`, to appear at all). Include the error declarations
/// and voids that retracted the exported scans, so that their declaration times are exact.
pub fn query_document(scans: &[ExportedScan], created_unix_ms: i64, county_code: &str) -> Value {
    let retractions = Retractions::index(scans);
    let mut ordered: Vec<&ExportedScan> = scans.iter().filter(|s| s.scan.step != Step::ErrorDeclaration).collect();
    ordered.sort_by(|a, b| {
        (a.scan.scanned_unix_ms, a.recorded_unix_ms, &a.scan.scan_id).cmp(&(
            b.scan.scanned_unix_ms,
            b.recorded_unix_ms,
            &b.scan.scan_id,
        ))
    });
    let events: Vec<Value> = ordered
        .into_iter()
        .map(|s| {
            let retraction = s.retracted.then(|| retractions.of(s.scan, created_unix_ms));
            event(s, retraction)
        })
        .collect();
    json!({
        "@context": [EPCIS_CONTEXT, {"tongban": TONGBAN_NAMESPACE}],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": china_time(created_unix_ms),
        "tongban:county": county_code,
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": events},
            }
        }
    })
}

/// How many events a [`query_document`] holds (error declarations are not events of their own,
/// so this can be fewer than the scans given).
pub fn event_count(document: &Value) -> usize {
    document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Who took a retracted scan back, when and why.
struct Retraction {
    declaration_unix_ms: i64,
    reason: &'static str,
    by_scan: Option<String>,
    text: String,
}

/// The error declarations (by the scan they correct) and voids (by trip) among the exported
/// scans; a retracted declaration or void declares nothing. The earliest of several wins.
struct Retractions<'a> {
    declarations: HashMap<&'a str, &'a Scan>,
    voids: HashMap<&'a str, &'a Scan>,
}

impl<'a> Retractions<'a> {
    fn index(scans: &'a [ExportedScan<'a>]) -> Self {
        let mut declarations: HashMap<&str, &Scan> = HashMap::new();
        let mut voids: HashMap<&str, &Scan> = HashMap::new();
        fn keep_earliest<'k>(map: &mut HashMap<&'k str, &'k Scan>, key: &'k str, scan: &'k Scan) {
            if key.is_empty() {
                return;
            }
            let entry = map.entry(key).or_insert(scan);
            if (scan.scanned_unix_ms, &scan.scan_id) < (entry.scanned_unix_ms, &entry.scan_id) {
                *entry = scan;
            }
        }
        for s in scans.iter().filter(|s| !s.retracted) {
            match s.scan.step {
                Step::ErrorDeclaration => keep_earliest(&mut declarations, &s.scan.corrects_scan_id, s.scan),
                Step::VoidDeparture => keep_earliest(&mut voids, &s.scan.trip_id, s.scan),
                _ => {}
            }
        }
        Retractions { declarations, voids }
    }

    fn of(&self, scan: &Scan, created_unix_ms: i64) -> Retraction {
        if let Some(d) = self.declarations.get(scan.scan_id.as_str()) {
            return Retraction {
                declaration_unix_ms: d.scanned_unix_ms,
                reason: "incorrect_data",
                by_scan: Some(d.scan_id.clone()),
                text: d.reason.clone(),
            };
        }
        let departure = matches!(
            scan.step,
            Step::ReleaseToCourier | Step::CourierAccept | Step::EnRoute | Step::ReleaseAtDestination
        );
        if departure
            && let Some(v) = self.voids.get(scan.trip_id.as_str())
            && scan.scanned_unix_ms <= v.scanned_unix_ms
        {
            return Retraction {
                declaration_unix_ms: v.scanned_unix_ms,
                reason: "did_not_occur",
                by_scan: Some(v.scan_id.clone()),
                text: v.reason.clone(),
            };
        }
        Retraction {
            declaration_unix_ms: created_unix_ms,
            reason: "incorrect_data",
            by_scan: None,
            text: String::new(),
        }
    }
}

fn event(s: &ExportedScan, retraction: Option<Retraction>) -> Value {
    let scan = s.scan;
    let step = scan.step;
    let mut e = Map::new();
    let aggregation = matches!(step, Step::Pack | Step::Unpack);
    let action = match step {
        Step::RegisterDocument | Step::RegisterBox | Step::Pack => "ADD",
        Step::Unpack => "DELETE",
        _ => "OBSERVE",
    };
    put(
        &mut e,
        "type",
        if aggregation { "AggregationEvent" } else { "ObjectEvent" },
    );
    put(&mut e, "eventTime", china_time(scan.scanned_unix_ms));
    put(&mut e, "eventTimeZoneOffset", TIME_ZONE_OFFSET);
    put(&mut e, "recordTime", china_time(s.recorded_unix_ms));
    put(&mut e, "eventID", event_id(&scan.scan_id));

    // What.
    if aggregation {
        if !scan.box_id.is_empty() {
            put(&mut e, "parentID", box_uri(&scan.box_id));
        }
        put(&mut e, "childEPCs", uris(&scan.document_ids, document_uri));
    } else {
        let epcs = match step {
            Step::RegisterDocument => {
                let ids: Vec<String> = match &scan.document {
                    Some(d) if !d.document_id.is_empty() => vec![d.document_id.clone()],
                    _ => scan.document_ids.clone(),
                };
                uris(&ids, document_uri)
            }
            _ if scan.box_id.is_empty() => Vec::new(),
            _ => vec![Value::String(box_uri(&scan.box_id))],
        };
        put(&mut e, "epcList", epcs);
    }
    put(&mut e, "action", action);

    // Why.
    put(&mut e, "bizStep", biz_step(step));
    if let Some(d) = scan_disposition(scan) {
        put(&mut e, "disposition", d);
    }

    // Where.
    let read_point = match step {
        Step::Pack if scan.place.is_empty() => scan.origin.as_str(),
        _ => scan.place.as_str(),
    };
    if !read_point.is_empty() {
        put(&mut e, "readPoint", json!({"id": place_uri(read_point)}));
    }
    let at_a_site = !matches!(step, Step::ReleaseToCourier | Step::CourierAccept | Step::EnRoute);
    if at_a_site && is_division_code(read_point) {
        put(&mut e, "bizLocation", json!({"id": place_uri(read_point)}));
    }
    if !scan.trip_id.is_empty() {
        put(
            &mut e,
            "bizTransactionList",
            json!([{"type": "desadv", "bizTransaction": trip_uri(&scan.trip_id)}]),
        );
    }
    match step {
        Step::Pack => {
            let ends = |end: &str, key: &str| -> Vec<Value> {
                if end.is_empty() {
                    return Vec::new();
                }
                vec![
                    json!({"type": "owning_party", key: party_uri(end)}),
                    json!({"type": "location", key: place_uri(end)}),
                ]
            };
            let sources = ends(&scan.origin, "source");
            if !sources.is_empty() {
                put(&mut e, "sourceList", sources);
            }
            let destinations = ends(&scan.destination, "destination");
            if !destinations.is_empty() {
                put(&mut e, "destinationList", destinations);
            }
        }
        Step::ReleaseToCourier | Step::ReleaseAtDestination if !scan.counterparty.is_empty() => {
            put(
                &mut e,
                "destinationList",
                json!([{"type": "possessing_party", "destination": party_uri(&scan.counterparty)}]),
            );
        }
        _ => {}
    }

    // Instance master data of what a registration brings into being.
    let mut ilmd = Map::new();
    match step {
        Step::RegisterDocument => {
            if let Some(d) = &scan.document {
                put_text(&mut ilmd, "tongban:caseId", &d.case_id);
                let kind = d.kind.map_or("", DocumentKind::as_str);
                put_text(&mut ilmd, "tongban:documentKind", kind);
                if d.pages > 0 {
                    put(&mut ilmd, "tongban:pages", d.pages);
                }
                put_text(&mut ilmd, "tongban:title", &d.title);
            }
        }
        Step::RegisterBox => put_text(&mut ilmd, "tongban:boxLabel", &scan.box_label),
        _ => {}
    }
    if !ilmd.is_empty() {
        put(&mut e, "ilmd", ilmd);
    }

    if let Some(r) = &retraction {
        put(
            &mut e,
            "errorDeclaration",
            json!({"declarationTime": china_time(r.declaration_unix_ms), "reason": r.reason}),
        );
    }

    // The project's own fields.
    put(&mut e, "tongban:scanId", scan.scan_id.as_str());
    put_text(&mut e, "tongban:deviceId", &scan.device_id);
    put(&mut e, "tongban:deviceSeq", scan.device_seq);
    put_text(&mut e, "tongban:scannedBy", &scan.principal);
    put_text(&mut e, "tongban:recordedAt", s.recorded_at);
    put(&mut e, "tongban:step", step.contract_name());
    put_text(&mut e, "tongban:sealNumber", &scan.seal_number);
    if step == Step::DestinationAccept {
        put(&mut e, "tongban:sealIntact", scan.seal_intact);
    }
    put_text(&mut e, "tongban:counterparty", &scan.counterparty);
    if !scan.place.is_empty() && !is_division_code(&scan.place) {
        put(&mut e, "tongban:place", scan.place.as_str());
    }
    if step == Step::VoidDeparture {
        put_text(&mut e, "tongban:reason", &scan.reason);
    }
    if let Some(r) = retraction {
        if let Some(by) = r.by_scan {
            put(&mut e, "tongban:retractedBy", by);
        }
        put_text(&mut e, "tongban:retractionReason", &r.text);
    }
    Value::Object(e)
}

fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_owned(), value.into());
}

fn put_text(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        put(map, key, value);
    }
}

/// Distinct URIs of non-empty ids, in their first order.
fn uris(ids: &[String], make: fn(&str) -> String) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(ids.len());
    for id in ids.iter().filter(|id| !id.is_empty()) {
        let u = Value::String(make(id));
        if !out.contains(&u) {
            out.push(u);
        }
    }
    out
}

fn uri(kind: &str, id: &str) -> String {
    format!("{URI_BASE}/{kind}/{}", encode_segment(id))
}

/// Percent-encodes `text` as one URI path segment, keeping unreserved characters and `:`.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A county (6 digits), township (9) or village (12) code.
fn is_division_code(place: &str) -> bool {
    matches!(place.len(), 6 | 9 | 12) && place.bytes().all(|b| b.is_ascii_digit())
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::custody::model::DocumentInfo;

    /// 2026-11-27 09:30:00 in China.
    const T0: i64 = 1_795_743_000_000;
    const MIN: i64 = 60_000;

    /// Every business step and disposition word of CBV 2.0.
    const CBV_BIZ_STEPS: &[&str] = &[
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "sampling",
        "sensor_reporting",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
    ];
    const CBV_DISPOSITIONS: &[&str] = &[
        "active",
        "available",
        "completeness_inferred",
        "completeness_verified",
        "conformant",
        "container_closed",
        "container_open",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "mismatch_class",
        "mismatch_instance",
        "mismatch_quantity",
        "needs_replacement",
        "no_pedigree_match",
        "non_conformant",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unavailable",
        "unknown",
    ];

    fn all_steps() -> Vec<Step> {
        Step::ALL.to_vec()
    }

    fn scan(id: &str, step: Step, at: i64) -> Scan {
        Scan {
            box_id: "BOX-0007".to_owned(),
            trip_id: "441424100-20261127-0a1b2c3d".to_owned(),
            place: "441424100".to_owned(),
            ..Scan::new(id, "desk-441424100-wang", 1, at, "operator:441424100:wang", step)
        }
    }

    fn pack(at: i64) -> Scan {
        Scan {
            origin: "441424100".to_owned(),
            destination: "441424".to_owned(),
            document_ids: vec!["D-1".to_owned(), "D-2".to_owned(), "D-1".to_owned()],
            ..scan("s-pack", Step::Pack, at)
        }
    }

    fn exported(scan: &Scan, retracted: bool) -> ExportedScan<'_> {
        ExportedScan {
            scan,
            recorded_at: "441424100",
            recorded_unix_ms: scan.scanned_unix_ms + 1_500,
            retracted,
        }
    }

    fn events(doc: &Value) -> &Vec<Value> {
        doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            .as_array()
            .expect("an event list")
    }

    fn by_scan<'d>(doc: &'d Value, scan_id: &str) -> &'d Value {
        events(doc)
            .iter()
            .find(|e| e["tongban:scanId"] == scan_id)
            .unwrap_or_else(|| panic!("no event for {scan_id}"))
    }

    #[test]
    fn the_document_has_the_required_top_level_keys() {
        let p = pack(T0);
        let doc = query_document(&[exported(&p, false)], T0 + 10 * MIN, "441424");
        assert_eq!(
            doc["@context"],
            json!([EPCIS_CONTEXT, {"tongban": "https://tongban.example/epcis/"}])
        );
        assert_eq!(doc["type"], "EPCISQueryDocument");
        assert_eq!(doc["schemaVersion"], "2.0");
        assert_eq!(doc["creationDate"], "2026-11-27T09:40:00.000+08:00");
        assert_eq!(doc["tongban:county"], "441424");
        let results = &doc["epcisBody"]["queryResults"];
        assert_eq!(results["queryName"], "SimpleEventQuery");
        assert_eq!(events(&doc).len(), 1);

        let empty = query_document(&[], T0, "441424");
        assert!(events(&empty).is_empty());
    }

    #[test]
    fn a_pack_scan_becomes_an_aggregation_event() {
        let p = pack(T0);
        let doc = query_document(&[exported(&p, false)], T0, "441424");
        let e = by_scan(&doc, "s-pack");
        assert_eq!(e["type"], "AggregationEvent");
        assert_eq!(e["action"], "ADD");
        assert_eq!(e["bizStep"], "packing");
        assert_eq!(e["disposition"], "container_open");
        assert_eq!(e["parentID"], "https://tongban.example/box/BOX-0007");
        assert_eq!(
            e["childEPCs"],
            json!(["https://tongban.example/doc/D-1", "https://tongban.example/doc/D-2"])
        );
        assert!(e.get("epcList").is_none());
        assert_eq!(
            e["bizTransactionList"],
            json!([{"type": "desadv", "bizTransaction": "https://tongban.example/trip/441424100-20261127-0a1b2c3d"}])
        );
        assert_eq!(
            e["sourceList"],
            json!([
                {"type": "owning_party", "source": "https://tongban.example/party/441424100"},
                {"type": "location", "source": "https://tongban.example/place/441424100"},
            ])
        );
        assert_eq!(
            e["destinationList"],
            json!([
                {"type": "owning_party", "destination": "https://tongban.example/party/441424"},
                {"type": "location", "destination": "https://tongban.example/place/441424"},
            ])
        );
        assert_eq!(e["readPoint"], json!({"id": "https://tongban.example/place/441424100"}));
        assert_eq!(
            e["bizLocation"],
            json!({"id": "https://tongban.example/place/441424100"})
        );
        assert_eq!(e["tongban:deviceId"], "desk-441424100-wang");
        assert_eq!(e["tongban:deviceSeq"], 1);
        assert_eq!(e["tongban:recordedAt"], "441424100");

        let u = Scan {
            document_ids: vec!["D-2".to_owned()],
            ..scan("s-unpack", Step::Unpack, T0 + MIN)
        };
        let doc = query_document(&[exported(&u, false)], T0, "441424");
        let e = by_scan(&doc, "s-unpack");
        assert_eq!(e["type"], "AggregationEvent");
        assert_eq!(e["action"], "DELETE");
        assert_eq!(e["bizStep"], "unpacking");
        assert_eq!(e["parentID"], "https://tongban.example/box/BOX-0007");
        assert_eq!(e["childEPCs"], json!(["https://tongban.example/doc/D-2"]));
    }

    #[test]
    fn object_events_name_their_object_and_its_registration_data() {
        let reg = Scan {
            box_id: String::new(),
            trip_id: String::new(),
            document: Some(DocumentInfo {
                document_id: "441424100-DOC0001".to_owned(),
                case_id: "441424100201-0123456789abcdef0123456789abcdef".to_owned(),
                kind: Some(DocumentKind::Original),
                pages: 3,
                title: "户口簿原件".to_owned(),
            }),
            ..scan("s-reg", Step::RegisterDocument, T0)
        };
        let rel = Scan {
            counterparty: "courier:zhang".to_owned(),
            place: "水寨镇 路口 #3".to_owned(),
            ..scan("s-rel", Step::ReleaseToCourier, T0 + MIN)
        };
        let doc = query_document(&[exported(&reg, false), exported(&rel, false)], T0, "441424");

        let e = by_scan(&doc, "s-reg");
        assert_eq!(e["type"], "ObjectEvent");
        assert_eq!(e["action"], "ADD");
        assert_eq!(e["bizStep"], "commissioning");
        assert_eq!(e["disposition"], "active");
        assert_eq!(e["epcList"], json!(["https://tongban.example/doc/441424100-DOC0001"]));
        assert_eq!(e["ilmd"]["tongban:documentKind"], "original");
        assert_eq!(e["ilmd"]["tongban:pages"], 3);
        assert_eq!(e["ilmd"]["tongban:title"], "户口簿原件");
        assert!(e.get("bizTransactionList").is_none());

        let e = by_scan(&doc, "s-rel");
        assert_eq!(e["action"], "OBSERVE");
        assert_eq!(e["bizStep"], "shipping");
        assert_eq!(e["disposition"], "in_transit");
        assert_eq!(e["epcList"], json!(["https://tongban.example/box/BOX-0007"]));
        assert_eq!(
            e["destinationList"],
            json!([{"type": "possessing_party", "destination": "https://tongban.example/party/courier:zhang"}])
        );
        // A free-text place is an encoded read point and never a business location.
        assert_eq!(
            e["readPoint"]["id"],
            "https://tongban.example/place/%E6%B0%B4%E5%AF%A8%E9%95%87%20%E8%B7%AF%E5%8F%A3%20%233"
        );
        assert!(e.get("bizLocation").is_none());
        assert_eq!(e["tongban:place"], "水寨镇 路口 #3");
        assert!(e.get("ilmd").is_none());
    }

    #[test]
    fn times_carry_china_standard_time() {
        assert_eq!(china_time(T0), "2026-11-27T09:30:00.000+08:00");
        assert_eq!(china_time(0), "1970-01-01T08:00:00.000+08:00");
        // Late evening UTC is the next day in China.
        assert_eq!(china_time(T0 + 15 * 60 * MIN + 1), "2026-11-28T00:30:00.001+08:00");
        assert_eq!(china_time(i64::MAX), "1970-01-01T08:00:00.000+08:00");

        let s = scan("s-seal", Step::Seal, T0);
        let doc = query_document(&[exported(&s, false)], T0 + MIN, "441424");
        let e = by_scan(&doc, "s-seal");
        assert_eq!(e["eventTime"], "2026-11-27T09:30:00.000+08:00");
        assert_eq!(e["recordTime"], "2026-11-27T09:30:01.500+08:00");
        assert_eq!(e["eventTimeZoneOffset"], "+08:00");
        for key in ["eventTime", "recordTime"] {
            let t = e[key].as_str().unwrap();
            assert!(t.ends_with("+08:00"), "{key} {t}");
            DateTime::parse_from_rfc3339(t).unwrap();
        }
        assert!(doc["creationDate"].as_str().unwrap().ends_with("+08:00"));
    }

    #[test]
    fn a_retracted_scan_carries_an_error_declaration() {
        let wrong = Scan {
            seal_number: "FT-1".to_owned(),
            ..scan("s-seal", Step::Seal, T0)
        };
        let declaration = Scan {
            box_id: String::new(),
            trip_id: String::new(),
            corrects_scan_id: "s-seal".to_owned(),
            reason: "wrong seal typed".to_owned(),
            ..scan("s-ed", Step::ErrorDeclaration, T0 + 5 * MIN)
        };
        let release = scan("s-rel", Step::ReleaseToCourier, T0 + 2 * MIN);
        let void = Scan {
            reason: "courier did not come".to_owned(),
            ..scan("s-void", Step::VoidDeparture, T0 + 30 * MIN)
        };
        let orphan = scan("s-orphan", Step::EnRoute, T0 + 3 * MIN);
        let orphan = Scan {
            trip_id: "another-trip".to_owned(),
            ..orphan
        };
        let scans = [
            exported(&wrong, true),
            exported(&declaration, false),
            exported(&release, true),
            exported(&void, false),
            exported(&orphan, true),
        ];
        let created = T0 + 60 * MIN;
        let doc = query_document(&scans, created, "441424");

        // The declaration itself is not an event.
        assert_eq!(events(&doc).len(), 4);
        assert_eq!(event_count(&doc), 4);
        assert!(events(&doc).iter().all(|e| e["tongban:scanId"] != "s-ed"));

        let e = by_scan(&doc, "s-seal");
        assert_eq!(e["bizStep"], "packing", "the corrected scan keeps its own step");
        assert_eq!(e["tongban:sealNumber"], "FT-1");
        assert_eq!(
            e["errorDeclaration"],
            json!({"declarationTime": "2026-11-27T09:35:00.000+08:00", "reason": "incorrect_data"})
        );
        assert_eq!(e["tongban:retractedBy"], "s-ed");
        assert_eq!(e["tongban:retractionReason"], "wrong seal typed");

        let e = by_scan(&doc, "s-rel");
        assert_eq!(
            e["errorDeclaration"],
            json!({"declarationTime": "2026-11-27T10:00:00.000+08:00", "reason": "did_not_occur"})
        );
        assert_eq!(e["tongban:retractedBy"], "s-void");

        let e = by_scan(&doc, "s-void");
        assert!(e.get("errorDeclaration").is_none());
        assert_eq!(e["bizStep"], "void_shipping");
        assert!(e.get("disposition").is_none());
        assert_eq!(e["tongban:reason"], "courier did not come");

        // Retracted by a scan not exported: declared no later than the document.
        let e = by_scan(&doc, "s-orphan");
        assert_eq!(e["errorDeclaration"]["declarationTime"], china_time(created));
        assert_eq!(e["errorDeclaration"]["reason"], "incorrect_data");
        assert!(e.get("tongban:retractedBy").is_none());

        // A retracted seal is not cancelled by the void (sealing happened): without its error
        // declaration it is incorrect data, declared no later than the document.
        let doc = query_document(&[exported(&wrong, true), exported(&void, false)], created, "441424");
        let e = by_scan(&doc, "s-seal");
        assert_eq!(e["errorDeclaration"]["reason"], "incorrect_data");
        assert_eq!(e["errorDeclaration"]["declarationTime"], china_time(created));

        // Scans that still count carry no declaration.
        let fine = scan("s-fine", Step::Seal, T0);
        let doc = query_document(&[exported(&fine, false)], created, "441424");
        assert!(by_scan(&doc, "s-fine").get("errorDeclaration").is_none());
    }

    #[test]
    fn a_broken_seal_is_non_conformant() {
        let intact = Scan {
            seal_number: "FT-1".to_owned(),
            seal_intact: true,
            ..scan("s-ok", Step::DestinationAccept, T0)
        };
        let broken = Scan {
            seal_intact: false,
            ..scan("s-broken", Step::DestinationAccept, T0)
        };
        let doc = query_document(&[exported(&intact, false), exported(&broken, false)], T0, "441424");
        let ok = by_scan(&doc, "s-ok");
        assert_eq!(ok["bizStep"], "receiving");
        assert_eq!(ok["disposition"], "container_closed");
        assert_eq!(ok["tongban:sealIntact"], true);
        let bad = by_scan(&doc, "s-broken");
        assert_eq!(bad["disposition"], "non_conformant");
        assert_eq!(bad["tongban:sealIntact"], false);
    }

    #[test]
    fn events_are_in_event_time_order() {
        let a = scan("s-c", Step::Seal, T0 + 2 * MIN);
        let b = scan("s-a", Step::ReleaseToCourier, T0 + 3 * MIN);
        let c = pack(T0);
        let d = scan("s-b", Step::Seal, T0 + 2 * MIN);
        let scans = [
            exported(&a, false),
            exported(&b, false),
            exported(&c, false),
            exported(&d, false),
        ];
        let doc = query_document(&scans, T0, "441424");
        let order: Vec<&str> = events(&doc)
            .iter()
            .map(|e| e["tongban:scanId"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["s-pack", "s-b", "s-c", "s-a"]);
    }

    #[test]
    fn event_ids_are_uuids_or_stable_hashes() {
        assert_eq!(
            event_id("0F8FAD5B-D9CB-469F-A165-70867728950E"),
            "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        let id = event_id("desk-441424100-wang-17-9f3a");
        assert_eq!(id, event_id("desk-441424100-wang-17-9f3a"));
        assert_ne!(id, event_id("desk-441424100-wang-18-9f3a"));
        let hex = id.strip_prefix("ni:///sha-256;").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!is_uuid("0f8fad5b-d9cb-469f-a165-70867728950"));
        assert!(!is_uuid("0f8fad5b-d9cb-469f-a165-70867728950g"));
    }

    #[test]
    fn the_document_survives_a_serde_round_trip() {
        let p = pack(T0);
        let s = scan("s-seal", Step::Seal, T0 + MIN);
        let doc = query_document(&[exported(&p, false), exported(&s, true)], T0 + 2 * MIN, "441424");
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), text);
    }

    #[test]
    fn every_custody_step_maps_to_cbv() {
        let steps = all_steps();
        assert_eq!(steps.len(), 12, "a new Step needs a row in the mapping");
        for step in steps {
            let b = biz_step(step);
            assert!(CBV_BIZ_STEPS.contains(&b), "{step:?} → {b}");
            if let Some(d) = disposition(step) {
                assert!(CBV_DISPOSITIONS.contains(&d), "{step:?} → {d}");
            }
        }
        assert!(CBV_DISPOSITIONS.contains(&"non_conformant"));
        // The contract's own pairs.
        assert_eq!(biz_step(Step::Seal), "packing");
        assert_eq!(disposition(Step::Seal), Some("container_closed"));
        assert_eq!(biz_step(Step::EnRoute), "transporting");
        assert_eq!(disposition(Step::EnRoute), Some("in_transit"));
        assert_eq!(biz_step(Step::VoidDeparture), "void_shipping");

        // An error declaration shows the step of the scan it corrects.
        let sealed = scan("s-seal", Step::Seal, T0);
        let ed = scan("s-ed", Step::ErrorDeclaration, T0);
        assert_eq!(biz_step_of(&ed, Some(&sealed)), "packing");
        assert_eq!(biz_step_of(&ed, None), "other");
        assert_eq!(biz_step_of(&sealed, None), "packing");
    }

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        assert_eq!(box_uri("BOX-0007"), "https://tongban.example/box/BOX-0007");
        assert_eq!(document_uri("a/b?c"), "https://tongban.example/doc/a%2Fb%3Fc");
        assert_eq!(
            party_uri("courier:zhang"),
            "https://tongban.example/party/courier:zhang"
        );
        assert_eq!(place_uri("441424100201"), "https://tongban.example/place/441424100201");
        assert!(is_division_code("441424"));
        assert!(!is_division_code("4414241"));
        assert!(!is_division_code("on the road"));
    }
}
