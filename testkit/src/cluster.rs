//! A local tree of real nodes in one process: each node has its own store, its own loopback
//! port and its own certificate from one development CA, and links to its parent over mTLS
//! exactly as deployed nodes do. `tongban demo`, `tongban bench` and the scenario tests use it.
//!
//! A node keeps its port across restarts so its children reconnect to the same address, and
//! [`Cluster::kill`] aborts a node mid-flight the way a crash would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

use tongban_domains::calendar::{Clock, SystemClock};
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::node::{NodeError, NodeHandle, NodeSettings, NodeSpec};
use tongban_domains::pki::{DevCa, PkiError, Principal};
use tongban_domains::store::StoreLocation;
use tongban_domains::tls::{GENERIC_NODE_NAME, TlsError, TlsMaterial};

/// Why the cluster could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("pki: {0}")]
    Pki(#[from] PkiError),
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    #[error("node: {0}")]
    Node(#[from] NodeError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("node {0} is not part of this cluster")]
    UnknownNode(NodeId),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

struct Slot {
    addr: SocketAddr,
    // The listener bound at registration and held until the first start, so no outgoing
    // connection of another node can take the port in between.
    reserved: Option<std::net::TcpListener>,
    store: StoreLocation,
    tls: TlsMaterial,
    handle: Option<NodeHandle>,
}

/// Nodes of one county, started and stopped at will.
pub struct Cluster {
    dir: PathBuf,
    ca: DevCa,
    county: NodeId,
    sync: SyncConfig,
    slots: BTreeMap<NodeId, Slot>,
    // The clock every node of the tree is started on: one clock for the whole tree, so a test
    // or the demo moves the days of every node at once.
    clock: Arc<dyn Clock>,
    // The settings every node starts with (its configuration file's, in a deployment).
    settings: NodeSettings,
}

impl Cluster {
    /// A cluster whose stores live under `dir`, with a fresh development CA.
    pub fn new(dir: &Path, county: &NodeId, sync: SyncConfig) -> Result<Cluster, ClusterError> {
        tongban_domains::tls::install_crypto_provider();
        std::fs::create_dir_all(dir)?;
        Ok(Cluster {
            dir: dir.to_owned(),
            ca: DevCa::generate(county)?,
            county: county.clone(),
            sync,
            slots: BTreeMap::new(),
            clock: Arc::new(SystemClock),
            settings: NodeSettings::default(),
        })
    }

    /// Starts every node from now on with `settings` (warning thresholds, task intervals).
    pub fn set_settings(&mut self, settings: NodeSettings) {
        self.settings = settings;
    }

    /// Starts every node from now on on `clock` instead of the machine's (a `ManualClock` to
    /// move days, or a simulated one).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    pub fn ca(&self) -> &DevCa {
        &self.ca
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers a node on embedded SQLite (in `dir`) and reserves its port.
    pub async fn add(&mut self, id: &NodeId) -> Result<(), ClusterError> {
        let store = StoreLocation::in_data_dir(&self.dir, id);
        self.add_with_store(id, store).await
    }

    /// Registers a node with an explicit store (e.g. PostgreSQL).
    pub async fn add_with_store(&mut self, id: &NodeId, store: StoreLocation) -> Result<(), ClusterError> {
        let issued = self.ca.issue(&Principal::Node(id.clone()))?;
        let tls = TlsMaterial::from_pem(self.ca.cert_pem(), issued.cert_pem, issued.key_pem)?;
        let reserved = std::net::TcpListener::bind("127.0.0.1:0")?;
        reserved.set_nonblocking(true)?;
        let addr = reserved.local_addr()?;
        self.slots.insert(
            id.clone(),
            Slot {
                addr,
                reserved: Some(reserved),
                store,
                tls,
                handle: None,
            },
        );
        Ok(())
    }

    /// Ids of every registered node, county first.
    pub fn ids(&self) -> Vec<NodeId> {
        self.slots.keys().cloned().collect()
    }

    pub fn addr(&self, id: &NodeId) -> Result<SocketAddr, ClusterError> {
        self.slots
            .get(id)
            .map(|s| s.addr)
            .ok_or_else(|| ClusterError::UnknownNode(id.clone()))
    }

    /// Starts a registered node (its parent need not be up: the link retries).
    pub async fn start(&mut self, id: &NodeId) -> Result<(), ClusterError> {
        let parent_address = match id.parent() {
            Some(parent) => Some(format!("https://{}", self.addr(&parent)?)),
            None => None,
        };
        let sync = self.sync.clone();
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| ClusterError::UnknownNode(id.clone()))?;
        if slot.handle.is_some() {
            return Ok(());
        }
        let listener = match slot.reserved.take() {
            Some(reserved) => TcpListener::from_std(reserved)?,
            None => bind_retrying(slot.addr).await?,
        };
        let spec = NodeSpec {
            node_id: id.clone(),
            listener,
            parent_address,
            store: slot.store.clone(),
            tls: slot.tls.clone(),
            sync,
            clock: self.clock.clone(),
            settings: self.settings,
        };
        // Through the node's own tier crate, as its binary starts it.
        let handle = crate::tiers::start(spec).await?;
        slot.handle = Some(handle);
        Ok(())
    }

    /// Starts every registered node that is not running, top of the tree first.
    pub async fn start_all(&mut self) -> Result<(), ClusterError> {
        let mut ids = self.ids();
        ids.sort_by_key(|id| (id.tier(), id.clone()));
        for id in ids {
            self.start(&id).await?;
        }
        Ok(())
    }

    /// Graceful stop.
    pub async fn stop(&mut self, id: &NodeId) -> Result<(), ClusterError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| ClusterError::UnknownNode(id.clone()))?;
        if let Some(handle) = slot.handle.take() {
            handle.shutdown().await;
        }
        Ok(())
    }

    /// Abrupt stop, as a crash.
    pub fn kill(&mut self, id: &NodeId) -> Result<(), ClusterError> {
        let slot = self
            .slots
            .get_mut(id)
            .ok_or_else(|| ClusterError::UnknownNode(id.clone()))?;
        if let Some(handle) = slot.handle.take() {
            handle.kill();
        }
        Ok(())
    }

    /// Stops every node, bottom of the tree first.
    pub async fn stop_all(&mut self) {
        let mut ids = self.ids();
        ids.sort_by_key(|id| std::cmp::Reverse((id.tier(), id.clone())));
        for id in ids {
            let _ = self.stop(&id).await;
        }
    }

    /// The running node, if it is up.
    pub fn node(&self, id: &NodeId) -> Option<&NodeHandle> {
        self.slots.get(id).and_then(|s| s.handle.as_ref())
    }

    pub fn is_running(&self, id: &NodeId) -> bool {
        self.node(id).is_some()
    }

    /// Writes the CA certificate and the county operator `admin`'s certificate and key into a
    /// PKI directory, so the `tongban` command line can talk to this cluster.
    pub fn write_operator_files(&self, dir: &Path) -> Result<tongban_domains::pki::PkiLayout, ClusterError> {
        let layout = tongban_domains::pki::PkiLayout::new(dir);
        let principal = Principal::Operator {
            place: self.county.clone(),
            name: "admin".into(),
        };
        let issued = self.ca.issue(&principal)?;
        let cert = layout.cert_path(&principal);
        if let Some(parent) = cert.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(layout.ca_cert(), self.ca.cert_pem())?;
        std::fs::write(&cert, issued.cert_pem)?;
        std::fs::write(layout.key_path(&principal), issued.key_pem)?;
        Ok(layout)
    }

    /// A TLS channel to a node as the county's operator `admin`.
    pub async fn operator_channel(&self, id: &NodeId) -> Result<Channel, ClusterError> {
        let admin = Principal::Operator {
            place: self.county.clone(),
            name: "admin".into(),
        };
        self.channel_as(id, &admin).await
    }

    /// A TLS channel to a node as `principal` (a clerk, a courier), with a certificate the
    /// tree's CA issues for it now; the node is verified as any node of the CA, as the CLI does.
    pub async fn channel_as(&self, id: &NodeId, principal: &Principal) -> Result<Channel, ClusterError> {
        let addr = self.addr(id)?;
        let issued = self.ca.issue(principal)?;
        let tls = TlsMaterial::from_pem(self.ca.cert_pem(), issued.cert_pem, issued.key_pem)?;
        Ok(Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls.client_config(GENERIC_NODE_NAME))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await?)
    }
}

/// Binds `addr`, retrying briefly: a port just released by a stopped node can take a moment.
async fn bind_retrying(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

/// Polls `check` every 20 ms until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<(), ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClusterError::Timeout(timeout, what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
