//! Cases flow through the real event log between real nodes: submitted at a village, moved by
//! the holder at each tier through the `Cases` service, and replicated so that the village, the
//! township and the county end with the same case. Also: only the holder moves a case, refused
//! actions change nothing, and a case submitted while the township is down reaches the county
//! after reconnection and its decision comes back down to the village. An extension (延期) and a
//! special procedure each move the deadline the county sees, counted on calendars published for
//! two years that both stay in force.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use tests::catalogue::{self, small_catalogue};
use tests::pg::county_on_postgres;
use tests::tree::{self, wait_catalogue};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, id, ops, setup};

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use tongban_domains::calendar::ManualClock;
use tongban_domains::case::{CaseView, StateKind};
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_domains::store::{CaseRef, StoreLocation};
use tongban_proto::v1::{
    self as pb, calendar_client::CalendarClient, calendar_publishing_client::CalendarPublishingClient,
    case_action as act, cases_client::CasesClient,
};
use tongban_testkit::cluster::Cluster;
use tonic::transport::Channel;
use tonic::{Code, Status};

use act::Action as A;

/// The authorised item every township takes, with village intake.
const AUTHORISED: &str = "T-ALL";
/// The item entrusted to township 1 (a government-service item: entrusted approval seal).
const ENTRUSTED: &str = "T-T1";

/// A county, township 1 and its first village, linked, holding the test catalogue (with village
/// intake for the entrusted item, so villages may take it). Reconnects within a second.
async fn three_tiers(dir: &std::path::Path) -> Cluster {
    three_tiers_on(dir, Vec::new()).await
}

/// [`three_tiers`] with some nodes on an explicit store (e.g. the county on PostgreSQL).
async fn three_tiers_on(dir: &std::path::Path, stores: Vec<(NodeId, StoreLocation)>) -> Cluster {
    let ids = vec![id(COUNTY), id(T1), id(T1_VILLAGES[0])];
    let sync = SyncConfig {
        max_backoff_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir, &ids, stores, sync).await;
    tree::start_linked(&mut cluster).await;
    let mut items = small_catalogue();
    for item in &mut items {
        if item.key() == ENTRUSTED {
            item.village_intake = true;
        }
    }
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &items, "cases").await;
    assert_eq!(imported.version, 1);
    wait_catalogue(&cluster, &ids, 1).await;
    cluster
}

/// A `Cases` client for operator `name` of `place`, connected to `place`'s node.
async fn clerk(cluster: &Cluster, place: &str) -> CasesClient<Channel> {
    let principal = Principal::operator(id(place), "clerk").unwrap();
    CasesClient::new(ops::channel_as(cluster, &id(place), &principal).await)
}

async fn submit(client: &mut CasesClient<Channel>, item: &str) -> pb::CaseReceipt {
    client
        .submit(pb::SubmitCaseRequest {
            item_code: item.to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: "13800000000".to_owned(),
            accept_on_the_spot: false,
        })
        .await
        .unwrap_or_else(|s| panic!("Submit of {item} refused: {s:?}"))
        .into_inner()
}

async fn try_act(client: &mut CasesClient<Channel>, case_id: &str, action: A) -> Result<pb::CaseSummary, Status> {
    client
        .act(pb::ActRequest {
            case_id: case_id.to_owned(),
            action: Some(pb::CaseAction { action: Some(action) }),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Takes each action in turn; every one must succeed.
async fn act_all(client: &mut CasesClient<Channel>, case_id: &str, actions: Vec<A>) -> pb::CaseSummary {
    let mut last = None;
    for action in actions {
        let what = format!("{action:?}");
        last = Some(
            try_act(client, case_id, action)
                .await
                .unwrap_or_else(|s| panic!("{what} on {case_id} refused: {:?} {}", s.code(), s.message())),
        );
    }
    last.expect("no actions given")
}

fn decide(approve: bool, seal: pb::SealType) -> A {
    A::Decide(act::Decide {
        approve,
        reason: "材料齐全，符合法定条件".to_owned(),
        seal: seal as i32,
        impressions: 1,
    })
}

fn conclude_approved() -> A {
    A::Conclude(act::Conclude {
        outcome: pb::CaseOutcome::Approved as i32,
        reason: String::new(),
    })
}

fn hand_over(to: &str) -> A {
    A::HandOver(act::HandOver { to: to.to_owned() })
}

fn issue(seal: pb::SealType) -> A {
    A::Issue(act::Issue {
        seal: seal as i32,
        impressions: 1,
    })
}

/// The case as node `node`'s store holds it, or why not.
async fn view_at(cluster: &Cluster, node: &NodeId, case_id: &str) -> Result<CaseView, String> {
    let handle = cluster.node(node).ok_or_else(|| format!("{node} is not running"))?;
    let key: CaseRef = case_id.parse().map_err(|e| format!("{e}"))?;
    match handle.store.case(&key).await {
        Ok(Some(view)) => Ok(view),
        Ok(None) => Err(format!("{node} does not know the case yet")),
        Err(e) => Err(format!("{node}: {e}")),
    }
}

/// Waits until `node` holds the case with `steps` steps, held by `holder`.
async fn wait_case(cluster: &Cluster, node: &str, case_id: &str, steps: usize, holder: &str) -> CaseView {
    let what = format!("{node} to see case {case_id} with {steps} steps, held by {holder}");
    wait_for(TIMEOUT, &what, || async {
        let view = view_at(cluster, &id(node), case_id).await?;
        if view.history.len() == steps && view.holder.as_str() == holder {
            Ok(view)
        } else {
            Err(format!(
                "{} steps, {} held by {}",
                view.history.len(),
                view.state,
                view.holder
            ))
        }
    })
    .await
}

/// Waits until every node of `nodes` holds the same view of the case, with `steps` steps; returns it.
async fn wait_same_everywhere(cluster: &Cluster, nodes: &[&str], case_id: &str, steps: usize) -> CaseView {
    let what = format!("every tier to hold case {case_id} with {steps} steps");
    wait_for(TIMEOUT, &what, || async {
        let mut views = Vec::new();
        for node in nodes {
            let view = view_at(cluster, &id(node), case_id).await?;
            if view.history.len() != steps {
                return Err(format!("{node} has {} steps ({})", view.history.len(), view.state));
            }
            views.push(view);
        }
        let first = views[0].clone();
        match views.iter().position(|v| *v != first) {
            None => Ok(first),
            Some(i) => Err(format!("{} holds a different view: {:?}", nodes[i], views[i])),
        }
    })
    .await
}

/// `Cases.Get` of the case at `node`, asked by the county's admin (who may read anywhere).
async fn detail_by_admin(cluster: &Cluster, node: &str, case_id: &str) -> pb::CaseDetail {
    CasesClient::new(ops::admin(cluster, &id(node)).await)
        .get(pb::GetCaseRequest {
            key: Some(pb::get_case_request::Key::CaseId(case_id.to_owned())),
        })
        .await
        .unwrap_or_else(|s| panic!("Cases.Get at {node}: {s:?}"))
        .into_inner()
}

fn assert_code(result: Result<pb::CaseSummary, Status>, code: Code, mentions: &[&str]) -> Status {
    let status = match result {
        Ok(summary) => panic!("expected {code:?}, but the action succeeded: {summary:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{}", status.message());
    for text in mentions {
        assert!(
            status.message().contains(text),
            "the message should mention {text:?}: {}",
            status.message()
        );
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorised_case_runs_at_the_township_and_every_tier_agrees() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three_tiers(dir.path()).await;
    let village = T1_VILLAGES[0];
    let mut at_village = clerk(&cluster, village).await;
    let mut at_township = clerk(&cluster, T1).await;

    let receipt = submit(&mut at_village, AUTHORISED).await;
    assert!(receipt.case_number.starts_with(&format!("{village}-")), "{receipt:?}");
    assert!(
        receipt.case_number.ends_with("-0001"),
        "first case of the day: {receipt:?}"
    );
    assert_eq!(receipt.item_code, "000201001000");
    assert_eq!(receipt.submitted_at_node, village);
    assert_eq!(receipt.catalogue_version, 1);
    let case = receipt.case_id.clone();
    let forwarded = act_all(&mut at_village, &case, vec![A::Forward(act::Forward {})]).await;
    assert_eq!(forwarded.holder, T1);

    wait_case(&cluster, T1, &case, 2, T1).await;
    let seal = pb::SealType::TownshipApproval;
    let issued = act_all(
        &mut at_township,
        &case,
        vec![
            A::Receive(act::Receive {}),
            A::Accept(act::Accept { terms: None }),
            A::StartHandling(act::StartHandling {}),
            A::SubmitForReview(act::SubmitForReview {}),
            decide(true, seal),
            conclude_approved(),
            A::ResultReady(act::ResultReady {}),
            issue(seal),
        ],
    )
    .await;
    assert_eq!(issued.state, pb::CaseStateKind::Issued as i32);
    assert_eq!(issued.holder, T1);
    assert_eq!(issued.accepted_under, 1);
    assert_eq!(issued.steps, 10);

    let view = wait_same_everywhere(&cluster, &[village, T1, COUNTY], &case, 10).await;
    assert_eq!(view.state.kind(), StateKind::Issued);
    assert_eq!(
        view.issued_seal,
        Some(tongban_domains::catalogue::SealType::TownshipApproval)
    );
    let decision = view.decision.as_ref().expect("the decision is recorded");
    assert_eq!(decision.at_node.as_str(), T1);
    assert_eq!(view.applicant.id_masked, "441424********1234");
    for node in [village, T1, COUNTY] {
        let detail = detail_by_admin(&cluster, node, &case).await;
        let summary = detail.summary.unwrap();
        assert_eq!(summary.state, pb::CaseStateKind::Issued as i32, "at {node}");
        assert_eq!(detail.history.len(), 10, "history at {node}");
        assert_eq!(detail.decision_seal, seal as i32);
    }
    // The case is listed by number at the county, held by the township.
    let listed = CasesClient::new(ops::admin(&cluster, &id(COUNTY)).await)
        .list(pb::ListCasesRequest {
            holder: T1.to_owned(),
            state: pb::CaseStateKind::Issued as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);
    assert_eq!(listed.cases[0].case_number, receipt.case_number);
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entrusted_case_goes_through_the_county_back_office_and_back() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three_tiers(dir.path()).await;
    entrusted_route(&cluster).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entrusted_case_with_the_county_on_postgresql() {
    setup();
    let Some((_pg, stores)) = county_on_postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three_tiers_on(dir.path(), stores).await;
    assert_eq!(ops::status(&cluster, &id(COUNTY)).await.storage, "postgresql");
    entrusted_route(&cluster).await;
    cluster.stop_all().await;
}

/// Village → township (accepts) → county back office (decides under the entrusted approval
/// seal) → township (issues) → village (rates); every tier ends with the same case.
async fn entrusted_route(cluster: &Cluster) {
    let village = T1_VILLAGES[0];
    let mut at_village = clerk(cluster, village).await;
    let mut at_township = clerk(cluster, T1).await;
    let mut at_county = clerk(cluster, COUNTY).await;
    let seal = pb::SealType::EntrustedApproval;
    // The county's letter lets township 1 keep the entrusted approval seal; it travels down the
    // same link as the decision, ahead of it.
    catalogue::entrust(
        ops::admin(cluster, &id(COUNTY)).await,
        T1,
        pb::Category::GovernmentService,
        &[],
    )
    .await;

    let case = submit(&mut at_village, ENTRUSTED).await.case_id;
    act_all(&mut at_village, &case, vec![A::Forward(act::Forward {})]).await;
    wait_case(cluster, T1, &case, 2, T1).await;
    // The township accepts but may not handle an entrusted item.
    act_all(
        &mut at_township,
        &case,
        vec![A::Receive(act::Receive {}), A::Accept(act::Accept { terms: None })],
    )
    .await;
    assert_code(
        try_act(&mut at_township, &case, A::StartHandling(act::StartHandling {})).await,
        Code::PermissionDenied,
        &["county"],
    );
    act_all(&mut at_township, &case, vec![hand_over(COUNTY)]).await;

    wait_case(cluster, COUNTY, &case, 5, COUNTY).await;
    act_all(
        &mut at_county,
        &case,
        vec![
            A::StartHandling(act::StartHandling {}),
            A::SubmitForReview(act::SubmitForReview {}),
            decide(true, pb::SealType::Unspecified),
            conclude_approved(),
        ],
    )
    .await;
    // The county concludes but does not issue; it hands the result back to the front desk.
    assert_code(
        try_act(&mut at_county, &case, A::ResultReady(act::ResultReady {})).await,
        Code::PermissionDenied,
        &["township"],
    );
    act_all(&mut at_county, &case, vec![hand_over(T1)]).await;

    wait_case(cluster, T1, &case, 10, T1).await;
    act_all(
        &mut at_township,
        &case,
        vec![
            A::ResultReady(act::ResultReady {}),
            issue(seal),
            A::Deliver(act::Deliver { by_courier: false }),
            hand_over(village),
        ],
    )
    .await;
    wait_case(cluster, village, &case, 14, village).await;
    let rated = act_all(
        &mut at_village,
        &case,
        vec![A::Rate(act::Rate {
            level: pb::RatingLevel::Satisfied as i32,
            defaulted: false,
        })],
    )
    .await;
    assert_eq!(rated.state, pb::CaseStateKind::Rated as i32);

    let view = wait_same_everywhere(cluster, &[village, T1, COUNTY], &case, 15).await;
    let decision = view.decision.as_ref().expect("decided");
    assert_eq!(decision.at_node.as_str(), COUNTY);
    assert_eq!(decision.seal, None, "the county's decision is unstamped");
    assert_eq!(
        view.issued_seal,
        Some(tongban_domains::catalogue::SealType::EntrustedApproval),
        "the township stamps the result with the seal it keeps"
    );
    let path: Vec<&str> = view.history.iter().map(|r| r.at_node.as_str()).collect();
    assert_eq!(
        path,
        [
            village, village, T1, T1, T1, COUNTY, COUNTY, COUNTY, COUNTY, COUNTY, T1, T1, T1, T1, village
        ]
    );
    ops::assert_no_alarms(cluster, &cluster.ids()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_moves_a_case_and_refusals_change_nothing() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three_tiers(dir.path()).await;
    let village = T1_VILLAGES[0];
    let mut at_village = clerk(&cluster, village).await;
    let mut at_township = clerk(&cluster, T1).await;
    let mut at_county = clerk(&cluster, COUNTY).await;

    let case = submit(&mut at_village, AUTHORISED).await.case_id;
    act_all(&mut at_village, &case, vec![A::Forward(act::Forward {})]).await;
    wait_case(&cluster, T1, &case, 2, T1).await;
    act_all(&mut at_township, &case, vec![A::Receive(act::Receive {})]).await;
    let before = wait_same_everywhere(&cluster, &[village, T1, COUNTY], &case, 3).await;
    let county = cluster.node(&id(COUNTY)).unwrap().store.clone();
    let township = cluster.node(&id(T1)).unwrap().store.clone();
    let events_at_county = county.event_count().await.unwrap();
    let events_at_township = township.event_count().await.unwrap();

    // (c) The county may not accept a case the township holds: the holder is named.
    assert_code(
        try_act(&mut at_county, &case, A::Accept(act::Accept { terms: None })).await,
        Code::FailedPrecondition,
        &["held by township 441424100", "only the holder"],
    );
    // Nor may the village that forwarded it take it back.
    assert_code(
        try_act(&mut at_village, &case, A::Forward(act::Forward {})).await,
        Code::FailedPrecondition,
        &["441424100"],
    );
    // An operator acts only at their own node: the county admin at the township is refused.
    let mut admin_at_township = CasesClient::new(ops::admin(&cluster, &id(T1)).await);
    assert_code(
        try_act(&mut admin_at_township, &case, A::Accept(act::Accept { terms: None })).await,
        Code::PermissionDenied,
        &["441424"],
    );

    // (d) Illegal transitions and missing reasons, at the holder.
    assert_code(
        try_act(&mut at_township, &case, issue(pb::SealType::TownshipApproval)).await,
        Code::FailedPrecondition,
        &["cannot issue", "received"],
    );
    assert_code(
        try_act(
            &mut at_township,
            &case,
            A::RefuseAcceptance(act::RefuseAcceptance {
                reason: "  ".to_owned(),
            }),
        )
        .await,
        Code::InvalidArgument,
        &["reason"],
    );
    assert_code(
        try_act(
            &mut at_township,
            &case,
            A::RequestSupplement(act::RequestSupplement { materials: Vec::new() }),
        )
        .await,
        Code::InvalidArgument,
        &["materials"],
    );
    assert_code(
        try_act(&mut at_township, &case, hand_over(COUNTY)).await,
        Code::FailedPrecondition,
        &["cannot hand over"],
    );
    // A malformed request is refused before anything is looked at.
    assert_code(
        try_act(&mut at_township, &case, A::SendBack(act::SendBack::default())).await,
        Code::InvalidArgument,
        &["to_stage"],
    );
    assert_code(
        try_act(&mut at_township, "not-a-case", A::Receive(act::Receive {})).await,
        Code::InvalidArgument,
        &["case_id"],
    );

    // The wrong seal is refused once the case is in review.
    act_all(
        &mut at_township,
        &case,
        vec![
            A::Accept(act::Accept { terms: None }),
            A::StartHandling(act::StartHandling {}),
            A::SubmitForReview(act::SubmitForReview {}),
        ],
    )
    .await;
    let events_before_seal = township.event_count().await.unwrap();
    assert_code(
        try_act(&mut at_township, &case, decide(true, pb::SealType::County)).await,
        Code::FailedPrecondition,
        &["wrong seal"],
    );
    assert_eq!(township.event_count().await.unwrap(), events_before_seal);

    // Nothing of the refused actions was written anywhere: only the three accepted steps.
    let after = wait_same_everywhere(&cluster, &[village, T1, COUNTY], &case, 6).await;
    assert_eq!(county.event_count().await.unwrap(), events_at_county + 3);
    assert_eq!(events_before_seal, events_at_township + 3);
    assert_eq!(after.history[..3], before.history[..]);
    assert_eq!(after.state.kind(), StateKind::Review);
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_from_an_offline_village_reaches_the_county_and_its_decision_comes_back() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three_tiers(dir.path()).await;
    let village = T1_VILLAGES[0];
    let (county_id, township_id, village_id) = (id(COUNTY), id(T1), id(village));
    let mut at_village = clerk(&cluster, village).await;
    catalogue::entrust(
        ops::admin(&cluster, &id(COUNTY)).await,
        T1,
        pb::Category::GovernmentService,
        &[],
    )
    .await;

    // The township is down: the village still submits, numbers and forwards its cases.
    cluster.stop(&township_id).await.unwrap();
    let first = submit(&mut at_village, ENTRUSTED).await;
    let second = submit(&mut at_village, AUTHORISED).await;
    assert!(first.case_number.ends_with("-0001") && second.case_number.ends_with("-0002"));
    let case = first.case_id;
    act_all(&mut at_village, &case, vec![A::Forward(act::Forward {})]).await;
    assert!(
        view_at(&cluster, &county_id, &case).await.is_err(),
        "the county cannot know it yet"
    );

    cluster.start(&township_id).await.unwrap();
    wait_case(&cluster, COUNTY, &case, 2, T1).await;
    let mut at_township = clerk(&cluster, T1).await;
    act_all(
        &mut at_township,
        &case,
        vec![
            A::Receive(act::Receive {}),
            A::Accept(act::Accept { terms: None }),
            hand_over(COUNTY),
        ],
    )
    .await;
    wait_case(&cluster, COUNTY, &case, 5, COUNTY).await;

    // The village goes offline while the county decides; the decision reaches it on return.
    wait_case(&cluster, village, &case, 5, COUNTY).await;
    cluster.stop(&village_id).await.unwrap();
    let mut at_county = clerk(&cluster, COUNTY).await;
    act_all(
        &mut at_county,
        &case,
        vec![
            A::StartHandling(act::StartHandling {}),
            A::SubmitForReview(act::SubmitForReview {}),
            decide(true, pb::SealType::Unspecified),
            conclude_approved(),
            hand_over(T1),
        ],
    )
    .await;
    cluster.start(&village_id).await.unwrap();
    let view = wait_case(&cluster, village, &case, 10, T1).await;
    assert_eq!(view.state.kind(), StateKind::Concluded);
    let decision = view
        .decision
        .as_ref()
        .expect("the county's decision reached the village");
    assert_eq!(decision.at_node.as_str(), COUNTY);
    assert!(decision.approved);
    wait_same_everywhere(&cluster, &[village, T1, COUNTY], &case, 10).await;
    // The other case, never forwarded, stays at the village and the tiers above only see it.
    let other = wait_case(&cluster, COUNTY, &second.case_id, 1, village).await;
    assert_eq!(other.state.kind(), StateKind::Submitted);
    ops::assert_no_alarms(&cluster, &[county_id, township_id, village_id]).await;
    cluster.stop_all().await;
}

/// A not-delegated item (accepted at township 1's front desk): the township accepts and hands
/// the case to the county; the county department decides under its own seal and hands the
/// result back; the township issues it under the same seal. Every tier ends with the same case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_delegated_case_is_decided_by_the_county_department_and_issued_at_the_township() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = three_tiers(dir.path()).await;
    let mut at_township = clerk(&cluster, T1).await;
    let mut at_county = clerk(&cluster, COUNTY).await;
    let seal = pb::SealType::County;

    let case = submit(&mut at_township, "T-DESK-T1").await.case_id;
    act_all(
        &mut at_township,
        &case,
        vec![A::Receive(act::Receive {}), A::Accept(act::Accept { terms: None })],
    )
    .await;
    // Not the township's to decide, and not under the township's seal.
    assert_code(
        try_act(&mut at_township, &case, A::StartHandling(act::StartHandling {})).await,
        Code::PermissionDenied,
        &["county"],
    );
    act_all(&mut at_township, &case, vec![hand_over(COUNTY)]).await;

    wait_case(&cluster, COUNTY, &case, 4, COUNTY).await;
    act_all(
        &mut at_county,
        &case,
        vec![
            A::StartHandling(act::StartHandling {}),
            A::SubmitForReview(act::SubmitForReview {}),
        ],
    )
    .await;
    assert_code(
        try_act(&mut at_county, &case, decide(true, pb::SealType::TownshipApproval)).await,
        Code::FailedPrecondition,
        &["wrong seal"],
    );
    act_all(
        &mut at_county,
        &case,
        vec![decide(true, seal), conclude_approved(), hand_over(T1)],
    )
    .await;

    wait_case(&cluster, T1, &case, 9, T1).await;
    act_all(
        &mut at_township,
        &case,
        vec![A::ResultReady(act::ResultReady {}), issue(seal)],
    )
    .await;

    let view = wait_same_everywhere(&cluster, &[T1, COUNTY], &case, 11).await;
    assert_eq!(view.decision.as_ref().expect("decided").at_node.as_str(), COUNTY);
    assert_eq!(view.issued_seal, Some(tongban_domains::catalogue::SealType::County));
    let path: Vec<&str> = view.history.iter().map(|r| r.at_node.as_str()).collect();
    assert_eq!(path, [T1, T1, T1, T1, COUNTY, COUNTY, COUNTY, COUNTY, COUNTY, T1, T1]);
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
    cluster.stop_all().await;
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Publishes a one-year calendar file at the county.
async fn publish_year(cluster: &Cluster, year: i32, version: &str, holidays: &[NaiveDate]) -> pb::CalendarInfo {
    let listed: Vec<String> = holidays
        .iter()
        .map(|d| format!("\"{}\"", d.format("%Y-%m-%d")))
        .collect();
    let toml = format!(
        "name = \"五华县 {year}\"\nversion = \"{version}\"\nfirst_year = {year}\nlast_year = {year}\nholidays = [{}]\n",
        listed.join(", ")
    );
    CalendarPublishingClient::new(ops::admin(cluster, &id(COUNTY)).await)
        .publish(pb::PublishCalendarRequest {
            content: toml,
            format: pb::CalendarFormat::Toml as i32,
        })
        .await
        .unwrap_or_else(|s| panic!("publishing {year} {version}: {s:?}"))
        .into_inner()
}

/// Waits until every node of `nodes` shows the calendar years `expected` (year, version) and
/// all of them count on the same calendar.
async fn wait_years(cluster: &Cluster, nodes: &[&str], expected: &[(i32, &str)]) {
    let expected: Vec<(i32, String)> = expected.iter().map(|(y, v)| (*y, (*v).to_owned())).collect();
    for node in nodes {
        let client = CalendarClient::new(ops::admin(cluster, &id(node)).await);
        wait_for(
            TIMEOUT,
            &format!("{node} to hold the calendar years {expected:?}"),
            || {
                let mut client = client.clone();
                let expected = expected.clone();
                async move {
                    let info = client
                        .show(pb::ShowCalendarRequest {})
                        .await
                        .map_err(|s| s.to_string())?
                        .into_inner();
                    let years: Vec<(i32, String)> = info.years.iter().map(|y| (y.year, y.version.clone())).collect();
                    if years == expected {
                        Ok(())
                    } else {
                        Err(format!("{years:?}"))
                    }
                }
            },
        )
        .await;
    }
    let at_county = cluster.node(&id(COUNTY)).unwrap().store.calendar().await.unwrap();
    for node in nodes {
        let here = cluster.node(&id(node)).unwrap().store.calendar().await.unwrap();
        assert_eq!(here, at_county, "{node} counts on another calendar than the county");
    }
}

/// Waits until the county's `Cases.Get` shows the case with `steps` steps, and returns it.
async fn county_detail(cluster: &Cluster, case_id: &str, steps: usize) -> pb::CaseDetail {
    wait_case(cluster, COUNTY, case_id, steps, T1).await;
    detail_by_admin(cluster, COUNTY, case_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_and_a_special_procedure_move_the_deadline_seen_at_the_county() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    // The tree on one manual clock at Wednesday 2026-12-23, whatever today is.
    let ids = vec![id(COUNTY), id(T1), id(T1_VILLAGES[0])];
    let sync = SyncConfig {
        max_backoff_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), sync).await;
    let clock = Arc::new(ManualClock::new(date(2026, 12, 23)));
    cluster.set_clock(clock.clone());
    tree::start_linked(&mut cluster).await;
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &small_catalogue(), "ext").await;
    assert_eq!(imported.version, 1);
    wait_catalogue(&cluster, &ids, 1).await;
    let cluster = cluster;
    let everywhere = [COUNTY, T1, T1_VILLAGES[0]];

    // 2026 (Thursday 12-31 off), then 2027 (Friday 01-01 off): both stay in force everywhere.
    publish_year(&cluster, 2026, "t26.1", &[date(2026, 12, 31)]).await;
    let info = publish_year(&cluster, 2027, "t27.1", &[date(2027, 1, 1)]).await;
    assert_eq!(info.years.iter().map(|y| y.year).collect::<Vec<_>>(), vec![2026, 2027]);
    wait_years(&cluster, &everywhere, &[(2026, "t26.1"), (2027, "t27.1")]).await;
    // Counted by hand on those two years.
    let mut off = vec![date(2026, 12, 31), date(2027, 1, 1)];
    let add = |off: &[NaiveDate], from: NaiveDate, n: i64| {
        let (mut d, mut left) = (from, n);
        while left > 0 {
            d += Duration::days(1);
            if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !off.contains(&d) {
                left -= 1;
            }
        }
        d
    };

    // Accepted on the spot at the township on 12-23; the promised limit runs into 2027.
    let mut at_township = clerk(&cluster, T1).await;
    let receipt = at_township
        .submit(pb::SubmitCaseRequest {
            item_code: AUTHORISED.to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: String::new(),
            accept_on_the_spot: true,
        })
        .await
        .unwrap()
        .into_inner();
    let case = receipt.case_id.clone();
    let promised = i64::from(receipt.promised_days);
    assert!(promised > 0);
    act_all(&mut at_township, &case, vec![A::StartHandling(act::StartHandling {})]).await;
    let accepted = date(2026, 12, 23);
    let detail = county_detail(&cluster, &case, 4).await;
    let promised_deadline = add(&off, accepted, promised);
    assert_eq!(detail.deadline, promised_deadline.format("%Y-%m-%d").to_string());
    assert!(detail.extension.is_none());

    // Bad extensions change nothing and say why.
    let extend = |days: u32, reason: &str, approver: &str| {
        A::Extend(act::Extend {
            days,
            reason: reason.to_owned(),
            approver: approver.to_owned(),
        })
    };
    assert_code(
        try_act(&mut at_township, &case, extend(5, "", "陈镇长")).await,
        Code::InvalidArgument,
        &["reason"],
    );
    assert_code(
        try_act(&mut at_township, &case, extend(11, "需现场核查", "陈镇长")).await,
        Code::InvalidArgument,
        &["1 至 10 个工作日"],
    );
    assert_code(
        try_act(&mut at_township, &case, extend(5, "需现场核查", "")).await,
        Code::InvalidArgument,
        &["负责人"],
    );
    // Only the deciding tier extends (the county does not decide an authorised item).
    assert_code(
        try_act(
            &mut clerk(&cluster, COUNTY).await,
            &case,
            extend(5, "需现场核查", "陈镇长"),
        )
        .await,
        Code::FailedPrecondition,
        &["held by"],
    );
    assert_eq!(view_at(&cluster, &id(T1), &case).await.unwrap().history.len(), 4);

    // An extension of 5 working days, on 12-24: the county sees the deadline 5 working days on.
    clock.set_today(date(2026, 12, 24));
    act_all(&mut at_township, &case, vec![extend(5, "需现场核查", "陈镇长")]).await;
    let detail = county_detail(&cluster, &case, 5).await;
    let extended = add(&off, promised_deadline, 5);
    assert_eq!(detail.deadline, extended.format("%Y-%m-%d").to_string());
    let extension = detail.extension.expect("the extension at the county");
    assert_eq!(
        (
            extension.days,
            extension.reason.as_str(),
            extension.approver.as_str(),
            extension.at_node.as_str()
        ),
        (5, "需现场核查", "陈镇长", T1)
    );
    assert_code(
        try_act(&mut at_township, &case, extend(1, "仍需核查", "陈镇长")).await,
        Code::FailedPrecondition,
        &["只能延期一次"],
    );

    // A hearing from Monday 12-28 to Wednesday 12-30: two working days paused, two days later.
    clock.set_today(date(2026, 12, 28));
    act_all(
        &mut at_township,
        &case,
        vec![A::StartSpecialProcedure(act::StartSpecialProcedure {
            kind: pb::SpecialProcedureKind::Hearing as i32,
            reason: "需举行听证".to_owned(),
        })],
    )
    .await;
    let paused = county_detail(&cluster, &case, 6).await;
    assert_eq!(paused.deadline, "", "no deadline while the clock stands");
    clock.set_today(date(2026, 12, 30));
    act_all(
        &mut at_township,
        &case,
        vec![A::EndSpecialProcedure(act::EndSpecialProcedure {})],
    )
    .await;
    let detail = county_detail(&cluster, &case, 7).await;
    let after_hearing = add(&off, extended, 2);
    assert_eq!(detail.deadline, after_hearing.format("%Y-%m-%d").to_string());
    assert_eq!(
        detail.summary.as_ref().map(|s| s.state),
        Some(pb::CaseStateKind::Handling as i32)
    );

    // Republishing 2026 (12-31 a working day again) replaces 2026 only: 01-01 stays off.
    publish_year(&cluster, 2026, "t26.2", &[]).await;
    wait_years(&cluster, &everywhere, &[(2026, "t26.2"), (2027, "t27.1")]).await;
    off.retain(|d| d.year() == 2027);
    let detail = detail_by_admin(&cluster, COUNTY, &case).await;
    let recounted = add(&off, add(&off, add(&off, accepted, promised), 5), 2);
    assert_eq!(detail.deadline, recounted.format("%Y-%m-%d").to_string());
    assert_ne!(recounted, after_hearing, "2026-12-31 counts again");
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
}

/// A county and township 1 holding the test catalogue plus two variants of one basic code
/// (临时救助, 急难型 and 支出型, both for every township), a third basic code with one variant,
/// and a penalty delegated to every township.
async fn county_and_township_with_variants(dir: &std::path::Path) -> Cluster {
    use tongban_domains::catalogue::{Category, DelegationMode, ItemType};
    let ids = vec![id(COUNTY), id(T1)];
    let mut cluster = tree::cluster(dir, &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;
    let relief = |code: &str, name: &str| {
        let mut item = catalogue::county_item(code, "050009005000", name);
        item.item_type = ItemType::Benefit;
        item.category = Category::PublicService;
        catalogue::delegate(item, DelegationMode::Entrusted, None)
    };
    let mut penalty = catalogue::delegate(
        catalogue::county_item("T-PENALTY", "000102001000", "对违法占用耕地建房的处罚"),
        DelegationMode::Authorised,
        None,
    );
    penalty.item_type = ItemType::Penalty;
    let mut items = small_catalogue();
    items.extend([
        relief("050009005000-1-01", "临时救助（急难型）"),
        relief("050009005000-1-02", "临时救助（支出型）"),
        penalty,
    ]);
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &items, "variants").await;
    assert_eq!(imported.version, 1);
    wait_catalogue(&cluster, &ids, 1).await;
    cluster
}

/// Cases at the township, read at the county through `Cases.List`.
async fn cases_listed(cluster: &Cluster) -> usize {
    CasesClient::new(ops::admin(cluster, &id(COUNTY)).await)
        .list(pb::ListCasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cases
        .len()
}

async fn try_submit(client: &mut CasesClient<Channel>, item: &str) -> Result<pb::CaseReceipt, Status> {
    client
        .submit(pb::SubmitCaseRequest {
            item_code: item.to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_basic_code_is_refused_with_its_variants_and_an_implementation_code_chooses_one() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = county_and_township_with_variants(dir.path()).await;
    let mut at_township = clerk(&cluster, T1).await;

    // The basic code two variants share names neither: refused, listing both, nothing opened.
    let refused = try_submit(&mut at_township, "050009005000").await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{}", refused.message());
    for part in [
        "临时救助（急难型）（实施编码 050009005000-1-01）",
        "临时救助（支出型）（实施编码 050009005000-1-02）",
        "下一步",
    ] {
        assert!(refused.message().contains(part), "{part} not in {}", refused.message());
    }
    // GetItem likewise.
    let mut catalogue_at_t1 = pb::catalogue_client::CatalogueClient::new(ops::admin(&cluster, &id(T1)).await);
    let get = catalogue_at_t1
        .get_item(pb::GetItemRequest {
            code: "050009005000".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::InvalidArgument, "{}", get.message());
    assert!(get.message().contains("050009005000-1-02"), "{}", get.message());

    // The implementation code chooses the variant.
    let receipt = try_submit(&mut at_township, "050009005000-1-02").await.unwrap();
    assert_eq!(receipt.item_name, "临时救助（支出型）");
    let detail = detail_by_admin(&cluster, T1, &receipt.case_id).await;
    assert_eq!(detail.summary.unwrap().implementation_code, "050009005000-1-02");
    // A basic code with one variant still works, at intake and in GetItem.
    let single = try_submit(&mut at_township, "000201001000").await.unwrap();
    assert_eq!(single.item_name, "农村村民住宅用地审批");
    let one = catalogue_at_t1
        .get_item(pb::GetItemRequest {
            code: "000201001000".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.item.unwrap().implementation_code, "T-ALL");

    // The list finds both variants by the basic code they share, with their implementation codes.
    let listed = catalogue_at_t1
        .list_items(pb::ListItemsRequest {
            query: "050009005000".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let codes: Vec<&str> = listed.items.iter().map(|i| i.implementation_code.as_str()).collect();
    assert_eq!(codes, ["050009005000-1-01", "050009005000-1-02"]);
    let too_long = catalogue_at_t1
        .list_items(pb::ListItemsRequest {
            query: "临".repeat(101),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument);

    wait_for(TIMEOUT, "the two cases at the county", || async {
        match cases_listed(&cluster).await {
            2 => Ok(()),
            n => Err(format!("{n} cases")),
        }
    })
    .await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_penalty_is_not_taken_as_an_application() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = county_and_township_with_variants(dir.path()).await;
    let mut at_township = clerk(&cluster, T1).await;

    for code in ["T-PENALTY", "000102001000"] {
        let refused = try_submit(&mut at_township, code).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::FailedPrecondition,
            "{code}: {}",
            refused.message()
        );
        assert!(
            refused.message().starts_with("行政处罚事项不受理群众申请") && refused.message().contains("下一步"),
            "{}",
            refused.message()
        );
    }
    // It stays in the list, so the township sees what it was delegated.
    let shown = pb::catalogue_client::CatalogueClient::new(ops::admin(&cluster, &id(T1)).await)
        .get_item(pb::GetItemRequest {
            code: "T-PENALTY".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.item.unwrap().item_type, pb::ItemType::Penalty as i32);
    // Nothing was opened: an application after the refusals is the first case of the day.
    let receipt = try_submit(&mut at_township, "T-ALL").await.unwrap();
    assert!(receipt.case_number.ends_with("-0001"), "{receipt:?}");
    cluster.stop_all().await;
}
