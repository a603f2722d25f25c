//! Hybrid logical clock: wall-clock milliseconds in the high 48 bits and a logical counter in
//! the low 16, so timestamps stay close to real time yet never run backwards and always order
//! an event after everything its author had seen.
//!
//! The wall-clock reading is passed in by the caller (the store reads its node's one injectable
//! [`crate::clock::Clock`]), so a tree on simulated time stamps its events in simulated time.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// Milliseconds since the Unix epoch on this machine.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The wall-clock part of an HLC timestamp.
pub fn physical_ms(hlc: u64) -> u64 {
    hlc >> LOGICAL_BITS
}

/// A node's clock. `now` for local events, `observe` for every received one.
#[derive(Debug, Default)]
pub struct Hlc {
    // A plain mutex: the critical section is a few arithmetic operations, never held across await.
    last: Mutex<u64>,
}

impl Hlc {
    pub fn new() -> Self {
        Self::default()
    }

    /// A timestamp greater than any returned or observed before, at wall time `wall_ms`.
    pub fn now(&self, wall_ms: u64) -> u64 {
        let wall = wall_ms << LOGICAL_BITS;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = if wall > *last { wall } else { *last + 1 };
        *last
    }

    /// Folds in a timestamp seen on a received event, at wall time `wall_ms`.
    pub fn observe(&self, remote: u64, wall_ms: u64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // A remote clock far in the future must not drag ours with it for long; we still keep
        // monotonicity, which is what ordering needs.
        if remote > *last && (remote & !LOGICAL_MASK) <= wall_ms.saturating_add(60_000) << LOGICAL_BITS {
            *last = remote;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_strictly_increase_and_follow_observed_ones() {
        let clock = Hlc::new();
        let wall = 1_780_000_000_000;
        let a = clock.now(wall);
        let b = clock.now(wall);
        assert!(b > a);
        clock.observe(b + 1000, wall);
        assert!(clock.now(wall) > b + 1000);
        assert!(physical_ms(clock.now(wall + 5)) >= physical_ms(a) + 5);
        // A remote clock more than a minute ahead is not followed.
        let far = (wall + 120_000) << LOGICAL_BITS;
        clock.observe(far, wall);
        assert!(clock.now(wall) < far);
    }
}
