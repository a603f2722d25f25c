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
//!    its cursor has the count and digest of what the sender routed to it up to there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tongban_domains::case::projection::CaseFilter;
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
}

/// Reads `store`'s state; `tree` is every node of the tree.
pub async fn read_state(store: Arc<Store>, tree: Vec<NodeId>) -> Result<NodeState, String> {
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
        let mut json = serde_json::to_string(case).map_err(|e| e.to_string())?;
        // Case ids carry random bits drawn at opening; receipt numbers do not.
        for (id, number) in &ids {
            json = json.replace(id.as_str(), number);
        }
        state.cases.insert(case.number.to_string(), json);
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
/// checksums read at the cursors of `states`.
pub fn check(tree: &[NodeId], states: &BTreeMap<NodeId, NodeState>, digests: &LinkDigests) -> Vec<String> {
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
