//! Waiting for a distributed condition without asserting timings: poll a check until it holds
//! or a deadline passes, then give up saying which condition it was and what was last observed.
//!
//! Every wait in the scenarios goes through [`wait_until`] (or [`wait_until_blocking`] outside
//! an async context): the caller passes the deadline for that one wait, and the check returns
//! `Ok(value)` when the condition holds or `Err(state)` describing what it saw instead.
//! [`wait_for`] is the panicking form most scenarios want.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long a scenario waits for any one condition. Generous on purpose: on 2 cores with a debug
/// build, the slow path must not turn into a flaky failure; a passing wait returns at once.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Between two checks.
const POLL: Duration = Duration::from_millis(50);

/// A wait that gave up: the condition, how long it was waited for, and the last state seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitError {
    pub what: String,
    pub waited: Duration,
    pub last: String,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {:?} waiting for {}; last seen: {}",
            self.waited, self.what, self.last
        )
    }
}

impl std::error::Error for WaitError {}

/// The deadline `timeout` from now.
pub fn deadline_in(timeout: Duration) -> Instant {
    Instant::now() + timeout
}

/// Polls `check` until it returns `Ok(value)`, or fails once `deadline` has passed with the
/// condition `what` and the last `Err(state)` the check returned. The check runs at least once,
/// even when the deadline is already past.
pub async fn wait_until<T, F, Fut>(deadline: Instant, what: &str, mut check: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(state) => state,
        };
        if Instant::now() >= deadline {
            return Err(WaitError {
                what: what.to_owned(),
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// [`wait_until`] for synchronous code (a test's final clean-up, a process run to exit): polls
/// `check` on this thread, sleeping between checks.
pub fn wait_until_blocking<T, F>(deadline: std::time::Instant, what: &str, mut check: F) -> Result<T, WaitError>
where
    F: FnMut() -> Result<T, String>,
{
    let started = std::time::Instant::now();
    loop {
        let last = match check() {
            Ok(value) => return Ok(value),
            Err(state) => state,
        };
        let now = std::time::Instant::now();
        if now >= deadline {
            return Err(WaitError {
                what: what.to_owned(),
                waited: started.elapsed(),
                last,
            });
        }
        std::thread::sleep(Duration::from_millis(20).min(deadline - now));
    }
}

/// [`wait_until`] with a deadline `timeout` from now, panicking with the [`WaitError`] when it
/// gives up.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    match wait_until(deadline_in(timeout), what, check).await {
        Ok(value) => value,
        Err(e) => panic!("{e}"),
    }
}

/// Runs `future` with a timeout, panicking with `what` when it does not finish.
pub async fn within<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}
