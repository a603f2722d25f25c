//! `local_seq` becomes visible in commit order, on SQLite and on PostgreSQL: while many tasks
//! author events concurrently on one store, a reader that repeatedly reads `events_for` from its
//! cursor (as a link sender does) never misses an event committed below its cursor. At the end
//! the union of what it read is every event of the log, in local_seq order, without a gap or a
//! repeat.
//!
//! The store is a village's (a small in-memory tail of recent events), and far more is authored
//! than that tail holds, so the reader is served from the database as well as from memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tests::pg::{SKIP_MESSAGE, TempPostgres};
use tests::tree::LONG;
use tests::wait::within;
use tests::{T1, T1_VILLAGES, id, setup};
use tongban_domains::store::{LinkRole, Store, StoreLocation};
use tongban_testkit::probe::ProbeGenerator;

/// Concurrent authoring tasks.
const AUTHORS: u64 = 8;
/// Requests per task; request k carries 1 + k % 3 events.
const REQUESTS: u64 = 250;
/// Events per read: small, so the reader falls behind the writers now and then.
const READ_LIMIT: usize = 16;

/// Events the authors write in all, counted from the constants.
fn expected_total() -> u64 {
    AUTHORS * (0..REQUESTS).map(|k| 1 + k % 3).sum::<u64>()
}

async fn scenario(location: StoreLocation) {
    let village = id(T1_VILLAGES[0]);
    let township = id(T1);
    let store = Store::open(&location, &village).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (store, done, township) = (store.clone(), done.clone(), township.clone());
        tokio::spawn(async move {
            let mut cursor = 0u64;
            let mut seen: Vec<(u64, Vec<u8>)> = Vec::new();
            loop {
                // Read the flag before reading the log: once it is set, every event is committed.
                let finished = done.load(Ordering::SeqCst);
                let (batch, through) = store
                    .events_for(&township, LinkRole::Parent, cursor, READ_LIMIT)
                    .await
                    .unwrap();
                for synced in batch {
                    let last = seen.last().map(|(s, _)| *s).unwrap_or(0);
                    assert!(
                        synced.local_seq > cursor && synced.local_seq > last,
                        "read local_seq {} at cursor {cursor} after {last}",
                        synced.local_seq
                    );
                    seen.push((synced.local_seq, synced.event.unwrap().content_hash));
                }
                assert!(through >= cursor, "the cursor went back from {cursor} to {through}");
                cursor = through;
                if finished && cursor >= store.last_local_seq() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut authors = Vec::new();
    for task in 0..AUTHORS {
        let (store, village) = (store.clone(), village.clone());
        authors.push(tokio::spawn(async move {
            let mut generator = ProbeGenerator::new(village.clone(), 1000 + task);
            let mut hashes = Vec::new();
            for k in 0..REQUESTS {
                let batch = (0..1 + k % 3).map(|_| generator.event(&village)).collect();
                let sealed = store.author(batch).await.unwrap();
                hashes.extend(sealed.into_iter().map(|e| e.content_hash));
            }
            hashes
        }));
    }
    let mut authored = BTreeSet::new();
    for author in authors {
        authored.extend(within(LONG, "an authoring task", author).await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = within(LONG, "the reader to reach the end of the log", reader)
        .await
        .unwrap();

    let total = expected_total();
    assert_eq!(authored.len() as u64, total, "distinct events authored");
    assert_eq!(store.event_count().await.unwrap(), total);
    let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(seqs.len(), expected.len(), "events read");
    assert_eq!(seqs, expected, "the reader's local_seqs, in order, without gaps");
    let read: BTreeSet<Vec<u8>> = seen.into_iter().map(|(_, h)| h).collect();
    assert_eq!(read, authored, "the reader read exactly the events authored");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_misses_nothing_under_concurrent_authors_on_sqlite() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    scenario(StoreLocation::in_data_dir(dir.path(), &id(T1_VILLAGES[0]))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_misses_nothing_under_concurrent_authors_on_postgresql() {
    setup();
    let Some(pg) = TempPostgres::start() else {
        eprintln!("{SKIP_MESSAGE}");
        return;
    };
    pg.create_database("tongban_village");
    scenario(StoreLocation::Url(pg.url("tongban_village"))).await;
}
