//! The `county-node` executable, built as a target of this package so the scenarios find it through
//! `CARGO_BIN_EXE_test-county-node` without running Cargo themselves. Its body is exactly the
//! `county-node` crate's own `main`.

fn main() -> std::process::ExitCode {
    tongban_domains::daemon::run(county_node::plan())
}
