//! The legality check of the one-door workflow: [`decide`] turns an operator's [`CaseAction`]
//! on a [`CaseView`] into a [`Transition`], or refuses it with a [`Refusal`] a clerk can read.
//!
//! The checks, in order: the actor is an operator or a node (never a courier); the actor's
//! node is the case's current holder; the actor's tier may perform the action for the item's
//! delegation mode ([`tiers_for`]); the current state allows it; its arguments are sound
//! (reasons present, materials listed, the right seal, the right hand-over target).
//!
//! Who does what, by delegation mode:
//! - *authorised* (授权): the township does every step and decides under its township approval
//!   seal;
//! - *entrusted* (委托): the township accepts and hands the case over to the county, whose back
//!   office handles and decides; the county hands the concluded case back and the township
//!   issues under the entrusted approval seal (government-service items) or the business seal
//!   (public-service items);
//! - *not delegated* (不下放): the township front desk accepts and hands over; the county
//!   department decides under its own seal; the township issues.
//!
//! Villages only submit, forward to their township, and take ratings.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{ActionKind, Actor, CaseAction, CaseState, ItemTerms, Outcome, StateKind, WorkStage};
use super::view::CaseView;
use crate::catalogue::{DelegationMode, SealType};
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;
use crate::staff::StaffStamp;

/// Longest reason, in characters, a clerk may give.
pub const MAX_REASON_CHARS: usize = 2000;

/// The most working days one extension (延期) may add: Administrative Licensing Law Art. 42, "经
/// 本行政机关负责人批准，可以延长十日" (the domain notes: "an extension of 10 days needs the
/// head's approval"); Art. 82 counts the law's limits in working days.
pub const MAX_EXTENSION_DAYS: u32 = 10;

/// How many extensions a case may have: Art. 42 grants one, and the domain notes know no other.
pub const MAX_EXTENSIONS: usize = 1;

/// Longest approver's name, in characters, an extension may record.
pub const MAX_APPROVER_CHARS: usize = 100;

/// Why an action was refused. Nothing changes when an action is refused.
///
/// Each variant maps to one gRPC status code ([`Refusal::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The case's state does not allow the action. → `FAILED_PRECONDITION`.
    #[error("cannot {action} a case that is {from}")]
    IllegalTransition { from: StateKind, action: ActionKind },
    /// The actor's node does not hold the case. → `FAILED_PRECONDITION`: the caller may be
    /// entitled to act in general, but the case is elsewhere right now; once the case is handed
    /// to the caller's node the same call succeeds.
    #[error(
        "this case is held by {} {holder}, not by {} {actor}: only the holder may move it; send {holder} a request instead",
        holder.tier(),
        actor.tier()
    )]
    NotHolder { holder: NodeId, actor: NodeId },
    /// The actor's tier never performs this action for this kind of item. → `PERMISSION_DENIED`.
    #[error(
        "a {tier} may not {action} items that are {}: that is for the {}",
        mode_label(*delegation),
        tier_names(tiers_for(*action, *delegation))
    )]
    WrongTier {
        tier: Tier,
        action: ActionKind,
        delegation: DelegationMode,
    },
    /// The principal's role may not act on cases (couriers). → `PERMISSION_DENIED`.
    #[error("a {role} may not act on cases; only operators and nodes may")]
    WrongRole { role: &'static str },
    /// A reason is required and was missing or blank. → `INVALID_ARGUMENT`.
    #[error("{action} needs a reason")]
    MissingReason { action: ActionKind },
    /// An argument is malformed. → `INVALID_ARGUMENT`.
    #[error("cannot {action}: {field}: {message}")]
    Invalid {
        action: ActionKind,
        field: &'static str,
        message: String,
    },
    /// The action names a seal other than the one the item takes. → `FAILED_PRECONDITION`.
    #[error("wrong seal: this item takes the {expected}, not the {given} (one class of item, one seal)")]
    WrongSeal { expected: SealLabel, given: SealLabel },
    /// A hand-over names the wrong node. → `FAILED_PRECONDITION`.
    #[error("this case can only be handed over to {expected} now, not to {given}")]
    WrongHandOver { expected: NodeId, given: NodeId },
    /// Concluding at acceptance is only for immediate items. → `FAILED_PRECONDITION`.
    #[error(
        "only an immediate item (即办件) is concluded at acceptance; item {item_code} promises {promised_days} working days: start handling instead"
    )]
    NotImmediate { item_code: String, promised_days: u32 },
    /// A conclusion that contradicts the decision. → `FAILED_PRECONDITION`.
    #[error("the decision was to {}; conclude as {}, not as {given}", if *approved { "approve" } else { "refuse" }, if *approved { "approved" } else { "refused" })]
    OutcomeMismatch { approved: bool, given: &'static str },
    /// Acceptance under a catalogue version older than the one the case already runs under.
    /// → `FAILED_PRECONDITION`.
    #[error(
        "catalogue version {given} is older than version {current} this case already runs under; update the catalogue first"
    )]
    StaleCatalogue { current: u64, given: u64 },
    /// A decision stamped where the item's seal is not kept, or unstamped where it is.
    /// → `FAILED_PRECONDITION`.
    #[error("{0}")]
    SealAtDecision(String),
    /// The operator is not on the acting node's roster, or their posts do not allow the action
    /// (the sentence names who may). → `PERMISSION_DENIED`.
    #[error("{0}")]
    Post(String),
    /// A case may be extended once (Art. 42) and this one was. → `FAILED_PRECONDITION`.
    #[error(
        "本办件已延期 {days} 个工作日（批准人 {approver}），依行政许可法第四十二条只能延期一次，不能再次延期：请在延长后的期限内作出决定；需要听证、检验、鉴定、专家评审等不计入时限的程序时，启动特别程序"
    )]
    AlreadyExtended { days: u32, approver: String },
}

/// A seal type shown with its Chinese name in refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealLabel(pub SealType);

impl fmt::Display for SealLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} seal ({})", self.0.as_str().replace('_', " "), self.0.label_zh())
    }
}

/// The gRPC status class of a [`Refusal`], named like `tonic::Code` so the API layer maps it
/// one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefusalCode {
    InvalidArgument,
    FailedPrecondition,
    PermissionDenied,
}

impl RefusalCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            RefusalCode::InvalidArgument => "INVALID_ARGUMENT",
            RefusalCode::FailedPrecondition => "FAILED_PRECONDITION",
            RefusalCode::PermissionDenied => "PERMISSION_DENIED",
        }
    }
}

impl Refusal {
    /// The gRPC status class this refusal maps to.
    pub fn code(&self) -> RefusalCode {
        match self {
            Refusal::IllegalTransition { .. }
            | Refusal::NotHolder { .. }
            | Refusal::WrongSeal { .. }
            | Refusal::WrongHandOver { .. }
            | Refusal::NotImmediate { .. }
            | Refusal::OutcomeMismatch { .. }
            | Refusal::StaleCatalogue { .. }
            | Refusal::AlreadyExtended { .. }
            | Refusal::SealAtDecision(_) => RefusalCode::FailedPrecondition,
            Refusal::WrongTier { .. } | Refusal::WrongRole { .. } | Refusal::Post(_) => RefusalCode::PermissionDenied,
            Refusal::MissingReason { .. } | Refusal::Invalid { .. } => RefusalCode::InvalidArgument,
        }
    }
}

/// A decided step: everything [`CaseView::apply`] needs, and nothing it must look up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub action: CaseAction,
    pub from: CaseState,
    pub to: CaseState,
    /// The holder after the step (the same node unless the action forwards or hands over).
    pub holder: NodeId,
    /// The authoring principal.
    pub by: Principal,
    /// The node the step was taken at (the holder before the step).
    pub at_node: NodeId,
    pub at_ms: u64,
    /// The reason, opinion or materials list the action carries, if any.
    pub reason: Option<String>,
    /// The staff member who took the step, as the acting node's roster said.
    #[serde(default)]
    pub staff: Option<StaffStamp>,
}

/// The tier that decides items of this delegation mode: the township for authorised items, the
/// county (back office or department) otherwise.
pub const fn decider(delegation: DelegationMode) -> Tier {
    match delegation {
        DelegationMode::Authorised => Tier::Township,
        DelegationMode::Entrusted | DelegationMode::NotDelegated => Tier::County,
    }
}

const VILLAGE: &[Tier] = &[Tier::Village];
const TOWNSHIP: &[Tier] = &[Tier::Township];
const COUNTY: &[Tier] = &[Tier::County];
const VILLAGE_OR_TOWNSHIP: &[Tier] = &[Tier::Village, Tier::Township];
const TOWNSHIP_OR_COUNTY: &[Tier] = &[Tier::Township, Tier::County];

/// The tiers that may perform an action on an item of this delegation mode (when they hold the
/// case and its state allows it).
pub const fn tiers_for(action: ActionKind, delegation: DelegationMode) -> &'static [Tier] {
    use ActionKind as A;
    match action {
        A::Submit | A::Rate => VILLAGE_OR_TOWNSHIP,
        A::Forward => VILLAGE,
        A::Receive | A::Accept | A::RequestSupplement | A::SupplementProvided | A::RefuseAcceptance => TOWNSHIP,
        A::StartHandling
        | A::SubmitForReview
        | A::Decide
        | A::Conclude
        | A::SendBack
        | A::StartSpecialProcedure
        | A::EndSpecialProcedure
        | A::Extend
        | A::Suspend
        | A::Resume => match decider(delegation) {
            Tier::Township => TOWNSHIP,
            _ => COUNTY,
        },
        A::HandOver | A::Withdraw => TOWNSHIP_OR_COUNTY,
        A::ResultReady | A::Issue | A::Deliver => TOWNSHIP,
    }
}

/// `entrusted (委托)`, `not delegated (不下放)`.
fn mode_label(mode: DelegationMode) -> String {
    format!("{} ({})", mode.as_str().replace('_', " "), mode.label_zh())
}

fn tier_names(tiers: &[Tier]) -> String {
    let names: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
    names.join(" or ")
}

/// The seal the case's results are stamped with: [`SealType::derive`] of the pinned terms.
pub fn required_seal(view: &CaseView) -> SealType {
    view.terms.seal()
}

/// The seal a decision on `view` is stamped with: where the deciding tier keeps the item's seal
/// (the township's approval seal, the county department's), and none for an entrusted item,
/// whose decision is the county's but whose seal the township holds under its letter of
/// entrustment and puts on the result when it issues it.
pub fn decision_seal(view: &CaseView) -> Option<SealType> {
    match view.terms.delegation {
        DelegationMode::Entrusted => None,
        DelegationMode::Authorised | DelegationMode::NotDelegated => Some(required_seal(view)),
    }
}

/// Refuses a decision stamped otherwise than [`decision_seal`] says.
fn check_decision_seal(view: &CaseView, given: Option<SealType>) -> Result<(), Refusal> {
    match (decision_seal(view), given) {
        (None, None) => Ok(()),
        (Some(expected), Some(given)) => check_seal(view, given).and(if expected == given {
            Ok(())
        } else {
            Err(Refusal::WrongSeal {
                expected: SealLabel(expected),
                given: SealLabel(given),
            })
        }),
        (None, Some(given)) => Err(Refusal::SealAtDecision(format!(
            "委托事项由县级部门审批决定，决定时不盖章：{}由乡镇按委托书保管，出件时由乡镇印章管理员加盖；下一步：不带印章作出决定",
            given.label_zh()
        ))),
        (Some(expected), None) => Err(Refusal::SealAtDecision(format!(
            "本事项的决定须加盖{}；下一步：带上该印章作出决定",
            expected.label_zh()
        ))),
    }
}

/// Refuses a seal other than [`required_seal`]: one class of item, one seal.
pub fn check_seal(view: &CaseView, given: SealType) -> Result<(), Refusal> {
    let expected = required_seal(view);
    if given == expected {
        Ok(())
    } else {
        Err(Refusal::WrongSeal {
            expected: SealLabel(expected),
            given: SealLabel(given),
        })
    }
}

/// Decides whether `actor` may take `action` on `case` now, and what follows. Pure: the same
/// inputs always give the same answer; nothing is changed (apply the result with
/// [`CaseView::apply`]).
pub fn decide(case: &CaseView, action: &CaseAction, actor: &Actor) -> Result<Transition, Refusal> {
    if let Principal::Courier { .. } = actor.principal {
        return Err(Refusal::WrongRole {
            role: actor.principal.role(),
        });
    }
    let here = actor.node();
    if *here != case.holder {
        return Err(Refusal::NotHolder {
            holder: case.holder.clone(),
            actor: here.clone(),
        });
    }
    let kind = action.kind();
    let delegation = case.terms.delegation;
    let tier = here.tier();
    if !tiers_for(kind, delegation).contains(&tier) {
        return Err(Refusal::WrongTier {
            tier,
            action: kind,
            delegation,
        });
    }
    let (to, holder) = next(case, action)?;
    if let CaseAction::Rate { defaulted: true, .. } = action
        && actor.principal.as_node().is_none()
    {
        return Err(Refusal::Invalid {
            action: kind,
            field: "defaulted",
            message: "only a node records the default rating; an operator records the applicant's own".to_owned(),
        });
    }
    Ok(Transition {
        action: action.clone(),
        from: case.state.clone(),
        to,
        holder,
        by: actor.principal.clone(),
        at_node: here.clone(),
        at_ms: actor.at_ms,
        reason: reason_of(action),
        staff: actor.staff.clone(),
    })
}

/// The reason, opinion or materials list an action carries, for the stage record.
fn reason_of(action: &CaseAction) -> Option<String> {
    let text = match action {
        CaseAction::RefuseAcceptance { reason }
        | CaseAction::SendBack { reason, .. }
        | CaseAction::StartSpecialProcedure { reason, .. }
        | CaseAction::Extend { reason, .. }
        | CaseAction::Suspend { reason }
        | CaseAction::Withdraw { reason }
        | CaseAction::Decide { reason, .. } => reason.clone(),
        CaseAction::Conclude { outcome } => outcome.reason().unwrap_or_default().to_owned(),
        CaseAction::RequestSupplement { materials } => materials.join("；"),
        _ => String::new(),
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The most impressions one stamped step may record: a sanity bound against typing errors.
pub const MAX_IMPRESSIONS: u32 = 100;

fn check_impressions(action: ActionKind, impressions: u32) -> Result<(), Refusal> {
    if impressions == 0 || impressions > MAX_IMPRESSIONS {
        return Err(Refusal::Invalid {
            action,
            field: "impressions",
            message: format!("must be between 1 and {MAX_IMPRESSIONS}, not {impressions}"),
        });
    }
    Ok(())
}

fn require_reason(action: ActionKind, reason: &str) -> Result<(), Refusal> {
    if reason.trim().is_empty() {
        Err(Refusal::MissingReason { action })
    } else if reason.chars().count() > MAX_REASON_CHARS {
        Err(Refusal::Invalid {
            action,
            field: "reason",
            message: format!("longer than {MAX_REASON_CHARS} characters"),
        })
    } else {
        Ok(())
    }
}

/// Checks an extension's days and approver, and that the case has not been extended already.
fn check_extension(case: &CaseView, days: u32, approver: &str) -> Result<(), Refusal> {
    let invalid = |field: &'static str, message: String| Refusal::Invalid {
        action: ActionKind::Extend,
        field,
        message,
    };
    if days == 0 || days > MAX_EXTENSION_DAYS {
        return Err(invalid(
            "days",
            format!(
                "延期天数须为 1 至 {MAX_EXTENSION_DAYS} 个工作日（行政许可法第四十二条：经本行政机关负责人批准，可以延长十日），不能是 {days}"
            ),
        ));
    }
    if approver.trim().is_empty() {
        return Err(invalid("approver", "须写明批准延期的本行政机关负责人的姓名".to_owned()));
    }
    if approver.chars().count() > MAX_APPROVER_CHARS {
        return Err(invalid(
            "approver",
            format!("批准人姓名不能超过 {MAX_APPROVER_CHARS} 个字符"),
        ));
    }
    let extensions = case.extensions();
    if extensions.len() >= MAX_EXTENSIONS
        && let Some(first) = extensions.first()
    {
        return Err(Refusal::AlreadyExtended {
            days: first.days,
            approver: first.approver.clone(),
        });
    }
    Ok(())
}

fn check_materials(materials: &[String]) -> Result<(), Refusal> {
    let invalid = |message: String| Refusal::Invalid {
        action: ActionKind::RequestSupplement,
        field: "materials",
        message,
    };
    if materials.is_empty() {
        return Err(invalid("name at least one material to add".to_owned()));
    }
    if let Some(i) = materials.iter().position(|m| m.trim().is_empty()) {
        return Err(invalid(format!("entry {} is blank", i + 1)));
    }
    Ok(())
}

fn check_terms(case: &CaseView, terms: &ItemTerms) -> Result<(), Refusal> {
    if terms.implementation_code != case.terms.implementation_code {
        return Err(Refusal::Invalid {
            action: ActionKind::Accept,
            field: "terms.implementation_code",
            message: format!(
                "{} but the case was submitted for {}",
                terms.implementation_code, case.terms.implementation_code
            ),
        });
    }
    if terms.catalogue_version < case.terms.catalogue_version {
        return Err(Refusal::StaleCatalogue {
            current: case.terms.catalogue_version,
            given: terms.catalogue_version,
        });
    }
    Ok(())
}

/// Checks a hand-over against the one node the case may go to now.
fn hand_over(expected: NodeId, to: &NodeId) -> Result<NodeId, Refusal> {
    if *to == expected {
        Ok(expected)
    } else {
        Err(Refusal::WrongHandOver {
            expected,
            given: to.clone(),
        })
    }
}

/// The state-machine proper: the next state and holder, once holder and tier are checked.
fn next(case: &CaseView, action: &CaseAction) -> Result<(CaseState, NodeId), Refusal> {
    use CaseAction as A;
    use CaseState as S;
    let kind = action.kind();
    let illegal = || Refusal::IllegalTransition {
        from: case.state.kind(),
        action: kind,
    };
    let stay = |state: CaseState| Ok((state, case.holder.clone()));
    let holder_tier = case.holder.tier();
    match (&case.state, action) {
        (S::Submitted, A::Forward) => match case.holder.parent() {
            Some(township) => Ok((S::Submitted, township)),
            None => Err(illegal()),
        },
        (S::Submitted, A::Receive) => stay(S::Received),
        (S::Received, A::Accept { terms }) => {
            check_terms(case, terms)?;
            stay(S::Accepted)
        }
        (S::Received, A::RequestSupplement { materials }) => {
            check_materials(materials)?;
            stay(S::SupplementRequested {
                materials: materials.clone(),
            })
        }
        (S::SupplementRequested { .. }, A::SupplementProvided) => stay(S::Received),
        (S::Received | S::SupplementRequested { .. }, A::RefuseAcceptance { reason }) => {
            require_reason(kind, reason)?;
            stay(S::NotAccepted { reason: reason.clone() })
        }
        (S::Accepted, A::HandOver { to })
            if holder_tier == Tier::Township && case.terms.delegation != DelegationMode::Authorised =>
        {
            hand_over(case.holder.county(), to).map(|h| (S::Accepted, h))
        }
        (S::Accepted, A::StartHandling) => stay(S::Handling),
        (
            S::Accepted,
            A::Conclude {
                outcome: Outcome::Approved,
            },
        ) => {
            if case.terms.immediate {
                stay(S::Concluded {
                    outcome: Outcome::Approved,
                })
            } else {
                Err(Refusal::NotImmediate {
                    item_code: case.terms.item_code.clone(),
                    promised_days: case.terms.promised_days,
                })
            }
        }
        (
            S::Accepted | S::Handling | S::Review,
            A::Conclude {
                outcome: outcome @ (Outcome::Returned { reason } | Outcome::Terminated { reason }),
            },
        )
        | (
            S::Suspended { .. },
            A::Conclude {
                outcome: outcome @ Outcome::Terminated { reason },
            },
        ) => {
            require_reason(kind, reason)?;
            stay(S::Concluded {
                outcome: outcome.clone(),
            })
        }
        (S::Decision { approved }, A::Conclude { outcome }) => match (approved, outcome) {
            (true, Outcome::Approved) => stay(S::Concluded {
                outcome: Outcome::Approved,
            }),
            (false, Outcome::Refused { reason }) => {
                require_reason(kind, reason)?;
                stay(S::Concluded {
                    outcome: outcome.clone(),
                })
            }
            (_, Outcome::Approved | Outcome::Refused { .. }) => Err(Refusal::OutcomeMismatch {
                approved: *approved,
                given: outcome.as_str(),
            }),
            _ => Err(illegal()),
        },
        (S::Handling, A::SubmitForReview) => stay(S::Review),
        (
            S::Review,
            A::Decide {
                approve,
                reason,
                seal,
                impressions,
            },
        ) => {
            if !approve {
                require_reason(kind, reason)?;
            }
            check_impressions(kind, *impressions)?;
            check_decision_seal(case, *seal)?;
            stay(S::Decision { approved: *approve })
        }
        (S::Review, A::SendBack { to_stage, reason }) if *to_stage == WorkStage::Handling => {
            require_reason(kind, reason)?;
            stay(S::Handling)
        }
        (S::Decision { .. }, A::SendBack { to_stage, reason }) => {
            require_reason(kind, reason)?;
            stay(to_stage.state())
        }
        (
            S::Handling | S::Review,
            A::StartSpecialProcedure {
                kind: procedure,
                reason,
            },
        ) => {
            require_reason(kind, reason)?;
            stay(S::SpecialProcedure {
                kind: *procedure,
                resume_to: work_stage(&case.state),
            })
        }
        // An extension is granted while the deciding tier works on the case: in handling or
        // review, the stages that run the processing clock there (tiers_for keeps it to the
        // decider). Not in `accepted`: nobody there has taken the case up yet (an entrusted case
        // may still be on its way to the county), and starting to handle it costs nothing. Not
        // once decided (the processing clock has stopped) nor while paused (the clock stands;
        // extend after it restarts).
        (S::Handling | S::Review, A::Extend { days, reason, approver }) => {
            require_reason(kind, reason)?;
            check_extension(case, *days, approver)?;
            stay(case.state.clone())
        }
        (S::Handling | S::Review, A::Suspend { reason }) => {
            require_reason(kind, reason)?;
            stay(S::Suspended {
                resume_to: work_stage(&case.state),
            })
        }
        (S::SpecialProcedure { resume_to, .. }, A::EndSpecialProcedure) | (S::Suspended { resume_to }, A::Resume) => {
            stay(resume_to.state())
        }
        (
            S::Submitted
            | S::Received
            | S::SupplementRequested { .. }
            | S::Accepted
            | S::Handling
            | S::Review
            | S::SpecialProcedure { .. }
            | S::Suspended { .. },
            A::Withdraw { reason },
        ) => {
            require_reason(kind, reason)?;
            stay(S::Concluded {
                outcome: Outcome::Withdrawn { reason: reason.clone() },
            })
        }
        (S::Concluded { .. }, A::HandOver { to }) if holder_tier == Tier::County => {
            hand_over(case.front_desk(), to).map(|h| (case.state.clone(), h))
        }
        (S::Concluded { .. }, A::ResultReady) => stay(S::ResultReady),
        (S::ResultReady, A::Issue { seal, impressions }) => {
            check_impressions(kind, *impressions)?;
            check_seal(case, *seal)?;
            stay(S::Issued)
        }
        (S::Issued, A::Deliver { .. }) => stay(S::Delivered),
        (S::Issued | S::Delivered, A::Rate { level, .. }) => stay(S::Rated { level: *level }),
        (S::Issued | S::Delivered, A::HandOver { to })
            if holder_tier == Tier::Township && case.origin.tier() == Tier::Village =>
        {
            hand_over(case.origin.clone(), to).map(|h| (case.state.clone(), h))
        }
        _ => Err(illegal()),
    }
}

/// The back-office stage of a case in handling or review (the stage a pause resumes to).
fn work_stage(state: &CaseState) -> WorkStage {
    match state {
        CaseState::Review => WorkStage::Review,
        _ => WorkStage::Handling,
    }
}
