//! `village-node serve --config FILE`: see the crate docs.

fn main() -> std::process::ExitCode {
    tongban_domains::daemon::run(village_node::plan())
}
