//! Direct access to a node's SQLite file, for what the store API does not (and should not)
//! offer: reading a stored event's hash, summarising an origin's sequence numbers in one query,
//! and — only in the repair scenario, on a stopped node — deleting an event row to simulate a
//! diverged replica.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

async fn pool(path: &Path, read_only: bool) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// What a node holds from one origin: row count, distinct sequence numbers, lowest and highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginSummary {
    pub rows: i64,
    pub distinct_seqs: i64,
    pub min_seq: Option<i64>,
    pub max_seq: Option<i64>,
}

/// Summarises `origin`'s events in the SQLite file at `path` (read-only; the node may run).
pub async fn origin_summary(path: &Path, origin: &str) -> OriginSummary {
    let pool = pool(path, true).await;
    let row: (i64, i64, Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events WHERE origin = $1")
            .bind(origin.to_owned())
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("cannot read events of {origin} from {}: {e}", path.display()));
    pool.close().await;
    OriginSummary {
        rows: row.0,
        distinct_seqs: row.1,
        min_seq: row.2,
        max_seq: row.3,
    }
}

/// The content hash stored for (origin, seq) in the SQLite file at `path`, if any (read-only).
pub async fn stored_hash(path: &Path, origin: &str, seq: u64) -> Option<Vec<u8>> {
    let pool = pool(path, true).await;
    let hash: Option<Vec<u8>> = sqlx::query_scalar("SELECT content_hash FROM events WHERE origin = $1 AND seq = $2")
        .bind(origin.to_owned())
        .bind(seq as i64)
        .fetch_optional(&pool)
        .await
        .unwrap_or_else(|e| panic!("cannot read event {origin}/{seq} from {}: {e}", path.display()));
    pool.close().await;
    hash
}

/// Deletes the event (origin, seq) from a STOPPED node's SQLite file; returns the rows deleted.
/// Events are never deleted by the engine: this simulates a replica that diverged.
pub async fn delete_event(path: &Path, origin: &str, seq: u64) -> u64 {
    let pool = pool(path, false).await;
    let done = sqlx::query("DELETE FROM events WHERE origin = $1 AND seq = $2")
        .bind(origin.to_owned())
        .bind(seq as i64)
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("cannot delete event {origin}/{seq} from {}: {e}", path.display()));
    pool.close().await;
    done.rows_affected()
}

/// The journal mode recorded in the SQLite file at `path` (`wal`, `delete`, ...), read over a
/// read-only connection that sets nothing itself: WAL mode is persistent in the file, so this
/// is what the node left there, not what this connection asked for.
pub async fn journal_mode(path: &Path) -> String {
    let pool = pool(path, true).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("cannot read the journal mode of {}: {e}", path.display()));
    pool.close().await;
    mode
}
