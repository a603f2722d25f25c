//! The Tongban engine: what every node runs whatever its domains are.
//!
//! - [`ids`]: division codes and the tree they imply.
//! - [`clock`], [`hlc`]: the node's one injectable clock and the hybrid logical clock built on it.
//! - [`event`]: the immutable envelope, its hash, and the rules every kind shares (structure,
//!   arrival over a link, routing).
//! - [`log`]: the event log on SQLite or PostgreSQL, group commit, apply from a peer, link
//!   cursors and alarms, and the [`log::Projection`] trait through which domains fold events.
//! - [`sync`]: parent/child replication over one bidirectional gRPC stream per link.
//! - [`pki`], [`tls`]: the county CA, certificates naming role and place, mTLS configuration.
//! - [`access`]: who may call which RPC (a table applied by a tower layer) and the mapping of
//!   errors to gRPC statuses.
//! - [`config`], [`telemetry`]: the engine's settings and logging.
//!
//! The engine knows no domain: event kinds reach it as numbers, bodies as bytes it hands to the
//! projections registered for them.

pub mod access;
pub mod clock;
pub mod config;
pub mod db;
pub mod event;
pub mod hlc;
pub mod ids;
pub mod log;
pub mod pki;
pub mod sync;
pub mod telemetry;
pub mod tls;
