//! A bounded in-memory tail of the event log, so a link sender that keeps up — the usual case
//! for a relaying township — is served from memory instead of re-reading from the database what
//! was committed a moment ago. Anything older than the tail is read from the database as before.

use std::collections::VecDeque;
use std::sync::Mutex;

use tongban_proto::v1 as pb;

use super::{LinkRole, StagedEvent};
use crate::event::ALL_CHILDREN;

struct Recent {
    local_seq: u64,
    to_parent: bool,
    route_child: Option<String>,
    event: pb::Event,
    bytes: usize,
}

struct Tail {
    events: VecDeque<Recent>,
    bytes: usize,
    // Every event with local_seq >= this is in `events` (those past the newest are yet to come).
    covered_from: u64,
}

/// The tail, bounded by a byte budget.
pub(super) struct RecentEvents {
    // Held for short pushes and copies only, never across an await.
    tail: Mutex<Tail>,
    budget_bytes: usize,
}

impl RecentEvents {
    /// A tail that starts covering from `next_local_seq` (nothing older is in memory).
    pub(super) fn new(next_local_seq: u64, budget_bytes: usize) -> Self {
        RecentEvents {
            tail: Mutex::new(Tail {
                events: VecDeque::new(),
                bytes: 0,
                covered_from: next_local_seq,
            }),
            budget_bytes,
        }
    }

    /// Appends committed events; called in commit order (under the writer mutex).
    pub(super) fn push(&self, staged: &[StagedEvent]) {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        for s in staged {
            let bytes = s.event.body.len() + s.event.subject.len() + s.event.origin.len() + 128;
            tail.bytes += bytes;
            tail.events.push_back(Recent {
                local_seq: s.local_seq as u64,
                to_parent: s.routing.to_parent,
                route_child: s.routing.route_child.clone(),
                event: s.event.clone(),
                bytes,
            });
        }
        while tail.bytes > self.budget_bytes {
            let Some(old) = tail.events.pop_front() else { break };
            tail.bytes -= old.bytes;
            tail.covered_from = old.local_seq + 1;
        }
    }

    /// Up to `limit` events routed to `peer` after `after`, with the local_seq through which the
    /// log was considered; `None` when the tail does not reach back that far and the database
    /// must answer.
    pub(super) fn serve(
        &self,
        peer: &str,
        role: LinkRole,
        after: u64,
        limit: usize,
    ) -> Option<(Vec<pb::SyncedEvent>, u64)> {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if after + 1 < tail.covered_from {
            return None;
        }
        let start = tail.events.partition_point(|e| e.local_seq <= after);
        let mut through = tail.events.back().map(|e| e.local_seq).unwrap_or(after).max(after);
        let mut out = Vec::new();
        for e in tail.events.range(start..) {
            let routed = match role {
                LinkRole::Parent => e.to_parent,
                LinkRole::Child => e.route_child.as_deref().is_some_and(|c| c == peer || c == ALL_CHILDREN),
            };
            if routed {
                out.push(pb::SyncedEvent {
                    local_seq: e.local_seq,
                    event: Some(e.event.clone()),
                });
                if out.len() == limit {
                    through = e.local_seq;
                    break;
                }
            }
        }
        Some((out, through))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::event::Routing;

    fn staged(local_seq: i64, to_parent: bool, route_child: Option<&str>) -> StagedEvent {
        StagedEvent {
            local_seq,
            event: pb::Event {
                origin: "441424100201".into(),
                seq: local_seq as u64,
                body: vec![0; 1000],
                ..Default::default()
            },
            source: String::new(),
            source_seq: 0,
            routing: Routing {
                to_parent,
                route_child: route_child.map(String::from),
            },
        }
    }

    #[test]
    fn serves_only_what_is_routed_and_says_how_far_it_looked() {
        let tail = RecentEvents::new(1, 1 << 20);
        tail.push(&[
            staged(1, true, None),
            staged(2, false, Some("441424100201")),
            staged(3, false, Some(ALL_CHILDREN)),
            staged(4, true, None),
        ]);
        let (up, through) = tail.serve("441424", LinkRole::Parent, 0, 10).unwrap();
        assert_eq!(up.iter().map(|e| e.local_seq).collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(through, 4);
        let (down, _) = tail.serve("441424100201", LinkRole::Child, 0, 10).unwrap();
        assert_eq!(down.iter().map(|e| e.local_seq).collect::<Vec<_>>(), vec![2, 3]);
        let (other, through) = tail.serve("441424100202", LinkRole::Child, 3, 10).unwrap();
        assert!(other.is_empty());
        assert_eq!(
            through, 4,
            "a peer with nothing routed may skip the stretch it was shown"
        );
        let (first, through) = tail.serve("441424", LinkRole::Parent, 0, 1).unwrap();
        assert_eq!((first.len(), through), (1, 1), "a full page stops at its last event");
    }

    #[test]
    fn evicted_events_send_the_reader_to_the_database() {
        let tail = RecentEvents::new(1, 3_000);
        tail.push(&(1..=10).map(|i| staged(i, true, None)).collect::<Vec<_>>());
        assert!(tail.serve("441424", LinkRole::Parent, 0, 10).is_none());
        let (events, _) = tail.serve("441424", LinkRole::Parent, 9, 10).unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_fresh_tail_does_not_claim_what_was_stored_before_it() {
        let tail = RecentEvents::new(101, 1 << 20);
        assert!(tail.serve("441424", LinkRole::Parent, 50, 10).is_none());
        assert!(tail.serve("441424", LinkRole::Parent, 100, 10).is_some());
    }
}
