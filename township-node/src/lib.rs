//! A township node: a township service centre. It relays between its villages and the
//! county, handles authorised items and issues results at its windows, and records the default
//! rating of issued cases left unrated.
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
pub const TIER: Tier = Tier::Township;

/// What a township node is made of.
pub fn plan() -> TierPlan {
    TierPlan {
        tier: TIER,
        // Relays several full batches from memory between its villages and the county.
        tuning: LogTuning {
            sqlite_connections: 4,
            postgres_connections: 8,
            sqlite_cache_kib: 8 * 1024,
            tail_bytes: 16 << 20,
        },
        // Issued cases are held by townships and villages, which record their default ratings.
        tasks: vec![tasks::DEFAULT_RATINGS],
        services: Vec::new(),
    }
}

/// Runs a township node from its configuration until SIGINT or SIGTERM.
pub async fn serve(config: NodeConfig) -> Result<(), NodeError> {
    node::serve_config(plan(), config).await
}

/// Starts a township node on a bound listener (tests, demo, bench).
pub async fn start(spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    node::start(spec, plan()).await
}
