//! Replication between a node and its parent and children over one bidirectional gRPC stream
//! per link.
//!
//! - [`session`] runs one established link in both directions: it streams what the peer lacks
//!   (catch-up, then live push), applies what the peer sends, acknowledges, and checks the link
//!   with a checksum now and then.
//! - [`client`] is the child side: it dials the parent, says hello, runs a session, and
//!   reconnects with backoff and jitter when the link drops.
//! - [`server`] is the parent side: the `tongban.v1.Sync` service that accepts children.
//! - [`LinkRegistry`] tracks which links are up right now, for status and for replacing a
//!   stale session when a child reconnects.

pub mod client;
pub mod server;
pub mod session;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

/// One live link as seen by the registry.
#[derive(Debug, Clone)]
struct LiveLink {
    generation: u64,
    cancel: CancellationToken,
}

/// The links that are up right now. A child that reconnects replaces its previous session,
/// which is cancelled, so two sessions never stream to the same peer.
#[derive(Debug, Default)]
pub struct LinkRegistry {
    // Held only for map operations, never across an await.
    live: Mutex<HashMap<String, LiveLink>>,
    next_generation: AtomicU64,
}

/// Proof of registration; unregisters its own generation (only) when dropped.
pub struct LinkGuard<'a> {
    registry: &'a LinkRegistry,
    peer: String,
    generation: u64,
    pub cancel: CancellationToken,
}

impl Drop for LinkGuard<'_> {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(&self.peer).is_some_and(|l| l.generation == self.generation) {
            live.remove(&self.peer);
        }
    }
}

impl LinkRegistry {
    /// Registers a new session for `peer`, cancelling any previous one.
    pub fn register(&self, peer: &str) -> LinkGuard<'_> {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let previous = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.insert(
                peer.to_owned(),
                LiveLink {
                    generation,
                    cancel: cancel.clone(),
                },
            )
        };
        if let Some(previous) = previous {
            previous.cancel.cancel();
        }
        LinkGuard {
            registry: self,
            peer: peer.to_owned(),
            generation,
            cancel,
        }
    }

    pub fn is_connected(&self, peer: &str) -> bool {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).contains_key(peer)
    }

    /// Cancels every live session (shutdown, or a test cutting links).
    pub fn cancel_all(&self) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for link in live.values() {
            link.cancel.cancel();
        }
    }
}
