//! `tongban bench`, the custody figures: how fast a township records couriers' scans, and how
//! fast the county answers "where is this file?" with a million documents in its store.
//!
//! - `scan_ingest_per_s`: couriers' handhelds upload their queues to a township over real gRPC
//!   (mTLS, Custody.UploadScans) in batches of 1,000 scans, four couriers at once; timed until
//!   the last batch is acknowledged, i.e. durably recorded. The township runs alone (its county
//!   link down), as a township whose link is out still takes every scan.
//! - `where_is_p99_ms`: Custody.WhereIs for random documents at a county whose store holds
//!   1,000,000 registered documents, every one of them carried in a box trip of 50 (pack, seal,
//!   hand-overs, acceptance with the seal checked, unpack): the document's own scans, its trip's
//!   scans and the chain, over real gRPC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tongban_courier::Device;
use tongban_domains::config::SyncConfig;
use tongban_domains::custody::Scan;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_domains::store::{Store, StoreLocation};
use tongban_proto::v1::{self as pb, CustodyStep, custody_client::CustodyClient, where_is_request};
use tongban_testkit::cluster::Cluster;

pub struct CustodyFigures {
    pub scan_ingest_per_s: f64,
    pub where_is_p99_ms: f64,
    pub where_is_p50_ms: f64,
}

const COUNTY: &str = "441424";
const TOWNSHIP: &str = "441424100";
/// Documents per box trip in the where-is store.
const PER_TRIP: usize = 50;
const BASE_MS: i64 = 1_790_000_000_000;

/// The scans of one trip of `docs` from the county to the township: clerk scans on `desk`,
/// courier scans on `pda`.
fn trip_scans(desk: &mut Device, pda: &mut Device, dest: &mut Device, n: usize, docs: &[String]) -> Vec<pb::Scan> {
    let trip = format!("{COUNTY}-bench-{n:07}");
    let box_id = format!("BOX-{:03}", n % 200);
    let t = BASE_MS + (n as i64) * 60_000;
    let with = |mut s: pb::Scan| {
        s.trip_id = trip.clone();
        s.box_id = box_id.clone();
        s.origin = COUNTY.to_owned();
        s.destination = TOWNSHIP.to_owned();
        s
    };
    let mut pack = with(desk.scan(CustodyStep::Pack, t));
    pack.document_ids = docs.to_vec();
    let mut seal = with(desk.scan(CustodyStep::Seal, t + 1_000));
    seal.seal_number = format!("S{n:07}");
    let mut release = with(desk.scan(CustodyStep::ReleaseToCourier, t + 2_000));
    release.counterparty = pda.who();
    let accept = with(pda.scan(CustodyStep::CourierAccept, t + 3_000));
    let mut en_route = with(pda.scan(CustodyStep::EnRoute, t + 10_000));
    en_route.place = "华城镇 X120".to_owned();
    let mut arrive = with(pda.scan(CustodyStep::ReleaseAtDestination, t + 20_000));
    arrive.counterparty = dest.who();
    let mut received = with(dest.scan(CustodyStep::DestinationAccept, t + 21_000));
    received.seal_number = seal.seal_number.clone();
    received.seal_intact = true;
    let mut unpack = with(dest.scan(CustodyStep::Unpack, t + 22_000));
    unpack.document_ids = docs.to_vec();
    vec![pack, seal, release, accept, en_route, arrive, received, unpack]
}

/// `scan_ingest_per_s` at a running township.
async fn ingest(dir: &std::path::Path, scans: usize) -> Result<f64> {
    let county = NodeId::new(COUNTY)?;
    let township = NodeId::new(TOWNSHIP)?;
    let mut cluster = Cluster::new(dir, &county, SyncConfig::default())?;
    cluster.add(&county).await?;
    cluster.add(&township).await?;
    cluster.start(&township).await?;
    const COURIERS: usize = 4;
    const BATCH: usize = 1_000;
    let mut uploads = tokio::task::JoinSet::new();
    let per_courier = scans / COURIERS;
    let mut clients = Vec::new();
    for c in 0..COURIERS {
        let principal = Principal::Courier {
            place: township.clone(),
            device: format!("pda-{c:02}"),
        };
        let client = CustodyClient::new(cluster.channel_as(&township, &principal).await?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        // The queue as it sits on the handheld: en-route scans of the day's boxes.
        let mut device = Device::new(format!("pda-{c:02}"), principal.clone())?;
        let queue: Vec<pb::Scan> = (0..per_courier)
            .map(|i| {
                let mut s = device.scan(CustodyStep::EnRoute, BASE_MS + i as i64 * 1_000);
                s.trip_id = format!("{TOWNSHIP}-bench-{c}-{}", i / 40);
                s.box_id = format!("BOX-{c}-{}", i / 40);
                s.origin = TOWNSHIP.to_owned();
                s.destination = COUNTY.to_owned();
                s.place = format!("X120 km {}", i % 60);
                s
            })
            .collect();
        clients.push((client, queue));
    }
    let started = Instant::now();
    for (mut client, queue) in clients {
        uploads.spawn(async move {
            for batch in queue.chunks(BATCH) {
                let reply = client
                    .upload_scans(pb::UploadScansRequest { scans: batch.to_vec() })
                    .await?
                    .into_inner();
                if reply.recorded as usize != batch.len() {
                    bail!("{} of {} scans recorded", reply.recorded, batch.len());
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = uploads.join_next().await {
        done??;
    }
    let secs = started.elapsed().as_secs_f64();
    cluster.stop_all().await;
    Ok((per_courier * COURIERS) as f64 / secs)
}

/// Fills the county's store with `documents` registered documents, each carried in a trip.
async fn fill_county(store: &Arc<Store>, documents: usize) -> Result<Vec<String>> {
    let clerk = Principal::Operator {
        place: store.node().clone(),
        name: "records".into(),
    };
    let mut desk = Device::new("desk-441424-1", clerk.clone())?;
    let mut pda = Device::new("pda-07", Principal::courier(NodeId::new(COUNTY)?, "pda-07")?)?;
    let mut dest = Device::new(
        format!("desk-{TOWNSHIP}-1"),
        Principal::operator(NodeId::new(TOWNSHIP)?, "li.na")?,
    )?;
    let mut ids = Vec::with_capacity(documents);
    let mut batch = Vec::with_capacity(5_000);
    for trip in 0..documents.div_ceil(PER_TRIP) {
        let docs: Vec<String> = (0..PER_TRIP.min(documents - trip * PER_TRIP))
            .map(|i| format!("DOC-{:08}", trip * PER_TRIP + i))
            .collect();
        for (i, doc) in docs.iter().enumerate() {
            let mut s = desk.scan(CustodyStep::RegisterDocument, BASE_MS + (trip * PER_TRIP + i) as i64);
            s.document = Some(pb::DocumentInfo {
                document_id: doc.clone(),
                case_id: format!("{TOWNSHIP}-{:032x}", trip),
                kind: pb::DocumentKind::Original as i32,
                pages: 2,
                title: "户口簿原件".into(),
            });
            batch.push(s);
        }
        batch.extend(trip_scans(&mut desk, &mut pda, &mut dest, trip, &docs));
        ids.extend(docs);
        if batch.len() >= 4_900 {
            store
                .record_scans(domain_scans(std::mem::take(&mut batch))?, &clerk)
                .await?;
        }
    }
    if !batch.is_empty() {
        store.record_scans(domain_scans(batch)?, &clerk).await?;
    }
    Ok(ids)
}

/// The handhelds' scans as the store records them (it takes domain scans, not messages).
fn domain_scans(scans: Vec<pb::Scan>) -> Result<Vec<Scan>> {
    Ok(scans.into_iter().map(Scan::try_from).collect::<Result<_, _>>()?)
}

/// `where_is_p99_ms` at a county holding `documents` documents.
async fn where_is(dir: &std::path::Path, documents: usize, samples: usize) -> Result<(f64, f64)> {
    let county = NodeId::new(COUNTY)?;
    let mut cluster = Cluster::new(dir, &county, SyncConfig::default())?;
    cluster.add(&county).await?;
    let ids = {
        let store = Store::open(&StoreLocation::in_data_dir(dir, &county), &county).await?;
        let ids = fill_county(&store, documents).await?;
        store.close().await;
        ids
    };
    cluster.start(&county).await?;
    let admin = Principal::Operator {
        place: county.clone(),
        name: "admin".into(),
    };
    let mut client = CustodyClient::new(cluster.channel_as(&county, &admin).await?).max_decoding_message_size(64 << 20);
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        let doc = &ids[rand::random_range(0..ids.len())];
        let started = Instant::now();
        let reply = client
            .where_is(pb::WhereIsRequest {
                target: Some(where_is_request::Target::DocumentId(doc.clone())),
            })
            .await?
            .into_inner();
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let location = reply
            .objects
            .first()
            .and_then(|o| o.location.clone())
            .context("no location")?;
        if location.place != TOWNSHIP || reply.objects[0].chain.len() < 9 {
            bail!(
                "where-is of {doc} answered {location:?} with {} links",
                reply.objects[0].chain.len()
            );
        }
        // The first queries warm the page cache; not timed.
        if i >= 20 {
            times.push(elapsed);
        }
    }
    cluster.stop_all().await;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((super::percentile(&times, 0.99), super::percentile(&times, 0.50)))
}

pub async fn run(dir: &std::path::Path, scans: usize, documents: usize) -> Result<CustodyFigures> {
    let ingest_dir = dir.join("ingest");
    std::fs::create_dir_all(&ingest_dir)?;
    let rate = ingest(&ingest_dir, scans).await?;
    let where_dir = dir.join("where-is");
    std::fs::create_dir_all(&where_dir)?;
    let (p99, p50) = tokio::time::timeout(Duration::from_secs(3600), where_is(&where_dir, documents, 500))
        .await
        .context("the where-is figure took longer than an hour")??;
    Ok(CustodyFigures {
        scan_ingest_per_s: rate.round(),
        where_is_p99_ms: (p99 * 100.0).round() / 100.0,
        where_is_p50_ms: (p50 * 100.0).round() / 100.0,
    })
}
