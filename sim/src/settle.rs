//! Keeping SQLite's threads from racing the simulated clock.
//!
//! sqlx runs each SQLite connection on its own OS thread. Turmoil advances a host's clock
//! whenever the host has nothing ready to run, so a query still running on its thread would let
//! simulated time pass for as long as the machine happens to take: a replay would see other
//! timings. [`settle`] waits, in real time, until every other thread of the process is blocked
//! waiting for work (in `futex`, `epoll_wait` or `poll`), so each simulation step starts with
//! every query it issued finished and its waker delivered.
//!
//! What it cannot do: a query that finishes while a host is still running the same step is seen
//! in that step, one that finishes a moment later in the next. The determinism test measures
//! whether that matters (see the crate's README section).

use std::time::{Duration, Instant};

/// Longest real wait for SQLite's threads: far above any query the simulation makes.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// Blocks until no other thread of this process is running or waiting on anything but work
/// (Linux only; elsewhere it returns at once and runs are not replayable).
pub fn settle() {
    let started = Instant::now();
    let mut quiet_reads = 0;
    // Two quiet reads in a row: a thread woken between our reads of two threads' states is
    // caught by the second pass.
    while quiet_reads < 2 {
        if busy_threads() == 0 {
            quiet_reads += 1;
        } else {
            quiet_reads = 0;
            if started.elapsed() > SETTLE_LIMIT {
                // A thread that never goes idle (another test running alongside); give up on
                // settling rather than hang, and say so.
                eprintln!("settle: threads still busy after {SETTLE_LIMIT:?}; the run may not replay");
                return;
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn busy_threads() -> usize {
    // Syscalls a thread blocks in when it waits for work rather than doing it.
    #[cfg(target_arch = "x86_64")]
    const WAITING: &[i64] = &[202, 232, 281, 7, 271, 23];
    #[cfg(target_arch = "aarch64")]
    const WAITING: &[i64] = &[98, 22, 73];
    let me = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut busy = 0;
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        if Some(&tid) == me.as_ref() {
            continue;
        }
        let path = task.path();
        let state = std::fs::read_to_string(path.join("stat")).ok().and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        });
        let syscall = std::fs::read_to_string(path.join("syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<i64>().ok()));
        let waiting = matches!(state, Some('S')) && syscall.is_some_and(|n| WAITING.contains(&n));
        // A thread that exited between listing and reading has no state: not busy.
        if state.is_some() && !waiting {
            busy += 1;
        }
    }
    busy
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
fn busy_threads() -> usize {
    0
}
