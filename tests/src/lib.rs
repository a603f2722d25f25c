//! Harness for Tongban's multi-node scenario tests (`tests/tests/*.rs`): real nodes, real gRPC,
//! mutual TLS on loopback. The engine's [`tongban_testkit::cluster::Cluster`] starts nodes in this
//! process; this crate owns what the scenarios need around it:
//!
//! - [`pg`]: a throwaway PostgreSQL server per test (skipped cleanly when the binaries are absent,
//!   except under `CI=true`, where their absence fails the test);
//! - [`bin`]: the real `county-node` / `township-node` / `village-node` executables, which Cargo
//!   builds as targets of this package ([`node_binary!`]), and child processes that are killed
//!   when a test ends however it ends;
//! - [`days`]: working days counted by hand (the 2026 schedule written out), for expected
//!   deadlines that do not come from the engine;
//! - [`catalogue`]: small test catalogues and their import through the real `CataloguePublishing.Import` RPC;
//! - [`ops`]: operator gRPC calls (status, alarms, items, versions) as any principal;
//! - [`link`]: a hand-driven child end of a `Sync.Link` stream, to deliver chosen events;
//! - [`db`]: direct reads of a node's SQLite file, and the one deliberate corruption the repair
//!   scenario needs (the store API rightly offers neither);
//! - [`tree`]: an in-process test tree on the engine's `Cluster`, catalogue convergence, and the
//!   convergence scenario shared by the SQLite and PostgreSQL runs;
//! - [`wait`]: polling with a deadline per wait and failure messages that name the condition and
//!   what was last seen;
//! - the node ids of the test tree, and [`setup`], which every test calls first.
//!
//! It asserts nothing itself beyond "this helper worked": the scenarios make the claims.

pub mod bin;
pub mod catalogue;
pub mod custody;
pub mod days;
pub mod db;
pub mod link;
pub mod ops;
pub mod pg;
pub mod tree;
pub use tongban_testkit::wait;

use tongban_domains::ids::NodeId;

/// Wuhua County.
pub const COUNTY: &str = "441424";
/// Shuizhai (水寨镇) and Hedong (河东镇), two real townships of Wuhua.
pub const T1: &str = "441424100";
pub const T2: &str = "441424101";
/// Two villages under each township.
pub const T1_VILLAGES: [&str; 2] = ["441424100201", "441424100202"];
pub const T2_VILLAGES: [&str; 2] = ["441424101201", "441424101202"];

/// A node id from a literal the tests know to be valid.
pub fn id(code: &str) -> NodeId {
    NodeId::new(code).unwrap_or_else(|e| panic!("test tree uses a bad node id: {e}"))
}

/// The county, both townships and their four villages, county first.
pub fn full_tree() -> Vec<NodeId> {
    let mut ids = vec![id(COUNTY), id(T1), id(T2)];
    ids.extend(T1_VILLAGES.iter().chain(T2_VILLAGES.iter()).map(|v| id(v)));
    ids
}

/// What every test calls first: the rustls crypto provider (pitfall 1), and logs to the test's
/// output when `RUST_LOG` is set (e.g. `RUST_LOG=tongban_domains=debug`).
pub fn setup() {
    tongban_domains::tls::install_crypto_provider();
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
