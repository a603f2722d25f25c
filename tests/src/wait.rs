//! Waiting for a distributed condition without asserting timings: poll a check until it holds
//! or a generous timeout passes, then fail with what was last observed.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long a scenario waits for any one condition. Generous on purpose: on 2 cores with a debug
/// build, the slow path must not turn into a flaky failure; a passing wait returns at once.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Between two checks.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Ok(value)`; `Err(state)` describes what it saw instead.
/// Panics after `timeout` naming `what` and the last state seen.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(state) => state,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `future` with a timeout, panicking with `what` when it does not finish.
pub async fn within<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(timeout, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {timeout:?}: {what}"),
    }
}
