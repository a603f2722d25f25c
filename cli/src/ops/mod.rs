//! The operator commands: everything a clerk, approver or administrator does at a node over
//! mTLS with an operator certificate, one module per domain. This module owns the commands'
//! shape (flattened into the top-level command line) and sends each to its domain.

pub mod calendar;
pub mod cases;
pub mod catalogue;
pub mod custody;
pub mod node;
pub mod oversight;
pub mod pki;
pub mod staff;

use anyhow::Result;
use clap::Subcommand;

use crate::client::Connection;

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// The matter catalogue: import (county), list, show, versions.
    Catalogue {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: catalogue::CatalogueAction,
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
        action: calendar::CalendarAction,
    },
    /// Supervision records (督办) the county opens on red cases: list, close with a reason.
    Supervision {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: calendar::SupervisionAction,
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
        /// A township's name (水寨镇) or division code; everything this node knows when omitted.
        #[arg(long, value_parser = crate::words::township)]
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
    /// A centre's staff (工作人员), their posts and the windows they sit at: put, list.
    Staff {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        action: staff::StaffAction,
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
        action: pki::PkiAction,
    },
}

pub async fn run(command: OperatorCommand) -> Result<()> {
    use OperatorCommand as C;
    match command {
        C::Catalogue { conn, action } => catalogue::catalogue(conn, action).await,
        C::Case { conn, command } => cases::run(conn, command).await,
        C::Calendar { conn, action } => calendar::calendar(conn, action).await,
        C::Supervision { conn, action } => calendar::supervision(conn, action).await,
        C::Seals { conn, action } => oversight::seals(conn, action).await,
        C::Rating { conn, action } => oversight::rating(conn, action).await,
        C::Oversight { conn, township } => oversight::oversight(conn, township).await,
        C::Custody { conn, command } => custody::run(conn, command).await,
        C::Staff { conn, action } => staff::run(conn, action).await,
        C::Status { conn, json } => node::status(conn, json).await,
        C::Alarms { conn, limit } => node::alarms(conn, limit).await,
        C::Pki { action } => pki::pki(action),
    }
}

/// The operator command a command line (without the program name) parses to.
#[cfg(test)]
pub(crate) fn parse(args: &[&str]) -> Result<OperatorCommand, clap::Error> {
    use clap::Parser;
    let cli = crate::Cli::try_parse_from(std::iter::once("tongban").chain(args.iter().copied()))?;
    match cli.command {
        crate::Command::Operator(command) => Ok(command),
        _ => Err(clap::Error::raw(
            clap::error::ErrorKind::InvalidSubcommand,
            "not an operator command",
        )),
    }
}
