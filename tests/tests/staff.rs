//! People and posts over real nodes: the county sets up a township's roster (windows, a
//! director, a window clerk, an approver, a seal keeper); from then on only staff on it act
//! there, each within their post: a window clerk's decision and issue are refused and write
//! nothing, a stranger's certificate is refused, only the director changes the roster. Every
//! step names the person and window, the case records the accepting and issuing windows, the
//! seal register names approver and stamper, the roster reaches the county, and the oversight
//! summary counts per window. A village with no roster yet still takes cases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tests::catalogue::{self, small_catalogue};
use tests::tree::{self, wait_catalogue};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, id, ops, setup};
use tongban_domains::config::SyncConfig;
use tongban_domains::pki::Principal;
use tongban_proto::v1::{
    self as pb, case_action as act, cases_client::CasesClient, oversight_client::OversightClient,
    seals_client::SealsClient, staff_client::StaffClient,
};
use tongban_testkit::cluster::Cluster;
use tonic::Code;
use tonic::transport::Channel;

use act::Action as A;

/// Decided and issued at the township under the township approval seal.
const AUTHORISED: &str = "T-ALL";

async fn tree(dir: &std::path::Path) -> Cluster {
    let ids = vec![id(COUNTY), id(T1), id(T1_VILLAGES[0])];
    let sync = SyncConfig {
        max_backoff_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir, &ids, Vec::new(), sync).await;
    tree::start_linked(&mut cluster).await;
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &small_catalogue(), "staff").await;
    wait_catalogue(&cluster, &ids, imported.version).await;
    cluster
}

async fn as_login(cluster: &Cluster, place: &str, login: &str) -> Channel {
    let principal = Principal::operator(id(place), login).unwrap();
    ops::channel_as(cluster, &id(place), &principal).await
}

fn member(no: &str, name: &str, posts: &[pb::Post], window: u32, login: &str) -> pb::PutMemberRequest {
    pb::PutMemberRequest {
        member: Some(pb::StaffMember {
            staff_no: no.to_owned(),
            name: name.to_owned(),
            posts: posts.iter().map(|p| *p as i32).collect(),
            window,
            logins: vec![login.to_owned()],
            active: true,
        }),
    }
}

fn window(number: u32, kind: pb::WindowKind) -> pb::PutWindowRequest {
    pb::PutWindowRequest {
        window: Some(pb::ServiceWindow {
            number,
            kind: kind as i32,
            label: String::new(),
            open: true,
        }),
    }
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

fn submission() -> pb::SubmitCaseRequest {
    pb::SubmitCaseRequest {
        item_code: AUTHORISED.to_owned(),
        applicant_kind: pb::ApplicantKind::Person as i32,
        applicant_name: "李明".to_owned(),
        applicant_id_number: "441424199001011234".to_owned(),
        applicant_phone: "13800000000".to_owned(),
        accept_on_the_spot: false,
    }
}

async fn steps_at(cluster: &Cluster, node: &str, case_id: &str) -> Vec<pb::CaseHistoryEntry> {
    CasesClient::new(ops::admin(cluster, &id(node)).await)
        .get(pb::GetCaseRequest {
            key: Some(pb::get_case_request::Key::CaseId(case_id.to_owned())),
        })
        .await
        .unwrap()
        .into_inner()
        .history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_limit_steps_and_every_step_names_the_person() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = tree(dir.path()).await;

    // The county sets up the township's roster.
    let mut from_county = StaffClient::new(ops::admin(&cluster, &id(T1)).await);
    // A seat at a window that does not exist yet is refused, and nothing is written.
    let refused = from_county
        .put_member(member("A01", "王芳", &[pb::Post::WindowClerk], 2, "clerk"))
        .await
        .expect_err("window 2 does not exist yet");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    assert!(refused.message().contains("2号窗口"), "{}", refused.message());
    for (number, kind) in [
        (1, pb::WindowKind::Consultation),
        (2, pb::WindowKind::Comprehensive),
        (5, pb::WindowKind::Comprehensive),
    ] {
        from_county.put_window(window(number, kind)).await.unwrap();
    }
    for request in [
        member("D01", "陈主任", &[pb::Post::Director], 0, "director"),
        member("A01", "王芳", &[pb::Post::WindowClerk], 2, "clerk"),
        member("B01", "李四", &[pb::Post::Approver], 0, "approver"),
        member("S01", "赵六", &[pb::Post::SealKeeper], 5, "keeper"),
    ] {
        from_county.put_member(request).await.unwrap();
    }
    // One certificate name, one member.
    let refused = from_county
        .put_member(member("A02", "张三", &[pb::Post::WindowClerk], 2, "clerk"))
        .await
        .expect_err("clerk is 王芳's");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    assert!(refused.message().contains("A01"), "{}", refused.message());

    // Only the director (or a node above) changes the roster from here on.
    let refused = StaffClient::new(as_login(&cluster, T1, "clerk").await)
        .put_member(member("A03", "钱七", &[pb::Post::WindowClerk], 2, "qian"))
        .await
        .expect_err("a window clerk does not keep the roster");
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    StaffClient::new(as_login(&cluster, T1, "director").await)
        .put_member(member("A03", "钱七", &[pb::Post::WindowClerk], 2, "qian"))
        .await
        .unwrap();
    let roster = from_county
        .list_staff(pb::ListStaffRequest::default())
        .await
        .unwrap()
        .into_inner();
    let numbers: Vec<_> = roster
        .members
        .iter()
        .map(|m| m.member.as_ref().unwrap().staff_no.as_str())
        .collect();
    assert_eq!(numbers, ["A01", "A03", "B01", "D01", "S01"]);

    // A certificate nobody on the roster holds may not act here.
    let refused = CasesClient::new(as_login(&cluster, T1, "stranger").await)
        .submit(submission())
        .await
        .expect_err("stranger is on no roster");
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    assert!(refused.message().contains("stranger"), "{}", refused.message());

    let mut clerk = CasesClient::new(as_login(&cluster, T1, "clerk").await);
    let mut approver = CasesClient::new(as_login(&cluster, T1, "approver").await);
    let mut keeper = CasesClient::new(as_login(&cluster, T1, "keeper").await);
    let case = clerk.submit(submission()).await.unwrap().into_inner().case_id;
    act(&mut clerk, &case, A::Receive(act::Receive {})).await.unwrap();
    act(&mut clerk, &case, A::Accept(act::Accept { terms: None }))
        .await
        .unwrap();
    act(&mut approver, &case, A::StartHandling(act::StartHandling {}))
        .await
        .unwrap();
    act(&mut approver, &case, A::SubmitForReview(act::SubmitForReview {}))
        .await
        .unwrap();
    let decide = || {
        A::Decide(act::Decide {
            approve: true,
            reason: "材料齐全，符合法定条件".to_owned(),
            seal: pb::SealType::TownshipApproval as i32,
            impressions: 1,
        })
    };
    let before = steps_at(&cluster, T1, &case).await.len();
    let refused = act(&mut clerk, &case, decide())
        .await
        .expect_err("a window clerk does not decide");
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    assert!(
        refused.message().contains("审批人员") && refused.message().contains("王芳"),
        "{}",
        refused.message()
    );
    assert_eq!(steps_at(&cluster, T1, &case).await.len(), before, "nothing written");
    act(&mut approver, &case, decide()).await.unwrap();
    act(
        &mut approver,
        &case,
        A::Conclude(act::Conclude {
            outcome: pb::CaseOutcome::Approved as i32,
            reason: String::new(),
        }),
    )
    .await
    .unwrap();
    act(&mut clerk, &case, A::ResultReady(act::ResultReady {}))
        .await
        .unwrap();
    let issue = || {
        A::Issue(act::Issue {
            seal: pb::SealType::TownshipApproval as i32,
            impressions: 1,
        })
    };
    let refused = act(&mut clerk, &case, issue())
        .await
        .expect_err("only the seal keeper stamps and issues");
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    assert!(refused.message().contains("印章管理员"), "{}", refused.message());
    let issued = act(&mut keeper, &case, issue()).await.unwrap();
    assert_eq!((issued.accepted_window, issued.issued_window), (2, 5));

    // At the county, once the steps arrive: each names its person, post and window.
    let county_steps = wait_for(TIMEOUT, "the issue to reach the county", || {
        let cluster = &cluster;
        let case = case.clone();
        async move {
            let steps = steps_at(cluster, COUNTY, &case).await;
            if steps.iter().any(|s| s.action_name == "issue") {
                Ok(steps)
            } else {
                Err(format!("{} steps", steps.len()))
            }
        }
    })
    .await;
    let named: Vec<(String, String, i32, u32)> = county_steps
        .iter()
        .map(|s| {
            let who = s.acted_by.clone().unwrap_or_default();
            (s.action_name.clone(), who.name, who.post, who.window)
        })
        .collect();
    let clerk_post = pb::Post::WindowClerk as i32;
    let approver_post = pb::Post::Approver as i32;
    assert_eq!(
        named,
        [
            ("submit".to_owned(), "王芳".to_owned(), clerk_post, 2),
            ("receive".to_owned(), "王芳".to_owned(), clerk_post, 2),
            ("accept".to_owned(), "王芳".to_owned(), clerk_post, 2),
            ("start_handling".to_owned(), "李四".to_owned(), approver_post, 0),
            ("submit_for_review".to_owned(), "李四".to_owned(), approver_post, 0),
            ("decide".to_owned(), "李四".to_owned(), approver_post, 0),
            ("conclude".to_owned(), "李四".to_owned(), approver_post, 0),
            ("result_ready".to_owned(), "王芳".to_owned(), clerk_post, 2),
            ("issue".to_owned(), "赵六".to_owned(), pb::Post::SealKeeper as i32, 5),
        ]
    );

    let detail = CasesClient::new(ops::admin(&cluster, &id(COUNTY)).await)
        .get(pb::GetCaseRequest {
            key: Some(pb::get_case_request::Key::CaseId(case.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.decision_by, "李四（审批人员）");

    // The register names approver and stamper by name and number.
    let entries = SealsClient::new(ops::admin(&cluster, &id(COUNTY)).await)
        .list_entries(pb::ListSealEntriesRequest {
            seal: pb::SealType::TownshipApproval as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let issue_entry = entries.iter().find(|e| e.action == "issue").expect("issue entry");
    assert_eq!(issue_entry.approver, "李四（工号 B01）");
    assert_eq!(issue_entry.stamped_by, "赵六（工号 S01）");

    // The roster itself reaches the county.
    let at_county = StaffClient::new(ops::admin(&cluster, &id(COUNTY)).await);
    wait_for(TIMEOUT, "the township's roster at the county", || {
        let mut at_county = at_county.clone();
        async move {
            let page = at_county
                .list_staff(pb::ListStaffRequest {
                    node: T1.to_owned(),
                    ..Default::default()
                })
                .await
                .map_err(|s| format!("{s:?}"))?
                .into_inner();
            if page.members.len() == 5 {
                Ok(())
            } else {
                Err(format!("{} members", page.members.len()))
            }
        }
    })
    .await;

    // Oversight counts per window.
    let summary = OversightClient::new(ops::admin(&cluster, &id(COUNTY)).await)
        .summary(pb::SummaryRequest {
            township: T1.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let windows: Vec<(u32, u64, u64)> = summary
        .windows
        .iter()
        .map(|w| (w.window, w.accepted, w.issued))
        .collect();
    assert_eq!(windows, [(2, 1, 0), (5, 0, 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_roster_still_takes_cases_and_names_nobody() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = tree(dir.path()).await;
    let village = T1_VILLAGES[0];
    let mut clerk = CasesClient::new(as_login(&cluster, village, "clerk").await);
    let receipt = clerk
        .submit(pb::SubmitCaseRequest {
            item_code: "T-ALL".to_owned(),
            ..submission()
        })
        .await
        .unwrap()
        .into_inner();
    let steps = steps_at(&cluster, village, &receipt.case_id).await;
    assert_eq!(steps.len(), 1);
    assert!(steps[0].acted_by.is_none(), "{:?}", steps[0].acted_by);
    assert_eq!(steps[0].by, format!("operator:{village}:clerk"));
}
