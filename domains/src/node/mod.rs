//! Running a node: open the store, serve gRPC over mTLS (sync, the domains' services, health,
//! reflection) behind the access table, keep the link to the parent, run the tier's periodic
//! tasks, and stop cleanly on request.
//!
//! What differs between tiers is not decided here: each tier crate hands [`start`] its
//! [`TierPlan`] (how its log is tuned, which periodic tasks it runs, which services only it
//! mounts). [`start`] takes an already-bound listener, so tests and the demo start real nodes on
//! port 0; the tier binaries wrap it with configuration, logging and signal handling
//! ([`serve_config`]). The listener is anything that [`Listen`]s: a TCP listener, or a simulated
//! network's, which then also dials the parent.

pub mod access;
pub mod config;
pub mod daemon;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tongban_proto::v1::{catalogue_server::CatalogueServer, node_server::NodeServer, sync_server::SyncServer};
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tracing::{info, info_span};

use crate::calendar::{Clock, SystemClock};
use crate::case::warnings::WarningThresholds;
use crate::catalogue::service::OperatorApi;
use crate::config::{NodeConfig, SyncConfig};
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::store::{LogTuning, Store, StoreError, StoreLocation};
use crate::sync::LinkRegistry;
use crate::sync::client::{Dialer, MAX_FRAME_BYTES, ParentLink, maintain_parent_link};
use crate::sync::server::SyncService;
use crate::tls::{TlsError, TlsMaterial};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the certificate is for {found}, but this node is configured as {expected}")]
    WrongCertificate { expected: String, found: String },
    #[error("this binary runs {expected} nodes, but {id} is a {found}")]
    WrongTier { expected: Tier, found: Tier, id: NodeId },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("gRPC reflection cannot read the embedded descriptors: {0}")]
    Reflection(String),
}

/// Where a node's connections come from, and how it reaches its parent: TCP in production, a
/// simulated network in the deterministic simulation.
pub trait Listen: Send + 'static {
    /// One accepted connection. Its connect info is TCP's, because that is what lets the
    /// access layer read the peer's certificate (`Request::peer_certs`).
    type Io: AsyncRead + AsyncWrite + Connected<ConnectInfo = TcpConnectInfo> + Send + Unpin + 'static;
    /// The address peers reach this node at.
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// Every connection accepted from now on.
    fn incoming(self) -> BoxStream<'static, io::Result<Self::Io>>;
    /// How this node's link dials its parent; `None` dials TCP.
    fn dialer(&self) -> Option<Dialer> {
        None
    }
}

impl Listen for TcpListener {
    type Io = TcpStream;

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }

    fn incoming(self) -> BoxStream<'static, io::Result<TcpStream>> {
        // TCP_NODELAY on every accepted socket: a reply written in several pieces otherwise
        // waits out the client's delayed ACK (~40 ms per RPC). The builder's own setting only
        // applies to listeners it binds itself.
        TcpIncoming::from(self).with_nodelay(Some(true)).boxed()
    }
}

/// Everything needed to start a node.
pub struct NodeSpec<L: Listen = TcpListener> {
    pub node_id: NodeId,
    pub listener: L,
    /// The parent's `https://` address; `None` at the county.
    pub parent_address: Option<String>,
    pub store: StoreLocation,
    pub tls: TlsMaterial,
    pub sync: SyncConfig,
    /// The node's one clock (the machine's in production, a moved or simulated one in tests).
    pub clock: Arc<dyn Clock>,
    /// The node's own settings, in force before anything runs.
    pub settings: NodeSettings,
}

/// A node's own settings (from its configuration file), applied when its store opens, before
/// any service or task runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeSettings {
    /// Red/yellow thresholds (`[warnings]`).
    pub warnings: WarningThresholds,
    /// How often the county scans for red cases (`[supervision] scan_interval_secs`).
    pub supervision_every: Duration,
    /// How often townships and villages record default ratings
    /// (`[ratings] default_scan_interval_secs`).
    pub rating_every: Duration,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings::from_config_sections(
            WarningThresholds::default(),
            &crate::config::SupervisionConfig::default(),
            &crate::config::RatingsConfig::default(),
        )
    }
}

impl NodeSettings {
    /// The settings a configuration file gives.
    pub fn from_config(config: &NodeConfig) -> Self {
        NodeSettings::from_config_sections(config.warnings, &config.supervision, &config.ratings)
    }

    fn from_config_sections(
        warnings: WarningThresholds,
        supervision: &crate::config::SupervisionConfig,
        ratings: &crate::config::RatingsConfig,
    ) -> Self {
        NodeSettings {
            warnings,
            supervision_every: Duration::from_secs(supervision.scan_interval_secs.max(1)),
            rating_every: Duration::from_secs(ratings.default_scan_interval_secs.max(1)),
        }
    }

    fn apply(&self, store: &Store) {
        store.set_warning_thresholds(self.warnings);
        store.set_supervision_interval(self.supervision_every);
        store.set_rating_scan_interval(self.rating_every);
    }
}

/// What a tier makes of a node; each tier crate writes its own.
#[derive(Clone)]
pub struct TierPlan {
    /// The tier this plan runs; a node of another tier is refused at start.
    pub tier: Tier,
    /// Connections, page cache and in-memory tail of the node's log.
    pub tuning: LogTuning,
    /// What the node does on its own, on a timer.
    pub tasks: Vec<PeriodicTask>,
    /// The services only this tier serves, mounted beside those every node serves.
    pub services: Vec<TierService>,
}

/// A service that only some tiers mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierService {
    /// `tongban.v1.CataloguePublishing`: importing the matter catalogue (the county).
    CataloguePublishing,
    /// `tongban.v1.CalendarPublishing`: publishing the working-day calendar (the county).
    CalendarPublishing,
}

/// One run of a periodic task: how many things it did (logged when not zero).
pub type TaskRun = for<'a> fn(&'a Store) -> Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>>;

/// A task a node runs on its own until it stops: wait, run, repeat. The wait is read from the
/// store before each run, so it is what the node's settings say.
#[derive(Clone, Copy)]
pub struct PeriodicTask {
    /// For the logs: what the task does.
    pub name: &'static str,
    pub every: fn(&Store) -> Duration,
    pub run: TaskRun,
}

/// The periodic tasks the tiers choose from.
pub mod tasks {
    use super::{PeriodicTask, Store};

    /// The county's scan for red cases, which opens supervision records (督办)
    /// ([`Store::scan_supervision`]).
    pub const SUPERVISION_SCAN: PeriodicTask = PeriodicTask {
        name: "supervision scan",
        every: Store::supervision_interval,
        run: |store| Box::pin(async move { store.scan_supervision().await.map_err(|e| e.to_string()) }),
    };

    /// Default ratings for issued cases left unrated ([`Store::record_default_ratings`]), on the
    /// store's clock: run where issued cases are held, at townships and villages.
    pub const DEFAULT_RATINGS: PeriodicTask = PeriodicTask {
        name: "default ratings",
        every: Store::rating_scan_interval,
        run: |store| {
            Box::pin(async move {
                store
                    .record_default_ratings(store.now_ms())
                    .await
                    .map(|rated| rated.len())
                    .map_err(|e| e.to_string())
            })
        },
    };
}

/// A running node.
pub struct NodeHandle {
    pub store: Arc<Store>,
    pub links: Arc<LinkRegistry>,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    parent_link: Option<JoinHandle<()>>,
}

impl NodeHandle {
    pub fn node_id(&self) -> &NodeId {
        self.store.node()
    }

    /// `https://127.0.0.1:port` for peers and clients.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops serving, closes links and the store, and waits for all of it.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.links.cancel_all();
        if let Some(link) = self.parent_link {
            let _ = link.await;
        }
        // Streams of children end when their sessions are cancelled; give the server a moment.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        self.store.close().await;
    }

    /// Stops abruptly, as a crash would: tasks are aborted mid-flight, nothing is flushed
    /// beyond what was already committed.
    pub fn kill(self) {
        self.links.cancel_all();
        if let Some(link) = self.parent_link {
            link.abort();
        }
        self.server.abort();
        self.shutdown.cancel();
    }

    /// Resolves when the node stops by itself (a server error).
    pub async fn wait(&mut self) -> Result<(), NodeError> {
        match (&mut self.server).await {
            Ok(result) => Ok(result?),
            Err(_) => Ok(()),
        }
    }
}

/// Starts a node of the plan's tier on an already-bound listener.
pub async fn start<L: Listen>(spec: NodeSpec<L>, plan: TierPlan) -> Result<NodeHandle, NodeError> {
    let NodeSpec {
        node_id,
        listener,
        parent_address,
        store,
        tls,
        sync,
        clock,
        settings,
    } = spec;
    if node_id.tier() != plan.tier {
        return Err(NodeError::WrongTier {
            expected: plan.tier,
            found: node_id.tier(),
            id: node_id,
        });
    }
    match &tls.principal {
        Principal::Node(id) if *id == node_id => {}
        other => {
            return Err(NodeError::WrongCertificate {
                expected: format!("node:{node_id}"),
                found: other.to_string(),
            });
        }
    }
    let store = Store::open_on(&store, &node_id, clock, plan.tuning).await?;
    settings.apply(&store);
    let links = Arc::new(LinkRegistry::default());
    let addr = listener.local_addr().map_err(|source| NodeError::Listen {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let dialer = listener.dialer();
    let shutdown = CancellationToken::new();

    let (health, health_service) = tonic_health::server::health_reporter();
    let mut mounted = Mounted {
        health,
        names: Vec::new(),
    };
    let sync_service = SyncServer::new(SyncService {
        store: store.log().clone(),
        links: links.clone(),
        sync: sync.clone(),
    })
    .accept_compressed(CompressionEncoding::Zstd)
    .send_compressed(CompressionEncoding::Zstd)
    .max_decoding_message_size(MAX_FRAME_BYTES)
    .max_encoding_message_size(MAX_FRAME_BYTES);
    let api = OperatorApi {
        store: store.clone(),
        links: links.clone(),
    };
    let mut router = Server::builder()
        .tls_config(tls.server_config())?
        .http2_keepalive_interval(Some(Duration::from_secs(15)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .trace_fn(|req| info_span!("rpc", path = %req.uri().path()))
        // Every request meets the access table before it is decoded.
        .layer(tongban_engine::access::AccessLayer::new(
            node_id.clone(),
            crate::access::NODE_ACCESS,
        ))
        .add_service(health_service)
        .add_service(mounted.serving(sync_service).await)
        .add_service(mounted.serving(crate::case::service::server(store.clone())).await)
        .add_service(mounted.serving(crate::calendar::service::server(store.clone())).await)
        .add_service(
            mounted
                .serving(crate::oversight::service::seals_server(store.clone()))
                .await,
        )
        .add_service(
            mounted
                .serving(crate::oversight::service::ratings_server(store.clone()))
                .await,
        )
        .add_service(
            mounted
                .serving(crate::oversight::service::oversight_server(store.clone()))
                .await,
        )
        .add_service(mounted.serving(crate::custody::service::server(store.clone())).await)
        .add_service(mounted.serving(crate::staff::service::server(store.clone())).await)
        .add_service(
            mounted
                .serving(crate::oversight::service::entrustment_server(store.clone()))
                .await,
        )
        .add_service(
            mounted
                .serving(
                    NodeServer::new(api.clone())
                        .accept_compressed(CompressionEncoding::Gzip)
                        .send_compressed(CompressionEncoding::Gzip),
                )
                .await,
        )
        .add_service(
            mounted
                .serving(
                    CatalogueServer::new(api.clone())
                        .accept_compressed(CompressionEncoding::Gzip)
                        .send_compressed(CompressionEncoding::Gzip)
                        .max_encoding_message_size(MAX_FRAME_BYTES),
                )
                .await,
        );
    for service in &plan.services {
        router = match service {
            TierService::CataloguePublishing => router.add_service(
                mounted
                    .serving(crate::catalogue::service::publishing_server(api.clone()))
                    .await,
            ),
            TierService::CalendarPublishing => router.add_service(
                mounted
                    .serving(crate::calendar::service::publishing_server(store.clone()))
                    .await,
            ),
        };
    }
    let (reflection_v1, reflection_v1alpha) = mounted.reflection()?;
    let router = router.add_service(reflection_v1).add_service(reflection_v1alpha);
    let incoming = listener.incoming();
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, server_shutdown.cancelled_owned())
            .await
    });

    let parent_link = match (node_id.parent(), parent_address) {
        (Some(parent_id), Some(address)) => {
            let link = ParentLink {
                parent_id,
                address,
                tls: Arc::new(tls),
                dialer,
            };
            Some(tokio::spawn(maintain_parent_link(
                store.log().clone(),
                links.clone(),
                link,
                sync,
                shutdown.clone(),
            )))
        }
        _ => None,
    };
    for task in plan.tasks {
        tokio::spawn(run_periodically(store.clone(), task, shutdown.clone()));
    }
    info!(node = %node_id, tier = %node_id.tier(), %addr, storage = store.backend().as_str(), "node started");
    Ok(NodeHandle {
        store,
        links,
        addr,
        shutdown,
        server,
        parent_link,
    })
}

/// The application services a node mounts. Mounting goes through [`Mounted::serving`], so
/// health says SERVING for exactly these and reflection advertises exactly these: neither can
/// list a service this node does not serve (a township has no publishing) or miss one it does.
struct Mounted {
    health: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
}

impl Mounted {
    /// `service`, reported SERVING by health and advertised by reflection under its gRPC name.
    async fn serving<S: tonic::server::NamedService>(&mut self, service: S) -> S {
        self.health.set_serving::<S>().await;
        self.names.push(S::NAME);
        service
    }

    /// Reflection (v1 and v1alpha) over the contract and health, advertising the services
    /// mounted so far, health and reflection itself.
    #[allow(clippy::type_complexity)]
    fn reflection(
        &self,
    ) -> Result<
        (
            tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
            tonic_reflection::server::v1alpha::ServerReflectionServer<
                impl tonic_reflection::server::v1alpha::ServerReflection,
            >,
        ),
        NodeError,
    > {
        let builder = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tongban_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health")
                .with_service_name("grpc.reflection.v1.ServerReflection")
                .with_service_name("grpc.reflection.v1alpha.ServerReflection");
            for name in &self.names {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        let v1 = builder().build_v1().map_err(|e| NodeError::Reflection(e.to_string()))?;
        let v1alpha = builder()
            .build_v1alpha()
            .map_err(|e| NodeError::Reflection(e.to_string()))?;
        Ok((v1, v1alpha))
    }
}

/// Runs `task` every time its interval has passed, until shutdown. A failed run is logged and
/// tried again next time.
async fn run_periodically(store: Arc<Store>, task: PeriodicTask, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep((task.every)(&store)) => {}
        }
        match (task.run)(&store).await {
            Ok(0) => {}
            Ok(done) => info!(task = task.name, done, "periodic task did its work"),
            Err(error) => tracing::warn!(task = task.name, %error, "periodic task failed; trying again next time"),
        }
    }
}

/// What `<tier>-node serve --config FILE` does: load and check the configuration, start the
/// node, and run until SIGINT or SIGTERM.
pub async fn serve_config(plan: TierPlan, config: NodeConfig) -> Result<(), NodeError> {
    crate::tls::install_crypto_provider();
    let tls = config.tls.load()?;
    serve_loaded(plan, config, tls).await
}

/// [`serve_config`] with the TLS material already loaded and checked (the daemon checks it
/// before it starts the runtime, and serves with the same material).
pub async fn serve_loaded(plan: TierPlan, config: NodeConfig, tls: TlsMaterial) -> Result<(), NodeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: config.listen,
            source,
        })?;
    let mut handle = start(
        NodeSpec {
            node_id: config.node_id.clone(),
            listener,
            parent_address: config.parent.clone(),
            store: config.store_location(),
            tls,
            sync: config.sync.clone(),
            clock: Arc::new(SystemClock),
            settings: NodeSettings::from_config(&config),
        },
        plan,
    )
    .await?;
    tokio::select! {
        _ = shutdown_signal() => {
            info!("shutting down");
            handle.shutdown().await;
            Ok(())
        }
        result = handle.wait() => result,
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
