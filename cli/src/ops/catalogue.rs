//! `tongban catalogue …`: the matter catalogue at a node — import a file at the county, list the
//! items a node may handle, show one in full, and the versions the node holds.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use tongban_proto::v1::{
    self as pb, catalogue_client::CatalogueClient, catalogue_publishing_client::CataloguePublishingClient,
};

use tongban_domains::catalogue::ItemType;

use crate::client::Connection;
use crate::display::{cell, place, short_hash};

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
        /// Substring of the name, the basic code (基本编码) or the implementation code (实施编码);
        /// finds the variants sharing a basic code. At most 100 characters.
        #[arg(long, short, default_value = "")]
        query: String,
        #[arg(long, default_value = "")]
        domain: String,
        #[arg(long, value_enum)]
        delegation: Option<Delegation>,
        /// Only items this township may handle (at the county): its name (水寨镇) or code.
        #[arg(long, value_parser = crate::words::township)]
        township: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Page through everything.
        #[arg(long)]
        all: bool,
    },
    /// One item in full, by implementation code or by a basic code with one variant here.
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

fn delegation_name(v: i32) -> &'static str {
    match pb::DelegationMode::try_from(v) {
        Ok(pb::DelegationMode::Authorised) => "授权",
        Ok(pb::DelegationMode::Entrusted) => "委托",
        Ok(pb::DelegationMode::NotDelegated) => "不下放",
        _ => "-",
    }
}

/// The item's kind (事项类型), with 非申请类 for the kinds the administration exercises on its
/// own initiative (行政处罚 …), which a window cannot submit as a case.
fn kind_text(item_type: i32) -> String {
    match ItemType::from_wire(item_type, "item_type") {
        Ok(kind) if kind.accepts_applications() => kind.label_zh().to_owned(),
        Ok(kind) => format!("{}（非申请类）", kind.label_zh()),
        Err(_) => "-".to_owned(),
    }
}

/// `非申请类` after the name of an item nobody applies for; nothing otherwise.
fn not_applied_for(item_type: i32) -> &'static str {
    match ItemType::from_wire(item_type, "item_type") {
        Ok(kind) if !kind.accepts_applications() => "  [非申请类]",
        _ => "",
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
            let mut publishing = CataloguePublishingClient::new(conn.channel().await?);
            let response = publishing
                .import(request)
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            if response.published {
                println!(
                    "published catalogue version {}: {} items ({} added or changed, {} removed), hash {}",
                    response.version,
                    response.item_count,
                    response.upserts,
                    response.removals,
                    short_hash(&response.content_hash)
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
                    township: township.clone().unwrap_or_default(),
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
                        "{} {} {} {} {} {} 名称",
                        cell("基本编码", 14),
                        cell("实施编码", 54),
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
                        "{} {} {} {} {} {} {}{}",
                        cell(&item.item_code, 14),
                        cell(&item.implementation_code, 54),
                        cell(delegation_name(item.delegation), 6),
                        cell(&batch, 6),
                        cell(&format!("{}天", item.promised_days), 6),
                        cell(&item.domain, 16),
                        item.name,
                        not_applied_for(item.item_type)
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
            println!("事项类型    {}", kind_text(item.item_type));
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
                    let names: Vec<String> = item.townships.iter().map(|t| place(t)).collect();
                    names.join("、")
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
                    short_hash(&v.content_hash),
                    v.published_by,
                    v.source
                );
            }
        }
    }
    Ok(())
}
