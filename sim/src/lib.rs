//! A whole county on simulated time. The real node code (engine, domains, sync sessions, the
//! tier plans) runs for a county, its townships and villages as hosts of one turmoil
//! simulation driven by a seed: clerks submit and move cases, the county publishes catalogue
//! versions and working-day calendars, and couriers carry each township's box to the county and
//! back, their scans uploaded at the township, the county or both, while the simulation
//! partitions links, holds and delays messages,
//! crashes and restarts nodes and moves the tree's clock across days and weekends. After every
//! run the invariants of replication are checked; a failure carries the seed and a readable
//! trace of what was injected, and the same seed replays the same trace.
//!
//! - [`net`] carries the node's gRPC (mTLS, HTTP/2, the sync link) over turmoil's network: the
//!   node's [`tongban_domains::node::Listen`] seam and the link's dialer.
//! - [`settle`] keeps SQLite's worker threads from racing the simulated clock.
//! - [`county`] builds the simulated tree and lets the driver act at a node.
//! - [`custody`] makes the scans of box trips on the couriers' and clerks' devices.
//! - [`run`] draws faults and work from the seed, runs them and keeps the trace.
//! - [`check`] reads every node's state and checks the invariants.

pub mod check;
pub mod county;
pub mod custody;
pub mod net;
pub mod run;
pub mod settle;

pub use run::{Options, Outcome, run_seed};
