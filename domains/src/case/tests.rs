//! Tests of the case workflow: each route end to end, the full state × action × tier × mode
//! matrix against the legal table written once as data, the holder rule, reasons, immediate
//! items, pauses, send-back, seals and the determinism of folding.

use chrono::NaiveDate;

use super::*;
use crate::catalogue::{Category, DelegationMode, SealType};
use crate::ids::{NodeId, Tier};
use crate::pki::Principal;

const COUNTY: &str = "441424";
const TOWNSHIP: &str = "441424100";
const VILLAGE: &str = "441424100201";

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn node_of(tier: Tier) -> NodeId {
    node(match tier {
        Tier::County => COUNTY,
        Tier::Township => TOWNSHIP,
        Tier::Village => VILLAGE,
    })
}

fn operator(at: &str, at_ms: u64) -> Actor {
    Actor::new(Principal::operator(node(at), "wang.fang").unwrap(), at_ms)
}

fn terms(delegation: DelegationMode, category: Category, immediate: bool) -> ItemTerms {
    ItemTerms {
        item_code: "000201001000".to_owned(),
        implementation_code: "11441424MB2C12345X-000201001000-1-00".to_owned(),
        name: "个体工商户设立登记".to_owned(),
        delegation,
        category,
        immediate,
        promised_days: if immediate { 0 } else { 5 },
        statutory_days: 15,
        catalogue_version: 3,
    }
}

fn submission(origin: &str, terms: ItemTerms) -> Submission {
    let origin = node(origin);
    Submission {
        id: CaseId::new(&origin, 0x0192_f3a4_b5c6_0001, 42),
        number: CaseNumber::new(&origin, NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(), 7).unwrap(),
        terms,
        applicant: ApplicantSummary {
            kind: ApplicantKind::Person,
            name: "李明".to_owned(),
            id_masked: "441424********1234".to_owned(),
            phone: Some("13800000000".to_owned()),
        },
    }
}

fn seal_for(delegation: DelegationMode, category: Category) -> SealType {
    SealType::derive(delegation, category)
}

/// A case being driven step by step; every step must be legal.
struct Flow {
    view: CaseView,
    clock: u64,
    transitions: Vec<Transition>,
}

impl Flow {
    fn open(origin: &str, terms: ItemTerms) -> Flow {
        let view = CaseView::open(submission(origin, terms), &operator(origin, 1_000)).unwrap();
        Flow {
            view,
            clock: 1_000,
            transitions: Vec::new(),
        }
    }

    fn actor(&mut self, at: &str) -> Actor {
        self.clock += 1_000;
        operator(at, self.clock)
    }

    fn step(&mut self, at: &str, action: CaseAction) -> &mut Self {
        let actor = self.actor(at);
        let t = self
            .view
            .act(&action, &actor)
            .unwrap_or_else(|r| panic!("{} at {at} refused: {r}", action.kind()));
        self.transitions.push(t);
        self
    }

    fn refuse(&mut self, at: &str, action: CaseAction) -> Refusal {
        let actor = self.actor(at);
        let before = self.view.clone();
        let refusal = self
            .view
            .act(&action, &actor)
            .map(|t| t.to)
            .expect_err("action accepted but should be refused");
        assert_eq!(self.view, before, "a refused action changed the view");
        refusal
    }

    fn state(&self) -> StateKind {
        self.view.state.kind()
    }
}

fn accept(delegation: DelegationMode, category: Category, immediate: bool) -> CaseAction {
    CaseAction::Accept {
        terms: terms(delegation, category, immediate),
    }
}

/// An approving decision for an item whose seal is `item_seal`, stamped as `decision_seal`
/// says: the entrusted seals are the township's and never go on the county's decision.
fn decide_approve(item_seal: SealType) -> CaseAction {
    let seal = match item_seal {
        SealType::EntrustedApproval | SealType::Business => None,
        other => Some(other),
    };
    CaseAction::Decide {
        approve: true,
        reason: "材料齐全，符合法定条件".to_owned(),
        seal,
        impressions: 1,
    }
}

fn hand_over(to: &str) -> CaseAction {
    CaseAction::HandOver { to: node(to) }
}

fn rate() -> CaseAction {
    CaseAction::Rate {
        level: RatingLevel::VerySatisfied,
        defaulted: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Routes end to end
// ---------------------------------------------------------------------------------------------

#[test]
fn authorised_item_is_handled_entirely_at_the_township() {
    use DelegationMode::Authorised;
    let category = Category::GovernmentService;
    let mut f = Flow::open(TOWNSHIP, terms(Authorised, category, false));
    f.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(Authorised, category, false))
        .step(TOWNSHIP, CaseAction::StartHandling)
        .step(TOWNSHIP, CaseAction::SubmitForReview)
        .step(TOWNSHIP, decide_approve(SealType::TownshipApproval))
        .step(
            TOWNSHIP,
            CaseAction::Conclude {
                outcome: Outcome::Approved,
            },
        )
        .step(TOWNSHIP, CaseAction::ResultReady)
        .step(
            TOWNSHIP,
            CaseAction::Issue {
                seal: SealType::TownshipApproval,
                impressions: 1,
            },
        )
        .step(TOWNSHIP, CaseAction::Deliver { by_courier: false })
        .step(TOWNSHIP, rate());
    let v = &f.view;
    assert_eq!(
        v.state,
        CaseState::Rated {
            level: RatingLevel::VerySatisfied
        }
    );
    assert!(
        v.history
            .iter()
            .all(|r| r.at_node.as_str() == TOWNSHIP && r.holder.as_str() == TOWNSHIP)
    );
    assert_eq!(v.history.len(), 11);
    assert_eq!(v.outcome, Some(Outcome::Approved));
    assert_eq!(v.issued_seal, Some(SealType::TownshipApproval));
    assert_eq!(required_seal(v), SealType::TownshipApproval);
    assert_eq!(v.accepted_under, Some(3));
    assert_eq!(v.decision.as_ref().map(|d| d.at_node.as_str()), Some(TOWNSHIP));
    assert_eq!(v.received_ms, Some(2_000));
    assert_eq!(v.accepted_ms, Some(3_000));
    assert_eq!(v.concluded_ms, Some(7_000));
    assert_eq!(v.issued_ms, Some(9_000));
    assert_eq!(v.delivered_by_courier, Some(false));
    assert!(!v.paused);
    // An authorised item never goes to the county.
    let mut g = Flow::open(TOWNSHIP, terms(Authorised, category, false));
    g.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(Authorised, category, false));
    assert_eq!(
        g.refuse(TOWNSHIP, hand_over(COUNTY)),
        Refusal::IllegalTransition {
            from: StateKind::Accepted,
            action: ActionKind::HandOver
        }
    );
}

#[test]
fn entrusted_item_goes_to_the_county_back_office_and_back() {
    use DelegationMode::Entrusted;
    for (category, seal) in [
        (Category::GovernmentService, SealType::EntrustedApproval),
        (Category::PublicService, SealType::Business),
    ] {
        let mut f = Flow::open(VILLAGE, terms(Entrusted, category, false));
        f.step(VILLAGE, CaseAction::Forward)
            .step(TOWNSHIP, CaseAction::Receive)
            .step(TOWNSHIP, accept(Entrusted, category, false));
        // The township accepts but may not handle or decide: it must hand over.
        assert!(matches!(
            f.refuse(TOWNSHIP, CaseAction::StartHandling),
            Refusal::WrongTier {
                tier: Tier::Township,
                ..
            }
        ));
        f.step(TOWNSHIP, hand_over(COUNTY));
        assert_eq!(f.view.holder.as_str(), COUNTY);
        assert_eq!(f.state(), StateKind::Accepted);
        f.step(COUNTY, CaseAction::StartHandling)
            .step(COUNTY, CaseAction::SubmitForReview)
            .step(COUNTY, decide_approve(seal))
            .step(
                COUNTY,
                CaseAction::Conclude {
                    outcome: Outcome::Approved,
                },
            );
        // The county concludes but does not issue: the result goes back to the front desk.
        assert!(matches!(
            f.refuse(COUNTY, CaseAction::ResultReady),
            Refusal::WrongTier { tier: Tier::County, .. }
        ));
        assert!(matches!(
            f.refuse(COUNTY, hand_over("441424101")),
            Refusal::WrongHandOver { .. }
        ));
        f.step(COUNTY, hand_over(TOWNSHIP))
            .step(TOWNSHIP, CaseAction::ResultReady)
            .step(TOWNSHIP, CaseAction::Issue { seal, impressions: 1 })
            .step(TOWNSHIP, CaseAction::Deliver { by_courier: true })
            .step(TOWNSHIP, hand_over(VILLAGE))
            .step(VILLAGE, rate());
        let v = &f.view;
        assert_eq!(v.state.kind(), StateKind::Rated);
        assert_eq!(v.holder.as_str(), VILLAGE);
        assert_eq!(v.issued_seal, Some(seal));
        assert_eq!(
            v.decision.as_ref().map(|d| (d.at_node.as_str(), d.seal)),
            Some((COUNTY, None)),
            "the county decides an entrusted item without stamping the township's seal"
        );
        let stages: Vec<(&str, ActionKind)> = v
            .history
            .iter()
            .map(|r| (r.at_node.as_str(), r.action.kind()))
            .collect();
        assert_eq!(
            stages,
            [
                (VILLAGE, ActionKind::Submit),
                (VILLAGE, ActionKind::Forward),
                (TOWNSHIP, ActionKind::Receive),
                (TOWNSHIP, ActionKind::Accept),
                (TOWNSHIP, ActionKind::HandOver),
                (COUNTY, ActionKind::StartHandling),
                (COUNTY, ActionKind::SubmitForReview),
                (COUNTY, ActionKind::Decide),
                (COUNTY, ActionKind::Conclude),
                (COUNTY, ActionKind::HandOver),
                (TOWNSHIP, ActionKind::ResultReady),
                (TOWNSHIP, ActionKind::Issue),
                (TOWNSHIP, ActionKind::Deliver),
                (TOWNSHIP, ActionKind::HandOver),
                (VILLAGE, ActionKind::Rate),
            ]
        );
        let rating = v.rating.as_ref().unwrap();
        assert_eq!(
            (rating.level, rating.defaulted, rating.at_node.as_str()),
            (RatingLevel::VerySatisfied, false, VILLAGE)
        );
    }
}

#[test]
fn not_delegated_item_is_decided_by_the_county_department_and_issued_at_the_township() {
    use DelegationMode::NotDelegated;
    let category = Category::GovernmentService;
    let mut f = Flow::open(TOWNSHIP, terms(NotDelegated, category, false));
    f.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(NotDelegated, category, false));
    // The county cannot touch a case the township holds.
    assert_eq!(
        f.refuse(COUNTY, CaseAction::StartHandling),
        Refusal::NotHolder {
            holder: node(TOWNSHIP),
            actor: node(COUNTY)
        }
    );
    f.step(TOWNSHIP, hand_over(COUNTY))
        .step(COUNTY, CaseAction::StartHandling)
        .step(COUNTY, CaseAction::SubmitForReview);
    assert_eq!(
        f.refuse(
            COUNTY,
            CaseAction::Decide {
                approve: true,
                reason: String::new(),
                seal: Some(SealType::EntrustedApproval),
                impressions: 1,
            }
        ),
        Refusal::WrongSeal {
            expected: SealLabel(SealType::County),
            given: SealLabel(SealType::EntrustedApproval)
        }
    );
    f.step(
        COUNTY,
        CaseAction::Decide {
            approve: false,
            reason: "不符合法定条件".to_owned(),
            seal: Some(SealType::County),
            impressions: 1,
        },
    )
    .step(
        COUNTY,
        CaseAction::Conclude {
            outcome: Outcome::Refused {
                reason: "不符合法定条件".to_owned(),
            },
        },
    )
    .step(COUNTY, hand_over(TOWNSHIP))
    .step(TOWNSHIP, CaseAction::ResultReady)
    .step(
        TOWNSHIP,
        CaseAction::Issue {
            seal: SealType::County,
            impressions: 1,
        },
    )
    .step(TOWNSHIP, rate());
    let v = &f.view;
    assert_eq!(v.state.kind(), StateKind::Rated);
    assert_eq!(v.outcome.as_ref().map(Outcome::as_str), Some("refused"));
    assert_eq!(v.decision.as_ref().map(|d| d.approved), Some(false));
    assert_eq!(required_seal(v), SealType::County);
    // The township never decided anything.
    assert!(
        v.history
            .iter()
            .filter(|r| r.action.kind() == ActionKind::Decide || r.action.kind() == ActionKind::Conclude)
            .all(|r| r.at_node.as_str() == COUNTY)
    );
}

#[test]
fn village_submits_and_forwards_and_the_township_receives() {
    let t = terms(DelegationMode::Authorised, Category::PublicService, false);
    let mut f = Flow::open(VILLAGE, t);
    assert_eq!(f.view.origin.as_str(), VILLAGE);
    assert_eq!(f.view.holder.as_str(), VILLAGE);
    assert_eq!(f.view.front_desk().as_str(), TOWNSHIP);
    assert_eq!(f.view.history[0].from_state, None);
    // The village may not receive; the township may not receive what the village still holds.
    assert!(matches!(
        f.refuse(VILLAGE, CaseAction::Receive),
        Refusal::WrongTier {
            tier: Tier::Village,
            action: ActionKind::Receive,
            ..
        }
    ));
    assert!(matches!(
        f.refuse(TOWNSHIP, CaseAction::Receive),
        Refusal::NotHolder { .. }
    ));
    f.step(VILLAGE, CaseAction::Forward);
    assert_eq!((f.state(), f.view.holder.as_str()), (StateKind::Submitted, TOWNSHIP));
    // Once forwarded the village holds nothing.
    assert!(matches!(
        f.refuse(VILLAGE, CaseAction::Forward),
        Refusal::NotHolder { .. }
    ));
    f.step(TOWNSHIP, CaseAction::Receive);
    assert_eq!(f.state(), StateKind::Received);
    // Villages only submit, forward and rate.
    for kind in ActionKind::ALL {
        let allowed = tiers_for(*kind, DelegationMode::Authorised).contains(&Tier::Village);
        let expected = matches!(kind, ActionKind::Submit | ActionKind::Forward | ActionKind::Rate);
        for mode in DelegationMode::ALL {
            assert_eq!(
                tiers_for(*kind, *mode).contains(&Tier::Village),
                expected,
                "{kind} {mode}"
            );
        }
        assert_eq!(allowed, expected);
    }
}

#[test]
fn opening_checks_where_the_case_starts() {
    let t = terms(DelegationMode::Entrusted, Category::GovernmentService, false);
    // The county hall is not a place cases start in this workflow.
    let mut s = submission(COUNTY, t.clone());
    assert!(matches!(
        CaseView::open(s.clone(), &operator(COUNTY, 1)),
        Err(Refusal::WrongTier {
            tier: Tier::County,
            action: ActionKind::Submit,
            ..
        })
    ));
    // Id and number are made at the submitting node.
    s = submission(VILLAGE, t.clone());
    assert!(matches!(
        CaseView::open(s.clone(), &operator(TOWNSHIP, 1)),
        Err(Refusal::Invalid { field: "id", .. })
    ));
    s.number = CaseNumber::new(&node(TOWNSHIP), NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(), 1).unwrap();
    assert!(matches!(
        CaseView::open(s.clone(), &operator(VILLAGE, 1)),
        Err(Refusal::Invalid { field: "number", .. })
    ));
    s = submission(VILLAGE, t);
    s.applicant.name = "  ".to_owned();
    assert!(matches!(
        CaseView::open(s.clone(), &operator(VILLAGE, 1)),
        Err(Refusal::Invalid {
            field: "applicant.name",
            ..
        })
    ));
    let courier = Actor::new(Principal::courier(node(VILLAGE), "dev-07").unwrap(), 1);
    assert_eq!(
        CaseView::open(submission(VILLAGE, s.terms.clone()), &courier),
        Err(Refusal::WrongRole { role: "courier" })
    );
    // A submitted case cannot be submitted again.
    let mut f = Flow::open(VILLAGE, s.terms.clone());
    assert_eq!(
        f.refuse(VILLAGE, CaseAction::Submit),
        Refusal::IllegalTransition {
            from: StateKind::Submitted,
            action: ActionKind::Submit
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The full matrix against the legal table
// ---------------------------------------------------------------------------------------------

/// A state to put the case in (paused states in both stages they can pause, decisions both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Submitted,
    Received,
    Accepted,
    Supplement,
    NotAccepted,
    Handling,
    Review,
    DecisionApproved,
    DecisionRefused,
    Concluded,
    SpecialHandling,
    SpecialReview,
    SuspendedHandling,
    SuspendedReview,
    ResultReady,
    Issued,
    Delivered,
    Rated,
}

const STATES: &[St] = &[
    St::Submitted,
    St::Received,
    St::Accepted,
    St::Supplement,
    St::NotAccepted,
    St::Handling,
    St::Review,
    St::DecisionApproved,
    St::DecisionRefused,
    St::Concluded,
    St::SpecialHandling,
    St::SpecialReview,
    St::SuspendedHandling,
    St::SuspendedReview,
    St::ResultReady,
    St::Issued,
    St::Delivered,
    St::Rated,
];

impl St {
    fn state(self) -> CaseState {
        use CaseState as S;
        match self {
            St::Submitted => S::Submitted,
            St::Received => S::Received,
            St::Accepted => S::Accepted,
            St::Supplement => S::SupplementRequested {
                materials: vec!["营业执照副本".to_owned()],
            },
            St::NotAccepted => S::NotAccepted {
                reason: "不属于受理范围".to_owned(),
            },
            St::Handling => S::Handling,
            St::Review => S::Review,
            St::DecisionApproved => S::Decision { approved: true },
            St::DecisionRefused => S::Decision { approved: false },
            St::Concluded => S::Concluded {
                outcome: Outcome::Approved,
            },
            St::SpecialHandling => S::SpecialProcedure {
                kind: SpecialProcedureKind::Hearing,
                resume_to: WorkStage::Handling,
            },
            St::SpecialReview => S::SpecialProcedure {
                kind: SpecialProcedureKind::ExpertReview,
                resume_to: WorkStage::Review,
            },
            St::SuspendedHandling => S::Suspended {
                resume_to: WorkStage::Handling,
            },
            St::SuspendedReview => S::Suspended {
                resume_to: WorkStage::Review,
            },
            St::ResultReady => S::ResultReady,
            St::Issued => S::Issued,
            St::Delivered => S::Delivered,
            St::Rated => S::Rated {
                level: RatingLevel::Satisfied,
            },
        }
    }
}

/// One well-formed action of each kind (conclusions and send-backs in each form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Submit,
    Forward,
    Receive,
    Accept,
    RequestSupplement,
    SupplementProvided,
    RefuseAcceptance,
    StartHandling,
    SubmitForReview,
    Decide,
    ConcludeApproved,
    ConcludeRefused,
    ConcludeReturned,
    ConcludeWithdrawn,
    ConcludeTerminated,
    SendBackHandling,
    SendBackReview,
    StartSpecial,
    EndSpecial,
    Extend,
    Suspend,
    Resume,
    HandOver,
    ResultReady,
    Issue,
    Deliver,
    Rate,
    Withdraw,
}

const ACTS: &[Act] = &[
    Act::Submit,
    Act::Forward,
    Act::Receive,
    Act::Accept,
    Act::RequestSupplement,
    Act::SupplementProvided,
    Act::RefuseAcceptance,
    Act::StartHandling,
    Act::SubmitForReview,
    Act::Decide,
    Act::ConcludeApproved,
    Act::ConcludeRefused,
    Act::ConcludeReturned,
    Act::ConcludeWithdrawn,
    Act::ConcludeTerminated,
    Act::SendBackHandling,
    Act::SendBackReview,
    Act::StartSpecial,
    Act::EndSpecial,
    Act::Extend,
    Act::Suspend,
    Act::Resume,
    Act::HandOver,
    Act::ResultReady,
    Act::Issue,
    Act::Deliver,
    Act::Rate,
    Act::Withdraw,
];

impl Act {
    /// The action, well formed for a case of `view` acted on at `tier` (reasons given, the
    /// item's seal, the hand-over target the rules expect from that tier in that state).
    fn action(self, view: &CaseView, tier: Tier) -> CaseAction {
        let why = || "申请人要求".to_owned();
        let seal = required_seal(view);
        let t = &view.terms;
        match self {
            Act::Submit => CaseAction::Submit,
            Act::Forward => CaseAction::Forward,
            Act::Receive => CaseAction::Receive,
            Act::Accept => accept(t.delegation, t.category, t.immediate),
            Act::RequestSupplement => CaseAction::RequestSupplement {
                materials: vec!["身份证复印件".to_owned()],
            },
            Act::SupplementProvided => CaseAction::SupplementProvided,
            Act::RefuseAcceptance => CaseAction::RefuseAcceptance { reason: why() },
            Act::StartHandling => CaseAction::StartHandling,
            Act::SubmitForReview => CaseAction::SubmitForReview,
            Act::Decide => decide_approve(seal),
            Act::ConcludeApproved => CaseAction::Conclude {
                outcome: Outcome::Approved,
            },
            Act::ConcludeRefused => CaseAction::Conclude {
                outcome: Outcome::Refused { reason: why() },
            },
            Act::ConcludeReturned => CaseAction::Conclude {
                outcome: Outcome::Returned { reason: why() },
            },
            Act::ConcludeWithdrawn => CaseAction::Conclude {
                outcome: Outcome::Withdrawn { reason: why() },
            },
            Act::ConcludeTerminated => CaseAction::Conclude {
                outcome: Outcome::Terminated { reason: why() },
            },
            Act::SendBackHandling => CaseAction::SendBack {
                to_stage: WorkStage::Handling,
                reason: why(),
            },
            Act::SendBackReview => CaseAction::SendBack {
                to_stage: WorkStage::Review,
                reason: why(),
            },
            Act::StartSpecial => CaseAction::StartSpecialProcedure {
                kind: SpecialProcedureKind::Testing,
                reason: why(),
            },
            Act::EndSpecial => CaseAction::EndSpecialProcedure,
            Act::Extend => CaseAction::Extend {
                days: MAX_EXTENSION_DAYS,
                reason: why(),
                approver: "陈局长".to_owned(),
            },
            Act::Suspend => CaseAction::Suspend { reason: why() },
            Act::Resume => CaseAction::Resume,
            Act::HandOver => CaseAction::HandOver {
                to: match (tier, view.state.kind()) {
                    (Tier::Township, StateKind::Accepted) => node(COUNTY),
                    (Tier::Township, _) => node(VILLAGE),
                    _ => node(TOWNSHIP),
                },
            },
            Act::ResultReady => CaseAction::ResultReady,
            Act::Issue => CaseAction::Issue { seal, impressions: 1 },
            Act::Deliver => CaseAction::Deliver { by_courier: true },
            Act::Rate => rate(),
            Act::Withdraw => CaseAction::Withdraw { reason: why() },
        }
    }
}

/// Who may take a step of the table.
#[derive(Debug, Clone, Copy)]
enum Who {
    Village,
    Township,
    County,
    /// The township for authorised items, the county otherwise.
    Decider,
    VillageOrTownship,
    TownshipOrCounty,
}

impl Who {
    fn allows(self, tier: Tier, mode: DelegationMode) -> bool {
        match self {
            Who::Village => tier == Tier::Village,
            Who::Township => tier == Tier::Township,
            Who::County => tier == Tier::County,
            Who::Decider => {
                tier == if mode == DelegationMode::Authorised {
                    Tier::Township
                } else {
                    Tier::County
                }
            }
            Who::VillageOrTownship => tier != Tier::County,
            Who::TownshipOrCounty => tier != Tier::Village,
        }
    }
}

/// A condition beyond state and tier.
#[derive(Debug, Clone, Copy)]
enum Guard {
    Always,
    /// The item is immediate (即办件).
    Immediate,
    /// The item is entrusted or not delegated (it goes to the county).
    NotAuthorised,
}

impl Guard {
    fn holds(self, mode: DelegationMode, immediate: bool) -> bool {
        match self {
            Guard::Always => true,
            Guard::Immediate => immediate,
            Guard::NotAuthorised => mode != DelegationMode::Authorised,
        }
    }
}

use Act as A;
use Guard::{Always, Immediate, NotAuthorised};
use St as S;
use StateKind as K;
use Who as W;

/// THE legal table: every (state, action) step that is allowed, what it leads to, who may take
/// it, and on which condition. Everything not listed must be refused.
#[rustfmt::skip]
const LEGAL: &[(St, Act, StateKind, Who, Guard)] = &[
    (S::Submitted, A::Forward, K::Submitted, W::Village, Always),
    (S::Submitted, A::Receive, K::Received, W::Township, Always),
    (S::Submitted, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::Received, A::Accept, K::Accepted, W::Township, Always),
    (S::Received, A::RequestSupplement, K::SupplementRequested, W::Township, Always),
    (S::Received, A::RefuseAcceptance, K::NotAccepted, W::Township, Always),
    (S::Received, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::Supplement, A::SupplementProvided, K::Received, W::Township, Always),
    (S::Supplement, A::RefuseAcceptance, K::NotAccepted, W::Township, Always),
    (S::Supplement, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::Accepted, A::HandOver, K::Accepted, W::Township, NotAuthorised),
    (S::Accepted, A::StartHandling, K::Handling, W::Decider, Always),
    (S::Accepted, A::ConcludeApproved, K::Concluded, W::Decider, Immediate),
    (S::Accepted, A::ConcludeReturned, K::Concluded, W::Decider, Always),
    (S::Accepted, A::ConcludeTerminated, K::Concluded, W::Decider, Always),
    (S::Accepted, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::Handling, A::SubmitForReview, K::Review, W::Decider, Always),
    (S::Handling, A::StartSpecial, K::SpecialProcedure, W::Decider, Always),
    (S::Handling, A::Suspend, K::Suspended, W::Decider, Always),
    (S::Handling, A::Extend, K::Handling, W::Decider, Always),
    (S::Handling, A::ConcludeReturned, K::Concluded, W::Decider, Always),
    (S::Handling, A::ConcludeTerminated, K::Concluded, W::Decider, Always),
    (S::Handling, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::Review, A::Decide, K::Decision, W::Decider, Always),
    (S::Review, A::SendBackHandling, K::Handling, W::Decider, Always),
    (S::Review, A::StartSpecial, K::SpecialProcedure, W::Decider, Always),
    (S::Review, A::Suspend, K::Suspended, W::Decider, Always),
    (S::Review, A::Extend, K::Review, W::Decider, Always),
    (S::Review, A::ConcludeReturned, K::Concluded, W::Decider, Always),
    (S::Review, A::ConcludeTerminated, K::Concluded, W::Decider, Always),
    (S::Review, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::DecisionApproved, A::ConcludeApproved, K::Concluded, W::Decider, Always),
    (S::DecisionApproved, A::SendBackHandling, K::Handling, W::Decider, Always),
    (S::DecisionApproved, A::SendBackReview, K::Review, W::Decider, Always),
    (S::DecisionRefused, A::ConcludeRefused, K::Concluded, W::Decider, Always),
    (S::DecisionRefused, A::SendBackHandling, K::Handling, W::Decider, Always),
    (S::DecisionRefused, A::SendBackReview, K::Review, W::Decider, Always),
    (S::SpecialHandling, A::EndSpecial, K::Handling, W::Decider, Always),
    (S::SpecialHandling, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::SpecialReview, A::EndSpecial, K::Review, W::Decider, Always),
    (S::SpecialReview, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::SuspendedHandling, A::Resume, K::Handling, W::Decider, Always),
    (S::SuspendedHandling, A::ConcludeTerminated, K::Concluded, W::Decider, Always),
    (S::SuspendedHandling, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::SuspendedReview, A::Resume, K::Review, W::Decider, Always),
    (S::SuspendedReview, A::ConcludeTerminated, K::Concluded, W::Decider, Always),
    (S::SuspendedReview, A::Withdraw, K::Concluded, W::TownshipOrCounty, Always),
    (S::Concluded, A::HandOver, K::Concluded, W::County, Always),
    (S::Concluded, A::ResultReady, K::ResultReady, W::Township, Always),
    (S::ResultReady, A::Issue, K::Issued, W::Township, Always),
    (S::Issued, A::Deliver, K::Delivered, W::Township, Always),
    (S::Issued, A::HandOver, K::Issued, W::Township, Always),
    (S::Issued, A::Rate, K::Rated, W::VillageOrTownship, Always),
    (S::Delivered, A::HandOver, K::Delivered, W::Township, Always),
    (S::Delivered, A::Rate, K::Rated, W::VillageOrTownship, Always),
];

/// A case of `mode` in state `st`, held by the node of `holder`, started at the village.
fn view_in(st: St, mode: DelegationMode, category: Category, immediate: bool, holder: Tier) -> CaseView {
    let mut f = Flow::open(VILLAGE, terms(mode, category, immediate));
    let v = &mut f.view;
    v.state = st.state();
    v.paused = v.state.is_paused();
    v.holder = node_of(holder);
    v.clone()
}

#[test]
fn exactly_the_legal_table_is_accepted_in_the_full_matrix() {
    let mut used = vec![0usize; LEGAL.len()];
    let mut accepted = 0;
    let mut refused = 0;
    for &st in STATES {
        for &act in ACTS {
            for &mode in DelegationMode::ALL {
                for category in [Category::GovernmentService, Category::PublicService] {
                    for immediate in [false, true] {
                        for tier in [Tier::Village, Tier::Township, Tier::County] {
                            let view = view_in(st, mode, category, immediate, tier);
                            let action = act.action(&view, tier);
                            let actor = operator(node_of(tier).as_str(), 99);
                            let got = decide(&view, &action, &actor);
                            let row = LEGAL.iter().position(|(s, a, _, who, guard)| {
                                *s == st && *a == act && who.allows(tier, mode) && guard.holds(mode, immediate)
                            });
                            let case =
                                format!("{st:?} × {act:?} by {tier} ({mode}, {category}, immediate {immediate})");
                            match (row, got) {
                                (Some(i), Ok(t)) => {
                                    used[i] += 1;
                                    accepted += 1;
                                    assert_eq!(t.to.kind(), LEGAL[i].2, "{case}: wrong target state");
                                    assert_eq!(t.from, view.state, "{case}");
                                    assert_eq!(t.at_node, node_of(tier), "{case}");
                                    let moves = matches!(act, Act::Forward | Act::HandOver);
                                    assert_eq!(t.holder != view.holder, moves, "{case}: holder change");
                                }
                                (Some(_), Err(r)) => panic!("{case}: legal but refused: {r}"),
                                (None, Ok(t)) => panic!("{case}: illegal but accepted → {}", t.to),
                                (None, Err(r)) => {
                                    refused += 1;
                                    // The tier rule comes before the state rule, so the clerk
                                    // learns who does a step before learning when.
                                    let kind = action.kind();
                                    let tier_ok = tiers_for(kind, mode).contains(&tier);
                                    assert_eq!(
                                        matches!(r, Refusal::WrongTier { .. }),
                                        !tier_ok,
                                        "{case}: unexpected refusal {r:?}"
                                    );
                                    assert_ne!(r.code(), RefusalCode::InvalidArgument, "{case}: {r:?}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for (i, n) in used.iter().enumerate() {
        assert!(*n > 0, "legal row {:?} never exercised", LEGAL[i]);
    }
    assert_eq!(accepted + refused, STATES.len() * ACTS.len() * 3 * 2 * 2 * 3);
    assert!(
        accepted > 700 && refused > 16000,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn terminal_states_refuse_everything() {
    for st in [St::NotAccepted, St::Rated] {
        assert!(st.state().is_terminal());
        for &act in ACTS {
            for tier in [Tier::Village, Tier::Township, Tier::County] {
                let view = view_in(st, DelegationMode::Entrusted, Category::GovernmentService, true, tier);
                let actor = operator(node_of(tier).as_str(), 5);
                assert!(
                    decide(&view, &act.action(&view, tier), &actor).is_err(),
                    "{st:?} {act:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The holder rule
// ---------------------------------------------------------------------------------------------

#[test]
fn only_the_holder_moves_a_case() {
    use DelegationMode::Entrusted;
    let category = Category::GovernmentService;
    let mut f = Flow::open(TOWNSHIP, terms(Entrusted, category, false));
    f.step(TOWNSHIP, CaseAction::Receive);
    // The county cannot accept a case the township holds.
    let r = f.refuse(COUNTY, accept(Entrusted, category, false));
    assert_eq!(
        r,
        Refusal::NotHolder {
            holder: node(TOWNSHIP),
            actor: node(COUNTY)
        }
    );
    assert_eq!(r.code(), RefusalCode::FailedPrecondition);
    let text = r.to_string();
    assert!(text.contains("held by township 441424100"), "{text}");
    assert!(text.contains("not by county 441424"), "{text}");
    // Another township cannot either.
    assert!(matches!(
        f.refuse("441424101", CaseAction::RefuseAcceptance { reason: "x".into() }),
        Refusal::NotHolder { .. }
    ));
    f.step(TOWNSHIP, accept(Entrusted, category, false));
    // The township cannot decide an entrusted item, nor conclude it, even while holding it.
    for action in [
        CaseAction::StartHandling,
        decide_approve(SealType::EntrustedApproval),
        CaseAction::Conclude {
            outcome: Outcome::Approved,
        },
    ] {
        let r = f.refuse(TOWNSHIP, action);
        assert!(
            matches!(
                r,
                Refusal::WrongTier {
                    tier: Tier::Township,
                    delegation: Entrusted,
                    ..
                }
            ),
            "{r:?}"
        );
        assert_eq!(r.code(), RefusalCode::PermissionDenied);
        assert!(r.to_string().contains("that is for the county"), "{r}");
    }
    // A hand-over goes to this township's county, nowhere else.
    assert_eq!(
        f.refuse(TOWNSHIP, hand_over("441425")),
        Refusal::WrongHandOver {
            expected: node(COUNTY),
            given: node("441425")
        }
    );
    assert!(matches!(
        f.refuse(TOWNSHIP, hand_over(VILLAGE)),
        Refusal::WrongHandOver { .. }
    ));
    f.step(TOWNSHIP, hand_over(COUNTY));
    // Now the township holds nothing: a withdrawal must go through the county.
    assert!(matches!(
        f.refuse(
            TOWNSHIP,
            CaseAction::Withdraw {
                reason: "申请人撤回".into()
            }
        ),
        Refusal::NotHolder { .. }
    ));
    f.step(
        COUNTY,
        CaseAction::Withdraw {
            reason: "申请人撤回".into(),
        },
    );
    assert_eq!(
        f.view.outcome,
        Some(Outcome::Withdrawn {
            reason: "申请人撤回".into()
        })
    );
    // The county may not hand over again while it still decides.
    let mut g = Flow::open(TOWNSHIP, terms(Entrusted, category, false));
    g.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(Entrusted, category, false))
        .step(TOWNSHIP, hand_over(COUNTY))
        .step(COUNTY, CaseAction::StartHandling);
    assert!(matches!(
        g.refuse(COUNTY, hand_over(TOWNSHIP)),
        Refusal::IllegalTransition { .. }
    ));
}

#[test]
fn couriers_and_default_ratings_are_checked() {
    let mut view = view_in(
        St::Issued,
        DelegationMode::Authorised,
        Category::GovernmentService,
        false,
        Tier::Township,
    );
    let courier = Actor::new(Principal::courier(node(TOWNSHIP), "dev-07").unwrap(), 5);
    let r = decide(&view, &CaseAction::Deliver { by_courier: true }, &courier).unwrap_err();
    assert_eq!(r, Refusal::WrongRole { role: "courier" });
    assert_eq!(r.code(), RefusalCode::PermissionDenied);
    let default = CaseAction::Rate {
        level: RatingLevel::BasicallySatisfied,
        defaulted: true,
    };
    assert!(matches!(
        decide(&view, &default, &operator(TOWNSHIP, 5)),
        Err(Refusal::Invalid { field: "defaulted", .. })
    ));
    let node_actor = Actor::new(Principal::Node(node(TOWNSHIP)), 6);
    view.act(&default, &node_actor).unwrap();
    let rating = view.rating.as_ref().unwrap();
    assert!(rating.defaulted);
    assert_eq!(rating.by, "node:441424100");
    assert!(!rating.level.is_bad() && !rating.level.is_good());
    assert_eq!(rating.level.score(), 6);
}

// ---------------------------------------------------------------------------------------------
// Reasons, immediate items, pauses, send-back, seals
// ---------------------------------------------------------------------------------------------

/// Builds an action around a reason.
type MakeAction = fn(String) -> CaseAction;

#[test]
fn reasons_are_required() {
    let mode = DelegationMode::Authorised;
    let blank = ["", "   ", "\n\t"];
    let cases: Vec<(St, MakeAction)> = vec![
        (St::Received, |reason| CaseAction::RefuseAcceptance { reason }),
        (St::Review, |reason| CaseAction::SendBack {
            to_stage: WorkStage::Handling,
            reason,
        }),
        (St::Handling, |reason| CaseAction::Suspend { reason }),
        (St::Handling, |reason| CaseAction::Withdraw { reason }),
        (St::Handling, |reason| CaseAction::StartSpecialProcedure {
            kind: SpecialProcedureKind::Hearing,
            reason,
        }),
        (St::Review, |reason| CaseAction::Decide {
            approve: false,
            reason,
            seal: Some(SealType::TownshipApproval),
            impressions: 1,
        }),
        (St::DecisionRefused, |reason| CaseAction::Conclude {
            outcome: Outcome::Refused { reason },
        }),
        (St::Handling, |reason| CaseAction::Conclude {
            outcome: Outcome::Returned { reason },
        }),
        (St::SuspendedHandling, |reason| CaseAction::Conclude {
            outcome: Outcome::Terminated { reason },
        }),
    ];
    for (st, make) in &cases {
        let view = view_in(*st, mode, Category::GovernmentService, false, Tier::Township);
        let actor = operator(TOWNSHIP, 5);
        for b in blank {
            let action = make(b.to_owned());
            let r = decide(&view, &action, &actor).unwrap_err();
            assert_eq!(r, Refusal::MissingReason { action: action.kind() }, "{st:?}");
            assert_eq!(r.code(), RefusalCode::InvalidArgument);
        }
        let t = decide(&view, &make("理由".to_owned()), &actor).unwrap();
        assert_eq!(t.reason.as_deref(), Some("理由"));
        let too_long = make("长".repeat(MAX_REASON_CHARS + 1));
        assert!(matches!(
            decide(&view, &too_long, &actor),
            Err(Refusal::Invalid { field: "reason", .. })
        ));
    }
    // An approval needs no reason; the opinion is kept when given.
    let view = view_in(St::Review, mode, Category::GovernmentService, false, Tier::Township);
    let plain = CaseAction::Decide {
        approve: true,
        reason: String::new(),
        seal: Some(SealType::TownshipApproval),
        impressions: 1,
    };
    let t = decide(&view, &plain, &operator(TOWNSHIP, 5)).unwrap();
    assert_eq!(t.reason, None);
    // A supplement request names its materials.
    let view = view_in(St::Received, mode, Category::GovernmentService, false, Tier::Township);
    for materials in [vec![], vec!["身份证".to_owned(), " ".to_owned()]] {
        let r = decide(
            &view,
            &CaseAction::RequestSupplement { materials },
            &operator(TOWNSHIP, 5),
        )
        .unwrap_err();
        assert!(matches!(r, Refusal::Invalid { field: "materials", .. }), "{r:?}");
    }
    assert_eq!(
        Refusal::MissingReason {
            action: ActionKind::RefuseAcceptance
        }
        .to_string(),
        "refuse acceptance (不予受理) needs a reason"
    );
}

#[test]
fn immediate_items_conclude_in_one_step_at_the_deciding_tier() {
    let category = Category::GovernmentService;
    let approve = CaseAction::Conclude {
        outcome: Outcome::Approved,
    };
    // Authorised: the township concludes at acceptance.
    let mut f = Flow::open(TOWNSHIP, terms(DelegationMode::Authorised, category, true));
    f.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(DelegationMode::Authorised, category, true))
        .step(TOWNSHIP, approve.clone());
    assert_eq!(
        f.view.state,
        CaseState::Concluded {
            outcome: Outcome::Approved
        }
    );
    assert_eq!(f.view.history.len(), 4);
    assert!(f.view.decision.is_none());
    // Not immediate: refused with the reason why.
    let mut g = Flow::open(TOWNSHIP, terms(DelegationMode::Authorised, category, false));
    g.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(DelegationMode::Authorised, category, false));
    let r = g.refuse(TOWNSHIP, approve.clone());
    assert!(matches!(r, Refusal::NotImmediate { promised_days: 5, .. }), "{r:?}");
    assert!(r.to_string().contains("即办件"));
    // Entrusted: the county concludes, once the township has handed the case over.
    let mode = DelegationMode::Entrusted;
    let mut h = Flow::open(TOWNSHIP, terms(mode, category, true));
    h.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(mode, category, true));
    assert!(matches!(h.refuse(TOWNSHIP, approve.clone()), Refusal::WrongTier { .. }));
    h.step(TOWNSHIP, hand_over(COUNTY)).step(COUNTY, approve);
    assert_eq!(h.state(), StateKind::Concluded);
}

#[test]
fn supplement_special_procedure_and_suspension_pause_the_clock() {
    let mode = DelegationMode::Authorised;
    let category = Category::PublicService;
    let mut f = Flow::open(TOWNSHIP, terms(mode, category, false));
    f.step(TOWNSHIP, CaseAction::Receive).step(
        TOWNSHIP,
        CaseAction::RequestSupplement {
            materials: vec!["户口簿".to_owned(), "房产证明".to_owned()],
        },
    );
    assert!(f.view.paused);
    assert_eq!(f.view.paused_since_ms, Some(3_000));
    assert_eq!(
        f.view.history.last().unwrap().reason.as_deref(),
        Some("户口簿；房产证明")
    );
    f.step(TOWNSHIP, CaseAction::SupplementProvided);
    assert!(!f.view.paused && f.view.paused_since_ms.is_none());
    assert_eq!(f.state(), StateKind::Received);
    f.step(TOWNSHIP, accept(mode, category, false))
        .step(TOWNSHIP, CaseAction::StartHandling)
        .step(
            TOWNSHIP,
            CaseAction::Suspend {
                reason: "等待司法判决".to_owned(),
            },
        );
    assert_eq!(
        f.view.state,
        CaseState::Suspended {
            resume_to: WorkStage::Handling
        }
    );
    assert!(f.view.paused);
    // Nothing moves a suspended case but resume, termination and withdrawal.
    assert!(matches!(
        f.refuse(TOWNSHIP, CaseAction::SubmitForReview),
        Refusal::IllegalTransition { .. }
    ));
    f.step(TOWNSHIP, CaseAction::Resume);
    assert_eq!(f.view.state, CaseState::Handling);
    assert!(!f.view.paused);
    f.step(TOWNSHIP, CaseAction::SubmitForReview).step(
        TOWNSHIP,
        CaseAction::StartSpecialProcedure {
            kind: SpecialProcedureKind::ExpertReview,
            reason: "需专家论证".to_owned(),
        },
    );
    assert!(f.view.paused);
    assert!(matches!(
        f.refuse(TOWNSHIP, CaseAction::Resume),
        Refusal::IllegalTransition { .. }
    ));
    f.step(TOWNSHIP, CaseAction::EndSpecialProcedure);
    assert_eq!(f.view.state, CaseState::Review);
    let pauses = f.view.pause_intervals();
    assert_eq!(
        pauses,
        [
            PauseInterval {
                state: StateKind::SupplementRequested,
                from_ms: 3_000,
                until_ms: Some(4_000)
            },
            PauseInterval {
                state: StateKind::Suspended,
                from_ms: 7_000,
                until_ms: Some(9_000)
            },
            PauseInterval {
                state: StateKind::SpecialProcedure,
                from_ms: 11_000,
                until_ms: Some(13_000)
            },
        ]
    );
    assert_eq!(f.view.paused_ms(100_000), 5_000);
    // A suspension whose cause cannot be removed ends the case.
    f.step(
        TOWNSHIP,
        CaseAction::Suspend {
            reason: "申请人失联".into(),
        },
    );
    assert_eq!(f.view.paused_ms(20_000), 5_000 + (20_000 - 14_000));
    f.step(
        TOWNSHIP,
        CaseAction::Conclude {
            outcome: Outcome::Terminated {
                reason: "申请人失联".into(),
            },
        },
    );
    assert!(!f.view.paused);
    assert_eq!(f.view.outcome.as_ref().map(Outcome::as_str), Some("terminated"));
}

fn extend(days: u32, reason: &str, approver: &str) -> CaseAction {
    CaseAction::Extend {
        days,
        reason: reason.to_owned(),
        approver: approver.to_owned(),
    }
}

#[test]
fn an_extension_is_recorded_once_with_its_days_reason_and_approver() {
    let mode = DelegationMode::Entrusted;
    let category = Category::GovernmentService;
    let mut f = Flow::open(TOWNSHIP, terms(mode, category, false));
    f.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(mode, category, false));
    // Not before handling, and never by the township for an entrusted item.
    assert!(matches!(
        f.refuse(TOWNSHIP, extend(5, "需现场核查", "陈局长")),
        Refusal::WrongTier {
            action: ActionKind::Extend,
            ..
        }
    ));
    f.step(TOWNSHIP, hand_over(COUNTY));
    assert_eq!(
        f.refuse(COUNTY, extend(5, "需现场核查", "陈局长")),
        Refusal::IllegalTransition {
            from: StateKind::Accepted,
            action: ActionKind::Extend
        }
    );
    f.step(COUNTY, CaseAction::StartHandling);
    // The reason, the days (1 to 10) and the approver are all required.
    let missing = f.refuse(COUNTY, extend(5, "  ", "陈局长"));
    assert_eq!(
        missing,
        Refusal::MissingReason {
            action: ActionKind::Extend
        }
    );
    assert_eq!(missing.code(), RefusalCode::InvalidArgument);
    for days in [0, MAX_EXTENSION_DAYS + 1, u32::MAX] {
        let r = f.refuse(COUNTY, extend(days, "需现场核查", "陈局长"));
        assert!(matches!(r, Refusal::Invalid { field: "days", .. }), "{days}: {r:?}");
        assert_eq!(r.code(), RefusalCode::InvalidArgument);
        assert!(r.to_string().contains("延期天数须为 1 至 10 个工作日"), "{r}");
        assert!(r.to_string().contains(&format!("不能是 {days}")), "{r}");
    }
    let r = f.refuse(COUNTY, extend(5, "需现场核查", " "));
    assert!(matches!(r, Refusal::Invalid { field: "approver", .. }), "{r:?}");
    assert!(r.to_string().contains("负责人的姓名"), "{r}");
    let r = f.refuse(COUNTY, extend(5, "需现场核查", &"陈".repeat(MAX_APPROVER_CHARS + 1)));
    assert!(matches!(r, Refusal::Invalid { field: "approver", .. }), "{r:?}");
    assert!(f.view.extensions().is_empty() && f.view.extension_days() == 0);

    f.step(COUNTY, extend(MAX_EXTENSION_DAYS, "需现场核查", "陈局长"));
    assert_eq!(f.state(), StateKind::Handling, "an extension keeps the state");
    assert!(!f.view.paused);
    let step = f.view.history.last().unwrap();
    assert_eq!(step.reason.as_deref(), Some("需现场核查"));
    assert_eq!(step.action.kind(), ActionKind::Extend);
    let extensions = f.view.extensions();
    assert_eq!(extensions.len(), 1);
    assert_eq!(
        (
            extensions[0].days,
            extensions[0].approver.as_str(),
            extensions[0].at_node.as_str()
        ),
        (10, "陈局长", COUNTY)
    );
    assert_eq!(f.view.case_clock().extension_days, 10);

    // Once per case, in review too.
    f.step(COUNTY, CaseAction::SubmitForReview);
    let again = f.refuse(COUNTY, extend(1, "仍需核查", "陈局长"));
    assert_eq!(
        again,
        Refusal::AlreadyExtended {
            days: 10,
            approver: "陈局长".to_owned()
        }
    );
    assert_eq!(again.code(), RefusalCode::FailedPrecondition);
    assert!(again.to_string().contains("只能延期一次"), "{again}");
    // Not once decided, nor while paused.
    f.step(
        COUNTY,
        CaseAction::StartSpecialProcedure {
            kind: SpecialProcedureKind::Testing,
            reason: "送检".to_owned(),
        },
    );
    assert!(matches!(
        f.refuse(COUNTY, extend(1, "仍需核查", "陈局长")),
        Refusal::IllegalTransition {
            from: StateKind::SpecialProcedure,
            ..
        }
    ));
    f.step(COUNTY, CaseAction::EndSpecialProcedure)
        .step(COUNTY, decide_approve(seal_for(mode, category)));
    assert!(matches!(
        f.refuse(COUNTY, extend(1, "仍需核查", "陈局长")),
        Refusal::IllegalTransition {
            from: StateKind::Decision,
            ..
        }
    ));
}

#[test]
fn a_stage_can_be_sent_back() {
    let mode = DelegationMode::Authorised;
    let category = Category::GovernmentService;
    let seal = SealType::TownshipApproval;
    let back = |to_stage| CaseAction::SendBack {
        to_stage,
        reason: "材料核验不清".to_owned(),
    };
    let mut f = Flow::open(TOWNSHIP, terms(mode, category, false));
    f.step(TOWNSHIP, CaseAction::Receive)
        .step(TOWNSHIP, accept(mode, category, false))
        .step(TOWNSHIP, CaseAction::StartHandling)
        .step(TOWNSHIP, CaseAction::SubmitForReview);
    // Review can only go back to handling.
    assert!(matches!(
        f.refuse(TOWNSHIP, back(WorkStage::Review)),
        Refusal::IllegalTransition { .. }
    ));
    f.step(TOWNSHIP, back(WorkStage::Handling));
    assert_eq!(f.view.state, CaseState::Handling);
    f.step(TOWNSHIP, CaseAction::SubmitForReview)
        .step(TOWNSHIP, decide_approve(seal));
    assert!(f.view.decision.is_some());
    // Sending a decision back discards it.
    f.step(TOWNSHIP, back(WorkStage::Review));
    assert_eq!(f.view.state, CaseState::Review);
    assert!(f.view.decision.is_none());
    f.step(TOWNSHIP, decide_approve(seal))
        .step(TOWNSHIP, back(WorkStage::Handling));
    assert_eq!(f.view.state, CaseState::Handling);
    assert_eq!(f.view.history.last().unwrap().reason.as_deref(), Some("材料核验不清"));
    // Handling has nothing to go back to.
    assert!(matches!(
        f.refuse(TOWNSHIP, back(WorkStage::Handling)),
        Refusal::IllegalTransition { .. }
    ));
}

#[test]
fn the_conclusion_follows_the_decision() {
    let view = view_in(
        St::DecisionApproved,
        DelegationMode::Authorised,
        Category::GovernmentService,
        false,
        Tier::Township,
    );
    let refuse = CaseAction::Conclude {
        outcome: Outcome::Refused {
            reason: "不符合条件".into(),
        },
    };
    let r = decide(&view, &refuse, &operator(TOWNSHIP, 5)).unwrap_err();
    assert_eq!(
        r,
        Refusal::OutcomeMismatch {
            approved: true,
            given: "refused"
        }
    );
    assert_eq!(
        r.to_string(),
        "the decision was to approve; conclude as approved, not as refused"
    );
    let view = view_in(
        St::DecisionRefused,
        DelegationMode::Authorised,
        Category::GovernmentService,
        false,
        Tier::Township,
    );
    let approve = CaseAction::Conclude {
        outcome: Outcome::Approved,
    };
    assert!(matches!(
        decide(&view, &approve, &operator(TOWNSHIP, 5)),
        Err(Refusal::OutcomeMismatch { approved: false, .. })
    ));
    // Withdrawal is its own action, with its own reason.
    let withdrawn = CaseAction::Conclude {
        outcome: Outcome::Withdrawn {
            reason: "撤回".into()
        },
    };
    let view = view_in(
        St::Handling,
        DelegationMode::Authorised,
        Category::GovernmentService,
        false,
        Tier::Township,
    );
    assert!(matches!(
        decide(&view, &withdrawn, &operator(TOWNSHIP, 5)),
        Err(Refusal::IllegalTransition { .. })
    ));
}

#[test]
fn one_class_of_item_one_seal() {
    for &mode in DelegationMode::ALL {
        for category in [Category::GovernmentService, Category::PublicService] {
            let expected = seal_for(mode, category);
            let decider_tier = decider(mode);
            let review = view_in(St::Review, mode, category, false, decider_tier);
            assert_eq!(required_seal(&review), expected);
            let ready = view_in(St::ResultReady, mode, category, false, Tier::Township);
            // An entrusted item's decision is the county's and unstamped; the others are
            // stamped with the item's seal, like every issue.
            let by_decider = operator(node_of(decider_tier).as_str(), 5);
            let unstamped = CaseAction::Decide {
                approve: true,
                reason: String::new(),
                seal: None,
                impressions: 1,
            };
            let got = decide(&review, &unstamped, &by_decider);
            if mode == DelegationMode::Entrusted {
                assert!(got.is_ok(), "{mode} {category}: {got:?}");
                assert_eq!(decision_seal(&review), None);
            } else {
                assert!(
                    matches!(got, Err(Refusal::SealAtDecision(_))),
                    "{mode} {category}: {got:?}"
                );
                assert_eq!(decision_seal(&review), Some(expected));
            }
            for &given in SealType::ALL {
                let d = CaseAction::Decide {
                    approve: true,
                    reason: String::new(),
                    seal: Some(given),
                    impressions: 1,
                };
                let i = CaseAction::Issue {
                    seal: given,
                    impressions: 1,
                };
                let by_township = operator(TOWNSHIP, 5);
                let decision = (mode != DelegationMode::Entrusted).then_some((&review, d, by_decider.clone()));
                for (view, action, actor) in decision.into_iter().chain([(&ready, i, by_township)]) {
                    let got = decide(view, &action, &actor);
                    if given == expected {
                        assert!(got.is_ok(), "{mode} {category} {given}");
                        assert_eq!(check_seal(view, given), Ok(()));
                    } else {
                        let r = got.unwrap_err();
                        assert_eq!(
                            r,
                            Refusal::WrongSeal {
                                expected: SealLabel(expected),
                                given: SealLabel(given)
                            }
                        );
                        assert_eq!(r.code(), RefusalCode::FailedPrecondition);
                    }
                }
            }
        }
    }
    let r = Refusal::WrongSeal {
        expected: SealLabel(SealType::EntrustedApproval),
        given: SealLabel(SealType::TownshipApproval),
    };
    assert_eq!(
        r.to_string(),
        "wrong seal: this item takes the entrusted approval seal (行政审批委托专用章), not the township approval \
         seal (审批服务专用章) (one class of item, one seal)"
    );
}

#[test]
fn acceptance_pins_the_catalogue_terms() {
    // Submitted under version 3 as entrusted; by acceptance, batch 2 made it authorised (v5).
    let category = Category::GovernmentService;
    let mut f = Flow::open(VILLAGE, terms(DelegationMode::Entrusted, category, false));
    assert_eq!(f.view.accepted_under, None);
    f.step(VILLAGE, CaseAction::Forward).step(TOWNSHIP, CaseAction::Receive);
    let mut older = terms(DelegationMode::Entrusted, category, false);
    older.catalogue_version = 2;
    assert_eq!(
        f.refuse(TOWNSHIP, CaseAction::Accept { terms: older }),
        Refusal::StaleCatalogue { current: 3, given: 2 }
    );
    let mut other = terms(DelegationMode::Entrusted, category, false);
    other.implementation_code = "OTHER-1".into();
    assert!(matches!(
        f.refuse(TOWNSHIP, CaseAction::Accept { terms: other }),
        Refusal::Invalid {
            field: "terms.implementation_code",
            ..
        }
    ));
    let mut newer = terms(DelegationMode::Authorised, category, false);
    newer.catalogue_version = 5;
    newer.promised_days = 3;
    f.step(TOWNSHIP, CaseAction::Accept { terms: newer.clone() });
    assert_eq!(f.view.terms, newer);
    assert_eq!(f.view.accepted_under, Some(5));
    assert_eq!(required_seal(&f.view), SealType::TownshipApproval);
    // Now the township decides itself.
    f.step(TOWNSHIP, CaseAction::StartHandling);
}

// ---------------------------------------------------------------------------------------------
// Determinism, serialisation, texts
// ---------------------------------------------------------------------------------------------

#[test]
fn folding_the_same_transitions_gives_the_same_view() {
    let mode = DelegationMode::Entrusted;
    let category = Category::PublicService;
    let mut f = Flow::open(VILLAGE, terms(mode, category, false));
    f.step(VILLAGE, CaseAction::Forward)
        .step(TOWNSHIP, CaseAction::Receive)
        .step(
            TOWNSHIP,
            CaseAction::RequestSupplement {
                materials: vec!["照片".into()],
            },
        )
        .step(TOWNSHIP, CaseAction::SupplementProvided)
        .step(TOWNSHIP, accept(mode, category, false))
        .step(TOWNSHIP, hand_over(COUNTY))
        .step(COUNTY, CaseAction::StartHandling)
        .step(
            COUNTY,
            CaseAction::Suspend {
                reason: "待核实".into(),
            },
        )
        .step(COUNTY, CaseAction::Resume)
        .step(COUNTY, CaseAction::SubmitForReview)
        .step(COUNTY, decide_approve(SealType::Business))
        .step(
            COUNTY,
            CaseAction::Conclude {
                outcome: Outcome::Approved,
            },
        )
        .step(COUNTY, hand_over(TOWNSHIP))
        .step(TOWNSHIP, CaseAction::ResultReady)
        .step(
            TOWNSHIP,
            CaseAction::Issue {
                seal: SealType::Business,
                impressions: 1,
            },
        )
        .step(TOWNSHIP, rate());
    // A replica that opens the same submission and folds the same transitions, twice.
    let replay = || {
        let mut v = CaseView::open(
            submission(VILLAGE, terms(mode, category, false)),
            &operator(VILLAGE, 1_000),
        )
        .unwrap();
        for t in &f.transitions {
            v.apply(t);
        }
        v
    };
    let (a, b) = (replay(), replay());
    assert_eq!(a, f.view);
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&f.view).unwrap()
    );
    // A replica that re-decides each event on its own view reaches the same transitions.
    let mut c = CaseView::open(
        submission(VILLAGE, terms(mode, category, false)),
        &operator(VILLAGE, 1_000),
    )
    .unwrap();
    for t in &f.transitions {
        let again = decide(&c, &t.action, &Actor::new(t.by.clone(), t.at_ms)).unwrap();
        assert_eq!(&again, t);
        c.apply(&again);
    }
    assert_eq!(c, f.view);
    // Views and transitions survive serialisation unchanged.
    let json = serde_json::to_string(&f.view).unwrap();
    assert_eq!(serde_json::from_str::<CaseView>(&json).unwrap(), f.view);
    for t in &f.transitions {
        let json = serde_json::to_string(t).unwrap();
        assert_eq!(&serde_json::from_str::<Transition>(&json).unwrap(), t);
    }
    let hand = serde_json::to_value(&f.transitions[5].action).unwrap();
    assert_eq!(hand, serde_json::json!({"action": "hand_over", "to": "441424"}));
}

#[test]
fn refusals_read_well_and_map_to_grpc_codes() {
    let r = Refusal::IllegalTransition {
        from: StateKind::Handling,
        action: ActionKind::Accept,
    };
    assert_eq!(r.to_string(), "cannot accept (受理) a case that is handling (承办中)");
    assert_eq!(r.code().as_str(), "FAILED_PRECONDITION");
    let r = Refusal::WrongTier {
        tier: Tier::Township,
        action: ActionKind::Decide,
        delegation: DelegationMode::NotDelegated,
    };
    assert_eq!(
        r.to_string(),
        "a township may not decide (审批决定) items that are not delegated (不下放): that is for the county"
    );
    assert_eq!(r.code().as_str(), "PERMISSION_DENIED");
    let r = Refusal::NotHolder {
        holder: node(COUNTY),
        actor: node(TOWNSHIP),
    };
    assert_eq!(
        r.to_string(),
        "this case is held by county 441424, not by township 441424100: only the holder may move it; send 441424 a \
         request instead"
    );
    assert_eq!(
        Refusal::MissingReason {
            action: ActionKind::Withdraw
        }
        .code()
        .as_str(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        Refusal::WrongHandOver {
            expected: node(COUNTY),
            given: node("441425")
        }
        .to_string(),
        "this case can only be handed over to 441424 now, not to 441425"
    );
    assert_eq!(
        StateKind::SupplementRequested.to_string(),
        "supplement requested (补正中)"
    );
    assert_eq!(
        serde_json::to_string(&RefusalCode::PermissionDenied).unwrap(),
        "\"PERMISSION_DENIED\""
    );
    // Operators type states in either language.
    for text in ["已受理", "accepted", "Accepted", " accepted "] {
        assert_eq!(StateKind::parse_term(text), Some(StateKind::Accepted), "{text}");
    }
    for text in [
        "补正中",
        "supplement_requested",
        "supplement-requested",
        "supplement requested",
    ] {
        assert_eq!(
            StateKind::parse_term(text),
            Some(StateKind::SupplementRequested),
            "{text}"
        );
    }
    assert_eq!(StateKind::parse_term("受理"), None);
    for k in StateKind::ALL {
        assert_eq!(StateKind::parse_term(k.label_zh()), Some(*k));
        assert_eq!(StateKind::parse_term(k.as_str()), Some(*k));
        assert_eq!(
            k.is_paused(),
            matches!(
                k,
                StateKind::SupplementRequested | StateKind::SpecialProcedure | StateKind::Suspended
            )
        );
    }
}
