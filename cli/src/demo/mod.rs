//! `tongban demo`: Wuhua's tree on this machine — the county, its 16 townships and N villages
//! each, on embedded SQLite with generated certificates. The county publishes the matter
//! catalogue's first delegation batch, then the second; one township is killed while the first
//! version is still spreading and restarted after the second; the demo waits until every node
//! holds the latest version with the same hash and prints what each tier sees. Then clerks run a
//! working week of cases on the tree ([`week`]), and couriers carry those cases' paper
//! files in daily box runs between the county and its townships ([`boxes`]).

mod boxes;
mod people;
mod week;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use tongban_domains::catalogue::service::visible_here;
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::{NodeId, Tier};
use tongban_proto::v1::{self as pb, catalogue_publishing_client::CataloguePublishingClient};
use tongban_testkit::cluster::{Cluster, wait_until};
use tongban_testkit::wuhua;

use crate::harness::{first_batch_only, sample_catalogue, to_json, wuhua_nodes};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Villages started under each township.
    #[arg(long, default_value_t = 2)]
    villages_per_township: usize,
    /// Keep the tree running after the summary (Ctrl-C to stop).
    #[arg(long)]
    keep: bool,
    /// Keep data and certificates here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The township killed mid-sync: Huacheng (华城镇).
const VICTIM: &str = "441424104";

pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    let county = NodeId::new(wuhua::COUNTY_CODE)?;
    let nodes = wuhua_nodes(args.villages_per_township)?;
    println!("通办 Tongban demo — {}（{}）", wuhua::COUNTY_NAME, wuhua::COUNTY_CODE);
    println!(
        "starting 1 county, {} townships and {} villages on embedded SQLite in {}",
        wuhua::TOWNSHIPS.len(),
        nodes.len() - 1 - wuhua::TOWNSHIPS.len(),
        dir.display()
    );

    let mut cluster = Cluster::new(&dir, &county, SyncConfig::default())?;
    for id in &nodes {
        cluster.add(id).await?;
    }
    cluster.start_all().await?;
    println!(
        "  all {} nodes up, each with its own certificate from a fresh development CA",
        nodes.len()
    );

    let full = sample_catalogue()?;
    let batch_one = first_batch_only(&full);
    let mut catalogue = CataloguePublishingClient::new(cluster.operator_channel(&county).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);

    let v1 = import(
        &mut catalogue,
        &batch_one,
        "wuhua-catalogue-batch1.json",
        "第一批下放事项",
    )
    .await?;
    println!(
        "county published catalogue v{}: {} items, first delegation batch",
        v1.version, v1.item_count
    );

    // Kill a township while version 1 is still travelling to it and its villages.
    let victim = NodeId::new(VICTIM)?;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let held = match cluster.node(&victim) {
        Some(node) => node.store.catalogue_head().await.version,
        None => 0,
    };
    cluster.kill(&victim)?;
    println!("  killed township {VICTIM} (华城镇) mid-sync, holding catalogue v{held}");

    let v2 = import(&mut catalogue, &full, "wuhua-catalogue.csv", "第二批下放事项").await?;
    println!(
        "county published catalogue v{}: {} items changed, second delegation batch",
        v2.version, v2.upserts
    );
    let again = import(&mut catalogue, &full, "wuhua-catalogue.csv", "重复导入").await?;
    println!(
        "  re-importing the same file publishes nothing (still v{}, published = {})",
        again.version, again.published
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start(&victim).await?;
    println!("  restarted township {VICTIM}; it resumes from its stored cursor");

    let target = v2.version;
    let converge_started = Instant::now();
    let ids = cluster.ids();
    wait_until(
        Duration::from_secs(120),
        "every node to hold the latest catalogue",
        || {
            let cluster = &cluster;
            let ids = &ids;
            async move {
                for id in ids {
                    match cluster.node(id) {
                        Some(node) if node.store.catalogue_head().await.version == target => {}
                        _ => return false,
                    }
                }
                true
            }
        },
    )
    .await?;
    let converged_in = converge_started.elapsed();

    // Summary per tier.
    let mut hashes = BTreeMap::new();
    let mut per_tier: BTreeMap<Tier, Vec<(NodeId, usize, u64)>> = BTreeMap::new();
    let mut delegated_per_township = BTreeMap::new();
    for id in &ids {
        let Some(node) = cluster.node(id) else {
            bail!("{id} is not running")
        };
        let head = node.store.catalogue_head().await;
        hashes.insert(hex_prefix(&head.hash), ());
        let items = node.store.catalogue_items().await?;
        let visible = items.iter().filter(|item| visible_here(item, id)).count();
        if id.tier() == Tier::Township {
            let delegated = items.iter().filter(|item| item.delegated_to(id.as_str())).count();
            delegated_per_township.insert(id.clone(), delegated);
        }
        let events = node.store.event_count().await?;
        per_tier
            .entry(id.tier())
            .or_default()
            .push((id.clone(), visible, events));
    }
    println!();
    println!("summary — every node holds catalogue v{target} in {converged_in:.2?} after the restart");
    println!(
        "  content hash agreed by all {} nodes: {}",
        ids.len(),
        if hashes.len() == 1 {
            hashes.keys().next().cloned().unwrap_or_default()
        } else {
            format!("NO ({} different)", hashes.len())
        }
    );
    for (tier, rows) in &per_tier {
        let visible: Vec<usize> = rows.iter().map(|r| r.1).collect();
        let min = visible.iter().min().copied().unwrap_or(0);
        let max = visible.iter().max().copied().unwrap_or(0);
        let label = match tier {
            Tier::County => "county   ",
            Tier::Township => "townships",
            Tier::Village => "villages ",
        };
        println!(
            "  {label} {:>3} nodes  items shown {min}..{max}  events stored {}",
            rows.len(),
            rows.iter().map(|r| r.2).sum::<u64>()
        );
    }
    if let Some(rows) = per_tier.get(&Tier::Township) {
        println!("  per township: items delegated to it (授权/委托) + county items its front desk accepts");
        for chunk in rows.chunks(4) {
            let line: Vec<String> = chunk
                .iter()
                .map(|(id, n, _)| {
                    let name = wuhua::township(id.as_str()).map(|t| t.name).unwrap_or("");
                    let delegated = delegated_per_township.get(id).copied().unwrap_or(0);
                    format!("{id} {name} {delegated:>3}+{:<3}", n.saturating_sub(delegated))
                })
                .collect();
            println!("    {}", line.join("   "));
        }
    }
    let delegated = full.iter().filter(|i| i.batch > 0).count();
    println!(
        "  catalogue: {} items, {} delegated to townships ({} in batch 1, {} in batch 2)",
        full.len(),
        delegated,
        full.iter().filter(|i| i.batch == 1).count(),
        full.iter().filter(|i| i.batch == 2).count()
    );
    let mut status = tongban_proto::v1::node_client::NodeClient::new(cluster.operator_channel(&county).await?);
    let county_status = status.status(pb::StatusRequest {}).await?.into_inner();
    let behind: u64 = county_status.links.iter().map(|l| l.events_behind).sum();
    println!(
        "  county links: {} townships connected, {} events not yet acknowledged, {} alarms",
        county_status.links.iter().filter(|l| l.connected).count(),
        behind,
        county_status.open_alarms
    );
    if hashes.len() != 1 {
        bail!("nodes disagree on the catalogue");
    }
    entrust_townships(&cluster, &county).await?;
    week::run(&cluster).await.context("the working week of cases")?;
    boxes::run(&cluster).await.context("the daily box runs")?;
    let hall_item = people::run(&cluster).await.context("the service hall's people")?;
    println!("demo finished in {:.1?}", started.elapsed());

    if args.keep {
        println!();
        let layout = cluster.write_operator_files(&dir.join("pki"))?;
        let admin = tongban_domains::pki::Principal::Operator {
            place: county.clone(),
            name: "admin".into(),
        };
        println!("the tree keeps running; try, from another terminal:");
        println!(
            "  export TONGBAN_CLI_NODE=https://{} TONGBAN_CLI_CA={} TONGBAN_CLI_CERT={} TONGBAN_CLI_KEY={}",
            cluster.addr(&county)?,
            layout.ca_cert().display(),
            layout.cert_path(&admin).display(),
            layout.key_path(&admin).display()
        );
        println!("  tongban status; tongban catalogue list --query 宅基地");
        people::tour(&cluster, &dir.join("pki"), &hall_item)?;
        for id in ids.iter().filter(|id| id.tier() != Tier::County).take(3) {
            println!("  {id} listens on https://{}", cluster.addr(id)?);
        }
        println!("press Ctrl-C to stop");
        tongban_domains::node::shutdown_signal().await;
    }
    cluster.stop_all().await;
    Ok(())
}

/// Issues every township the county's two letters of entrustment (government-service items
/// with the 行政审批委托专用章, public-service items with the 业务专用章), so each township can stamp
/// the results of the entrusted items it issues.
async fn entrust_townships(cluster: &Cluster, county: &NodeId) -> Result<()> {
    let mut entrustment = pb::entrustment_client::EntrustmentClient::new(cluster.operator_channel(county).await?);
    let townships: Vec<NodeId> = cluster
        .ids()
        .into_iter()
        .filter(|id| id.tier() == Tier::Township)
        .collect();
    for (n, township) in townships.iter().enumerate() {
        for class in [pb::Category::GovernmentService, pb::Category::PublicService] {
            entrustment
                .issue_letter(pb::EntrustmentLetter {
                    township: township.to_string(),
                    letter_number: format!("五政服委〔2026〕{}号", n + 1),
                    letter_date: "2026-01-05".to_owned(),
                    item_class: class as i32,
                    item_codes: Vec::new(),
                    revoked: false,
                    seal: 0,
                })
                .await
                .with_context(|| format!("the letter of entrustment to {township}"))?;
        }
    }
    println!(
        "county issued {} townships their letters of entrustment (委托书): 行政审批委托专用章 and 业务专用章 kept at each township",
        townships.len()
    );
    Ok(())
}

/// Imports `items` at the county through the real CataloguePublishing.Import RPC.
async fn import(
    catalogue: &mut CataloguePublishingClient<tonic::transport::Channel>,
    items: &[tongban_domains::catalogue::model::Item],
    source: &str,
    note: &str,
) -> Result<pb::ImportCatalogueResponse> {
    let request = pb::ImportCatalogueRequest {
        format: pb::ImportFormat::Json as i32,
        content: to_json(items)?,
        source: source.into(),
        note: note.into(),
    };
    let response = catalogue
        .import(request)
        .await
        .with_context(|| format!("importing {source} ({note})"))?;
    Ok(response.into_inner())
}

fn hex_prefix(hash: &[u8; 32]) -> String {
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
