//! `tongban custody`: boxes and paper files at a node (being written).

use anyhow::{Result, bail};
use clap::Subcommand;

use crate::client::Connection;

#[derive(Subcommand, Debug)]
pub enum CustodyCommand {
    /// Placeholder.
    WhereIs,
}

pub async fn run(_conn: Connection, _command: CustodyCommand) -> Result<()> {
    bail!("not built yet")
}
