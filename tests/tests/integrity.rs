//! Delivery is idempotent on (origin, seq), and a second copy that differs is an integrity alarm,
//! never silently accepted and never passed on. The test plays the child end of a real
//! `Sync.Link` stream (a certificate from the cluster's CA) so it can deliver exactly the copies
//! it wants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tests::link::{FakeChild, sealed_probes};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, T2, db, id, ops, setup, tree};
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_domains::store::{LinkRole, StoreLocation};
use tongban_proto::v1::{self as pb, AlarmKind};
use tongban_testkit::cluster::Cluster;

/// Opens a link to `parent` (running in `cluster`) as `child`, with a certificate for `child`
/// issued by the cluster's CA.
async fn link_as(cluster: &Cluster, parent: &NodeId, child: &NodeId) -> FakeChild {
    let tls = ops::material(cluster.ca(), &Principal::Node(child.clone()));
    let addr = cluster.addr(parent).unwrap();
    FakeChild::connect(addr, parent, &tls, child.as_str())
        .await
        .unwrap_or_else(|e| panic!("{child} could not link to {parent}: {e:?}"))
}

fn numbered(events: &[pb::Event], first_local_seq: u64) -> Vec<(u64, pb::Event)> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| (first_local_seq + i as u64, e.clone()))
        .collect()
}

fn sqlite_file(cluster: &Cluster, node: &NodeId) -> std::path::PathBuf {
    match StoreLocation::in_data_dir(cluster.dir(), node) {
        StoreLocation::SqliteFile(path) => path,
        StoreLocation::Url(url) => panic!("expected a SQLite file, got {url}"),
    }
}

/// Every event the node holds for `peer` on the link in `role`, as it would send them.
async fn outbound(cluster: &Cluster, node: &NodeId, peer: &NodeId, role: LinkRole) -> Vec<pb::Event> {
    let store = &cluster.node(node).unwrap().store;
    store
        .events_for(peer, role, 0, 100_000)
        .await
        .unwrap()
        .0
        .into_iter()
        .filter_map(|s| s.event)
        .collect()
}

/// Waits until the county holds `n` events from `origin`.
async fn wait_for_county(cluster: &Cluster, origin: &NodeId, n: u64) {
    let county = id(COUNTY);
    let what = format!("the county to hold {n} events from {origin}");
    wait_for(TIMEOUT, &what, || async {
        let held = cluster
            .node(&county)
            .unwrap()
            .store
            .count_from_origin(origin)
            .await
            .unwrap();
        if held == n {
            Ok(())
        } else {
            Err(format!("{held} events"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_delivery_is_harmless() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let fake = id(T2);
    let ids = vec![county.clone(), id(T1), id(T1_VILLAGES[0])];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;

    let mut child = link_as(&cluster, &county, &fake).await;
    assert_eq!(child.welcome.node_id, COUNTY);
    assert_eq!(child.welcome.applied_up_to, 0, "a new child starts from nothing");

    let events = sealed_probes(&fake, 1..=5, 11);
    let batch = numbered(&events, 1);
    child.send_batch(&batch, 5).await;
    child.expect_ack(5, TIMEOUT).await;
    child.send_batch(&batch, 5).await;
    child.expect_ack(5, TIMEOUT).await;
    // And once more inside one batch: the same event twice in a single frame.
    let doubled = vec![batch[0].clone(), batch[0].clone(), batch[4].clone()];
    child.send_batch(&doubled, 5).await;
    child.expect_ack(5, TIMEOUT).await;

    let store = &cluster.node(&county).unwrap().store;
    assert_eq!(
        store.count_from_origin(&fake).await.unwrap(),
        5,
        "each event stored once"
    );
    let file = sqlite_file(&cluster, &county);
    for event in &events {
        assert!(store.has_event(fake.as_str(), event.seq).await.unwrap());
        let hash = db::stored_hash(&file, fake.as_str(), event.seq).await;
        assert_eq!(
            hash.as_deref(),
            Some(event.content_hash.as_slice()),
            "stored copy of seq {}",
            event.seq
        );
    }
    let summary = db::origin_summary(&file, fake.as_str()).await;
    assert_eq!((summary.rows, summary.distinct_seqs), (5, 5));

    let status = ops::status(&cluster, &county).await;
    assert_eq!(status.open_alarms, 0, "a duplicate raised an alarm");
    assert!(ops::alarms(&cluster, &county).await.is_empty());
    let row = ops::link(&status, fake.as_str()).expect("the county keeps a link row for the child");
    assert_eq!(row.applied_from_peer, 5, "the county's cursor for the child");
    assert!(row.connected);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_duplicate_raises_the_alarm() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let fake = id(T2);
    let (township, village) = (id(T1), id(T1_VILLAGES[0]));
    let ids = vec![county.clone(), township.clone(), village.clone()];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;

    let mut child = link_as(&cluster, &county, &fake).await;
    let events = sealed_probes(&fake, 1..=5, 21);
    child.send_batch(&numbered(&events, 1), 5).await;
    child.expect_ack(5, TIMEOUT).await;

    // A second copy of (fake, 3) with another body, sealed correctly (its hash is valid).
    let other = sealed_probes(&fake, 3..=3, 99).remove(0);
    assert_eq!(other.seq, 3);
    assert_ne!(other.content_hash, events[2].content_hash);
    child.send_batch(&[(6, other.clone())], 6).await;
    child.expect_ack(6, TIMEOUT).await;
    // The same conflicting copy again: still one alarm.
    child.send_batch(&[(7, other.clone())], 7).await;
    child.expect_ack(7, TIMEOUT).await;
    // A legitimate event after it: the link keeps working.
    let next = sealed_probes(&fake, 6..=6, 21).remove(0);
    child.send_batch(&[(8, next.clone())], 8).await;
    child.expect_ack(8, TIMEOUT).await;

    let store = &cluster.node(&county).unwrap().store;
    assert_eq!(store.count_from_origin(&fake).await.unwrap(), 6);
    let file = sqlite_file(&cluster, &county);
    let kept = db::stored_hash(&file, fake.as_str(), 3).await;
    assert_eq!(
        kept.as_deref(),
        Some(events[2].content_hash.as_slice()),
        "the county must keep the first copy"
    );

    let alarms = ops::alarms(&cluster, &county).await;
    assert_eq!(alarms.len(), 1, "exactly one alarm expected: {alarms:#?}");
    let alarm = &alarms[0];
    assert_eq!(alarm.kind, AlarmKind::ConflictingDuplicate as i32, "{alarm:?}");
    assert_eq!(alarm.origin, fake.as_str());
    assert_eq!(alarm.seq, 3);
    assert_eq!(alarm.received_from, fake.as_str());
    assert!(!alarm.reason.is_empty());
    assert_eq!(ops::status(&cluster, &county).await.open_alarms, 1);

    // Not relayed anywhere: the county routes neither copy to any child, the other township and
    // its village never see the origin at all, and nothing came back down our own link.
    for peer in [&township, &fake] {
        let queued = outbound(&cluster, &county, peer, LinkRole::Child).await;
        assert!(
            queued.iter().all(|e| e.origin != fake.as_str()),
            "the county routes {fake}'s events to {peer}"
        );
    }
    for node in [&township, &village] {
        let store = &cluster.node(node).unwrap().store;
        assert_eq!(
            store.count_from_origin(&fake).await.unwrap(),
            0,
            "{node} received {fake}'s events"
        );
        assert!(ops::alarms(&cluster, node).await.is_empty(), "{node} raised an alarm");
    }
    child.drain_for(Duration::from_millis(500)).await;
    assert!(
        child.received.iter().all(|e| e.origin != fake.as_str()),
        "the county sent the child's own events back down"
    );
    cluster.stop_all().await;
}

/// The same at a township, where relaying is observable: the first copy goes on to the county,
/// the conflicting one stops at the township with its alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_duplicate_at_a_township_is_not_relayed_to_the_county() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township) = (id(COUNTY), id(T1));
    let fake = id("441424100203");
    let ids = vec![county.clone(), township.clone()];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;

    let mut child = link_as(&cluster, &township, &fake).await;
    assert_eq!(child.welcome.node_id, T1);
    let events = sealed_probes(&fake, 1..=3, 31);
    child.send_batch(&numbered(&events, 1), 3).await;
    child.expect_ack(3, TIMEOUT).await;

    let other = sealed_probes(&fake, 2..=2, 77).remove(0);
    assert_ne!(other.content_hash, events[1].content_hash);
    child.send_batch(&[(4, other)], 4).await;
    child.expect_ack(4, TIMEOUT).await;
    // Events travel in order, so once seq 4 reaches the county anything sent before it has too.
    let last = sealed_probes(&fake, 4..=4, 31).remove(0);
    child.send_batch(&[(5, last.clone())], 5).await;
    child.expect_ack(5, TIMEOUT).await;

    wait_for_county(&cluster, &fake, 4).await;

    let township_alarms = ops::alarms(&cluster, &township).await;
    assert_eq!(township_alarms.len(), 1, "{township_alarms:#?}");
    assert_eq!(township_alarms[0].kind, AlarmKind::ConflictingDuplicate as i32);
    assert_eq!(
        (township_alarms[0].origin.as_str(), township_alarms[0].seq),
        (fake.as_str(), 2)
    );
    assert!(
        ops::alarms(&cluster, &county).await.is_empty(),
        "the conflict reached the county"
    );

    let up = outbound(&cluster, &township, &county, LinkRole::Parent).await;
    let relayed: Vec<&pb::Event> = up.iter().filter(|e| e.origin == fake.as_str()).collect();
    assert_eq!(relayed.len(), 4, "the township relays each event once");
    let file = sqlite_file(&cluster, &county);
    for original in events.iter().chain([&last]) {
        let hash = db::stored_hash(&file, fake.as_str(), original.seq).await;
        assert_eq!(
            hash.as_deref(),
            Some(original.content_hash.as_slice()),
            "county copy of seq {}",
            original.seq
        );
    }
    cluster.stop_all().await;
}

/// A village pushing many batches to its township while the township relays them to the county
/// (so the county's acknowledgements arrive meanwhile): the township must apply and acknowledge
/// every batch without dropping the village's link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relaying_township_keeps_a_busy_child_link_up() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township) = (id(COUNTY), id(T1));
    let fake = id("441424100204");
    let ids = vec![county.clone(), township.clone()];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;

    let mut child = link_as(&cluster, &township, &fake).await;
    const BATCHES: u64 = 40;
    const PER_BATCH: u64 = 25;
    let events = sealed_probes(&fake, 1..=BATCHES * PER_BATCH, 41);
    for (k, chunk) in events.chunks(PER_BATCH as usize).enumerate() {
        let first = k as u64 * PER_BATCH + 1;
        child.send_batch(&numbered(chunk, first), first + PER_BATCH - 1).await;
        child.expect_ack(first + PER_BATCH - 1, TIMEOUT).await;
    }
    wait_for_county(&cluster, &fake, BATCHES * PER_BATCH).await;
    cluster.stop_all().await;
}

/// The same guarantees with every store of the tree on PostgreSQL: duplicates are no-ops, a
/// conflicting copy raises exactly one alarm and is kept out of the log, and the events that
/// were accepted travel on up to the county.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_holds_with_every_store_on_postgresql() {
    setup();
    let Some(pg) = tests::pg::TempPostgres::start() else {
        eprintln!("{}", tests::pg::SKIP_MESSAGE);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let (township, village) = (id(T1), id(T1_VILLAGES[0]));
    let ids = vec![county.clone(), township.clone(), village.clone()];
    let mut stores = Vec::new();
    for node in &ids {
        let db = format!("tongban_{node}");
        pg.create_database(&db);
        stores.push((node.clone(), StoreLocation::Url(pg.url(&db))));
    }
    let mut cluster = tree::cluster(dir.path(), &ids, stores, SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;

    // A fake village below the real township: its events must reach the county via the township.
    let fake = id(T1_VILLAGES[1]);
    let mut child = link_as(&cluster, &township, &fake).await;
    let events = sealed_probes(&fake, 1..=5, 31);
    child.send_batch(&numbered(&events, 1), 5).await;
    child.expect_ack(5, TIMEOUT).await;
    child.send_batch(&numbered(&events, 1), 5).await;
    child.expect_ack(5, TIMEOUT).await;
    let other = sealed_probes(&fake, 2..=2, 77).remove(0);
    assert_ne!(other.content_hash, events[1].content_hash);
    child.send_batch(&[(6, other)], 6).await;
    child.expect_ack(6, TIMEOUT).await;

    wait_for_county(&cluster, &fake, 5).await;
    let township_store = &cluster.node(&township).unwrap().store;
    assert_eq!(township_store.count_from_origin(&fake).await.unwrap(), 5);
    let alarms = township_store.alarms(10).await.unwrap();
    assert_eq!(alarms.len(), 1, "exactly one alarm expected: {alarms:#?}");
    assert_eq!(alarms[0].kind, AlarmKind::ConflictingDuplicate as i32);
    assert_eq!((alarms[0].origin.as_str(), alarms[0].seq), (fake.as_str(), 2));
    let county_store = &cluster.node(&county).unwrap().store;
    assert_eq!(
        county_store.alarm_count().await.unwrap(),
        0,
        "the conflicting copy must not travel on"
    );
    for (seq, event) in (1u64..).zip(&events) {
        assert!(
            county_store.has_event(fake.as_str(), seq).await.unwrap(),
            "county lacks {fake}/{seq}"
        );
        assert_eq!(event.seq, seq);
    }
    cluster.stop_all().await;
}
