//! Tests of the scenario requirement: an independent recomputation from the model's formulas
//! as the oracle, properties of the requirement over random books and open orders, and the
//! planted mutation (a term rounded the wrong way must be caught).

use super::figures::ROUND_POSITION_TERMS_UP;
use super::ScenarioSet;
use crate::account::Bucket;
use crate::codec::parse_input;
use crate::health::Overlay;
use crate::num::Lots;
use crate::rng::Rng;
use crate::state::State;
use crate::Engine;
use ethnum::I256;

/// A venue of three assets, a random scenario set with moves up to `move_permille` and random
/// portfolio books of 40 accounts: quote, BTC and ETH collateral, positions on either side and
/// open orders (some of them reducing, some rejected by the pre-trade check).
pub(crate) fn venue(seed: u64, move_permille: i64) -> Engine {
    let mut rng = Rng::new(seed);
    let mut lines =
        vec![r#"{"type":"asset","ts":0,"asset":"USDC","decimals":6,"quote":true}"#.to_string()];
    for (a, d, w) in [("BTC", 8, "0.9"), ("ETH", 8, "0.85"), ("SOL", 9, "0.8")] {
        lines.push(format!(
            r#"{{"type":"asset","ts":0,"asset":"{a}","decimals":{d},"price_decimals":2,"weight_init":"0.7","weight_maint":"{w}","oracle":{{"sources":1,"min_sources":1,"max_age_us":600000000,"max_deviation":"0.5"}}}}"#
        ));
        let rho = rng.range(0, 30);
        lines.push(format!(
            r#"{{"type":"market","ts":0,"market":"{a}-PERP","base":"{a}","size_decimals":3,"imf":"0.1","mmf":"0.05","pm_min_rate":"0.{rho:03}","margin_call":"1.25"}}"#
        ));
    }
    let prices = [65_000i64, 3_200, 150];
    for (a, p) in ["BTC", "ETH", "SOL"].iter().zip(prices) {
        lines.push(format!(
            r#"{{"type":"oracle","ts":1,"asset":"{a}","source":0,"price":"{p}.{:02}"}}"#,
            rng.range(0, 99)
        ));
    }
    let mut scenarios = Vec::new();
    for j in 0..rng.range(1, 12) {
        let mut moves = Vec::new();
        for a in ["BTC", "ETH", "SOL"] {
            if rng.chance(800) {
                let r = rng.range(-move_permille, move_permille);
                moves.push(format!(r#""{a}":"{}""#, dec3(r)));
            }
        }
        let weight = rng.range(1, 1000);
        scenarios.push(format!(
            r#"{{"name":"s{j}","weight":"{}","moves":{{{}}}}}"#,
            dec3(weight),
            moves.join(",")
        ));
    }
    lines.push(format!(
        r#"{{"type":"risk_scenarios","ts":1,"name":"random","version":1,"im_factor":"1.5","le_factor":"1.25","scenarios":[{}]}}"#,
        scenarios.join(",")
    ));
    lines.push(
        r#"{"type":"deposit","ts":1,"account":999,"asset":"USDC","amount":"1000000000"}"#
            .to_string(),
    );
    for acc in 1..=40u64 {
        book(&mut rng, &mut lines, acc, prices);
    }
    let mut e = Engine::new();
    for l in &lines {
        e.apply(&parse_input(l).expect("test line parses"));
    }
    e
}

/// A thousandth as a decimal string: -0.125, 0.004, 1.
fn dec3(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:03}", v.abs() / 1000, v.abs() % 1000)
}

fn book(rng: &mut Rng, lines: &mut Vec<String>, acc: u64, prices: [i64; 3]) {
    let usdc = rng.range(5_000, 200_000);
    lines.push(format!(
        r#"{{"type":"deposit","ts":1,"account":{acc},"asset":"USDC","amount":"{usdc}"}}"#
    ));
    for (a, max) in [("BTC", 3), ("ETH", 40)] {
        if rng.chance(500) {
            let x = rng.range(1, max);
            lines.push(format!(
                r#"{{"type":"deposit","ts":1,"account":{acc},"asset":"{a}","amount":"{x}"}}"#
            ));
        }
    }
    lines.push(format!(
        r#"{{"type":"margin_mode","ts":1,"account":{acc},"mode":"portfolio"}}"#
    ));
    for (i, a) in ["BTC", "ETH", "SOL"].iter().enumerate() {
        if rng.chance(600) {
            // Notional up to about twice the quote deposit, either side.
            let lots = rng.range(1, usdc * 2000 / prices[i]);
            let side = if rng.chance(500) { "buy" } else { "sell" };
            lines.push(format!(
                r#"{{"type":"fill","ts":1,"market":"{a}-PERP","taker":{acc},"maker":999,"side":"{side}","price":"{}","size":"{}"}}"#,
                prices[i],
                dec3(lots)
            ));
        }
        for order in 0..rng.range(0, 3) {
            let lots = rng.range(1, usdc * 1000 / prices[i]);
            let side = if rng.chance(500) { "buy" } else { "sell" };
            let limit = prices[i] + rng.range(-prices[i] / 20, prices[i] / 20);
            lines.push(format!(
                r#"{{"type":"order","ts":1,"account":{acc},"order":{},"market":"{a}-PERP","side":"{side}","price":"{limit}","size":"{}"}}"#,
                i as i64 * 10 + order,
                dec3(lots)
            ));
        }
    }
}

/// The portfolio buckets of a venue.
fn portfolio_buckets(st: &State) -> impl Iterator<Item = &Bucket> {
    st.accounts.iter().map(|a| &a.cross).filter(|b| b.portfolio)
}

fn set_of(st: &State) -> &ScenarioSet {
    st.venue.risk.as_ref().expect("the venue lists a set")
}

// ---- The oracle: the model's formulas, term by term, in 256-bit integers. ----

fn pow10(k: u32) -> I256 {
    I256::from(10u8).pow(k)
}

fn floor_div(n: I256, d: I256) -> I256 {
    let q = n / d;
    if (n % d != 0) && (n < 0) {
        q - 1
    } else {
        q
    }
}

fn ceil_div(n: I256, d: I256) -> I256 {
    -floor_div(-n, d)
}

/// (FL, MM, LE, IM) of a bucket, straight from the formulas of docs/margin-model.md.
fn oracle(st: &State, set: &ScenarioSet, b: &Bucket) -> (i128, i128, i128, i128) {
    let qd = u32::from(st.quote_decimals());
    let j_count = set.scenarios.len();
    let mut t = vec![I256::ZERO; j_count];
    for (i, bal) in b.balances.iter().enumerate() {
        let a = st.venue.asset(crate::ids::AssetId(i as u16));
        let Some(p) = st.index(crate::ids::AssetId(i as u16)).filter(|_| !a.quote) else {
            continue;
        };
        let w = if bal.0 > 0 {
            a.weight_maint.0
        } else {
            1_000_000_000_000_000_000
        };
        for (j, s) in set.scenarios.iter().enumerate() {
            let r = s.move_of(crate::ids::AssetId(i as u16));
            let n = I256::from(bal.0) * I256::from(p) * I256::from(w) * I256::from(r) * pow10(qd);
            let d = pow10(u32::from(a.decimals) + u32::from(a.price_scale) + 18 + 9);
            t[j] += floor_div(n, d);
        }
    }
    let term = |m: crate::ids::MarketId, s: i128, r: i64| -> I256 {
        let cfg = st.venue.market(m);
        let ps = st.venue.asset(cfg.base).price_scale;
        let mt = st.index(cfg.base).unwrap_or(0);
        let n = I256::from(s) * I256::from(mt) * I256::from(r) * pow10(qd);
        floor_div(n, pow10(u32::from(cfg.size_decimals) + u32::from(ps) + 9))
    };
    let fl = |m: crate::ids::MarketId, s: i128| -> I256 {
        let cfg = st.venue.market(m);
        let ps = st.venue.asset(cfg.base).price_scale;
        let mt = st.index(cfg.base).unwrap_or(0);
        let n = I256::from(cfg.pm_min_rate.0) * I256::from(s.abs()) * I256::from(mt) * pow10(qd);
        ceil_div(n, pow10(18 + u32::from(cfg.size_decimals) + u32::from(ps)))
    };
    let mut floor = I256::ZERO;
    for p in &b.positions {
        let base = st.venue.market(p.market).base;
        for (j, s) in set.scenarios.iter().enumerate() {
            t[j] += term(p.market, i128::from(p.size.0), s.move_of(base));
        }
        floor += fl(p.market, i128::from(p.size.0));
    }
    let (mut t_o, mut floor_o, mut x) = (t.clone(), floor, I256::ZERO);
    for (m, sums) in &b.orders {
        let cfg = st.venue.market(*m);
        let base = cfg.base;
        let ps = st.venue.asset(base).price_scale;
        let mt = i128::from(st.index(base).unwrap_or(0));
        let s = i128::from(b.size(*m).0);
        let mut sides = Vec::new();
        if sums.buy_lots > 0 {
            sides.push((s + sums.buy_lots, mt * sums.buy_lots - sums.buy_cost));
        }
        if sums.sell_lots > 0 {
            sides.push((s - sums.sell_lots, sums.sell_cost - mt * sums.sell_lots));
        }
        for (j, sc) in set.scenarios.iter().enumerate() {
            let r = sc.move_of(base);
            let worst = sides
                .iter()
                .map(|(side, _)| term(*m, *side, r) - term(*m, s, r))
                .fold(I256::ZERO, |a, d| a.min(d));
            t_o[j] += worst;
        }
        let fl_max = sides
            .iter()
            .map(|(side, _)| fl(*m, *side))
            .fold(fl(*m, s), |a, v| a.max(v));
        floor_o += fl_max - fl(*m, s);
        let scale = pow10(u32::from(cfg.size_decimals) + u32::from(ps));
        let loss = sides
            .iter()
            .map(|(_, xi)| ceil_div(-I256::from(*xi) * pow10(qd), scale))
            .fold(I256::ZERO, |a, v| a.max(v));
        x += loss;
    }
    let mm_of = |t: &[I256], floor: I256| -> I256 {
        t.iter()
            .zip(&set.scenarios)
            .map(|(tj, s)| ceil_div(I256::from(s.weight.0) * (-*tj).max(I256::ZERO), pow10(18)))
            .fold(floor, |a, v| a.max(v))
    };
    let mm = mm_of(&t, floor);
    let mm_o = mm_of(&t_o, floor_o);
    let le = ceil_div(I256::from(set.le_factor.0) * mm, pow10(18));
    let im = ceil_div(I256::from(set.im_factor.0) * mm_o, pow10(18)) + x;
    let small = |v: I256| i128::try_from(v).expect("test figures fit");
    (small(floor), small(mm), small(le), small(im))
}

/// Buckets whose figures differ from the oracle's, over `seeds` random venues.
fn oracle_mismatches(seeds: std::ops::Range<u64>) -> (usize, usize) {
    let (mut checked, mut bad) = (0, 0);
    for seed in seeds {
        let e = venue(seed, 200);
        let st = &e.state;
        let set = set_of(st);
        for b in portfolio_buckets(st) {
            let f = st
                .portfolio_figures(set, b, &Overlay::default(), true)
                .unwrap();
            checked += 1;
            if (f.floor, f.mm, f.le, f.im) != oracle(st, set, b) {
                bad += 1;
            }
        }
    }
    (checked, bad)
}

#[test]
fn figures_equal_the_formulas_term_by_term() {
    let (checked, bad) = oracle_mismatches(1..30);
    assert!(checked > 1000, "buckets checked: {checked}");
    assert_eq!(
        bad, 0,
        "{bad} of {checked} buckets differ from the formulas"
    );
}

/// The planted mutation: position terms rounded up instead of down (toward the account).
#[test]
fn a_position_term_rounded_up_is_caught() {
    ROUND_POSITION_TERMS_UP.with(|f| f.set(true));
    let (_, bad) = oracle_mismatches(1..30);
    ROUND_POSITION_TERMS_UP.with(|f| f.set(false));
    assert!(bad > 0, "position terms rounded up went unnoticed");
}

/// Every state the open orders can lead to, as sizes: per market with orders, the position
/// after any part of the buys or the sells (or some of both).
fn reachable_sizes(rng: &mut Rng, b: &Bucket) -> Vec<(crate::ids::MarketId, i128)> {
    b.orders
        .iter()
        .map(|(m, sums)| {
            let s = i128::from(b.size(*m).0);
            let buys = rng.range(0, sums.buy_lots as i64) as i128;
            let sells = rng.range(0, sums.sell_lots as i64) as i128;
            let pick = match rng.below(4) {
                0 => s + sums.buy_lots,
                1 => s - sums.sell_lots,
                2 => s,
                _ => s + buys - sells,
            };
            (*m, pick)
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// MM° bounds MM after every fill combination of the open orders: each scenario picks,
    /// market by market, the side (or no fill) that hurts it most, each rounded term is
    /// monotone in the size, and the floor charge is monotone in |s|; MM depends on sizes
    /// alone, so the fill prices do not matter. Hence ceil(im_factor × MM) after any fills is
    /// at most ceil(im_factor × MM°), which IM charges.
    #[test]
    fn mm_with_orders_bounds_every_state_the_orders_lead_to(seed in 0u64..1_000_000) {
        let e = venue(seed, 300);
        let st = &e.state;
        let set = set_of(st);
        let mut rng = Rng::new(seed ^ 0xf111);
        for b in portfolio_buckets(st).filter(|b| !b.orders.is_empty()) {
            let with_orders = st.portfolio_figures(set, b, &Overlay::default(), true).unwrap();
            let bound = with_orders.im - with_orders.order_loss;
            for _ in 0..8 {
                let mut after = b.clone();
                for (m, size) in reachable_sizes(&mut rng, b) {
                    let mut p = after.position(m).copied().unwrap_or(crate::account::Position {
                        market: m, size: Lots(0), quote: crate::num::Native(0), funding_mark: 0,
                    });
                    p.size = Lots(size as i64);
                    p.quote = crate::num::Native(0);
                    after.put_position(p);
                }
                after.orders.clear();
                let f = st.portfolio_figures(set, &after, &Overlay::default(), false).unwrap();
                let im_after = crate::num::Exact::new(f.mm, st.quote_decimals())
                    .times(set.im_factor.exact()).unwrap().ceil(st.quote_decimals()).unwrap();
                proptest::prop_assert!(im_after <= bound,
                    "ceil(im_factor x MM) after fills {im_after} above ceil(im_factor x MM°) {bound}");
            }
        }
    }

    /// MM is monotone in the weights: WL_j = ceil(ω_j × L_j) does not fall when ω_j rises,
    /// and MM is their maximum with the floor.
    #[test]
    fn mm_is_monotone_in_the_weights(seed in 0u64..1_000_000, raise in 1i128..1_000_000_000_000_000_000) {
        let e = venue(seed, 300);
        let st = &e.state;
        let set = set_of(st);
        let mut heavier = set.clone();
        for s in &mut heavier.scenarios {
            s.weight.0 = (s.weight.0 + raise).min(crate::num::Ratio::ONE.0);
        }
        for b in portfolio_buckets(st) {
            let light = st.portfolio_figures(set, b, &Overlay::default(), true).unwrap();
            let heavy = st.portfolio_figures(&heavier, b, &Overlay::default(), true).unwrap();
            proptest::prop_assert!(heavy.mm >= light.mm && heavy.le >= light.le && heavy.im >= light.im);
        }
    }

    /// Scaling a book by k scales its scenario losses: each term floor(k v) lies in
    /// [k floor(v), k floor(v) + k - 1], so with n terms k L - n (k - 1) <= L(k book) <= k L.
    /// Each scenario is read alone (a set of one, weight 1: its worst loss is L_j).
    #[test]
    fn scaling_a_book_scales_its_scenario_losses(seed in 0u64..1_000_000, k in 2i128..50) {
        let e = venue(seed, 300);
        let st = &e.state;
        let set = set_of(st);
        for b in portfolio_buckets(st) {
            let mut big = b.clone();
            big.orders.clear();
            let quote = st.quote();
            for (i, v) in big.balances.iter_mut().enumerate() {
                if i != quote.index() { v.0 *= k; }
            }
            for p in &mut big.positions { p.size.0 *= k as i64; }
            let n = (b.balances.iter().enumerate().filter(|(i, v)| *i != quote.index() && v.0 != 0).count()
                + b.positions.len()) as i128;
            for s in &set.scenarios {
                let mut one = set.clone();
                one.scenarios = vec![s.clone()];
                one.scenarios[0].weight = crate::num::Ratio::ONE;
                let l = st.portfolio_figures(&one, b, &Overlay::default(), false).unwrap().worst_loss;
                let lk = st.portfolio_figures(&one, &big, &Overlay::default(), false).unwrap().worst_loss;
                proptest::prop_assert!(lk <= k * l && lk >= k * l - n * (k - 1),
                    "scenario {}: L {l}, L of the book x{k} {lk}, {n} terms", s.name);
            }
        }
    }
}

/// ADL ranks portfolio buckets by their equity summed without the scenario figures; it must be
/// the equity of the full maintenance figures, before and after those are remembered, at the
/// prices of the set-up and after a tick.
#[test]
fn ranking_equity_equals_that_of_the_full_figures() {
    let mut checked = 0;
    for seed in 1..12 {
        let mut e = venue(seed, 300);
        for tick in [
            None,
            Some(r#"{"type":"oracle","ts":2,"asset":"BTC","source":0,"price":"61000"}"#),
        ] {
            if let Some(line) = tick {
                e.apply(&parse_input(line).unwrap());
            }
            let st = &e.state;
            for b in portfolio_buckets(st) {
                let plain = st.bucket_maint_plain(b).unwrap().equity_maint;
                assert_eq!(st.equity_maint(b).unwrap(), plain, "cold");
                st.bucket_maint(b).unwrap();
                assert_eq!(st.equity_maint(b).unwrap(), plain, "remembered");
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "buckets checked: {checked}");
}
