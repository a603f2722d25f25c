//! Time limits between real nodes: the county publishes a working-day calendar that reaches a
//! village and changes the deadline counted there; red and yellow warnings come back from
//! `Cases.ListWarnings` exactly at their boundaries as a manual clock walks across a 调休
//! weekend; a paused case never warns; and a red case opens a supervision record (督办) at the
//! county that closes only with a reason.
//!
//! Case times come from the real clock (the day the test runs, D0); the calendar published here
//! is built around D0 (its next Saturday becomes a working day) so the test means the same on any
//! day, and the receipt's deadline on the built-in calendar is checked on any day too (a date in
//! 2026 against the 2026 schedule written out in `tests::days`, any other date for the empty
//! deadline of an uncovered date). Expected working days are counted here by hand, not with the
//! engine's calendar.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use tests::catalogue::{self, small_catalogue};
use tests::pg::county_on_postgres;
use tests::tree::{self, wait_catalogue};
use tests::wait::{TIMEOUT, wait_for};
use tests::{COUNTY, T1, T1_VILLAGES, days, id, ops, setup};
use tongban_domains::calendar::ManualClock;
use tongban_domains::case::{CaseView, local_date};
use tongban_domains::config::SyncConfig;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_domains::store::{CaseRef, StoreLocation};
use tongban_proto::v1::{
    self as pb, calendar_client::CalendarClient, calendar_publishing_client::CalendarPublishingClient,
    case_action as act, cases_client::CasesClient,
};
use tongban_testkit::cluster::Cluster;
use tonic::Code;
use tonic::transport::Channel;

use act::Action as A;

/// The authorised item every township takes, with village intake: promised 10 working days, so
/// yellow at max(1, ⌈0.2·10⌉) = 2 working days left.
const AUTHORISED: &str = "T-ALL";
const PROMISED: i64 = 10;
const YELLOW_LEFT: i64 = 2;

/// The day the scenario starts on, whatever today is: a Monday of 2026, which the built-in
/// calendar covers.
fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()
}

/// The county, one township and one village, on one manual clock standing at 09:00 on
/// [`first_day`], with the sample catalogue.
async fn three_tiers(dir: &std::path::Path, stores: Vec<(NodeId, StoreLocation)>) -> (Cluster, Arc<ManualClock>) {
    let ids = vec![id(COUNTY), id(T1), id(T1_VILLAGES[0])];
    let sync = SyncConfig {
        max_backoff_secs: 1,
        ..SyncConfig::default()
    };
    let mut cluster = tree::cluster(dir, &ids, stores, sync).await;
    let clock = Arc::new(ManualClock::new(first_day()));
    cluster.set_clock(clock.clone());
    tree::start_linked(&mut cluster).await;
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &small_catalogue(), "warn").await;
    assert_eq!(imported.version, 1);
    wait_catalogue(&cluster, &ids, 1).await;
    (cluster, clock)
}

async fn clerk(cluster: &Cluster, place: &str) -> CasesClient<Channel> {
    let principal = Principal::operator(id(place), "clerk").unwrap();
    CasesClient::new(ops::channel_as(cluster, &id(place), &principal).await)
}

async fn submit(client: &mut CasesClient<Channel>) -> pb::CaseReceipt {
    client
        .submit(pb::SubmitCaseRequest {
            item_code: AUTHORISED.to_owned(),
            applicant_kind: pb::ApplicantKind::Person as i32,
            applicant_name: "李明".to_owned(),
            applicant_id_number: "441424199001011234".to_owned(),
            applicant_phone: String::new(),
            accept_on_the_spot: false,
        })
        .await
        .unwrap()
        .into_inner()
}

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

async fn wait_steps(cluster: &Cluster, node: &str, case_id: &str, steps: usize) -> CaseView {
    let key: CaseRef = case_id.parse().unwrap();
    wait_for(
        TIMEOUT,
        &format!("{node} to see {case_id} with {steps} steps"),
        || async {
            let handle = cluster.node(&id(node)).ok_or("not running")?;
            match handle.store.case(&key).await {
                Ok(Some(v)) if v.history.len() == steps => Ok(v),
                Ok(Some(v)) => Err(format!("{} steps", v.history.len())),
                Ok(None) => Err("unknown".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// The warnings for `case_id` at `node`, as (rule, level, working days left, deadline).
async fn warnings_for(admin: &mut CasesClient<Channel>, case_id: &str) -> Vec<(i32, i32, i64, String)> {
    admin
        .list_warnings(pb::ListWarningsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .warnings
        .into_iter()
        .filter(|w| w.case_id == case_id)
        .map(|w| (w.rule, w.level, w.working_days_left, w.deadline))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_warnings_and_supervision_across_the_tree() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, clock) = three_tiers(dir.path(), Vec::new()).await;
    scenario(&cluster, &clock).await;
    cluster.stop_all().await;
}

/// The same with the county on PostgreSQL (calendars, deadlines and supervision records there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_warnings_and_supervision_with_the_county_on_postgresql() {
    setup();
    let Some((_pg, stores)) = county_on_postgres() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, clock) = three_tiers(dir.path(), stores).await;
    scenario(&cluster, &clock).await;
    cluster.stop_all().await;
}

async fn scenario(cluster: &Cluster, clock: &ManualClock) {
    let village = T1_VILLAGES[0];
    let mut at_village = clerk(cluster, village).await;
    let mut at_township = clerk(cluster, T1).await;

    // Before any calendar is published, the village counts on the built-in one.
    let before = submit(&mut at_village).await;
    // The receipt's indicative deadline on the built-in 2026 calendar, counted here by hand.
    let d0 = local_date(before.submitted_unix_ms as u64);
    assert_eq!(d0, first_day(), "the tree runs on the scenario's clock");
    let expected_before = days::add_working_days(d0, PROMISED as u32, days::built_in_2026)
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        before.deadline_date, expected_before,
        "submitted on {d0}, built-in calendar"
    );

    // The county publishes a calendar making the first Saturday after D0 a working day (调休).
    let mut saturday = d0 + Duration::days(1);
    while saturday.weekday() != Weekday::Sat {
        saturday += Duration::days(1);
    }
    let working = |d: NaiveDate| d == saturday || !matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
    let toml = format!(
        "name = \"test calendar\"\nversion = \"t.1\"\nfirst_year = {}\nlast_year = {}\nadjusted_working_days = [\"{}\"]\n",
        d0.year(),
        (d0 + Duration::days(60)).year(),
        saturday.format("%Y-%m-%d")
    );
    let mut calendar = CalendarPublishingClient::new(ops::admin(cluster, &id(COUNTY)).await);
    // Only the county publishes (no other tier serves it), and only a valid file.
    let refused = CalendarPublishingClient::new(ops::admin(cluster, &id(village)).await)
        .publish(pb::PublishCalendarRequest {
            content: toml.clone(),
            format: pb::CalendarFormat::Toml as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented, "{}", refused.message());
    assert!(
        refused.message().contains("only the county node"),
        "{}",
        refused.message()
    );
    let at_village_calendar = CalendarClient::new(ops::admin(cluster, &id(village)).await);
    let bad = calendar
        .publish(pb::PublishCalendarRequest {
            content: toml.replace(&saturday.format("%Y-%m-%d").to_string(), "2026-13-01"),
            format: pb::CalendarFormat::Toml as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{}", bad.message());
    let published = calendar
        .publish(pb::PublishCalendarRequest {
            content: toml,
            format: pb::CalendarFormat::Toml as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(published.published);
    wait_for(TIMEOUT, "the calendar to reach the village", || {
        let mut c = at_village_calendar.clone();
        async move {
            let info = c
                .show(pb::ShowCalendarRequest {})
                .await
                .map_err(|s| s.to_string())?
                .into_inner();
            match info.calendar {
                Some(cal) if info.published && cal.version == "t.1" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;

    // Counted by hand: the n-th working day after `from`, and working days in (from, to].
    let add = |from: NaiveDate, n: i64| {
        let (mut d, mut left) = (from, n);
        while left > 0 {
            d += Duration::days(1);
            if working(d) {
                left -= 1;
            }
        }
        d
    };
    let between = |from: NaiveDate, to: NaiveDate| {
        let mut n = 0;
        let mut d = from;
        while d < to {
            d += Duration::days(1);
            if working(d) {
                n += 1;
            }
        }
        n
    };

    // The village now counts on the published calendar: the Saturday brings the deadline closer.
    let after = submit(&mut at_village).await;
    let expected = add(d0, PROMISED);
    assert_eq!(after.deadline_date, expected.format("%Y-%m-%d").to_string());
    assert_ne!(after.deadline_date, before.deadline_date);

    // The first case is paused (supplement requested); the second is accepted at the township.
    for receipt in [&before, &after] {
        act_all(&mut at_village, &receipt.case_id, vec![A::Forward(act::Forward {})]).await;
        wait_steps(cluster, T1, &receipt.case_id, 2).await;
    }
    act_all(
        &mut at_township,
        &before.case_id,
        vec![
            A::Receive(act::Receive {}),
            A::RequestSupplement(act::RequestSupplement {
                materials: vec!["宅基地申请书原件".to_owned()],
            }),
        ],
    )
    .await;
    act_all(
        &mut at_township,
        &after.case_id,
        vec![A::Receive(act::Receive {}), A::Accept(act::Accept { terms: None })],
    )
    .await;
    let accepted = wait_steps(cluster, village, &after.case_id, 4).await;
    let accepted_on = local_date(accepted.accepted_ms.unwrap());
    let deadline = add(accepted_on, PROMISED);
    // The village stored the deadline on the published calendar when it folded the acceptance.
    let stored = cluster
        .node(&id(village))
        .unwrap()
        .store
        .case_deadline(&after.case_id)
        .await
        .unwrap();
    assert_eq!(stored, Some(deadline));
    wait_steps(cluster, COUNTY, &after.case_id, 4).await;
    wait_steps(cluster, COUNTY, &before.case_id, 4).await;

    // The tree's one clock, walked day by day from acceptance to the day after the deadline,
    // across the 调休 Saturday.
    let mut admin_at_township = CasesClient::new(ops::admin(cluster, &id(T1)).await);
    let mut admin_at_county = CasesClient::new(ops::admin(cluster, &id(COUNTY)).await);
    let processing = pb::WarningRule::Processing as i32;
    let mut day = accepted_on;
    while day <= deadline + Duration::days(1) {
        clock.set_today(day);
        let got = warnings_for(&mut admin_at_township, &after.case_id).await;
        let left = between(day, deadline);
        let want = if day > deadline {
            vec![(
                processing,
                pb::WarningLevel::Red as i32,
                -between(deadline, day),
                deadline.to_string(),
            )]
        } else if left <= YELLOW_LEFT {
            vec![(processing, pb::WarningLevel::Yellow as i32, left, deadline.to_string())]
        } else {
            Vec::new()
        };
        assert_eq!(got, want, "on {day} ({left} working days left, deadline {deadline})");
        // The paused case never warns.
        assert!(
            warnings_for(&mut admin_at_township, &before.case_id).await.is_empty(),
            "{day}"
        );
        day += Duration::days(1);
    }
    // Every tier evaluates the same: the county sees the case red too.
    let red_at_county = warnings_for(&mut admin_at_county, &after.case_id).await;
    assert_eq!(red_at_county.len(), 1);
    assert_eq!(red_at_county[0].1, pb::WarningLevel::Red as i32);

    // The county's scan opens one supervision record, for the red case only, and only once.
    let county = &cluster.node(&id(COUNTY)).unwrap().store;
    assert_eq!(county.scan_supervision().await.unwrap(), 1);
    assert_eq!(county.scan_supervision().await.unwrap(), 0);
    let mut county_clerk = clerk(cluster, COUNTY).await;
    let records = county_clerk
        .list_supervision(pb::ListSupervisionRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].case_id, after.case_id);
    assert_eq!(records[0].deadline, deadline.to_string());
    assert!(!records[0].closed);
    let no_reason = county_clerk
        .close_supervision(pb::CloseSupervisionRequest {
            id: records[0].id,
            reason: "  ".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument, "{}", no_reason.message());
    let closed = county_clerk
        .close_supervision(pb::CloseSupervisionRequest {
            id: records[0].id,
            reason: "已约谈承办人，限期办结".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(closed.closed);
    assert_eq!(closed.close_reason, "已约谈承办人，限期办结");
    let open = county_clerk
        .list_supervision(pb::ListSupervisionRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(open.is_empty());
    // A township operator may not close the county's records.
    let mut township_on_county =
        CasesClient::new(ops::channel_as(cluster, &id(COUNTY), &Principal::operator(id(T1), "clerk").unwrap()).await);
    let denied = township_on_county
        .close_supervision(pb::CloseSupervisionRequest {
            id: records[0].id,
            reason: "x".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{}", denied.message());
}
