//! The Tongban engine, shared by the county, township and village nodes.
//!
//! - [`ids`]: division codes and the tree they imply.
//! - [`event`]: the immutable event envelope, its hash and the rules of authorship and routing.
//! - [`store`]: the event log and projections on SQLite or PostgreSQL.
//! - [`sync`]: parent/child replication over one bidirectional gRPC stream per link.
//! - [`catalogue`]: the matter catalogue model and its CSV/JSON import.
//! - [`pki`], [`tls`]: the county CA, certificates naming role and place, mTLS configuration.
//! - [`case`]: the one-door case workflow; [`cases_api`]: the `Cases` gRPC service.
//! - [`calendar`], [`warnings`]: working days and red/yellow rules; [`calendar_api`]: the
//!   `Calendar` gRPC service (publish and show the working-day calendar).
//! - [`access`]: who may call which RPC (one table, applied by a tower layer) and the one
//!   mapping from errors to gRPC statuses.
//! - [`api`]: the operator gRPC services; [`node`]: running a node; [`config`]: its configuration.

pub mod access;
pub mod api;
pub mod calendar;
pub mod calendar_api;
pub mod case;
pub mod cases_api;
pub mod catalogue;
pub mod cluster;
pub mod config;
pub mod custody;
pub mod custody_api;
pub mod daemon;
pub mod event;
pub mod hlc;
pub mod ids;
pub mod labels;
pub mod node;
pub mod oversight_api;
pub mod pki;
pub mod probe;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;
pub mod warnings;
pub mod wuhua;
