//! A hand-driven child end of a `Sync.Link` stream: the test says hello with a certificate of its
//! choosing, then sends exactly the batches it wants (duplicates, conflicting copies) and reads
//! the parent's acknowledgements. Whatever the parent sends down is recorded and acknowledged,
//! as a well-behaved child would.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tongban_core::event::{NewEvent, seal};
use tongban_core::hlc::Hlc;
use tongban_core::ids::NodeId;
use tongban_core::probe::ProbeGenerator;
use tongban_core::tls::{TlsMaterial, explain_status, explain_transport_error, node_server_name};
use tongban_proto::v1::{self as pb, link_frame::Frame, sync_client::SyncClient};
use tonic::codec::CompressionEncoding;
use tonic::transport::Endpoint;
use tonic::{Code, Status, Streaming};

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

/// Seals probe events `seqs` authored at `origin` and routed along its own path, exactly as
/// `Store::author` would (same envelope, hash and clock), with bodies from `seed`.
pub fn sealed_probes(origin: &NodeId, seqs: std::ops::RangeInclusive<u64>, seed: u64) -> Vec<pb::Event> {
    let clock = Hlc::new();
    let mut generator = ProbeGenerator::new(origin.clone(), seed);
    seqs.map(|seq| {
        let new: NewEvent = generator.event(origin);
        seal(origin, seq, clock.now(), &new)
    })
    .collect()
}
