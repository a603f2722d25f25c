//! `kill -9` of a relaying township in the middle of a large sync loses nothing and duplicates
//! nothing. Runs the real `county-node`, `township-node` and `village-node` executables with TOML
//! configurations and certificate files, on embedded SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use tests::bin::{Daemon, NodeToml, free_addr};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, db, id, ops, setup};
use tongban_domains::ids::NodeId;
use tongban_domains::pki;
use tongban_domains::store::{Store, StoreLocation};
use tongban_domains::tls::TlsFiles;
use tongban_proto::v1 as pb;
use tongban_testkit::probe::ProbeGenerator;
use tonic::transport::Channel;

/// Events authored at the village before anything starts.
const N: u64 = 20_000;
/// Events per `author` transaction when preparing them.
const AUTHOR_BATCH: u64 = 1_000;
/// Small frames so the county receives the backlog in many steps, giving the test a window in
/// which it has some but not all of it.
const SYNC: &str = "batch_events = 200\nmax_in_flight = 2\nmax_backoff_secs = 1\nchecksum_interval_secs = 0";

fn sqlite_file(data_dir: &Path, node: &NodeId) -> std::path::PathBuf {
    match StoreLocation::in_data_dir(data_dir, node) {
        StoreLocation::SqliteFile(path) => path,
        StoreLocation::Url(url) => panic!("expected a SQLite file, got {url}"),
    }
}

/// Authors `n` probe events at `village` directly in its store, in several transactions.
async fn author_backlog(data_dir: &Path, village: &NodeId, n: u64) {
    let store = Store::open(&StoreLocation::in_data_dir(data_dir, village), village)
        .await
        .unwrap();
    let mut generator = ProbeGenerator::new(village.clone(), 2026);
    let mut written = 0;
    while written < n {
        let size = AUTHOR_BATCH.min(n - written);
        let batch = (0..size).map(|_| generator.event(village)).collect();
        let sealed = store.author(batch).await.unwrap();
        assert_eq!(sealed.last().map(|e| e.seq), Some(written + size));
        written += size;
    }
    assert_eq!(store.count_from_origin(village).await.unwrap(), n);
    store.close().await;
}

async fn status(channel: &Channel) -> pb::NodeStatus {
    ops::status_on(channel.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_township_process_mid_sync() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township, village) = (id(COUNTY), id(T1), id(T1_VILLAGES[0]));
    let layout = pki::init_dir(
        &dir.path().join("pki"),
        &[county.clone(), township.clone(), village.clone()],
        &[(county.clone(), "admin".to_owned())],
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let started = std::time::Instant::now();
    author_backlog(&data, &village, N).await;
    eprintln!("authored {N} events at the village in {:?}", started.elapsed());

    let (county_addr, township_addr, village_addr) = (free_addr(), free_addr(), free_addr());
    let config = |node: &NodeId, listen, parent| {
        let path = dir.path().join(format!("{node}.toml"));
        NodeToml {
            node_id: node.as_str(),
            listen,
            parent,
            data_dir: &data,
            tls: &TlsFiles::node(&layout, node),
            sync: SYNC,
        }
        .write(&path);
        path
    };
    let county_toml = config(&county, county_addr, None);
    let township_toml = config(&township, township_addr, Some(county_addr));
    let village_toml = config(&village, village_addr, Some(township_addr));
    let log = |node: &NodeId| dir.path().join(format!("{node}.log"));

    let mut county_proc = Daemon::start(
        tests::node_binary!("county-node"),
        county.clone(),
        county_addr,
        county_toml,
        log(&county),
    );
    county_proc.wait_listening(TIMEOUT).await;
    let mut township_proc = Daemon::start(
        tests::node_binary!("township-node"),
        township.clone(),
        township_addr,
        township_toml,
        log(&township),
    );
    township_proc.wait_listening(TIMEOUT).await;
    let mut village_proc = Daemon::start(
        tests::node_binary!("village-node"),
        village.clone(),
        village_addr,
        village_toml,
        log(&village),
    );
    village_proc.wait_listening(TIMEOUT).await;

    let operator = TlsFiles::operator(&layout, &county, "admin").load().unwrap();
    let county_ops = ops::channel_with(county_addr, &operator).await;
    let township_ops = ops::channel_with(township_addr, &operator).await;

    // Kill the township once the county has a good part, but not all, of the backlog.
    let seen = wait_for(TIMEOUT, "the county to receive part of the backlog", || async {
        let held = status(&county_ops).await.events_stored;
        match held {
            n if n < N / 10 => Err(format!("{n} so far")),
            n if n < N => Ok(n),
            n => Err(format!(
                "already all {n}: the sync finished before the test could interrupt it"
            )),
        }
    })
    .await;
    township_proc.kill_9();
    eprintln!(
        "killed the township with {seen} of {N} events at the county, {:?} in",
        started.elapsed()
    );

    township_proc.restart();
    township_proc.wait_listening(TIMEOUT).await;
    let township_ops = {
        drop(township_ops);
        ops::channel_with(township_addr, &operator).await
    };

    wait_for(
        Duration::from_secs(180),
        "the county to hold all the village's events",
        || async {
            let held = status(&county_ops).await.events_stored;
            if held == N {
                Ok(())
            } else if held > N {
                Err(format!("{held} events, more than the {N} authored"))
            } else {
                Err(format!("{held} of {N}"))
            }
        },
    )
    .await;
    assert_eq!(township_proc.starts(), 2);
    eprintln!("the county holds all {N} events, {:?} in", started.elapsed());

    let at_county = status(&county_ops).await;
    assert_eq!(at_county.events_stored, N, "events stored at the county");
    assert_eq!(at_county.open_alarms, 0, "the county raised alarms");
    assert!(ops::alarms_on(county_ops.clone()).await.is_empty());
    let at_township = status(&township_ops).await;
    assert_eq!(at_township.open_alarms, 0, "the township raised alarms");
    assert_eq!(at_township.events_stored, N, "events stored at the township");
    assert!(ops::alarms_on(township_ops.clone()).await.is_empty());

    // Every (origin, seq) 1..N exactly once, read from the files themselves (UNIQUE (origin,
    // seq) makes distinct = rows; rows = N with min 1 and max N means none is missing).
    for node in [&county, &township] {
        let summary = db::origin_summary(&sqlite_file(&data, node), village.as_str()).await;
        assert_eq!(summary.rows, N as i64, "{node}: rows from the village");
        assert_eq!(summary.distinct_seqs, N as i64, "{node}: distinct sequence numbers");
        assert_eq!(
            (summary.min_seq, summary.max_seq),
            (Some(1), Some(N as i64)),
            "{node}: sequence range"
        );
    }

    // And the township's cursor at the county covers everything it relayed.
    let row = ops::link(&at_county, township.as_str()).expect("county has a link row for the township");
    assert!(
        row.applied_from_peer >= N,
        "county applied the township up to {}",
        row.applied_from_peer
    );
    drop(village_proc);
    drop(township_proc);
    drop(county_proc);
}
