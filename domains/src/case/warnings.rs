//! Red and yellow warnings (红黄牌预警) on a case's time limits.
//!
//! This module owns the rules that turn a case's clock into warnings, as a pure function
//! ([`evaluate`]) of a [`CaseClock`], today's date, the [`WorkingCalendar`] and configurable
//! [`WarningThresholds`]. Every tier runs it over the cases of its own subtree; storing the
//! result, opening the supervision record (督办) on red and counting per place is the engine's.
//!
//! Three clocks, all counted in working days on the calendar, the start day never counting (see
//! [`crate::calendar`]):
//!
//! | rule | runs | last day (deadline) | yellow | red |
//! | --- | --- | --- | --- | --- |
//! | [`WarningRule::Acceptance`] | received, not yet accepted | 5th working day after receipt (Art. 32) | 4 working days have passed | the deadline day has ended |
//! | [`WarningRule::Processing`] | accepted, no decision yet | promised limit + extensions after acceptance | `0 ≤ left ≤ max(1, ⌈0.2·p⌉)` | the deadline day has ended |
//! | [`WarningRule::Issuing`] | decided, result not issued | 10th working day after the decision (Art. 44) | 8 working days have passed | the deadline day has ended |
//!
//! **Art. 44's "10 days" are taken as working days.** The Administrative Licensing Law says the
//! licence is issued "within 10 days" of the decision, and its Art. 82 counts the law's time limits
//! in working days, excluding statutory holidays; so the issuing clock runs on the same calendar as
//! the others. Example: a decision on Monday 2026-09-28 must be issued by Friday 2026-10-16 (国庆
//! and its 调休 Saturday in between); it turns red on Saturday 2026-10-17.
//!
//! **"Red" means the deadline has passed**: the last day of the limit is still in time (yellow,
//! 0 days left); red starts the next calendar day, working day or not. So "red past 5" for
//! acceptance means red once more than 5 working days have passed since receipt, or the 5th has
//! ended: received Monday 2026-03-02, the 5th working day is Monday 03-09 (yellow, 0 left), and
//! Tuesday 03-10 (6 working days) is red.
//!
//! **Paused cases never escalate.** While the case is paused (supplement requested, special
//! procedure, suspension: [`CaseClock::is_paused`]) [`evaluate`] reports nothing for any rule —
//! no new yellow or red, and a case that was already red before the pause is not reported again
//! (the red card already issued, and its supervision record, belong to the engine's history and
//! stay there). Working days spent paused push every running deadline back, so after the pause
//! the case may come back as in time, yellow or red on the moved deadline.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::calendar::{PausedInterval, WorkingCalendar};

/// How urgent a case is. Ordered: `None < Yellow < Red`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningLevel {
    /// In time.
    #[default]
    None,
    /// Close to the deadline (黄牌).
    Yellow,
    /// Past the deadline (红牌): opens a supervision record.
    Red,
}

/// Which time limit a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningRule {
    /// Accept or refuse within 5 working days of receipt (Administrative Licensing Law Art. 32).
    Acceptance,
    /// Decide within the item's promised limit plus extensions, counted from acceptance.
    Processing,
    /// Issue the result within 10 working days of the decision (Art. 44, with Art. 82).
    Issuing,
}

/// The configurable boundaries. The defaults are the project's assumptions (no public source
/// gives numbers); a county may publish others. Unknown keys are refused; missing ones take the
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarningThresholds {
    /// Processing: yellow when the working days left are at most this share of the promised
    /// limit, rounded up. Default 0.2.
    pub yellow_fraction: f64,
    /// Processing: ... but never fewer than this many days. Default 1.
    pub yellow_min_days: u32,
    /// Acceptance: yellow once this many working days have passed since receipt. Default 4.
    pub acceptance_yellow_days: u32,
    /// Acceptance: the limit; red once it has passed. Default 5.
    pub acceptance_red_days: u32,
    /// Issuing: yellow once this many working days have passed since the decision. Default 8.
    pub issue_yellow_days: u32,
    /// Issuing: the limit; red once it has passed. Default 10.
    pub issue_red_days: u32,
}

impl Default for WarningThresholds {
    fn default() -> Self {
        WarningThresholds {
            yellow_fraction: 0.2,
            yellow_min_days: 1,
            acceptance_yellow_days: 4,
            acceptance_red_days: 5,
            issue_yellow_days: 8,
            issue_red_days: 10,
        }
    }
}

/// Thresholds that make no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdsError {
    #[error("yellow_fraction {0} must be a number from 0 to 1")]
    Fraction(f64),
    #[error("{yellow_key} ({yellow}) must not exceed {red_key} ({red})")]
    YellowAfterRed {
        yellow_key: &'static str,
        yellow: u32,
        red_key: &'static str,
        red: u32,
    },
}

impl WarningThresholds {
    /// Checks the thresholds: the fraction within `[0, 1]`, each yellow no later than its red.
    /// [`evaluate`] works with any values, but these would never warn as meant.
    pub fn validate(&self) -> Result<(), ThresholdsError> {
        if !(0.0..=1.0).contains(&self.yellow_fraction) {
            return Err(ThresholdsError::Fraction(self.yellow_fraction));
        }
        if self.acceptance_yellow_days > self.acceptance_red_days {
            return Err(ThresholdsError::YellowAfterRed {
                yellow_key: "acceptance_yellow_days",
                yellow: self.acceptance_yellow_days,
                red_key: "acceptance_red_days",
                red: self.acceptance_red_days,
            });
        }
        if self.issue_yellow_days > self.issue_red_days {
            return Err(ThresholdsError::YellowAfterRed {
                yellow_key: "issue_yellow_days",
                yellow: self.issue_yellow_days,
                red_key: "issue_red_days",
                red: self.issue_red_days,
            });
        }
        Ok(())
    }

    /// Processing: the most working days left at which a case is yellow,
    /// `max(yellow_min_days, ⌈yellow_fraction · p⌉)` for the promised limit `p` (extensions not
    /// included). With the defaults:
    ///
    /// ```text
    /// p = 0, 1, 3, 5 → 1      p = 6, 10 → 2      p = 15 → 3      p = 20 → 4      p = 60 → 12
    /// ```
    ///
    /// The product is rounded up after taking off 1e-9, so float noise (0.2 · 15 is
    /// 3.0000000000000004 in binary) does not add a day.
    pub fn processing_yellow_days(&self, promised_days: u32) -> u32 {
        let share = self.yellow_fraction * f64::from(promised_days);
        let share = if share.is_finite() && share > 0.0 {
            (share - 1e-9).ceil().min(f64::from(u32::MAX)) as u32
        } else {
            0
        };
        share.max(self.yellow_min_days)
    }

    /// Acceptance: the most working days left at which a case is yellow (default 5 − 4 = 1).
    pub fn acceptance_yellow_left(&self) -> u32 {
        self.acceptance_red_days.saturating_sub(self.acceptance_yellow_days)
    }

    /// Issuing: the most working days left at which a case is yellow (default 10 − 8 = 2).
    pub fn issue_yellow_left(&self) -> u32 {
        self.issue_red_days.saturating_sub(self.issue_yellow_days)
    }
}

/// What the warning rules need to know about one case. Dates are Asia/Shanghai dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseClock {
    /// The day the application was received (收件); starts the acceptance clock.
    pub received: NaiveDate,
    /// The day it was accepted (受理); stops the acceptance clock, starts the processing clock.
    #[serde(default)]
    pub accepted: Option<NaiveDate>,
    /// The item's promised limit in working days (承诺时限); 0 for an immediate item.
    pub promised_days: u32,
    /// Approved extensions in working days (e.g. 10 under Art. 42), added to the promised limit.
    #[serde(default)]
    pub extension_days: u32,
    /// Every pause so far, `[from, until)`, the current one open. Pauses are recorded as they
    /// happen; a pause that starts after today is not expected.
    #[serde(default)]
    pub paused: Vec<PausedInterval>,
    /// The case is paused now (also true of any interval in `paused` containing today).
    #[serde(default)]
    pub currently_paused: bool,
    /// The day of the decision that yields a result to hand over (approval or refusal); stops
    /// the acceptance and processing clocks, starts the issuing clock.
    #[serde(default)]
    pub decided: Option<NaiveDate>,
    /// The day the result was issued at the window or delivered; stops the issuing clock.
    #[serde(default)]
    pub issued: Option<NaiveDate>,
    /// The case has left handling (decided, not accepted, returned, withdrawn or terminated):
    /// stops the acceptance and processing clocks. It does not stop the issuing clock; only
    /// `issued` does.
    #[serde(default)]
    pub concluded: bool,
}

impl CaseClock {
    /// A case received on `received` for an item promising `promised_days`, nothing else yet.
    pub fn new(received: NaiveDate, promised_days: u32) -> Self {
        CaseClock {
            received,
            accepted: None,
            promised_days,
            extension_days: 0,
            paused: Vec::new(),
            currently_paused: false,
            decided: None,
            issued: None,
            concluded: false,
        }
    }

    /// Whether the case's clock stands still on `today`: `currently_paused`, or a recorded pause
    /// covers `today`.
    pub fn is_paused(&self, today: NaiveDate) -> bool {
        self.currently_paused || self.paused.iter().any(|p| p.contains(today))
    }
}

/// The state of one running clock of a case on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub rule: WarningRule,
    /// `None` when the clock runs and the case is in time.
    pub level: WarningLevel,
    /// Working days in `(today, deadline]`; 0 on the deadline day; negative once past it (minus
    /// the working days since the deadline). On a weekend straight after a Friday deadline it is
    /// 0 while the level is already red: the level follows the calendar date, the count follows
    /// working days.
    pub working_days_left: i64,
    /// The last day of the limit, pauses included.
    pub deadline: NaiveDate,
}

/// The state of each clock that runs for the case on `today`, in the order acceptance,
/// processing, issuing; a rule whose clock does not run is absent, and a paused case yields
/// nothing at all. Entries with level [`WarningLevel::None`] are included so a caller can show
/// the days left; [`worst`] gives the case's level.
///
/// Boundaries, with the defaults, on the 2026 calendar:
///
/// ```text
/// processing, p = 20, accepted Mon 03-02 → deadline Mon 03-30, yellow when ≤ 4 days left
///   Mon 03-23  5 left  none
///   Tue 03-24  4 left  yellow        (exactly max(1, ⌈0.2·20⌉) = 4)
///   Sat 03-28  1 left  yellow
///   Mon 03-30  0 left  yellow        (the deadline day is still in time)
///   Tue 03-31 −1 left  red
/// processing, p = 3, accepted Mon 03-02 → deadline Thu 03-05, yellow when ≤ 1 left
///   Tue 03-03  2 left  none;  Wed 03-04  1 left  yellow;  Fri 03-06  red
/// acceptance, received Mon 03-02 → deadline Mon 03-09 (5th working day)
///   Thu 03-05  3 passed, 2 left  none
///   Fri 03-06  4 passed, 1 left  yellow
///   Mon 03-09  5 passed, 0 left  yellow
///   Tue 03-10  6 passed          red  ("past 5")
/// issuing, decided Mon 03-02 → deadline Mon 03-16 (10th working day)
///   Wed 03-11  7 passed, 3 left  none
///   Thu 03-12  8 passed, 2 left  yellow
///   Tue 03-17                    red;  nothing once `issued` is set
/// ```
pub fn evaluate(
    clock: &CaseClock,
    today: NaiveDate,
    calendar: &WorkingCalendar,
    thresholds: &WarningThresholds,
) -> Vec<Warning> {
    let mut out = Vec::new();
    if clock.is_paused(today) {
        return out;
    }
    let handled = clock.decided.is_some() || clock.concluded;
    let mut push = |rule, start, limit, extension, yellow_left| {
        if let Some(deadline) = calendar.deadline_as_of(start, limit, extension, &clock.paused, today) {
            out.push(warning(rule, today, deadline, calendar, yellow_left));
        }
    };
    if clock.accepted.is_none() && !handled {
        push(
            WarningRule::Acceptance,
            clock.received,
            thresholds.acceptance_red_days,
            0,
            thresholds.acceptance_yellow_left(),
        );
    }
    if let Some(accepted) = clock.accepted
        && !handled
    {
        push(
            WarningRule::Processing,
            accepted,
            clock.promised_days,
            clock.extension_days,
            thresholds.processing_yellow_days(clock.promised_days),
        );
    }
    if let Some(decided) = clock.decided
        && clock.issued.is_none()
    {
        push(
            WarningRule::Issuing,
            decided,
            thresholds.issue_red_days,
            0,
            thresholds.issue_yellow_left(),
        );
    }
    out
}

/// How far ahead [`first_warning_day`] looks: ten years of any limit a catalogue promises.
const WARNING_HORIZON_DAYS: u64 = 3_660;

/// The first day on or after `from` on which any clock of the case is yellow or red — what a
/// store indexes so a warning list reads only the cases that warn today. `None` while the case
/// is paused (it cannot warn until it restarts, which is a new step), when no clock runs, or
/// beyond ten years.
///
/// `from` must be on or after the end of every recorded pause (the day of the case's latest
/// step will do): from there on the level only rises with the date, which is what lets this
/// search by halving instead of walking day by day.
pub fn first_warning_day(
    clock: &CaseClock,
    from: NaiveDate,
    calendar: &WorkingCalendar,
    thresholds: &WarningThresholds,
) -> Option<NaiveDate> {
    if clock.currently_paused {
        return None;
    }
    let level_on = |day: NaiveDate| {
        let running = evaluate(clock, day, calendar, thresholds);
        (!running.is_empty(), worst(&running))
    };
    match level_on(from) {
        (false, _) => return None,
        (true, level) if level >= WarningLevel::Yellow => return Some(from),
        _ => {}
    }
    let warns = |day: NaiveDate| level_on(day).1 >= WarningLevel::Yellow;
    let mut quiet = from; // does not warn
    let mut loud = from.checked_add_days(chrono::Days::new(WARNING_HORIZON_DAYS))?;
    if !warns(loud) {
        return None;
    }
    while (loud - quiet).num_days() > 1 {
        let mid = quiet.checked_add_days(chrono::Days::new(((loud - quiet).num_days() / 2) as u64))?;
        if warns(mid) {
            loud = mid;
        } else {
            quiet = mid;
        }
    }
    Some(loud)
}

impl Warning {
    /// How this clock stands, in the words a clerk reads ([`standing_zh`]).
    pub fn standing_zh(&self, today: NaiveDate) -> String {
        standing_zh(self.working_days_left, today > self.deadline)
    }
}

/// How a clock stands, as a Chinese service hall says it: `剩余 3 个工作日` before the deadline,
/// `今日到期` on the deadline day (still in time), `超期 8 个工作日` past it. `past_deadline`
/// comes from the dates because the count alone cannot tell: on the weekend after a Friday
/// deadline the case is already late but no working day has passed, which reads
/// `已超期（不足 1 个工作日）`.
pub fn standing_zh(working_days_left: i64, past_deadline: bool) -> String {
    match (working_days_left, past_deadline) {
        (left, _) if left < 0 => format!("超期 {} 个工作日", left.unsigned_abs()),
        (_, true) => "已超期（不足 1 个工作日）".to_owned(),
        (0, false) => "今日到期".to_owned(),
        (left, false) => format!("剩余 {left} 个工作日"),
    }
}

/// The highest level among `warnings` ([`WarningLevel::None`] for none).
pub fn worst(warnings: &[Warning]) -> WarningLevel {
    warnings.iter().map(|w| w.level).max().unwrap_or_default()
}

fn warning(
    rule: WarningRule,
    today: NaiveDate,
    deadline: NaiveDate,
    calendar: &WorkingCalendar,
    yellow_left: u32,
) -> Warning {
    let working_days_left = calendar.working_days_between(today, deadline);
    let level = if today > deadline {
        WarningLevel::Red
    } else if working_days_left <= i64::from(yellow_left) {
        WarningLevel::Yellow
    } else {
        WarningLevel::None
    };
    Warning {
        rule,
        level,
        working_days_left,
        deadline,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn cal() -> WorkingCalendar {
        WorkingCalendar::china_2026().unwrap()
    }

    fn accepted(on: NaiveDate, promised: u32) -> CaseClock {
        CaseClock {
            accepted: Some(on),
            ..CaseClock::new(on, promised)
        }
    }

    /// The single warning `evaluate` must return, as (level, days left, deadline).
    fn one(clock: &CaseClock, today: NaiveDate, t: &WarningThresholds) -> (WarningLevel, i64, NaiveDate) {
        let ws = evaluate(clock, today, &cal(), t);
        assert_eq!(ws.len(), 1, "{ws:?}");
        (ws[0].level, ws[0].working_days_left, ws[0].deadline)
    }

    fn level(clock: &CaseClock, today: NaiveDate) -> WarningLevel {
        worst(&evaluate(clock, today, &cal(), &WarningThresholds::default()))
    }

    use WarningLevel::{None as Fine, Red, Yellow};

    #[test]
    fn the_standing_reads_as_a_service_hall_says_it() {
        assert_eq!(standing_zh(3, false), "剩余 3 个工作日");
        assert_eq!(standing_zh(1, false), "剩余 1 个工作日");
        assert_eq!(standing_zh(0, false), "今日到期");
        assert_eq!(standing_zh(0, true), "已超期（不足 1 个工作日）");
        assert_eq!(standing_zh(-1, true), "超期 1 个工作日");
        assert_eq!(standing_zh(-8, true), "超期 8 个工作日");
        // From the clock itself, on the 2026 calendar: p = 20 accepted Mon 03-02 is due Mon
        // 03-30; Fri 04-10 is 8 working days past it (03-31 … 04-03, 04-07 … 04-10; 04-06 is
        // the 清明 holiday Monday), and the weekend after a Friday deadline is late by none.
        let case = accepted(d(2026, 3, 2), 20);
        let standing = |today| {
            let ws = evaluate(&case, today, &cal(), &WarningThresholds::default());
            ws[0].standing_zh(today)
        };
        assert_eq!(standing(d(2026, 3, 24)), "剩余 4 个工作日");
        assert_eq!(standing(d(2026, 3, 30)), "今日到期");
        assert_eq!(standing(d(2026, 3, 31)), "超期 1 个工作日");
        assert_eq!(standing(d(2026, 4, 10)), "超期 8 个工作日");
        let friday = accepted(d(2026, 3, 13), 5);
        let saturday = d(2026, 3, 21);
        let ws = evaluate(&friday, saturday, &cal(), &WarningThresholds::default());
        assert_eq!(ws[0].deadline, d(2026, 3, 20), "due on a Friday");
        assert_eq!(ws[0].standing_zh(saturday), "已超期（不足 1 个工作日）");
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Fine < Yellow && Yellow < Red);
        assert_eq!(worst(&[]), Fine);
    }

    #[test]
    fn processing_yellow_threshold() {
        let t = WarningThresholds::default();
        let cases = [
            (0, 1),
            (1, 1),
            (3, 1),
            (5, 1),
            (6, 2),
            (10, 2),
            (15, 3),
            (20, 4),
            (21, 5),
            (60, 12),
        ];
        for (p, want) in cases {
            assert_eq!(t.processing_yellow_days(p), want, "p = {p}");
        }
    }

    #[test]
    fn processing_boundaries() {
        let t = WarningThresholds::default();
        let case = accepted(d(2026, 3, 2), 20);
        let deadline = d(2026, 3, 30);
        assert_eq!(
            one(&case, d(2026, 3, 23), &t),
            (Fine, 5, deadline),
            "one more day than the threshold"
        );
        assert_eq!(
            one(&case, d(2026, 3, 24), &t),
            (Yellow, 4, deadline),
            "exactly max(1, ceil(0.2·20))"
        );
        assert_eq!(one(&case, d(2026, 3, 28), &t), (Yellow, 1, deadline), "a Saturday");
        assert_eq!(
            one(&case, d(2026, 3, 30), &t),
            (Yellow, 0, deadline),
            "the deadline day"
        );
        assert_eq!(one(&case, d(2026, 3, 31), &t), (Red, -1, deadline), "the day after");
        assert_eq!(one(&case, d(2026, 4, 10), &t), (Red, -8, deadline), "04-06 is 清明");
        // Deadline on a Friday: the weekend after is red with 0 working days left.
        let friday = accepted(d(2026, 3, 2), 4);
        assert_eq!(one(&friday, d(2026, 3, 6), &t), (Yellow, 0, d(2026, 3, 6)));
        assert_eq!(one(&friday, d(2026, 3, 7), &t), (Red, 0, d(2026, 3, 6)));
        // Extensions lengthen the limit; the yellow threshold stays on the promised limit.
        let extended = CaseClock {
            extension_days: 10,
            ..case.clone()
        };
        assert_eq!(one(&extended, d(2026, 3, 31), &t), (Fine, 9, d(2026, 4, 14)));
        assert_eq!(one(&extended, d(2026, 4, 7), &t), (Fine, 5, d(2026, 4, 14)));
        assert_eq!(one(&extended, d(2026, 4, 8), &t), (Yellow, 4, d(2026, 4, 14)));
    }

    #[test]
    fn processing_with_a_small_limit() {
        let case = accepted(d(2026, 3, 2), 3);
        assert_eq!(level(&case, d(2026, 3, 3)), Fine);
        assert_eq!(level(&case, d(2026, 3, 4)), Yellow, "1 left: p = 3 gives threshold 1");
        assert_eq!(level(&case, d(2026, 3, 5)), Yellow);
        assert_eq!(level(&case, d(2026, 3, 6)), Red);
        // An immediate item (0 days) is yellow on its day and red after it.
        let immediate = accepted(d(2026, 3, 2), 0);
        assert_eq!(level(&immediate, d(2026, 3, 2)), Yellow);
        assert_eq!(level(&immediate, d(2026, 3, 3)), Red);
    }

    #[test]
    fn acceptance_within_five_working_days() {
        let t = WarningThresholds::default();
        let case = CaseClock::new(d(2026, 3, 2), 20);
        let deadline = d(2026, 3, 9);
        assert_eq!(
            one(&case, d(2026, 3, 5), &t),
            (Fine, 2, deadline),
            "3 working days in received"
        );
        assert_eq!(
            one(&case, d(2026, 3, 6), &t),
            (Yellow, 1, deadline),
            "4 working days in received"
        );
        assert_eq!(
            one(&case, d(2026, 3, 8), &t),
            (Yellow, 1, deadline),
            "still 4 on the Sunday"
        );
        assert_eq!(one(&case, d(2026, 3, 9), &t), (Yellow, 0, deadline), "5: the last day");
        assert_eq!(one(&case, d(2026, 3, 10), &t), (Red, -1, deadline), "6: past 5");
        // Across 春节: received Friday 02-13, the 5th working day is 02-27.
        let cny = CaseClock::new(d(2026, 2, 13), 20);
        assert_eq!(one(&cny, d(2026, 2, 20), &t), (Fine, 4, d(2026, 2, 27)));
        assert_eq!(one(&cny, d(2026, 2, 26), &t), (Yellow, 1, d(2026, 2, 27)));
        assert_eq!(
            one(&cny, d(2026, 2, 28), &t),
            (Red, -1, d(2026, 2, 27)),
            "the 调休 Saturday counts"
        );
        // Accepting (or concluding) stops the acceptance clock and starts processing.
        let accepted_late = CaseClock {
            accepted: Some(d(2026, 3, 10)),
            ..case.clone()
        };
        let ws = evaluate(&accepted_late, d(2026, 3, 10), &cal(), &t);
        assert_eq!(ws.len(), 1);
        assert_eq!((ws[0].rule, ws[0].level), (WarningRule::Processing, Fine));
        let refused = CaseClock {
            concluded: true,
            ..case.clone()
        };
        assert!(evaluate(&refused, d(2026, 3, 10), &cal(), &t).is_empty());
        // A supplement request (补正) pauses it: 03-04..03-06 do not count.
        let supplement = CaseClock {
            paused: vec![PausedInterval::closed(d(2026, 3, 4), d(2026, 3, 9))],
            ..case
        };
        assert_eq!(one(&supplement, d(2026, 3, 10), &t), (Fine, 2, d(2026, 3, 12)));
    }

    #[test]
    fn issuing_within_ten_working_days_of_the_decision() {
        let t = WarningThresholds::default();
        let decided = CaseClock {
            decided: Some(d(2026, 3, 2)),
            concluded: true,
            ..accepted(d(2026, 2, 24), 20)
        };
        let deadline = d(2026, 3, 16);
        assert_eq!(one(&decided, d(2026, 3, 11), &t), (Fine, 3, deadline));
        assert_eq!(
            one(&decided, d(2026, 3, 12), &t),
            (Yellow, 2, deadline),
            "8 working days"
        );
        assert_eq!(
            one(&decided, d(2026, 3, 16), &t),
            (Yellow, 0, deadline),
            "10 working days: last day"
        );
        assert_eq!(
            one(&decided, d(2026, 3, 17), &t),
            (Red, -1, deadline),
            "past 10 working days"
        );
        let ws = evaluate(&decided, d(2026, 3, 17), &cal(), &t);
        assert_eq!(ws[0].rule, WarningRule::Issuing, "the decision stops processing");
        // Issued: nothing, however late.
        let issued = CaseClock {
            issued: Some(d(2026, 3, 20)),
            ..decided
        };
        assert!(evaluate(&issued, d(2026, 3, 25), &cal(), &t).is_empty());
        // Over 国庆: decided Monday 09-28, last day Friday 10-16, red on Saturday 10-17.
        let autumn = CaseClock {
            decided: Some(d(2026, 9, 28)),
            ..accepted(d(2026, 9, 1), 20)
        };
        assert_eq!(one(&autumn, d(2026, 10, 16), &t), (Yellow, 0, d(2026, 10, 16)));
        assert_eq!(one(&autumn, d(2026, 10, 17), &t), (Red, 0, d(2026, 10, 16)));
    }

    #[test]
    fn paused_cases_never_escalate() {
        let t = WarningThresholds::default();
        let base = accepted(d(2026, 3, 2), 20);
        assert_eq!(level(&base, d(2026, 4, 1)), Red);
        // Paused by flag: nothing at all, however late.
        let flagged = CaseClock {
            currently_paused: true,
            ..base.clone()
        };
        assert!(evaluate(&flagged, d(2026, 4, 1), &cal(), &t).is_empty());
        assert!(evaluate(&flagged, d(2026, 12, 1), &cal(), &t).is_empty());
        // Already red on 03-31, then paused from 04-01 (open): no processing warning while paused.
        let paused = CaseClock {
            paused: vec![PausedInterval::open(d(2026, 4, 1))],
            ..base.clone()
        };
        assert!(evaluate(&paused, d(2026, 4, 1), &cal(), &t).is_empty());
        assert!(evaluate(&paused, d(2026, 5, 29), &cal(), &t).is_empty());
        // A pause before the case went red moves the deadline: 03-20..03-26 (5 working days)
        // paused, resumed 03-27, so the deadline moves from 03-30 to 04-07 (04-06 is 清明).
        let resumed = CaseClock {
            paused: vec![PausedInterval::closed(d(2026, 3, 20), d(2026, 3, 27))],
            ..base.clone()
        };
        assert!(evaluate(&resumed, d(2026, 3, 23), &cal(), &t).is_empty());
        assert_eq!(one(&resumed, d(2026, 3, 31), &t), (Yellow, 4, d(2026, 4, 7)));
        assert_eq!(one(&resumed, d(2026, 4, 8), &t), (Red, -1, d(2026, 4, 7)));
        // The issuing and acceptance clocks do not escalate while paused either.
        let issuing = CaseClock {
            decided: Some(d(2026, 3, 2)),
            currently_paused: true,
            ..base.clone()
        };
        assert!(evaluate(&issuing, d(2026, 3, 20), &cal(), &t).is_empty());
        let receiving = CaseClock {
            currently_paused: true,
            ..CaseClock::new(d(2026, 3, 2), 20)
        };
        assert!(evaluate(&receiving, d(2026, 3, 20), &cal(), &t).is_empty());
    }

    #[test]
    fn thresholds_are_configurable() {
        let case = accepted(d(2026, 3, 2), 20);
        let wide: WarningThresholds = toml::from_str("yellow_fraction = 0.5").unwrap();
        assert_eq!(wide.processing_yellow_days(20), 10);
        assert_eq!(wide.acceptance_red_days, 5, "missing keys keep their default");
        assert_eq!(one(&case, d(2026, 3, 16), &wide).0, Yellow, "10 left");
        assert_eq!(one(&case, d(2026, 3, 13), &wide).0, Fine, "11 left");
        let min3 = WarningThresholds {
            yellow_min_days: 3,
            ..Default::default()
        };
        assert_eq!(min3.processing_yellow_days(3), 3);
        let acceptance: WarningThresholds =
            serde_json::from_str(r#"{"acceptance_yellow_days": 2, "acceptance_red_days": 3}"#).unwrap();
        let received = CaseClock::new(d(2026, 3, 2), 20);
        assert_eq!(one(&received, d(2026, 3, 3), &acceptance), (Fine, 2, d(2026, 3, 5)));
        assert_eq!(one(&received, d(2026, 3, 4), &acceptance), (Yellow, 1, d(2026, 3, 5)));
        assert_eq!(one(&received, d(2026, 3, 6), &acceptance), (Red, -1, d(2026, 3, 5)));
        let issue = WarningThresholds {
            issue_yellow_days: 5,
            issue_red_days: 15,
            ..Default::default()
        };
        let decided = CaseClock {
            decided: Some(d(2026, 3, 2)),
            ..received
        };
        assert_eq!(one(&decided, d(2026, 3, 6), &issue), (Fine, 11, d(2026, 3, 23)));
        assert_eq!(one(&decided, d(2026, 3, 9), &issue), (Yellow, 10, d(2026, 3, 23)));

        assert!(WarningThresholds::default().validate().is_ok());
        assert!(toml::from_str::<WarningThresholds>("yellow_fraction_typo = 1").is_err());
        let bad = WarningThresholds {
            yellow_fraction: 1.5,
            ..Default::default()
        };
        assert_eq!(bad.validate(), Err(ThresholdsError::Fraction(1.5)));
        let bad = WarningThresholds {
            acceptance_yellow_days: 6,
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("acceptance_yellow_days (6)")
        );
    }

    #[test]
    fn first_warning_day_is_the_first_day_a_clock_warns() {
        let cal = cal();
        let t = WarningThresholds::default();
        let mut clocks = Vec::new();
        for promised in [0, 1, 3, 7, 20, 60] {
            clocks.push(accepted(d(2026, 9, 25), promised));
            clocks.push(CaseClock::new(d(2026, 9, 25), promised));
            let mut decided = accepted(d(2026, 9, 25), promised);
            decided.decided = Some(d(2026, 9, 29));
            clocks.push(decided);
            let mut resumed = accepted(d(2026, 9, 25), promised);
            resumed.paused.push(PausedInterval {
                from: d(2026, 9, 28),
                until: Some(d(2026, 10, 9)),
            });
            clocks.push(resumed);
        }
        let from = d(2026, 10, 9);
        for clock in &clocks {
            // The walk day by day that the search must agree with.
            let mut walked = None;
            let mut day = from;
            while day < d(2027, 6, 1) {
                if worst(&evaluate(clock, day, &cal, &t)) >= WarningLevel::Yellow {
                    walked = Some(day);
                    break;
                }
                day = day.succ_opt().unwrap();
            }
            assert_eq!(first_warning_day(clock, from, &cal, &t), walked, "{clock:?}");
        }
        let mut paused = accepted(d(2026, 9, 25), 20);
        paused.currently_paused = true;
        assert_eq!(first_warning_day(&paused, from, &cal, &t), None);
        let mut issued = accepted(d(2026, 9, 25), 20);
        issued.decided = Some(d(2026, 9, 29));
        issued.issued = Some(d(2026, 9, 30));
        assert_eq!(first_warning_day(&issued, from, &cal, &t), None, "no clock runs");
    }

    #[test]
    fn warnings_serialise_plainly() {
        let case = accepted(d(2026, 3, 2), 20);
        let ws = evaluate(&case, d(2026, 3, 31), &cal(), &WarningThresholds::default());
        let json = serde_json::to_string(&ws).unwrap();
        assert_eq!(
            json,
            r#"[{"rule":"processing","level":"red","working_days_left":-1,"deadline":"2026-03-30"}]"#
        );
        let back: CaseClock = serde_json::from_str(&serde_json::to_string(&case).unwrap()).unwrap();
        assert_eq!(back, case);
    }
}
