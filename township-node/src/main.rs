//! `township-node serve --config FILE`: see the crate docs.

fn main() -> std::process::ExitCode {
    tongban_domains::daemon::run(township_node::plan())
}
