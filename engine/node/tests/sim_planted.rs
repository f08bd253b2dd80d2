//! The simulation catches planted bugs. Each bug is a runtime switch compiled in only with the
//! `planted-bugs` feature (on for test builds, off in release builds). This file is its own
//! test binary, so the switches cannot leak into the other tests.

use margin_journal::faults::planted::{set, Bug};
use margin_node::sim::{run_one, SimStats};

/// Runs seeds until one fails; the number of runs it took, if any did within `runs`.
fn caught_within(bug: Bug, runs: u64) -> Option<(u64, String)> {
    let root = tempfile::tempdir().unwrap();
    set(bug, true);
    let mut stats = SimStats::default();
    let mut found = None;
    for seed in 1..=runs {
        if let Err(f) = run_one(seed * 7919, root.path(), &mut stats) {
            found = Some((seed, f.to_string()));
            break;
        }
    }
    set(bug, false);
    found
}

#[test]
fn planted_bugs_are_caught() {
    for bug in [Bug::SkipCrc, Bug::DoubleApply] {
        let caught = caught_within(bug, 40);
        eprintln!("{bug:?}: {caught:?}");
        assert!(
            caught.is_some(),
            "the simulation missed the planted bug {bug:?}"
        );
    }
    // And with every switch off the same seeds pass.
    let root = tempfile::tempdir().unwrap();
    let mut stats = SimStats::default();
    for seed in 1..=3 {
        run_one(seed * 7919, root.path(), &mut stats).unwrap_or_else(|f| panic!("{f}"));
    }
}
