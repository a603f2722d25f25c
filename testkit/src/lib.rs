//! The in-process test kit: what the demo, the bench and the scenario tests share and a node
//! never ships.
//!
//! - [`cluster`]: a tree of real nodes in one process, each started through its tier crate.
//! - [`tiers`]: the tier crates by tier.
//! - [`probe`]: realistic case-shaped load events.
//! - [`wuhua`]: Wuhua County's townships, village codes and sample catalogue.
//! - [`wait`]: waiting for a condition with a deadline, saying what was last seen.

pub mod cluster;
pub mod probe;
pub mod tiers;
pub mod wait;
pub mod wuhua;
