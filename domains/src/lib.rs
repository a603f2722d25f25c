//! The Tongban domains and the node that serves them.
//!
//! Each domain owns its pure rules, its projection (`projection.rs`: the fold of its event kinds
//! into its own tables, registered with the engine's log, and its commands and queries) and its
//! gRPC service (`service.rs`):
//! - [`catalogue`]: the matter catalogue, its import, and the `Catalogue` and `Node` services;
//! - [`calendar`]: working days (调休) and the county's published calendar;
//! - [`case`]: the one-door case workflow, its red/yellow time limits and supervision;
//! - [`oversight`]: the seal register, ratings and rectifications, and the oversight summary;
//! - [`custody`]: paper files and material boxes, EPCIS, printed labels;
//! - [`staff`]: each centre's staff, their posts and windows, and which post may take which step.
//!
//! [`store`] is the node's store: the engine's log with every domain registered. [`node`] starts
//! a node from the plan its tier crate writes, with its access table, configuration and command
//! line. [`places`] holds the county's towns by name and code, for what operators type and read.
//! [`probe`] folds the bench's load probes. The engine's modules are re-exported under their own
//! names.

pub use tongban_engine::{clock, db, event, hlc, ids, log, pki, sync, telemetry, tls};
pub use tongban_engine::{with_pool, with_tx};

#[macro_use]
mod labelled;

pub mod calendar;
pub mod case;
pub mod catalogue;
pub mod custody;
pub mod node;
pub mod oversight;
pub mod places;
pub mod probe;
pub mod staff;
pub mod store;

pub use node::{access, config, daemon};
