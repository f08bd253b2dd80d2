//! Properties over random venues with crashes: value conserved after every event, sizes summing
//! to zero, every breached bucket in liquidation (or held by a guard), nobody charged for a
//! market they hold no position in, and the indexed engine byte-identical to the naive one.

use margin_engine::codec::record_line;
use margin_engine::engine::ScanMode;
use margin_engine::event::{Event, Input, MarketParams, ParamsSpec};
use margin_engine::record::Body;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::state::State;
use margin_engine::Engine;
use proptest::prelude::*;

/// Optional guards turned on for every market right after its listing.
fn with_guards(inputs: Vec<Input>, spike: u64, ramp_us: u64) -> Vec<Input> {
    let mut out = Vec::with_capacity(inputs.len() + 16);
    for input in inputs {
        let market = match &input.event {
            Event::Market(m) => Some(m.market),
            _ => None,
        };
        let ts = input.ts;
        out.push(input);
        if let Some(market) = market {
            let params = MarketParams {
                spike_prints: Some(spike),
                ramp_us: Some(ramp_us),
                ..MarketParams::default()
            };
            out.push(Input {
                ts,
                event: Event::Params(Box::new(ParamsSpec::Market { market, params })),
            });
        }
    }
    out
}

fn check_run(inputs: &[Input]) -> Result<(), TestCaseError> {
    let mut engine = Engine::new();
    let mut naive = Engine::with_scan(State::default(), ScanMode::Naive);
    for (i, input) in inputs.iter().enumerate() {
        let before = engine.state.clone();
        let out = engine.apply(input).to_vec();
        let reference: Vec<String> = naive.apply(input).iter().map(record_line).collect();
        let got: Vec<String> = out.iter().map(record_line).collect();
        prop_assert_eq!(
            &got,
            &reference,
            "input {} differs from the naive engine",
            i + 1
        );
        let broken = margin_engine::invariants::check(&engine.state);
        prop_assert!(broken.is_empty(), "input {}: {:?}", i + 1, broken);
        // Sizes as the event's own records move them: a liquidator can take a position and be
        // deleveraged against in the same event.
        let mut sizes: std::collections::BTreeMap<(u64, String), i128> = Default::default();
        for r in &out {
            match &r.body {
                Body::Position {
                    account,
                    market,
                    size,
                    ..
                } => {
                    sizes.insert((account.0, market.to_string()), size.value);
                }
                Body::Adl {
                    account,
                    market,
                    side,
                    size: taken,
                    ..
                } => {
                    // The counterparty held the opposite position, at least as large, when it
                    // was charged: its size just before this ADL (whose own position record
                    // comes first) was on the other side.
                    let after = sizes.get(&(account.0, market.to_string())).copied();
                    let after = after.unwrap_or_else(|| {
                        let m = before.venue.market_id(market).unwrap();
                        let acc = before.account(*account).unwrap();
                        i128::from(acc.bucket_for(m).size(m).0)
                    });
                    let opposite = match side {
                        margin_engine::ids::Side::Buy => after - taken.value <= -taken.value,
                        margin_engine::ids::Side::Sell => after + taken.value >= taken.value,
                    } && taken.value > 0;
                    prop_assert!(
                        opposite,
                        "input {}: ADL charged account {} without an opposite position",
                        i + 1,
                        account
                    );
                }
                _ => {}
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_venues_with_crashes_keep_every_invariant(
        seed in any::<u64>(),
        accounts in 10u32..60,
        events in 300u64..1500,
        markets in 3u8..6,
        crash_at in 100u32..900,
        crash_depth in 1000u32..6000,
        hours in 1u32..8,
    ) {
        let cfg = ScenarioConfig { seed, accounts, events, markets, crash_at_permille: crash_at, crash_depth_bps: crash_depth, hours, ..ScenarioConfig::default() };
        let inputs: Vec<Input> = Scenario::new(cfg).collect();
        check_run(&inputs)?;
    }

    /// Portfolio margin on a random share of the traders over a random number of scenarios:
    /// conservation, the ordering of the portfolio figures and the naive engine's bytes after
    /// every event, crashes included.
    #[test]
    fn random_portfolio_venues_with_crashes_keep_every_invariant(
        seed in any::<u64>(),
        accounts in 10u32..60,
        events in 300u64..1500,
        crash_at in 100u32..900,
        crash_depth in 1000u32..6000,
        portfolio in 100u32..1000,
        scenarios in 1u8..64,
    ) {
        let cfg = ScenarioConfig { seed, accounts, events, markets: 4, crash_at_permille: crash_at, crash_depth_bps: crash_depth, hours: 3, portfolio_permille: portfolio, risk_scenarios: scenarios };
        let inputs: Vec<Input> = Scenario::new(cfg).collect();
        check_run(&inputs)?;
    }

    #[test]
    fn guards_never_break_an_invariant(
        seed in any::<u64>(),
        spike in 0u64..4,
        ramp_s in 0u64..120,
    ) {
        let cfg = ScenarioConfig { seed, accounts: 30, events: 800, markets: 3, hours: 2, ..ScenarioConfig::default() };
        let inputs = with_guards(Scenario::new(cfg).collect(), spike, ramp_s * 1_000_000);
        check_run(&inputs)?;
    }
}
