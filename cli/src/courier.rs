//! `tongban courier`: a courier's handheld (being written).

use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum CourierCommand {
    /// Placeholder.
    Status,
}

pub async fn run(_command: CourierCommand) -> Result<()> {
    bail!("not built yet")
}
