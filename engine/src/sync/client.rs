//! The child side of replication: dial the parent over mTLS, say hello with our cursor, run the
//! session, and on any failure reconnect with exponential backoff and jitter — forever, because
//! a village may be offline for weeks and must pick up where it left off when it comes back.
//!
//! The link goes over TCP by default; a [`Dialer`] replaces TCP with any byte stream (the
//! deterministic simulation's network), with mTLS on top exactly as over TCP.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tongban_proto::v1::{self as pb, link_frame::Frame, sync_client::SyncClient};
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::{Instrument, info, info_span, warn};

use super::LinkRegistry;
use super::session::{OUTBOUND_QUEUE, Session, SessionError};
use crate::config::SyncConfig;
use crate::ids::NodeId;
use crate::log::{EventLog, LinkRole};
use crate::tls::{TlsMaterial, explain_status, node_server_name};

/// Largest frame accepted on a link (a first catalogue version is ~1 MB before compression).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Where and how to reach the parent.
#[derive(Clone)]
pub struct ParentLink {
    pub parent_id: NodeId,
    pub address: String,
    pub tls: Arc<TlsMaterial>,
    /// How to open the byte stream to `address`; `None` dials TCP.
    pub dialer: Option<Dialer>,
}

/// A connected byte stream a [`Dialer`] hands back.
pub trait LinkIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> LinkIo for T {}

/// What a [`Dialer`] returns: a connected stream to the parent, or why not.
pub type Dialed = Pin<Box<dyn Future<Output = io::Result<Box<dyn LinkIo>>> + Send>>;

/// Opens the link's byte stream itself instead of over TCP: the seam through which a simulated
/// network carries the real link (TLS, HTTP/2, the session) unchanged.
#[derive(Clone)]
pub struct Dialer {
    /// Opens a stream to the parent's address (the link's `https://host:port`).
    pub dial: Arc<dyn Fn(Uri) -> Dialed + Send + Sync>,
    /// Seeds the reconnect jitter, so a replayed simulation waits exactly as the first run did
    /// (over TCP the jitter comes from the thread's random generator).
    pub jitter_seed: u64,
}

impl ParentLink {
    /// A channel to the parent, verifying that its certificate names `parent_id`.
    pub fn endpoint(&self) -> Result<Endpoint, tonic::transport::Error> {
        Endpoint::from_shared(self.address.clone())?
            .tls_config(self.tls.client_config(&node_server_name(&self.parent_id)))
            .map(|e| {
                e.connect_timeout(Duration::from_secs(10))
                    .http2_keep_alive_interval(Duration::from_secs(15))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .keep_alive_while_idle(true)
                    .tcp_nodelay(true)
            })
    }
}

/// Keeps the link to the parent up until `shutdown` is cancelled.
pub async fn maintain_parent_link(
    store: Arc<EventLog>,
    links: Arc<LinkRegistry>,
    parent: ParentLink,
    sync: SyncConfig,
    shutdown: CancellationToken,
) {
    let span = info_span!("link", peer = %parent.parent_id, role = "parent");
    async move {
        let max_backoff = Duration::from_secs(sync.max_backoff_secs.max(1));
        let mut backoff = Duration::from_millis(200);
        let mut jitter_rng = match &parent.dialer {
            Some(dialer) => StdRng::seed_from_u64(dialer.jitter_seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let started = tokio::time::Instant::now();
            let outcome = run_once(&store, &links, &parent, &sync, &shutdown).await;
            match &outcome {
                Ok(()) => return,
                Err(reason) => warn!(reason = %reason, "link to parent down"),
            }
            // A link that held for a while earns a fresh, short backoff.
            if started.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(200);
            }
            let jitter = jitter_rng.random_range(0.5..1.5);
            let wait = backoff.mul_f64(jitter).min(max_backoff);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }
    .instrument(span)
    .await
}

/// One connection attempt and session. `Ok` only on shutdown.
async fn run_once(
    store: &Arc<EventLog>,
    links: &LinkRegistry,
    parent: &ParentLink,
    sync: &SyncConfig,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let target = format!("parent {} at {}", parent.parent_id, parent.address);
    let endpoint = parent
        .endpoint()
        .map_err(|e| format!("bad parent address {}: {e}", parent.address))?;
    let connect = async {
        match &parent.dialer {
            None => endpoint.connect().await,
            Some(dialer) => {
                let dial = dialer.dial.clone();
                let connector = tower::service_fn(move |uri: Uri| {
                    let dialed = dial(uri);
                    async move { dialed.await.map(TokioIo::new) }
                });
                endpoint.connect_with_connector(connector).await
            }
        }
    };
    let channel: Channel = tokio::select! {
        c = connect => c.map_err(|e| crate::tls::explain_transport_error(&e, &target))?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let mut client = SyncClient::new(channel)
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(MAX_FRAME_BYTES)
        .max_encoding_message_size(MAX_FRAME_BYTES);

    let cursor = store
        .link(&parent.parent_id, LinkRole::Parent)
        .await
        .map_err(|e| e.to_string())?;
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let hello = pb::Hello {
        node_id: store.node().to_string(),
        applied_up_to: cursor.applied_from_peer,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    out_tx
        .send(pb::LinkFrame {
            frame: Some(Frame::Hello(hello)),
        })
        .await
        .map_err(|_| "link closed before hello".to_owned())?;
    let response = tokio::select! {
        r = client.link(ReceiverStream::new(out_rx)) => r.map_err(|s| explain_status(&s, &target))?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let mut inbound = response.into_inner();
    let welcome = match inbound.message().await {
        Ok(Some(pb::LinkFrame {
            frame: Some(Frame::Welcome(w)),
        })) => w,
        Ok(_) => return Err(format!("{target} did not answer hello with welcome")),
        Err(s) => return Err(explain_status(&s, &target)),
    };
    if welcome.node_id != parent.parent_id.as_str() {
        return Err(format!(
            "{target} introduced itself as {:?}; refusing the link",
            welcome.node_id
        ));
    }
    let guard = links.register(parent.parent_id.as_str());
    info!(applied_by_parent = welcome.applied_up_to, "connected to parent");
    let session = Session {
        store: store.clone(),
        peer: parent.parent_id.clone(),
        role: LinkRole::Parent,
        peer_applied: welcome.applied_up_to,
        sync: sync.clone(),
        cancel: guard.cancel.clone(),
    };
    let end = tokio::select! {
        end = session.run(inbound, out_tx) => end,
        _ = shutdown.cancelled() => return Ok(()),
    };
    drop(guard);
    match end {
        SessionError::Cancelled if shutdown.is_cancelled() => Ok(()),
        other => Err(other.to_string()),
    }
}
