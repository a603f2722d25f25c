//! `tongban-courier`: a scanning device's side of custody, shared by every program that makes
//! scans — the courier's handheld (`tongban courier`), the clerk's desk (`tongban custody`),
//! the demo, the bench and the multi-node tests.
//!
//! It owns what the custody contract asks of a device and nothing a node decides:
//! - [`Device`]: a device id, the principal whose scans it makes, dense sequence numbers from
//!   the first, and device-made scan ids (`<device>-<seq>-<8 random hex>`).
//! - [`Queue`]: the durable scan queue on the device (one SQLite file), where a scan is kept
//!   from the moment it is made until a node has answered for it.
//! - [`upload`]: sending a queue's scans, in sequence order and in batches, to whichever node the
//!   device reaches, and writing down each answer.

mod device;
mod queue;
mod upload;

use std::path::PathBuf;

pub use device::{Device, MAX_DEVICE_ID_LEN, ScanIds, step_name};
pub use queue::{Answer, Counts, Entry, Filter, Outcome, Outgoing, Queue, Resend, Sent, State, Tally};
pub use upload::{MAX_BATCH_BYTES, MAX_BATCH_SCANS, UPLOAD_TIMEOUT, Upload, UploadFailure, upload};

/// What can go wrong with a device or its queue. Network failures during an upload are not
/// errors of this kind: they are part of the [`Upload`] report, next to what was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("device id {0:?}: use 1 to {MAX_DEVICE_ID_LEN} letters, digits, '.', '_' or '-'")]
    DeviceId(String),
    #[error("device sequence numbers start at 1")]
    FirstSeq,
    #[error("{0} is a node; scans are made by a courier (courier:<place>:<name>) or a clerk")]
    NodeScans(String),
    #[error(
        "{} already exists; a queue is created once per device (it may hold scans not yet uploaded)",
        .0.display()
    )]
    QueueExists(PathBuf),
    #[error("no queue at {}; create it once with `tongban courier init`", .0.display())]
    NoQueue(PathBuf),
    #[error("{} is not a courier queue this version can read (layout {found}, expected {expected})", path.display())]
    Layout { path: PathBuf, found: i64, expected: i64 },
    /// The queue file says something this version cannot make sense of.
    #[error("{0}")]
    Damaged(String),
    #[error("creating {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A SQLite operation on the queue failed; `doing` says which.
    #[error("{doing}")]
    Sqlite {
        doing: String,
        #[source]
        source: sqlx::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names a failed SQLite operation: `.doing("saving the scan")?`.
pub(crate) trait Doing<T> {
    fn doing(self, what: impl Into<String>) -> Result<T>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Sqlite {
            doing: what.into(),
            source,
        })
    }
}
