//! The simulated tree: one turmoil host per node, each running the node through its tier's
//! plan on a SQLite file that survives the host's crashes, and a desk through which the driver
//! acts at the node (a clerk at a window, the county's publisher) on the node's own runtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tongban_domains::calendar::{Clock, ManualClock};
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::{NodeId, Tier};
use tongban_domains::node::{self, NodeSettings, NodeSpec, TierPlan};
use tongban_domains::pki::{DevCa, Principal};
use tongban_domains::store::{Store, StoreLocation};
use tongban_domains::tls::TlsMaterial;

use crate::net::{PORT, SimListener};

/// Work the driver hands a node: runs on the node's runtime against its store.
pub type Job = Box<dyn FnOnce(Arc<Store>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The county, its townships and their villages, by division code.
#[derive(Debug, Clone)]
pub struct Tree {
    pub nodes: Vec<NodeId>,
}

impl Tree {
    /// A county with `townships` townships (1..=3) of `villages` villages each (1..=3).
    pub fn new(townships: usize, villages: usize) -> Tree {
        let mut nodes = vec![node_id("441424")];
        for t in 0..townships.clamp(1, 3) {
            let township = format!("4414241{t:02}");
            nodes.push(node_id(&township));
            for v in 0..villages.clamp(1, 3) {
                nodes.push(node_id(&format!("{township}2{v:02}")));
            }
        }
        Tree { nodes }
    }

    pub fn county(&self) -> &NodeId {
        &self.nodes[0]
    }

    pub fn of_tier(&self, tier: Tier) -> Vec<NodeId> {
        self.nodes.iter().filter(|n| n.tier() == tier).cloned().collect()
    }

    /// Each node below the county with its parent: the links of the tree.
    pub fn links(&self) -> Vec<(NodeId, NodeId)> {
        self.nodes
            .iter()
            .filter_map(|n| n.parent().map(|p| (n.clone(), p)))
            .collect()
    }

    pub fn children(&self, of: &NodeId) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.parent().as_ref() == Some(of))
            .cloned()
            .collect()
    }
}

fn node_id(code: &str) -> NodeId {
    // The codes above are built from fixed digits of the right lengths.
    NodeId::new(code.to_owned()).unwrap_or_else(|e| panic!("simulated node id {code}: {e}"))
}

/// The turmoil host name of a node.
pub fn host(id: &NodeId) -> String {
    format!("n{id}")
}

/// The desks of the running nodes: the driver's way in. A node's desk is replaced when the
/// node restarts and dropped when it crashes, so work sent to a node that is down fails.
pub type Desks = Arc<Mutex<BTreeMap<NodeId, mpsc::UnboundedSender<Job>>>>;

/// What every node of the tree shares.
pub struct Shared {
    pub dir: PathBuf,
    pub ca: DevCa,
    pub clock: Arc<ManualClock>,
    pub desks: Desks,
    pub seed: u64,
}

impl Shared {
    pub fn new(dir: &Path, county: &NodeId, clock: Arc<ManualClock>, seed: u64) -> Result<Shared, String> {
        tongban_domains::tls::install_crypto_provider();
        Ok(Shared {
            dir: dir.to_owned(),
            ca: DevCa::generate(county).map_err(|e| e.to_string())?,
            clock,
            desks: Arc::new(Mutex::new(BTreeMap::new())),
            seed,
        })
    }
}

/// The sync settings of the simulation: short reconnect waits and frequent checksums, so a
/// run of a few simulated minutes sees many reconnects and checks.
pub fn sync_config() -> SyncConfig {
    SyncConfig {
        batch_events: 50,
        max_in_flight: 2,
        checksum_interval_secs: 20,
        max_backoff_secs: 4,
    }
}

/// The tier plan of `id`, from its tier crate, as its binary starts it.
pub fn plan(id: &NodeId) -> TierPlan {
    match id.tier() {
        Tier::County => county_node::plan(),
        Tier::Township => township_node::plan(),
        Tier::Village => village_node::plan(),
    }
}

/// The software of one simulated host: start the node, open its desk, serve jobs until the
/// host crashes. Called again on every restart.
pub async fn run_node(id: NodeId, tls: TlsMaterial, shared: Arc<SharedRef>) -> turmoil::Result {
    let jitter_seed = shared.seed
        ^ id.as_str()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let listener = SimListener::bind(jitter_seed).await?;
    let clock: Arc<dyn Clock> = shared.clock.clone();
    let spec = NodeSpec {
        node_id: id.clone(),
        listener,
        parent_address: id.parent().map(|p| format!("https://{}:{PORT}", host(&p))),
        store: StoreLocation::in_data_dir(&shared.dir, &id),
        tls,
        sync: sync_config(),
        clock,
        // Periodic tasks are run by the driver at known points (see `run`), so their timers
        // are set beyond any run.
        settings: NodeSettings {
            supervision_every: std::time::Duration::from_secs(30 * 86_400),
            rating_every: std::time::Duration::from_secs(30 * 86_400),
            ..NodeSettings::default()
        },
    };
    let handle = node::start(spec, plan(&id)).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    if let Ok(mut desks) = shared.desks.lock() {
        desks.insert(id.clone(), tx);
    }
    while let Some(job) = rx.recv().await {
        job(handle.store.clone()).await;
    }
    Ok(())
}

/// The parts of [`Shared`] a host's software keeps (the CA stays with the driver).
pub struct SharedRef {
    pub dir: PathBuf,
    pub clock: Arc<ManualClock>,
    pub desks: Desks,
    pub seed: u64,
}

/// TLS material for node `id` from the tree's CA.
pub fn node_tls(ca: &DevCa, id: &NodeId) -> Result<TlsMaterial, String> {
    let issued = ca.issue(&Principal::Node(id.clone())).map_err(|e| e.to_string())?;
    TlsMaterial::from_pem(ca.cert_pem(), issued.cert_pem, issued.key_pem).map_err(|e| e.to_string())
}

/// Sends `work` to `id`'s desk; the receiver resolves with its answer, or fails when the node
/// is down (no desk) or crashes before answering.
pub fn send<T: Send + 'static>(
    desks: &Desks,
    id: &NodeId,
    work: impl FnOnce(Arc<Store>) -> Pin<Box<dyn Future<Output = T>>> + Send + 'static,
) -> Option<oneshot::Receiver<T>> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |store| {
        Box::pin(async move {
            let answer = work(store).await;
            let _ = tx.send(answer);
        })
    });
    let desks = desks.lock().ok()?;
    desks.get(id)?.send(job).ok()?;
    Some(rx)
}

/// Drops `id`'s desk (its host crashed): work for it fails until it restarts.
pub fn close_desk(desks: &Desks, id: &NodeId) {
    if let Ok(mut desks) = desks.lock() {
        desks.remove(id);
    }
}
