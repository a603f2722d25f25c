//! The invariants checked after every run, over what each node's store says.
//!
//! A [`NodeState`] is read at each node (on its own runtime) once links have healed; [`check`]
//! compares them across the tree:
//!
//! 1. every event an origin stored is present exactly once at every node its routing sends it
//!    to, and at no other node;
//! 2. every stored event passes the checks a replica makes (structure, hash, authorship), and no
//!    node raised an alarm (a refused or conflicting event);
//! 3. every replica of a case equals the case at its origin;
//! 4. every node holds the county's latest catalogue version, with the same hash;
//! 5. no cursor passes an event it did not apply: what a receiver stored from a sender up to
//!    its cursor has the count and digest of what the sender routed to it up to there;
//! 6. every node counts on the county's calendar in force;
//! 7. where-is and the anomalies agree between the county and each township, for the township's
//!    boxes and documents and the anomalies concerning it (device sequence gaps excepted: only
//!    the county, which receives every device's scans, judges them);
//! 8. every node's warning list equals a recomputation from its case views with the domain's
//!    pure rules ([`warnings::evaluate`]) on the calendar in force.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tongban_domains::case::projection::CaseFilter;
use tongban_domains::case::supervision::WarningFilter;
use tongban_domains::case::warnings::{self, WarningLevel};
use tongban_domains::custody::model::{AnomalyKind, WhereTarget};
use tongban_domains::custody::projection::CustodyError;
use tongban_domains::event::{self, route};
use tongban_domains::ids::NodeId;
use tongban_domains::log::LinkRole;
use tongban_domains::store::Store;
use tongban_proto::v1::RouteClass;

/// One event as its origin stored it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnEvent {
    pub seq: u64,
    pub route_class: i32,
    pub route_key: String,
    /// Empty when it passes the replica checks, else why not.
    pub refused: String,
}

/// What one node's store says, read on the node itself.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    /// Events this node authored and routed to a neighbour, by seq.
    pub own: BTreeMap<u64, OwnEvent>,
    /// Events this node authored, counted.
    pub own_count: u64,
    /// Events stored here, per origin.
    pub from_origin: BTreeMap<String, u64>,
    /// (origin, seq) of the events stored here, for the origins asked about.
    pub present: BTreeSet<(String, u64)>,
    pub alarms: u64,
    pub catalogue: (u64, String),
    /// Cases by receipt number: the view as JSON with case ids written as receipt numbers.
    pub cases: BTreeMap<String, String>,
    /// Per peer: (role, applied_from_peer).
    pub cursors: BTreeMap<String, (LinkRole, u64)>,
    /// The calendar in force: the county's sequence number that published it and the calendar.
    pub calendar: String,
    /// The node's warning list, one line per warning.
    pub warnings: BTreeSet<String>,
    /// The same recomputed from the case views.
    pub recomputed: BTreeSet<String>,
    /// Where-is of each box or document asked about here.
    pub where_is: BTreeMap<String, String>,
    /// The anomalies listed here, by the township concerned.
    pub anomalies: BTreeMap<String, BTreeSet<String>>,
}

/// Writes each case id in `text` as the case's receipt number: ids carry random bits.
fn numbered(mut text: String, ids: &[(String, String)]) -> String {
    for (id, number) in ids {
        text = text.replace(id.as_str(), number);
    }
    text
}

/// One warning as a line, the same whether listed or recomputed.
fn warning_line(number: &str, w: &warnings::Warning) -> String {
    format!(
        "{number} {:?} {:?} {} left, deadline {}",
        w.rule, w.level, w.working_days_left, w.deadline
    )
}

/// Reads `store`'s state; `tree` is every node of the tree, `objects` the boxes and documents
/// to ask where-is about.
pub async fn read_state(store: Arc<Store>, tree: Vec<NodeId>, objects: Vec<String>) -> Result<NodeState, String> {
    let me = store.node().clone();
    let e = |e: tongban_domains::store::StoreError| e.to_string();
    let mut state = NodeState::default();
    let mut peers: Vec<(NodeId, LinkRole)> = tree
        .iter()
        .filter(|n| n.parent().as_ref() == Some(&me))
        .map(|c| (c.clone(), LinkRole::Child))
        .collect();
    if let Some(parent) = me.parent() {
        peers.push((parent, LinkRole::Parent));
    }
    for (peer, role) in &peers {
        let mut after = 0;
        loop {
            let (events, through) = store.events_for(peer, *role, after, 500).await.map_err(e)?;
            for synced in &events {
                let Some(ev) = &synced.event else { continue };
                if ev.origin != me.as_str() {
                    continue;
                }
                let refused = match event::check(ev.clone()) {
                    Ok(checked) => event::check_authorship(&checked).err().map(|e| e.to_string()),
                    Err(err) => Some(err.to_string()),
                }
                .unwrap_or_default();
                state.own.insert(
                    ev.seq,
                    OwnEvent {
                        seq: ev.seq,
                        route_class: ev.route_class,
                        route_key: ev.route_key.clone(),
                        refused,
                    },
                );
            }
            if events.is_empty() || through <= after {
                break;
            }
            after = through;
        }
    }
    state.own_count = store.count_from_origin(&me).await.map_err(e)?;
    for origin in &tree {
        let n = store.count_from_origin(origin).await.map_err(e)?;
        state.from_origin.insert(origin.to_string(), n);
    }
    state.alarms = store.alarm_count().await.map_err(e)?;
    let head = store.catalogue_head().await;
    state.catalogue = (head.version, hex::encode(head.hash));
    let page = store.cases(&CaseFilter::default(), None, 10_000).await.map_err(e)?;
    let ids: Vec<(String, String)> = page
        .cases
        .iter()
        .map(|c| (c.id.to_string(), c.number.to_string()))
        .collect();
    for case in &page.cases {
        // Case ids carry random bits drawn at opening; receipt numbers do not.
        let json = numbered(serde_json::to_string(case).map_err(|e| e.to_string())?, &ids);
        state.cases.insert(case.number.to_string(), json);
    }
    let in_force = store.calendar().await.map_err(e)?;
    state.calendar = format!(
        "published by county event {:?}: {}",
        in_force.published_seq,
        in_force.calendar.to_json().map_err(|e| e.to_string())?
    );
    // The list first, then the recomputation on the node's own clock and the calendar in force
    // (not on what the list says it used: a list counting on the wrong day must show). A
    // calendar folded in between shows as a mismatch only until the tree settles.
    let listed = store.warnings(&WarningFilter::default()).await.map_err(e)?;
    let today = store.today();
    for w in &listed.warnings {
        let as_warning = warnings::Warning {
            rule: w.rule,
            level: w.level,
            working_days_left: w.working_days_left,
            deadline: w.deadline,
        };
        state.warnings.insert(warning_line(&w.case_number, &as_warning));
    }
    let thresholds = store.warning_thresholds();
    for case in &page.cases {
        for w in warnings::evaluate(&case.case_clock(), today, &in_force.calendar, &thresholds) {
            if w.level >= WarningLevel::Yellow {
                state.recomputed.insert(warning_line(&case.number.to_string(), &w));
            }
        }
    }
    if listed.today != today {
        state
            .recomputed
            .insert(format!("(listed as of {}, today is {today})", listed.today));
    }
    if listed.calendar_version != in_force.calendar.version() {
        state.recomputed.insert(format!(
            "(listed on calendar {}, recomputed on {})",
            listed.calendar_version,
            in_force.calendar.version()
        ));
    }
    for object in objects {
        let target = if object.starts_with("box-") {
            WhereTarget::Box(object.clone())
        } else {
            WhereTarget::Document(object.clone())
        };
        let answer = match store.where_is(&target).await {
            Ok(found) => numbered(format!("{found:?}"), &ids),
            // The message names the node asked; not knowing is what matters.
            Err(CustodyError::NotFound(_)) => "not known".to_owned(),
            Err(other) => return Err(other.to_string()),
        };
        state.where_is.insert(object, answer);
    }
    for anomaly in store.anomalies(None).await.map_err(e)? {
        let township = anomaly.township.clone();
        let line = numbered(format!("{anomaly:?}"), &ids);
        state.anomalies.entry(township).or_default().insert(line);
    }
    for cursor in store.links().await.map_err(e)? {
        state
            .cursors
            .insert(cursor.peer.clone(), (cursor.role, cursor.applied_from_peer));
    }
    Ok(state)
}

/// Asks `store` whether each of `wanted` is stored there.
pub async fn read_presence(store: Arc<Store>, wanted: Vec<(String, u64)>) -> Result<BTreeSet<(String, u64)>, String> {
    let mut present = BTreeSet::new();
    for (origin, seq) in wanted {
        if store.has_event(&origin, seq).await.map_err(|e| e.to_string())? {
            present.insert((origin, seq));
        }
    }
    Ok(present)
}

/// Where an event of `origin` with `class` and `key` is stored: its origin and every node the
/// routing rule sends it on to, hop by hop.
pub fn destinations(tree: &[NodeId], origin: &NodeId, class: RouteClass, key: &NodeId) -> BTreeSet<NodeId> {
    let mut reached = BTreeSet::new();
    let mut frontier = vec![(origin.clone(), None::<NodeId>)];
    while let Some((here, source)) = frontier.pop() {
        if !reached.insert(here.clone()) {
            continue;
        }
        let routing = route(&here, source.as_ref(), class, key);
        if routing.to_parent
            && let Some(parent) = here.parent()
        {
            frontier.push((parent, Some(here.clone())));
        }
        if let Some(child) = routing.route_child {
            for c in tree.iter().filter(|n| n.parent().as_ref() == Some(&here)) {
                if child == event::ALL_CHILDREN || c.as_str() == child {
                    frontier.push((c.clone(), Some(here.clone())));
                }
            }
        }
    }
    reached
}

/// Where every event an origin routed should be, as (origin, seq) per node.
pub fn expected(tree: &[NodeId], states: &BTreeMap<NodeId, NodeState>) -> BTreeMap<NodeId, BTreeSet<(String, u64)>> {
    let mut want: BTreeMap<NodeId, BTreeSet<(String, u64)>> = BTreeMap::new();
    for (origin, state) in states {
        for own in state.own.values() {
            let class = RouteClass::try_from(own.route_class).unwrap_or(RouteClass::Unspecified);
            let Ok(key) = NodeId::new(own.route_key.clone()) else {
                continue;
            };
            for node in destinations(tree, origin, class, &key) {
                want.entry(node).or_default().insert((origin.to_string(), own.seq));
            }
        }
    }
    want
}

/// Checksums for link cursors: (receiver, sender) → (what the receiver stored from the sender
/// up to its cursor, what the sender routed to it up to there).
pub type LinkDigests = BTreeMap<(NodeId, NodeId), ((u64, u64), (u64, u64))>;

/// Every invariant violated, in words; empty when the run is sound. `digests` are the link
/// checksums read at the cursors of `states`. Where-is must agree on every field, the node that
/// recorded each scan included.
pub fn check(tree: &[NodeId], states: &BTreeMap<NodeId, NodeState>, digests: &LinkDigests) -> Vec<String> {
    check_with(tree, states, digests, true)
}

/// Writes every `recorded_at: "<node>"` of a where-is answer as `recorded_at: _`.
pub fn without_recorder(answer: &str) -> String {
    const FIELD: &str = "recorded_at: \"";
    let mut out = String::with_capacity(answer.len());
    let mut rest = answer;
    while let Some(at) = rest.find(FIELD) {
        out.push_str(&rest[..at]);
        out.push_str("recorded_at: _");
        let value = &rest[at + FIELD.len()..];
        rest = value.find('"').map(|end| &value[end + 1..]).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// [`check`], saying whether where-is must also agree on which node recorded each scan.
///
/// The same scan uploaded at a township and at the county while the link between them is cut is
/// recorded at both; every node keeps the earliest recording, so the recorders agree (seed 6
/// found them apart and keeps it so). Off only to look at a run without that field.
pub fn check_with(
    tree: &[NodeId],
    states: &BTreeMap<NodeId, NodeState>,
    digests: &LinkDigests,
    recorder_must_agree: bool,
) -> Vec<String> {
    let same_place = |a: &str, b: &str| {
        if recorder_must_agree {
            a == b
        } else {
            without_recorder(a) == without_recorder(b)
        }
    };
    let mut broken = Vec::new();
    let want = expected(tree, states);
    // 1. Exactly once where routed, nowhere else.
    for node in tree {
        let Some(state) = states.get(node) else {
            broken.push(format!("{node}: no state read"));
            continue;
        };
        let wanted = want.get(node).cloned().unwrap_or_default();
        for (origin, seq) in &wanted {
            if origin != node.as_str() && !state.present.contains(&(origin.clone(), *seq)) {
                broken.push(format!("{node}: missing event {origin}#{seq} routed to it"));
            }
        }
        for origin in tree.iter().filter(|o| *o != node) {
            let routed_here = wanted.iter().filter(|(o, _)| o == origin.as_str()).count() as u64;
            let stored = state.from_origin.get(origin.as_str()).copied().unwrap_or(0);
            if stored != routed_here {
                broken.push(format!(
                    "{node}: holds {stored} events of {origin}, but {routed_here} are routed to it"
                ));
            }
        }
        // 2. Every event passes a replica's checks; nobody raised an alarm.
        for own in state.own.values().filter(|o| !o.refused.is_empty()) {
            broken.push(format!(
                "{node}: own event #{} fails the replica checks: {}",
                own.seq, own.refused
            ));
        }
        if state.alarms > 0 {
            broken.push(format!("{node}: raised {} alarms", state.alarms));
        }
    }
    // 3. Every replica of a case equals the origin's.
    for (node, state) in states {
        for (number, json) in &state.cases {
            let origin = number.split('-').next().unwrap_or_default();
            let at_origin = tree
                .iter()
                .find(|n| n.as_str() == origin)
                .and_then(|o| states.get(o))
                .and_then(|s| s.cases.get(number));
            match at_origin {
                Some(theirs) if theirs == json => {}
                Some(_) => broken.push(format!("{node}: case {number} differs from its origin's")),
                None => broken.push(format!("{node}: case {number} is unknown at its origin")),
            }
        }
    }
    // 4. One catalogue.
    if let Some(county) = states.get(&tree[0]) {
        for (node, state) in states {
            if state.catalogue != county.catalogue {
                broken.push(format!(
                    "{node}: catalogue v{} {} but the county holds v{} {}",
                    state.catalogue.0, state.catalogue.1, county.catalogue.0, county.catalogue.1
                ));
            }
        }
    }
    let county = &tree[0];
    if let Some(at_county) = states.get(county) {
        for (node, state) in states {
            // 6. One calendar.
            if state.calendar != at_county.calendar {
                broken.push(format!(
                    "{node}: counts on calendar {} but the county on {}",
                    state.calendar, at_county.calendar
                ));
            }
            if node.tier() != tongban_domains::ids::Tier::Township {
                continue;
            }
            // 7. Where-is and anomalies, county against township.
            for (object, here) in &state.where_is {
                match at_county.where_is.get(object) {
                    Some(there) if same_place(there, here) => {}
                    Some(there) => broken.push(format!(
                        "{node}: where-is {object} says {here}, the county says {there}"
                    )),
                    None => broken.push(format!("{node}: where-is {object} was not asked at the county")),
                }
            }
            let judged = |s: &NodeState| -> BTreeSet<String> {
                s.anomalies
                    .get(node.as_str())
                    .map(|set| {
                        set.iter()
                            .filter(|a| !a.contains(&format!("kind: {:?}", AnomalyKind::DeviceSequenceGap)))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (here, there) = (judged(state), judged(at_county));
            for a in here.difference(&there) {
                broken.push(format!("{node}: lists anomaly {a}, the county does not"));
            }
            for a in there.difference(&here) {
                broken.push(format!("{node}: does not list anomaly {a}, the county does"));
            }
        }
    }
    // 8. Warnings equal their recomputation.
    for (node, state) in states {
        for w in state.warnings.difference(&state.recomputed) {
            broken.push(format!("{node}: warns {w}, which the rules do not give"));
        }
        for w in state.recomputed.difference(&state.warnings) {
            broken.push(format!("{node}: does not warn {w}, which the rules give"));
        }
    }
    // 5. Cursors.
    for ((receiver, sender), (stored, routed)) in digests {
        if stored != routed {
            broken.push(format!(
                "{receiver}: its cursor on {sender} covers {} events (digest {:x}) but {sender} routed {} (digest {:x}) up to there",
                stored.0, stored.1, routed.0, routed.1
            ));
        }
    }
    broken
}

/// The canonical hash of the tree's final state: per node, the catalogue, the events stored
/// per origin and the cases as JSON (ids written as receipt numbers).
pub fn final_hash(states: &BTreeMap<NodeId, NodeState>) -> String {
    let mut h = Sha256::new();
    for (node, state) in states {
        h.update(node.as_str());
        h.update(format!(
            "{:?}{:?}{}",
            state.catalogue, state.from_origin, state.own_count
        ));
        for (number, json) in &state.cases {
            h.update(number);
            h.update(json);
        }
        h.update(&state.calendar);
        for line in state.warnings.iter().chain(state.where_is.values()) {
            h.update(line);
        }
        for (township, anomalies) in &state.anomalies {
            h.update(township);
            for a in anomalies {
                h.update(a);
            }
        }
    }
    hex::encode(h.finalize())
}

/// Count and digest a receiver stored from `sender` up to `up_to`.
pub async fn inbound(store: Arc<Store>, sender: NodeId, up_to: u64) -> Result<(u64, u64), String> {
    store.inbound_checksum(&sender, up_to).await.map_err(|e| e.to_string())
}

/// Count and digest `store` routed to `receiver` up to `up_to`.
pub async fn outbound(store: Arc<Store>, receiver: NodeId, role: LinkRole, up_to: u64) -> Result<(u64, u64), String> {
    store
        .outbound_checksum(&receiver, role, up_to)
        .await
        .map_err(|e| e.to_string())
}
