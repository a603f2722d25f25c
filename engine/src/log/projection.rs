//! The seam between the engine and the domains: a [`Projection`] folds the event kinds it names
//! into its own tables, inside the writer's transaction, and the engine calls every registered
//! projection without knowing what any of them means.
//!
//! A domain registers one projection (or more) when the store opens. For each event the engine
//! asks the projections that fold its kind, in registration order, to check its authorship and
//! then to fold it; a refusal from any of them quarantines the event (arrived from a peer) or
//! refuses the request (authored here) and nothing of it is written. Before the transaction's
//! events are inserted every projection flushes what it staged.
//!
//! What a projection keeps between events lives in the writer's [`DomainStates`]: a map from a
//! state's type to its value, cloned before each authoring request so a refused request's
//! changes are dropped with its savepoint. A projection may read another domain's state (the
//! case projection reads the calendar in force); it writes only its own.

use std::any::{Any as StdAny, TypeId};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tongban_proto::v1::EventKind;

use super::{Backend, Pool, StoreError, WriteTx};
use crate::event::{CheckedEvent, EventError};

/// What folding one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoldOutcome {
    /// The event is folded into the projection (or had nothing to change there).
    Applied,
    /// The event breaks a rule of the projection; nothing of it may be stored. The reason is a
    /// sentence for the operator's alarm list or the refused caller.
    Refused(String),
}

impl FoldOutcome {
    /// A refusal with `reason`.
    pub fn refused(reason: impl Into<String>) -> Self {
        FoldOutcome::Refused(reason.into())
    }
}

/// A domain rule's verdict (`Err` carries the reason) as a fold's outcome.
impl From<Result<(), String>> for FoldOutcome {
    fn from(verdict: Result<(), String>) -> Self {
        match verdict {
            Ok(()) => FoldOutcome::Applied,
            Err(reason) => FoldOutcome::Refused(reason),
        }
    }
}

/// The future a projection returns: boxed, so projections are objects the engine can hold in a
/// list (`async fn` in a trait object is not yet possible).
pub type ProjectionFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What a projection sees while folding: the writer's open transaction and the domains' writer
/// states.
pub struct FoldContext<'a> {
    pub tx: &'a mut WriteTx,
    pub states: &'a mut DomainStates,
}

/// One domain's projection of the log. Implementations live with their domain; the engine
/// calls them only through this trait.
pub trait Projection: Send + Sync + 'static {
    /// A short name for logs and errors (`cases`, `custody`).
    fn name(&self) -> &'static str;

    /// The event kinds this projection folds.
    fn kinds(&self) -> &'static [EventKind];

    /// The domain's own authorship rules for one of its kinds (which tier may author it, how it
    /// must travel, which subject it must carry). Every replica checks them before folding,
    /// including on the events it authors itself.
    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError>;

    /// The migrations that create and change this projection's tables on `backend`, run when
    /// the log opens (after the engine's own, in registration order), each domain with its own
    /// migration history. `None` for a projection without tables.
    fn migrations(&self, _backend: Backend) -> Option<sqlx::migrate::Migrator> {
        None
    }

    /// Loads the projection's writer state from its tables when the store opens. Projections
    /// that keep none between transactions have nothing to do here.
    fn load<'a>(&'a self, _pool: &'a Pool, _states: &'a mut DomainStates) -> ProjectionFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Folds one event inside the writer's transaction.
    fn fold<'a>(&'a self, cx: &'a mut FoldContext<'_>, event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome>;

    /// Writes what [`Projection::fold`] staged in the writer state, before the transaction's
    /// events are inserted. Projections that write as they fold have nothing to do here.
    fn flush<'a>(&'a self, _cx: &'a mut FoldContext<'_>) -> ProjectionFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The registered projections of a store, indexed by the kinds they fold.
#[derive(Clone, Default)]
pub struct Projections {
    all: Vec<Arc<dyn Projection>>,
    // Per kind, the indexes into `all` of the projections that fold it, in registration order.
    by_kind: BTreeMap<i32, Vec<usize>>,
}

impl Projections {
    /// Registers `projection` after those already registered (its folds run after theirs).
    pub fn register(mut self, projection: Arc<dyn Projection>) -> Self {
        let index = self.all.len();
        for kind in projection.kinds() {
            self.by_kind.entry(*kind as i32).or_default().push(index);
        }
        self.all.push(projection);
        self
    }

    /// Every registered projection, in registration order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Projection>> {
        self.all.iter()
    }

    /// The projections that fold `kind`, in registration order; empty for a kind no domain
    /// registered (the engine refuses such an event).
    pub fn folding(&self, kind: i32) -> impl Iterator<Item = &Arc<dyn Projection>> {
        self.by_kind
            .get(&kind)
            .into_iter()
            .flatten()
            .filter_map(|index| self.all.get(*index))
    }
}

/// A value a domain keeps in the writer state. Cloneable as an object, so the engine can take a
/// snapshot before a request and put it back when the request is refused.
pub trait DomainState: StdAny + Send + Sync {
    fn clone_state(&self) -> Box<dyn DomainState>;
    fn as_any(&self) -> &dyn StdAny;
    fn as_any_mut(&mut self) -> &mut dyn StdAny;
}

impl<T: StdAny + Clone + Send + Sync> DomainState for T {
    fn clone_state(&self) -> Box<dyn DomainState> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn StdAny {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn StdAny {
        self
    }
}

/// The domains' writer states, one value per type. Only touched with the writer held.
#[derive(Default)]
pub struct DomainStates(BTreeMap<TypeId, Box<dyn DomainState>>);

impl Clone for DomainStates {
    fn clone(&self) -> Self {
        DomainStates(self.0.iter().map(|(k, v)| (*k, v.as_ref().clone_state())).collect())
    }
}

impl DomainStates {
    /// Sets the state of type `T`, replacing any earlier value.
    pub fn put<T: DomainState + Clone>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The state of type `T`, if a domain put one.
    pub fn get<T: DomainState>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|boxed| boxed.as_ref().as_any().downcast_ref::<T>())
    }

    /// The state of type `T`, created with its default when missing.
    pub fn get_mut<T: DomainState + Clone + Default>(&mut self) -> &mut T {
        let entry = self
            .0
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        if !entry.as_ref().as_any().is::<T>() {
            *entry = Box::new(T::default());
        }
        // Present and of type T: ensured just above.
        match entry.as_mut().as_any_mut().downcast_mut::<T>() {
            Some(value) => value,
            None => unreachable_state(),
        }
    }
}

#[cold]
fn unreachable_state() -> ! {
    // The entry was just made a T; a failed downcast would be a bug in this module.
    panic!("domain state type confusion")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default, Debug, PartialEq)]
    struct Head(u64);

    #[test]
    fn states_are_kept_per_type_and_cloned_apart() {
        let mut states = DomainStates::default();
        assert!(states.get::<Head>().is_none());
        states.get_mut::<Head>().0 = 3;
        let snapshot = states.clone();
        states.put(Head(7));
        assert_eq!(states.get::<Head>(), Some(&Head(7)));
        assert_eq!(snapshot.get::<Head>(), Some(&Head(3)));
    }
}
