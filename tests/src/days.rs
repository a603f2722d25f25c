//! Working days counted by hand, so that expected deadlines come from the test and not from the
//! engine's calendar code.
//!
//! [`built_in_2026`] is the national schedule for 2026 as the State Council's notice of
//! 2025-11-04 states it (国务院办公厅关于2026年部分节假日安排的通知), written out here again
//! rather than read from `data/calendar-2026.toml`; outside 2026 every Monday to Friday is a
//! working day, as the engine documents for dates its calendar does not cover.

use chrono::{Datelike, NaiveDate, Weekday};

/// 2026's days off (放假) that fall on a weekday.
const WEEKDAY_HOLIDAYS_2026: [(u32, u32); 19] = [
    // 元旦
    (1, 1),
    (1, 2),
    // 春节
    (2, 16),
    (2, 17),
    (2, 18),
    (2, 19),
    (2, 20),
    (2, 23),
    // 清明节
    (4, 6),
    // 劳动节
    (5, 1),
    (5, 4),
    (5, 5),
    // 端午节
    (6, 19),
    // 中秋节
    (9, 25),
    // 国庆节
    (10, 1),
    (10, 2),
    (10, 5),
    (10, 6),
    (10, 7),
];

/// 2026's weekend days that are worked (调休上班).
const ADJUSTED_2026: [(u32, u32); 6] = [(1, 4), (2, 14), (2, 28), (5, 9), (9, 20), (10, 10)];

fn weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Whether `date` is a working day on the built-in calendar (see the module comment).
pub fn built_in_2026(date: NaiveDate) -> bool {
    let key = (date.month(), date.day());
    if date.year() == 2026 && ADJUSTED_2026.contains(&key) {
        return true;
    }
    let holiday = date.year() == 2026 && WEEKDAY_HOLIDAYS_2026.contains(&key);
    !weekend(date) && !holiday
}

/// The `n`-th working day (by `working`) strictly after `from`; `from` itself when `n` is 0.
pub fn add_working_days(from: NaiveDate, n: u32, working: impl Fn(NaiveDate) -> bool) -> NaiveDate {
    let (mut day, mut left) = (from, n);
    while left > 0 {
        day = day.succ_opt().unwrap_or_else(|| panic!("no day after {day}"));
        if working(day) {
            left -= 1;
        }
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_else(|| panic!("bad date"))
    }

    #[test]
    fn the_schedule_as_written() {
        // Every listed holiday is a weekday and every adjusted day a weekend day.
        for (m, day) in WEEKDAY_HOLIDAYS_2026 {
            assert!(!weekend(d(2026, m, day)), "2026-{m}-{day}");
        }
        for (m, day) in ADJUSTED_2026 {
            assert!(weekend(d(2026, m, day)), "2026-{m}-{day}");
        }
        // Worked examples: received Fri 2026-01-02 (元旦), 5 days → Thu 01-08; Wed 09-30 → Tue 10-13.
        assert_eq!(add_working_days(d(2026, 1, 2), 5, built_in_2026), d(2026, 1, 8));
        assert_eq!(add_working_days(d(2026, 2, 13), 5, built_in_2026), d(2026, 2, 27));
        assert_eq!(add_working_days(d(2026, 9, 30), 5, built_in_2026), d(2026, 10, 13));
        // 2027-01-01 is a Friday: a plain working day outside the schedule.
        assert!(built_in_2026(d(2027, 1, 1)));
    }
}
