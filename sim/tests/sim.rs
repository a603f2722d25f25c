//! The simulation's seeds: a quick set in `cargo test --workspace`, the determinism check, and
//! (ignored, run by hand or nightly) a replay of one seed and the long run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tongban_domains::ids::NodeId;
use tongban_sim::check::{self, NodeState, OwnEvent};
use tongban_sim::{Options, run_seed};

/// Seeds every `cargo test` runs: about fifteen seconds each in a debug build on two cores, so
/// the set and the twice-run check stay within two minutes.
const QUICK_SEEDS: std::ops::RangeInclusive<u64> = 1..=5;

#[test]
fn quick_set_of_seeds_keeps_every_invariant() {
    let options = Options::default();
    for seed in QUICK_SEEDS {
        let outcome = run_seed(seed, &options);
        assert!(outcome.ok(), "{}", outcome.report());
        assert!(
            outcome.faults > 0,
            "seed {seed} injected no fault:\n{}",
            outcome.report()
        );
        assert!(outcome.events_checked > 0, "seed {seed} checked no event");
    }
}

#[test]
fn a_seed_run_twice_repeats_its_trace_and_final_state() {
    let options = Options::default();
    let first = run_seed(42, &options);
    let second = run_seed(42, &options);
    assert!(first.ok(), "{}", first.report());
    assert_eq!(
        first.steps(),
        second.steps(),
        "first:\n{}\nsecond:\n{}",
        first.report(),
        second.report()
    );
    assert_eq!(first.final_hash, second.final_hash);
    assert_eq!(first.events_checked, second.events_checked);
}

/// Replays `TONGBAN_SIM_SEED` and prints its trace.
#[test]
#[ignore = "run by hand with TONGBAN_SIM_SEED"]
fn replay() {
    let seed = std::env::var("TONGBAN_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("set TONGBAN_SIM_SEED to the seed to replay"));
    let outcome = run_seed(seed, &Options::default());
    println!("{}final state {}", outcome.report(), outcome.final_hash);
    assert!(outcome.ok());
}

/// `TONGBAN_SIM_SEEDS` seeds (default 200) from `TONGBAN_SIM_FIRST_SEED` (default 1000), with
/// a figure at the end: seeds run, faults injected, events checked.
#[test]
#[ignore = "the long run: cargo test --release -p tongban-sim --test sim long_run -- --ignored --nocapture"]
fn long_run() {
    let count: u64 = std::env::var("TONGBAN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let first: u64 = std::env::var("TONGBAN_SIM_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let started = Instant::now();
    let (mut faults, mut events, mut failed) = (0, 0, Vec::new());
    let (mut warnings, mut where_is) = (0, 0);
    for seed in first..first + count {
        let outcome = run_seed(seed, &Options::default());
        faults += outcome.faults;
        events += outcome.events_checked;
        warnings += outcome.warnings_checked;
        where_is += outcome.where_is_checked;
        if !outcome.ok() {
            eprintln!("{}", outcome.report());
            failed.push(seed);
        }
    }
    println!(
        "long run: {count} seeds from {first}, {faults} faults injected, {events} events, {warnings} warnings and {where_is} where-is answers checked, {} failed {failed:?}, in {:.0?}",
        failed.len(),
        started.elapsed()
    );
    assert!(failed.is_empty(), "seeds failed: {failed:?}");
}

fn id(code: &str) -> NodeId {
    NodeId::new(code.to_owned()).expect("valid test node id")
}

/// A village, its township and the county, where the village authored one case event that
/// reached both; `drop_at_county` leaves it out of the county's log.
fn three_nodes(drop_at_county: bool) -> (Vec<NodeId>, BTreeMap<NodeId, NodeState>) {
    let (county, township, village) = (id("441424"), id("441424100"), id("441424100201"));
    let tree = vec![county.clone(), township.clone(), village.clone()];
    let event = ("441424100201".to_owned(), 1);
    let mut states = BTreeMap::new();
    let mut v = NodeState::default();
    v.own.insert(
        1,
        OwnEvent {
            seq: 1,
            route_class: tongban_proto::v1::RouteClass::Path as i32,
            route_key: village.to_string(),
            refused: String::new(),
        },
    );
    v.own_count = 1;
    v.from_origin.insert(village.to_string(), 1);
    states.insert(village.clone(), v);
    for node in [&township, &county] {
        let mut s = NodeState::default();
        if !(drop_at_county && *node == county) {
            s.present = BTreeSet::from([event.clone()]);
            s.from_origin.insert(village.to_string(), 1);
        }
        states.insert(node.clone(), s);
    }
    (tree, states)
}

#[test]
fn the_check_passes_a_sound_tree_and_finds_an_event_skipped_on_the_way() {
    let (tree, sound) = three_nodes(false);
    assert_eq!(check::check(&tree, &sound, &Default::default()), Vec::<String>::new());
    let (tree, skipped) = three_nodes(true);
    let broken = check::check(&tree, &skipped, &Default::default());
    assert!(
        broken
            .iter()
            .any(|b| b.contains("441424: missing event 441424100201#1")),
        "{broken:?}"
    );
}

/// A county and one township that agree on everything the custody, calendar and warning checks
/// read: one box, one anomaly, one warning.
fn agreeing_pair() -> (Vec<NodeId>, BTreeMap<NodeId, NodeState>) {
    let (county, township) = (id("441424"), id("441424100"));
    let tree = vec![county.clone(), township.clone()];
    let mut states = BTreeMap::new();
    for node in &tree {
        let mut s = NodeState {
            calendar: "published by county event Some(3): {…}".into(),
            ..NodeState::default()
        };
        s.where_is.insert(
            "box-441424100".into(),
            r#"Whereabouts { place: "441424", recorded_at: "441424100" }"#.into(),
        );
        s.anomalies.insert(
            township.to_string(),
            BTreeSet::from([r#"Anomaly { key: "misroute/trip/t1", kind: Misroute }"#.to_owned()]),
        );
        let warning = "441424100-20261123-0001 Acceptance Yellow 1 left, deadline 2026-11-30".to_owned();
        s.warnings.insert(warning.clone());
        s.recomputed.insert(warning);
        states.insert(node.clone(), s);
    }
    (tree, states)
}

fn broken_after(change: impl FnOnce(&mut BTreeMap<NodeId, NodeState>)) -> Vec<String> {
    let (tree, mut states) = agreeing_pair();
    change(&mut states);
    check::check(&tree, &states, &Default::default())
}

#[test]
fn the_check_passes_a_county_and_township_that_agree_on_custody_calendar_and_warnings() {
    assert_eq!(broken_after(|_| {}), Vec::<String>::new());
}

#[test]
fn the_check_finds_a_node_on_another_calendar() {
    let broken = broken_after(|s| s.get_mut(&id("441424100")).unwrap().calendar = "built in".into());
    assert!(
        broken
            .iter()
            .any(|b| b.starts_with("441424100: counts on calendar built in")),
        "{broken:?}"
    );
}

#[test]
fn the_check_finds_where_is_disagreeing_between_county_and_township() {
    let broken = broken_after(|s| {
        s.get_mut(&id("441424")).unwrap().where_is.insert(
            "box-441424100".into(),
            r#"Whereabouts { place: "441424100", recorded_at: "441424100" }"#.into(),
        );
    });
    assert!(
        broken.iter().any(|b| b.contains("where-is box-441424100 says")),
        "{broken:?}"
    );
}

#[test]
fn where_is_must_name_the_same_recorder_unless_told_otherwise() {
    let (tree, mut states) = agreeing_pair();
    states.get_mut(&id("441424")).unwrap().where_is.insert(
        "box-441424100".into(),
        r#"Whereabouts { place: "441424", recorded_at: "441424" }"#.into(),
    );
    let strict = check::check(&tree, &states, &Default::default());
    assert!(
        strict.iter().any(|b| b.contains("where-is box-441424100 says")),
        "{strict:?}"
    );
    let lenient = check::check_with(&tree, &states, &Default::default(), false);
    assert_eq!(lenient, Vec::<String>::new());
}

#[test]
fn the_check_finds_anomalies_disagreeing_but_leaves_device_gaps_to_the_county() {
    let broken = broken_after(|s| {
        s.get_mut(&id("441424100"))
            .unwrap()
            .anomalies
            .get_mut("441424100")
            .unwrap()
            .insert(r#"Anomaly { key: "seal_broken/trip/t1", kind: SealBroken }"#.into());
    });
    assert!(
        broken
            .iter()
            .any(|b| b.starts_with("441424100: lists anomaly") && b.contains("seal_broken")),
        "{broken:?}"
    );
    let gap_at_county = broken_after(|s| {
        s.get_mut(&id("441424"))
            .unwrap()
            .anomalies
            .get_mut("441424100")
            .unwrap()
            .insert(r#"Anomaly { key: "device_sequence_gap/pda/3", kind: DeviceSequenceGap }"#.into());
    });
    assert_eq!(gap_at_county, Vec::<String>::new());
}

#[test]
fn the_check_finds_a_warning_list_that_differs_from_its_recomputation() {
    let broken = broken_after(|s| {
        let township = s.get_mut(&id("441424100")).unwrap();
        township.warnings.clear();
        township
            .warnings
            .insert("441424100-20261123-0001 Acceptance Red -1 left, deadline 2026-11-30".into());
    });
    assert!(
        broken
            .iter()
            .any(|b| b.contains("441424100: warns") && b.contains("Red")),
        "{broken:?}"
    );
    assert!(
        broken
            .iter()
            .any(|b| b.contains("441424100: does not warn") && b.contains("Yellow")),
        "{broken:?}"
    );
}

/// Seed 6 uploads a courier's scans at a township and at the county while the link between
/// them is cut: both record the scans. Each used to keep the copy it recorded itself, so their
/// custody chains named different recorders for ever; every node now keeps the earliest.
#[test]
fn seed_6_a_scan_recorded_at_two_nodes_names_one_recorder_everywhere() {
    let options = Options {
        recorder_must_agree: true,
        ..Options::default()
    };
    let outcome = run_seed(6, &options);
    assert!(outcome.ok(), "{}", outcome.report());
}
