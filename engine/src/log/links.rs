//! Link bookkeeping: both cursors of every parent/child link, checksum results, lag figures,
//! and the alarm table where conflicting duplicates and quarantined events are kept.

use prost::Message;
use sqlx::{Any, Row, Transaction};
use tongban_proto::v1 as pb;

use super::{EventLog, StoreError};
use crate::ids::NodeId;

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
    tx: &mut Transaction<'static, Any>,
    kind: AlarmKind,
    event: &pb::Event,
    from: &NodeId,
    source_seq: u64,
    reason: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO alarms (kind, origin, seq, received_from, reason, raised_ms, source_seq, content_hash, event) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (kind, origin, seq, content_hash, received_from) DO NOTHING",
    )
    .bind(kind as i64)
    .bind(event.origin.clone())
    .bind(event.seq as i64)
    .bind(from.to_string())
    .bind(reason.to_owned())
    .bind(now_ms)
    .bind(source_seq as i64)
    .bind(event.content_hash.clone())
    .bind(event.encode_to_vec())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn advance_applied(
    tx: &mut Transaction<'static, Any>,
    peer: &NodeId,
    through: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    // The cursor only moves forward: a re-sent (repaired) range must not move it back.
    sqlx::query(
        "UPDATE links SET applied_from_peer = CASE WHEN applied_from_peer > $2 THEN applied_from_peer ELSE $2 END, \
         last_sync_ms = $3 WHERE peer = $1",
    )
    .bind(peer.to_string())
    .bind(through)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn row_to_cursor(row: &sqlx::any::AnyRow) -> Result<LinkCursor, StoreError> {
    Ok(LinkCursor {
        peer: row.try_get(0)?,
        role: LinkRole::from_i64(row.try_get(1)?),
        applied_from_peer: row.try_get::<i64, _>(2)? as u64,
        acked_by_peer: row.try_get::<i64, _>(3)? as u64,
        last_sync_ms: row.try_get(4)?,
        last_checksum_ms: row.try_get(5)?,
        last_checksum_ok: row.try_get::<i64, _>(6)? != 0,
        repairs: row.try_get::<i64, _>(7)? as u64,
    })
}

impl EventLog {
    /// The link row for `peer`, created at zero if this is the first contact.
    pub async fn link(&self, peer: &NodeId, role: LinkRole) -> Result<LinkCursor, StoreError> {
        let mut write = self.bookkeeping().await?;
        sqlx::query("INSERT INTO links (peer, role) VALUES ($1, $2) ON CONFLICT (peer) DO NOTHING")
            .bind(peer.to_string())
            .bind(role as i64)
            .execute(&mut *write.tx)
            .await?;
        write.commit().await?;
        let row = sqlx::query(
            "SELECT peer, role, applied_from_peer, acked_by_peer, last_sync_ms, last_checksum_ms, \
             last_checksum_ok, repairs FROM links WHERE peer = $1",
        )
        .bind(peer.to_string())
        .fetch_one(self.pool())
        .await?;
        row_to_cursor(&row)
    }

    /// Every link this node has had, parent first.
    pub async fn links(&self) -> Result<Vec<LinkCursor>, StoreError> {
        let rows = sqlx::query(
            "SELECT peer, role, applied_from_peer, acked_by_peer, last_sync_ms, last_checksum_ms, \
             last_checksum_ok, repairs FROM links ORDER BY role, peer",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_cursor).collect()
    }

    /// Records the peer's acknowledgement of our events up to `acked`.
    pub async fn record_ack(&self, peer: &NodeId, acked: u64) -> Result<(), StoreError> {
        let mut write = self.bookkeeping().await?;
        sqlx::query(
            "UPDATE links SET acked_by_peer = CASE WHEN acked_by_peer > $2 THEN acked_by_peer ELSE $2 END, \
             last_sync_ms = $3 WHERE peer = $1",
        )
        .bind(peer.to_string())
        .bind(acked as i64)
        .bind(self.now_ms())
        .execute(&mut *write.tx)
        .await?;
        write.commit().await
    }

    /// Records the outcome of a checksum exchange; a mismatch counts as one repair.
    pub async fn record_checksum(&self, peer: &NodeId, ok: bool) -> Result<(), StoreError> {
        let mut write = self.bookkeeping().await?;
        sqlx::query(
            "UPDATE links SET last_checksum_ms = $2, last_checksum_ok = $3, \
             repairs = repairs + $4 WHERE peer = $1",
        )
        .bind(peer.to_string())
        .bind(self.now_ms())
        .bind(i64::from(ok))
        .bind(i64::from(!ok))
        .execute(&mut *write.tx)
        .await?;
        write.commit().await
    }

    /// How far `peer` is behind us: events routed to it past its acknowledgement.
    pub async fn link_totals(&self, cursor: &LinkCursor) -> Result<LinkTotals, StoreError> {
        let acked = cursor.acked_by_peer as i64;
        let row = match cursor.role {
            LinkRole::Parent => {
                sqlx::query("SELECT COUNT(*), MIN(stored_ms) FROM events WHERE to_parent = 1 AND local_seq > $1")
                    .bind(acked)
                    .fetch_one(self.pool())
                    .await?
            }
            LinkRole::Child => {
                sqlx::query(
                    "SELECT COUNT(*), MIN(stored_ms) FROM events WHERE route_child IN ($1, '*') AND local_seq > $2",
                )
                .bind(cursor.peer.clone())
                .bind(acked)
                .fetch_one(self.pool())
                .await?
            }
        };
        Ok(LinkTotals {
            events_behind: row.try_get::<i64, _>(0)? as u64,
            oldest_unacked_ms: row.try_get::<Option<i64>, _>(1)?,
        })
    }

    /// Alarms, newest first.
    pub async fn alarms(&self, limit: u32) -> Result<Vec<pb::Alarm>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, origin, seq, received_from, reason, raised_ms FROM alarms ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(pb::Alarm {
                    id: row.try_get::<i64, _>(0)? as u64,
                    kind: row.try_get::<i64, _>(1)? as i32,
                    origin: row.try_get(2)?,
                    seq: row.try_get::<i64, _>(3)? as u64,
                    received_from: row.try_get(4)?,
                    reason: row.try_get(5)?,
                    raised_unix_ms: row.try_get(6)?,
                })
            })
            .collect()
    }

    /// Number of alarms raised so far.
    pub async fn alarm_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alarms")
            .fetch_one(self.pool())
            .await?;
        Ok(n as u64)
    }
}
