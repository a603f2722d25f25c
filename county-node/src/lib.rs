//! The county node: the root of a county's tree. It authors the matter catalogue and the
//! working-day calendar, receives every township's and village's case data through their links,
//! serves its townships, and scans for red cases to open supervision records (督办).
//!
//! The engine and the domains are shared (`tongban-engine`, `tongban-domains`); this crate
//! composes its tier from them: how its log is tuned, which periodic tasks it runs, and the
//! services only the county mounts (publishing the catalogue and the calendar). A
//! configuration for another tier is refused at start-up rather than joining the tree in the
//! wrong place.

use tongban_domains::config::NodeConfig;
use tongban_domains::ids::Tier;
use tongban_domains::node::{self, NodeError, NodeHandle, NodeSpec, TierPlan, TierService, tasks};
use tongban_domains::store::LogTuning;

/// The tier this crate runs.
pub const TIER: Tier = Tier::County;

/// What a county node is made of.
pub fn plan() -> TierPlan {
    TierPlan {
        tier: TIER,
        // The county serves every township and answers the county-wide queries.
        tuning: LogTuning {
            sqlite_connections: 6,
            postgres_connections: 16,
            sqlite_cache_kib: 32 * 1024,
            tail_bytes: 32 << 20,
        },
        tasks: vec![tasks::SUPERVISION_SCAN],
        // The catalogue and the calendar start here and travel down the whole tree.
        services: vec![TierService::CataloguePublishing, TierService::CalendarPublishing],
    }
}

/// Runs a county node from its configuration until SIGINT or SIGTERM.
pub async fn serve(config: NodeConfig) -> Result<(), NodeError> {
    node::serve_config(plan(), config).await
}

/// Starts a county node on a bound listener (tests, demo, bench).
pub async fn start(spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    node::start(spec, plan()).await
}
