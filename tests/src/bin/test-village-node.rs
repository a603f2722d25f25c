//! The `village-node` executable, built as a target of this package so the scenarios find it through
//! `CARGO_BIN_EXE_test-village-node` without running Cargo themselves. Its body is exactly the
//! `village-node` crate's own `main`.

fn main() -> std::process::ExitCode {
    tongban_domains::daemon::run(village_node::plan())
}
