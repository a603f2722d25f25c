//! The case projection: [`CaseView`] is what every node that a case routes to knows about it,
//! built by [`CaseView::open`] from the submission and then by [`CaseView::apply`] from each
//! decided [`Transition`], in order. Folding is pure and deterministic: the same transitions in
//! the same order always give the same view, on every replica.

use serde::{Deserialize, Serialize};

use chrono::NaiveDate;

use super::id::{CaseId, CaseNumber, local_date};
use super::model::{
    ActionKind, Actor, ApplicantSummary, CaseAction, CaseState, ItemTerms, Outcome, RatingLevel, StateKind,
};
use super::rules::{Refusal, Transition, decide, tiers_for};
use crate::calendar::{PausedInterval, WorkingCalendar};
use crate::case::warnings::CaseClock;
use crate::catalogue::SealType;
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::staff::StaffStamp;

/// What the node that starts a case knows at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// Minted at the submitting node ([`CaseId::new`]).
    pub id: CaseId,
    /// Allocated by the submitting node ([`CaseNumber::new`]).
    pub number: CaseNumber,
    /// The item's terms in the submitting node's catalogue; pinned again at acceptance.
    pub terms: ItemTerms,
    pub applicant: ApplicantSummary,
}

/// One row of the case's process record (办理过程): a step taken, by whom, where and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    pub action: CaseAction,
    /// `None` for the submission that opened the case.
    pub from_state: Option<CaseState>,
    pub to_state: CaseState,
    /// The authoring principal, as text (`operator:441424100:wang.fang`).
    pub by: String,
    /// The node the step was taken at.
    pub at_node: NodeId,
    pub at_ms: u64,
    /// The reason, opinion or materials list, if the action carries one.
    pub reason: Option<String>,
    /// The holder after the step.
    pub holder: NodeId,
    /// The staff member who took the step (name, post, window); `None` for a node's own step
    /// or one taken where no roster was kept yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<StaffStamp>,
}

/// The decision taken on a case (审批决定).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub approved: bool,
    pub reason: Option<String>,
    /// `None` for an entrusted item's decision, which is not stamped (see
    /// [`crate::case::decision_seal`]).
    #[serde(default)]
    pub seal: Option<SealType>,
    pub by: String,
    /// The approver, when the deciding node keeps a roster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<StaffStamp>,
    pub at_node: NodeId,
    pub at_ms: u64,
}

/// The applicant's rating (好差评).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingRecord {
    pub level: RatingLevel,
    /// The automatic "basically satisfied" recorded when the applicant did not rate in time.
    pub defaulted: bool,
    pub by: String,
    pub at_node: NodeId,
    pub at_ms: u64,
}

/// An extension of the promised limit (延期), as the case's history records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRecord {
    /// Working days added to the promised limit.
    pub days: u32,
    pub reason: String,
    /// The head of the organ who approved it.
    pub approver: String,
    /// Who recorded it, where and when.
    pub by: String,
    pub at_node: NodeId,
    pub at_ms: u64,
}

/// A stretch of time the promised-time clock stood still.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseInterval {
    /// The paused state (supplement requested, special procedure or suspended).
    pub state: StateKind,
    pub from_ms: u64,
    /// `None` while the case is still paused.
    pub until_ms: Option<u64>,
}

/// The projection of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseView {
    pub id: CaseId,
    pub number: CaseNumber,
    /// The item terms: from the submitting node's catalogue until acceptance, then those of the
    /// catalogue version the case was accepted under.
    pub terms: ItemTerms,
    /// The catalogue version the case was accepted under; `None` before acceptance.
    pub accepted_under: Option<u64>,
    pub applicant: ApplicantSummary,
    /// The node where the case started (a village service point or a township window).
    pub origin: NodeId,
    /// The only node that may move the case now.
    pub holder: NodeId,
    pub state: CaseState,
    /// True while the promised-time clock is stopped.
    pub paused: bool,
    /// When the current pause began.
    pub paused_since_ms: Option<u64>,
    pub decision: Option<DecisionRecord>,
    /// How the case ended, once concluded (not set for a case not accepted).
    pub outcome: Option<Outcome>,
    /// The seal the result was issued under.
    pub issued_seal: Option<SealType>,
    /// Whether the result was delivered by courier, once delivered.
    pub delivered_by_courier: Option<bool>,
    pub rating: Option<RatingRecord>,
    pub submitted_ms: u64,
    pub received_ms: Option<u64>,
    pub accepted_ms: Option<u64>,
    pub concluded_ms: Option<u64>,
    pub issued_ms: Option<u64>,
    /// The window that accepted the case, and the one that issued its result, when the step was
    /// taken by someone seated at a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_window: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_window: Option<u32>,
    /// Every step, oldest first; the first is the submission.
    pub history: Vec<StageRecord>,
}

impl CaseView {
    /// Opens a case at the actor's node (a village service point or a township window): the
    /// id and number must have been made there. The case starts `submitted`, held by that node.
    pub fn open(submission: Submission, actor: &Actor) -> Result<CaseView, Refusal> {
        if let Principal::Courier { .. } = actor.principal {
            return Err(Refusal::WrongRole {
                role: actor.principal.role(),
            });
        }
        let here = actor.node();
        let delegation = submission.terms.delegation;
        if !tiers_for(ActionKind::Submit, delegation).contains(&here.tier()) {
            return Err(Refusal::WrongTier {
                tier: here.tier(),
                action: ActionKind::Submit,
                delegation,
            });
        }
        let invalid = |field: &'static str, message: String| Refusal::Invalid {
            action: ActionKind::Submit,
            field,
            message,
        };
        if submission.id.origin() != here {
            return Err(invalid("id", format!("{} was not minted at {here}", submission.id)));
        }
        if submission.number.node() != here {
            return Err(invalid(
                "number",
                format!("{} was not allocated at {here}", submission.number),
            ));
        }
        if submission.applicant.name.trim().is_empty() {
            return Err(invalid("applicant.name", "must not be blank".to_owned()));
        }
        let record = StageRecord {
            action: CaseAction::Submit,
            from_state: None,
            to_state: CaseState::Submitted,
            by: actor.principal.to_string(),
            at_node: here.clone(),
            at_ms: actor.at_ms,
            reason: None,
            holder: here.clone(),
            staff: actor.staff.clone(),
        };
        Ok(CaseView {
            id: submission.id,
            number: submission.number,
            terms: submission.terms,
            accepted_under: None,
            applicant: submission.applicant,
            origin: here.clone(),
            holder: here.clone(),
            state: CaseState::Submitted,
            paused: false,
            paused_since_ms: None,
            decision: None,
            outcome: None,
            issued_seal: None,
            delivered_by_courier: None,
            rating: None,
            submitted_ms: actor.at_ms,
            received_ms: None,
            accepted_ms: None,
            concluded_ms: None,
            issued_ms: None,
            accepted_window: None,
            issued_window: None,
            history: vec![record],
        })
    }

    /// The township whose window serves the case: the origin township, or the township of the
    /// origin village. Results come back here to be issued.
    pub fn front_desk(&self) -> NodeId {
        match self.origin.tier() {
            Tier::Village => self.origin.parent().unwrap_or_else(|| self.origin.clone()),
            _ => self.origin.clone(),
        }
    }

    /// Folds a transition [`decide`] made for this view in its current state. Pure and
    /// deterministic; it does not re-check legality (call `decide` for that).
    pub fn apply(&mut self, t: &Transition) {
        let by = t.by.to_string();
        match &t.action {
            CaseAction::Receive => self.received_ms = Some(t.at_ms),
            CaseAction::Accept { terms } => {
                self.terms = terms.clone();
                self.accepted_under = Some(terms.catalogue_version);
                self.accepted_ms = Some(t.at_ms);
                self.accepted_window = t.staff.as_ref().and_then(|s| s.window);
            }
            CaseAction::Decide {
                approve, reason, seal, ..
            } => {
                self.decision = Some(DecisionRecord {
                    approved: *approve,
                    reason: (!reason.trim().is_empty()).then(|| reason.clone()),
                    seal: *seal,
                    by: by.clone(),
                    staff: t.staff.clone(),
                    at_node: t.at_node.clone(),
                    at_ms: t.at_ms,
                });
            }
            CaseAction::SendBack { .. } => self.decision = None,
            CaseAction::Issue { seal, .. } => {
                self.issued_seal = Some(*seal);
                self.issued_ms = Some(t.at_ms);
                self.issued_window = t.staff.as_ref().and_then(|s| s.window);
            }
            CaseAction::Deliver { by_courier } => self.delivered_by_courier = Some(*by_courier),
            CaseAction::Rate { level, defaulted } => {
                self.rating = Some(RatingRecord {
                    level: *level,
                    defaulted: *defaulted,
                    by: by.clone(),
                    at_node: t.at_node.clone(),
                    at_ms: t.at_ms,
                });
            }
            _ => {}
        }
        if let CaseState::Concluded { outcome } = &t.to
            && t.from.kind() != StateKind::Concluded
        {
            self.outcome = Some(outcome.clone());
            self.concluded_ms = Some(t.at_ms);
        }
        let paused = t.to.is_paused();
        if !paused {
            self.paused_since_ms = None;
        } else if !self.paused {
            self.paused_since_ms = Some(t.at_ms);
        }
        self.paused = paused;
        self.state = t.to.clone();
        self.holder = t.holder.clone();
        self.history.push(StageRecord {
            action: t.action.clone(),
            from_state: Some(t.from.clone()),
            to_state: t.to.clone(),
            by,
            at_node: t.at_node.clone(),
            at_ms: t.at_ms,
            reason: t.reason.clone(),
            holder: t.holder.clone(),
            staff: t.staff.clone(),
        });
    }

    /// [`decide`] then [`CaseView::apply`]: takes the step if it is legal and returns it.
    pub fn act(&mut self, action: &CaseAction, actor: &Actor) -> Result<Transition, Refusal> {
        let t = decide(self, action, actor)?;
        self.apply(&t);
        Ok(t)
    }

    /// The extensions granted (延期), oldest first, read from the history.
    pub fn extensions(&self) -> Vec<ExtensionRecord> {
        self.history
            .iter()
            .filter_map(|r| match &r.action {
                CaseAction::Extend { days, reason, approver } => Some(ExtensionRecord {
                    days: *days,
                    reason: reason.clone(),
                    approver: approver.clone(),
                    by: r.by.clone(),
                    at_node: r.at_node.clone(),
                    at_ms: r.at_ms,
                }),
                _ => None,
            })
            .collect()
    }

    /// Working days the extensions add to the promised limit.
    pub fn extension_days(&self) -> u32 {
        self.extensions().iter().fold(0u32, |sum, e| sum.saturating_add(e.days))
    }

    /// The stretches the clock stood still, oldest first (the last may still be open).
    pub fn pause_intervals(&self) -> Vec<PauseInterval> {
        let mut out: Vec<PauseInterval> = Vec::new();
        for r in &self.history {
            let was = r.from_state.as_ref().is_some_and(CaseState::is_paused);
            let now = r.to_state.is_paused();
            if was
                && !now
                && let Some(open) = out.last_mut()
            {
                open.until_ms = Some(r.at_ms);
            }
            if now && !was {
                out.push(PauseInterval {
                    state: r.to_state.kind(),
                    from_ms: r.at_ms,
                    until_ms: None,
                });
            }
        }
        out
    }

    /// The inputs of the warning rules ([`crate::case::warnings::evaluate`]) as dates in Asia/Shanghai,
    /// all derived from this view so every tier evaluates the same case the same way.
    ///
    /// - `received`: the day the window received the papers, or the submission day before that
    ///   (the applicant handed them in then; a village forwards them on the same footing).
    /// - `decided`: the decision that yields a result to hand over — the recorded decision, or
    ///   the conclusion of an immediate item; returned, withdrawn, terminated and not-accepted
    ///   cases have none (nothing to issue) and only stop the other clocks.
    /// - `extension_days`: the working days every extension granted (延期) adds.
    pub fn case_clock(&self) -> CaseClock {
        let day = local_date;
        let decided = self.decision.as_ref().map(|d| d.at_ms).or(match self.outcome {
            Some(Outcome::Approved | Outcome::Refused { .. }) => self.concluded_ms,
            _ => None,
        });
        let paused = self
            .pause_intervals()
            .iter()
            .map(|p| PausedInterval {
                from: day(p.from_ms),
                until: p.until_ms.map(day),
            })
            .collect();
        CaseClock {
            received: day(self.received_ms.unwrap_or(self.submitted_ms)),
            accepted: self.accepted_ms.map(day),
            promised_days: self.terms.promised_days,
            extension_days: self.extension_days(),
            paused,
            currently_paused: self.paused,
            decided: decided.map(day),
            issued: self.issued_ms.map(day),
            concluded: self.concluded_ms.is_some() || self.state.kind() == StateKind::NotAccepted,
        }
    }

    /// The processing deadline on `calendar`: the promised limit plus any extension counted from
    /// acceptance, pushed back by every paused working day. `None` before acceptance and while paused (the day the
    /// clock restarts is not known yet).
    pub fn deadline(&self, calendar: &WorkingCalendar) -> Option<NaiveDate> {
        let clock = self.case_clock();
        calendar.deadline(
            clock.accepted?,
            clock.promised_days,
            clock.extension_days,
            &clock.paused,
        )
    }

    /// Milliseconds the clock stood still up to `now_ms` (open pauses count up to `now_ms`).
    pub fn paused_ms(&self, now_ms: u64) -> u64 {
        self.pause_intervals()
            .iter()
            .map(|p| p.until_ms.unwrap_or(now_ms).saturating_sub(p.from_ms))
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod clock_tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::calendar::{PausedInterval, WorkingCalendar};
    use crate::case::{ApplicantKind, SpecialProcedureKind};
    use crate::catalogue::{Category, DelegationMode};

    const TOWNSHIP: &str = "441424100";

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    /// 09:00 in Shanghai on 2026-`m`-`day`, as Unix milliseconds.
    fn at(m: u32, day: u32) -> u64 {
        (d(m, day).and_hms_opt(1, 0, 0).unwrap().and_utc().timestamp_millis()) as u64
    }

    fn actor(ms: u64) -> Actor {
        Actor::new(
            Principal::operator(NodeId::new(TOWNSHIP).unwrap(), "wang.fang").unwrap(),
            ms,
        )
    }

    fn terms() -> ItemTerms {
        ItemTerms {
            item_code: "000201001000".to_owned(),
            implementation_code: "T-ALL".to_owned(),
            name: "农村村民住宅用地审批".to_owned(),
            delegation: DelegationMode::Authorised,
            category: Category::GovernmentService,
            immediate: false,
            promised_days: 5,
            statutory_days: 20,
            catalogue_version: 1,
        }
    }

    #[test]
    fn the_case_clock_and_deadline_follow_the_view() {
        let here = NodeId::new(TOWNSHIP).unwrap();
        let submission = Submission {
            id: CaseId::new(&here, 1, 1),
            number: CaseNumber::new(&here, d(3, 2), 1).unwrap(),
            terms: terms(),
            applicant: ApplicantSummary {
                kind: ApplicantKind::Person,
                name: "李明".to_owned(),
                id_masked: String::new(),
                phone: None,
            },
        };
        let mut view = CaseView::open(submission, &actor(at(3, 2))).unwrap();
        let cal = WorkingCalendar::china_2026().unwrap();
        assert_eq!(view.case_clock().received, d(3, 2), "the submission day before receipt");
        assert_eq!(view.deadline(&cal), None, "no deadline before acceptance");
        view.act(&CaseAction::Receive, &actor(at(3, 2))).unwrap();
        view.act(&CaseAction::Accept { terms: terms() }, &actor(at(3, 2)))
            .unwrap();
        assert_eq!(view.deadline(&cal), Some(d(3, 9)), "5 working days after Monday 03-02");
        view.act(&CaseAction::StartHandling, &actor(at(3, 3))).unwrap();
        let special = CaseAction::StartSpecialProcedure {
            kind: SpecialProcedureKind::Hearing,
            reason: "听证".to_owned(),
        };
        view.act(&special, &actor(at(3, 5))).unwrap();
        assert_eq!(view.deadline(&cal), None, "paused: the restart day is not known yet");
        assert!(view.case_clock().currently_paused);
        view.act(&CaseAction::EndSpecialProcedure, &actor(at(3, 10))).unwrap();
        let clock = view.case_clock();
        assert_eq!(clock.paused, vec![PausedInterval::closed(d(3, 5), d(3, 10))]);
        assert_eq!(clock.accepted, Some(d(3, 2)));
        assert!(clock.decided.is_none() && !clock.concluded);
        // 03-05, 03-06 and 03-09 were paused working days: three days later.
        assert_eq!(view.deadline(&cal), Some(d(3, 12)));
    }

    #[test]
    fn an_extension_moves_the_deadline_and_the_warnings_by_working_days() {
        use crate::case::warnings::{WarningLevel, WarningRule, WarningThresholds, evaluate};
        let here = NodeId::new(TOWNSHIP).unwrap();
        let submission = Submission {
            id: CaseId::new(&here, 1, 2),
            number: CaseNumber::new(&here, d(3, 2), 2).unwrap(),
            terms: terms(),
            applicant: ApplicantSummary {
                kind: ApplicantKind::Person,
                name: "李明".to_owned(),
                id_masked: String::new(),
                phone: None,
            },
        };
        let mut view = CaseView::open(submission, &actor(at(3, 2))).unwrap();
        let cal = WorkingCalendar::china_2026().unwrap();
        view.act(&CaseAction::Receive, &actor(at(3, 2))).unwrap();
        view.act(&CaseAction::Accept { terms: terms() }, &actor(at(3, 2)))
            .unwrap();
        view.act(&CaseAction::StartHandling, &actor(at(3, 3))).unwrap();
        assert_eq!(view.deadline(&cal), Some(d(3, 9)), "5 working days after Monday 03-02");
        let thresholds = WarningThresholds::default();
        let processing = |view: &CaseView, today| {
            evaluate(&view.case_clock(), today, &cal, &thresholds)
                .into_iter()
                .find(|w| w.rule == WarningRule::Processing)
                .map(|w| (w.level, w.working_days_left, w.deadline))
        };
        assert_eq!(
            processing(&view, d(3, 10)),
            Some((WarningLevel::Red, -1, d(3, 9))),
            "past the promised limit without an extension"
        );
        let extend = CaseAction::Extend {
            days: 5,
            reason: "需现场核查".to_owned(),
            approver: "陈局长".to_owned(),
        };
        view.act(&extend, &actor(at(3, 6))).unwrap();
        // Five working days on from Monday 03-09, over the weekend of 03-14/15.
        assert_eq!(view.deadline(&cal), Some(d(3, 16)));
        assert_eq!(view.deadline(&cal), Some(cal.add_working_days(d(3, 9), 5)));
        assert_eq!(processing(&view, d(3, 10)), Some((WarningLevel::None, 4, d(3, 16))));
        assert_eq!(processing(&view, d(3, 13)), Some((WarningLevel::Yellow, 1, d(3, 16))));
        assert_eq!(processing(&view, d(3, 16)), Some((WarningLevel::Yellow, 0, d(3, 16))));
        assert_eq!(processing(&view, d(3, 17)), Some((WarningLevel::Red, -1, d(3, 16))));
        // A pause after the extension pushes the extended deadline back as well.
        let special = CaseAction::StartSpecialProcedure {
            kind: SpecialProcedureKind::Testing,
            reason: "送检".to_owned(),
        };
        view.act(&special, &actor(at(3, 10))).unwrap();
        view.act(&CaseAction::EndSpecialProcedure, &actor(at(3, 12))).unwrap();
        assert_eq!(view.deadline(&cal), Some(d(3, 18)), "03-10 and 03-11 were paused");
    }
}
