//! The one-door case workflow (一门受理): a citizen's application for one item (办件) from
//! submission at a village or township to the rated result — as pure domain types and rules,
//! with no I/O or database (protobuf only at the boundary, in [`wire`]), so the engine folds case
//! events with them on every node.
//!
//! This module owns:
//! - [`id`]: [`CaseId`] (minted where the case starts) and [`CaseNumber`] (the receipt number);
//! - [`model`]: the states, actions, actor and the values they carry;
//! - [`rules`]: [`decide`], the legality check, and [`Refusal`], why an action is refused;
//! - [`view`]: [`CaseView`], the projection, folded with [`CaseView::apply`];
//! - [`wire`]: the conversions to and from the `tongban.v1` contract (`cases.proto`), the only
//!   part that knows protobuf;
//! - [`warnings`]: the red/yellow time-limit rules (pure);
//! - [`projection`]: case events folded into the node's `cases` table, receipt numbers, and the
//!   case commands and queries of the store;
//! - [`supervision`]: warning lists over the node's subtree and the county's supervision
//!   records (督办);
//! - [`service`]: the `Cases` gRPC service.
//!
//! Conflicts are designed out: one node holds a case at a time ([`CaseView::holder`]), only the
//! holder moves it, and moving it to another tier is itself a step ([`CaseAction::Forward`],
//! [`CaseAction::HandOver`]). An event carries the action and its actor; every replica re-runs
//! [`decide`] on its own view and applies the [`Transition`], or quarantines the event.
//!
//! The legal steps (from state, action → to state; who):
//!
//! | from | action | to | who |
//! | --- | --- | --- | --- |
//! | — | submit ([`CaseView::open`]) | submitted | village, township |
//! | submitted | forward | submitted, held by the parent township | village |
//! | submitted | receive | received | township |
//! | received | accept | accepted (pins the item terms) | township |
//! | received | request supplement | supplement requested ⏸ | township |
//! | supplement requested | supplement provided | received | township |
//! | received, supplement requested | refuse acceptance | not accepted ■ | township |
//! | accepted | hand over → county | accepted, held by the county | township; entrusted and not-delegated items |
//! | accepted | start handling | handling | decider |
//! | accepted | conclude approved | concluded | decider; immediate items only |
//! | accepted, handling, review | conclude returned / terminated | concluded | decider |
//! | handling | submit for review | review | decider |
//! | handling, review | start special procedure | special procedure ⏸ | decider |
//! | handling, review | suspend | suspended ⏸ | decider |
//! | handling, review | extend (延期: 1–10 working days, reason, approver; once per case) | the same state, the deadline moved | decider |
//! | special procedure | end special procedure | the stage it paused | decider |
//! | suspended | resume | the stage it paused | decider |
//! | suspended | conclude terminated | concluded | decider |
//! | review | decide (names the seal) | decision | decider |
//! | review | send back → handling | handling | decider |
//! | decision | send back → review or handling | that stage | decider |
//! | decision | conclude as decided (approved / refused) | concluded | decider |
//! | submitted, received, supplement requested, accepted, handling, review, special procedure, suspended | withdraw | concluded (withdrawn) | township, county |
//! | concluded | hand over → the front-desk township | concluded, held by the township | county |
//! | concluded | result ready | result ready | township |
//! | result ready | issue (names the seal) | issued | township |
//! | issued | deliver | delivered | township |
//! | issued, delivered | hand over → the origin village | same, held by the village | township |
//! | issued, delivered | rate | rated ■ | village, township |
//!
//! ⏸ the promised-time clock is paused; ■ terminal. The *decider* is the township for
//! authorised items and the county for entrusted and not-delegated items ([`decider`]).

pub mod id;
pub mod model;
pub mod projection;
pub mod rules;
pub mod service;
pub mod supervision;
pub mod view;
pub mod warnings;
pub mod wire;

pub use id::{CaseId, CaseIdError, CaseNumber, local_date};
pub use model::{
    ActionKind, Actor, ApplicantKind, ApplicantSummary, CaseAction, CaseState, ItemTerms, Outcome, RatingLevel,
    SpecialProcedureKind, StateKind, WorkStage,
};
pub use rules::{
    MAX_APPROVER_CHARS, MAX_EXTENSION_DAYS, MAX_EXTENSIONS, MAX_REASON_CHARS, Refusal, RefusalCode, SealLabel,
    Transition, check_seal, decide, decider, decision_seal, required_seal, tiers_for,
};
pub use view::{CaseView, DecisionRecord, ExtensionRecord, PauseInterval, RatingRecord, StageRecord, Submission};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
