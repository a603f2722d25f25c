//! The tier crates by tier: a node is started through its own tier's crate, as its binary is.

use tongban_domains::ids::Tier;
use tongban_domains::node::{NodeError, NodeHandle, NodeSpec, TierPlan};

/// The plan of `tier`, from its tier crate.
pub fn plan(tier: Tier) -> TierPlan {
    match tier {
        Tier::County => county_node::plan(),
        Tier::Township => township_node::plan(),
        Tier::Village => village_node::plan(),
    }
}

/// Starts the node of `spec` through its tier crate.
pub async fn start(spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    match spec.node_id.tier() {
        Tier::County => county_node::start(spec).await,
        Tier::Township => township_node::start(spec).await,
        Tier::Village => village_node::start(spec).await,
    }
}
