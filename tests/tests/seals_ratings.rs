//! The seal register and ratings over real nodes: an issued authorised case writes register
//! entries under the township approval seal at the township and at the county, exported as CSV;
//! the wrong seal is refused and writes nothing; an issued case left unrated for seven days (on an
//! injected clock) gets the default "basically satisfied"; a bad rating opens a rectification with
//! a five-working-day deadline that only a response closes; an entrusted case's one stamp is the
//! township's: the county decides it unstamped, the township stamps the result at issuing under
//! the county's letter of entrustment (refused without one, or with one naming other items), and
//! the county alone answers its bad rating; and the oversight summary counts what the test did.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tests::catalogue::{self, small_catalogue};
use tests::tree::{self, wait_catalogue};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, days, id, ops, setup};
use tongban_domains::calendar::{ManualClock, shanghai_date};
use tongban_domains::case::{RatingLevel, StateKind};
use tongban_domains::config::SyncConfig;
use tongban_domains::pki::Principal;
use tongban_domains::store::{CaseRef, SealFilter};
use tongban_proto::v1::{
    self as pb, case_action as act, cases_client::CasesClient, oversight_client::OversightClient,
    ratings_client::RatingsClient, seals_client::SealsClient,
};
use tongban_testkit::cluster::Cluster;
use tonic::Code;
use tonic::transport::Channel;

use act::Action as A;

/// The authorised item every township takes: decided and issued at the township under the
/// township approval seal.
const AUTHORISED: &str = "T-ALL";

/// A county, township 1 and its first village, linked, holding the test catalogue.
/// The county, one township and one village on one manual clock standing at 09:00 on a Monday
/// of 2026 (whatever today is), with the sample catalogue.
async fn three_tiers(dir: &std::path::Path) -> (Cluster, Arc<ManualClock>) {
    let ids = vec![id(COUNTY), id(T1), id(T1_VILLAGES[0])];
    let sync = SyncConfig {
        max_backoff_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir, &ids, Vec::new(), sync).await;
    let clock = Arc::new(ManualClock::new(chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()));
    cluster.set_clock(clock.clone());
    tree::start_linked(&mut cluster).await;
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &small_catalogue(), "seals").await;
    assert_eq!(imported.version, 1);
    wait_catalogue(&cluster, &ids, 1).await;
    (cluster, clock)
}

async fn channel(cluster: &Cluster, place: &str) -> Channel {
    let principal = Principal::operator(id(place), "clerk").unwrap();
    ops::channel_as(cluster, &id(place), &principal).await
}

async fn act(client: &mut CasesClient<Channel>, case_id: &str, action: A) -> Result<pb::CaseSummary, tonic::Status> {
    client
        .act(pb::ActRequest {
            case_id: case_id.to_owned(),
            action: Some(pb::CaseAction { action: Some(action) }),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Submits the authorised item at the township and takes it through to the step before issue
/// (result ready); returns the case id.
async fn ready_to_issue(at_township: &mut CasesClient<Channel>) -> String {
    let receipt = at_township
        .submit(pb::SubmitCaseRequest {
            item_code: AUTHORISED.to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: "13800000000".to_owned(),
            accept_on_the_spot: false,
        })
        .await
        .unwrap()
        .into_inner();
    let seal = pb::SealType::TownshipApproval as i32;
    for action in [
        A::Receive(act::Receive {}),
        A::Accept(act::Accept { terms: None }),
        A::StartHandling(act::StartHandling {}),
        A::SubmitForReview(act::SubmitForReview {}),
        A::Decide(act::Decide {
            approve: true,
            reason: "材料齐全，符合法定条件".to_owned(),
            seal,
            // Unset: one impression.
            impressions: 0,
        }),
        A::Conclude(act::Conclude {
            outcome: pb::CaseOutcome::Approved as i32,
            reason: String::new(),
        }),
        A::ResultReady(act::ResultReady {}),
    ] {
        let what = format!("{action:?}");
        act(at_township, &receipt.case_id, action)
            .await
            .unwrap_or_else(|s| panic!("{what}: {s:?}"));
    }
    receipt.case_id
}

fn issue(seal: pb::SealType) -> A {
    A::Issue(act::Issue {
        seal: seal as i32,
        impressions: 2,
    })
}

fn list_request() -> pb::ListSealEntriesRequest {
    pb::ListSealEntriesRequest {
        seal: pb::SealType::TownshipApproval as i32,
        ..Default::default()
    }
}

/// Waits until `node` lists `n` register entries for the township approval seal.
async fn wait_entries(cluster: &Cluster, node: &str, n: usize) -> Vec<pb::SealEntry> {
    let seals = SealsClient::new(ops::admin(cluster, &id(node)).await);
    wait_for(TIMEOUT, &format!("{node} to list {n} seal entries"), || {
        let mut seals = seals.clone();
        async move {
            let entries = seals.list_entries(list_request()).await.map_err(|s| format!("{s:?}"))?;
            let entries = entries.into_inner().entries;
            if entries.len() == n {
                Ok(entries)
            } else {
                Err(format!("{} entries", entries.len()))
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamped_steps_are_registered_at_the_township_and_the_county() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _clock) = three_tiers(dir.path()).await;
    let mut at_township = CasesClient::new(channel(&cluster, T1).await);
    let case = ready_to_issue(&mut at_township).await;
    let township = cluster.node(&id(T1)).unwrap().store.clone();
    let before = township.seal_entries(&SealFilter::default()).await.unwrap();
    assert_eq!(before.len(), 1, "the decision is stamped: {before:?}");
    let steps_before = township
        .case(&CaseRef::Id(case.parse().unwrap()))
        .await
        .unwrap()
        .unwrap()
        .history
        .len();

    // The wrong seal is refused as a failed precondition and writes nothing.
    let refused = act(&mut at_township, &case, issue(pb::SealType::EntrustedApproval))
        .await
        .expect_err("the entrusted approval seal is not this item's");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    assert!(refused.message().contains("seal"), "{}", refused.message());
    assert_eq!(township.seal_entries(&SealFilter::default()).await.unwrap(), before);
    let view = township
        .case(&CaseRef::Id(case.parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.history.len(), steps_before);

    act(&mut at_township, &case, issue(pb::SealType::TownshipApproval))
        .await
        .unwrap();
    for node in [T1, COUNTY] {
        let entries = wait_entries(&cluster, node, 2).await;
        let issued = &entries[1];
        assert_eq!(issued.action, "issue", "at {node}");
        assert_eq!(issued.seal, pb::SealType::TownshipApproval as i32);
        assert_eq!(issued.case_id, case);
        assert_eq!(issued.item_code, AUTHORISED);
        assert_eq!(issued.township, T1);
        assert_eq!(issued.at_node, T1, "the township keeps the seal");
        assert_eq!(issued.stamped_by, format!("operator:{T1}:clerk"));
        assert_eq!(issued.approver, format!("operator:{T1}:clerk"));
        assert_eq!(issued.impressions, 2);
        assert_eq!(entries[0].impressions, 1, "unset means one");
        assert_eq!(entries[0].action, "decide");
        assert_eq!(entries[0].reason, "材料齐全，符合法定条件");
    }

    // CSV at the county, for the day the register dated the issue, and the township.
    let today = wait_entries(&cluster, COUNTY, 2).await[1].date.clone();
    let csv = SealsClient::new(ops::admin(&cluster, &id(COUNTY)).await)
        .export_csv(pb::ListSealEntriesRequest {
            seal: pb::SealType::TownshipApproval as i32,
            from_date: today.clone(),
            to_date: today.clone(),
            township: T1.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(csv.rows, 2);
    let lines: Vec<&str> = csv.csv.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.csv);
    assert!(lines[0].starts_with("seal,date,case_number,case_id"), "{}", lines[0]);
    assert!(
        lines[2].starts_with(&format!("township_approval,{today},")),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains(&case), "{}", lines[2]);
    // Another seal's register is empty.
    let other = SealsClient::new(ops::admin(&cluster, &id(COUNTY)).await)
        .list_entries(pb::ListSealEntriesRequest {
            seal: pb::SealType::County as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.entries.is_empty());
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_and_bad_ratings_and_the_oversight_summary() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, clock) = three_tiers(dir.path()).await;
    let mut at_township = CasesClient::new(channel(&cluster, T1).await);
    let township = cluster.node(&id(T1)).unwrap().store.clone();

    let quiet = ready_to_issue(&mut at_township).await;
    let unhappy = ready_to_issue(&mut at_township).await;
    for case in [&quiet, &unhappy] {
        act(&mut at_township, case, issue(pb::SealType::TownshipApproval))
            .await
            .unwrap();
    }

    // A bad rating at the window opens a rectification for the township, 5 working days out.
    act(
        &mut at_township,
        &unhappy,
        A::Rate(act::Rate {
            level: pb::RatingLevel::Dissatisfied as i32,
            defaulted: false,
        }),
    )
    .await
    .unwrap();
    let open = township.rectifications(None, true).await.unwrap();
    assert_eq!(open.len(), 1);
    let item = &open[0];
    assert_eq!(item.case_id, unhappy);
    assert_eq!(item.handler, T1);
    assert_eq!(item.level, RatingLevel::Dissatisfied);
    let rated_on = shanghai_date(item.opened_ms as i64);
    // Five working days on the built-in 2026 calendar, counted by hand.
    let expected = days::add_working_days(rated_on, 5, days::built_in_2026);
    assert_eq!(item.deadline, expected, "rated on {rated_on}");

    // Six days later nothing is defaulted; eight days later the quiet case is.
    clock.advance_days(6);
    assert!(
        township
            .record_default_ratings(township.now_ms())
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance_days(2);
    let defaulted = township.record_default_ratings(township.now_ms()).await.unwrap();
    assert_eq!(
        defaulted.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        vec![quiet.clone()]
    );
    let view = township
        .case(&CaseRef::Id(quiet.parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.state.kind(), StateKind::Rated);
    let rating = view.rating.expect("rated");
    assert_eq!(rating.level, RatingLevel::BasicallySatisfied);
    assert!(rating.defaulted);
    assert_eq!(rating.by, format!("node:{T1}"));
    // Running again rates nothing more.
    assert!(
        township
            .record_default_ratings(township.now_ms())
            .await
            .unwrap()
            .is_empty()
    );

    // Closing needs a response, from the township that handled the case, once.
    let mut ratings = RatingsClient::new(channel(&cluster, T1).await);
    let blank = ratings
        .respond(pb::RespondRequest {
            rectification_id: unhappy.clone(),
            response: "  ".to_owned(),
        })
        .await
        .expect_err("a response is required");
    assert_eq!(blank.code(), Code::InvalidArgument, "{}", blank.message());
    let at_county = RatingsClient::new(channel(&cluster, COUNTY).await)
        .respond(pb::RespondRequest {
            rectification_id: unhappy.clone(),
            response: "已回访".to_owned(),
        })
        .await
        .expect_err("the county did not handle the case");
    assert_eq!(at_county.code(), Code::PermissionDenied, "{}", at_county.message());
    let closed = ratings
        .respond(pb::RespondRequest {
            rectification_id: unhappy.clone(),
            response: "已电话回访申请人，窗口告知流程已改进".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(closed.responded_ms, 0);
    assert_eq!(closed.responder, format!("operator:{T1}:clerk"));
    let again = ratings
        .respond(pb::RespondRequest {
            rectification_id: unhappy.clone(),
            response: "再次回复".to_owned(),
        })
        .await
        .expect_err("already closed");
    assert_eq!(again.code(), Code::FailedPrecondition, "{}", again.message());

    // The response replicates: the county lists the item closed.
    let mut county_ratings = RatingsClient::new(ops::admin(&cluster, &id(COUNTY)).await);
    wait_for(TIMEOUT, "the county to see the rectification closed", || {
        let mut county_ratings = county_ratings.clone();
        async move {
            let list = county_ratings
                .list_rectifications(pb::ListRectificationsRequest {
                    township: T1.to_owned(),
                    open_only: false,
                })
                .await
                .map_err(|s| format!("{s:?}"))?
                .into_inner()
                .rectifications;
            match list.first() {
                Some(r) if r.responded_ms != 0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let open_at_county = county_ratings
        .list_rectifications(pb::ListRectificationsRequest {
            township: String::new(),
            open_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(open_at_county.rectifications.is_empty());

    // The summary at the county for township 1 counts what happened (once the default rating
    // has replicated).
    let mut oversight = OversightClient::new(ops::admin(&cluster, &id(COUNTY)).await);
    let summary = wait_for(TIMEOUT, "the county to count both ratings", || {
        let mut oversight = oversight.clone();
        async move {
            let s = oversight
                .summary(pb::SummaryRequest {
                    township: T1.to_owned(),
                })
                .await
                .map_err(|s| format!("{s:?}"))?
                .into_inner();
            match &s.ratings {
                Some(r) if r.rated == 2 => Ok(s),
                _ => Err(format!("{s:?}")),
            }
        }
    })
    .await;
    assert_eq!(summary.scope, T1);
    assert_eq!((summary.received, summary.accepted, summary.concluded), (2, 2, 2));
    assert_eq!((summary.overdue, summary.yellow), (0, 0), "issued cases do not warn");
    assert!(summary.avg_working_days_to_conclusion >= 0.0);
    let r = summary.ratings.unwrap();
    assert_eq!((r.concluded, r.rated, r.active, r.defaulted), (2, 2, 1, 1));
    assert_eq!((r.good, r.bad), (0, 1));
    // The response came eight calendar days after the bad rating (the township's clock was
    // moved on for the default rating), past its five-working-day deadline: rectified, late.
    assert_eq!((r.rectifications, r.rectified, r.rectified_on_time), (1, 1, 0));
    assert_eq!((r.coverage, r.active_rate, r.bad_rate), (1.0, 0.5, 0.5));
    assert_eq!((r.rectification_rate, r.on_time_rate), (1.0, 0.0));
    assert_eq!(summary.rows.len(), 1, "{:?}", summary.rows);
    assert_eq!(summary.rows[0].item_code, AUTHORISED);
    // County-wide is the same here: township 1 is the only one with cases.
    let all = oversight
        .summary(pb::SummaryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.scope, COUNTY);
    assert_eq!(all.ratings, Some(r));
    drop(oversight);
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
    cluster.stop_all().await;
}

/// Waits until `node` holds `case`.
async fn wait_holder(cluster: &Cluster, node: &str, case: &str) {
    let store = cluster.node(&id(node)).unwrap().store.clone();
    let key: CaseRef = case.parse().unwrap();
    wait_for(TIMEOUT, &format!("{node} to hold {case}"), || {
        let (store, key) = (store.clone(), key.clone());
        async move {
            match store.case(&key).await {
                Ok(Some(v)) if v.holder.as_str() == node => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entrusted_case_is_stamped_at_the_township_under_its_letter_and_rectified_by_the_county() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _clock) = three_tiers(dir.path()).await;
    let mut at_township = CasesClient::new(channel(&cluster, T1).await);
    let mut at_county = CasesClient::new(channel(&cluster, COUNTY).await);
    let case = at_township
        .submit(pb::SubmitCaseRequest {
            item_code: "T-T1".to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: String::new(),
            accept_on_the_spot: false,
        })
        .await
        .unwrap()
        .into_inner()
        .case_id;
    let seal = pb::SealType::EntrustedApproval;
    for action in [
        A::Receive(act::Receive {}),
        A::Accept(act::Accept { terms: None }),
        A::HandOver(act::HandOver { to: COUNTY.to_owned() }),
    ] {
        act(&mut at_township, &case, action).await.unwrap();
    }
    wait_holder(&cluster, COUNTY, &case).await;
    for action in [
        A::StartHandling(act::StartHandling {}),
        A::SubmitForReview(act::SubmitForReview {}),
    ] {
        act(&mut at_county, &case, action).await.unwrap();
    }
    // The county decides, but the entrusted seal is the township's: a decision stamped with it
    // is refused, and writes nothing.
    let decide = |seal: pb::SealType| {
        A::Decide(act::Decide {
            approve: true,
            reason: "同意".to_owned(),
            seal: seal as i32,
            impressions: 1,
        })
    };
    let refused = act(&mut at_county, &case, decide(seal))
        .await
        .expect_err("the county does not stamp the township's entrusted seal");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    assert!(
        refused.message().contains("出件时由乡镇印章管理员加盖"),
        "{}",
        refused.message()
    );
    for action in [
        decide(pb::SealType::Unspecified),
        A::Conclude(act::Conclude {
            outcome: pb::CaseOutcome::Approved as i32,
            reason: String::new(),
        }),
        A::HandOver(act::HandOver { to: T1.to_owned() }),
    ] {
        act(&mut at_county, &case, action).await.unwrap();
    }
    wait_holder(&cluster, T1, &case).await;
    act(&mut at_township, &case, A::ResultReady(act::ResultReady {}))
        .await
        .unwrap();
    let township_store = cluster.node(&id(T1)).unwrap().store.clone();
    let county = cluster.node(&id(COUNTY)).unwrap().store.clone();

    // Without the county's letter the township holds no entrusted seal, and may not issue.
    let refused = act(&mut at_township, &case, issue(seal))
        .await
        .expect_err("no letter of entrustment yet");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    assert!(refused.message().contains("委托书"), "{}", refused.message());
    // A letter for other items of the class does not cover this one.
    let admin = ops::admin(&cluster, &id(COUNTY)).await;
    catalogue::entrust(admin.clone(), T1, pb::Category::GovernmentService, &["000117004000"]).await;
    let wait_letter = |codes: usize| {
        let township_store = township_store.clone();
        async move {
            wait_for(TIMEOUT, "the letter to reach the township", || {
                let township_store = township_store.clone();
                async move {
                    let letters = township_store.letters(None).await.map_err(|e| e.to_string())?;
                    match letters.first() {
                        Some(l) if l.item_codes.len() == codes => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
            })
            .await
        }
    };
    wait_letter(1).await;
    let refused = act(&mut at_township, &case, issue(seal))
        .await
        .expect_err("the letter names other items");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    assert!(refused.message().contains("不在委托书"), "{}", refused.message());
    assert!(
        township_store
            .seal_entries(&SealFilter::default())
            .await
            .unwrap()
            .is_empty(),
        "refusals register nothing"
    );
    // The whole class: the township's seal keeper stamps the result with its entrusted seal.
    let letter = catalogue::entrust(admin, T1, pb::Category::GovernmentService, &[]).await;
    assert_eq!(letter.seal, seal as i32);
    wait_letter(0).await;
    for action in [
        issue(seal),
        A::Rate(act::Rate {
            level: pb::RatingLevel::VeryDissatisfied as i32,
            defaulted: false,
        }),
    ] {
        act(&mut at_township, &case, action).await.unwrap();
    }

    // One stamp, at the township, at issuing: in the register at the township and the county.
    for (node, store) in [(T1, &township_store), (COUNTY, &county)] {
        let entries = wait_for(TIMEOUT, &format!("{node} to register the stamp"), || {
            let store = store.clone();
            async move {
                let entries = store
                    .seal_entries(&SealFilter::default())
                    .await
                    .map_err(|e| e.to_string())?;
                if entries.len() == 1 {
                    Ok(entries)
                } else {
                    Err(format!("{entries:?}"))
                }
            }
        })
        .await;
        let entry = &entries[0];
        assert_eq!(
            (entry.action.as_str(), entry.at_node.as_str(), entry.seal),
            ("issue", T1, tongban_domains::catalogue::SealType::EntrustedApproval),
            "at {node}"
        );
        assert_eq!(entry.approver, format!("operator:{COUNTY}:clerk"), "the county decided");
    }

    // The county decided, so the county answers the bad rating; the township may not.
    let item = cluster
        .node(&id(T1))
        .unwrap()
        .store
        .rectification(&case)
        .await
        .unwrap()
        .expect("a rectification item");
    assert_eq!(item.handler, COUNTY);
    let refused = RatingsClient::new(channel(&cluster, T1).await)
        .respond(pb::RespondRequest {
            rectification_id: case.clone(),
            response: "已回访".to_owned(),
        })
        .await
        .expect_err("the township did not decide");
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    wait_for(TIMEOUT, "the county to hold the rectification", || {
        let county = county.clone();
        let case = case.clone();
        async move {
            match county.rectification(&case).await {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    RatingsClient::new(channel(&cluster, COUNTY).await)
        .respond(pb::RespondRequest {
            rectification_id: case.clone(),
            response: "已回访并改进审批流程".to_owned(),
        })
        .await
        .unwrap();
    let township = cluster.node(&id(T1)).unwrap().store.clone();
    wait_for(TIMEOUT, "the response to reach the township", || {
        let township = township.clone();
        let case = case.clone();
        async move {
            match township.rectification(&case).await {
                Ok(Some(r)) if !r.is_open() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    ops::assert_no_alarms(&cluster, &cluster.ids()).await;
    cluster.stop_all().await;
}
