//! Material boxes and the custody of paper files (材料流转) between real nodes: scans uploaded
//! with `Custody.UploadScans` by clerks (operator certificates of their node) and couriers
//! (courier certificates), replicated over mTLS, and judged the same way at every tier.
//!
//! This file proves:
//! - a full round trip county → township → county moves custody only when the receiver accepts,
//!   and `WhereIs` at the county tells at every step the container, custodian, pending custodian,
//!   place and whether the location is verified or inferred; the chain lists every link in
//!   event-time order, and the normal trip raises no anomaly;
//! - an offline courier's queue uploaded at two nodes (and twice at one) is recorded once:
//!   second uploads answer DUPLICATE, every tier lists each scan once, and a skipped device
//!   number shows as a device sequence gap at the county (the node that receives every scan of a
//!   device) until it turns up;
//! - each anomaly kind is raised by the situation that causes it, and by nothing else, at the
//!   township concerned and at the county; a normal day's round raises none;
//! - the waiting anomalies appear exactly when the node clock passes their limits;
//! - an anomaly is explained, then closed with a reason (never without one), and each note
//!   replicates to the other tier;
//! - custody released but not yet accepted stays with the sender, the receiver pending;
//! - an error declaration voids the scan it corrects, and a voided departure returns the box;
//! - `WhereIs(case)` agrees at the county, the township and the village, and the village
//!   answers while its link is down;
//! - bad input is refused and changes nothing, and who may call what is enforced;
//! - the county back office may not decide an item that requires its originals at the county
//!   until they have arrived (the refusal says where they are), and is warned for other items.
//!
//! Scans are dated from a base three hours ago (the devices' clocks); the node clocks are frozen
//! with a shared `ManualClock` where waiting time matters, so no result depends on how fast the
//! test runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tests::custody::{
    Device, HOUR, MINUTE, OTHER_TOWNSHIP, Trip, VILLAGE, base_ms, box_whereabouts, clerk, courier, custody_as,
    custody_tree, custody_tree_on, document, document_whereabouts, events_stored, freeze_clocks, list_anomalies,
    note_anomaly, open_anomalies, submit_case, try_box_history, try_upload, try_where_is, upload, upload_recorded,
    wait_box_scans, wait_case_documents,
};
use tests::wait::{TIMEOUT, deadline_in, wait_for, wait_until};
use tests::{COUNTY, T1, id, ops, setup};
use tongban_domains::pki::Principal;
use tongban_proto::v1::{self as pb, AnomalyState, CustodyStep, DocumentKind, scan_outcome::Result as Outcome};
use tongban_testkit::cluster::Cluster;
use tonic::Code;

use pb::where_is_request::Target;

// ---------------------------------------------------------------------------------------------
// Shared steps
// ---------------------------------------------------------------------------------------------

/// Submits a case at the village and registers its paper files there on the village's desk
/// scanner; waits until the township and the county know them (the registrations travel up).
async fn village_case_with_papers(cluster: &Cluster, at_ms: i64, papers: &[(&str, DocumentKind, &str)]) -> String {
    let case_id = submit_case(cluster, VILLAGE).await;
    let mut desk = Device::desk(VILLAGE, "desk-village");
    let scans = papers
        .iter()
        .enumerate()
        .map(|(i, (doc, kind, title))| {
            desk.register_document(at_ms + i as i64 * 1000, document(doc, &case_id, *kind, title))
        })
        .collect();
    upload_recorded(cluster, VILLAGE, &desk.principal, scans).await;
    wait_case_documents(cluster, T1, &case_id, papers.len()).await;
    wait_case_documents(cluster, COUNTY, &case_id, papers.len()).await;
    case_id
}

/// The scan ids of `scans` that are about box `box_id`.
fn box_scan_ids(scans: &[&pb::Scan], box_id: &str) -> Vec<String> {
    scans
        .iter()
        .filter(|s| s.box_id == box_id)
        .map(|s| s.scan_id.clone())
        .collect()
}

/// What a location says, field by field, so a failed comparison shows which one differs.
#[derive(Debug, PartialEq, Eq)]
struct At {
    container: String,
    trip: String,
    custodian: String,
    pending: String,
    place: String,
    verified: bool,
    since: i64,
}

fn at(w: &pb::ObjectWhereabouts) -> At {
    let l = w.location.clone().unwrap_or_default();
    At {
        container: l.container,
        trip: l.trip_id,
        custodian: l.custodian,
        pending: l.pending_custodian,
        place: l.place,
        verified: l.verified,
        since: l.since_unix_ms,
    }
}

fn expect(container: &str, trip: &str, custodian: &str, pending: &str, place: &str, verified: bool, since: i64) -> At {
    At {
        container: container.to_owned(),
        trip: trip.to_owned(),
        custodian: custodian.to_owned(),
        pending: pending.to_owned(),
        place: place.to_owned(),
        verified,
        since,
    }
}

fn node(code: &str) -> String {
    format!("node:{code}")
}

/// Follows one document by the county's knowledge, step after step of its trips.
struct CountyWatch<'a> {
    cluster: &'a Cluster,
    doc: &'a str,
}

impl CountyWatch<'_> {
    /// Uploads `scans` made on `device` at node `uploaded_at`, waits until the county holds them
    /// (they may have to travel up), and checks where the county says the document is.
    async fn after(&self, what: &str, uploaded_at: &str, device: &Device, scans: Vec<pb::Scan>, expected: At) {
        let box_id = scans.iter().find(|s| !s.box_id.is_empty()).map(|s| s.box_id.clone());
        let ids: Vec<String> = scans.iter().map(|s| s.scan_id.clone()).collect();
        upload_recorded(self.cluster, uploaded_at, &device.principal, scans).await;
        if let Some(box_id) = box_id {
            wait_box_scans(self.cluster, COUNTY, &box_id, &ids).await;
        }
        let seen = document_whereabouts(self.cluster, COUNTY, self.doc).await;
        assert_eq!(at(&seen), expected, "{what}: where the county says {} is", self.doc);
    }
}

/// The anomalies `node` lists by default, as (key, kind, township).
async fn anomaly_summary(cluster: &Cluster, node: &str) -> Vec<(String, String, String)> {
    open_anomalies(cluster, node)
        .await
        .into_iter()
        .map(|a| (a.anomaly_key, a.kind, a.township))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A full round trip
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_round_trip_county_township_with_verified_locations() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    round_trip(&custody_tree(dir.path(), false).await).await;
}

/// The same round trip with the county's store on PostgreSQL: the multi-row scan statements,
/// the object index and the where-is queries on the other backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_round_trip_with_the_county_on_postgresql() {
    setup();
    let Some((_pg, stores)) = tests::pg::county_on_postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree_on(dir.path(), false, stores).await;
    assert_eq!(ops::status(&cluster, &id(COUNTY)).await.storage, "postgresql");
    round_trip(&cluster).await;
}

/// Out county → township and back, every location checked at the county after every step.
async fn round_trip(cluster: &Cluster) {
    let base = base_ms();
    let t = |m: i64| base + m * MINUTE;
    // Every node's "now" after the last scan, and frozen: no waiting limit is ever passed.
    freeze_clocks(cluster, t(150));

    let (d1, d2, d3) = ("DOC-RT-1", "DOC-RT-2", "DOC-RT-3");
    let case_id = village_case_with_papers(
        cluster,
        t(0),
        &[
            (d1, DocumentKind::Original, "户口簿原件"),
            (d2, DocumentKind::Copy, "身份证复印件"),
        ],
    )
    .await;
    let mut county_desk = Device::desk(COUNTY, "desk-county");
    let mut township_desk = Device::desk(T1, "desk-township");
    let mut pda = Device::handheld(COUNTY, "pda-1");
    let courier_who = pda.who();
    let (county, township) = (node(COUNTY), node(T1));
    let bx = "BOX-RT";
    let watch = CountyWatch { cluster, doc: d1 };

    // Before anything moves: registered, and so verified, at the village.
    let registered = document_whereabouts(cluster, COUNTY, d1).await;
    assert_eq!(at(&registered), expect("", "", &node(VILLAGE), "", VILLAGE, true, t(0)));
    assert_eq!(registered.location.as_ref().unwrap().case_id, case_id);
    let registered_box = vec![county_desk.register_box(t(5), bx)];
    upload_recorded(cluster, COUNTY, &county_desk.principal, registered_box).await;

    // Out: county → township.
    let out = Trip::new(bx, "TRIP-RT-OUT", COUNTY, T1, &[d1, d2]);
    let scans = vec![county_desk.pack(t(10), &out)];
    let packed = expect(bx, &out.trip_id, &county, "", COUNTY, true, t(10));
    watch
        .after("packed at the county", COUNTY, &county_desk, scans, packed)
        .await;
    let scans = vec![county_desk.seal(t(11), &out)];
    let sealed = expect(bx, &out.trip_id, &county, "", COUNTY, true, t(10));
    watch.after("sealed", COUNTY, &county_desk, scans, sealed).await;
    let scans = vec![county_desk.release_to_courier(t(12), &out, &pda.principal)];
    let released = expect(bx, &out.trip_id, &county, &courier_who, COUNTY, true, t(10));
    watch
        .after("released to the courier", COUNTY, &county_desk, scans, released)
        .await;
    // The courier's handheld syncs at the county when it takes the box...
    let scans = vec![pda.courier_accept(t(13), &out)];
    let taken = expect(bx, &out.trip_id, &courier_who, "", "in transit", false, t(13));
    watch.after("accepted by the courier", COUNTY, &pda, scans, taken).await;
    // ...and at the township when it arrives.
    let scans = vec![pda.en_route(t(30), &out, "华城镇路口")];
    let on_road = expect(
        bx,
        &out.trip_id,
        &courier_who,
        "",
        "in transit, last seen at 华城镇路口",
        false,
        t(13),
    );
    watch.after("scanned on the road", T1, &pda, scans, on_road).await;
    let scans = vec![pda.release_at_destination(t(50), &out, &township_desk.principal)];
    let arrived = expect(
        bx,
        &out.trip_id,
        &courier_who,
        &township_desk.who(),
        "in transit, last seen at 华城镇路口",
        false,
        t(13),
    );
    watch.after("released at the township", T1, &pda, scans, arrived).await;
    let scans = vec![township_desk.destination_accept(t(52), &out, &out.seal, true)];
    let received = expect(bx, &out.trip_id, &township, "", T1, false, t(52));
    watch
        .after("accepted at the township", T1, &township_desk, scans, received)
        .await;
    let scans = vec![township_desk.unpack(t(55), &out, &out.documents)];
    let unpacked = expect("", "", &township, "", T1, true, t(55));
    watch
        .after("unpacked at the township", T1, &township_desk, scans, unpacked)
        .await;

    // Back: the township registers the result certificate and sends everything to the county.
    let result = document(d3, &case_id, DocumentKind::ResultCertificate, "宅基地批准书");
    let registered_result = vec![township_desk.register_document(t(70), result)];
    upload_recorded(cluster, T1, &township_desk.principal, registered_result).await;
    wait_case_documents(cluster, COUNTY, &case_id, 3).await;
    let back = Trip::new(bx, "TRIP-RT-BACK", T1, COUNTY, &[d1, d2, d3]);
    let scans = vec![township_desk.pack(t(80), &back)];
    let packed = expect(bx, &back.trip_id, &township, "", T1, true, t(80));
    watch
        .after("packed at the township", T1, &township_desk, scans, packed)
        .await;
    let scans = vec![township_desk.seal(t(81), &back)];
    let sealed = expect(bx, &back.trip_id, &township, "", T1, true, t(80));
    watch
        .after("sealed at the township", T1, &township_desk, scans, sealed)
        .await;
    let scans = vec![township_desk.release_to_courier(t(82), &back, &pda.principal)];
    let released = expect(bx, &back.trip_id, &township, &courier_who, T1, true, t(80));
    watch
        .after("released to the courier back", T1, &township_desk, scans, released)
        .await;
    let scans = vec![pda.courier_accept(t(83), &back)];
    let taken = expect(bx, &back.trip_id, &courier_who, "", "in transit", false, t(83));
    watch
        .after("accepted by the courier back", T1, &pda, scans, taken)
        .await;
    let scans = vec![pda.en_route(t(100), &back, "水寨大道")];
    let on_road = expect(
        bx,
        &back.trip_id,
        &courier_who,
        "",
        "in transit, last seen at 水寨大道",
        false,
        t(83),
    );
    watch.after("on the road back", COUNTY, &pda, scans, on_road).await;
    let scans = vec![pda.release_at_destination(t(120), &back, &county_desk.principal)];
    let arrived = expect(
        bx,
        &back.trip_id,
        &courier_who,
        &county_desk.who(),
        "in transit, last seen at 水寨大道",
        false,
        t(83),
    );
    watch
        .after("released at the county", COUNTY, &pda, scans, arrived)
        .await;
    let scans = vec![county_desk.destination_accept(t(122), &back, &back.seal, true)];
    let received = expect(bx, &back.trip_id, &county, "", COUNTY, false, t(122));
    watch
        .after("accepted at the county", COUNTY, &county_desk, scans, received)
        .await;
    let scans = vec![county_desk.unpack(t(125), &back, &back.documents)];
    let home = expect("", "", &county, "", COUNTY, true, t(125));
    watch
        .after("unpacked at the county", COUNTY, &county_desk, scans, home)
        .await;

    // The chain of DOC-RT-1: every link, oldest first, custody moving only on acceptance.
    let chain = document_whereabouts(cluster, COUNTY, d1).await.chain;
    let seen: Vec<(String, i32, String, bool, String)> = chain
        .iter()
        .map(|l| {
            (
                l.scan_id.clone(),
                l.step,
                l.biz_step.clone(),
                l.via_container,
                l.custodian_after.clone(),
            )
        })
        .collect();
    use CustodyStep as S;
    let link = |scan: &str, step: S, biz: &str, via: bool, after: &str| {
        (scan.to_owned(), step as i32, biz.to_owned(), via, after.to_owned())
    };
    let expected = vec![
        link(
            "desk-village-1",
            S::RegisterDocument,
            "commissioning",
            false,
            &node(VILLAGE),
        ),
        link("desk-county-2", S::Pack, "packing", false, &county),
        link("desk-county-3", S::Seal, "packing", true, &county),
        link("desk-county-4", S::ReleaseToCourier, "shipping", true, &county),
        link("pda-1-1", S::CourierAccept, "accepting", true, &courier_who),
        link("pda-1-2", S::EnRoute, "transporting", true, &courier_who),
        link("pda-1-3", S::ReleaseAtDestination, "arriving", true, &courier_who),
        link("desk-township-1", S::DestinationAccept, "receiving", true, &township),
        link("desk-township-2", S::Unpack, "unpacking", false, &township),
        link("desk-township-4", S::Pack, "packing", false, &township),
        link("desk-township-5", S::Seal, "packing", true, &township),
        link("desk-township-6", S::ReleaseToCourier, "shipping", true, &township),
        link("pda-1-4", S::CourierAccept, "accepting", true, &courier_who),
        link("pda-1-5", S::EnRoute, "transporting", true, &courier_who),
        link("pda-1-6", S::ReleaseAtDestination, "arriving", true, &courier_who),
        link("desk-county-5", S::DestinationAccept, "receiving", true, &county),
        link("desk-county-6", S::Unpack, "unpacking", false, &county),
    ];
    assert_eq!(seen, expected, "the custody chain of {d1} at the county");
    assert!(
        chain.windows(2).all(|w| w[0].scanned_unix_ms <= w[1].scanned_unix_ms),
        "the chain is not in event-time order: {chain:#?}"
    );
    assert!(chain.iter().all(|l| !l.voided), "nothing was voided: {chain:#?}");

    // The box's two trips, both over.
    let history = try_box_history(cluster, COUNTY, bx).await.unwrap();
    let trips: Vec<(String, String, String, String, Vec<String>)> = history
        .trips
        .iter()
        .map(|t| {
            (
                t.trip_id.clone(),
                t.origin.clone(),
                t.destination.clone(),
                t.state.clone(),
                t.manifest.clone(),
            )
        })
        .collect();
    assert_eq!(
        trips,
        vec![
            (
                out.trip_id.clone(),
                COUNTY.to_owned(),
                T1.to_owned(),
                "unpacked".to_owned(),
                out.documents.clone()
            ),
            (
                back.trip_id.clone(),
                T1.to_owned(),
                COUNTY.to_owned(),
                "unpacked".to_owned(),
                back.documents.clone()
            ),
        ]
    );
    // The result certificate came in the box too, scanned out at the county.
    let certificate = document_whereabouts(cluster, COUNTY, d3).await;
    assert_eq!(at(&certificate), expect("", "", &county, "", COUNTY, true, t(125)));

    // A normal round trip breaks nothing, at any tier.
    for place in [COUNTY, T1, VILLAGE] {
        wait_box_scans(
            cluster,
            place,
            bx,
            &history.scans.iter().map(|l| l.scan_id.clone()).collect::<Vec<_>>(),
        )
        .await;
        let listed = anomaly_summary(cluster, place).await;
        assert!(
            listed.is_empty(),
            "a normal round trip raised anomalies at {place}: {listed:#?}"
        );
    }
    ops::assert_no_alarms(cluster, &cluster.ids()).await;
}

// ---------------------------------------------------------------------------------------------
// 2. An offline courier's queue uploaded twice
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_courier_queue_uploaded_twice_at_two_nodes_is_recorded_once() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = custody_tree(dir.path(), false).await;
    let base = base_ms();
    let t = |m: i64| base + m * MINUTE;
    village_case_with_papers(&cluster, t(0), &[("DOC-Q-1", DocumentKind::Original, "户口簿原件")]).await;

    let mut desk = Device::desk(COUNTY, "desk-county");
    let mut pda = Device::handheld(COUNTY, "pda-q");
    let trip = Trip::new("BOX-Q", "TRIP-Q", COUNTY, T1, &["DOC-Q-1"]);
    let sent = vec![
        desk.register_box(t(5), &trip.box_id),
        desk.pack(t(10), &trip),
        desk.seal(t(11), &trip),
        desk.release_to_courier(t(12), &trip, &pda.principal),
    ];
    upload_recorded(&cluster, COUNTY, &desk.principal, sent.clone()).await;

    // The handheld's queue; scan 3 did not make it into the queue (it turns up later).
    let accept = pda.courier_accept(t(13), &trip);
    let road = pda.en_route(t(30), &trip, "华城镇路口");
    let late = pda.en_route(t(40), &trip, "岐岭");
    let road2 = pda.en_route(t(45), &trip, "水寨大道");
    let arrive = pda.release_at_destination(t(50), &trip, &clerk(T1));
    let queue = vec![accept, road, road2, arrive];
    let queue_ids: Vec<String> = queue.iter().map(|s| s.scan_id.clone()).collect();

    // First upload at the township: every scan recorded.
    upload_recorded(&cluster, T1, &pda.principal, queue.clone()).await;
    wait_box_scans(&cluster, COUNTY, &trip.box_id, &queue_ids).await;

    // Then at the county, which already holds them by replication: duplicates, nothing new.
    let before = events_stored(&cluster, COUNTY).await;
    let again = upload(&cluster, COUNTY, &pda.principal, queue.clone()).await;
    assert_eq!(
        (again.recorded, again.duplicates, again.refused),
        (0, 4, 0),
        "{again:#?}"
    );
    assert!(
        again.outcomes.iter().all(|o| o.result == Outcome::Duplicate as i32),
        "{again:#?}"
    );
    // And once more at the township.
    let township_before = events_stored(&cluster, T1).await;
    let third = upload(&cluster, T1, &pda.principal, queue.clone()).await;
    assert_eq!(
        (third.recorded, third.duplicates, third.refused),
        (0, 4, 0),
        "{third:#?}"
    );
    assert_eq!(
        events_stored(&cluster, COUNTY).await,
        before,
        "a duplicate upload stored events at the county"
    );
    assert_eq!(
        events_stored(&cluster, T1).await,
        township_before,
        "a duplicate upload stored events at the township"
    );

    // Every tier lists each scan exactly once.
    let all_ids: Vec<String> = sent.iter().chain(queue.iter()).map(|s| s.scan_id.clone()).collect();
    for place in [COUNTY, T1, VILLAGE] {
        let history = wait_box_scans(&cluster, place, &trip.box_id, &all_ids).await;
        assert_each_scan_once(&history, &all_ids, place);
    }

    // The missing number 3 is a gap at the county, the one node that receives every scan of
    // every device (a township holds only its own trips' scans, so it cannot judge gaps).
    for place in [COUNTY] {
        let gaps = gaps_of(&cluster, place, "pda-q").await;
        assert_eq!(
            gaps,
            vec![("device_sequence_gap/pda-q/3".to_owned(), T1.to_owned())],
            "the gap in pda-q's numbers as {place} lists it"
        );
    }

    // Scan 3 turns up while the township is down: the courier uploads it at the village and at
    // the county, neither of which can know of the other's copy.
    cluster.stop(&id(T1)).await.unwrap();
    upload_recorded(&cluster, VILLAGE, &pda.principal, vec![late.clone()]).await;
    upload_recorded(&cluster, COUNTY, &pda.principal, vec![late.clone()]).await;
    cluster.start(&id(T1)).await.unwrap();
    let mut all_ids = all_ids;
    all_ids.push(late.scan_id.clone());
    for place in [COUNTY, T1, VILLAGE] {
        let history = wait_box_scans(&cluster, place, &trip.box_id, &all_ids).await;
        assert_each_scan_once(&history, &all_ids, place);
    }
    // Two copies of one scan meet at every node: still one scan, the gap closed, no conflict.
    for place in [COUNTY, T1] {
        wait_for(TIMEOUT, &format!("{place} to close pda-q's gap"), || async {
            let gaps = gaps_of(&cluster, place, "pda-q").await;
            if gaps.is_empty() {
                Ok(())
            } else {
                Err(format!("{gaps:?}"))
            }
        })
        .await;
        let conflicts = list_anomalies(
            &cluster,
            place,
            pb::ListAnomaliesRequest {
                kind: "conflicting_duplicate".into(),
                ..Default::default()
            },
        )
        .await;
        assert!(
            conflicts.is_empty(),
            "identical copies are not a conflict at {place}: {conflicts:#?}"
        );
    }
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

/// Panics unless `history` lists each of `ids` exactly once and nothing else.
fn assert_each_scan_once(history: &pb::BoxHistoryResponse, ids: &[String], place: &str) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for link in &history.scans {
        *counts.entry(link.scan_id.as_str()).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = ids.iter().map(|i| (i.as_str(), 1)).collect();
    assert_eq!(counts, expected, "how many times {place} lists each scan of the box");
}

/// The open device-sequence gaps of `device` at `node`, as (key, township).
async fn gaps_of(cluster: &Cluster, node: &str, device: &str) -> Vec<(String, String)> {
    list_anomalies(
        cluster,
        node,
        pb::ListAnomaliesRequest {
            kind: "device_sequence_gap".into(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .filter(|a| a.anomaly_key.starts_with(&format!("device_sequence_gap/{device}/")))
    .map(|a| (a.anomaly_key, a.township))
    .collect()
}

// ---------------------------------------------------------------------------------------------
// 3. Each anomaly from its cause
// ---------------------------------------------------------------------------------------------

/// The people and devices of one trip: the sending clerk, the courier, the receiving clerk, and
/// the node each uploads at.
struct Crew {
    sender: Device,
    sender_at: &'static str,
    courier: Device,
    courier_at: &'static str,
    receiver: Device,
    receiver_at: &'static str,
}

impl Crew {
    /// County clerk → courier → township clerk; the courier syncs at the county. Device ids carry
    /// `tag`.
    fn county_to_township(tag: &str) -> Crew {
        Crew {
            sender: Device::desk(COUNTY, &format!("desk-{tag}-c")),
            sender_at: COUNTY,
            courier: Device::handheld(COUNTY, &format!("pda-{tag}")),
            courier_at: COUNTY,
            receiver: Device::desk(T1, &format!("desk-{tag}-t")),
            receiver_at: T1,
        }
    }

    /// Where the maker of `scan` uploads it, and as whom.
    fn uploader(&self, scan: &pb::Scan) -> (&'static str, &Principal) {
        [
            (&self.sender, self.sender_at),
            (&self.courier, self.courier_at),
            (&self.receiver, self.receiver_at),
        ]
        .into_iter()
        .find(|(d, _)| d.id == scan.device_id)
        .map(|(d, at)| (at, &d.principal))
        .unwrap_or_else(|| panic!("scan {} was made on no device of the crew", scan.scan_id))
    }

    /// Uploads `scans` in order, each run of one device's scans by its maker where they upload;
    /// every scan must be recorded.
    async fn upload(&self, cluster: &Cluster, scans: &[&pb::Scan]) {
        let mut i = 0;
        while i < scans.len() {
            let device = &scans[i].device_id;
            let (at, who) = self.uploader(scans[i]);
            let mut run = Vec::new();
            while i < scans.len() && &scans[i].device_id == device {
                run.push(scans[i].clone());
                i += 1;
            }
            upload_recorded(cluster, at, who, run).await;
        }
    }
}

/// A trip as it should go, scan by scan; a scenario changes what its situation needs.
struct Run {
    register_box: Option<pb::Scan>,
    pack: pb::Scan,
    seal: pb::Scan,
    release: pb::Scan,
    accept: pb::Scan,
    en_route: pb::Scan,
    arrive: pb::Scan,
    receive: pb::Scan,
    unpack: pb::Scan,
}

impl Run {
    /// Every scan of a trip that goes as it should, from the box's registration (when asked) to
    /// its unpacking, starting at `t0`.
    fn normal(crew: &mut Crew, trip: &Trip, t0: i64, register_box: bool) -> Run {
        let m = |n: i64| t0 + n * MINUTE;
        Run {
            register_box: register_box.then(|| crew.sender.register_box(m(0), &trip.box_id)),
            pack: crew.sender.pack(m(1), trip),
            seal: crew.sender.seal(m(2), trip),
            release: crew.sender.release_to_courier(m(3), trip, &crew.courier.principal),
            accept: crew.courier.courier_accept(m(4), trip),
            en_route: crew.courier.en_route(m(20), trip, "华城镇路口"),
            arrive: crew
                .courier
                .release_at_destination(m(40), trip, &crew.receiver.principal),
            receive: crew.receiver.destination_accept(m(41), trip, &trip.seal, true),
            unpack: crew.receiver.unpack(m(42), trip, &trip.documents),
        }
    }

    fn scans(&self) -> Vec<&pb::Scan> {
        let mut all: Vec<&pb::Scan> = self.register_box.iter().collect();
        all.extend([
            &self.pack,
            &self.seal,
            &self.release,
            &self.accept,
            &self.en_route,
            &self.arrive,
            &self.receive,
            &self.unpack,
        ]);
        all
    }
}

/// What one scenario must show.
struct Expectation {
    name: &'static str,
    /// Part of every id of the scenario ("box-k02", "pda-k02", ...), so its anomalies can be
    /// picked out of everything a node lists.
    tag: &'static str,
    /// The scans each node must hold (node, box, scan ids) before the scenario is judged there.
    holds: Vec<(&'static str, String, Vec<String>)>,
    /// Where the anomalies are judged.
    nodes: Vec<&'static str>,
    /// The anomaly kinds the scenario must raise there, and no other.
    kinds: Vec<&'static str>,
    /// The township concerned its anomalies must name, when the contract pins it down.
    township: Option<&'static str>,
    /// The scan that caused it, which one of its anomalies must name (as its scan or in its
    /// detail) so a clerk can find it.
    names_scan: Option<String>,
}

impl Expectation {
    /// A scenario about trips between the county and T1, judged at both.
    fn new(name: &'static str, tag: &'static str, scans: &[&pb::Scan], kinds: &[&'static str]) -> Expectation {
        let nodes = vec![T1, COUNTY];
        let boxes: BTreeSet<&str> = scans
            .iter()
            .map(|s| s.box_id.as_str())
            .filter(|b| !b.is_empty())
            .collect();
        let holds = nodes
            .iter()
            .flat_map(|n| boxes.iter().map(|b| (*n, (*b).to_owned(), box_scan_ids(scans, b))))
            .collect();
        Expectation {
            name,
            tag,
            holds,
            nodes,
            kinds: kinds.to_vec(),
            township: Some(T1),
            names_scan: None,
        }
    }

    /// The same, naming the scan that caused it.
    fn naming(self, scan: &pb::Scan) -> Expectation {
        Expectation {
            names_scan: Some(scan.scan_id.clone()),
            ..self
        }
    }
}

/// The two paper files of a scenario (registered at the village before the scenarios run).
fn docs(tag: &str) -> [String; 2] {
    [format!("doc-{tag}-1"), format!("doc-{tag}-2")]
}

/// Trip `trip-<tag><suffix>` of box `box-<tag><box_suffix>`.
fn trip_of(tag: &str, suffix: &str, box_suffix: &str, origin: &str, destination: &str, documents: &[String]) -> Trip {
    let documents: Vec<&str> = documents.iter().map(String::as_str).collect();
    Trip::new(
        &format!("box-{tag}{box_suffix}"),
        &format!("trip-{tag}{suffix}"),
        origin,
        destination,
        &documents,
    )
}

/// A county → T1 trip whose normal run `change` turns into the situation; uploads it and says
/// what it must raise.
async fn changed_trip(
    cluster: &Cluster,
    (name, tag): (&'static str, &'static str),
    t0: i64,
    kinds: &[&'static str],
    change: impl FnOnce(&mut Run) -> Option<pb::Scan>,
) -> Expectation {
    let mut crew = Crew::county_to_township(tag);
    let trip = trip_of(tag, "", "", COUNTY, T1, &docs(tag));
    let mut run = Run::normal(&mut crew, &trip, t0, true);
    let culprit = change(&mut run);
    crew.upload(cluster, &run.scans()).await;
    let expectation = Expectation::new(name, tag, &run.scans(), kinds);
    match culprit {
        Some(scan) => expectation.naming(&scan),
        None => expectation,
    }
}

/// The scenario tags, one per situation.
const TAGS: [&str; 14] = [
    "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10", "k11", "k12", "k13", "k14",
];

/// Uploads every scenario (they share one tree; all their ids carry their tag) and returns what
/// each must show.
async fn stage_scenarios(cluster: &Cluster, base: i64) -> Vec<Expectation> {
    let t0 = base + 10 * MINUTE;
    vec![
        normal_day(cluster, t0).await,
        changed_trip(cluster, ("seal broken", "k02"), t0, &["seal_broken"], |run| {
            run.receive.seal_intact = false;
            None
        })
        .await,
        changed_trip(cluster, ("seal changed", "k03"), t0, &["seal_broken"], |run| {
            run.receive.seal_number = "SEAL-SOMETHING-ELSE".into();
            None
        })
        .await,
        changed_trip(
            cluster,
            ("manifest shortage", "k04"),
            t0,
            &["manifest_shortage"],
            |run| {
                run.unpack.document_ids.truncate(1);
                None
            },
        )
        .await,
        changed_trip(cluster, ("manifest overage", "k05"), t0, &["manifest_overage"], |run| {
            // A registered paper of the case that was never packed turns up in the box.
            run.unpack.document_ids.push("doc-k05-x".into());
            None
        })
        .await,
        document_in_two_containers(cluster, t0).await,
        packed_not_empty(cluster, t0).await,
        changed_trip(
            cluster,
            ("courier accept dated before the pack", "k08"),
            t0,
            &["impossible_time"],
            |run| {
                run.accept.scanned_unix_ms = run.pack.scanned_unix_ms - 5 * MINUTE;
                Some(run.accept.clone())
            },
        )
        .await,
        changed_trip(
            cluster,
            ("a scan dated far in the future", "k09"),
            t0,
            &["impossible_time"],
            |run| {
                run.en_route.scanned_unix_ms += 3 * 24 * HOUR;
                Some(run.en_route.clone())
            },
        )
        .await,
        {
            let mut gap = changed_trip(
                cluster,
                ("device sequence gap", "k10"),
                t0,
                &["device_sequence_gap"],
                |run| {
                    // The handheld lost its scan 3: the release at the destination is its scan 4.
                    run.arrive.device_seq += 1;
                    run.arrive.scan_id = format!("{}-{}", run.arrive.device_id, run.arrive.device_seq);
                    None
                },
            )
            .await;
            // Gaps are judged where every scan of a device arrives: the county.
            gap.nodes = vec![COUNTY];
            gap
        },
        conflicting_duplicate(cluster, t0).await,
        unknown_trip(cluster, t0).await,
        clerk_makes_a_courier_scan(cluster, t0).await,
        misroute(cluster, t0).await,
    ]
}

/// A normal day: one county desk scanner and one courier serve two townships. A box goes out to
/// T1 with the village's papers; another comes in from the other township with that township's
/// own case. Nothing is broken, so nothing may be raised at either township or the county.
async fn normal_day(cluster: &Cluster, t0: i64) -> Expectation {
    let tag = "k01";
    let m = |n: i64| t0 + n * MINUTE;
    let case_id = submit_case(cluster, OTHER_TOWNSHIP).await;
    let mut other_desk = Device::desk(OTHER_TOWNSHIP, "desk-k01-o");
    let papers = ["doc-k01-3", "doc-k01-4"]
        .map(|d| other_desk.register_document(m(0), document(d, &case_id, DocumentKind::Original, "营业执照原件")));
    upload_recorded(cluster, OTHER_TOWNSHIP, &other_desk.principal, papers.to_vec()).await;

    let mut county_desk = Device::desk(COUNTY, "desk-k01-c");
    let mut pda = Device::handheld(COUNTY, "pda-k01");
    let mut township_desk = Device::desk(T1, "desk-k01-t");
    let out = trip_of(tag, "-out", "-a", COUNTY, T1, &docs(tag));
    let inbound = trip_of(
        tag,
        "-in",
        "-b",
        OTHER_TOWNSHIP,
        COUNTY,
        &["doc-k01-3".into(), "doc-k01-4".into()],
    );
    let county_out = vec![
        county_desk.register_box(m(0), &out.box_id),
        county_desk.pack(m(1), &out),
        county_desk.seal(m(2), &out),
        county_desk.release_to_courier(m(3), &out, &pda.principal),
    ];
    let other_out = vec![
        other_desk.register_box(m(1), &inbound.box_id),
        other_desk.pack(m(2), &inbound),
        other_desk.seal(m(3), &inbound),
        other_desk.release_to_courier(m(60), &inbound, &pda.principal),
    ];
    // The courier's round: the county's box to T1, then the other township's box back.
    let round = vec![
        pda.courier_accept(m(4), &out),
        pda.en_route(m(20), &out, "华城镇路口"),
        pda.release_at_destination(m(40), &out, &township_desk.principal),
        pda.courier_accept(m(61), &inbound),
        pda.en_route(m(75), &inbound, "岐岭"),
        pda.release_at_destination(m(90), &inbound, &county_desk.principal),
    ];
    let township_in = vec![
        township_desk.destination_accept(m(41), &out, &out.seal, true),
        township_desk.unpack(m(42), &out, &out.documents),
    ];
    let county_in = vec![
        county_desk.destination_accept(m(91), &inbound, &inbound.seal, true),
        county_desk.unpack(m(92), &inbound, &inbound.documents),
    ];
    upload_recorded(cluster, COUNTY, &county_desk.principal, county_out.clone()).await;
    upload_recorded(cluster, OTHER_TOWNSHIP, &other_desk.principal, other_out.clone()).await;
    // The courier syncs at the county once it knows both boxes' trips.
    wait_box_scans(
        cluster,
        COUNTY,
        &inbound.box_id,
        &box_scan_ids(&other_out.iter().collect::<Vec<_>>(), &inbound.box_id),
    )
    .await;
    upload_recorded(cluster, COUNTY, &pda.principal, round.clone()).await;
    upload_recorded(cluster, T1, &township_desk.principal, township_in.clone()).await;
    upload_recorded(cluster, COUNTY, &county_desk.principal, county_in.clone()).await;

    let all: Vec<&pb::Scan> = county_out
        .iter()
        .chain(&other_out)
        .chain(&round)
        .chain(&township_in)
        .chain(&county_in)
        .collect();
    let (a, b) = (box_scan_ids(&all, &out.box_id), box_scan_ids(&all, &inbound.box_id));
    Expectation {
        name: "a normal day's round",
        tag,
        holds: vec![
            (T1, out.box_id.clone(), a.clone()),
            (COUNTY, out.box_id.clone(), a),
            (OTHER_TOWNSHIP, inbound.box_id.clone(), b.clone()),
            (COUNTY, inbound.box_id.clone(), b),
        ],
        nodes: vec![T1, OTHER_TOWNSHIP, COUNTY],
        kinds: vec![],
        township: None,
        names_scan: None,
    }
}

async fn document_in_two_containers(cluster: &Cluster, t0: i64) -> Expectation {
    let tag = "k06";
    let mut crew = Crew::county_to_township(tag);
    let [d1, d2] = docs(tag);
    // Box A is packed with the first paper and stays; box B is then packed with it too.
    let first = trip_of(tag, "-a", "-a", COUNTY, T1, std::slice::from_ref(&d1));
    let reg_a = crew.sender.register_box(t0, &first.box_id);
    let pack_a = crew.sender.pack(t0 + MINUTE, &first);
    let second = trip_of(tag, "-b", "-b", COUNTY, T1, &[d1, d2]);
    let run = Run::normal(&mut crew, &second, t0 + 5 * MINUTE, true);
    let mut all = vec![&reg_a, &pack_a];
    all.extend(run.scans());
    crew.upload(cluster, &all).await;
    Expectation::new(
        "a paper packed in two boxes",
        tag,
        &all,
        &["document_in_two_containers"],
    )
}

async fn packed_not_empty(cluster: &Cluster, t0: i64) -> Expectation {
    let tag = "k07";
    let mut crew = Crew::county_to_township(tag);
    let [d1, d2] = docs(tag);
    // The box is packed for a trip that never leaves, then packed again (other papers) for another.
    let first = trip_of(tag, "-a", "", COUNTY, T1, std::slice::from_ref(&d1));
    let reg = crew.sender.register_box(t0, &first.box_id);
    let pack_a = crew.sender.pack(t0 + MINUTE, &first);
    let second = trip_of(tag, "-b", "", COUNTY, T1, std::slice::from_ref(&d2));
    let run = Run::normal(&mut crew, &second, t0 + 5 * MINUTE, false);
    let mut all = vec![&reg, &pack_a];
    all.extend(run.scans());
    crew.upload(cluster, &all).await;
    Expectation::new("a box packed while still on a trip", tag, &all, &["packed_not_empty"])
}

async fn conflicting_duplicate(cluster: &Cluster, t0: i64) -> Expectation {
    let tag = "k11";
    let mut crew = Crew::county_to_township(tag);
    let trip = trip_of(tag, "", "", COUNTY, T1, &docs(tag));
    let run = Run::normal(&mut crew, &trip, t0, true);
    let sent = [run.register_box.as_ref().unwrap(), &run.pack, &run.seal, &run.release];
    crew.upload(cluster, &sent).await;
    crew.upload(cluster, &[&run.accept, &run.en_route, &run.arrive]).await;
    // Once the township holds the courier's scans, a second copy of the road scan — same id,
    // another place — is uploaded there (before T1's own scans, so it reaches the county first).
    wait_box_scans(cluster, T1, &trip.box_id, std::slice::from_ref(&run.en_route.scan_id)).await;
    let other = pb::Scan {
        place: "岐岭".into(),
        ..run.en_route.clone()
    };
    // Recorded as evidence, with a message saying it conflicts (not a duplicate).
    let reply = upload(cluster, T1, &crew.courier.principal, vec![other]).await;
    assert!(
        reply.recorded == 1
            && reply.outcomes[0].result == Outcome::Recorded as i32
            && !reply.outcomes[0].message.is_empty(),
        "a conflicting copy is recorded with a message: {reply:#?}"
    );
    crew.upload(cluster, &[&run.receive, &run.unpack]).await;
    Expectation::new(
        "same scan id, different content",
        tag,
        &run.scans(),
        &["conflicting_duplicate"],
    )
    .naming(&run.en_route)
}

async fn unknown_trip(cluster: &Cluster, t0: i64) -> Expectation {
    let tag = "k12";
    let mut crew = Crew::county_to_township(tag);
    crew.courier_at = T1;
    let trip = trip_of(tag, "", "", COUNTY, T1, &docs(tag));
    // A real box, but the trip the courier accepts it for was never packed.
    let reg = crew.sender.register_box(t0, &trip.box_id);
    let accept = crew.courier.courier_accept(t0 + 4 * MINUTE, &trip);
    let all = [&reg, &accept];
    crew.upload(cluster, &all).await;
    Expectation::new("a courier accept for a trip never packed", tag, &all, &["unknown_id"])
}

async fn clerk_makes_a_courier_scan(cluster: &Cluster, t0: i64) -> Expectation {
    let tag = "k13";
    let mut crew = Crew::county_to_township(tag);
    let trip = trip_of(tag, "", "", COUNTY, T1, &docs(tag));
    let m = |n: i64| t0 + n * MINUTE;
    // The county clerk scans the courier's acceptance on the courier's behalf; the rest is normal.
    let scans = vec![
        crew.sender.register_box(m(0), &trip.box_id),
        crew.sender.pack(m(1), &trip),
        crew.sender.seal(m(2), &trip),
        crew.sender.release_to_courier(m(3), &trip, &crew.courier.principal),
        crew.sender.courier_accept(m(4), &trip),
        crew.courier.en_route(m(20), &trip, "华城镇路口"),
        crew.courier
            .release_at_destination(m(40), &trip, &crew.receiver.principal),
        crew.receiver.destination_accept(m(41), &trip, &trip.seal, true),
        crew.receiver.unpack(m(42), &trip, &trip.documents),
    ];
    let all: Vec<&pb::Scan> = scans.iter().collect();
    crew.upload(cluster, &all).await;
    Expectation::new("a clerk makes a courier scan", tag, &all, &["scan_not_allowed"]).naming(&scans[4])
}

async fn misroute(cluster: &Cluster, t0: i64) -> Expectation {
    let tag = "k14";
    let mut crew = Crew::county_to_township(tag);
    // The box is sent to T1, but the courier hands it over at the other township, whose clerk
    // accepts and unpacks it there.
    crew.receiver = Device::desk(OTHER_TOWNSHIP, "desk-k14-o");
    crew.receiver_at = OTHER_TOWNSHIP;
    let trip = trip_of(tag, "", "", COUNTY, T1, &docs(tag));
    let run = Run::normal(&mut crew, &trip, t0, true);
    crew.upload(cluster, &run.scans()).await;
    Expectation {
        // Which end must explain a misroute the contract leaves open.
        township: None,
        ..Expectation::new("accepted at the wrong township", tag, &run.scans(), &["misroute"])
    }
}

/// Polls until `node` holds `ids` of `box_id`; after `timeout`, says what it still lacks.
async fn holds_scans(
    cluster: &Cluster,
    node: &str,
    box_id: &str,
    ids: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let what = format!("{node} to hold {} scans of box {box_id}", ids.len());
    wait_until(deadline_in(timeout), &what, || async {
        match try_box_history(cluster, node, box_id).await {
            Ok(history) => {
                let missing: Vec<&String> = ids
                    .iter()
                    .filter(|i| !history.scans.iter().any(|l| &l.scan_id == *i))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("missing {missing:?}"))
                }
            }
            Err(s) => Err(format!("{:?} {}", s.code(), s.message())),
        }
    })
    .await
    .map_err(|e| e.last)
}

/// The anomalies of scenario `tag` among `listed`.
fn of_scenario<'a>(listed: &'a [pb::Anomaly], tag: &str) -> Vec<&'a pb::Anomaly> {
    let marker = format!("-{tag}");
    listed.iter().filter(|a| a.anomaly_key.contains(&marker)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_anomaly_is_raised_by_its_cause_and_not_by_a_normal_trip() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree(dir.path(), true).await;
    let base = base_ms();
    // Frozen two hours after the base: every scenario's scans are in the past, and no waiting
    // limit passes while the test runs (the waiting anomalies have their own test).
    freeze_clocks(&cluster, base + 2 * HOUR);
    let mut papers: Vec<String> = TAGS.iter().flat_map(|tag| docs(tag)).collect();
    papers.push("doc-k05-x".into());
    let papers: Vec<(&str, DocumentKind, &str)> = papers
        .iter()
        .map(|d| (d.as_str(), DocumentKind::Original, "申请材料原件"))
        .collect();
    village_case_with_papers(&cluster, base, &papers).await;

    let expectations = stage_scenarios(&cluster, base).await;

    // Judge every scenario at every node concerned, and report every mismatch at once.
    let mut failures = Vec::new();
    for e in &expectations {
        let mut keys_by_node: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for &place in &e.nodes {
            for (_, box_id, ids) in e.holds.iter().filter(|(n, _, _)| *n == place) {
                if let Err(last) = holds_scans(&cluster, place, box_id, ids, Duration::from_secs(30)).await {
                    failures.push(format!(
                        "{} [{}] at {place}: never received all scans of {box_id}: {last}",
                        e.name, e.tag
                    ));
                }
            }
            let listed = open_anomalies(&cluster, place).await;
            let mine = of_scenario(&listed, e.tag);
            let kinds: BTreeSet<&str> = mine.iter().map(|a| a.kind.as_str()).collect();
            let expected: BTreeSet<&str> = e.kinds.iter().copied().collect();
            if kinds != expected {
                let shown: Vec<(&str, &str)> = mine
                    .iter()
                    .map(|a| (a.anomaly_key.as_str(), a.detail.as_str()))
                    .collect();
                failures.push(format!(
                    "{} [{}] at {place}: expected kinds {expected:?}, listed {shown:#?}",
                    e.name, e.tag
                ));
            }
            if let Some(township) = e.township {
                for a in mine.iter().filter(|a| a.township != township) {
                    failures.push(format!(
                        "{} [{}] at {place}: {} names township {:?}, not {township}",
                        e.name, e.tag, a.anomaly_key, a.township
                    ));
                }
            }
            // Among the anomalies of the expected kinds, one must lead a clerk to the culprit.
            let raised: Vec<&&pb::Anomaly> = mine.iter().filter(|a| e.kinds.contains(&a.kind.as_str())).collect();
            if let Some(culprit) = &e.names_scan
                && !raised.is_empty()
                && !raised
                    .iter()
                    .any(|a| a.scan_id == *culprit || a.detail.contains(culprit.as_str()))
            {
                let named: Vec<(&str, &str)> = raised.iter().map(|a| (a.scan_id.as_str(), a.detail.as_str())).collect();
                failures.push(format!(
                    "{} [{}] at {place}: no {:?} anomaly names the scan that caused it, {culprit}: {named:#?}",
                    e.name, e.tag, e.kinds
                ));
            }
            keys_by_node.insert(place, mine.iter().map(|a| a.anomaly_key.clone()).collect());
        }
        // The township concerned and the county see the same anomalies.
        if let (Some(township), Some(county)) = (keys_by_node.get(T1), keys_by_node.get(COUNTY))
            && township != county
        {
            failures.push(format!(
                "{} [{}]: T1 lists {township:?}, the county {county:?}",
                e.name, e.tag
            ));
        }
    }
    // And nothing outside the scenarios (the village's registrations) raised anything.
    for place in [T1, OTHER_TOWNSHIP, COUNTY] {
        let listed = open_anomalies(&cluster, place).await;
        for a in listed.iter().filter(|a| {
            TAGS.iter()
                .all(|tag| of_scenario(std::slice::from_ref(a), tag).is_empty())
        }) {
            failures.push(format!(
                "at {place}: {} belongs to no scenario: {}",
                a.anomaly_key, a.detail
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

// ---------------------------------------------------------------------------------------------
// 3b. Waiting too long
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_anomalies_appear_when_the_clock_passes_their_limits() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree(dir.path(), false).await;
    let base = base_ms();
    let t = |m: i64| base + m * MINUTE;
    let clock = freeze_clocks(&cluster, t(20));
    let papers = [
        ("doc-w1", DocumentKind::Original, "户口簿原件"),
        ("doc-w2", DocumentKind::Original, "户口簿原件"),
        ("doc-w3", DocumentKind::Original, "户口簿原件"),
        ("doc-w4", DocumentKind::Original, "户口簿原件"),
    ];
    village_case_with_papers(&cluster, t(0), &papers).await;

    let mut desk = Device::desk(COUNTY, "desk-w");
    let mut pda = Device::handheld(COUNTY, "pda-w");
    let township_clerk = clerk(T1);
    let trip = |n: u32| {
        Trip::new(
            &format!("box-w{n}"),
            &format!("trip-w{n}"),
            COUNTY,
            T1,
            &[&format!("doc-w{n}")],
        )
    };
    let (w1, w2, w3, w4) = (trip(1), trip(2), trip(3), trip(4));
    let mut sent = Vec::new();
    for w in [&w1, &w2, &w3, &w4] {
        sent.extend([
            desk.register_box(t(5), &w.box_id),
            desk.pack(t(10), w),
            desk.seal(t(11), w),
        ]);
    }
    // W1 stays sealed; W2 is released and never taken; W3 is on the road; W4 waits at T1.
    for w in [&w2, &w3, &w4] {
        sent.push(desk.release_to_courier(t(12), w, &pda.principal));
    }
    let road = vec![
        pda.courier_accept(t(13), &w3),
        pda.courier_accept(t(13), &w4),
        pda.en_route(t(14), &w4, "华城镇路口"),
        pda.release_at_destination(t(15), &w4, &township_clerk),
    ];
    upload_recorded(&cluster, COUNTY, &desk.principal, sent.clone()).await;
    upload_recorded(&cluster, COUNTY, &pda.principal, road.clone()).await;
    let all: Vec<&pb::Scan> = sent.iter().chain(&road).collect();
    for place in [T1, COUNTY] {
        for w in [&w1, &w2, &w3, &w4] {
            wait_box_scans(&cluster, place, &w.box_id, &box_scan_ids(&all, &w.box_id)).await;
        }
    }

    let unack = "unacknowledged_handover";
    // (when, the clock, the (trip, kind) pairs listed then)
    let checkpoints = vec![
        ("just after the scans", t(20), vec![]),
        ("a minute before the hand-over limit", t(12) + 2 * HOUR - MINUTE, vec![]),
        (
            "past the hand-over limit",
            t(15) + 2 * HOUR + MINUTE,
            vec![("trip-w2", unack), ("trip-w4", unack)],
        ),
        (
            "a minute before the route time",
            t(13) + 8 * HOUR - MINUTE,
            vec![("trip-w2", unack), ("trip-w4", unack)],
        ),
        (
            "past the route time",
            t(13) + 8 * HOUR + MINUTE,
            vec![
                ("trip-w2", unack),
                ("trip-w3", "overdue_in_transit"),
                ("trip-w4", unack),
            ],
        ),
        (
            "a minute before the pick-up limit",
            t(11) + 24 * HOUR - MINUTE,
            vec![
                ("trip-w2", unack),
                ("trip-w3", "overdue_in_transit"),
                ("trip-w4", unack),
            ],
        ),
        (
            "past the pick-up limit",
            t(11) + 24 * HOUR + MINUTE,
            vec![
                ("trip-w1", "sealed_not_picked_up"),
                ("trip-w2", unack),
                ("trip-w3", "overdue_in_transit"),
                ("trip-w4", unack),
            ],
        ),
    ];
    for (what, now, expected) in checkpoints {
        clock.set_now_ms(now);
        let expected: BTreeSet<(String, String, String)> = expected
            .into_iter()
            .map(|(trip, kind)| (trip.to_owned(), kind.to_owned(), T1.to_owned()))
            .collect();
        for place in [T1, COUNTY] {
            let listed: BTreeSet<(String, String, String)> = open_anomalies(&cluster, place)
                .await
                .into_iter()
                .map(|a| (a.trip_id, a.kind, a.township))
                .collect();
            assert_eq!(listed, expected, "{what}: the anomalies {place} lists");
        }
    }
    // Which hand-over is unacknowledged is in the key: the courier's for W2, T1's for W4.
    let keys: BTreeSet<String> = open_anomalies(&cluster, COUNTY)
        .await
        .into_iter()
        .filter(|a| a.kind == unack)
        .map(|a| a.anomaly_key)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "unacknowledged_handover/trip/trip-w2/courier".to_owned(),
            "unacknowledged_handover/trip/trip-w4/destination".to_owned(),
        ])
    );
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

// ---------------------------------------------------------------------------------------------
// 3c. An anomaly's life
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anomaly_is_explained_then_closed_with_a_reason_at_both_tiers() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree(dir.path(), false).await;
    let base = base_ms();
    freeze_clocks(&cluster, base + 2 * HOUR);
    village_case_with_papers(
        &cluster,
        base,
        &[
            ("doc-life-1", DocumentKind::Original, "户口簿原件"),
            ("doc-life-2", DocumentKind::Copy, "身份证复印件"),
        ],
    )
    .await;
    // A box arrives at the township with its seal broken.
    let mut crew = Crew::county_to_township("life");
    let trip = trip_of("life", "", "", COUNTY, T1, &docs("life"));
    let mut run = Run::normal(&mut crew, &trip, base + 10 * MINUTE, true);
    run.receive.seal_intact = false;
    crew.upload(&cluster, &run.scans()).await;
    let key = format!("seal_broken/trip/{}", trip.trip_id);
    let state_at = |place: &'static str, state: AnomalyState| {
        let cluster = &cluster;
        let key = key.clone();
        async move {
            list_anomalies(
                cluster,
                place,
                pb::ListAnomaliesRequest {
                    state: state as i32,
                    ..Default::default()
                },
            )
            .await
            .into_iter()
            .find(|a| a.anomaly_key == key)
        }
    };
    for place in [T1, COUNTY] {
        wait_for(TIMEOUT, &format!("{place} to list {key} open"), || async {
            state_at(place, AnomalyState::Open)
                .await
                .map(|_| ())
                .ok_or("not listed".to_owned())
        })
        .await;
    }

    // The township's clerk explains it; an empty explanation is refused.
    let township_clerk = &crew.receiver.principal;
    let empty = note_anomaly(&cluster, T1, township_clerk, &key, AnomalyState::Explained, "   ").await;
    assert_eq!(empty.map(|a| a.state).unwrap_err().code(), Code::InvalidArgument);
    assert!(
        state_at(T1, AnomalyState::Open).await.is_some(),
        "a refused note changed the state"
    );
    let explanation = "运输途中遇雨，封条受潮脱落；开箱清点材料齐全";
    let explained = note_anomaly(&cluster, T1, township_clerk, &key, AnomalyState::Explained, explanation)
        .await
        .unwrap();
    assert_eq!(explained.state, AnomalyState::Explained as i32);
    assert_eq!(explained.explanation, explanation);
    assert_eq!(explained.noted_by, township_clerk.to_string());

    // The explanation reaches the county.
    let at_county = wait_for(TIMEOUT, "the county to see the explanation", || async {
        state_at(COUNTY, AnomalyState::Explained)
            .await
            .ok_or("not explained there yet".to_owned())
    })
    .await;
    assert_eq!(at_county.explanation, explanation);
    assert!(
        open_anomalies(&cluster, COUNTY)
            .await
            .iter()
            .any(|a| a.anomaly_key == key),
        "an explained anomaly is still listed by default"
    );

    // The county closes it; not without a reason.
    let county_admin = Principal::operator(id(COUNTY), "admin").unwrap();
    let empty = note_anomaly(&cluster, COUNTY, &county_admin, &key, AnomalyState::Closed, "").await;
    assert_eq!(empty.map(|a| a.state).unwrap_err().code(), Code::InvalidArgument);
    let reason = "已核实材料完整，封条更换为 SEAL-0099";
    let closed = note_anomaly(&cluster, COUNTY, &county_admin, &key, AnomalyState::Closed, reason)
        .await
        .unwrap();
    assert_eq!(closed.state, AnomalyState::Closed as i32);
    assert_eq!(closed.close_reason, reason);

    // The closed state reaches the township; a closed anomaly leaves the default lists.
    let at_township = wait_for(TIMEOUT, "the township to see it closed", || async {
        state_at(T1, AnomalyState::Closed)
            .await
            .ok_or("not closed there yet".to_owned())
    })
    .await;
    assert_eq!(at_township.close_reason, reason);
    assert_eq!(at_township.explanation, explanation, "closing keeps the explanation");
    for place in [T1, COUNTY] {
        let listed = anomaly_summary(&cluster, place).await;
        assert!(
            listed.is_empty(),
            "{place} still lists a closed anomaly by default: {listed:#?}"
        );
    }
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

// ---------------------------------------------------------------------------------------------
// 4. Pending custody
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_without_the_receivers_accept_stays_pending() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree(dir.path(), false).await;
    let base = base_ms();
    let t = |m: i64| base + m * MINUTE;
    freeze_clocks(&cluster, t(60));
    village_case_with_papers(&cluster, t(0), &[("DOC-P-1", DocumentKind::Original, "户口簿原件")]).await;
    let mut desk = Device::desk(COUNTY, "desk-county");
    let mut pda = Device::handheld(COUNTY, "pda-p");
    let township_clerk = clerk(T1);
    let trip = Trip::new("BOX-P", "TRIP-P", COUNTY, T1, &["DOC-P-1"]);
    let (county, township, courier_who) = (node(COUNTY), node(T1), pda.who());

    // Released to the courier, who has not accepted: the county still holds the box.
    let sent = vec![
        desk.register_box(t(5), &trip.box_id),
        desk.pack(t(10), &trip),
        desk.seal(t(11), &trip),
        desk.release_to_courier(t(12), &trip, &pda.principal),
    ];
    upload_recorded(&cluster, COUNTY, &desk.principal, sent.clone()).await;
    let release_id = sent[3].scan_id.clone();
    let pending_courier = (county.as_str(), courier_who.as_str(), COUNTY);
    check_custody(&cluster, &trip, &sent, pending_courier, "released, not accepted").await;
    let chain = box_whereabouts(&cluster, COUNTY, &trip.box_id).await.chain;
    let release = chain.iter().find(|l| l.scan_id == release_id).unwrap();
    assert_eq!(release.custodian_after, county, "a release does not move custody");

    // The courier accepts: custody moves, nothing is pending.
    let accept = vec![pda.courier_accept(t(13), &trip)];
    upload_recorded(&cluster, T1, &pda.principal, accept.clone()).await;
    let all: Vec<pb::Scan> = sent.iter().chain(&accept).cloned().collect();
    check_custody(
        &cluster,
        &trip,
        &all,
        (courier_who.as_str(), "", "in transit"),
        "accepted by the courier",
    )
    .await;

    // Released at the township, not yet accepted there: still the courier's, T1's clerk pending.
    let arrive = vec![pda.release_at_destination(t(40), &trip, &township_clerk)];
    upload_recorded(&cluster, T1, &pda.principal, arrive.clone()).await;
    let all: Vec<pb::Scan> = all.into_iter().chain(arrive).collect();
    let pending_township = (courier_who.as_str(), "operator:441424100:clerk", "in transit");
    check_custody(
        &cluster,
        &trip,
        &all,
        pending_township,
        "released at the township, not accepted",
    )
    .await;

    // T1 accepts: custody moves to the township.
    let mut township_desk = Device::desk(T1, "desk-township");
    let receive = vec![township_desk.destination_accept(t(41), &trip, &trip.seal, true)];
    upload_recorded(&cluster, T1, &township_desk.principal, receive.clone()).await;
    let all: Vec<pb::Scan> = all.into_iter().chain(receive).collect();
    check_custody(
        &cluster,
        &trip,
        &all,
        (township.as_str(), "", T1),
        "accepted at the township",
    )
    .await;
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

/// Checks, at the county and at the township once they hold `scans`, that the box of `trip` and
/// its first document are with `custodian`, `pending` to be handed to, at `place`.
async fn check_custody(cluster: &Cluster, trip: &Trip, scans: &[pb::Scan], expected: (&str, &str, &str), what: &str) {
    let (custodian, pending, place) = expected;
    let ids: Vec<String> = scans
        .iter()
        .filter(|s| s.box_id == trip.box_id)
        .map(|s| s.scan_id.clone())
        .collect();
    for at_node in [COUNTY, T1] {
        wait_box_scans(cluster, at_node, &trip.box_id, &ids).await;
        for w in [
            box_whereabouts(cluster, at_node, &trip.box_id).await,
            document_whereabouts(cluster, at_node, &trip.documents[0]).await,
        ] {
            let l = w.location.unwrap();
            assert_eq!(
                (l.custodian.as_str(), l.pending_custodian.as_str(), l.place.as_str()),
                (custodian, pending, place),
                "{what}: {} {} at {at_node} (custodian, pending custodian, place)",
                l.object_kind,
                l.object_id
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Error declarations and voided departures
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_declarations_void_a_scan_and_a_void_departure_returns_the_box() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree(dir.path(), false).await;
    let base = base_ms();
    let t = |m: i64| base + m * MINUTE;
    let clock = freeze_clocks(&cluster, t(100));
    village_case_with_papers(
        &cluster,
        t(0),
        &[
            ("DOC-E-1", DocumentKind::Original, "户口簿原件"),
            ("DOC-E-2", DocumentKind::Copy, "身份证复印件"),
        ],
    )
    .await;
    let mut desk = Device::desk(COUNTY, "desk-county");
    let mut pda = Device::handheld(COUNTY, "pda-e");
    let courier_who = pda.who();

    // A box on the road, scanned at a place it never was.
    let road_trip = Trip::new("BOX-E", "TRIP-E", COUNTY, T1, &["DOC-E-1"]);
    let sent = vec![
        desk.register_box(t(1), &road_trip.box_id),
        desk.pack(t(2), &road_trip),
        desk.seal(t(3), &road_trip),
        desk.release_to_courier(t(4), &road_trip, &pda.principal),
    ];
    upload_recorded(&cluster, COUNTY, &desk.principal, sent).await;
    let wrong = pda.en_route(t(20), &road_trip, "梅林镇");
    let taken = vec![pda.courier_accept(t(5), &road_trip), wrong.clone()];
    upload_recorded(&cluster, COUNTY, &pda.principal, taken).await;
    let cluster_ref = &cluster;
    let box_place = |place: &'static str| async move { box_whereabouts(cluster_ref, place, "BOX-E").await };
    wait_box_scans(&cluster, T1, "BOX-E", std::slice::from_ref(&wrong.scan_id)).await;
    for place in [COUNTY, T1] {
        let w = box_place(place).await;
        assert_eq!(
            w.location.unwrap().place,
            "in transit, last seen at 梅林镇",
            "{place} before the declaration"
        );
    }

    // The courier declares that scan an error: it stays in the chain, marked, and no longer counts.
    let declaration = pda.declare_error(t(25), &wrong.scan_id, "扫错了箱子：该箱未经梅林镇");
    upload_recorded(&cluster, COUNTY, &pda.principal, vec![declaration]).await;
    for place in [COUNTY, T1] {
        let w = wait_for(TIMEOUT, &format!("{place} to void {}", wrong.scan_id), || async {
            let w = box_place(place).await;
            match w.chain.iter().find(|l| l.scan_id == wrong.scan_id) {
                Some(l) if l.voided => Ok(w),
                Some(_) => Err("listed, not voided".to_owned()),
                None => Err("not in the chain".to_owned()),
            }
        })
        .await;
        let l = w.location.unwrap();
        assert_eq!(
            (l.custodian.as_str(), l.place.as_str()),
            (courier_who.as_str(), "in transit"),
            "{place}: the voided scan must no longer place the box"
        );
        let doc = document_whereabouts(&cluster, place, "DOC-E-1").await;
        let voided = doc.chain.iter().find(|l| l.scan_id == wrong.scan_id);
        assert!(
            voided.is_some_and(|l| l.voided),
            "{place}: the document's chain marks it voided: {doc:#?}"
        );
        assert_eq!(
            doc.location.unwrap().place,
            "in transit",
            "{place}: the document's place"
        );
    }
    // The corrective scan counts as its own.
    let right = pda.en_route(t(30), &road_trip, "华城镇");
    upload_recorded(&cluster, COUNTY, &pda.principal, vec![right.clone()]).await;
    for place in [COUNTY, T1] {
        wait_box_scans(&cluster, place, "BOX-E", std::slice::from_ref(&right.scan_id)).await;
        assert_eq!(
            box_place(place).await.location.unwrap().place,
            "in transit, last seen at 华城镇"
        );
    }

    // A departure that did not happen: released to a courier who never came, then voided.
    let void_trip = Trip::new("BOX-V", "TRIP-V", COUNTY, T1, &["DOC-E-2"]);
    let mut sent = vec![
        desk.register_box(t(40), &void_trip.box_id),
        desk.pack(t(41), &void_trip),
        desk.seal(t(42), &void_trip),
        desk.release_to_courier(t(43), &void_trip, &pda.principal),
    ];
    sent.push(desk.void_departure(t(50), &void_trip, "快递员未到，取消发运"));
    upload_recorded(&cluster, COUNTY, &desk.principal, sent.clone()).await;
    let ids: Vec<String> = sent.iter().map(|s| s.scan_id.clone()).collect();
    for place in [COUNTY, T1] {
        let history = wait_box_scans(&cluster, place, "BOX-V", &ids).await;
        assert_eq!(
            history.trips.iter().map(|t| t.state.as_str()).collect::<Vec<_>>(),
            vec!["voided"],
            "{place}: the trip's state"
        );
        for w in [
            box_whereabouts(&cluster, place, "BOX-V").await,
            document_whereabouts(&cluster, place, "DOC-E-2").await,
        ] {
            let l = w.location.unwrap();
            assert_eq!(
                (l.custodian.as_str(), l.pending_custodian.as_str(), l.place.as_str()),
                (node(COUNTY).as_str(), "", COUNTY),
                "{place}: {} {} after the voided departure",
                l.object_kind,
                l.object_id
            );
        }
    }
    // Three hours later the voided hand-over is not an unacknowledged one, and the box can be
    // packed again without being "not empty".
    clock.set_now_ms(t(43) + 3 * HOUR);
    let again = Trip::new("BOX-V", "TRIP-V2", COUNTY, T1, &["DOC-E-2"]);
    let repack = desk.pack(t(60), &again);
    upload_recorded(&cluster, COUNTY, &desk.principal, vec![repack.clone()]).await;
    for place in [COUNTY, T1] {
        wait_box_scans(&cluster, place, "BOX-V", std::slice::from_ref(&repack.scan_id)).await;
        let about_v: Vec<(String, String)> = open_anomalies(&cluster, place)
            .await
            .into_iter()
            .filter(|a| a.box_id == "BOX-V" || a.trip_id.starts_with("TRIP-V") || a.document_id == "DOC-E-2")
            .map(|a| (a.anomaly_key, a.detail))
            .collect();
        assert!(about_v.is_empty(), "{place}: a voided departure raised {about_v:#?}");
    }
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Every tier agrees
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_is_agrees_at_all_tiers_and_the_village_answers_offline() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = custody_tree(dir.path(), false).await;
    let base = base_ms();
    let t = |m: i64| base + m * MINUTE;
    let case_id = village_case_with_papers(
        &cluster,
        t(0),
        &[
            ("DOC-A-1", DocumentKind::Original, "户口簿原件"),
            ("DOC-A-2", DocumentKind::Copy, "身份证复印件"),
        ],
    )
    .await;
    // One paper goes to the township (and is on the road); the other stays at the village.
    let mut desk = Device::desk(COUNTY, "desk-county");
    let mut pda = Device::handheld(COUNTY, "pda-a");
    let trip = Trip::new("BOX-A", "TRIP-A", COUNTY, T1, &["DOC-A-1"]);
    let sent = vec![
        desk.register_box(t(5), &trip.box_id),
        desk.pack(t(10), &trip),
        desk.seal(t(11), &trip),
        desk.release_to_courier(t(12), &trip, &pda.principal),
    ];
    upload_recorded(&cluster, COUNTY, &desk.principal, sent.clone()).await;
    let road = vec![
        pda.courier_accept(t(13), &trip),
        pda.en_route(t(30), &trip, "华城镇路口"),
    ];
    upload_recorded(&cluster, T1, &pda.principal, road.clone()).await;
    let ids: Vec<String> = sent.iter().chain(&road).map(|s| s.scan_id.clone()).collect();

    let by_case = || Target::CaseId(case_id.clone());
    let mut answers = Vec::new();
    for place in [COUNTY, T1, VILLAGE] {
        wait_box_scans(&cluster, place, &trip.box_id, &ids).await;
        let answer = try_where_is(&cluster, place, by_case())
            .await
            .unwrap_or_else(|s| panic!("WhereIs(case) at {place}: {s:?}"));
        answers.push((place, answer));
    }
    let (_, county_answer) = &answers[0];
    let locations: Vec<(String, String, String)> = county_answer
        .iter()
        .map(|w| {
            let l = w.location.clone().unwrap();
            (l.object_id, l.custodian, l.place)
        })
        .collect();
    assert_eq!(
        locations,
        vec![
            (
                "DOC-A-1".to_owned(),
                pda.who(),
                "in transit, last seen at 华城镇路口".to_owned()
            ),
            ("DOC-A-2".to_owned(), node(VILLAGE), VILLAGE.to_owned()),
        ],
        "where the case's papers are"
    );
    for (place, answer) in &answers[1..] {
        assert_eq!(
            answer, county_answer,
            "WhereIs(case) at {place} differs from the county's"
        );
    }

    // The township goes down: the village, cut off, still answers the same.
    cluster.stop(&id(T1)).await.unwrap();
    let offline = try_where_is(&cluster, VILLAGE, by_case())
        .await
        .unwrap_or_else(|s| panic!("WhereIs(case) at the village while offline: {s:?}"));
    assert_eq!(&offline, county_answer, "the village's offline answer");
    wait_for(TIMEOUT, "the village to see its link down", || async {
        let status = ops::status(&cluster, &id(VILLAGE)).await;
        match ops::link(&status, T1) {
            Some(link) if !link.connected => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let again = try_where_is(&cluster, VILLAGE, by_case()).await.unwrap();
    assert_eq!(&again, county_answer, "the village's answer with its link down");
}

// ---------------------------------------------------------------------------------------------
// 7. Bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree(dir.path(), false).await;
    let base = base_ms();
    let t = |m: i64| base + m * MINUTE;
    freeze_clocks(&cluster, t(60));
    let mut desk = Device::desk(COUNTY, "desk-bad");
    let trip = Trip::new("BOX-BAD", "TRIP-BAD", COUNTY, T1, &[]);

    // Malformed scans, each built from a well-formed one with one thing wrong.
    let good_box = desk.register_box(t(1), &trip.box_id);
    let good_pack = desk.pack(t(2), &trip);
    let missing_id = pb::Scan {
        scan_id: String::new(),
        ..good_box.clone()
    };
    let seq_zero = pb::Scan {
        device_seq: 0,
        ..good_box.clone()
    };
    let unknown_step = pb::Scan {
        scan_id: "desk-bad-x".into(),
        step: 42,
        ..good_box.clone()
    };
    let no_destination = pb::Scan {
        destination: String::new(),
        ..good_pack.clone()
    };
    let before = events_stored(&cluster, COUNTY).await;
    let reply = upload(
        &cluster,
        COUNTY,
        &desk.principal,
        vec![missing_id, seq_zero, unknown_step, no_destination],
    )
    .await;
    assert_eq!(
        (reply.recorded, reply.duplicates, reply.refused),
        (0, 0, 4),
        "{reply:#?}"
    );
    for (outcome, about) in reply
        .outcomes
        .iter()
        .zip(["scan_id", "device_seq", "step", "destination"])
    {
        assert_eq!(outcome.result, Outcome::Refused as i32, "{outcome:?}");
        assert!(
            outcome.message.contains(about),
            "the refusal should name {about}: {outcome:?}"
        );
    }
    // Nothing changed: no event, no box, no anomaly; the same ids, made right, are new.
    assert_eq!(
        events_stored(&cluster, COUNTY).await,
        before,
        "refused scans stored events"
    );
    assert_eq!(
        try_box_history(&cluster, COUNTY, &trip.box_id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert!(anomaly_summary(&cluster, COUNTY).await.is_empty());
    let fixed = upload(&cluster, COUNTY, &desk.principal, vec![good_box, good_pack]).await;
    assert_eq!((fixed.recorded, fixed.duplicates), (2, 0), "{fixed:#?}");

    // A courier uploads only their own scans.
    let mut mine = Device::handheld(COUNTY, "pda-mine");
    let mut theirs = Device::handheld(COUNTY, "pda-theirs");
    let batch = vec![mine.courier_accept(t(3), &trip), theirs.en_route(t(4), &trip, "岐岭")];
    let reply = upload(&cluster, COUNTY, &mine.principal, batch).await;
    let results: Vec<i32> = reply.outcomes.iter().map(|o| o.result).collect();
    assert_eq!(
        results,
        vec![Outcome::Recorded as i32, Outcome::Refused as i32],
        "{reply:#?}"
    );
    assert!(reply.outcomes[1].message.contains("pda-theirs"), "{reply:#?}");
    assert!(
        try_box_history(&cluster, COUNTY, &trip.box_id)
            .await
            .unwrap()
            .scans
            .iter()
            .all(|l| l.scan_id != "pda-theirs-1"),
        "another courier's scan was recorded"
    );

    // More than 5,000 scans in one upload.
    let mut flood = Device::desk(COUNTY, "desk-flood");
    let too_many: Vec<pb::Scan> = (0..5_001)
        .map(|i| flood.register_box(t(5), &format!("BOX-FLOOD-{i}")))
        .collect();
    let before = events_stored(&cluster, COUNTY).await;
    let refused = try_upload(&cluster, COUNTY, &flood.principal, too_many)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{}", refused.message());
    assert_eq!(
        events_stored(&cluster, COUNTY).await,
        before,
        "a refused upload stored events"
    );

    // Where is a document nobody registered?
    let unknown = try_where_is(&cluster, COUNTY, Target::DocumentId("DOC-NOBODY".into())).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);

    // An anomaly at the township (a courier accepts a box for a trip never packed)...
    let ghost = Trip::new("BOX-GHOST", "TRIP-GHOST", COUNTY, T1, &[]);
    let ghost_accept = vec![mine.courier_accept(t(6), &ghost)];
    upload_recorded(&cluster, T1, &mine.principal, ghost_accept).await;
    let key = "unknown_id/trip/TRIP-GHOST";
    for place in [T1, COUNTY] {
        wait_for(TIMEOUT, &format!("{place} to list {key}"), || async {
            let listed = anomaly_summary(&cluster, place).await;
            if listed.iter().any(|(k, _, _)| k == key) {
                Ok(())
            } else {
                Err(format!("{listed:?}"))
            }
        })
        .await;
    }
    // ...is noted only by an operator of the node asked: not the county's admin at the
    // township, not the township's clerk at the county, not a courier.
    let county_admin = Principal::operator(id(COUNTY), "admin").unwrap();
    let township_clerk = clerk(T1);
    let courier_principal = courier(COUNTY, "pda-mine");
    for (place, who) in [(T1, &county_admin), (COUNTY, &township_clerk), (T1, &courier_principal)] {
        let before = events_stored(&cluster, place).await;
        let denied = note_anomaly(&cluster, place, who, key, AnomalyState::Closed, "与我无关").await;
        assert_eq!(
            denied.map(|a| a.state).unwrap_err().code(),
            Code::PermissionDenied,
            "{who} noting at {place}"
        );
        assert_eq!(
            events_stored(&cluster, place).await,
            before,
            "a denied note stored an event"
        );
    }
    for place in [T1, COUNTY] {
        let listed = open_anomalies(&cluster, place).await;
        let ghost = listed.iter().find(|a| a.anomaly_key == key).unwrap();
        assert_eq!(ghost.state, AnomalyState::Open as i32, "{place}: {ghost:?}");
    }
    // Reads are for operators: a courier may upload, not ask where things are.
    let denied = custody_as(&cluster, COUNTY, &courier_principal)
        .await
        .where_is(pb::WhereIsRequest {
            target: Some(Target::BoxId(trip.box_id.clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

// ---------------------------------------------------------------------------------------------
// 10. Cases and boxes meet: paper before the county's decision
// ---------------------------------------------------------------------------------------------

/// A `Cases` client for the clerk of `place`.
async fn cases_at(
    cluster: &Cluster,
    place: &str,
) -> tongban_proto::v1::cases_client::CasesClient<tonic::transport::Channel> {
    tongban_proto::v1::cases_client::CasesClient::new(ops::channel_as(cluster, &id(place), &clerk(place)).await)
}

async fn act(
    client: &mut tongban_proto::v1::cases_client::CasesClient<tonic::transport::Channel>,
    case_id: &str,
    action: pb::case_action::Action,
) -> Result<pb::CaseSummary, tonic::Status> {
    client
        .act(pb::ActRequest {
            case_id: case_id.to_owned(),
            action: Some(pb::CaseAction { action: Some(action) }),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Submits `item` at `intake` (the village or the township), registers one original there,
/// takes the case through the township to the county back office (in review there); returns
/// (case id, document id).
async fn case_in_county_review(
    cluster: &Cluster,
    intake: &'static str,
    item: &str,
    tag: &str,
    at_ms: i64,
) -> (String, String) {
    use pb::case_action::Action as A;
    use tongban_proto::v1::case_action as act_;
    let mut at_intake = cases_at(cluster, intake).await;
    let case_id = at_intake
        .submit(pb::SubmitCaseRequest {
            item_code: item.to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "钟秀英".to_owned(),
            applicant_id_number: "441424198805051234".to_owned(),
            applicant_phone: String::new(),
            accept_on_the_spot: false,
        })
        .await
        .unwrap()
        .into_inner()
        .case_id;
    let doc = format!("doc-{tag}");
    let mut desk = Device::desk(intake, &format!("desk-{tag}"));
    let scan = desk.register_document(at_ms, document(&doc, &case_id, DocumentKind::Original, "户口簿原件"));
    upload_recorded(cluster, intake, &desk.principal, vec![scan]).await;
    let from_village = intake == VILLAGE;
    if from_village {
        act(&mut at_intake, &case_id, A::Forward(act_::Forward {}))
            .await
            .unwrap();
    }
    let mut township = cases_at(cluster, T1).await;
    let steps_at = |node: &'static str, steps: u32| {
        let case_id = case_id.clone();
        async move {
            wait_for(TIMEOUT, &format!("{node} to hold {steps} steps of the case"), || {
                let case_id = case_id.clone();
                async move {
                    let mut c = cases_at(cluster, node).await;
                    let got = c
                        .get(pb::GetCaseRequest {
                            key: Some(pb::get_case_request::Key::CaseId(case_id)),
                        })
                        .await
                        .map(|r| r.into_inner().summary.map(|s| s.steps).unwrap_or(0))
                        .unwrap_or(0);
                    if got >= steps {
                        Ok(())
                    } else {
                        Err(format!("{got} steps"))
                    }
                }
            })
            .await;
        }
    };
    steps_at(T1, if from_village { 2 } else { 1 }).await;
    for action in [
        A::Receive(act_::Receive {}),
        A::Accept(act_::Accept { terms: None }),
        A::HandOver(act_::HandOver { to: COUNTY.to_owned() }),
    ] {
        act(&mut township, &case_id, action).await.unwrap();
    }
    steps_at(COUNTY, if from_village { 5 } else { 4 }).await;
    wait_case_documents(cluster, COUNTY, &case_id, 1).await;
    let mut county = cases_at(cluster, COUNTY).await;
    for action in [
        A::StartHandling(act_::StartHandling {}),
        A::SubmitForReview(act_::SubmitForReview {}),
    ] {
        act(&mut county, &case_id, action).await.unwrap();
    }
    (case_id, doc)
}

fn decide(seal: pb::SealType) -> pb::case_action::Action {
    pb::case_action::Action::Decide(tongban_proto::v1::case_action::Decide {
        approve: true,
        reason: "材料齐全".to_owned(),
        seal: seal as i32,
        impressions: 1,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_county_decides_after_the_originals_arrive_when_the_item_requires_them() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = custody_tree(dir.path(), false).await;
    let t0 = base_ms();

    // T-DESK-T1 is not delegated and requires its originals at the county.
    let (case_id, doc) = case_in_county_review(&cluster, VILLAGE, "T-DESK-T1", "paper-block", t0).await;
    let mut county = cases_at(&cluster, COUNTY).await;
    let refused = act(&mut county, &case_id, decide(pb::SealType::County))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains(&doc) && refused.message().contains(VILLAGE),
        "the refusal says which original is missing and where it is: {}",
        refused.message()
    );
    // Nothing moved: the case is still in review at the county.
    let detail = county
        .get(pb::GetCaseRequest {
            key: Some(pb::get_case_request::Key::CaseId(case_id.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.summary.unwrap().state, pb::CaseStateKind::Review as i32);

    // The original travels township → county in a box; then the decision goes through.
    let trip = Trip::new("box-paper", "trip-paper", T1, COUNTY, &[doc.as_str()]);
    let mut sender = Device::desk(T1, "desk-paper-t1");
    let mut pda = Device::handheld(T1, "pda-paper");
    let mut receiver = Device::desk(COUNTY, "desk-paper-county");
    let m = |n: i64| t0 + n * MINUTE;
    let scans = vec![
        sender.pack(m(10), &trip),
        sender.seal(m(11), &trip),
        sender.release_to_courier(m(12), &trip, &courier(T1, "pda-paper")),
    ];
    upload_recorded(&cluster, T1, &sender.principal, scans).await;
    let scans = vec![
        pda.courier_accept(m(13), &trip),
        pda.release_at_destination(m(40), &trip, &clerk(COUNTY)),
    ];
    upload_recorded(&cluster, COUNTY, &pda.principal, scans).await;
    let scans = vec![
        receiver.destination_accept(m(41), &trip, &trip.seal, true),
        receiver.unpack(m(42), &trip, std::slice::from_ref(&doc)),
    ];
    upload_recorded(&cluster, COUNTY, &receiver.principal, scans).await;
    let decided = act(&mut county, &case_id, decide(pb::SealType::County)).await.unwrap();
    assert_eq!(decided.state, pb::CaseStateKind::Decision as i32);
    assert_eq!(decided.paper_warning, "", "every original has arrived");

    // T-T1 is entrusted (taken at the township window) and does not require its originals at the
    // county: the decision goes through with a warning saying where they are.
    let (case_id, doc) = case_in_county_review(&cluster, T1, "T-T1", "paper-warn", t0 + HOUR).await;
    // The county's decision on an entrusted item is unstamped: the township stamps the result.
    let decided = act(&mut county, &case_id, decide(pb::SealType::Unspecified))
        .await
        .unwrap();
    assert_eq!(decided.state, pb::CaseStateKind::Decision as i32);
    assert!(
        decided.paper_warning.contains(&doc) && decided.paper_warning.contains(T1),
        "the warning says which original is elsewhere: {:?}",
        decided.paper_warning
    );
    cluster.stop_all().await;
}

/// `Custody.NextDocumentId` for `case` at `node`, asked by that node's clerk.
async fn next_document_id(cluster: &Cluster, node: &str, case: &str) -> pb::NextDocumentIdResponse {
    custody_as(cluster, node, &clerk(node))
        .await
        .next_document_id(pb::NextDocumentIdRequest { case: case.to_owned() })
        .await
        .unwrap_or_else(|s| panic!("NextDocumentId at {node}: {s:?}"))
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_ids_are_given_per_case_and_one_registered_to_another_case_is_refused() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = custody_tree(dir.path(), false).await;
    let t0 = base_ms();
    let first = submit_case(&cluster, T1).await;
    let second = submit_case(&cluster, T1).await;
    let mut desk = Device::desk(T1, "desk-ids");

    // The node gives the case's papers their ids: <receipt number>-D01, -D02, …
    let assigned = next_document_id(&cluster, T1, &first).await;
    assert_eq!(assigned.case_id, first);
    assert_eq!(assigned.document_id, format!("{}-D01", assigned.case_number));
    let d01 = assigned.document_id.clone();
    let registration = desk.register_document(t0, document(&d01, &first, DocumentKind::Original, "户口簿原件"));
    upload_recorded(&cluster, T1, &desk.principal, vec![registration]).await;
    // By receipt number as well as by id; the next one follows.
    let d02 = next_document_id(&cluster, T1, &assigned.case_number).await.document_id;
    assert_eq!(d02, format!("{}-D02", assigned.case_number));
    let other = next_document_id(&cluster, T1, &second).await;
    assert!(
        other.document_id.ends_with("-D01") && other.document_id != d01,
        "{other:?}"
    );

    // D01 of the first case named for the second case: refused, nothing recorded or changed.
    let events_before = events_stored(&cluster, T1).await;
    let clash = desk.register_document(
        t0 + MINUTE,
        document(&d01, &second, DocumentKind::Original, "身份证复印件"),
    );
    let reply = upload(&cluster, T1, &desk.principal, vec![clash]).await;
    assert_eq!((reply.recorded, reply.refused), (0, 1), "{reply:#?}");
    let message = &reply.outcomes[0].message;
    assert!(
        message.contains(&format!(
            "材料编号 {d01} 已登记在办件 {} 名下，不能再登记给办件 {}",
            assigned.case_number, other.case_number
        )) && message.contains("下一步"),
        "{message}"
    );
    assert_eq!(events_stored(&cluster, T1).await, events_before, "nothing recorded");
    let found = document_whereabouts(&cluster, T1, &d01).await;
    assert_eq!(
        found.location.unwrap().case_id,
        first,
        "the document stays with its case"
    );
    assert!(
        try_where_is(&cluster, T1, Target::CaseId(second.clone()))
            .await
            .is_err(),
        "the second case has no paper"
    );
    // Another paper of the same case under the same id is refused too.
    let other_paper = desk.register_document(
        t0 + 2 * MINUTE,
        document(&d01, &first, DocumentKind::Copy, "结婚证复印件"),
    );
    let reply = upload(&cluster, T1, &desk.principal, vec![other_paper]).await;
    assert_eq!(reply.refused, 1, "{reply:#?}");
    // Within one upload, the second registration of an id for another case is refused alone.
    let both = vec![
        desk.register_document(
            t0 + 3 * MINUTE,
            document(&d02, &first, DocumentKind::Original, "申请表"),
        ),
        desk.register_document(
            t0 + 4 * MINUTE,
            document(&d02, &second, DocumentKind::Original, "申请表"),
        ),
    ];
    let reply = upload(&cluster, T1, &desk.principal, both).await;
    let results: Vec<i32> = reply.outcomes.iter().map(|o| o.result).collect();
    assert_eq!(
        results,
        [Outcome::Recorded as i32, Outcome::Refused as i32],
        "{reply:#?}"
    );

    // The same paper registered again to the same case is recorded as before and changes nothing.
    let again = desk.register_document(
        t0 + 5 * MINUTE,
        document(&d01, &first, DocumentKind::Original, "户口簿原件"),
    );
    upload_recorded(&cluster, T1, &desk.principal, vec![again]).await;
    assert_eq!(
        whereabouts_of_case(&cluster, T1, &first).await,
        [d01.clone(), d02.clone()]
    );
    // The county holds the same register.
    wait_case_documents(&cluster, COUNTY, &first, 2).await;
    assert_eq!(whereabouts_of_case(&cluster, COUNTY, &first).await, [d01, d02]);
}

/// The ids of the documents `WhereIs(case)` lists at `node`.
async fn whereabouts_of_case(cluster: &Cluster, node: &str, case_id: &str) -> Vec<String> {
    try_where_is(cluster, node, Target::CaseId(case_id.to_owned()))
        .await
        .unwrap_or_else(|s| panic!("WhereIs at {node}: {s:?}"))
        .into_iter()
        .filter_map(|o| o.location.map(|l| l.object_id))
        .collect()
}
