//! One seeded run: build the tree, then rounds of faults with clerks working through them,
//! each ended by healing every fault and waiting until the tree agrees, then the invariants.
//!
//! Everything the run does is drawn from one `StdRng` seeded with the seed (faults, work, how
//! long to let each last), and turmoil's own network randomness is seeded from it too. Work that
//! depends on another node's data (a township receiving a village's case) is chosen only from
//! what the tree agreed on at the end of the previous round, so a replay makes the same choices.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, NaiveDate, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tongban_domains::calendar::{ManualClock, WorkingCalendar};
use tongban_domains::case::projection::CaseFilter;
use tongban_domains::case::{ApplicantKind, ApplicantSummary, CaseAction, CaseId, CaseNumber, ItemTerms, StateKind};
use tongban_domains::catalogue::{
    Category, DelegationMode, Item, ItemLevel, ItemType, Material, MaterialForm, SealType, WindowType,
};
use tongban_domains::custody::model::Scan;
use tongban_domains::custody::projection::ScanResult;
use tongban_domains::ids::{NodeId, Tier};
use tongban_domains::log::LinkRole;
use tongban_domains::pki::Principal;
use tongban_domains::store::Store;

use crate::check::{self, LinkDigests, NodeState};
use crate::county::{self, Desks, Shared, SharedRef, Tree, host};
use crate::custody::{Custody, Upload};

/// One simulation step: messages are delivered and hosts run in steps of this much time.
const TICK: Duration = Duration::from_millis(10);
/// Longest a heal may take before the run is declared not to converge (simulated).
const CONVERGE_LIMIT: Duration = Duration::from_secs(600);
/// How long the driver waits for a node to answer (simulated).
const ANSWER_LIMIT: Duration = Duration::from_secs(120);

/// Only one simulation at a time in a process: [`crate::settle`] waits for every other thread.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub townships: usize,
    pub villages: usize,
    pub rounds: usize,
    /// Where-is must agree on the node that recorded each scan too (see
    /// [`check::check_with`]); on, since copies recorded at two nodes keep one recorder.
    pub recorder_must_agree: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            townships: 2,
            villages: 2,
            rounds: 4,
            recorder_must_agree: true,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    /// The faults injected and the work done, in order, each with its simulated time.
    pub trace: Vec<(Duration, String)>,
    /// Hash of the tree's final state (see [`check::final_hash`]).
    pub final_hash: String,
    pub faults: usize,
    /// Events found where they are routed, summed over the nodes, at the final check.
    pub events_checked: usize,
    /// Warnings listed and recomputed, summed over the nodes, at the final check.
    pub warnings_checked: usize,
    /// Where-is answers compared between a township and the county at the final check.
    pub where_is_checked: usize,
    /// Invariants broken (empty when the run is sound).
    pub violations: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The trace without its times: what a replay of the seed must repeat exactly.
    pub fn steps(&self) -> Vec<&str> {
        self.trace.iter().map(|(_, line)| line.as_str()).collect()
    }

    /// The seed, the trace and what broke: what a failing test prints.
    pub fn report(&self) -> String {
        let mut out = format!(
            "seed {} ({} faults, {} events, {} warnings and {} where-is answers checked)\n",
            self.seed, self.faults, self.events_checked, self.warnings_checked, self.where_is_checked
        );
        for (at, line) in &self.trace {
            out.push_str(&format!("  {:>9.2}s {line}\n", at.as_secs_f64()));
        }
        for v in &self.violations {
            out.push_str("  BROKEN: ");
            out.push_str(v);
            out.push('\n');
        }
        out.push_str(&format!(
            "replay: TONGBAN_SIM_SEED={} cargo test -p tongban-sim --test sim replay -- --ignored --nocapture\n",
            self.seed
        ));
        out
    }
}

/// Runs the county for `seed`.
pub fn run_seed(seed: u64, options: &Options) -> Outcome {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut outcome = Outcome {
        seed,
        trace: Vec::new(),
        final_hash: String::new(),
        faults: 0,
        events_checked: 0,
        warnings_checked: 0,
        where_is_checked: 0,
        violations: Vec::new(),
    };
    match Driver::new(seed, options).and_then(|mut driver| {
        let result = driver.run(options);
        outcome.trace = std::mem::take(&mut driver.trace);
        outcome.faults = driver.faults;
        outcome.warnings_checked = driver.warnings_checked;
        outcome.where_is_checked = driver.where_is_checked;
        result
    }) {
        Ok((hash, events, violations)) => {
            outcome.final_hash = hash;
            outcome.events_checked = events;
            outcome.violations = violations;
        }
        Err(error) => outcome.violations.push(error),
    }
    outcome
}

/// Faults the run can inject on a link or a node.
#[derive(Debug, Clone)]
enum Fault {
    Partition(NodeId, NodeId),
    Hold(NodeId, NodeId),
    Slow(NodeId, NodeId, u64),
    Crash(NodeId),
    Bounce(NodeId),
}

struct Driver<'a> {
    sim: turmoil::Sim<'a>,
    tree: Tree,
    desks: Desks,
    clock: Arc<ManualClock>,
    rng: StdRng,
    trace: Vec<(Duration, String)>,
    faults: usize,
    active: Vec<Fault>,
    down: BTreeSet<NodeId>,
    catalogue_version: u64,
    /// Cases each township held at the last agreement, oldest first.
    held: BTreeMap<NodeId, Vec<CaseId>>,
    /// The same, kept whole: documents are registered for them.
    cases_of: BTreeMap<NodeId, Vec<(CaseId, CaseNumber)>>,
    custody: Custody,
    /// Scans to upload again once the tree agrees: (node, desk, scans).
    echoes: Vec<(NodeId, String, Vec<Scan>)>,
    calendar_version: u64,
    /// Uploads of scans a node already held that it did not take as duplicates.
    not_idempotent: Vec<String>,
    recorder_must_agree: bool,
    warnings_checked: usize,
    where_is_checked: usize,
    _dir: tempfile::TempDir,
}

fn base_day() -> NaiveDate {
    // A Monday, so the first weekend comes within a run.
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default()
}

impl<'a> Driver<'a> {
    fn new(seed: u64, options: &Options) -> Result<Driver<'a>, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let tree = Tree::new(options.townships, options.villages);
        let clock = Arc::new(ManualClock::new(base_day()));
        let shared = Shared::new(dir.path(), tree.county(), clock.clone(), seed)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sim = turmoil::Builder::new()
            .rng_seed(rng.random())
            .tick_duration(TICK)
            .simulation_duration(Duration::from_secs(7 * 86_400))
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(30))
            .build();
        let host_shared = Arc::new(SharedRef {
            dir: shared.dir.clone(),
            clock: shared.clock.clone(),
            desks: shared.desks.clone(),
            seed,
        });
        for id in &tree.nodes {
            let tls = county::node_tls(&shared.ca, id)?;
            let (id, s) = (id.clone(), host_shared.clone());
            sim.host(host(&id), move || county::run_node(id.clone(), tls.clone(), s.clone()));
        }
        let custody = Custody::new(tree.county(), &tree.of_tier(Tier::Township))?;
        Ok(Driver {
            sim,
            tree,
            desks: shared.desks,
            clock,
            rng,
            trace: Vec::new(),
            faults: 0,
            active: Vec::new(),
            down: BTreeSet::new(),
            catalogue_version: 0,
            held: BTreeMap::new(),
            cases_of: BTreeMap::new(),
            custody,
            echoes: Vec::new(),
            calendar_version: 0,
            not_idempotent: Vec::new(),
            recorder_must_agree: options.recorder_must_agree,
            warnings_checked: 0,
            where_is_checked: 0,
            _dir: dir,
        })
    }

    fn note(&mut self, line: String) {
        let at = self.sim.elapsed();
        self.trace.push((at, line));
    }

    fn step(&mut self) -> Result<(), String> {
        self.sim.step().map_err(|e| format!("a host failed: {e}"))?;
        crate::settle::settle();
        Ok(())
    }

    fn steps(&mut self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            self.step()?;
        }
        Ok(())
    }

    /// Runs `work` at node `id` and steps the simulation until it answers. `None` when the node
    /// is down or crashed before answering.
    fn ask<T: Send + 'static>(
        &mut self,
        id: &NodeId,
        work: impl FnOnce(Arc<Store>) -> Pin<Box<dyn Future<Output = T>>> + Send + 'static,
    ) -> Result<Option<T>, String> {
        if self.down.contains(id) {
            return Ok(None);
        }
        // A node just restarted opens its desk once its store is open.
        if !self.wait_for_desk(id)? {
            return Ok(None);
        }
        let Some(mut rx) = county::send(&self.desks, id, work) else {
            return Ok(None);
        };
        let limit = ANSWER_LIMIT.as_millis() / TICK.as_millis();
        for _ in 0..limit {
            match rx.try_recv() {
                Ok(answer) => return Ok(Some(answer)),
                Err(oneshot::error::TryRecvError::Closed) => return Ok(None),
                Err(oneshot::error::TryRecvError::Empty) => self.step()?,
            }
        }
        Err(format!("node {id} did not answer within {ANSWER_LIMIT:?}"))
    }

    /// Steps until `id` has a desk (it has started); false if it does not within the limit.
    fn wait_for_desk(&mut self, id: &NodeId) -> Result<bool, String> {
        let limit = ANSWER_LIMIT.as_millis() / TICK.as_millis();
        for _ in 0..limit {
            if self.desks.lock().map(|d| d.contains_key(id)).unwrap_or(false) {
                return Ok(true);
            }
            self.step()?;
        }
        Ok(false)
    }

    fn run(&mut self, options: &Options) -> Result<(String, usize, Vec<String>), String> {
        for id in self.tree.nodes.clone() {
            if !self.wait_for_desk(&id)? {
                return Err(format!("node {id} did not start"));
            }
        }
        self.publish()?;
        self.converge()?;
        for round in 1..=options.rounds {
            self.note(format!("round {round}"));
            // Every round starts on a later day, so cases age into yellow and red warnings
            // within a run and deadlines cross the calendars the county publishes.
            self.move_clock();
            self.inject()?;
            let work = self.rng.random_range(3..8);
            for _ in 0..work {
                self.work()?;
                let pause = self.rng.random_range(20..300);
                self.steps(pause)?;
            }
            self.heal()?;
            self.upload_pending()?;
            if let Some(broken) = self.converge()? {
                return Ok((String::new(), 0, broken));
            }
            self.agreed_work()?;
        }
        self.note("final check".into());
        let (states, digests) = self.read_all()?;
        let mut broken = check::check_with(&self.tree.nodes, &states, &digests, self.recorder_must_agree);
        broken.append(&mut self.not_idempotent);
        let events = states.values().map(|s| s.present.len()).sum();
        self.warnings_checked = states.values().map(|s| s.warnings.len()).sum();
        self.where_is_checked = states
            .iter()
            .filter(|(id, _)| id.tier() == Tier::Township)
            .map(|(_, s)| s.where_is.len())
            .sum();
        Ok((check::final_hash(&states), events, broken))
    }

    // --- faults -------------------------------------------------------------------------

    fn inject(&mut self) -> Result<(), String> {
        let n = self.rng.random_range(1..=3);
        for _ in 0..n {
            let links = self.tree.links();
            let (child, parent) = links[self.rng.random_range(0..links.len())].clone();
            let fault = match self.rng.random_range(0..10) {
                0..=2 => Fault::Partition(child, parent),
                3..=4 => Fault::Hold(child, parent),
                5 => Fault::Slow(child, parent, self.rng.random_range(200..3000)),
                6..=7 => {
                    let nodes = &self.tree.nodes;
                    Fault::Crash(nodes[self.rng.random_range(0..nodes.len())].clone())
                }
                8 => {
                    let nodes = &self.tree.nodes;
                    Fault::Bounce(nodes[self.rng.random_range(0..nodes.len())].clone())
                }
                _ => {
                    self.move_clock();
                    continue;
                }
            };
            self.apply(fault)?;
        }
        Ok(())
    }

    fn apply(&mut self, fault: Fault) -> Result<(), String> {
        self.faults += 1;
        match &fault {
            Fault::Partition(a, b) => {
                self.sim.partition(host(a), host(b));
                self.note(format!("partition {a} ⟂ {b}"));
            }
            Fault::Hold(a, b) => {
                self.sim.hold(host(a), host(b));
                self.note(format!("hold messages {a} ⇄ {b}"));
            }
            Fault::Slow(a, b, ms) => {
                self.sim
                    .set_link_max_message_latency(host(a), host(b), Duration::from_millis(*ms));
                self.note(format!("slow link {a} ⇄ {b}: up to {ms} ms"));
            }
            Fault::Crash(n) => {
                if self.down.contains(n) {
                    self.faults -= 1;
                    return Ok(());
                }
                self.sim.crash(host(n));
                county::close_desk(&self.desks, n);
                self.down.insert(n.clone());
                self.note(format!("crash {n}"));
            }
            Fault::Bounce(n) => {
                if self.down.contains(n) {
                    self.faults -= 1;
                    return Ok(());
                }
                county::close_desk(&self.desks, n);
                self.sim.bounce(host(n));
                self.note(format!("restart {n} (in-memory state lost)"));
                if !self.wait_for_desk(n)? {
                    return Err(format!("{n} did not come back after a restart"));
                }
            }
        }
        self.active.push(fault);
        Ok(())
    }

    fn move_clock(&mut self) {
        self.faults += 1;
        let today = tongban_domains::calendar::Clock::today(&*self.clock);
        let target = match self.rng.random_range(0..3) {
            0 => today.succ_opt().unwrap_or(today),
            1 => {
                // Over the next weekend to Monday.
                let mut d = today.succ_opt().unwrap_or(today);
                while d.weekday() != Weekday::Mon {
                    d = d.succ_opt().unwrap_or(d);
                }
                d
            }
            _ => today + chrono::Days::new(self.rng.random_range(2..6)),
        };
        self.clock.set_today(target);
        self.note(format!("clock moves {today} → {target} ({})", target.weekday()));
    }

    fn heal(&mut self) -> Result<(), String> {
        for fault in std::mem::take(&mut self.active) {
            match fault {
                Fault::Partition(a, b) => self.sim.repair(host(&a), host(&b)),
                Fault::Hold(a, b) => self.sim.release(host(&a), host(&b)),
                Fault::Slow(a, b, _) => {
                    self.sim
                        .set_link_max_message_latency(host(&a), host(&b), Duration::from_millis(30))
                }
                Fault::Crash(n) => {
                    self.sim.bounce(host(&n));
                    self.down.remove(&n);
                    self.note(format!("start {n} again"));
                }
                Fault::Bounce(_) => {}
            }
        }
        self.note("every link healed".into());
        Ok(())
    }

    // --- work ---------------------------------------------------------------------------

    fn work(&mut self) -> Result<(), String> {
        match self.rng.random_range(0..16) {
            0..=3 => {
                let villages = self.tree.of_tier(Tier::Village);
                let v = villages[self.rng.random_range(0..villages.len())].clone();
                self.village_submits(&v)
            }
            4..=5 => {
                let townships = self.tree.of_tier(Tier::Township);
                let t = townships[self.rng.random_range(0..townships.len())].clone();
                self.township_submits(&t)
            }
            6..=8 => {
                let townships = self.tree.of_tier(Tier::Township);
                let t = townships[self.rng.random_range(0..townships.len())].clone();
                self.township_advances(&t)
            }
            9 => self.publish(),
            10 => self.publish_calendar(),
            _ => {
                let townships = self.tree.of_tier(Tier::Township);
                let t = townships[self.rng.random_range(0..townships.len())].clone();
                self.move_box(&t)
            }
        }
    }

    fn village_submits(&mut self, v: &NodeId) -> Result<(), String> {
        let terms = ItemTerms::from_item(&catalogue(1)[0], 1);
        let clerk = clerk(v);
        let n = self.rng.random_range(0..1000);
        let answer = self.ask(v, move |store| {
            Box::pin(async move {
                let view = store
                    .open_case(terms, applicant(n), &clerk)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .act_on_case(&view.id, CaseAction::Forward, &clerk)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(view.number.to_string())
            })
        })?;
        self.note(format!("clerk at {v} submits and forwards: {}", said(answer)));
        Ok(())
    }

    fn township_submits(&mut self, t: &NodeId) -> Result<(), String> {
        let terms = ItemTerms::from_item(&catalogue(1)[0], 1);
        let clerk = clerk(t);
        let n = self.rng.random_range(0..1000);
        let answer = self.ask(t, move |store| {
            Box::pin(async move {
                let then = vec![CaseAction::Receive, CaseAction::Accept { terms: terms.clone() }];
                store
                    .open_case_then(terms, applicant(n), &clerk, then)
                    .await
                    .map(|v| v.number.to_string())
                    .map_err(|e| e.to_string())
            })
        })?;
        self.note(format!(
            "window at {t} submits and accepts on the spot: {}",
            said(answer)
        ));
        Ok(())
    }

    /// Takes the next step of the oldest case `t` held at the last agreement.
    fn township_advances(&mut self, t: &NodeId) -> Result<(), String> {
        let Some(id) = self.held.get_mut(t).and_then(|cases| cases.pop()) else {
            return Ok(());
        };
        let clerk = clerk(t);
        let terms = ItemTerms::from_item(&catalogue(1)[0], 1);
        let case = id.clone();
        let answer = self.ask(t, move |store| {
            Box::pin(async move {
                let tries = [
                    CaseAction::Receive,
                    CaseAction::Accept { terms },
                    CaseAction::StartHandling,
                    CaseAction::SubmitForReview,
                ];
                let mut last = String::from("no step left");
                for action in tries {
                    let kind = format!("{:?}", action.kind());
                    match store.act_on_case(&case, action, &clerk).await {
                        Ok(view) => return Ok(format!("{} {kind} → {:?}", view.number, view.state.kind())),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(last)
            })
        })?;
        self.note(format!("clerk at {t} moves a case: {}", said(answer)));
        Ok(())
    }

    fn publish(&mut self) -> Result<(), String> {
        let next = self.catalogue_version + 1;
        let county = self.tree.county().clone();
        let answer = self.ask(&county, move |store| {
            Box::pin(async move {
                store
                    .publish_catalogue(
                        catalogue(next),
                        "operator:441424:admin",
                        "simulation",
                        &format!("v{next}"),
                    )
                    .await
                    .map(|o| format!("v{} {}", o.version, hex::encode(&o.content_hash[..4])))
                    .map_err(|e| e.to_string())
            })
        })?;
        if matches!(answer, Some(Ok(_))) {
            self.catalogue_version = next;
        }
        self.note(format!("county publishes the catalogue: {}", said(answer)));
        Ok(())
    }

    /// A working-day calendar from the county: one to three weekdays of the coming weeks made
    /// holidays and, now and then, a Saturday made a working day, so deadlines and warnings move.
    fn publish_calendar(&mut self) -> Result<(), String> {
        let next = self.calendar_version + 1;
        let today = tongban_domains::calendar::Clock::today(&*self.clock);
        let mut holidays = BTreeSet::new();
        for _ in 0..self.rng.random_range(1..=3) {
            let day = today + chrono::Days::new(self.rng.random_range(0..21));
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                holidays.insert(day);
            }
        }
        let mut adjusted = BTreeSet::new();
        if self.rng.random_bool(0.5) {
            let mut day = today + chrono::Days::new(self.rng.random_range(0..14));
            while day.weekday() != Weekday::Sat {
                day = day.succ_opt().unwrap_or(day);
            }
            adjusted.insert(day);
        }
        let years: Vec<i32> = holidays.iter().chain(&adjusted).map(|d| d.year()).collect();
        let first = years.iter().copied().min().unwrap_or(today.year());
        let last = years.iter().copied().max().unwrap_or(today.year());
        let calendar = WorkingCalendar::new(
            format!("五华县工作日 v{next}"),
            format!("sim.{next}"),
            first,
            last,
            holidays.iter().copied(),
            adjusted.iter().copied(),
        )
        .map_err(|e| format!("a simulated calendar does not validate: {e}"))?;
        let listed = format!(
            "holidays {:?}, working {:?}",
            holidays.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            adjusted.iter().map(|d| d.to_string()).collect::<Vec<_>>()
        );
        let county = self.tree.county().clone();
        let admin = Principal::Operator {
            place: county.clone(),
            name: "admin".into(),
        };
        let answer = self.ask(&county, move |store| {
            Box::pin(async move {
                store
                    .publish_calendar(&calendar, &admin)
                    .await
                    .map(|c| c.calendar.version().to_owned())
                    .map_err(|e| e.to_string())
            })
        })?;
        if matches!(answer, Some(Ok(_))) {
            self.calendar_version = next;
        }
        self.note(format!("county publishes a calendar ({listed}): {}", said(answer)));
        Ok(())
    }

    /// Moves a township's box on its trip and uploads what was scanned.
    fn move_box(&mut self, t: &NodeId) -> Result<(), String> {
        let county = self.tree.county().clone();
        let cut = self.down.contains(t)
            || self.down.contains(&county)
            || self.active.iter().any(|f| match f {
                Fault::Partition(a, b) | Fault::Hold(a, b) => (a == t && *b == county) || (*a == county && b == t),
                _ => false,
            });
        let now = tongban_domains::calendar::Clock::now_ms(&*self.clock);
        let cases = self.cases_of.get(t).cloned().unwrap_or_default();
        // One or two stages at a time, so a run of a few rounds sees boxes come back with the
        // documents registered meanwhile.
        for _ in 0..self.rng.random_range(1..=2) {
            let uploads = self.custody.step(t, &mut self.rng, now, &cases, cut)?;
            for upload in uploads {
                self.upload(upload)?;
            }
        }
        Ok(())
    }

    /// Uploads everything `upload.desk` holds to each of `upload.now`; the device forgets the
    /// scans once a node has taken them.
    fn upload(&mut self, upload: Upload) -> Result<(), String> {
        let Some(desk) = self.custody.desks.get(&upload.desk) else {
            return Err(format!("no desk {}", upload.desk));
        };
        let who = desk.who();
        let scans = desk.outbox.clone();
        let mut taken = false;
        let mut said_by = Vec::new();
        for node in &upload.now {
            let (batch, uploader) = (scans.clone(), who.clone());
            let answer = self.ask(node, move |store| {
                Box::pin(async move {
                    store
                        .record_scans(batch, &uploader)
                        .await
                        .map(|outcomes| {
                            // Only what a replay repeats: how many went in and which were
                            // refused (recorded or duplicate depends on replication's timing).
                            let refused: Vec<String> = outcomes
                                .iter()
                                .filter_map(|(id, r)| match r {
                                    ScanResult::Refused(why) => Some(format!("{id}: {why}")),
                                    _ => None,
                                })
                                .collect();
                            if refused.is_empty() {
                                format!("{} scans taken", outcomes.len())
                            } else {
                                format!("{} scans, refused {refused:?}", outcomes.len())
                            }
                        })
                        .map_err(|e| e.to_string())
                })
            })?;
            taken |= matches!(answer, Some(Ok(_)));
            said_by.push(format!("at {node} {}", said(answer)));
        }
        if taken && let Some(desk) = self.custody.desks.get_mut(&upload.desk) {
            desk.outbox.drain(..scans.len());
        }
        if let Some(node) = upload.echo {
            self.echoes.push((node, upload.desk.clone(), scans));
        }
        self.note(format!("{}: {}", upload.what, said_by.join("; ")));
        Ok(())
    }

    /// After links heal, every device uploads what it still holds to its home node.
    fn upload_pending(&mut self) -> Result<(), String> {
        for (desk, home) in self.custody.pending() {
            self.upload(Upload {
                desk: desk.clone(),
                now: vec![home],
                echo: None,
                what: format!("{desk} uploads what it kept"),
            })?;
        }
        Ok(())
    }

    /// Scans uploaded at one node uploaded again at another once the tree agrees: the second
    /// node holds them by then, so every one must come back a duplicate and author nothing.
    fn echo(&mut self) -> Result<(), String> {
        for (node, desk, scans) in std::mem::take(&mut self.echoes) {
            let Some(who) = self.custody.desks.get(&desk).map(|d| d.who()) else {
                continue;
            };
            let answer = self.ask(&node, move |store| {
                Box::pin(async move {
                    store
                        .record_scans(scans, &who)
                        .await
                        .map(|outcomes| {
                            let duplicates = outcomes.iter().filter(|(_, r)| *r == ScanResult::Duplicate).count();
                            (duplicates, outcomes.len())
                        })
                        .map_err(|e| e.to_string())
                })
            })?;
            if let Some(Ok((duplicates, total))) = answer
                && duplicates != total
            {
                self.not_idempotent.push(format!(
                    "{node}: {} of {total} scans {desk} uploaded again once the tree agreed were taken as new",
                    total - duplicates
                ));
            }
            let answer = answer.map(|r| r.map(|(d, t)| format!("{d} of {t} already there")));
            self.note(format!(
                "{desk} uploads the same scans again at {node}: {}",
                said(answer)
            ));
        }
        Ok(())
    }

    /// Work that needs the tree to agree first: the county's supervision scan and the
    /// townships' default ratings, then a fresh list of the cases each township holds.
    fn agreed_work(&mut self) -> Result<(), String> {
        let county = self.tree.county().clone();
        let scan = self.ask(&county, |store| {
            Box::pin(async move { store.scan_supervision().await.map_err(|e| e.to_string()) })
        })?;
        self.note(format!(
            "county supervision scan: {}",
            said(scan.map(|r| r.map(|n| format!("{n} opened"))))
        ));
        for t in self.tree.of_tier(Tier::Township) {
            let rated = self.ask(&t, |store| {
                Box::pin(async move {
                    store
                        .record_default_ratings(store.now_ms())
                        .await
                        .map(|r| format!("{} rated by default", r.len()))
                        .map_err(|e| e.to_string())
                })
            })?;
            self.note(format!("default ratings at {t}: {}", said(rated)));
            let filter = CaseFilter {
                holder: Some(t.clone()),
                ..CaseFilter::default()
            };
            let held = self
                .ask(&t, move |store| {
                    Box::pin(async move {
                        store
                            .cases(&filter, None, 1000)
                            .await
                            .map(|page| {
                                let mut open: Vec<_> = page
                                    .cases
                                    .into_iter()
                                    .filter(|c| !matches!(c.state.kind(), StateKind::Concluded))
                                    .collect();
                                open.sort_by_key(|c| std::cmp::Reverse(c.number.to_string()));
                                open.into_iter().map(|c| (c.id, c.number)).collect::<Vec<_>>()
                            })
                            .unwrap_or_default()
                    })
                })?
                .unwrap_or_default();
            self.held
                .insert(t.clone(), held.iter().map(|(id, _)| id.clone()).collect());
            self.cases_of.insert(t, held);
        }
        self.echo()
    }

    // --- agreement and reading --------------------------------------------------------

    /// Steps until every invariant holds, or the limit passes: `Some(broken)` then.
    fn converge(&mut self) -> Result<Option<Vec<String>>, String> {
        let started = self.sim.elapsed();
        loop {
            self.steps(200)?;
            let (states, digests) = self.read_all()?;
            let broken = check::check_with(&self.tree.nodes, &states, &digests, self.recorder_must_agree);
            if broken.is_empty() {
                self.note("the tree agrees".into());
                return Ok(None);
            }
            if self.sim.elapsed() - started > CONVERGE_LIMIT {
                self.note(format!("the tree did not agree within {CONVERGE_LIMIT:?}"));
                return Ok(Some(broken));
            }
        }
    }

    /// Reads every node's state, which events are where, and the link checksums at the cursors.
    fn read_all(&mut self) -> Result<(BTreeMap<NodeId, NodeState>, LinkDigests), String> {
        let tree = self.tree.nodes.clone();
        let mut states = BTreeMap::new();
        for id in &tree {
            let all = tree.clone();
            // Where-is is compared between the county and each township on the township's
            // boxes and documents: the county is asked about all of them.
            let objects: Vec<String> = match id.tier() {
                Tier::County => self
                    .tree
                    .of_tier(Tier::Township)
                    .iter()
                    .flat_map(|t| self.custody.objects(t))
                    .collect(),
                Tier::Township => self.custody.objects(id),
                Tier::Village => Vec::new(),
            };
            let state = self
                .ask(id, move |store| Box::pin(check::read_state(store, all, objects)))?
                .ok_or_else(|| format!("{id} is down at a check"))??;
            states.insert(id.clone(), state);
        }
        let want = check::expected(&tree, &states);
        for id in &tree {
            let wanted: Vec<(String, u64)> = want
                .get(id)
                .map(|w| w.iter().filter(|(o, _)| o != id.as_str()).cloned().collect())
                .unwrap_or_default();
            let present = self
                .ask(id, move |store| Box::pin(check::read_presence(store, wanted)))?
                .ok_or_else(|| format!("{id} is down at a check"))??;
            if let Some(s) = states.get_mut(id) {
                s.present = present;
            }
        }
        let mut digests = LinkDigests::new();
        for receiver in &tree {
            let cursors: Vec<(String, u64)> = states
                .get(receiver)
                .map(|s| s.cursors.iter().map(|(p, (_, at))| (p.clone(), *at)).collect())
                .unwrap_or_default();
            for (peer, at) in cursors {
                let Ok(sender) = NodeId::new(peer) else { continue };
                let role = if receiver.parent().as_ref() == Some(&sender) {
                    // The sender sees the receiver as its child.
                    LinkRole::Child
                } else {
                    LinkRole::Parent
                };
                let s = sender.clone();
                let stored = self
                    .ask(receiver, move |store| Box::pin(check::inbound(store, s, at)))?
                    .ok_or_else(|| format!("{receiver} is down at a check"))??;
                let r = receiver.clone();
                let routed = self
                    .ask(&sender, move |store| Box::pin(check::outbound(store, r, role, at)))?
                    .ok_or_else(|| format!("{sender} is down at a check"))??;
                digests.insert((receiver.clone(), sender), (stored, routed));
            }
        }
        Ok((states, digests))
    }
}

fn said<T: std::fmt::Display>(answer: Option<Result<T, String>>) -> String {
    match answer {
        Some(Ok(v)) => format!("ok {v}"),
        Some(Err(e)) => format!("refused: {e}"),
        None => "node down".into(),
    }
}

fn clerk(place: &NodeId) -> Principal {
    Principal::Operator {
        place: place.clone(),
        name: "clerk".into(),
    }
}

fn applicant(n: u32) -> ApplicantSummary {
    ApplicantSummary {
        kind: ApplicantKind::Person,
        name: format!("申请人{n:03}"),
        id_masked: format!("441424********{n:04}"),
        phone: None,
    }
}

/// The catalogue of version `version`: an item every township and village takes, and a
/// county-only item whose promised days change with each version, so every version differs.
pub fn catalogue(version: u64) -> Vec<Item> {
    let base = |code: &str, implementation: &str, name: &str| Item {
        item_code: code.to_owned(),
        implementation_code: implementation.to_owned(),
        name: name.to_owned(),
        item_type: ItemType::Licence,
        category: Category::GovernmentService,
        domain: "自然资源和规划".to_owned(),
        department: "五华县自然资源局".to_owned(),
        delegation: DelegationMode::NotDelegated,
        batch: 0,
        all_townships: false,
        townships: Vec::new(),
        village_intake: false,
        level: ItemLevel::County,
        window: WindowType::Comprehensive,
        statutory_days: 20,
        promised_days: 10,
        immediate: false,
        materials: vec![Material {
            name: "申请表".to_owned(),
            required: true,
            form: MaterialForm::Original,
            pages: 2,
        }],
        originals_to_county: false,
        seal: SealType::County,
    };
    let mut everywhere = base("000201001000", "T-ALL", "农村村民住宅用地审批");
    everywhere.delegation = DelegationMode::Authorised;
    everywhere.batch = 1;
    everywhere.all_townships = true;
    everywhere.village_intake = true;
    everywhere.level = ItemLevel::Township;
    everywhere.seal = SealType::derive(everywhere.delegation, everywhere.category);
    let mut county_only = base("000211008000", "T-COUNTY", "乡村建设规划许可证核发");
    county_only.promised_days = 1 + (version % 15) as u32;
    vec![everywhere, county_only]
}
