//! The vocabulary of the case workflow: the states a case passes through ([`CaseState`]), the
//! commands an operator issues ([`CaseAction`]), who issues them ([`Actor`]), and the plain
//! values they carry (outcomes, special procedures, ratings, the item terms a case pins, the
//! applicant summary).
//!
//! Each enum with a payload has a fieldless twin ([`StateKind`], [`ActionKind`]) used in rule
//! tables, refusals and the console, with an English `snake_case` name and a simplified-Chinese
//! label.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalogue::{Category, DelegationMode, Item, SealType};
use crate::ids::NodeId;
use crate::pki::Principal;
use crate::staff::StaffStamp;

/// Where a case stands. Exactly one holder node moves it at a time (see `CaseView::holder`).
///
/// Paused states (the promised-time clock stops): [`CaseState::SupplementRequested`],
/// [`CaseState::SpecialProcedure`], [`CaseState::Suspended`]. Terminal states:
/// [`CaseState::NotAccepted`] and [`CaseState::Rated`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CaseState {
    /// Submitted (申报) at a village service point or a township window.
    Submitted,
    /// Received (收件) at the township window; the 5-working-day acceptance clock runs.
    Received,
    /// Accepted (受理) at the township front desk.
    Accepted,
    /// The applicant was told, once, which materials to add (补正告知); clock paused.
    SupplementRequested { materials: Vec<String> },
    /// Not accepted (不予受理); terminal.
    NotAccepted { reason: String },
    /// Being handled (承办) by the deciding tier.
    Handling,
    /// Under review (审核).
    Review,
    /// Decided (审批决定), not yet concluded.
    Decision { approved: bool },
    /// Concluded (办结) with an outcome; the result is still to be issued.
    Concluded { outcome: Outcome },
    /// A special procedure not counted in the limit (特别程序: hearing, testing, expert review…);
    /// clock paused. Ending it returns to `resume_to`.
    SpecialProcedure {
        kind: SpecialProcedureKind,
        resume_to: WorkStage,
    },
    /// Suspended (中止); clock paused. Resuming returns to `resume_to`.
    Suspended { resume_to: WorkStage },
    /// The result is at the township window, ready to issue (待出件).
    ResultReady,
    /// The result was stamped and issued at the window (出件).
    Issued,
    /// The result was delivered to the applicant (送达), e.g. by courier.
    Delivered,
    /// The applicant rated the service (好差评); terminal.
    Rated { level: RatingLevel },
}

impl CaseState {
    pub fn kind(&self) -> StateKind {
        match self {
            CaseState::Submitted => StateKind::Submitted,
            CaseState::Received => StateKind::Received,
            CaseState::Accepted => StateKind::Accepted,
            CaseState::SupplementRequested { .. } => StateKind::SupplementRequested,
            CaseState::NotAccepted { .. } => StateKind::NotAccepted,
            CaseState::Handling => StateKind::Handling,
            CaseState::Review => StateKind::Review,
            CaseState::Decision { .. } => StateKind::Decision,
            CaseState::Concluded { .. } => StateKind::Concluded,
            CaseState::SpecialProcedure { .. } => StateKind::SpecialProcedure,
            CaseState::Suspended { .. } => StateKind::Suspended,
            CaseState::ResultReady => StateKind::ResultReady,
            CaseState::Issued => StateKind::Issued,
            CaseState::Delivered => StateKind::Delivered,
            CaseState::Rated { .. } => StateKind::Rated,
        }
    }

    /// True while the promised-time clock is stopped.
    pub fn is_paused(&self) -> bool {
        self.kind().is_paused()
    }

    /// True when nothing more can happen to the case.
    pub fn is_terminal(&self) -> bool {
        self.kind().is_terminal()
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind(), f)
    }
}

labelled_enum! {
    /// The kind of a [`CaseState`], without its payload.
    StateKind {
        Submitted = "submitted", "已申报";
        Received = "received", "已收件";
        Accepted = "accepted", "已受理";
        SupplementRequested = "supplement_requested", "补正中";
        NotAccepted = "not_accepted", "不予受理";
        Handling = "handling", "承办中";
        Review = "review", "审核中";
        Decision = "decision", "已决定";
        Concluded = "concluded", "已办结";
        SpecialProcedure = "special_procedure", "特别程序";
        Suspended = "suspended", "已中止";
        ResultReady = "result_ready", "待出件";
        Issued = "issued", "已出件";
        Delivered = "delivered", "已送达";
        Rated = "rated", "已评价";
    }
}

impl StateKind {
    pub const fn is_paused(self) -> bool {
        matches!(
            self,
            StateKind::SupplementRequested | StateKind::SpecialProcedure | StateKind::Suspended
        )
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, StateKind::NotAccepted | StateKind::Rated)
    }
}

labelled_enum! {
    /// A back-office stage a paused case resumes to, or a case is sent back to.
    WorkStage {
        Handling = "handling", "承办";
        Review = "review", "审核";
    }
}

impl WorkStage {
    /// The state a case is in at this stage.
    pub fn state(self) -> CaseState {
        match self {
            WorkStage::Handling => CaseState::Handling,
            WorkStage::Review => CaseState::Review,
        }
    }
}

labelled_enum! {
    /// Special procedures not counted in the time limit (Administrative Licensing Law, Art. 45).
    SpecialProcedureKind {
        Hearing = "hearing", "听证";
        Tender = "tender", "招标拍卖";
        Testing = "testing", "检验检测检疫";
        Appraisal = "appraisal", "鉴定";
        ExpertReview = "expert_review", "专家评审";
        Publicity = "publicity", "公示";
        Other = "other", "其他特别程序";
    }
}

labelled_enum! {
    /// The five levels of the good/bad rating (好差评); the last two are bad ratings.
    RatingLevel {
        VerySatisfied = "very_satisfied", "非常满意";
        Satisfied = "satisfied", "满意";
        BasicallySatisfied = "basically_satisfied", "基本满意";
        Dissatisfied = "dissatisfied", "不满意";
        VeryDissatisfied = "very_dissatisfied", "非常不满意";
    }
}

impl RatingLevel {
    /// A bad rating (差评), which becomes a rectification item for the handling unit.
    pub const fn is_bad(self) -> bool {
        matches!(self, RatingLevel::Dissatisfied | RatingLevel::VeryDissatisfied)
    }

    /// A good rating (好评) for the good-rate metric.
    pub const fn is_good(self) -> bool {
        matches!(self, RatingLevel::VerySatisfied | RatingLevel::Satisfied)
    }

    /// Score on the 10 / 8 / 6 / 3 / 0 scale.
    pub const fn score(self) -> u32 {
        match self {
            RatingLevel::VerySatisfied => 10,
            RatingLevel::Satisfied => 8,
            RatingLevel::BasicallySatisfied => 6,
            RatingLevel::Dissatisfied => 3,
            RatingLevel::VeryDissatisfied => 0,
        }
    }
}

/// How a case ended (办结结果). Every outcome but approval carries its reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Approved (准予).
    Approved,
    /// Refused after a decision (不予批准).
    Refused { reason: String },
    /// Returned to the applicant without a decision (退件), e.g. outside the township's remit.
    Returned { reason: String },
    /// Withdrawn by the applicant (撤回); only through [`CaseAction::Withdraw`].
    Withdrawn { reason: String },
    /// Terminated (终止), e.g. after a suspension whose cause cannot be removed.
    Terminated { reason: String },
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Refused { .. } => "refused",
            Outcome::Returned { .. } => "returned",
            Outcome::Withdrawn { .. } => "withdrawn",
            Outcome::Terminated { .. } => "terminated",
        }
    }

    pub fn label_zh(&self) -> &'static str {
        match self {
            Outcome::Approved => "准予",
            Outcome::Refused { .. } => "不予批准",
            Outcome::Returned { .. } => "退件",
            Outcome::Withdrawn { .. } => "撤回",
            Outcome::Terminated { .. } => "终止",
        }
    }

    /// The reason, for every outcome but approval.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Approved => None,
            Outcome::Refused { reason }
            | Outcome::Returned { reason }
            | Outcome::Withdrawn { reason }
            | Outcome::Terminated { reason } => Some(reason),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_str(), self.label_zh())
    }
}

/// A command an operator (or a node, for automatic steps) issues on a case. Whether it is
/// legal is decided by `decide`; reasons are checked there too (blank counts as missing).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CaseAction {
    /// Starts a case; made by `CaseView::open`, never legal on an existing case.
    Submit,
    /// A village hands a submitted case to its township (转报).
    Forward,
    /// The township window receives a submitted case.
    Receive,
    /// The township front desk accepts, under the catalogue terms it holds now: the case pins
    /// them (item, delegation mode, category, limits and the catalogue version).
    Accept {
        terms: ItemTerms,
    },
    /// Tells the applicant, once, which materials to add; pauses the clock.
    RequestSupplement {
        materials: Vec<String>,
    },
    /// The applicant added the materials; back to received.
    SupplementProvided,
    /// Not accepted (不予受理); reason required.
    RefuseAcceptance {
        reason: String,
    },
    StartHandling,
    SubmitForReview,
    /// The decision (审批决定). `reason` is required when refusing and is the approver's opinion
    /// otherwise; `seal` is the seal the decision is stamped with where the deciding tier keeps
    /// it ([`crate::case::decision_seal`]: the township's approval seal, the county department's),
    /// and `None` for an entrusted item: the county decides, and the township stamps the result
    /// with the entrusted seal it holds when it issues it. `impressions` is how many times it is
    /// stamped, for the seal register (at least 1).
    Decide {
        approve: bool,
        reason: String,
        #[serde(default)]
        seal: Option<SealType>,
        #[serde(default = "one")]
        impressions: u32,
    },
    /// Concludes: as decided (approved / refused), returned or terminated, or — for an immediate
    /// item (即办件) — approved straight from acceptance.
    Conclude {
        outcome: Outcome,
    },
    /// Sends a case back to an earlier back-office stage; reason required. Discards a decision.
    SendBack {
        to_stage: WorkStage,
        reason: String,
    },
    StartSpecialProcedure {
        kind: SpecialProcedureKind,
        reason: String,
    },
    EndSpecialProcedure,
    /// Extends the promised limit (延期, Administrative Licensing Law Art. 42) by `days` working
    /// days, counted on from the deadline on the calendar in force. Approved by the head of the
    /// deciding organ, named in `approver`; the reason is required and is told to the applicant.
    /// Once per case, at most `MAX_EXTENSION_DAYS` days (see `rules`).
    Extend {
        days: u32,
        reason: String,
        approver: String,
    },
    /// Suspends (中止); reason required.
    Suspend {
        reason: String,
    },
    Resume,
    /// Explicit transfer of the case to another node: township → county after acceptance of an
    /// entrusted or not-delegated item, county → township with the concluded result, township →
    /// the origin village after issue (so the village can take the rating).
    HandOver {
        to: NodeId,
    },
    /// The result is at the township window.
    ResultReady,
    /// The result is stamped and issued; `seal` must be the item's seal; `impressions` as for
    /// [`CaseAction::Decide`].
    Issue {
        seal: SealType,
        #[serde(default = "one")]
        impressions: u32,
    },
    /// The result reached the applicant, at the window or by courier.
    Deliver {
        by_courier: bool,
    },
    /// The applicant's rating. `defaulted` marks the automatic "basically satisfied" a node
    /// records when no rating came within the period; only a node may record it.
    Rate {
        level: RatingLevel,
        defaulted: bool,
    },
    /// The applicant withdraws (撤回); reason required.
    Withdraw {
        reason: String,
    },
}

/// The default number of impressions of a stamped step (views stored before it was recorded).
fn one() -> u32 {
    1
}

impl CaseAction {
    pub fn kind(&self) -> ActionKind {
        match self {
            CaseAction::Submit => ActionKind::Submit,
            CaseAction::Forward => ActionKind::Forward,
            CaseAction::Receive => ActionKind::Receive,
            CaseAction::Accept { .. } => ActionKind::Accept,
            CaseAction::RequestSupplement { .. } => ActionKind::RequestSupplement,
            CaseAction::SupplementProvided => ActionKind::SupplementProvided,
            CaseAction::RefuseAcceptance { .. } => ActionKind::RefuseAcceptance,
            CaseAction::StartHandling => ActionKind::StartHandling,
            CaseAction::SubmitForReview => ActionKind::SubmitForReview,
            CaseAction::Decide { .. } => ActionKind::Decide,
            CaseAction::Conclude { .. } => ActionKind::Conclude,
            CaseAction::SendBack { .. } => ActionKind::SendBack,
            CaseAction::StartSpecialProcedure { .. } => ActionKind::StartSpecialProcedure,
            CaseAction::EndSpecialProcedure => ActionKind::EndSpecialProcedure,
            CaseAction::Extend { .. } => ActionKind::Extend,
            CaseAction::Suspend { .. } => ActionKind::Suspend,
            CaseAction::Resume => ActionKind::Resume,
            CaseAction::HandOver { .. } => ActionKind::HandOver,
            CaseAction::ResultReady => ActionKind::ResultReady,
            CaseAction::Issue { .. } => ActionKind::Issue,
            CaseAction::Deliver { .. } => ActionKind::Deliver,
            CaseAction::Rate { .. } => ActionKind::Rate,
            CaseAction::Withdraw { .. } => ActionKind::Withdraw,
        }
    }
}

labelled_enum! {
    /// The kind of a [`CaseAction`], without its payload.
    ActionKind {
        Submit = "submit", "申报";
        Forward = "forward", "转报";
        Receive = "receive", "收件";
        Accept = "accept", "受理";
        RequestSupplement = "request_supplement", "补正告知";
        SupplementProvided = "supplement_provided", "补正材料";
        RefuseAcceptance = "refuse_acceptance", "不予受理";
        StartHandling = "start_handling", "承办";
        SubmitForReview = "submit_for_review", "提交审核";
        Decide = "decide", "审批决定";
        Conclude = "conclude", "办结";
        SendBack = "send_back", "退回";
        StartSpecialProcedure = "start_special_procedure", "启动特别程序";
        EndSpecialProcedure = "end_special_procedure", "结束特别程序";
        Extend = "extend", "延期";
        Suspend = "suspend", "中止";
        Resume = "resume", "恢复";
        HandOver = "hand_over", "移交";
        ResultReady = "result_ready", "结果待领";
        Issue = "issue", "出件";
        Deliver = "deliver", "送达";
        Rate = "rate", "评价";
        Withdraw = "withdraw", "撤回";
    }
}

/// Who issues an action, and when: the authoring principal and the time of the event (Unix ms,
/// the physical part of the event's HLC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub principal: Principal,
    pub at_ms: u64,
    /// The staff member behind an operator principal, when the acting node has a roster.
    pub staff: Option<StaffStamp>,
}

impl Actor {
    pub fn new(principal: Principal, at_ms: u64) -> Self {
        Actor {
            principal,
            at_ms,
            staff: None,
        }
    }

    /// The same actor, naming the staff member the roster says they are.
    pub fn with_staff(mut self, staff: Option<StaffStamp>) -> Self {
        self.staff = staff;
        self
    }

    /// The node the actor acts at.
    pub fn node(&self) -> &NodeId {
        self.principal.place()
    }
}

/// The catalogue terms a case runs under, copied from one catalogue version. Set at submission
/// from the submitting node's catalogue, and pinned at acceptance from the accepting township's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemTerms {
    /// Basic item code (基本编码).
    pub item_code: String,
    /// Implementation code (实施编码), the catalogue key.
    pub implementation_code: String,
    pub name: String,
    pub delegation: DelegationMode,
    pub category: Category,
    /// Immediate item (即办件): concluded at acceptance.
    pub immediate: bool,
    /// Promised limit in working days (0 for immediate items).
    pub promised_days: u32,
    /// Statutory limit in working days.
    pub statutory_days: u32,
    /// The catalogue version these terms were copied from.
    pub catalogue_version: u64,
}

impl ItemTerms {
    /// The terms of `item` as published in catalogue version `catalogue_version`.
    pub fn from_item(item: &Item, catalogue_version: u64) -> Self {
        ItemTerms {
            item_code: item.item_code.clone(),
            implementation_code: item.implementation_code.clone(),
            name: item.name.clone(),
            delegation: item.delegation,
            category: item.category,
            immediate: item.immediate,
            promised_days: item.promised_days,
            statutory_days: item.statutory_days,
            catalogue_version,
        }
    }

    /// The seal results of this item are stamped with ([`SealType::derive`]).
    pub fn seal(&self) -> SealType {
        SealType::derive(self.delegation, self.category)
    }
}

labelled_enum! {
    /// Who applies.
    ApplicantKind {
        Person = "person", "自然人";
        Organisation = "organisation", "法人或其他组织";
    }
}

/// What the case record keeps of the applicant: enough to find and call them, no more. The full
/// application lives in the case's documents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApplicantSummary {
    pub kind: ApplicantKind,
    /// Name of the person or organisation.
    pub name: String,
    /// Identity document or unified social credit code, masked for display
    /// (e.g. `441424********1234`).
    pub id_masked: String,
    /// Contact telephone, if given.
    pub phone: Option<String>,
}
