//! The catalogue RPCs answer bad input with the right status and a message that says where the
//! problem is, and a refused import changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tests::catalogue::{self, csv_text, json_bytes, small_catalogue};
use tests::{COUNTY, T2, id, ops, setup, tree};
use tongban_domains::config::SyncConfig;
use tongban_proto::v1::{self as pb, ImportFormat};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let (county, township) = (id(COUNTY), id(T2));
    let ids = vec![county.clone(), township.clone()];
    let mut cluster = tree::cluster(dir.path(), &ids, Vec::new(), SyncConfig::default()).await;
    tree::start_linked(&mut cluster).await;
    let items = small_catalogue();
    let first = catalogue::import(ops::admin(&cluster, &county).await, &items, "v1").await;
    assert_eq!(first.version, 1);
    tree::wait_catalogue(&cluster, &ids, 1).await;

    // A CSV with bad rows: row 3 promises more days than the law allows, row 5 has an unknown
    // delegation mode, row 7 a malformed township code. (Row 1 is the header.)
    let csv = csv_text(&items);
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), items.len() + 1);
    lines[2] = lines[2].replacen(",20,10,", ",20,30,", 1);
    lines[4] = lines[4].replacen(",not_delegated,", ",half_delegated,", 1);
    lines[6] = lines[6].replacen("441424100", "4414241", 1);
    for (i, line) in lines.iter().enumerate().skip(1) {
        if [2, 4, 6].contains(&i) {
            assert_ne!(
                line,
                csv.lines().nth(i).unwrap(),
                "the test failed to corrupt row {}",
                i + 1
            );
        }
    }
    let bad = lines.join("\n") + "\n";
    let err = catalogue::import_raw(
        ops::admin(&cluster, &county).await,
        ImportFormat::Csv,
        bad.into_bytes(),
        "bad",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let message = err.message();
    for needle in [
        "nothing published",
        "row 3, field promised_days",
        "row 5, field delegation",
        "half_delegated",
        "row 7, field townships",
    ] {
        assert!(
            message.contains(needle),
            "the refusal does not say {needle:?}:\n{message}"
        );
    }

    // Not CSV or JSON at all.
    let err = catalogue::import_raw(
        ops::admin(&cluster, &county).await,
        ImportFormat::Unspecified,
        json_bytes(&items),
        "no format",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Nothing was published by either refusal.
    let status = tree::assert_status(&cluster, &county, 1, &first.content_hash).await;
    assert_eq!(status.catalogue_version, 1);
    assert_eq!(catalogue::versions(ops::admin(&cluster, &county).await).await.len(), 1);

    // Unknown items are NOT_FOUND, and so are items the node does not handle.
    let mut client = catalogue::client(ops::admin(&cluster, &county).await);
    let err = client
        .get_item(pb::GetItemRequest {
            code: "NO-SUCH-ITEM".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("NO-SUCH-ITEM"), "{}", err.message());
    let found = client
        .get_item(pb::GetItemRequest {
            code: "T-T1".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.item.unwrap().implementation_code, "T-T1");
    // By basic item code too.
    let found = client
        .get_item(pb::GetItemRequest {
            code: "000105023000".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.item.unwrap().implementation_code, "T-T1");
    let err = catalogue::client(ops::admin(&cluster, &township).await)
        .get_item(pb::GetItemRequest {
            code: "T-T1".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "T-T1 is not handled at {township}: {err:?}");
    assert!(err.message().contains("not handled at 441424101"), "{}", err.message());

    // Re-importing unchanged content, in either format, publishes nothing.
    let again = catalogue::import(ops::admin(&cluster, &county).await, &items, "same again").await;
    assert!(!again.published, "unchanged content was published again");
    assert_eq!(again.version, 1);
    assert_eq!(again.content_hash, first.content_hash);
    assert_eq!((again.upserts, again.removals), (0, 0));
    let as_csv = catalogue::import_raw(
        ops::admin(&cluster, &county).await,
        ImportFormat::Csv,
        csv_text(&items).into_bytes(),
        "same as CSV",
    )
    .await
    .unwrap();
    assert!(!as_csv.published);
    assert_eq!(as_csv.version, 1);
    // The same items in another order are the same catalogue.
    let mut reversed = items.clone();
    reversed.reverse();
    let reordered = catalogue::import(ops::admin(&cluster, &county).await, &reversed, "reordered").await;
    assert!(!reordered.published);

    let versions = catalogue::versions(ops::admin(&cluster, &county).await).await;
    assert_eq!(versions.len(), 1, "{versions:?}");
    for node in &ids {
        tree::assert_status(&cluster, node, 1, &first.content_hash).await;
    }
    cluster.stop_all().await;
}
