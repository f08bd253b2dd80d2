//! Work per event against records per event, over a generated scenario (a crash included):
//! pass visits and ADL ranking valuations, the largest ratio to (records + 1) per event type.
//! `cargo run --release -p margin-bench --example work_bound -- [accounts] [steps] [naive]`

use margin_engine::engine::ScanMode;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::state::State;
use margin_engine::Engine;
use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let accounts = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let events = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30_000);
    let scan = if args.get(3).is_some_and(|a| a == "naive") {
        ScanMode::Naive
    } else {
        ScanMode::Indexed
    };
    let mut engine = Engine::with_scan(State::default(), scan);
    // type -> (events, max visits/(r+1), max ranked/(r+1), total visits, total ranked)
    let mut by_type: BTreeMap<&str, (u64, u64, u64, u64, u64)> = BTreeMap::new();
    for input in Scenario::new(ScenarioConfig {
        accounts,
        events,
        ..ScenarioConfig::default()
    }) {
        let (v0, k0) = (engine.visits, engine.ranked);
        let r = engine.apply(&input).len() as u64;
        let (v, k) = (engine.visits - v0, engine.ranked - k0);
        let e = by_type.entry(input.event.type_name()).or_default();
        e.0 += 1;
        e.1 = e.1.max(v / (r + 1));
        e.2 = e.2.max(k / (r + 1));
        e.3 += v;
        e.4 += k;
    }
    println!(
        "{:<12} {:>8} {:>14} {:>14} {:>12} {:>12}",
        "type", "events", "max visits/r+1", "max ranked/r+1", "visits", "ranked"
    );
    for (t, (n, mv, mk, v, k)) in &by_type {
        println!("{t:<12} {n:>8} {mv:>14} {mk:>14} {v:>12} {k:>12}");
    }
}
