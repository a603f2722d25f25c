//! `tongban custody …`: material boxes and paper files at a node, over its `Custody` service.
//!
//! - **Desk scans** (`register-document`, `register-box`, `pack`, `seal`, `release`, `accept`,
//!   `unpack`, `void`, `correct`): each is one `Scan` uploaded at once. The desk is a device like
//!   a courier's handheld, and keeps its scans the same way, in a `tongban_courier` queue:
//!   `desk-<node>-<operator>` from the operator certificate (or `--device`), numbered densely
//!   from 1, since the node flags a gap in a device's numbers as an anomaly. The queue file sits
//!   next to the operator certificate (`tongban-desk-<node>-<operator>.seq`, or
//!   `--desk-state FILE`), and a scan is on disk *before* the upload. A scan whose upload fails
//!   stays queued and goes, under its first id and number, with the desk's next scan (or
//!   `resend`); the node records a scan once however often it arrives. A number the node refused
//!   is taken back if nothing followed it, so a typo does not leave a gap.
//! - **Queries**: `where-is`, `box history`, `anomalies list|explain|close`, `epcis export`.
//! - **Labels** (`label box|trip|document|sheet`): SVG files to print at 100 %; no node needed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use tongban_courier::{Device, Outcome, Queue, Resend};
use tongban_domains::custody::labels::{self, BoxLabel, DocumentLabel, TripLabel};
use tongban_domains::ids::NodeId;
use tongban_domains::pki::{Principal, principal_from_cert_pem};
use tongban_domains::store::CaseRef;
use tongban_proto::v1::{
    self as pb, cases_client::CasesClient, custody_client::CustodyClient, get_case_request, where_is_request,
};
use tonic::transport::Channel;

use crate::client::Connection;
use crate::courier::explain_failure;
use crate::display::{cell, china_time, or_dash, place, read_csv};

/// Responses (EPCIS exports, a case's documents) may be far larger than tonic's 4 MiB default.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

#[derive(Subcommand, Debug)]
pub enum CustodyCommand {
    /// Register a paper file of a case at intake. The node gives it its id (<case number>-D01,
    /// -D02, …), printed here for its label (`tongban custody label document --doc …`).
    RegisterDocument {
        #[command(flatten)]
        desk: Desk,
        /// The case: its id or its receipt number.
        #[arg(long)]
        case: String,
        /// Only to register again a paper already registered to this case under this id;
        /// a new paper takes the id the node assigns. An id registered to another case (or to
        /// another paper) is refused.
        #[arg(long)]
        doc: Option<String>,
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
        /// The sending node: division code or name (default: the operator's node).
        #[arg(long, value_parser = crate::words::place)]
        from: Option<String>,
        /// The receiving node: division code or name (五华县, 华城镇).
        #[arg(long, value_parser = crate::words::place)]
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
    /// The desk's scan queue (default: next to the certificate, tongban-desk-<node>-<operator>.seq).
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
        /// Only this township: its name (水寨镇) or code.
        #[arg(long, value_parser = crate::words::township)]
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
    /// 待处理
    #[value(alias = "待处理")]
    Open,
    /// 已说明
    #[value(alias = "已说明")]
    Explained,
    /// 已关闭
    #[value(alias = "已关闭")]
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
            let (document_id, case_id) = match doc {
                Some(doc) => (doc, resolve_case(&conn, &channel, &case).await?),
                None => {
                    let assigned = custody_client(channel.clone())
                        .next_document_id(pb::NextDocumentIdRequest { case: case.clone() })
                        .await
                        .map_err(|s| conn.explain(s))?
                        .into_inner();
                    (assigned.document_id, assigned.case_id)
                }
            };
            let scan = pb::Scan {
                step: pb::CustodyStep::RegisterDocument as i32,
                document: Some(pb::DocumentInfo {
                    document_id: document_id.clone(),
                    case_id,
                    kind: kind.to_wire(),
                    pages,
                    title,
                }),
                ..Default::default()
            };
            desk_scan(&conn, Some(channel), &desk, Some(scan)).await?;
            println!(
                "材料编号 document {document_id}（打印标签：tongban custody label document --doc {document_id} …）"
            );
            Ok(())
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

/// One desk scan (`scan`), or none to upload only what an earlier failure left: save it in the
/// desk's queue, upload everything queued, and report.
async fn desk_scan(conn: &Connection, channel: Option<Channel>, desk: &Desk, scan: Option<pb::Scan>) -> Result<()> {
    let principal = operator(conn)?;
    let device_id = match (&desk.device, &principal) {
        (Some(device), _) => device.clone(),
        (None, Principal::Operator { place, name }) => format!("desk-{place}-{name}"),
        (None, other) => format!("desk-{}", other.place()),
    };
    let path = match &desk.desk_state {
        Some(path) => path.clone(),
        None => conn
            .cert
            .parent()
            .unwrap_or(Path::new("."))
            .join(state_file_name(&device_id)),
    };
    let device = Device::new(device_id, principal)?;
    let mut queue = open_desk_queue(&path, &device).await?;

    let new_scan = match scan {
        Some(mut scan) => {
            scan.scanned_unix_ms = now_ms();
            Some(queue.append(scan).await?)
        }
        None if queue.count_to_send(Resend::Queued).await? == 0 => {
            let last = queue.device().await?.next_seq().saturating_sub(1);
            queue.close().await?;
            println!("desk {}: nothing to resend (last number {last})", device.id);
            return Ok(());
        }
        None => None,
    };

    let channel = match channel {
        Some(channel) => Ok(channel),
        None => conn.channel().await,
    };
    let upload = match channel {
        Ok(channel) => {
            let mut client = custody_client(channel);
            let upload = tongban_courier::upload(&mut queue, &mut client, &conn.node, Resend::Queued).await?;
            Ok(upload)
        }
        Err(e) => Err(e),
    };
    let (tally, failure) = match upload {
        Ok(upload) => (upload.tally, upload.failure.map(|f| explain_failure(conn, f))),
        Err(e) => (Default::default(), Some(e)),
    };

    // Report what the node answered; a scan it did not answer for stays queued.
    let new_id = new_scan.as_ref().map(|s| s.scan_id.as_str());
    let mut refusal = None;
    for answer in &tally.answers {
        let what = format!(
            "{} #{} {} (scan {})",
            device.id,
            answer.seq,
            step_label(answer.step),
            answer.scan_id
        );
        let is_new = Some(answer.scan_id.as_str()) == new_id;
        let prefix = if is_new { "" } else { "earlier scan " };
        match &answer.outcome {
            Outcome::Recorded => println!("{prefix}recorded: {what}"),
            Outcome::Duplicate => println!("{prefix}already recorded: {what}"),
            Outcome::Refused(message) | Outcome::RefusedAfterUpload(message) if is_new => {
                refusal = Some(message.clone());
            }
            Outcome::Refused(message) | Outcome::RefusedAfterUpload(message) => println!(
                "{prefix}refused: {what}: {message} (the node will see number {} missing)",
                answer.seq
            ),
        }
    }
    // Nothing was recorded under a refused number: if nothing came after it, it is free again.
    queue.take_back_refused_tail().await?;
    let kept = queue.counts().await?.queued;
    queue.close().await?;

    if let Some(e) = failure {
        return Err(e.context(format!(
            "upload failed; {kept} scan(s) kept in {}, to go with this desk's next scan or `tongban custody resend`",
            path.display()
        )));
    }
    if kept > 0 {
        println!("{kept} scan(s) not answered by the node, kept in {}", path.display());
    }
    if let Some(message) = refusal {
        bail!("node {} refused the scan: {message}", conn.node);
    }
    Ok(())
}

/// The desk's queue: opened, created with the desk's first scan, or carried over from the state
/// file earlier versions kept at the same path.
async fn open_desk_queue(path: &Path, device: &Device) -> Result<Queue> {
    if !path.exists() {
        eprintln!(
            "note: new desk state {} for {}; its scans are numbered from 1",
            path.display(),
            device.id
        );
        return Ok(Queue::create(path, device, now_ms()).await?);
    }
    carry_over_json_state(path, device).await?;
    let mut queue = Queue::open(path).await?;
    let owner = queue.device().await?;
    if owner.id != device.id || owner.principal != device.principal {
        queue.close().await?;
        bail!(
            "the desk state {} belongs to device {} of {}, not {} of {}; pass the matching --device or --desk-state",
            path.display(),
            owner.id,
            owner.principal,
            device.id,
            device.principal
        );
    }
    Ok(queue)
}

/// The JSON state file earlier versions kept for a desk: its last number, and the scans a node
/// had not answered for.
#[derive(Deserialize)]
struct JsonDeskState {
    device_id: String,
    last_seq: u64,
    #[serde(default)]
    pending: Vec<serde_json::Value>,
}

/// Replaces an earlier version's JSON state file with a queue whose numbering carries on from
/// it (the old file is kept as `<file>.json-old`). Numbers must not restart: the node would see
/// the desk's numbers repeat. Anything else at `path` is left for [`Queue::open`] to judge.
async fn carry_over_json_state(path: &Path, device: &Device) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("reading the desk state {}", path.display()))?;
    let Ok(old) = serde_json::from_slice::<JsonDeskState>(&bytes) else {
        return Ok(());
    };
    if old.device_id != device.id {
        bail!(
            "the desk state {} belongs to device {}, not {}; pass the matching --device or --desk-state",
            path.display(),
            old.device_id,
            device.id
        );
    }
    if !old.pending.is_empty() {
        bail!(
            "the desk state {} still holds {} scan(s) no node has answered for; upload them with the \
             earlier version's `tongban custody resend` first",
            path.display(),
            old.pending.len()
        );
    }
    let carried = Device::resume(device.id.clone(), device.principal.clone(), old.last_seq + 1)?;
    let fresh = sibling(path, ".new");
    if fresh.exists() {
        // Left by a carry-over that stopped halfway; the JSON file is still the truth.
        fs::remove_file(&fresh).with_context(|| format!("removing {}", fresh.display()))?;
    }
    Queue::create(&fresh, &carried, now_ms()).await?.close().await?;
    let old_copy = sibling(path, ".json-old");
    fs::rename(path, &old_copy).with_context(|| format!("keeping {}", old_copy.display()))?;
    fs::rename(&fresh, path).with_context(|| format!("writing the desk state {}", path.display()))?;
    eprintln!(
        "note: desk state {} is now a scan queue; numbering carries on at {} (the old file is {})",
        path.display(),
        carried.next_seq(),
        old_copy.display()
    );
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `<origin>-<yyyymmdd>-<8 hex digits>`, the date in China.
fn new_trip_id(origin: &str, now_ms: i64) -> String {
    let date = china_time::compact_date(now_ms);
    format!("{origin}-{date}-{:08x}", rand::random::<u32>())
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
    row("地点 place", &place(&l.place));
    let since = format!(
        "{} ({})",
        china_time::minute(l.since_unix_ms),
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
        china_time::minute(link.scanned_unix_ms),
        cell(step_label(link.step), 30),
        cell(&cbv, 30),
        cell(&link.principal, 30),
        cell(&place(&link.place), 24),
        or_dash(&link.custodian_after),
        link.scan_id,
        place(&link.recorded_at),
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
            cell("起止 from → to", 44),
            cell("封签 seal", 16),
            cell("状态 state", 12),
            cell("装箱 packed", 16),
        );
    }
    for t in &response.trips {
        println!(
            "  {} {} {} {} {} {} document(s)",
            cell(&t.trip_id, 34),
            cell(&format!("{} → {}", place(&t.origin), place(&t.destination)), 44),
            cell(or_dash(&t.seal_number), 16),
            cell(or_dash(&t.state), 12),
            cell(&china_time::minute(t.packed_unix_ms), 16),
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
                cell("乡镇 township", 20),
            );
            for a in &list {
                println!(
                    "{} {} {} {} {}",
                    cell(&china_time::minute(a.detected_unix_ms), 16),
                    cell(state_name(a.state), 12),
                    cell(&a.kind, 28),
                    cell(&place(&a.township), 20),
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
            crate::out::bytes(response.json_ld.as_bytes());
            if !response.json_ld.ends_with('\n') {
                crate::out::bytes(b"\n");
            }
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
                None => china_time::date(now_ms()),
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
        crate::out::bytes(svg.as_bytes());
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
    let records = read_csv(text)?;
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

// ---------------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------------

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
    }

    fn clerk(name: &str) -> Principal {
        Principal::operator(NodeId::new("441424100").unwrap(), name).unwrap()
    }

    #[tokio::test]
    async fn a_desk_queue_is_made_once_and_belongs_to_its_desk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tongban-desk-441424100-wang.seq");
        let desk = Device::new("desk-441424100-wang", clerk("wang")).unwrap();
        let mut queue = open_desk_queue(&path, &desk).await.unwrap();
        assert_eq!(queue.append(pb::Scan::default()).await.unwrap().device_seq, 1);
        queue.close().await.unwrap();
        let mut queue = open_desk_queue(&path, &desk).await.unwrap();
        assert_eq!(queue.device().await.unwrap().next_seq(), 2);
        queue.close().await.unwrap();

        let other_desk = Device::new("desk-x", clerk("wang")).unwrap();
        assert!(open_desk_queue(&path, &other_desk).await.is_err());
        let other_clerk = Device::new("desk-441424100-wang", clerk("li")).unwrap();
        assert!(open_desk_queue(&path, &other_clerk).await.is_err());
    }

    #[tokio::test]
    async fn an_earlier_json_desk_state_carries_its_numbering_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tongban-desk-x.seq");
        let desk = Device::new("desk-x", clerk("wang")).unwrap();
        fs::write(&path, r#"{"device_id": "desk-y", "last_seq": 7, "pending": []}"#).unwrap();
        assert!(open_desk_queue(&path, &desk).await.is_err(), "another desk's state");
        fs::write(
            &path,
            r#"{"device_id": "desk-x", "last_seq": 7, "pending": [{"scan_id": "desk-x-7-0"}]}"#,
        )
        .unwrap();
        let err = open_desk_queue(&path, &desk).await.err().unwrap().to_string();
        assert!(err.contains("custody resend"), "{err}");

        fs::write(&path, r#"{"device_id": "desk-x", "last_seq": 7, "pending": []}"#).unwrap();
        let mut queue = open_desk_queue(&path, &desk).await.unwrap();
        assert_eq!(queue.append(pb::Scan::default()).await.unwrap().device_seq, 8);
        queue.close().await.unwrap();
        assert!(dir.path().join("tongban-desk-x.seq.json-old").exists());
    }

    #[tokio::test]
    async fn desk_scans_are_kept_until_answered_and_refused_numbers_are_taken_back() {
        use prost::Message as _;
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::stand_in::pki(&dir);
        let desk = Desk {
            device: None,
            desk_state: Some(dir.path().join("desk.seq")),
        };
        let register = |box_id: &str| pb::Scan {
            step: pb::CustodyStep::RegisterBox as i32,
            box_id: box_id.into(),
            box_label: "材料周转箱".into(),
            ..Default::default()
        };

        // No node answers: the scan stays in the queue under its number.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let offline = pki.connection(&format!("https://127.0.0.1:{port}"), &clerk("wang"));
        let err = desk_scan(&offline, None, &desk, Some(register("B-1")))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("1 scan(s) kept in"), "{err:#}");

        // The desk's next scan takes it along; a refused number is given to the scan after it.
        let recorded = crate::stand_in::Recorded::default();
        let (node, _) = pki.start_node("441424100", recorded.clone()).await;
        let conn = pki.connection(&node, &clerk("wang"));
        desk_scan(&conn, None, &desk, Some(register("B-2"))).await.unwrap();
        let err = desk_scan(&conn, None, &desk, Some(register("BAD"))).await.unwrap_err();
        assert!(err.to_string().contains("unknown box BAD"), "{err:#}");
        desk_scan(&conn, None, &desk, Some(register("B-3"))).await.unwrap();
        desk_scan(&conn, None, &desk, None).await.unwrap();

        let mut scans: Vec<pb::Scan> = recorded
            .lock()
            .unwrap()
            .values()
            .map(|bytes| pb::Scan::decode(bytes.as_slice()).unwrap())
            .collect();
        scans.sort_by_key(|s| s.device_seq);
        let numbered: Vec<(u64, &str, &str)> = scans
            .iter()
            .map(|s| (s.device_seq, s.box_id.as_str(), s.place.as_str()))
            .collect();
        assert_eq!(
            numbered,
            vec![
                (1, "B-1", "441424100"),
                (2, "B-2", "441424100"),
                (3, "B-3", "441424100")
            ]
        );
        assert!(scans.iter().all(|s| s.device_id == "desk-441424100-wang"));
    }

    #[test]
    fn the_commands_parse_next_to_the_connection_flags() {
        use clap::{CommandFactory, Parser};
        crate::Cli::command().debug_assert();
        let parse = |args: &[&str]| {
            let mut all = vec!["custody"];
            all.extend_from_slice(args);
            match crate::ops::parse(&all).unwrap() {
                crate::ops::OperatorCommand::Custody { command, .. } => command,
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
        let c = parse(&[
            "register-document",
            "--case",
            "441424100201-20261127-0001",
            "--kind",
            "original",
            "--pages",
            "2",
            "--title",
            "户口簿原件",
        ]);
        assert!(
            matches!(c, CustodyCommand::RegisterDocument { doc: None, .. }),
            "the node assigns the id"
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
        assert_eq!(file_safe("desk-4414/x y"), "desk-4414_x_y");
        assert_eq!(
            state_file_name("desk-441424100-wang"),
            "tongban-desk-441424100-wang.seq"
        );
        assert_eq!(state_file_name("pc-7"), "tongban-desk-pc-7.seq");
    }
}
