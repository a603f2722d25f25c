//! A village node: a village service point on a small machine behind a poor link. It works
//! offline, forwards applications to its township when the link is up, and records the default
//! rating of the cases it issued.
//!
//! The engine and the domains are shared (`tongban-engine`, `tongban-domains`); this crate
//! composes its tier from them: how its log is tuned and which periodic tasks it runs. A
//! configuration for another tier is refused at start-up rather than joining the tree in the
//! wrong place.

use tongban_domains::config::NodeConfig;
use tongban_domains::ids::Tier;
use tongban_domains::node::{self, NodeError, NodeHandle, NodeSpec, TierPlan, tasks};
use tongban_domains::store::LogTuning;

/// The tier this crate runs.
pub const TIER: Tier = Tier::Village;

/// What a village node is made of.
pub fn plan() -> TierPlan {
    TierPlan {
        tier: TIER,
        // A small machine with one link that relays nothing: little memory, few connections.
        tuning: LogTuning {
            sqlite_connections: 2,
            postgres_connections: 4,
            sqlite_cache_kib: 1024,
            tail_bytes: 1 << 20,
        },
        tasks: vec![tasks::DEFAULT_RATINGS],
        services: Vec::new(),
    }
}

/// Runs a village node from its configuration until SIGINT or SIGTERM.
pub async fn serve(config: NodeConfig) -> Result<(), NodeError> {
    node::serve_config(plan(), config).await
}

/// Starts a village node on a bound listener (tests, demo, bench).
pub async fn start(spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    node::start(spec, plan()).await
}
