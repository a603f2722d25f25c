//! The `township-node` executable, built as a target of this package so the scenarios find it through
//! `CARGO_BIN_EXE_test-township-node` without running Cargo themselves. Its body is exactly the
//! `township-node` crate's own `main`.

fn main() -> std::process::ExitCode {
    tongban_domains::daemon::run(township_node::plan())
}
