//! A node's SQLite store runs in WAL mode: after the node has written, its database file, opened
//! read-only by the test (with no journal setting of its own), reports `journal_mode = wal`.
//! WAL mode is persistent in the file, so this is what the node itself set. (`synchronous =
//! FULL` is per connection and cannot be read from outside; it is not checked here.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tests::catalogue::{self, small_catalogue};
use tests::{COUNTY, T1, db, id, ops, setup, tree};
use tongban_domains::config::SyncConfig;
use tongban_domains::store::StoreLocation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_sqlite_file_is_in_wal_mode() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let ids = vec![id(COUNTY), id(T1)];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;
    let imported = catalogue::import(ops::admin(&cluster, &id(COUNTY)).await, &small_catalogue(), "wal").await;
    assert_eq!(imported.version, 1);
    tree::wait_catalogue(&cluster, &ids, 1).await;

    for node in &ids {
        let StoreLocation::SqliteFile(path) = StoreLocation::in_data_dir(cluster.dir(), node) else {
            panic!("{node} is not on SQLite")
        };
        // While the node runs, and after it stopped (and checkpointed).
        assert_eq!(db::journal_mode(&path).await, "wal", "{node} while running");
        cluster.stop(node).await.unwrap();
        assert_eq!(db::journal_mode(&path).await, "wal", "{node} after stopping");
    }
}
