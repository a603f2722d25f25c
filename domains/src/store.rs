//! The node's store as the domains see it: the engine's [`EventLog`] with every domain's
//! projection registered, plus the node's domain settings and caches (warning thresholds, the
//! calendar in force, the day's receipt numbers). Each domain's queries and commands are
//! `impl Store` blocks in its own `projection.rs`; the log's own operations (author, links,
//! alarms, counts, the clock) are reached through `Deref`. The domains' public types are
//! re-exported here, so a caller of the store names one module.
//!
//! The registration order is the order folds depend on: the calendar before the cases (case
//! folds count days on the calendar in force), the cases before oversight (the seal register
//! reads what a step decided).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Mutex;

pub use crate::calendar::projection::{CalendarInForce, calendar_from_wire, calendar_to_wire};
pub use crate::case::projection::{BadCaseRef, CaseCursor, CaseError, CaseFilter, CasePage, CaseRef};
pub use crate::case::supervision::{CaseWarning, Supervision, SupervisionError, WarningFilter, WarningList};
pub use crate::catalogue::projection::{CatalogueHead, PublishOutcome, VersionRow};
pub use crate::custody::model::{Anomaly, Whereabouts};
pub use crate::custody::projection::{CustodyError, MAX_SCANS_PER_UPLOAD, ScanResult, check_scan};
pub use crate::oversight::projection::{
    DEFAULT_RATING_DAYS, MetricsRow, OversightSummary, RECTIFICATION_WORKING_DAYS, RatingMetrics, Rectification,
    RectificationError, SealEntry, SealFilter,
};
pub use tongban_engine::log::{
    ApplyReport, Backend, DomainState, DomainStates, EventLog, FoldContext, FoldOutcome, LinkCursor, LinkRole,
    LinkTotals, LogTuning, Pool, Projection, ProjectionFuture, Projections, StoreError, StoreLocation, WriteTx,
    value_rows,
};

use crate::calendar::projection::{CalendarCache, CalendarProjection, SharedTime};
use crate::calendar::{Clock, SystemClock};
use crate::case::projection::CaseProjection;
use crate::catalogue::projection::CatalogueProjection;
use crate::custody::projection::CustodyProjection;
use crate::ids::NodeId;
use crate::oversight::projection::OversightProjection;
use crate::probe::ProbeProjection;
use crate::staff::projection::StaffProjection;

/// One node's store. Cheap to share behind an `Arc`.
pub struct Store {
    log: Arc<EventLog>,
    // The next receipt number of the day (case/projection.rs).
    pub(crate) receipt_counter: Mutex<Option<(chrono::NaiveDate, u32)>>,
    // The calendar in force, parsed once per publication (calendar/projection.rs).
    pub(crate) calendar_cache: Arc<CalendarCache>,
    // The warning thresholds and the supervision scan interval (calendar/projection.rs); shared
    // with the case projection, which computes warning columns with the thresholds.
    pub(crate) time: Arc<SharedTime>,
    // How often the node records default ratings, in ms (oversight/projection.rs).
    pub(crate) rating_scan_ms: AtomicU64,
}

impl Deref for Store {
    type Target = EventLog;

    fn deref(&self) -> &EventLog {
        &self.log
    }
}

/// Every domain's projection, sharing the node's time settings and calendar cache.
fn projections(time: &Arc<SharedTime>, calendar_cache: &Arc<CalendarCache>) -> Projections {
    Projections::default()
        .register(Arc::new(CatalogueProjection))
        .register(Arc::new(CalendarProjection {
            cache: calendar_cache.clone(),
        }))
        .register(Arc::new(CaseProjection { time: time.clone() }))
        .register(Arc::new(OversightProjection))
        .register(Arc::new(CustodyProjection))
        .register(Arc::new(StaffProjection))
        .register(Arc::new(ProbeProjection))
}

impl Store {
    /// Opens (creating if needed) the store of `node` with every domain registered, on the
    /// machine's clock and middle-sized tuning (tools and tests; nodes open through their tier).
    pub async fn open(location: &StoreLocation, node: &NodeId) -> Result<Arc<Store>, StoreError> {
        Store::open_on(location, node, Arc::new(SystemClock), LogTuning::default()).await
    }

    /// Opens the store of `node` on `clock`: the one clock the node's HLC, event times and
    /// every business time (deadlines, warnings, ratings, custody waits) are read from.
    pub async fn open_on(
        location: &StoreLocation,
        node: &NodeId,
        clock: Arc<dyn Clock>,
        tuning: LogTuning,
    ) -> Result<Arc<Store>, StoreError> {
        let time = Arc::new(SharedTime::default());
        let calendar_cache = Arc::new(CalendarCache::default());
        let projections = projections(&time, &calendar_cache);
        let log = EventLog::open(location, node, projections, clock, tuning).await?;
        Ok(Arc::new(Store {
            log,
            receipt_counter: Mutex::new(None),
            calendar_cache,
            time,
            rating_scan_ms: AtomicU64::new(crate::oversight::projection::DEFAULT_RATING_SCAN_MS),
        }))
    }

    /// The engine's log under this store (the sync links run on it).
    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }
}
