//! Red and yellow warnings over the cases a node knows, and the county's supervision records
//! (督办).
//!
//! This module owns:
//! - [`Store::warnings`]: the cases in this node's table (its subtree: cases are routed to the
//!   node where they started and its ancestors) whose stored first warning day has come,
//!   evaluated with [`warnings::evaluate`] on the calendar in force, today by the node's clock,
//!   with the configured thresholds; and keeping those stored days true when the calendar or
//!   the thresholds change;
//! - [`Store::scan_supervision`]: at the county, a supervision record for each red clock not yet
//!   recorded; [`Store::supervisions`] and [`Store::close_supervision`] (a reason is required).
//!
//! Supervision records are county-local rows, not events. Only the county opens, reads and
//! closes them; the case's holder learns of the red card from its own warning list, which every
//! tier computes from the same replicated case. An event would only carry the county's
//! bookkeeping down a path where nobody acts on it, and closing one would need a second event.
//! If townships are ever to answer a supervision record themselves, it becomes a path-class
//! event routed to the case's route key.

use chrono::NaiveDate;
use sqlx::AssertSqlSafe;

use crate::case::CaseView;
use crate::case::warnings::{self, CaseClock, WarningLevel, WarningRule, WarningThresholds};
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::store::{CalendarInForce, Store, StoreError};
use crate::{with_pool, with_tx};

/// States in which no clock can run any more: nothing to evaluate.
const SETTLED: &str = "('issued', 'delivered', 'rated', 'not_accepted')";

/// Which warnings a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarningFilter {
    /// This level or worse; `None` means yellow or red.
    pub min_level: Option<WarningLevel>,
    pub rule: Option<WarningRule>,
    /// Only cases served by this township.
    pub township: Option<NodeId>,
}

/// One running clock of one case that warns today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseWarning {
    pub case_id: String,
    pub case_number: String,
    pub item_code: String,
    pub item_name: String,
    pub holder: NodeId,
    pub township: NodeId,
    pub rule: WarningRule,
    pub level: WarningLevel,
    pub working_days_left: i64,
    pub deadline: NaiveDate,
}

/// What a warning list was evaluated on.
#[derive(Debug, Clone)]
pub struct WarningList {
    /// Red first, then fewest working days left, then case number.
    pub warnings: Vec<CaseWarning>,
    pub today: NaiveDate,
    pub calendar_version: String,
}

/// A supervision record (督办).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervision {
    pub id: u64,
    pub case_id: String,
    pub case_number: String,
    pub item_code: String,
    pub holder: String,
    pub rule: WarningRule,
    pub deadline: String,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
    pub closed_by: Option<String>,
    pub close_reason: Option<String>,
}

/// Why a supervision record was not closed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisionError {
    #[error("a reason is required to close a supervision record: say what was done about the case")]
    MissingReason,
    #[error("no supervision record {0} at this node")]
    NotFound(u64),
    #[error("supervision record {0} is already closed")]
    AlreadyClosed(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Names the calendar and thresholds stored warning days were computed on.
fn warning_basis(calendar: &CalendarInForce, thresholds: &WarningThresholds) -> String {
    format!(
        "calendar {} {:?}; thresholds {thresholds:?}",
        calendar.published_seq.unwrap_or(0),
        calendar.calendar.version()
    )
}

fn rule_str(rule: WarningRule) -> &'static str {
    match rule {
        WarningRule::Acceptance => "acceptance",
        WarningRule::Processing => "processing",
        WarningRule::Issuing => "issuing",
    }
}

fn rule_from_str(s: &str) -> Result<WarningRule, StoreError> {
    match s {
        "acceptance" => Ok(WarningRule::Acceptance),
        "processing" => Ok(WarningRule::Processing),
        "issuing" => Ok(WarningRule::Issuing),
        other => Err(StoreError::Corrupt(format!("supervision rule {other:?}"))),
    }
}

impl Store {
    /// The warnings on the cases this node knows, evaluated now (see the module comment).
    ///
    /// Reads only the cases whose stored first warning day (`warn_from`, kept by every case
    /// fold) is today or earlier, so the cost follows the number of warning cases, not the
    /// size of the store. The stored days are only as good as the calendar and thresholds they
    /// were computed on; when either has changed since, they are recomputed first.
    pub async fn warnings(&self, filter: &WarningFilter) -> Result<WarningList, StoreError> {
        let in_force = self.calendar().await?;
        let calendar = &in_force.calendar;
        let thresholds = self.warning_thresholds();
        let basis = warning_basis(&in_force, &thresholds);
        if self.stored_warning_basis().await?.as_deref() != Some(basis.as_str()) {
            self.refresh_warning_index().await?;
        }
        let today = self.today();
        let min_level = filter
            .min_level
            .unwrap_or(WarningLevel::Yellow)
            .max(WarningLevel::Yellow);
        // The rows come back as one JSON array: sqlx's SQLite driver hands every row over a
        // channel from its worker thread, and thousands of hand-overs cost more than the query.
        const ROW: &str = "case_id, case_number, item_code, item_name, holder, township, clock";
        let filter_sql = match &filter.township {
            Some(_) => "township = $1 AND warn_from <= $2",
            None => "warn_from <= $1",
        };
        let sql = match self.backend() {
            crate::store::Backend::Sqlite => {
                format!("SELECT json_group_array(json_array({ROW})) FROM cases WHERE {filter_sql}")
            }
            crate::store::Backend::Postgres => {
                format!("SELECT COALESCE(json_agg(json_build_array({ROW}))::text, '[]') FROM cases WHERE {filter_sql}")
            }
        };
        let today_text = today.format("%Y-%m-%d").to_string();
        let json: String = with_pool!(self.pool(), conn => {
            let mut query = sqlx::query_scalar(AssertSqlSafe(sql));
            if let Some(township) = &filter.township {
                query = query.bind(township.as_str());
            }
            query.bind(today_text.as_str()).fetch_one(conn).await
        })?;
        type WarningRow = (String, String, String, String, String, String, Option<String>);
        let rows: Vec<WarningRow> =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("warning rows: {e}")))?;
        let mut out = Vec::new();
        for (case_id, case_number, item_code, item_name, holder, township, clock_json) in rows {
            let Some(clock_json) = clock_json else {
                continue;
            };
            let clock: CaseClock = serde_json::from_str(&clock_json)
                .map_err(|e| StoreError::Corrupt(format!("clock of case {case_id}: {e}")))?;
            let running = warnings::evaluate(&clock, today, calendar, &thresholds);
            if running.is_empty() {
                continue;
            }
            let holder = NodeId::new(holder).map_err(|e| StoreError::Corrupt(format!("holder: {e}")))?;
            let township = NodeId::new(township).map_err(|e| StoreError::Corrupt(format!("township: {e}")))?;
            for w in running {
                if w.level < min_level || filter.rule.is_some_and(|r| r != w.rule) {
                    continue;
                }
                out.push(CaseWarning {
                    case_id: case_id.clone(),
                    case_number: case_number.clone(),
                    item_code: item_code.clone(),
                    item_name: item_name.clone(),
                    holder: holder.clone(),
                    township: township.clone(),
                    rule: w.rule,
                    level: w.level,
                    working_days_left: w.working_days_left,
                    deadline: w.deadline,
                });
            }
        }
        out.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(a.working_days_left.cmp(&b.working_days_left))
                .then_with(|| a.case_number.cmp(&b.case_number))
        });
        Ok(WarningList {
            warnings: out,
            today,
            calendar_version: calendar.version().to_owned(),
        })
    }

    async fn stored_warning_basis(&self) -> Result<Option<String>, StoreError> {
        Ok(
            with_pool!(self.pool(), conn => sqlx::query_scalar("SELECT value FROM node_meta WHERE key = 'warning_basis'")
                .fetch_optional(conn).await)?,
        )
    }

    /// Recomputes every unsettled case's warning columns on the calendar in force and the
    /// thresholds configured now, and records that basis. Runs when a calendar was published
    /// or the thresholds changed since the last time (and once on a store that predates the
    /// columns); under the writer, so no case fold interleaves.
    async fn refresh_warning_index(&self) -> Result<(), StoreError> {
        let mut write = self.bookkeeping().await?;
        let in_force = crate::calendar::projection::in_force_tx(&mut write.tx, &self.calendar_cache).await?;
        let thresholds = self.warning_thresholds();
        let sql = format!("SELECT case_id, view FROM cases WHERE state NOT IN {SETTLED}");
        let rows: Vec<(String, String)> = with_tx!(&mut write.tx, conn => {
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(conn).await
        })?;
        let count = rows.len();
        for (case_id, json) in rows {
            let view: CaseView =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("case view {case_id}: {e}")))?;
            let (clock, warn_from) = crate::case::projection::warning_columns(&view, &in_force.calendar, &thresholds);
            with_tx!(&mut write.tx, conn => {
                sqlx::query("UPDATE cases SET clock = $1, warn_from = $2 WHERE case_id = $3")
                    .bind(clock.as_deref())
                    .bind(warn_from.as_deref())
                    .bind(case_id.as_str())
                    .execute(conn)
                    .await
                    .map(|_| ())
            })?;
        }
        let basis = warning_basis(&in_force, &thresholds);
        with_tx!(&mut write.tx, conn => {
            sqlx::query(
                "INSERT INTO node_meta (key, value) VALUES ('warning_basis', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(basis.as_str())
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        write.commit().await?;
        tracing::info!(
            cases = count,
            calendar = in_force.calendar.version(),
            "warning index recomputed"
        );
        Ok(())
    }

    /// The processing deadline stored for a case when it was last folded (`None` before
    /// acceptance, while paused, or for an unknown case).
    pub async fn case_deadline(&self, case_id: &str) -> Result<Option<NaiveDate>, StoreError> {
        let text: Option<Option<String>> = with_pool!(self.pool(), conn => sqlx::query_scalar("SELECT deadline FROM cases WHERE case_id = $1")
            .bind(case_id.to_owned())
            .fetch_optional(conn).await)?;
        Ok(text
            .flatten()
            .and_then(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok()))
    }

    /// At the county: opens a supervision record for every red clock not yet recorded (one per
    /// case, rule and missed deadline). Returns how many were opened; elsewhere does nothing.
    pub async fn scan_supervision(&self) -> Result<usize, StoreError> {
        if self.node().tier() != Tier::County {
            return Ok(0);
        }
        let red = self
            .warnings(&WarningFilter {
                min_level: Some(WarningLevel::Red),
                ..Default::default()
            })
            .await?;
        let now = self.now_ms();
        let mut opened = 0;
        for w in red.warnings {
            let deadline = w.deadline.format("%Y-%m-%d").to_string();
            // The unique index makes a repeated (or concurrent) scan add nothing for a known red.
            let inserted = with_pool!(self.pool(), conn => sqlx::query(
                "INSERT INTO supervisions (case_id, case_number, item_code, holder, rule, deadline, opened_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (case_id, rule, deadline) DO NOTHING",
            )
            .bind(w.case_id.clone())
            .bind(w.case_number.clone())
            .bind(w.item_code.clone())
            .bind(w.holder.to_string())
            .bind(rule_str(w.rule).to_owned())
            .bind(deadline)
            .bind(now)
            .execute(conn).await.map(|done| done.rows_affected()))?;
            if inserted == 0 {
                continue;
            }
            tracing::warn!(case = %w.case_number, rule = rule_str(w.rule), holder = %w.holder, "supervision opened on a red case");
            opened += 1;
        }
        Ok(opened)
    }

    /// Supervision records, newest first; open ones only unless `include_closed`.
    pub async fn supervisions(&self, include_closed: bool) -> Result<Vec<Supervision>, StoreError> {
        let sql = if include_closed {
            "SELECT id, case_id, case_number, item_code, holder, rule, deadline, opened_ms, closed_ms, closed_by, \
             close_reason FROM supervisions ORDER BY id DESC"
        } else {
            "SELECT id, case_id, case_number, item_code, holder, rule, deadline, opened_ms, closed_ms, closed_by, \
             close_reason FROM supervisions WHERE closed_ms IS NULL ORDER BY id DESC"
        };
        type SupervisionRow = (
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<SupervisionRow> = with_pool!(self.pool(), conn => sqlx::query_as(sql).fetch_all(conn).await)?;
        rows.into_iter()
            .map(
                |(
                    id,
                    case_id,
                    case_number,
                    item_code,
                    holder,
                    rule,
                    deadline,
                    opened_ms,
                    closed_ms,
                    closed_by,
                    close_reason,
                )| {
                    Ok(Supervision {
                        id: id as u64,
                        case_id,
                        case_number,
                        item_code,
                        holder,
                        rule: rule_from_str(&rule)?,
                        deadline,
                        opened_ms,
                        closed_ms,
                        closed_by,
                        close_reason,
                    })
                },
            )
            .collect()
    }

    /// Closes supervision record `id` with `reason` (required), by `principal`.
    pub async fn close_supervision(
        &self,
        id: u64,
        reason: &str,
        principal: &Principal,
    ) -> Result<Supervision, SupervisionError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(SupervisionError::MissingReason);
        }
        let now = self.now_ms();
        let closed = with_pool!(self.pool(), conn => {
            sqlx::query(
                "UPDATE supervisions SET closed_ms = $1, closed_by = $2, close_reason = $3 WHERE id = $4 AND closed_ms IS NULL",
            )
            .bind(now)
            .bind(principal.to_string())
            .bind(reason)
            .bind(id as i64)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(StoreError::from)?;
        let record = self.supervisions(true).await?.into_iter().find(|s| s.id == id);
        match (closed, record) {
            (1, Some(record)) => Ok(record),
            (_, Some(_)) => Err(SupervisionError::AlreadyClosed(id)),
            (_, None) => Err(SupervisionError::NotFound(id)),
        }
    }
}
