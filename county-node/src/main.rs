//! `county-node serve --config FILE`: see the crate docs.

fn main() -> std::process::ExitCode {
    tongban_core::daemon::run(county_node::TIER)
}
