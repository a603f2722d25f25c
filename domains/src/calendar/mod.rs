//! The working-day calendar that every time limit runs on, and the injectable clock.
//!
//! This module owns:
//! - [`WorkingCalendar`]: which days are working days — Monday to Friday, minus public holidays
//!   (放假), plus the Saturdays and Sundays China turns into working days (调休上班) — loaded from
//!   the calendar file the county publishes down the tree ([`WorkingCalendar::parse_toml`],
//!   [`WorkingCalendar::parse_json`]; the 2026 national schedule is embedded as [`CHINA_2026`]);
//! - working-day arithmetic: [`WorkingCalendar::add_working_days`],
//!   [`WorkingCalendar::working_days_between`] and the case deadline with extensions and pauses,
//!   [`WorkingCalendar::deadline`];
//! - accumulation by year ([`WorkingCalendar::accumulate`]): the calendar in force holds every
//!   year published, each from the latest publication covering it;
//! - the [`Clock`] trait with [`SystemClock`] (the date in Asia/Shanghai) and [`ManualClock`]
//!   (set and advanced by tests and the demo).
//!
//! # Conventions
//!
//! - **The start day never counts.** "n working days after `start`" is the n-th working day
//!   strictly after `start`, whether or not `start` is itself a working day, and that day is the
//!   last day of the limit (the limit is met if the work is done on it). Example: a 5-working-day
//!   limit on an application received on Friday 2026-01-02 (a 元旦 holiday) runs through
//!   Sunday 2026-01-04 (调休上班, 1), Monday 01-05 (2), 01-06 (3), 01-07 (4) and ends on
//!   Thursday 2026-01-08 (5). A limit of 0 ends on the start day itself (immediate items).
//! - **Counting between dates** is over the half-open range `(from, to]`, signed:
//!   `working_days_between(start, add_working_days(start, n)) == n`.
//! - **Pauses** (supplement requested, special procedure, suspension) are `[from, until)`: the day
//!   the clock stops does not count, the day it restarts does. Paused working days push the
//!   deadline back one working day each.
//! - **Outside the covered years** ([`WorkingCalendar::covers`]) nothing is known about holidays:
//!   every Monday–Friday is a working day and every weekend day is not, except dates the file
//!   lists (a file may list a date in the month next to its years, e.g. the 2019 notice made
//!   2018-12-29 a working day and 2018-12-30/31 holidays). Publish next year's file before the
//!   year starts.
//!
//! ```
//! use chrono::NaiveDate;
//! use tongban_domains::calendar::WorkingCalendar;
//!
//! let cal = WorkingCalendar::china_2026()?;
//! let received = NaiveDate::from_ymd_opt(2026, 1, 2).ok_or("date")?;
//! assert_eq!(cal.add_working_days(received, 5), NaiveDate::from_ymd_opt(2026, 1, 8).ok_or("date")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod projection;
pub mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The national 2026 holiday schedule (State Council notice of 2025-11-04) as a calendar file.
pub const CHINA_2026: &str = include_str!("../../../data/calendar-2026.toml");

// The clock is the engine's: one per node, handed to it at start.
pub use tongban_engine::clock::{Clock, DAY_MS, ManualClock, SHANGHAI_OFFSET_MS, SystemClock, shanghai_date};

/// Years a calendar file may name (a sanity check on typing mistakes, not a limit of the code).
const YEARS: std::ops::RangeInclusive<i32> = 1949..=9998;

// ---------------------------------------------------------------------------------------------
// The calendar
// ---------------------------------------------------------------------------------------------

/// A working-day calendar: weekends, public holidays (放假) and adjusted working days (调休上班).
///
/// Built only through validation ([`WorkingCalendar::new`], the parsers, or serde, which goes
/// through the same checks), so these always hold:
/// - every adjusted working day is a Saturday or Sunday;
/// - no date is both a holiday and an adjusted working day;
/// - `first_year ≤ last_year`, and every listed date lies in those years or in the month just
///   before or after them (December of `first_year - 1`, January of `last_year + 1`).
///
/// A holiday on a weekend is allowed (the notices list them, e.g. Saturday 2026-01-03) and
/// changes nothing; [`WorkingCalendar::redundant_holidays`] lists them.
///
/// Lookups are O(log n) in the number of listed dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarFile", into = "CalendarFile")]
pub struct WorkingCalendar {
    name: String,
    version: String,
    source: String,
    first_year: i32,
    last_year: i32,
    /// The years whose holidays are known: `first_year..=last_year` for a calendar read from a
    /// file; for one accumulated from several publications ([`WorkingCalendar::accumulate`]) the
    /// years held, which may have gaps.
    held_years: BTreeSet<i32>,
    holidays: BTreeSet<NaiveDate>,
    /// The holidays that fall Monday–Friday: the ones that actually remove a working day.
    weekday_holidays: BTreeSet<NaiveDate>,
    adjusted_working_days: BTreeSet<NaiveDate>,
}

/// The file form of a calendar (TOML or JSON), before validation.
///
/// ```toml
/// name = "中国 2026 年节假日安排"
/// version = "2026.1"
/// source = "国务院办公厅关于2026年部分节假日安排的通知（2025年11月4日）"   # optional
/// first_year = 2026
/// last_year = 2026
/// holidays = ["2026-01-01", "2026-01-02", "2026-01-03"]                  # 放假
/// adjusted_working_days = ["2026-01-04"]                                  # 调休上班
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    name: String,
    version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    source: String,
    first_year: i32,
    last_year: i32,
    #[serde(default)]
    holidays: Vec<FileDate>,
    #[serde(default)]
    adjusted_working_days: Vec<FileDate>,
}

/// A date in a calendar file: a `"YYYY-MM-DD"` string, or in TOML also a bare local date
/// (`2026-01-01`). Written back as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FileDate(NaiveDate);

impl Serialize for FileDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.format("%Y-%m-%d"))
    }
}

impl<'de> Deserialize<'de> for FileDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FileDateVisitor)
    }
}

struct FileDateVisitor;

impl<'de> serde::de::Visitor<'de> for FileDateVisitor {
    type Value = FileDate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a date written YYYY-MM-DD")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileDate, E> {
        parse_date(v).map(FileDate).map_err(E::custom)
    }

    // A bare TOML date arrives as toml's private one-entry datetime map.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FileDate, A::Error> {
        use serde::de::Error as _;
        let dt = toml::value::Datetime::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        match (dt.date, dt.time, dt.offset) {
            (Some(d), None, None) => NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                .map(FileDate)
                .ok_or_else(|| A::Error::custom(format!("{dt} is not a calendar day"))),
            _ => Err(A::Error::custom(format!(
                "{dt} has a time of day; write the date alone, YYYY-MM-DD"
            ))),
        }
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let t = text.trim();
    let shaped = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        Ok(d) if shaped => Ok(d),
        Ok(_) => Err(format!("\"{text}\" is not a date written YYYY-MM-DD")),
        Err(_) if shaped => Err(format!("\"{text}\" is not a calendar day")),
        Err(_) => Err(format!("\"{text}\" is not a date written YYYY-MM-DD")),
    }
}

impl TryFrom<CalendarFile> for WorkingCalendar {
    type Error = CalendarError;

    fn try_from(file: CalendarFile) -> Result<Self, CalendarError> {
        WorkingCalendar::from_file(file, None)
    }
}

impl From<WorkingCalendar> for CalendarFile {
    fn from(cal: WorkingCalendar) -> Self {
        CalendarFile {
            name: cal.name,
            version: cal.version,
            source: cal.source,
            first_year: cal.first_year,
            last_year: cal.last_year,
            holidays: cal.holidays.into_iter().map(FileDate).collect(),
            adjusted_working_days: cal.adjusted_working_days.into_iter().map(FileDate).collect(),
        }
    }
}

/// The file a calendar was read from, to point problems at lines.
#[derive(Clone, Copy)]
struct Source<'a> {
    text: &'a str,
    toml: bool,
}

impl WorkingCalendar {
    /// Builds and validates a calendar. `holidays` are 放假 days, `adjusted_working_days` are
    /// 调休上班 days (each must be a Saturday or Sunday). Every problem is reported, not only the
    /// first.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        first_year: i32,
        last_year: i32,
        holidays: impl IntoIterator<Item = NaiveDate>,
        adjusted_working_days: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Self, CalendarError> {
        let file = CalendarFile {
            name: name.into(),
            version: version.into(),
            source: String::new(),
            first_year,
            last_year,
            holidays: holidays.into_iter().map(FileDate).collect(),
            adjusted_working_days: adjusted_working_days.into_iter().map(FileDate).collect(),
        };
        Self::from_file(file, None)
    }

    /// A calendar that knows no holidays and covers no year: plain Monday–Friday.
    pub fn weekdays_only() -> Self {
        WorkingCalendar {
            name: "Monday–Friday".to_owned(),
            version: "0".to_owned(),
            source: String::new(),
            first_year: 0,
            last_year: -1,
            held_years: BTreeSet::new(),
            holidays: BTreeSet::new(),
            weekday_holidays: BTreeSet::new(),
            adjusted_working_days: BTreeSet::new(),
        }
    }

    /// The national 2026 schedule embedded in the binary ([`CHINA_2026`]).
    pub fn china_2026() -> Result<Self, CalendarError> {
        Self::parse_toml(CHINA_2026)
    }

    /// Reads a calendar file in TOML. Syntax errors carry TOML's line and column; rule problems
    /// name the date and, where it can be found, the line it is on.
    pub fn parse_toml(text: &str) -> Result<Self, CalendarError> {
        let file: CalendarFile = toml::from_str(text).map_err(|e| CalendarError::Syntax {
            format: "TOML",
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::from_file(file, Some(Source { text, toml: true }))
    }

    /// Reads a calendar file in JSON: an object with the same keys as the TOML form.
    pub fn parse_json(text: &str) -> Result<Self, CalendarError> {
        let file: CalendarFile = serde_json::from_str(text).map_err(|e| CalendarError::Syntax {
            format: "JSON",
            message: e.to_string(),
        })?;
        Self::from_file(file, Some(Source { text, toml: false }))
    }

    /// Writes the calendar as a TOML file that [`WorkingCalendar::parse_toml`] reads back.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(&CalendarFile::from(self.clone()))
    }

    /// Writes the calendar as a JSON file that [`WorkingCalendar::parse_json`] reads back.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(&CalendarFile::from(self.clone()))
    }

    fn from_file(file: CalendarFile, source: Option<Source<'_>>) -> Result<Self, CalendarError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, date: Option<NaiveDate>, message: String| {
            let line = source.and_then(|s| find_line(s, key, date));
            problems.push(CalendarProblem { line, date, message });
        };
        if file.name.trim().is_empty() {
            problem("name", None, "name is empty".to_owned());
        }
        if file.version.trim().is_empty() {
            problem("version", None, "version is empty".to_owned());
        }
        let years_ok = YEARS.contains(&file.first_year) && YEARS.contains(&file.last_year);
        if !years_ok {
            problem(
                "first_year",
                None,
                format!(
                    "the covered years {}–{} are not plausible (expected {}–{})",
                    file.first_year,
                    file.last_year,
                    YEARS.start(),
                    YEARS.end()
                ),
            );
        } else if file.first_year > file.last_year {
            problem(
                "first_year",
                None,
                format!("first_year {} is after last_year {}", file.first_year, file.last_year),
            );
        }
        // Dates may spill into the month next to the covered years (cross-year 元旦 schedules).
        let window = match (
            NaiveDate::from_ymd_opt(file.first_year.saturating_sub(1), 12, 1),
            NaiveDate::from_ymd_opt(file.last_year.saturating_add(1), 1, 31),
        ) {
            (Some(a), Some(b)) if years_ok => Some((a, b)),
            _ => None,
        };
        let outside = |d: NaiveDate| window.is_some_and(|(a, b)| d < a || d > b);

        let holidays: BTreeSet<NaiveDate> = file.holidays.iter().map(|d| d.0).collect();
        let adjusted: BTreeSet<NaiveDate> = file.adjusted_working_days.iter().map(|d| d.0).collect();
        for &d in &holidays {
            if outside(d) {
                problem(
                    "holidays",
                    Some(d),
                    format!(
                        "holiday {d} lies outside the covered years {}–{}",
                        file.first_year, file.last_year
                    ),
                );
            }
        }
        for &d in &adjusted {
            if holidays.contains(&d) {
                problem(
                    "adjusted_working_days",
                    Some(d),
                    format!("{d} is listed both as a holiday (放假) and as an adjusted working day (调休上班)"),
                );
            }
            if !is_weekend(d) {
                problem(
                    "adjusted_working_days",
                    Some(d),
                    format!(
                        "adjusted working day (调休上班) {d} is a {}; only a Saturday or Sunday can be one",
                        weekday_name(d.weekday())
                    ),
                );
            }
            if outside(d) {
                problem(
                    "adjusted_working_days",
                    Some(d),
                    format!(
                        "adjusted working day {d} lies outside the covered years {}–{}",
                        file.first_year, file.last_year
                    ),
                );
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            return Err(CalendarError::Invalid(problems));
        }
        Ok(WorkingCalendar {
            name: file.name,
            version: file.version,
            source: file.source,
            first_year: file.first_year,
            last_year: file.last_year,
            held_years: (file.first_year..=file.last_year).collect(),
            weekday_holidays: holidays.iter().copied().filter(|d| !is_weekend(*d)).collect(),
            holidays,
            adjusted_working_days: adjusted,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where the schedule comes from (the notice), if the file says.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The covered years, inclusive; `first > last` for [`WorkingCalendar::weekdays_only`]. An
    /// accumulated calendar may not hold every year in between ([`WorkingCalendar::held_years`]).
    pub fn years(&self) -> (i32, i32) {
        (self.first_year, self.last_year)
    }

    /// The years whose holidays this calendar knows, in order.
    pub fn held_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.held_years.iter().copied()
    }

    /// Whether the holiday lists are complete for `date`'s year. Outside, the calendar is plain
    /// Monday–Friday (plus any listed dates).
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.held_years.contains(&date.year())
    }

    /// The calendar in force after `publications`, given oldest first: each year comes from the
    /// latest publication covering it, so publishing year Y replaces year Y only and every other
    /// year stays as it was. The second value says where each year held comes from.
    ///
    /// A listed date belongs to the year of the publication that lists it: its own year, or,
    /// for a date in the month next to the years a file covers (a cross-year 元旦 schedule), the
    /// covered year next to it (December 2018 in the 2019 file belongs to 2019). A date listed in
    /// two years held (a 2019 file's 2018-12-29 and the 2018 file) is what the later
    /// publication says. Name, version and source are the latest publication's. Pure: the same
    /// publications in the same order give the same calendar at every node.
    ///
    /// ```text
    /// 2026 (v1), then 2027 (v1)  → 2026 from the first, 2027 from the second
    /// then 2026 again (v2)       → 2026 from v2, 2027 unchanged
    /// ```
    pub fn accumulate<'a>(
        publications: impl IntoIterator<Item = (Option<u64>, &'a WorkingCalendar)>,
    ) -> (WorkingCalendar, Vec<HeldYear>) {
        let publications: Vec<(Option<u64>, &WorkingCalendar)> = publications.into_iter().collect();
        // The publication each year comes from: the last one covering it.
        let mut owner: BTreeMap<i32, usize> = BTreeMap::new();
        for (i, (_, calendar)) in publications.iter().enumerate() {
            for year in calendar.held_years() {
                owner.insert(year, i);
            }
        }
        let (Some((&first_year, _)), Some((&last_year, _)), Some((_, latest))) =
            (owner.first_key_value(), owner.last_key_value(), publications.last())
        else {
            return (WorkingCalendar::weekdays_only(), Vec::new());
        };
        // Each listed date of each publication still in force for the year it belongs to; a
        // later publication overwrites an earlier one's word on the same date.
        let mut listed: BTreeMap<NaiveDate, bool> = BTreeMap::new();
        for (i, (_, calendar)) in publications.iter().enumerate() {
            let in_force = |d: &NaiveDate| {
                let year = d.year().clamp(calendar.first_year, calendar.last_year);
                owner.get(&year) == Some(&i)
            };
            for d in calendar.holidays.iter().filter(|d| in_force(d)) {
                listed.insert(*d, true);
            }
            for d in calendar.adjusted_working_days.iter().filter(|d| in_force(d)) {
                listed.insert(*d, false);
            }
        }
        let holidays: BTreeSet<NaiveDate> = listed.iter().filter(|(_, h)| **h).map(|(d, _)| *d).collect();
        let held = owner
            .iter()
            .map(|(&year, &i)| {
                let (seq, calendar) = publications[i];
                HeldYear {
                    year,
                    name: calendar.name.clone(),
                    version: calendar.version.clone(),
                    published_seq: seq,
                }
            })
            .collect();
        let calendar = WorkingCalendar {
            name: latest.name.clone(),
            version: latest.version.clone(),
            source: latest.source.clone(),
            first_year,
            last_year,
            held_years: owner.keys().copied().collect(),
            weekday_holidays: holidays.iter().copied().filter(|d| !is_weekend(*d)).collect(),
            holidays,
            adjusted_working_days: listed.iter().filter(|(_, h)| !**h).map(|(d, _)| *d).collect(),
        };
        (calendar, held)
    }

    /// The 放假 dates, in order (weekend ones included).
    pub fn holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied()
    }

    /// The 调休上班 dates, in order.
    pub fn adjusted_working_days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.adjusted_working_days.iter().copied()
    }

    /// Holidays that fall on a Saturday or Sunday: allowed, but they change nothing.
    pub fn redundant_holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied().filter(|d| is_weekend(*d))
    }

    /// Whether `date` is a working day: an adjusted working day (调休上班) is; otherwise a holiday
    /// is not; otherwise Monday–Friday are and Saturday–Sunday are not.
    ///
    /// ```text
    /// 2026-01-02 Fri  元旦         → false
    /// 2026-01-04 Sun  调休上班     → true
    /// 2026-01-10 Sat               → false
    /// 2027-01-01 Fri  (not covered) → true: plain Monday–Friday outside the covered years
    /// ```
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.adjusted_working_days.contains(&date) {
            return true;
        }
        !is_weekend(date) && !self.weekday_holidays.contains(&date)
    }

    /// The n-th working day strictly after `start` (the start day never counts, working day or
    /// not); `start` itself when `n` is 0. This is the last day of an n-working-day limit.
    ///
    /// ```text
    /// received Fri 2026-01-02 (元旦), n = 5 → Thu 2026-01-08   (01-04 调休 Sunday counts)
    /// received Fri 2026-02-13,        n = 5 → Fri 2026-02-27   (02-14 调休 Saturday, then 春节)
    /// received Wed 2026-09-30,        n = 5 → Tue 2026-10-13   (国庆; 10-10 调休 Saturday counts)
    /// ```
    ///
    /// A day-by-day walk: fine for limits of a few hundred days. Saturates at the last date
    /// chrono can represent.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut d = start;
        let mut left = n;
        while left > 0 {
            match d.succ_opt() {
                Some(next) => d = next,
                None => return d,
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        d
    }

    /// The working days in `(from, to]`, negated when `to < from`:
    /// `working_days_between(s, add_working_days(s, n)) == n`.
    ///
    /// ```text
    /// (Fri 2026-01-02, Thu 2026-01-08] → 5
    /// (Thu 2026-01-08, Fri 2026-01-02] → -5
    /// (Fri 2026-03-06, Sun 2026-03-08] → 0
    /// (2025-12-31, 2026-12-31]         → 248 working days in 2026
    /// ```
    ///
    /// Computed arithmetically (weekday count plus range queries on the lists), so it is cheap
    /// for any distance.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        if to == from {
            return 0;
        }
        let weekdays = weekdays_through(to) - weekdays_through(from);
        let range = (std::ops::Bound::Excluded(from), std::ops::Bound::Included(to));
        let removed = self.weekday_holidays.range(range).count() as i64;
        let added = self.adjusted_working_days.range(range).count() as i64;
        weekdays - removed + added
    }

    /// The last day of a time limit of `limit_days + extension_days` working days counted from
    /// `start` (which does not count), where every working day inside a pause does not count
    /// either and so pushes the deadline back by one working day.
    ///
    /// `None` when an open pause (no `until`) starts before the limit is used up: the deadline
    /// is unknown until the clock restarts (use [`WorkingCalendar::deadline_as_of`] for the
    /// deadline if it restarted tomorrow). Also `None` past the last representable date.
    ///
    /// ```text
    /// start Mon 2026-03-02, limit 10                         → Mon 2026-03-16
    /// start Mon 2026-03-02, limit 10, extension 10           → Mon 2026-03-30
    /// start Mon 2026-03-02, limit 10, paused [03-05, 03-10)  → Thu 2026-03-19
    ///       (03-05, 03-06 and 03-09 were paused working days: three days later)
    /// start Mon 2026-03-02, limit 10, paused [03-05, open)   → None
    /// ```
    pub fn deadline(
        &self,
        start: NaiveDate,
        limit_days: u32,
        extension_days: u32,
        paused: &[PausedInterval],
    ) -> Option<NaiveDate> {
        let mut left = u64::from(limit_days) + u64::from(extension_days);
        let mut d = start;
        while left > 0 {
            d = d.succ_opt()?;
            if let Some(p) = paused.iter().find(|p| p.contains(d)) {
                // Skip the rest of this pause in one step; its days never count.
                d = p.until?.pred_opt()?;
                continue;
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        Some(d)
    }

    /// [`WorkingCalendar::deadline`] as it stands on `today`: an open pause is taken to end
    /// tomorrow (`today` itself counts as paused). `None` only past the last representable date.
    ///
    /// ```text
    /// start Mon 2026-03-02, limit 10, paused [03-05, open), today Tue 03-10 → Fri 2026-03-20
    /// ```
    pub fn deadline_as_of(
        &self,
        start: NaiveDate,
        limit_days: u32,
        extension_days: u32,
        paused: &[PausedInterval],
        today: NaiveDate,
    ) -> Option<NaiveDate> {
        let tomorrow = today.succ_opt()?;
        let closed: Vec<PausedInterval> = paused
            .iter()
            .map(|p| PausedInterval {
                from: p.from,
                until: Some(p.until.unwrap_or(tomorrow)),
            })
            .collect();
        self.deadline(start, limit_days, extension_days, &closed)
    }
}

/// Where one year of an accumulated calendar comes from ([`WorkingCalendar::accumulate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldYear {
    pub year: i32,
    /// The name and version of the publication the year comes from.
    pub name: String,
    pub version: String,
    /// The county event that published it; `None` for the built-in schedule.
    pub published_seq: Option<u64>,
}

/// A stretch of time when a case's clock stood still: `[from, until)`, or open (`until` is
/// `None`) while it still stands. The day the clock stopped does not count; `until`, the day it
/// restarted, does. An interval with `until ≤ from` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PausedInterval {
    pub from: NaiveDate,
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

impl PausedInterval {
    /// A pause that has ended: `[from, until)`.
    pub fn closed(from: NaiveDate, until: NaiveDate) -> Self {
        PausedInterval {
            from,
            until: Some(until),
        }
    }

    /// A pause still running since `from`.
    pub fn open(from: NaiveDate) -> Self {
        PausedInterval { from, until: None }
    }

    /// Whether the clock stood still on `date`.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && self.until.is_none_or(|u| date < u)
    }
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// Monday–Friday days from a fixed Monday up to and including `d` (day 1 of the common era,
/// 0001-01-01, was a Monday): only differences of this are meaningful.
fn weekdays_through(d: NaiveDate) -> i64 {
    let k = i64::from(d.num_days_from_ce());
    5 * k.div_euclid(7) + k.rem_euclid(7).min(5)
}

/// Best-effort line (1-based) of a problem: the first line, from the one holding `key` on, that
/// holds the date (or the key's own line when there is no date). Comments are ignored in TOML.
fn find_line(source: Source<'_>, key: &str, date: Option<NaiveDate>) -> Option<usize> {
    let code = |line: &str| -> String {
        if source.toml {
            line.split('#').next().unwrap_or("").to_owned()
        } else {
            line.to_owned()
        }
    };
    let quoted_key = format!("\"{key}\"");
    let mut lines = source.text.lines().enumerate().map(|(i, l)| (i + 1, code(l)));
    let (key_line, key_text) = lines.find(|(_, l)| {
        let t = l.trim_start();
        if source.toml {
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        } else {
            t.contains(&quoted_key)
        }
    })?;
    let Some(date) = date else {
        return Some(key_line);
    };
    let needle = date.format("%Y-%m-%d").to_string();
    if key_text.contains(&needle) {
        return Some(key_line);
    }
    lines.find(|(_, l)| l.contains(&needle)).map(|(n, _)| n)
}

/// One rule broken by a calendar file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarProblem {
    /// The file line (1-based) where the problem was found, when known.
    pub line: Option<usize>,
    /// The date concerned, if any.
    pub date: Option<NaiveDate>,
    pub message: String,
}

impl fmt::Display for CalendarProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a calendar could not be read or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The file is not valid TOML/JSON or does not have the calendar's shape (an unknown key, a
    /// missing one, a malformed date). The message carries the parser's line and column.
    #[error("the calendar file is not valid {format}: {message}")]
    Syntax { format: &'static str, message: String },
    /// The file parsed but breaks the calendar's rules; every problem found, one per line.
    #[error("{}", problems_text(.0))]
    Invalid(Vec<CalendarProblem>),
}

fn problems_text(problems: &[CalendarProblem]) -> String {
    let n = problems.len();
    let mut s = format!("{n} problem{} in the calendar", if n == 1 { "" } else { "s" });
    for p in problems {
        s.push('\n');
        s.push_str(&p.to_string());
    }
    s
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

    /// The obvious day loop, to check the arithmetic against.
    fn slow_between(cal: &WorkingCalendar, from: NaiveDate, to: NaiveDate) -> i64 {
        let (a, b, sign) = if to >= from { (from, to, 1) } else { (to, from, -1) };
        let n = a
            .iter_days()
            .skip(1)
            .take_while(|x| *x <= b)
            .filter(|x| cal.is_working_day(*x))
            .count();
        sign * n as i64
    }

    #[test]
    fn embedded_2026_file_loads_with_the_notice_dates() {
        let c = cal();
        assert_eq!(c.years(), (2026, 2026));
        assert_eq!(c.version(), "2026.1");
        assert_eq!(c.holidays().count(), 33);
        assert_eq!(
            c.adjusted_working_days().collect::<Vec<_>>(),
            vec![
                d(2026, 1, 4),
                d(2026, 2, 14),
                d(2026, 2, 28),
                d(2026, 5, 9),
                d(2026, 9, 20),
                d(2026, 10, 10)
            ]
        );
        // Weekdays named in the notice.
        assert_eq!(d(2026, 1, 1).weekday(), Weekday::Thu);
        assert_eq!(d(2026, 2, 15).weekday(), Weekday::Sun);
        assert_eq!(d(2026, 2, 23).weekday(), Weekday::Mon);
        assert_eq!(d(2026, 10, 7).weekday(), Weekday::Wed);
        // 01-03, 02-15, 02-21, 02-22, 04-04, 04-05, 05-02, 05-03, 06-20, 06-21, 09-26, 09-27, 10-03, 10-04.
        assert_eq!(c.redundant_holidays().count(), 14);
        assert_eq!(c.working_days_between(d(2025, 12, 31), d(2026, 12, 31)), 248);
    }

    #[test]
    fn working_days_across_a_tiaoxiu_weekend() {
        let c = cal();
        assert!(!c.is_working_day(d(2026, 1, 2)), "元旦, a Friday");
        assert!(!c.is_working_day(d(2026, 1, 3)), "元旦, a Saturday");
        assert!(c.is_working_day(d(2026, 1, 4)), "调休上班, a Sunday");
        assert!(c.is_working_day(d(2026, 1, 5)));
        assert!(!c.is_working_day(d(2026, 1, 10)), "an ordinary Saturday");
        // The documented example: received Friday 2026-01-02, 5 working days → Thursday 01-08.
        assert_eq!(c.add_working_days(d(2026, 1, 2), 5), d(2026, 1, 8));
        assert_eq!(c.add_working_days(d(2026, 1, 2), 1), d(2026, 1, 4));
        assert_eq!(c.add_working_days(d(2026, 1, 2), 0), d(2026, 1, 2));
        assert_eq!(c.working_days_between(d(2026, 1, 2), d(2026, 1, 8)), 5);
        assert_eq!(c.working_days_between(d(2026, 1, 8), d(2026, 1, 2)), -5);
        // 中秋 Fri 09-25..Sun 09-27 with the 国庆 调休 Sunday 09-20 before it.
        assert_eq!(c.add_working_days(d(2026, 9, 18), 5), d(2026, 9, 24));
        assert_eq!(c.add_working_days(d(2026, 9, 24), 1), d(2026, 9, 28));
    }

    #[test]
    fn working_days_across_chunjie() {
        let c = cal();
        for day in 15..=23 {
            assert!(!c.is_working_day(d(2026, 2, day)), "2026-02-{day} is 春节");
        }
        assert!(c.is_working_day(d(2026, 2, 14)) && c.is_working_day(d(2026, 2, 28)));
        // Received Friday 02-13: 02-14 (Sat, 调休) is day 1, then nothing until Tuesday 02-24.
        assert_eq!(c.add_working_days(d(2026, 2, 13), 5), d(2026, 2, 27));
        // A 5-day limit started the day before the holiday (Saturday 02-14, itself a working
        // day that does not count): 02-24, 25, 26, 27 and the 调休 Saturday 02-28.
        assert_eq!(c.add_working_days(d(2026, 2, 14), 5), d(2026, 2, 28));
        assert_eq!(c.add_working_days(d(2026, 2, 14), 1), d(2026, 2, 24));
        assert_eq!(c.working_days_between(d(2026, 2, 13), d(2026, 2, 24)), 2);
    }

    #[test]
    fn working_days_across_guoqing() {
        let c = cal();
        for day in 1..=7 {
            assert!(!c.is_working_day(d(2026, 10, day)), "2026-10-0{day} is 国庆");
        }
        assert!(c.is_working_day(d(2026, 9, 20)) && c.is_working_day(d(2026, 10, 10)));
        assert!(!c.is_working_day(d(2026, 10, 11)));
        // Wednesday 09-30 + 5: 10-08, 10-09, 10-10 (Sat, 调休), 10-12, 10-13.
        assert_eq!(c.add_working_days(d(2026, 9, 30), 5), d(2026, 10, 13));
        // 10 working days after Monday 09-28.
        assert_eq!(c.add_working_days(d(2026, 9, 28), 10), d(2026, 10, 16));
    }

    #[test]
    fn arithmetic_matches_the_day_loop() {
        let c = cal();
        let days: Vec<NaiveDate> = d(2025, 11, 20)
            .iter_days()
            .take_while(|x| *x <= d(2027, 1, 20))
            .collect();
        for (i, &a) in days.iter().enumerate().step_by(7) {
            for &b in days.iter().skip(i % 11).step_by(13) {
                assert_eq!(c.working_days_between(a, b), slow_between(&c, a, b), "{a} → {b}");
            }
            for n in [0, 1, 2, 5, 10, 20, 60] {
                assert_eq!(
                    c.working_days_between(a, c.add_working_days(a, n)),
                    i64::from(n),
                    "{a} + {n}"
                );
            }
        }
        let plain = WorkingCalendar::weekdays_only();
        assert_eq!(plain.working_days_between(d(1, 1, 1), d(1, 1, 8)), 5);
        assert_eq!(
            plain.working_days_between(d(-5, 3, 1), d(-5, 4, 1)),
            slow_between(&plain, d(-5, 3, 1), d(-5, 4, 1))
        );
    }

    #[test]
    fn outside_the_covered_years_it_is_plain_monday_to_friday() {
        let c = cal();
        assert!(c.covers(d(2026, 6, 1)));
        assert!(!c.covers(d(2027, 1, 1)));
        assert!(c.is_working_day(d(2027, 1, 1)), "a Friday, and 2027 is not covered");
        assert!(c.is_working_day(d(2025, 10, 1)), "a Wednesday, and 2025 is not covered");
        assert!(!c.is_working_day(d(2027, 1, 2)));
        // Crossing the edge of the covered years.
        assert_eq!(c.add_working_days(d(2026, 12, 31), 1), d(2027, 1, 1));
    }

    #[test]
    fn pauses_push_the_deadline_back() {
        let c = cal();
        let start = d(2026, 3, 2);
        assert_eq!(c.deadline(start, 10, 0, &[]), Some(d(2026, 3, 16)));
        assert_eq!(c.deadline(start, 10, 10, &[]), Some(d(2026, 3, 30)));
        assert_eq!(c.deadline(start, 0, 0, &[]), Some(start));
        // Paused Thursday 03-05 to Tuesday 03-10 exclusive: 03-05, 03-06, 03-09 do not count.
        let pause = PausedInterval::closed(d(2026, 3, 5), d(2026, 3, 10));
        assert_eq!(c.deadline(start, 10, 0, &[pause]), Some(d(2026, 3, 19)));
        // A pause over a weekend only costs nothing.
        let weekend = PausedInterval::closed(d(2026, 3, 7), d(2026, 3, 9));
        assert_eq!(c.deadline(start, 10, 0, &[weekend]), Some(d(2026, 3, 16)));
        // Overlapping and empty pauses.
        let overlap = PausedInterval::closed(d(2026, 3, 9), d(2026, 3, 11));
        let empty = PausedInterval::closed(d(2026, 3, 12), d(2026, 3, 12));
        assert_eq!(c.deadline(start, 10, 0, &[pause, overlap, empty]), Some(d(2026, 3, 20)));
        // A pause before the start or after the deadline changes nothing.
        let before = PausedInterval::closed(d(2026, 2, 1), d(2026, 3, 3));
        assert_eq!(c.deadline(start, 10, 0, &[before]), Some(d(2026, 3, 16)));
        let after = PausedInterval::closed(d(2026, 3, 17), d(2026, 4, 1));
        assert_eq!(c.deadline(start, 10, 0, &[after]), Some(d(2026, 3, 16)));
        // Still paused: unknown; as of today it is the deadline if the clock restarts tomorrow.
        let open = PausedInterval::open(d(2026, 3, 5));
        assert_eq!(c.deadline(start, 10, 0, &[open]), None);
        assert_eq!(
            c.deadline_as_of(start, 10, 0, &[open], d(2026, 3, 10)),
            Some(d(2026, 3, 20))
        );
        // A pause across 春节 only costs the working days in it (02-13, the 调休 02-14, 02-24):
        // without it Thursday 02-12 + 5 is 02-26; with it 02-25, 26, 27, the 调休 28 and 03-02.
        assert_eq!(c.deadline(d(2026, 2, 12), 5, 0, &[]), Some(d(2026, 2, 26)));
        let cny = PausedInterval::closed(d(2026, 2, 13), d(2026, 2, 25));
        assert_eq!(c.deadline(d(2026, 2, 12), 5, 0, &[cny]), Some(d(2026, 3, 2)));
    }

    /// A one-year calendar with these holidays and adjusted working days.
    fn year(y: i32, version: &str, holidays: &[NaiveDate], adjusted: &[NaiveDate]) -> WorkingCalendar {
        WorkingCalendar::new(
            format!("{y} 年"),
            version,
            y,
            y,
            holidays.iter().copied(),
            adjusted.iter().copied(),
        )
        .unwrap()
    }

    #[test]
    fn calendars_accumulate_by_year() {
        // 2026: Thursday 12-31 made a holiday; 2027: Friday 01-01 (元旦) a holiday and Saturday
        // 01-09 a working day.
        let y2026 = year(2026, "2026.1", &[d(2026, 12, 31)], &[]);
        let y2027 = year(2027, "2027.1", &[d(2027, 1, 1)], &[d(2027, 1, 9)]);
        let (both, held) = WorkingCalendar::accumulate([(Some(1), &y2026), (Some(2), &y2027)]);
        assert_eq!(both.held_years().collect::<Vec<_>>(), vec![2026, 2027]);
        assert_eq!(both.years(), (2026, 2027));
        assert!(both.covers(d(2026, 6, 1)) && both.covers(d(2027, 6, 1)) && !both.covers(d(2028, 1, 3)));
        assert_eq!(
            held.iter()
                .map(|h| (h.year, h.version.as_str(), h.published_seq))
                .collect::<Vec<_>>(),
            vec![(2026, "2026.1", Some(1)), (2027, "2027.1", Some(2))]
        );
        assert_eq!(both.version(), "2027.1", "named after the latest publication");
        // Counting from Wednesday 2026-12-30 across the year: 12-31 and 01-01 are holidays,
        // 01-02/03 a weekend; Monday 01-04 is the first working day, and the 调休 Saturday 01-09
        // is the sixth.
        assert!(!both.is_working_day(d(2026, 12, 31)) && !both.is_working_day(d(2027, 1, 1)));
        assert_eq!(both.add_working_days(d(2026, 12, 30), 1), d(2027, 1, 4));
        assert_eq!(both.add_working_days(d(2026, 12, 30), 6), d(2027, 1, 9));
        assert_eq!(both.working_days_between(d(2026, 12, 30), d(2027, 1, 9)), 6);
        assert_eq!(both.deadline(d(2026, 12, 30), 5, 1, &[]), Some(d(2027, 1, 9)));
        // Either alone knows only its own year.
        assert_eq!(y2026.add_working_days(d(2026, 12, 30), 1), d(2027, 1, 1));
        assert_eq!(y2027.add_working_days(d(2026, 12, 30), 1), d(2026, 12, 31));

        // Republishing 2026 replaces 2026 only: 12-31 is a working day again, 2027 unchanged.
        let y2026b = year(2026, "2026.2", &[d(2026, 12, 24)], &[]);
        let (again, held) = WorkingCalendar::accumulate([(Some(1), &y2026), (Some(2), &y2027), (Some(3), &y2026b)]);
        assert!(again.is_working_day(d(2026, 12, 31)) && !again.is_working_day(d(2026, 12, 24)));
        assert!(!again.is_working_day(d(2027, 1, 1)) && again.is_working_day(d(2027, 1, 9)));
        assert_eq!(
            held.iter().map(|h| (h.year, h.version.as_str())).collect::<Vec<_>>(),
            vec![(2026, "2026.2"), (2027, "2027.1")]
        );
        assert_eq!(again.version(), "2026.2");
        // The same publications give the same calendar whatever was superseded.
        let (direct, _) = WorkingCalendar::accumulate([(Some(2), &y2027), (Some(3), &y2026b)]);
        assert_eq!(
            direct.holidays().collect::<Vec<_>>(),
            again.holidays().collect::<Vec<_>>()
        );
        assert_eq!(
            direct.adjusted_working_days().collect::<Vec<_>>(),
            again.adjusted_working_days().collect::<Vec<_>>()
        );
        // A file covering two years replaces both; nothing published, nothing held.
        let span = WorkingCalendar::new("跨年", "x.1", 2026, 2027, [], []).unwrap();
        let (spanned, held) = WorkingCalendar::accumulate([(Some(1), &y2026), (Some(2), &y2027), (Some(4), &span)]);
        assert!(spanned.is_working_day(d(2026, 12, 31)) && spanned.is_working_day(d(2027, 1, 1)));
        assert!(held.iter().all(|h| h.version == "x.1"));
        let (none, held) = WorkingCalendar::accumulate([]);
        assert!(held.is_empty() && none.held_years().next().is_none());
    }

    #[test]
    fn a_date_next_to_the_covered_years_belongs_to_the_file_that_lists_it() {
        // The 2019 notice made Saturday 2018-12-29 a working day and 12-30/31 holidays; a 2018
        // file published before it knew nothing of them.
        let y2018 = year(2018, "2018.1", &[d(2018, 10, 1)], &[]);
        let y2019 = WorkingCalendar::new(
            "2019",
            "2019.1",
            2019,
            2019,
            [d(2018, 12, 31), d(2019, 1, 1)],
            [d(2018, 12, 29)],
        )
        .unwrap();
        let (cal, _) = WorkingCalendar::accumulate([(Some(1), &y2018), (Some(2), &y2019)]);
        assert!(cal.is_working_day(d(2018, 12, 29)) && !cal.is_working_day(d(2018, 12, 31)));
        assert!(!cal.is_working_day(d(2018, 10, 1)), "2018's own holidays stay");
        // Republishing 2019 without the December dates takes them away with it.
        let y2019b = year(2019, "2019.2", &[d(2019, 1, 1)], &[]);
        let (cal, _) = WorkingCalendar::accumulate([(Some(1), &y2018), (Some(2), &y2019), (Some(3), &y2019b)]);
        assert!(!cal.is_working_day(d(2018, 12, 29)) && cal.is_working_day(d(2018, 12, 31)));
        // Where two years held speak of one date, the later publication says what it is.
        let y2018b = year(2018, "2018.2", &[d(2018, 12, 28), d(2018, 12, 29)], &[]);
        let y2019c = WorkingCalendar::new("2019", "2019.3", 2019, 2019, [], [d(2018, 12, 29)]).unwrap();
        let (cal, _) = WorkingCalendar::accumulate([(Some(1), &y2019c), (Some(2), &y2018b)]);
        assert!(!cal.is_working_day(d(2018, 12, 28)) && !cal.is_working_day(d(2018, 12, 29)));
        let (cal, _) = WorkingCalendar::accumulate([(Some(1), &y2018b), (Some(2), &y2019c)]);
        assert!(cal.is_working_day(d(2018, 12, 29)));
        // The result is itself a valid calendar file.
        let back = WorkingCalendar::parse_json(&cal.to_json().unwrap()).unwrap();
        assert_eq!(back.holidays().collect::<Vec<_>>(), cal.holidays().collect::<Vec<_>>());
    }

    #[test]
    fn rejects_a_date_both_holiday_and_working() {
        let text = "name = \"x\"\nversion = \"1\"\nfirst_year = 2026\nlast_year = 2026\n\
                    holidays = [\"2026-01-03\"]\nadjusted_working_days = [\n  \"2026-01-03\",\n]\n";
        let err = WorkingCalendar::parse_toml(text).unwrap_err();
        let CalendarError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(7));
        assert_eq!(problems[0].date, Some(d(2026, 1, 3)));
        assert!(err.to_string().contains("line 7: 2026-01-03 is listed both"), "{err}");
    }

    #[test]
    fn rejects_an_adjusted_working_day_on_a_weekday_and_dates_outside_the_years() {
        let text = "name = \"x\"\nversion = \"1\"\nfirst_year = 2026\nlast_year = 2026\n\
                    # 2026-01-05 in a comment is not the line\n\
                    adjusted_working_days = [\"2026-01-04\", # fine\n  \"2026-01-05\"]\n\
                    holidays = [\"2028-05-01\"]\n";
        let err = WorkingCalendar::parse_toml(text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("2 problems in the calendar"), "{msg}");
        assert!(
            msg.contains("line 7: adjusted working day (调休上班) 2026-01-05 is a Monday"),
            "{msg}"
        );
        assert!(
            msg.contains("line 8: holiday 2028-05-01 lies outside the covered years 2026–2026"),
            "{msg}"
        );
        // The month next to the covered years is allowed (cross-year 元旦 schedules).
        let ok = WorkingCalendar::new(
            "x",
            "1",
            2019,
            2019,
            [d(2018, 12, 30), d(2018, 12, 31)],
            [d(2018, 12, 29)],
        );
        assert!(ok.unwrap().is_working_day(d(2018, 12, 29)));
        // Years.
        let err = WorkingCalendar::new("", "1", 2027, 2026, [], [])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("name is empty") && err.contains("first_year 2027 is after last_year 2026"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let bad_date =
            "name = \"x\"\nversion = \"1\"\nfirst_year = 2026\nlast_year = 2026\nholidays = [\"2026-02-30\"]\n";
        let err = WorkingCalendar::parse_toml(bad_date).unwrap_err().to_string();
        assert!(
            err.contains("line 5") && err.contains("\"2026-02-30\" is not a calendar day"),
            "{err}"
        );
        let shape = "name = \"x\"\nversion = \"1\"\nfirst_year = 2026\nlast_year = 2026\nholidays = [\"2026/01/01\"]\n";
        let err = WorkingCalendar::parse_toml(shape).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("YYYY-MM-DD"), "{err}");
        let unknown = "name = \"x\"\nversion = \"1\"\nfirst_year = 2026\nlast_year = 2026\nholiday = []\n";
        let err = WorkingCalendar::parse_toml(unknown).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("holiday"), "{err}");
        let json = "{\n \"name\": \"x\", \"version\": \"1\", \"first_year\": 2026, \"last_year\": 2026,\n \"holidays\": [\"2026-13-01\"]\n}";
        let err = WorkingCalendar::parse_json(json).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("JSON"), "{err}");
    }

    #[test]
    fn bare_toml_dates_and_round_trips() {
        let text = "name = \"x\"\nversion = \"1\"\nfirst_year = 2026\nlast_year = 2026\n\
                    holidays = [2026-01-01, 2026-01-02]\nadjusted_working_days = [2026-01-04]\n";
        let c = WorkingCalendar::parse_toml(text).unwrap();
        assert!(!c.is_working_day(d(2026, 1, 2)) && c.is_working_day(d(2026, 1, 4)));
        let with_time =
            "name = \"x\"\nversion = \"1\"\nfirst_year = 2026\nlast_year = 2026\nholidays = [2026-01-01T08:00:00]\n";
        let err = WorkingCalendar::parse_toml(with_time).unwrap_err().to_string();
        assert!(err.contains("time of day"), "{err}");

        let china = cal();
        assert_eq!(WorkingCalendar::parse_toml(&china.to_toml().unwrap()).unwrap(), china);
        let json = china.to_json().unwrap();
        assert_eq!(WorkingCalendar::parse_json(&json).unwrap(), china);
        // Serde goes through the same validation.
        assert_eq!(serde_json::from_str::<WorkingCalendar>(&json).unwrap(), china);
        let bad = json.replace("2026-01-04", "2026-01-05");
        let err = serde_json::from_str::<WorkingCalendar>(&bad).unwrap_err().to_string();
        assert!(err.contains("2026-01-05 is a Monday"), "{err}");
        // JSON problems are located too.
        let err = WorkingCalendar::parse_json(&bad).unwrap_err();
        let CalendarError::Invalid(problems) = err else {
            panic!()
        };
        let line = problems[0].line.unwrap();
        assert!(bad.lines().nth(line - 1).unwrap().contains("2026-01-05"));
    }
}
