//! `tongban courier …`: the courier's handheld on the command line. The device, its queue and
//! the upload are the `tongban_courier` crate's; this module owns the commands — `init`, `scan`,
//! `status` and `list` work on the queue with no network, `sync` uploads it with
//! `Custody.UploadScans` to whichever node the device reaches, township or county — and checks
//! what a courier types before a scan is saved, so the courier hears of a mistake now and not
//! from a node days later.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use tongban_courier::{Device, Filter, Queue, Resend, State, UploadFailure, step_name};
use tongban_domains::ids::NodeId;
use tongban_domains::pki::{PkiLayout, Principal, principal_from_cert_pem};
use tongban_proto::v1::{self as pb, custody_client::CustodyClient};

use crate::client::Connection;
use crate::display::china_time;

/// Longest box, trip, document or case id a node accepts.
const MAX_ID_LEN: usize = 128;

#[derive(Subcommand, Debug)]
pub enum CourierCommand {
    /// Create this device's scan queue (once per device).
    Init {
        /// The queue file on the device.
        #[arg(long, env = "TONGBAN_CLI_QUEUE")]
        queue: PathBuf,
        /// This device's id, as printed on it (e.g. pda-0042); part of every scan id.
        #[arg(long)]
        device: String,
        /// Who scans: courier:<place>:<name> as in the courier's certificate, or <name> with
        /// --place. A desk scanner gives operator:<node>:<name>.
        #[arg(long)]
        courier: String,
        /// The node the courier belongs to (division code or name), when --courier is a bare name.
        #[arg(long, value_parser = crate::words::place)]
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
        #[arg(long, env = "TONGBAN_CLI_QUEUE")]
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
        #[arg(long, env = "TONGBAN_CLI_QUEUE")]
        queue: PathBuf,
    },
    /// The scans in the queue, one line each, oldest first.
    List {
        /// The queue file on the device.
        #[arg(long, env = "TONGBAN_CLI_QUEUE")]
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
    #[arg(long, env = "TONGBAN_CLI_QUEUE")]
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
    /// When, by this device's clock: China time (2026-11-27 08:15), RFC 3339 with its offset,
    /// or Unix milliseconds. Default: now.
    #[arg(long)]
    at: Option<String>,
    /// pack: where the trip starts (division code or name).
    #[arg(long, help_heading = "Desk steps", value_parser = crate::words::place)]
    origin: Option<String>,
    /// pack: where the trip goes (division code or name).
    #[arg(long, help_heading = "Desk steps", value_parser = crate::words::place)]
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
            if first_seq == 0 {
                bail!("--first-seq starts at 1");
            }
            let handheld = Device::resume(device.as_str(), principal.clone(), first_seq)?;
            let q = Queue::create(&queue, &handheld, now_ms()).await?;
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
            println!("scan {} saved: {}", added.device_seq, added.scan_id);
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

/// `--at`: a China wall-clock time without an offset (as a courier reads it off a watch), RFC
/// 3339 with its offset, or Unix milliseconds.
fn parse_at(text: &str) -> Result<i64> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        // Unix seconds have 10 digits until 2286; milliseconds have 13 since 2001.
        if text.len() <= 11 {
            bail!("--at {text} looks like seconds; give Unix milliseconds or a time like 2026-11-27T08:15:00+08:00");
        }
        return text.parse().with_context(|| format!("--at {text}"));
    }
    for pattern in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(wall) = NaiveDateTime::parse_from_str(text, pattern) {
            return Ok(china_time::from_wall_clock(wall));
        }
    }
    let time = DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("--at {text}: expected China time (2026-11-27 08:15), RFC 3339 (2026-11-27T08:15:00+08:00) or Unix ms")
    })?;
    Ok(time.timestamp_millis())
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn box_and_trip(box_id: &str, trip_id: &str) -> String {
    match (box_id.is_empty(), trip_id.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("box {box_id}"),
        (true, false) => format!("trip {trip_id}"),
        (false, false) => format!("box {box_id} trip {trip_id}"),
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

/// Uploads the queue with [`tongban_courier::upload`] and reports what the node said.
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
        Some(holder) if holder != device.principal => format!(" as {holder}"),
        _ => String::new(),
    };
    println!("uploading {} to {}{as_whom}", plural(total, "scan", "scans"), conn.node);
    let mut client = CustodyClient::new(channel);
    let done = tongban_courier::upload(&mut queue, &mut client, &conn.node, resend).await?;
    let counts = queue.counts().await?;
    queue.close().await?;

    let tally = &done.tally;
    if tally.answered() > 0 || done.failure.is_none() {
        println!(
            "{}: {} recorded, {} already there, {} refused",
            conn.node,
            tally.recorded(),
            tally.duplicates(),
            tally.refused().count()
        );
    }
    for (r, message) in tally.refused() {
        println!("refused #{} {}: {message}", r.seq, r.scan_id);
    }
    for (r, message) in tally.refused_after_upload() {
        println!(
            "#{} {} is already uploaded, but {} refused it: {message}",
            r.seq, r.scan_id, conn.node
        );
    }
    if tally.unanswered > 0 {
        println!(
            "{} got no answer and stay queued",
            plural(tally.unanswered, "scan", "scans")
        );
    }
    if let Some(failure) = done.failure {
        let e = explain_failure(conn, failure);
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
    if tally.refused().next().is_some() {
        println!("refused scans stay in the queue; see `tongban courier status`");
    }
    Ok(())
}

/// An upload that stopped early, in words naming the node.
pub(crate) fn explain_failure(conn: &Connection, failure: UploadFailure) -> anyhow::Error {
    match failure {
        UploadFailure::Rpc(status) => conn.explain(status),
        UploadFailure::NoAnswer(waited) => anyhow!("no answer from node {} in {}s", conn.node, waited.as_secs()),
    }
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
    if holder != device.principal && matches!(holder, Principal::Courier { .. }) {
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

    println!("device    {}", device.id);
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
    println!("last seq  {}", device.next_seq().saturating_sub(1));
    println!("queued    {}", counts.queued);
    match &counts.last_answer {
        Some((at, node)) => println!(
            "uploaded  {} (last {} at {node})",
            counts.uploaded,
            china_time::short(*at)
        ),
        None => println!("uploaded  {}", counts.uploaded),
    }
    println!("refused   {}", counts.refused);
    for e in &refused {
        println!(
            "  #{} {} {} {}",
            e.seq,
            e.step,
            box_and_trip(&e.box_id, &e.trip_id),
            china_time::short(e.scanned_unix_ms)
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
            china_time::short(e.scanned_unix_ms),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::stand_in::{Recorded, pki};

    const T0: i64 = 1_795_000_000_000;

    fn courier() -> Principal {
        Principal::courier(NodeId::new("441424100").unwrap(), "dev-07").unwrap()
    }

    async fn new_queue(dir: &tempfile::TempDir) -> (PathBuf, Queue) {
        let path = dir.path().join("pda").join("queue.db");
        let pda = Device::new("pda-0042", courier()).unwrap();
        let q = Queue::create(&path, &pda, T0).await.unwrap();
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
        // Without an offset a time is China's, whatever the machine's zone.
        a.at = Some("2026-11-27 08:15".into());
        assert_eq!(scan_from_args(&a, T0).unwrap().scanned_unix_ms, 1_795_738_500_000);
        a.at = Some("2026-11-27T08:15:00".into());
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
