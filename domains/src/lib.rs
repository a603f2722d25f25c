//! The Tongban domains and the node that serves them.
//!
//! Each domain owns its pure rules, its projection (the fold of its event kinds into its own
//! tables, registered with the engine's log) and its gRPC service:
//! - [`catalogue`]: the matter catalogue model and its CSV/JSON import; [`api`] serves it with
//!   the node's status.
//! - [`calendar`]: working days (调休) and the county's published calendar; [`calendar_api`].
//! - [`case`], [`warnings`]: the one-door case workflow and its red/yellow time limits;
//!   [`cases_api`].
//! - [`oversight_api`]: the seal register, ratings and rectifications, and the oversight summary.
//! - [`custody`], [`labels`]: paper files and material boxes, EPCIS, printed labels;
//!   [`custody_api`].
//!
//! [`store`] is the node's store: the engine's log with every domain registered, and each
//! domain's queries. [`node`] starts a node (the tier crates decide what their tier runs),
//! [`access`] is the table of who may call which RPC, [`config`] and [`daemon`] are the node's
//! configuration and command line. The engine's modules are re-exported under their own names.

pub use tongban_engine::{clock, event, hlc, ids, log, pki, sync, telemetry, tls};

pub mod access;
pub mod api;
pub mod calendar;
pub mod calendar_api;
pub mod case;
pub mod cases_api;
pub mod catalogue;
pub mod config;
pub mod custody;
pub mod custody_api;
pub mod daemon;
pub mod labels;
pub mod node;
pub mod oversight_api;
pub mod probe;
pub mod store;
pub mod warnings;
