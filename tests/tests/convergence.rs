//! The catalogue travels county → township → village and every replica ends up identical: on
//! SQLite, with the county on PostgreSQL, and after a village was away for several versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use tests::catalogue::{self, county_item, small_catalogue};
use tests::pg::county_on_postgres;
use tests::tree::{self, assert_three_tier_convergence, wait_catalogue};
use tests::{COUNTY, T1, T1_VILLAGES, T2, id, ops, setup};
use tongban_domains::catalogue::ItemLevel;
use tongban_domains::config::SyncConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tier_convergence() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = tree::cluster(dir.path(), &tests::full_tree(), Vec::new(), SyncConfig::default()).await;
    assert_three_tier_convergence(&mut cluster, "sqlite").await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_on_postgresql_converges() {
    setup();
    let Some((_pg, stores)) = county_on_postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = tree::cluster(dir.path(), &tests::full_tree(), stores, SyncConfig::default()).await;
    assert_three_tier_convergence(&mut cluster, "postgresql").await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn village_offline_through_several_versions_catches_up() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township, village) = (id(COUNTY), id(T1), id(T1_VILLAGES[0]));
    let ids = vec![county.clone(), township.clone(), village.clone()];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;

    let mut items = small_catalogue();
    let v1 = catalogue::import(ops::admin(&cluster, &county).await, &items, "v1").await;
    assert_eq!(v1.version, 1);
    wait_catalogue(&cluster, &ids, 1).await;

    cluster.stop(&village).await.unwrap();
    assert!(!cluster.is_running(&village));

    // Version 2 adds an item, version 3 changes one, version 4 removes one.
    let mut added = county_item("T-NEW", "000301001000", "村级便民服务代办");
    added.level = ItemLevel::Village;
    items.push(added);
    let v2 = catalogue::import(ops::admin(&cluster, &county).await, &items, "v2: add").await;
    items[0].name = "农村村民住宅用地审批（含宅基地）".to_owned();
    items[0].promised_days = 5;
    let v3 = catalogue::import(ops::admin(&cluster, &county).await, &items, "v3: change").await;
    let removed = items.remove(4);
    assert_eq!(removed.key(), "T-VILLAGE");
    let v4 = catalogue::import(ops::admin(&cluster, &county).await, &items, "v4: remove").await;
    for (response, version, upserts, removals) in [(&v2, 2, 1, 0), (&v3, 3, 1, 0), (&v4, 4, 0, 1)] {
        assert!(response.published, "version {version} was not published");
        assert_eq!(response.version, version);
        assert_eq!(
            (response.upserts, response.removals),
            (upserts, removals),
            "diff of version {version}"
        );
    }
    // The township moves on while the village is away.
    wait_catalogue(&cluster, &[county.clone(), township.clone()], 4).await;
    let stored = tree::head(&cluster, &township).await.unwrap();
    assert_eq!(stored.version, 4);

    cluster.start(&village).await.unwrap();
    let head = wait_catalogue(&cluster, &ids, 4).await;
    assert_eq!(hex::encode(head.hash), v4.content_hash);
    tree::assert_status(&cluster, &village, 4, &v4.content_hash).await;

    let at_village = catalogue::versions(ops::admin(&cluster, &village).await).await;
    let at_county = catalogue::versions(ops::admin(&cluster, &county).await).await;
    let numbers: Vec<u64> = at_village.iter().map(|v| v.version).collect();
    assert_eq!(
        numbers,
        vec![4, 3, 2, 1],
        "version history at the village (newest first)"
    );
    for (mine, theirs) in at_village.iter().zip(&at_county) {
        assert_eq!(mine.version, theirs.version);
        assert_eq!(
            mine.content_hash, theirs.content_hash,
            "hash of version {}",
            mine.version
        );
        assert_eq!(
            mine.item_count, theirs.item_count,
            "item count of version {}",
            mine.version
        );
    }
    assert_eq!(at_county.len(), 4);

    // The village lists version 4's items: the new one is there, the removed one is gone.
    let (version, codes) = catalogue::listed_codes(ops::admin(&cluster, &village).await).await;
    assert_eq!(version, 4);
    let expected: BTreeSet<String> = tests::catalogue::visible_codes(&items, &village);
    assert_eq!(codes, expected);
    assert!(codes.contains("T-NEW"), "the item added in version 2 is missing");
    assert!(
        !codes.contains(removed.key()),
        "the item removed in version 4 is still listed"
    );
    let changed = catalogue::client(ops::admin(&cluster, &village).await)
        .get_item(tongban_proto::v1::GetItemRequest {
            code: "T-ALL".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.version, 4);
    assert_eq!(changed.item.unwrap().name, "农村村民住宅用地审批（含宅基地）");
    ops::assert_no_alarms(&cluster, &ids).await;
    cluster.stop_all().await;
}

/// An operator publishing several versions in quick succession while the townships acknowledge
/// the previous ones: every import must succeed. (On SQLite the county's import transaction
/// reads before it writes, and the link bookkeeping writes on another connection meanwhile.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_succeed_while_links_acknowledge() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let ids = vec![id(COUNTY), id(T1), id(T2)];
    let county = id(COUNTY);
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;
    let mut items = small_catalogue();
    let mut failures = Vec::new();
    for version in 1..=12u64 {
        items[0].promised_days = 1 + (version % 10) as u32;
        items[1].name = format!("个体工商户设立登记（第{version}版）");
        let result = catalogue::import_raw(
            ops::admin(&cluster, &county).await,
            tongban_proto::v1::ImportFormat::Json,
            catalogue::json_bytes(&items),
            "rapid",
        )
        .await;
        match result {
            Ok(r) => assert!(r.published, "version {version} changed items but was not published"),
            Err(status) => failures.push(format!("import #{version}: {:?} {}", status.code(), status.message())),
        }
    }
    assert!(failures.is_empty(), "imports failed:\n{}", failures.join("\n"));
    let head = tree::head(&cluster, &county).await.unwrap();
    wait_catalogue(&cluster, &ids, head.version).await;
    assert_eq!(head.version, 12);
    cluster.stop_all().await;
}
