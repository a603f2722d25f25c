//! The scan queue on the device: one SQLite file per device, where a scan is kept from the
//! moment it is made until a node has answered for it. The courier's handheld and the clerk's
//! desk both keep their scans here.
//!
//! Why the queue is built the way it is:
//! - A scan is confirmed to the courier only once it is on disk. SQLite in WAL mode with
//!   `synchronous = FULL` syncs the WAL at every commit, so a scan that `scan` printed survives a
//!   flat battery. An append-only file with fsync would do that too, but each scan also changes
//!   state (queued → uploaded, or refused with the node's message); SQLite updates that state
//!   atomically without a second log to compact, and sqlx is already in the workspace.
//! - `device_seq` is taken from a counter stored in the file, in the same `BEGIN IMMEDIATE`
//!   transaction that inserts the scan. Two scans at once, or a crash between them, cannot skip
//!   or repeat a number, so a gap a node sees in this device's sequence means scans lost after
//!   they left the device (or a queue that was lost).
//! - Scan ids are made by [`Device`]: `<device>-<seq>-<8 random hex>`.
//! - Each scan is kept as the protobuf bytes of its `tongban.v1.Scan`, so every upload of it (a
//!   retry, or `--all` to a second node) is byte-identical and the node's dedupe by scan id sees
//!   the same content, never a conflicting duplicate.
//! - A scan changes state only on the node's answer: RECORDED or DUPLICATE mark it uploaded,
//!   REFUSED keeps it with the node's message and out of automatic retries (the same bytes would
//!   be refused again). A batch without an answer (link cut, timeout) changes nothing; sending it
//!   again is safe because nodes dedupe by scan id.
//! - Every command closes the database, which folds the WAL back into the main file, so the queue
//!   file alone is a complete copy when it is taken off the device.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use tongban_engine::pki::Principal;
use tongban_proto::v1::{self as pb, scan_outcome};

use crate::device::{Device, step_name};
use crate::{Doing as _, Error, Result};

/// Another process (a second `scan`, a `sync`) may hold the write lock for a moment.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The queue file's layout; `PRAGMA user_version` holds it.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE device (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    device_id       TEXT    NOT NULL,
    principal       TEXT    NOT NULL,
    first_seq       INTEGER NOT NULL,
    next_seq        INTEGER NOT NULL,
    created_unix_ms INTEGER NOT NULL
);
CREATE TABLE scans (
    device_seq       INTEGER PRIMARY KEY,
    scan_id          TEXT    NOT NULL UNIQUE,
    step             TEXT    NOT NULL,
    box_id           TEXT    NOT NULL,
    trip_id          TEXT    NOT NULL,
    scanned_unix_ms  INTEGER NOT NULL,
    scan             BLOB    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'uploaded', 'refused')),
    result           TEXT,
    message          TEXT,
    node             TEXT,
    answered_unix_ms INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX scans_by_state ON scans (state, device_seq);
";

/// The scan queue on the device: one SQLite file, one connection per command.
pub struct Queue {
    conn: SqliteConnection,
}

/// A scan's state in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a node's answer.
    Queued,
    /// A node recorded it (now or before).
    Uploaded,
    /// A node refused it; kept with the reason.
    Refused,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Uploaded => "uploaded",
            State::Refused => "refused",
        }
    }

    fn parse(text: &str) -> Result<State> {
        Ok(match text {
            "queued" => State::Queued,
            "uploaded" => State::Uploaded,
            "refused" => State::Refused,
            other => return Err(Error::Damaged(format!("unknown scan state {other:?} in the queue"))),
        })
    }
}

/// Which scans an upload sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Only those no node has answered.
    Queued,
    /// Those, and the refused ones again.
    QueuedAndRefused,
    /// Every scan, uploaded ones too.
    Everything,
}

impl Resend {
    /// (send refused, send uploaded), as bound into the selecting queries.
    fn flags(self) -> (bool, bool) {
        match self {
            Resend::Queued => (false, false),
            Resend::QueuedAndRefused => (true, false),
            Resend::Everything => (true, true),
        }
    }
}

/// Which scans `entries` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    /// Queued and refused: not acknowledged by any node.
    Pending,
    Refused,
}

/// A scan to upload, in device_seq order.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub seq: u64,
    pub scan: pb::Scan,
}

/// A scan that went to a node, for matching the node's answers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub seq: u64,
    pub scan_id: String,
    pub step: i32,
}

impl From<&pb::Scan> for Sent {
    fn from(scan: &pb::Scan) -> Sent {
        Sent {
            seq: scan.device_seq,
            scan_id: scan.scan_id.clone(),
            step: scan.step,
        }
    }
}

/// One line of a listing.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub scan_id: String,
    /// The step's kebab name (`en-route`).
    pub step: String,
    pub box_id: String,
    pub trip_id: String,
    pub scanned_unix_ms: i64,
    pub state: State,
    pub message: Option<String>,
    pub node: Option<String>,
    pub attempts: u64,
}

/// How many scans are in each state, and the sequence numbers seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: u64,
    pub uploaded: u64,
    pub refused: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// When a node last answered, and which.
    pub last_answer: Option<(i64, String)>,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.queued + self.uploaded + self.refused
    }

    /// Sequence numbers missing between the first and the last scan (0 unless the file was
    /// edited by hand: the queue allocates them densely).
    pub fn missing(&self) -> u64 {
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => (last.saturating_sub(first) + 1).saturating_sub(self.total()),
            _ => 0,
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "{} queued, {} uploaded, {} refused",
            self.queued, self.uploaded, self.refused
        )
    }
}

/// What a node said about one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Recorded,
    /// Recorded before (by this node or, through replication, another).
    Duplicate,
    /// Refused, with the node's reason; the scan is kept as refused.
    Refused(String),
    /// Refused by this node but already recorded by another (`--all`): it stays uploaded.
    RefusedAfterUpload(String),
}

/// One scan a node answered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub seq: u64,
    pub scan_id: String,
    pub step: i32,
    pub outcome: Outcome,
}

/// What a node said about one or more batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// In the order the node answered.
    pub answers: Vec<Answer>,
    /// Sent but not answered (no outcome, or RESULT_UNSPECIFIED): stay as they were.
    pub unanswered: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.answers.extend(other.answers);
        self.unanswered += other.unanswered;
    }

    pub fn answered(&self) -> u64 {
        self.answers.len() as u64
    }

    pub fn recorded(&self) -> u64 {
        self.count(|o| matches!(o, Outcome::Recorded))
    }

    pub fn duplicates(&self) -> u64 {
        self.count(|o| matches!(o, Outcome::Duplicate))
    }

    /// Scans now kept as refused, with the node's reason.
    pub fn refused(&self) -> impl Iterator<Item = (&Answer, &str)> {
        self.answers.iter().filter_map(|a| match &a.outcome {
            Outcome::Refused(message) => Some((a, message.as_str())),
            _ => None,
        })
    }

    /// Scans this node refused that another had recorded: they stay uploaded.
    pub fn refused_after_upload(&self) -> impl Iterator<Item = (&Answer, &str)> {
        self.answers.iter().filter_map(|a| match &a.outcome {
            Outcome::RefusedAfterUpload(message) => Some((a, message.as_str())),
            _ => None,
        })
    }

    fn count(&self, which: impl Fn(&Outcome) -> bool) -> u64 {
        self.answers.iter().filter(|a| which(&a.outcome)).count() as u64
    }
}

fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::Damaged(format!("{what} {n} is too large")))
}

fn to_u64(n: i64, what: &str) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::Damaged(format!("{what} {n} in the queue is negative")))
}

/// A column of a row the queue wrote.
fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).doing("reading the queue")
}

/// The device a queue's `device` row describes, at its next number.
fn device_of(row: &SqliteRow) -> Result<Device> {
    let principal: String = column(row, "principal")?;
    let principal: Principal = principal
        .parse()
        .map_err(|e| Error::Damaged(format!("the queue's principal {principal:?}: {e}")))?;
    Device::resume(
        column::<String>(row, "device_id")?,
        principal,
        to_u64(column(row, "next_seq")?, "next_seq")?,
    )
}

impl Queue {
    fn options(path: &Path) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced at every commit, so a confirmed scan survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .disable_statement_logging()
    }

    /// Creates a new queue file for `device`, whose next number is the queue's first. Refuses
    /// an existing file: it may hold scans not yet uploaded.
    pub async fn create(path: &Path, device: &Device, now_unix_ms: i64) -> Result<Queue> {
        if path.exists() {
            return Err(Error::QueueExists(path.to_owned()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let creating = format!("creating the queue {}", path.display());
        let mut conn = Self::options(path)
            .create_if_missing(true)
            .connect()
            .await
            .doing(&creating)?;
        let first_seq = to_i64(device.next_seq(), "the first number")?;
        let created: Result<(), sqlx::Error> = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO device (id, device_id, principal, first_seq, next_seq, created_unix_ms)
                 VALUES (1, ?1, ?2, ?3, ?3, ?4)",
            )
            .bind(&device.id)
            .bind(device.who())
            .bind(first_seq)
            .bind(now_unix_ms)
            .execute(&mut *tx)
            .await?;
            // Last, in the same transaction: a file with this version is a complete queue.
            sqlx::raw_sql("PRAGMA user_version = 1").execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        created.doing(creating)?;
        Ok(Queue { conn })
    }

    /// Opens an existing queue; a missing file is an error, never a new empty queue.
    pub async fn open(path: &Path) -> Result<Queue> {
        if !path.exists() {
            return Err(Error::NoQueue(path.to_owned()));
        }
        let mut conn = Self::options(path)
            .create_if_missing(false)
            .connect()
            .await
            .doing(format!("opening the queue {}", path.display()))?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut conn)
            .await
            .doing(format!("reading {}", path.display()))?;
        if version != SCHEMA_VERSION {
            return Err(Error::Layout {
                path: path.to_owned(),
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        Ok(Queue { conn })
    }

    /// Closes the file; as the last connection this checkpoints the WAL into the main file.
    pub async fn close(self) -> Result<()> {
        self.conn.close().await.doing("closing the queue")
    }

    /// The queue's device, at the number its next scan gets.
    pub async fn device(&mut self) -> Result<Device> {
        let row = sqlx::query("SELECT device_id, principal, next_seq FROM device WHERE id = 1")
            .fetch_one(&mut self.conn)
            .await
            .doing("reading the queue's device")?;
        device_of(&row)
    }

    /// Saves one scan: the device gives it the next number and its id, all in one durable
    /// transaction. When this returns, the scan is on disk; it is returned as it will be sent.
    pub async fn append(&mut self, scan: pb::Scan) -> Result<pb::Scan> {
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("locking the queue")?;
        let row = sqlx::query("SELECT device_id, principal, next_seq FROM device WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .doing("reading the queue's device")?;
        let scan = device_of(&row)?.stamp(scan);
        sqlx::query(
            "INSERT INTO scans (device_seq, scan_id, step, box_id, trip_id, scanned_unix_ms, scan, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued')",
        )
        .bind(to_i64(scan.device_seq, "device_seq")?)
        .bind(&scan.scan_id)
        .bind(step_name(scan.step))
        .bind(&scan.box_id)
        .bind(&scan.trip_id)
        .bind(scan.scanned_unix_ms)
        .bind(scan.encode_to_vec())
        .execute(&mut *tx)
        .await
        .doing("saving the scan")?;
        sqlx::query("UPDATE device SET next_seq = next_seq + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .doing("advancing the device sequence")?;
        tx.commit().await.doing("saving the scan")?;
        Ok(scan)
    }

    /// Takes back the numbers of refused scans at the end of the sequence, so the device's next
    /// scan has the first of them: no node recorded anything under those numbers, and a clerk's
    /// typo should not leave a gap the node reports. Returns how many numbers were taken back.
    pub async fn take_back_refused_tail(&mut self) -> Result<u64> {
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("locking the queue")?;
        let mut taken = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM scans
                 WHERE state = 'refused' AND device_seq = (SELECT next_seq - 1 FROM device WHERE id = 1)",
            )
            .execute(&mut *tx)
            .await
            .doing("taking back a refused number")?;
            if deleted.rows_affected() == 0 {
                break;
            }
            sqlx::query("UPDATE device SET next_seq = next_seq - 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .doing("taking back a refused number")?;
            taken += 1;
        }
        tx.commit().await.doing("taking back a refused number")?;
        Ok(taken)
    }

    pub async fn count_to_send(&mut self, resend: Resend) -> Result<u64> {
        let (refused, uploaded) = resend.flags();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM scans
             WHERE state = 'queued' OR (?1 AND state = 'refused') OR (?2 AND state = 'uploaded')",
        )
        .bind(refused)
        .bind(uploaded)
        .fetch_one(&mut self.conn)
        .await
        .doing("counting scans to upload")?;
        to_u64(n, "count")
    }

    /// The next scans to send after device_seq `after`, in order: at most `max_scans`, and at
    /// most `max_bytes` encoded (but always one, however large).
    pub async fn next_batch(
        &mut self,
        resend: Resend,
        after: u64,
        max_scans: usize,
        max_bytes: usize,
    ) -> Result<Vec<Outgoing>> {
        let (refused, uploaded) = resend.flags();
        let rows = sqlx::query(
            "SELECT device_seq, scan FROM scans
             WHERE device_seq > ?1
               AND (state = 'queued' OR (?2 AND state = 'refused') OR (?3 AND state = 'uploaded'))
             ORDER BY device_seq LIMIT ?4",
        )
        .bind(to_i64(after, "device_seq")?)
        .bind(refused)
        .bind(uploaded)
        .bind(to_i64(max_scans as u64, "batch size")?)
        .fetch_all(&mut self.conn)
        .await
        .doing("reading scans to upload")?;
        let mut batch = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        for row in rows {
            let seq = to_u64(column(&row, "device_seq")?, "device_seq")?;
            let blob: Vec<u8> = column(&row, "scan")?;
            bytes += blob.len();
            if bytes > max_bytes && !batch.is_empty() {
                break;
            }
            let scan = pb::Scan::decode(blob.as_slice())
                .map_err(|e| Error::Damaged(format!("scan {seq} in the queue is damaged: {e}")))?;
            batch.push(Outgoing { seq, scan });
        }
        Ok(batch)
    }

    /// Writes a node's answers for the scans `sent`, in one transaction. Outcomes are matched by
    /// scan id, not by position.
    pub async fn record_outcomes(
        &mut self,
        node: &str,
        sent: &[Sent],
        outcomes: &[pb::ScanOutcome],
        now_unix_ms: i64,
    ) -> Result<Tally> {
        let by_id: HashMap<&str, &Sent> = sent.iter().map(|s| (s.scan_id.as_str(), s)).collect();
        let mut tally = Tally::default();
        let saving = "saving the node's answers";
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .doing("locking the queue")?;
        for answer in outcomes {
            let Some(&sent) = by_id.get(answer.scan_id.as_str()) else {
                continue; // Not one of ours in this batch: nothing to mark.
            };
            let seq = to_i64(sent.seq, "device_seq")?;
            let outcome = match scan_outcome::Result::try_from(answer.result) {
                Ok(result @ (scan_outcome::Result::Recorded | scan_outcome::Result::Duplicate)) => {
                    let (word, outcome) = if result == scan_outcome::Result::Recorded {
                        ("recorded", Outcome::Recorded)
                    } else {
                        ("duplicate", Outcome::Duplicate)
                    };
                    sqlx::query(
                        "UPDATE scans SET state = 'uploaded', result = ?2, message = NULL, node = ?3,
                                answered_unix_ms = ?4, attempts = attempts + 1
                         WHERE device_seq = ?1",
                    )
                    .bind(seq)
                    .bind(word)
                    .bind(node)
                    .bind(now_unix_ms)
                    .execute(&mut *tx)
                    .await
                    .doing(saving)?;
                    outcome
                }
                Ok(scan_outcome::Result::Refused) => {
                    let message = if answer.message.trim().is_empty() {
                        "refused (no reason given)".to_owned()
                    } else {
                        answer.message.clone()
                    };
                    // A scan another node recorded stays uploaded: it is in the county's tree
                    // already, and resending it would not change this node's mind.
                    let state: String = sqlx::query_scalar("SELECT state FROM scans WHERE device_seq = ?1")
                        .bind(seq)
                        .fetch_one(&mut *tx)
                        .await
                        .doing(saving)?;
                    if State::parse(&state)? == State::Uploaded {
                        Outcome::RefusedAfterUpload(message)
                    } else {
                        sqlx::query(
                            "UPDATE scans SET state = 'refused', result = 'refused', message = ?2, node = ?3,
                                    answered_unix_ms = ?4, attempts = attempts + 1
                             WHERE device_seq = ?1",
                        )
                        .bind(seq)
                        .bind(&message)
                        .bind(node)
                        .bind(now_unix_ms)
                        .execute(&mut *tx)
                        .await
                        .doing(saving)?;
                        Outcome::Refused(message)
                    }
                }
                // RESULT_UNSPECIFIED or a result this client does not know: not an answer.
                Ok(scan_outcome::Result::Unspecified) | Err(_) => continue,
            };
            tally.answers.push(Answer {
                seq: sent.seq,
                scan_id: sent.scan_id.clone(),
                step: sent.step,
                outcome,
            });
        }
        tx.commit().await.doing(saving)?;
        tally.unanswered = (sent.len() as u64).saturating_sub(tally.answered());
        Ok(tally)
    }

    pub async fn counts(&mut self) -> Result<Counts> {
        let mut counts = Counts::default();
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM scans GROUP BY state")
            .fetch_all(&mut self.conn)
            .await
            .doing("counting scans")?;
        for row in rows {
            let n = to_u64(column(&row, "n")?, "count")?;
            match State::parse(&column::<String>(&row, "state")?)? {
                State::Queued => counts.queued = n,
                State::Uploaded => counts.uploaded = n,
                State::Refused => counts.refused = n,
            }
        }
        let row = sqlx::query("SELECT MIN(device_seq) AS first, MAX(device_seq) AS last FROM scans")
            .fetch_one(&mut self.conn)
            .await
            .doing("reading the device sequence")?;
        let seq = |name: &str| -> Result<Option<u64>> {
            column::<Option<i64>>(&row, name)?
                .map(|n| to_u64(n, "device_seq"))
                .transpose()
        };
        counts.first_seq = seq("first")?;
        counts.last_seq = seq("last")?;
        let last = sqlx::query(
            "SELECT answered_unix_ms, node FROM scans WHERE answered_unix_ms IS NOT NULL
             ORDER BY answered_unix_ms DESC LIMIT 1",
        )
        .fetch_optional(&mut self.conn)
        .await
        .doing("reading the last upload")?;
        if let Some(row) = last {
            counts.last_answer = Some((column(&row, "answered_unix_ms")?, column(&row, "node")?));
        }
        Ok(counts)
    }

    pub async fn entries(&mut self, filter: Filter) -> Result<Vec<Entry>> {
        let code = match filter {
            Filter::All => 0,
            Filter::Pending => 1,
            Filter::Refused => 2,
        };
        let rows = sqlx::query(
            "SELECT device_seq, scan_id, step, box_id, trip_id, scanned_unix_ms, state, message, node, attempts
             FROM scans
             WHERE ?1 = 0 OR (?1 = 1 AND state != 'uploaded') OR (?1 = 2 AND state = 'refused')
             ORDER BY device_seq",
        )
        .bind(code)
        .fetch_all(&mut self.conn)
        .await
        .doing("reading the queue")?;
        rows.iter()
            .map(|row| {
                Ok(Entry {
                    seq: to_u64(column(row, "device_seq")?, "device_seq")?,
                    scan_id: column(row, "scan_id")?,
                    step: column(row, "step")?,
                    box_id: column(row, "box_id")?,
                    trip_id: column(row, "trip_id")?,
                    scanned_unix_ms: column(row, "scanned_unix_ms")?,
                    state: State::parse(&column::<String>(row, "state")?)?,
                    message: column(row, "message")?,
                    node: column(row, "node")?,
                    attempts: to_u64(column(row, "attempts")?, "attempts")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use tongban_engine::ids::NodeId;

    use super::*;

    const T0: i64 = 1_795_000_000_000;

    fn courier() -> Principal {
        Principal::courier(NodeId::new("441424100").unwrap(), "dev-07").unwrap()
    }

    fn pda(first_seq: u64) -> Device {
        Device::resume("pda-0042", courier(), first_seq).unwrap()
    }

    async fn new_queue(dir: &tempfile::TempDir) -> (PathBuf, Queue) {
        let path = dir.path().join("pda").join("queue.db");
        let q = Queue::create(&path, &pda(1), T0).await.unwrap();
        (path, q)
    }

    fn en_route(box_id: &str) -> pb::Scan {
        pb::Scan {
            step: pb::CustodyStep::EnRoute as i32,
            box_id: box_id.into(),
            trip_id: "T-1".into(),
            place: "K12 bridge".into(),
            scanned_unix_ms: T0,
            ..Default::default()
        }
    }

    fn outcome(scan_id: &str, result: scan_outcome::Result, message: &str) -> pb::ScanOutcome {
        pb::ScanOutcome {
            scan_id: scan_id.into(),
            result: result as i32,
            message: message.into(),
        }
    }

    #[tokio::test]
    async fn scans_get_dense_sequence_numbers_that_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut q) = new_queue(&dir).await;
        for i in 1..=5u64 {
            let added = q.append(en_route("B-001")).await.unwrap();
            assert_eq!(added.device_seq, i);
            assert!(
                added.scan_id.starts_with(&format!("pda-0042-{i}-")),
                "{}",
                added.scan_id
            );
        }
        q.close().await.unwrap();

        // Closing folded the WAL into the file: the file alone holds every scan.
        assert!(!dir.path().join("pda").join("queue.db-wal").exists());
        let mut q = Queue::open(&path).await.unwrap();
        let device = q.device().await.unwrap();
        assert_eq!(device.id, "pda-0042");
        assert_eq!(device.who(), "courier:441424100:dev-07");
        assert_eq!(device.next_seq(), 6);
        assert_eq!(q.append(en_route("B-001")).await.unwrap().device_seq, 6);

        let batch = q.next_batch(Resend::Queued, 0, 100, usize::MAX).await.unwrap();
        let seqs: Vec<u64> = batch.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
        let scan = &batch[2].scan;
        assert_eq!(scan.device_id, "pda-0042");
        assert_eq!(scan.device_seq, 3);
        assert_eq!(scan.principal, "courier:441424100:dev-07");
        assert_eq!(scan.place, "K12 bridge");
        assert_eq!(scan.scanned_unix_ms, T0);
        let counts = q.counts().await.unwrap();
        assert_eq!(
            (counts.first_seq, counts.last_seq, counts.missing()),
            (Some(1), Some(6), 0)
        );
    }

    #[tokio::test]
    async fn the_queue_file_is_durable_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut q) = new_queue(&dir).await;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut q.conn)
            .await
            .unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut q.conn)
            .await
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
    }

    #[tokio::test]
    async fn two_writers_at_once_still_get_dense_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (path, q) = new_queue(&dir).await;
        q.close().await.unwrap();
        let writer = |path: PathBuf| async move {
            let mut q = Queue::open(&path).await.unwrap();
            let mut seqs = Vec::new();
            for _ in 0..25 {
                seqs.push(q.append(en_route("B-001")).await.unwrap().device_seq);
            }
            q.close().await.unwrap();
            seqs
        };
        let (a, b) = tokio::join!(tokio::spawn(writer(path.clone())), tokio::spawn(writer(path.clone())));
        let mut all: Vec<u64> = a.unwrap().into_iter().chain(b.unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn scan_ids_are_unique_even_for_a_recreated_device() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut q) = new_queue(&dir).await;
        let mut ids = HashSet::new();
        for _ in 0..200 {
            assert!(ids.insert(q.append(en_route("B-001")).await.unwrap().scan_id));
        }
        q.close().await.unwrap();
        // The device's queue is lost and made again under the same id: its numbers restart.
        std::fs::remove_file(&path).unwrap();
        let mut q = Queue::create(&path, &pda(1), T0).await.unwrap();
        for _ in 0..200 {
            assert!(ids.insert(q.append(en_route("B-001")).await.unwrap().scan_id));
        }
    }

    #[tokio::test]
    async fn init_refuses_an_existing_file_and_open_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut q) = new_queue(&dir).await;
        q.append(en_route("B-001")).await.unwrap();
        q.close().await.unwrap();
        let again = Queue::create(&path, &pda(1), T0).await;
        assert!(again.err().unwrap().to_string().contains("already exists"));
        let mut q = Queue::open(&path).await.unwrap();
        assert_eq!(q.counts().await.unwrap().queued, 1);

        let missing = Queue::open(&dir.path().join("nope.db")).await;
        assert!(missing.err().unwrap().to_string().contains("courier init"));
        assert!(!dir.path().join("nope.db").exists());

        let other = dir.path().join("other.db");
        let mut q = Queue::create(&other, &pda(41), T0).await.unwrap();
        assert_eq!(q.append(en_route("B-001")).await.unwrap().device_seq, 41);
    }

    #[tokio::test]
    async fn outcomes_mark_scans_and_status_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut q) = new_queue(&dir).await;
        let mut sent = Vec::new();
        for _ in 0..5 {
            let a = q.append(en_route("B-001")).await.unwrap();
            sent.push(Sent::from(&a));
        }
        let id = |i: usize| sent[i].scan_id.as_str();
        let outcomes = vec![
            // Answers come back in any order; they are matched by scan id.
            outcome(id(2), scan_outcome::Result::Refused, "unknown trip T-1"),
            outcome(id(0), scan_outcome::Result::Recorded, ""),
            outcome(id(1), scan_outcome::Result::Duplicate, ""),
            outcome(id(3), scan_outcome::Result::Unspecified, ""),
            outcome("someone-else-1-00000000", scan_outcome::Result::Recorded, ""),
            // id(4): no answer at all.
        ];
        let tally = q
            .record_outcomes("https://t100:7100", &sent, &outcomes, T0 + 5)
            .await
            .unwrap();
        assert_eq!((tally.recorded(), tally.duplicates(), tally.unanswered), (1, 1, 2));
        let refused: Vec<(u64, &str, &str)> = tally
            .refused()
            .map(|(a, message)| (a.seq, a.scan_id.as_str(), message))
            .collect();
        assert_eq!(refused, vec![(3, id(2), "unknown trip T-1")]);

        let counts = q.counts().await.unwrap();
        assert_eq!((counts.queued, counts.uploaded, counts.refused), (2, 2, 1));
        assert_eq!(counts.last_answer, Some((T0 + 5, "https://t100:7100".to_owned())));
        let refused = q.entries(Filter::Refused).await.unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].message.as_deref(), Some("unknown trip T-1"));
        assert_eq!(refused[0].node.as_deref(), Some("https://t100:7100"));
        let pending: Vec<u64> = q
            .entries(Filter::Pending)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(pending, vec![3, 4, 5]);
        assert_eq!(q.entries(Filter::All).await.unwrap().len(), 5);

        // Refused scans are not sent again unless asked; --all sends everything.
        let seqs = |b: Vec<Outgoing>| b.iter().map(|o| o.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(q.next_batch(Resend::Queued, 0, 100, usize::MAX).await.unwrap()),
            vec![4, 5]
        );
        assert_eq!(q.count_to_send(Resend::Queued).await.unwrap(), 2);
        assert_eq!(
            seqs(
                q.next_batch(Resend::QueuedAndRefused, 0, 100, usize::MAX)
                    .await
                    .unwrap()
            ),
            vec![3, 4, 5]
        );
        assert_eq!(q.count_to_send(Resend::Everything).await.unwrap(), 5);

        // Retried and recorded: the refusal is gone.
        let retry = vec![sent[2].clone()];
        q.record_outcomes(
            "https://county:7000",
            &retry,
            &[outcome(id(2), scan_outcome::Result::Recorded, "")],
            T0 + 9,
        )
        .await
        .unwrap();
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.queued, counts.uploaded, counts.refused), (2, 3, 0));

        // A second node refusing a scan another node recorded leaves it uploaded.
        let again = vec![sent[0].clone()];
        let tally = q
            .record_outcomes(
                "https://county:7000",
                &again,
                &[outcome(id(0), scan_outcome::Result::Refused, "no")],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(tally.refused_after_upload().count(), 1);
        assert_eq!(tally.refused().count(), 0);
        assert_eq!(q.counts().await.unwrap().uploaded, 3);
    }

    #[tokio::test]
    async fn refused_numbers_at_the_end_are_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut q) = new_queue(&dir).await;
        let mut sent = Vec::new();
        for _ in 0..4 {
            sent.push(Sent::from(&q.append(en_route("B-001")).await.unwrap()));
        }
        let answers: Vec<pb::ScanOutcome> = [
            scan_outcome::Result::Recorded,
            scan_outcome::Result::Refused,
            scan_outcome::Result::Refused,
            scan_outcome::Result::Refused,
        ]
        .iter()
        .zip(&sent)
        .map(|(result, s)| outcome(&s.scan_id, *result, "no"))
        .collect();
        q.record_outcomes("n", &sent, &answers, T0).await.unwrap();
        // 2, 3 and 4 were refused and nothing follows them: no node has anything under those
        // numbers, so they are free again.
        assert_eq!(q.take_back_refused_tail().await.unwrap(), 3);
        assert_eq!(q.device().await.unwrap().next_seq(), 2);
        assert_eq!(q.append(en_route("B-001")).await.unwrap().device_seq, 2);
        assert_eq!(q.take_back_refused_tail().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn batches_respect_the_count_and_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut q) = new_queue(&dir).await;
        for _ in 0..7 {
            q.append(en_route("B-001")).await.unwrap();
        }
        let b = q.next_batch(Resend::Queued, 0, 3, usize::MAX).await.unwrap();
        assert_eq!(b.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let b = q.next_batch(Resend::Queued, 3, 3, usize::MAX).await.unwrap();
        assert_eq!(b.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![4, 5, 6]);
        // A budget smaller than one scan still sends one at a time.
        let b = q.next_batch(Resend::Queued, 0, 100, 1).await.unwrap();
        assert_eq!(b.len(), 1);
        let one = b[0].scan.encoded_len();
        let b = q.next_batch(Resend::Queued, 0, 100, 2 * one).await.unwrap();
        assert_eq!(b.len(), 2);
        assert!(
            q.next_batch(Resend::Queued, 7, 100, usize::MAX)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
