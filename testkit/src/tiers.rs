//! The tier crates by tier: a node is started through its own tier's crate, as its binary is.

use tongban_domains::ids::Tier;
use tongban_domains::node::{self, NodeError, NodeHandle, NodeSpec, TierPlan};

/// The plan of `tier`, from its tier crate.
pub fn plan(tier: Tier) -> TierPlan {
    match tier {
        Tier::County => county_node::plan(),
        Tier::Township => township_node::plan(),
        Tier::Village => village_node::plan(),
    }
}

/// Starts the node of `spec` on its tier crate's plan, as that crate's `start` does.
pub async fn start(spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    let plan = plan(spec.node_id.tier());
    node::start(spec, plan).await
}
