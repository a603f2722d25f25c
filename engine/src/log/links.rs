//! Link bookkeeping: both cursors of every parent/child link, checksum results, lag figures,
//! and the alarm table where conflicting duplicates and quarantined events are kept.

use prost::Message;
use sqlx::AssertSqlSafe;
use tongban_proto::v1 as pb;

use super::{EventLog, StoreError, WriteTx};
use crate::ids::NodeId;
use crate::with_pool;
use crate::with_tx;

/// Which end of a link the peer is, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    Parent = 1,
    Child = 2,
}

impl LinkRole {
    fn from_i64(v: i64) -> LinkRole {
        if v == 1 { LinkRole::Parent } else { LinkRole::Child }
    }
}

/// The persisted state of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCursor {
    pub peer: String,
    pub role: LinkRole,
    /// We applied the peer's events up to this peer local_seq.
    pub applied_from_peer: u64,
    /// The peer acknowledged our events up to this local_seq of ours.
    pub acked_by_peer: u64,
    pub last_sync_ms: i64,
    pub last_checksum_ms: i64,
    pub last_checksum_ok: bool,
    pub repairs: u64,
}

/// Lag of one link: how much the peer still lacks from us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTotals {
    pub events_behind: u64,
    pub oldest_unacked_ms: Option<i64>,
}

/// What an alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    ConflictingDuplicate = 1,
    Quarantined = 2,
}

pub(super) async fn raise_alarm(
    tx: &mut WriteTx,
    kind: AlarmKind,
    event: &pb::Event,
    from: &NodeId,
    source_seq: u64,
    reason: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let envelope = event.encode_to_vec();
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO alarms (kind, origin, seq, received_from, reason, raised_ms, source_seq, content_hash, event) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (kind, origin, seq, content_hash, received_from) DO NOTHING",
        )
        .bind(kind as i64)
        .bind(event.origin.as_str())
        .bind(event.seq as i64)
        .bind(from.as_str())
        .bind(reason)
        .bind(now_ms)
        .bind(source_seq as i64)
        .bind(event.content_hash.as_slice())
        .bind(envelope.as_slice())
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(())
}

pub(super) async fn advance_applied(
    tx: &mut WriteTx,
    peer: &NodeId,
    through: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    // The cursor only moves forward: a re-sent (repaired) range must not move it back.
    with_tx!(tx, conn => {
        sqlx::query(
            "UPDATE links SET applied_from_peer = CASE WHEN applied_from_peer > $2 THEN applied_from_peer ELSE $2 END, \
             last_sync_ms = $3 WHERE peer = $1",
        )
        .bind(peer.as_str())
        .bind(through)
        .bind(now_ms)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// The columns of a `links` row, as [`CURSOR_COLUMNS`] selects them.
type CursorRow = (String, i64, i64, i64, i64, i64, i64, i64);

const CURSOR_COLUMNS: &str = "SELECT peer, role, applied_from_peer, acked_by_peer, last_sync_ms, last_checksum_ms, last_checksum_ok, repairs \
     FROM links";

fn row_to_cursor(row: CursorRow) -> LinkCursor {
    let (peer, role, applied, acked, last_sync_ms, last_checksum_ms, checksum_ok, repairs) = row;
    LinkCursor {
        peer,
        role: LinkRole::from_i64(role),
        applied_from_peer: applied as u64,
        acked_by_peer: acked as u64,
        last_sync_ms,
        last_checksum_ms,
        last_checksum_ok: checksum_ok != 0,
        repairs: repairs as u64,
    }
}

impl EventLog {
    /// The link row for `peer`, created at zero if this is the first contact.
    pub async fn link(&self, peer: &NodeId, role: LinkRole) -> Result<LinkCursor, StoreError> {
        let mut write = self.bookkeeping().await?;
        with_tx!(&mut write.tx, conn => {
            sqlx::query("INSERT INTO links (peer, role) VALUES ($1, $2) ON CONFLICT (peer) DO NOTHING")
                .bind(peer.as_str())
                .bind(role as i64)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        write.commit().await?;
        let sql = format!("{CURSOR_COLUMNS} WHERE peer = $1");
        let row: CursorRow = with_pool!(self.pool(), conn => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(peer.as_str()).fetch_one(conn).await
        })?;
        Ok(row_to_cursor(row))
    }

    /// Every link this node has had, parent first.
    pub async fn links(&self) -> Result<Vec<LinkCursor>, StoreError> {
        let sql = format!("{CURSOR_COLUMNS} ORDER BY role, peer");
        let rows: Vec<CursorRow> = with_pool!(self.pool(), conn => {
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(conn).await
        })?;
        Ok(rows.into_iter().map(row_to_cursor).collect())
    }

    /// Records the peer's acknowledgement of our events up to `acked`.
    pub async fn record_ack(&self, peer: &NodeId, acked: u64) -> Result<(), StoreError> {
        let mut write = self.bookkeeping().await?;
        let now = self.now_ms();
        with_tx!(&mut write.tx, conn => {
            sqlx::query(
                "UPDATE links SET acked_by_peer = CASE WHEN acked_by_peer > $2 THEN acked_by_peer ELSE $2 END, \
                 last_sync_ms = $3 WHERE peer = $1",
            )
            .bind(peer.as_str())
            .bind(acked as i64)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        write.commit().await
    }

    /// Records the outcome of a checksum exchange; a mismatch counts as one repair.
    pub async fn record_checksum(&self, peer: &NodeId, ok: bool) -> Result<(), StoreError> {
        let mut write = self.bookkeeping().await?;
        let now = self.now_ms();
        with_tx!(&mut write.tx, conn => {
            sqlx::query(
                "UPDATE links SET last_checksum_ms = $2, last_checksum_ok = $3, \
                 repairs = repairs + $4 WHERE peer = $1",
            )
            .bind(peer.as_str())
            .bind(now)
            .bind(i64::from(ok))
            .bind(i64::from(!ok))
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        write.commit().await
    }

    /// How far `peer` is behind us: events routed to it past its acknowledgement.
    pub async fn link_totals(&self, cursor: &LinkCursor) -> Result<LinkTotals, StoreError> {
        let acked = cursor.acked_by_peer as i64;
        let (behind, oldest): (i64, Option<i64>) = match cursor.role {
            LinkRole::Parent => with_pool!(self.pool(), conn => {
                sqlx::query_as("SELECT COUNT(*), MIN(stored_ms) FROM events WHERE to_parent = 1 AND local_seq > $1")
                    .bind(acked)
                    .fetch_one(conn)
                    .await
            })?,
            LinkRole::Child => with_pool!(self.pool(), conn => {
                sqlx::query_as(
                    "SELECT COUNT(*), MIN(stored_ms) FROM events WHERE route_child IN ($1, '*') AND local_seq > $2",
                )
                .bind(cursor.peer.as_str())
                .bind(acked)
                .fetch_one(conn)
                .await
            })?,
        };
        Ok(LinkTotals {
            events_behind: behind as u64,
            oldest_unacked_ms: oldest,
        })
    }

    /// Alarms, newest first.
    pub async fn alarms(&self, limit: u32) -> Result<Vec<pb::Alarm>, StoreError> {
        let rows: Vec<(i64, i64, String, i64, String, String, i64)> = with_pool!(self.pool(), conn => {
            sqlx::query_as(
                "SELECT id, kind, origin, seq, received_from, reason, raised_ms FROM alarms ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(conn)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, origin, seq, received_from, reason, raised_ms)| pb::Alarm {
                id: id as u64,
                kind: kind as i32,
                origin,
                seq: seq as u64,
                received_from,
                reason,
                raised_unix_ms: raised_ms,
            })
            .collect())
    }

    /// Number of alarms raised so far.
    pub async fn alarm_count(&self) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self.pool(), conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM alarms").fetch_one(conn).await
        })?;
        Ok(n as u64)
    }
}
