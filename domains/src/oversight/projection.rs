//! The oversight projections of cases: the seal register (用印登记, table `seal_register`), the
//! rectification items of bad ratings (差评整改, table `rectifications`), the default rating a
//! node records when no rating came within [`DEFAULT_RATING_DAYS`], and the rating metrics and
//! case summary that [`Store::oversight_summary`] computes.
//!
//! Register entries and rectification items are folded from case steps in the same transaction
//! as the step (`record_step`), and a rectification is closed by a `RectificationResponse` event
//! (`fold_response`); all of these travel along the case's path, so the node that keeps a seal,
//! the township and the county hold the same rows without any extra replication.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use sqlx::AssertSqlSafe;
use tongban_proto::v1::{self as pb, EventKind, RouteClass, event_body::Body};

use crate::calendar::shanghai_date;
use crate::case::projection::{CaseError, LastStep};
use crate::case::warnings::WarningLevel;
use crate::case::{CaseAction, CaseId, CaseView, RatingLevel, Transition};
use crate::catalogue::SealType;
use crate::event::{CheckedEvent, EventError, NewEvent};
use crate::ids::NodeId;
use crate::pki::Principal;
use crate::store::{
    Backend, FoldContext, FoldOutcome, Projection, ProjectionFuture, Store, StoreError, WarningFilter, WriteTx,
};
use crate::{with_pool, with_tx};

/// Days after issue without a rating before the node records the default rating.
pub const DEFAULT_RATING_DAYS: i64 = 7;
/// Working days a handling unit has to respond to a bad rating (domain notes: 5 to 15 by place;
/// 5 assumed).
pub const RECTIFICATION_WORKING_DAYS: u32 = 5;
/// Longest response accepted, in characters.
pub const MAX_RESPONSE_CHARS: usize = 2000;

/// How often a node looks for issued cases to rate by default, unless configured: hourly, since
/// the period is counted in days.
pub const DEFAULT_RATING_SCAN_MS: u64 = 60 * 60 * 1000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn ms_date(ms: u64) -> NaiveDate {
    shanghai_date(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The oversight projection: the seal register (an entry per stamped step) and rectification
/// items (one per bad rating), folded with the case steps they come from, so they replicate
/// with them; and the responses that close rectification items.
pub(crate) struct OversightProjection;

impl Projection for OversightProjection {
    fn name(&self) -> &'static str {
        "oversight"
    }

    // Registered after the case projection: a step's meaning is read from what it folded.
    fn kinds(&self) -> &'static [EventKind] {
        &[
            EventKind::CaseStep,
            EventKind::RectificationResponse,
            EventKind::EntrustmentLetter,
        ]
    }

    // A rectification response belongs to its case and travels exactly like its steps; a letter
    // of entrustment comes down from the county.
    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        match &event.body {
            Body::EntrustmentLetter(_) => crate::oversight::letters::check_letter_authorship(event),
            _ => crate::case::projection::check_case_authorship(event),
        }
    }

    fn migrations(&self, backend: Backend) -> Option<sqlx::migrate::Migrator> {
        Some(match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/oversight/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/oversight/postgres"),
        })
    }

    fn fold<'a>(&'a self, cx: &'a mut FoldContext<'_>, event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome> {
        Box::pin(async move {
            match &event.body {
                Body::CaseStep(_) => {
                    let Some(LastStep(Some(step))) = cx.states.get::<LastStep>().cloned() else {
                        return Ok(FoldOutcome::refused("case step reached oversight without its decision"));
                    };
                    let calendar = crate::calendar::projection::in_force(cx.states);
                    record_step(cx.tx, event, &step.view, &step.transition, &calendar.calendar).await?;
                    Ok(FoldOutcome::Applied)
                }
                Body::RectificationResponse(body) => Ok(FoldOutcome::from(fold_response(cx.tx, event, body).await?)),
                Body::EntrustmentLetter(body) => Ok(FoldOutcome::from(
                    crate::oversight::letters::fold_letter(cx.tx, event, body).await?,
                )),
                _ => Ok(FoldOutcome::refused("not an oversight event")),
            }
        })
    }
}

/// One stamp in the seal register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealEntry {
    pub seal: SealType,
    pub date: NaiveDate,
    pub at_ms: u64,
    pub case_id: String,
    pub case_number: String,
    pub item_code: String,
    pub item_name: String,
    pub township: String,
    /// `decide` or `issue`.
    pub action: String,
    pub reason: String,
    pub approver: String,
    pub stamped_by: String,
    pub impressions: u32,
    /// The node that authored the stamped step: where the seal is kept.
    pub at_node: String,
}

/// Which register entries to list; `None` means any. Dates are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealFilter {
    pub seal: Option<SealType>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub township: Option<NodeId>,
}

/// A bad rating's rectification item (差评整改).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rectification {
    /// The case id, which is also the item's id (one rating per case).
    pub case_id: String,
    pub case_number: String,
    pub item_code: String,
    pub township: String,
    /// The node that must respond: the tier that decided the case.
    pub handler: String,
    pub level: RatingLevel,
    pub opened_ms: u64,
    /// The last working day to respond.
    pub deadline: NaiveDate,
    pub responded_ms: Option<u64>,
    pub response: Option<String>,
    pub responder: Option<String>,
}

impl Rectification {
    pub fn is_open(&self) -> bool {
        self.responded_ms.is_none()
    }

    /// Responded on or before the deadline.
    pub fn on_time(&self) -> bool {
        self.responded_ms.is_some_and(|ms| ms_date(ms) <= self.deadline)
    }
}

/// Why a rectification response was not recorded. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum RectificationError {
    /// Blank or too long a response. → `INVALID_ARGUMENT`.
    #[error("{0}")]
    Invalid(String),
    #[error("no rectification item {0} is known at this node")]
    NotFound(String),
    /// Already closed. → `FAILED_PRECONDITION`.
    #[error("{0}")]
    Closed(String),
    /// Not the handling unit. → `PERMISSION_DENIED`.
    #[error("{0}")]
    NotHandler(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts and rates of ratings over a group of cases (formulas: domain notes, "Ratings").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RatingMetrics {
    pub concluded: u64,
    pub rated: u64,
    pub active: u64,
    pub defaulted: u64,
    pub good: u64,
    pub bad: u64,
    pub rectifications: u64,
    pub rectified: u64,
    pub rectified_on_time: u64,
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

impl RatingMetrics {
    /// rated ÷ concluded.
    pub fn coverage(&self) -> f64 {
        ratio(self.rated, self.concluded)
    }
    /// Applicant's own ratings ÷ concluded.
    pub fn active_rate(&self) -> f64 {
        ratio(self.active, self.concluded)
    }
    /// (very satisfied + satisfied) ÷ rated.
    pub fn good_rate(&self) -> f64 {
        ratio(self.good, self.rated)
    }
    /// (dissatisfied + very dissatisfied) ÷ rated.
    pub fn bad_rate(&self) -> f64 {
        ratio(self.bad, self.rated)
    }
    /// Responded ÷ rectification items.
    pub fn rectification_rate(&self) -> f64 {
        ratio(self.rectified, self.rectifications)
    }
    /// Responded by the deadline ÷ rectification items.
    pub fn on_time_rate(&self) -> f64 {
        ratio(self.rectified_on_time, self.rectifications)
    }

    fn add_case(&mut self, view: &CaseView, rectification: Option<&Rectification>) {
        if view.concluded_ms.is_some() {
            self.concluded += 1;
        }
        if let Some(r) = &view.rating {
            self.rated += 1;
            if r.defaulted {
                self.defaulted += 1;
            } else {
                self.active += 1;
            }
            self.good += u64::from(r.level.is_good());
            self.bad += u64::from(r.level.is_bad());
        }
        if let Some(r) = rectification {
            self.rectifications += 1;
            self.rectified += u64::from(!r.is_open());
            self.rectified_on_time += u64::from(r.on_time());
        }
    }
}

/// Rating metrics of one township, window type, item and month of conclusion.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    pub township: String,
    pub window: String,
    pub item_code: String,
    /// `YYYY-MM` of conclusion, or `open` for cases not concluded.
    pub month: String,
    pub metrics: RatingMetrics,
}

/// Case counts, times and rating metrics for a township or all this node knows.
#[derive(Debug, Clone, PartialEq)]
pub struct OversightSummary {
    pub scope: String,
    pub received: u64,
    pub accepted: u64,
    pub concluded: u64,
    /// Cases with a red warning today (any rule).
    pub overdue: u64,
    /// Cases with a yellow warning and no red one today.
    pub yellow: u64,
    pub overdue_note: String,
    pub avg_working_days_to_conclusion: f64,
    pub ratings: RatingMetrics,
    pub rows: Vec<MetricsRow>,
    /// Cases accepted and results issued per township window, by township and number.
    pub windows: Vec<WindowRow>,
}

/// One township window's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    pub township: String,
    pub window: u32,
    pub counts: WindowCounts,
}

/// What one numbered window of a township did: cases accepted there, results issued there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowCounts {
    pub accepted: u64,
    pub issued: u64,
}

/// How `overdue` is counted.
pub const OVERDUE_NOTE: &str = "cases with a red warning today (acceptance, processing or issuing rule, on the \
     calendar in force and this node's warning thresholds; paused cases never escalate)";

/// The node that handled the case, which answers for a bad rating: the tier that decided it,
/// else the front-desk township.
fn handler_of(view: &CaseView) -> NodeId {
    view.decision
        .as_ref()
        .map(|d| d.at_node.clone())
        .unwrap_or_else(|| view.front_desk())
}

/// How the register names a person: `王芳（工号 A01）` when the acting node keeps a roster,
/// else the certificate's principal.
fn person(principal: &str, staff: Option<&crate::staff::StaffStamp>) -> String {
    match staff {
        Some(s) => format!("{}（工号 {}）", s.name, s.staff_no),
        None => principal.to_owned(),
    }
}

/// Folds what a step means for oversight, after the step itself was applied to `view`: a
/// register entry for each stamped step (decide, issue), a rectification item for a bad rating.
async fn record_step(
    tx: &mut WriteTx,
    event: &CheckedEvent,
    view: &CaseView,
    t: &Transition,
    calendar: &crate::calendar::WorkingCalendar,
) -> Result<(), StoreError> {
    let stamped_by = person(&t.by.to_string(), t.staff.as_ref());
    let (seal, impressions, approver) = match &t.action {
        // An entrusted item's decision is not stamped: the township stamps the result.
        CaseAction::Decide {
            seal: Some(seal),
            impressions,
            ..
        } => (*seal, *impressions, stamped_by.clone()),
        CaseAction::Issue { seal, impressions } => (
            *seal,
            *impressions,
            // The approver of an issued result is whoever took the decision it carries out; an
            // item concluded without a decision (immediate items) is approved by the issuer.
            view.decision
                .as_ref()
                .map(|d| person(&d.by, d.staff.as_ref()))
                .unwrap_or_else(|| stamped_by.clone()),
        ),
        CaseAction::Rate { level, .. } if level.is_bad() => {
            // On the calendar in force here; every replica on the path holds the county's latest.
            let deadline = calendar.add_working_days(ms_date(t.at_ms), RECTIFICATION_WORKING_DAYS);
            with_tx!(tx, conn => {
                sqlx::query(
                    "INSERT INTO rectifications (case_id, case_number, item_code, township, handler, level, \
                     opened_ms, deadline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(view.id.to_string())
                .bind(view.number.to_string())
                .bind(view.terms.implementation_code.as_str())
                .bind(view.front_desk().to_string())
                .bind(handler_of(view).to_string())
                .bind(level.as_str())
                .bind(t.at_ms as i64)
                .bind(deadline.to_string())
                .execute(conn)
                .await
                .map(|_| ())
            })?;
            return Ok(());
        }
        _ => return Ok(()),
    };
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO seal_register (origin, seq, seal, day, at_ms, case_id, case_number, item_code, item_name, \
             township, action, reason, approver, stamped_by, impressions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(event.origin.as_str())
        .bind(event.event.seq as i64)
        .bind(seal.as_str())
        .bind(ms_date(t.at_ms).to_string())
        .bind(t.at_ms as i64)
        .bind(view.id.to_string())
        .bind(view.number.to_string())
        .bind(view.terms.implementation_code.as_str())
        .bind(view.terms.name.as_str())
        .bind(view.front_desk().to_string())
        .bind(t.action.kind().as_str())
        .bind(t.reason.as_deref().unwrap_or_default())
        .bind(approver.as_str())
        .bind(stamped_by.as_str())
        .bind(i64::from(impressions))
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// Folds a `RectificationResponse`: the item must exist here and be open, the author must be the
/// handling node, the principal the envelope's, and the response non-blank.
async fn fold_response(
    tx: &mut WriteTx,
    event: &CheckedEvent,
    body: &pb::RectificationResponse,
) -> Result<Result<(), String>, StoreError> {
    if body.principal != event.event.principal {
        return Ok(Err(format!(
            "rectification response names {} but was authored as {}",
            body.principal, event.event.principal
        )));
    }
    let row: Option<(String, Option<i64>)> = with_tx!(&mut *tx, conn => {
        sqlx::query_as("SELECT handler, responded_ms FROM rectifications WHERE case_id = $1")
            .bind(body.case_id.as_str())
            .fetch_optional(conn)
            .await
    })?;
    let Some((handler, responded)) = row else {
        return Ok(Err(format!("no rectification item for case {} here", body.case_id)));
    };
    if handler != event.origin.as_str() {
        return Ok(Err(format!(
            "rectification of case {} is for {handler} to answer, not {}",
            body.case_id, event.origin
        )));
    }
    if responded.is_some() {
        return Ok(Err(format!(
            "rectification of case {} was already answered",
            body.case_id
        )));
    }
    if body.response.trim().is_empty() || body.response.chars().count() > MAX_RESPONSE_CHARS {
        return Ok(Err(format!(
            "rectification response for case {} is blank or too long",
            body.case_id
        )));
    }
    with_tx!(tx, conn => {
        sqlx::query("UPDATE rectifications SET responded_ms = $1, response = $2, responder = $3 WHERE case_id = $4")
            .bind(crate::hlc::physical_ms(event.event.hlc) as i64)
            .bind(body.response.as_str())
            .bind(body.principal.as_str())
            .bind(body.case_id.as_str())
            .execute(conn)
            .await
            .map(|_| ())
    })?;
    Ok(Ok(()))
}

/// A `seal_register` row as stored.
#[derive(sqlx::FromRow)]
struct SealRow {
    origin: String,
    seal: String,
    day: String,
    at_ms: i64,
    case_id: String,
    case_number: String,
    item_code: String,
    item_name: String,
    township: String,
    action: String,
    reason: String,
    approver: String,
    stamped_by: String,
    impressions: i64,
}

fn entry_from_row(row: SealRow) -> Result<SealEntry, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("seal register: {what}"));
    Ok(SealEntry {
        seal: row.seal.parse().map_err(|_| corrupt("seal"))?,
        date: row.day.parse().map_err(|_| corrupt("day"))?,
        at_ms: row.at_ms.max(0) as u64,
        case_id: row.case_id,
        case_number: row.case_number,
        item_code: row.item_code,
        item_name: row.item_name,
        township: row.township,
        action: row.action,
        reason: row.reason,
        approver: row.approver,
        stamped_by: row.stamped_by,
        impressions: u32::try_from(row.impressions).unwrap_or(1),
        at_node: row.origin,
    })
}

/// A `rectifications` row as [`RECTIFICATION_COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
struct RectificationRow {
    case_id: String,
    case_number: String,
    item_code: String,
    township: String,
    handler: String,
    level: String,
    opened_ms: i64,
    deadline: String,
    responded_ms: Option<i64>,
    response: Option<String>,
    responder: Option<String>,
}

fn rectification_from_row(row: RectificationRow) -> Result<Rectification, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("rectifications: {what}"));
    Ok(Rectification {
        level: RatingLevel::ALL
            .iter()
            .copied()
            .find(|l| l.as_str() == row.level)
            .ok_or_else(|| corrupt("level"))?,
        opened_ms: row.opened_ms.max(0) as u64,
        deadline: row.deadline.parse().map_err(|_| corrupt("deadline"))?,
        responded_ms: row.responded_ms.map(|ms| ms.max(0) as u64),
        case_id: row.case_id,
        case_number: row.case_number,
        item_code: row.item_code,
        township: row.township,
        handler: row.handler,
        response: row.response,
        responder: row.responder,
    })
}

const RECTIFICATION_COLUMNS: &str = "case_id, case_number, item_code, township, handler, level, opened_ms, deadline, \
     responded_ms, response, responder";

impl Store {
    /// Sets how often the node's periodic task runs [`Store::record_default_ratings`].
    pub fn set_rating_scan_interval(&self, every: std::time::Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
        self.rating_scan_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`Store::set_rating_scan_interval`].
    pub fn rating_scan_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.rating_scan_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Seal-register entries matching `filter`, oldest first.
    pub async fn seal_entries(&self, filter: &SealFilter) -> Result<Vec<SealEntry>, StoreError> {
        let mut conditions = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let mut push = |cond: &str, value: String| {
            binds.push(value);
            conditions.push(format!("{cond} ${}", binds.len()));
        };
        if let Some(seal) = filter.seal {
            push("seal =", seal.as_str().to_owned());
        }
        if let Some(from) = filter.from {
            push("day >=", from.to_string());
        }
        if let Some(to) = filter.to {
            push("day <=", to.to_string());
        }
        if let Some(township) = &filter.township {
            push("township =", township.to_string());
        }
        let mut sql = String::from("SELECT * FROM seal_register");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY at_ms, origin, seq");
        // Only fixed fragments and placeholders; every value is bound.
        let rows: Vec<SealRow> = with_pool!(self.pool(), conn => {
            let mut query = sqlx::query_as(AssertSqlSafe(sql));
            for b in binds {
                query = query.bind(b);
            }
            query.fetch_all(conn).await
        })?;
        rows.into_iter().map(entry_from_row).collect()
    }

    /// Rectification items, oldest first, of one township or all, optionally only the open ones.
    pub async fn rectifications(
        &self,
        township: Option<&NodeId>,
        open_only: bool,
    ) -> Result<Vec<Rectification>, StoreError> {
        let mut sql = format!("SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE 1 = 1");
        if township.is_some() {
            sql.push_str(" AND township = $1");
        }
        if open_only {
            sql.push_str(" AND responded_ms IS NULL");
        }
        sql.push_str(" ORDER BY opened_ms, case_id");
        let rows: Vec<RectificationRow> = with_pool!(self.pool(), conn => {
            let mut query = sqlx::query_as(AssertSqlSafe(sql));
            if let Some(t) = township {
                query = query.bind(t.as_str());
            }
            query.fetch_all(conn).await
        })?;
        rows.into_iter().map(rectification_from_row).collect()
    }

    /// One rectification item by its id (the case id).
    pub async fn rectification(&self, id: &str) -> Result<Option<Rectification>, StoreError> {
        let sql = format!("SELECT {RECTIFICATION_COLUMNS} FROM rectifications WHERE case_id = $1");
        let row: Option<RectificationRow> = with_pool!(self.pool(), conn => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
        })?;
        row.map(rectification_from_row).transpose()
    }

    /// Closes the rectification item `id` with `response`, by `principal` acting at this node,
    /// which must be the handling node. Authors a `RectificationResponse` that travels the case's
    /// path; returns the item as stored after it.
    pub async fn respond_to_rectification(
        &self,
        id: &CaseId,
        response: &str,
        principal: &Principal,
    ) -> Result<Rectification, RectificationError> {
        if response.trim().is_empty() {
            return Err(RectificationError::Invalid(
                "a response is required: say what the call-back found and what was rectified".to_owned(),
            ));
        }
        if response.chars().count() > MAX_RESPONSE_CHARS {
            return Err(RectificationError::Invalid(format!(
                "the response is longer than {MAX_RESPONSE_CHARS} characters"
            )));
        }
        let item = self
            .rectification(&id.to_string())
            .await?
            .ok_or_else(|| RectificationError::NotFound(id.to_string()))?;
        if item.handler != self.node().as_str() || principal.place() != self.node() {
            return Err(RectificationError::NotHandler(format!(
                "the rectification of case {id} is answered at {}, the node that handled the case, not by {principal}",
                item.handler
            )));
        }
        if !item.is_open() {
            return Err(RectificationError::Closed(format!(
                "the rectification of case {id} was already answered by {}",
                item.responder.unwrap_or_default()
            )));
        }
        let new = NewEvent {
            principal: principal.to_string(),
            subject: format!("case:{id}"),
            route_key: id.origin().clone(),
            route_class: RouteClass::Path,
            body: Body::RectificationResponse(pb::RectificationResponse {
                case_id: id.to_string(),
                response: response.to_owned(),
                principal: principal.to_string(),
            }),
        };
        match self.author(vec![new]).await {
            Ok(_) => {}
            Err(StoreError::Refused(reason)) => return Err(RectificationError::Closed(reason)),
            Err(e) => return Err(e.into()),
        }
        self.rectification(&id.to_string())
            .await?
            .ok_or_else(|| RectificationError::NotFound(id.to_string()))
    }

    /// Records the default rating ("basically satisfied", marked default) on every case this node
    /// holds that was issued at least [`DEFAULT_RATING_DAYS`] days before `now_ms` and is not
    /// rated. Returns the cases rated. A case rated or moved meanwhile is skipped.
    pub async fn record_default_ratings(&self, now_ms: i64) -> Result<Vec<CaseId>, StoreError> {
        let cutoff = now_ms.saturating_sub(DEFAULT_RATING_DAYS * DAY_MS);
        let rows: Vec<String> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar("SELECT view FROM cases WHERE holder = $1 AND (state = 'issued' OR state = 'delivered')")
                .bind(self.node().as_str())
                .fetch_all(conn)
                .await
        })?;
        let me = Principal::Node(self.node().clone());
        let mut rated = Vec::new();
        for json in rows {
            let view: CaseView =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("case view: {e}")))?;
            let due = view.issued_ms.is_some_and(|ms| (ms as i64) <= cutoff);
            if !due || view.rating.is_some() {
                continue;
            }
            let action = CaseAction::Rate {
                level: RatingLevel::BasicallySatisfied,
                defaulted: true,
            };
            match self.act_on_case(&view.id, action, &me).await {
                Ok(_) => rated.push(view.id.clone()),
                Err(CaseError::Store(e)) => return Err(e),
                Err(e) => tracing::info!(case = %view.id, reason = %e, "default rating skipped"),
            }
        }
        Ok(rated)
    }

    /// Received, accepted, concluded and overdue cases, the mean working days from acceptance to
    /// conclusion, and rating metrics in total and per township, window type, item and month, over
    /// the cases of `township` (or every case this node knows), as of the store's today.
    pub async fn oversight_summary(&self, township: Option<&NodeId>) -> Result<OversightSummary, StoreError> {
        let in_force = self.calendar().await?;
        let calendar = &in_force.calendar;
        let views: Vec<String> = match township {
            Some(t) => with_pool!(self.pool(), conn => {
                sqlx::query_scalar("SELECT view FROM cases WHERE township = $1")
                    .bind(t.as_str())
                    .fetch_all(conn)
                    .await
            })?,
            None => with_pool!(self.pool(), conn => {
                sqlx::query_scalar("SELECT view FROM cases").fetch_all(conn).await
            })?,
        };
        let rectifications: HashMap<String, Rectification> = self
            .rectifications(township, false)
            .await?
            .into_iter()
            .map(|r| (r.case_id.clone(), r))
            .collect();
        let mut s = OversightSummary {
            scope: township.unwrap_or(self.node()).to_string(),
            received: 0,
            accepted: 0,
            concluded: 0,
            overdue: 0,
            yellow: 0,
            overdue_note: OVERDUE_NOTE.to_owned(),
            avg_working_days_to_conclusion: 0.0,
            ratings: RatingMetrics::default(),
            rows: Vec::new(),
            windows: Vec::new(),
        };
        let mut per_window: BTreeMap<(String, u32), WindowCounts> = BTreeMap::new();
        let mut windows: HashMap<String, String> = HashMap::new();
        let mut groups: BTreeMap<(String, String, String, String), RatingMetrics> = BTreeMap::new();
        let (mut days_total, mut days_count) = (0_i64, 0_i64);
        for json in views {
            let view: CaseView =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("case view: {e}")))?;
            s.received += 1;
            if let Some(accepted) = view.accepted_ms {
                s.accepted += 1;
                if let Some(concluded) = view.concluded_ms {
                    days_total += calendar.working_days_between(ms_date(accepted), ms_date(concluded));
                    days_count += 1;
                }
            }
            s.concluded += u64::from(view.concluded_ms.is_some());
            // Windows are the front desk's: the township that accepts and issues.
            if let Some(w) = view.accepted_window {
                per_window
                    .entry((view.front_desk().to_string(), w))
                    .or_default()
                    .accepted += 1;
            }
            if let Some(w) = view.issued_window {
                per_window.entry((view.front_desk().to_string(), w)).or_default().issued += 1;
            }
            let rect = rectifications.get(&view.id.to_string());
            s.ratings.add_case(&view, rect);
            let code = view.terms.implementation_code.clone();
            let window = match windows.get(&code) {
                Some(w) => w.clone(),
                None => {
                    let w = self
                        .catalogue_item(&code)
                        .await?
                        .map(|item| item.window.as_str().to_owned())
                        .unwrap_or_else(|| "unknown".to_owned());
                    windows.insert(code.clone(), w.clone());
                    w
                }
            };
            let month = view
                .concluded_ms
                .map(|ms| ms_date(ms).format("%Y-%m").to_string())
                .unwrap_or_else(|| "open".to_owned());
            groups
                .entry((view.front_desk().to_string(), window, code, month))
                .or_default()
                .add_case(&view, rect);
        }
        // Overdue is what the warnings say (case/supervision.rs), one count per case.
        let warnings = self
            .warnings(&WarningFilter {
                min_level: None,
                rule: None,
                township: township.cloned(),
            })
            .await?;
        let mut levels: HashMap<&str, WarningLevel> = HashMap::new();
        for w in &warnings.warnings {
            let level = levels.entry(w.case_id.as_str()).or_insert(w.level);
            *level = (*level).max(w.level);
        }
        s.overdue = levels.values().filter(|l| **l == WarningLevel::Red).count() as u64;
        s.yellow = levels.values().filter(|l| **l == WarningLevel::Yellow).count() as u64;
        if days_count > 0 {
            s.avg_working_days_to_conclusion = days_total as f64 / days_count as f64;
        }
        s.windows = per_window
            .into_iter()
            .map(|((township, window), counts)| WindowRow {
                township,
                window,
                counts,
            })
            .collect();
        s.rows = groups
            .into_iter()
            .map(|((township, window, item_code, month), metrics)| MetricsRow {
                township,
                window,
                item_code,
                month,
                metrics,
            })
            .collect();
        Ok(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_zero_without_a_denominator() {
        let m = RatingMetrics::default();
        assert_eq!((m.coverage(), m.good_rate(), m.on_time_rate()), (0.0, 0.0, 0.0));
        let m = RatingMetrics {
            concluded: 4,
            rated: 2,
            active: 1,
            defaulted: 1,
            good: 1,
            bad: 1,
            rectifications: 1,
            rectified: 1,
            rectified_on_time: 0,
        };
        assert_eq!(
            (m.coverage(), m.active_rate(), m.good_rate(), m.bad_rate()),
            (0.5, 0.25, 0.5, 0.5)
        );
        assert_eq!((m.rectification_rate(), m.on_time_rate()), (1.0, 0.0));
    }
}
