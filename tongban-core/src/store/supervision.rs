//! Red and yellow warnings over the cases a node knows, and the county's supervision records
//! (督办).
//!
//! This module owns:
//! - [`Store::warnings`]: every case in this node's table (its subtree: cases are routed to the
//!   node where they started and its ancestors) evaluated with [`warnings::evaluate`] on the
//!   calendar in force, today by the node's clock, with the configured thresholds;
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
use sqlx::Row;

use super::{Store, StoreError};
use crate::case::CaseView;
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::warnings::{self, WarningLevel, WarningRule};

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
    pub async fn warnings(&self, filter: &WarningFilter) -> Result<WarningList, StoreError> {
        let calendar = self.calendar().await?.calendar;
        let today = self.today();
        let thresholds = self.warning_thresholds();
        let min_level = filter
            .min_level
            .unwrap_or(WarningLevel::Yellow)
            .max(WarningLevel::Yellow);
        let rows = match &filter.township {
            Some(township) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT view FROM cases WHERE township = $1 AND state NOT IN {SETTLED}"
                )))
                .bind(township.to_string())
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT view FROM cases WHERE state NOT IN {SETTLED}"
                )))
                .fetch_all(self.pool())
                .await?
            }
        };
        let mut out = Vec::new();
        for row in rows {
            let json: String = row.try_get(0)?;
            let view: CaseView =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("case view: {e}")))?;
            for w in warnings::evaluate(&view.case_clock(), today, &calendar, &thresholds) {
                if w.level < min_level || filter.rule.is_some_and(|r| r != w.rule) {
                    continue;
                }
                out.push(CaseWarning {
                    case_id: view.id.to_string(),
                    case_number: view.number.to_string(),
                    item_code: view.terms.item_code.clone(),
                    item_name: view.terms.name.clone(),
                    holder: view.holder.clone(),
                    township: view.front_desk(),
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

    /// The processing deadline stored for a case when it was last folded (`None` before
    /// acceptance, while paused, or for an unknown case).
    pub async fn case_deadline(&self, case_id: &str) -> Result<Option<NaiveDate>, StoreError> {
        let text: Option<Option<String>> = sqlx::query_scalar("SELECT deadline FROM cases WHERE case_id = $1")
            .bind(case_id.to_owned())
            .fetch_optional(self.pool())
            .await?;
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
            let inserted = sqlx::query(
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
            .execute(self.pool())
            .await?;
            if inserted.rows_affected() == 0 {
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
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(Supervision {
                    id: r.try_get::<i64, _>(0)? as u64,
                    case_id: r.try_get(1)?,
                    case_number: r.try_get(2)?,
                    item_code: r.try_get(3)?,
                    holder: r.try_get(4)?,
                    rule: rule_from_str(&r.try_get::<String, _>(5)?)?,
                    deadline: r.try_get(6)?,
                    opened_ms: r.try_get(7)?,
                    closed_ms: r.try_get(8)?,
                    closed_by: r.try_get(9)?,
                    close_reason: r.try_get(10)?,
                })
            })
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
        let done = sqlx::query(
            "UPDATE supervisions SET closed_ms = $1, closed_by = $2, close_reason = $3 WHERE id = $4 AND closed_ms IS NULL",
        )
        .bind(now)
        .bind(principal.to_string())
        .bind(reason.to_owned())
        .bind(id as i64)
        .execute(self.pool())
        .await
        .map_err(StoreError::from)?;
        let record = self.supervisions(true).await?.into_iter().find(|s| s.id == id);
        match (done.rows_affected(), record) {
            (1, Some(record)) => Ok(record),
            (_, Some(_)) => Err(SupervisionError::AlreadyClosed(id)),
            (_, None) => Err(SupervisionError::NotFound(id)),
        }
    }
}
