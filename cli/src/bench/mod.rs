//! `tongban bench`: replication figures on this machine. The county and a township run in this
//! process; the measured village runs as a real child process (`tongban node serve`), so its
//! memory is its own, and its link to the township passes through a byte-counting loopback
//! proxy, so wire size is what actually crossed the socket (TLS and HTTP/2 framing included).
//!
//! - `initial_sync_events_per_s`: 100,000 ~1 KB case-shaped events authored at the village
//!   before it starts, from process start until all are durable at the county.
//! - `catchup_ms`: the village stopped, 1,000 events written for it above, then from process
//!   start until the village itself reports holding them all.
//! - `propagation_p50_ms` / `propagation_p99_ms`: county → village (in-process village) with
//!   links up, one event at a time.
//! - `wire_bytes_per_event`: proxy bytes (both directions) during the initial sync ÷ events.
//! - `village_idle_rss_mb`: the child's VmRSS 3 s after it caught up on restart, link open, idle.
//! - `village_sync_peak_rss_mb`: the child's VmHWM (peak resident set) after the initial sync.

mod cases;
mod custody;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_domains::store::{Store, StoreLocation};
use tongban_domains::tls::{GENERIC_NODE_NAME, TlsMaterial};
use tongban_proto::v1::{self as pb, node_client::NodeClient};
use tongban_testkit::cluster::{Cluster, wait_until};
use tongban_testkit::probe::ProbeGenerator;
use tonic::transport::{Channel, Endpoint};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Events for the initial sync.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events written above the stopped village for the catch-up figure.
    #[arg(long, default_value_t = 1_000)]
    catchup_events: u64,
    /// Single events timed county → village.
    #[arg(long, default_value_t = 300)]
    propagation_samples: usize,
    /// Complete submissions timed at the township.
    #[arg(long, default_value_t = 20_000)]
    submit_cases: usize,
    /// Cases in the township's store for the warning-list figure.
    #[arg(long, default_value_t = 100_000)]
    warning_cases: usize,
    /// Courier scans uploaded to the township for the ingest figure.
    #[arg(long, default_value_t = 100_000)]
    scans: usize,
    /// Documents in the county's store for the where-is figure.
    #[arg(long, default_value_t = 1_000_000)]
    documents: usize,
    /// Which figures to measure.
    #[arg(long, value_enum, default_value_t = Only::All)]
    only: Only,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Only {
    All,
    Replication,
    Cases,
    Custody,
}

/// The figures, with exactly the keys `--json` prints; a figure not measured (`--only`) is left
/// out.
#[derive(Debug, Default, Serialize)]
struct Figures {
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_sync_events_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    catchup_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    propagation_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    propagation_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wire_bytes_per_event: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    village_idle_rss_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    village_sync_peak_rss_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    case_submit_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings_query_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan_ingest_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    where_is_p99_ms: Option<f64>,
}

const COUNTY: &str = "441424";
const TOWNSHIP: &str = "441424100";
/// The village measured as a separate process.
const VILLAGE: &str = "441424100201";
/// A second village, in process, for propagation timing.
const VILLAGE_IN_PROCESS: &str = "441424100202";

pub async fn run(args: BenchArgs) -> Result<()> {
    let temp = tempfile::tempdir()?;
    let mut figures = Figures::default();
    let wanted = |part: Only| args.only == Only::All || args.only == part;
    if wanted(Only::Replication) {
        replication(&args, &temp.path().join("replication"), &mut figures).await?;
    }
    let mut warnings_listed = None;
    let mut warnings_p50 = 0.0;
    let mut where_is_p50 = None;
    if wanted(Only::Custody) {
        if !args.json {
            eprintln!(
                "timing {} courier scans into a township, then where-is at a county holding {} documents ...",
                args.scans, args.documents
            );
        }
        let custody = custody::run(&temp.path().join("custody"), args.scans, args.documents).await?;
        figures.scan_ingest_per_s = Some(custody.scan_ingest_per_s);
        figures.where_is_p99_ms = Some(custody.where_is_p99_ms);
        where_is_p50 = Some(custody.where_is_p50_ms);
    }
    if wanted(Only::Cases) {
        if !args.json {
            eprintln!(
                "timing {} submissions, then warning lists over {} cases at one township ...",
                args.submit_cases, args.warning_cases
            );
        }
        let cases = cases::run(&temp.path().join("cases"), args.submit_cases, args.warning_cases).await?;
        figures.case_submit_per_s = Some(cases.case_submit_per_s);
        figures.warnings_query_p99_ms = Some(cases.warnings_query_p99_ms);
        warnings_listed = Some(cases.warnings_listed);
        warnings_p50 = cases.warnings_query_p50_ms;
    }

    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    println!(
        "tongban bench ({} cores)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("  {:<28} {:>12}   target", "figure", "value");
    let rows = [
        (
            "initial_sync_events_per_s",
            figures.initial_sync_events_per_s,
            ">= 70000",
        ),
        ("catchup_ms", figures.catchup_ms, "< 250"),
        ("propagation_p50_ms", figures.propagation_p50_ms, ""),
        ("propagation_p99_ms", figures.propagation_p99_ms, "< 50"),
        ("wire_bytes_per_event", figures.wire_bytes_per_event, "< 250"),
        ("village_idle_rss_mb", figures.village_idle_rss_mb, "< 30"),
        ("village_sync_peak_rss_mb", figures.village_sync_peak_rss_mb, "< 100"),
        ("case_submit_per_s", figures.case_submit_per_s, ">= 5000"),
        ("warnings_query_p99_ms", figures.warnings_query_p99_ms, "< 20"),
        ("scan_ingest_per_s", figures.scan_ingest_per_s, ">= 20000"),
        ("where_is_p99_ms", figures.where_is_p99_ms, "< 5"),
    ];
    for (name, value, target) in rows {
        if let Some(value) = value {
            println!("  {name:<28} {value:>12.2}   {target}");
        }
    }
    if let Some(p50) = where_is_p50 {
        println!("  (where-is over {} documents: p50 {p50} ms)", args.documents);
    }
    if let Some(listed) = warnings_listed {
        println!(
            "  (warning lists: {listed} warnings over {} cases, first page of 200, p50 {warnings_p50} ms)",
            args.warning_cases
        );
    }
    Ok(())
}

/// The replication figures (see the module comment), measured in `dir`.
async fn replication(args: &BenchArgs, dir: &Path, figures: &mut Figures) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let county = NodeId::new(COUNTY)?;
    let township = NodeId::new(TOWNSHIP)?;
    let village = NodeId::new(VILLAGE)?;
    let near_village = NodeId::new(VILLAGE_IN_PROCESS)?;
    let say = |msg: &str| {
        if !args.json {
            eprintln!("{msg}");
        }
    };

    let mut cluster = Cluster::new(&dir.join("tree"), &county, SyncConfig::default())?;
    for id in [&county, &township, &near_village] {
        cluster.add(id).await?;
    }
    cluster.start_all().await?;
    let county_store = node_store(&cluster, &county)?;
    let township_store = node_store(&cluster, &township)?;
    let near_store = node_store(&cluster, &near_village)?;

    // The measured village: certificate files, a config, and its events authored beforehand.
    let village_dir = dir.join("village");
    std::fs::create_dir_all(&village_dir)?;
    let (config_path, village_addr) = write_village_config(&cluster, &village_dir, &village).await?;
    say(&format!("authoring {} events at village {VILLAGE} ...", args.events));
    {
        let store = Store::open(&StoreLocation::in_data_dir(&village_dir, &village), &village).await?;
        let mut generator = ProbeGenerator::new(village.clone(), 2026);
        let mut left = args.events;
        while left > 0 {
            let n = left.min(1000);
            store
                .author((0..n).map(|_| generator.event(&village)).collect())
                .await?;
            left -= n;
        }
        store.close().await;
    }
    let proxy = CountingProxy::start(cluster.addr(&township)?).await?;
    rewrite_parent(&config_path, &format!("https://{}", proxy.addr))?;

    // Initial sync.
    say("initial sync village → township → county ...");
    let started = Instant::now();
    let mut child = spawn_node(&config_path)?;
    let target = args.events;
    // Poll with a point lookup of the last event (cheap), not a count (which would steal CPU
    // from the nodes being measured); events of one origin arrive in order, and the count is
    // checked once afterwards.
    wait_until(
        Duration::from_secs(600),
        "the county to hold every village event",
        || {
            let store = county_store.clone();
            let village = village.clone();
            async move { store.has_event(village.as_str(), target).await.unwrap_or(false) }
        },
    )
    .await?;
    let sync_secs = started.elapsed().as_secs_f64();
    let arrived = county_store.count_from_origin(&village).await?;
    if arrived != target {
        bail!("the county holds {arrived} of the village's {target} events");
    }
    let wire = proxy.bytes() as f64 / args.events as f64;
    let pid = child.id().context("village process has no pid")?;
    let peak_rss = proc_status_mb(pid, "VmHWM:")?;

    // Catch-up: stop the village, write for it above, start it again.
    child.kill().await?;
    say(&format!(
        "writing {} events for the stopped village at the county ...",
        args.catchup_events
    ));
    let mut generator = ProbeGenerator::new(county.clone(), 7);
    let mut left = args.catchup_events;
    while left > 0 {
        let n = left.min(100);
        county_store
            .author((0..n).map(|_| generator.event(&village)).collect())
            .await?;
        left -= n;
    }
    let last_written = county_store.count_from_origin(&county).await?;
    wait_until(
        Duration::from_secs(60),
        "the township to hold the events for the village",
        || {
            let store = township_store.clone();
            let county = county.clone();
            async move { store.has_event(county.as_str(), last_written).await.unwrap_or(false) }
        },
    )
    .await?;
    // Caught up = the village itself reports every event (its own and those written for it),
    // asked over its operator API from the moment it listens.
    let expected_at_village = args.events + args.catchup_events;
    let operator = operator_tls(&cluster)?;
    let started = Instant::now();
    let mut child = spawn_node(&config_path)?;
    let mut status: Option<NodeClient<Channel>> = None;
    loop {
        if status.is_none() {
            status = connect(village_addr, &operator).await.map(NodeClient::new);
        }
        if let Some(client) = status.as_mut() {
            match client.status(pb::StatusRequest {}).await {
                Ok(reply) if reply.get_ref().events_stored >= expected_at_village => break,
                Ok(_) => {}
                Err(_) => status = None,
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the village did not catch up within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let catchup_ms = started.elapsed().as_secs_f64() * 1000.0;

    // Idle memory: the restarted village, caught up, with its link open and nothing to do.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id().context("village process has no pid")?;
    let idle_rss = proc_status_mb(pid, "VmRSS:")?;
    child.kill().await?;

    // Propagation county → village with links up.
    say("timing county → village propagation ...");
    let mut latencies = Vec::with_capacity(args.propagation_samples);
    let mut committed = near_store.subscribe();
    for _ in 0..args.propagation_samples {
        let sent = Instant::now();
        let written = county_store.author(vec![generator.event(&near_village)]).await?;
        let Some(event) = written.first() else {
            bail!("nothing authored")
        };
        loop {
            if near_store.has_event(&event.origin, event.seq).await? {
                break;
            }
            tokio::time::timeout(Duration::from_secs(10), committed.changed())
                .await
                .context("an event did not reach the village within 10 s")??;
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    figures.initial_sync_events_per_s = Some((args.events as f64 / sync_secs).round());
    figures.catchup_ms = Some(round2(catchup_ms));
    figures.propagation_p50_ms = Some(round2(percentile(&latencies, 0.50)));
    figures.propagation_p99_ms = Some(round2(percentile(&latencies, 0.99)));
    figures.wire_bytes_per_event = Some(round2(wire));
    figures.village_idle_rss_mb = Some(round2(idle_rss));
    figures.village_sync_peak_rss_mb = Some(round2(peak_rss));
    cluster.stop_all().await;
    Ok(())
}

fn node_store(cluster: &Cluster, id: &NodeId) -> Result<Arc<Store>> {
    Ok(cluster
        .node(id)
        .with_context(|| format!("{id} is not running"))?
        .store
        .clone())
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// TLS material of the county's operator `admin`, for asking nodes how far they are.
fn operator_tls(cluster: &Cluster) -> Result<TlsMaterial> {
    let admin = Principal::Operator {
        place: NodeId::new(COUNTY)?,
        name: "admin".into(),
    };
    let issued = cluster.ca().issue(&admin)?;
    Ok(TlsMaterial::from_pem(
        cluster.ca().cert_pem(),
        issued.cert_pem,
        issued.key_pem,
    )?)
}

/// A channel to a node, or `None` while it is not up yet.
async fn connect(addr: SocketAddr, tls: &TlsMaterial) -> Option<Channel> {
    Endpoint::from_shared(format!("https://{addr}"))
        .ok()?
        .tls_config(tls.client_config(GENERIC_NODE_NAME))
        .ok()?
        .connect()
        .await
        .ok()
}

/// Writes the village's certificate files and configuration; returns the config path and the
/// address the village will listen on.
async fn write_village_config(cluster: &Cluster, dir: &Path, village: &NodeId) -> Result<(PathBuf, SocketAddr)> {
    let issued = cluster.ca().issue(&Principal::Node(village.clone()))?;
    std::fs::write(dir.join("ca.pem"), cluster.ca().cert_pem())?;
    std::fs::write(dir.join("node.pem"), &issued.cert_pem)?;
    std::fs::write(dir.join("node.key"), &issued.key_pem)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = format!(
        "node_id = \"{village}\"\nlisten = \"127.0.0.1:{port}\"\nparent = \"https://127.0.0.1:1\"\n\
         data_dir = \"{}\"\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n[log]\nfilter = \"warn\"\n",
        dir.display(),
        dir.join("ca.pem").display(),
        dir.join("node.pem").display(),
        dir.join("node.key").display()
    );
    let path = dir.join("village.toml");
    std::fs::write(&path, config)?;
    Ok((path, SocketAddr::from(([127, 0, 0, 1], port))))
}

fn rewrite_parent(path: &Path, parent: &str) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let text = text
        .lines()
        .map(|line| {
            if line.starts_with("parent = ") {
                format!("parent = \"{parent}\"")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(path, text + "\n")?;
    Ok(())
}

fn spawn_node(config: &Path) -> Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the village process")
}

/// A value in MB from /proc/<pid>/status (`VmRSS:`, `VmHWM:`).
fn proc_status_mb(pid: u32, key: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{key} not in /proc/{pid}/status"))?;
    Ok(kb / 1024.0)
}

/// A loopback TCP proxy that counts every byte in both directions.
struct CountingProxy {
    addr: std::net::SocketAddr,
    bytes: Arc<AtomicU64>,
}

impl CountingProxy {
    async fn start(target: std::net::SocketAddr) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = bytes.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let (ri, wi) = inbound.into_split();
                        let (ro, wo) = outbound.into_split();
                        let up = pump(ri, wo, counter.clone());
                        let down = pump(ro, wi, counter);
                        let _ = tokio::join!(up, down);
                    }
                });
            }
        });
        Ok(CountingProxy { addr, bytes })
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        counter.fetch_add(n as u64, Ordering::Relaxed);
        to.write_all(&buf[..n]).await?;
    }
}
