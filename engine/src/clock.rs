//! The one clock of a node: where its HLC, its event times and every business time (deadlines,
//! warnings, ratings, custody waits) come from. [`SystemClock`] in production, [`ManualClock`]
//! where a test, the demo or a simulation moves time itself. Dates are China's: every time limit
//! counts in Asia/Shanghai (UTC+8, no daylight saving).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// Milliseconds in a calendar day.
pub const DAY_MS: i64 = 86_400_000;
/// Asia/Shanghai's offset from UTC, in milliseconds.
pub const SHANGHAI_OFFSET_MS: i64 = 8 * 3_600_000;

/// Where the engine gets the time, so tests and the demo can move it.
pub trait Clock: Send + Sync {
    /// Today's date in Asia/Shanghai: the date every time limit counts in.
    fn today(&self) -> NaiveDate;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn today(&self) -> NaiveDate {
        (**self).today()
    }

    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn today(&self) -> NaiveDate {
        (**self).today()
    }

    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

/// The date in Asia/Shanghai (UTC+8, no daylight saving) at `ms` since the Unix epoch.
/// Saturates at chrono's first and last dates.
///
/// ```text
/// 2026-01-01T15:59:59.999Z → 2026-01-01
/// 2026-01-01T16:00:00Z     → 2026-01-02 (midnight in Shanghai)
/// ```
pub fn shanghai_date(ms: i64) -> NaiveDate {
    match ms
        .checked_add(SHANGHAI_OFFSET_MS)
        .and_then(DateTime::from_timestamp_millis)
    {
        Some(t) => t.date_naive(),
        None if ms < 0 => NaiveDate::MIN,
        None => NaiveDate::MAX,
    }
}

/// The machine's clock, dated in Asia/Shanghai whatever the machine's time zone.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> NaiveDate {
        shanghai_date(self.now_ms())
    }

    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that moves only when told: for tests and the demo. Shared by reference (or `Arc`)
/// between the code that reads it and the code that moves it.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock standing at 09:00 Asia/Shanghai on `today`.
    pub fn new(today: NaiveDate) -> Self {
        ManualClock {
            ms: AtomicI64::new(nine_am_shanghai(today)),
        }
    }

    /// A clock standing at `ms` since the Unix epoch.
    pub fn at_ms(ms: i64) -> Self {
        ManualClock { ms: AtomicI64::new(ms) }
    }

    /// Moves the clock to 09:00 Asia/Shanghai on `today` (backwards too).
    pub fn set_today(&self, today: NaiveDate) {
        self.ms.store(nine_am_shanghai(today), Ordering::SeqCst);
    }

    pub fn set_now_ms(&self, ms: i64) {
        self.ms.store(ms, Ordering::SeqCst);
    }

    /// Moves the clock by whole calendar days (negative moves it back). Saturates.
    pub fn advance_days(&self, days: i64) {
        self.advance_ms(days.saturating_mul(DAY_MS));
    }

    /// Moves the clock by `ms` milliseconds (negative moves it back). Saturates.
    pub fn advance_ms(&self, ms: i64) {
        // The closure always returns Some, so this cannot fail.
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| Some(t.saturating_add(ms)));
    }
}

impl Clock for ManualClock {
    fn today(&self) -> NaiveDate {
        shanghai_date(self.now_ms())
    }

    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// 09:00 in Shanghai is 01:00 UTC.
fn nine_am_shanghai(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::MIN)
        .and_utc()
        .timestamp_millis()
        .saturating_add(9 * 3_600_000 - SHANGHAI_OFFSET_MS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn shanghai_dates_and_clocks() {
        let ms = d(2026, 1, 1)
            .and_hms_opt(16, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(shanghai_date(ms - 1), d(2026, 1, 1));
        assert_eq!(shanghai_date(ms), d(2026, 1, 2));
        assert_eq!(shanghai_date(i64::MAX), NaiveDate::MAX);
        assert_eq!(shanghai_date(i64::MIN), NaiveDate::MIN);

        let clock = Arc::new(ManualClock::new(d(2026, 2, 13)));
        let shared: Arc<dyn Clock> = clock.clone();
        assert_eq!(shared.today(), d(2026, 2, 13));
        clock.advance_days(11);
        assert_eq!(shared.today(), d(2026, 2, 24));
        clock.advance_ms(15 * 3_600_000 - 1); // 23:59:59.999 in Shanghai
        assert_eq!(shared.today(), d(2026, 2, 24));
        clock.advance_ms(1);
        assert_eq!(shared.today(), d(2026, 2, 25));
        clock.set_today(d(2026, 1, 1));
        assert_eq!(clock.today(), d(2026, 1, 1));
        clock.advance_days(-1);
        assert_eq!(clock.today(), d(2025, 12, 31));
        clock.set_now_ms(ms);
        assert_eq!(clock.now_ms(), ms);
        assert_eq!(ManualClock::at_ms(ms).today(), d(2026, 1, 2));

        let system = SystemClock;
        let today = system.today();
        let utc = Utc::now().date_naive();
        assert!(today == utc || today == utc.succ_opt().unwrap());
    }
}
