//! One established link, run in both directions until either side leaves.
//!
//! Sending: from the peer's stated cursor, read the events routed to the peer in local_seq
//! order and send them in batches; keep at most `max_in_flight` batches unacknowledged (that and
//! the bounded channel bound memory on both ends); when caught up, wait for the store to commit
//! something new and push it at once. Every `checksum_interval`, with nothing in flight, send a
//! checksum of everything routed so far; on a mismatch, re-send the link from the start.
//!
//! Receiving: apply each batch in one transaction that also moves the cursor, then acknowledge.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tongban_proto::v1::{self as pb, link_frame::Frame};
use tracing::{debug, info, warn};

use crate::config::SyncConfig;
use crate::ids::NodeId;
use crate::log::{EventLog, LinkRole, StoreError};

/// Frames queued for the transport. Small: the transport drains it as fast as the link allows,
/// and a full queue is what slows the sender down to the link's pace.
pub const OUTBOUND_QUEUE: usize = 8;

/// How often the latest acknowledgement from the peer is written down.
const ACK_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Control messages from the receiving half to the sending half (acks, checksum replies). At
/// most `max_in_flight` acks plus one reply are ever outstanding.
const CONTROL_QUEUE: usize = 64;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("peer closed the link")]
    PeerClosed,
    #[error("link error: {0}")]
    Transport(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("link replaced or shut down")]
    Cancelled,
}

/// What a session needs to run.
pub struct Session {
    pub store: Arc<EventLog>,
    pub peer: NodeId,
    /// The peer's role seen from this node.
    pub role: LinkRole,
    /// The peer has applied our events up to here (from hello/welcome).
    pub peer_applied: u64,
    pub sync: SyncConfig,
    pub cancel: CancellationToken,
}

enum Control {
    Ack(u64),
    ChecksumReply(pb::ChecksumReply),
}

fn frame(f: Frame) -> pb::LinkFrame {
    pb::LinkFrame { frame: Some(f) }
}

impl Session {
    /// Runs until the peer leaves, the transport fails, or the session is cancelled.
    pub async fn run<S>(self, inbound: S, outbound: mpsc::Sender<pb::LinkFrame>) -> SessionError
    where
        S: Stream<Item = Result<pb::LinkFrame, tonic::Status>> + Unpin + Send,
    {
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let receiving = receive(&self.store, &self.peer, inbound, outbound.clone(), control_tx);
        let sending = send(&self, outbound, control_rx);
        tokio::select! {
            err = receiving => err,
            err = sending => err,
            _ = self.cancel.cancelled() => SessionError::Cancelled,
        }
    }
}

async fn receive<S>(
    store: &EventLog,
    peer: &NodeId,
    mut inbound: S,
    outbound: mpsc::Sender<pb::LinkFrame>,
    control: mpsc::Sender<Control>,
) -> SessionError
where
    S: Stream<Item = Result<pb::LinkFrame, tonic::Status>> + Unpin + Send,
{
    loop {
        let next = match inbound.next().await {
            None => return SessionError::PeerClosed,
            Some(Err(status)) => return SessionError::Transport(status.message().to_owned()),
            Some(Ok(f)) => f.frame,
        };
        match next {
            Some(Frame::Batch(batch)) => {
                let count = batch.events.len();
                let through = batch.through_local_seq;
                let started = std::time::Instant::now();
                match store.apply_from_peer(peer, batch.events, through).await {
                    Ok(report) => {
                        debug!(%peer, count, through, ?report, elapsed_ms = started.elapsed().as_millis() as u64, "applied batch");
                        if report.conflicts > 0 || report.quarantined > 0 {
                            warn!(%peer, conflicts = report.conflicts, quarantined = report.quarantined, "batch raised alarms");
                        }
                    }
                    Err(e) => return e.into(),
                }
                if outbound
                    .send(frame(Frame::Ack(pb::Ack { applied_up_to: through })))
                    .await
                    .is_err()
                {
                    return SessionError::PeerClosed;
                }
            }
            Some(Frame::Ack(ack)) => {
                if control.send(Control::Ack(ack.applied_up_to)).await.is_err() {
                    return SessionError::Cancelled;
                }
            }
            Some(Frame::ChecksumProbe(probe)) => {
                let (count, digest) = match store.inbound_checksum(peer, probe.up_to).await {
                    Ok(v) => v,
                    Err(e) => return e.into(),
                };
                let matches = count == probe.count && digest == probe.digest;
                if !matches {
                    warn!(%peer, ours = count, theirs = probe.count, "link checksum mismatch; asking for a re-send");
                }
                let reply = pb::ChecksumReply {
                    up_to: probe.up_to,
                    count,
                    digest,
                    matches,
                };
                if outbound.send(frame(Frame::ChecksumReply(reply))).await.is_err() {
                    return SessionError::PeerClosed;
                }
            }
            Some(Frame::ChecksumReply(reply)) => {
                if control.send(Control::ChecksumReply(reply)).await.is_err() {
                    return SessionError::Cancelled;
                }
            }
            Some(Frame::Hello(_) | Frame::Welcome(_)) => {
                return SessionError::Protocol("hello/welcome after the link was established".into());
            }
            None => return SessionError::Protocol("empty frame".into()),
        }
    }
}

async fn send(
    session: &Session,
    outbound: mpsc::Sender<pb::LinkFrame>,
    mut control: mpsc::Receiver<Control>,
) -> SessionError {
    let store = &session.store;
    let peer = &session.peer;
    let batch_events = session.sync.batch_events.clamp(1, 10_000);
    let max_in_flight = session.sync.max_in_flight.max(1);
    let mut committed = store.subscribe();
    let mut position = session.peer_applied;
    let mut in_flight: VecDeque<u64> = VecDeque::new();
    let mut probe_pending = false;
    // Acknowledgements only feed the lag figures, so they are persisted at most once a second
    // rather than in a transaction (and an fsync) per batch on the hot path.
    let mut acked = session.peer_applied;
    let mut acked_persisted = session.peer_applied;
    let mut ack_flush = tokio::time::interval(ACK_FLUSH_EVERY);
    ack_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checksum_timer = session.sync.checksum_interval().map(|every| {
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer
    });
    info!(%peer, role = ?session.role, from = position, "link up");
    loop {
        // Fill the window with whatever the peer lacks.
        committed.borrow_and_update();
        while in_flight.len() < max_in_flight {
            let started = std::time::Instant::now();
            let (events, through) = match store.events_for(peer, session.role, position, batch_events).await {
                Ok(read) => read,
                Err(e) => return e.into(),
            };
            if events.is_empty() {
                // Nothing for this peer up to `through`: no need to look at that stretch again.
                position = position.max(through);
                break;
            }
            debug!(%peer, count = events.len(), elapsed_ms = started.elapsed().as_millis() as u64, "read batch");
            let last = through;
            let batch = pb::EventBatch {
                events,
                through_local_seq: last,
            };
            if outbound.send(frame(Frame::Batch(batch))).await.is_err() {
                return SessionError::PeerClosed;
            }
            in_flight.push_back(last);
            position = last;
        }
        let probe_due = async {
            match checksum_timer.as_mut() {
                Some(timer) => {
                    timer.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = committed.changed() => {
                if changed.is_err() {
                    return SessionError::Cancelled;
                }
            }
            msg = control.recv() => match msg {
                None => return SessionError::PeerClosed,
                Some(Control::Ack(up_to)) => {
                    while in_flight.front().is_some_and(|&t| t <= up_to) {
                        in_flight.pop_front();
                    }
                    acked = acked.max(up_to);
                }
                Some(Control::ChecksumReply(reply)) => {
                    probe_pending = false;
                    if let Err(e) = store.record_checksum(peer, reply.matches).await {
                        return e.into();
                    }
                    if !reply.matches {
                        warn!(%peer, up_to = reply.up_to, "peer's checksum differs; re-sending the link from the start");
                        position = 0;
                    }
                }
            },
            _ = ack_flush.tick(), if acked > acked_persisted => {
                if let Err(e) = store.record_ack(peer, acked).await {
                    return e.into();
                }
                acked_persisted = acked;
            }
            _ = probe_due, if in_flight.is_empty() && !probe_pending => {
                match store.outbound_checksum(peer, session.role, position).await {
                    Ok((count, digest)) => {
                        let probe = pb::ChecksumProbe { up_to: position, count, digest };
                        if outbound.send(frame(Frame::ChecksumProbe(probe))).await.is_err() {
                            return SessionError::PeerClosed;
                        }
                        probe_pending = true;
                    }
                    Err(e) => return e.into(),
                }
            }
        }
    }
}
