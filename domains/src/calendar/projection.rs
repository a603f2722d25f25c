//! The working-day calendar a node counts on, and the node's time settings.
//!
//! This module owns:
//! - folding `CalendarPublished` events into the `calendars` table and reading the one in force
//!   ([`Store::calendar`]): the latest the county published, else the built-in national 2026
//!   schedule ([`WorkingCalendar::china_2026`]);
//! - publishing one at the county ([`Store::publish_calendar`]);
//! - the conversions between [`WorkingCalendar`] and `calendar.proto`;
//! - the node's time settings: the configurable [`WarningThresholds`]
//!   ([`Store::set_warning_thresholds`]) and the county's supervision interval.
//!
//! "Latest" is by the county's own sequence number: only the county authors calendars and its
//! events reach every node in the order it authored them, so every node ends up on the same one.

use std::sync::{Arc, RwLock};

use tongban_proto::v1::{self as pb, EventKind, RouteClass, event_body::Body};

use crate::calendar::WorkingCalendar;
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
    pub calendar: WorkingCalendar,
    /// The sequence number of the county event that published it; `None` for the built-in one.
    pub published_seq: Option<u64>,
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
/// and returns it, now in force. A calendar that does not validate is refused (quarantined at a
/// replica).
pub(crate) async fn fold_published(
    tx: &mut WriteTx,
    event: &CheckedEvent,
    body: &pb::CalendarPublished,
) -> Result<Result<CalendarInForce, String>, StoreError> {
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
    Ok(Ok(CalendarInForce {
        calendar,
        published_seq: Some(event.event.seq),
    }))
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
            Ok(match fold_published(cx.tx, event, body).await? {
                Ok(in_force) => {
                    cx.states.put(Arc::new(in_force));
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
        None => Arc::new(CalendarInForce {
            calendar: built_in(),
            published_seq: None,
        }),
    }
}

/// The calendar in force, parsed once: every case step and warning list needs it, and parsing
/// the stored JSON (or the embedded TOML) each time cost more than the step itself. Keyed by the
/// stored text, not the sequence number alone, so a publication rolled back and replaced under
/// the same number can never be served from here.
#[derive(Default)]
pub(crate) struct CalendarCache(std::sync::Mutex<Option<(LatestRow, Arc<CalendarInForce>)>>);

/// The newest `calendars` row: its sequence number and JSON; `None` when none was published.
type LatestRow = Option<(i64, String)>;

impl CalendarCache {
    fn lookup(&self, row: LatestRow) -> Result<Arc<CalendarInForce>, StoreError> {
        let mut cached = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((key, hit)) = cached.as_ref()
            && *key == row
        {
            return Ok(hit.clone());
        }
        let parsed = Arc::new(match &row {
            None => CalendarInForce {
                calendar: built_in(),
                published_seq: None,
            },
            Some((seq, json)) => CalendarInForce {
                calendar: serde_json::from_str(json)
                    .map_err(|e| StoreError::Corrupt(format!("calendar {seq}: {e}")))?,
                published_seq: Some(*seq as u64),
            },
        });
        *cached = Some((row, parsed.clone()));
        Ok(parsed)
    }
}

const LATEST: &str = "SELECT published_seq, calendar FROM calendars ORDER BY published_seq DESC LIMIT 1";

/// The calendar in force inside a write transaction (sees a calendar folded earlier in it).
pub(crate) async fn in_force_tx(tx: &mut WriteTx, cache: &CalendarCache) -> Result<Arc<CalendarInForce>, StoreError> {
    let row: LatestRow = with_tx!(tx, conn => sqlx::query_as(LATEST).fetch_optional(conn).await)?;
    cache.lookup(row)
}

/// The calendar in force as stored (the writer's starting point when a store opens).
pub(crate) async fn load_in_force(pool: &Pool, cache: &CalendarCache) -> Result<Arc<CalendarInForce>, StoreError> {
    let row: LatestRow = with_pool!(pool, conn => sqlx::query_as(LATEST).fetch_optional(conn).await)?;
    cache.lookup(row)
}

impl Store {
    /// The calendar this node counts on now.
    pub async fn calendar(&self) -> Result<Arc<CalendarInForce>, StoreError> {
        let row: LatestRow = with_pool!(self.pool(), conn => sqlx::query_as(LATEST).fetch_optional(conn).await)?;
        self.calendar_cache.lookup(row)
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
}
