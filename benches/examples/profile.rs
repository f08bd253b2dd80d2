//! Times `Engine::apply` per event type over a generated scenario (inputs made up front).
//! `cargo run --release -p margin-bench --example profile -- [accounts] [steps] [naive|indexed]
//! [repeat] [portfolio per mille] [crash at per mille]` (portfolio: traders on portfolio margin
//! over 24 scenarios; crash: where in the stream the crash starts, 1000 for none).

use hdrhistogram::Histogram;
use margin_engine::engine::ScanMode;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::state::State;
use margin_engine::Engine;
use std::collections::BTreeMap;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let accounts = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let events = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let scan = if args.get(3).is_some_and(|a| a == "naive") {
        ScanMode::Naive
    } else {
        ScanMode::Indexed
    };
    let repeat: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
    let portfolio_permille = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(0);
    let crash_at_permille = args
        .get(6)
        .and_then(|a| a.parse().ok())
        .unwrap_or(ScenarioConfig::default().crash_at_permille);
    let inputs: Vec<_> = Scenario::new(ScenarioConfig {
        accounts,
        events,
        portfolio_permille,
        crash_at_permille,
        risk_scenarios: 24,
        ..ScenarioConfig::default()
    })
    .collect();
    for _ in 1..repeat {
        let mut e = Engine::with_scan(State::default(), scan);
        for input in &inputs {
            e.apply(input);
        }
    }
    let mut engine = Engine::with_scan(State::default(), scan);
    let mut by_type: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
    let t0 = Instant::now();
    let mut visits: BTreeMap<&str, u64> = BTreeMap::new();
    // The slowest events: (ns, input seq, type, records by type).
    let mut slowest: Vec<(u64, u64, &str, String)> = Vec::new();
    for input in &inputs {
        let t = Instant::now();
        let (v0, k0) = (engine.visits, engine.ranked);
        let records = engine.apply(input);
        let ns = t.elapsed().as_nanos() as u64;
        if slowest.len() < 8 || ns > slowest[slowest.len() - 1].0 {
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for r in records {
                *kinds.entry(r.body.type_name()).or_insert(0) += 1;
            }
            let mut kinds = kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>();
            kinds.push(format!(
                "[visits {}, ADL valuations {}]",
                engine.visits - v0,
                engine.ranked - k0
            ));
            slowest.push((
                ns,
                engine.state.input_seq,
                input.event.type_name(),
                kinds.join(", "),
            ));
            slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
            slowest.truncate(8);
        }
        *visits.entry(input.event.type_name()).or_insert(0) += engine.visits - v0;
        by_type
            .entry(input.event.type_name())
            .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap())
            .saturating_record(ns.max(1));
    }
    let total = t0.elapsed();
    println!(
        "{} inputs in {:?} ({} /s)",
        inputs.len(),
        total,
        inputs.len() as u128 * 1_000_000_000 / total.as_nanos()
    );
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10} {:>8}",
        "type", "count", "p50", "p90", "p99", "max", "total ms", "visits"
    );
    for (t, h) in &by_type {
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10} {:>8}",
            t,
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.max(),
            h.iter_recorded()
                .map(|v| v.value_iterated_to() * v.count_at_value())
                .sum::<u64>()
                / 1_000_000,
            format!(
                "{}.{:02}",
                visits[t] / h.len().max(1),
                visits[t] * 100 / h.len().max(1) % 100
            )
        );
    }
    println!(
        "bucket visits in all: {}; ADL holders ranked: {}",
        visits.values().sum::<u64>(),
        engine.ranked
    );
    println!("slowest events:");
    for (ns, seq, t, kinds) in &slowest {
        println!("  {:>10} ns  input {seq} {t}: {kinds}", ns);
    }
}
