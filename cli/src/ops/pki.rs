//! `tongban pki init`: a development CA and certificates for Wuhua's tree, operators and
//! couriers' handhelds.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use tongban_domains::ids::NodeId;

#[derive(Subcommand, Debug)]
pub enum PkiAction {
    /// Create a development CA and certificates for Wuhua's tree and an operator.
    Init {
        /// Where to write ca.pem, nodes/ and operators/.
        #[arg(long, default_value = "tongban-pki")]
        dir: PathBuf,
        /// Villages per township to issue certificates for.
        #[arg(long, default_value_t = 2)]
        villages_per_township: usize,
        /// Operator certificates to issue, as NAME@PLACE (default admin@441424).
        #[arg(long = "operator")]
        operators: Vec<String>,
        /// Courier handheld certificates to issue, as DEVICE@PLACE (e.g. pda-07@441424100).
        #[arg(long = "courier")]
        couriers: Vec<String>,
    },
}

pub fn pki(action: PkiAction) -> Result<()> {
    match action {
        PkiAction::Init {
            dir,
            villages_per_township,
            operators,
            couriers,
        } => {
            let nodes = crate::harness::wuhua_nodes(villages_per_township)?;
            let mut ops = Vec::new();
            let requested = if operators.is_empty() {
                vec!["admin@441424".to_string()]
            } else {
                operators
            };
            for spec in requested {
                let (name, place) = spec
                    .split_once('@')
                    .with_context(|| format!("operator {spec:?} must be NAME@PLACE, e.g. admin@441424"))?;
                ops.push((NodeId::new(place)?, name.to_owned()));
            }
            let layout = tongban_domains::pki::init_dir(&dir, &nodes, &ops)?;
            println!(
                "development CA and {} node certificates and {} operator certificate(s) in {}",
                nodes.len(),
                ops.len(),
                layout.dir().display()
            );
            println!("CA certificate: {}", layout.ca_cert().display());
            for (place, name) in &ops {
                println!(
                    "operator {name}@{place}: {}",
                    layout.operator_cert(place, name).display()
                );
            }
            if !couriers.is_empty() {
                let ca = layout.load_ca()?;
                for spec in couriers {
                    let (device, place) = spec
                        .split_once('@')
                        .with_context(|| format!("courier {spec:?} must be DEVICE@PLACE, e.g. pda-07@441424100"))?;
                    let courier = tongban_domains::pki::Principal::courier(NodeId::new(place)?, device)?;
                    layout.ensure(&ca, &courier)?;
                    println!("courier {courier}: {}", layout.cert_path(&courier).display());
                }
            }
        }
    }
    Ok(())
}
