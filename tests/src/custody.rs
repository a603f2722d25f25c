//! Helpers for the material-box scenarios (`tests/tests/custody.rs`): a tree with a real case
//! submitted at its village, scanning devices that number their scans densely the way handhelds
//! and desk scanners do, the scan each custody step makes, and `Custody` calls as clerks,
//! couriers and the county's admin.
//!
//! Like the rest of the harness it asserts nothing beyond "this helper worked".

use std::sync::Arc;

use tongban_courier::ScanIds;
use tongban_domains::calendar::ManualClock;
use tongban_domains::config::SyncConfig;
use tongban_domains::pki::Principal;
use tongban_proto::v1::{self as pb, CustodyStep, cases_client::CasesClient, custody_client::CustodyClient};
use tongban_testkit::cluster::Cluster;
use tonic::Status;
use tonic::transport::Channel;

use crate::catalogue::{self, small_catalogue};
use crate::tree::{self, wait_catalogue};
use crate::wait::{TIMEOUT, wait_for};
use crate::{COUNTY, T1, T1_VILLAGES, id, ops};

/// The village the scenarios' cases come from (under township [`T1`]).
pub const VILLAGE: &str = T1_VILLAGES[0];
/// A second township, for boxes that go to the wrong place and for a county round serving two.
pub const OTHER_TOWNSHIP: &str = "441424104";

/// One minute and one hour in milliseconds.
pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;

/// The county, township [`T1`] and [`VILLAGE`] (and [`OTHER_TOWNSHIP`] when asked), linked and
/// holding the test catalogue. Links reconnect within a second.
pub async fn custody_tree(dir: &std::path::Path, with_other_township: bool) -> Cluster {
    custody_tree_on(dir, with_other_township, Vec::new()).await
}

/// [`custody_tree`] with some nodes on other stores (e.g. the county on PostgreSQL).
pub async fn custody_tree_on(
    dir: &std::path::Path,
    with_other_township: bool,
    stores: Vec<(tongban_domains::ids::NodeId, tongban_domains::store::StoreLocation)>,
) -> Cluster {
    let mut ids = vec![id(COUNTY), id(T1), id(VILLAGE)];
    if with_other_township {
        ids.push(id(OTHER_TOWNSHIP));
    }
    let sync = SyncConfig {
        max_backoff_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir, &ids, stores, sync).await;
    tree::start_linked(&mut cluster).await;
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &small_catalogue(), "custody").await;
    assert_eq!(imported.version, 1, "the custody tree's catalogue");
    wait_catalogue(&cluster, &ids, 1).await;
    cluster
}

/// A base time for scan clocks: three hours ago, on the minute. Scans are dated from it, so they
/// are near now and never ahead of the node clocks.
pub fn base_ms() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    (now - 3 * HOUR) / MINUTE * MINUTE
}

/// Gives every running node of `cluster` one shared manual clock standing at `at_ms`; moving it
/// moves "now" for all of them at once.
pub fn freeze_clocks(cluster: &Cluster, at_ms: i64) -> Arc<ManualClock> {
    let clock = Arc::new(ManualClock::at_ms(at_ms));
    for node in cluster.ids() {
        if let Some(handle) = cluster.node(&node) {
            handle.store.set_clock(clock.clone());
        }
    }
    clock
}

/// Operator `clerk` of `place`.
pub fn clerk(place: &str) -> Principal {
    Principal::operator(id(place), "clerk").unwrap_or_else(|e| panic!("bad clerk at {place}: {e}"))
}

/// The courier handheld `device`, attached to `place`.
pub fn courier(place: &str, device: &str) -> Principal {
    Principal::courier(id(place), device).unwrap_or_else(|e| panic!("bad courier {device} at {place}: {e}"))
}

/// A `Custody` client at node `node` as `principal` (a clerk, a courier, any operator).
pub async fn custody_as(cluster: &Cluster, node: &str, principal: &Principal) -> CustodyClient<Channel> {
    CustodyClient::new(ops::channel_as(cluster, &id(node), principal).await)
}

/// A `Custody` client at node `node` as the county's admin, who may read everywhere.
pub async fn custody_admin(cluster: &Cluster, node: &str) -> CustodyClient<Channel> {
    CustodyClient::new(ops::admin(cluster, &id(node)).await)
}

/// Submits a case of the authorised item at `place` (a village or a township) as its clerk;
/// returns the case id.
pub async fn submit_case(cluster: &Cluster, place: &str) -> String {
    let mut cases = CasesClient::new(ops::channel_as(cluster, &id(place), &clerk(place)).await);
    cases
        .submit(pb::SubmitCaseRequest {
            item_code: "T-ALL".to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: "13800000000".to_owned(),
            accept_on_the_spot: false,
        })
        .await
        .unwrap_or_else(|s| panic!("Cases.Submit at {place}: {s:?}"))
        .into_inner()
        .case_id
}

/// A paper file of `case_id`.
pub fn document(document_id: &str, case_id: &str, kind: pb::DocumentKind, title: &str) -> pb::DocumentInfo {
    pb::DocumentInfo {
        document_id: document_id.to_owned(),
        case_id: case_id.to_owned(),
        kind: kind as i32,
        pages: 2,
        title: title.to_owned(),
    }
}

/// One trip of one box: what its PACK says.
#[derive(Debug, Clone)]
pub struct Trip {
    pub box_id: String,
    pub trip_id: String,
    pub origin: String,
    pub destination: String,
    pub documents: Vec<String>,
    /// The seal the sender applies.
    pub seal: String,
}

impl Trip {
    pub fn new(box_id: &str, trip_id: &str, origin: &str, destination: &str, documents: &[&str]) -> Trip {
        Trip {
            box_id: box_id.to_owned(),
            trip_id: trip_id.to_owned(),
            origin: origin.to_owned(),
            destination: destination.to_owned(),
            documents: documents.iter().map(|d| (*d).to_owned()).collect(),
            seal: format!("SEAL-{trip_id}"),
        }
    }
}

/// A scanning device of the scenarios: a clerk's desk scanner or a courier's handheld, as
/// [`tongban_courier::Device`] numbers and names scans (densely from 1), with the scan each
/// custody step makes of a [`Trip`]. Its scans are named `<device>-<seq>`, so a scenario can
/// write out the custody chain it expects.
#[derive(Debug, Clone)]
pub struct Device(tongban_courier::Device);

impl std::ops::Deref for Device {
    type Target = tongban_courier::Device;

    fn deref(&self) -> &tongban_courier::Device {
        &self.0
    }
}

impl std::ops::DerefMut for Device {
    fn deref_mut(&mut self) -> &mut tongban_courier::Device {
        &mut self.0
    }
}

impl Device {
    fn of(device: &str, principal: Principal) -> Device {
        let device = tongban_courier::Device::new(device, principal)
            .unwrap_or_else(|e| panic!("bad device {device}: {e}"))
            .with_scan_ids(ScanIds::Numbered);
        Device(device)
    }

    /// The desk scanner `device` of `place`'s clerk; its scans say where they were made.
    pub fn desk(place: &str, device: &str) -> Device {
        Device::of(device, clerk(place))
    }

    /// The courier handheld `device`, attached to `place`; its principal is the courier's.
    pub fn handheld(place: &str, device: &str) -> Device {
        Device::of(device, courier(place, device))
    }

    fn trip_scan(&mut self, step: CustodyStep, at_ms: i64, trip: &Trip) -> pb::Scan {
        pb::Scan {
            box_id: trip.box_id.clone(),
            trip_id: trip.trip_id.clone(),
            ..self.scan(step, at_ms)
        }
    }

    pub fn register_document(&mut self, at_ms: i64, document: pb::DocumentInfo) -> pb::Scan {
        pb::Scan {
            document: Some(document),
            ..self.scan(CustodyStep::RegisterDocument, at_ms)
        }
    }

    pub fn register_box(&mut self, at_ms: i64, box_id: &str) -> pb::Scan {
        pb::Scan {
            box_id: box_id.to_owned(),
            box_label: format!("五华县材料周转箱 {box_id}"),
            ..self.scan(CustodyStep::RegisterBox, at_ms)
        }
    }

    pub fn pack(&mut self, at_ms: i64, trip: &Trip) -> pb::Scan {
        pb::Scan {
            origin: trip.origin.clone(),
            destination: trip.destination.clone(),
            document_ids: trip.documents.clone(),
            ..self.trip_scan(CustodyStep::Pack, at_ms, trip)
        }
    }

    pub fn seal(&mut self, at_ms: i64, trip: &Trip) -> pb::Scan {
        pb::Scan {
            seal_number: trip.seal.clone(),
            ..self.trip_scan(CustodyStep::Seal, at_ms, trip)
        }
    }

    pub fn release_to_courier(&mut self, at_ms: i64, trip: &Trip, to: &Principal) -> pb::Scan {
        pb::Scan {
            counterparty: to.to_string(),
            ..self.trip_scan(CustodyStep::ReleaseToCourier, at_ms, trip)
        }
    }

    pub fn courier_accept(&mut self, at_ms: i64, trip: &Trip) -> pb::Scan {
        self.trip_scan(CustodyStep::CourierAccept, at_ms, trip)
    }

    pub fn en_route(&mut self, at_ms: i64, trip: &Trip, place: &str) -> pb::Scan {
        pb::Scan {
            place: place.to_owned(),
            ..self.trip_scan(CustodyStep::EnRoute, at_ms, trip)
        }
    }

    pub fn release_at_destination(&mut self, at_ms: i64, trip: &Trip, to: &Principal) -> pb::Scan {
        pb::Scan {
            counterparty: to.to_string(),
            ..self.trip_scan(CustodyStep::ReleaseAtDestination, at_ms, trip)
        }
    }

    /// The receiving clerk's acceptance, with the seal as read on the box.
    pub fn destination_accept(&mut self, at_ms: i64, trip: &Trip, seal_read: &str, intact: bool) -> pb::Scan {
        pb::Scan {
            seal_number: seal_read.to_owned(),
            seal_intact: intact,
            ..self.trip_scan(CustodyStep::DestinationAccept, at_ms, trip)
        }
    }

    /// Unpacking, listing the documents found.
    pub fn unpack(&mut self, at_ms: i64, trip: &Trip, found: &[String]) -> pb::Scan {
        pb::Scan {
            document_ids: found.to_vec(),
            ..self.trip_scan(CustodyStep::Unpack, at_ms, trip)
        }
    }

    pub fn void_departure(&mut self, at_ms: i64, trip: &Trip, reason: &str) -> pb::Scan {
        pb::Scan {
            reason: reason.to_owned(),
            ..self.trip_scan(CustodyStep::VoidDeparture, at_ms, trip)
        }
    }

    pub fn declare_error(&mut self, at_ms: i64, corrects_scan_id: &str, reason: &str) -> pb::Scan {
        pb::Scan {
            corrects_scan_id: corrects_scan_id.to_owned(),
            reason: reason.to_owned(),
            ..self.scan(CustodyStep::ErrorDeclaration, at_ms)
        }
    }
}

/// `Custody.UploadScans` of `scans` at node `node` as `principal`; the RPC must succeed.
pub async fn upload(
    cluster: &Cluster,
    node: &str,
    principal: &Principal,
    scans: Vec<pb::Scan>,
) -> pb::UploadScansResponse {
    try_upload(cluster, node, principal, scans)
        .await
        .unwrap_or_else(|s| panic!("UploadScans at {node} as {principal}: {:?} {}", s.code(), s.message()))
}

/// `Custody.UploadScans`, returning the status when the RPC is refused.
pub async fn try_upload(
    cluster: &Cluster,
    node: &str,
    principal: &Principal,
    scans: Vec<pb::Scan>,
) -> Result<pb::UploadScansResponse, Status> {
    custody_as(cluster, node, principal)
        .await
        .upload_scans(pb::UploadScansRequest { scans })
        .await
        .map(tonic::Response::into_inner)
}

/// Uploads `scans` at `node` as `principal` and panics unless every one is recorded now.
pub async fn upload_recorded(cluster: &Cluster, node: &str, principal: &Principal, scans: Vec<pb::Scan>) {
    let n = scans.len();
    let reply = upload(cluster, node, principal, scans).await;
    assert!(
        reply.recorded as usize == n
            && reply
                .outcomes
                .iter()
                .all(|o| o.result == pb::scan_outcome::Result::Recorded as i32),
        "{n} scans uploaded at {node} by {principal} were not all recorded: {reply:#?}"
    );
}

/// `Custody.WhereIs` at `node`, asked by the county's admin.
pub async fn try_where_is(
    cluster: &Cluster,
    node: &str,
    target: pb::where_is_request::Target,
) -> Result<Vec<pb::ObjectWhereabouts>, Status> {
    custody_admin(cluster, node)
        .await
        .where_is(pb::WhereIsRequest { target: Some(target) })
        .await
        .map(|r| r.into_inner().objects)
}

/// Where the document or box `object` is by `node`'s knowledge, and its chain.
pub async fn whereabouts(cluster: &Cluster, node: &str, target: pb::where_is_request::Target) -> pb::ObjectWhereabouts {
    let what = format!("{target:?}");
    let mut found = try_where_is(cluster, node, target)
        .await
        .unwrap_or_else(|s| panic!("WhereIs {what} at {node}: {:?} {}", s.code(), s.message()));
    assert_eq!(
        found.len(),
        1,
        "WhereIs {what} at {node} answered {} objects",
        found.len()
    );
    found.remove(0)
}

/// Where document `document_id` is by `node`'s knowledge, and its chain.
pub async fn document_whereabouts(cluster: &Cluster, node: &str, document_id: &str) -> pb::ObjectWhereabouts {
    whereabouts(
        cluster,
        node,
        pb::where_is_request::Target::DocumentId(document_id.to_owned()),
    )
    .await
}

/// Where box `box_id` is by `node`'s knowledge, and its chain.
pub async fn box_whereabouts(cluster: &Cluster, node: &str, box_id: &str) -> pb::ObjectWhereabouts {
    whereabouts(cluster, node, pb::where_is_request::Target::BoxId(box_id.to_owned())).await
}

/// `Custody.BoxHistory` of a box at `node`, asked by the county's admin.
pub async fn try_box_history(cluster: &Cluster, node: &str, box_id: &str) -> Result<pb::BoxHistoryResponse, Status> {
    custody_admin(cluster, node)
        .await
        .box_history(pb::BoxHistoryRequest {
            box_id: box_id.to_owned(),
            trip_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Waits until `node` holds every scan of `scan_ids` for box `box_id` (as `BoxHistory` lists
/// them); returns the history.
pub async fn wait_box_scans(
    cluster: &Cluster,
    node: &str,
    box_id: &str,
    scan_ids: &[String],
) -> pb::BoxHistoryResponse {
    let what = format!("{node} to hold {} scans of box {box_id}", scan_ids.len());
    wait_for(TIMEOUT, &what, || async {
        let history = try_box_history(cluster, node, box_id)
            .await
            .map_err(|s| format!("{:?} {}", s.code(), s.message()))?;
        let missing: Vec<&String> = scan_ids
            .iter()
            .filter(|id| !history.scans.iter().any(|l| &l.scan_id == *id))
            .collect();
        if missing.is_empty() {
            Ok(history)
        } else {
            Err(format!("missing {missing:?}"))
        }
    })
    .await
}

/// Waits until `node` knows `n` registered documents of `case_id`.
pub async fn wait_case_documents(cluster: &Cluster, node: &str, case_id: &str, n: usize) {
    let what = format!("{node} to know {n} documents of case {case_id}");
    wait_for(TIMEOUT, &what, || async {
        match try_where_is(cluster, node, pb::where_is_request::Target::CaseId(case_id.to_owned())).await {
            Ok(objects) if objects.len() == n => Ok(()),
            Ok(objects) => Err(format!("{} documents", objects.len())),
            Err(s) => Err(format!("{:?} {}", s.code(), s.message())),
        }
    })
    .await
}

/// `Custody.ListAnomalies` at `node` with `request`, asked by the county's admin.
pub async fn list_anomalies(cluster: &Cluster, node: &str, request: pb::ListAnomaliesRequest) -> Vec<pb::Anomaly> {
    custody_admin(cluster, node)
        .await
        .list_anomalies(request)
        .await
        .unwrap_or_else(|s| panic!("ListAnomalies at {node}: {:?} {}", s.code(), s.message()))
        .into_inner()
        .anomalies
}

/// The anomalies `node` lists by default (open and explained).
pub async fn open_anomalies(cluster: &Cluster, node: &str) -> Vec<pb::Anomaly> {
    list_anomalies(cluster, node, pb::ListAnomaliesRequest::default()).await
}

/// `Custody.NoteAnomaly` at `node` as `principal`.
pub async fn note_anomaly(
    cluster: &Cluster,
    node: &str,
    principal: &Principal,
    key: &str,
    to: pb::AnomalyState,
    text: &str,
) -> Result<pb::Anomaly, Status> {
    custody_as(cluster, node, principal)
        .await
        .note_anomaly(pb::NoteAnomalyRequest {
            anomaly_key: key.to_owned(),
            to_state: to as i32,
            text: text.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The events `node` has stored (from `Node.Status`).
pub async fn events_stored(cluster: &Cluster, node: &str) -> u64 {
    ops::status(cluster, &id(node)).await.events_stored
}
