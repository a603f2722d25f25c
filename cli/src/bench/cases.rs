//! `tongban bench`, the case figures: how fast a township records submissions, and how fast it
//! lists its warnings with a large store.
//!
//! - `case_submit_per_s`: complete submissions at a township window — each the case opening,
//!   its receipt and its acceptance on the spot, three events in one transaction — from many
//!   clerks at once (concurrent callers of the township's store, which commits them in groups),
//!   timed until the last one is durable. The township runs alone: no link steals its CPU.
//! - `warnings_query_p99_ms`: the township's `ListWarnings` over its operator API (mTLS, real
//!   gRPC) with 100,000 cases in its store: 31 in 32 immediate items already issued and rated,
//!   the rest open with the promised limits of the sample catalogue, and the node's clock moved
//!   twelve working days on so that most open cases warn yellow or red; the first page (200,
//!   worst first) with the totals, as `tongban case warnings` asks for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tongban_domains::calendar::ManualClock;
use tongban_domains::case::{ApplicantKind, ApplicantSummary, CaseAction, ItemTerms, Outcome, RatingLevel, local_date};
use tongban_domains::catalogue::Item;
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_domains::store::{Store, StoreLocation};
use tongban_proto::v1::{self as pb, cases_client::CasesClient};
use tongban_testkit::cluster::Cluster;

use crate::harness::sample_catalogue;

/// Clerks submitting at once. A county-seat township has a dozen windows; more callers than
/// that only measure the queue.
const CLERKS: usize = 64;

pub struct CaseFigures {
    pub case_submit_per_s: f64,
    pub warnings_query_p99_ms: f64,
    pub warnings_listed: usize,
    pub warnings_query_p50_ms: f64,
}

fn clerk(township: &NodeId) -> Principal {
    Principal::Operator {
        place: township.clone(),
        name: "window-1".into(),
    }
}

fn applicant(n: usize) -> ApplicantSummary {
    const SURNAMES: [&str; 8] = ["李", "张", "陈", "黄", "刘", "钟", "曾", "魏"];
    const GIVEN: [&str; 8] = ["伟强", "秀英", "志明", "丽华", "建国", "美玲", "国强", "晓燕"];
    ApplicantSummary {
        kind: ApplicantKind::Person,
        name: format!("{}{}", SURNAMES[n % 8], GIVEN[(n / 8) % 8]),
        id_masked: format!("441424********{:04}", n % 10_000),
        phone: Some(format!("1380753{:04}", n % 10_000)),
    }
}

/// Items the township decides itself, from the Wuhua sample: (immediate ones, ones with a
/// promised limit).
fn township_items(township: &NodeId) -> Result<(Vec<ItemTerms>, Vec<ItemTerms>)> {
    let items: Vec<Item> = sample_catalogue()?
        .into_iter()
        .filter(|i| tongban_domains::catalogue::service::visible_here(i, township))
        .filter(|i| i.delegation == tongban_domains::catalogue::DelegationMode::Authorised)
        .collect();
    let terms: Vec<ItemTerms> = items.iter().map(|i| ItemTerms::from_item(i, 1)).collect();
    let (immediate, limited): (Vec<_>, Vec<_>) = terms.into_iter().partition(|t| t.immediate);
    if limited.is_empty() {
        bail!("the sample catalogue has no authorised item with a time limit at {township}");
    }
    Ok((immediate, limited))
}

/// Opens `count` cases at the township from `CLERKS` concurrent callers; `steps(n, terms)`
/// says what follows each opening in its transaction.
async fn submit_many(
    store: &Arc<Store>,
    count: usize,
    terms_for: impl Fn(usize) -> ItemTerms + Send + Sync + 'static,
    steps: impl Fn(usize, &ItemTerms) -> Vec<CaseAction> + Send + Sync + 'static,
) -> Result<()> {
    let terms_for = Arc::new(terms_for);
    let steps = Arc::new(steps);
    let principal = clerk(store.node());
    let mut clerks = tokio::task::JoinSet::new();
    for c in 0..CLERKS {
        let (store, terms_for, steps, principal) = (store.clone(), terms_for.clone(), steps.clone(), principal.clone());
        clerks.spawn(async move {
            let mut n = c;
            while n < count {
                let terms = terms_for(n);
                let then = steps(n, &terms);
                store.open_case_then(terms, applicant(n), &principal, then).await?;
                n += CLERKS;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = clerks.join_next().await {
        done??;
    }
    Ok(())
}

fn accept_on_the_spot(terms: &ItemTerms) -> Vec<CaseAction> {
    vec![CaseAction::Receive, CaseAction::Accept { terms: terms.clone() }]
}

/// `case_submit_per_s` on a fresh township store in `dir`.
async fn submit_rate(dir: &std::path::Path, township: &NodeId, cases: usize) -> Result<f64> {
    let (_, limited) = township_items(township)?;
    let store = Store::open(&StoreLocation::in_data_dir(dir, township), township).await?;
    // Warm up (first pages, the calendar parse) outside the timing.
    let warm = limited.clone();
    submit_many(
        &store,
        CLERKS,
        move |n| warm[n % warm.len()].clone(),
        |_, t| accept_on_the_spot(t),
    )
    .await?;
    let started = Instant::now();
    let items = limited.clone();
    submit_many(
        &store,
        cases,
        move |n| items[n % items.len()].clone(),
        |_, t| accept_on_the_spot(t),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    store.close().await;
    Ok(cases as f64 / secs)
}

/// Fills a township store with `cases` cases, like a township window's history: 31 in 32
/// immediate items taken all the way to a rating, the rest accepted items with a promised
/// limit, left open (about 3,100 open cases in 100,000).
async fn fill_for_warnings(store: &Arc<Store>, cases: usize) -> Result<()> {
    let township = store.node().clone();
    let (immediate, limited) = township_items(&township)?;
    if immediate.is_empty() {
        bail!("the sample catalogue has no immediate authorised item at {township}");
    }
    let terms_for = move |n: usize| {
        if n.is_multiple_of(32) {
            limited[(n / 32) % limited.len()].clone()
        } else {
            immediate[n % immediate.len()].clone()
        }
    };
    let steps = |_: usize, terms: &ItemTerms| {
        let mut then = accept_on_the_spot(terms);
        if terms.immediate {
            let seal = terms.seal();
            then.extend([
                CaseAction::Conclude {
                    outcome: Outcome::Approved,
                },
                CaseAction::ResultReady,
                CaseAction::Issue { seal, impressions: 1 },
                CaseAction::Deliver { by_courier: false },
                CaseAction::Rate {
                    level: RatingLevel::VerySatisfied,
                    defaulted: false,
                },
            ]);
        }
        then
    };
    submit_many(store, cases, terms_for, steps).await
}

/// `warnings_query_p99_ms`: the township serves its API over a store filled beforehand.
async fn warnings_p99(
    dir: &std::path::Path,
    county: &NodeId,
    township: &NodeId,
    cases: usize,
) -> Result<(f64, f64, usize)> {
    // The county is registered so the township knows its parent, but not started: its link
    // retries quietly in the background and replication takes no CPU from the queries.
    let mut cluster = Cluster::new(dir, county, SyncConfig::default())?;
    cluster.add(county).await?;
    cluster.add(township).await?;
    {
        let store = Store::open(&StoreLocation::in_data_dir(dir, township), township).await?;
        fill_for_warnings(&store, cases).await?;
        store.close().await;
    }
    cluster.start(township).await?;
    let store = cluster
        .node(township)
        .map(|n| n.store.clone())
        .context("the township did not start")?;
    // Twelve working days on: limits of up to ~15 days are yellow or red by then.
    let today = local_date(tongban_domains::hlc::wall_ms());
    let calendar = store.calendar().await?.calendar.clone();
    store.set_clock(Arc::new(ManualClock::new(calendar.add_working_days(today, 12))));
    let mut client = CasesClient::new(cluster.operator_channel(township).await?).max_decoding_message_size(64 << 20);
    let request = pb::ListWarningsRequest {
        township: township.to_string(),
        ..Default::default()
    };
    // Not timed: the first list on a store filled before the node ran records the basis of
    // the stored warning days (recomputing them once) and warms the page cache.
    let first = client.list_warnings(request.clone()).await?.into_inner();
    let listed = (first.red_total + first.yellow_total) as usize;
    let mut samples = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        let reply = client.list_warnings(request.clone()).await?.into_inner();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        let total = (reply.red_total + reply.yellow_total) as usize;
        if total != listed {
            bail!("the warning list changed between queries: {listed} then {total}");
        }
    }
    cluster.stop_all().await;
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok((
        super::percentile(&samples, 0.99),
        super::percentile(&samples, 0.50),
        listed,
    ))
}

pub async fn run(dir: &std::path::Path, submit_cases: usize, warning_cases: usize) -> Result<CaseFigures> {
    let county = NodeId::new(tongban_testkit::wuhua::COUNTY_CODE)?;
    let township = NodeId::new("441424100")?;
    let submit_dir = dir.join("submit");
    std::fs::create_dir_all(&submit_dir)?;
    let rate = submit_rate(&submit_dir, &township, submit_cases).await?;
    let warn_dir = dir.join("warnings");
    std::fs::create_dir_all(&warn_dir)?;
    let (p99, p50, listed) = tokio::time::timeout(
        Duration::from_secs(1800),
        warnings_p99(&warn_dir, &county, &township, warning_cases),
    )
    .await
    .context("the warnings figure took longer than 30 minutes")??;
    Ok(CaseFigures {
        case_submit_per_s: rate.round(),
        warnings_query_p99_ms: (p99 * 100.0).round() / 100.0,
        warnings_listed: listed,
        warnings_query_p50_ms: (p50 * 100.0).round() / 100.0,
    })
}
