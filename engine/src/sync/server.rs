//! The parent side of replication: the `tongban.v1.Sync` service. It accepts a link only from a
//! direct child whose certificate names it, answers the child's hello with its own cursor, and
//! runs the session until the child leaves or reconnects.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tongban_proto::v1::{self as pb, link_frame::Frame, sync_server};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

use super::LinkRegistry;
use super::session::{OUTBOUND_QUEUE, Session, SessionError};
use crate::config::SyncConfig;

use crate::log::{EventLog, LinkRole};
use crate::pki::Principal;

/// The Sync service of one node.
pub struct SyncService {
    pub store: Arc<EventLog>,
    pub links: Arc<LinkRegistry>,
    pub sync: SyncConfig,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::LinkFrame, Status>> + Send>>;

#[tonic::async_trait]
impl sync_server::Sync for SyncService {
    type LinkStream = FrameStream;

    async fn link(&self, request: Request<Streaming<pb::LinkFrame>>) -> Result<Response<Self::LinkStream>, Status> {
        let here = self.store.node().clone();
        // The access table admits only direct children here; the match keeps the type honest.
        let child = match crate::access::caller(&request)? {
            Principal::Node(id) => id,
            other => return Err(Status::permission_denied(format!("{other} is not a node"))),
        };
        let mut inbound = request.into_inner();
        let hello = match inbound.next().await {
            Some(Ok(pb::LinkFrame {
                frame: Some(Frame::Hello(hello)),
            })) => hello,
            Some(Err(status)) => return Err(status),
            _ => return Err(Status::invalid_argument("the first frame of a link must be hello")),
        };
        if hello.node_id != child.as_str() {
            return Err(Status::failed_precondition(format!(
                "hello names node {:?} but the certificate is for {child}",
                hello.node_id
            )));
        }
        let cursor = self
            .store
            .link(&child, LinkRole::Child)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;

        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let welcome = pb::Welcome {
            node_id: here.to_string(),
            applied_up_to: cursor.applied_from_peer,
        };
        out_tx
            .send(pb::LinkFrame {
                frame: Some(Frame::Welcome(welcome)),
            })
            .await
            .map_err(|_| Status::unavailable("child left during the handshake"))?;

        let store = self.store.clone();
        let links = self.links.clone();
        let sync = self.sync.clone();
        let span = info_span!("link", peer = %child, role = "child");
        tokio::spawn(
            async move {
                let guard = links.register(child.as_str());
                info!(version = %hello.software_version, applied = hello.applied_up_to, "child connected");
                let session = Session {
                    store,
                    peer: child,
                    role: LinkRole::Child,
                    peer_applied: hello.applied_up_to,
                    sync,
                    cancel: guard.cancel.clone(),
                };
                match session.run(inbound, out_tx).await {
                    SessionError::PeerClosed | SessionError::Cancelled => info!("child link closed"),
                    err => warn!(error = %err, "child link ended"),
                }
                drop(guard);
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx).map(Ok))))
    }
}
