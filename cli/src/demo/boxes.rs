//! `tongban demo`'s daily box runs (材料流转), run after the working week of cases.
//!
//! The week's cases the county decides (entrusted 委托 and not-delegated 不下放 items) have paper
//! files: the originals and copies the applicant handed in go up to the county, the result
//! certificate comes back down. Every township has one reusable material box; every working day
//! couriers carry each box from its township to the county in the morning and back in the
//! afternoon. Clerks scan at their desks (uploaded at their own node with their operator
//! certificate); couriers scan on handhelds (uploaded to the county with their courier
//! certificate, whenever the handheld has a signal). Four days are scripted ([`DAYS`]), with the
//! mishaps a real week brings: a box that arrives with its seal broken, a courier whose handheld
//! is offline for a day and syncs the next morning, a document missing when a box is unpacked,
//! and a courier whose van breaks down and arrives the next day.
//!
//! This file owns the couriers' routes, the day's script, the scans each device makes, the check
//! that every tier agrees (every document's where-is at the county, its township and the village
//! its case came from; every township's anomalies at the township and the county), and the box
//! runs' summary. The demo's manual clock is moved through each simulated day on every node, so
//! scans are recorded at the time they would be and waiting-time anomalies are judged on that day.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use tongban_courier::Device;
use tongban_domains::calendar::{ManualClock, shanghai_date};
use tongban_domains::custody::document_id;
use tongban_domains::ids::{NodeId, Tier};
use tongban_domains::pki::Principal;
use tongban_proto::v1::{
    self as pb, AnomalyState, CustodyStep, DocumentKind, cases_client::CasesClient, custody_client::CustodyClient,
    where_is_request::Target,
};
use tongban_testkit::cluster::{Cluster, wait_until};
use tongban_testkit::wuhua;
use tonic::transport::Channel;

use super::week::{day_label, rpc_error};
use crate::display::{cell, china_time, width};

/// Box-run days: the first working day on the demo's clock after the week, and the next ones.
const DAYS: usize = 4;
/// The originals go up over the first three days (a township's cases in turn).
const SENDING_DAYS: usize = 3;

/// The mishaps, by day (0 = the first box-run day).
const BROKEN_SEAL_DAY: usize = 0;
const OFFLINE_DAY: usize = 1;
const MISSING_DAY: usize = 1;
const LATE_DAY: usize = 2;

/// Longest wait for replication; generous, it normally takes milliseconds.
const WAIT: Duration = Duration::from_secs(60);

/// Every desk's operator name (the same clerks as the week's).
const CLERK: &str = "clerk";

const MINUTE: i64 = 60_000;

/// A courier's daily round: the townships whose boxes they carry, in the order they call.
struct Route {
    courier: &'static str,
    /// The handheld's id, also the courier certificate's device label.
    device: &'static str,
    road: &'static str,
    townships: &'static [&'static str],
}

/// Five couriers share the 16 townships, two to four each.
const ROUTES: [Route; 5] = [
    Route {
        courier: "陈师傅",
        device: "pda-01",
        road: "省道S120",
        townships: &["441424100", "441424103", "441424106"],
    },
    Route {
        courier: "黄师傅",
        device: "pda-02",
        road: "省道S238",
        townships: &["441424101", "441424108", "441424109", "441424111"],
    },
    Route {
        courier: "李师傅",
        device: "pda-03",
        road: "国道G205",
        townships: &["441424104", "441424113", "441424117"],
    },
    Route {
        courier: "钟师傅",
        device: "pda-04",
        road: "省道S227",
        townships: &["441424120", "441424118", "441424123"],
    },
    Route {
        courier: "温师傅",
        device: "pda-05",
        road: "县道X012",
        townships: &["441424125", "441424126", "441424127"],
    },
];

/// The paper files an applicant hands in besides the application form: (title, kind, pages).
const PAPERS: [(&str, DocumentKind, u32); 5] = [
    ("身份证复印件", DocumentKind::Copy, 1),
    ("户口簿原件", DocumentKind::Original, 4),
    ("营业执照复印件", DocumentKind::Copy, 1),
    ("授权委托书", DocumentKind::Original, 1),
    ("不动产权证书复印件", DocumentKind::Copy, 3),
];

const EXPLAIN_MISSING: &str = "县中心开箱时清单上的这份材料不在箱内；镇窗口已调取装箱视频核查，正在查找";
const CLOSE_SEAL: &str = "县中心当场开箱核对，清单所列材料齐全无损；封条系途中颠簸脱落，已换新封条";

/// A case the county decides, as `Cases.List` at the county shows it.
struct CaseRef {
    id: String,
    number: String,
    origin: NodeId,
    township: NodeId,
    /// Approved (`Some(true)`) or refused, once decided.
    decided: Option<bool>,
    /// The result certificate, once registered (index into `papers`).
    result: Option<usize>,
}

/// Where the script has put a paper file.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Spot {
    /// On a desk at this node.
    Desk(NodeId),
    /// In the box of this township, on a trip.
    Boxed(NodeId),
    /// Not found when its box was unpacked.
    Lost,
}

/// How a box arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    Normal,
    BrokenSeal,
    Missing,
}

/// One paper file.
struct Paper {
    id: String,
    case: usize,
    kind: DocumentKind,
    title: String,
    /// The box-run day an original goes up (results go down when ready).
    up_day: usize,
    spot: Spot,
}

/// A trip's labels, as every scan of it carries them (the trip label's QR code gives the ends,
/// so a scan names the township concerned wherever it is uploaded first).
#[derive(Clone)]
struct Trip {
    id: String,
    box_id: String,
    origin: NodeId,
    destination: NodeId,
    seal: String,
    manifest: Vec<usize>,
    /// Accepted by the courier (custody moved to them).
    with_courier: bool,
}

impl Trip {
    fn label(&self, scan: &mut pb::Scan) {
        scan.box_id = self.box_id.clone();
        scan.trip_id = self.id.clone();
        scan.origin = self.origin.to_string();
        scan.destination = self.destination.to_string();
    }
}

/// One township's box.
struct MaterialBox {
    id: String,
    /// At the county (between its morning and afternoon trips); else at its township.
    at_county: bool,
    /// The trip it is on (packed, not yet unpacked).
    trip: Option<Trip>,
}

/// A clerk's desk scanner or a courier's handheld, with what it scanned since its last upload.
/// The script's devices never lose power, so their unsent scans need no queue file.
struct Outbox {
    device: Device,
    unsent: Vec<pb::Scan>,
}

impl Outbox {
    fn new(device: Device) -> Outbox {
        Outbox {
            device,
            unsent: Vec::new(),
        }
    }

    /// Makes a scan at `at_ms` by the device's clock; `fill` sets what the step needs.
    fn scan(&mut self, at_ms: i64, step: CustodyStep, place: &str, fill: impl FnOnce(&mut pb::Scan)) {
        let mut scan = pb::Scan {
            step: step as i32,
            scanned_unix_ms: at_ms,
            place: place.to_owned(),
            ..Default::default()
        };
        fill(&mut scan);
        self.unsent.push(self.device.stamp(scan));
    }

    /// How many scans the device has made.
    fn made(&self) -> u64 {
        self.device.next_seq() - 1
    }
}

/// A courier on their round.
struct Courier {
    route: &'static Route,
    principal: Principal,
    channel: Channel,
    handheld: Outbox,
    /// The townships of the route that are part of the tree.
    townships: Vec<NodeId>,
}

/// What one day's runs did, for the day's line.
#[derive(Default)]
struct DayTally {
    trips: usize,
    scanned: u64,
    recorded: u64,
    sent: usize,
    arrived: usize,
    notes: Vec<String>,
}

/// Where the paper files are by the county's where-is, once every tier agrees.
#[derive(Default)]
struct Census {
    villages: usize,
    townships: usize,
    county: usize,
    couriers: usize,
    missing: usize,
    per_township: BTreeMap<String, usize>,
}

/// Every tier's answers, once they agree.
struct Agreement {
    /// Each document's location, as the county (and so every tier concerned) gives it.
    locations: BTreeMap<String, pb::Location>,
    /// The county's anomalies: open and explained, and closed.
    open: Vec<pb::Anomaly>,
    closed: Vec<pb::Anomaly>,
    nodes: usize,
}

/// The box runs on the running tree.
struct BoxRuns<'a> {
    cluster: &'a Cluster,
    county: NodeId,
    clock: Arc<ManualClock>,
    /// A clerk's channel at each node involved (operator certificate of that node).
    channels: BTreeMap<NodeId, Channel>,
    desks: BTreeMap<NodeId, Outbox>,
    couriers: Vec<Courier>,
    /// Townships with a box, in code order.
    townships: Vec<NodeId>,
    boxes: BTreeMap<NodeId, MaterialBox>,
    cases: Vec<CaseRef>,
    papers: Vec<Paper>,
    seals: u32,
    /// Trips packed per origin per day, for the trip ids.
    trip_seq: BTreeMap<(NodeId, NaiveDate), u32>,
    /// The box-run day being worked (0 = the first).
    today: usize,
    /// Who the mishaps happen to (see [`Mishaps::choose`]).
    mishaps: Mishaps,
    /// Scans kept on the offline handheld and uploaded the next day.
    synced_late: BTreeSet<String>,
    /// Every anomaly seen on some evening, with the evening it was first seen.
    seen: BTreeMap<String, (pb::Anomaly, NaiveDate)>,
    /// Anomalies the script causes (keys), for telling them from ones it did not expect.
    expected: BTreeSet<String>,
    /// The days' tallies added up.
    totals: DayTally,
    /// Anomalies expected tonight only (a box overdue that arrives tomorrow).
    expected_tonight: BTreeSet<String>,
    unexpected: Vec<String>,
}

/// The townships and couriers the mishaps happen to: spread over the townships with paper
/// files, so each mishap has papers to show.
struct Mishaps {
    broken_seal: NodeId,
    missing: NodeId,
    offline: usize,
    late: usize,
    /// Examples for the summary, filled in as things happen.
    examples: Vec<Example>,
    offline_trip: Option<String>,
    late_trips: Vec<String>,
}

impl Mishaps {
    fn choose(paper_townships: &[NodeId], couriers: &[Courier]) -> Result<Mishaps> {
        let pick = |i: usize| -> Result<NodeId> {
            paper_townships
                .get(i % paper_townships.len().max(1))
                .cloned()
                .context("none of the week's cases left paper files for the county")
        };
        let courier_of = |t: &NodeId| -> Result<usize> {
            couriers
                .iter()
                .position(|c| c.townships.contains(t))
                .with_context(|| format!("no courier calls at {t}"))
        };
        Ok(Mishaps {
            offline: courier_of(&pick(0)?)?,
            broken_seal: pick(1)?,
            missing: pick(2)?,
            late: courier_of(&pick(3)?)?,
            examples: Vec::new(),
            offline_trip: None,
            late_trips: Vec::new(),
        })
    }
}

/// A document shown in the summary: why, and where it was on an earlier evening, if that
/// tells more than where it is now.
#[derive(Clone)]
struct Example {
    why: String,
    document: String,
    then: Option<(NaiveDate, pb::Location)>,
}

impl Example {
    fn new(why: String, document: String) -> Example {
        Example {
            why,
            document,
            then: None,
        }
    }
}

/// Runs the box runs on `cluster` after the working week, and prints their summary.
pub async fn run(cluster: &Cluster) -> Result<()> {
    let started = Instant::now();
    let mut runs = BoxRuns::open(cluster).await?;
    let days = runs.days().await?;
    let couriers: Vec<String> = runs
        .couriers
        .iter()
        .map(|c| {
            format!(
                "{} ({}, {} townships)",
                c.route.courier,
                c.route.device,
                c.townships.len()
            )
        })
        .collect();
    println!();
    println!(
        "daily box runs (材料流转): each of {} townships' material box to the county in the morning and back in the afternoon",
        runs.townships.len()
    );
    println!(
        "  {} paper files of the {} cases the county decides (委托/不下放), registered at the desk where each case started; couriers {}",
        runs.papers.len(),
        runs.cases.len(),
        couriers.join(", ")
    );
    println!(
        "  (clerks upload desk scans at their node; handhelds upload courier scans to the county; the clock walks each day from 07:30 to 19:00;"
    );
    println!(
        "   docs sent/arrived count both directions, originals up and results down; where the papers are and the anomalies are the county's at 19:00)"
    );
    println!("  {}", day_header());
    for (day, date) in days.iter().enumerate() {
        let tally = runs
            .day(day, *date)
            .await
            .with_context(|| format!("box-run day {} ({date})", day + 1))?;
        let (agreement, census) = runs.evening(*date).await?;
        println!(
            "  {}",
            day_row(&day_label(*date), &tally, &census, agreement.open.len())
        );
        for note in &tally.notes {
            println!("      {note}");
        }
    }
    let last = days.last().copied().context("no box-run days")?;
    runs.print_summary(last).await?;
    println!("  box runs done in {:.1?}", started.elapsed());
    Ok(())
}

impl<'a> BoxRuns<'a> {
    /// Connects the clerks and couriers, reads the county's cases, puts every node on one manual
    /// clock, and plans the paper files.
    async fn open(cluster: &'a Cluster) -> Result<BoxRuns<'a>> {
        let ids = cluster.ids();
        let county = ids
            .iter()
            .find(|id| id.tier() == Tier::County)
            .cloned()
            .context("the tree has no county")?;
        let county_store = &cluster.node(&county).context("the county is not running")?.store;
        // The week left its clock on the stores; box runs carry on from that day.
        let clock = Arc::new(ManualClock::at_ms(county_store.now_ms()));
        for id in &ids {
            let node = cluster.node(id).with_context(|| format!("node {id} is not running"))?;
            node.store.set_clock(clock.clone());
        }
        let mut channels = BTreeMap::new();
        channels.insert(
            county.clone(),
            connect(cluster, &county, &Principal::operator(county.clone(), CLERK)?).await?,
        );

        let mut couriers = Vec::new();
        let mut townships = Vec::new();
        for route in &ROUTES {
            let on_route: Vec<NodeId> = route
                .townships
                .iter()
                .filter_map(|code| NodeId::new(*code).ok())
                .filter(|t| ids.contains(t))
                .collect();
            if on_route.is_empty() {
                continue;
            }
            let principal = Principal::courier(county.clone(), route.device)?;
            let channel = connect(cluster, &county, &principal).await?;
            let handheld = Outbox::new(Device::new(route.device, principal.clone())?);
            townships.extend(on_route.iter().cloned());
            couriers.push(Courier {
                route,
                principal,
                channel,
                handheld,
                townships: on_route,
            });
        }
        townships.sort();

        let cases = county_cases(channels.get(&county).cloned().context("no county channel")?, &county).await?;
        let mut desks = BTreeMap::new();
        let mut nodes: BTreeSet<NodeId> = townships.iter().cloned().collect();
        nodes.insert(county.clone());
        nodes.extend(cases.iter().map(|c| c.origin.clone()));
        for node in &nodes {
            let clerk = Principal::operator(node.clone(), CLERK)?;
            if !channels.contains_key(node) {
                channels.insert(node.clone(), connect(cluster, node, &clerk).await?);
            }
            desks.insert(node.clone(), Outbox::new(Device::new(format!("desk-{node}"), clerk)?));
        }

        let papers = plan_papers(&cases);
        let paper_townships: Vec<NodeId> = papers
            .iter()
            .filter_map(|p| cases.get(p.case).map(|c| c.township.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mishaps = Mishaps::choose(&paper_townships, &couriers)?;
        let boxes = townships
            .iter()
            .map(|t| {
                let b = MaterialBox {
                    id: format!("BOX-{t}"),
                    at_county: false,
                    trip: None,
                };
                (t.clone(), b)
            })
            .collect();
        Ok(BoxRuns {
            cluster,
            county,
            clock,
            channels,
            desks,
            couriers,
            townships,
            boxes,
            cases,
            papers,
            seals: 100_000,
            trip_seq: BTreeMap::new(),
            today: 0,
            mishaps,
            synced_late: BTreeSet::new(),
            seen: BTreeMap::new(),
            expected: BTreeSet::new(),
            expected_tonight: BTreeSet::new(),
            totals: DayTally::default(),
            unexpected: Vec::new(),
        })
    }

    /// The box-run days: the working day the clock stands on (or the next), and the ones after.
    async fn days(&self) -> Result<Vec<NaiveDate>> {
        let store = &self
            .cluster
            .node(&self.county)
            .context("the county is not running")?
            .store;
        let calendar = store.calendar().await?.calendar.clone();
        let today = shanghai_date(store.now_ms());
        let mut day = if calendar.is_working_day(today) {
            today
        } else {
            calendar.add_working_days(today, 1)
        };
        let mut days = vec![day];
        while days.len() < DAYS {
            day = calendar.add_working_days(day, 1);
            days.push(day);
        }
        Ok(days)
    }

    // --- one day ----------------------------------------------------------------------------

    async fn day(&mut self, day: usize, date: NaiveDate) -> Result<DayTally> {
        self.today = day;
        self.expected_tonight.clear();
        let mut tally = DayTally::default();
        let made_before = self.scans_made();
        if day == 0 {
            self.register(date);
            tally.recorded += self.flush(at(date, 7, 45)).await?;
        }
        if day == OFFLINE_DAY + 1 {
            // Back in range at the county depot before the round: the handheld uploads what it
            // kept; the scans take their place in the histories by event time.
            let c = self.mishaps.offline;
            let kept: Vec<String> = self.couriers[c]
                .handheld
                .unsent
                .iter()
                .map(|s| s.scan_id.clone())
                .collect();
            self.synced_late.extend(kept.iter().cloned());
            let courier = &self.couriers[c];
            tally.notes.push(format!(
                "07:50 {} ({})'s handheld is back online at the county and uploads the {} scans it kept yesterday",
                courier.route.courier,
                courier.route.device,
                kept.len()
            ));
        }
        tally.recorded += self.flush(at(date, 7, 50)).await?;
        if day == LATE_DAY + 1 {
            self.late_arrival(date, &mut tally)?;
            tally.recorded += self.flush(at(date, 9, 50)).await?;
        }
        self.morning(day, date, &mut tally)?;
        tally.recorded += self.flush(at(date, 11, 5)).await?;
        self.arrive_at_county(day, date, &mut tally)?;
        tally.recorded += self.flush(at(date, 12, 50)).await?;
        self.afternoon(date, &mut tally)?;
        tally.recorded += self.flush(at(date, 15, 35)).await?;
        self.deliver(date, &mut tally)?;
        tally.recorded += self.flush(at(date, 18, 15)).await?;
        tally.scanned = self.scans_made() - made_before;
        self.totals.trips += tally.trips;
        self.totals.scanned += tally.scanned;
        self.totals.recorded += tally.recorded;
        self.totals.sent += tally.sent;
        self.totals.arrived += tally.arrived;
        if day == OFFLINE_DAY {
            let courier = &self.couriers[self.mishaps.offline];
            tally.notes.push(format!(
                "{} ({})'s handheld has no signal all day: {} scans stay on it; the clerks' scans at both ends still arrive",
                courier.route.courier,
                courier.route.device,
                courier.handheld.unsent.len()
            ));
        }
        Ok(tally)
    }

    fn scans_made(&self) -> u64 {
        self.desks.values().map(Outbox::made).sum::<u64>()
            + self.couriers.iter().map(|c| c.handheld.made()).sum::<u64>()
    }

    /// The first morning: every township registers its box, every desk where a case started
    /// registers that case's originals and copies (their labels are printed at intake).
    fn register(&mut self, date: NaiveDate) {
        for t in &self.townships {
            let (Some(desk), Some(b)) = (self.desks.get_mut(t), self.boxes.get(t)) else {
                continue;
            };
            let name = township_name(t);
            let label = format!("五华县材料流转箱 {name} {}号", &t.as_str()[6..]);
            desk.scan(at(date, 7, 30), CustodyStep::RegisterBox, t.as_str(), |s| {
                s.box_id = b.id.clone();
                s.box_label = label;
            });
        }
        for paper in &self.papers {
            let Some(case) = self.cases.get(paper.case) else {
                continue;
            };
            let Some(desk) = self.desks.get_mut(&case.origin) else {
                continue;
            };
            let document = document_info(paper, case);
            desk.scan(
                at(date, 7, 35),
                CustodyStep::RegisterDocument,
                case.origin.as_str(),
                |s| {
                    s.document = Some(document);
                },
            );
        }
    }

    /// 08:00 every township whose box is home packs the originals due and seals the box;
    /// from 08:30 the couriers call, take the boxes and drive to the county.
    fn morning(&mut self, day: usize, date: NaiveDate, tally: &mut DayTally) -> Result<()> {
        for t in self.townships.clone() {
            let home = self.boxes.get(&t).is_some_and(|b| !b.at_county && b.trip.is_none());
            if !home {
                continue;
            }
            let manifest: Vec<usize> = (0..self.papers.len())
                .filter(|&i| {
                    let p = &self.papers[i];
                    let case = &self.cases[p.case];
                    case.township == t
                        && p.kind != DocumentKind::ResultCertificate
                        && p.up_day <= day
                        && p.spot == Spot::Desk(case.origin.clone())
                })
                .collect();
            let county = self.county.clone();
            self.pack(&t, (&t, &county), manifest, (at(date, 8, 0), at(date, 8, 5)), tally)?;
        }
        for c in 0..self.couriers.len() {
            let late = day == LATE_DAY && c == self.mishaps.late;
            let townships = self.couriers[c].townships.clone();
            let mut picked = Vec::new();
            for t in &townships {
                let ready = self
                    .boxes
                    .get(t)
                    .and_then(|b| b.trip.as_ref())
                    .is_some_and(|trip| trip.origin == *t && !trip.with_courier);
                if !ready {
                    continue;
                }
                let when = at(date, 8, 30 + 40 * picked.len() as i64);
                self.hand_to_courier(t, t, c, when)?;
                picked.push(t.clone());
            }
            let road = self.couriers[c].route.road;
            for (i, t) in picked.iter().enumerate() {
                let place = if late {
                    format!("{road}{}至县城途中，车辆故障待修", township_name(t))
                } else {
                    format!("{road}{}至县城", township_name(t))
                };
                self.courier_scan(c, t, at(date, 11, i as i64), CustodyStep::EnRoute, &place, |_| {})?;
            }
            if late && !picked.is_empty() {
                let courier = &self.couriers[c];
                tally.notes.push(format!(
                    "{} ({})'s van breaks down on {} with the boxes of {}: still with the courier when the day is judged",
                    courier.route.courier,
                    courier.route.device,
                    road,
                    picked.iter().map(township_name).collect::<Vec<_>>().join("、")
                ));
                for t in &picked {
                    if let Some(trip) = self.boxes.get(t).and_then(|b| b.trip.as_ref()) {
                        self.expected_tonight
                            .insert(format!("overdue_in_transit/trip/{}", trip.id));
                        self.mishaps.late_trips.push(trip.id.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// From 12:00 each courier hands the morning's boxes over at the county, where the clerk
    /// checks each seal and unpacks. The late courier is still on the road.
    fn arrive_at_county(&mut self, day: usize, date: NaiveDate, tally: &mut DayTally) -> Result<()> {
        for c in 0..self.couriers.len() {
            if day == LATE_DAY && c == self.mishaps.late {
                continue;
            }
            let arriving = self.on_road(c, true);
            for (i, t) in arriving.iter().enumerate() {
                let i = i as i64;
                let mishap = if day == BROKEN_SEAL_DAY && *t == self.mishaps.broken_seal {
                    Arrival::BrokenSeal
                } else if day == MISSING_DAY && *t == self.mishaps.missing {
                    Arrival::Missing
                } else {
                    Arrival::Normal
                };
                self.arrive(c, t, (at(date, 12, 2 * i), at(date, 12, 30 + i)), mishap, tally)?;
            }
        }
        Ok(())
    }

    /// The morning after the breakdown: the van is repaired and the boxes reach the county.
    fn late_arrival(&mut self, date: NaiveDate, tally: &mut DayTally) -> Result<()> {
        let c = self.mishaps.late;
        let arriving = self.on_road(c, true);
        let road = self.couriers[c].route.road;
        for (i, t) in arriving.iter().enumerate() {
            let place = format!("{road}，车辆修复后继续前往县城");
            self.courier_scan(c, t, at(date, 8, 30 + i as i64), CustodyStep::EnRoute, &place, |_| {})?;
        }
        for (i, t) in arriving.iter().enumerate() {
            let i = i as i64;
            self.arrive(
                c,
                t,
                (at(date, 9, 30 + 2 * i), at(date, 9, 40 + i)),
                Arrival::Normal,
                tally,
            )?;
        }
        if !arriving.is_empty() {
            let courier = &self.couriers[c];
            tally.notes.push(format!(
                "09:30 {} ({}) reaches the county with yesterday's boxes of {}; those townships send nothing up today",
                courier.route.courier,
                courier.route.device,
                arriving.iter().map(township_name).collect::<Vec<_>>().join("、")
            ));
        }
        Ok(())
    }

    /// 13:30 the county registers the result certificates of decided cases whose papers are in;
    /// from 14:00 it packs every box at the county with its township's results, and the couriers
    /// take them back from 15:00.
    fn afternoon(&mut self, date: NaiveDate, tally: &mut DayTally) -> Result<()> {
        let county = self.county.clone();
        for ci in 0..self.cases.len() {
            let case = &self.cases[ci];
            let papers_in = self
                .papers
                .iter()
                .any(|p| p.case == ci && p.spot == Spot::Desk(county.clone()));
            let Some(approved) = case.decided else { continue };
            if case.result.is_some() || !papers_in {
                continue;
            }
            // The result certificate is the case's next paper, numbered as the node assigns.
            let registered = self.papers.iter().filter(|p| p.case == ci).count() as u32;
            let paper = Paper {
                id: document_id(&case.number, registered + 1),
                case: ci,
                kind: DocumentKind::ResultCertificate,
                title: if approved {
                    "准予许可决定书"
                } else {
                    "不予许可决定书"
                }
                .to_owned(),
                up_day: 0,
                spot: Spot::Desk(county.clone()),
            };
            let document = document_info(&paper, case);
            self.desk(&county)?
                .scan(at(date, 13, 30), CustodyStep::RegisterDocument, county.as_str(), |s| {
                    s.document = Some(document);
                });
            self.papers.push(paper);
            self.cases[ci].result = Some(self.papers.len() - 1);
        }
        let at_county: Vec<NodeId> = self
            .townships
            .iter()
            .filter(|t| self.boxes.get(*t).is_some_and(|b| b.at_county && b.trip.is_none()))
            .cloned()
            .collect();
        for (g, t) in at_county.iter().enumerate() {
            let g = g as i64;
            let manifest: Vec<usize> = (0..self.papers.len())
                .filter(|&i| {
                    let p = &self.papers[i];
                    p.kind == DocumentKind::ResultCertificate
                        && p.spot == Spot::Desk(county.clone())
                        && self.cases[p.case].township == *t
                })
                .collect();
            self.pack(
                t,
                (&county, t),
                manifest,
                (at(date, 14, g), at(date, 14, 20 + g)),
                tally,
            )?;
        }
        for c in 0..self.couriers.len() {
            let townships = self.couriers[c].townships.clone();
            let mut picked = Vec::new();
            for t in &townships {
                let ready = self
                    .boxes
                    .get(t)
                    .and_then(|b| b.trip.as_ref())
                    .is_some_and(|trip| trip.origin == county && !trip.with_courier);
                if ready {
                    self.hand_to_courier(t, &county, c, at(date, 15, 2 * picked.len() as i64))?;
                    picked.push(t.clone());
                }
            }
            let road = self.couriers[c].route.road;
            for (i, t) in picked.iter().enumerate() {
                let place = format!("{road}县城至{}", township_name(t));
                self.courier_scan(c, t, at(date, 15, 30 + i as i64), CustodyStep::EnRoute, &place, |_| {})?;
            }
        }
        Ok(())
    }

    /// From 16:00 each courier calls at their townships in turn; the clerk there accepts the box
    /// and unpacks the results.
    fn deliver(&mut self, date: NaiveDate, tally: &mut DayTally) -> Result<()> {
        for c in 0..self.couriers.len() {
            for (i, t) in self.on_road(c, false).iter().enumerate() {
                let start = 40 * i as i64;
                self.arrive(
                    c,
                    t,
                    (at(date, 16, start), at(date, 16, start + 10)),
                    Arrival::Normal,
                    tally,
                )?;
            }
        }
        Ok(())
    }

    // --- the steps of a trip ----------------------------------------------------------------

    /// Packs `township`'s box at `origin` for `destination` with `manifest` at `pack_ms` and seals
    /// it at `seal_ms`.
    fn pack(
        &mut self,
        township: &NodeId,
        (origin, destination): (&NodeId, &NodeId),
        manifest: Vec<usize>,
        (pack_ms, seal_ms): (i64, i64),
        tally: &mut DayTally,
    ) -> Result<()> {
        let date = shanghai_date(pack_ms);
        let seq = self.trip_seq.entry((origin.clone(), date)).or_insert(0);
        *seq += 1;
        self.seals += 1;
        let trip = Trip {
            id: format!("{origin}-{}-{seq}", date.format("%Y%m%d")),
            box_id: self.boxes.get(township).map(|b| b.id.clone()).context("no box")?,
            origin: origin.clone(),
            destination: destination.clone(),
            seal: format!("WH{:07}", self.seals),
            manifest,
            with_courier: false,
        };
        let documents: Vec<String> = trip.manifest.iter().map(|&i| self.papers[i].id.clone()).collect();
        let desk = self.desk(origin)?;
        desk.scan(pack_ms, CustodyStep::Pack, origin.as_str(), |s| {
            trip.label(s);
            s.document_ids = documents;
        });
        desk.scan(seal_ms, CustodyStep::Seal, origin.as_str(), |s| {
            trip.label(s);
            s.seal_number = trip.seal.clone();
        });
        for &i in &trip.manifest {
            self.papers[i].spot = Spot::Boxed(township.clone());
        }
        tally.trips += 1;
        tally.sent += trip.manifest.len();
        if let Some(b) = self.boxes.get_mut(township) {
            b.trip = Some(trip);
        }
        Ok(())
    }

    /// The clerk at `at_node` releases `township`'s box to courier `c`, who accepts it a minute
    /// later (custody moves on the acceptance).
    fn hand_to_courier(&mut self, township: &NodeId, at_node: &NodeId, c: usize, when: i64) -> Result<()> {
        let courier = self.couriers[c].principal.to_string();
        let trip = self.trip_of(township)?;
        self.desk(at_node)?
            .scan(when, CustodyStep::ReleaseToCourier, at_node.as_str(), |s| {
                trip.label(s);
                s.counterparty = courier;
            });
        self.courier_scan(
            c,
            township,
            when + MINUTE,
            CustodyStep::CourierAccept,
            at_node.as_str(),
            |_| {},
        )?;
        if let Some(trip) = self.boxes.get_mut(township).and_then(|b| b.trip.as_mut()) {
            trip.with_courier = true;
        }
        Ok(())
    }

    /// Courier `c` releases `township`'s box at its destination at `release_ms`; the clerk there
    /// accepts it a minute later, reading the seal, and unpacks it at `unpack_ms`.
    fn arrive(
        &mut self,
        c: usize,
        township: &NodeId,
        (release_ms, unpack_ms): (i64, i64),
        mishap: Arrival,
        tally: &mut DayTally,
    ) -> Result<()> {
        let trip = self.trip_of(township)?;
        let here = trip.destination.clone();
        let clerk = Principal::operator(here.clone(), CLERK)?.to_string();
        self.courier_scan(
            c,
            township,
            release_ms,
            CustodyStep::ReleaseAtDestination,
            here.as_str(),
            |s| s.counterparty = clerk,
        )?;
        let intact = mishap != Arrival::BrokenSeal;
        let mut found = trip.manifest.clone();
        let lost = match mishap {
            Arrival::Missing => found.pop(),
            _ => None,
        };
        let found_ids: Vec<String> = found.iter().map(|&i| self.papers[i].id.clone()).collect();
        let desk = self.desk(&here)?;
        desk.scan(
            release_ms + MINUTE,
            CustodyStep::DestinationAccept,
            here.as_str(),
            |s| {
                trip.label(s);
                s.seal_number = trip.seal.clone();
                s.seal_intact = intact;
            },
        );
        desk.scan(unpack_ms, CustodyStep::Unpack, here.as_str(), |s| {
            trip.label(s);
            s.document_ids = found_ids;
        });
        for &i in &found {
            self.papers[i].spot = Spot::Desk(here.clone());
        }
        tally.arrived += found.len();
        let name = township_name(township);
        match mishap {
            Arrival::BrokenSeal => {
                self.expected.insert(format!("seal_broken/trip/{}", trip.id));
                tally.notes.push(format!(
                    "{} {name}'s box (trip {}) reaches the county with seal {} broken; the clerk records it and unpacks",
                    china_time::short(release_ms + MINUTE),
                    trip.id,
                    trip.seal
                ));
                if let Some(&first) = trip.manifest.first() {
                    let why = format!("arrived in the box with the broken seal ({name})");
                    self.mishaps
                        .examples
                        .push(Example::new(why, self.papers[first].id.clone()));
                }
            }
            Arrival::Missing => {
                if let Some(i) = lost {
                    self.papers[i].spot = Spot::Lost;
                    let id = self.papers[i].id.clone();
                    self.expected.insert(format!("manifest_shortage/trip/{}/{id}", trip.id));
                    tally.notes.push(format!(
                        "{} {name}'s box (trip {}) is unpacked at the county: {} of the {} documents packed is not in it ({id})",
                        china_time::short(unpack_ms),
                        trip.id,
                        trip.manifest.len() - found.len(),
                        trip.manifest.len()
                    ));
                    self.mishaps
                        .examples
                        .push(Example::new("missing at unpacking".to_owned(), id));
                } else {
                    tally.notes.push(format!(
                        "{name}'s box came with nothing in it, so nothing could go missing from it"
                    ));
                }
            }
            Arrival::Normal => {}
        }
        let offline = self.today == OFFLINE_DAY && c == self.mishaps.offline && here == self.county;
        if offline && self.mishaps.offline_trip.is_none() && !trip.manifest.is_empty() {
            self.mishaps.offline_trip = Some(trip.id.clone());
            if let Some(&first) = trip.manifest.first() {
                let why = format!("carried by the offline courier ({name})");
                self.mishaps
                    .examples
                    .push(Example::new(why, self.papers[first].id.clone()));
            }
        }
        if let Some(b) = self.boxes.get_mut(township) {
            b.trip = None;
            b.at_county = here == self.county;
        }
        Ok(())
    }

    /// A scan on courier `c`'s handheld about `township`'s box.
    fn courier_scan(
        &mut self,
        c: usize,
        township: &NodeId,
        when: i64,
        step: CustodyStep,
        place: &str,
        fill: impl FnOnce(&mut pb::Scan),
    ) -> Result<()> {
        let trip = self.trip_of(township)?;
        self.couriers[c].handheld.scan(when, step, place, |s| {
            trip.label(s);
            fill(s);
        });
        Ok(())
    }

    /// The townships whose boxes courier `c` holds, on the way to the county (`up`) or back.
    fn on_road(&self, c: usize, up: bool) -> Vec<NodeId> {
        self.couriers[c]
            .townships
            .iter()
            .filter(|t| {
                self.boxes
                    .get(*t)
                    .and_then(|b| b.trip.as_ref())
                    .is_some_and(|trip| trip.with_courier && (trip.destination == self.county) == up)
            })
            .cloned()
            .collect()
    }

    fn trip_of(&self, township: &NodeId) -> Result<Trip> {
        self.boxes
            .get(township)
            .and_then(|b| b.trip.clone())
            .with_context(|| format!("{township}'s box is on no trip"))
    }

    fn desk(&mut self, node: &NodeId) -> Result<&mut Outbox> {
        self.desks
            .get_mut(node)
            .with_context(|| format!("no clerk's desk at {node}"))
    }

    // --- uploading --------------------------------------------------------------------------

    /// Moves every node's clock to `now_ms` and uploads what the desks scanned (each at its own
    /// node) and what the online handhelds scanned (at the county). Returns the scans recorded.
    async fn flush(&mut self, now_ms: i64) -> Result<u64> {
        self.clock.set_now_ms(now_ms);
        let mut recorded = 0;
        let mut uploads: Vec<(NodeId, Channel, Vec<pb::Scan>, String)> = Vec::new();
        for (node, desk) in self.desks.iter_mut() {
            if desk.unsent.is_empty() {
                continue;
            }
            let channel = self
                .channels
                .get(node)
                .cloned()
                .with_context(|| format!("no clerk is connected to {node}"))?;
            uploads.push((
                node.clone(),
                channel,
                std::mem::take(&mut desk.unsent),
                desk.device.who(),
            ));
        }
        let offline_today = (self.today == OFFLINE_DAY).then_some(self.mishaps.offline);
        for (c, courier) in self.couriers.iter_mut().enumerate() {
            if courier.handheld.unsent.is_empty() || offline_today == Some(c) {
                continue;
            }
            uploads.push((
                self.county.clone(),
                courier.channel.clone(),
                std::mem::take(&mut courier.handheld.unsent),
                courier.principal.to_string(),
            ));
        }
        for (node, channel, scans, by) in uploads {
            let count = scans.len();
            let reply = CustodyClient::new(channel)
                .upload_scans(pb::UploadScansRequest { scans })
                .await
                .map_err(|s| rpc_error(&s, &node))
                .with_context(|| format!("uploading {count} scans at {node} as {by}"))?
                .into_inner();
            if reply.refused > 0 || reply.duplicates > 0 {
                let refused: Vec<String> = reply
                    .outcomes
                    .iter()
                    .filter(|o| o.result != pb::scan_outcome::Result::Recorded as i32)
                    .map(|o| format!("{}: {}", o.scan_id, o.message))
                    .collect();
                bail!(
                    "{node} did not record {} of {count} scans uploaded by {by}: {}",
                    refused.len(),
                    refused.join("; ")
                );
            }
            recorded += u64::from(reply.recorded);
        }
        Ok(recorded)
    }
}

impl BoxRuns<'_> {
    // --- the evening ------------------------------------------------------------------------

    /// 19:00: the day is judged. Waits until every tier agrees, has the township concerned
    /// explain the missing document and close the broken seal, and checks the engine's answers
    /// against what the script did.
    async fn evening(&mut self, date: NaiveDate) -> Result<(Agreement, Census)> {
        self.clock.set_now_ms(at(date, 19, 0));
        let mut agreement = self.wait_for_agreement().await?;
        let mut noted = false;
        for a in agreement.open.clone() {
            if a.state != AnomalyState::Open as i32 {
                continue;
            }
            let (to, text) = match a.kind.as_str() {
                "manifest_shortage" => (AnomalyState::Explained, EXPLAIN_MISSING),
                "seal_broken" => (AnomalyState::Closed, CLOSE_SEAL),
                _ => continue,
            };
            self.note(&a, to, text).await?;
            noted = true;
        }
        if noted {
            agreement = self.wait_for_agreement().await?;
        }
        self.judge_anomalies(&agreement, date);
        if self.today == LATE_DAY {
            // The late van's papers as the tiers saw them tonight: with the courier, on the road.
            let first = self
                .boxes
                .values()
                .filter_map(|b| b.trip.as_ref())
                .filter(|t| self.mishaps.late_trips.contains(&t.id))
                .find_map(|t| t.manifest.first())
                .map(|&i| self.papers[i].id.clone());
            if let Some(document) = first {
                let then = agreement.locations.get(&document).map(|l| (date, l.clone()));
                let why = "in the late van".to_owned();
                self.mishaps.examples.push(Example { why, document, then });
            }
        }
        self.check_locations(&agreement)?;
        let census = Census::of(&agreement);
        Ok((agreement, census))
    }

    /// Explains or closes `anomaly` at its township, with that township's clerk.
    async fn note(&self, anomaly: &pb::Anomaly, to: AnomalyState, text: &str) -> Result<()> {
        let township = NodeId::new(anomaly.township.clone())
            .with_context(|| format!("anomaly {} names township {:?}", anomaly.anomaly_key, anomaly.township))?;
        let request = pb::NoteAnomalyRequest {
            anomaly_key: anomaly.anomaly_key.clone(),
            to_state: to as i32,
            text: text.to_owned(),
        };
        CustodyClient::new(self.channel(&township)?)
            .note_anomaly(request)
            .await
            .map_err(|s| rpc_error(&s, &township))
            .with_context(|| format!("noting anomaly {} at {township}", anomaly.anomaly_key))?;
        Ok(())
    }

    /// Remembers the anomalies listed tonight, and any the script did not cause or caused and
    /// does not see.
    fn judge_anomalies(&mut self, agreement: &Agreement, date: NaiveDate) {
        let listed: BTreeSet<&str> = agreement
            .open
            .iter()
            .chain(&agreement.closed)
            .map(|a| a.anomaly_key.as_str())
            .collect();
        for a in agreement.open.iter().chain(&agreement.closed) {
            self.seen
                .entry(a.anomaly_key.clone())
                .or_insert_with(|| (a.clone(), date));
            if !self.expected.contains(&a.anomaly_key) && !self.expected_tonight.contains(&a.anomaly_key) {
                let line = format!(
                    "{} listed at the county on {} but not caused by the script: {} ({})",
                    a.anomaly_key,
                    day_label(date),
                    a.detail,
                    a.township
                );
                if !self.unexpected.iter().any(|u| u.starts_with(&a.anomaly_key)) {
                    self.unexpected.push(line);
                }
            }
        }
        for key in self.expected.iter().chain(&self.expected_tonight) {
            if !listed.contains(key.as_str()) {
                self.unexpected.push(format!(
                    "{key} caused by the script on or before {} is not listed at the county",
                    day_label(date)
                ));
            }
        }
    }

    /// The county's where-is of every document against where the script put it.
    fn check_locations(&self, agreement: &Agreement) -> Result<()> {
        for paper in &self.papers {
            let location = agreement
                .locations
                .get(&paper.id)
                .with_context(|| format!("the county gives no location for {}", paper.id))?;
            let (ok, expected) = match &paper.spot {
                Spot::Desk(node) => (
                    location.custodian == format!("node:{node}") && !location.place.starts_with("missing"),
                    format!("on a desk at {node}"),
                ),
                Spot::Lost => (location.place.starts_with("missing"), "missing".to_owned()),
                Spot::Boxed(t) => {
                    let trip = self.trip_of(t)?;
                    let holder = if trip.with_courier {
                        self.couriers
                            .iter()
                            .find(|c| c.townships.contains(t))
                            .map(|c| c.principal.to_string())
                            .unwrap_or_default()
                    } else {
                        format!("node:{}", trip.origin)
                    };
                    (
                        location.custodian == holder && location.trip_id == trip.id,
                        format!("in box {} on trip {}, held by {holder}", trip.box_id, trip.id),
                    )
                }
            };
            if !ok {
                bail!(
                    "the county's WhereIs puts {} at {}; the script put it {expected}",
                    paper.id,
                    describe(location)
                );
            }
        }
        Ok(())
    }

    /// Waits until every tier gives the same answers ([`BoxRuns::compare_tiers`]).
    async fn wait_for_agreement(&self) -> Result<Agreement> {
        let last = Mutex::new(None);
        let last_seen = &last;
        let agreed = wait_until(
            WAIT,
            "every tier to agree on every paper file and anomaly",
            || async move {
                let outcome = self.compare_tiers().await;
                let done = matches!(outcome, Ok(Ok(_)));
                if let Ok(mut last) = last_seen.lock() {
                    *last = Some(outcome);
                }
                done
            },
        )
        .await;
        match (agreed, last.into_inner().ok().flatten()) {
            (Ok(()), Some(Ok(Ok(agreement)))) => Ok(agreement),
            (_, Some(Ok(Err(difference)))) => bail!("the tiers do not agree: {difference}"),
            (_, Some(Err(e))) => Err(e.context("comparing the tiers")),
            (Err(e), _) => Err(e.into()),
            (Ok(()), _) => bail!("the tiers were never compared"),
        }
    }

    /// One comparison: every document's location (WhereIs by case) at the county, its township
    /// and the village its case started at; every box's at the county and its township; every
    /// township's anomalies (ListAnomalies there) against the county's for that township.
    async fn compare_tiers(&self) -> Result<Result<Agreement, String>> {
        let mut nodes = BTreeSet::new();
        let mut locations = BTreeMap::new();
        for (ci, case) in self.cases.iter().enumerate() {
            let expected: BTreeSet<&str> = self
                .papers
                .iter()
                .filter(|p| p.case == ci)
                .map(|p| p.id.as_str())
                .collect();
            if expected.is_empty() {
                continue;
            }
            let mut tiers = vec![self.county.clone(), case.township.clone()];
            if !tiers.contains(&case.origin) {
                tiers.push(case.origin.clone());
            }
            let mut at_county: Option<Vec<pb::Location>> = None;
            for node in &tiers {
                let found = match self.where_is(node, Target::CaseId(case.id.clone())).await? {
                    Ok(found) => found,
                    Err(not_yet) => return Ok(Err(not_yet)),
                };
                let ids: BTreeSet<&str> = found.iter().map(|l| l.object_id.as_str()).collect();
                if ids != expected {
                    return Ok(Err(format!(
                        "{node} knows {} of the {} paper files of case {}",
                        ids.intersection(&expected).count(),
                        expected.len(),
                        case.number
                    )));
                }
                nodes.insert(node.clone());
                match &at_county {
                    None => at_county = Some(found),
                    Some(county) => {
                        if let Some((here, there)) = found.iter().zip(county).find(|(a, b)| a != b) {
                            return Ok(Err(format!(
                                "WhereIs {}: {node} says {}; the county says {}",
                                here.object_id,
                                describe(here),
                                describe(there)
                            )));
                        }
                    }
                }
            }
            locations.extend(at_county.into_iter().flatten().map(|l| (l.object_id.clone(), l)));
        }
        for (t, b) in &self.boxes {
            let mut answers = Vec::new();
            for node in [&self.county, t] {
                match self.where_is(node, Target::BoxId(b.id.clone())).await? {
                    Ok(found) => answers.push(found),
                    Err(not_yet) => return Ok(Err(not_yet)),
                }
            }
            if answers[0] != answers[1] {
                let say = |found: &[pb::Location]| found.first().map(describe).unwrap_or_default();
                return Ok(Err(format!(
                    "WhereIs {}: {t} says {}; the county says {}",
                    b.id,
                    say(&answers[1]),
                    say(&answers[0])
                )));
            }
        }
        let open = self.anomalies(&self.county, AnomalyState::Unspecified).await?;
        let closed = self.anomalies(&self.county, AnomalyState::Closed).await?;
        for t in &self.townships {
            for (state, county_list) in [("open", &open), ("closed", &closed)] {
                let wanted = if state == "open" {
                    AnomalyState::Unspecified
                } else {
                    AnomalyState::Closed
                };
                let here = self.anomalies(t, wanted).await?;
                // Device sequence gaps are judged at the county only (the one node holding every
                // scan of a shared handheld or desk), so a township does not list them.
                let there: Vec<&pb::Anomaly> = county_list
                    .iter()
                    .filter(|a| t.contains(&a.township) && a.kind != "device_sequence_gap")
                    .collect();
                let here_refs: Vec<&pb::Anomaly> = here.iter().collect();
                if here_refs != there {
                    return Ok(Err(anomaly_difference(t, state, &here_refs, &there)));
                }
            }
        }
        Ok(Ok(Agreement {
            locations,
            open,
            closed,
            nodes: nodes.len(),
        }))
    }

    /// `WhereIs` at `node`: the locations, or why it cannot answer yet (not replicated there).
    async fn where_is(&self, node: &NodeId, target: Target) -> Result<Result<Vec<pb::Location>, String>> {
        let what = format!("{target:?}");
        let reply = CustodyClient::new(self.channel(node)?)
            .where_is(pb::WhereIsRequest { target: Some(target) })
            .await;
        match reply {
            Ok(reply) => Ok(Ok(reply
                .into_inner()
                .objects
                .into_iter()
                .filter_map(|o| o.location)
                .collect())),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Ok(Err(format!("{node} does not know {what} yet: {}", status.message())))
            }
            Err(status) => Err(rpc_error(&status, node)).with_context(|| format!("WhereIs {what} at {node}")),
        }
    }

    /// `ListAnomalies` at `node`: open and explained ones (`Unspecified`), or closed ones.
    async fn anomalies(&self, node: &NodeId, state: AnomalyState) -> Result<Vec<pb::Anomaly>> {
        let request = pb::ListAnomaliesRequest {
            state: state as i32,
            ..Default::default()
        };
        Ok(CustodyClient::new(self.channel(node)?)
            .list_anomalies(request)
            .await
            .map_err(|s| rpc_error(&s, node))
            .with_context(|| format!("listing anomalies at {node}"))?
            .into_inner()
            .anomalies)
    }

    /// The full `WhereIs` answer (location and custody chain) for one document at the county.
    async fn whereabouts(&self, document: &str) -> Result<pb::ObjectWhereabouts> {
        let request = pb::WhereIsRequest {
            target: Some(Target::DocumentId(document.to_owned())),
        };
        CustodyClient::new(self.channel(&self.county)?)
            .where_is(request)
            .await
            .map_err(|s| rpc_error(&s, &self.county))
            .with_context(|| format!("WhereIs {document} at the county"))?
            .into_inner()
            .objects
            .into_iter()
            .next()
            .with_context(|| format!("the county's WhereIs {document} answered nothing"))
    }

    fn channel(&self, node: &NodeId) -> Result<Channel> {
        self.channels
            .get(node)
            .cloned()
            .with_context(|| format!("no clerk is connected to {node}"))
    }

    // --- the summary ------------------------------------------------------------------------

    async fn print_summary(&mut self, last: NaiveDate) -> Result<()> {
        // One more look, to print exactly what the tiers agree on now.
        let agreement = self.wait_for_agreement().await?;
        let census = Census::of(&agreement);
        println!();
        println!(
            "summary of the box runs — {} paper files of {} cases, as of {} 19:00",
            self.papers.len(),
            self.cases.len(),
            day_label(last)
        );
        let t = &self.totals;
        println!(
            "  box runs: {} trips in {} days, {} scans made and {} recorded, {} documents packed and {} unpacked at the other end (both directions)",
            t.trips,
            self.today + 1,
            t.scanned,
            t.recorded,
            t.sent,
            t.arrived
        );
        println!("  where every paper file is now (WhereIs at the county):");
        let per_township: Vec<String> = census
            .per_township
            .iter()
            .map(|(t, n)| format!("{} {n}", wuhua::township(t).map(|w| w.name).unwrap_or(t)))
            .collect();
        let rows = [
            ("at the county 县中心".to_owned(), census.county),
            (format!("at townships ({})", per_township.join("、")), census.townships),
            ("at village service points".to_owned(), census.villages),
            ("in transit with couriers".to_owned(), census.couriers),
            ("missing".to_owned(), census.missing),
        ];
        for (label, n) in rows {
            println!("    {}{n:>5}", cell(&label, 64));
        }

        println!("  where-is, examples (WhereIs at the county; every tier gives the same):");
        let mut examples = self.mishaps.examples.clone();
        if let Some(result) = self.papers.iter().find(|p| {
            p.kind == DocumentKind::ResultCertificate && matches!(&p.spot, Spot::Desk(n) if n.tier() == Tier::Township)
        }) {
            let why = "a result certificate back at its township".to_owned();
            examples.push(Example::new(why, result.id.clone()));
        }
        for example in &examples {
            let Some(location) = agreement.locations.get(&example.document) else {
                continue;
            };
            let title = self
                .papers
                .iter()
                .find(|p| p.id == example.document)
                .map(|p| p.title.as_str())
                .unwrap_or("");
            println!("    {} {title} — {}", example.document, example.why);
            if let Some((date, then)) = &example.then {
                println!("      {} 19:00: {}", day_label(*date), describe(then));
            }
            println!("      now: {}", describe(location));
        }

        let chained = examples
            .iter()
            .find(|e| e.why.starts_with("carried by the offline courier"))
            .or(examples.first());
        if let Some(example) = chained {
            let found = self.whereabouts(&example.document).await?;
            println!(
                "  custody chain of {} ({}), end to end, oldest first by event time:",
                example.document, example.why
            );
            for link in &found.chain {
                let step = CustodyStep::try_from(link.step)
                    .map(|s| s.as_str_name().trim_start_matches("CUSTODY_STEP_").to_lowercase())
                    .unwrap_or_else(|_| link.step.to_string());
                let mut flags = Vec::new();
                if link.via_container {
                    flags.push("box scan".to_owned());
                }
                if link.voided {
                    flags.push("voided".to_owned());
                }
                if self.synced_late.contains(&link.scan_id) {
                    flags.push(format!(
                        "kept on the handheld, recorded at {} the next morning",
                        link.recorded_at
                    ));
                }
                let flags = if flags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", flags.join("; "))
                };
                println!(
                    "    {}  {}{}{} → {}  at {}{flags}",
                    china_time::short(link.scanned_unix_ms),
                    cell(&step, 24),
                    cell(&link.biz_step, 14),
                    cell(&link.principal, 29),
                    link.custodian_after,
                    link.place
                );
            }
        }

        println!("  anomalies open or explained (ListAnomalies at the county), by kind:");
        print_anomalies(&agreement.open);
        println!("  closed:");
        print_anomalies(&agreement.closed);
        let listed: BTreeSet<&str> = agreement
            .open
            .iter()
            .chain(&agreement.closed)
            .map(|a| a.anomaly_key.as_str())
            .collect();
        let gone: Vec<&(pb::Anomaly, NaiveDate)> = self
            .seen
            .values()
            .filter(|(a, _)| !listed.contains(a.anomaly_key.as_str()))
            .collect();
        if !gone.is_empty() {
            println!("  seen on an evening, gone once the scans that complete the hand-over came in:");
            for (a, date) in gone {
                println!("    {} on {}: {}", a.kind, day_label(*date), a.detail);
            }
        }
        if self.unexpected.is_empty() {
            println!("  every anomaly listed was caused by the script, and every one it caused was listed");
        } else {
            println!("  NOT AS SCRIPTED ({}):", self.unexpected.len());
            for line in &self.unexpected {
                println!("    {line}");
            }
        }
        println!(
            "  every tier agrees on where every paper file is: {} documents checked at {} nodes (WhereIs at the county, the township and the village of each case; {} boxes at the county and their township; every township's anomalies equal to the county's for that township)",
            agreement.locations.len(),
            agreement.nodes,
            self.boxes.len()
        );
        Ok(())
    }
}

impl Census {
    fn of(agreement: &Agreement) -> Census {
        let mut census = Census::default();
        for location in agreement.locations.values() {
            if location.place.starts_with("missing") {
                census.missing += 1;
            } else if location.custodian.starts_with("courier:") {
                census.couriers += 1;
            } else if let Some(node) = location
                .custodian
                .strip_prefix("node:")
                .and_then(|code| NodeId::new(code).ok())
            {
                match node.tier() {
                    Tier::County => census.county += 1,
                    Tier::Township => {
                        census.townships += 1;
                        *census.per_township.entry(node.to_string()).or_default() += 1;
                    }
                    Tier::Village => census.villages += 1,
                }
            }
        }
        census
    }
}

/// Anomalies grouped by kind, one line each.
fn print_anomalies(anomalies: &[pb::Anomaly]) {
    if anomalies.is_empty() {
        println!("    none");
        return;
    }
    let mut by_kind: BTreeMap<&str, Vec<&pb::Anomaly>> = BTreeMap::new();
    for a in anomalies {
        by_kind.entry(a.kind.as_str()).or_default().push(a);
    }
    for (kind, list) in by_kind {
        println!("    {kind} ({})", list.len());
        for a in list {
            let state = AnomalyState::try_from(a.state)
                .map(|s| s.as_str_name().trim_start_matches("ANOMALY_STATE_").to_lowercase())
                .unwrap_or_default();
            println!("      [{state}, {}] {}", township_name_str(&a.township), a.detail);
            if !a.explanation.is_empty() {
                println!("        explained by {}: {}", a.noted_by, a.explanation);
            }
            if !a.close_reason.is_empty() {
                println!("        closed by {}: {}", a.noted_by, a.close_reason);
            }
        }
    }
}

/// Where the two lists of one township's anomalies differ.
fn anomaly_difference(t: &NodeId, state: &str, here: &[&pb::Anomaly], county: &[&pb::Anomaly]) -> String {
    let keys = |list: &[&pb::Anomaly]| -> BTreeSet<String> { list.iter().map(|a| a.anomaly_key.clone()).collect() };
    let (mine, theirs) = (keys(here), keys(county));
    let only_here: Vec<&String> = mine.difference(&theirs).collect();
    let only_county: Vec<&String> = theirs.difference(&mine).collect();
    if !only_here.is_empty() || !only_county.is_empty() {
        return format!(
            "{state} anomalies of {t}: only {t} lists {only_here:?}; only the county lists {only_county:?}"
        );
    }
    match here.iter().zip(county).find(|(a, b)| a != b) {
        Some((a, b)) => format!(
            "{state} anomaly {} differs: {t} has {a:?}; the county has {b:?}",
            a.anomaly_key
        ),
        None => format!("{state} anomalies of {t} are listed in a different order"),
    }
}

/// A location in one line.
fn describe(l: &pb::Location) -> String {
    let mut text = format!("{} at {}", l.custodian, l.place);
    if !l.pending_custodian.is_empty() {
        text.push_str(&format!(" (released to {})", l.pending_custodian));
    }
    text.push_str(&format!(" since {}", china_time::short(l.since_unix_ms)));
    if !l.container.is_empty() {
        text.push_str(&format!(", in {} (trip {})", l.container, l.trip_id));
    } else if !l.trip_id.is_empty() {
        text.push_str(&format!(", last trip {}", l.trip_id));
    }
    text.push_str(if l.verified {
        ", scanned there"
    } else {
        ", inferred from its box"
    });
    text
}

/// Every case the county decides whose papers went up: entrusted and not-delegated items that
/// were accepted (a case refused at the window, or never accepted, left its papers with the
/// applicant), through `Cases.List` at the county.
async fn county_cases(channel: Channel, county: &NodeId) -> Result<Vec<CaseRef>> {
    let mut client = CasesClient::new(channel);
    let mut all = Vec::new();
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
            .map_err(|s| rpc_error(&s, county))
            .context("listing the cases at the county")?
            .into_inner();
        all.extend(page.cases);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    use pb::CaseStateKind as S;
    let county_decides = [
        pb::DelegationMode::Entrusted as i32,
        pb::DelegationMode::NotDelegated as i32,
    ];
    let never_accepted = [S::Submitted, S::Received, S::SupplementRequested, S::NotAccepted].map(|s| s as i32);
    // By township and receipt number, so the same week gives the same paper files.
    all.sort_by(|a, b| (&a.township, &a.case_number).cmp(&(&b.township, &b.case_number)));
    let mut cases = Vec::new();
    for s in all {
        if !county_decides.contains(&s.delegation) || never_accepted.contains(&s.state) {
            continue;
        }
        let decided = match pb::CaseOutcome::try_from(s.outcome) {
            Ok(pb::CaseOutcome::Approved) => Some(true),
            Ok(pb::CaseOutcome::Refused) => Some(false),
            _ => None,
        };
        cases.push(CaseRef {
            origin: NodeId::new(s.origin.clone()).with_context(|| format!("case {} origin", s.case_number))?,
            township: NodeId::new(s.township.clone()).with_context(|| format!("case {} township", s.case_number))?,
            id: s.case_id,
            number: s.case_number,
            decided,
            result: None,
        });
    }
    Ok(cases)
}

/// One to three paper files per case (the application form first), going up on the box-run day
/// of the case's turn at its township.
fn plan_papers(cases: &[CaseRef]) -> Vec<Paper> {
    let mut papers = Vec::new();
    let mut turn: BTreeMap<&NodeId, usize> = BTreeMap::new();
    for (ci, case) in cases.iter().enumerate() {
        let n = turn.entry(&case.township).or_default();
        let up_day = *n % SENDING_DAYS;
        *n += 1;
        let count = 1 + ci % 3;
        for j in 0..count {
            let (title, kind) = if j == 0 {
                ("申请表", DocumentKind::Original)
            } else {
                let (title, kind, _) = PAPERS[(ci + j) % PAPERS.len()];
                (title, kind)
            };
            papers.push(Paper {
                id: document_id(&case.number, j as u32 + 1),
                case: ci,
                kind,
                title: title.to_owned(),
                up_day,
                spot: Spot::Desk(case.origin.clone()),
            });
        }
    }
    papers
}

fn document_info(paper: &Paper, case: &CaseRef) -> pb::DocumentInfo {
    let pages = PAPERS
        .iter()
        .find(|(title, _, _)| *title == paper.title)
        .map(|(_, _, pages)| *pages)
        .unwrap_or(2);
    pb::DocumentInfo {
        document_id: paper.id.clone(),
        case_id: case.id.clone(),
        kind: paper.kind as i32,
        pages,
        title: paper.title.clone(),
    }
}

/// A channel to `node` with a certificate naming `who` (a clerk of that node or a courier),
/// issued by the tree's CA.
async fn connect(cluster: &Cluster, node: &NodeId, who: &Principal) -> Result<Channel> {
    cluster
        .channel_as(node, who)
        .await
        .with_context(|| format!("connecting to {node} as {who}"))
}

/// `hour:minute` on `date` in Asia/Shanghai, as Unix ms (minutes may run past 60).
fn at(date: NaiveDate, hour: i64, minute: i64) -> i64 {
    china_time::at(date, hour * 60 + minute)
}

fn township_name(t: &NodeId) -> &'static str {
    wuhua::township(t.as_str()).map(|w| w.name).unwrap_or("?")
}

fn township_name_str(code: &str) -> String {
    match wuhua::township(code) {
        Some(w) => format!("{} {code}", w.name),
        None => code.to_owned(),
    }
}

/// The day table: what the runs did, then where the paper files are at 19:00 (the county's
/// where-is once every tier agrees), then the anomalies open or explained.
const DAY_COLUMNS: [&str; 11] = [
    "trips",
    "scanned",
    "recorded",
    "docs sent",
    "arrived",
    "villages",
    "townships",
    "county",
    "couriers",
    "missing",
    "anomalies",
];
const DAY_LABEL: usize = 21;

fn day_header() -> String {
    let cells: Vec<String> = DAY_COLUMNS.iter().map(|h| format!(" {h}")).collect();
    format!("{}{}", cell("box-run day (19:00)", DAY_LABEL), cells.join(""))
}

fn day_row(label: &str, t: &DayTally, c: &Census, anomalies: usize) -> String {
    let values = [
        t.trips,
        t.scanned as usize,
        t.recorded as usize,
        t.sent,
        t.arrived,
        c.villages,
        c.townships,
        c.county,
        c.couriers,
        c.missing,
        anomalies,
    ];
    let cells: String = values
        .iter()
        .zip(DAY_COLUMNS)
        .map(|(n, h)| {
            let text = n.to_string();
            format!("{}{text}", " ".repeat((width(h) + 1).saturating_sub(width(&text))))
        })
        .collect();
    format!("{}{cells}", cell(label, DAY_LABEL))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn every_township_has_one_courier_and_each_courier_two_to_four() {
        let mut seen = BTreeSet::new();
        for route in &ROUTES {
            assert!((2..=4).contains(&route.townships.len()), "{}", route.courier);
            for t in route.townships {
                assert!(seen.insert(*t), "{t} is on two routes");
            }
        }
        let all: BTreeSet<&str> = wuhua::TOWNSHIPS.iter().map(|t| t.code).collect();
        assert_eq!(seen, all);
    }

    #[test]
    fn times_are_shanghai_wall_clock() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        assert_eq!(china_time::short(at(date, 9, 70)), "12-07 10:10");
        assert_eq!(shanghai_date(at(date, 0, 0)), date);
    }
}
