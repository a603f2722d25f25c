//! `tongban sim`: the county on simulated time ([`tongban_sim`]) over a range of seeds, ending
//! with the figure the README quotes (seeds run, faults injected, events, warnings and where-is
//! answers checked). Runs on the calling thread with no runtime of its own: the simulation
//! builds its own, and waits for every other thread of the process between its steps.

use std::process::ExitCode;
use std::time::Instant;

use tongban_sim::{Options, run_seed};

#[derive(clap::Args)]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed; a failing seed replays alone with `--first SEED --seeds 1`.
    #[arg(long, default_value_t = 1000)]
    first: u64,
    /// Print every seed's trace, not only the failing ones'.
    #[arg(long)]
    trace: bool,
}

pub fn run(args: SimArgs) -> ExitCode {
    let started = Instant::now();
    let options = Options::default();
    let (mut faults, mut events, mut warnings, mut where_is) = (0, 0, 0, 0);
    let mut failed = Vec::new();
    for seed in args.first..args.first.saturating_add(args.seeds) {
        let outcome = run_seed(seed, &options);
        faults += outcome.faults;
        events += outcome.events_checked;
        warnings += outcome.warnings_checked;
        where_is += outcome.where_is_checked;
        if !outcome.ok() {
            failed.push(seed);
            eprintln!("{}", outcome.report());
        } else if args.trace {
            println!("{}", outcome.report());
        } else {
            println!(
                "seed {seed}: ok ({} faults, {} events checked)",
                outcome.faults, outcome.events_checked
            );
        }
    }
    println!(
        "{} seeds from {}, {faults} faults injected, {events} events, {warnings} warnings and {where_is} where-is \
         answers checked, {} failed {failed:?}, in {:.0?}",
        args.seeds,
        args.first,
        failed.len(),
        started.elapsed()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
