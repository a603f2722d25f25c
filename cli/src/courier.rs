//! `tongban courier …`: the courier's handheld. This file owns the device's scan queue (one
//! SQLite file), the commands that work on it with no network (`init`, `scan`, `status`, `list`),
//! and `sync`, which uploads the queue with `Custody.UploadScans` to whichever node the device
//! reaches, township or county.
//!
//! Why the queue is built the way it is:
//! - A scan is confirmed to the courier only once it is on disk. SQLite in WAL mode with
//!   `synchronous = FULL` syncs the WAL at every commit, so a scan that `scan` printed survives a
//!   flat battery. An append-only file with fsync would do that too, but each scan also changes
//!   state (queued → uploaded, or refused with the node's message); SQLite updates that state
//!   atomically without a second log to compact, and sqlx is already in the workspace.
//! - `device_seq` is taken from a counter stored in the file, in the same `BEGIN IMMEDIATE`
//!   transaction that inserts the scan. Two scans at once, or a crash between them, cannot skip
//!   or repeat a number, so a gap a node sees in this device's sequence means scans lost after
//!   they left the device (or a queue that was lost).
//! - The scan id is `<device>-<seq>-<8 random hex>`. The random part keeps it unique for ever even
//!   when a lost device's queue is re-created under the same device id and its sequence restarts.
//! - Each scan is kept as the protobuf bytes of its `tongban.v1.Scan`, so every upload of it (a
//!   retry, or `--all` to a second node) is byte-identical and the node's dedupe by scan id sees
//!   the same content, never a conflicting duplicate.
//! - A scan changes state only on the node's answer: RECORDED or DUPLICATE mark it uploaded,
//!   REFUSED keeps it with the node's message and out of automatic retries (the same bytes would
//!   be refused again). A batch without an answer (link cut, timeout) changes nothing; sending it
//!   again is safe because nodes dedupe by scan id.
//! - Every command closes the database, which folds the WAL back into the main file, so the queue
//!   file alone is a complete copy when it is taken off the device.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Local, Utc};
use clap::{Args, Subcommand, ValueEnum};
use prost::Message;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use tongban_core::ids::NodeId;
use tongban_core::pki::{PkiLayout, Principal, principal_from_cert_pem};
use tongban_proto::v1::{self as pb, custody_client::CustodyClient, scan_outcome};

use crate::client::Connection;

/// The contract's limit on scans per `UploadScans` request.
const MAX_BATCH_SCANS: usize = 5_000;
/// Encoded scans per request, kept well under a node's default 4 MiB message limit (a scan with a
/// long manifest is much larger than an en-route scan).
const MAX_BATCH_BYTES: usize = 3 << 20;
/// How long to wait for a node's answer to one batch before giving up on this sync.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Another process (a second `scan`, a `sync`) may hold the write lock for a moment.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The queue file's layout; `PRAGMA user_version` holds it.
const SCHEMA_VERSION: i64 = 1;
/// Longest device id; it becomes part of every scan id.
const MAX_DEVICE_LEN: usize = 64;
/// Longest box, trip, document or case id a node accepts.
const MAX_ID_LEN: usize = 128;

const SCHEMA: &str = "
CREATE TABLE device (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    device_id       TEXT    NOT NULL,
    principal       TEXT    NOT NULL,
    first_seq       INTEGER NOT NULL,
    next_seq        INTEGER NOT NULL,
    created_unix_ms INTEGER NOT NULL
);
CREATE TABLE scans (
    device_seq       INTEGER PRIMARY KEY,
    scan_id          TEXT    NOT NULL UNIQUE,
    step             TEXT    NOT NULL,
    box_id           TEXT    NOT NULL,
    trip_id          TEXT    NOT NULL,
    scanned_unix_ms  INTEGER NOT NULL,
    scan             BLOB    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'uploaded', 'refused')),
    result           TEXT,
    message          TEXT,
    node             TEXT,
    answered_unix_ms INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX scans_by_state ON scans (state, device_seq);
";

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

#[derive(Subcommand, Debug)]
pub enum CourierCommand {
    /// Create this device's scan queue (once per device).
    Init {
        /// The queue file on the device.
        #[arg(long, env = "TONGBAN_QUEUE")]
        queue: PathBuf,
        /// This device's id, as printed on it (e.g. pda-0042); part of every scan id.
        #[arg(long)]
        device: String,
        /// Who scans: courier:<place>:<name> as in the courier's certificate, or <name> with
        /// --place. A desk scanner gives operator:<node>:<name>.
        #[arg(long)]
        courier: String,
        /// The node the courier belongs to (division code), when --courier is a bare name.
        #[arg(long)]
        place: Option<String>,
        /// The first device sequence number. Only to carry on a device whose queue was lost:
        /// give one more than the last number the nodes have from it.
        #[arg(long, default_value_t = 1)]
        first_seq: u64,
    },
    /// Record one scan in the queue. Needs no network.
    Scan(Box<ScanArgs>),
    /// Upload the queued scans to the node this device reaches (township or county).
    ///
    /// Give the courier's own certificate, e.g. --cert tongban-pki/couriers/<place>-<name>.pem
    /// --key tongban-pki/couriers/<place>-<name>.key: a node accepts a courier's upload only for
    /// scans that courier made. Unreachable node: nothing changes, the scans wait for next time.
    Sync {
        /// The queue file on the device.
        #[arg(long, env = "TONGBAN_QUEUE")]
        queue: PathBuf,
        #[command(flatten)]
        conn: Connection,
        /// Also retry scans a node refused.
        #[arg(long)]
        retry_refused: bool,
        /// Send every scan again, uploaded ones too (e.g. to the county after a township).
        /// Safe: nodes record each scan id once.
        #[arg(long)]
        all: bool,
    },
    /// What the queue holds: queued, uploaded and refused scans, with the nodes' reasons.
    Status {
        /// The queue file on the device.
        #[arg(long, env = "TONGBAN_QUEUE")]
        queue: PathBuf,
    },
    /// The scans in the queue, one line each, oldest first.
    List {
        /// The queue file on the device.
        #[arg(long, env = "TONGBAN_QUEUE")]
        queue: PathBuf,
        /// Only scans no node has acknowledged yet (queued and refused).
        #[arg(long)]
        pending: bool,
    },
}

/// One scan, as typed or read by the scanner.
#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    /// The queue file on the device.
    #[arg(long, env = "TONGBAN_QUEUE")]
    queue: PathBuf,
    /// What happened. A courier scans courier-accept, en-route and release-at-destination.
    step: Step,
    /// The box's id (its label's QR code).
    #[arg(long = "box")]
    box_id: Option<String>,
    /// The trip's id.
    #[arg(long)]
    trip: Option<String>,
    /// Where: a division code, or a few words on the road.
    #[arg(long)]
    place: Option<String>,
    /// The seal number read on the box.
    #[arg(long)]
    seal: Option<String>,
    /// The seal is intact.
    #[arg(long, conflicts_with = "seal_broken")]
    seal_intact: bool,
    /// The seal is broken.
    #[arg(long)]
    seal_broken: bool,
    /// Who the box is handed to: operator:<node>:<name> or courier:<place>:<name>.
    #[arg(long)]
    to: Option<String>,
    /// A document id (repeat for several): the manifest, or the documents found.
    #[arg(long = "doc")]
    docs: Vec<String>,
    /// When, by this device's clock: RFC 3339 or Unix milliseconds. Default: now.
    #[arg(long)]
    at: Option<String>,
    /// pack: where the trip starts (division code).
    #[arg(long, help_heading = "Desk steps")]
    origin: Option<String>,
    /// pack: where the trip goes (division code).
    #[arg(long, help_heading = "Desk steps")]
    destination: Option<String>,
    /// void-departure, error-declaration: why.
    #[arg(long, help_heading = "Desk steps")]
    reason: Option<String>,
    /// error-declaration: the scan id that no longer counts.
    #[arg(long, help_heading = "Desk steps")]
    corrects: Option<String>,
    /// register-box: the label text.
    #[arg(long, help_heading = "Desk steps")]
    label: Option<String>,
    /// register-document: the case the document belongs to.
    #[arg(long = "case", help_heading = "Desk steps")]
    case_id: Option<String>,
    /// register-document: original, copy or result-certificate.
    #[arg(long, help_heading = "Desk steps")]
    kind: Option<DocKind>,
    /// register-document: number of pages.
    #[arg(long, help_heading = "Desk steps")]
    pages: Option<u32>,
    /// register-document: what it is, e.g. 户口簿原件.
    #[arg(long, help_heading = "Desk steps")]
    title: Option<String>,
}

/// The custody steps in kebab-case (`tongban.v1.CustodyStep` without its prefix).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Desk: a paper file registered at intake (--doc, --case, --kind, --pages, --title).
    RegisterDocument,
    /// Desk: a reusable box registered (--box, --label).
    RegisterBox,
    /// Desk: documents packed for a new trip (--origin, --destination, --doc …).
    Pack,
    /// Desk: the box sealed (--seal).
    Seal,
    /// Desk: the box handed to a courier (--to courier:…).
    ReleaseToCourier,
    /// Courier: I take the box; custody moves to me.
    CourierAccept,
    /// Courier: the box seen on the way (--place).
    EnRoute,
    /// Courier: I hand the box over at the destination (--to operator:…).
    ReleaseAtDestination,
    /// Desk: the box received and its seal checked (--seal, --seal-intact or --seal-broken).
    DestinationAccept,
    /// Desk: the box opened and its documents scanned out (--doc …).
    Unpack,
    /// Desk: the departure did not happen (--reason).
    VoidDeparture,
    /// Desk: an earlier scan no longer counts (--corrects, --reason).
    ErrorDeclaration,
}

impl Step {
    fn to_pb(self) -> pb::CustodyStep {
        use pb::CustodyStep as S;
        match self {
            Step::RegisterDocument => S::RegisterDocument,
            Step::RegisterBox => S::RegisterBox,
            Step::Pack => S::Pack,
            Step::Seal => S::Seal,
            Step::ReleaseToCourier => S::ReleaseToCourier,
            Step::CourierAccept => S::CourierAccept,
            Step::EnRoute => S::EnRoute,
            Step::ReleaseAtDestination => S::ReleaseAtDestination,
            Step::DestinationAccept => S::DestinationAccept,
            Step::Unpack => S::Unpack,
            Step::VoidDeparture => S::VoidDeparture,
            Step::ErrorDeclaration => S::ErrorDeclaration,
        }
    }

    /// Steps from PACK on are about a box on a trip.
    fn needs_box_and_trip(self) -> bool {
        !matches!(
            self,
            Step::RegisterDocument | Step::RegisterBox | Step::ErrorDeclaration
        )
    }
}

/// `tongban.v1.DocumentKind` in kebab-case.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Original,
    Copy,
    ResultCertificate,
}

impl DocKind {
    fn to_pb(self) -> pb::DocumentKind {
        match self {
            DocKind::Original => pb::DocumentKind::Original,
            DocKind::Copy => pb::DocumentKind::Copy,
            DocKind::ResultCertificate => pb::DocumentKind::ResultCertificate,
        }
    }
}

pub async fn run(command: CourierCommand) -> Result<()> {
    match command {
        CourierCommand::Init {
            queue,
            device,
            courier,
            place,
            first_seq,
        } => {
            let principal = courier_principal(&courier, place.as_deref())?;
            let q = Queue::create(&queue, &device, &principal, first_seq, now_ms()).await?;
            q.close().await?;
            println!("queue created: {}", queue.display());
            println!("device    {device}");
            println!("courier   {principal}");
            println!("next seq  {first_seq}");
            let pki = PkiLayout::new("tongban-pki");
            println!(
                "sync with  --cert {} --key {}",
                pki.cert_path(&principal).display(),
                pki.key_path(&principal).display()
            );
            Ok(())
        }
        CourierCommand::Scan(args) => {
            let scan = scan_from_args(&args, now_ms())?;
            let mut q = Queue::open(&args.queue).await?;
            let added = q.append(scan).await?;
            let counts = q.counts().await?;
            q.close().await?;
            println!("scan {} saved: {}", added.seq, added.scan_id);
            println!(
                "{} {}  ({} waiting to upload)",
                step_name(added.step),
                box_and_trip(&added.box_id, &added.trip_id),
                counts.queued
            );
            Ok(())
        }
        CourierCommand::Sync {
            queue,
            conn,
            retry_refused,
            all,
        } => {
            let resend = match (all, retry_refused) {
                (true, _) => Resend::Everything,
                (false, true) => Resend::QueuedAndRefused,
                (false, false) => Resend::Queued,
            };
            sync(&queue, &conn, resend).await
        }
        CourierCommand::Status { queue } => status(&queue).await,
        CourierCommand::List { queue, pending } => list(&queue, pending).await,
    }
}

/// The queue's principal: a full `courier:<place>:<name>` (or an operator, for a desk scanner),
/// or a bare courier name with its place. Written exactly as the certificate names it, because a
/// node accepts a courier's upload only for scans carrying the certificate's own principal.
fn courier_principal(courier: &str, place: Option<&str>) -> Result<Principal> {
    if courier.contains(':') {
        let principal: Principal = courier.parse()?;
        if let Principal::Node(_) = principal {
            bail!("{principal} is a node; scans are made by a courier (courier:<place>:<name>) or a clerk");
        }
        if let Some(place) = place
            && principal.place().as_str() != place
        {
            bail!("--place {place} does not match {principal}");
        }
        Ok(principal)
    } else {
        let place = place.ok_or_else(|| {
            anyhow!("--courier {courier} needs --place (the courier's node), or give courier:<place>:{courier}")
        })?;
        let place = NodeId::new(place).with_context(|| format!("--place {place}"))?;
        Ok(Principal::courier(place, courier)?)
    }
}

fn check_device_id(device: &str) -> Result<()> {
    let ok_chars = device.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if device.is_empty() || device.len() > MAX_DEVICE_LEN || !ok_chars {
        bail!("device id {device:?}: use 1 to {MAX_DEVICE_LEN} letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

/// An id printed on a label: nodes refuse empty ones, spaces and very long ones.
fn check_id(flag: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("{flag} {id:?}: an id has 1 to {MAX_ID_LEN} characters and no spaces");
    }
    Ok(())
}

/// Builds the scan the arguments describe, without the device fields (the queue fills those in).
/// Refuses what the contract says a step needs but is missing, and ids a node would refuse, so
/// the courier hears it now and not from a node days later.
fn scan_from_args(a: &ScanArgs, now_unix_ms: i64) -> Result<pb::Scan> {
    let step = a.step;
    let name = step_name(step.to_pb());
    let need = |value: &Option<String>, flag: &str| -> Result<String> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => bail!("{name} needs {flag}"),
        }
    };
    let text = |value: &Option<String>| value.as_deref().map(str::trim).unwrap_or_default().to_owned();

    let (box_id, trip_id) = if step.needs_box_and_trip() {
        (need(&a.box_id, "--box")?, need(&a.trip, "--trip")?)
    } else {
        (text(&a.box_id), text(&a.trip))
    };
    if (a.seal_intact || a.seal_broken) && a.seal.is_none() {
        bail!("--seal-intact/--seal-broken need --seal (the number read on the box)");
    }
    let counterparty = match &a.to {
        Some(to) => party(to)?,
        None => String::new(),
    };
    for (flag, id) in [("--box", &box_id), ("--trip", &trip_id)] {
        if !id.is_empty() {
            check_id(flag, id)?;
        }
    }
    for (flag, id) in [("--case", &a.case_id), ("--corrects", &a.corrects)] {
        if let Some(id) = id {
            check_id(flag, id.trim())?;
        }
    }
    let mut scan = pb::Scan {
        step: step.to_pb() as i32,
        scanned_unix_ms: match &a.at {
            Some(at) => parse_at(at)?,
            None => now_unix_ms,
        },
        box_id,
        trip_id,
        place: text(&a.place),
        seal_number: text(&a.seal),
        seal_intact: a.seal_intact,
        counterparty,
        document_ids: a
            .docs
            .iter()
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .collect(),
        origin: text(&a.origin),
        destination: text(&a.destination),
        reason: text(&a.reason),
        corrects_scan_id: text(&a.corrects),
        box_label: text(&a.label),
        ..Default::default()
    };
    for doc in &scan.document_ids {
        check_id("--doc", doc)?;
    }
    match step {
        Step::RegisterDocument => {
            let [document_id] = scan.document_ids.as_slice() else {
                bail!("{name} needs exactly one --doc");
            };
            scan.document = Some(pb::DocumentInfo {
                document_id: document_id.clone(),
                case_id: need(&a.case_id, "--case")?,
                kind: a.kind.map_or(pb::DocumentKind::Unspecified, DocKind::to_pb) as i32,
                pages: a.pages.unwrap_or_default(),
                title: text(&a.title),
            });
        }
        Step::RegisterBox => {
            need(&a.box_id, "--box")?;
        }
        Step::Pack => {
            let origin = NodeId::new(need(&a.origin, "--origin")?).context("--origin")?;
            let destination = NodeId::new(need(&a.destination, "--destination")?).context("--destination")?;
            if origin == destination {
                bail!("{name}: --origin and --destination are the same place");
            }
        }
        Step::Seal => {
            need(&a.seal, "--seal")?;
        }
        Step::ReleaseToCourier | Step::ReleaseAtDestination => {
            need(&a.to, "--to (who takes the box)")?;
        }
        Step::DestinationAccept => {
            need(&a.seal, "--seal")?;
            if !a.seal_intact && !a.seal_broken {
                bail!("{name} needs --seal-intact or --seal-broken");
            }
        }
        Step::VoidDeparture => {
            need(&a.reason, "--reason")?;
        }
        Step::ErrorDeclaration => {
            need(&a.corrects, "--corrects (the scan id)")?;
            need(&a.reason, "--reason")?;
        }
        Step::CourierAccept | Step::EnRoute | Step::Unpack => {}
    }
    Ok(scan)
}

/// A hand-over's counterparty: a person, named as certificates name them.
fn party(text: &str) -> Result<String> {
    let principal: Principal = text.trim().parse().with_context(|| format!("--to {text}"))?;
    match principal {
        Principal::Node(_) => bail!("--to {text}: give a person (operator:<node>:<name> or courier:<place>:<name>)"),
        p => Ok(p.to_string()),
    }
}

/// `--at`: RFC 3339, or Unix milliseconds.
fn parse_at(text: &str) -> Result<i64> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        // Unix seconds have 10 digits until 2286; milliseconds have 13 since 2001.
        if text.len() <= 11 {
            bail!("--at {text} looks like seconds; give Unix milliseconds or a time like 2026-11-27T08:15:00+08:00");
        }
        return text.parse().with_context(|| format!("--at {text}"));
    }
    let time = DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--at {text}: expected RFC 3339 (2026-11-27T08:15:00+08:00) or Unix ms"))?;
    Ok(time.timestamp_millis())
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `courier-accept` for `CUSTODY_STEP_COURIER_ACCEPT`.
fn step_name(step: impl TryInto<pb::CustodyStep>) -> String {
    match step.try_into() {
        Ok(s) => {
            let name = s.as_str_name();
            name.strip_prefix("CUSTODY_STEP_")
                .unwrap_or(name)
                .to_ascii_lowercase()
                .replace('_', "-")
        }
        Err(_) => "unknown-step".to_owned(),
    }
}

fn box_and_trip(box_id: &str, trip_id: &str) -> String {
    match (box_id.is_empty(), trip_id.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("box {box_id}"),
        (true, false) => format!("trip {trip_id}"),
        (false, false) => format!("box {box_id} trip {trip_id}"),
    }
}

/// A device-clock time for a short line, in the device's time zone.
fn local_time(unix_ms: i64) -> String {
    match DateTime::from_timestamp_millis(unix_ms) {
        Some(t) => t.with_timezone(&Local).format("%m-%d %H:%M").to_string(),
        None => format!("{unix_ms}ms"),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

// ---------------------------------------------------------------------------------------------
// sync, status, list
// ---------------------------------------------------------------------------------------------

/// Uploads in device_seq order, batch by batch. Each batch's answers are written in one
/// transaction as soon as they arrive, so a link that drops halfway keeps what was acknowledged.
async fn sync(path: &Path, conn: &Connection, resend: Resend) -> Result<()> {
    let mut queue = Queue::open(path).await?;
    let device = queue.device().await?;
    let total = queue.count_to_send(resend).await?;
    if total == 0 {
        let counts = queue.counts().await?;
        queue.close().await?;
        println!("nothing to upload ({})", counts.summary());
        if counts.refused > 0 {
            println!("refused scans are not retried without --retry-refused");
        }
        return Ok(());
    }
    let holder = check_certificate(conn, &device)?;

    let channel = match conn.channel().await {
        Ok(channel) => channel,
        Err(e) => {
            queue.close().await?;
            bail!(
                "{e:#}; nothing uploaded, {} stay in the queue",
                plural(total, "scan", "scans")
            );
        }
    };
    // Say so when someone else's certificate uploads this device's scans (a clerk's, say).
    let as_whom = match holder {
        Some(holder) if holder.to_string() != device.principal => format!(" as {holder}"),
        _ => String::new(),
    };
    println!("uploading {} to {}{as_whom}", plural(total, "scan", "scans"), conn.node);
    let mut client = CustodyClient::new(channel);
    let mut tally = Tally::default();
    let mut after = 0;
    let mut failure = None;
    loop {
        let batch = queue
            .next_batch(resend, after, MAX_BATCH_SCANS, MAX_BATCH_BYTES)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let sent: Vec<(u64, String)> = batch.iter().map(|b| (b.seq, b.scan.scan_id.clone())).collect();
        let request = pb::UploadScansRequest {
            scans: batch.into_iter().map(|b| b.scan).collect(),
        };
        let response = match tokio::time::timeout(UPLOAD_TIMEOUT, client.upload_scans(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                failure = Some(conn.explain(status));
                break;
            }
            Err(_) => {
                failure = Some(anyhow!(
                    "no answer from node {} in {}s",
                    conn.node,
                    UPLOAD_TIMEOUT.as_secs()
                ));
                break;
            }
        };
        let answered = queue
            .record_outcomes(&conn.node, &sent, &response.outcomes, now_ms())
            .await?;
        tally.add(answered);
    }
    let counts = queue.counts().await?;
    queue.close().await?;

    if tally.answered() > 0 || failure.is_none() {
        println!(
            "{}: {} recorded, {} already there, {} refused",
            conn.node,
            tally.recorded,
            tally.duplicates,
            tally.refused.len()
        );
    }
    for r in &tally.refused {
        println!("refused #{} {}: {}", r.seq, r.scan_id, r.message);
    }
    for r in &tally.refused_after_upload {
        println!(
            "#{} {} is already uploaded, but {} refused it: {}",
            r.seq, r.scan_id, conn.node, r.message
        );
    }
    if tally.unanswered > 0 {
        println!(
            "{} got no answer and stay queued",
            plural(tally.unanswered, "scan", "scans")
        );
    }
    if let Some(e) = failure {
        let done = if tally.answered() == 0 {
            "nothing uploaded".to_owned()
        } else {
            format!("{} of {total} answered", tally.answered())
        };
        bail!(
            "{e:#}; {done}, {} stay in the queue",
            plural(counts.queued, "scan", "scans")
        );
    }
    println!("queue: {}", counts.summary());
    if !tally.refused.is_empty() {
        println!("refused scans stay in the queue; see `tongban courier status`");
    }
    Ok(())
}

/// A courier certificate other than the queue's own would have every scan refused ("a courier
/// uploads only their own scans"); say so before touching the network. An operator's certificate
/// is the node's to judge. Returns who the certificate names, when it can be read.
fn check_certificate(conn: &Connection, device: &Device) -> Result<Option<Principal>> {
    // Unreadable files are reported by `Connection::channel`, with the other TLS checks.
    let Ok(pem) = std::fs::read_to_string(&conn.cert) else {
        return Ok(None);
    };
    let Ok(holder) = principal_from_cert_pem(&pem) else {
        return Ok(None);
    };
    if holder.to_string() != device.principal && matches!(holder, Principal::Courier { .. }) {
        bail!(
            "{} is the certificate of {holder}, but this queue's scans are by {}; \
             nothing uploaded (give that courier's --cert and --key)",
            conn.cert.display(),
            device.principal
        );
    }
    Ok(Some(holder))
}

async fn status(path: &Path) -> Result<()> {
    let mut queue = Queue::open(path).await?;
    let device = queue.device().await?;
    let counts = queue.counts().await?;
    let refused = queue.entries(Filter::Refused).await?;
    queue.close().await?;

    println!("device    {}", device.device_id);
    println!("courier   {}", device.principal);
    let total = counts.total();
    match (counts.first_seq, counts.last_seq) {
        (Some(first), Some(last)) => {
            let gaps = match counts.missing() {
                0 => "no gaps".to_owned(),
                n => format!("{n} missing!"),
            };
            println!("scans     {total} (seq {first}-{last}, {gaps})");
        }
        _ => println!("scans     none yet"),
    }
    println!("last seq  {}", device.next_seq.saturating_sub(1));
    println!("queued    {}", counts.queued);
    match &counts.last_answer {
        Some((at, node)) => println!("uploaded  {} (last {} at {node})", counts.uploaded, local_time(*at)),
        None => println!("uploaded  {}", counts.uploaded),
    }
    println!("refused   {}", counts.refused);
    for e in &refused {
        println!(
            "  #{} {} {} {}",
            e.seq,
            e.step,
            box_and_trip(&e.box_id, &e.trip_id),
            local_time(e.scanned_unix_ms)
        );
        println!(
            "     {} ({}): {}",
            e.node.as_deref().unwrap_or("node"),
            plural(e.attempts, "try", "tries"),
            e.message.as_deref().unwrap_or("(no reason given)")
        );
    }
    if counts.refused > 0 {
        println!("not retried until `tongban courier sync --retry-refused`");
    }
    Ok(())
}

async fn list(path: &Path, pending: bool) -> Result<()> {
    let mut queue = Queue::open(path).await?;
    let entries = queue
        .entries(if pending { Filter::Pending } else { Filter::All })
        .await?;
    queue.close().await?;
    if entries.is_empty() {
        println!("{}", if pending { "nothing pending" } else { "no scans yet" });
        return Ok(());
    }
    // Columns as wide as this listing needs: a courier's list is mostly en-route scans.
    let seq_width = entries.iter().map(|e| e.seq.to_string().len()).max().unwrap_or(1);
    let step_width = entries.iter().map(|e| e.step.len()).max().unwrap_or(0);
    for e in &entries {
        let mut line = format!(
            "#{:<seq_width$} {:<8} {} {:<step_width$} {}  {}",
            e.seq,
            e.state.as_str(),
            local_time(e.scanned_unix_ms),
            e.step,
            box_and_trip(&e.box_id, &e.trip_id),
            e.scan_id
        );
        if let (State::Refused, Some(message)) = (e.state, &e.message) {
            line.push_str(&format!("  ({message})"));
        }
        println!("{line}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------------------------

/// The scan queue on the device: one SQLite file, one connection per command.
pub struct Queue {
    conn: SqliteConnection,
}

/// The device the queue belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub principal: String,
    pub first_seq: u64,
    pub next_seq: u64,
}

/// A scan just saved.
#[derive(Debug, Clone)]
pub struct Appended {
    pub seq: u64,
    pub scan_id: String,
    pub step: i32,
    pub box_id: String,
    pub trip_id: String,
}

/// A scan's state in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a node's answer.
    Queued,
    /// A node recorded it (now or before).
    Uploaded,
    /// A node refused it; kept with the reason.
    Refused,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Uploaded => "uploaded",
            State::Refused => "refused",
        }
    }

    fn parse(text: &str) -> Result<State> {
        Ok(match text {
            "queued" => State::Queued,
            "uploaded" => State::Uploaded,
            "refused" => State::Refused,
            other => bail!("unknown scan state {other:?} in the queue"),
        })
    }
}

/// Which scans `sync` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Only those no node has answered.
    Queued,
    /// Those, and the refused ones again.
    QueuedAndRefused,
    /// Every scan, uploaded ones too.
    Everything,
}

impl Resend {
    /// (send refused, send uploaded), as bound into the selecting queries.
    fn flags(self) -> (bool, bool) {
        match self {
            Resend::Queued => (false, false),
            Resend::QueuedAndRefused => (true, false),
            Resend::Everything => (true, true),
        }
    }
}

/// Which scans `entries` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    /// Queued and refused: not acknowledged by any node.
    Pending,
    Refused,
}

/// A scan to upload, in device_seq order.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub seq: u64,
    pub scan: pb::Scan,
}

/// One line of `list` or `status`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub scan_id: String,
    pub step: String,
    pub box_id: String,
    pub trip_id: String,
    pub scanned_unix_ms: i64,
    pub state: State,
    pub message: Option<String>,
    pub node: Option<String>,
    pub attempts: u64,
}

/// How many scans are in each state, and the sequence numbers seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub queued: u64,
    pub uploaded: u64,
    pub refused: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// When a node last answered, and which.
    pub last_answer: Option<(i64, String)>,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.queued + self.uploaded + self.refused
    }

    /// Sequence numbers missing between the first and the last scan (0 unless the file was
    /// edited by hand: the queue allocates them densely).
    pub fn missing(&self) -> u64 {
        match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => (last - first + 1).saturating_sub(self.total()),
            _ => 0,
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} queued, {} uploaded, {} refused",
            self.queued, self.uploaded, self.refused
        )
    }
}

/// A refused scan, as the node explained it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub seq: u64,
    pub scan_id: String,
    pub message: String,
}

/// What a node said about one or more batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub recorded: u64,
    pub duplicates: u64,
    pub refused: Vec<Refusal>,
    /// Refused by this node but already recorded by another (`--all`): stays uploaded.
    pub refused_after_upload: Vec<Refusal>,
    /// Sent but not answered (no outcome, or RESULT_UNSPECIFIED): stay as they were.
    pub unanswered: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.recorded += other.recorded;
        self.duplicates += other.duplicates;
        self.refused.extend(other.refused);
        self.refused_after_upload.extend(other.refused_after_upload);
        self.unanswered += other.unanswered;
    }

    fn answered(&self) -> u64 {
        self.recorded + self.duplicates + self.refused.len() as u64 + self.refused_after_upload.len() as u64
    }
}

fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).with_context(|| format!("{what} {n} is too large"))
}

fn to_u64(n: i64, what: &str) -> Result<u64> {
    u64::try_from(n).with_context(|| format!("{what} {n} in the queue is negative"))
}

impl Queue {
    fn options(path: &Path) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced at every commit, so a confirmed scan survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .disable_statement_logging()
    }

    /// Creates a new queue file. Refuses an existing file: it may hold scans not yet uploaded.
    pub async fn create(
        path: &Path,
        device_id: &str,
        principal: &Principal,
        first_seq: u64,
        now_unix_ms: i64,
    ) -> Result<Queue> {
        check_device_id(device_id)?;
        if first_seq == 0 {
            bail!("--first-seq starts at 1");
        }
        if path.exists() {
            bail!(
                "{} already exists; a queue is created once per device (it may hold scans not yet uploaded)",
                path.display()
            );
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut conn = Self::options(path)
            .create_if_missing(true)
            .connect()
            .await
            .with_context(|| format!("creating the queue {}", path.display()))?;
        let created: Result<()> = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO device (id, device_id, principal, first_seq, next_seq, created_unix_ms)
                 VALUES (1, ?1, ?2, ?3, ?3, ?4)",
            )
            .bind(device_id)
            .bind(principal.to_string())
            .bind(to_i64(first_seq, "--first-seq")?)
            .bind(now_unix_ms)
            .execute(&mut *tx)
            .await?;
            // Last, in the same transaction: a file with this version is a complete queue.
            sqlx::raw_sql("PRAGMA user_version = 1").execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        created.with_context(|| format!("creating the queue {}", path.display()))?;
        Ok(Queue { conn })
    }

    /// Opens an existing queue; a missing file is an error, never a new empty queue.
    pub async fn open(path: &Path) -> Result<Queue> {
        if !path.exists() {
            bail!(
                "no queue at {}; create it once with `tongban courier init`",
                path.display()
            );
        }
        let mut conn = Self::options(path)
            .create_if_missing(false)
            .connect()
            .await
            .with_context(|| format!("opening the queue {}", path.display()))?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        if version != SCHEMA_VERSION {
            bail!(
                "{} is not a courier queue this version can read (layout {version}, expected {SCHEMA_VERSION})",
                path.display()
            );
        }
        Ok(Queue { conn })
    }

    /// Closes the file; as the last connection this checkpoints the WAL into the main file.
    pub async fn close(self) -> Result<()> {
        self.conn.close().await.context("closing the queue")
    }

    pub async fn device(&mut self) -> Result<Device> {
        let row = sqlx::query("SELECT device_id, principal, first_seq, next_seq FROM device WHERE id = 1")
            .fetch_one(&mut self.conn)
            .await
            .context("reading the queue's device")?;
        Ok(Device {
            device_id: row.try_get("device_id")?,
            principal: row.try_get("principal")?,
            first_seq: to_u64(row.try_get("first_seq")?, "first_seq")?,
            next_seq: to_u64(row.try_get("next_seq")?, "next_seq")?,
        })
    }

    /// Saves one scan: takes the next device_seq, makes the scan id and fills in the device's
    /// fields, all in one durable transaction. When this returns, the scan is on disk.
    pub async fn append(&mut self, mut scan: pb::Scan) -> Result<Appended> {
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("locking the queue")?;
        let row = sqlx::query("SELECT device_id, principal, next_seq FROM device WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .context("reading the queue's device")?;
        let device_id: String = row.try_get("device_id")?;
        let seq: i64 = row.try_get("next_seq")?;
        scan.device_id = device_id.clone();
        scan.device_seq = to_u64(seq, "next_seq")?;
        scan.principal = row.try_get("principal")?;
        scan.scan_id = format!("{device_id}-{seq}-{:08x}", rand::random::<u32>());
        sqlx::query(
            "INSERT INTO scans (device_seq, scan_id, step, box_id, trip_id, scanned_unix_ms, scan, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued')",
        )
        .bind(seq)
        .bind(&scan.scan_id)
        .bind(step_name(scan.step))
        .bind(&scan.box_id)
        .bind(&scan.trip_id)
        .bind(scan.scanned_unix_ms)
        .bind(scan.encode_to_vec())
        .execute(&mut *tx)
        .await
        .context("saving the scan")?;
        sqlx::query("UPDATE device SET next_seq = next_seq + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .context("advancing the device sequence")?;
        tx.commit().await.context("saving the scan")?;
        Ok(Appended {
            seq: scan.device_seq,
            scan_id: scan.scan_id,
            step: scan.step,
            box_id: scan.box_id,
            trip_id: scan.trip_id,
        })
    }

    pub async fn count_to_send(&mut self, resend: Resend) -> Result<u64> {
        let (refused, uploaded) = resend.flags();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM scans
             WHERE state = 'queued' OR (?1 AND state = 'refused') OR (?2 AND state = 'uploaded')",
        )
        .bind(refused)
        .bind(uploaded)
        .fetch_one(&mut self.conn)
        .await
        .context("counting scans to upload")?;
        to_u64(n, "count")
    }

    /// The next scans to send after device_seq `after`, in order: at most `max_scans`, and at
    /// most `max_bytes` encoded (but always one, however large).
    pub async fn next_batch(
        &mut self,
        resend: Resend,
        after: u64,
        max_scans: usize,
        max_bytes: usize,
    ) -> Result<Vec<Outgoing>> {
        let (refused, uploaded) = resend.flags();
        let rows = sqlx::query(
            "SELECT device_seq, scan FROM scans
             WHERE device_seq > ?1
               AND (state = 'queued' OR (?2 AND state = 'refused') OR (?3 AND state = 'uploaded'))
             ORDER BY device_seq LIMIT ?4",
        )
        .bind(to_i64(after, "device_seq")?)
        .bind(refused)
        .bind(uploaded)
        .bind(to_i64(max_scans as u64, "batch size")?)
        .fetch_all(&mut self.conn)
        .await
        .context("reading scans to upload")?;
        let mut batch = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        for row in rows {
            let seq = to_u64(row.try_get("device_seq")?, "device_seq")?;
            let blob: Vec<u8> = row.try_get("scan")?;
            bytes += blob.len();
            if bytes > max_bytes && !batch.is_empty() {
                break;
            }
            let scan =
                pb::Scan::decode(blob.as_slice()).with_context(|| format!("scan {seq} in the queue is damaged"))?;
            batch.push(Outgoing { seq, scan });
        }
        Ok(batch)
    }

    /// Writes a node's answers for the scans `sent` (device_seq and scan id), in one transaction.
    /// Outcomes are matched by scan id, not by position.
    pub async fn record_outcomes(
        &mut self,
        node: &str,
        sent: &[(u64, String)],
        outcomes: &[pb::ScanOutcome],
        now_unix_ms: i64,
    ) -> Result<Tally> {
        let by_id: HashMap<&str, u64> = sent.iter().map(|(seq, id)| (id.as_str(), *seq)).collect();
        let mut tally = Tally::default();
        let mut answered = 0u64;
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("locking the queue")?;
        for outcome in outcomes {
            let Some(&seq) = by_id.get(outcome.scan_id.as_str()) else {
                continue; // Not one of ours in this batch: nothing to mark.
            };
            let seq_i = to_i64(seq, "device_seq")?;
            match scan_outcome::Result::try_from(outcome.result) {
                Ok(result @ (scan_outcome::Result::Recorded | scan_outcome::Result::Duplicate)) => {
                    let word = if result == scan_outcome::Result::Recorded {
                        tally.recorded += 1;
                        "recorded"
                    } else {
                        tally.duplicates += 1;
                        "duplicate"
                    };
                    sqlx::query(
                        "UPDATE scans SET state = 'uploaded', result = ?2, message = NULL, node = ?3,
                                answered_unix_ms = ?4, attempts = attempts + 1
                         WHERE device_seq = ?1",
                    )
                    .bind(seq_i)
                    .bind(word)
                    .bind(node)
                    .bind(now_unix_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                Ok(scan_outcome::Result::Refused) => {
                    let message = if outcome.message.trim().is_empty() {
                        "refused (no reason given)".to_owned()
                    } else {
                        outcome.message.clone()
                    };
                    // A scan another node recorded stays uploaded: it is in the county's tree
                    // already, and resending it would not change this node's mind.
                    let state: String = sqlx::query_scalar("SELECT state FROM scans WHERE device_seq = ?1")
                        .bind(seq_i)
                        .fetch_one(&mut *tx)
                        .await?;
                    let refusal = Refusal {
                        seq,
                        scan_id: outcome.scan_id.clone(),
                        message: message.clone(),
                    };
                    if State::parse(&state)? == State::Uploaded {
                        tally.refused_after_upload.push(refusal);
                    } else {
                        sqlx::query(
                            "UPDATE scans SET state = 'refused', result = 'refused', message = ?2, node = ?3,
                                    answered_unix_ms = ?4, attempts = attempts + 1
                             WHERE device_seq = ?1",
                        )
                        .bind(seq_i)
                        .bind(&message)
                        .bind(node)
                        .bind(now_unix_ms)
                        .execute(&mut *tx)
                        .await?;
                        tally.refused.push(refusal);
                    }
                }
                // RESULT_UNSPECIFIED or a result this client does not know: not an answer.
                Ok(scan_outcome::Result::Unspecified) | Err(_) => continue,
            }
            answered += 1;
        }
        tx.commit().await.context("saving the node's answers")?;
        tally.unanswered = (sent.len() as u64).saturating_sub(answered);
        Ok(tally)
    }

    pub async fn counts(&mut self) -> Result<Counts> {
        let mut counts = Counts::default();
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM scans GROUP BY state")
            .fetch_all(&mut self.conn)
            .await
            .context("counting scans")?;
        for row in rows {
            let n = to_u64(row.try_get("n")?, "count")?;
            match State::parse(&row.try_get::<String, _>("state")?)? {
                State::Queued => counts.queued = n,
                State::Uploaded => counts.uploaded = n,
                State::Refused => counts.refused = n,
            }
        }
        let row = sqlx::query("SELECT MIN(device_seq) AS first, MAX(device_seq) AS last FROM scans")
            .fetch_one(&mut self.conn)
            .await
            .context("reading the device sequence")?;
        counts.first_seq = row.try_get::<Option<i64>, _>("first")?.map(|n| n as u64);
        counts.last_seq = row.try_get::<Option<i64>, _>("last")?.map(|n| n as u64);
        let last = sqlx::query(
            "SELECT answered_unix_ms, node FROM scans WHERE answered_unix_ms IS NOT NULL
             ORDER BY answered_unix_ms DESC LIMIT 1",
        )
        .fetch_optional(&mut self.conn)
        .await
        .context("reading the last upload")?;
        if let Some(row) = last {
            counts.last_answer = Some((row.try_get("answered_unix_ms")?, row.try_get("node")?));
        }
        Ok(counts)
    }

    pub async fn entries(&mut self, filter: Filter) -> Result<Vec<Entry>> {
        let code = match filter {
            Filter::All => 0,
            Filter::Pending => 1,
            Filter::Refused => 2,
        };
        let rows = sqlx::query(
            "SELECT device_seq, scan_id, step, box_id, trip_id, scanned_unix_ms, state, message, node, attempts
             FROM scans
             WHERE ?1 = 0 OR (?1 = 1 AND state != 'uploaded') OR (?1 = 2 AND state = 'refused')
             ORDER BY device_seq",
        )
        .bind(code)
        .fetch_all(&mut self.conn)
        .await
        .context("reading the queue")?;
        rows.into_iter()
            .map(|row| {
                Ok(Entry {
                    seq: to_u64(row.try_get("device_seq")?, "device_seq")?,
                    scan_id: row.try_get("scan_id")?,
                    step: row.try_get("step")?,
                    box_id: row.try_get("box_id")?,
                    trip_id: row.try_get("trip_id")?,
                    scanned_unix_ms: row.try_get("scanned_unix_ms")?,
                    state: State::parse(&row.try_get::<String, _>("state")?)?,
                    message: row.try_get("message")?,
                    node: row.try_get("node")?,
                    attempts: to_u64(row.try_get("attempts")?, "attempts")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use tongban_core::pki::DevCa;
    use tongban_core::tls::TlsFiles;
    use tongban_proto::v1::custody_server::{Custody, CustodyServer};
    use tonic::{Request, Response, Status};

    use super::*;

    const T0: i64 = 1_795_000_000_000;

    fn courier() -> Principal {
        Principal::courier(NodeId::new("441424100").unwrap(), "dev-07").unwrap()
    }

    async fn new_queue(dir: &tempfile::TempDir) -> (PathBuf, Queue) {
        let path = dir.path().join("pda").join("queue.db");
        let q = Queue::create(&path, "pda-0042", &courier(), 1, T0).await.unwrap();
        (path, q)
    }

    fn en_route(box_id: &str) -> pb::Scan {
        pb::Scan {
            step: pb::CustodyStep::EnRoute as i32,
            box_id: box_id.into(),
            trip_id: "T-1".into(),
            place: "K12 bridge".into(),
            scanned_unix_ms: T0,
            ..Default::default()
        }
    }

    fn args(step: Step) -> ScanArgs {
        ScanArgs {
            queue: PathBuf::from("q.db"),
            step,
            box_id: Some("B-001".into()),
            trip: Some("T-1".into()),
            place: None,
            seal: None,
            seal_intact: false,
            seal_broken: false,
            to: None,
            docs: vec![],
            at: None,
            origin: None,
            destination: None,
            reason: None,
            corrects: None,
            label: None,
            case_id: None,
            kind: None,
            pages: None,
            title: None,
        }
    }

    fn outcome(scan_id: &str, result: scan_outcome::Result, message: &str) -> pb::ScanOutcome {
        pb::ScanOutcome {
            scan_id: scan_id.into(),
            result: result as i32,
            message: message.into(),
        }
    }

    #[tokio::test]
    async fn scans_get_dense_sequence_numbers_that_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut q) = new_queue(&dir).await;
        for i in 1..=5u64 {
            let added = q.append(en_route("B-001")).await.unwrap();
            assert_eq!(added.seq, i);
            assert!(
                added.scan_id.starts_with(&format!("pda-0042-{i}-")),
                "{}",
                added.scan_id
            );
        }
        q.close().await.unwrap();

        // Closing folded the WAL into the file: the file alone holds every scan.
        assert!(!dir.path().join("pda").join("queue.db-wal").exists());
        let mut q = Queue::open(&path).await.unwrap();
        let device = q.device().await.unwrap();
        assert_eq!(device.device_id, "pda-0042");
        assert_eq!(device.principal, "courier:441424100:dev-07");
        assert_eq!(device.next_seq, 6);
        assert_eq!(q.append(en_route("B-001")).await.unwrap().seq, 6);

        let batch = q.next_batch(Resend::Queued, 0, 100, usize::MAX).await.unwrap();
        let seqs: Vec<u64> = batch.iter().map(|o| o.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
        let scan = &batch[2].scan;
        assert_eq!(scan.device_id, "pda-0042");
        assert_eq!(scan.device_seq, 3);
        assert_eq!(scan.principal, "courier:441424100:dev-07");
        assert_eq!(scan.place, "K12 bridge");
        assert_eq!(scan.scanned_unix_ms, T0);
        let counts = q.counts().await.unwrap();
        assert_eq!(
            (counts.first_seq, counts.last_seq, counts.missing()),
            (Some(1), Some(6), 0)
        );
    }

    #[tokio::test]
    async fn the_queue_file_is_durable_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut q) = new_queue(&dir).await;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut q.conn)
            .await
            .unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut q.conn)
            .await
            .unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
    }

    #[tokio::test]
    async fn two_writers_at_once_still_get_dense_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (path, q) = new_queue(&dir).await;
        q.close().await.unwrap();
        let writer = |path: PathBuf| async move {
            let mut q = Queue::open(&path).await.unwrap();
            let mut seqs = Vec::new();
            for _ in 0..25 {
                seqs.push(q.append(en_route("B-001")).await.unwrap().seq);
            }
            q.close().await.unwrap();
            seqs
        };
        let (a, b) = tokio::join!(tokio::spawn(writer(path.clone())), tokio::spawn(writer(path.clone())));
        let mut all: Vec<u64> = a.unwrap().into_iter().chain(b.unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn scan_ids_are_unique_even_for_a_recreated_device() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut q) = new_queue(&dir).await;
        let mut ids = HashSet::new();
        for _ in 0..200 {
            assert!(ids.insert(q.append(en_route("B-001")).await.unwrap().scan_id));
        }
        q.close().await.unwrap();
        // The device's queue is lost and made again under the same id: its numbers restart.
        std::fs::remove_file(&path).unwrap();
        let mut q = Queue::create(&path, "pda-0042", &courier(), 1, T0).await.unwrap();
        for _ in 0..200 {
            assert!(ids.insert(q.append(en_route("B-001")).await.unwrap().scan_id));
        }
    }

    #[tokio::test]
    async fn init_refuses_an_existing_file_and_open_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut q) = new_queue(&dir).await;
        q.append(en_route("B-001")).await.unwrap();
        q.close().await.unwrap();
        let again = Queue::create(&path, "pda-0042", &courier(), 1, T0).await;
        assert!(again.err().unwrap().to_string().contains("already exists"));
        let mut q = Queue::open(&path).await.unwrap();
        assert_eq!(q.counts().await.unwrap().queued, 1);

        let missing = Queue::open(&dir.path().join("nope.db")).await;
        assert!(missing.err().unwrap().to_string().contains("courier init"));
        assert!(!dir.path().join("nope.db").exists());

        let other = dir.path().join("other.db");
        assert!(Queue::create(&other, "bad id", &courier(), 1, T0).await.is_err());
        assert!(Queue::create(&other, "pda-1", &courier(), 0, T0).await.is_err());
        let mut q = Queue::create(&other, "pda-1", &courier(), 41, T0).await.unwrap();
        assert_eq!(q.append(en_route("B-001")).await.unwrap().seq, 41);
    }

    #[tokio::test]
    async fn outcomes_mark_scans_and_status_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut q) = new_queue(&dir).await;
        let mut sent = Vec::new();
        for _ in 0..5 {
            let a = q.append(en_route("B-001")).await.unwrap();
            sent.push((a.seq, a.scan_id));
        }
        let id = |i: usize| sent[i].1.as_str();
        let outcomes = vec![
            // Answers come back in any order; they are matched by scan id.
            outcome(id(2), scan_outcome::Result::Refused, "unknown trip T-1"),
            outcome(id(0), scan_outcome::Result::Recorded, ""),
            outcome(id(1), scan_outcome::Result::Duplicate, ""),
            outcome(id(3), scan_outcome::Result::Unspecified, ""),
            outcome("someone-else-1-00000000", scan_outcome::Result::Recorded, ""),
            // id(4): no answer at all.
        ];
        let tally = q
            .record_outcomes("https://t100:7100", &sent, &outcomes, T0 + 5)
            .await
            .unwrap();
        assert_eq!((tally.recorded, tally.duplicates, tally.unanswered), (1, 1, 2));
        assert_eq!(
            tally.refused,
            vec![Refusal {
                seq: 3,
                scan_id: id(2).to_owned(),
                message: "unknown trip T-1".into()
            }]
        );

        let counts = q.counts().await.unwrap();
        assert_eq!((counts.queued, counts.uploaded, counts.refused), (2, 2, 1));
        assert_eq!(counts.last_answer, Some((T0 + 5, "https://t100:7100".to_owned())));
        let refused = q.entries(Filter::Refused).await.unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].message.as_deref(), Some("unknown trip T-1"));
        assert_eq!(refused[0].node.as_deref(), Some("https://t100:7100"));
        let pending: Vec<u64> = q
            .entries(Filter::Pending)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(pending, vec![3, 4, 5]);
        assert_eq!(q.entries(Filter::All).await.unwrap().len(), 5);

        // Refused scans are not sent again unless asked; --all sends everything.
        let seqs = |b: Vec<Outgoing>| b.iter().map(|o| o.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(q.next_batch(Resend::Queued, 0, 100, usize::MAX).await.unwrap()),
            vec![4, 5]
        );
        assert_eq!(q.count_to_send(Resend::Queued).await.unwrap(), 2);
        assert_eq!(
            seqs(
                q.next_batch(Resend::QueuedAndRefused, 0, 100, usize::MAX)
                    .await
                    .unwrap()
            ),
            vec![3, 4, 5]
        );
        assert_eq!(q.count_to_send(Resend::Everything).await.unwrap(), 5);

        // Retried and recorded: the refusal is gone.
        let retry = vec![sent[2].clone()];
        q.record_outcomes(
            "https://county:7000",
            &retry,
            &[outcome(id(2), scan_outcome::Result::Recorded, "")],
            T0 + 9,
        )
        .await
        .unwrap();
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.queued, counts.uploaded, counts.refused), (2, 3, 0));

        // A second node refusing a scan another node recorded leaves it uploaded.
        let again = vec![sent[0].clone()];
        let tally = q
            .record_outcomes(
                "https://county:7000",
                &again,
                &[outcome(id(0), scan_outcome::Result::Refused, "no")],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(tally.refused_after_upload.len(), 1);
        assert!(tally.refused.is_empty());
        assert_eq!(q.counts().await.unwrap().uploaded, 3);
    }

    #[tokio::test]
    async fn batches_respect_the_count_and_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut q) = new_queue(&dir).await;
        for _ in 0..7 {
            q.append(en_route("B-001")).await.unwrap();
        }
        let b = q.next_batch(Resend::Queued, 0, 3, usize::MAX).await.unwrap();
        assert_eq!(b.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let b = q.next_batch(Resend::Queued, 3, 3, usize::MAX).await.unwrap();
        assert_eq!(b.iter().map(|o| o.seq).collect::<Vec<_>>(), vec![4, 5, 6]);
        // A budget smaller than one scan still sends one at a time.
        let b = q.next_batch(Resend::Queued, 0, 100, 1).await.unwrap();
        assert_eq!(b.len(), 1);
        let one = b[0].scan.encoded_len();
        let b = q.next_batch(Resend::Queued, 0, 100, 2 * one).await.unwrap();
        assert_eq!(b.len(), 2);
        assert!(
            q.next_batch(Resend::Queued, 7, 100, usize::MAX)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn scan_arguments_are_checked_per_step() {
        let scan = scan_from_args(&args(Step::CourierAccept), T0).unwrap();
        assert_eq!(scan.step, pb::CustodyStep::CourierAccept as i32);
        assert_eq!(
            (scan.box_id.as_str(), scan.trip_id.as_str(), scan.scanned_unix_ms),
            ("B-001", "T-1", T0)
        );
        assert!(scan.scan_id.is_empty() && scan.device_id.is_empty() && scan.principal.is_empty());

        let mut a = args(Step::EnRoute);
        a.box_id = None;
        assert!(scan_from_args(&a, T0).unwrap_err().to_string().contains("--box"));

        let mut a = args(Step::ReleaseAtDestination);
        assert!(scan_from_args(&a, T0).unwrap_err().to_string().contains("--to"));
        a.to = Some("441424100".into());
        assert!(scan_from_args(&a, T0).is_err());
        a.to = Some("node:441424100".into());
        assert!(scan_from_args(&a, T0).is_err());
        a.to = Some("operator:441424100:li.na".into());
        assert_eq!(scan_from_args(&a, T0).unwrap().counterparty, "operator:441424100:li.na");

        let mut a = args(Step::DestinationAccept);
        a.seal = Some("S-778".into());
        assert!(scan_from_args(&a, T0).is_err());
        a.seal_broken = true;
        let scan = scan_from_args(&a, T0).unwrap();
        assert_eq!((scan.seal_number.as_str(), scan.seal_intact), ("S-778", false));
        let mut a = args(Step::CourierAccept);
        a.seal_intact = true;
        assert!(scan_from_args(&a, T0).unwrap_err().to_string().contains("--seal"));

        let mut a = args(Step::RegisterDocument);
        a.box_id = None;
        a.trip = None;
        a.docs = vec!["D-1".into()];
        a.case_id = Some("441424100201-20261127-0001".into());
        assert_eq!(scan_from_args(&a, T0).unwrap().document.unwrap().kind, 0);
        a.kind = Some(DocKind::Original);
        let doc = scan_from_args(&a, T0).unwrap().document.unwrap();
        assert_eq!(
            (doc.document_id.as_str(), doc.kind),
            ("D-1", pb::DocumentKind::Original as i32)
        );

        let mut a = args(Step::Pack);
        a.origin = Some("441424100".into());
        assert!(
            scan_from_args(&a, T0)
                .unwrap_err()
                .to_string()
                .contains("--destination")
        );
        a.destination = Some("441424100".into());
        assert!(scan_from_args(&a, T0).unwrap_err().to_string().contains("same place"));
        a.destination = Some("county".into());
        assert!(scan_from_args(&a, T0).is_err());
        a.destination = Some("441424".into());
        assert!(scan_from_args(&a, T0).is_ok());

        let mut a = args(Step::EnRoute);
        a.box_id = Some("B 001".into());
        assert!(scan_from_args(&a, T0).unwrap_err().to_string().contains("no spaces"));
        let mut a = args(Step::Unpack);
        a.docs = vec!["D-1".into(), "x".repeat(129)];
        assert!(scan_from_args(&a, T0).is_err());

        let mut a = args(Step::EnRoute);
        a.at = Some("2026-11-27T08:15:00+08:00".into());
        assert_eq!(scan_from_args(&a, T0).unwrap().scanned_unix_ms, 1_795_738_500_000);
        a.at = Some("1795738500123".into());
        assert_eq!(scan_from_args(&a, T0).unwrap().scanned_unix_ms, 1_795_738_500_123);
        a.at = Some("1795220100".into());
        assert!(scan_from_args(&a, T0).unwrap_err().to_string().contains("seconds"));
        a.at = Some("yesterday".into());
        assert!(scan_from_args(&a, T0).is_err());
    }

    #[test]
    fn every_step_has_a_kebab_name() {
        for step in Step::value_variants() {
            let cli = step.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(step_name(step.to_pb()), cli);
        }
        assert_eq!(step_name(7), "en-route");
        assert_eq!(step_name(99), "unknown-step");
    }

    #[test]
    fn the_queue_principal_is_the_certificate_principal() {
        assert_eq!(
            courier_principal("dev-07", Some("441424100")).unwrap().to_string(),
            "courier:441424100:dev-07"
        );
        assert_eq!(
            courier_principal("courier:441424100:dev-07", None).unwrap().to_string(),
            "courier:441424100:dev-07"
        );
        assert!(courier_principal("dev-07", None).is_err());
        assert!(courier_principal("courier:441424100:dev-07", Some("441424104")).is_err());
        assert!(courier_principal("node:441424100", None).is_err());
        assert!(courier_principal("operator:441424100:li.na", None).is_ok());
    }

    fn parse(args: &[&str]) -> Result<CourierCommand, clap::Error> {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(["tongban", "courier"].iter().chain(args))?;
        match cli.command {
            crate::Command::Courier { command } => Ok(command),
            _ => panic!("not a courier command"),
        }
    }

    #[test]
    fn the_command_lines_parse() {
        let scan = parse(&[
            "scan", "--queue", "q.db", "en-route", "--box", "B-1", "--trip", "T-1", "--place", "K12",
        ])
        .unwrap();
        let CourierCommand::Scan(a) = scan else {
            panic!("{scan:?}")
        };
        assert_eq!(
            (a.step, a.box_id.as_deref(), a.place.as_deref()),
            (Step::EnRoute, Some("B-1"), Some("K12"))
        );
        let a = parse(&[
            "scan",
            "--queue",
            "q.db",
            "release-at-destination",
            "--box",
            "B-1",
            "--trip",
            "T-1",
            "--to",
            "operator:441424100:li.na",
            "--seal",
            "S-1",
            "--seal-intact",
            "--doc",
            "D-1",
            "--doc",
            "D-2",
        ])
        .unwrap();
        let CourierCommand::Scan(a) = a else { panic!() };
        assert_eq!(a.docs, vec!["D-1", "D-2"]);
        assert!(parse(&["scan", "--queue", "q", "en-route", "--seal-intact", "--seal-broken"]).is_err());
        assert!(parse(&["scan", "--queue", "q", "courier_accept"]).is_err());

        let sync = parse(&[
            "sync",
            "--queue",
            "q.db",
            "--node",
            "https://10.0.0.1:7100",
            "--cert",
            "c.pem",
            "--key",
            "c.key",
            "--all",
        ])
        .unwrap();
        let CourierCommand::Sync {
            conn,
            all,
            retry_refused,
            ..
        } = sync
        else {
            panic!()
        };
        assert_eq!(
            (conn.node.as_str(), all, retry_refused),
            ("https://10.0.0.1:7100", true, false)
        );
        assert!(matches!(
            parse(&[
                "init",
                "--queue",
                "q.db",
                "--device",
                "pda-1",
                "--courier",
                "dev-07",
                "--place",
                "441424100"
            ]),
            Ok(CourierCommand::Init { first_seq: 1, .. })
        ));
        assert!(matches!(
            parse(&["list", "--queue", "q", "--pending"]),
            Ok(CourierCommand::List { pending: true, .. })
        ));
    }

    // -----------------------------------------------------------------------------------------
    // sync against a stand-in node: mTLS like a real one, recording each scan id once.
    // -----------------------------------------------------------------------------------------

    /// Scan id → encoded scan, shared by stand-in nodes to play replication between them.
    type Recorded = Arc<Mutex<HashMap<String, Vec<u8>>>>;

    struct FakeNode {
        recorded: Recorded,
        batches: Arc<Mutex<Vec<usize>>>,
    }

    #[tonic::async_trait]
    impl Custody for FakeNode {
        async fn upload_scans(
            &self,
            request: Request<pb::UploadScansRequest>,
        ) -> Result<Response<pb::UploadScansResponse>, Status> {
            let caller = tongban_core::tls::peer_principal(&request)?.to_string();
            let scans = request.into_inner().scans;
            if scans.len() > MAX_BATCH_SCANS {
                return Err(Status::invalid_argument("too many scans"));
            }
            self.batches.lock().unwrap().push(scans.len());
            let mut recorded = self.recorded.lock().unwrap();
            let mut response = pb::UploadScansResponse::default();
            for scan in scans {
                let (result, message) = if scan.principal != caller {
                    (scan_outcome::Result::Refused, "not your scan")
                } else if scan.box_id == "BAD" {
                    (scan_outcome::Result::Refused, "unknown box BAD")
                } else if recorded.contains_key(&scan.scan_id) {
                    (scan_outcome::Result::Duplicate, "")
                } else {
                    recorded.insert(scan.scan_id.clone(), scan.encode_to_vec());
                    (scan_outcome::Result::Recorded, "")
                };
                match result {
                    scan_outcome::Result::Recorded => response.recorded += 1,
                    scan_outcome::Result::Duplicate => response.duplicates += 1,
                    _ => response.refused += 1,
                }
                response.outcomes.push(outcome(&scan.scan_id, result, message));
            }
            Ok(Response::new(response))
        }
        async fn where_is(&self, _: Request<pb::WhereIsRequest>) -> Result<Response<pb::WhereIsResponse>, Status> {
            Err(Status::unimplemented("stand-in"))
        }
        async fn box_history(
            &self,
            _: Request<pb::BoxHistoryRequest>,
        ) -> Result<Response<pb::BoxHistoryResponse>, Status> {
            Err(Status::unimplemented("stand-in"))
        }
        async fn list_anomalies(
            &self,
            _: Request<pb::ListAnomaliesRequest>,
        ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
            Err(Status::unimplemented("stand-in"))
        }
        async fn note_anomaly(&self, _: Request<pb::NoteAnomalyRequest>) -> Result<Response<pb::Anomaly>, Status> {
            Err(Status::unimplemented("stand-in"))
        }
        async fn export_epcis(
            &self,
            _: Request<pb::ExportEpcisRequest>,
        ) -> Result<Response<pb::ExportEpcisResponse>, Status> {
            Err(Status::unimplemented("stand-in"))
        }
    }

    struct Pki {
        layout: PkiLayout,
        ca: DevCa,
    }

    fn pki(dir: &tempfile::TempDir) -> Pki {
        tongban_core::tls::install_crypto_provider();
        let layout = PkiLayout::new(dir.path().join("pki"));
        let ca = layout.load_or_create_ca(&NodeId::new("441424").unwrap()).unwrap();
        Pki { layout, ca }
    }

    impl Pki {
        fn connection(&self, node: &str, who: &Principal) -> Connection {
            self.layout.ensure(&self.ca, who).unwrap();
            Connection {
                node: node.to_owned(),
                ca: self.layout.ca_cert(),
                cert: self.layout.cert_path(who),
                key: self.layout.key_path(who),
            }
        }

        async fn start_node(&self, id: &str, recorded: Recorded) -> (String, Arc<Mutex<Vec<usize>>>) {
            let id = NodeId::new(id).unwrap();
            self.layout.ensure(&self.ca, &Principal::Node(id.clone())).unwrap();
            let tls = TlsFiles::node(&self.layout, &id).load().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
            let batches = Arc::new(Mutex::new(Vec::new()));
            let node = FakeNode {
                recorded,
                batches: batches.clone(),
            };
            let server = tonic::transport::Server::builder()
                .tls_config(tls.server_config())
                .unwrap()
                .add_service(CustodyServer::new(node))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
            tokio::spawn(server);
            (url, batches)
        }
    }

    #[tokio::test]
    async fn sync_uploads_in_order_and_a_second_node_records_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(&dir);
        let (path, mut q) = new_queue(&dir).await;
        for i in 0..12 {
            q.append(en_route(if i == 4 { "BAD" } else { "B-001" })).await.unwrap();
        }
        q.close().await.unwrap();

        let recorded = Recorded::default();
        let (township, batches) = pki.start_node("441424100", recorded.clone()).await;
        let conn = pki.connection(&township, &courier());
        sync(&path, &conn, Resend::Queued).await.unwrap();
        assert_eq!(recorded.lock().unwrap().len(), 11);
        assert_eq!(*batches.lock().unwrap(), vec![12]);
        let mut q = Queue::open(&path).await.unwrap();
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.queued, counts.uploaded, counts.refused), (0, 11, 1));
        let refused = q.entries(Filter::Refused).await.unwrap();
        assert_eq!(
            (refused[0].seq, refused[0].message.as_deref()),
            (5, Some("unknown box BAD"))
        );

        // A later scan; then nothing but it goes, and refused ones wait for --retry-refused.
        q.append(en_route("B-001")).await.unwrap();
        q.close().await.unwrap();
        sync(&path, &conn, Resend::Queued).await.unwrap();
        assert_eq!(*batches.lock().unwrap(), vec![12, 1]);
        sync(&path, &conn, Resend::QueuedAndRefused).await.unwrap();
        assert_eq!(*batches.lock().unwrap(), vec![12, 1, 1]);

        // The county, which has the township's scans by replication: --all resends everything,
        // and every scan is a duplicate there.
        let (county, county_batches) = pki.start_node("441424", recorded.clone()).await;
        let conn = pki.connection(&county, &courier());
        sync(&path, &conn, Resend::Everything).await.unwrap();
        assert_eq!(*county_batches.lock().unwrap(), vec![13]);
        assert_eq!(recorded.lock().unwrap().len(), 12);
        let mut q = Queue::open(&path).await.unwrap();
        let counts = q.counts().await.unwrap();
        assert_eq!((counts.queued, counts.uploaded, counts.refused), (0, 12, 1));
        assert_eq!(counts.last_answer.map(|(_, node)| node), Some(county));
    }

    #[tokio::test]
    async fn sync_with_no_node_leaves_the_queue_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(&dir);
        let (path, mut q) = new_queue(&dir).await;
        q.append(en_route("B-001")).await.unwrap();
        q.append(en_route("B-001")).await.unwrap();
        q.close().await.unwrap();
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conn = pki.connection(&format!("https://127.0.0.1:{port}"), &courier());
        let err = sync(&path, &conn, Resend::Queued).await.unwrap_err().to_string();
        assert!(err.contains("nothing uploaded, 2 scans stay in the queue"), "{err}");
        let mut q = Queue::open(&path).await.unwrap();
        let all = q.entries(Filter::All).await.unwrap();
        assert!(
            all.iter()
                .all(|e| e.state == State::Queued && e.attempts == 0 && e.node.is_none())
        );
    }

    #[tokio::test]
    async fn sync_refuses_another_couriers_certificate_before_dialling() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(&dir);
        let (path, mut q) = new_queue(&dir).await;
        q.append(en_route("B-001")).await.unwrap();
        q.close().await.unwrap();
        let other = Principal::courier(NodeId::new("441424104").unwrap(), "dev-09").unwrap();
        let conn = pki.connection("https://127.0.0.1:1", &other);
        let err = sync(&path, &conn, Resend::Queued).await.unwrap_err().to_string();
        assert!(err.contains("courier:441424104:dev-09"), "{err}");
        assert_eq!(Queue::open(&path).await.unwrap().counts().await.unwrap().queued, 1);
    }
}
