//! Uploading a queue: its scans go to whichever node the device reaches, township or county,
//! with `Custody.UploadScans`, in device_seq order and in batches. Each batch's answers are
//! written in one transaction as soon as they arrive, so a link that drops halfway keeps what
//! was acknowledged; a batch without an answer changes nothing and goes again next time.

use std::time::Duration;

use tongban_proto::v1::{self as pb, custody_client::CustodyClient};
use tonic::transport::Channel;

use crate::Result;
use crate::queue::{Queue, Resend, Sent, Tally};

/// The contract's limit on scans per `UploadScans` request.
pub const MAX_BATCH_SCANS: usize = 5_000;
/// Encoded scans per request, kept well under a node's default 4 MiB message limit (a scan with a
/// long manifest is much larger than an en-route scan).
pub const MAX_BATCH_BYTES: usize = 3 << 20;
/// How long to wait for a node's answer to one batch before giving up on this upload.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an upload stopped before every batch was answered.
#[derive(Debug)]
pub enum UploadFailure {
    /// The node (or the transport) refused the request as a whole.
    Rpc(tonic::Status),
    /// No answer within this long.
    NoAnswer(Duration),
}

/// What an upload did: the nodes' answers so far, and why it stopped early if it did.
#[derive(Debug, Default)]
pub struct Upload {
    pub tally: Tally,
    pub failure: Option<UploadFailure>,
}

/// Sends the scans `resend` selects to the node `client` talks to, named `node` in the queue.
/// Errors are the queue's own; a node that fails to answer is reported in [`Upload::failure`].
pub async fn upload(
    queue: &mut Queue,
    client: &mut CustodyClient<Channel>,
    node: &str,
    resend: Resend,
) -> Result<Upload> {
    let mut done = Upload::default();
    let mut after = 0;
    loop {
        let batch = queue
            .next_batch(resend, after, MAX_BATCH_SCANS, MAX_BATCH_BYTES)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let sent: Vec<Sent> = batch.iter().map(|b| Sent::from(&b.scan)).collect();
        let request = pb::UploadScansRequest {
            scans: batch.into_iter().map(|b| b.scan).collect(),
        };
        let response = match tokio::time::timeout(UPLOAD_TIMEOUT, client.upload_scans(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                done.failure = Some(UploadFailure::Rpc(status));
                break;
            }
            Err(_) => {
                done.failure = Some(UploadFailure::NoAnswer(UPLOAD_TIMEOUT));
                break;
            }
        };
        let now = chrono::Utc::now().timestamp_millis();
        let answered = queue.record_outcomes(node, &sent, &response.outcomes, now).await?;
        done.tally.add(answered);
    }
    Ok(done)
}
