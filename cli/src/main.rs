//! `tongban`: the operator command line. It talks to any node over mTLS with an operator
//! certificate (`catalogue`, `case`, `status`, `alarms`), creates development certificates
//! (`pki init`), and runs the local demonstration tree (`demo`) and the benchmark (`bench`).

mod bench;
mod bench_cases;
mod bench_custody;
mod cases;
mod client;
mod commands;
mod courier;
mod custody;
mod demo;
mod demo_boxes;
mod demo_week;
mod harness;
mod oversight;
mod timelimits;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::Connection;

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
    /// The matter catalogue: import (county), list, show, versions.
    Catalogue {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: commands::CatalogueAction,
    },
    /// Cases: submit (prints the receipt), every workflow action, list and show.
    Case {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: cases::CaseCommand,
    },
    /// The working-day calendar: publish a file at the county, show the one a node counts on.
    Calendar {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: timelimits::CalendarAction,
    },
    /// Supervision records (督办) the county opens on red cases: list, close with a reason.
    Supervision {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: timelimits::SupervisionAction,
    },
    /// The seal register (用印登记): list entries per seal and date range, or write them as CSV.
    Seals {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: oversight::SealsAction,
    },
    /// Ratings (好差评): respond to a bad rating's rectification item, list the items.
    Rating {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: oversight::RatingAction,
    },
    /// Received, accepted, concluded and overdue cases, time to conclusion and rating metrics,
    /// for one township or everything the node knows.
    Oversight {
        #[command(flatten)]
        conn: Connection,
        /// A township's division code; everything this node knows when omitted.
        #[arg(long)]
        township: Option<String>,
    },
    /// Material boxes and paper files at a node: register, pack, seal, hand over, accept,
    /// unpack (a clerk's desk scans), where-is, box history, anomalies, EPCIS export, labels.
    Custody {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: custody::CustodyCommand,
    },
    /// A courier's handheld: scans go to a durable queue on the device first and are uploaded
    /// by `sync` to whichever node it reaches.
    Courier {
        #[command(subcommand)]
        command: courier::CourierCommand,
    },
    /// A node's identity, catalogue version and per-link lag.
    Status {
        #[command(flatten)]
        conn: Connection,
        /// Print the raw status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Integrity alarms and quarantined events at a node.
    Alarms {
        #[command(flatten)]
        conn: Connection,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Development certificates.
    Pki {
        #[command(subcommand)]
        action: commands::PkiAction,
    },
    /// Start a local tree (county, 16 townships, villages) on embedded SQLite and run a day.
    Demo(demo::DemoArgs),
    /// Measure replication throughput, catch-up, propagation, wire size and memory.
    Bench(bench::BenchArgs),
    /// Run a node daemon of any tier in this process (`tongban node serve --config FILE`).
    #[command(hide = true)]
    Node {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tongban_core::tls::install_crypto_provider();
    let cli = Cli::parse();
    if let Command::Node { config } = &cli.command {
        return harness::run_node_process(config);
    }
    // Nodes started in this process (demo, bench) log errors only, unless RUST_LOG says more.
    tongban_core::telemetry::init_logging(&tongban_core::config::LogConfig {
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
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Catalogue { conn, action } => commands::catalogue(conn, action).await,
            Command::Case { conn, command } => cases::run(conn, command).await,
            Command::Calendar { conn, action } => timelimits::calendar(conn, action).await,
            Command::Supervision { conn, action } => timelimits::supervision(conn, action).await,
            Command::Seals { conn, action } => oversight::seals(conn, action).await,
            Command::Rating { conn, action } => oversight::rating(conn, action).await,
            Command::Oversight { conn, township } => oversight::oversight(conn, township).await,
            Command::Custody { conn, command } => custody::run(conn, command).await,
            Command::Courier { command } => courier::run(command).await,
            Command::Status { conn, json } => commands::status(conn, json).await,
            Command::Alarms { conn, limit } => commands::alarms(conn, limit).await,
            Command::Pki { action } => commands::pki(action),
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Node { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
