//! Pieces `demo` and `bench` share: Wuhua's tree as node ids, a catalogue split into its two
//! delegation batches, and `tongban node serve` for running a node in a child process.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tongban_domains::catalogue::import::parse_csv;
use tongban_domains::catalogue::model::{DelegationMode, Item, SealType};
use tongban_domains::config::NodeConfig;
use tongban_domains::ids::NodeId;
use tongban_testkit::wuhua;

/// County, the 16 townships, and the first `villages_per_township` service points of each:
/// village points (`…201`, `…202`) before communities (`…001`), so the ids the README uses
/// (`441424100201`) exist from the smallest tree up.
pub fn wuhua_nodes(villages_per_township: usize) -> Result<Vec<NodeId>> {
    let mut nodes = vec![NodeId::new(wuhua::COUNTY_CODE)?];
    for township in wuhua::TOWNSHIPS.iter() {
        nodes.push(NodeId::new(township.code)?);
    }
    for township in wuhua::TOWNSHIPS.iter() {
        let (villages, communities): (Vec<String>, Vec<String>) = wuhua::village_codes(township)
            .into_iter()
            .partition(|code| code.get(9..).is_some_and(|n| n >= "200"));
        for code in villages.into_iter().chain(communities).take(villages_per_township) {
            nodes.push(NodeId::new(code)?);
        }
    }
    Ok(nodes)
}

/// The sample catalogue as shipped (both batches delegated).
pub fn sample_catalogue() -> Result<Vec<Item>> {
    parse_csv(wuhua::SAMPLE_CATALOGUE_CSV.as_bytes())
        .map_err(|e| anyhow::anyhow!("the bundled sample catalogue does not parse: {e}"))
}

/// The catalogue as it stood before the second batch was delegated: batch-2 items are still
/// handled by the county.
pub fn first_batch_only(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .cloned()
        .map(|mut item| {
            if item.batch == 2 {
                item.batch = 0;
                item.delegation = DelegationMode::NotDelegated;
                item.seal = SealType::derive(item.delegation, item.category);
            }
            item
        })
        .collect()
}

/// Serialises items as JSON in the import format, so the demo imports through the real RPC.
pub fn to_json(items: &[Item]) -> Result<Vec<u8>> {
    Ok(tongban_domains::catalogue::import::to_json(items)
        .context("serialising the catalogue")?
        .into_bytes())
}

/// `tongban node serve --config FILE`: any tier, chosen by the node id.
pub fn run_node_process(path: &Path) -> ExitCode {
    let config = match NodeConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    tongban_domains::telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = tongban_testkit::tiers::plan(config.node_id.tier());
    match runtime.block_on(tongban_domains::node::serve_config(plan, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_tree_has_the_village_points_the_readme_names() {
        let nodes: Vec<String> = wuhua_nodes(2).unwrap().iter().map(|n| n.to_string()).collect();
        assert!(nodes.contains(&"441424100201".to_owned()), "{nodes:?}");
        assert!(nodes.contains(&"441424100202".to_owned()), "{nodes:?}");
        assert_eq!(nodes.len(), 1 + 16 + 16 * 2);
    }
}
