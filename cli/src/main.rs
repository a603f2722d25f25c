//! `tongban`: the Tongban command line. Operators talk to any node over mTLS with an operator
//! certificate (`catalogue`, `case`, `custody`, `status`, …, see [`ops`]); a courier's handheld
//! queues scans and uploads them (`courier`); `pki init` makes development certificates; `demo`
//! runs the local demonstration tree, `bench` the benchmark and `sim` the simulation's seeds. This file only parses the
//! command line, starts the runtime and hands each command to its program.

// Every module's `println!` is this one (textual scope: declared before the modules),
// so piping any output into `head` ends quietly instead of panicking (see `out`).
macro_rules! println {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

mod bench;
mod client;
mod courier;
mod demo;
mod display;
mod harness;
mod ops;
mod out;
mod sim;
#[cfg(test)]
mod stand_in;
mod words;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tongban",
    version,
    about = "Tongban: county, township and village service centres on one platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Operator(ops::OperatorCommand),
    /// A courier's handheld: scans go to a durable queue on the device first and are uploaded
    /// by `sync` to whichever node it reaches.
    // Listed after `custody` as it always was: the flattened operator commands take display
    // positions 0 to 10 in order (custody 7, status 8), and equal positions sort by name.
    #[command(display_order = 8)]
    Courier {
        #[command(subcommand)]
        command: courier::CourierCommand,
    },
    /// Start a local tree (county, 16 townships, villages) on embedded SQLite and run a day.
    Demo(demo::DemoArgs),
    /// Measure replication throughput, catch-up, propagation, wire size and memory.
    Bench(bench::BenchArgs),
    /// Run the county on simulated time for a range of seeds and check every invariant.
    Sim(sim::SimArgs),
    /// Run a node daemon of any tier in this process (`tongban node serve --config FILE`).
    #[command(hide = true)]
    Node {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tongban_domains::tls::install_crypto_provider();
    match Cli::parse().command {
        // A node logs as its configuration says and runs its own runtime.
        Command::Node { config } => harness::run_node_process(&config),
        Command::Operator(command) => run_async(ops::run(command)),
        Command::Courier { command } => run_async(courier::run(command)),
        Command::Demo(args) => run_async(demo::run(args)),
        Command::Bench(args) => run_async(bench::run(args)),
        // No runtime here: the simulation runs its own and must be the process's only work.
        Command::Sim(args) => sim::run(args),
    }
}

/// Runs one command on a fresh runtime and turns its outcome into the exit code.
fn run_async(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    // Nodes started in this process (demo, bench) log errors only, unless RUST_LOG says more.
    tongban_domains::telemetry::init_logging(&tongban_domains::config::LogConfig {
        filter: "error".into(),
        ..Default::default()
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        // A node's answer already says what was refused and what to do next.
        Err(e) if e.downcast_ref::<client::NodeAnswer>().is_some() => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
