//! The deterministic simulation under CI's budget: seeded venues through the real pipeline with
//! storage faults and restarts (see `margin_node::sim`). A failure prints the run seed that
//! reproduces it; `margin-engine simulate --seconds N` runs longer.

use margin_node::sim::{simulate, SimConfig};
use std::time::Duration;

/// Seconds of simulation in `cargo test` (SIM_SECONDS overrides, for a longer local run).
fn budget() -> Duration {
    let secs = std::env::var("SIM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    Duration::from_secs(secs)
}

#[test]
fn simulation_finds_no_failure() {
    let root = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        seed: 0x5eed_0001,
        budget: budget(),
        runs_max: u64::MAX,
        root: root.path().to_path_buf(),
    };
    let stats = simulate(&cfg, |_| {}).unwrap_or_else(|f| panic!("{f}"));
    eprintln!("{stats:#?}");
    assert!(stats.runs >= 1);
    assert!(stats.restarts > 0, "runs restarted");
    assert!(stats.faults_total() > 0, "faults fired");
}
