//! Load probes (`ProbeRecord`): case-shaped events that `tongban bench` and the tests author to
//! exercise the log and the links (the generator is in the test kit). This projection checks
//! how they travel and folds them into nothing.

use tongban_proto::v1::{EventKind, RouteClass};

use crate::event::{CheckedEvent, EventError};
use crate::store::{FoldContext, FoldOutcome, Projection, ProjectionFuture};

/// Probes exercise the log and the links only: this projection checks how they travel and
/// folds them into nothing.
pub struct ProbeProjection;

impl Projection for ProbeProjection {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn kinds(&self) -> &'static [EventKind] {
        &[EventKind::Probe]
    }

    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        if event.route_class() != RouteClass::Path || !event.origin.contains(event.route_key.as_str()) {
            return Err(EventError::Rule(
                "a probe record travels along the path of its author or of a node below it".into(),
            ));
        }
        Ok(())
    }

    fn fold<'a>(&'a self, _cx: &'a mut FoldContext<'_>, _event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome> {
        Box::pin(async { Ok(FoldOutcome::Applied) })
    }
}
