//! The price-tick index decides only which buckets to look at. Whatever it decides, the outputs
//! must be those of the naive engine that looks at every exposed bucket on every tick: the same
//! streams through both give the same bytes.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests read their venues from files

use margin_engine::codec::{parse_input, record_line};
use margin_engine::engine::ScanMode;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::state::State;
use margin_engine::{Engine, Input};

fn outputs(inputs: &[Input], scan: ScanMode) -> Vec<String> {
    let mut engine = Engine::with_scan(State::default(), scan);
    let mut out = Vec::new();
    for input in inputs {
        out.extend(engine.apply(input).iter().map(record_line));
    }
    out
}

fn assert_same(inputs: &[Input], what: &str) {
    let naive = outputs(inputs, ScanMode::Naive);
    let indexed = outputs(inputs, ScanMode::Indexed);
    let first_diff = naive.iter().zip(&indexed).position(|(a, b)| a != b);
    assert!(
        first_diff.is_none() && naive.len() == indexed.len(),
        "{what}: indexed and naive outputs differ at record {:?}:\n naive:   {:?}\n indexed: {:?}",
        first_diff,
        first_diff.map(|i| &naive[i]),
        first_diff.map(|i| &indexed[i]),
    );
}

/// A small venue with a crash whose start and depth vary with the seed.
fn crash(seed: u64) -> ScenarioConfig {
    ScenarioConfig::small_crash(seed)
}

#[test]
fn scenarios_with_crashes_give_the_same_bytes() {
    for seed in 1..=6 {
        let inputs: Vec<Input> = Scenario::new(crash(seed)).collect();
        assert_same(&inputs, &format!("seed {seed}"));
    }
}

/// A third of the traders on portfolio margin over 24 scenarios: the bands of portfolio
/// buckets (their rates read the scenario moves, the floor and le_factor) must never hide a
/// bucket the naive scan would act on.
#[test]
fn portfolio_scenarios_with_crashes_give_the_same_bytes() {
    for seed in 1..=4 {
        let cfg = ScenarioConfig {
            portfolio_permille: 333,
            risk_scenarios: 24,
            ..crash(seed)
        };
        let inputs: Vec<Input> = Scenario::new(cfg).collect();
        let portfolio: Vec<u64> = inputs
            .iter()
            .filter_map(|i| match i.event {
                margin_engine::Event::CrossMode { account, .. } => Some(account.0),
                _ => None,
            })
            .collect();
        assert!(portfolio.len() >= 45, "seed {seed}: {portfolio:?}");
        assert_same(&inputs, &format!("portfolio seed {seed}"));
        // The crash must reach portfolio buckets, or the comparison says little about them.
        let started = outputs(&inputs, ScanMode::Indexed)
            .iter()
            .filter(|l| l.contains("\"liquidation_started\""))
            .filter(|l| {
                portfolio
                    .iter()
                    .any(|a| l.contains(&format!("\"account\":{a},")))
            })
            .count();
        assert!(
            started > 0,
            "seed {seed}: no portfolio bucket was liquidated"
        );
        eprintln!("portfolio seed {seed}: {started} portfolio liquidations");
    }
}

#[test]
fn conformance_streams_give_the_same_bytes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path().join("events.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let inputs: Vec<Input> = text.lines().filter_map(|l| parse_input(l).ok()).collect();
        assert_same(&inputs, &path.display().to_string());
    }
}
