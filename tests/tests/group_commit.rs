//! Group commit groups, and a refused request inside a group changes nothing while the others
//! commit. Many concurrent `author` calls on one county store, some of which the rules refuse
//! (a catalogue version with a gap, a calendar that does not validate), each inside the same
//! groups as the rest: every accepted request is stored with contiguous sequence numbers, every
//! refused one is answered with its refusal and leaves no trace. On PostgreSQL the database's own
//! count of committed transactions (`pg_stat_database.xact_commit`) shows far fewer commits than
//! requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tests::pg::{SKIP_MESSAGE, TempPostgres};
use tests::tree::LONG;
use tests::wait::within;
use tests::{COUNTY, id, setup};
use tokio::sync::Barrier;
use tongban_domains::event::NewEvent;
use tongban_domains::ids::NodeId;
use tongban_domains::store::{Store, StoreError, StoreLocation};
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
    assert!(groups >= 1, "no commit counted: {c0} / {c1} / {c2}");
    assert!(
        groups <= (REQUESTS / 10) as i64,
        "{REQUESTS} concurrent requests took {groups} commits: they were not grouped"
    );
}
