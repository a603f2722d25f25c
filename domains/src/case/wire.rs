//! The boundary between the case domain and the `tongban.v1` wire contract (`cases.proto`):
//! conversions of states, actions, item terms and applicants in both directions, the bodies of
//! the two case events (`CaseOpened`, `CaseStep`), and the summaries and details the `Cases`
//! service returns.
//!
//! Decoding refuses what the domain cannot represent (an unset action, an unspecified or unknown
//! enum value, a malformed id or node code) with a [`WireError`] naming the field; encoding never
//! fails. Nothing here decides legality: that is [`super::decide`].

use crate::staff::StaffStamp;
use crate::staff::wire::{stamp_from_wire, stamp_to_wire};
use tongban_proto::v1::{self as pb, case_action as act};

use super::id::{CaseId, CaseNumber};
use super::model::{
    ApplicantKind, ApplicantSummary, CaseAction, CaseState, ItemTerms, Outcome, RatingLevel, SpecialProcedureKind,
    StateKind, WorkStage,
};
use super::rules::{Transition, required_seal};
use super::view::{CaseView, StageRecord, Submission};
use crate::calendar::WorkingCalendar;
use crate::catalogue::{Category, DelegationMode, ModelError, SealType};
use crate::ids::NodeId;

/// Why a wire message does not convert to a domain value. Reads as `field …: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {message}")]
pub struct WireError {
    pub field: &'static str,
    pub message: String,
}

impl WireError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        WireError {
            field,
            message: message.into(),
        }
    }
}

impl From<ModelError> for WireError {
    fn from(e: ModelError) -> Self {
        let message = match &e {
            ModelError::UnknownEnum { value, .. } => format!("unknown value {value}"),
            ModelError::Unspecified { .. } => "value is unspecified".to_owned(),
            ModelError::Invalid { message, .. } => message.clone(),
        };
        WireError::new(e.field(), message)
    }
}

/// Generates the two-way mapping between a fieldless domain enum and its prost enum.
macro_rules! enum_map {
    ($domain:ident <=> $pb:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$domain> for pb::$pb {
            fn from(v: $domain) -> Self {
                match v { $($domain::$variant => pb::$pb::$variant,)+ }
            }
        }

        impl $domain {
            /// Decodes the `i32` a prost message carries; `field` names the field in the error.
            pub fn from_wire(value: i32, field: &'static str) -> Result<Self, WireError> {
                match pb::$pb::try_from(value) {
                    $(Ok(pb::$pb::$variant) => Ok($domain::$variant),)+
                    Ok(_) => Err(WireError::new(field, "value is unspecified")),
                    Err(_) => Err(WireError::new(field, format!("unknown value {value}"))),
                }
            }

            /// The `i32` a prost message carries for this value.
            pub fn to_wire(self) -> i32 {
                pb::$pb::from(self) as i32
            }
        }
    };
}

enum_map!(StateKind <=> CaseStateKind {
    Submitted,
    Received,
    Accepted,
    SupplementRequested,
    NotAccepted,
    Handling,
    Review,
    Decision,
    Concluded,
    SpecialProcedure,
    Suspended,
    ResultReady,
    Issued,
    Delivered,
    Rated,
});

enum_map!(WorkStage <=> WorkStage { Handling, Review });

enum_map!(SpecialProcedureKind <=> SpecialProcedureKind {
    Hearing,
    Tender,
    Testing,
    Appraisal,
    ExpertReview,
    Publicity,
    Other,
});

enum_map!(RatingLevel <=> RatingLevel {
    VerySatisfied,
    Satisfied,
    BasicallySatisfied,
    Dissatisfied,
    VeryDissatisfied,
});

enum_map!(ApplicantKind <=> ApplicantKind { Person, Organisation });

/// The wire outcome of a domain outcome.
pub fn outcome_to_wire(outcome: &Outcome) -> pb::CaseOutcome {
    match outcome {
        Outcome::Approved => pb::CaseOutcome::Approved,
        Outcome::Refused { .. } => pb::CaseOutcome::Refused,
        Outcome::Returned { .. } => pb::CaseOutcome::Returned,
        Outcome::Withdrawn { .. } => pb::CaseOutcome::Withdrawn,
        Outcome::Terminated { .. } => pb::CaseOutcome::Terminated,
    }
}

/// A domain outcome from its wire kind and reason (ignored for approval).
pub fn outcome_from_wire(value: i32, reason: &str, field: &'static str) -> Result<Outcome, WireError> {
    let reason = reason.to_owned();
    match pb::CaseOutcome::try_from(value) {
        Ok(pb::CaseOutcome::Approved) => Ok(Outcome::Approved),
        Ok(pb::CaseOutcome::Refused) => Ok(Outcome::Refused { reason }),
        Ok(pb::CaseOutcome::Returned) => Ok(Outcome::Returned { reason }),
        Ok(pb::CaseOutcome::Withdrawn) => Ok(Outcome::Withdrawn { reason }),
        Ok(pb::CaseOutcome::Terminated) => Ok(Outcome::Terminated { reason }),
        Ok(pb::CaseOutcome::Unspecified) => Err(WireError::new(field, "value is unspecified")),
        Err(_) => Err(WireError::new(field, format!("unknown value {value}"))),
    }
}

impl From<&ItemTerms> for pb::ItemTerms {
    fn from(t: &ItemTerms) -> Self {
        pb::ItemTerms {
            item_code: t.item_code.clone(),
            implementation_code: t.implementation_code.clone(),
            name: t.name.clone(),
            delegation: t.delegation.to_wire(),
            category: t.category.to_wire(),
            immediate: t.immediate,
            promised_days: t.promised_days,
            statutory_days: t.statutory_days,
            catalogue_version: t.catalogue_version,
        }
    }
}

impl TryFrom<pb::ItemTerms> for ItemTerms {
    type Error = WireError;
    fn try_from(t: pb::ItemTerms) -> Result<Self, WireError> {
        if t.implementation_code.trim().is_empty() {
            return Err(WireError::new("terms.implementation_code", "must not be empty"));
        }
        Ok(ItemTerms {
            delegation: DelegationMode::from_wire(t.delegation, "terms.delegation")?,
            category: Category::from_wire(t.category, "terms.category")?,
            item_code: t.item_code,
            implementation_code: t.implementation_code,
            name: t.name,
            immediate: t.immediate,
            promised_days: t.promised_days,
            statutory_days: t.statutory_days,
            catalogue_version: t.catalogue_version,
        })
    }
}

impl From<&ApplicantSummary> for pb::ApplicantSummary {
    fn from(a: &ApplicantSummary) -> Self {
        pb::ApplicantSummary {
            kind: a.kind.to_wire(),
            name: a.name.clone(),
            id_masked: a.id_masked.clone(),
            phone: a.phone.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::ApplicantSummary> for ApplicantSummary {
    type Error = WireError;
    fn try_from(a: pb::ApplicantSummary) -> Result<Self, WireError> {
        Ok(ApplicantSummary {
            kind: ApplicantKind::from_wire(a.kind, "applicant.kind")?,
            name: a.name,
            id_masked: a.id_masked,
            phone: (!a.phone.trim().is_empty()).then_some(a.phone),
        })
    }
}

/// The masked form of an identity number kept in case records: the first 6 and last 4
/// characters, the rest as `*` (shorter numbers keep only their last 2). Already masked text
/// (containing `*`) and empty text are kept as they are.
pub fn mask_id_number(id: &str) -> String {
    let id = id.trim();
    if id.is_empty() || id.contains('*') {
        return id.to_owned();
    }
    let chars: Vec<char> = id.chars().collect();
    let n = chars.len();
    let (head, tail) = if n > 10 { (6, 4) } else { (0, 2.min(n)) };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

fn seal_wire(seal: SealType) -> i32 {
    seal.to_wire()
}

fn seal_from(value: i32, field: &'static str) -> Result<SealType, WireError> {
    Ok(SealType::from_wire(value, field)?)
}

/// The wire form of an action. [`CaseAction::Submit`] has none (a case starts with
/// `CaseOpened`): its wire form has no action set.
pub fn action_to_wire(action: &CaseAction) -> pb::CaseAction {
    use act::Action as W;
    let wire = match action {
        CaseAction::Submit => None,
        CaseAction::Forward => Some(W::Forward(act::Forward {})),
        CaseAction::Receive => Some(W::Receive(act::Receive {})),
        CaseAction::Accept { terms } => Some(W::Accept(act::Accept {
            terms: Some(terms.into()),
        })),
        CaseAction::RequestSupplement { materials } => Some(W::RequestSupplement(act::RequestSupplement {
            materials: materials.clone(),
        })),
        CaseAction::SupplementProvided => Some(W::SupplementProvided(act::SupplementProvided {})),
        CaseAction::RefuseAcceptance { reason } => {
            Some(W::RefuseAcceptance(act::RefuseAcceptance { reason: reason.clone() }))
        }
        CaseAction::StartHandling => Some(W::StartHandling(act::StartHandling {})),
        CaseAction::SubmitForReview => Some(W::SubmitForReview(act::SubmitForReview {})),
        CaseAction::Decide {
            approve,
            reason,
            seal,
            impressions,
        } => Some(W::Decide(act::Decide {
            approve: *approve,
            reason: reason.clone(),
            seal: seal.map(seal_wire).unwrap_or_default(),
            impressions: *impressions,
        })),
        CaseAction::Conclude { outcome } => Some(W::Conclude(act::Conclude {
            outcome: outcome_to_wire(outcome) as i32,
            reason: outcome.reason().unwrap_or_default().to_owned(),
        })),
        CaseAction::SendBack { to_stage, reason } => Some(W::SendBack(act::SendBack {
            to_stage: to_stage.to_wire(),
            reason: reason.clone(),
        })),
        CaseAction::StartSpecialProcedure { kind, reason } => {
            Some(W::StartSpecialProcedure(act::StartSpecialProcedure {
                kind: kind.to_wire(),
                reason: reason.clone(),
            }))
        }
        CaseAction::EndSpecialProcedure => Some(W::EndSpecialProcedure(act::EndSpecialProcedure {})),
        CaseAction::Extend { days, reason, approver } => Some(W::Extend(act::Extend {
            days: *days,
            reason: reason.clone(),
            approver: approver.clone(),
        })),
        CaseAction::Suspend { reason } => Some(W::Suspend(act::Suspend { reason: reason.clone() })),
        CaseAction::Resume => Some(W::Resume(act::Resume {})),
        CaseAction::HandOver { to } => Some(W::HandOver(act::HandOver { to: to.to_string() })),
        CaseAction::ResultReady => Some(W::ResultReady(act::ResultReady {})),
        CaseAction::Issue { seal, impressions } => Some(W::Issue(act::Issue {
            seal: seal_wire(*seal),
            impressions: *impressions,
        })),
        CaseAction::Deliver { by_courier } => Some(W::Deliver(act::Deliver {
            by_courier: *by_courier,
        })),
        CaseAction::Rate { level, defaulted } => Some(W::Rate(act::Rate {
            level: level.to_wire(),
            defaulted: *defaulted,
        })),
        CaseAction::Withdraw { reason } => Some(W::Withdraw(act::Withdraw { reason: reason.clone() })),
    };
    pb::CaseAction { action: wire }
}

/// The domain action of a wire action, as an event records it (an `Accept` carries its terms).
pub fn action_from_wire(action: pb::CaseAction) -> Result<CaseAction, WireError> {
    action_from_wire_with(action, |terms| match terms {
        Some(terms) => ItemTerms::try_from(terms),
        None => Err(WireError::new("action.accept.terms", "missing")),
    })
}

/// Like [`action_from_wire`], but the terms of an `Accept` come from `accept_terms`, given what
/// the message carried (the `Cases` service ignores the caller's terms and pins its own).
pub fn action_from_wire_with(
    action: pb::CaseAction,
    accept_terms: impl FnOnce(Option<pb::ItemTerms>) -> Result<ItemTerms, WireError>,
) -> Result<CaseAction, WireError> {
    use act::Action as W;
    let Some(action) = action.action else {
        return Err(WireError::new("action", "no action given"));
    };
    Ok(match action {
        W::Forward(_) => CaseAction::Forward,
        W::Receive(_) => CaseAction::Receive,
        W::Accept(a) => CaseAction::Accept {
            terms: accept_terms(a.terms)?,
        },
        W::RequestSupplement(a) => CaseAction::RequestSupplement { materials: a.materials },
        W::SupplementProvided(_) => CaseAction::SupplementProvided,
        W::RefuseAcceptance(a) => CaseAction::RefuseAcceptance { reason: a.reason },
        W::StartHandling(_) => CaseAction::StartHandling,
        W::SubmitForReview(_) => CaseAction::SubmitForReview,
        W::Decide(a) => CaseAction::Decide {
            approve: a.approve,
            reason: a.reason,
            // Unset: an unstamped decision (an entrusted item's).
            seal: match a.seal {
                0 => None,
                n => Some(seal_from(n, "action.decide.seal")?),
            },
            // Unset on the wire means one impression.
            impressions: a.impressions.max(1),
        },
        W::Conclude(a) => CaseAction::Conclude {
            outcome: outcome_from_wire(a.outcome, &a.reason, "action.conclude.outcome")?,
        },
        W::SendBack(a) => CaseAction::SendBack {
            to_stage: WorkStage::from_wire(a.to_stage, "action.send_back.to_stage")?,
            reason: a.reason,
        },
        W::StartSpecialProcedure(a) => CaseAction::StartSpecialProcedure {
            kind: SpecialProcedureKind::from_wire(a.kind, "action.start_special_procedure.kind")?,
            reason: a.reason,
        },
        W::EndSpecialProcedure(_) => CaseAction::EndSpecialProcedure,
        W::Extend(a) => CaseAction::Extend {
            days: a.days,
            reason: a.reason,
            // Kept as sent (the record is re-checked at every replica); blank is refused by
            // the rules, not here.
            approver: a.approver,
        },
        W::Suspend(a) => CaseAction::Suspend { reason: a.reason },
        W::Resume(_) => CaseAction::Resume,
        W::HandOver(a) => CaseAction::HandOver {
            to: NodeId::new(a.to.trim()).map_err(|e| WireError::new("action.hand_over.to", e.to_string()))?,
        },
        W::ResultReady(_) => CaseAction::ResultReady,
        W::Issue(a) => CaseAction::Issue {
            seal: seal_from(a.seal, "action.issue.seal")?,
            impressions: a.impressions.max(1),
        },
        W::Deliver(a) => CaseAction::Deliver {
            by_courier: a.by_courier,
        },
        W::Rate(a) => CaseAction::Rate {
            level: RatingLevel::from_wire(a.level, "action.rate.level")?,
            defaulted: a.defaulted,
        },
        W::Withdraw(a) => CaseAction::Withdraw { reason: a.reason },
    })
}

/// The `CaseOpened` body for a submission (opened at the node that minted its id).
pub fn opened_body(submission: &Submission, staff: Option<&StaffStamp>) -> pb::CaseOpened {
    pb::CaseOpened {
        acted_by: staff.map(stamp_to_wire),
        case_id: submission.id.to_string(),
        case_number: submission.number.to_string(),
        terms: Some((&submission.terms).into()),
        applicant: Some((&submission.applicant).into()),
        opened_at_node: submission.id.origin().to_string(),
    }
}

/// The submission a `CaseOpened` body carries, and the node it names as where it was opened.
pub fn submission_from_wire(body: &pb::CaseOpened) -> Result<(Submission, NodeId), WireError> {
    let id: CaseId = body
        .case_id
        .parse()
        .map_err(|e: super::CaseIdError| WireError::new("case_id", e.to_string()))?;
    let number: CaseNumber = body
        .case_number
        .parse()
        .map_err(|e: super::CaseIdError| WireError::new("case_number", e.to_string()))?;
    let terms = body
        .terms
        .clone()
        .ok_or_else(|| WireError::new("terms", "missing"))?
        .try_into()?;
    let applicant = body
        .applicant
        .clone()
        .ok_or_else(|| WireError::new("applicant", "missing"))?
        .try_into()?;
    let opened_at =
        NodeId::new(body.opened_at_node.clone()).map_err(|e| WireError::new("opened_at_node", e.to_string()))?;
    Ok((
        Submission {
            id,
            number,
            terms,
            applicant,
        },
        opened_at,
    ))
}

/// The staff member a case event names, if it names one.
pub fn stamp_of(acted_by: Option<&pb::StaffStamp>) -> Result<Option<StaffStamp>, WireError> {
    acted_by
        .map(|s| stamp_from_wire(s).map_err(|e| WireError::new("acted_by", e.to_string())))
        .transpose()
}

/// The `CaseStep` body recording transition `t` on case `id`.
pub fn step_body(id: &CaseId, t: &Transition) -> pb::CaseStep {
    pb::CaseStep {
        case_id: id.to_string(),
        action: Some(action_to_wire(&t.action)),
        from_state: t.from.kind().to_wire(),
        to_state: t.to.kind().to_wire(),
        holder: t.holder.to_string(),
        reason: t.reason.clone().unwrap_or_default(),
        principal: t.by.to_string(),
        acted_by: t.staff.as_ref().map(stamp_to_wire),
    }
}

/// Whether a decided transition on case `id` is the one a `CaseStep` body records: same case,
/// action, states, holder, reason and principal. `None` when it is; otherwise what differs, for
/// the alarm.
pub fn step_mismatch(recorded: &pb::CaseStep, id: &CaseId, decided: &Transition) -> Option<String> {
    let expected = step_body(id, decided);
    let mut diffs = Vec::new();
    if recorded.case_id != expected.case_id {
        diffs.push(format!(
            "case (recorded {}, here {})",
            recorded.case_id, expected.case_id
        ));
    }
    if recorded.action != expected.action {
        diffs.push("action".to_owned());
    }
    if recorded.from_state != expected.from_state {
        diffs.push(format!(
            "from state (recorded {}, here {})",
            state_name(recorded.from_state),
            decided.from.kind()
        ));
    }
    if recorded.to_state != expected.to_state {
        diffs.push(format!(
            "to state (recorded {}, here {})",
            state_name(recorded.to_state),
            decided.to.kind()
        ));
    }
    if recorded.holder != expected.holder {
        diffs.push(format!(
            "holder (recorded {}, here {})",
            recorded.holder, expected.holder
        ));
    }
    if recorded.reason != expected.reason {
        diffs.push("reason".to_owned());
    }
    if recorded.principal != expected.principal {
        diffs.push(format!(
            "principal (recorded {}, here {})",
            recorded.principal, expected.principal
        ));
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

fn state_name(value: i32) -> String {
    match StateKind::from_wire(value, "state") {
        Ok(kind) => kind.to_string(),
        Err(_) => format!("state #{value}"),
    }
}

/// `accepted (已受理)`, or `concluded (已办结): refused (不予批准)` once concluded.
pub fn state_label(state: &CaseState) -> String {
    match state {
        CaseState::Concluded { outcome } => format!("{}: {outcome}", state.kind()),
        CaseState::Rated { level } => format!("{}: {level}", state.kind()),
        other => other.kind().to_string(),
    }
}

/// The list row of a case. `updated_ms` is the time of its latest step.
pub fn summary(view: &CaseView) -> pb::CaseSummary {
    let updated = view.history.last().map(|r| r.at_ms).unwrap_or(view.submitted_ms);
    pb::CaseSummary {
        case_id: view.id.to_string(),
        case_number: view.number.to_string(),
        item_code: view.terms.item_code.clone(),
        implementation_code: view.terms.implementation_code.clone(),
        item_name: view.terms.name.clone(),
        delegation: view.terms.delegation.to_wire(),
        state: view.state.kind().to_wire(),
        state_label: state_label(&view.state),
        holder: view.holder.to_string(),
        origin: view.origin.to_string(),
        township: view.front_desk().to_string(),
        applicant_name: view.applicant.name.clone(),
        promised_days: view.terms.promised_days,
        paused: view.paused,
        outcome: view
            .outcome
            .as_ref()
            .map(|o| outcome_to_wire(o) as i32)
            .unwrap_or_default(),
        required_seal: required_seal(view).to_wire(),
        accepted_under: view.accepted_under.unwrap_or(0),
        submitted_unix_ms: view.submitted_ms as i64,
        updated_unix_ms: updated as i64,
        steps: view.history.len() as u32,
        paper_warning: String::new(),
        accepted_window: view.accepted_window.unwrap_or(0),
        issued_window: view.issued_window.unwrap_or(0),
    }
}

fn history_entry(r: &StageRecord) -> pb::CaseHistoryEntry {
    let kind = r.action.kind();
    pb::CaseHistoryEntry {
        action: match r.action {
            CaseAction::Submit => None,
            ref other => Some(action_to_wire(other)),
        },
        action_name: kind.as_str().to_owned(),
        action_label: kind.label_zh().to_owned(),
        from_state: r.from_state.as_ref().map(|s| s.kind().to_wire()).unwrap_or_default(),
        to_state: r.to_state.kind().to_wire(),
        by: r.by.clone(),
        at_node: r.at_node.to_string(),
        holder: r.holder.to_string(),
        at_unix_ms: r.at_ms as i64,
        reason: r.reason.clone().unwrap_or_default(),
        acted_by: r.staff.as_ref().map(stamp_to_wire),
    }
}

/// A case in full: summary, terms, applicant, history, decision, outcome, seal, rating, the
/// extension, and the deadline counted on `calendar` (the one in force where it is read).
pub fn detail(view: &CaseView, calendar: &WorkingCalendar) -> pb::CaseDetail {
    let outcome_reason = match (&view.state, &view.outcome) {
        (CaseState::NotAccepted { reason }, _) => reason.clone(),
        (_, Some(outcome)) => outcome.reason().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    let decision = view.decision.as_ref();
    pb::CaseDetail {
        summary: Some(summary(view)),
        terms: Some((&view.terms).into()),
        applicant: Some((&view.applicant).into()),
        history: view.history.iter().map(history_entry).collect(),
        decided: decision.is_some(),
        decision_approved: decision.is_some_and(|d| d.approved),
        decision_reason: decision.and_then(|d| d.reason.clone()).unwrap_or_default(),
        decision_seal: decision.and_then(|d| d.seal).map(SealType::to_wire).unwrap_or_default(),
        // The approver by name and post when the deciding node keeps a roster.
        decision_by: decision
            .map(|d| d.staff.as_ref().map(|s| s.to_string()).unwrap_or_else(|| d.by.clone()))
            .unwrap_or_default(),
        decision_at_node: decision.map(|d| d.at_node.to_string()).unwrap_or_default(),
        outcome_reason,
        issued_seal: view.issued_seal.map(SealType::to_wire).unwrap_or_default(),
        rating: view.rating.as_ref().map(|r| r.level.to_wire()).unwrap_or_default(),
        rating_defaulted: view.rating.as_ref().is_some_and(|r| r.defaulted),
        deadline: view
            .deadline(calendar)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        extension: view.extensions().first().map(|e| pb::CaseExtension {
            days: e.days,
            reason: e.reason.clone(),
            approver: e.approver.clone(),
            by: e.by.clone(),
            at_node: e.at_node.to_string(),
            at_unix_ms: e.at_ms as i64,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn node(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn every_action() -> Vec<CaseAction> {
        let terms = ItemTerms {
            item_code: "000201001000".to_owned(),
            implementation_code: "T-ALL".to_owned(),
            name: "农村村民住宅用地审批".to_owned(),
            delegation: DelegationMode::Entrusted,
            category: Category::PublicService,
            immediate: false,
            promised_days: 5,
            statutory_days: 20,
            catalogue_version: 3,
        };
        vec![
            CaseAction::Forward,
            CaseAction::Receive,
            CaseAction::Accept { terms },
            CaseAction::RequestSupplement {
                materials: vec!["户口簿".to_owned(), "身份证复印件".to_owned()],
            },
            CaseAction::SupplementProvided,
            CaseAction::RefuseAcceptance {
                reason: "不属于本镇".to_owned(),
            },
            CaseAction::StartHandling,
            CaseAction::SubmitForReview,
            CaseAction::Decide {
                approve: false,
                reason: "不符合条件".to_owned(),
                seal: Some(SealType::County),
                impressions: 2,
            },
            CaseAction::Conclude {
                outcome: Outcome::Approved,
            },
            CaseAction::Conclude {
                outcome: Outcome::Terminated {
                    reason: "申请人死亡".to_owned(),
                },
            },
            CaseAction::SendBack {
                to_stage: WorkStage::Review,
                reason: "补充意见".to_owned(),
            },
            CaseAction::StartSpecialProcedure {
                kind: SpecialProcedureKind::ExpertReview,
                reason: "需专家评审".to_owned(),
            },
            CaseAction::EndSpecialProcedure,
            CaseAction::Extend {
                days: 10,
                reason: "需现场核查，二十日内不能作出决定".to_owned(),
                approver: "陈局长".to_owned(),
            },
            CaseAction::Suspend {
                reason: "诉讼中".to_owned(),
            },
            CaseAction::Resume,
            CaseAction::HandOver { to: node("441424") },
            CaseAction::ResultReady,
            CaseAction::Issue {
                seal: SealType::TownshipApproval,
                impressions: 1,
            },
            CaseAction::Deliver { by_courier: true },
            CaseAction::Rate {
                level: RatingLevel::Dissatisfied,
                defaulted: true,
            },
            CaseAction::Withdraw {
                reason: "不再需要".to_owned(),
            },
        ]
    }

    #[test]
    fn every_action_round_trips() {
        for action in every_action() {
            let wire = action_to_wire(&action);
            assert!(wire.action.is_some(), "{action:?} has no wire form");
            assert_eq!(action_from_wire(wire).unwrap(), action);
        }
        assert!(action_to_wire(&CaseAction::Submit).action.is_none());
        assert_eq!(action_from_wire(pb::CaseAction::default()).unwrap_err().field, "action");
    }

    #[test]
    fn unspecified_and_unknown_enums_are_refused_naming_the_field() {
        let wire = pb::CaseAction {
            action: Some(act::Action::Issue(act::Issue {
                seal: 0,
                impressions: 1,
            })),
        };
        assert_eq!(action_from_wire(wire).unwrap_err().field, "action.issue.seal");
        let wire = pb::CaseAction {
            action: Some(act::Action::Rate(act::Rate {
                level: 99,
                defaulted: false,
            })),
        };
        let err = action_from_wire(wire).unwrap_err();
        assert_eq!(err.field, "action.rate.level");
        assert!(err.message.contains("99"));
        let wire = pb::CaseAction {
            action: Some(act::Action::HandOver(act::HandOver { to: "44".to_owned() })),
        };
        assert_eq!(action_from_wire(wire).unwrap_err().field, "action.hand_over.to");
        for kind in StateKind::ALL {
            assert_eq!(StateKind::from_wire(kind.to_wire(), "s").unwrap(), *kind);
        }
    }

    #[test]
    fn identity_numbers_are_masked() {
        assert_eq!(mask_id_number("441424199001011234"), "441424********1234");
        assert_eq!(mask_id_number("91441424MA5XXXXX1Y"), "914414********XX1Y");
        assert_eq!(mask_id_number("12345"), "***45");
        assert_eq!(mask_id_number("441424********1234"), "441424********1234");
        assert_eq!(mask_id_number("  "), "");
    }
}
