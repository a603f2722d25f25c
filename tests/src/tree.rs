//! Building an in-process test tree with the engine's `Cluster`, and waiting for the catalogue
//! to converge on it. Also the body of the convergence scenario, which runs on SQLite and on
//! PostgreSQL alike.

use std::path::Path;
use std::time::Duration;

use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::store::{CatalogueHead, StoreLocation};
use tongban_proto::v1 as pb;
use tongban_testkit::cluster::Cluster;

use crate::catalogue::{self, expected_codes, small_catalogue, visible_codes};
use crate::wait::{TIMEOUT, wait_for};
use crate::{id, ops};

/// A cluster under `dir` with fresh CA, `ids` registered on embedded SQLite except those given
/// an explicit store in `stores`; nothing started yet.
pub async fn cluster(dir: &Path, ids: &[NodeId], stores: Vec<(NodeId, StoreLocation)>, sync: SyncConfig) -> Cluster {
    let county = ids.first().map(NodeId::county).unwrap_or_else(|| id(crate::COUNTY));
    let mut cluster = Cluster::new(dir, &county, sync).unwrap_or_else(|e| panic!("cannot create the cluster: {e}"));
    for node in ids {
        let result = match stores.iter().find(|(n, _)| n == node) {
            Some((_, store)) => cluster.add_with_store(node, store.clone()).await,
            None => cluster.add(node).await,
        };
        result.unwrap_or_else(|e| panic!("cannot add {node}: {e}"));
    }
    cluster
}

/// Starts every registered node, county first.
pub async fn start_all(cluster: &mut Cluster) {
    cluster
        .start_all()
        .await
        .unwrap_or_else(|e| panic!("cannot start the cluster: {e}"));
}

/// Starts every registered node and waits until each one's parent reports its link up, so a
/// scenario's first step does not race with the links being set up.
pub async fn start_linked(cluster: &mut Cluster) {
    start_all(cluster).await;
    for node in cluster.ids() {
        if let Some(parent) = node.parent()
            && cluster.ids().contains(&parent)
        {
            wait_linked(cluster, &parent, &node).await;
        }
    }
}

/// The catalogue a running node holds, or why it cannot be read.
pub async fn head(cluster: &Cluster, node: &NodeId) -> Result<CatalogueHead, String> {
    match cluster.node(node) {
        Some(handle) => Ok(handle.store.catalogue_head().await),
        None => Err(format!("node {node} is not running")),
    }
}

/// Waits until every node of `ids` holds catalogue `version` with the county's hash; returns
/// that head.
pub async fn wait_catalogue(cluster: &Cluster, ids: &[NodeId], version: u64) -> CatalogueHead {
    let county = id(crate::COUNTY);
    let what = format!("catalogue version {version} on {} nodes", ids.len());
    wait_for(TIMEOUT, &what, || async {
        let reference = head(cluster, &county).await?;
        if reference.version != version {
            return Err(format!("the county holds version {}", reference.version));
        }
        let mut behind = Vec::new();
        for node in ids {
            let h = head(cluster, node).await?;
            if h != reference {
                behind.push(format!("{node} at v{} ({} items)", h.version, h.item_count));
            }
        }
        if behind.is_empty() {
            Ok(reference)
        } else {
            Err(format!("not there yet: {}", behind.join(", ")))
        }
    })
    .await
}

/// Waits until `node`'s link to `peer` is up (as `Node.Status` reports it).
pub async fn wait_linked(cluster: &Cluster, node: &NodeId, peer: &NodeId) {
    let what = format!("{node} to report its link with {peer} connected");
    wait_for(TIMEOUT, &what, || async {
        let status = ops::status(cluster, node).await;
        match ops::link(&status, peer.as_str()) {
            Some(link) if link.connected => Ok(()),
            Some(_) => Err("the link row exists but is not connected".to_owned()),
            None => Err("no link row yet".to_owned()),
        }
    })
    .await
}

/// Checks, over `Node.Status`, that `node` holds `version` with `hash` (hex) and no alarm.
pub async fn assert_status(cluster: &Cluster, node: &NodeId, version: u64, hash: &str) -> pb::NodeStatus {
    let status = ops::status(cluster, node).await;
    assert_eq!(status.node_id, node.as_str(), "status answered by the wrong node");
    assert_eq!(status.catalogue_version, version, "{node}: catalogue version");
    assert_eq!(
        status.catalogue_hash, hash,
        "{node}: catalogue hash differs from the county's"
    );
    assert_eq!(status.open_alarms, 0, "{node}: alarms raised");
    status
}

/// The convergence scenario on the full tree (county, two townships, two villages each), whose
/// county store is whatever `cluster` registered: import the test catalogue at the county
/// through the RPC; every node reaches the same version and hash; each township lists exactly
/// the items available to it and each village exactly its visible items. When the Wuhua sample
/// catalogue exists, it is then published as version 2 and checked the same way.
pub async fn assert_three_tier_convergence(cluster: &mut Cluster, expected_storage: &str) {
    let ids = crate::full_tree();
    let county = id(crate::COUNTY);
    start_linked(cluster).await;

    let items = small_catalogue();
    let imported = catalogue::import(ops::admin(cluster, &county).await, &items, "scenario: first catalogue").await;
    assert!(imported.published, "the first import must publish");
    assert_eq!(imported.version, 1);
    assert_eq!(imported.item_count, items.len() as u32);
    assert_eq!(imported.upserts, items.len() as u32);

    let head = wait_catalogue(cluster, &ids, 1).await;
    assert_eq!(
        hex::encode(head.hash),
        imported.content_hash,
        "the county's head is not what Import reported"
    );
    for node in &ids {
        let status = assert_status(cluster, node, 1, &imported.content_hash).await;
        if *node == county {
            assert_eq!(status.storage, expected_storage, "county storage backend");
        }
        let (version, codes) = catalogue::listed_codes(ops::admin(cluster, node).await).await;
        assert_eq!(version, 1, "{node} answered ListItems at another version");
        assert_eq!(codes, expected_codes(node.as_str()), "items listed at {node}");
    }

    let Some(sample) = catalogue::sample_catalogue() else {
        eprintln!("note: data/wuhua-catalogue.csv is empty; the sample-catalogue part is skipped");
        return;
    };

    let imported = catalogue::import(ops::admin(cluster, &county).await, &sample, "scenario: Wuhua sample").await;
    assert!(imported.published);
    assert_eq!(imported.version, 2);
    assert_eq!(imported.item_count, sample.len() as u32);
    eprintln!("published the Wuhua sample ({} items) as version 2", sample.len());
    wait_catalogue(cluster, &ids, 2).await;
    for node in &ids {
        assert_status(cluster, node, 2, &imported.content_hash).await;
        let (version, codes) = catalogue::listed_codes(ops::admin(cluster, node).await).await;
        assert_eq!(version, 2);
        assert_eq!(codes, visible_codes(&sample, node), "sample items listed at {node}");
    }
}

/// How long to allow a whole scenario phase that moves many events.
pub const LONG: Duration = Duration::from_secs(120);
