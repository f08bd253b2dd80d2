//! Every reason code of the contract, reached on purpose; each rejection leaves the state as it
//! was (only the clock and the output log move), and when several reasons apply the contract's
//! order decides.

use margin_engine::codec::parse_input;
use margin_engine::persist::state_hashes;
use margin_engine::record::Body;
use margin_engine::Engine;

const VENUE: &[&str] = &[
    r#"{"type":"asset","ts":0,"asset":"USDC","decimals":6,"quote":true}"#,
    r#"{"type":"asset","ts":0,"asset":"BTC","decimals":8,"price_decimals":2,"weight_init":"0.8","weight_maint":"0.9","oracle":{"sources":2,"min_sources":2,"max_age_us":10000000,"max_deviation":"0.1"}}"#,
    r#"{"type":"asset","ts":0,"asset":"ETH","decimals":8,"price_decimals":2,"oracle":{"sources":1,"min_sources":1,"max_age_us":10000000,"max_deviation":"0.1"}}"#,
    r#"{"type":"market","ts":0,"market":"BTC-PERP","base":"BTC","size_decimals":4,"imf":"0.1","mmf":"0.05","liq_discount_start":"0.01","liq_discount_max":"0.05","liq_if_fee":"0.01"}"#,
    r#"{"type":"market","ts":0,"market":"ETH-PERP","base":"ETH","size_decimals":3,"imf":"0.1","mmf":"0.05"}"#,
    r#"{"type":"oracle","ts":1,"asset":"BTC","source":0,"price":"10000"}"#,
    r#"{"type":"oracle","ts":1,"asset":"BTC","source":1,"price":"10000"}"#,
    r#"{"type":"deposit","ts":2,"account":1,"asset":"USDC","amount":"1000"}"#,
    r#"{"type":"deposit","ts":2,"account":2,"asset":"USDC","amount":"1000000"}"#,
    r#"{"type":"order","ts":3,"account":1,"order":7,"market":"BTC-PERP","side":"buy","price":"9000","size":"0.01"}"#,
];

fn venue() -> Engine {
    let mut e = Engine::new();
    for l in VENUE {
        let out = e.apply(&parse_input(l).unwrap());
        assert!(
            matches!(out[0].body, Body::Accepted { .. }),
            "{l}: {:?}",
            out[0].body
        );
    }
    e
}

/// Applies `line` and asserts it is rejected with `code` and changes nothing but the clock.
fn rejects(e: &mut Engine, line: &str, code: &str) {
    let before = state_hashes(&e.state);
    let (ins, fee) = (e.state.insurance, e.state.fee_pool);
    let out = e.apply(&parse_input(line).unwrap_or_else(|m| panic!("{line}: {m}")));
    match &out[0].body {
        Body::Rejected { reason, detail } => {
            assert_eq!(reason.code(), code, "{line}: {}", detail.as_str());
            assert!(!detail.as_str().is_empty(), "a rejection says why");
        }
        other => panic!("{line}: expected {code}, got {other:?}"),
    }
    let after = state_hashes(&e.state);
    assert_eq!(
        (before.venue, before.prices, before.markets, before.accounts),
        (after.venue, after.prices, after.markets, after.accounts),
        "{line} changed the state"
    );
    assert_eq!((ins, fee), (e.state.insurance, e.state.fee_pool));
}

#[test]
fn malformed() {
    for line in [
        "{",
        r#"{"type":"deposit","ts":1,"account":1,"asset":"USDC","amount":"1","extra":true}"#,
        r#"{"type":"deposit","ts":1,"account":1,"asset":"USDC","amount":1}"#,
    ] {
        let err = parse_input(line).unwrap_err();
        assert!(!err.0.is_empty());
    }
}

#[test]
fn unknown_asset_market_account_order() {
    let mut e = venue();
    rejects(
        &mut e,
        r#"{"type":"deposit","ts":4,"account":1,"asset":"DOGE","amount":"1"}"#,
        "unknown_asset",
    );
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":1,"market":"XRP-PERP","side":"buy","price":"1","size":"1"}"#,
        "unknown_market",
    );
    rejects(
        &mut e,
        r#"{"type":"withdraw","ts":4,"account":99,"asset":"USDC","amount":"1"}"#,
        "unknown_account",
    );
    rejects(
        &mut e,
        r#"{"type":"cancel","ts":4,"account":1,"order":8}"#,
        "unknown_order",
    );
}

#[test]
fn duplicate_order_and_self_trade() {
    let mut e = venue();
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":7,"market":"BTC-PERP","side":"buy","price":"9000","size":"0.01"}"#,
        "duplicate_order",
    );
    rejects(
        &mut e,
        r#"{"type":"fill","ts":4,"market":"BTC-PERP","taker":1,"maker":1,"side":"buy","price":"10000","size":"0.01"}"#,
        "self_trade",
    );
}

#[test]
fn invalid_amount_price_size_params() {
    let mut e = venue();
    rejects(
        &mut e,
        r#"{"type":"deposit","ts":4,"account":1,"asset":"USDC","amount":"0.0000001"}"#,
        "invalid_amount",
    );
    rejects(
        &mut e,
        r#"{"type":"deposit","ts":4,"account":1,"asset":"USDC","amount":"-5"}"#,
        "invalid_amount",
    );
    rejects(
        &mut e,
        &format!(
            r#"{{"type":"deposit","ts":4,"account":1,"asset":"USDC","amount":"{}"}}"#,
            "9".repeat(45)
        ),
        "invalid_amount",
    );
    rejects(
        &mut e,
        r#"{"type":"fill","ts":4,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"0.01","taker_fee":"0.0000001"}"#,
        "invalid_amount",
    );
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":1,"market":"BTC-PERP","side":"buy","price":"10000.001","size":"0.01"}"#,
        "invalid_price",
    );
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":1,"market":"BTC-PERP","side":"buy","price":"0","size":"0.01"}"#,
        "invalid_price",
    );
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":1,"market":"BTC-PERP","side":"buy","price":"10000","size":"0.00001"}"#,
        "invalid_size",
    );
    rejects(
        &mut e,
        r#"{"type":"fill","ts":4,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"-1"}"#,
        "invalid_size",
    );
    rejects(
        &mut e,
        r#"{"type":"market","ts":4,"market":"BAD-PERP","base":"BTC","size_decimals":4,"imf":"0.05","mmf":"0.1"}"#,
        "invalid_params",
    );
    rejects(
        &mut e,
        r#"{"type":"funding","ts":4,"market":"BTC-PERP","rate":"0.5"}"#,
        "invalid_params",
    );
    rejects(
        &mut e,
        r#"{"type":"oracle","ts":4,"asset":"BTC","source":2,"price":"10000"}"#,
        "invalid_params",
    );
    rejects(
        &mut e,
        r#"{"type":"oracle","ts":4,"asset":"USDC","source":0,"price":"1"}"#,
        "invalid_params",
    );
    rejects(
        &mut e,
        r#"{"type":"isolate","ts":4,"account":1,"market":"BTC-PERP","amount":"10"}"#,
        "invalid_params",
    );
}

#[test]
fn insufficient_balance_and_margin() {
    let mut e = venue();
    rejects(
        &mut e,
        r#"{"type":"withdraw","ts":4,"account":1,"asset":"USDC","amount":"1000.000001"}"#,
        "insufficient_balance",
    );
    // 1 BTC long needs 1,000 of initial margin on top of the open order's 9.
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":8,"market":"BTC-PERP","side":"buy","price":"10000","size":"1"}"#,
        "insufficient_margin",
    );
    e.apply(&parse_input(r#"{"type":"fill","ts":5,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"0.5"}"#).unwrap());
    rejects(
        &mut e,
        r#"{"type":"withdraw","ts":6,"account":1,"asset":"USDC","amount":"600"}"#,
        "insufficient_margin",
    );
}

#[test]
fn oracle_stale() {
    let mut e = venue();
    // ETH never had an index: its market cannot trade.
    rejects(
        &mut e,
        r#"{"type":"fill","ts":4,"market":"ETH-PERP","taker":1,"maker":2,"side":"buy","price":"3000","size":"1"}"#,
        "oracle_stale",
    );
    e.apply(&parse_input(r#"{"type":"fill","ts":5,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"0.01"}"#).unwrap());
    // 10 s later both BTC sources are too old: non-reducing orders and withdrawals wait. (An
    // accepted event first moves the clock; reporting the staleness is the clock's doing.)
    e.apply(
        &parse_input(r#"{"type":"deposit","ts":20000000,"account":2,"asset":"USDC","amount":"1"}"#)
            .unwrap(),
    );
    rejects(
        &mut e,
        r#"{"type":"order","ts":20000000,"account":1,"order":9,"market":"BTC-PERP","side":"buy","price":"10000","size":"0.01"}"#,
        "oracle_stale",
    );
    rejects(
        &mut e,
        r#"{"type":"withdraw","ts":20000001,"account":1,"asset":"USDC","amount":"1"}"#,
        "oracle_stale",
    );
}

/// Account 1: 1,000 USDC, long 0.5 BTC at 10,000. Liquidatable when 1,000 + 0.5 (M - 10,000)
/// < 0.025 M, i.e. below 8,421.05: at 8,300 equity 150 < mm 207.5.
fn liquidating_venue() -> Engine {
    let mut e = venue();
    e.apply(&parse_input(r#"{"type":"fill","ts":5,"market":"BTC-PERP","taker":1,"maker":2,"side":"buy","price":"10000","size":"0.5"}"#).unwrap());
    for l in [
        r#"{"type":"oracle","ts":6,"asset":"BTC","source":0,"price":"8300"}"#,
        r#"{"type":"oracle","ts":6,"asset":"BTC","source":1,"price":"8300"}"#,
    ] {
        e.apply(&parse_input(l).unwrap());
    }
    assert!(e
        .state
        .account(margin_engine::ids::AccountId(1))
        .unwrap()
        .cross
        .is_liquidating());
    e
}

#[test]
fn reduce_only_and_liquidating() {
    let mut e = venue();
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":9,"market":"BTC-PERP","side":"buy","price":"10000","size":"0.01","reduce_only":true}"#,
        "reduce_only",
    );
    let mut e = liquidating_venue();
    rejects(
        &mut e,
        r#"{"type":"order","ts":7,"account":1,"order":10,"market":"BTC-PERP","side":"buy","price":"8300","size":"0.01"}"#,
        "liquidating",
    );
    rejects(
        &mut e,
        r#"{"type":"withdraw","ts":7,"account":1,"asset":"USDC","amount":"1"}"#,
        "liquidating",
    );
    // A reducing order is still accepted while liquidating.
    let out = e.apply(&parse_input(r#"{"type":"order","ts":7,"account":1,"order":11,"market":"BTC-PERP","side":"sell","price":"8300","size":"0.1"}"#).unwrap());
    assert!(matches!(out[0].body, Body::Accepted { .. }));
}

#[test]
fn not_liquidatable_liquidation_size_withdrawals_frozen() {
    let mut e = venue();
    rejects(
        &mut e,
        r#"{"type":"liquidate","ts":4,"liquidator":2,"account":1,"market":"BTC-PERP","size":"0.01"}"#,
        "not_liquidatable",
    );
    let mut e = liquidating_venue();
    // At the start (d = 0.01) a little restores health_le: the whole position is too much.
    rejects(
        &mut e,
        r#"{"type":"liquidate","ts":7,"liquidator":2,"account":1,"market":"BTC-PERP","size":"0.4999"}"#,
        "liquidation_size",
    );
    // After the auction ran out (60 s), d = 0.05: the whole 0.5 at 7,885 realises -1,057.5 and
    // pays a 41.5 fee, leaving -99 with no position. The fund (never topped up) receives the
    // fee and pays the 99: it is negative, and withdrawals freeze.
    let out = e.apply(&parse_input(r#"{"type":"liquidate","ts":60000007,"liquidator":2,"account":1,"market":"BTC-PERP","size":"0.5"}"#).unwrap());
    assert!(
        matches!(out[0].body, Body::Accepted { .. }),
        "{:?}",
        out[0].body
    );
    assert_eq!(e.state.insurance.0, 41_500_000 - 99_000_000);
    rejects(
        &mut e,
        r#"{"type":"withdraw","ts":60000008,"account":2,"asset":"USDC","amount":"1"}"#,
        "withdrawals_frozen",
    );
}

#[test]
fn checks_of_the_event_come_before_checks_against_the_state() {
    let mut e = venue();
    // Unknown account and a too-fine size: the event's own problem wins.
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":99,"order":1,"market":"BTC-PERP","side":"buy","price":"10000","size":"0.00001"}"#,
        "invalid_size",
    );
    // Unknown market and a bad price: unknown_market first.
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":1,"market":"NOPE","side":"buy","price":"0","size":"1"}"#,
        "unknown_market",
    );
    // Duplicate order id and reduce_only: duplicate first.
    rejects(
        &mut e,
        r#"{"type":"order","ts":4,"account":1,"order":7,"market":"BTC-PERP","side":"buy","price":"10000","size":"0.01","reduce_only":true}"#,
        "duplicate_order",
    );
    // Liquidator unknown and the account not liquidatable: unknown_account first.
    rejects(
        &mut e,
        r#"{"type":"liquidate","ts":4,"liquidator":77,"account":1,"market":"BTC-PERP","size":"0.01"}"#,
        "unknown_account",
    );
}

#[test]
fn a_rejected_event_still_moves_the_clock() {
    let mut e = venue();
    let before = e.state.clock_us;
    e.apply(
        &parse_input(
            r#"{"type":"withdraw","ts":123456789,"account":99,"asset":"USDC","amount":"1"}"#,
        )
        .unwrap(),
    );
    assert_eq!(e.state.clock_us, 123_456_789.max(before));
}

#[test]
fn a_timestamp_far_ahead_is_rejected_and_does_not_pin_the_clock() {
    // Hardening defect 13: one rejected event with ts = u64::MAX pinned the clock and made
    // every asset stale for good.
    let mut e = venue();
    let before = e.state.clock_us;
    for ts in [
        u64::MAX,
        before + margin_engine::limits::CLOCK_STEP_MAX_US + 1,
    ] {
        let line =
            format!(r#"{{"type":"withdraw","ts":{ts},"account":99,"asset":"USDC","amount":"1"}}"#);
        let out = e.apply(&parse_input(&line).unwrap()).to_vec();
        match &out[0].body {
            Body::Rejected { reason, detail } => {
                assert_eq!(reason.code(), "invalid_params");
                assert!(detail.as_str().contains("ts"), "{detail:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.state.clock_us, before, "the clock stays");
    }
    // A step within the bound still moves it.
    let ts = before + 1_000_000;
    let line =
        format!(r#"{{"type":"withdraw","ts":{ts},"account":99,"asset":"USDC","amount":"1"}}"#);
    e.apply(&parse_input(&line).unwrap());
    assert_eq!(e.state.clock_us, ts);
}
