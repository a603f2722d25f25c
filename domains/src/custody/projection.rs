//! Custody scans in the store: recording them once, and answering where every box and paper
//! file is, their custody chains and the anomalies, from this node's own tables.
//!
//! This module owns:
//! - folding `CustodyScan` events into `custody_scans` (once per scan id: a second copy with
//!   other content, or a second id for one device sequence number, is kept as a conflict) with
//!   the object index, the document and box registers and error declarations;
//! - folding `AnomalyNote` events (the life of an anomaly);
//! - [`Store::record_scans`]: a device's upload, each scan authored as one event (a document
//!   registration naming an id registered here to another case, or to another paper, refused);
//! - [`Store::next_document_id`]: the id of a case's next paper file (`<receipt number>-D01`);
//! - [`Store::where_is`], [`Store::box_history`], [`Store::anomalies`].
//!
//! Anomalies are derived from the scans each time they are listed, by the same rules at every
//! node ([`crate::custody::trip`] for one trip, here for what spans trips and devices), so the
//! county and the township concerned see the same ones once they hold the same scans; a late
//! scan that completes a hand-over makes the anomaly it caused disappear. Only their notes
//! (explained, closed) are stored, as events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tongban_proto::v1::{EventKind, RouteClass, event_body::Body};

use crate::custody::epcis;
use crate::custody::model::{
    Anomaly, AnomalyKind, AnomalyNote, AnomalyState, CustodyLink, DocumentInfo, DocumentKind, Location, ObjectKind,
    Scan, Step, TripState, WhereTarget, Whereabouts, document_id, document_seq,
};
use crate::custody::trip::{CustodyLimits, RecordedScan, TripView, fold_trip};
use crate::custody::wire;
use crate::event::{CheckedEvent, EventError, NewEvent};
use crate::hlc::physical_ms;
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::store::CaseRef;
use crate::store::{Backend, FoldContext, FoldOutcome, Projection, ProjectionFuture, Store, StoreError, WriteTx};
use crate::{with_pool, with_tx};

/// Scans per upload.
pub const MAX_SCANS_PER_UPLOAD: usize = 5_000;
/// How far back anomaly listing looks at trips (90 days).
const ANOMALY_WINDOW_MS: i64 = 90 * 24 * 3_600_000;
const MAX_ID_LEN: usize = 128;

/// What happened to one uploaded scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    Recorded,
    /// Recorded, but its id was already recorded with other content: a conflicting duplicate,
    /// kept as evidence and raised as an anomaly.
    Conflicting(String),
    Duplicate,
    Refused(String),
}

/// Why an upload, a where-is or a note was refused.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks one scan's shape: ids present and short, and what its step needs (the step itself was
/// checked where the scan came off the wire). Whether it makes sense in its trip is judged later,
/// as anomalies: scans are facts from devices that were offline, and refusing one would lose it.
pub fn check_scan(scan: &Scan) -> Result<(), String> {
    let id_ok = |name: &str, value: &str| -> Result<(), String> {
        if value.trim().is_empty() {
            return Err(format!("{name} is required"));
        }
        if value.len() > MAX_ID_LEN || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "{name} {value:?} must be at most {MAX_ID_LEN} characters without spaces"
            ));
        }
        Ok(())
    };
    id_ok("scan_id", &scan.scan_id)?;
    id_ok("device_id", &scan.device_id)?;
    if scan.device_seq == 0 {
        return Err("device_seq starts at 1".into());
    }
    if scan.scanned_unix_ms <= 0 {
        return Err("scanned_unix_ms (the device's clock) is required".into());
    }
    scan.principal
        .parse::<Principal>()
        .map_err(|e| format!("principal {:?}: {e}", scan.principal))?;
    let step = scan.step;
    match step {
        Step::RegisterDocument => {
            let doc = scan
                .document
                .as_ref()
                .ok_or("a document registration needs the document")?;
            id_ok("document.document_id", &doc.document_id)?;
            id_ok("document.case_id", &doc.case_id)?;
        }
        Step::RegisterBox => id_ok("box_id", &scan.box_id)?,
        Step::ErrorDeclaration => {
            id_ok("corrects_scan_id", &scan.corrects_scan_id)?;
            if scan.reason.trim().is_empty() {
                return Err("an error declaration needs a reason".into());
            }
        }
        _ => {
            id_ok("box_id", &scan.box_id)?;
            id_ok("trip_id", &scan.trip_id)?;
        }
    }
    match step {
        Step::Pack => {
            NodeId::new(scan.origin.clone()).map_err(|e| format!("origin: {e}"))?;
            NodeId::new(scan.destination.clone()).map_err(|e| format!("destination: {e}"))?;
            if scan.origin == scan.destination {
                return Err("a trip goes somewhere: origin and destination are the same".into());
            }
            for doc in &scan.document_ids {
                id_ok("document_ids", doc)?;
            }
        }
        Step::Seal if scan.seal_number.trim().is_empty() => {
            return Err("sealing needs the seal number".into());
        }
        Step::DestinationAccept if scan.seal_number.trim().is_empty() => {
            return Err("accepting a box needs the seal number read on it".into());
        }
        Step::ReleaseToCourier | Step::ReleaseAtDestination if scan.counterparty.trim().is_empty() => {
            return Err("a release needs the party the box is handed to (counterparty)".into());
        }
        Step::VoidDeparture if scan.reason.trim().is_empty() => {
            return Err("voiding a departure needs a reason".into());
        }
        _ => {}
    }
    Ok(())
}

/// One scan folded in the open transaction, waiting for [`flush_scans`].
#[derive(Clone)]
struct StagedScan {
    scan: Scan,
    bytes: Vec<u8>,
    township: String,
    recorded_at: String,
    recorded_ms: i64,
}

/// The custody projection: scans into the scan log, object index and document and box
/// registers (staged per transaction in [`PendingScans`] and written in multi-row statements),
/// and the notes that explain or close anomalies.
pub(crate) struct CustodyProjection;

impl Projection for CustodyProjection {
    fn name(&self) -> &'static str {
        "custody"
    }

    fn kinds(&self) -> &'static [EventKind] {
        &[EventKind::CustodyScan, EventKind::AnomalyNote]
    }

    // Scans are recorded wherever a device finds a link, so any node may author them; they
    // always spread to the whole subtree of the township concerned.
    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        if event.route_class() != RouteClass::Subtree {
            return Err(EventError::Rule(
                "a custody record travels to the subtree of the township concerned".into(),
            ));
        }
        Ok(())
    }

    fn migrations(&self, backend: Backend) -> Option<sqlx::migrate::Migrator> {
        Some(match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/custody/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/custody/postgres"),
        })
    }

    fn fold<'a>(&'a self, cx: &'a mut FoldContext<'_>, event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome> {
        Box::pin(async move {
            // Converted at the edge: a body the domain cannot represent is refused, saying why.
            let verdict = match &event.body {
                Body::CustodyScan(body) => match wire::recorded_scan_from_body(body) {
                    Ok(recorded) => fold_scan(event, recorded, cx.states.get_mut::<PendingScans>()),
                    Err(e) => Err(e.to_string()),
                },
                Body::AnomalyNote(body) => match wire::note_from_body(body) {
                    Ok(note) => fold_note(cx.tx, event, &note).await?,
                    Err(e) => Err(e.to_string()),
                },
                _ => Err("not a custody record".to_owned()),
            };
            Ok(FoldOutcome::from(verdict))
        })
    }

    fn flush<'a>(&'a self, cx: &'a mut FoldContext<'_>) -> ProjectionFuture<'a, ()> {
        Box::pin(async move { flush_scans(cx.tx, cx.states.get_mut::<PendingScans>()).await })
    }
}

/// Scans folded in the open transaction, written by [`flush_scans`] in multi-row statements:
/// a batch of 1,000 scans is a handful of statements instead of several per scan.
#[derive(Clone, Default)]
pub(crate) struct PendingScans {
    staged: Vec<StagedScan>,
    // Ids staged so far, with their bytes: a second copy within the same batch is judged here.
    ids: HashMap<String, usize>,
    conflicts: Vec<(Scan, String, String)>,
}

/// Folds a `CustodyScan`. Never refuses a well-formed scan: a duplicate is a no-op, a
/// conflicting copy is kept as evidence. The rows are written by [`flush_scans`].
fn fold_scan(event: &CheckedEvent, recorded: RecordedScan, pending: &mut PendingScans) -> Result<(), String> {
    let RecordedScan {
        scan,
        recorded_at,
        recorded_ms,
    } = recorded;
    if let Err(reason) = check_scan(&scan) {
        return Err(format!("scan {:?} is malformed: {reason}", scan.scan_id));
    }
    let bytes = wire::encode_scan(&scan);
    let township = event.route_key.to_string();
    if let Some(&first) = pending.ids.get(&scan.scan_id) {
        let kept = &mut pending.staged[first];
        if kept.bytes != bytes {
            pending.conflicts.push((scan, township, recorded_at));
        } else if (recorded_ms, recorded_at.as_str()) < (kept.recorded_ms, kept.recorded_at.as_str()) {
            // The same scan recorded at two nodes: every node keeps the same copy (see
            // `first_recording`), whatever order the copies arrive in.
            kept.recorded_at = recorded_at;
            kept.recorded_ms = recorded_ms;
        }
        return Ok(());
    }
    pending.ids.insert(scan.scan_id.clone(), pending.staged.len());
    pending.staged.push(StagedScan {
        scan,
        bytes,
        township,
        recorded_at,
        recorded_ms,
    });
    Ok(())
}

/// Rows per multi-row statement: 13 columns × 1,000 rows stays under SQLite's parameter limit.
const SCAN_ROWS: usize = 1_000;

/// Writes the scans staged in this transaction: new ones with their object index, document and
/// box registers; for ids already stored, a conflict when the content differs.
async fn flush_scans(tx: &mut WriteTx, pending: &mut PendingScans) -> Result<(), StoreError> {
    let backend = tx.backend();
    let staged = std::mem::take(&mut pending.staged);
    pending.ids.clear();
    for (scan, township, recorded_at) in std::mem::take(&mut pending.conflicts) {
        record_conflict(
            tx,
            &scan,
            &township,
            &recorded_at,
            "a second copy of this scan id differs from the one recorded first",
        )
        .await?;
    }
    for chunk in staged.chunks(SCAN_ROWS) {
        // Ids already stored (usually none: replicas and re-uploads are the exception). Asked
        // first so only those rows come back; a row per inserted scan through RETURNING would
        // cost a thread hand-off each in sqlx's SQLite driver.
        let list = crate::store::value_rows(1, chunk.len(), backend);
        let sql = format!("SELECT scan_id, scan, recorded_ms, recorded_at FROM custody_scans WHERE scan_id IN {list}");
        let stored: Vec<(String, Vec<u8>, i64, String)> = with_tx!(&mut *tx, conn => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for st in chunk {
                query = query.bind(st.scan.scan_id.as_str());
            }
            query.fetch_all(conn).await
        })?;
        let stored: HashMap<String, (Vec<u8>, i64, String)> = stored
            .into_iter()
            .map(|(id, bytes, ms, at)| (id, (bytes, ms, at)))
            .collect();
        for st in chunk {
            let Some((existing, stored_ms, stored_at)) = stored.get(&st.scan.scan_id) else {
                continue;
            };
            if *existing != st.bytes {
                record_conflict(
                    tx,
                    &st.scan,
                    &st.township,
                    &st.recorded_at,
                    "a second copy of this scan id differs from the one recorded first",
                )
                .await?;
            } else if (st.recorded_ms, st.recorded_at.as_str()) < (*stored_ms, stored_at.as_str()) {
                first_recording(tx, st).await?;
            }
        }
        let new: Vec<&StagedScan> = chunk
            .iter()
            .filter(|st| !stored.contains_key(&st.scan.scan_id))
            .collect();
        if new.is_empty() {
            continue;
        }
        let sql = format!(
            "INSERT INTO custody_scans (scan_id, device_id, device_seq, scanned_ms, step, principal, box_id, trip_id, \
             township, corrects, recorded_at, recorded_ms, scan) VALUES {}",
            crate::store::value_rows(new.len(), 13, backend)
        );
        with_tx!(&mut *tx, conn => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for st in &new {
                let s = &st.scan;
                query = query
                    .bind(s.scan_id.as_str())
                    .bind(s.device_id.as_str())
                    .bind(s.device_seq as i64)
                    .bind(s.scanned_unix_ms)
                    .bind(i64::from(s.step.to_wire()))
                    .bind(s.principal.as_str())
                    .bind(s.box_id.as_str())
                    .bind(s.trip_id.as_str())
                    .bind(st.township.as_str())
                    .bind(s.corrects_scan_id.as_str())
                    .bind(st.recorded_at.as_str())
                    .bind(st.recorded_ms)
                    .bind(st.bytes.as_slice());
            }
            query.execute(conn).await.map(|_| ())
        })?;
        // The objects each new scan is about.
        let mut objects: Vec<(String, String)> = Vec::new();
        for st in &new {
            let s = &st.scan;
            let mut about: BTreeSet<&str> = s.document_ids.iter().map(String::as_str).collect();
            if !s.box_id.is_empty() {
                about.insert(&s.box_id);
            }
            if let Some(doc) = &s.document {
                about.insert(&doc.document_id);
            }
            objects.extend(about.into_iter().map(|o| (o.to_owned(), s.scan_id.clone())));
        }
        for rows in objects.chunks(SCAN_ROWS * 6) {
            let sql = format!(
                "INSERT INTO custody_objects (object_id, scan_id) VALUES {} ON CONFLICT (object_id, scan_id) DO NOTHING",
                crate::store::value_rows(rows.len(), 2, backend)
            );
            with_tx!(&mut *tx, conn => {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (object, scan_id) in rows {
                    query = query.bind(object.as_str()).bind(scan_id.as_str());
                }
                query.execute(conn).await.map(|_| ())
            })?;
        }
        for st in &new {
            let s = &st.scan;
            match s.step {
                Step::RegisterDocument => {
                    if let Some(doc) = &s.document {
                        with_tx!(&mut *tx, conn => sqlx::query(
                            "INSERT INTO custody_documents (document_id, case_id, kind, pages, title, registered_at) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (document_id) DO NOTHING",
                        )
                        .bind(doc.document_id.clone())
                        .bind(doc.case_id.clone())
                        .bind(i64::from(DocumentKind::to_wire(doc.kind)))
                        .bind(i64::from(doc.pages))
                        .bind(doc.title.clone())
                        .bind(st.recorded_at.clone())
                        .execute(conn).await.map(|_| ()))?;
                    }
                }
                Step::RegisterBox => {
                    with_tx!(&mut *tx, conn => sqlx::query(
                        "INSERT INTO custody_boxes (box_id, label, registered_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (box_id) DO NOTHING",
                    )
                    .bind(s.box_id.clone())
                    .bind(s.box_label.clone())
                    .bind(st.recorded_at.clone())
                    .execute(conn).await.map(|_| ()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The same scan recorded at two nodes (a courier uploading at the township and at the county
/// before either heard of the other) arrives everywhere as two identical copies with different
/// recorders. Every node keeps the earliest recording (then the smaller node id), so where-is
/// and the custody chains name the same recorder at every tier whatever order the copies came
/// in: this copy is earlier than the stored one, and replaces its recorder, and the register
/// date of what it registers.
async fn first_recording(tx: &mut WriteTx, st: &StagedScan) -> Result<(), StoreError> {
    let s = &st.scan;
    with_tx!(&mut *tx, conn => {
        sqlx::query("UPDATE custody_scans SET recorded_at = $1, recorded_ms = $2 WHERE scan_id = $3")
            .bind(st.recorded_at.as_str())
            .bind(st.recorded_ms)
            .bind(s.scan_id.as_str())
            .execute(conn)
            .await
            .map(|_| ())
    })?;
    match (s.step, &s.document) {
        (Step::RegisterDocument, Some(doc)) => with_tx!(&mut *tx, conn => {
            sqlx::query("UPDATE custody_documents SET registered_at = $1 WHERE document_id = $2")
                .bind(st.recorded_at.as_str())
                .bind(doc.document_id.as_str())
                .execute(conn)
                .await
                .map(|_| ())
        })?,
        (Step::RegisterBox, _) => with_tx!(&mut *tx, conn => {
            sqlx::query("UPDATE custody_boxes SET registered_at = $1 WHERE box_id = $2")
                .bind(st.recorded_at.as_str())
                .bind(s.box_id.as_str())
                .execute(conn)
                .await
                .map(|_| ())
        })?,
        _ => {}
    }
    Ok(())
}

async fn record_conflict(
    tx: &mut WriteTx,
    scan: &Scan,
    township: &str,
    recorded_at: &str,
    detail: &str,
) -> Result<(), StoreError> {
    with_tx!(&mut *tx, conn => sqlx::query(
        "INSERT INTO custody_conflicts (scan_id, device_id, device_seq, township, recorded_at, scanned_ms, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(scan.scan_id.clone())
    .bind(scan.device_id.clone())
    .bind(scan.device_seq as i64)
    .bind(township.to_owned())
    .bind(recorded_at.to_owned())
    .bind(scan.scanned_unix_ms)
    .bind(detail.to_owned())
    .execute(conn).await.map(|_| ()))?;
    Ok(())
}

/// Folds an `AnomalyNote` (the wire edge has already refused a state a note cannot move to).
async fn fold_note(
    tx: &mut WriteTx,
    event: &CheckedEvent,
    note: &AnomalyNote,
) -> Result<Result<(), String>, StoreError> {
    if !matches!(note.to, AnomalyState::Explained | AnomalyState::Closed) || note.text.trim().is_empty() {
        return Ok(Err(format!(
            "anomaly note on {} must explain or close it with a text",
            note.key
        )));
    }
    with_tx!(&mut *tx, conn => sqlx::query(
        "INSERT INTO custody_anomaly_notes (anomaly_key, state, text, noted_by, noted_ms, township) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(note.key.clone())
    .bind(i64::from(note.to.to_wire()))
    .bind(note.text.clone())
    .bind(note.by.clone())
    .bind(physical_ms(event.event.hlc) as i64)
    .bind(event.route_key.to_string())
    .execute(conn).await.map(|_| ()))?;
    Ok(Ok(()))
}

/// A stored scan: kept as the bytes of its `Scan` message (the replicated event's own form), and
/// converted as it is read.
/// A paper file as the document register holds it (kind as its wire number).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegisteredDocument {
    case_id: String,
    kind: i64,
    pages: i64,
    title: String,
}

impl RegisteredDocument {
    fn of(doc: &DocumentInfo) -> Self {
        RegisteredDocument {
            case_id: doc.case_id.clone(),
            kind: i64::from(DocumentKind::to_wire(doc.kind)),
            pages: i64::from(doc.pages),
            title: doc.title.clone(),
        }
    }
}

/// How registering `wanted` under an id already registered as `earlier` clashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clash {
    /// The id belongs to another case: registering it would merge two cases' paper.
    AnotherCase,
    /// The id belongs to another paper of the same case.
    AnotherPaper,
}

/// Whether registering `wanted` under an id already registered as `earlier` is refused. `None`
/// when it is the same paper of the same case again, which is recorded as before and changes
/// nothing (the register keeps the first registration).
fn registration_clash(earlier: &RegisteredDocument, wanted: &RegisteredDocument) -> Option<Clash> {
    if earlier.case_id != wanted.case_id {
        Some(Clash::AnotherCase)
    } else if earlier != wanted {
        Some(Clash::AnotherPaper)
    } else {
        None
    }
}

/// What [`Store::next_document_id`] assigns: the case (id and receipt number) and the id its next
/// paper file is registered and labelled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedDocument {
    pub case_id: String,
    pub case_number: String,
    pub document_id: String,
}

fn decode_scan(bytes: &[u8]) -> Result<Scan, StoreError> {
    wire::decode_scan(bytes).map_err(|e| StoreError::Corrupt(format!("custody scan: {e}")))
}

/// A stored scan with its bookkeeping.
struct StoredScan {
    recorded: RecordedScan,
    retracted: bool,
}

/// The columns a stored scan is read with. Whether an error declaration took the scan back is
/// looked up as it is read, so a declaration that arrives before the scan it corrects (devices
/// upload out of order) needs no repair when the scan comes.
const SCAN_COLUMNS: &str = "scan, recorded_at, recorded_ms, (SELECT d.scan_id FROM custody_scans d \
     WHERE d.corrects = custody_scans.scan_id AND d.step = 12 LIMIT 1) AS retracted_by"; // 12: ERROR_DECLARATION

/// A row as [`SCAN_COLUMNS`] selects it.
type ScanRow = (Vec<u8>, String, i64, Option<String>);

fn stored_from_row((bytes, recorded_at, recorded_ms, retracted_by): ScanRow) -> Result<StoredScan, StoreError> {
    Ok(StoredScan {
        recorded: RecordedScan {
            scan: decode_scan(&bytes)?,
            recorded_at,
            recorded_ms,
        },
        retracted: retracted_by.is_some(),
    })
}

fn link(s: &StoredScan, custodian_after: &str, via_container: bool) -> CustodyLink {
    let step = s.recorded.scan.step;
    // The same CBV words the EPCIS export uses, so the chain and the export never disagree.
    CustodyLink {
        scan_id: s.recorded.scan.scan_id.clone(),
        step,
        biz_step: epcis::biz_step(step),
        disposition: epcis::scan_disposition(&s.recorded.scan),
        scanned_unix_ms: s.recorded.scan.scanned_unix_ms,
        principal: s.recorded.scan.principal.clone(),
        place: if s.recorded.scan.place.is_empty() {
            s.recorded.recorded_at.clone()
        } else {
            s.recorded.scan.place.clone()
        },
        custodian_after: custodian_after.to_owned(),
        via_container,
        voided: s.retracted,
        recorded_at: s.recorded.recorded_at.clone(),
    }
}

fn event_order(a: &CustodyLink, b: &CustodyLink) -> std::cmp::Ordering {
    (a.scanned_unix_ms, &a.scan_id).cmp(&(b.scanned_unix_ms, &b.scan_id))
}

impl Store {
    /// The custody time limits this node judges waiting states by. The same at every node (no
    /// per-node setting): two nodes holding the same scans must list the same anomalies.
    pub fn custody_limits(&self) -> CustodyLimits {
        CustodyLimits::default()
    }

    /// The node a scan concerns (its route key): the township end of its trip (from the scan,
    /// a PACK in the same upload, or the PACK stored here), the node where its document's case
    /// started, or this node. A trip scan whose trip is unknown here goes to the county's whole
    /// tree: a box accepted at the wrong township must still reach the one it was sent to.
    async fn scan_route_key(
        &self,
        scan: &Scan,
        packed_in_upload: &HashMap<String, NodeId>,
    ) -> Result<NodeId, StoreError> {
        let here = self.node().clone();
        match scan.step {
            Step::RegisterDocument => {
                let case_id = scan.document.as_ref().map(|d| d.case_id.clone()).unwrap_or_default();
                let origin: Option<String> = with_pool!(self.pool(), conn => sqlx::query_scalar("SELECT origin FROM cases WHERE case_id = $1")
                    .bind(case_id)
                    .fetch_optional(conn).await)?;
                Ok(origin.and_then(|o| NodeId::new(o).ok()).unwrap_or(here))
            }
            Step::RegisterBox => Ok(here),
            Step::ErrorDeclaration => {
                let township: Option<String> = with_pool!(self.pool(), conn => sqlx::query_scalar("SELECT township FROM custody_scans WHERE scan_id = $1")
                        .bind(scan.corrects_scan_id.clone())
                        .fetch_optional(conn).await)?;
                Ok(township
                    .and_then(|t| NodeId::new(t).ok())
                    .unwrap_or_else(|| here.county()))
            }
            _ => {
                if let Some(key) = township_end(&scan.origin, &scan.destination) {
                    return Ok(key);
                }
                if let Some(key) = packed_in_upload.get(&scan.trip_id) {
                    return Ok(key.clone());
                }
                let stored: Option<String> = with_pool!(self.pool(), conn => sqlx::query_scalar("SELECT township FROM custody_scans WHERE trip_id = $1 AND step = $2 LIMIT 1")
                        .bind(scan.trip_id.clone())
                        .bind(i64::from(Step::Pack.to_wire()))
                        .fetch_optional(conn).await)?;
                Ok(stored
                    .and_then(|t| NodeId::new(t).ok())
                    .unwrap_or_else(|| here.county()))
            }
        }
    }

    /// Records scans uploaded by `uploader` (a courier records only their own scans). Each
    /// well-formed scan not known here is authored as one `CustodyScan` event, all in one
    /// transaction; the outcome of every scan is returned in order.
    pub async fn record_scans(
        &self,
        scans: Vec<Scan>,
        uploader: &Principal,
    ) -> Result<Vec<(String, ScanResult)>, CustodyError> {
        if scans.len() > MAX_SCANS_PER_UPLOAD {
            return Err(CustodyError::Invalid(format!(
                "{} scans in one upload; send at most {MAX_SCANS_PER_UPLOAD} at a time",
                scans.len()
            )));
        }
        let known = self.known_scans(&scans).await?;
        let now = self.now_ms();
        // Trips packed in this very upload: their later scans go where the PACK goes.
        let packed_in_upload: HashMap<String, NodeId> = scans
            .iter()
            .filter(|s| s.step == Step::Pack)
            .filter_map(|s| Some((s.trip_id.clone(), township_end(&s.origin, &s.destination)?)))
            .collect();
        let mut outcomes = Vec::with_capacity(scans.len());
        let mut events = Vec::new();
        let mut in_this_upload: HashMap<String, Vec<u8>> = HashMap::new();
        // Documents registered by earlier scans of this upload: a later one may not reuse the id.
        let mut registered_in_upload: HashMap<String, RegisteredDocument> = HashMap::new();
        for scan in scans {
            let id = scan.scan_id.clone();
            if let Err(reason) = check_scan(&scan) {
                outcomes.push((id, ScanResult::Refused(reason)));
                continue;
            }
            if let Principal::Courier { .. } = uploader
                && scan.principal != uploader.to_string()
            {
                outcomes.push((
                    id,
                    ScanResult::Refused(format!(
                        "{uploader} may upload only their own scans, not one made by {}",
                        scan.principal
                    )),
                ));
                continue;
            }
            let bytes = wire::encode_scan(&scan);
            let seen = known.get(&id).or_else(|| in_this_upload.get(&id));
            if seen.is_some_and(|b| *b == bytes) {
                outcomes.push((id, ScanResult::Duplicate));
                continue;
            }
            if let (Step::RegisterDocument, Some(doc)) = (scan.step, &scan.document) {
                let wanted = RegisteredDocument::of(doc);
                let earlier = match registered_in_upload.get(&doc.document_id) {
                    Some(earlier) => Some(earlier.clone()),
                    None => self.registered_document(&doc.document_id).await?,
                };
                if let Some(earlier) = earlier
                    && let Some(clash) = registration_clash(&earlier, &wanted)
                {
                    let reason = self.clash_sentence(&doc.document_id, &earlier, &wanted, clash).await?;
                    outcomes.push((id, ScanResult::Refused(reason)));
                    continue;
                }
                registered_in_upload.insert(doc.document_id.clone(), wanted);
            }
            let conflicting = seen.is_some();
            let route_key = self.scan_route_key(&scan, &packed_in_upload).await?;
            in_this_upload.insert(id.clone(), bytes);
            events.push(NewEvent {
                principal: uploader.to_string(),
                subject: format!("scan:{id}"),
                route_key,
                route_class: RouteClass::Subtree,
                body: wire::scan_body(&scan, self.node().as_str(), now),
            });
            outcomes.push((
                id,
                if conflicting {
                    ScanResult::Conflicting(
                        "a scan with this id was recorded before with other content; both are kept and the conflict \
                         is raised as an anomaly"
                            .to_owned(),
                    )
                } else {
                    ScanResult::Recorded
                },
            ));
        }
        if !events.is_empty() {
            self.author(events).await?;
        }
        Ok(outcomes)
    }

    /// The sentence refusing a registration that clashes with an earlier one, naming the cases
    /// by their receipt numbers where this node knows them (by id otherwise).
    async fn clash_sentence(
        &self,
        document_id: &str,
        earlier: &RegisteredDocument,
        wanted: &RegisteredDocument,
        clash: Clash,
    ) -> Result<String, StoreError> {
        let next = "下一步：不带 --doc 重新登记，由系统给这份材料分配新编号并打印标签";
        let earlier_case = self.case_label(&earlier.case_id).await?;
        Ok(match clash {
            Clash::AnotherCase => format!(
                "材料编号 {document_id} 已登记在办件 {earlier_case} 名下，不能再登记给办件 {}，什么也没有改变；{next}",
                self.case_label(&wanted.case_id).await?
            ),
            Clash::AnotherPaper => format!(
                "材料编号 {document_id} 已登记为办件 {earlier_case} 的另一份材料（{}，{} 页），什么也没有改变；{next}",
                earlier.title, earlier.pages
            ),
        })
    }

    /// A case as a clerk reads it: its receipt number when this node knows the case, else its id.
    async fn case_label(&self, case_id: &str) -> Result<String, StoreError> {
        let Ok(id) = case_id.parse::<crate::case::CaseId>() else {
            return Ok(case_id.to_owned());
        };
        Ok(match self.case(&CaseRef::Id(id)).await? {
            Some(view) => view.number.to_string(),
            None => case_id.to_owned(),
        })
    }

    /// The document `document_id` as registered here, if it is.
    async fn registered_document(&self, document_id: &str) -> Result<Option<RegisteredDocument>, StoreError> {
        let row: Option<(String, i64, i64, String)> = with_pool!(self.pool(), conn => {
            sqlx::query_as("SELECT case_id, kind, pages, title FROM custody_documents WHERE document_id = $1")
                .bind(document_id)
                .fetch_optional(conn)
                .await
        })?;
        Ok(row.map(|(case_id, kind, pages, title)| RegisteredDocument {
            case_id,
            kind,
            pages,
            title,
        }))
    }

    /// The id the next paper file of `case` gets ([`document_id`]): one past the highest
    /// sequence of the case's assigned ids registered here, skipping any id already registered
    /// (to whatever case). The case must be known here; registration happens where the case is.
    ///
    /// Allocation reads, it does not reserve: the registration scan that uses the id is what
    /// takes it, and [`Store::record_scans`] refuses a second registration of an id, for another
    /// case or for another paper, so two desks that were given the same id cannot merge papers.
    pub async fn next_document_id(&self, case: &CaseRef) -> Result<AssignedDocument, CustodyError> {
        let view = self.case(case).await?.ok_or_else(|| {
            CustodyError::NotFound(format!(
                "节点 {} 不知道办件 {case}；下一步：在持有该办件的节点（受理它的村居服务站或镇）登记材料",
                self.node()
            ))
        })?;
        let case_id = view.id.to_string();
        let case_number = view.number.to_string();
        let ids: Vec<String> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar("SELECT document_id FROM custody_documents WHERE case_id = $1")
                .bind(case_id.as_str())
                .fetch_all(conn)
                .await
        })
        .map_err(StoreError::from)?;
        let mut seq = ids
            .iter()
            .filter_map(|id| document_seq(&case_number, id))
            .max()
            .unwrap_or(0);
        loop {
            seq = seq
                .checked_add(1)
                .ok_or_else(|| CustodyError::Invalid(format!("办件 {case_number} 的材料编号已用尽")))?;
            let candidate = document_id(&case_number, seq);
            if self.registered_document(&candidate).await?.is_none() {
                return Ok(AssignedDocument {
                    case_id,
                    case_number,
                    document_id: candidate,
                });
            }
        }
    }

    /// The stored bytes of those of `scans` already recorded here.
    async fn known_scans(&self, scans: &[Scan]) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        let mut known = HashMap::new();
        for chunk in scans.chunks(500) {
            let list = crate::store::value_rows(1, chunk.len(), self.backend());
            let sql = format!("SELECT scan_id, scan FROM custody_scans WHERE scan_id IN {list}");
            let rows: Vec<(String, Vec<u8>)> = with_pool!(self.pool(), conn => {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for scan in chunk {
                    query = query.bind(scan.scan_id.as_str());
                }
                query.fetch_all(conn).await
            })?;
            known.extend(rows);
        }
        Ok(known)
    }

    /// Notes an anomaly explained or closed, by an operator of this node.
    pub async fn note_anomaly(
        &self,
        key: &str,
        to: AnomalyState,
        text: &str,
        by: &Principal,
    ) -> Result<Anomaly, CustodyError> {
        if !matches!(to, AnomalyState::Explained | AnomalyState::Closed) {
            return Err(CustodyError::Invalid(
                "to_state: an anomaly is explained (EXPLAINED) or closed (CLOSED)".into(),
            ));
        }
        if text.trim().is_empty() {
            return Err(CustodyError::Invalid(
                "text: say what happened (explaining) or why it is settled (closing)".into(),
            ));
        }
        let current = self
            .anomalies(None)
            .await?
            .into_iter()
            .find(|a| a.key == key)
            .ok_or_else(|| CustodyError::NotFound(format!("no anomaly {key} is known at {}", self.node())))?;
        if current.state == AnomalyState::Closed {
            return Err(CustodyError::Invalid(format!("anomaly {key} is already closed")));
        }
        let township = NodeId::new(current.township.clone()).unwrap_or_else(|_| self.node().clone());
        self.author(vec![NewEvent {
            principal: by.to_string(),
            subject: format!("anomaly:{key}"),
            route_key: township,
            route_class: RouteClass::Subtree,
            body: wire::note_body(&AnomalyNote {
                key: key.to_owned(),
                to,
                text: text.trim().to_owned(),
                by: by.to_string(),
            }),
        }])
        .await?;
        self.anomalies(None)
            .await?
            .into_iter()
            .find(|a| a.key == key)
            .ok_or_else(|| CustodyError::NotFound(format!("anomaly {key} vanished while being noted")))
    }

    async fn scans_where(&self, condition: &str, value: &str) -> Result<Vec<StoredScan>, StoreError> {
        let sql = format!("SELECT {SCAN_COLUMNS} FROM custody_scans WHERE {condition}");
        let rows: Vec<ScanRow> = with_pool!(self.pool(), conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(value).fetch_all(conn).await
        })?;
        rows.into_iter().map(stored_from_row).collect()
    }

    async fn trip(&self, trip_id: &str) -> Result<(TripView, Vec<StoredScan>), StoreError> {
        let scans = self.scans_where("trip_id = $1", trip_id).await?;
        let live: Vec<RecordedScan> = scans
            .iter()
            .filter(|s| !s.retracted)
            .map(|s| s.recorded.clone())
            .collect();
        Ok((fold_trip(trip_id, &live, self.now_ms(), &self.custody_limits()), scans))
    }

    /// Where a document, a box or every document of a case is, with the custody chains.
    pub async fn where_is(&self, target: &WhereTarget) -> Result<Vec<Whereabouts>, CustodyError> {
        match target {
            WhereTarget::Document(id) => Ok(vec![self.where_is_document(id).await?]),
            WhereTarget::Box(id) => Ok(vec![self.where_is_box(id).await?]),
            WhereTarget::Case(case) => {
                let docs: Vec<String> = with_pool!(self.pool(), conn => {
                    sqlx::query_scalar("SELECT document_id FROM custody_documents WHERE case_id = $1 ORDER BY document_id")
                        .bind(case.as_str())
                        .fetch_all(conn)
                        .await
                })
                .map_err(StoreError::from)?;
                if docs.is_empty() {
                    return Err(CustodyError::NotFound(format!(
                        "no paper file of case {case} is registered at {}",
                        self.node()
                    )));
                }
                let mut out = Vec::with_capacity(docs.len());
                for doc in docs {
                    out.push(self.where_is_document(&doc).await?);
                }
                Ok(out)
            }
        }
    }

    async fn where_is_document(&self, id: &str) -> Result<Whereabouts, CustodyError> {
        let case_id: Option<String> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar("SELECT case_id FROM custody_documents WHERE document_id = $1")
                .bind(id)
                .fetch_optional(conn)
                .await
        })
        .map_err(StoreError::from)?;
        let own = self
            .scans_where(
                "scan_id IN (SELECT scan_id FROM custody_objects WHERE object_id = $1)",
                id,
            )
            .await?;
        if case_id.is_none() && own.is_empty() {
            return Err(CustodyError::NotFound(format!(
                "no document {id} is known at {}",
                self.node()
            )));
        }
        let mut chain = Vec::new();
        let mut trips: BTreeMap<String, TripView> = BTreeMap::new();
        for s in &own {
            let trip_id = &s.recorded.scan.trip_id;
            if !trip_id.is_empty() && !trips.contains_key(trip_id) {
                let (view, scans) = self.trip(trip_id).await?;
                for box_scan in &scans {
                    let touches = box_scan.recorded.scan.document_ids.iter().any(|d| d == id);
                    if touches {
                        continue; // listed below as the document's own scan
                    }
                    let after = custodian_after(&view, &box_scan.recorded.scan.scan_id);
                    chain.push(link(box_scan, &after, true));
                }
                trips.insert(trip_id.clone(), view);
            }
        }
        for s in &own {
            let after = trips
                .get(&s.recorded.scan.trip_id)
                .map(|v| custodian_after(v, &s.recorded.scan.scan_id))
                .unwrap_or_else(|| format!("node:{}", s.recorded.recorded_at));
            chain.push(link(s, &after, false));
        }
        chain.sort_by(event_order);
        // The latest scan of the document itself decides which trip (if any) it is on.
        let latest = own
            .iter()
            .filter(|s| !s.retracted)
            .max_by_key(|s| (s.recorded.scan.scanned_unix_ms, s.recorded.scan.scan_id.clone()));
        let mut location = Location {
            case_id: case_id.clone().unwrap_or_default(),
            ..Location::unknown(ObjectKind::Document, id)
        };
        if let Some(latest) = latest {
            let scan = &latest.recorded.scan;
            match (scan.step, trips.get(&scan.trip_id)) {
                (Step::Pack, Some(trip))
                    if trip.state == TripState::Unpacked && !trip.unpacked.iter().any(|d| d == id) =>
                {
                    location.place = format!("missing: not found when box {} was unpacked", trip.box_id);
                    location.container = trip.box_id.clone();
                    location.trip_id = trip.trip_id.clone();
                    location.custodian = trip.custody.custodian.clone();
                    location.since_unix_ms = trip.custody.since_ms;
                }
                (Step::Pack, Some(trip)) => {
                    location.container = trip.box_id.clone();
                    location.trip_id = trip.trip_id.clone();
                    location.custodian = trip.custody.custodian.clone();
                    location.pending_custodian = trip.custody.pending.clone();
                    location.place = trip.custody.place.clone();
                    location.since_unix_ms = trip.custody.since_ms.max(scan.scanned_unix_ms);
                    location.verified = trip.custody.scan_id == scan.scan_id;
                }
                (Step::Unpack, Some(trip)) => {
                    location.custodian = trip.custody.custodian.clone();
                    location.place = trip.custody.place.clone();
                    location.since_unix_ms = scan.scanned_unix_ms;
                    location.verified = true;
                }
                _ => {
                    location.custodian = format!("node:{}", latest.recorded.recorded_at);
                    location.place = latest.recorded.recorded_at.clone();
                    location.since_unix_ms = scan.scanned_unix_ms;
                    location.verified = true;
                }
            }
        }
        Ok(Whereabouts { location, chain })
    }

    /// Every scan of box `id` and each of its trips folded; NOT_FOUND for a box never scanned.
    async fn box_scans_and_trips(
        &self,
        id: &str,
    ) -> Result<(Vec<StoredScan>, BTreeMap<String, TripView>), CustodyError> {
        let scans = self.scans_where("box_id = $1", id).await?;
        if scans.is_empty() {
            return Err(CustodyError::NotFound(format!(
                "no box {id} is known at {}",
                self.node()
            )));
        }
        let mut trips: BTreeMap<String, TripView> = BTreeMap::new();
        for s in &scans {
            let trip_id = &s.recorded.scan.trip_id;
            if !trip_id.is_empty() && !trips.contains_key(trip_id) {
                trips.insert(trip_id.clone(), self.trip(trip_id).await?.0);
            }
        }
        Ok((scans, trips))
    }

    async fn where_is_box(&self, id: &str) -> Result<Whereabouts, CustodyError> {
        let (scans, trips) = self.box_scans_and_trips(id).await?;
        Ok(box_whereabouts(id, &scans, &trips))
    }

    /// Every scan of a box (or one trip of it), oldest first, and its trips.
    pub async fn box_history(
        &self,
        box_id: &str,
        trip_id: Option<&str>,
    ) -> Result<(Vec<CustodyLink>, Vec<TripView>), CustodyError> {
        let (scans, folded) = self.box_scans_and_trips(box_id).await?;
        let whereabouts = box_whereabouts(box_id, &scans, &folded);
        let mut trips: Vec<TripView> = folded
            .values()
            .filter(|t| trip_id.is_none_or(|wanted| wanted == t.trip_id))
            .cloned()
            .collect();
        trips.sort_by_key(|t| t.packed_ms);
        let links = whereabouts
            .chain
            .into_iter()
            .filter(|l| {
                trip_id.is_none()
                    || scans.iter().any(|s| {
                        s.recorded.scan.scan_id == l.scan_id && Some(s.recorded.scan.trip_id.as_str()) == trip_id
                    })
            })
            .collect();
        Ok((links, trips))
    }

    /// The anomalies this node sees now (see the module comment), with their notes; `township`
    /// narrows to one township's.
    pub async fn anomalies(&self, township: Option<&NodeId>) -> Result<Vec<Anomaly>, StoreError> {
        let now = self.now_ms();
        let mut found: BTreeMap<String, Anomaly> = BTreeMap::new();
        let mut add =
            |key: String, kind: AnomalyKind, detail: String, at: i64, township: &str, ids: (&str, &str, &str, &str)| {
                found.entry(key.clone()).or_insert_with(|| Anomaly {
                    key,
                    kind,
                    state: AnomalyState::Open,
                    detail,
                    box_id: ids.0.to_owned(),
                    trip_id: ids.1.to_owned(),
                    document_id: ids.2.to_owned(),
                    township: township.to_owned(),
                    detected_unix_ms: at,
                    explanation: String::new(),
                    close_reason: String::new(),
                    noted_by: String::new(),
                    scan_id: ids.3.to_owned(),
                });
            };
        // Recent trips, each judged on its own, then what spans trips.
        let trip_ids: Vec<(String, String)> = with_pool!(self.pool(), conn => sqlx::query_as(
            "SELECT trip_id, MIN(township) FROM custody_scans WHERE trip_id <> '' AND scanned_ms > $1 GROUP BY trip_id",
        )
        .bind(now - ANOMALY_WINDOW_MS)
        .fetch_all(conn).await)?;
        let registered_docs: BTreeSet<String> =
            with_pool!(self.pool(), conn => sqlx::query_scalar("SELECT document_id FROM custody_documents")
            .fetch_all(conn).await)?
            .into_iter()
            .collect();
        let mut trips: Vec<(TripView, String)> = Vec::new();
        for (trip_id, recorded_for) in trip_ids {
            let (view, scans) = self.trip(&trip_id).await?;
            // The township concerned is the trip's own (from its PACK), the same at every node;
            // for a trip never packed, the township where its first scan was recorded, or the
            // township the scanning courier or clerk belongs to.
            let township = township_end(&view.origin, &view.destination)
                .or_else(|| {
                    let first = scans.iter().min_by_key(|s| s.recorded.scan.scanned_unix_ms)?;
                    let recorded = NodeId::new(first.recorded.recorded_at.clone()).ok();
                    let scanner = first
                        .recorded
                        .scan
                        .principal
                        .parse::<Principal>()
                        .ok()
                        .map(|p| p.place().clone());
                    [recorded, scanner]
                        .into_iter()
                        .flatten()
                        .find(|n| n.tier() != Tier::County)
                        .map(|n| township_of(&n))
                })
                .map(|t| t.to_string())
                .unwrap_or(recorded_for);
            trips.push((view, township));
        }
        for (t, tw) in &trips {
            for f in &t.findings {
                let at = t.custody.since_ms.max(t.packed_ms);
                add(
                    f.key.clone(),
                    f.kind,
                    f.detail.clone(),
                    at,
                    tw,
                    (&t.box_id, &t.trip_id, &f.document_id, &f.scan_id),
                );
            }
            for doc in &t.manifest {
                if !registered_docs.contains(doc) {
                    add(
                        format!("unknown_id/document/{doc}"),
                        AnomalyKind::UnknownId,
                        format!(
                            "document {doc} was packed in box {} for trip {} but was never registered",
                            t.box_id, t.trip_id
                        ),
                        t.packed_ms,
                        tw,
                        (&t.box_id, &t.trip_id, doc, ""),
                    );
                }
            }
        }
        // A box packed, or a document packed, while still on a trip that has not ended.
        let ended_at = |t: &TripView| -> Option<i64> { t.state.ended().then_some(t.custody.since_ms) };
        for (later, tw) in &trips {
            if later.state == TripState::NotPacked {
                continue;
            }
            for (earlier, _) in &trips {
                if earlier.trip_id == later.trip_id
                    || earlier.packed_ms > later.packed_ms
                    || earlier.state == TripState::NotPacked
                {
                    continue;
                }
                if earlier.packed_ms == later.packed_ms && earlier.trip_id > later.trip_id {
                    continue;
                }
                let still_on = ended_at(earlier).is_none_or(|end| end > later.packed_ms);
                if !still_on {
                    continue;
                }
                // A trip held here without its PACK has no box yet (`fold_trip` learns it from
                // the PACK): two such trips are not the same box.
                if !earlier.box_id.is_empty() && earlier.box_id == later.box_id {
                    add(
                        format!("packed_not_empty/trip/{}", later.trip_id),
                        AnomalyKind::PackedNotEmpty,
                        format!(
                            "box {} was packed for trip {} while still on trip {}, which was never unpacked",
                            later.box_id, later.trip_id, earlier.trip_id
                        ),
                        later.packed_ms,
                        tw,
                        (&later.box_id, &later.trip_id, "", ""),
                    );
                }
                for doc in later.manifest.iter().filter(|d| earlier.manifest.contains(d)) {
                    add(
                        format!("document_in_two_containers/{doc}/{}", later.trip_id),
                        AnomalyKind::DocumentInTwoContainers,
                        format!(
                            "document {doc} was packed in box {} (trip {}) while still in box {} (trip {})",
                            later.box_id, later.trip_id, earlier.box_id, earlier.trip_id
                        ),
                        later.packed_ms,
                        tw,
                        (&later.box_id, &later.trip_id, doc, ""),
                    );
                }
            }
        }
        // Device sequence gaps, judged at the county only: it is the one node that receives every
        // scan of every device (a courier serves several townships, and each township holds only
        // its own trips' scans, so a township would see gaps that are not there).
        let devices: Vec<(String, i64, i64, String)> = if self.node().tier() != Tier::County {
            Vec::new()
        } else {
            with_pool!(self.pool(), conn => sqlx::query_as(
                "SELECT device_id, MAX(device_seq), COUNT(DISTINCT device_seq), MAX(principal) FROM custody_scans \
             GROUP BY device_id",
            )
            .fetch_all(conn).await)?
        };
        for (device, max, count, scanner) in devices {
            if count >= max {
                continue;
            }
            // The device's own township (its courier's or clerk's place), unless the scans
            // around a gap say which trip's township it concerns (below).
            let own = scanner
                .parse::<Principal>()
                .map(|p| township_of(p.place()).to_string())
                .unwrap_or_else(|_| self.node().to_string());
            let seqs: BTreeSet<i64> = with_pool!(self.pool(), conn => sqlx::query_scalar("SELECT device_seq FROM custody_scans WHERE device_id = $1")
                .bind(device.clone())
                .fetch_all(conn).await)?
                .into_iter()
                .collect();
            let mut missing = (1..=max).filter(|s| !seqs.contains(s)).peekable();
            while let Some(from) = missing.next() {
                let mut to = from;
                while missing.peek() == Some(&(to + 1)) {
                    to += 1;
                    missing.next();
                }
                // The trip of the first scan after the gap (or the last before it), and the
                // township its PACK went to.
                let packed_for: Option<String> = with_pool!(self.pool(), conn => sqlx::query_scalar(
                    "SELECT p.township FROM custody_scans s JOIN custody_scans p ON p.trip_id = s.trip_id \
                     AND p.step = $1 WHERE s.device_id = $2 AND s.trip_id <> '' \
                     ORDER BY CASE WHEN s.device_seq > $3 THEN s.device_seq ELSE $4 - s.device_seq END LIMIT 1",
                )
                .bind(i64::from(Step::Pack.to_wire()))
                .bind(device.clone())
                .bind(to)
                .bind(i64::MAX / 2)
                .fetch_optional(conn).await)?;
                let tw = packed_for.unwrap_or_else(|| own.clone());
                add(
                    format!("device_sequence_gap/{device}/{from}"),
                    AnomalyKind::DeviceSequenceGap,
                    format!(
                        "device {device} has not delivered scans {from}–{to}: they were lost or are still on the device"
                    ),
                    now,
                    &tw,
                    ("", "", "", ""),
                );
            }
        }
        // Conflicting copies: of one scan id, or two scan ids for one device number.
        let conflicts: Vec<(String, String, i64, String, String, i64, String)> = with_pool!(self.pool(), conn => sqlx::query_as(
            "SELECT scan_id, device_id, device_seq, township, recorded_at, scanned_ms, detail FROM custody_conflicts",
        )
        .fetch_all(conn).await)?;
        for (scan_id, _device, _seq, tw, recorded_at, at, detail) in conflicts {
            add(
                format!("conflicting_duplicate/scan/{scan_id}"),
                AnomalyKind::ConflictingDuplicate,
                format!("scan {scan_id} (recorded at {recorded_at}): {detail}"),
                at,
                &tw,
                ("", "", "", &scan_id),
            );
        }
        let doubled: Vec<(String, i64, String, i64)> = with_pool!(self.pool(), conn => sqlx::query_as(
            "SELECT device_id, device_seq, MAX(township), MIN(scanned_ms) FROM custody_scans \
             GROUP BY device_id, device_seq HAVING COUNT(*) > 1",
        )
        .fetch_all(conn).await)?;
        for (device, seq, tw, at) in doubled {
            add(
                format!("conflicting_duplicate/device/{device}/{seq}"),
                AnomalyKind::ConflictingDuplicate,
                format!("device {device} numbered two different scans {seq}"),
                at,
                &tw,
                ("", "", "", ""),
            );
        }
        // Notes: the latest decides the state.
        let notes: Vec<(String, i64, String, String)> = with_pool!(self.pool(), conn => sqlx::query_as(
            "SELECT anomaly_key, state, text, noted_by FROM custody_anomaly_notes ORDER BY noted_ms, state",
        )
        .fetch_all(conn).await)?;
        for (key, state, text, by) in notes {
            if let Some(a) = found.get_mut(&key) {
                a.state = i32::try_from(state)
                    .ok()
                    .and_then(|s| AnomalyState::from_wire(s, "state").ok().flatten())
                    .ok_or_else(|| StoreError::Corrupt(format!("anomaly note on {key}: state {state}")))?;
                a.noted_by = by;
                if a.state == AnomalyState::Closed {
                    a.close_reason = text;
                } else {
                    a.explanation = text;
                }
            }
        }
        let mut out: Vec<Anomaly> = found
            .into_values()
            .filter(|a| township.is_none_or(|t| a.township == t.as_str()))
            .collect();
        out.sort_by(|a, b| (a.detected_unix_ms, &a.key).cmp(&(b.detected_unix_ms, &b.key)));
        Ok(out)
    }

    /// The case's registered paper originals that are not at this node now, each with a
    /// sentence saying where it is (empty when every original is here or none is registered).
    pub async fn originals_elsewhere(&self, case_id: &str) -> Result<Vec<String>, StoreError> {
        let originals: Vec<String> = with_pool!(self.pool(), conn => sqlx::query_scalar(
            "SELECT document_id FROM custody_documents WHERE case_id = $1 AND kind = $2 ORDER BY document_id",
        )
        .bind(case_id.to_owned())
        .bind(i64::from(DocumentKind::to_wire(Some(DocumentKind::Original))))
        .fetch_all(conn).await)?;
        let mut elsewhere = Vec::new();
        for doc in originals {
            let w = match self.where_is_document(&doc).await {
                Ok(w) => w,
                Err(CustodyError::Store(e)) => return Err(e),
                Err(_) => continue,
            };
            let l = &w.location;
            if l.place == self.node().as_str() && l.container.is_empty() {
                continue;
            }
            let held = if l.container.is_empty() {
                format!("at {}", l.place)
            } else {
                format!("in box {} ({}), {}", l.container, l.custodian, l.place)
            };
            elsewhere.push(format!("original {doc} is {held}"));
        }
        Ok(elsewhere)
    }

    /// Every scan this node holds (or those of one box / one case's documents), oldest first,
    /// with whether an error declaration took it back, for the EPCIS export.
    pub async fn scans_for_export(
        &self,
        box_id: Option<&str>,
        case_id: Option<&str>,
    ) -> Result<Vec<(Scan, String, i64, bool)>, StoreError> {
        let sql = match (box_id, case_id) {
            (Some(_), _) => format!(
                "SELECT {SCAN_COLUMNS} FROM custody_scans WHERE box_id = $1 OR corrects IN \
                 (SELECT scan_id FROM custody_scans WHERE box_id = $1) ORDER BY scanned_ms, scan_id"
            ),
            (None, Some(_)) => format!(
                "SELECT {SCAN_COLUMNS} FROM custody_scans WHERE scan_id IN (SELECT o.scan_id FROM custody_objects o \
                 JOIN custody_documents d ON d.document_id = o.object_id WHERE d.case_id = $1) \
                 ORDER BY scanned_ms, scan_id"
            ),
            (None, None) => format!("SELECT {SCAN_COLUMNS} FROM custody_scans ORDER BY scanned_ms, scan_id"),
        };
        let filter = box_id.or(case_id);
        let rows: Vec<ScanRow> = with_pool!(self.pool(), conn => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            if let Some(value) = filter {
                query = query.bind(value);
            }
            query.fetch_all(conn).await
        })?;
        rows.into_iter()
            .map(|r| {
                let s = stored_from_row(r)?;
                Ok((
                    s.recorded.scan,
                    s.recorded.recorded_at,
                    s.recorded.recorded_ms,
                    s.retracted,
                ))
            })
            .collect()
    }
}

/// The township a node belongs to (itself for a township or the county).
fn township_of(node: &NodeId) -> NodeId {
    match (node.tier(), node.parent()) {
        (Tier::Village, Some(parent)) => parent,
        _ => node.clone(),
    }
}

/// The township end of a trip between `origin` and `destination` (the end that is not the
/// county), when they are division codes.
fn township_end(origin: &str, destination: &str) -> Option<NodeId> {
    match (NodeId::new(origin).ok(), NodeId::new(destination).ok()) {
        (Some(o), Some(d)) if o.tier() == Tier::County => Some(d),
        (Some(o), _) => Some(o),
        (None, Some(d)) => Some(d),
        _ => None,
    }
}

/// Where a box is, from its scans and its trips folded: the trip packed last (by event time)
/// says where it is now.
fn box_whereabouts(id: &str, scans: &[StoredScan], trips: &BTreeMap<String, TripView>) -> Whereabouts {
    let mut chain: Vec<CustodyLink> = scans
        .iter()
        .map(|s| {
            let after = trips
                .get(&s.recorded.scan.trip_id)
                .map(|v| custodian_after(v, &s.recorded.scan.scan_id))
                .unwrap_or_else(|| format!("node:{}", s.recorded.recorded_at));
            link(s, &after, false)
        })
        .collect();
    chain.sort_by(event_order);
    let mut location = Location::unknown(ObjectKind::Box, id);
    // The trip packed last (by event time) is where the box is now.
    let current = trips.values().max_by_key(|t| (t.packed_ms, t.trip_id.clone()));
    match current {
        Some(trip) => {
            location.trip_id = trip.trip_id.clone();
            location.custodian = trip.custody.custodian.clone();
            location.pending_custodian = trip.custody.pending.clone();
            location.place = trip.custody.place.clone();
            location.since_unix_ms = trip.custody.since_ms;
            let last = chain.iter().rev().find(|l| !l.voided);
            location.verified = last.is_some_and(|l| l.scan_id == trip.custody.scan_id);
        }
        None => {
            let registered = scans.iter().find(|s| !s.retracted);
            if let Some(s) = registered {
                location.custodian = format!("node:{}", s.recorded.recorded_at);
                location.place = s.recorded.recorded_at.clone();
                location.since_unix_ms = s.recorded.scan.scanned_unix_ms;
                location.verified = true;
            }
        }
    }
    Whereabouts { location, chain }
}

fn custodian_after(trip: &TripView, scan_id: &str) -> String {
    trip.custodian_after
        .iter()
        .find(|(id, _)| id == scan_id)
        .map(|(_, c)| c.clone())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::StoreLocation;

    /// A courier's acceptance of `box_id` on `trip_id` from `township` to the county, with no
    /// PACK of that trip anywhere (its papers and PACK are on a device that never synced).
    fn courier_accept(township: &str, box_id: &str, trip_id: &str, at_ms: i64) -> (Scan, Principal) {
        let courier = Principal::courier(NodeId::new(township).unwrap(), "pda-1").unwrap();
        let mut scan = Scan::new(
            format!("{trip_id}-accept"),
            format!("pda-{township}"),
            1,
            at_ms,
            courier.to_string(),
            Step::CourierAccept,
        );
        scan.box_id = box_id.to_owned();
        scan.trip_id = trip_id.to_owned();
        scan.origin = township.to_owned();
        scan.destination = "441424".to_owned();
        scan.place = township.to_owned();
        (scan, courier)
    }

    /// Found by the simulation: two trips held without their PACK had the same (empty) box, so
    /// the county listed one as a box packed while still on the other.
    #[tokio::test]
    async fn trips_held_without_their_pack_are_not_taken_for_one_box() {
        let dir = tempfile::tempdir().unwrap();
        let county = NodeId::new("441424").unwrap();
        let store = Store::open(&StoreLocation::in_data_dir(dir.path(), &county), &county)
            .await
            .unwrap();
        let now = store.now_ms();
        for (township, box_id, trip_id, at) in [
            ("441424100", "box-a", "trip-a", now - 120_000),
            ("441424101", "box-b", "trip-b", now - 60_000),
        ] {
            let (scan, courier) = courier_accept(township, box_id, trip_id, at);
            let results = store.record_scans(vec![scan], &courier).await.unwrap();
            assert!(results.iter().all(|(_, r)| *r == ScanResult::Recorded), "{results:?}");
        }
        let anomalies = store.anomalies(None).await.unwrap();
        let false_ones: Vec<&Anomaly> = anomalies
            .iter()
            .filter(|a| a.kind == AnomalyKind::PackedNotEmpty)
            .collect();
        assert!(false_ones.is_empty(), "{false_ones:#?}");
        store.close().await;
    }
}
