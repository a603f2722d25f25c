//! The event envelope: content hashing, structural validation and the rules of who may author
//! what and where it travels. Storage and sync call into this module; it does no I/O.

use prost::Message;
use sha2::{Digest, Sha256};
use tongban_proto::v1::{self as pb, EventKind, RouteClass, event_body::Body};

use crate::ids::{NodeId, Tier};

/// Largest encoded event accepted from anyone. A full first catalogue version (~2,000 items) is
/// about 1 MB before compression; 8 MiB leaves room while keeping one frame's memory bounded.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// Why an event is refused. Each variant reads as a sentence for the operator's alarm list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is {0} bytes, over the {MAX_EVENT_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("origin {0:?} is not a division code")]
    BadOrigin(String),
    #[error("route key {0:?} is not a division code")]
    BadRouteKey(String),
    #[error("sequence number 0 is not allowed (sequences start at 1)")]
    ZeroSeq,
    #[error("content hash does not match the event's fields")]
    HashMismatch,
    #[error("body does not decode: {0}")]
    BadBody(String),
    #[error("kind {kind} does not match the body ({body})")]
    KindMismatch { kind: String, body: String },
    #[error("{0}")]
    Rule(String),
}

/// SHA-256 over the envelope fields, each length-prefixed (u32 big-endian) or fixed-width
/// big-endian, in field order: origin, seq, hlc, principal, kind, subject, route_key,
/// route_class, body. Length prefixes make the encoding unambiguous.
pub fn content_hash(event: &pb::Event) -> [u8; 32] {
    fn put(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u32).to_be_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Sha256::new();
    put(&mut hasher, event.origin.as_bytes());
    hasher.update(event.seq.to_be_bytes());
    hasher.update(event.hlc.to_be_bytes());
    put(&mut hasher, event.principal.as_bytes());
    hasher.update(event.kind.to_be_bytes());
    put(&mut hasher, event.subject.as_bytes());
    put(&mut hasher, event.route_key.as_bytes());
    hasher.update(event.route_class.to_be_bytes());
    put(&mut hasher, &event.body);
    hasher.finalize().into()
}

/// The 64-bit summand of an event in a link checksum.
pub fn digest_part(content_hash: &[u8]) -> u64 {
    let mut prefix = [0u8; 8];
    let n = content_hash.len().min(8);
    prefix[..n].copy_from_slice(&content_hash[..n]);
    u64::from_be_bytes(prefix)
}

/// What an author supplies; the store adds origin, sequence, clock and hash.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub principal: String,
    pub subject: String,
    pub route_key: NodeId,
    pub route_class: RouteClass,
    pub body: Body,
}

impl NewEvent {
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }
}

/// Builds the sealed envelope for a new event.
pub fn seal(origin: &NodeId, seq: u64, hlc: u64, new: &NewEvent) -> pb::Event {
    let body = pb::EventBody {
        body: Some(new.body.clone()),
    }
    .encode_to_vec();
    let mut event = pb::Event {
        origin: origin.to_string(),
        seq,
        hlc,
        principal: new.principal.clone(),
        kind: new.kind() as i32,
        subject: new.subject.clone(),
        route_key: new.route_key.to_string(),
        route_class: new.route_class as i32,
        body,
        content_hash: Vec::new(),
        signature: Vec::new(),
    };
    event.content_hash = content_hash(&event).to_vec();
    event
}

/// An event whose envelope has been checked, with its body decoded.
#[derive(Debug, Clone)]
pub struct CheckedEvent {
    pub event: pb::Event,
    pub origin: NodeId,
    pub route_key: NodeId,
    pub body: Body,
}

impl CheckedEvent {
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    pub fn route_class(&self) -> RouteClass {
        RouteClass::try_from(self.event.route_class).unwrap_or(RouteClass::Unspecified)
    }
}

/// Structural checks every replica makes before anything else: size, ids, hash, body.
pub fn check(event: pb::Event) -> Result<CheckedEvent, EventError> {
    let size = event.encoded_len();
    if size > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(size));
    }
    let origin = NodeId::new(event.origin.clone()).map_err(|_| EventError::BadOrigin(event.origin.clone()))?;
    let route_key =
        NodeId::new(event.route_key.clone()).map_err(|_| EventError::BadRouteKey(event.route_key.clone()))?;
    if event.seq == 0 {
        return Err(EventError::ZeroSeq);
    }
    if event.content_hash.as_slice() != content_hash(&event) {
        return Err(EventError::HashMismatch);
    }
    let body = pb::EventBody::decode(event.body.as_slice())
        .map_err(|e| EventError::BadBody(e.to_string()))?
        .body
        .ok_or_else(|| EventError::BadBody("empty body".into()))?;
    let declared = EventKind::try_from(event.kind).unwrap_or(EventKind::Unspecified);
    if declared != body.kind() {
        return Err(EventError::KindMismatch {
            kind: declared.as_str_name().to_owned(),
            body: body.kind().as_str_name().to_owned(),
        });
    }
    Ok(CheckedEvent {
        event,
        origin,
        route_key,
        body,
    })
}

/// The authorship rule every kind shares: an event concerns a node of its author's county. The
/// rules of each kind (which tier may author it, how it travels) belong to the domain that folds
/// it (`Projection::check_authorship`).
pub fn check_authorship(event: &CheckedEvent) -> Result<(), EventError> {
    if event.kind() == EventKind::Unspecified {
        return Err(EventError::Rule("unspecified event kind".into()));
    }
    if !event.origin.county().contains(event.route_key.as_str()) {
        return Err(EventError::Rule(format!(
            "route key {} lies outside county {}",
            event.route_key,
            event.origin.county()
        )));
    }
    Ok(())
}

/// The rule of the kinds that belong to the county alone (catalogue versions, the calendar):
/// authored by the county and sent down to its whole tree. `what` names the kind in the refusal.
pub fn check_county_broadcast(event: &CheckedEvent, what: &str) -> Result<(), EventError> {
    if event.origin.tier() != Tier::County {
        return Err(EventError::Rule(format!(
            "only the county publishes {what}, not {}",
            event.origin
        )));
    }
    if event.route_class() != RouteClass::Down || event.route_key != event.origin {
        return Err(EventError::Rule(format!(
            "{what} travels down from the county to its whole tree"
        )));
    }
    Ok(())
}

/// Checks that an event may arrive at `here` over the link from `from`, given who `from` is.
pub fn check_arrival(event: &CheckedEvent, here: &NodeId, from: &NodeId) -> Result<(), EventError> {
    let from_parent = here.parent().as_ref() == Some(from);
    if from_parent {
        let concerns_us = match event.route_class() {
            RouteClass::Down => event.route_key.contains(here.as_str()),
            RouteClass::Subtree => event.route_key.contains(here.as_str()) || here.contains(event.route_key.as_str()),
            _ => here.contains(event.route_key.as_str()),
        };
        if !concerns_us {
            return Err(EventError::Rule(format!(
                "parent {from} sent an event routed to {} that does not concern {here}",
                event.route_key
            )));
        }
    } else {
        // From a child: it may only pass up what its own subtree wrote about its own subtree.
        if !from.contains(event.origin.as_str()) {
            return Err(EventError::Rule(format!(
                "child {from} relayed an event authored by {}, outside its subtree",
                event.origin
            )));
        }
        // A subtree-class record may come up from anywhere: a box can be scanned at the wrong
        // township, and the county passes it on toward the one concerned.
        let upward = match event.route_class() {
            RouteClass::Path => from.contains(event.route_key.as_str()),
            RouteClass::Subtree => true,
            _ => false,
        };
        if !upward {
            return Err(EventError::Rule(format!(
                "child {from} sent an event routed to {} outside its subtree",
                event.route_key
            )));
        }
    }
    Ok(())
}

/// Where an event goes from `here`, decided once when it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub to_parent: bool,
    /// `Some("*")` for every child, `Some(child)` for one, `None` for none.
    pub route_child: Option<String>,
}

/// Every child link (used for down-class events).
pub const ALL_CHILDREN: &str = "*";

/// Computes where an event stored at `here`, received from `source` (None when authored here),
/// must be forwarded.
pub fn route(here: &NodeId, source: Option<&NodeId>, class: RouteClass, route_key: &NodeId) -> Routing {
    let parent = here.parent();
    let came_from_parent = source.is_some() && source == parent.as_ref();
    match class {
        RouteClass::Down => Routing {
            to_parent: false,
            route_child: (here.tier() != Tier::Village && route_key.contains(here.as_str()))
                .then(|| ALL_CHILDREN.to_owned()),
        },
        // Up to the root whatever the author (every ancestor of the route key is on the way,
        // and an author off the key's path must reach the common ancestor), then down to the
        // key and its whole subtree.
        RouteClass::Subtree => Routing {
            to_parent: !came_from_parent && parent.is_some(),
            route_child: if route_key.contains(here.as_str()) {
                (here.tier() != Tier::Village).then(|| ALL_CHILDREN.to_owned())
            } else {
                here.child_toward(route_key.as_str())
                    .filter(|child| Some(child) != source)
                    .map(String::from)
            },
        },
        _ => {
            let to_parent = !came_from_parent && parent.as_ref().is_some_and(|p| p.contains(route_key.as_str()));
            let route_child = here
                .child_toward(route_key.as_str())
                .filter(|child| Some(child) != source)
                .map(String::from);
            Routing { to_parent, route_child }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn probe_at(origin: &str) -> pb::Event {
        let new = NewEvent {
            principal: format!("node:{origin}"),
            subject: "probe:1".into(),
            route_key: id(origin),
            route_class: RouteClass::Path,
            body: Body::Probe(pb::ProbeRecord {
                case_id: "c1".into(),
                ..Default::default()
            }),
        };
        seal(&id(origin), 1, 42, &new)
    }

    #[test]
    fn a_sealed_event_checks_and_any_edit_breaks_the_hash() {
        let event = probe_at("441424100201");
        assert!(check(event.clone()).is_ok());
        let mut edited = event;
        edited.principal = "node:441424".into();
        assert_eq!(check(edited).unwrap_err(), EventError::HashMismatch);
    }

    #[test]
    fn a_child_may_not_relay_events_from_outside_its_subtree() {
        let event = check(probe_at("441424101201")).unwrap();
        let err = check_arrival(&event, &id("441424"), &id("441424100")).unwrap_err();
        assert!(err.to_string().contains("outside its subtree"), "{err}");
        assert!(check_arrival(&event, &id("441424"), &id("441424101")).is_ok());
    }

    #[test]
    fn only_the_county_publishes_the_calendar_and_only_down() {
        let new = |origin: &str, class| NewEvent {
            principal: format!("node:{origin}"),
            subject: "calendar".into(),
            route_key: id(origin),
            route_class: class,
            body: Body::CalendarPublished(pb::CalendarPublished::default()),
        };
        let county = check(seal(&id("441424"), 1, 1, &new("441424", RouteClass::Down))).unwrap();
        assert!(check_county_broadcast(&county, "the calendar").is_ok());
        let township = check(seal(&id("441424100"), 1, 1, &new("441424100", RouteClass::Down))).unwrap();
        let err = check_county_broadcast(&township, "the calendar")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only the county"), "{err}");
        let up = check(seal(&id("441424"), 1, 1, &new("441424", RouteClass::Path))).unwrap();
        assert!(check_county_broadcast(&up, "the calendar").is_err());
    }

    #[test]
    fn a_village_may_not_author_catalogue_versions() {
        let new = NewEvent {
            principal: "node:441424100201".into(),
            subject: "catalogue".into(),
            route_key: id("441424100201"),
            route_class: RouteClass::Down,
            body: Body::CatalogueVersion(pb::CatalogueVersion::default()),
        };
        let event = check(seal(&id("441424100201"), 1, 1, &new)).unwrap();
        assert!(check_county_broadcast(&event, "catalogue versions").is_err());
    }

    #[test]
    fn routing_sends_path_events_up_and_toward_their_key_but_never_back() {
        let township = id("441424100");
        let village = id("441424100201");
        // Authored at the village, stored at the township: up, not back down.
        let r = route(&township, Some(&village), RouteClass::Path, &village);
        assert_eq!(
            r,
            Routing {
                to_parent: true,
                route_child: None
            }
        );
        // Authored at the county about the village, stored at the township: down only.
        let r = route(&township, Some(&id("441424")), RouteClass::Path, &village);
        assert_eq!(
            r,
            Routing {
                to_parent: false,
                route_child: Some(village.to_string())
            }
        );
        // A catalogue version at the township: to every child.
        let r = route(&township, Some(&id("441424")), RouteClass::Down, &id("441424"));
        assert_eq!(
            r,
            Routing {
                to_parent: false,
                route_child: Some(ALL_CHILDREN.into())
            }
        );
        // At a village nothing goes further down.
        let r = route(&village, Some(&township), RouteClass::Down, &id("441424"));
        assert_eq!(r.route_child, None);
    }

    #[test]
    fn subtree_records_reach_the_root_the_key_and_everything_below_it() {
        let (county, t100, t104) = (id("441424"), id("441424100"), id("441424104"));
        let village = id("441424100201");
        let route_of = |here: &NodeId, from: Option<&NodeId>, key: &NodeId| {
            let r = route(here, from, RouteClass::Subtree, key);
            (r.to_parent, r.route_child)
        };
        // A courier uploads at the county about a trip to 441424100: down toward it only.
        assert_eq!(route_of(&county, None, &t100), (false, Some(t100.to_string())));
        // The township concerned passes it to every village below it.
        assert_eq!(
            route_of(&t100, Some(&county), &t100),
            (false, Some(ALL_CHILDREN.into()))
        );
        // A village receives it and keeps it.
        assert_eq!(route_of(&village, Some(&t100), &t100), (false, None));
        // Recorded at the township concerned: up to the county and down to its villages.
        assert_eq!(route_of(&t100, None, &t100), (true, Some(ALL_CHILDREN.into())));
        // Recorded at the wrong township (a misroute): up to the county, which sends it on.
        assert_eq!(route_of(&t104, None, &t100), (true, None));
        assert_eq!(route_of(&county, Some(&t104), &t100), (false, Some(t100.to_string())));
        // A document registered at a village: up its path, nowhere else.
        assert_eq!(route_of(&village, None, &village), (true, None));
        assert_eq!(route_of(&t100, Some(&village), &village), (true, None));
    }
}
