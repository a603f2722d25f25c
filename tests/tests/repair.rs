//! The periodic per-link checksum notices a replica that lost an event and repairs the link by
//! re-sending it; applying is idempotent, so only what was missing is added back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tests::catalogue::{self, small_catalogue};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, db, id, ops, setup, tree};
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::store::StoreLocation;
use tongban_testkit::probe::ProbeGenerator;

/// Events the township authors about the village, so they travel down to it.
const EVENTS: u64 = 5;
/// The one the test deletes at the village.
const LOST: u64 = 3;

async fn held_from(cluster: &tongban_testkit::cluster::Cluster, node: &NodeId, origin: &NodeId) -> Result<u64, String> {
    match cluster.node(node) {
        Some(handle) => handle.store.count_from_origin(origin).await.map_err(|e| e.to_string()),
        None => Err(format!("{node} is not running")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_repairs_a_diverged_link() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township, village) = (id(COUNTY), id(T1), id(T1_VILLAGES[0]));
    let ids = vec![county.clone(), township.clone(), village.clone()];
    let sync = SyncConfig {
        checksum_interval_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), sync).await;
    tree::start_linked(&mut cluster).await;

    let imported = catalogue::import(ops::admin(&cluster, &county).await, &small_catalogue(), "v1").await;
    let mut generator = ProbeGenerator::new(township.clone(), 5);
    let authored = cluster
        .node(&township)
        .unwrap()
        .store
        .author((0..EVENTS).map(|_| generator.event(&village)).collect())
        .await
        .unwrap();
    assert_eq!(authored.len() as u64, EVENTS);
    tree::wait_catalogue(&cluster, &ids, 1).await;
    wait_for(TIMEOUT, "the village to hold the township's events", || async {
        let n = held_from(&cluster, &village, &township).await?;
        if n == EVENTS {
            Ok(())
        } else {
            Err(format!("{n} of {EVENTS}"))
        }
    })
    .await;

    // A healthy link checks out: a checksum exchange that matched, and no repair.
    wait_for(
        TIMEOUT,
        "a matching checksum on the township's link to the village",
        || async {
            let status = ops::status(&cluster, &township).await;
            match ops::link(&status, village.as_str()) {
                Some(l) if l.last_checksum_unix_ms > 0 && l.last_checksum_ok => Ok(l.repairs),
                Some(l) => Err(format!(
                    "last checksum at {} ok={}",
                    l.last_checksum_unix_ms, l.last_checksum_ok
                )),
                None => Err("no link row".to_owned()),
            }
        },
    )
    .await;
    let before = ops::status(&cluster, &township).await;
    assert_eq!(
        ops::link(&before, village.as_str()).unwrap().repairs,
        0,
        "a healthy link was repaired"
    );

    // The village loses one event while it is down.
    cluster.stop(&village).await.unwrap();
    let file = match StoreLocation::in_data_dir(cluster.dir(), &village) {
        StoreLocation::SqliteFile(path) => path,
        StoreLocation::Url(url) => panic!("expected a SQLite file, got {url}"),
    };
    assert_eq!(
        db::delete_event(&file, township.as_str(), LOST).await,
        1,
        "no row deleted"
    );
    assert_eq!(db::stored_hash(&file, township.as_str(), LOST).await, None);
    cluster.start(&village).await.unwrap();

    wait_for(TIMEOUT, "the lost event to come back to the village", || async {
        let store = &cluster.node(&village).ok_or("village not running")?.store;
        match store.has_event(township.as_str(), LOST).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("still missing".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let restored = db::stored_hash(&file, township.as_str(), LOST).await;
    assert_eq!(
        restored.as_deref(),
        Some(authored[(LOST - 1) as usize].content_hash.as_slice())
    );

    let status = wait_for(TIMEOUT, "the township to report the repair", || async {
        let status = ops::status(&cluster, &township).await;
        match ops::link(&status, village.as_str()) {
            Some(l) if l.repairs >= 1 => Ok(status.clone()),
            Some(l) => Err(format!("repairs = {}", l.repairs)),
            None => Err("no link row".to_owned()),
        }
    })
    .await;
    let row = ops::link(&status, village.as_str()).unwrap();
    assert!(row.repairs >= 1);

    // Only the missing event was added: nothing twice, nothing else changed, no alarm.
    assert_eq!(held_from(&cluster, &village, &township).await.unwrap(), EVENTS);
    let summary = db::origin_summary(&file, township.as_str()).await;
    assert_eq!((summary.rows, summary.distinct_seqs), (EVENTS as i64, EVENTS as i64));
    tree::assert_status(&cluster, &village, 1, &imported.content_hash).await;
    ops::assert_no_alarms(&cluster, &ids).await;
    // Later checksums on the repaired link match again.
    wait_for(TIMEOUT, "a matching checksum after the repair", || async {
        let status = ops::status(&cluster, &township).await;
        match ops::link(&status, village.as_str()) {
            Some(l) if l.last_checksum_ok && l.last_checksum_unix_ms > row.last_checksum_unix_ms => Ok(()),
            Some(l) => Err(format!(
                "last checksum ok={} at {}",
                l.last_checksum_ok, l.last_checksum_unix_ms
            )),
            None => Err("no link row".to_owned()),
        }
    })
    .await;
    cluster.stop_all().await;
}
