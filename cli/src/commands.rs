//! The operator commands: catalogue, status, alarms and pki. Each prints a table a clerk can
//! read; errors name the node and what to do.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use tongban_proto::v1::{self as pb, catalogue_client::CatalogueClient, node_client::NodeClient};

use crate::client::Connection;
use tongban_core::ids::NodeId;

#[derive(Subcommand, Debug)]
pub enum CatalogueAction {
    /// Import a catalogue file at the county and publish a new version if it changed.
    Import {
        /// A CSV or JSON file (format: data/README.md).
        file: PathBuf,
        /// Defaults to the file's extension.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        /// Recorded with the version.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Items this node may handle, at the version it holds.
    List {
        /// Substring of the name or a code.
        #[arg(long, short, default_value = "")]
        query: String,
        #[arg(long, default_value = "")]
        domain: String,
        #[arg(long, value_enum)]
        delegation: Option<Delegation>,
        /// Only items this township may handle (at the county).
        #[arg(long, default_value = "")]
        township: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Page through everything.
        #[arg(long)]
        all: bool,
    },
    /// One item in full.
    Show { code: String },
    /// The versions this node holds.
    Versions,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum FileFormat {
    Csv,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Delegation {
    Authorised,
    Entrusted,
    NotDelegated,
}

#[derive(Subcommand, Debug)]
pub enum PkiAction {
    /// Create a development CA and certificates for Wuhua's tree and an operator.
    Init {
        /// Where to write ca.pem, nodes/ and operators/.
        #[arg(long, default_value = "tongban-pki")]
        dir: PathBuf,
        /// Villages per township to issue certificates for.
        #[arg(long, default_value_t = 2)]
        villages_per_township: usize,
        /// Operator certificates to issue, as NAME@PLACE (default admin@441424).
        #[arg(long = "operator")]
        operators: Vec<String>,
        /// Courier handheld certificates to issue, as DEVICE@PLACE (e.g. pda-07@441424100).
        #[arg(long = "courier")]
        couriers: Vec<String>,
    },
}

/// `text` padded with spaces to `width` terminal columns (CJK characters take two).
pub(crate) fn cell(text: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

fn delegation_name(v: i32) -> &'static str {
    match pb::DelegationMode::try_from(v) {
        Ok(pb::DelegationMode::Authorised) => "授权",
        Ok(pb::DelegationMode::Entrusted) => "委托",
        Ok(pb::DelegationMode::NotDelegated) => "不下放",
        _ => "-",
    }
}

fn seal_name(v: i32) -> &'static str {
    match pb::SealType::try_from(v) {
        Ok(pb::SealType::TownshipApproval) => "镇人民政府审批服务专用章",
        Ok(pb::SealType::EntrustedApproval) => "行政审批委托专用章",
        Ok(pb::SealType::Business) => "业务专用章",
        Ok(pb::SealType::County) => "县级部门印章",
        _ => "-",
    }
}

pub async fn catalogue(conn: Connection, action: CatalogueAction) -> Result<()> {
    let mut client = CatalogueClient::new(conn.channel().await?).max_decoding_message_size(64 << 20);
    match action {
        CatalogueAction::Import { file, format, note } => {
            let content = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let format = match format {
                Some(f) => f,
                None => match file.extension().and_then(|e| e.to_str()) {
                    Some("json") => FileFormat::Json,
                    Some("csv") => FileFormat::Csv,
                    _ => bail!("cannot tell the format of {}; pass --format csv|json", file.display()),
                },
            };
            let request = pb::ImportCatalogueRequest {
                format: match format {
                    FileFormat::Csv => pb::ImportFormat::Csv,
                    FileFormat::Json => pb::ImportFormat::Json,
                } as i32,
                content,
                source: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                note,
            };
            let response = client.import(request).await.map_err(|s| conn.explain(s))?.into_inner();
            if response.published {
                println!(
                    "published catalogue version {}: {} items ({} added or changed, {} removed), hash {}",
                    response.version,
                    response.item_count,
                    response.upserts,
                    response.removals,
                    &response.content_hash[..16]
                );
            } else {
                println!(
                    "unchanged: the file equals catalogue version {} ({} items); nothing published",
                    response.version, response.item_count
                );
            }
        }
        CatalogueAction::List {
            query,
            domain,
            delegation,
            township,
            limit,
            all,
        } => {
            let mut token = String::new();
            let mut shown = 0usize;
            loop {
                let request = pb::ListItemsRequest {
                    query: query.clone(),
                    domain: domain.clone(),
                    delegation: match delegation {
                        None => 0,
                        Some(Delegation::Authorised) => pb::DelegationMode::Authorised as i32,
                        Some(Delegation::Entrusted) => pb::DelegationMode::Entrusted as i32,
                        Some(Delegation::NotDelegated) => pb::DelegationMode::NotDelegated as i32,
                    },
                    category: 0,
                    township: township.clone(),
                    page_size: if all { 500 } else { limit },
                    page_token: token.clone(),
                };
                let page = client
                    .list_items(request)
                    .await
                    .map_err(|s| conn.explain(s))?
                    .into_inner();
                if shown == 0 {
                    println!("catalogue version {} — {} items match", page.version, page.total);
                    println!(
                        "{} {} {} {} {} 名称",
                        cell("事项编码", 14),
                        cell("方式", 6),
                        cell("批次", 6),
                        cell("时限", 6),
                        cell("领域", 16)
                    );
                }
                for item in &page.items {
                    let batch = if item.batch == 0 {
                        "-".to_string()
                    } else {
                        format!("第{}批", item.batch)
                    };
                    println!(
                        "{} {} {} {} {} {}",
                        cell(&item.item_code, 14),
                        cell(delegation_name(item.delegation), 6),
                        cell(&batch, 6),
                        cell(&format!("{}天", item.promised_days), 6),
                        cell(&item.domain, 16),
                        item.name
                    );
                }
                shown += page.items.len();
                if !all || page.next_page_token.is_empty() {
                    if shown < page.total as usize {
                        println!("… {} more (use --all or --query)", page.total as usize - shown);
                    }
                    break;
                }
                token = page.next_page_token;
            }
        }
        CatalogueAction::Show { code } => {
            let response = client
                .get_item(pb::GetItemRequest { code })
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            let Some(item) = response.item else {
                bail!("the node returned no item");
            };
            println!("catalogue version {}", response.version);
            println!("名称        {}", item.name);
            println!("事项编码    {}", item.item_code);
            println!("实施编码    {}", item.implementation_code);
            println!("领域/部门   {} / {}", item.domain, item.department);
            println!(
                "下放方式    {}{}",
                delegation_name(item.delegation),
                if item.batch > 0 {
                    format!("（第{}批）", item.batch)
                } else {
                    String::new()
                }
            );
            println!(
                "适用乡镇    {}",
                if item.all_townships {
                    "全部乡镇".to_string()
                } else {
                    item.townships.join(", ")
                }
            );
            println!("村级代办    {}", if item.village_intake { "是" } else { "否" });
            println!(
                "时限        法定 {} 个工作日，承诺 {} 个工作日{}",
                item.statutory_days,
                item.promised_days,
                if item.immediate { "（即办件）" } else { "" }
            );
            println!("纸质原件送县 {}", if item.originals_to_county { "是" } else { "否" });
            println!("用印        {}", seal_name(item.seal));
            println!("申请材料");
            for m in &item.materials {
                println!(
                    "  - {}（{}，{}，{} 页）",
                    m.name,
                    if m.required { "必需" } else { "可选" },
                    if m.form == pb::MaterialForm::Original as i32 {
                        "原件"
                    } else {
                        "复印件"
                    },
                    m.pages
                );
            }
        }
        CatalogueAction::Versions => {
            let response = client
                .list_versions(pb::ListVersionsRequest {})
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            println!(
                "{:>7} {:>6} {:>6} {:>6}  {:<16} {:<24} source",
                "version", "items", "+/~", "-", "hash", "by"
            );
            for v in response.versions {
                println!(
                    "{:>7} {:>6} {:>6} {:>6}  {:<16} {:<24} {}",
                    v.version,
                    v.item_count,
                    v.upserts,
                    v.removals,
                    &v.content_hash[..16.min(v.content_hash.len())],
                    v.published_by,
                    v.source
                );
            }
        }
    }
    Ok(())
}

fn ago(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= 0 {
        return "never".into();
    }
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

pub async fn status(conn: Connection, json: bool) -> Result<()> {
    let mut client = NodeClient::new(conn.channel().await?);
    let s = client
        .status(pb::StatusRequest {})
        .await
        .map_err(|e| conn.explain(e))?
        .into_inner();
    if json {
        let links: Vec<serde_json::Value> = s
            .links
            .iter()
            .map(|l| {
                serde_json::json!({
                    "peer": l.peer_id, "role": if l.role == pb::LinkRole::Parent as i32 { "parent" } else { "child" },
                    "connected": l.connected, "events_behind": l.events_behind,
                    "oldest_unacked_age_ms": l.oldest_unacked_age_ms, "last_sync_unix_ms": l.last_sync_unix_ms,
                    "applied_from_peer": l.applied_from_peer, "acked_by_peer": l.acked_by_peer,
                    "last_checksum_ok": l.last_checksum_ok, "repairs": l.repairs,
                })
            })
            .collect();
        let value = serde_json::json!({
            "node_id": s.node_id, "tier": s.tier, "parent_id": s.parent_id, "storage": s.storage,
            "catalogue_version": s.catalogue_version, "catalogue_hash": s.catalogue_hash,
            "events_stored": s.events_stored, "open_alarms": s.open_alarms, "links": links,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let tier = match pb::Tier::try_from(s.tier) {
        Ok(pb::Tier::County) => "county",
        Ok(pb::Tier::Township) => "township",
        Ok(pb::Tier::Village) => "village",
        _ => "?",
    };
    let now = tongban_core::hlc::wall_ms() as i64;
    println!(
        "node {} ({tier}), tongban {}, storage {}",
        s.node_id, s.software_version, s.storage
    );
    if !s.parent_id.is_empty() {
        println!("parent {}", s.parent_id);
    }
    println!(
        "catalogue version {} (hash {}), {} events stored, {} alarms",
        s.catalogue_version,
        &s.catalogue_hash[..16.min(s.catalogue_hash.len())],
        s.events_stored,
        s.open_alarms
    );
    if s.links.is_empty() {
        println!("no links yet");
        return Ok(());
    }
    println!(
        "{:<14} {:<7} {:<5} {:>8} {:>10} {:>12} {:>10}",
        "peer", "role", "up", "behind", "oldest", "last sync", "checksum"
    );
    for l in &s.links {
        println!(
            "{:<14} {:<7} {:<5} {:>8} {:>10} {:>12} {:>10}",
            l.peer_id,
            if l.role == pb::LinkRole::Parent as i32 {
                "parent"
            } else {
                "child"
            },
            if l.connected { "yes" } else { "no" },
            l.events_behind,
            if l.oldest_unacked_age_ms == 0 {
                "-".into()
            } else {
                format!("{}s", l.oldest_unacked_age_ms / 1000)
            },
            ago(now, l.last_sync_unix_ms),
            if l.last_checksum_unix_ms == 0 {
                "-".to_string()
            } else if l.last_checksum_ok {
                "ok".to_string()
            } else {
                format!("repaired×{}", l.repairs)
            }
        );
    }
    Ok(())
}

pub async fn alarms(conn: Connection, limit: u32) -> Result<()> {
    let mut client = NodeClient::new(conn.channel().await?);
    let response = client
        .list_alarms(pb::ListAlarmsRequest { limit })
        .await
        .map_err(|e| conn.explain(e))?
        .into_inner();
    if response.alarms.is_empty() {
        println!("no alarms");
    }
    let now = tongban_core::hlc::wall_ms() as i64;
    for a in response.alarms {
        let kind = match pb::AlarmKind::try_from(a.kind) {
            Ok(pb::AlarmKind::ConflictingDuplicate) => "CONFLICTING DUPLICATE",
            Ok(pb::AlarmKind::Quarantined) => "QUARANTINED",
            _ => "ALARM",
        };
        println!(
            "#{} {kind} {}/{} from {} ({}): {}",
            a.id,
            a.origin,
            a.seq,
            a.received_from,
            ago(now, a.raised_unix_ms),
            a.reason
        );
    }
    Ok(())
}

pub fn pki(action: PkiAction) -> Result<()> {
    match action {
        PkiAction::Init {
            dir,
            villages_per_township,
            operators,
            couriers,
        } => {
            let nodes = crate::harness::wuhua_nodes(villages_per_township)?;
            let mut ops = Vec::new();
            let requested = if operators.is_empty() {
                vec!["admin@441424".to_string()]
            } else {
                operators
            };
            for spec in requested {
                let (name, place) = spec
                    .split_once('@')
                    .with_context(|| format!("operator {spec:?} must be NAME@PLACE, e.g. admin@441424"))?;
                ops.push((NodeId::new(place)?, name.to_owned()));
            }
            let layout = tongban_core::pki::init_dir(&dir, &nodes, &ops)?;
            println!(
                "development CA and {} node certificates and {} operator certificate(s) in {}",
                nodes.len(),
                ops.len(),
                layout.dir().display()
            );
            println!("CA certificate: {}", layout.ca_cert().display());
            for (place, name) in &ops {
                println!(
                    "operator {name}@{place}: {}",
                    layout.operator_cert(place, name).display()
                );
            }
            if !couriers.is_empty() {
                let ca = layout.load_ca()?;
                for spec in couriers {
                    let (device, place) = spec
                        .split_once('@')
                        .with_context(|| format!("courier {spec:?} must be DEVICE@PLACE, e.g. pda-07@441424100"))?;
                    let courier = tongban_core::pki::Principal::courier(NodeId::new(place)?, device)?;
                    layout.ensure(&ca, &courier)?;
                    println!("courier {courier}: {}", layout.cert_path(&courier).display());
                }
            }
        }
    }
    Ok(())
}
