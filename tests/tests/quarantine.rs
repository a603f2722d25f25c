//! Catalogue versions and working-day calendars are quarantined at a replica, on SQLite and on
//! PostgreSQL: a catalogue version that arrives out of order, one whose content does not produce
//! the hash it carries, and a calendar that does not validate each raise exactly one alarm and
//! change nothing (catalogue head and items, calendar in force), and the good event that follows
//! then applies.
//!
//! The replica is a real township node that dials its parent over mTLS; the parent is played by
//! the test ([`FakeParent`]), so it can send down exactly these events. The genuine events are
//! authored by a real county store; the forged ones are re-sealed copies with one field changed,
//! so every structural check passes and only the projection's own rule refuses them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use tests::catalogue::small_catalogue;
use tests::link::{FakeParent, ParentSession};
use tests::pg::{SKIP_MESSAGE, TempPostgres};
use tests::wait::TIMEOUT;
use tests::{COUNTY, T1, id, ops, setup};
use tongban_domains::calendar::WorkingCalendar;
use tongban_domains::catalogue::Item;
use tongban_domains::config::SyncConfig;
use tongban_domains::event::{NewEvent, check, seal};
use tongban_domains::ids::NodeId;
use tongban_domains::node::NodeSpec;
use tongban_domains::pki::{DevCa, Principal};
use tongban_domains::store::{CalendarInForce, LinkRole, Store, StoreLocation, calendar_to_wire};
use tongban_proto::v1::{self as pb, AlarmKind, event_body::Body};

/// The county events the scenario replays, authored by a real county store.
struct CountyEvents {
    v1: pb::Event,
    v2: pb::Event,
    /// The county's head after version 2 (what the replica must reach).
    v2_hash: [u8; 32],
    calendar_a: pb::Event,
    calendar_b: pb::Event,
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Calendar A: 2030 with New Year's Day (Tuesday 2030-01-01) off and Saturday 2030-01-05 worked.
fn calendar_a() -> WorkingCalendar {
    WorkingCalendar::new(
        "quarantine A",
        "qa.1",
        2030,
        2030,
        [day("2030-01-01")],
        [day("2030-01-05")],
    )
    .unwrap()
}

/// Calendar B: as A, with Wednesday 2030-01-02 off too.
fn calendar_b() -> WorkingCalendar {
    WorkingCalendar::new(
        "quarantine B",
        "qa.2",
        2030,
        2030,
        [day("2030-01-01"), day("2030-01-02")],
        [day("2030-01-05")],
    )
    .unwrap()
}

/// Version 2 of the catalogue: the test catalogue without `T-ENTRUSTED-PS`, `T-T1` renamed.
fn second_catalogue() -> Vec<Item> {
    let mut items: Vec<Item> = small_catalogue()
        .into_iter()
        .filter(|i| i.implementation_code != "T-ENTRUSTED-PS")
        .collect();
    for item in &mut items {
        if item.implementation_code == "T-T1" {
            item.name = "个体工商户设立登记（新版）".to_owned();
        }
    }
    items
}

fn codes(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|c| (*c).to_owned()).collect()
}

/// Publishes catalogue versions 1 and 2 and calendars A and B at a county store of its own, and
/// returns the events as the county would send them to `township`.
async fn county_events(dir: &Path, township: &NodeId) -> CountyEvents {
    let county = id(COUNTY);
    let store = Store::open(&StoreLocation::SqliteFile(dir.join("county-source.db")), &county)
        .await
        .unwrap();
    let admin = Principal::operator(county.clone(), "admin").unwrap();
    let first = store
        .publish_catalogue(small_catalogue(), &admin.to_string(), "v1.json", "first")
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let second = store
        .publish_catalogue(second_catalogue(), &admin.to_string(), "v2.json", "second")
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    store.publish_calendar(&calendar_a(), &admin).await.unwrap();
    store.publish_calendar(&calendar_b(), &admin).await.unwrap();
    let v2_hash = store.catalogue_head().await.hash;
    let (synced, _) = store.events_for(township, LinkRole::Child, 0, 100).await.unwrap();
    store.close().await;
    let events: Vec<pb::Event> = synced.into_iter().filter_map(|s| s.event).collect();
    assert_eq!(
        events.len(),
        4,
        "the county routes both versions and both calendars down"
    );
    let mut events = events.into_iter();
    let mut next = || events.next().unwrap();
    CountyEvents {
        v1: next(),
        v2: next(),
        v2_hash,
        calendar_a: next(),
        calendar_b: next(),
    }
}

/// `genuine` with its body replaced by `change(body)` and its sequence number by `seq`, sealed
/// again so that its envelope hash is valid: only the body's own rules can refuse it.
fn forged(genuine: &pb::Event, seq: u64, change: impl FnOnce(&mut Body)) -> pb::Event {
    let checked = check(genuine.clone()).unwrap();
    let mut body = checked.body.clone();
    change(&mut body);
    let new = NewEvent {
        principal: genuine.principal.clone(),
        subject: genuine.subject.clone(),
        route_key: checked.route_key.clone(),
        route_class: checked.route_class(),
        body,
    };
    let event = seal(&checked.origin, seq, genuine.hlc, &new);
    check(event.clone()).expect("the forged event must pass the structural checks");
    event
}

/// What the replica holds: catalogue version and hash, item codes, calendar in force, alarms.
struct Held {
    version: u64,
    hash: [u8; 32],
    items: BTreeSet<String>,
    calendar: Arc<CalendarInForce>,
    alarms: Vec<pb::Alarm>,
}

async fn held(store: &Store) -> Held {
    let head = store.catalogue_head().await;
    Held {
        version: head.version,
        hash: head.hash,
        items: store
            .catalogue_items()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.implementation_code)
            .collect(),
        calendar: store.calendar().await.unwrap(),
        alarms: store.alarms(100).await.unwrap(),
    }
}

/// Sends `event` down as the batch with local_seq and through `n`, and waits for the township
/// to acknowledge it (it does so after committing).
async fn deliver(session: &mut ParentSession, n: u64, event: &pb::Event) {
    session.send_batch(&[(n, event.clone())], n).await;
    session.expect_ack(n, TIMEOUT).await;
}

/// Exactly one new alarm since `before`: a quarantine of (county, `seq`) received from the
/// county, whose reason mentions `why`.
fn assert_one_new_quarantine(before: &Held, after: &Held, seq: u64, why: &str, step: &str) {
    assert_eq!(
        after.alarms.len(),
        before.alarms.len() + 1,
        "{step}: exactly one new alarm expected, have {:#?}",
        after.alarms
    );
    let alarm = &after.alarms[0];
    assert_eq!(alarm.kind, AlarmKind::Quarantined as i32, "{step}: {alarm:?}");
    assert_eq!((alarm.origin.as_str(), alarm.seq), (COUNTY, seq), "{step}: {alarm:?}");
    assert_eq!(alarm.received_from, COUNTY, "{step}: {alarm:?}");
    assert!(
        alarm.reason.contains(why),
        "{step}: the reason should mention {why:?}: {alarm:?}"
    );
}

/// Nothing but the alarms changed between `before` and `after`.
fn assert_unchanged(before: &Held, after: &Held, step: &str) {
    assert_eq!(after.version, before.version, "{step}: catalogue version changed");
    assert_eq!(after.hash, before.hash, "{step}: catalogue hash changed");
    assert_eq!(after.items, before.items, "{step}: catalogue items changed");
    assert_eq!(after.calendar, before.calendar, "{step}: calendar in force changed");
}

async fn scenario(dir: &Path, store: StoreLocation) {
    let (county, township) = (id(COUNTY), id(T1));
    let events = county_events(dir, &township).await;

    let ca = DevCa::generate(&county).unwrap();
    let mut parent = FakeParent::start(&county, &ops::material(&ca, &Principal::Node(county.clone()))).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = tongban_testkit::tiers::start(NodeSpec {
        node_id: township.clone(),
        listener,
        parent_address: Some(parent.url()),
        store,
        tls: ops::material(&ca, &Principal::Node(township.clone())),
        sync: SyncConfig {
            checksum_interval_secs: 0,
            max_backoff_secs: 1,
            ..SyncConfig::default()
        },
        clock: std::sync::Arc::new(tongban_domains::calendar::SystemClock),
        settings: Default::default(),
    })
    .await
    .unwrap();
    let mut session = parent.accept(TIMEOUT).await;
    assert_eq!(session.hello.node_id, T1);
    let replica = handle.store.clone();

    let start = held(&replica).await;
    assert_eq!((start.version, start.items.len(), start.alarms.len()), (0, 0, 0));
    assert_eq!(
        start.calendar.published_seq, None,
        "the built-in calendar is in force at first"
    );

    // 1. Version 2 before version 1: a gap.
    deliver(&mut session, 1, &events.v2).await;
    let after = held(&replica).await;
    assert_one_new_quarantine(&start, &after, events.v2.seq, "gap", "version 2 out of order");
    assert_unchanged(&start, &after, "version 2 out of order");

    // Version 1 then applies.
    let before = after;
    deliver(&mut session, 2, &events.v1).await;
    let after = held(&replica).await;
    assert_eq!(after.alarms.len(), before.alarms.len(), "version 1 raised an alarm");
    assert_eq!(after.version, 1);
    assert_eq!(
        after.items,
        codes(&[
            "T-ALL",
            "T-T1",
            "T-T2",
            "T-COUNTY",
            "T-VILLAGE",
            "T-DESK-T1",
            "T-ENTRUSTED-PS"
        ])
    );

    // 2. Version 2 with a content hash its content does not produce.
    let wrong_hash = forged(&events.v2, 1001, |body| {
        let Body::CatalogueVersion(version) = body else {
            panic!("not a catalogue version")
        };
        version.content_hash = vec![0xAB; 32];
    });
    let before = after;
    deliver(&mut session, 3, &wrong_hash).await;
    let after = held(&replica).await;
    assert_one_new_quarantine(&before, &after, 1001, "hash", "version 2 with a wrong hash");
    assert_unchanged(&before, &after, "version 2 with a wrong hash");

    // The genuine version 2 then applies, to the county's hash.
    let before = after;
    deliver(&mut session, 4, &events.v2).await;
    let after = held(&replica).await;
    assert_eq!(after.alarms.len(), before.alarms.len(), "version 2 raised an alarm");
    assert_eq!(after.version, 2);
    assert_eq!(after.hash, events.v2_hash, "version 2 at the county's hash");
    assert_eq!(
        after.items,
        codes(&["T-ALL", "T-T1", "T-T2", "T-COUNTY", "T-VILLAGE", "T-DESK-T1"])
    );

    // 3. Calendar A applies; an invalid calendar is quarantined; calendar B then applies.
    let before = after;
    deliver(&mut session, 5, &events.calendar_a).await;
    let after = held(&replica).await;
    assert_eq!(after.alarms.len(), before.alarms.len(), "calendar A raised an alarm");
    assert_eq!(after.calendar.calendar.version(), "qa.1");
    assert_eq!(after.calendar.published_seq, Some(events.calendar_a.seq));
    assert!(!after.calendar.calendar.is_working_day(day("2030-01-01")));
    assert!(after.calendar.calendar.is_working_day(day("2030-01-02")));

    let invalid = forged(&events.calendar_b, 1002, |body| {
        let Body::CalendarPublished(calendar) = body else {
            panic!("not a calendar")
        };
        *calendar = calendar_to_wire(&calendar_b());
        calendar.version = "qa.bad".to_owned();
        calendar.adjusted_working_days = vec!["2030-13-01".to_owned()];
    });
    let before = after;
    deliver(&mut session, 6, &invalid).await;
    let after = held(&replica).await;
    assert_one_new_quarantine(&before, &after, 1002, "", "an invalid calendar");
    assert_unchanged(&before, &after, "an invalid calendar");
    assert_eq!(after.calendar.calendar.version(), "qa.1");

    let before = after;
    deliver(&mut session, 7, &events.calendar_b).await;
    let after = held(&replica).await;
    assert_eq!(after.alarms.len(), before.alarms.len(), "calendar B raised an alarm");
    assert_eq!(after.calendar.calendar.version(), "qa.2");
    assert_eq!(after.calendar.published_seq, Some(events.calendar_b.seq));
    assert!(!after.calendar.calendar.is_working_day(day("2030-01-02")));

    // Three alarms in all, and the node reports them over its own API too.
    assert_eq!(after.alarms.len(), 3);
    assert_eq!(replica.alarm_count().await.unwrap(), 3);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_and_calendar_quarantine_on_sqlite() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let store = StoreLocation::in_data_dir(&dir.path().join("data"), &id(T1));
    scenario(dir.path(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_and_calendar_quarantine_on_postgresql() {
    setup();
    let Some(pg) = TempPostgres::start() else {
        eprintln!("{SKIP_MESSAGE}");
        return;
    };
    pg.create_database("tongban_township");
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), StoreLocation::Url(pg.url("tongban_township"))).await;
}
