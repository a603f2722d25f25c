//! The working-day calendar a node counts on, and the node's time settings.
//!
//! This module owns:
//! - folding `CalendarPublished` events into the `calendars` table and reading the one in force
//!   ([`Store::calendar`]): accumulated by year ([`WorkingCalendar::accumulate`]) over the
//!   built-in national 2026 schedule ([`WorkingCalendar::china_2026`]) and every calendar the
//!   county published, in order, so each year comes from the latest publication covering it;
//! - publishing one at the county ([`Store::publish_calendar`]);
//! - the conversions between [`WorkingCalendar`] and `calendar.proto`;
//! - the node's time settings: the configurable [`WarningThresholds`]
//!   ([`Store::set_warning_thresholds`]) and the county's supervision interval.
//!
//! "Latest" is by the county's own sequence number: only the county authors calendars and its
//! events reach every node in the order it authored them, so every node folds the same
//! publications in the same order and ends up on the same calendar.

use std::sync::{Arc, RwLock};

use tongban_proto::v1::{self as pb, EventKind, RouteClass, event_body::Body};

use crate::calendar::{HeldYear, WorkingCalendar};
use crate::case::warnings::WarningThresholds;
use crate::event::{CheckedEvent, EventError, NewEvent};
use crate::ids::Tier;
use crate::pki::Principal;
use crate::store::{
    Backend, DomainStates, FoldContext, FoldOutcome, Pool, Projection, ProjectionFuture, Store, StoreError, WriteTx,
};
use crate::{with_pool, with_tx};

/// The calendar a node counts on now, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarInForce {
    /// Every year held, accumulated: named and versioned after the latest publication.
    pub calendar: WorkingCalendar,
    /// The sequence number of the county's latest calendar event; `None` while only the built-in
    /// schedule is in force.
    pub published_seq: Option<u64>,
    /// The years held, in order, each with the publication it comes from.
    pub years: Vec<HeldYear>,
}

impl CalendarInForce {
    /// The built-in schedule, and on it every publication in `published` (oldest first).
    fn accumulate(published: &[(u64, WorkingCalendar)]) -> CalendarInForce {
        let base = built_in();
        let (calendar, years) = WorkingCalendar::accumulate(
            std::iter::once((None, &base)).chain(published.iter().map(|(seq, c)| (Some(*seq), c))),
        );
        CalendarInForce {
            calendar,
            published_seq: published.last().map(|(seq, _)| *seq),
            years,
        }
    }
}

/// The node's time settings: the warning thresholds and how often the county scans for red
/// cases. (The clock itself is the log's: [`EventLog::now_ms`](crate::store::EventLog::now_ms).)
pub(crate) struct TimeSettings {
    thresholds: WarningThresholds,
    supervision_every: std::time::Duration,
}

impl TimeSettings {
    pub(crate) fn thresholds(&self) -> WarningThresholds {
        self.thresholds
    }
}

impl Default for TimeSettings {
    fn default() -> Self {
        TimeSettings {
            thresholds: WarningThresholds::default(),
            supervision_every: DEFAULT_SUPERVISION_EVERY,
        }
    }
}

/// How often the county scans for red cases unless configured otherwise.
pub const DEFAULT_SUPERVISION_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

pub(crate) type SharedTime = RwLock<TimeSettings>;

/// The built-in calendar: the embedded 2026 schedule, or plain Monday–Friday should it ever
/// fail to parse (it is tested not to).
fn built_in() -> WorkingCalendar {
    WorkingCalendar::china_2026().unwrap_or_else(|_| WorkingCalendar::weekdays_only())
}

/// The event body publishing `calendar`.
pub fn calendar_to_wire(calendar: &WorkingCalendar) -> pb::CalendarPublished {
    let (first_year, last_year) = calendar.years();
    let iso = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    pb::CalendarPublished {
        name: calendar.name().to_owned(),
        version: calendar.version().to_owned(),
        source: calendar.source().to_owned(),
        first_year,
        last_year,
        holidays: calendar.holidays().map(iso).collect(),
        adjusted_working_days: calendar.adjusted_working_days().map(iso).collect(),
    }
}

/// The calendar an event body publishes, validated exactly like a calendar file.
pub fn calendar_from_wire(body: &pb::CalendarPublished) -> Result<WorkingCalendar, String> {
    // Through the file form, so a published calendar passes the same checks as one read from disk.
    let file = serde_json::json!({
        "name": body.name,
        "version": body.version,
        "source": body.source,
        "first_year": body.first_year,
        "last_year": body.last_year,
        "holidays": body.holidays,
        "adjusted_working_days": body.adjusted_working_days,
    });
    WorkingCalendar::parse_json(&file.to_string()).map_err(|e| e.to_string())
}

/// Folds a `CalendarPublished`: stores the calendar under the county event's sequence number
/// and returns the calendar now in force (the years it covers replaced, the others kept). A
/// calendar that does not validate is refused (quarantined at a replica).
pub(crate) async fn fold_published(
    tx: &mut WriteTx,
    cache: &CalendarCache,
    event: &CheckedEvent,
    body: &pb::CalendarPublished,
) -> Result<Result<Arc<CalendarInForce>, String>, StoreError> {
    let calendar = match calendar_from_wire(body) {
        Ok(calendar) => calendar,
        Err(e) => return Ok(Err(format!("published calendar is not valid: {e}"))),
    };
    let json = serde_json::to_string(&calendar).map_err(|e| StoreError::Corrupt(format!("calendar: {e}")))?;
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO calendars (published_seq, name, version, published_ms, calendar) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event.event.seq as i64)
        .bind(calendar.name())
        .bind(calendar.version())
        .bind(crate::hlc::physical_ms(event.event.hlc) as i64)
        .bind(json.as_str())
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(Ok(in_force_tx(tx, cache).await?))
}

/// The calendar's projection: publications from the county into `calendars`; its writer state
/// is the calendar in force (`Arc<CalendarInForce>`), which case folds count their days on.
pub(crate) struct CalendarProjection {
    pub(crate) cache: Arc<CalendarCache>,
}

impl Projection for CalendarProjection {
    fn name(&self) -> &'static str {
        "calendar"
    }

    fn kinds(&self) -> &'static [EventKind] {
        &[EventKind::CalendarPublished]
    }

    // Like the catalogue: one county-wide calendar, so only the county says which days count.
    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        crate::event::check_county_broadcast(event, "the working-day calendar")
    }

    fn migrations(&self, backend: Backend) -> Option<sqlx::migrate::Migrator> {
        Some(match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/calendar/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/calendar/postgres"),
        })
    }

    fn load<'a>(&'a self, pool: &'a Pool, states: &'a mut DomainStates) -> ProjectionFuture<'a, ()> {
        Box::pin(async move {
            states.put(load_in_force(pool, &self.cache).await?);
            Ok(())
        })
    }

    fn fold<'a>(&'a self, cx: &'a mut FoldContext<'_>, event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome> {
        Box::pin(async move {
            let Body::CalendarPublished(body) = &event.body else {
                return Ok(FoldOutcome::refused("not a calendar publication"));
            };
            Ok(match fold_published(cx.tx, &self.cache, event, body).await? {
                Ok(in_force) => {
                    cx.states.put(in_force);
                    FoldOutcome::Applied
                }
                Err(reason) => FoldOutcome::Refused(reason),
            })
        })
    }
}

/// The calendar in force in the writer state: the one the calendar projection loaded or
/// folded last, or the built-in one on a store without it.
pub(crate) fn in_force(states: &DomainStates) -> Arc<CalendarInForce> {
    match states.get::<Arc<CalendarInForce>>() {
        Some(in_force) => in_force.clone(),
        None => Arc::new(CalendarInForce::accumulate(&[])),
    }
}

/// The calendar in force, parsed once: every case step and warning list needs it, and parsing
/// the stored JSON (or the embedded TOML) each time cost more than the step itself. Keyed by the
/// number of publications and the newest one's stored text, not its sequence number alone, so a
/// publication rolled back and replaced under the same number can never be served from here.
#[derive(Default)]
pub(crate) struct CalendarCache(std::sync::Mutex<Option<(Head, Arc<CalendarInForce>)>>);

/// The newest `calendars` row: its sequence number, its JSON and how many rows there are;
/// `None` when none was published.
type Head = Option<(i64, String, i64)>;

/// Every `calendars` row, oldest first: sequence number and JSON.
type Rows = Vec<(i64, String)>;

impl CalendarCache {
    fn hit(&self, head: &Head) -> Option<Arc<CalendarInForce>> {
        let cached = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match cached.as_ref() {
            Some((key, hit)) if key == head => Some(hit.clone()),
            _ => None,
        }
    }

    fn build(&self, head: Head, rows: Rows) -> Result<Arc<CalendarInForce>, StoreError> {
        let mut published = Vec::with_capacity(rows.len());
        for (seq, json) in rows {
            let calendar: WorkingCalendar =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("calendar {seq}: {e}")))?;
            published.push((seq as u64, calendar));
        }
        let parsed = Arc::new(CalendarInForce::accumulate(&published));
        let mut cached = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *cached = Some((head, parsed.clone()));
        Ok(parsed)
    }
}

const HEAD: &str = "SELECT published_seq, calendar, (SELECT COUNT(*) FROM calendars) FROM calendars \
                    ORDER BY published_seq DESC LIMIT 1";
const ALL: &str = "SELECT published_seq, calendar FROM calendars ORDER BY published_seq";
const ALL_UPTO: &str = "SELECT published_seq, calendar FROM calendars WHERE published_seq <= $1 ORDER BY published_seq";

/// The calendar in force inside a write transaction (sees a calendar folded earlier in it).
pub(crate) async fn in_force_tx(tx: &mut WriteTx, cache: &CalendarCache) -> Result<Arc<CalendarInForce>, StoreError> {
    let head: Head = with_tx!(tx, conn => sqlx::query_as(HEAD).fetch_optional(conn).await)?;
    if let Some(hit) = cache.hit(&head) {
        return Ok(hit);
    }
    let rows: Rows = with_tx!(tx, conn => sqlx::query_as(ALL).fetch_all(conn).await)?;
    cache.build(head, rows)
}

/// The calendar in force as stored (the writer's starting point when a store opens).
pub(crate) async fn load_in_force(pool: &Pool, cache: &CalendarCache) -> Result<Arc<CalendarInForce>, StoreError> {
    let head: Head = with_pool!(pool, conn => sqlx::query_as(HEAD).fetch_optional(conn).await)?;
    if let Some(hit) = cache.hit(&head) {
        return Ok(hit);
    }
    // Up to the head just read, so what is built is exactly what the key names.
    let upto = head.as_ref().map_or(-1, |(seq, _, _)| *seq);
    let rows: Rows = with_pool!(pool, conn => sqlx::query_as(ALL_UPTO).bind(upto).fetch_all(conn).await)?;
    cache.build(head, rows)
}

impl Store {
    /// The calendar this node counts on now.
    pub async fn calendar(&self) -> Result<Arc<CalendarInForce>, StoreError> {
        load_in_force(self.pool(), &self.calendar_cache).await
    }

    /// Publishes `calendar` from the county down the whole tree, authored by `principal`.
    /// Refused below the county.
    pub async fn publish_calendar(
        &self,
        calendar: &WorkingCalendar,
        principal: &Principal,
    ) -> Result<CalendarInForce, StoreError> {
        if self.node().tier() != Tier::County {
            return Err(StoreError::Refused(format!(
                "the working-day calendar is published at the county; {} is a {}",
                self.node(),
                self.node().tier()
            )));
        }
        self.author(vec![NewEvent {
            principal: principal.to_string(),
            subject: "calendar".to_owned(),
            route_key: self.node().clone(),
            route_class: RouteClass::Down,
            body: Body::CalendarPublished(calendar_to_wire(calendar)),
        }])
        .await?;
        Ok(self.calendar().await?.as_ref().clone())
    }

    /// Replaces the warning thresholds (from the `[warnings]` configuration).
    pub fn set_warning_thresholds(&self, thresholds: WarningThresholds) {
        if let Ok(mut time) = self.time.write() {
            time.thresholds = thresholds;
        }
    }

    /// How often the county scans for red cases to open supervision records
    /// ([`Store::scan_supervision`]); read before every scan, so a change applies from the next.
    pub fn set_supervision_interval(&self, every: std::time::Duration) {
        if let Ok(mut time) = self.time.write() {
            time.supervision_every = every.max(std::time::Duration::from_secs(1));
        }
    }

    /// See [`Store::set_supervision_interval`].
    pub fn supervision_interval(&self) -> std::time::Duration {
        self.time
            .read()
            .map(|t| t.supervision_every)
            .unwrap_or(DEFAULT_SUPERVISION_EVERY)
    }

    /// The warning thresholds in force.
    pub fn warning_thresholds(&self) -> WarningThresholds {
        self.time.read().map(|t| t.thresholds).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn calendars_round_trip_through_the_wire() {
        let cal = WorkingCalendar::china_2026().unwrap();
        let back = calendar_from_wire(&calendar_to_wire(&cal)).unwrap();
        assert_eq!(back, cal);
        let mut bad = calendar_to_wire(&cal);
        bad.adjusted_working_days.push("2026-03-04".into()); // a Wednesday
        assert!(calendar_from_wire(&bad).unwrap_err().contains("Wednesday"));
    }

    fn day(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[tokio::test]
    async fn publications_accumulate_by_year_and_survive_a_restart() {
        use crate::ids::NodeId;
        use crate::store::StoreLocation;
        let dir = tempfile::tempdir().unwrap();
        let county = NodeId::new("441424").unwrap();
        let location = StoreLocation::in_data_dir(dir.path(), &county);
        let store = Store::open(&location, &county).await.unwrap();
        let admin = Principal::operator(county.clone(), "admin").unwrap();
        let built_in = store.calendar().await.unwrap();
        assert_eq!(built_in.published_seq, None);
        assert_eq!(built_in.years.len(), 1, "the built-in 2026 schedule");

        let y2026 = WorkingCalendar::new("2026", "2026.9", 2026, 2026, [day(2026, 12, 31)], []).unwrap();
        let y2027 = WorkingCalendar::new("2027", "2027.1", 2027, 2027, [day(2027, 1, 1)], []).unwrap();
        store.publish_calendar(&y2026, &admin).await.unwrap();
        let both = store.publish_calendar(&y2027, &admin).await.unwrap();
        let versions = |c: &CalendarInForce| -> Vec<(i32, String)> {
            c.years.iter().map(|y| (y.year, y.version.clone())).collect()
        };
        assert_eq!(versions(&both), vec![(2026, "2026.9".into()), (2027, "2027.1".into())]);
        // Across the year boundary on both: 12-31 and 01-01 off, Monday 2027-01-04 the first.
        assert_eq!(both.calendar.add_working_days(day(2026, 12, 30), 1), day(2027, 1, 4));
        // The built-in 2026 holidays are gone with 2026 republished: 国庆 counts again.
        assert!(both.calendar.is_working_day(day(2026, 10, 8)));

        let y2026b = WorkingCalendar::new("2026", "2026.10", 2026, 2026, [], []).unwrap();
        let again = store.publish_calendar(&y2026b, &admin).await.unwrap();
        assert_eq!(
            versions(&again),
            vec![(2026, "2026.10".into()), (2027, "2027.1".into())]
        );
        assert!(again.calendar.is_working_day(day(2026, 12, 31)));
        assert!(!again.calendar.is_working_day(day(2027, 1, 1)), "2027 stays");
        drop(store);

        let reopened = Store::open(&location, &county).await.unwrap();
        assert_eq!(*reopened.calendar().await.unwrap(), again);
    }
}
