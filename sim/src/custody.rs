//! The paper side of the county in the simulation: each township's box making trips to the
//! county and back, the documents packed in it, and the devices that scan them (a clerk's desk at
//! each end, the township's courier), each a [`tongban_courier::Device`] keeping what it scanned
//! until a node has taken it.
//!
//! This module only makes scans and says where they are uploaded; the driver ([`crate::run`])
//! uploads them through the node's `record_scans`. Now and then a township clerk registers the
//! papers of a case the township holds; they wait there for the box. A trip moves a stage at a
//! time:
//!
//! | stage | scans | by | uploaded to |
//! | --- | --- | --- | --- |
//! | pack | (register the box, first time,) pack every document at the origin, seal | origin clerk | origin |
//! | hand over | release to courier, courier accept | origin clerk, courier | origin, courier's pick |
//! | road | en route, release at destination | courier | courier's pick |
//! | arrive | destination accept, unpack | destination clerk | destination |
//!
//! The courier's pick is the township, the county or both: the same scans at two nodes, which
//! must come to one record. Every trip scan names the trip's two ends, as the box label does,
//! so a node recording it routes it to the township concerned without needing the PACK first:
//! otherwise its route would depend on how far replication had got, and a seed would not replay.

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::StdRng;
use tongban_courier::{Device, ScanIds};
use tongban_domains::case::{CaseId, CaseNumber};
use tongban_domains::custody::model::{DocumentInfo, DocumentKind, Scan, document_id, document_seq};
use tongban_domains::ids::NodeId;
use tongban_domains::pki::Principal;
use tongban_proto::v1 as pb;

/// What a device has scanned and no node has taken yet.
pub struct Desk {
    device: Device,
    pub outbox: Vec<Scan>,
}

impl Desk {
    fn new(id: String, who: Principal) -> Result<Desk, String> {
        let device = Device::new(id, who)
            .map_err(|e| e.to_string())?
            // Numbered ids (`<device>-<seq>`): the random part of unique ids would differ
            // between two runs of a seed.
            .with_scan_ids(ScanIds::Numbered);
        Ok(Desk {
            device,
            outbox: Vec::new(),
        })
    }

    pub fn who(&self) -> Principal {
        self.device.principal.clone()
    }

    /// Scans `scan` (numbered and named by the device) and keeps it until uploaded.
    fn scan(&mut self, scan: pb::Scan) -> Result<(), String> {
        let stamped = self.device.stamp(scan);
        let scan = Scan::try_from(stamped).map_err(|e| format!("a simulated scan does not convert: {e}"))?;
        self.outbox.push(scan);
        Ok(())
    }
}

/// Where a trip stands: the stage its next move makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pack,
    HandOver,
    Road,
    Arrive,
}

/// One township's box and the documents registered there.
struct Run {
    township: NodeId,
    box_id: String,
    registered: bool,
    /// Trips made so far; the current one is `trip-<township>-<trips>`.
    trips: u32,
    stage: Stage,
    /// Where the box is (its next trip leaves from there).
    at: NodeId,
    /// Documents, by id, with the node where each is.
    documents: BTreeMap<String, NodeId>,
    /// Documents in the box on the current trip.
    packed: Vec<String>,
}

/// Where a batch of scans goes.
pub struct Upload {
    /// The device's key in [`Custody::desks`].
    pub desk: String,
    /// Nodes to upload to now, in order.
    pub now: Vec<NodeId>,
    /// A node to upload the same scans to again once the tree agrees (they must all be
    /// duplicates there by then).
    pub echo: Option<NodeId>,
    pub what: String,
}

/// Every township's box and every device.
pub struct Custody {
    county: NodeId,
    runs: BTreeMap<NodeId, Run>,
    pub desks: BTreeMap<String, Desk>,
    /// The device clock: scans are numbered in time, a second apart, never ahead of the tree's
    /// clock (a scan from the future is an anomaly).
    last_scan_ms: i64,
}

fn clerk_of(node: &NodeId) -> Principal {
    Principal::Operator {
        place: node.clone(),
        name: "clerk".into(),
    }
}

impl Custody {
    pub fn new(county: &NodeId, townships: &[NodeId]) -> Result<Custody, String> {
        let mut desks = BTreeMap::new();
        let mut runs = BTreeMap::new();
        for node in townships.iter().chain(std::iter::once(county)) {
            desks.insert(desk_key(node), Desk::new(format!("desk-{node}"), clerk_of(node))?);
        }
        for t in townships {
            let courier = Principal::Courier {
                place: t.clone(),
                device: format!("pda-{t}"),
            };
            desks.insert(courier_key(t), Desk::new(format!("pda-{t}"), courier)?);
            runs.insert(
                t.clone(),
                Run {
                    township: t.clone(),
                    box_id: format!("box-{t}"),
                    registered: false,
                    trips: 0,
                    stage: Stage::Pack,
                    at: t.clone(),
                    documents: BTreeMap::new(),
                    packed: Vec::new(),
                },
            );
        }
        Ok(Custody {
            county: county.clone(),
            runs,
            desks,
            last_scan_ms: 0,
        })
    }

    /// The boxes and documents of `township`: what where-is is compared on.
    pub fn objects(&self, township: &NodeId) -> Vec<String> {
        self.runs
            .get(township)
            .map(|r| {
                let mut ids = vec![r.box_id.clone()];
                ids.extend(r.documents.keys().cloned());
                ids
            })
            .unwrap_or_default()
    }

    fn next_time(&mut self, now_ms: i64) -> i64 {
        self.last_scan_ms = (self.last_scan_ms + 1_000).max(now_ms - 3 * 3_600_000);
        self.last_scan_ms
    }

    /// Moves `township`'s box one stage on. `cases` are cases the township held at the last
    /// agreement (documents are registered for them); `cut` says whether the township's link to
    /// the county is cut now, so two copies of one scan can be recorded at both ends before
    /// either hears of the other.
    pub fn step(
        &mut self,
        township: &NodeId,
        rng: &mut StdRng,
        now_ms: i64,
        cases: &[(CaseId, CaseNumber)],
        cut: bool,
    ) -> Result<Vec<Upload>, String> {
        let county = self.county.clone();
        let Some(stage) = self.runs.get(township).map(|r| r.stage) else {
            return Ok(Vec::new());
        };
        let mut uploads = Vec::new();
        let (origin, destination, trip, box_id, seal) = {
            let Some(run) = self.runs.get(township) else {
                return Ok(uploads);
            };
            let origin = run.at.clone();
            let destination = if origin == county {
                run.township.clone()
            } else {
                county.clone()
            };
            // A trip is counted when packed; the stages after it carry on the same trip.
            let number = if stage == Stage::Pack { run.trips + 1 } else { run.trips };
            let trip = format!("trip-{}-{number}", run.township);
            (
                origin,
                destination,
                trip,
                run.box_id.clone(),
                format!("seal-{}-{number}", run.township),
            )
        };
        let trip_scan = |step: pb::CustodyStep, at: i64, place: &NodeId| pb::Scan {
            step: step as i32,
            scanned_unix_ms: at,
            box_id: box_id.clone(),
            trip_id: trip.clone(),
            origin: origin.to_string(),
            destination: destination.to_string(),
            place: place.to_string(),
            ..Default::default()
        };
        let courier_key = courier_key(township);
        let courier = self.desks.get(&courier_key).map(Desk::who).ok_or("no courier desk")?;
        // A clerk at the township registers the papers of a case it holds now and then: they
        // wait there for the box (the next trip out packs every document at its origin).
        if !cases.is_empty() && rng.random_bool(0.5) {
            let (case, number) = &cases[rng.random_range(0..cases.len())];
            // The id the node assigns (`Custody.NextDocumentId`): the case's next paper.
            let number = number.to_string();
            let registered = self
                .runs
                .values()
                .flat_map(|r| r.documents.keys())
                .filter_map(|d| document_seq(&number, d))
                .max()
                .unwrap_or(0);
            let doc = document_id(&number, registered + 1);
            let at = self.next_time(now_ms);
            let desk = desk_key(township);
            self.desk(&desk)?.scan(pb::Scan {
                step: pb::CustodyStep::RegisterDocument as i32,
                scanned_unix_ms: at,
                place: township.to_string(),
                document: Some(pb::DocumentInfo::from(&DocumentInfo {
                    document_id: doc.clone(),
                    case_id: case.to_string(),
                    kind: Some(DocumentKind::Original),
                    pages: 2,
                    title: "申请表原件".into(),
                })),
                ..Default::default()
            })?;
            if let Some(run) = self.runs.get_mut(township) {
                run.documents.insert(doc.clone(), township.clone());
            }
            uploads.push(Upload {
                desk: desk.clone(),
                now: vec![township.clone()],
                echo: None,
                what: format!("clerk at {township} registers {doc}"),
            });
        }
        match stage {
            Stage::Pack => {
                let origin_desk = desk_key(&origin);
                let mut what = Vec::new();
                // The box is registered once, at its township.
                if let Some(run) = self.runs.get(township)
                    && !run.registered
                {
                    let at = self.next_time(now_ms);
                    self.desk(&origin_desk)?.scan(pb::Scan {
                        step: pb::CustodyStep::RegisterBox as i32,
                        scanned_unix_ms: at,
                        box_id: box_id.clone(),
                        box_label: format!("{township} 文件箱"),
                        place: township.to_string(),
                        ..Default::default()
                    })?;
                    what.push(format!("registers {box_id}"));
                }
                let manifest: Vec<String> = self
                    .runs
                    .get(township)
                    .map(|r| {
                        r.documents
                            .iter()
                            .filter(|(_, at)| **at == origin)
                            .map(|(d, _)| d.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let at = self.next_time(now_ms);
                let mut pack = trip_scan(pb::CustodyStep::Pack, at, &origin);
                pack.document_ids = manifest.clone();
                let at = self.next_time(now_ms);
                let mut sealing = trip_scan(pb::CustodyStep::Seal, at, &origin);
                sealing.seal_number = seal.clone();
                let desk = self.desk(&origin_desk)?;
                desk.scan(pack)?;
                desk.scan(sealing)?;
                if let Some(run) = self.runs.get_mut(township) {
                    run.registered = true;
                    run.trips += 1;
                    run.packed = manifest.clone();
                    run.stage = Stage::HandOver;
                }
                what.push(format!(
                    "packs {} documents into {box_id} for {trip} and seals it",
                    manifest.len()
                ));
                uploads.push(Upload {
                    desk: origin_desk,
                    now: vec![origin.clone()],
                    echo: None,
                    what: format!("clerk at {origin} {}", what.join(", ")),
                });
            }
            Stage::HandOver => {
                let origin_desk = desk_key(&origin);
                let at = self.next_time(now_ms);
                let mut release = trip_scan(pb::CustodyStep::ReleaseToCourier, at, &origin);
                release.counterparty = courier.to_string();
                self.desk(&origin_desk)?.scan(release)?;
                uploads.push(Upload {
                    desk: origin_desk,
                    now: vec![origin.clone()],
                    echo: None,
                    what: format!("clerk at {origin} releases {box_id} to the courier"),
                });
                let at = self.next_time(now_ms);
                self.desk(&courier_key)?
                    .scan(trip_scan(pb::CustodyStep::CourierAccept, at, &origin))?;
                uploads.push(self.courier_upload(township, rng, cut, format!("courier accepts {box_id}")));
                if let Some(run) = self.runs.get_mut(township) {
                    run.stage = Stage::Road;
                }
            }
            Stage::Road => {
                let at = self.next_time(now_ms);
                let mut on_road = trip_scan(pb::CustodyStep::EnRoute, at, &origin);
                on_road.place = format!("road-{origin}-{destination}");
                let at = self.next_time(now_ms);
                let mut release = trip_scan(pb::CustodyStep::ReleaseAtDestination, at, &destination);
                release.counterparty = clerk_of(&destination).to_string();
                let desk = self.desk(&courier_key)?;
                desk.scan(on_road)?;
                desk.scan(release)?;
                uploads.push(self.courier_upload(
                    township,
                    rng,
                    cut,
                    format!("courier carries {box_id} to {destination}"),
                ));
                if let Some(run) = self.runs.get_mut(township) {
                    run.stage = Stage::Arrive;
                }
            }
            Stage::Arrive => {
                let destination_desk = desk_key(&destination);
                let packed = self.runs.get(township).map(|r| r.packed.clone()).unwrap_or_default();
                let at = self.next_time(now_ms);
                let mut accept = trip_scan(pb::CustodyStep::DestinationAccept, at, &destination);
                accept.seal_number = seal.clone();
                accept.seal_intact = true;
                let at = self.next_time(now_ms);
                let mut unpack = trip_scan(pb::CustodyStep::Unpack, at, &destination);
                unpack.document_ids = packed.clone();
                let desk = self.desk(&destination_desk)?;
                desk.scan(accept)?;
                desk.scan(unpack)?;
                if let Some(run) = self.runs.get_mut(township) {
                    for doc in &packed {
                        run.documents.insert(doc.clone(), destination.clone());
                    }
                    run.packed.clear();
                    run.at = destination.clone();
                    run.stage = Stage::Pack;
                }
                uploads.push(Upload {
                    desk: destination_desk,
                    now: vec![destination.clone()],
                    echo: None,
                    what: format!(
                        "clerk at {destination} accepts {box_id} with seal intact and unpacks {} documents",
                        packed.len()
                    ),
                });
            }
        }
        Ok(uploads)
    }

    /// The courier uploads to the township, the county or both. Both at once only while the
    /// link between them is cut, so neither can have heard of the other's copy (a replay then
    /// records the same copies); otherwise the second copy goes once the tree agrees.
    fn courier_upload(&self, township: &NodeId, rng: &mut StdRng, cut: bool, what: String) -> Upload {
        let desk = courier_key(township);
        match rng.random_range(0..3) {
            0 => Upload {
                desk,
                now: vec![township.clone()],
                echo: None,
                what,
            },
            1 => Upload {
                desk,
                now: vec![self.county.clone()],
                echo: None,
                what,
            },
            _ if cut => Upload {
                desk,
                now: vec![township.clone(), self.county.clone()],
                echo: None,
                what: format!("{what} (uploaded at both ends of a cut link)"),
            },
            _ => Upload {
                desk,
                now: vec![township.clone()],
                echo: Some(self.county.clone()),
                what: format!("{what} (and again at the county later)"),
            },
        }
    }

    fn desk(&mut self, key: &str) -> Result<&mut Desk, String> {
        self.desks.get_mut(key).ok_or_else(|| format!("no desk {key}"))
    }

    /// Every device with scans no node has taken yet, and the node it uploads to when links are
    /// healed: a clerk's desk at its own node, a courier at their township.
    pub fn pending(&self) -> Vec<(String, NodeId)> {
        self.desks
            .iter()
            .filter(|(_, d)| !d.outbox.is_empty())
            .map(|(key, d)| (key.clone(), d.who().place().clone()))
            .collect()
    }
}

fn desk_key(node: &NodeId) -> String {
    format!("desk-{node}")
}

fn courier_key(township: &NodeId) -> String {
    format!("pda-{township}")
}
