//! The built `tongban` binary's standard output as a shell uses it: a courier's queue listed in
//! China time, and a pipe closed early by `head` ending the command quietly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use tongban_courier::{Device, Queue};
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_proto::v1 as pb;

/// 2026-11-27 23:30 UTC: 07:30 on the 28th in China.
const LATE_EVENING_UTC: i64 = 1_795_822_200_000;

/// More lines than a pipe buffers (64 KiB on Linux) so that the binary is still writing when
/// the reader goes away, however the two processes are scheduled.
const SCANS: i64 = 1_500;

/// A courier's queue of `SCANS` en-route scans, a minute apart from `LATE_EVENING_UTC`.
async fn queue_with_scans(path: &Path) {
    let courier = Principal::courier(NodeId::new("441424100").unwrap(), "pda-07").unwrap();
    let device = Device::new("pda-07", courier).unwrap();
    let mut queue = Queue::create(path, &device, LATE_EVENING_UTC).await.unwrap();
    for i in 0..SCANS {
        let scan = pb::Scan {
            step: pb::CustodyStep::EnRoute as i32,
            box_id: "BOX-07".into(),
            trip_id: "441424100-20261128-0000abcd".into(),
            place: "K12 bridge".into(),
            scanned_unix_ms: LATE_EVENING_UTC + i * 60_000,
            ..Default::default()
        };
        queue.append(scan).await.unwrap();
    }
    queue.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_lists_in_china_time_and_head_ends_it_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pda.db");
    queue_with_scans(&path).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_tongban"))
        .args(["courier", "list", "--queue"])
        .arg(&path)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: read one line, then close the pipe.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let output = child.wait_with_output().unwrap();

    assert!(
        first.starts_with("#1") && first.contains(" 11-28 07:30 en-route"),
        "the first scan, at 23:30 UTC, reads 07:30 on the 28th: {first:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.is_empty(),
        "a closed pipe ends quietly, but stderr says:\n{stderr}"
    );
    assert!(output.status.success(), "exited with {}", output.status);
}
