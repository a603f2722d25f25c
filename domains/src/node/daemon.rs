//! The command line shared by `county-node`, `township-node` and `village-node`:
//! `<tier>-node serve --config FILE`. Each binary is a one-line `main` over [`run`] with its
//! tier's plan.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, NodeConfig};
use crate::node::TierPlan;

#[derive(Parser)]
#[command(version, about = "A Tongban node daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node until SIGINT or SIGTERM.
    Serve {
        /// The node's TOML configuration (environment variables TONGBAN_NODE_* override it).
        #[arg(long, short)]
        config: PathBuf,
        /// Write logs as JSON lines instead of human-readable text.
        #[arg(long)]
        json_logs: bool,
    },
    /// Check a configuration (and its certificate files) and exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Parses the command line and runs a node of `tier`. Exit code 2 for a bad configuration,
/// 1 for a failure while running.
pub fn run(plan: TierPlan) -> ExitCode {
    let tier = plan.tier;
    let cli = Cli::parse();
    let (path, json_logs, check_only) = match cli.command {
        Command::Serve { config, json_logs } => (config, json_logs, false),
        Command::Check { config } => (config, false, true),
    };
    let mut config = match NodeConfig::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if config.node_id.tier() != tier {
        eprintln!(
            "error: {} is a {} node, but this is the {tier}-node binary; use {}-node",
            config.node_id,
            config.node_id.tier(),
            config.node_id.tier()
        );
        return ExitCode::from(2);
    }
    if json_logs {
        config.log.format = LogFormat::Json;
    }
    crate::tls::install_crypto_provider();
    // Loaded once: the material checked here is the material the node serves with.
    let tls = match config.tls.load() {
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Ok(tls) if tls.principal != crate::pki::Principal::Node(config.node_id.clone()) => {
            let mismatch = crate::node::NodeError::WrongCertificate {
                expected: format!("node:{}", config.node_id),
                found: tls.principal.to_string(),
            };
            eprintln!("error: {mismatch} ({})", config.tls.cert.display());
            return ExitCode::from(2);
        }
        Ok(tls) => tls,
    };
    if check_only {
        println!("configuration of {tier} node {} is valid", config.node_id);
        return ExitCode::SUCCESS;
    }
    crate::telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::node::serve_loaded(plan, config, tls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
