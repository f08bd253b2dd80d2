//! Work per event that does not grow with the venue: an event that changes only the buckets it
//! names and emits no risk record (a fill, a deposit or withdrawal, an order or cancel) visits
//! at most the buckets it changed and ranks nobody for ADL, whatever the number of accounts.
//! Counted, not timed: `Engine::visits` (pass visits) and `Engine::ranked` (holders valued for
//! ADL rankings). The naive mode, which looks at every exposed bucket where the indices look at
//! a few, breaks the same bound on some events (so the check can fail).
//!
//! What is *not* bounded this way is stated in docs/ARCHITECTURE.md: an oracle print visits the
//! buckets whose band it crossed (most of them emit nothing), and an ADL close values the
//! holders changed since its ranking was last read and those whose bound reaches the choice.

use margin_engine::engine::ScanMode;
use margin_engine::record::Body;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::state::State;
use margin_engine::Engine;

/// Buckets an event of this type changes at most (a fill: both sides).
fn changed_at_most(event_type: &str) -> Option<u64> {
    match event_type {
        "fill" => Some(2),
        "deposit" | "withdraw" => Some(1),
        "order" | "cancel" => Some(0),
        _ => None,
    }
}

fn is_risk_record(b: &Body) -> bool {
    matches!(
        b,
        Body::MarginCall { .. }
            | Body::LiquidationStarted { .. }
            | Body::LiquidationFill { .. }
            | Body::LiquidationEnded { .. }
            | Body::Bankruptcy { .. }
            | Body::Adl { .. }
            | Body::Insurance { .. }
            | Body::InsuranceAsset { .. }
    )
}

/// (events checked, events over the bound) for a scenario of `accounts`.
fn over_bound(accounts: u32, events: u64, scan: ScanMode) -> (u64, u64) {
    let (checked, visits, ranked) = over_bound_by(accounts, events, scan);
    (checked, visits.max(ranked))
}

/// (events checked, events over the visit bound, events that ranked).
fn over_bound_by(accounts: u32, events: u64, scan: ScanMode) -> (u64, u64, u64) {
    let mut engine = Engine::with_scan(State::default(), scan);
    let (mut checked, mut over_visits, mut over_ranked) = (0, 0, 0);
    for input in Scenario::new(ScenarioConfig {
        accounts,
        events,
        ..ScenarioConfig::default()
    }) {
        let (v0, k0) = (engine.visits, engine.ranked);
        let records = engine.apply(&input);
        let quiet = !records.iter().any(|r| is_risk_record(&r.body));
        let (visits, ranked) = (engine.visits - v0, engine.ranked - k0);
        if let (Some(max), true) = (changed_at_most(input.event.type_name()), quiet) {
            checked += 1;
            over_visits += u64::from(visits > max);
            over_ranked += u64::from(ranked > 0);
        }
    }
    (checked, over_visits, over_ranked)
}

#[test]
fn quiet_trading_events_visit_only_the_buckets_they_change_at_any_size() {
    for accounts in [300, 3000] {
        let (checked, over) = over_bound(accounts, 12_000, ScanMode::Indexed);
        assert!(
            checked > 10_000,
            "{accounts} accounts: {checked} events checked"
        );
        assert_eq!(
            over, 0,
            "{accounts} accounts: {over} of {checked} events over the bound"
        );
    }
}

#[test]
fn the_naive_mode_breaks_the_same_bound() {
    let (checked, visits, ranked) = over_bound_by(300, 12_000, ScanMode::Naive);
    eprintln!("naive: {visits} over the visit bound, {ranked} ranked, of {checked}");
    assert!(
        visits.max(ranked) > 0,
        "naive: none of {checked} events over the bound"
    );
}
