//! The periodic tasks run on their own: with a short interval and a clock moved forward, the
//! county's supervision scan opens a supervision record (督办) for a case gone red, and the
//! township records the default "basically satisfied" rating for a case issued and left
//! unrated for seven days — without the test calling `scan_supervision` or
//! `record_default_ratings`. The test only waits, with a deadline, for the records to appear.
//!
//! Real nodes on real gRPC; the clock is a `ManualClock` set on each store, standing 40 days
//! after the cases were handled (the cases themselves are timed by the node's clock of record).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tests::catalogue::{self, small_catalogue};
use tests::tree::{self, wait_catalogue};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, id, ops, setup};
use tongban_domains::calendar::ManualClock;
use tongban_domains::case::{RatingLevel, StateKind};
use tongban_domains::config::SyncConfig;
use tongban_domains::node::NodeSettings;
use tongban_domains::pki::Principal;
use tongban_domains::store::CaseRef;
use tongban_proto::v1::{self as pb, case_action as act, cases_client::CasesClient};
use tonic::transport::Channel;

use act::Action as A;

/// The interval both periodic tasks are given.
const SHORT: Duration = Duration::from_secs(1);

async fn act_all(client: &mut CasesClient<Channel>, case_id: &str, actions: Vec<A>) {
    for action in actions {
        let what = format!("{action:?}");
        client
            .act(pb::ActRequest {
                case_id: case_id.to_owned(),
                action: Some(pb::CaseAction { action: Some(action) }),
            })
            .await
            .unwrap_or_else(|s| panic!("{what} on {case_id}: {s:?}"));
    }
}

async fn submit(client: &mut CasesClient<Channel>) -> String {
    client
        .submit(pb::SubmitCaseRequest {
            item_code: "T-ALL".to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: "13800000000".to_owned(),
            accept_on_the_spot: false,
        })
        .await
        .unwrap()
        .into_inner()
        .case_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_scan_and_default_ratings_run_on_their_own() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let ids = vec![id(COUNTY), id(T1), id(T1_VILLAGES[0])];
    let sync = SyncConfig {
        max_backoff_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), sync).await;
    // As a configuration file would set them: `[supervision] scan_interval_secs = 1` and
    // `[ratings] default_scan_interval_secs = 1`, in force from the start.
    cluster.set_settings(NodeSettings {
        supervision_every: SHORT,
        rating_every: SHORT,
        ..NodeSettings::default()
    });
    tree::start_linked(&mut cluster).await;
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &small_catalogue(), "periodic").await;
    assert_eq!(imported.version, 1);
    wait_catalogue(&cluster, &ids, 1).await;

    let clerk = Principal::operator(id(T1), "clerk").unwrap();
    let mut at_township = CasesClient::new(ops::channel_as(&cluster, &id(T1), &clerk).await);

    // A case accepted (promised 10 working days) and left: red 40 days later.
    let late = submit(&mut at_township).await;
    act_all(
        &mut at_township,
        &late,
        vec![A::Receive(act::Receive {}), A::Accept(act::Accept { terms: None })],
    )
    .await;
    // A case taken through to issue and never rated: defaulted after seven days.
    let quiet = submit(&mut at_township).await;
    let seal = pb::SealType::TownshipApproval as i32;
    act_all(
        &mut at_township,
        &quiet,
        vec![
            A::Receive(act::Receive {}),
            A::Accept(act::Accept { terms: None }),
            A::StartHandling(act::StartHandling {}),
            A::SubmitForReview(act::SubmitForReview {}),
            A::Decide(act::Decide {
                approve: true,
                reason: "材料齐全，符合法定条件".to_owned(),
                seal,
                impressions: 0,
            }),
            A::Conclude(act::Conclude {
                outcome: pb::CaseOutcome::Approved as i32,
                reason: String::new(),
            }),
            A::ResultReady(act::ResultReady {}),
            A::Issue(act::Issue { seal, impressions: 1 }),
        ],
    )
    .await;
    let county = cluster.node(&id(COUNTY)).unwrap().store.clone();
    let township = cluster.node(&id(T1)).unwrap().store.clone();
    let late_key: CaseRef = late.parse().unwrap();
    wait_for(TIMEOUT, "the county to hold the accepted case", || async {
        match county.case(&late_key).await {
            Ok(Some(view)) if view.accepted_ms.is_some() => Ok(()),
            Ok(Some(view)) => Err(format!("{:?}", view.state.kind())),
            Ok(None) => Err("unknown".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert!(county.supervisions(true).await.unwrap().is_empty());

    // Forty days on, with both tasks on a one-second interval. Nothing is called by hand.
    let clock = Arc::new(ManualClock::at_ms(county.now_ms()));
    clock.advance_days(40);
    for node in &ids {
        let store = &cluster.node(node).unwrap().store;
        store.set_clock(clock.clone());
    }

    let record = wait_for(TIMEOUT, "the county's scan to open a supervision record", || async {
        let records = county.supervisions(false).await.map_err(|e| e.to_string())?;
        match records.iter().find(|r| r.case_id == late) {
            Some(record) => Ok(record.clone()),
            None => Err(format!(
                "{} open records, none for {late} (scan interval now {:?})",
                records.len(),
                county.supervision_interval()
            )),
        }
    })
    .await;
    assert!(record.closed_ms.is_none(), "{record:?}");

    let quiet_key: CaseRef = quiet.parse().unwrap();
    let rating = wait_for(TIMEOUT, "the township to record the default rating", || async {
        let view = township
            .case(&quiet_key)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the township does not know the case")?;
        match (view.state.kind(), view.rating) {
            (StateKind::Rated, Some(rating)) => Ok(rating),
            (state, _) => Err(format!(
                "{state:?} (rating interval now {:?})",
                township.rating_scan_interval()
            )),
        }
    })
    .await;
    assert_eq!(rating.level, RatingLevel::BasicallySatisfied);
    assert!(rating.defaulted);
    assert_eq!(rating.by, format!("node:{T1}"));
    cluster.stop_all().await;
}
