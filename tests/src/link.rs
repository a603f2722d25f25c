//! Hand-driven ends of a `Sync.Link` stream, to deliver exactly the events a test chooses.
//!
//! - [`FakeChild`]: the child end. The test says hello with a certificate of its choosing, then
//!   sends exactly the batches it wants (duplicates, conflicting copies) and reads the parent's
//!   acknowledgements. Whatever the parent sends down is recorded and acknowledged, as a
//!   well-behaved child would.
//! - [`FakeParent`]: the parent end, a real `tongban.v1.Sync` server over mTLS that a real node
//!   dials as its parent. The test sends down the batches it wants (a catalogue version out of
//!   order, one with a wrong hash, an invalid calendar) and reads the child's acknowledgements;
//!   whatever the child sends up is recorded and acknowledged.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tongban_domains::event::{NewEvent, seal};
use tongban_domains::hlc::Hlc;
use tongban_domains::ids::NodeId;
use tongban_domains::tls::{TlsMaterial, explain_status, explain_transport_error, node_server_name};
use tongban_proto::v1::{self as pb, link_frame::Frame, sync_client::SyncClient};
use tongban_testkit::probe::ProbeGenerator;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Endpoint, Server};
use tonic::{Code, Request, Response, Status, Streaming};

/// Largest frame either way (as the engine's links).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Why a link could not be opened.
#[derive(Debug)]
pub enum LinkError {
    /// The connection itself failed; the sentence is `tls::explain_transport_error`'s.
    Connect(String),
    /// The `Link` call failed; the status and `tls::explain_status`'s sentence.
    Refused { status: Status, explained: String },
    /// The parent answered, but not with a welcome.
    Protocol(String),
}

impl LinkError {
    /// The gRPC code, when the call got as far as a status.
    pub fn code(&self) -> Option<Code> {
        match self {
            LinkError::Refused { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// The operator-readable sentence.
    pub fn explained(&self) -> &str {
        match self {
            LinkError::Connect(s) | LinkError::Protocol(s) => s,
            LinkError::Refused { explained, .. } => explained,
        }
    }
}

/// An open link, seen from the child.
pub struct FakeChild {
    pub welcome: pb::Welcome,
    // Frames to the parent; the transport drains it.
    outbound: mpsc::Sender<pb::LinkFrame>,
    inbound: Streaming<pb::LinkFrame>,
    /// Events the parent sent down on this link, in arrival order.
    pub received: Vec<pb::Event>,
}

impl FakeChild {
    /// Dials the parent at `addr`, expecting its certificate to name `parent`, and says hello
    /// as `hello_id` with `tls` (normally the same node as the certificate).
    pub async fn connect(
        addr: SocketAddr,
        parent: &NodeId,
        tls: &TlsMaterial,
        hello_id: &str,
    ) -> Result<FakeChild, LinkError> {
        let target = format!("parent {parent} at {addr}");
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| LinkError::Connect(e.to_string()))?
            .tls_config(tls.client_config(&node_server_name(parent)))
            .map_err(|e| LinkError::Connect(e.to_string()))?
            .connect_timeout(Duration::from_secs(10));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| LinkError::Connect(explain_transport_error(&e, &target)))?;
        let mut client = SyncClient::new(channel)
            .send_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(MAX_FRAME)
            .max_encoding_message_size(MAX_FRAME);
        let (outbound, rx) = mpsc::channel(16);
        let hello = pb::Hello {
            node_id: hello_id.to_owned(),
            applied_up_to: 0,
            software_version: "scenario-test".to_owned(),
        };
        outbound
            .send(frame(Frame::Hello(hello)))
            .await
            .map_err(|_| LinkError::Protocol("the request stream closed before hello".into()))?;
        let refused = |status: Status| LinkError::Refused {
            explained: explain_status(&status, &target),
            status,
        };
        let response = tokio::time::timeout(Duration::from_secs(20), client.link(ReceiverStream::new(rx)))
            .await
            .map_err(|_| LinkError::Protocol(format!("{target} did not answer the Link call")))?
            .map_err(refused)?;
        let mut inbound = response.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(20), inbound.message())
            .await
            .map_err(|_| LinkError::Protocol(format!("{target} sent no welcome")))?
            .map_err(refused)?;
        match first {
            Some(pb::LinkFrame {
                frame: Some(Frame::Welcome(welcome)),
            }) => Ok(FakeChild {
                welcome,
                outbound,
                inbound,
                received: Vec::new(),
            }),
            other => Err(LinkError::Protocol(format!("{target} answered hello with {other:?}"))),
        }
    }

    /// Sends one batch: `events` with the local_seq this child claims for each, and the
    /// batch's `through_local_seq`.
    pub async fn send_batch(&mut self, events: &[(u64, pb::Event)], through: u64) {
        let batch = pb::EventBatch {
            events: events
                .iter()
                .map(|(local_seq, event)| pb::SyncedEvent {
                    local_seq: *local_seq,
                    event: Some(event.clone()),
                })
                .collect(),
            through_local_seq: through,
        };
        self.outbound
            .send(frame(Frame::Batch(batch)))
            .await
            .unwrap_or_else(|_| panic!("the link closed while sending a batch"));
    }

    /// Reads frames until the parent acknowledges `through`; panics on anything else going
    /// wrong. Batches from the parent are recorded and acknowledged; checksum probes answered
    /// "matches" are not needed by the scenarios and are ignored.
    pub async fn expect_ack(&mut self, through: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.inbound.message())
                .await
                .unwrap_or_else(|_| panic!("no acknowledgement of {through} within {timeout:?}"))
                .unwrap_or_else(|s| panic!("the link failed while waiting for ack {through}: {s:?}"));
            match next.and_then(|f| f.frame) {
                Some(Frame::Ack(ack)) if ack.applied_up_to == through => return,
                Some(Frame::Ack(ack)) => {
                    panic!("expected an acknowledgement of {through}, got {}", ack.applied_up_to)
                }
                Some(Frame::Batch(batch)) => self.record(batch).await,
                Some(Frame::ChecksumProbe(_) | Frame::ChecksumReply(_)) => {}
                Some(other) => panic!("unexpected frame while waiting for ack {through}: {other:?}"),
                None => panic!("the parent closed the link while we waited for ack {through}"),
            }
        }
    }

    /// Reads whatever the parent sends for `period` (recording batches), then returns; panics
    /// if the link fails meanwhile.
    pub async fn drain_for(&mut self, period: Duration) {
        let deadline = tokio::time::Instant::now() + period;
        while let Ok(next) = tokio::time::timeout_at(deadline, self.inbound.message()).await {
            match next {
                Ok(Some(pb::LinkFrame {
                    frame: Some(Frame::Batch(batch)),
                })) => self.record(batch).await,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the parent closed the link"),
                Err(s) => panic!("the link failed: {s:?}"),
            }
        }
    }

    async fn record(&mut self, batch: pb::EventBatch) {
        let through = batch.through_local_seq;
        self.received.extend(batch.events.into_iter().filter_map(|e| e.event));
        let ack = frame(Frame::Ack(pb::Ack { applied_up_to: through }));
        let _ = self.outbound.send(ack).await;
    }
}

fn frame(f: Frame) -> pb::LinkFrame {
    pb::LinkFrame { frame: Some(f) }
}

/// A parent node played by the test: a `tongban.v1.Sync` server on a loopback port with the
/// certificate of `node` (issued by the tree's CA), which accepts links and hands each to the
/// test as a [`ParentSession`]. Stops serving when dropped.
pub struct FakeParent {
    pub node: NodeId,
    pub addr: SocketAddr,
    sessions: mpsc::Receiver<ParentSession>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl FakeParent {
    /// Serves as `node` with `tls` (a certificate for `node`) on a free loopback port.
    pub async fn start(node: &NodeId, tls: &TlsMaterial) -> FakeParent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind a loopback port for the fake parent: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("bound socket has no address: {e}"));
        let (sessions_tx, sessions) = mpsc::channel(4);
        let service = pb::sync_server::SyncServer::new(ParentService {
            node: node.clone(),
            sessions: sessions_tx,
        })
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(MAX_FRAME)
        .max_encoding_message_size(MAX_FRAME);
        let router = Server::builder()
            .tls_config(tls.server_config())
            .unwrap_or_else(|e| panic!("bad TLS configuration for the fake parent: {e}"))
            .add_service(service);
        let server = tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
        FakeParent {
            node: node.clone(),
            addr,
            sessions,
            server,
        }
    }

    /// `https://addr`, for the child's `parent` setting.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The next link a child opens; panics after `timeout`.
    pub async fn accept(&mut self, timeout: Duration) -> ParentSession {
        tokio::time::timeout(timeout, self.sessions.recv())
            .await
            .unwrap_or_else(|_| panic!("no child linked to the fake parent {} within {timeout:?}", self.node))
            .unwrap_or_else(|| panic!("the fake parent {} stopped serving", self.node))
    }
}

impl Drop for FakeParent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct ParentService {
    node: NodeId,
    sessions: mpsc::Sender<ParentSession>,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::LinkFrame, Status>> + Send>>;

#[tonic::async_trait]
impl pb::sync_server::Sync for ParentService {
    type LinkStream = FrameStream;

    async fn link(&self, request: Request<Streaming<pb::LinkFrame>>) -> Result<Response<Self::LinkStream>, Status> {
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(pb::LinkFrame {
                frame: Some(Frame::Hello(hello)),
            }) => hello,
            other => return Err(Status::invalid_argument(format!("expected hello, got {other:?}"))),
        };
        let (outbound, rx) = mpsc::channel(16);
        let welcome = pb::Welcome {
            node_id: self.node.to_string(),
            applied_up_to: 0,
        };
        outbound
            .send(frame(Frame::Welcome(welcome)))
            .await
            .map_err(|_| Status::unavailable("the child left during the handshake"))?;
        let session = ParentSession {
            hello,
            outbound,
            inbound,
            received: Vec::new(),
        };
        self.sessions
            .send(session)
            .await
            .map_err(|_| Status::unavailable("the test no longer accepts links"))?;
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }
}

/// One link from a real child to a [`FakeParent`], seen from the parent.
pub struct ParentSession {
    /// What the child said when it dialled.
    pub hello: pb::Hello,
    outbound: mpsc::Sender<pb::LinkFrame>,
    inbound: Streaming<pb::LinkFrame>,
    /// Events the child sent up on this link, in arrival order.
    pub received: Vec<pb::Event>,
}

impl ParentSession {
    /// Sends one batch down: `events` with the local_seq this parent claims for each, and the
    /// batch's `through_local_seq`.
    pub async fn send_batch(&mut self, events: &[(u64, pb::Event)], through: u64) {
        let batch = pb::EventBatch {
            events: events
                .iter()
                .map(|(local_seq, event)| pb::SyncedEvent {
                    local_seq: *local_seq,
                    event: Some(event.clone()),
                })
                .collect(),
            through_local_seq: through,
        };
        self.outbound
            .send(frame(Frame::Batch(batch)))
            .await
            .unwrap_or_else(|_| panic!("the link closed while sending a batch down"));
    }

    /// Reads frames until the child acknowledges `through` (it does so only after committing
    /// the batch); panics on anything else going wrong. Batches from the child are recorded and
    /// acknowledged.
    pub async fn expect_ack(&mut self, through: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.inbound.message())
                .await
                .unwrap_or_else(|_| panic!("no acknowledgement of {through} within {timeout:?}"))
                .unwrap_or_else(|s| panic!("the link failed while waiting for ack {through}: {s:?}"));
            match next.and_then(|f| f.frame) {
                Some(Frame::Ack(ack)) if ack.applied_up_to == through => return,
                Some(Frame::Ack(ack)) if ack.applied_up_to < through => {}
                Some(Frame::Ack(ack)) => {
                    panic!("expected an acknowledgement of {through}, got {}", ack.applied_up_to)
                }
                Some(Frame::Batch(batch)) => {
                    let up_to = batch.through_local_seq;
                    self.received.extend(batch.events.into_iter().filter_map(|e| e.event));
                    let _ = self
                        .outbound
                        .send(frame(Frame::Ack(pb::Ack { applied_up_to: up_to })))
                        .await;
                }
                Some(Frame::ChecksumProbe(_) | Frame::ChecksumReply(_)) => {}
                Some(other) => panic!("unexpected frame while waiting for ack {through}: {other:?}"),
                None => panic!("the child closed the link while we waited for ack {through}"),
            }
        }
    }
}

/// Seals probe events `seqs` authored at `origin` and routed along its own path, exactly as
/// `Store::author` would (same envelope, hash and clock), with bodies from `seed`.
pub fn sealed_probes(origin: &NodeId, seqs: std::ops::RangeInclusive<u64>, seed: u64) -> Vec<pb::Event> {
    let clock = Hlc::new();
    let mut generator = ProbeGenerator::new(origin.clone(), seed);
    seqs.map(|seq| {
        let new: NewEvent = generator.event(origin);
        seal(origin, seq, clock.now(tongban_domains::hlc::wall_ms()), &new)
    })
    .collect()
}
