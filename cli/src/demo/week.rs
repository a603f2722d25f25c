//! `tongban demo`'s working week of cases (办件), run once the catalogue has spread.
//!
//! Clerks at four townships and their village service points take a scripted week of
//! applications ([`WEEK`]) through the real `Cases`, `Catalogue` and `Ratings` services, each
//! with an operator certificate of the node where the clerk sits: submitted at villages
//! (forwarded to the township) and at township windows, along all three delegation routes,
//! with supplements, refusals, cases left to go overdue, ratings good and bad and one
//! rectification answered. A manual clock on every node's store walks five working days and
//! then jumps to the week after, so warnings turn yellow and red, the county's supervision scan
//! opens records (督办) and unrated results get their default rating. Every evening the demo
//! waits until the origin, the township and the county hold the same view of every case; at the
//! end it prints what each tier sees, read back over gRPC (`Cases`, `Seals`, `Oversight`).
//!
//! This file owns the week's script, the clerks' steps and the week's summary. Case events carry
//! the machine's real time (each node's hybrid logical clock); the manual clock only moves
//! "today", which warnings, supervision and default ratings are evaluated on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{Datelike, NaiveDate, Weekday};
use tongban_domains::calendar::{ManualClock, WorkingCalendar, shanghai_date};
use tongban_domains::case::StateKind;
use tongban_domains::catalogue::{ItemType, SealType};
use tongban_domains::ids::{NodeId, Tier};
use tongban_domains::node::NodeHandle;
use tongban_domains::pki::Principal;
use tongban_domains::tls::explain_status;
use tongban_proto::v1::{
    self as pb, case_action as act, cases_client::CasesClient, catalogue_client::CatalogueClient,
    node_client::NodeClient, oversight_client::OversightClient, ratings_client::RatingsClient,
    seals_client::SealsClient,
};
use tongban_testkit::cluster::{Cluster, wait_until};
use tongban_testkit::wuhua;
use tonic::transport::Channel;

use crate::display::{cell, width};

use act::Action as A;
use pb::DelegationMode::{Authorised, Entrusted, NotDelegated};
use pb::RatingLevel::{BasicallySatisfied, Dissatisfied, Satisfied, VeryDissatisfied, VerySatisfied};

/// The townships whose clerks work this week: Shuizhai (水寨镇, the county seat), Hedong (河东镇),
/// Huacheng (华城镇, the one the catalogue part killed and restarted) and Anliu (安流镇).
const TOWNSHIPS: [&str; 4] = ["441424100", "441424101", "441424104", "441424120"];

/// Monday to Friday, or whichever five working days the calendar gives from today.
const WORKING_DAYS: usize = 5;
const LAST_DAY: usize = WORKING_DAYS - 1;

/// Longest wait for replication; generous, it normally takes milliseconds.
const WAIT: Duration = Duration::from_secs(60);

/// Promised limit (working days) of the items cases that are worked on take; see
/// [`Clerks::pick_item`].
const LONG_ENOUGH: u32 = 8;

/// Every node's clerk has this operator name.
const CLERK: &str = "clerk";

const NOT_ACCEPTED_REASON: &str = "经核查申请人不符合申请条件，依法不予受理";
const APPROVE_OPINION: &str = "材料齐全，符合法定条件，准予办理";
const REFUSE_OPINION: &str = "经审查不符合法定条件，不予批准";
const RECTIFICATION_RESPONSE: &str = "已电话回访申请人，说明办理依据；窗口一次性告知流程已改进";
const FALLBACK_MATERIAL: &str = "申请人居民身份证复印件";

/// Where the applicant walks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// A village service point (村代办点): submits and forwards to its township (转报).
    Village,
    /// The township service centre's window (镇窗口).
    Window,
}

/// What the applicant does once the result is in hand (好差评).
#[derive(Clone, Copy, Debug)]
enum Rating {
    /// Rates where the result is handed over.
    Gives(pb::RatingLevel),
    /// Rates badly, and the handling unit answers the rectification item the next working day.
    GivesAnswered(pb::RatingLevel),
    /// Does not rate: the holding node records the default rating once 7 days have passed.
    Silent,
}

/// How a case ends up by the end of the week.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Accepted, handled, approved and issued; then rated.
    Issued(Rating),
    /// Papers missing at intake (补正): supplied the next working day, then as `Issued`.
    Supplemented(Rating),
    /// Handled and refused at decision (不予批准); the refusal is issued like a result.
    Refused(Rating),
    /// Refused at the window (不予受理).
    NotAccepted,
    /// Received and never accepted: the 5-working-day acceptance clock runs out.
    StuckAtIntake,
    /// Accepted and in handling, never decided: the promised limit runs out. Takes the item
    /// with the shortest promised limit, so it turns red within the week.
    StuckInHandling,
}

/// One application of the week.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// 0 = the first working day.
    day: usize,
    /// Index into [`TOWNSHIPS`].
    township: usize,
    entry: Entry,
    route: pb::DelegationMode,
    fate: Fate,
}

const fn plan(day: usize, township: usize, entry: Entry, route: pb::DelegationMode, fate: Fate) -> Plan {
    Plan {
        day,
        township,
        entry,
        route,
        fate,
    }
}

use Entry::{Village as V, Window as W};
use Fate::{Issued, NotAccepted, Refused, StuckAtIntake, StuckInHandling, Supplemented};
use Rating::{Gives, GivesAnswered, Silent};

/// The week: two applications a day at each township. Authorised items (授权) are decided at the
/// township; entrusted (委托) and not-delegated (不下放) ones go to the county and come back.
const WEEK: [Plan; 40] = [
    // Day 1
    plan(0, 0, V, Authorised, Issued(Gives(VerySatisfied))),
    plan(0, 0, W, NotDelegated, StuckInHandling),
    plan(0, 1, V, Entrusted, Issued(Gives(Satisfied))),
    plan(0, 1, W, Authorised, StuckAtIntake),
    plan(0, 2, V, NotDelegated, Issued(Silent)),
    plan(0, 2, W, Entrusted, Supplemented(Gives(Satisfied))),
    plan(0, 3, V, Authorised, Issued(Gives(Satisfied))),
    plan(0, 3, W, Authorised, StuckInHandling),
    // Day 2
    plan(1, 0, W, Entrusted, Issued(GivesAnswered(Dissatisfied))),
    plan(1, 0, V, Authorised, Issued(Gives(VerySatisfied))),
    plan(1, 1, W, NotDelegated, NotAccepted),
    plan(1, 1, V, Authorised, Supplemented(Gives(VerySatisfied))),
    plan(1, 2, W, Authorised, Issued(Gives(VeryDissatisfied))),
    plan(1, 2, V, Entrusted, StuckInHandling),
    plan(1, 3, W, NotDelegated, Issued(Gives(Satisfied))),
    plan(1, 3, V, Entrusted, Issued(Silent)),
    // Day 3
    plan(2, 0, V, NotDelegated, Issued(Gives(Satisfied))),
    plan(2, 0, W, Authorised, Refused(Gives(BasicallySatisfied))),
    plan(2, 1, V, Entrusted, Issued(Gives(VerySatisfied))),
    plan(2, 1, W, Authorised, Issued(Silent)),
    plan(2, 2, V, Authorised, Issued(Gives(Satisfied))),
    plan(2, 2, W, NotDelegated, StuckAtIntake),
    plan(2, 3, V, Entrusted, Supplemented(Silent)),
    plan(2, 3, W, Authorised, Issued(Gives(VerySatisfied))),
    // Day 4
    plan(3, 0, W, Entrusted, Issued(Gives(Satisfied))),
    plan(3, 0, V, Authorised, Issued(Silent)),
    plan(3, 1, W, Authorised, Issued(Gives(BasicallySatisfied))),
    plan(3, 1, V, NotDelegated, Refused(Silent)),
    plan(3, 2, W, Entrusted, Issued(Gives(VerySatisfied))),
    plan(3, 2, V, Authorised, NotAccepted),
    plan(3, 3, W, NotDelegated, Issued(Gives(Satisfied))),
    plan(3, 3, V, Authorised, Issued(Gives(Satisfied))),
    // Day 5
    plan(4, 0, V, Entrusted, Issued(Silent)),
    plan(4, 0, W, Authorised, Issued(Gives(VerySatisfied))),
    plan(4, 1, W, Entrusted, Supplemented(Gives(Satisfied))),
    plan(4, 1, V, Authorised, Issued(Gives(Satisfied))),
    plan(4, 2, W, NotDelegated, Issued(Gives(VerySatisfied))),
    plan(4, 2, V, Authorised, Issued(Gives(Satisfied))),
    plan(4, 3, W, Authorised, Issued(Silent)),
    plan(4, 3, V, NotDelegated, Issued(Gives(VerySatisfied))),
];

/// A clerk's turn with a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Submit, forward from the village, receive; then accept (and hand entrusted and
    /// not-delegated cases to the county), ask for a supplement, or refuse.
    Intake,
    /// The papers arrive; accept.
    Supplement,
    /// Handle, review, decide and conclude at the deciding tier (and hand the result back).
    BackOffice,
    /// Result ready, issue under the item's seal, deliver; the applicant rates.
    Issue,
    /// The handling unit answers the bad rating's rectification item (差评整改).
    Answer,
}

impl Fate {
    /// The case's stages, each with the working day it falls on counted from submission
    /// (stages due after the last day of the week are taken on the last day).
    fn stages(self) -> Vec<(Stage, usize)> {
        use Stage::{Answer, BackOffice, Intake, Issue, Supplement};
        let (mut stages, rating) = match self {
            Fate::NotAccepted | Fate::StuckAtIntake => return vec![(Intake, 0)],
            Fate::StuckInHandling => return vec![(Intake, 0), (BackOffice, 1)],
            Fate::Issued(rating) | Fate::Refused(rating) => (vec![(Intake, 0), (BackOffice, 1), (Issue, 1)], rating),
            Fate::Supplemented(rating) => (vec![(Intake, 0), (Supplement, 1), (BackOffice, 2), (Issue, 2)], rating),
        };
        if let (Rating::GivesAnswered(_), Some(&(_, issued))) = (rating, stages.last()) {
            stages.push((Answer, issued + 1));
        }
        stages
    }

    fn rating(self) -> Option<Rating> {
        match self {
            Fate::Issued(r) | Fate::Supplemented(r) | Fate::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// A case once submitted.
struct Case {
    plan: Plan,
    /// Position in [`WEEK`]; varies applicants, items and impressions.
    index: usize,
    id: String,
    number: String,
    origin: NodeId,
    township: NodeId,
    /// The seal its result takes, as pinned at acceptance.
    seal: i32,
}

impl Case {
    /// The seal its decision is stamped with: none for an entrusted item, decided by the county
    /// and stamped by the township at issue.
    fn decision_seal(&self) -> i32 {
        if self.plan.route == Entrusted { 0 } else { self.seal }
    }
}

impl Case {
    /// The nodes the case's events reach: where it started, its township and the county.
    fn path(&self, county: &NodeId) -> BTreeSet<NodeId> {
        [self.origin.clone(), self.township.clone(), county.clone()].into()
    }
}

/// One township's cases of the week, by position in [`WEEK`].
type Book = BTreeMap<usize, Case>;

/// What the clerks did on one day, for the day's line.
#[derive(Default)]
struct Tally {
    submitted: usize,
    via_village: usize,
    accepted: usize,
    supplements: usize,
    not_accepted: usize,
    decided: usize,
    refused: usize,
    issued: usize,
    rated: usize,
    defaulted: usize,
    answered: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.submitted += other.submitted;
        self.via_village += other.via_village;
        self.accepted += other.accepted;
        self.supplements += other.supplements;
        self.not_accepted += other.not_accepted;
        self.decided += other.decided;
        self.refused += other.refused;
        self.issued += other.issued;
        self.rated += other.rated;
        self.defaulted += other.defaulted;
        self.answered += other.answered;
    }
}

/// Every tier's list of cases, once they all agree.
struct Snapshot {
    lists: BTreeMap<NodeId, Vec<pb::CaseSummary>>,
}

/// The clerks: one at every node involved, each connected with its own node's operator
/// certificate, and what each node's catalogue offers. Shared by the townships' working days,
/// which run side by side as they would in life.
struct Clerks {
    county: NodeId,
    townships: Vec<NodeId>,
    /// Each township's village service points that are part of the tree.
    villages: BTreeMap<NodeId, Vec<NodeId>>,
    channels: BTreeMap<NodeId, Channel>,
    /// Items each node takes, by delegation mode (as `Catalogue.ListItems` there shows them).
    shelves: BTreeMap<NodeId, BTreeMap<i32, Vec<pb::CatalogueItem>>>,
}

/// The running tree, its clerks and its clock.
struct Week<'a> {
    cluster: &'a Cluster,
    clerks: Arc<Clerks>,
    clock: Arc<ManualClock>,
    calendar: WorkingCalendar,
}

/// Runs the week on `cluster` (which holds the catalogue everywhere) and prints its summary.
pub async fn run(cluster: &Cluster) -> Result<()> {
    let started = Instant::now();
    let week = Week::open(cluster).await?;
    let days = week.working_days();
    let clerks = &week.clerks;
    println!();
    println!(
        "a working week of cases (办件): clerks at {} townships and {} village service points, on a manual clock",
        clerks.townships.len(),
        clerks.villages.values().map(Vec::len).sum::<usize>()
    );
    println!(
        "  (case events carry this machine's time; the clock moves \"today\" for warnings, supervision and default ratings)"
    );
    println!("  {}", day_header());

    let mut books: Vec<Book> = clerks.townships.iter().map(|_| Book::new()).collect();
    for (day, date) in days.iter().enumerate() {
        week.clock.set_today(*date);
        let tally = week
            .work_day(day, &mut books)
            .await
            .with_context(|| format!("working day {} ({date})", day + 1))?;
        week.evening(&day_label(*date), &books, &tally).await?;
    }

    // The week after: 7 days have passed since the results were issued, so every node records
    // the default rating on what it holds unrated (its periodic task's work, run now).
    let after = week.week_after(days[LAST_DAY]);
    week.clock.set_today(after);
    let mut tally = Tally::default();
    for node in week.running_nodes()? {
        if node.store.node().tier() != Tier::County {
            tally.defaulted += node.store.record_default_ratings(node.store.now_ms()).await?.len();
        }
    }
    println!("  the week after: 7 days on, results nobody rated get their default rating (默认好评)");
    let snapshot = week.evening(&day_label(after), &books, &tally).await?;

    week.print_summary(after, &books, &snapshot).await?;
    println!("  working week done in {:.1?}", started.elapsed());
    Ok(())
}

impl<'a> Week<'a> {
    /// Connects a clerk at each node involved, reads their catalogues, and puts every node of
    /// the tree on one manual clock standing at today.
    async fn open(cluster: &'a Cluster) -> Result<Week<'a>> {
        let ids = cluster.ids();
        let county = ids
            .iter()
            .find(|id| id.tier() == Tier::County)
            .cloned()
            .context("the tree has no county")?;
        let townships = TOWNSHIPS
            .iter()
            .map(|code| NodeId::new(*code))
            .collect::<Result<Vec<_>, _>>()?;
        let mut villages = BTreeMap::new();
        for township in &townships {
            let under: Vec<NodeId> = ids
                .iter()
                .filter(|id| id.tier() == Tier::Village && id.parent().as_ref() == Some(township))
                .cloned()
                .collect();
            villages.insert(township.clone(), under);
        }
        let mut channels = BTreeMap::new();
        let mut shelves = BTreeMap::new();
        let desks = std::iter::once(&county)
            .chain(&townships)
            .chain(villages.values().flatten());
        for node in desks {
            let channel = clerk_channel(cluster, node).await?;
            if node.tier() != Tier::County {
                shelves.insert(node.clone(), shelf(channel.clone(), node).await?);
            }
            channels.insert(node.clone(), channel);
        }
        let county_store = &cluster.node(&county).context("the county is not running")?.store;
        let calendar = county_store.calendar().await?.calendar.clone();
        let week = Week {
            cluster,
            clerks: Arc::new(Clerks {
                county,
                townships,
                villages,
                channels,
                shelves,
            }),
            clock: Arc::new(ManualClock::at_ms(tongban_domains::hlc::wall_ms() as i64)),
            calendar,
        };
        for node in week.running_nodes()? {
            node.store.set_clock(week.clock.clone());
        }
        Ok(week)
    }

    fn running_nodes(&self) -> Result<Vec<&'a NodeHandle>> {
        self.cluster
            .ids()
            .iter()
            .map(|id| {
                self.cluster
                    .node(id)
                    .with_context(|| format!("node {id} is not running"))
            })
            .collect()
    }

    /// Today (if a working day) and the next four working days on the calendar in force.
    fn working_days(&self) -> Vec<NaiveDate> {
        let today = shanghai_date(tongban_domains::hlc::wall_ms() as i64);
        let mut day = if self.calendar.is_working_day(today) {
            today
        } else {
            self.calendar.add_working_days(today, 1)
        };
        let mut days = vec![day];
        while days.len() < WORKING_DAYS {
            day = self.calendar.add_working_days(day, 1);
            days.push(day);
        }
        days
    }

    /// The first working day after the week on which 7 days have passed since today (when
    /// every result was issued: case events carry the real time).
    fn week_after(&self, last: NaiveDate) -> NaiveDate {
        let today = shanghai_date(tongban_domains::hlc::wall_ms() as i64);
        let floor = (today + chrono::Duration::days(8)).max(last + chrono::Duration::days(1));
        if self.calendar.is_working_day(floor) {
            floor
        } else {
            self.calendar.add_working_days(floor, 1)
        }
    }

    /// Every township's clerks work through the stages due on `day`, the townships side by side.
    async fn work_day(&self, day: usize, books: &mut [Book]) -> Result<Tally> {
        let mut desks = tokio::task::JoinSet::new();
        for (township, book) in books.iter_mut().enumerate() {
            let clerks = self.clerks.clone();
            let mut book = std::mem::take(book);
            desks.spawn(async move {
                let mut tally = Tally::default();
                let done = clerks.township_day(day, township, &mut book, &mut tally).await;
                (township, book, tally, done)
            });
        }
        let mut total = Tally::default();
        let mut failed = None;
        while let Some(joined) = desks.join_next().await {
            let (township, book, tally, done) = joined.context("a township's working day panicked")?;
            if let Some(slot) = books.get_mut(township) {
                *slot = book;
            }
            total.add(&tally);
            if let Err(e) = done {
                failed.get_or_insert(e);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// The end of a day: wait until every tier holds the day's work, let the county scan for
    /// red cases (what its periodic task does), and print the day's line.
    async fn evening(&self, label: &str, books: &[Book], tally: &Tally) -> Result<Snapshot> {
        let snapshot = self.clerks.wait_for_agreement(books).await?;
        let county = &self.clerks.county;
        let opened = self
            .cluster
            .node(county)
            .context("the county is not running")?
            .store
            .scan_supervision()
            .await?;
        let (yellow, red) = self.clerks.warning_counts(county).await?;
        println!("  {}", day_row(label, tally, yellow, red, opened));
        Ok(snapshot)
    }

    // --- the summary ----------------------------------------------------------------------

    async fn print_summary(&self, on: NaiveDate, books: &[Book], snapshot: &Snapshot) -> Result<()> {
        let clerks = &self.clerks;
        let names: Vec<String> = clerks
            .townships
            .iter()
            .map(|t| wuhua::township(t.as_str()).map(|w| w.name).unwrap_or("?").to_owned())
            .collect();
        let cases: usize = books.iter().map(Book::len).sum();
        println!();
        println!(
            "summary of the week — {cases} cases at {} and their villages, as of {}",
            names.join("、"),
            day_label(on)
        );
        clerks.print_states_and_warnings(&names, snapshot).await?;
        clerks.print_supervision().await?;
        clerks.print_seals().await?;
        clerks.print_ratings(&names).await?;
        let alarms = clerks.open_alarms(snapshot.lists.keys()).await?;
        println!(
            "  every tier agrees on every case: {cases} cases checked at {} nodes (each case's summary — state, holder, steps and the rest — equal at its origin, its township and the county); open alarms at those nodes: {alarms}",
            snapshot.lists.len()
        );
        Ok(())
    }
}

impl Clerks {
    fn channel(&self, node: &NodeId) -> Result<Channel> {
        self.channels
            .get(node)
            .cloned()
            .with_context(|| format!("no clerk is connected to {node}"))
    }

    fn cases_at(&self, node: &NodeId) -> Result<CasesClient<Channel>> {
        Ok(CasesClient::new(self.channel(node)?))
    }

    /// The tier that decides a case: the township for authorised items, the county otherwise.
    fn decider(&self, case: &Case) -> NodeId {
        if case.plan.route == Authorised {
            case.township.clone()
        } else {
            self.county.clone()
        }
    }

    /// One township's day: the stages due on `day` of its cases, in the order of [`WEEK`].
    async fn township_day(&self, day: usize, township: usize, book: &mut Book, tally: &mut Tally) -> Result<()> {
        for (index, plan) in WEEK.iter().enumerate() {
            if plan.township != township {
                continue;
            }
            for (stage, offset) in plan.fate.stages() {
                if (plan.day + offset).min(LAST_DAY) != day {
                    continue;
                }
                if stage == Stage::Intake {
                    let case = self.intake(index, *plan, tally).await?;
                    book.insert(index, case);
                    continue;
                }
                let case = book
                    .get_mut(&index)
                    .with_context(|| format!("case {} of the week was never submitted", index + 1))?;
                let what = format!("{stage:?} of case {}", case.number);
                match stage {
                    // Taken above: it makes the case.
                    Stage::Intake => Ok(()),
                    Stage::Supplement => self.supplement(case, tally).await,
                    Stage::BackOffice => self.back_office(case, tally).await,
                    Stage::Issue => self.issue(case, tally).await,
                    Stage::Answer => self.answer(case, tally).await,
                }
                .context(what)?;
            }
        }
        Ok(())
    }

    // --- the clerks' stages ---------------------------------------------------------------

    async fn intake(&self, index: usize, plan: Plan, tally: &mut Tally) -> Result<Case> {
        let township = self
            .townships
            .get(plan.township)
            .cloned()
            .with_context(|| format!("the week names township {} of {}", plan.township, TOWNSHIPS.len()))?;
        let (origin, item) = self.desk_and_item(index, &plan, &township)?;
        let receipt = self
            .cases_at(&origin)?
            .submit(pb::SubmitCaseRequest {
                item_code: item.implementation_code.clone(),
                applicant_kind: pb::ApplicantKind::Person as i32,
                applicant_name: APPLICANTS[index % APPLICANTS.len()].to_owned(),
                applicant_id_number: id_number(index),
                applicant_phone: format!("138{:08}", 24_140_000 + index * 7919),
                ..Default::default()
            })
            .await
            .map_err(|s| rpc_error(&s, &origin))
            .with_context(|| format!("submitting {} ({}) at {origin}", item.name, item.item_code))?
            .into_inner();
        tally.submitted += 1;
        let mut case = Case {
            plan,
            index,
            id: receipt.case_id,
            number: receipt.case_number,
            origin,
            township,
            seal: item.seal,
        };
        if case.origin != case.township {
            tally.via_village += 1;
            self.act(&case.origin, &case, A::Forward(act::Forward {})).await?;
            self.wait_held(&case.township, &case).await?;
        }
        self.act(&case.township, &case, A::Receive(act::Receive {})).await?;
        match plan.fate {
            Fate::NotAccepted => {
                let reason = NOT_ACCEPTED_REASON.to_owned();
                self.act(
                    &case.township,
                    &case,
                    A::RefuseAcceptance(act::RefuseAcceptance { reason }),
                )
                .await?;
                tally.not_accepted += 1;
            }
            Fate::Supplemented(_) => {
                let material = item
                    .materials
                    .iter()
                    .find(|m| m.required)
                    .map(|m| m.name.clone())
                    .unwrap_or_else(|| FALLBACK_MATERIAL.to_owned());
                let ask = act::RequestSupplement {
                    materials: vec![material],
                };
                self.act(&case.township, &case, A::RequestSupplement(ask)).await?;
                tally.supplements += 1;
            }
            // Left received: nobody accepts or refuses it in time.
            Fate::StuckAtIntake => {}
            _ => self.accept(&mut case, tally).await?,
        }
        Ok(case)
    }

    /// Accepts at the township front desk; cases the county decides go up at once.
    async fn accept(&self, case: &mut Case, tally: &mut Tally) -> Result<()> {
        let accepted = self
            .act(&case.township, case, A::Accept(act::Accept { terms: None }))
            .await?;
        case.seal = accepted.required_seal;
        tally.accepted += 1;
        if case.plan.route != Authorised {
            self.act(&case.township, case, hand_over(&self.county)).await?;
        }
        Ok(())
    }

    async fn supplement(&self, case: &mut Case, tally: &mut Tally) -> Result<()> {
        let provided = A::SupplementProvided(act::SupplementProvided {});
        self.act(&case.township, case, provided).await?;
        self.accept(case, tally).await
    }

    async fn back_office(&self, case: &Case, tally: &mut Tally) -> Result<()> {
        let decider = self.decider(case);
        self.wait_held(&decider, case).await?;
        self.act(&decider, case, A::StartHandling(act::StartHandling {}))
            .await?;
        if matches!(case.plan.fate, Fate::StuckInHandling) {
            // The file stays on the desk; the promised limit runs out.
            return Ok(());
        }
        let refuse = matches!(case.plan.fate, Fate::Refused(_));
        let (opinion, outcome) = if refuse {
            (REFUSE_OPINION, pb::CaseOutcome::Refused)
        } else {
            (APPROVE_OPINION, pb::CaseOutcome::Approved)
        };
        let mut steps = vec![
            A::SubmitForReview(act::SubmitForReview {}),
            A::Decide(act::Decide {
                approve: !refuse,
                reason: opinion.to_owned(),
                seal: case.decision_seal(),
                impressions: 1,
            }),
            A::Conclude(act::Conclude {
                outcome: outcome as i32,
                reason: if refuse { opinion.to_owned() } else { String::new() },
            }),
        ];
        if decider != case.township {
            steps.push(hand_over(&case.township));
        }
        for step in steps {
            self.act(&decider, case, step).await?;
        }
        tally.decided += 1;
        tally.refused += usize::from(refuse);
        Ok(())
    }

    async fn issue(&self, case: &Case, tally: &mut Tally) -> Result<()> {
        let township = &case.township;
        self.wait_held(township, case).await?;
        let from_village = case.origin != *township;
        let steps = [
            A::ResultReady(act::ResultReady {}),
            // Certificates often take more than one impression (盖章次数).
            A::Issue(act::Issue {
                seal: case.seal,
                impressions: 1 + (case.index % 3) as u32,
            }),
            // A village's result goes out by courier with the village's papers.
            A::Deliver(act::Deliver {
                by_courier: from_village,
            }),
        ];
        for step in steps {
            self.act(township, case, step).await?;
        }
        tally.issued += 1;
        // The applicant rates where the result reaches them.
        let rater = if from_village {
            self.act(township, case, hand_over(&case.origin)).await?;
            self.wait_held(&case.origin, case).await?;
            case.origin.clone()
        } else {
            township.clone()
        };
        if let Some(Rating::Gives(level) | Rating::GivesAnswered(level)) = case.plan.fate.rating() {
            let rate = A::Rate(act::Rate {
                level: level as i32,
                defaulted: false,
            });
            self.act(&rater, case, rate).await?;
            tally.rated += 1;
        }
        Ok(())
    }

    /// The deciding tier answers the bad rating once its rectification item has reached it.
    async fn answer(&self, case: &Case, tally: &mut Tally) -> Result<()> {
        let handler = self.decider(case);
        let ratings = RatingsClient::new(self.channel(&handler)?);
        let what = format!("the rectification of {} to reach {handler}", case.number);
        wait_until(WAIT, &what, || {
            let mut ratings = ratings.clone();
            let id = case.id.clone();
            async move {
                let request = pb::ListRectificationsRequest {
                    open_only: true,
                    ..Default::default()
                };
                match ratings.list_rectifications(request).await {
                    Ok(list) => list.into_inner().rectifications.iter().any(|r| r.id == id),
                    Err(_) => false,
                }
            }
        })
        .await?;
        let request = pb::RespondRequest {
            rectification_id: case.id.clone(),
            response: RECTIFICATION_RESPONSE.to_owned(),
        };
        ratings
            .clone()
            .respond(request)
            .await
            .map_err(|s| rpc_error(&s, &handler))
            .with_context(|| format!("answering the bad rating of {} at {handler}", case.number))?;
        tally.answered += 1;
        Ok(())
    }

    // --- helpers for the stages -----------------------------------------------------------

    /// Where the case starts and for which item: a village of the township for village plans
    /// (alternating between them), unless the tree has none or it takes no item of the route;
    /// else the township window.
    fn desk_and_item(&self, index: usize, plan: &Plan, township: &NodeId) -> Result<(NodeId, pb::CatalogueItem)> {
        let village = match plan.entry {
            Entry::Village => self
                .villages
                .get(township)
                .filter(|v| !v.is_empty())
                .map(|v| v[index % v.len()].clone()),
            Entry::Window => None,
        };
        if let Some(village) = village
            && let Some(item) = self.pick_item(&village, township, index, plan)
        {
            return Ok((village, item));
        }
        let item = self.pick_item(township, township, index, plan).with_context(|| {
            format!(
                "township {township} takes no {} item",
                plan.route.as_str_name().to_lowercase()
            )
        })?;
        Ok((township.clone(), item))
    }

    /// An item of the plan's route that `node` takes and `township` serves. A case left to go
    /// red in handling takes the shortest promised limit. The others take one spread over the
    /// items whose limit is at least [`LONG_ENOUGH`] working days (case events carry the real
    /// time, so every case's clocks start on the first day, and a short limit would turn a case
    /// red before its day in the script comes), alternating government-service (政务服务) and
    /// public-service (公共服务) items so entrusted cases use both of their seals.
    fn pick_item(&self, node: &NodeId, township: &NodeId, index: usize, plan: &Plan) -> Option<pb::CatalogueItem> {
        let items: Vec<&pb::CatalogueItem> = self
            .shelves
            .get(node)?
            .get(&(plan.route as i32))?
            .iter()
            .filter(|item| item.all_townships || item.townships.iter().any(|t| t == township.as_str()))
            .collect();
        if let Fate::StuckInHandling = plan.fate {
            return items.into_iter().min_by_key(|item| item.promised_days).cloned();
        }
        let category = if index.is_multiple_of(2) {
            pb::Category::GovernmentService
        } else {
            pb::Category::PublicService
        };
        let pool = narrow(items, |item| item.promised_days >= LONG_ENOUGH);
        let pool = narrow(pool, |item| item.category == category as i32);
        let pick = (index * 37 + 11) % pool.len().max(1);
        pool.get(pick).map(|item| (*item).clone())
    }

    async fn act(&self, at: &NodeId, case: &Case, action: A) -> Result<pb::CaseSummary> {
        let name = action_name(&action);
        let request = pb::ActRequest {
            case_id: case.id.clone(),
            action: Some(pb::CaseAction { action: Some(action) }),
        };
        let summary = self
            .cases_at(at)?
            .act(request)
            .await
            .map_err(|s| rpc_error(&s, at))
            .with_context(|| format!("{name} on case {} at {at}", case.number))?
            .into_inner();
        Ok(summary)
    }

    /// Waits until `node` holds the case (a forward or hand-over has replicated to it).
    async fn wait_held(&self, node: &NodeId, case: &Case) -> Result<()> {
        let client = self.cases_at(node)?;
        let what = format!("case {} to reach {node}", case.number);
        wait_until(WAIT, &what, || {
            let mut client = client.clone();
            let request = get_request(&case.id);
            async move {
                match client.get(request).await {
                    Ok(detail) => detail.into_inner().summary.is_some_and(|s| s.holder == node.as_str()),
                    Err(_) => false,
                }
            }
        })
        .await?;
        Ok(())
    }

    // --- reading the tiers back -----------------------------------------------------------

    /// Every case `node` knows, through `Cases.List` page by page.
    async fn list_cases(&self, node: &NodeId) -> Result<Vec<pb::CaseSummary>> {
        let mut client = self.cases_at(node)?;
        let mut cases = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListCasesRequest {
                page_size: 500,
                page_token,
                ..Default::default()
            };
            let page = client
                .list(request)
                .await
                .map_err(|s| rpc_error(&s, node))
                .with_context(|| format!("listing the cases at {node}"))?
                .into_inner();
            cases.extend(page.cases);
            if page.next_page_token.is_empty() {
                return Ok(cases);
            }
            page_token = page.next_page_token;
        }
    }

    /// Yellow and red warnings at `node` (its subtree), through `Cases.ListWarnings`.
    async fn warning_counts(&self, node: &NodeId) -> Result<(usize, usize)> {
        let warnings = self
            .cases_at(node)?
            .list_warnings(pb::ListWarningsRequest::default())
            .await
            .map_err(|s| rpc_error(&s, node))
            .with_context(|| format!("listing warnings at {node}"))?
            .into_inner()
            .warnings;
        let red = warnings
            .iter()
            .filter(|w| w.level == pb::WarningLevel::Red as i32)
            .count();
        Ok((warnings.len() - red, red))
    }

    /// Waits until, for every case, its origin, its township and the county list the same
    /// summary (state, holder, steps and the rest), and no node lists a case it should not.
    async fn wait_for_agreement(&self, books: &[Book]) -> Result<Snapshot> {
        let last = Mutex::new(None);
        let last_seen = &last;
        let agreed = wait_until(WAIT, "every tier to agree on every case", || async move {
            let outcome = self.compare_tiers(books).await;
            let done = matches!(outcome, Ok(Ok(_)));
            if let Ok(mut last) = last_seen.lock() {
                *last = Some(outcome);
            }
            done
        })
        .await;
        match (agreed, last.into_inner().ok().flatten()) {
            (Ok(()), Some(Ok(Ok(snapshot)))) => Ok(snapshot),
            (_, Some(Ok(Err(difference)))) => bail!("the tiers do not agree: {difference}"),
            (_, Some(Err(e))) => Err(e.context("comparing the tiers")),
            (Err(e), _) => Err(e.into()),
            (Ok(()), _) => bail!("the tiers were never compared"),
        }
    }

    /// One comparison: the lists (when all agree) or the first difference found.
    async fn compare_tiers(&self, books: &[Book]) -> Result<Result<Snapshot, String>> {
        let cases: Vec<&Case> = books.iter().flat_map(Book::values).collect();
        let mut expected: BTreeMap<NodeId, usize> = BTreeMap::new();
        for case in &cases {
            for node in case.path(&self.county) {
                *expected.entry(node).or_default() += 1;
            }
        }
        let mut lists = BTreeMap::new();
        let mut by_id: BTreeMap<NodeId, BTreeMap<String, pb::CaseSummary>> = BTreeMap::new();
        for (node, count) in &expected {
            let list = self.list_cases(node).await?;
            if list.len() != *count {
                return Ok(Err(format!("{node} lists {} cases, {count} expected", list.len())));
            }
            by_id.insert(
                node.clone(),
                list.iter().map(|s| (s.case_id.clone(), s.clone())).collect(),
            );
            lists.insert(node.clone(), list);
        }
        for case in &cases {
            let at_county = by_id.get(&self.county).and_then(|l| l.get(&case.id));
            for node in case.path(&self.county) {
                let here = by_id.get(&node).and_then(|l| l.get(&case.id));
                match (here, at_county) {
                    (Some(here), Some(county)) if here == county => {}
                    (Some(here), Some(county)) => {
                        return Ok(Err(format!(
                            "case {}: {node} has {} steps, {}, held by {}; the county has {} steps, {}, held by {}",
                            case.number,
                            here.steps,
                            here.state_label,
                            here.holder,
                            county.steps,
                            county.state_label,
                            county.holder
                        )));
                    }
                    _ => return Ok(Err(format!("case {} is missing at {node} or the county", case.number))),
                }
            }
        }
        Ok(Ok(Snapshot { lists }))
    }

    // --- the summary's tables -------------------------------------------------------------

    /// Columns of the per-tier tables: the county, each township, all villages together.
    fn column_of(&self, node: &NodeId) -> usize {
        match node.tier() {
            Tier::County => 0,
            Tier::Township => self.townships.iter().position(|t| t == node).map_or(0, |i| i + 1),
            Tier::Village => self.townships.len() + 1,
        }
    }

    /// Integrity alarms (quarantined or conflicting events) open at `nodes`, from `Node.Status`.
    async fn open_alarms(&self, nodes: impl Iterator<Item = &NodeId>) -> Result<u64> {
        let mut open = 0;
        for node in nodes {
            open += NodeClient::new(self.channel(node)?)
                .status(pb::StatusRequest {})
                .await
                .map_err(|s| rpc_error(&s, node))
                .with_context(|| format!("the status of {node}"))?
                .into_inner()
                .open_alarms;
        }
        Ok(open)
    }

    /// Cases per state and warnings per tier, from each node's `Cases.List` and `Cases.ListWarnings`.
    async fn print_states_and_warnings(&self, names: &[String], snapshot: &Snapshot) -> Result<()> {
        let columns = self.townships.len() + 2;
        let mut header = vec!["county 县".to_owned()];
        header.extend(names.iter().cloned());
        header.push("villages 村".to_owned());
        println!(
            "  {}{}",
            cell("cases per state and tier (办件状态)", 38),
            row(&header, TIER_COLUMN)
        );

        let mut per_state: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        let mut totals = vec![0; columns];
        for (node, list) in &snapshot.lists {
            let column = self.column_of(node);
            for case in list {
                per_state.entry(case.state).or_insert_with(|| vec![0; columns])[column] += 1;
                totals[column] += 1;
            }
        }
        for (state, counts) in &per_state {
            let label = StateKind::from_wire(*state, "state")
                .map(|k| k.to_string())
                .unwrap_or_else(|_| format!("state {state}"));
            let cells: Vec<String> = counts.iter().map(|n| n.to_string()).collect();
            println!("    {}{}", cell(&label, 36), row(&cells, TIER_COLUMN));
        }
        let cells: Vec<String> = totals.iter().map(|n| n.to_string()).collect();
        println!("    {}{}", cell("total", 36), row(&cells, TIER_COLUMN));

        let mut warnings = vec![(0, 0); columns];
        for node in snapshot.lists.keys() {
            let (yellow, red) = self.warning_counts(node).await?;
            let column = &mut warnings[self.column_of(node)];
            column.0 += yellow;
            column.1 += red;
        }
        let cells: Vec<String> = warnings.iter().map(|(y, r)| format!("{y}/{r}")).collect();
        println!(
            "  {}{}",
            cell("warnings yellow/red (黄牌/红牌)", 38),
            row(&cells, TIER_COLUMN)
        );
        Ok(())
    }

    /// Supervision records the county's scans opened, from `Cases.ListSupervision` there.
    async fn print_supervision(&self) -> Result<()> {
        let records = self
            .cases_at(&self.county)?
            .list_supervision(pb::ListSupervisionRequest { include_closed: true })
            .await
            .map_err(|s| rpc_error(&s, &self.county))
            .context("listing supervision records at the county")?
            .into_inner()
            .records;
        let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &records {
            let rule = match pb::WarningRule::try_from(r.rule) {
                Ok(pb::WarningRule::Acceptance) => "acceptance (受理时限)",
                Ok(pb::WarningRule::Processing) => "processing (承诺时限)",
                Ok(pb::WarningRule::Issuing) => "issuing (出件时限)",
                _ => "other",
            };
            *per_rule.entry(rule).or_default() += 1;
        }
        let parts: Vec<String> = per_rule.iter().map(|(rule, n)| format!("{n} {rule}")).collect();
        let numbers: Vec<&str> = records.iter().rev().map(|r| r.case_number.as_str()).collect();
        println!(
            "  supervision records opened (督办) at the county: {}{}",
            records.len(),
            if parts.is_empty() {
                String::new()
            } else {
                format!(" — {}", parts.join(", "))
            }
        );
        if !numbers.is_empty() {
            println!("    on {}", numbers.join(", "));
        }
        Ok(())
    }

    /// Entries and impressions per seal, from `Seals.ListEntries` at the county (every stamp).
    async fn print_seals(&self) -> Result<()> {
        let entries = SealsClient::new(self.channel(&self.county)?)
            .list_entries(pb::ListSealEntriesRequest::default())
            .await
            .map_err(|s| rpc_error(&s, &self.county))
            .context("listing the seal register at the county")?
            .into_inner()
            .entries;
        let mut per_seal: BTreeMap<i32, (usize, u64)> = BTreeMap::new();
        for e in &entries {
            let total = per_seal.entry(e.seal).or_default();
            total.0 += 1;
            total.1 += u64::from(e.impressions);
        }
        println!(
            "  {}{}",
            cell("seal register (用印登记), county-wide", 52),
            row(&["entries".to_owned(), "impressions".to_owned()], 13)
        );
        for seal in SealType::ALL {
            let (count, impressions) = per_seal.get(&seal.to_wire()).copied().unwrap_or_default();
            let label = format!("{} ({})", seal.as_str().replace('_', " "), seal.label_zh());
            println!(
                "    {}{}",
                cell(&label, 50),
                row(&[count.to_string(), impressions.to_string()], 13)
            );
        }
        Ok(())
    }

    /// Rating metrics county-wide and per township, from `Oversight.Summary` at the county.
    async fn print_ratings(&self, names: &[String]) -> Result<()> {
        let mut oversight = OversightClient::new(self.channel(&self.county)?);
        let mut scopes = vec![(String::new(), "county-wide 全县".to_owned())];
        scopes.extend(
            self.townships
                .iter()
                .zip(names)
                .map(|(t, n)| (t.to_string(), n.clone())),
        );
        println!(
            "  {}{}",
            cell("ratings (好差评)", 20),
            row(&RATING_HEADERS.map(str::to_owned), RATING_COLUMN)
        );
        let mut county_wide = None;
        for (township, label) in scopes {
            let summary = oversight
                .summary(pb::SummaryRequest {
                    township: township.clone(),
                })
                .await
                .map_err(|s| rpc_error(&s, &self.county))
                .with_context(|| format!("the oversight summary of {label}"))?
                .into_inner();
            let m = summary.ratings.unwrap_or_default();
            let cells = [
                format!("{}/{}", m.rated, m.concluded),
                m.defaulted.to_string(),
                rate(m.coverage, m.concluded),
                rate(m.active_rate, m.concluded),
                rate(m.good_rate, m.rated),
                rate(m.bad_rate, m.rated),
                rate(m.rectification_rate, m.rectifications),
                rate(m.on_time_rate, m.rectifications),
            ];
            println!("    {}{}", cell(&label, 18), row(&cells, RATING_COLUMN));
            county_wide.get_or_insert(m);
        }
        println!(
            "    rates: coverage 评价覆盖率 (rated of concluded), active 主动评价率 (applicant's own of concluded), good 好评率 and bad 差评率 (of rated), rectified 整改率 and on time 按时整改率 (of rectification items)"
        );
        if let Some(m) = county_wide {
            println!(
                "    county-wide: {} concluded, {} rated ({} by the applicant, {} by default), {} good, {} bad; {} rectification items, {} answered, {} on time",
                m.concluded,
                m.rated,
                m.active,
                m.defaulted,
                m.good,
                m.bad,
                m.rectifications,
                m.rectified,
                m.rectified_on_time
            );
        }
        Ok(())
    }
}

/// A channel to `node` with the certificate of its own clerk (`operator:<node>:clerk`), issued
/// by the tree's CA: cases are submitted and moved only where the operator sits.
async fn clerk_channel(cluster: &Cluster, node: &NodeId) -> Result<Channel> {
    let clerk = Principal::operator(node.clone(), CLERK)?;
    cluster
        .channel_as(node, &clerk)
        .await
        .with_context(|| format!("connecting to {node} as {clerk}"))
}

/// The items `node` takes (never immediate ones: they skip the back office), by delegation mode,
/// through `Catalogue.ListItems` at the node.
async fn shelf(channel: Channel, node: &NodeId) -> Result<BTreeMap<i32, Vec<pb::CatalogueItem>>> {
    let mut client = CatalogueClient::new(channel).max_decoding_message_size(64 << 20);
    let mut shelf: BTreeMap<i32, Vec<pb::CatalogueItem>> = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListItemsRequest {
            page_size: 500,
            page_token,
            ..Default::default()
        };
        let page = client
            .list_items(request)
            .await
            .map_err(|s| rpc_error(&s, node))
            .with_context(|| format!("listing the catalogue at {node}"))?
            .into_inner();
        for item in page.items {
            // Penalties, inspections and the like are not applied for: no clerk opens a case.
            let applied_for = ItemType::from_wire(item.item_type, "item_type").is_ok_and(|k| k.accepts_applications());
            if !item.immediate && item.promised_days > 0 && applied_for {
                shelf.entry(item.delegation).or_default().push(item);
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(shelf);
        }
        page_token = page.next_page_token;
    }
}

/// The items that satisfy `wanted`, or all of them when none does.
fn narrow(items: Vec<&pb::CatalogueItem>, wanted: impl Fn(&pb::CatalogueItem) -> bool) -> Vec<&pb::CatalogueItem> {
    if items.iter().any(|item| wanted(item)) {
        items.into_iter().filter(|item| wanted(item)).collect()
    } else {
        items
    }
}

fn hand_over(to: &NodeId) -> A {
    A::HandOver(act::HandOver { to: to.to_string() })
}

fn get_request(case_id: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        key: Some(pb::get_case_request::Key::CaseId(case_id.to_owned())),
    }
}

/// `Forward`, `Decide`, ...: the action's name for error messages.
fn action_name(action: &A) -> String {
    let debug = format!("{action:?}");
    debug.split('(').next().unwrap_or("action").to_owned()
}

pub(crate) fn rpc_error(status: &tonic::Status, node: &NodeId) -> anyhow::Error {
    anyhow!(explain_status(status, &format!("node {node}")))
}

const APPLICANTS: [&str; 20] = [
    "李明",
    "陈秀英",
    "张伟",
    "黄丽华",
    "刘建国",
    "曾志强",
    "钟美玲",
    "古国平",
    "李桂芳",
    "温伟东",
    "张小红",
    "陈志明",
    "魏春兰",
    "罗振华",
    "刘淑贞",
    "邓国强",
    "黄文辉",
    "朱丽萍",
    "赖晓东",
    "彭海燕",
];

/// A made-up 18-character identity number of a Wuhua resident (only a masked form is kept).
fn id_number(index: usize) -> String {
    format!(
        "441424{:04}{:02}{:02}{:03}{}",
        1950 + (index * 7) % 50,
        1 + index % 12,
        1 + (index * 3) % 28,
        100 + index,
        index % 10
    )
}

/// `Mon 2026-05-11 周一`.
pub(crate) fn day_label(date: NaiveDate) -> String {
    let zh = match date.weekday() {
        Weekday::Mon => "周一",
        Weekday::Tue => "周二",
        Weekday::Wed => "周三",
        Weekday::Thu => "周四",
        Weekday::Fri => "周五",
        Weekday::Sat => "周六",
        Weekday::Sun => "周日",
    };
    format!("{} {date} {zh}", date.format("%a"))
}

/// The day table's columns: 补正 supplements requested, 不予受理 not accepted, default ratings
/// recorded by nodes, 整改 rectifications answered, 督办 supervision records opened.
const DAY_COLUMNS: [&str; 14] = [
    "submitted",
    "village",
    "accepted",
    "补正",
    "不予受理",
    "decided",
    "refused",
    "issued",
    "rated",
    "default",
    "整改",
    "yellow",
    "red",
    "督办",
];

/// Each day column is one space wider than its header.
fn day_widths() -> Vec<usize> {
    DAY_COLUMNS.iter().map(|h| width(h) + 1).collect()
}

fn day_header() -> String {
    let cells = DAY_COLUMNS.map(str::to_owned);
    format!(
        "{}{}",
        cell("working day (工作日)", DAY_LABEL),
        columns(&cells, &day_widths())
    )
}

fn day_row(label: &str, t: &Tally, yellow: usize, red: usize, opened: usize) -> String {
    let cells = [
        t.submitted,
        t.via_village,
        t.accepted,
        t.supplements,
        t.not_accepted,
        t.decided,
        t.refused,
        t.issued,
        t.rated,
        t.defaulted,
        t.answered,
        yellow,
        red,
        opened,
    ]
    .map(|n| n.to_string());
    format!("{}{}", cell(label, DAY_LABEL), columns(&cells, &day_widths()))
}

/// Column widths: the day table's label, the per-tier tables' columns, the rating table's.
const DAY_LABEL: usize = 21;
const TIER_COLUMN: usize = 12;
const RATING_COLUMN: usize = 11;

const RATING_HEADERS: [&str; 8] = [
    "rated",
    "default",
    "coverage",
    "active",
    "good",
    "bad",
    "rectified",
    "on time",
];

/// Cells right-aligned in columns of the given widths (CJK characters take two columns).
fn columns(cells: &[String], widths: &[usize]) -> String {
    cells
        .iter()
        .zip(widths)
        .map(|(text, w)| format!("{}{text}", " ".repeat(w.saturating_sub(width(text)))))
        .collect()
}

/// Cells right-aligned in columns of one width.
fn row(cells: &[String], width: usize) -> String {
    columns(cells, &vec![width; cells.len()])
}

/// A rate as a percentage, or "-" when there was nothing to count it over.
fn rate(fraction: f64, denominator: u64) -> String {
    if denominator == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", fraction * 100.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_week_gives_each_township_two_cases_a_day_on_every_route() {
        for day in 0..WORKING_DAYS {
            for township in 0..TOWNSHIPS.len() {
                let n = WEEK.iter().filter(|p| p.day == day && p.township == township).count();
                assert_eq!(n, 2, "day {day}, township {township}");
            }
        }
        for township in 0..TOWNSHIPS.len() {
            for route in [Authorised, Entrusted, NotDelegated] {
                assert!(
                    WEEK.iter().any(|p| p.township == township && p.route == route),
                    "township {township} has no {route:?} case"
                );
            }
        }
    }

    #[test]
    fn stages_start_with_intake_and_never_go_back_a_day() {
        for plan in &WEEK {
            let stages = plan.fate.stages();
            assert_eq!(stages.first(), Some(&(Stage::Intake, 0)), "{plan:?}");
            assert!(stages.windows(2).all(|w| w[0].1 <= w[1].1), "{plan:?}");
        }
        let answered = WEEK
            .iter()
            .filter(|p| p.fate.stages().iter().any(|(s, _)| *s == Stage::Answer))
            .count();
        assert_eq!(answered, 1, "one bad rating is answered");
    }
}
