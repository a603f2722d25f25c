//! Running a node: open the store, serve gRPC over mTLS (sync, operator services, health,
//! reflection), keep the link to the parent, and stop cleanly on request.
//!
//! [`start`] takes an already-bound listener, so tests and the demo start real nodes on port 0;
//! the tier binaries wrap it with configuration, logging and signal handling ([`serve_config`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tongban_proto::v1::{catalogue_server::CatalogueServer, node_server::NodeServer, sync_server::SyncServer};
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tracing::{info, info_span};

use crate::api::OperatorApi;
use crate::calendar::{Clock, SystemClock};
use crate::config::{NodeConfig, SyncConfig};
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::store::{LogTuning, Store, StoreError, StoreLocation};
use crate::sync::LinkRegistry;
use crate::sync::client::{MAX_FRAME_BYTES, ParentLink, maintain_parent_link};
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

/// Everything needed to start a node.
pub struct NodeSpec {
    pub node_id: NodeId,
    pub listener: TcpListener,
    /// The parent's `https://` address; `None` at the county.
    pub parent_address: Option<String>,
    pub store: StoreLocation,
    pub tls: TlsMaterial,
    pub sync: SyncConfig,
    /// The node's one clock (the machine's in production, a moved or simulated one in tests).
    pub clock: Arc<dyn Clock>,
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

/// Starts a node on an already-bound listener.
pub async fn start(spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    let NodeSpec {
        node_id,
        listener,
        parent_address,
        store,
        tls,
        sync,
        clock,
    } = spec;
    match &tls.principal {
        Principal::Node(id) if *id == node_id => {}
        other => {
            return Err(NodeError::WrongCertificate {
                expected: format!("node:{node_id}"),
                found: other.to_string(),
            });
        }
    }
    let store = Store::open_on(&store, &node_id, clock, LogTuning::default()).await?;
    let links = Arc::new(LinkRegistry::default());
    let addr = listener.local_addr().map_err(|source| NodeError::Listen {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let shutdown = CancellationToken::new();

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<SyncServer<SyncService>>().await;
    health_reporter.set_serving::<NodeServer<OperatorApi>>().await;
    health_reporter.set_serving::<CatalogueServer<OperatorApi>>().await;
    health_reporter
        .set_serving::<tongban_proto::v1::cases_server::CasesServer<crate::cases_api::CasesApi>>()
        .await;
    health_reporter
        .set_serving::<tongban_proto::v1::calendar_server::CalendarServer<crate::calendar_api::CalendarApi>>()
        .await;
    {
        use crate::oversight_api::OversightApi;
        use tongban_proto::v1::{
            oversight_server::OversightServer, ratings_server::RatingsServer, seals_server::SealsServer,
        };
        health_reporter.set_serving::<SealsServer<OversightApi>>().await;
        health_reporter.set_serving::<RatingsServer<OversightApi>>().await;
        health_reporter.set_serving::<OversightServer<OversightApi>>().await;
    }
    health_reporter
        .set_serving::<tongban_proto::v1::custody_server::CustodyServer<crate::custody_api::CustodyApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tongban_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tongban_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    let (reflection_v1, reflection_v1alpha) = match (reflection_v1, reflection_v1alpha) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return Err(NodeError::Reflection(e.to_string()));
        }
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
    let router = Server::builder()
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
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(sync_service)
        .add_service(crate::cases_api::server(store.clone()))
        .add_service(crate::calendar_api::server(store.clone()))
        .add_service(crate::oversight_api::seals_server(store.clone()))
        .add_service(crate::oversight_api::ratings_server(store.clone()))
        .add_service(crate::oversight_api::oversight_server(store.clone()))
        .add_service(crate::custody_api::server(store.clone()))
        .add_service(
            NodeServer::new(api.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            CatalogueServer::new(api)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(crate::api::MAX_IMPORT_BYTES + 1024 * 1024)
                .max_encoding_message_size(MAX_FRAME_BYTES),
        );
    // TCP_NODELAY on every accepted socket: a reply written in several pieces otherwise waits
    // out the client's delayed ACK (~40 ms per RPC). The builder's own setting only applies to
    // listeners it binds itself.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
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
    if node_id.tier() == Tier::County {
        tokio::spawn(supervise(store.clone(), shutdown.clone()));
    } else {
        // Issued cases are held by townships and villages, which record their default ratings.
        tokio::spawn(rate_by_default(store.clone(), shutdown.clone()));
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

/// The county's periodic scan for red cases ([`Store::scan_supervision`]), every
/// [`Store::supervision_interval`], until shutdown. A failed scan is logged and retried next time.
async fn supervise(store: Arc<Store>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(store.supervision_interval()) => {}
        }
        match store.scan_supervision().await {
            Ok(0) => {}
            Ok(opened) => info!(opened, "supervision records opened on red cases"),
            Err(e) => tracing::warn!(error = %e, "supervision scan failed"),
        }
    }
}

/// Records default ratings ([`Store::record_default_ratings`]) on the store's clock every
/// [`Store::rating_scan_interval`], until shutdown. A failed run is logged and retried next time.
async fn rate_by_default(store: Arc<Store>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(store.rating_scan_interval()) => {}
        }
        match store.record_default_ratings(store.now_ms()).await {
            Ok(rated) if rated.is_empty() => {}
            Ok(rated) => info!(rated = rated.len(), "default ratings recorded"),
            Err(e) => tracing::warn!(error = %e, "default rating run failed"),
        }
    }
}

/// Starts a node that must be of `tier` (the tier crates' entry point).
pub async fn start_tier(tier: Tier, spec: NodeSpec) -> Result<NodeHandle, NodeError> {
    if spec.node_id.tier() != tier {
        return Err(NodeError::WrongTier {
            expected: tier,
            found: spec.node_id.tier(),
            id: spec.node_id,
        });
    }
    start(spec).await
}

/// What `<tier>-node serve --config FILE` does: load and check the configuration, start the
/// node, and run until SIGINT or SIGTERM.
pub async fn serve_config(expected_tier: Tier, config: NodeConfig) -> Result<(), NodeError> {
    crate::tls::install_crypto_provider();
    let tls = config.tls.load()?;
    serve_loaded(expected_tier, config, tls).await
}

/// [`serve_config`] with the TLS material already loaded and checked (the daemon checks it
/// before it starts the runtime, and serves with the same material).
pub async fn serve_loaded(expected_tier: Tier, config: NodeConfig, tls: TlsMaterial) -> Result<(), NodeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: config.listen,
            source,
        })?;
    let mut handle = start_tier(
        expected_tier,
        NodeSpec {
            node_id: config.node_id.clone(),
            listener,
            parent_address: config.parent.clone(),
            store: config.store_location(),
            tls,
            sync: config.sync.clone(),
            clock: Arc::new(SystemClock),
        },
    )
    .await?;
    handle.store.set_warning_thresholds(config.warnings);
    handle
        .store
        .set_supervision_interval(Duration::from_secs(config.supervision.scan_interval_secs));
    handle
        .store
        .set_rating_scan_interval(Duration::from_secs(config.ratings.default_scan_interval_secs));
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
