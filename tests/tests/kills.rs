//! `kill -9` of the county and of a village, at several points, loses nothing that was
//! acknowledged, and afterwards every tier agrees. Runs the real `county-node`, `township-node`
//! and `village-node` executables (TOML configurations, certificate files, embedded SQLite):
//!
//! 1. the county is killed while it catches up on a village's backlog (it holds part of it);
//! 2. the village is killed while the county, restarted, still catches up on that backlog;
//! 3. the village is killed while a clerk submits cases there;
//! 4. the county is killed again while the clerk goes on submitting.
//!
//! A case is acknowledged when `Cases.Submit` answered OK. At the end the county holds every
//! acknowledged case, the three files hold exactly the same events from the village and from the
//! county (each once, sequence numbers without a gap), and no node raised an alarm.
//! (`crash.rs` covers killing the relaying township.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tests::bin::{Daemon, NodeToml, free_addr};
use tests::catalogue::{self, small_catalogue};
use tests::db::{self, OriginSummary};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, id, ops, setup};
use tongban_domains::ids::NodeId;
use tongban_domains::pki;
use tongban_domains::store::{Store, StoreLocation};
use tongban_domains::tls::{GENERIC_NODE_NAME, TlsFiles, TlsMaterial};
use tongban_proto::v1::{self as pb, cases_client::CasesClient, get_case_request};
use tongban_testkit::probe::ProbeGenerator;
use tonic::transport::{Channel, Endpoint};

/// Probe events authored at the village before anything starts: the backlog to catch up on.
const BACKLOG: u64 = 20_000;
/// Small frames and quick reconnects, so catching up takes many steps and kills find it midway.
const SYNC: &str = "batch_events = 200\nmax_in_flight = 2\nmax_backoff_secs = 1\nchecksum_interval_secs = 0";
/// Acknowledged submissions to see between two kills.
const BETWEEN_KILLS: usize = 5;

fn sqlite_file(data_dir: &Path, node: &NodeId) -> PathBuf {
    match StoreLocation::in_data_dir(data_dir, node) {
        StoreLocation::SqliteFile(path) => path,
        StoreLocation::Url(url) => panic!("expected a SQLite file, got {url}"),
    }
}

async fn author_backlog(data_dir: &Path, village: &NodeId) {
    let store = Store::open(&StoreLocation::in_data_dir(data_dir, village), village)
        .await
        .unwrap();
    let mut generator = ProbeGenerator::new(village.clone(), 7);
    for _ in 0..BACKLOG / 1000 {
        let batch = (0..1000).map(|_| generator.event(village)).collect();
        store.author(batch).await.unwrap();
    }
    assert_eq!(store.count_from_origin(village).await.unwrap(), BACKLOG);
    store.close().await;
}

/// A channel to `addr`, or `None` while nothing answers there.
async fn try_channel(addr: SocketAddr, tls: &TlsMaterial) -> Option<Channel> {
    Endpoint::from_shared(format!("https://{addr}"))
        .ok()?
        .tls_config(tls.client_config(GENERIC_NODE_NAME))
        .ok()?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .ok()
}

/// Submits cases at the village until `stop`, through kills and restarts; records the id of
/// every case whose submission was acknowledged.
async fn submit_until_stopped(
    addr: SocketAddr,
    clerk: TlsMaterial,
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut client: Option<CasesClient<Channel>> = None;
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            client = try_channel(addr, &clerk).await.map(CasesClient::new);
        }
        let Some(c) = client.as_mut() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let request = pb::SubmitCaseRequest {
            item_code: "T-ALL".to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: String::new(),
            accept_on_the_spot: false,
        };
        match tokio::time::timeout(Duration::from_secs(10), c.submit(request)).await {
            Ok(Ok(receipt)) => acknowledged.lock().unwrap().push(receipt.into_inner().case_id),
            // Not acknowledged: the village was killed, or is not back yet.
            _ => {
                client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn acked(list: &Mutex<Vec<String>>) -> usize {
    list.lock().unwrap().len()
}

/// Waits until `at_least` more submissions than `from` were acknowledged.
async fn wait_acks(list: &Arc<Mutex<Vec<String>>>, from: usize, what: &str) -> usize {
    wait_for(TIMEOUT, what, || async move {
        let n = acked(list);
        if n >= from + BETWEEN_KILLS {
            Ok(n)
        } else {
            Err(format!("{n} acknowledged ({from} before)"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_county_and_village_at_several_points() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township, village) = (id(COUNTY), id(T1), id(T1_VILLAGES[0]));
    let layout = pki::init_dir(
        &dir.path().join("pki"),
        &[county.clone(), township.clone(), village.clone()],
        &[
            (county.clone(), "admin".to_owned()),
            (village.clone(), "clerk".to_owned()),
        ],
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    author_backlog(&data, &village).await;

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
    let log = |node: &NodeId| dir.path().join(format!("{node}.log"));
    let mut county_proc = Daemon::start(
        tests::node_binary!("county-node"),
        county.clone(),
        county_addr,
        config(&county, county_addr, None),
        log(&county),
    );
    county_proc.wait_listening(TIMEOUT).await;
    let mut township_proc = Daemon::start(
        tests::node_binary!("township-node"),
        township.clone(),
        township_addr,
        config(&township, township_addr, Some(county_addr)),
        log(&township),
    );
    township_proc.wait_listening(TIMEOUT).await;
    let mut village_proc = Daemon::start(
        tests::node_binary!("village-node"),
        village.clone(),
        village_addr,
        config(&village, village_addr, Some(township_addr)),
        log(&village),
    );
    village_proc.wait_listening(TIMEOUT).await;
    let admin = TlsFiles::operator(&layout, &county, "admin").load().unwrap();
    let county_file = sqlite_file(&data, &county);

    // 1. Kill the county while it holds part, but not all, of the village's backlog.
    let held = wait_for(TIMEOUT, "the county to hold part of the backlog", || async {
        let summary = db::origin_summary(&county_file, village.as_str()).await;
        match summary.rows as u64 {
            n if n < BACKLOG / 10 => Err(format!("{n} so far")),
            n if n < BACKLOG => Ok(n),
            n => Err(format!("already all {n}: catching up ended before the kill")),
        }
    })
    .await;
    county_proc.kill_9();
    eprintln!("killed the county during catch-up with {held} of {BACKLOG} events");
    county_proc.restart();
    county_proc.wait_listening(TIMEOUT).await;

    // 2. Kill the village while the county still catches up on its backlog.
    let held = wait_for(TIMEOUT, "the restarted county to catch up further", || async {
        let summary = db::origin_summary(&county_file, village.as_str()).await;
        match summary.rows as u64 {
            n if n <= held => Err(format!("{n} so far")),
            n if n < BACKLOG => Ok(n),
            n => Err(format!("already all {n}: catching up ended before the kill")),
        }
    })
    .await;
    village_proc.kill_9();
    eprintln!("killed the village during catch-up with {held} of {BACKLOG} events at the county");
    village_proc.restart();
    village_proc.wait_listening(TIMEOUT).await;

    // The catalogue, so the village can take cases.
    let imported = catalogue::import(
        ops::channel_with(county_addr, &admin).await,
        &small_catalogue(),
        "kills",
    )
    .await;
    assert_eq!(imported.version, 1);
    wait_for(TIMEOUT, "the village to hold catalogue version 1", || async {
        let status = ops::status_on(ops::channel_with(village_addr, &admin).await).await;
        if status.catalogue_version == 1 {
            Ok(())
        } else {
            Err(format!("version {}", status.catalogue_version))
        }
    })
    .await;

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clerk = TlsFiles::operator(&layout, &village, "clerk").load().unwrap();
    let submitter = tokio::spawn(submit_until_stopped(
        village_addr,
        clerk,
        acknowledged.clone(),
        stop.clone(),
    ));

    // 3. Kill the village while the clerk submits.
    let n = wait_acks(&acknowledged, 0, "submissions before killing the village").await;
    village_proc.kill_9();
    eprintln!("killed the village after {n} acknowledged submissions");
    village_proc.restart();
    village_proc.wait_listening(TIMEOUT).await;

    // 4. Kill the county while the clerk goes on submitting.
    let n = wait_acks(
        &acknowledged,
        acked(&acknowledged),
        "submissions after the village restarted",
    )
    .await;
    county_proc.kill_9();
    eprintln!("killed the county after {n} acknowledged submissions");
    let n = wait_acks(&acknowledged, n, "submissions while the county is down").await;
    county_proc.restart();
    county_proc.wait_listening(TIMEOUT).await;
    wait_acks(&acknowledged, n, "submissions after the county restarted").await;
    stop.store(true, Ordering::SeqCst);
    submitter.await.unwrap();
    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();
    assert_eq!(county_proc.starts(), 3);
    assert_eq!(village_proc.starts(), 3);

    // Every tier agrees: the same events from the village and from the county in all three
    // files, each once, without a gap.
    let files: Vec<(NodeId, PathBuf)> = [&county, &township, &village]
        .into_iter()
        .map(|n| (n.clone(), sqlite_file(&data, n)))
        .collect();
    let agree = |origin: NodeId| {
        let files = files.clone();
        async move {
            let mut summaries: Vec<(NodeId, OriginSummary)> = Vec::new();
            for (node, file) in &files {
                summaries.push((node.clone(), db::origin_summary(file, origin.as_str()).await));
            }
            let first = summaries[0].1;
            if summaries.iter().all(|(_, s)| *s == first) {
                Ok(first)
            } else {
                Err(format!("{summaries:?}"))
            }
        }
    };
    let from_village = wait_for(
        Duration::from_secs(180),
        "every tier to hold the same events from the village",
        || agree(village.clone()),
    )
    .await;
    let from_county = wait_for(TIMEOUT, "every tier to hold the same events from the county", || {
        agree(county.clone())
    })
    .await;
    for (origin, summary) in [(&village, from_village), (&county, from_county)] {
        let rows = summary.rows;
        assert!(rows > 0, "no events from {origin}");
        assert_eq!(summary.distinct_seqs, rows, "{origin}: an event stored twice");
        assert_eq!(
            (summary.min_seq, summary.max_seq),
            (Some(1), Some(rows)),
            "{origin}: a gap"
        );
    }
    assert!(
        from_village.rows as u64 >= BACKLOG + acknowledged.len() as u64,
        "the village's events: {from_village:?}, backlog {BACKLOG}, {} acknowledged cases",
        acknowledged.len()
    );

    // The county holds every acknowledged case; no node raised an alarm.
    let mut at_county = CasesClient::new(ops::channel_with(county_addr, &admin).await);
    for case_id in &acknowledged {
        let found = at_county
            .get(pb::GetCaseRequest {
                key: Some(get_case_request::Key::CaseId(case_id.clone())),
            })
            .await;
        assert!(found.is_ok(), "the county lacks acknowledged case {case_id}: {found:?}");
    }
    for addr in [county_addr, township_addr, village_addr] {
        let alarms = ops::alarms_on(ops::channel_with(addr, &admin).await).await;
        assert!(alarms.is_empty(), "node at {addr} raised alarms: {alarms:#?}");
    }
    drop(village_proc);
    drop(township_proc);
    drop(county_proc);
}
