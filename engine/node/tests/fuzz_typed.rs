//! A structured fuzz harness over *typed* events (the habit that would have caught the poison
//! pill): every event type with values drawn from the edges (i128 and u64 bounds, zero, minus
//! one, the largest scale, non-canonical decimals, odd names, ids far off) goes through the
//! binary codec, the JSON codec and `Engine::apply`. Properties:
//! - the binary reader never panics and accepts a frame only if the JSON codec could have made
//!   the same input (so both codecs feed the state machine the same set); set-up events travel
//!   as JSON text inside the record and are what the JSON codec makes of it;
//! - whatever the binary reader accepts round-trips through the JSON codec unchanged;
//! - `apply` never panics, and a rejection that does not move the clock leaves the state as it
//!   was (but for the seqs).

use margin_engine::codec::{input_line, parse_input};
use margin_engine::event::{Event, FillSpec, Input, OrderSpec, RiskScenariosSpec, ScenarioSpec};
use margin_engine::ids::{AccountId, MarginMode, OrderId, Side, Symbol};
use margin_engine::num::Dec;
use margin_engine::persist::state_hashes;
use margin_engine::record::Body;
use margin_engine::Engine;
use margin_node::server::conn::{Reader, Request, BINARY_MAGIC};
use proptest::prelude::*;

const VENUE: &str = include_str!("../../../examples/venue.jsonl");

fn mantissa() -> impl Strategy<Value = i128> {
    prop_oneof![
        Just(i128::MIN),
        Just(i128::MIN + 1),
        Just(i128::MAX),
        Just(0),
        Just(-1),
        Just(1),
        Just(10),
        Just(1_000_000_000_000_000_000_000_000_000_000),
        any::<i64>().prop_map(i128::from),
        any::<i128>(),
    ]
}

fn dec() -> impl Strategy<Value = Dec> {
    let scale = prop_oneof![
        Just(0u8),
        Just(1),
        Just(6),
        Just(18),
        Just(38),
        Just(39),
        Just(255),
        any::<u8>()
    ];
    (mantissa(), scale).prop_map(|(m, s)| Dec::from_raw_parts(m, s))
}

fn symbol() -> impl Strategy<Value = Symbol> {
    prop_oneof![
        4 => prop::sample::select(vec!["USDC", "BTC", "ETH", "SOL", "BTC-PERP", "ETH-PERP", "SOL-PERP", "DOGE"])
            .prop_map(|s| Symbol::new(s).unwrap()),
        1 => "[A-Za-z0-9._/:-]{1,32}".prop_map(|s| Symbol::new(&s).unwrap()),
    ]
}

fn account() -> impl Strategy<Value = AccountId> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        1u64..40,
        1000u64..1100,
        any::<u64>()
    ]
    .prop_map(AccountId)
}

fn u64_edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        0u64..100,
        any::<u64>()
    ]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

/// Names of a scenario set: valid ones, too long ones, and any text (quotes, escapes, non-ASCII).
fn set_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("crypto".to_string()),
        "[A-Za-z0-9._/:-]{1,40}",
        "\\PC{0,6}",
    ]
}

fn risk_scenarios() -> impl Strategy<Value = Event> {
    let asset = prop_oneof![
        prop::sample::select(vec!["BTC", "ETH", "USDC", "DOGE"]).prop_map(str::to_string),
        "\\PC{0,4}",
    ];
    let scenario = (
        set_name(),
        dec(),
        prop::collection::vec((asset, dec()), 0..4),
    )
        .prop_map(|(name, weight, moves)| ScenarioSpec {
            name,
            weight,
            moves,
        });
    let version = prop_oneof![
        Just(1i128),
        Just(0),
        Just(-1),
        Just(i128::from(i64::MAX)),
        Just(i128::from(u64::MAX)),
        any::<i64>().prop_map(i128::from),
    ];
    (
        set_name(),
        version,
        prop::option::of(dec()),
        prop::option::of(dec()),
        prop::collection::vec(scenario, 0..4),
    )
        .prop_map(|(name, version, im_factor, le_factor, scenarios)| {
            Event::RiskScenarios(Box::new(RiskScenariosSpec {
                name,
                version,
                im_factor,
                le_factor,
                scenarios,
            }))
        })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (account(), any::<bool>())
            .prop_map(|(account, portfolio)| Event::CrossMode { account, portfolio }),
        risk_scenarios(),
        (account(), symbol(), dec()).prop_map(|(account, asset, amount)| Event::Deposit {
            account,
            asset,
            amount
        }),
        (account(), symbol(), dec()).prop_map(|(account, asset, amount)| Event::Withdraw {
            account,
            asset,
            amount
        }),
        (account(), symbol(), dec()).prop_map(|(account, market, amount)| Event::Isolate {
            account,
            market,
            amount
        }),
        (account(), symbol(), any::<bool>()).prop_map(|(account, market, iso)| Event::MarginMode {
            account,
            market,
            mode: if iso {
                MarginMode::Isolated
            } else {
                MarginMode::Cross
            },
        }),
        (dec(), prop::option::of(symbol()))
            .prop_map(|(amount, market)| Event::Insurance { amount, market }),
        (
            account(),
            u64_edge(),
            symbol(),
            side(),
            dec(),
            dec(),
            any::<bool>()
        )
            .prop_map(|(account, order, market, side, price, size, reduce_only)| {
                Event::Order(OrderSpec {
                    account,
                    order: OrderId(order),
                    market,
                    side,
                    price,
                    size,
                    reduce_only,
                })
            }),
        (account(), u64_edge()).prop_map(|(account, order)| Event::Cancel {
            account,
            order: OrderId(order)
        }),
        (
            symbol(),
            account(),
            account(),
            side(),
            dec(),
            dec(),
            prop::option::of(dec()),
            prop::option::of(dec())
        )
            .prop_map(
                |(market, taker, maker, side, price, size, taker_fee, maker_fee)| Event::Fill(
                    FillSpec {
                        market,
                        taker,
                        maker,
                        side,
                        price,
                        size,
                        taker_order: None,
                        maker_order: None,
                        taker_fee,
                        maker_fee,
                    }
                )
            ),
        (symbol(), u64_edge(), dec()).prop_map(|(asset, source, price)| Event::Oracle {
            asset,
            source,
            price
        }),
        (symbol(), dec()).prop_map(|(market, rate)| Event::Funding { market, rate }),
        (account(), account(), symbol(), dec()).prop_map(|(liquidator, account, market, size)| {
            Event::Liquidate {
                liquidator,
                account,
                market,
                size,
            }
        }),
    ]
}

fn ts() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        1_000_000u64..4_000_000_000,
        any::<u64>()
    ]
}

fn frame(input: &Input) -> Vec<u8> {
    let mut payload = Vec::new();
    margin_engine::codec::binary::encode(input, &mut payload);
    let mut f = BINARY_MAGIC.to_vec();
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u32).to_le_bytes());
    f.extend_from_slice(&1u64.to_le_bytes());
    f.extend_from_slice(&payload);
    f
}

fn venue() -> Engine {
    let mut e = Engine::new();
    for l in VENUE.lines().take(200) {
        e.apply(&parse_input(l).unwrap());
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn typed_extreme_events_through_both_codecs_and_the_state_machine(
        events in prop::collection::vec((ts(), event()), 1..12),
    ) {
        let mut engine = venue();
        for (ts, event) in events {
            let input = Input { ts, event };
            let mut r = Reader::default();
            let mut got = Vec::new();
            r.feed(&frame(&input), &mut got);
            prop_assert_eq!(got.len(), 1);
            let canonical = input.check_wire().is_ok();
            // Set-up events travel as their JSON line inside the record, so what arrives is
            // what the JSON codec makes of that text (a non-canonical decimal's text may parse).
            let setup = matches!(
                input.event,
                Event::Asset(_) | Event::Market(_) | Event::Params(_) | Event::RiskScenarios(_)
            );
            match &got[0] {
                Request::Event { input: decoded, .. } => {
                    prop_assert!(canonical || setup, "accepted a frame the JSON codec cannot make");
                    prop_assert_eq!(decoded.check_wire(), Ok(()));
                    if canonical {
                        prop_assert_eq!(decoded, &input);
                    }
                    let again = parse_input(&input_line(decoded)).ok();
                    prop_assert_eq!(again.as_ref(), Some(decoded), "JSON round trip");
                }
                Request::Malformed { detail, .. } => {
                    prop_assert!(!canonical || setup, "refused a canonical frame: {}", detail);
                    if canonical {
                        // A canonical set-up event is refused only if its JSON line is.
                        prop_assert!(parse_input(&input_line(&input)).is_err(), "{}", detail);
                    }
                    prop_assert!(!detail.is_empty());
                }
                other => prop_assert!(false, "{:?}", other),
            }
            // The state machine takes even what the codecs refuse, without a panic. A rejected
            // event still moves the clock (the contract), and a moving clock may turn oracles
            // stale and start guarded liquidations: unchanged state is asked of rejections that
            // leave the clock where it was.
            let before = state_hashes(&engine.state);
            let clock_stays = input.ts <= engine.state.clock_us;
            let first = engine.apply(&input)[0].body.clone();
            if let (Body::Rejected { .. }, true) = (first, clock_stays) {
                let after = state_hashes(&engine.state);
                prop_assert_eq!(
                    (before.venue, before.prices, before.markets, before.accounts),
                    (after.venue, after.prices, after.markets, after.accounts),
                    "a rejection changed the state: {:?}", input
                );
            }
            prop_assert_eq!(engine.state.check_ledger(), Ok(()));
        }
    }
}
