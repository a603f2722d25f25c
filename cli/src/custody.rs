//! `tongban custody …`: material boxes and paper files at a node, over its `Custody` service.
//!
//! - **Desk scans** (`register-document`, `register-box`, `pack`, `seal`, `release`, `accept`,
//!   `unpack`, `void`, `correct`): each is one `Scan` uploaded at once. The desk is a device like
//!   a courier's handheld: `desk-<node>-<operator>` from the operator certificate (or `--device`),
//!   numbered densely from 1, since the node flags a gap in a device's numbers as an anomaly. The
//!   number lives in a small state file next to the operator certificate
//!   (`tongban-desk-<node>-<operator>.seq`, or `--desk-state FILE`), locked while a scan is made, and
//!   written and fsynced *before* the upload. A scan whose upload fails stays in that file and
//!   goes, under its first id and number, with the desk's next scan (or `resend`); the node
//!   records a scan once however often it arrives. A number the node refused is taken back if
//!   nothing followed it, so a typo does not leave a gap.
//! - **Queries**: `where-is`, `box history`, `anomalies list|explain|close`, `epcis export`.
//! - **Labels** (`label box|trip|document|sheet`): SVG files to print at 100 %; no node needed.

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use chrono::DateTime;
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use tongban_core::ids::NodeId;
use tongban_core::labels::{self, BoxLabel, DocumentLabel, TripLabel};
use tongban_core::pki::{Principal, principal_from_cert_pem};
use tongban_core::store::CaseRef;
use tongban_proto::v1::{
    self as pb, cases_client::CasesClient, custody_client::CustodyClient, get_case_request, scan_outcome,
    where_is_request,
};
use tonic::transport::Channel;

use crate::client::Connection;
use crate::commands::cell;

/// Most scans per `UploadScans` request (the contract's limit).
const UPLOAD_BATCH: usize = 5_000;
/// Responses (EPCIS exports, a case's documents) may be far larger than tonic's 4 MiB default.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;
/// China Standard Time (Asia/Shanghai has no daylight saving).
const CST_OFFSET_MS: i64 = 8 * 3600 * 1000;

#[derive(Subcommand, Debug)]
pub enum CustodyCommand {
    /// Register a paper file of a case at intake, by the id printed on its label.
    RegisterDocument {
        #[command(flatten)]
        desk: Desk,
        /// The case: its id or its receipt number.
        #[arg(long)]
        case: String,
        /// The document id (what its label's QR code holds).
        #[arg(long)]
        doc: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        pages: u32,
        /// What it is, e.g. 户口簿原件.
        #[arg(long)]
        title: String,
    },
    /// Register a reusable material box with its printed label.
    RegisterBox {
        #[command(flatten)]
        desk: Desk,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// The label text.
        #[arg(long)]
        label: String,
    },
    /// Pack documents into a box for a new trip (prints the trip id).
    Pack {
        #[command(flatten)]
        desk: Desk,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// Default: a new id, <origin>-<yyyymmdd>-<8 hex digits>. Never reuse one.
        #[arg(long)]
        trip: Option<String>,
        /// The sending node's division code (default: the operator's node).
        #[arg(long)]
        from: Option<String>,
        /// The receiving node's division code.
        #[arg(long)]
        to: String,
        /// A document packed (repeat for each): the trip's manifest.
        #[arg(long = "doc", value_name = "DOC", required = true)]
        docs: Vec<String>,
    },
    /// Close the box with a numbered tamper seal.
    Seal {
        #[command(flatten)]
        desk: Desk,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// The trip id (as printed by `pack`).
        #[arg(long)]
        trip: String,
        /// The seal number.
        #[arg(long)]
        seal: String,
    },
    /// Hand the sealed box to a courier (custody moves when the courier accepts it).
    Release {
        #[command(flatten)]
        desk: Desk,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// The trip id (as printed by `pack`).
        #[arg(long)]
        trip: String,
        /// The courier, as in their certificate: courier:<place>:<device>.
        #[arg(long)]
        to: String,
    },
    /// Accept an arriving box at its destination and record its seal as read.
    Accept {
        #[command(flatten)]
        desk: Desk,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// The trip id (as printed by `pack`).
        #[arg(long)]
        trip: String,
        /// The seal number read on the box.
        #[arg(long)]
        seal: String,
        /// The seal is broken or tampered with.
        #[arg(long)]
        seal_broken: bool,
    },
    /// Open the box and scan every document out; the trip ends.
    Unpack {
        #[command(flatten)]
        desk: Desk,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// The trip id (as printed by `pack`).
        #[arg(long)]
        trip: String,
        /// A document found (repeat for each); none if the box was empty.
        #[arg(long = "doc", value_name = "DOC")]
        docs: Vec<String>,
    },
    /// The departure did not happen: cancel the trip; box and documents stay with the sender.
    Void {
        #[command(flatten)]
        desk: Desk,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// The trip id (as printed by `pack`).
        #[arg(long)]
        trip: String,
        #[arg(long)]
        reason: String,
    },
    /// Declare a scan wrong (an error declaration): it no longer counts. Scan the right one after.
    Correct {
        #[command(flatten)]
        desk: Desk,
        /// The scan id to take back.
        #[arg(long)]
        scan: String,
        #[arg(long)]
        reason: String,
    },
    /// Upload this desk's scans kept after a failed upload.
    Resend {
        #[command(flatten)]
        desk: Desk,
    },
    /// Where a document, a box, or every document of a case is now, and its custody chain.
    WhereIs {
        #[command(flatten)]
        target: WhereTarget,
    },
    /// A box's trips and scans.
    #[command(name = "box")]
    BoxCmd {
        #[command(subcommand)]
        command: BoxCommand,
    },
    /// Breaks in the chain of custody: list, explain, close.
    Anomalies {
        #[command(subcommand)]
        command: AnomalyCommand,
    },
    /// EPCIS 2.0 for the postal and provincial systems.
    Epcis {
        #[command(subcommand)]
        command: EpcisCommand,
    },
    /// Printable labels as SVG (print at 100 %, never "fit to page"); no node needed.
    Label {
        #[command(subcommand)]
        command: LabelCommand,
    },
}

/// Which desk is scanning.
#[derive(Args, Debug, Clone)]
pub struct Desk {
    /// This desk's device id (default: desk-<node>-<operator>, from the operator certificate).
    #[arg(long)]
    device: Option<String>,
    /// The desk's sequence file (default: next to the certificate, tongban-desk-<node>-<operator>.seq).
    #[arg(long)]
    desk_state: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct WhereTarget {
    /// A document id.
    #[arg(long)]
    doc: Option<String>,
    /// A box id.
    #[arg(long = "box", value_name = "BOX")]
    box_id: Option<String>,
    /// A case id or receipt number: every document registered for it.
    #[arg(long)]
    case: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BoxCommand {
    /// Every trip of the box, then every scan in event-time order (voided ones marked).
    History {
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// Only this trip.
        #[arg(long)]
        trip: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AnomalyCommand {
    /// Anomalies this node sees (default: open and explained).
    List {
        #[arg(long, value_enum)]
        state: Option<AnomalyStateArg>,
        /// Only this kind, e.g. seal_broken, manifest_shortage, device_sequence_gap.
        #[arg(long)]
        kind: Option<String>,
        /// Only this township (division code).
        #[arg(long)]
        township: Option<String>,
    },
    /// Explain an anomaly (operators at this node).
    Explain {
        /// The anomaly's key, as listed.
        #[arg(value_name = "KEY")]
        anomaly_key: String,
        #[arg(long)]
        text: String,
    },
    /// Close an anomaly with a reason (operators at this node).
    Close {
        /// The anomaly's key, as listed.
        #[arg(value_name = "KEY")]
        anomaly_key: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum AnomalyStateArg {
    Open,
    Explained,
    Closed,
}

#[derive(Subcommand, Debug)]
pub enum EpcisCommand {
    /// Box and document events as one EPCIS 2.0 JSON-LD document (everything the node holds by
    /// default).
    Export {
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX", conflicts_with = "case")]
        box_id: Option<String>,
        /// A case id or receipt number.
        #[arg(long)]
        case: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum LabelCommand {
    /// A box label (100 × 70 mm).
    Box {
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// The owning office, e.g. 五华县政务服务中心.
        #[arg(long)]
        owner_name: String,
        /// The owner's division code.
        #[arg(long)]
        owner_code: String,
        #[arg(long, default_value = "材料流转箱 material box")]
        note: String,
        /// Default: box-<id>.svg; "-" for standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A trip label for a sealed box (100 × 70 mm).
    Trip {
        /// The trip id (as printed by `pack`).
        #[arg(long)]
        trip: String,
        /// The box id (what its label's QR code holds).
        #[arg(long = "box", value_name = "BOX")]
        box_id: String,
        /// Where it comes from (a name or a code, as printed).
        #[arg(long)]
        from: String,
        /// Where it goes.
        #[arg(long)]
        to: String,
        #[arg(long)]
        seal: String,
        /// YYYY-MM-DD (default: today, China time).
        #[arg(long)]
        date: Option<String>,
        /// Default: trip-<id>.svg; "-" for standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A document label (70 × 37 mm).
    Document {
        #[arg(long)]
        doc: String,
        #[arg(long)]
        case_number: String,
        /// The item's name.
        #[arg(long)]
        item: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        pages: u32,
        /// The applicant, masked as it may be printed (e.g. 张** 441424********1234).
        #[arg(long)]
        applicant: String,
        /// Default: document-<id>.svg; "-" for standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Document labels from a CSV file, 24 to an A4 sheet: page-1.svg, page-2.svg, …
    Sheet {
        /// Header row, then one label per row: document_id, case_number, item_name, kind
        /// (original|copy|result), pages, applicant_masked.
        #[arg(long)]
        from_file: PathBuf,
        /// Where to write the pages.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
}

/// The kind of a paper file.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An original the applicant handed in (原件).
    Original,
    /// A copy (复印件).
    Copy,
    /// A result certificate or licence (结果证照).
    Result,
}

impl Kind {
    fn to_wire(self) -> i32 {
        (match self {
            Kind::Original => pb::DocumentKind::Original,
            Kind::Copy => pb::DocumentKind::Copy,
            Kind::Result => pb::DocumentKind::ResultCertificate,
        }) as i32
    }

    fn label_text(self) -> &'static str {
        match self {
            Kind::Original => "original 原件",
            Kind::Copy => "copy 复印件",
            Kind::Result => "result certificate 结果证照",
        }
    }

    fn from_text(text: &str) -> Option<Kind> {
        match text.trim().to_lowercase().as_str() {
            "original" | "原件" | "original 原件" => Some(Kind::Original),
            "copy" | "复印件" | "copy 复印件" => Some(Kind::Copy),
            "result" | "result_certificate" | "result certificate" | "结果证照" | "result certificate 结果证照" => {
                Some(Kind::Result)
            }
            _ => None,
        }
    }
}

pub async fn run(conn: Connection, command: CustodyCommand) -> Result<()> {
    use CustodyCommand as C;
    match command {
        C::Label { command } => label(command),
        C::RegisterDocument {
            desk,
            case,
            doc,
            kind,
            pages,
            title,
        } => {
            let channel = conn.channel().await?;
            let case_id = resolve_case(&conn, &channel, &case).await?;
            let scan = pb::Scan {
                step: pb::CustodyStep::RegisterDocument as i32,
                document: Some(pb::DocumentInfo {
                    document_id: doc,
                    case_id,
                    kind: kind.to_wire(),
                    pages,
                    title,
                }),
                ..Default::default()
            };
            desk_scan(&conn, Some(channel), &desk, Some(scan)).await
        }
        C::RegisterBox { desk, box_id, label } => {
            let scan = pb::Scan {
                step: pb::CustodyStep::RegisterBox as i32,
                box_id,
                box_label: label,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await
        }
        C::Pack {
            desk,
            box_id,
            trip,
            from,
            to,
            docs,
        } => {
            let origin = match from {
                Some(from) => from,
                None => operator(&conn)?.place().to_string(),
            };
            NodeId::new(origin.clone()).with_context(|| format!("--from {origin:?}"))?;
            NodeId::new(to.clone()).with_context(|| format!("--to {to:?}"))?;
            if origin == to {
                bail!("a trip goes somewhere: --from and --to are both {to}");
            }
            let trip_id = trip.unwrap_or_else(|| new_trip_id(&origin, now_ms()));
            let scan = pb::Scan {
                step: pb::CustodyStep::Pack as i32,
                box_id,
                trip_id: trip_id.clone(),
                origin,
                destination: to,
                document_ids: docs,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await?;
            println!("trip {trip_id}");
            Ok(())
        }
        C::Seal {
            desk,
            box_id,
            trip,
            seal,
        } => {
            let scan = pb::Scan {
                step: pb::CustodyStep::Seal as i32,
                box_id,
                trip_id: trip,
                seal_number: seal,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await
        }
        C::Release { desk, box_id, trip, to } => {
            if !matches!(to.parse::<Principal>(), Ok(Principal::Courier { .. })) {
                bail!(
                    "--to names the courier as in their certificate, courier:<place>:<device> \
                     (e.g. courier:441424:pda-07), not {to:?}"
                );
            }
            let scan = pb::Scan {
                step: pb::CustodyStep::ReleaseToCourier as i32,
                box_id,
                trip_id: trip,
                counterparty: to,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await
        }
        C::Accept {
            desk,
            box_id,
            trip,
            seal,
            seal_broken,
        } => {
            let scan = pb::Scan {
                step: pb::CustodyStep::DestinationAccept as i32,
                box_id,
                trip_id: trip,
                seal_number: seal,
                seal_intact: !seal_broken,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await
        }
        C::Unpack {
            desk,
            box_id,
            trip,
            docs,
        } => {
            let scan = pb::Scan {
                step: pb::CustodyStep::Unpack as i32,
                box_id,
                trip_id: trip,
                document_ids: docs,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await
        }
        C::Void {
            desk,
            box_id,
            trip,
            reason,
        } => {
            let scan = pb::Scan {
                step: pb::CustodyStep::VoidDeparture as i32,
                box_id,
                trip_id: trip,
                reason: required(reason, "--reason")?,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await
        }
        C::Correct { desk, scan, reason } => {
            let scan = pb::Scan {
                step: pb::CustodyStep::ErrorDeclaration as i32,
                corrects_scan_id: required(scan, "--scan")?,
                reason: required(reason, "--reason")?,
                ..Default::default()
            };
            desk_scan(&conn, None, &desk, Some(scan)).await
        }
        C::Resend { desk } => desk_scan(&conn, None, &desk, None).await,
        C::WhereIs { target } => where_is(&conn, target).await,
        C::BoxCmd {
            command: BoxCommand::History { box_id, trip },
        } => box_history(&conn, box_id, trip.unwrap_or_default()).await,
        C::Anomalies { command } => anomalies(&conn, command).await,
        C::Epcis {
            command: EpcisCommand::Export { box_id, case, out },
        } => epcis_export(&conn, box_id, case, out).await,
    }
}

fn required(text: String, flag: &str) -> Result<String> {
    if text.trim().is_empty() {
        bail!("{flag} must not be empty");
    }
    Ok(text)
}

fn custody_client(channel: Channel) -> CustodyClient<Channel> {
    CustodyClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES)
}

/// A case id as the node knows it: an id as given, a receipt number looked up.
async fn resolve_case(conn: &Connection, channel: &Channel, text: &str) -> Result<String> {
    let number = match text.parse::<CaseRef>()? {
        CaseRef::Id(id) => return Ok(id.to_string()),
        CaseRef::Number(number) => number.to_string(),
    };
    let request = pb::GetCaseRequest {
        key: Some(get_case_request::Key::CaseNumber(number.clone())),
    };
    let detail = CasesClient::new(channel.clone())
        .get(request)
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner();
    match detail.summary {
        Some(s) if !s.case_id.is_empty() => Ok(s.case_id),
        _ => bail!("node {} returned case {number} without its id", conn.node),
    }
}

// ---------------------------------------------------------------------------------------------
// Desk scans
// ---------------------------------------------------------------------------------------------

/// The operator named in the certificate this command presents.
fn operator(conn: &Connection) -> Result<Principal> {
    let pem = fs::read_to_string(&conn.cert)
        .with_context(|| format!("reading the operator certificate {}", conn.cert.display()))?;
    let principal =
        principal_from_cert_pem(&pem).with_context(|| format!("reading the identity in {}", conn.cert.display()))?;
    match principal {
        Principal::Operator { .. } => Ok(principal),
        other => bail!(
            "desk scans need an operator certificate; {} names {other} (couriers scan with `tongban courier`)",
            conn.cert.display()
        ),
    }
}

/// One desk scan (`scan`), or none to upload only what an earlier failure left: number it, keep
/// it durably, upload everything kept, and report.
async fn desk_scan(conn: &Connection, channel: Option<Channel>, desk: &Desk, scan: Option<pb::Scan>) -> Result<()> {
    let principal = operator(conn)?;
    let device = match (&desk.device, &principal) {
        (Some(device), _) => device.clone(),
        (None, Principal::Operator { place, name }) => format!("desk-{place}-{name}"),
        (None, other) => format!("desk-{}", other.place()),
    };
    if device.is_empty() || device.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("the device id {device:?} must be non-empty, without spaces");
    }
    let path = match &desk.desk_state {
        Some(path) => path.clone(),
        None => conn
            .cert
            .parent()
            .unwrap_or(Path::new("."))
            .join(state_file_name(&device)),
    };
    let _lock = DeskLock::acquire(&path)?;
    let mut state = DeskState::load(&path, &device)?;

    let new_id = match scan {
        Some(mut scan) => {
            let seq = state.last_seq + 1;
            let now = now_ms();
            scan.scan_id = format!("{device}-{seq}-{}", random_hex8());
            scan.device_id = device.clone();
            scan.device_seq = seq;
            scan.scanned_unix_ms = now;
            scan.principal = principal.to_string();
            if scan.place.is_empty() {
                scan.place = principal.place().to_string();
            }
            let id = scan.scan_id.clone();
            state.last_seq = seq;
            state.pending.push(KeptScan::from(&scan));
            state.save(&path)?;
            Some(id)
        }
        None if state.pending.is_empty() => {
            println!("desk {device}: nothing to resend (last number {})", state.last_seq);
            return Ok(());
        }
        None => None,
    };

    let outcomes = match upload(conn, channel, &state).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            let kept = state.pending.len();
            return Err(e.context(format!(
                "upload failed; {kept} scan(s) kept in {}, to go with this desk's next scan or `tongban custody resend`",
                path.display()
            )));
        }
    };

    // Settle what the node answered; a scan it did not answer for stays kept.
    let mut refused_seqs = BTreeSet::new();
    let mut report = Vec::new();
    let mut refusal = None;
    state.pending.retain(|kept| {
        let Some(outcome) = outcomes.iter().find(|o| o.scan_id == kept.scan_id) else {
            return true;
        };
        let result = scan_outcome::Result::try_from(outcome.result).unwrap_or(scan_outcome::Result::Unspecified);
        let is_new = Some(&kept.scan_id) == new_id.as_ref();
        match result {
            scan_outcome::Result::Recorded | scan_outcome::Result::Duplicate => {
                report.push((is_new, kept.clone(), result, String::new()));
                false
            }
            scan_outcome::Result::Refused => {
                refused_seqs.insert(kept.device_seq);
                if is_new {
                    refusal = Some(outcome.message.clone());
                }
                report.push((is_new, kept.clone(), result, outcome.message.clone()));
                false
            }
            scan_outcome::Result::Unspecified => true,
        }
    });
    // Nothing was recorded under a refused number: if nothing came after it, it is free again.
    while refused_seqs.contains(&state.last_seq) && state.last_seq > 0 {
        state.last_seq -= 1;
    }
    state.save(&path)?;

    for (is_new, kept, result, message) in &report {
        let what = format!(
            "{} #{} {} (scan {})",
            device,
            kept.device_seq,
            step_label(kept.step),
            kept.scan_id
        );
        let prefix = if *is_new { "" } else { "earlier scan " };
        match result {
            scan_outcome::Result::Recorded => println!("{prefix}recorded: {what}"),
            scan_outcome::Result::Duplicate => println!("{prefix}already recorded: {what}"),
            _ if *is_new => {}
            _ => println!(
                "{prefix}refused: {what}: {message} (the node will see number {} missing)",
                kept.device_seq
            ),
        }
    }
    if !state.pending.is_empty() {
        println!(
            "{} scan(s) not answered by the node, kept in {}",
            state.pending.len(),
            path.display()
        );
    }
    if let Some(message) = refusal {
        bail!("node {} refused the scan: {message}", conn.node);
    }
    Ok(())
}

/// Uploads every kept scan in number order; the node's outcomes.
async fn upload(conn: &Connection, channel: Option<Channel>, state: &DeskState) -> Result<Vec<pb::ScanOutcome>> {
    let channel = match channel {
        Some(c) => c,
        None => conn.channel().await?,
    };
    let mut client = custody_client(channel);
    let mut scans: Vec<pb::Scan> = state.pending.iter().map(pb::Scan::from).collect();
    scans.sort_by_key(|s| s.device_seq);
    let mut outcomes = Vec::with_capacity(scans.len());
    for chunk in scans.chunks(UPLOAD_BATCH) {
        let request = pb::UploadScansRequest { scans: chunk.to_vec() };
        let response = client.upload_scans(request).await.map_err(|s| conn.explain(s))?;
        outcomes.extend(response.into_inner().outcomes);
    }
    Ok(outcomes)
}

/// A desk's numbering and the scans not yet answered by a node, as kept on disk (JSON).
#[derive(Serialize, Deserialize, Debug, Default)]
struct DeskState {
    device_id: String,
    /// The last number given to a scan of this desk (0: none yet).
    last_seq: u64,
    #[serde(default)]
    pending: Vec<KeptScan>,
}

impl DeskState {
    fn load(path: &Path, device: &str) -> Result<DeskState> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "note: new desk state {} for {device}; its scans are numbered from 1",
                    path.display()
                );
                return Ok(DeskState {
                    device_id: device.to_owned(),
                    ..Default::default()
                });
            }
            Err(e) => return Err(e).with_context(|| format!("reading the desk state {}", path.display())),
        };
        let state: DeskState = serde_json::from_str(&text).with_context(|| {
            format!(
                "the desk state {} is damaged; do not delete it (numbers would repeat): repair it by hand",
                path.display()
            )
        })?;
        if state.device_id != device {
            bail!(
                "the desk state {} belongs to device {}, not {device}; pass the matching --device or --desk-state",
                path.display(),
                state.device_id
            );
        }
        Ok(state)
    }

    /// Writes the state durably: a temporary file, fsynced, renamed over the old one, and the
    /// directory fsynced, so a crash leaves either the old or the new state, never a torn one.
    fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        let tmp = sibling(path, ".tmp");
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_dir(path)
        };
        write().with_context(|| format!("writing the desk state {}", path.display()))
    }
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// An exclusive lock on `<state>.lock`, held while a desk scan is numbered and uploaded, so two
/// commands at one desk never take the same number.
struct DeskLock {
    _file: File,
}

impl DeskLock {
    fn acquire(state: &Path) -> Result<DeskLock> {
        let path = sibling(state, ".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the desk lock {} (or pass --desk-state)", path.display()))?;
        file.lock().with_context(|| format!("locking {}", path.display()))?;
        Ok(DeskLock { _file: file })
    }
}

/// A scan kept on disk until a node answers for it.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
struct KeptScan {
    scan_id: String,
    device_id: String,
    device_seq: u64,
    scanned_unix_ms: i64,
    principal: String,
    step: i32,
    box_id: String,
    trip_id: String,
    origin: String,
    destination: String,
    document_ids: Vec<String>,
    seal_number: String,
    seal_intact: bool,
    counterparty: String,
    place: String,
    document: Option<KeptDocument>,
    box_label: String,
    corrects_scan_id: String,
    reason: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
struct KeptDocument {
    document_id: String,
    case_id: String,
    kind: i32,
    pages: u32,
    title: String,
}

impl From<&pb::Scan> for KeptScan {
    fn from(s: &pb::Scan) -> Self {
        KeptScan {
            scan_id: s.scan_id.clone(),
            device_id: s.device_id.clone(),
            device_seq: s.device_seq,
            scanned_unix_ms: s.scanned_unix_ms,
            principal: s.principal.clone(),
            step: s.step,
            box_id: s.box_id.clone(),
            trip_id: s.trip_id.clone(),
            origin: s.origin.clone(),
            destination: s.destination.clone(),
            document_ids: s.document_ids.clone(),
            seal_number: s.seal_number.clone(),
            seal_intact: s.seal_intact,
            counterparty: s.counterparty.clone(),
            place: s.place.clone(),
            document: s.document.as_ref().map(|d| KeptDocument {
                document_id: d.document_id.clone(),
                case_id: d.case_id.clone(),
                kind: d.kind,
                pages: d.pages,
                title: d.title.clone(),
            }),
            box_label: s.box_label.clone(),
            corrects_scan_id: s.corrects_scan_id.clone(),
            reason: s.reason.clone(),
        }
    }
}

impl From<&KeptScan> for pb::Scan {
    fn from(k: &KeptScan) -> Self {
        pb::Scan {
            scan_id: k.scan_id.clone(),
            device_id: k.device_id.clone(),
            device_seq: k.device_seq,
            scanned_unix_ms: k.scanned_unix_ms,
            principal: k.principal.clone(),
            step: k.step,
            box_id: k.box_id.clone(),
            trip_id: k.trip_id.clone(),
            origin: k.origin.clone(),
            destination: k.destination.clone(),
            document_ids: k.document_ids.clone(),
            seal_number: k.seal_number.clone(),
            seal_intact: k.seal_intact,
            counterparty: k.counterparty.clone(),
            place: k.place.clone(),
            document: k.document.as_ref().map(|d| pb::DocumentInfo {
                document_id: d.document_id.clone(),
                case_id: d.case_id.clone(),
                kind: d.kind,
                pages: d.pages,
                title: d.title.clone(),
            }),
            box_label: k.box_label.clone(),
            corrects_scan_id: k.corrects_scan_id.clone(),
            reason: k.reason.clone(),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Eight random hex digits (the process's random SipHash keys over the clock).
fn random_hex8() -> String {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    format!("{:08x}", hasher.finish() as u32)
}

/// `<origin>-<yyyymmdd>-<8 hex digits>`, the date in China.
fn new_trip_id(origin: &str, now_ms: i64) -> String {
    let date = china(now_ms)
        .map(|t| t.format("%Y%m%d").to_string())
        .unwrap_or_default();
    format!("{origin}-{date}-{}", random_hex8())
}

/// `tongban-desk-<node>-<operator>.seq` for `desk-<node>-<operator>`, `tongban-desk-<device>.seq`
/// for any other device id.
fn state_file_name(device: &str) -> String {
    let device = file_safe(device);
    match device.strip_prefix("desk-") {
        Some(rest) if !rest.is_empty() => format!("tongban-desk-{rest}.seq"),
        _ => format!("tongban-desk-{device}.seq"),
    }
}

/// A name fit for a file: anything but letters, digits, `.`, `_` and `-` becomes `_`.
fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

async fn where_is(conn: &Connection, target: WhereTarget) -> Result<()> {
    let channel = conn.channel().await?;
    let target = match (target.doc, target.box_id, target.case) {
        (Some(doc), _, _) => where_is_request::Target::DocumentId(doc),
        (_, Some(b), _) => where_is_request::Target::BoxId(b),
        (_, _, Some(case)) => where_is_request::Target::CaseId(resolve_case(conn, &channel, &case).await?),
        (None, None, None) => bail!("name a --doc, a --box or a --case"),
    };
    let request = pb::WhereIsRequest { target: Some(target) };
    let response = custody_client(channel)
        .where_is(request)
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner();
    if response.objects.is_empty() {
        println!("nothing known here");
        return Ok(());
    }
    for (i, object) in response.objects.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_whereabouts(object);
    }
    Ok(())
}

fn print_whereabouts(object: &pb::ObjectWhereabouts) {
    let Some(l) = &object.location else {
        println!("(the node returned an object without its location)");
        return;
    };
    let kind = match l.object_kind.as_str() {
        "document" => "材料 document",
        "box" => "箱 box",
        other => other,
    };
    println!("{kind} {}", l.object_id);
    let row = |label: &str, value: &str| {
        if !value.is_empty() {
            println!("  {} {value}", cell(label, 24));
        }
    };
    row("案件 case", &l.case_id);
    if !l.container.is_empty() {
        let trip = if l.trip_id.is_empty() {
            String::new()
        } else {
            format!(", trip {}", l.trip_id)
        };
        row("所在箱 in box", &format!("{}{trip}", l.container));
    } else if !l.trip_id.is_empty() {
        row("行程 trip", &l.trip_id);
    }
    row("保管 custodian", or_dash(&l.custodian));
    row("待接收 pending", &l.pending_custodian);
    row("地点 place", or_dash(&l.place));
    let since = format!(
        "{} ({})",
        time(l.since_unix_ms),
        if l.verified {
            "verified: scanned itself"
        } else {
            "inferred from its box's scans"
        }
    );
    row("自 since", &since);
    println!("  流转 custody chain, oldest first:");
    if object.chain.is_empty() {
        println!("    (none)");
    }
    for link in &object.chain {
        println!("    {}", link_line(link));
    }
}

/// One custody link on one line.
fn link_line(link: &pb::CustodyLink) -> String {
    let cbv = match (link.biz_step.as_str(), link.disposition.as_str()) {
        ("", _) => "-".to_owned(),
        (step, "") => step.to_owned(),
        (step, disposition) => format!("{step}/{disposition}"),
    };
    let mut flags = Vec::new();
    if link.via_container {
        flags.push("via box");
    }
    if link.voided {
        flags.push("VOIDED");
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!("  [{}]", flags.join(", "))
    };
    format!(
        "{}  {} {} {} @{} → {}{flags}  scan {} (recorded at {})",
        time(link.scanned_unix_ms),
        cell(step_label(link.step), 30),
        cell(&cbv, 30),
        cell(&link.principal, 30),
        cell(or_dash(&link.place), 12),
        or_dash(&link.custodian_after),
        link.scan_id,
        or_dash(&link.recorded_at),
    )
}

async fn box_history(conn: &Connection, box_id: String, trip_id: String) -> Result<()> {
    let request = pb::BoxHistoryRequest { box_id, trip_id };
    let response = custody_client(conn.channel().await?)
        .box_history(request)
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner();
    println!("行程 trips");
    if response.trips.is_empty() {
        println!("  (none)");
    } else {
        println!(
            "  {} {} {} {} {} 清单 manifest",
            cell("行程 trip", 34),
            cell("起止 from → to", 26),
            cell("封签 seal", 16),
            cell("状态 state", 12),
            cell("装箱 packed", 16),
        );
    }
    for t in &response.trips {
        println!(
            "  {} {} {} {} {} {} document(s)",
            cell(&t.trip_id, 34),
            cell(&format!("{} → {}", t.origin, t.destination), 26),
            cell(or_dash(&t.seal_number), 16),
            cell(or_dash(&t.state), 12),
            cell(&time(t.packed_unix_ms), 16),
            t.manifest.len()
        );
        if !t.manifest.is_empty() {
            println!("      {}", t.manifest.join(", "));
        }
    }
    println!("扫描 scans, in event-time order");
    if response.scans.is_empty() {
        println!("  (none)");
    }
    for link in &response.scans {
        println!("  {}", link_line(link));
    }
    Ok(())
}

async fn anomalies(conn: &Connection, command: AnomalyCommand) -> Result<()> {
    let mut client = custody_client(conn.channel().await?);
    match command {
        AnomalyCommand::List { state, kind, township } => {
            let request = pb::ListAnomaliesRequest {
                state: state.map(anomaly_state).unwrap_or(pb::AnomalyState::Unspecified) as i32,
                kind: kind.unwrap_or_default(),
                township: township.unwrap_or_default(),
            };
            let list = client
                .list_anomalies(request)
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner()
                .anomalies;
            if list.is_empty() {
                println!("no anomalies");
                return Ok(());
            }
            println!(
                "{} {} {} {} 标识 key",
                cell("检出 detected", 16),
                cell("状态 state", 12),
                cell("类型 kind", 28),
                cell("乡镇 township", 13),
            );
            for a in &list {
                println!(
                    "{} {} {} {} {}",
                    cell(&time(a.detected_unix_ms), 16),
                    cell(state_name(a.state), 12),
                    cell(&a.kind, 28),
                    cell(or_dash(&a.township), 13),
                    a.anomaly_key
                );
                println!("    {}", a.detail);
                let subject: Vec<String> = [
                    ("box", &a.box_id),
                    ("trip", &a.trip_id),
                    ("document", &a.document_id),
                    ("scan", &a.scan_id),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
                if !subject.is_empty() {
                    println!("    {}", subject.join(", "));
                }
                print_notes(a);
            }
            println!("{} anomal{}", list.len(), if list.len() == 1 { "y" } else { "ies" });
        }
        AnomalyCommand::Explain { anomaly_key, text } => {
            let a = note(conn, &mut client, anomaly_key, pb::AnomalyState::Explained, text).await?;
            println!("{}: {} ({})", a.anomaly_key, state_name(a.state), a.kind);
            print_notes(&a);
        }
        AnomalyCommand::Close { anomaly_key, reason } => {
            let a = note(conn, &mut client, anomaly_key, pb::AnomalyState::Closed, reason).await?;
            println!("{}: {} ({})", a.anomaly_key, state_name(a.state), a.kind);
            print_notes(&a);
        }
    }
    Ok(())
}

async fn note(
    conn: &Connection,
    client: &mut CustodyClient<Channel>,
    key: String,
    to: pb::AnomalyState,
    text: String,
) -> Result<pb::Anomaly> {
    let request = pb::NoteAnomalyRequest {
        anomaly_key: key,
        to_state: to as i32,
        text: required(
            text,
            if to == pb::AnomalyState::Closed {
                "--reason"
            } else {
                "--text"
            },
        )?,
    };
    Ok(client
        .note_anomaly(request)
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner())
}

fn print_notes(a: &pb::Anomaly) {
    let by = if a.noted_by.is_empty() {
        String::new()
    } else {
        format!(" ({})", a.noted_by)
    };
    if !a.explanation.is_empty() {
        println!("    说明 explained: {}{by}", a.explanation);
    }
    if !a.close_reason.is_empty() {
        println!("    关闭 closed: {}{by}", a.close_reason);
    }
}

fn anomaly_state(s: AnomalyStateArg) -> pb::AnomalyState {
    match s {
        AnomalyStateArg::Open => pb::AnomalyState::Open,
        AnomalyStateArg::Explained => pb::AnomalyState::Explained,
        AnomalyStateArg::Closed => pb::AnomalyState::Closed,
    }
}

fn state_name(v: i32) -> &'static str {
    match pb::AnomalyState::try_from(v) {
        Ok(pb::AnomalyState::Open) => "open 待处理",
        Ok(pb::AnomalyState::Explained) => "explained 已说明",
        Ok(pb::AnomalyState::Closed) => "closed 已关闭",
        _ => "-",
    }
}

async fn epcis_export(
    conn: &Connection,
    box_id: Option<String>,
    case: Option<String>,
    out: Option<PathBuf>,
) -> Result<()> {
    let channel = conn.channel().await?;
    let case_id = match case {
        Some(case) => resolve_case(conn, &channel, &case).await?,
        None => String::new(),
    };
    let request = pb::ExportEpcisRequest {
        box_id: box_id.unwrap_or_default(),
        case_id,
    };
    let response = custody_client(channel)
        .export_epcis(request)
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner();
    match out {
        Some(path) if path.as_os_str() != "-" => {
            fs::write(&path, &response.json_ld).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} event(s) to {}", response.event_count, path.display());
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(response.json_ld.as_bytes())?;
            if !response.json_ld.ends_with('\n') {
                stdout.write_all(b"\n")?;
            }
            stdout.flush()?;
            eprintln!("{} event(s)", response.event_count);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

fn label(command: LabelCommand) -> Result<()> {
    match command {
        LabelCommand::Box {
            box_id,
            owner_name,
            owner_code,
            note,
            out,
        } => {
            let svg = labels::box_label_svg(&BoxLabel {
                box_id: &box_id,
                owner_name: &owner_name,
                owner_code: &owner_code,
                note: &note,
            })?;
            write_svg(out, &format!("box-{}.svg", file_safe(&box_id)), &svg)
        }
        LabelCommand::Trip {
            trip,
            box_id,
            from,
            to,
            seal,
            date,
            out,
        } => {
            let date = match date {
                Some(date) => {
                    chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                        .with_context(|| format!("--date {date:?} is not YYYY-MM-DD"))?;
                    date
                }
                None => china(now_ms())
                    .map(|t| t.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
            };
            let svg = labels::trip_label_svg(&TripLabel {
                trip_id: &trip,
                box_id: &box_id,
                origin: &from,
                destination: &to,
                seal_number: &seal,
                date: &date,
            })?;
            write_svg(out, &format!("trip-{}.svg", file_safe(&trip)), &svg)
        }
        LabelCommand::Document {
            doc,
            case_number,
            item,
            kind,
            pages,
            applicant,
            out,
        } => {
            let svg = labels::document_label_svg(&DocumentLabel {
                document_id: &doc,
                case_number: &case_number,
                item_name: &item,
                kind: kind.label_text(),
                pages,
                applicant_masked: &applicant,
            })?;
            write_svg(out, &format!("document-{}.svg", file_safe(&doc)), &svg)
        }
        LabelCommand::Sheet { from_file, out_dir } => {
            let text = fs::read_to_string(&from_file).with_context(|| format!("reading {}", from_file.display()))?;
            let rows = sheet_rows(&text).with_context(|| format!("in {}", from_file.display()))?;
            let labels: Vec<DocumentLabel> = rows
                .iter()
                .map(|r| DocumentLabel {
                    document_id: &r.document_id,
                    case_number: &r.case_number,
                    item_name: &r.item_name,
                    kind: r.kind.label_text(),
                    pages: r.pages,
                    applicant_masked: &r.applicant_masked,
                })
                .collect();
            let pages = labels::document_sheet_svg(&labels)?;
            if pages.is_empty() {
                println!("no labels in {}", from_file.display());
                return Ok(());
            }
            fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
            for (i, page) in pages.iter().enumerate() {
                let path = out_dir.join(format!("page-{}.svg", i + 1));
                fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
            println!(
                "{} label(s) on {} A4 sheet(s), {} to a sheet; print at 100 %",
                labels.len(),
                pages.len(),
                labels::LABELS_PER_SHEET
            );
            Ok(())
        }
    }
}

fn write_svg(out: Option<PathBuf>, default_name: &str, svg: &str) -> Result<()> {
    let path = out.unwrap_or_else(|| PathBuf::from(default_name));
    if path.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(svg.as_bytes())?;
        stdout.flush()?;
        return Ok(());
    }
    fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    println!("{} (print at 100 %)", path.display());
    Ok(())
}

/// One row of a label sheet file.
#[derive(Debug, PartialEq)]
struct SheetRow {
    document_id: String,
    case_number: String,
    item_name: String,
    kind: Kind,
    pages: u32,
    applicant_masked: String,
}

/// Parses a label sheet CSV: a header naming the columns (any order), then one row per label.
fn sheet_rows(text: &str) -> Result<Vec<SheetRow>> {
    let records = parse_csv(text.strip_prefix('\u{feff}').unwrap_or(text))?;
    let mut records = records.into_iter().filter(|r| r.iter().any(|f| !f.trim().is_empty()));
    let Some(header) = records.next() else {
        return Ok(Vec::new());
    };
    let column = |names: &[&str]| -> Result<usize> {
        header
            .iter()
            .position(|h| names.contains(&h.trim().to_lowercase().as_str()))
            .with_context(|| format!("the header has no {} column", names[0]))
    };
    let doc = column(&["document_id", "doc", "document"])?;
    let case = column(&["case_number", "case"])?;
    let item = column(&["item_name", "item"])?;
    let kind = column(&["kind"])?;
    let pages = column(&["pages"])?;
    let applicant = column(&["applicant_masked", "applicant"])?;
    let mut rows = Vec::new();
    for (i, record) in records.enumerate() {
        let line = i + 2;
        let field = |at: usize| record.get(at).map(|f| f.trim().to_owned()).unwrap_or_default();
        let kind_text = field(kind);
        let Some(kind) = Kind::from_text(&kind_text) else {
            bail!("row {line}: kind {kind_text:?} is not original, copy or result");
        };
        let pages_text = field(pages);
        let pages = pages_text
            .parse::<u32>()
            .with_context(|| format!("row {line}: pages {pages_text:?} is not a number"))?;
        rows.push(SheetRow {
            document_id: field(doc),
            case_number: field(case),
            item_name: field(item),
            kind,
            pages,
            applicant_masked: field(applicant),
        });
    }
    Ok(rows)
}

/// RFC 4180 CSV: commas, double-quoted fields with `""` for a quote, CRLF or LF line ends.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        bail!("a quoted field is not closed");
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

// ---------------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------------

/// The instant as China Standard Time, naive (printing adds no zone).
fn china(unix_ms: i64) -> Option<chrono::NaiveDateTime> {
    DateTime::from_timestamp_millis(unix_ms.checked_add(CST_OFFSET_MS)?).map(|t| t.naive_utc())
}

/// `2026-11-27 09:30` in Asia/Shanghai; `-` for no time.
fn time(unix_ms: i64) -> String {
    if unix_ms == 0 {
        return "-".to_owned();
    }
    china(unix_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn step_label(step: i32) -> &'static str {
    use pb::CustodyStep as S;
    match S::try_from(step) {
        Ok(S::RegisterDocument) => "登记材料 register document",
        Ok(S::RegisterBox) => "登记箱 register box",
        Ok(S::Pack) => "装箱 pack",
        Ok(S::Seal) => "封箱 seal",
        Ok(S::ReleaseToCourier) => "交寄 release to courier",
        Ok(S::CourierAccept) => "揽收 courier accept",
        Ok(S::EnRoute) => "途中 en route",
        Ok(S::ReleaseAtDestination) => "送达 release at destination",
        Ok(S::DestinationAccept) => "签收 destination accept",
        Ok(S::Unpack) => "开箱 unpack",
        Ok(S::VoidDeparture) => "撤销发运 void departure",
        Ok(S::ErrorDeclaration) => "更正 error declaration",
        _ => "-",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_sheets_parse_with_quotes_and_any_column_order() {
        let text = "\u{feff}pages,document_id,case_number,item_name,kind,applicant_masked\r\n\
                    3,D-1,441424100201-20261127-0007,\"农村村民住宅用地审批, 新建\",original,张**\r\n\
                    \n\
                    1,D-2,441424100201-20261127-0007,\"say \"\"hi\"\"\",复印件,李**\n";
        let rows = sheet_rows(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].document_id, "D-1");
        assert_eq!(rows[0].item_name, "农村村民住宅用地审批, 新建");
        assert_eq!(rows[0].kind, Kind::Original);
        assert_eq!(rows[0].pages, 3);
        assert_eq!(rows[1].item_name, "say \"hi\"");
        assert_eq!(rows[1].kind, Kind::Copy);
        assert!(sheet_rows("document_id,case_number\nD,C\n").is_err());
        assert!(sheet_rows("document_id,case_number,item,kind,pages,applicant\nD,C,I,other,1,A\n").is_err());
        assert!(parse_csv("\"open").is_err());
    }

    #[test]
    fn kept_scans_round_trip() {
        let scan = pb::Scan {
            scan_id: "desk-441424100-wang-3-0a1b2c3d".into(),
            device_seq: 3,
            step: pb::CustodyStep::RegisterDocument as i32,
            document: Some(pb::DocumentInfo {
                document_id: "D-1".into(),
                case_id: "C".into(),
                kind: 1,
                pages: 2,
                title: "户口簿原件".into(),
            }),
            document_ids: vec!["D-1".into()],
            seal_intact: true,
            ..Default::default()
        };
        let kept = KeptScan::from(&scan);
        let text = serde_json::to_string(&kept).unwrap();
        let back: KeptScan = serde_json::from_str(&text).unwrap();
        assert_eq!(pb::Scan::from(&back), scan);
    }

    #[test]
    fn desk_state_survives_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tongban-desk-x.seq");
        let fresh = DeskState::load(&path, "desk-x").unwrap();
        assert_eq!(fresh.last_seq, 0);
        let _lock = DeskLock::acquire(&path).unwrap();
        let state = DeskState {
            device_id: "desk-x".into(),
            last_seq: 7,
            pending: vec![KeptScan {
                scan_id: "desk-x-7-00000000".into(),
                device_seq: 7,
                ..Default::default()
            }],
        };
        state.save(&path).unwrap();
        let loaded = DeskState::load(&path, "desk-x").unwrap();
        assert_eq!(loaded.last_seq, 7);
        assert_eq!(loaded.pending.len(), 1);
        assert!(DeskState::load(&path, "desk-y").is_err());
    }

    #[test]
    fn the_commands_parse_next_to_the_connection_flags() {
        use clap::{CommandFactory, Parser};
        crate::Cli::command().debug_assert();
        let parse = |args: &[&str]| {
            let mut all = vec!["tongban", "custody"];
            all.extend_from_slice(args);
            match crate::Cli::try_parse_from(all).unwrap().command {
                crate::Command::Custody { command, .. } => command,
                _ => panic!("not a custody command"),
            }
        };
        let c = parse(&[
            "anomalies",
            "explain",
            "seal_broken/trip/T-2",
            "--text",
            "x",
            "--key",
            "k.pem",
        ]);
        assert!(matches!(
            c,
            CustodyCommand::Anomalies { command: AnomalyCommand::Explain { anomaly_key, .. } }
                if anomaly_key == "seal_broken/trip/T-2"
        ));
        let c = parse(&[
            "pack", "--box", "B", "--to", "441424", "--doc", "D-1", "--doc", "D-2", "--device", "pc-1",
        ]);
        assert!(
            matches!(c, CustodyCommand::Pack { docs, desk, .. } if docs.len() == 2 && desk.device.as_deref() == Some("pc-1"))
        );
        let c = parse(&["box", "history", "--box", "B"]);
        assert!(matches!(c, CustodyCommand::BoxCmd { .. }));
        assert!(crate::Cli::try_parse_from(["tongban", "custody", "where-is", "--doc", "D", "--box", "B"]).is_err());
        assert!(crate::Cli::try_parse_from(["tongban", "custody", "where-is"]).is_err());
    }

    #[test]
    fn trip_ids_and_times_are_in_china_time() {
        // 2026-11-27 23:30 UTC is 07:30 on the 28th in China.
        let ms = 1_795_822_200_000;
        let id = new_trip_id("441424100", ms);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts[..2], ["441424100", "20261128"]);
        assert_eq!(parts[2].len(), 8);
        assert!(parts[2].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(time(ms), "2026-11-28 07:30");
        assert_eq!(time(0), "-");
        assert_eq!(file_safe("desk-4414/x y"), "desk-4414_x_y");
        assert_eq!(
            state_file_name("desk-441424100-wang"),
            "tongban-desk-441424100-wang.seq"
        );
        assert_eq!(state_file_name("pc-7"), "tongban-desk-pc-7.seq");
    }
}
