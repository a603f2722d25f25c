//! The case projection: folding `CaseOpened` and `CaseStep` events into the `cases` table (one
//! row per case, holding its [`CaseView`] as JSON), the daily receipt numbers, and the case API
//! of [`Store`]: [`Store::open_case`], [`Store::act_on_case`], [`Store::case`] and
//! [`Store::cases`].
//!
//! Every replica re-validates: a step is re-decided with [`decide`] on this node's own view of
//! the case, with the event's principal and time, and must give exactly the transition the event
//! records (same action, states, holder, reason, principal). A step that is refused here or
//! decides differently is quarantined like a catalogue version that does not verify.
//!
//! Ordering: the events of one case reach every replica in causal order without any sequencing
//! of their own. They are path-class events routed to the node where the case started, so they
//! only ever travel along the one path village – township – county; a node authors a step only
//! after it stored the steps that gave it the case, and each link delivers events in the
//! sender's `local_seq` order, which is the order the sender stored them in. So every hop
//! preserves the order in which the holders acted, and a replica never sees a step before the
//! step that made its author the holder.

use crate::case::ActionKind;
use crate::staff::StaffStamp;
use crate::staff::projection::StaffError;
use std::fmt;
use std::str::FromStr;

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use tongban_proto::v1::{self as pb, EventKind, RouteClass, event_body::Body};

use crate::calendar::WorkingCalendar;
use crate::calendar::projection::SharedTime;
use crate::case::Transition;
use crate::case::warnings::{self, WarningThresholds};
use crate::case::wire::{self, opened_body, step_body, step_mismatch, submission_from_wire};
use crate::case::{
    Actor, ApplicantSummary, CaseAction, CaseId, CaseNumber, CaseView, ItemTerms, Refusal, StateKind, Submission,
    decide, local_date,
};
use crate::event::{CheckedEvent, EventError, NewEvent};
use crate::hlc::physical_ms;
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::store::{
    Backend, FoldContext, FoldOutcome, Projection, ProjectionFuture, Store, StoreError, WriteTx, value_rows,
};
use crate::{with_pool, with_tx};

/// Why a case action did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The workflow refuses the action (see [`Refusal::code`] for its gRPC class).
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// No case with this id or number is known at this node.
    #[error("no case {0} is known at this node")]
    NotFound(String),
    /// The case moved between the decision and the write (another operator acted first).
    #[error("the case changed while this action was being recorded; look at it again: {0}")]
    Changed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A case named by its id or by its receipt number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseRef {
    Id(CaseId),
    Number(CaseNumber),
}

impl fmt::Display for CaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseRef::Id(id) => fmt::Display::fmt(id, f),
            CaseRef::Number(number) => fmt::Display::fmt(number, f),
        }
    }
}

/// Why a text names no case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither a case id (<node>-<32 hex digits>) nor a case number (<node>-<YYYYMMDD>-<sequence>)")]
pub struct BadCaseRef(pub String);

impl FromStr for CaseRef {
    type Err = BadCaseRef;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(id) = s.parse::<CaseId>() {
            return Ok(CaseRef::Id(id));
        }
        s.parse::<CaseNumber>()
            .map(CaseRef::Number)
            .map_err(|_| BadCaseRef(s.to_owned()))
    }
}

/// Which cases a list shows; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    pub state: Option<StateKind>,
    pub holder: Option<NodeId>,
    /// Basic item code or implementation code.
    pub item_code: Option<String>,
}

/// Where a page of a case list starts: after the case opened at `opened_ms` with `case_id`
/// (lists run newest first). Written as `<opened_ms>.<case_id>` in page tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseCursor {
    pub opened_ms: i64,
    pub case_id: String,
}

impl fmt::Display for CaseCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.opened_ms, self.case_id)
    }
}

impl FromStr for CaseCursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, id) = s.split_once('.').ok_or_else(|| "not a page token".to_owned())?;
        let opened_ms = ms.parse().map_err(|_| "not a page token".to_owned())?;
        let id: CaseId = id.parse().map_err(|_| "not a page token".to_owned())?;
        Ok(CaseCursor {
            opened_ms,
            case_id: id.to_string(),
        })
    }
}

/// One page of a case list and where the next one starts (`None` on the last page).
#[derive(Debug, Clone)]
pub struct CasePage {
    pub cases: Vec<CaseView>,
    pub next: Option<CaseCursor>,
}

/// How many times `open_case` retries when a concurrent submission at this node took the
/// receipt number it read.
const NUMBER_ATTEMPTS: usize = 8;

/// The actor of a case event: its principal, which must belong to the authoring node, at the
/// physical time of its HLC.
fn actor_of(event: &CheckedEvent, acted_by: Option<&pb::StaffStamp>) -> Result<Actor, String> {
    let principal: Principal = event
        .event
        .principal
        .parse()
        .map_err(|e| format!("case event principal: {e}"))?;
    if *principal.place() != event.origin {
        return Err(format!(
            "{principal} acts at {}, but the case event was authored by {}",
            principal.place(),
            event.origin
        ));
    }
    let staff = wire::stamp_of(acted_by).map_err(|e| format!("case event: {e}"))?;
    if staff.is_some() && principal.as_node().is_some() {
        return Err(format!("a step by node {principal} names a staff member"));
    }
    Ok(Actor::new(principal, physical_ms(event.event.hlc)).with_staff(staff))
}

async fn load_view(tx: &mut WriteTx, id: &str) -> Result<Option<CaseView>, StoreError> {
    let json: Option<String> = with_tx!(tx, conn => {
        sqlx::query_scalar("SELECT view FROM cases WHERE case_id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await
    })?;
    json.map(|j| parse_view(&j)).transpose()
}

fn parse_view(json: &str) -> Result<CaseView, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("case view: {e}")))
}

fn view_json(view: &CaseView) -> Result<String, StoreError> {
    serde_json::to_string(view).map_err(|e| StoreError::Corrupt(format!("case view {}: {e}", view.id)))
}

/// The columns a warning list reads (migration 0005): the case's clock while one can still run
/// (paused included), and the first day it warns, searched from the day of its latest step.
pub(crate) fn warning_columns(
    view: &CaseView,
    calendar: &WorkingCalendar,
    thresholds: &WarningThresholds,
) -> (Option<String>, Option<String>) {
    let clock = view.case_clock();
    let latest = view.history.last().map_or(view.submitted_ms, |r| r.at_ms);
    let from = local_date(latest);
    let warn_from = warnings::first_warning_day(&clock, from, calendar, thresholds);
    let runs = clock.currently_paused || !warnings::evaluate(&clock, from, calendar, thresholds).is_empty();
    let clock_json = runs.then(|| serde_json::to_string(&clock).ok()).flatten();
    (clock_json, warn_from.map(|d| d.format("%Y-%m-%d").to_string()))
}

/// Cases folded in the current transaction and not yet written. A submission at the window
/// (opening, receipt, acceptance), a group of submissions committed together, or a batch from a
/// peer takes many steps on few cases: each step reads the view from here instead of the table,
/// and [`flush_cases`] writes every changed case once, in multi-row statements, before the
/// transaction's events are inserted. Folds inside the transaction must therefore look here
/// before they look at the tables.
#[derive(Clone, Default)]
pub(crate) struct PendingCases {
    views: std::collections::HashMap<String, FoldedCase>,
    /// Receipt numbers of the cases opened in this transaction (not yet in the table).
    numbers: std::collections::HashSet<String>,
    /// Per (node, day): the receipt counter must move past this sequence.
    counters: std::collections::BTreeMap<(String, String), i64>,
}

#[derive(Clone)]
struct FoldedCase {
    view: CaseView,
    /// Time of the latest step folded.
    updated_ms: u64,
    /// Changed since the row was last written (or never written).
    dirty: bool,
}

/// The case step folded last in this transaction: the view after it and its transition. Read
/// by the projections registered after the case projection for the same event.
#[derive(Clone, Default)]
pub(crate) struct LastStep(pub(crate) Option<FoldedStep>);

#[derive(Clone)]
pub(crate) struct FoldedStep {
    pub(crate) view: CaseView,
    pub(crate) transition: Transition,
}

/// The case projection: openings and steps into `cases` (each case's view, list columns,
/// deadline and warning columns) and the daily receipt counters. Its writer state is the
/// [`PendingCases`] of the open transaction.
pub(crate) struct CaseProjection {
    // The warning thresholds the warning columns are computed with.
    pub(crate) time: Arc<SharedTime>,
}

impl CaseProjection {
    fn thresholds(&self) -> WarningThresholds {
        self.time.read().map(|t| t.thresholds()).unwrap_or_default()
    }
}

impl Projection for CaseProjection {
    fn name(&self) -> &'static str {
        "cases"
    }

    fn kinds(&self) -> &'static [EventKind] {
        &[EventKind::CaseOpened, EventKind::CaseStep]
    }

    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        check_case_authorship(event)
    }

    fn migrations(&self, backend: Backend) -> Option<sqlx::migrate::Migrator> {
        Some(match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/cases/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/cases/postgres"),
        })
    }

    fn fold<'a>(&'a self, cx: &'a mut FoldContext<'_>, event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome> {
        Box::pin(async move {
            let verdict = match &event.body {
                Body::CaseOpened(body) => fold_opened(cx.tx, event, body, cx.states.get_mut::<PendingCases>()).await?,
                Body::CaseStep(body) => {
                    let mut folded = None;
                    let verdict =
                        fold_step(cx.tx, event, body, cx.states.get_mut::<PendingCases>(), &mut folded).await?;
                    cx.states.put(LastStep(folded));
                    verdict
                }
                _ => Err("not a case event".to_owned()),
            };
            Ok(FoldOutcome::from(verdict))
        })
    }

    fn flush<'a>(&'a self, cx: &'a mut FoldContext<'_>) -> ProjectionFuture<'a, ()> {
        Box::pin(async move {
            // The last step was for the projections folding the same event; it must not be
            // carried (and cloned with the writer state) into the next request.
            cx.states.put(LastStep(None));
            let calendar = crate::calendar::projection::in_force(cx.states);
            let thresholds = self.thresholds();
            flush_cases(
                cx.tx,
                cx.states.get_mut::<PendingCases>(),
                &calendar.calendar,
                &thresholds,
            )
            .await
        })
    }
}

/// Columns of one `cases` row, in [`upsert_cases_sql`]'s order.
const CASE_COLUMNS: usize = 16;
/// Rows per multi-row statement: 16 columns × 500 rows stays under SQLite's 32,766 parameters.
const CASE_CHUNK: usize = 500;

/// One multi-row statement writing `rows` cases whole: new ones are inserted, known ones get
/// their changing columns replaced.
fn upsert_cases_sql(rows: usize, backend: Backend) -> String {
    format!(
        "INSERT INTO cases (case_id, case_number, origin, holder, state, item_code, implementation_code, \
         delegation, township, opened_ms, updated_ms, view, item_name, clock, warn_from, deadline) VALUES {} \
         ON CONFLICT (case_id) DO UPDATE SET holder = excluded.holder, state = excluded.state, \
         updated_ms = excluded.updated_ms, view = excluded.view, clock = excluded.clock, \
         warn_from = excluded.warn_from, deadline = excluded.deadline",
        value_rows(rows, CASE_COLUMNS, backend)
    )
}

/// One case as its row is written: the view, and the columns computed from it that the
/// statement borrows (text a view only yields by formatting).
struct CaseRow {
    id: String,
    view: CaseView,
    view_json: String,
    deadline: Option<String>,
    clock: Option<String>,
    warn_from: Option<String>,
    updated_ms: i64,
}

/// Writes every case changed in `pending` (its view, list columns, deadline and warning columns
/// on `calendar`) and the receipt counters it moved, in multi-row statements, and empties it.
/// Runs before the transaction's events are inserted.
async fn flush_cases(
    tx: &mut WriteTx,
    pending: &mut PendingCases,
    calendar: &WorkingCalendar,
    thresholds: &WarningThresholds,
) -> Result<(), StoreError> {
    let backend = tx.backend();
    let mut rows = Vec::new();
    for (case_id, folded) in pending.views.drain() {
        if !folded.dirty {
            continue;
        }
        let view = folded.view;
        // The deadline on the calendar in force here now; only accepted cases have one.
        let deadline = match view.accepted_ms {
            Some(_) => view.deadline(calendar).map(|d| d.format("%Y-%m-%d").to_string()),
            None => None,
        };
        let (clock, warn_from) = warning_columns(&view, calendar, thresholds);
        rows.push(CaseRow {
            id: case_id,
            view_json: view_json(&view)?,
            view,
            deadline,
            clock,
            warn_from,
            updated_ms: folded.updated_ms as i64,
        });
    }
    pending.numbers.clear();
    for chunk in rows.chunks(CASE_CHUNK) {
        let sql = upsert_cases_sql(chunk.len(), backend);
        with_tx!(&mut *tx, conn => {
            // Only generated placeholders in the text; every value is bound.
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for row in chunk {
                let view = &row.view;
                query = query
                    .bind(row.id.as_str())
                    .bind(view.number.to_string())
                    .bind(view.origin.as_str())
                    .bind(view.holder.as_str())
                    .bind(view.state.kind().as_str())
                    .bind(view.terms.item_code.as_str())
                    .bind(view.terms.implementation_code.as_str())
                    .bind(view.terms.delegation.as_str())
                    .bind(view.front_desk().to_string())
                    .bind(view.submitted_ms as i64)
                    .bind(row.updated_ms)
                    .bind(row.view_json.as_str())
                    .bind(view.terms.name.as_str())
                    .bind(row.clock.as_deref())
                    .bind(row.warn_from.as_deref())
                    .bind(row.deadline.as_deref());
            }
            query.execute(conn).await.map(|_| ())
        })?;
    }
    let counters = std::mem::take(&mut pending.counters);
    bump_counters(tx, &counters).await
}

/// Folds a `CaseOpened`: opens the view with [`CaseView::open`] and stages it (with the move of
/// the origin's daily receipt counter past its number) for [`flush_cases`]. Refuses a malformed
/// body, an opening the workflow refuses, and a case id or number already known here.
async fn fold_opened(
    tx: &mut WriteTx,
    event: &CheckedEvent,
    body: &pb::CaseOpened,
    pending: &mut PendingCases,
) -> Result<Result<(), String>, StoreError> {
    let (submission, opened_at) = match submission_from_wire(body) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(Err(format!("case opening does not decode: {e}"))),
    };
    if opened_at != event.origin {
        return Ok(Err(format!(
            "case {} says it was opened at {opened_at}, but {} authored the opening",
            submission.id, event.origin
        )));
    }
    let actor = match actor_of(event, body.acted_by.as_ref()) {
        Ok(actor) => actor,
        Err(reason) => return Ok(Err(reason)),
    };
    let (id, number) = (submission.id.to_string(), submission.number.clone());
    let view = match CaseView::open(submission, &actor) {
        Ok(view) => view,
        Err(refusal) => return Ok(Err(format!("case {id} cannot be opened: {refusal}"))),
    };
    // Cases opened earlier in this transaction are not in the table yet.
    if pending.views.contains_key(&id) {
        return Ok(Err(format!("case {id} was already opened")));
    }
    if pending.numbers.contains(&number.to_string()) {
        return Ok(Err(format!("case number {number} is already used by another case")));
    }
    let clash: Option<String> = with_tx!(tx, conn => {
        sqlx::query_scalar("SELECT case_id FROM cases WHERE case_id = $1 OR case_number = $2 LIMIT 1")
            .bind(id.as_str())
            .bind(number.to_string())
            .fetch_optional(conn)
            .await
    })?;
    if let Some(existing) = clash {
        return Ok(Err(if existing == id {
            format!("case {id} was already opened")
        } else {
            format!("case number {number} is already used by case {existing}")
        }));
    }
    // Written with the transaction's other cases by `flush_cases`, after the steps that follow
    // it here; the receipt counter moves past its number then too.
    let counter = pending
        .counters
        .entry((number.node().to_string(), day_key(&number)))
        .or_insert(0);
    *counter = (*counter).max(i64::from(number.seq()) + 1);
    pending.numbers.insert(number.to_string());
    pending.views.insert(
        id,
        FoldedCase {
            updated_ms: view.submitted_ms,
            view,
            dirty: true,
        },
    );
    Ok(Ok(()))
}

fn day_key(number: &CaseNumber) -> String {
    number.date().format("%Y%m%d").to_string()
}

/// Moves the daily counters of the numbers opened in a transaction past them, in one statement
/// (never backwards: a replica may fold another node's numbers out of day order).
async fn bump_counters(
    tx: &mut WriteTx,
    counters: &std::collections::BTreeMap<(String, String), i64>,
) -> Result<(), StoreError> {
    if counters.is_empty() {
        return Ok(());
    }
    let backend = tx.backend();
    let entries: Vec<_> = counters.iter().collect();
    // 3 columns × 2,000 rows stays under SQLite's parameter limit.
    for chunk in entries.chunks(2_000) {
        let sql = format!(
            "INSERT INTO case_numbers (node, day, next_seq) VALUES {} ON CONFLICT (node, day) DO UPDATE \
             SET next_seq = CASE WHEN case_numbers.next_seq < excluded.next_seq THEN excluded.next_seq \
             ELSE case_numbers.next_seq END",
            value_rows(chunk.len(), 3, backend)
        );
        with_tx!(&mut *tx, conn => {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for ((node, day), next) in chunk {
                query = query.bind(node.as_str()).bind(day.as_str()).bind(**next);
            }
            query.execute(conn).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Folds a `CaseStep`: re-decides the recorded action on this node's view with the event's
/// principal and time, requires the transition the event records, applies it and stores the
/// view. Refuses a step on a case unknown here, a malformed body, a principal that is not the
/// envelope's, and any step [`decide`] refuses here (including one not taken by the holder).
async fn fold_step(
    tx: &mut WriteTx,
    event: &CheckedEvent,
    body: &pb::CaseStep,
    pending: &mut PendingCases,
    folded: &mut Option<FoldedStep>,
) -> Result<Result<(), String>, StoreError> {
    let id: CaseId = match body.case_id.parse() {
        Ok(id) => id,
        Err(e) => return Ok(Err(format!("case step: {e}"))),
    };
    let known = match pending.views.get(&body.case_id) {
        Some(folded) => Some(folded.view.clone()),
        None => load_view(tx, &body.case_id).await?,
    };
    let Some(mut view) = known else {
        return Ok(Err(format!("step on case {id}, which was never opened here")));
    };
    if body.principal != event.event.principal {
        return Ok(Err(format!(
            "case step names {} but was authored as {}",
            body.principal, event.event.principal
        )));
    }
    let actor = match actor_of(event, body.acted_by.as_ref()) {
        Ok(actor) => actor,
        Err(reason) => return Ok(Err(reason)),
    };
    let action = match body.action.clone().map(wire::action_from_wire) {
        Some(Ok(action)) => action,
        Some(Err(e)) => return Ok(Err(format!("case step on {id} does not decode: {e}"))),
        None => return Ok(Err(format!("case step on {id} carries no action"))),
    };
    let transition = match decide(&view, &action, &actor) {
        Ok(t) => t,
        Err(refusal) => {
            return Ok(Err(format!(
                "step {} on case {id} by {} is refused here: {refusal}",
                action.kind(),
                actor.principal
            )));
        }
    };
    if let Some(diff) = step_mismatch(body, &id, &transition) {
        return Ok(Err(format!(
            "step {} on case {id} decides differently here: {diff}",
            action.kind()
        )));
    }
    view.apply(&transition);
    // What the step meant, for the projections that fold it after this one (the seal register
    // and rectification items of oversight), so they need not decide it again.
    *folded = Some(FoldedStep {
        view: view.clone(),
        transition: transition.clone(),
    });
    // Written back once per request or batch (`flush_cases`), however many steps it takes.
    pending.views.insert(
        body.case_id.clone(),
        FoldedCase {
            view,
            updated_ms: transition.at_ms,
            dirty: true,
        },
    );
    Ok(Ok(()))
}

/// The staff members an opening and its steps named.
struct Staffed {
    submit: Option<StaffStamp>,
    then: Vec<Option<StaffStamp>>,
}

/// The view the case projection folded from an opening and the steps after it, given the
/// events as committed: each step decided again at its event's time, as `fold_step` does.
/// `None` if the events are not that opening (the caller then reads the row).
fn replay_opening(
    submission: Submission,
    principal: &Principal,
    then: &[CaseAction],
    staffed: &Staffed,
    committed: &[pb::Event],
) -> Option<CaseView> {
    let (opening, steps) = committed.split_first()?;
    if steps.len() != then.len() || staffed.then.len() != then.len() {
        return None;
    }
    let opener = Actor::new(principal.clone(), physical_ms(opening.hlc)).with_staff(staffed.submit.clone());
    let mut view = CaseView::open(submission, &opener).ok()?;
    for ((action, event), stamp) in then.iter().zip(steps).zip(&staffed.then) {
        let actor = Actor::new(principal.clone(), physical_ms(event.hlc)).with_staff(stamp.clone());
        let transition = decide(&view, action, &actor).ok()?;
        view.apply(&transition);
    }
    Some(view)
}

/// Case events travel along the path of the node where the case started (its route key), under
/// the subject `case:<id>`. A case is opened only by that node, a village or a township; a step
/// is authored on that node's path (the node itself, its township or the county). Whether the
/// author held the case at that point is checked when the step is folded.
pub(crate) fn check_case_authorship(event: &CheckedEvent) -> Result<(), EventError> {
    let class = event.route_class();
    let (case_id, opened) = match &event.body {
        Body::CaseOpened(body) => (body.case_id.as_str(), true),
        Body::CaseStep(body) => (body.case_id.as_str(), false),
        Body::RectificationResponse(body) => (body.case_id.as_str(), false),
        _ => return Err(EventError::Rule("not a case event".into())),
    };
    let id: crate::case::CaseId = case_id
        .parse()
        .map_err(|e: crate::case::CaseIdError| EventError::Rule(e.to_string()))?;
    if class != RouteClass::Path || event.route_key != *id.origin() {
        return Err(EventError::Rule(format!(
            "a case event travels along the path of the node where the case started ({}), not {}",
            id.origin(),
            event.route_key
        )));
    }
    if event.event.subject != format!("case:{id}") {
        return Err(EventError::Rule(format!(
            "a case event about {id} must have the subject case:{id}, not {:?}",
            event.event.subject
        )));
    }
    if opened {
        if event.origin != *id.origin() || event.origin.tier() == Tier::County {
            return Err(EventError::Rule(format!(
                "case {id} can only be opened by the village or township where it starts, not by {}",
                event.origin
            )));
        }
    } else if !event.origin.contains(event.route_key.as_str()) {
        return Err(EventError::Rule(format!(
            "{} is not on the path of {}, where case {id} started, so it never holds the case",
            event.origin, event.route_key
        )));
    }
    Ok(())
}

impl Store {
    /// Opens a case at this node for the item with `terms` (copied from the catalogue version this
    /// node holds), submitted by `principal`: mints the case id, allocates the next receipt number
    /// of today (China Standard Time) and authors the `CaseOpened` event, which moves the daily
    /// counter in the same transaction. Returns the case as stored.
    ///
    /// Refused (nothing written) when the workflow refuses the opening, e.g. at the county or by
    /// a courier, or with a blank applicant name.
    pub async fn open_case(
        &self,
        terms: ItemTerms,
        applicant: ApplicantSummary,
        principal: &Principal,
    ) -> Result<CaseView, CaseError> {
        self.open_case_then(terms, applicant, principal, Vec::new()).await
    }

    /// [`Store::open_case`], then `then` taken in order by the same principal, all in one
    /// transaction: a township window that receives and accepts on the spot (当场受理) records
    /// the submission, the receipt and the acceptance together or not at all. Refused (nothing
    /// written) if any step is.
    pub async fn open_case_then(
        &self,
        terms: ItemTerms,
        applicant: ApplicantSummary,
        principal: &Principal,
        then: Vec<CaseAction>,
    ) -> Result<CaseView, CaseError> {
        // Who takes the submission and each step after it, by the roster here; refused first.
        let submit_stamp = self.staff_gate(principal, ActionKind::Submit).await?;
        let mut stamps = Vec::with_capacity(then.len());
        for action in &then {
            stamps.push(self.staff_gate(principal, action.kind()).await?);
        }
        let mut last_clash = String::new();
        for _ in 0..NUMBER_ATTEMPTS {
            let hlc = self.hlc_now();
            let at_ms = physical_ms(hlc);
            let date = local_date(at_ms);
            let seq = self.next_case_seq(date).await?;
            let number = CaseNumber::new(self.node(), date, seq).map_err(|e| StoreError::Refused(e.to_string()))?;
            let id = CaseId::new(self.node(), hlc, rand::random());
            let submission = Submission {
                id: id.clone(),
                number: number.clone(),
                terms: terms.clone(),
                applicant: applicant.clone(),
            };
            // The same checks the folds make, first, so a refusal comes back as a Refusal.
            let actor = Actor::new(principal.clone(), at_ms);
            let mut view = CaseView::open(submission.clone(), &actor.clone().with_staff(submit_stamp.clone()))?;
            let mut events = vec![NewEvent {
                principal: principal.to_string(),
                subject: format!("case:{id}"),
                route_key: self.node().clone(),
                route_class: RouteClass::Path,
                body: Body::CaseOpened(opened_body(&submission, submit_stamp.as_ref())),
            }];
            for (action, stamp) in then.iter().zip(&stamps) {
                let transition = decide(&view, action, &actor.clone().with_staff(stamp.clone()))?;
                view.apply(&transition);
                events.push(NewEvent {
                    principal: principal.to_string(),
                    subject: format!("case:{id}"),
                    route_key: self.node().clone(),
                    route_class: RouteClass::Path,
                    body: Body::CaseStep(step_body(&id, &transition)),
                });
            }
            match self.author(events).await {
                Ok(committed) => {
                    // The case is new, so nothing but these events has touched it: rebuilt from
                    // them with the folds' own rules, it is the row as stored, without reading it.
                    let staffed = Staffed {
                        submit: submit_stamp.clone(),
                        then: stamps.clone(),
                    };
                    if let Some(view) = replay_opening(submission, principal, &then, &staffed, &committed) {
                        return Ok(view);
                    }
                    return self
                        .case(&CaseRef::Id(id.clone()))
                        .await?
                        .ok_or_else(|| CaseError::NotFound(id.to_string()));
                }
                // Another submission here took the number between our read and our write.
                Err(StoreError::Refused(reason)) if self.number_taken(&number).await? => last_clash = reason,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaseError::Changed(format!(
            "could not allocate a receipt number after {NUMBER_ATTEMPTS} attempts: {last_clash}"
        )))
    }

    /// Takes `action` on case `id` as `principal`, acting at this node. Decides first, on the case
    /// as stored here: a refused action returns the [`Refusal`] and writes nothing. A legal one is
    /// authored as a `CaseStep` (re-decided in the writing transaction with the event's own time)
    /// and the case is returned as stored after it.
    pub async fn act_on_case(
        &self,
        id: &CaseId,
        action: CaseAction,
        principal: &Principal,
    ) -> Result<CaseView, CaseError> {
        let view = self
            .case(&CaseRef::Id(id.clone()))
            .await?
            .ok_or_else(|| CaseError::NotFound(id.to_string()))?;
        let actor = Actor::new(principal.clone(), self.wall_ms());
        // The case's own rules first (state, holder, tier), then the post of who asks.
        decide(&view, &action, &actor)?;
        let stamp = self.staff_gate(principal, action.kind()).await?;
        let transition = decide(&view, &action, &actor.with_staff(stamp))?;
        let new = NewEvent {
            principal: principal.to_string(),
            subject: format!("case:{id}"),
            route_key: id.origin().clone(),
            route_class: RouteClass::Path,
            body: Body::CaseStep(step_body(id, &transition)),
        };
        match self.author(vec![new]).await {
            Ok(_) => self
                .case(&CaseRef::Id(id.clone()))
                .await?
                .ok_or_else(|| CaseError::NotFound(id.to_string())),
            Err(StoreError::Refused(reason)) => Err(CaseError::Changed(reason)),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Store::staff_stamp`] as a case refusal: who `principal` is on this node's roster, if it
    /// keeps one, and whether their posts allow `action`.
    async fn staff_gate(&self, principal: &Principal, action: ActionKind) -> Result<Option<StaffStamp>, CaseError> {
        match self.staff_stamp(principal, action).await {
            Ok(stamp) => Ok(stamp),
            Err(StaffError::Refused(refusal)) => Err(CaseError::Refused(Refusal::Post(refusal.to_string()))),
            Err(StaffError::Store(e)) => Err(CaseError::Store(e)),
        }
    }

    /// One case by id or receipt number, as this node knows it.
    pub async fn case(&self, key: &CaseRef) -> Result<Option<CaseView>, StoreError> {
        let json: Option<String> = match key {
            CaseRef::Id(id) => with_pool!(self.pool(), conn => {
                sqlx::query_scalar("SELECT view FROM cases WHERE case_id = $1")
                    .bind(id.to_string())
                    .fetch_optional(conn)
                    .await
            })?,
            CaseRef::Number(number) => with_pool!(self.pool(), conn => {
                sqlx::query_scalar("SELECT view FROM cases WHERE case_number = $1")
                    .bind(number.to_string())
                    .fetch_optional(conn)
                    .await
            })?,
        };
        json.map(|j| parse_view(&j)).transpose()
    }

    /// Cases this node knows matching `filter`, newest first (by opening time, then id), at most
    /// `limit` from `after` on.
    pub async fn cases(
        &self,
        filter: &CaseFilter,
        after: Option<&CaseCursor>,
        limit: usize,
    ) -> Result<CasePage, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(state) = filter.state {
            let p = param(&mut binds, Bind::Text(state.as_str().to_owned()));
            conditions.push(format!("state = {p}"));
        }
        if let Some(holder) = &filter.holder {
            let p = param(&mut binds, Bind::Text(holder.to_string()));
            conditions.push(format!("holder = {p}"));
        }
        if let Some(code) = &filter.item_code {
            let p = param(&mut binds, Bind::Text(code.clone()));
            let q = param(&mut binds, Bind::Text(code.clone()));
            conditions.push(format!("(item_code = {p} OR implementation_code = {q})"));
        }
        if let Some(cursor) = after {
            let a = param(&mut binds, Bind::Int(cursor.opened_ms));
            let b = param(&mut binds, Bind::Int(cursor.opened_ms));
            let c = param(&mut binds, Bind::Text(cursor.case_id.clone()));
            conditions.push(format!("(opened_ms < {a} OR (opened_ms = {b} AND case_id < {c}))"));
        }
        let limit_param = param(&mut binds, Bind::Int(limit as i64 + 1));
        let mut sql = String::from("SELECT opened_ms, case_id, view FROM cases");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY opened_ms DESC, case_id DESC LIMIT {limit_param}"));
        // The statement text holds only fixed fragments and placeholders; every value is bound.
        let rows: Vec<(i64, String, String)> = with_pool!(self.pool(), conn => {
            let mut query = sqlx::query_as(AssertSqlSafe(sql));
            for bind in binds {
                query = match bind {
                    Bind::Text(s) => query.bind(s),
                    Bind::Int(i) => query.bind(i),
                };
            }
            query.fetch_all(conn).await
        })?;
        let more = rows.len() > limit;
        let mut cases = Vec::with_capacity(rows.len().min(limit));
        let mut next = None;
        for (i, (opened_ms, case_id, json)) in rows.into_iter().enumerate() {
            if i == limit {
                break;
            }
            cases.push(parse_view(&json)?);
            if i + 1 == limit && more {
                next = Some(CaseCursor { opened_ms, case_id });
            }
        }
        Ok(CasePage { cases, next })
    }

    /// The next free daily sequence of receipt numbers at this node on `date`. Only this node
    /// numbers its own cases, so after the first read of a day the counter lives in memory:
    /// concurrent submissions each get their own number instead of racing for the stored one
    /// (a number whose submission is then refused is skipped, never reused).
    async fn next_case_seq(&self, date: chrono::NaiveDate) -> Result<u32, StoreError> {
        let mut counter = self.receipt_counter.lock().await;
        let next = match *counter {
            Some((day, next)) if day == date => next,
            _ => {
                let stored: Option<i64> = with_pool!(self.pool(), conn => {
                    sqlx::query_scalar("SELECT next_seq FROM case_numbers WHERE node = $1 AND day = $2")
                        .bind(self.node().as_str())
                        .bind(date.format("%Y%m%d").to_string())
                        .fetch_optional(conn)
                        .await
                })?;
                u32::try_from(stored.unwrap_or(1).max(1))
                    .map_err(|_| StoreError::Refused(format!("no receipt numbers left at {} on {date}", self.node())))?
            }
        };
        let after = next
            .checked_add(1)
            .ok_or_else(|| StoreError::Refused(format!("no receipt numbers left at {} on {date}", self.node())))?;
        *counter = Some((date, after));
        Ok(next)
    }

    async fn number_taken(&self, number: &CaseNumber) -> Result<bool, StoreError> {
        let n: i64 = with_pool!(self.pool(), conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE case_number = $1")
                .bind(number.to_string())
                .fetch_one(conn)
                .await
        })?;
        Ok(n > 0)
    }
}

/// A value bound to a generated placeholder.
enum Bind {
    Text(String),
    Int(i64),
}

/// Adds `value` to `binds` and returns its placeholder (`$n`, which both backends read).
fn param(binds: &mut Vec<Bind>, value: Bind) -> String {
    binds.push(value);
    format!("${}", binds.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::case::{ApplicantKind, RefusalCode};
    use crate::catalogue::{Category, DelegationMode};
    use crate::event;
    use crate::store::{LinkRole, StoreLocation};

    const COUNTY: &str = "441424";
    const TOWNSHIP: &str = "441424100";
    const VILLAGE: &str = "441424100201";

    fn node(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn operator(at: &str) -> Principal {
        Principal::operator(node(at), "wang.fang").unwrap()
    }

    async fn store(dir: &std::path::Path, id: &str) -> Arc<Store> {
        Store::open(&StoreLocation::in_data_dir(dir, &node(id)), &node(id))
            .await
            .unwrap()
    }

    fn terms(delegation: DelegationMode) -> ItemTerms {
        ItemTerms {
            item_code: "000201001000".to_owned(),
            implementation_code: "T-ALL".to_owned(),
            name: "农村村民住宅用地审批".to_owned(),
            delegation,
            category: Category::GovernmentService,
            immediate: false,
            promised_days: 5,
            statutory_days: 20,
            catalogue_version: 1,
        }
    }

    fn applicant() -> ApplicantSummary {
        ApplicantSummary {
            kind: ApplicantKind::Person,
            name: "李明".to_owned(),
            id_masked: "441424********1234".to_owned(),
            phone: None,
        }
    }

    /// Everything `from` routed to `to` (its parent when `up`), applied at `to`.
    async fn relay(from: &Store, to: &Store, up: bool) -> crate::store::ApplyReport {
        let role = if up { LinkRole::Parent } else { LinkRole::Child };
        let (events, through) = from.events_for(to.node(), role, 0, 10_000).await.unwrap();
        to.apply_from_peer(from.node(), events, through).await.unwrap()
    }

    #[tokio::test]
    async fn concurrent_submissions_commit_together_and_a_refused_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let township = store(dir.path(), TOWNSHIP).await;
        let clerk = operator(TOWNSHIP);
        // Hold the writer so every request below queues up and they all ride one group.
        let hold = township.bookkeeping().await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..40 {
            let (township, clerk) = (township.clone(), clerk.clone());
            tasks.spawn(async move {
                if n % 4 == 3 {
                    // A step on a case nobody opened: refused inside the fold.
                    let unknown = CaseId::new(township.node(), 1, rand::random());
                    let bogus = NewEvent {
                        principal: clerk.to_string(),
                        subject: format!("case:{unknown}"),
                        route_key: township.node().clone(),
                        route_class: RouteClass::Path,
                        body: Body::CaseStep(pb::CaseStep {
                            case_id: unknown.to_string(),
                            ..Default::default()
                        }),
                    };
                    Err(township.author(vec![bogus]).await.unwrap_err())
                } else {
                    let t = terms(DelegationMode::Authorised);
                    let then = vec![CaseAction::Receive, CaseAction::Accept { terms: t.clone() }];
                    Ok(township.open_case_then(t, applicant(), &clerk, then).await.unwrap())
                }
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        drop(hold);
        let (mut opened, mut refused) = (Vec::new(), 0);
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                Ok(view) => opened.push(view),
                Err(StoreError::Refused(_)) => refused += 1,
                Err(other) => panic!("unexpected error {other}"),
            }
        }
        assert_eq!((opened.len(), refused), (30, 10));
        // Three events per submission and nothing of the refused ones, with dense sequences.
        assert_eq!(township.event_count().await.unwrap(), 90);
        assert_eq!(township.count_from_origin(township.node()).await.unwrap(), 90);
        let mut numbers: Vec<u32> = opened.iter().map(|v| v.number.seq()).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=30).collect::<Vec<_>>());
        for view in &opened {
            let stored = township.case(&CaseRef::Id(view.id.clone())).await.unwrap().unwrap();
            assert_eq!(stored.state.kind(), StateKind::Accepted);
            assert_eq!(stored.history.len(), 3);
            // What a submission returns (rebuilt from its committed events) is the stored row.
            assert_eq!(&stored, view, "open_case_then returned another view than it stored");
        }
    }

    #[tokio::test]
    async fn cases_open_with_daily_numbers_and_move_only_when_legal() {
        let dir = tempfile::tempdir().unwrap();
        let township = store(dir.path(), TOWNSHIP).await;
        let clerk = operator(TOWNSHIP);
        let first = township
            .open_case(terms(DelegationMode::Authorised), applicant(), &clerk)
            .await
            .unwrap();
        let second = township
            .open_case(terms(DelegationMode::Authorised), applicant(), &clerk)
            .await
            .unwrap();
        assert_eq!(first.number.seq(), 1);
        assert_eq!(second.number.seq(), 2);
        assert_eq!(first.id.origin().as_str(), TOWNSHIP);
        assert_ne!(first.id, second.id);

        let received = township
            .act_on_case(&first.id, CaseAction::Receive, &clerk)
            .await
            .unwrap();
        assert_eq!(received.state.kind(), StateKind::Received);
        assert_eq!(received.history.len(), 2);

        // Refused actions write nothing.
        let before = township.event_count().await.unwrap();
        let err = township
            .act_on_case(&first.id, CaseAction::RefuseAcceptance { reason: " ".into() }, &clerk)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CaseError::Refused(r) if r.code() == RefusalCode::InvalidArgument),
            "{err}"
        );
        let err = township
            .act_on_case(&first.id, CaseAction::SubmitForReview, &clerk)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CaseError::Refused(Refusal::IllegalTransition { .. })),
            "{err}"
        );
        assert_eq!(township.event_count().await.unwrap(), before);
        let stored = township
            .case(&CaseRef::Number(first.number.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, received);

        // Lists: filters and pages.
        let all = township.cases(&CaseFilter::default(), None, 10).await.unwrap();
        assert_eq!(all.cases.len(), 2);
        assert!(all.next.is_none());
        let filter = CaseFilter {
            state: Some(StateKind::Received),
            ..Default::default()
        };
        let only = township.cases(&filter, None, 10).await.unwrap();
        assert_eq!(only.cases.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&first.id]);
        let page = township.cases(&CaseFilter::default(), None, 1).await.unwrap();
        assert_eq!(page.cases.len(), 1);
        let cursor = page.next.clone().unwrap();
        assert_eq!(cursor.to_string().parse::<CaseCursor>().unwrap(), cursor);
        let rest = township.cases(&CaseFilter::default(), Some(&cursor), 1).await.unwrap();
        assert_eq!(rest.cases.len(), 1);
        assert!(rest.next.is_none());
        assert_ne!(page.cases[0].id, rest.cases[0].id);
        let by_item = CaseFilter {
            item_code: Some("T-ALL".into()),
            holder: Some(node(TOWNSHIP)),
            ..Default::default()
        };
        assert_eq!(township.cases(&by_item, None, 10).await.unwrap().cases.len(), 2);
        township.close().await;
    }

    #[tokio::test]
    async fn replicas_refold_steps_and_quarantine_what_they_would_not_decide() {
        let dir = tempfile::tempdir().unwrap();
        let village = store(dir.path(), VILLAGE).await;
        let township = store(dir.path(), TOWNSHIP).await;
        let county = store(dir.path(), COUNTY).await;
        let view = village
            .open_case(terms(DelegationMode::Entrusted), applicant(), &operator(VILLAGE))
            .await
            .unwrap();
        village
            .act_on_case(&view.id, CaseAction::Forward, &operator(VILLAGE))
            .await
            .unwrap();
        assert_eq!(relay(&village, &township, true).await.applied, 2);
        assert_eq!(relay(&township, &county, true).await.applied, 2);
        let at_county = county.case(&CaseRef::Id(view.id.clone())).await.unwrap().unwrap();
        assert_eq!(at_county.holder.as_str(), TOWNSHIP);
        assert_eq!(
            at_county,
            township.case(&CaseRef::Id(view.id.clone())).await.unwrap().unwrap()
        );

        // The county may not move a case the township holds.
        let err = county
            .act_on_case(&view.id, CaseAction::Receive, &operator(COUNTY))
            .await
            .unwrap_err();
        assert!(matches!(&err, CaseError::Refused(Refusal::NotHolder { .. })), "{err}");

        // A forged step from the township claiming a different outcome is quarantined.
        let actor = Actor::new(operator(TOWNSHIP), 0);
        let mut t = decide(&at_county, &CaseAction::Receive, &actor).unwrap();
        t.to = crate::case::CaseState::Accepted;
        let forged = event::seal(
            &node(TOWNSHIP),
            1,
            township.hlc_now(),
            &NewEvent {
                principal: operator(TOWNSHIP).to_string(),
                subject: format!("case:{}", view.id),
                route_key: node(VILLAGE),
                route_class: RouteClass::Path,
                body: Body::CaseStep(step_body(&view.id, &t)),
            },
        );
        let report = county
            .apply_from_peer(
                &node(TOWNSHIP),
                vec![pb::SyncedEvent {
                    local_seq: 99,
                    event: Some(forged),
                }],
                99,
            )
            .await
            .unwrap();
        assert_eq!(report.quarantined, 1);
        let alarms = county.alarms(10).await.unwrap();
        assert!(alarms[0].reason.contains("decides differently"), "{}", alarms[0].reason);
        // A step authored by the village, which no longer holds the case, is quarantined too.
        let mut body = step_body(&view.id, &t);
        body.principal = operator(VILLAGE).to_string();
        let forged = event::seal(
            &node(VILLAGE),
            3,
            village.hlc_now(),
            &NewEvent {
                principal: operator(VILLAGE).to_string(),
                subject: format!("case:{}", view.id),
                route_key: node(VILLAGE),
                route_class: RouteClass::Path,
                body: Body::CaseStep(body),
            },
        );
        let report = township
            .apply_from_peer(
                &node(VILLAGE),
                vec![pb::SyncedEvent {
                    local_seq: 99,
                    event: Some(forged),
                }],
                99,
            )
            .await
            .unwrap();
        assert_eq!(report.quarantined, 1);
        let alarms = township.alarms(10).await.unwrap();
        assert!(alarms[0].reason.contains("only the holder"), "{}", alarms[0].reason);
        assert_eq!(
            county.case(&CaseRef::Id(view.id.clone())).await.unwrap().unwrap(),
            at_county
        );
        for s in [village, township, county] {
            s.close().await;
        }
    }
}
