//! The liquidation waterfall, scenario by scenario, with the figures worked out by hand.
//!
//! Base venue: USDC quote (6 decimals), BTC (8 decimals, prices to 0.01), BTC-PERP (sizes to
//! 0.0001, imf 0.1, mmf 0.05, discount 0.01 rising to 0.05 over 100 s, insurance fee 0.01, min
//! notional 50, margin call at 1.25). Account 1 is long 1 BTC (10,000 lots) bought at 10,000
//! with 1,000 USDC: q = -10,000 USDC. Account 2 is the maker, short the same.

mod common;

use margin_engine::codec::parse_input;
use margin_engine::record::{Body, Record};
use margin_engine::Engine;
use serde_json::Value;

const VENUE: &str = r#"
{"type":"asset","ts":0,"asset":"USDC","decimals":6,"quote":true}
{"type":"asset","ts":0,"asset":"BTC","decimals":8,"price_decimals":2,"weight_init":"0.8","weight_maint":"0.9","oracle":{"sources":1,"min_sources":1,"max_age_us":1000000000000,"max_deviation":"0.5"}}
{"type":"market","ts":0,"market":"BTC-PERP","base":"BTC","size_decimals":4,"imf":"0.1","mmf":"0.05","liq_discount_start":"0.01","liq_discount_max":"0.05","liq_auction_us":100000000,"liq_if_fee":"0.01","liq_min_notional":"50","margin_call":"1.25"EXTRA}
{"type":"insurance","ts":0,"amount":"INSURANCE"}
{"type":"oracle","ts":1,"asset":"BTC","source":0,"price":"10000"}
{"type":"deposit","ts":2,"account":1,"asset":"USDC","amount":"1000"}
{"type":"deposit","ts":2,"account":2,"asset":"USDC","amount":"1000000"}
{"type":"deposit","ts":2,"account":3,"asset":"USDC","amount":"1000000"}
"#;

struct Venue {
    engine: Engine,
    records: Vec<Record>,
}

impl Venue {
    fn new(extra_market_fields: &str, insurance: &str) -> Venue {
        let mut v = Venue {
            engine: Engine::new(),
            records: Vec::new(),
        };
        let text = VENUE
            .replace("EXTRA", extra_market_fields)
            .replace("INSURANCE", insurance);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            v.send(line);
        }
        v
    }

    /// The base venue with account 1 long 1 BTC against account 2.
    fn long(extra: &str, insurance: &str) -> Venue {
        let mut v = Venue::new(extra, insurance);
        v.send(r#"{"type":"fill","ts":3,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"1"}"#);
        v
    }

    /// Applies one line; returns its records (also kept in `records`), checking the invariants.
    fn send(&mut self, line: &str) -> Vec<Record> {
        let out = self
            .engine
            .apply(&parse_input(line).unwrap_or_else(|e| panic!("{line}: {e}")))
            .to_vec();
        let broken = margin_engine::invariants::check(&self.engine.state);
        assert!(broken.is_empty(), "after {line}: {broken:?}");
        self.records.extend(out.iter().cloned());
        out
    }

    fn price(&mut self, ts: u64, price: &str) -> Vec<Record> {
        self.send(&format!(
            r#"{{"type":"oracle","ts":{ts},"asset":"BTC","source":0,"price":"{price}"}}"#
        ))
    }

    fn bid(&mut self, ts: u64, liquidator: u64, size: &str) -> Vec<Record> {
        self.send(&format!(r#"{{"type":"liquidate","ts":{ts},"liquidator":{liquidator},"account":1,"market":"BTC-PERP","size":"{size}"}}"#))
    }

    fn report(&self) -> Value {
        serde_json::to_value(self.engine.state.report(None).unwrap()).unwrap()
    }

    fn account(&self, id: u64) -> Value {
        self.report()["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == id)
            .cloned()
            .unwrap()
    }
}

fn types(records: &[Record]) -> Vec<&'static str> {
    records.iter().map(|r| r.body.type_name()).collect()
}

fn reason(records: &[Record]) -> Option<&'static str> {
    match &records[0].body {
        Body::Rejected { reason, .. } => Some(reason.code()),
        _ => None,
    }
}

fn fill_price(records: &[Record]) -> String {
    records
        .iter()
        .find_map(|r| match &r.body {
            Body::LiquidationFill { price, .. } => Some(margin_engine::num::format_scaled(
                price.value,
                price.decimals,
            )),
            _ => None,
        })
        .expect("a liquidation_fill")
}

#[test]
fn liquidation_starts_at_the_exact_price() {
    let mut v = Venue::long("", "10000");
    // At 9600: equity 600, mm 480, 1.25 * mm = 600: not under the margin-call ratio.
    assert!(!types(&v.price(10, "9600")).contains(&"margin_call"));
    // At 9599.99: equity 599.99 < 1.25 * 479.9995 = 599.999375.
    assert!(types(&v.price(11, "9599.99")).contains(&"margin_call"));
    // At 9473.69: equity 473.69, mm = ceil(473.6845) = 473.684500: health +0.0055.
    assert!(!types(&v.price(12, "9473.69")).contains(&"liquidation_started"));
    assert_eq!(v.account(1)["health_maint"], "0.005500");
    // At 9473.68: equity 473.68, mm 473.684: health -0.004.
    let out = v.price(13, "9473.68");
    assert!(types(&out).contains(&"liquidation_started"));
    assert_eq!(v.account(1)["health_maint"], "-0.004000");
    assert_eq!(v.account(1)["liquidating"], true);
}

#[test]
fn auction_price_falls_with_elapsed_time() {
    let mut v = Venue::long("", "10000");
    v.price(1_000_000, "9473.68"); // liquidation starts at t0 = 1 s
                                   // d = 0.01 + 0.04 * elapsed / 100 s; a long is taken at M * (1 - d), rounded up to 0.01.
    let cases = [
        (1_000_000, "9378.95"),   // d 0.01: 9378.9432 -> 9378.95
        (26_000_000, "9284.21"),  // d 0.02: 9284.2064 -> 9284.21
        (51_000_000, "9189.47"),  // d 0.03: 9189.4696 -> 9189.47
        (101_000_000, "9000.00"), // d 0.05: 8999.996 -> 9000.00
    ];
    for (ts, want) in cases {
        let mut w = Venue {
            engine: v.engine.clone(),
            records: Vec::new(),
        };
        let out = w.bid(ts, 3, "0.01");
        assert_eq!(fill_price(&out), want, "at ts {ts}");
    }
    // An auction that ran out since the last event still takes this event's bid at d_max,
    // then the passes close out what is left.
    let mut late = Venue {
        engine: v.engine.clone(),
        records: Vec::new(),
    };
    let out = late.bid(500_000_000, 3, "0.01");
    assert_eq!(fill_price(&out), "9000.00");
    assert!(types(&out).contains(&"adl") && types(&out).contains(&"liquidation_ended"));
}

/// Taking x lots at 9378.95 with the fee ceil(9473.68 x) leaves
/// health_le = 473,680,000 - 9,473 x - ceil(9,473.68 x) - ceil(71,052.6 (10,000 - x)) native:
/// -24,594 at x = 4,545 and +27,511 at x = 4,546. So the most a bid may take is 4,546 lots.
#[test]
fn bid_size_is_limited_to_what_restores_the_liquidation_end_level() {
    let mut v = Venue::long("", "10000");
    v.price(1_000_000, "9473.68");
    let mut too_big = Venue {
        engine: v.engine.clone(),
        records: Vec::new(),
    };
    assert_eq!(
        reason(&too_big.bid(1_000_000, 3, "0.4547")),
        Some("liquidation_size")
    );
    let out = v.bid(1_000_000, 3, "0.4546");
    assert_eq!(reason(&out), None);
    assert!(types(&out).contains(&"liquidation_ended"));
    // realised -62,105 x = -282,329,330, fee 43,067,350: 1000 - 282.329330 - 43.067350.
    assert_eq!(v.account(1)["balances"]["USDC"], "674.603320");
    assert_eq!(v.account(1)["positions"][0]["size"], "0.5454");
    assert_eq!(v.report()["insurance_fund"], "10043.067350");
}

#[test]
fn partial_liquidation_over_several_bids() {
    let mut v = Venue::long("", "10000");
    v.price(1_000_000, "9473.68");
    let first = v.bid(1_000_000, 3, "0.2");
    assert!(!types(&first).contains(&"liquidation_ended"));
    // After 2,000 lots the need is 2,546 more (same worked figures, from 8,000 lots).
    let mut too_big = Venue {
        engine: v.engine.clone(),
        records: Vec::new(),
    };
    assert_eq!(
        reason(&too_big.bid(1_000_000, 3, "0.2547")),
        Some("liquidation_size")
    );
    let second = v.bid(1_000_000, 3, "0.2546");
    assert!(types(&second).contains(&"liquidation_ended"));
    assert_eq!(v.account(1)["positions"][0]["size"], "0.5454");
}

/// At 8,900 the long is worth -100 USDC: E = 1,000 - 10,000 + 8,900. The fund pays 100, the
/// position closes at index against the only short (account 2), which realises 1,100.
#[test]
fn bankruptcy_covered_by_the_fund() {
    let mut v = Venue::long("", "10000");
    let out = v.price(5, "8900");
    let t = types(&out);
    assert!(t.contains(&"liquidation_started") && t.contains(&"adl") && t.contains(&"bankruptcy"));
    let b = out
        .iter()
        .find(|r| r.body.type_name() == "bankruptcy")
        .unwrap();
    assert_eq!(
        margin_engine::codec::record_line(b)
            .split("\"deficit\"")
            .nth(1)
            .unwrap(),
        r#":"100.000000","insurance":"100.000000","socialized":"0.000000"}"#
    );
    assert_eq!(v.report()["insurance_fund"], "9900.000000");
    assert_eq!(
        v.account(1)["balances"].get("USDC"),
        None,
        "left at exactly zero"
    );
    assert_eq!(v.account(2)["balances"]["USDC"], "1001100.000000");
    assert_eq!(v.account(1)["liquidating"], false);
}

/// With 30 USDC in the fund, the 100 deficit leaves U = 70 to the counterparties: the long is
/// sold for 8,970 (its bankruptcy price). Shorts ranked by upnl / equity: account 4 (660 /
/// 1,660) before account 5 (440 / 1,000,440). Account 4 takes 6,000 lots for trunc(8,970 *
/// 0.6) = 5,382 and realises 618; account 5 takes the rest for 3,588 and realises 412.
#[test]
fn fund_exhausted_leads_to_adl_at_the_bankruptcy_price_in_rank_order() {
    let mut v = Venue::new("", "30");
    v.send(r#"{"type":"deposit","ts":2,"account":4,"asset":"USDC","amount":"1000"}"#);
    v.send(r#"{"type":"deposit","ts":2,"account":5,"asset":"USDC","amount":"1000000"}"#);
    v.send(r#"{"type":"fill","ts":3,"market":"BTC-PERP","taker":1,"maker":5,"side":"buy","price":"10000","size":"0.4"}"#);
    v.send(r#"{"type":"fill","ts":3,"market":"BTC-PERP","taker":1,"maker":4,"side":"buy","price":"10000","size":"0.6"}"#);
    let out = v.price(5, "8900");
    let adl: Vec<String> = out
        .iter()
        .filter(|r| r.body.type_name() == "adl")
        .map(margin_engine::codec::record_line)
        .collect();
    assert_eq!(adl.len(), 2);
    assert!(
        adl[0].contains(r#""account":4"#) && adl[0].contains(r#""notional":"5382.000000""#),
        "{}",
        adl[0]
    );
    assert!(
        adl[1].contains(r#""account":5"#) && adl[1].contains(r#""notional":"3588.000000""#),
        "{}",
        adl[1]
    );
    assert_eq!(v.account(4)["balances"]["USDC"], "1618.000000");
    assert_eq!(v.account(5)["balances"]["USDC"], "1000412.000000");
    assert_eq!(v.report()["insurance_fund"], "0.000000");
    // Accounts with no position in the market are never charged.
    assert_eq!(v.account(3)["balances"]["USDC"], "1000000.000000");
    assert_eq!(v.account(2)["balances"]["USDC"], "1000000.000000");
}

#[test]
fn an_isolated_bankruptcy_never_touches_the_cross_balance() {
    let mut v = Venue::new("", "10000");
    v.send(r#"{"type":"deposit","ts":2,"account":1,"asset":"USDC","amount":"5000"}"#);
    v.send(r#"{"type":"margin_mode","ts":2,"account":1,"market":"BTC-PERP","mode":"isolated"}"#);
    v.send(r#"{"type":"isolate","ts":2,"account":1,"market":"BTC-PERP","amount":"1000"}"#);
    v.send(r#"{"type":"fill","ts":3,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"1"}"#);
    let out = v.price(5, "8900");
    assert!(types(&out).contains(&"bankruptcy"));
    let a = v.account(1);
    assert_eq!(
        a["balances"]["USDC"], "5000.000000",
        "cross balance untouched"
    );
    assert_eq!(a["isolated"][0]["balance"], "0.000000");
    assert_eq!(v.report()["insurance_fund"], "9900.000000");
}

#[test]
fn a_liquidator_needs_its_own_initial_margin() {
    let mut v = Venue::long("", "10000");
    v.send(r#"{"type":"deposit","ts":2,"account":9,"asset":"USDC","amount":"10"}"#);
    v.price(1_000_000, "9473.68");
    // Taking 0.4546 BTC needs 430.69 of initial margin; the liquidator has 10 + its gain 43.06.
    assert_eq!(
        reason(&v.bid(1_000_000, 9, "0.4546")),
        Some("insufficient_margin")
    );
    assert_eq!(reason(&v.bid(1_000_000, 1, "0.1")), Some("self_trade"));
    assert_eq!(
        reason(&v.bid(1_000_000, 99, "0.1")),
        Some("unknown_account")
    );
    let mut w = Venue::long("", "10000");
    assert_eq!(reason(&w.bid(5, 3, "0.1")), Some("not_liquidatable"));
}

#[test]
fn no_liquidation_on_a_single_print_spike_with_the_guard_on() {
    let mut v = Venue::long(r#","spike_prints":2"#, "10000");
    assert!(!types(&v.price(10, "9000")).contains(&"liquidation_started"));
    assert!(!types(&v.price(11, "9700")).contains(&"liquidation_started"));
    assert!(!types(&v.price(12, "9000")).contains(&"liquidation_started"));
    // A second print in a row below the threshold: now it starts.
    assert!(types(&v.price(13, "9100")).contains(&"liquidation_started"));
}

#[test]
fn a_liquidation_always_ends() {
    // Recovered price: ends as healthy, no bid needed.
    let mut v = Venue::long("", "10000");
    v.price(10, "9473.68");
    let out = v.price(11, "9800");
    assert!(types(&out).contains(&"liquidation_ended"));
    assert_eq!(v.account(1)["liquidating"], false);
    // No bids and no recovery: when the auction runs out, any event closes it out.
    let mut w = Venue::long("", "10000");
    w.price(1_000_000, "9400");
    let later =
        w.send(r#"{"type":"deposit","ts":101000001,"account":3,"asset":"USDC","amount":"1"}"#);
    assert!(
        types(&later).contains(&"adl") && types(&later).contains(&"liquidation_ended"),
        "{:?}",
        types(&later)
    );
    assert!(w.account(1)["positions"].as_array().unwrap().is_empty());
}

/// At 9,500 the long has equity 500 against mm 475. Funding at the 1 % cap charges it
/// 0.01 * 9,500 = 95: equity 405 < 475, so funding alone starts the liquidation.
#[test]
fn funding_can_trigger_a_liquidation() {
    let mut v = Venue::long("", "10000");
    assert!(!types(&v.price(10, "9500")).contains(&"liquidation_started"));
    let out = v.send(r#"{"type":"funding","ts":11,"market":"BTC-PERP","rate":"0.01"}"#);
    assert!(types(&out).contains(&"liquidation_started"));
    assert_eq!(v.account(1)["equity_maint"], "405.000000");
}

#[test]
fn the_circuit_breaker_waits_for_confirmation() {
    let mut v = Venue::new("", "10000");
    v.send(r#"{"type":"params","ts":2,"asset":"BTC","breaker":{"max_move":"0.1","window_us":60000000,"confirm_us":30000000}}"#);
    v.send(r#"{"type":"fill","ts":3,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"1"}"#);
    // -15 % within the window: volatile, the breach waits.
    let out = v.price(1_000_000, "8500");
    assert!(!types(&out).contains(&"liquidation_started"));
    assert!(margin_engine::codec::record_line(
        out.iter().find(|r| r.body.type_name() == "index").unwrap()
    )
    .contains("\"volatile\":true"));
    let still =
        v.send(r#"{"type":"deposit","ts":20000000,"account":3,"asset":"USDC","amount":"1"}"#);
    assert!(!types(&still).contains(&"liquidation_started"));
    // 30 s after the move, the next event (any) starts it.
    let later =
        v.send(r#"{"type":"deposit","ts":31000001,"account":3,"asset":"USDC","amount":"1"}"#);
    assert!(
        types(&later).contains(&"liquidation_started"),
        "{:?}",
        types(&later)
    );
}

#[test]
fn volatility_scales_the_maintenance_requirement() {
    let vol = r#","vol":{"lambda":"0.5","reference":"0.001","mult":"1","cap":"3"}"#;
    let mut v = Venue::long(vol, "10000");
    let plain = v.account(1)["positions"][0]["mm"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(plain, "500.000000");
    // A 1 % move: r^2 = 1e-4, EWMA 5e-5, sigma ~0.00707, factor 1 + 6.07 capped at 3:
    // mm = 3 * 0.05 * 10,100 = 1,515.
    v.price(10, "10100");
    assert_eq!(v.account(1)["positions"][0]["mm"], "1515.000000");
    // Calm prints (0.01 % moves) bring sigma down: after eight, the EWMA is about 2e-7,
    // sigma 0.00045 is under the reference, and the factor is exactly 1 again.
    for (i, p) in [
        "10101", "10100", "10101", "10100", "10101", "10100", "10101", "10100",
    ]
    .iter()
    .enumerate()
    {
        v.price(11 + i as u64, p);
    }
    assert_eq!(v.account(1)["positions"][0]["mm"], "505.000000");
}

/// Account 1 goes long 1 BTC at 10,000 from an isolated bucket of 1,000 and the price falls to
/// 8,900 (a deficit of 100); returns the `bankruptcy` record as a line.
fn isolated_long_bankrupt_at_8900(v: &mut Venue) -> String {
    v.send(r#"{"type":"margin_mode","ts":2,"account":1,"market":"BTC-PERP","mode":"isolated"}"#);
    v.send(r#"{"type":"isolate","ts":2,"account":1,"market":"BTC-PERP","amount":"1000"}"#);
    v.send(r#"{"type":"fill","ts":3,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"1"}"#);
    let out = v.price(5, "8900");
    margin_engine::codec::record_line(
        out.iter()
            .find(|r| r.body.type_name() == "bankruptcy")
            .expect("a bankruptcy"),
    )
}

#[test]
fn a_market_fund_covers_its_isolated_bankruptcies_alone() {
    let mut v = Venue::new(r#","own_fund":true"#, "10000");
    v.send(r#"{"type":"insurance","ts":2,"amount":"50","market":"BTC-PERP"}"#);
    let line = isolated_long_bankrupt_at_8900(&mut v);
    // Deficit 100: the market fund pays its 50, the other 50 is socialised; the venue fund is
    // not touched.
    assert!(
        line.contains(r#""insurance":"50.000000","socialized":"50.000000""#),
        "{line}"
    );
    assert_eq!(v.report()["insurance_fund"], "10000.000000");
    assert_eq!(v.report()["markets"]["BTC-PERP"]["own_fund"], "0.000000");
}

#[test]
fn an_insurance_cap_limits_what_the_fund_pays_for_a_market() {
    let mut v = Venue::new(r#","insurance_cap":"40""#, "10000");
    let line = isolated_long_bankrupt_at_8900(&mut v);
    assert!(
        line.contains(r#""insurance":"40.000000","socialized":"60.000000""#),
        "{line}"
    );
    assert_eq!(v.report()["insurance_fund"], "9960.000000");
}

#[test]
fn withdrawals_freeze_while_the_fund_is_negative() {
    let mut v = Venue::new("", "1");
    v.send(r#"{"type":"margin_mode","ts":2,"account":1,"market":"BTC-PERP","mode":"isolated"}"#);
    v.send(r#"{"type":"isolate","ts":2,"account":1,"market":"BTC-PERP","amount":"1000"}"#);
    v.send(r#"{"type":"fill","ts":3,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"1"}"#);
    // A bid below the bankruptcy price leaves bad debt with no position: the fund pays it in
    // full and goes negative.
    v.price(1_000_000, "9100");
    let out = v.bid(101_000_000, 3, "1");
    assert!(types(&out).contains(&"bankruptcy"), "{:?}", types(&out));
    assert!(v.report()["insurance_fund"]
        .as_str()
        .unwrap()
        .starts_with('-'));
    let w = v.send(r#"{"type":"withdraw","ts":101000001,"account":3,"asset":"USDC","amount":"1"}"#);
    assert_eq!(reason(&w), Some("withdrawals_frozen"));
    v.send(r#"{"type":"insurance","ts":101000002,"amount":"1000"}"#);
    let w = v.send(r#"{"type":"withdraw","ts":101000003,"account":3,"asset":"USDC","amount":"1"}"#);
    assert_eq!(reason(&w), None);
}
