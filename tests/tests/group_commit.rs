//! Group commit groups, and a refused request inside a group changes nothing while the others
//! commit. Many concurrent `author` calls on one county store, some of which the rules refuse
//! (a catalogue version with a gap, a calendar that does not validate), each inside the same
//! groups as the rest: every accepted request is stored with contiguous sequence numbers, every
//! refused one is answered with its refusal and leaves no trace. On PostgreSQL the database's own
//! count of committed transactions (`pg_stat_database.xact_commit`) shows far fewer commits than
//! requests.
//!
//! Case openings are staged by the case projection and written once per group: concurrent
//! openings that claim the same receipt number in pairs end with one case per number, the other
//! refused, on both backends; the receipt counter moves past the highest number.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::NaiveDate;
use tests::pg::{SKIP_MESSAGE, TempPostgres};
use tests::tree::LONG;
use tests::wait::within;
use tests::{COUNTY, id, setup};
use tokio::sync::Barrier;
use tongban_domains::calendar::ManualClock;
use tongban_domains::case::wire::opened_body;
use tongban_domains::case::{ApplicantKind, ApplicantSummary, CaseId, CaseNumber, ItemTerms, Submission};
use tongban_domains::catalogue::{Category, DelegationMode};
use tongban_domains::event::NewEvent;
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_domains::store::{CaseFilter, CaseRef, LogTuning, Store, StoreError, StoreLocation};
use tongban_proto::v1::{self as pb, RouteClass, event_body::Body};
use tongban_testkit::probe::ProbeGenerator;

/// Concurrent requests in all.
const REQUESTS: usize = 200;
/// Every `REFUSE_EVERY`-th request is one the rules refuse.
const REFUSE_EVERY: usize = 5;

fn refused_request(county: &NodeId, k: usize) -> Vec<NewEvent> {
    let body = if k.is_multiple_of(2) {
        // Version 7 on a county that holds none: a gap.
        Body::CatalogueVersion(pb::CatalogueVersion {
            version: 7,
            item_count: 0,
            note: format!("refused {k}"),
            ..Default::default()
        })
    } else {
        // A calendar whose adjusted working day is not a date.
        Body::CalendarPublished(pb::CalendarPublished {
            name: format!("refused {k}"),
            version: "bad".to_owned(),
            first_year: 2030,
            last_year: 2030,
            adjusted_working_days: vec!["2030-13-01".to_owned()],
            ..Default::default()
        })
    };
    vec![NewEvent {
        principal: format!("operator:{county}:admin"),
        subject: "refused".to_owned(),
        route_key: county.clone(),
        route_class: RouteClass::Down,
        body,
    }]
}

/// Submits `REQUESTS` requests at once (every one waits at a barrier first) and checks what
/// each was answered; returns the accepted events. Reads nothing from the store itself.
async fn submit_all(store: &Arc<Store>) -> Vec<pb::Event> {
    let county = store.node().clone();
    let barrier = Arc::new(Barrier::new(REQUESTS));
    let mut tasks = Vec::new();
    for k in 0..REQUESTS {
        let (store, barrier, county) = (store.clone(), barrier.clone(), county.clone());
        tasks.push(tokio::spawn(async move {
            let refused = k % REFUSE_EVERY == REFUSE_EVERY - 1;
            let request = if refused {
                refused_request(&county, k)
            } else {
                vec![ProbeGenerator::new(county.clone(), k as u64).event(&county)]
            };
            barrier.wait().await;
            (refused, store.author(request).await)
        }));
    }
    let mut accepted = Vec::new();
    let mut refusals = 0;
    for task in tasks {
        match within(LONG, "an author call", task).await.unwrap() {
            (false, Ok(events)) => {
                assert_eq!(events.len(), 1);
                accepted.push(events.into_iter().next().unwrap());
            }
            (true, Err(StoreError::Refused(_))) => refusals += 1,
            (refused, other) => panic!("request refused={refused} was answered {other:?}"),
        }
    }
    let expected_refusals = REQUESTS / REFUSE_EVERY;
    assert_eq!(refusals, expected_refusals);
    assert_eq!(accepted.len(), REQUESTS - expected_refusals);
    accepted
}

/// Every accepted request is stored; the refused ones took no sequence number and no row.
async fn assert_only_accepted_stored(store: &Store, accepted: &[pb::Event]) {
    let n = accepted.len() as u64;
    let mut seqs: Vec<u64> = accepted.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "sequence numbers of the accepted events"
    );
    for event in accepted {
        assert!(store.has_event(&event.origin, event.seq).await.unwrap());
    }
    assert_eq!(store.event_count().await.unwrap(), n, "events in the log");
    assert_eq!(
        store.catalogue_head().await.version,
        0,
        "a refused catalogue version applied"
    );
    assert_eq!(
        store.calendar().await.unwrap().published_seq,
        None,
        "a refused calendar was put in force"
    );
    assert_eq!(
        store.alarm_count().await.unwrap(),
        0,
        "a refusal of one's own request is no alarm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_in_a_group_leaves_the_others_committed_on_sqlite() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let county = id(COUNTY);
    let store = Store::open(&StoreLocation::in_data_dir(dir.path(), &county), &county)
        .await
        .unwrap();
    let accepted = submit_all(&store).await;
    assert_only_accepted_stored(&store, &accepted).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_groups_and_keeps_the_others_on_postgresql() {
    setup();
    let Some(pg) = TempPostgres::start() else {
        eprintln!("{SKIP_MESSAGE}");
        return;
    };
    let db = "tongban_county";
    pg.create_database(db);
    let location = StoreLocation::Url(pg.url(db));
    let county = id(COUNTY);

    // What opening and closing the store costs by itself, measured on the second and third
    // opening (the first creates the schema).
    Store::open(&location, &county).await.unwrap().close().await;
    let c0 = pg.committed_transactions(db).await;
    Store::open(&location, &county).await.unwrap().close().await;
    let c1 = pg.committed_transactions(db).await;
    let open_and_close = c1 - c0;

    let store = Store::open(&location, &county).await.unwrap();
    let accepted = submit_all(&store).await;
    store.close().await;
    let c2 = pg.committed_transactions(db).await;
    // Beyond opening and closing, only the groups committed.
    let groups = c2 - c1 - open_and_close;

    let store = Store::open(&location, &county).await.unwrap();
    assert_only_accepted_stored(&store, &accepted).await;
    store.close().await;
    eprintln!("{REQUESTS} requests committed in {groups} transactions (opening and closing: {open_and_close})");
    // The baseline is only as exact as the pool's connection setup, which varies by a few
    // commits from one opening to the next; so `groups` can come out a little below the truth
    // (even below zero), and only the upper bound below says whether requests were grouped.
    assert!(c2 > c1, "no commit counted: {c0} / {c1} / {c2}");
    assert!(
        groups <= (REQUESTS / 10) as i64,
        "{REQUESTS} concurrent requests took {groups} commits: they were not grouped"
    );
}

/// Receipt numbers claimed twice each, concurrently.
const NUMBER_PAIRS: u32 = 60;

fn item_terms() -> ItemTerms {
    ItemTerms {
        item_code: "000201001000".to_owned(),
        implementation_code: "11441424MB2C12345X-000201001000-1-00".to_owned(),
        name: "个体工商户设立登记".to_owned(),
        delegation: DelegationMode::Authorised,
        category: Category::GovernmentService,
        immediate: false,
        promised_days: 5,
        statutory_days: 15,
        catalogue_version: 1,
    }
}

fn applicant(name: &str) -> ApplicantSummary {
    ApplicantSummary {
        kind: ApplicantKind::Person,
        name: name.to_owned(),
        id_masked: "441424********1234".to_owned(),
        phone: None,
    }
}

fn opening(township: &NodeId, day: NaiveDate, seq: u32, nonce: u64) -> (CaseId, Vec<NewEvent>) {
    let id = CaseId::new(township, 0x0192_f3a4_0000_0000 + u64::from(seq), nonce);
    let submission = Submission {
        id: id.clone(),
        number: CaseNumber::new(township, day, seq).unwrap(),
        terms: item_terms(),
        applicant: applicant("李明"),
    };
    let event = NewEvent {
        principal: format!("operator:{township}:window-1"),
        subject: format!("case:{id}"),
        route_key: township.clone(),
        route_class: RouteClass::Path,
        body: Body::CaseOpened(opened_body(&submission, None)),
    };
    (id, vec![event])
}

/// Authors every opening of `NUMBER_PAIRS` numbers twice at once at a township standing on
/// `day`, then checks what was stored: one case per number (the one whose request was
/// answered Ok), nothing of the refused ones, and the next receipt number past them all.
async fn openings_claiming_numbers_twice(location: StoreLocation) {
    let township = id("441424100");
    let day = NaiveDate::from_ymd_opt(2030, 3, 4).unwrap();
    let clock = Arc::new(ManualClock::new(day));
    let store = Store::open_on(&location, &township, clock, LogTuning::default())
        .await
        .unwrap();
    let requests = 2 * NUMBER_PAIRS as usize;
    let barrier = Arc::new(Barrier::new(requests));
    let mut tasks = Vec::new();
    for k in 0..requests {
        let seq = 1 + (k as u32 % NUMBER_PAIRS);
        let (case_id, events) = opening(&township, day, seq, k as u64);
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (seq, case_id, store.author(events).await)
        }));
    }
    let mut stored_by_number = std::collections::BTreeMap::new();
    for task in tasks {
        match within(LONG, "an opening", task).await.unwrap() {
            (seq, case_id, Ok(_)) => {
                assert!(
                    stored_by_number.insert(seq, case_id).is_none(),
                    "receipt number {seq} was given to two cases"
                );
            }
            (_, _, Err(StoreError::Refused(reason))) => {
                assert!(reason.contains("already"), "unexpected refusal: {reason}");
            }
            (_, _, Err(other)) => panic!("an opening failed: {other}"),
        }
    }
    assert_eq!(
        stored_by_number.len(),
        NUMBER_PAIRS as usize,
        "one opening per number must commit"
    );
    let page = store.cases(&CaseFilter::default(), None, 1_000).await.unwrap();
    assert_eq!(page.cases.len(), NUMBER_PAIRS as usize, "cases stored");
    for (seq, case_id) in &stored_by_number {
        let case = store
            .case(&CaseRef::Id(case_id.clone()))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("accepted case {case_id} is not stored"));
        assert_eq!(case.number.seq(), *seq);
    }
    assert_eq!(
        store.event_count().await.unwrap(),
        u64::from(NUMBER_PAIRS),
        "events of refused openings"
    );
    // The next submission at the window gets the first number past those taken.
    let clerk = Principal::operator(township.clone(), "window-1").unwrap();
    let next = store
        .open_case(item_terms(), applicant("张秀英"), &clerk)
        .await
        .unwrap();
    assert_eq!(
        next.number.seq(),
        NUMBER_PAIRS + 1,
        "the receipt counter after the group"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openings_in_one_group_get_one_case_per_number_on_sqlite() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let township = id("441424100");
    openings_claiming_numbers_twice(StoreLocation::in_data_dir(dir.path(), &township)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openings_in_one_group_get_one_case_per_number_on_postgresql() {
    setup();
    let Some(pg) = TempPostgres::start() else {
        eprintln!("{SKIP_MESSAGE}");
        return;
    };
    let db = "tongban_township";
    pg.create_database(db);
    openings_claiming_numbers_twice(StoreLocation::Url(pg.url(db))).await;
}
