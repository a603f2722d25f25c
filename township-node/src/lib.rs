//! The township node: a township service centre. It replicates the catalogue down from the county, relays its villages' case data up and the county's decisions down, and serves its village service points.
//!
//! The engine is shared (`tongban-domains`); this crate fixes the tier, so a configuration written
//! for another tier is refused at start-up rather than joining the tree in the wrong place.

use tongban_domains::config::NodeConfig;
use tongban_domains::ids::Tier;
use tongban_domains::node::{self, NodeError, NodeHandle, NodeSpec};

/// The tier this crate runs.
pub const TIER: Tier = Tier::Township;

/// Runs a township node from its configuration until SIGINT or SIGTERM.
pub async fn serve(config: NodeConfig) -> Result<(), NodeError> {
    node::serve_config(TIER, config).await
}

/// Starts a township node on a bound listener (tests, demo, bench).
pub async fn start(spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    node::start_tier(TIER, spec).await
}
