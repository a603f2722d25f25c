//! The domains a node runs, registered with the store's engine in the order their folds depend
//! on: the calendar before the cases (case folds count days on the calendar in force), the cases
//! before oversight (the seal register reads what a step decided).

use std::sync::Arc;

use super::calendar::{CalendarCache, CalendarProjection, SharedTime, TimeSettings};
use super::cases::CaseProjection;
use super::catalogue::CatalogueProjection;
use super::custody::CustodyProjection;
use super::oversight::OversightProjection;
use super::{Projections, Store, StoreError, StoreLocation};
use crate::calendar::{Clock, SystemClock};
use crate::ids::NodeId;
use crate::probe::ProbeProjection;

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
        .register(Arc::new(ProbeProjection))
}

impl Store {
    /// Opens (creating if needed) the store of `node` with every domain registered, runs the
    /// embedded migrations, and checks that the database belongs to this node. Times come
    /// from the machine's clock.
    pub async fn open(location: &StoreLocation, node: &NodeId) -> Result<Arc<Store>, StoreError> {
        Store::open_on(location, node, Arc::new(SystemClock)).await
    }

    /// [`Store::open`] on `clock`: the one clock the node's HLC, event times and every
    /// business time (deadlines, warnings, ratings, custody waits) are read from.
    pub async fn open_on(
        location: &StoreLocation,
        node: &NodeId,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Store>, StoreError> {
        let time = Arc::new(SharedTime::new(TimeSettings::on(clock)));
        let calendar_cache = Arc::new(CalendarCache::default());
        let projections = projections(&time, &calendar_cache);
        Store::open_with(location, node, projections, time, calendar_cache).await
    }
}
