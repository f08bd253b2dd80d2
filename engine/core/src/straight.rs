//! A position's figures (and a balance's collateral terms) in straight-line i128: every term brought to one scale with powers of
//! ten read from the market's decimals, summed, and rounded once by a reciprocal division.
//!
//! `State::position_value` runs the model's text on `Small` (and on `Exact` where that
//! declines), which aligns the scales of every operand at every step and answers an `Option`
//! per operation. Here the scales are known before the first multiplication: the PnL
//! `u = s M + q - s (F - f)` at `S = max(sd + ps, qd, sd + fs)`, the notional and the tiers at
//! `T = max(sd + ps, qd)`. Each figure is the same exact rational rounded once in the same
//! direction, so it equals the model's wherever every step fits i128; where one does not (or
//! a dynamic-margin factor scales the fractions) this declines and the general path answers.
//! `tests` compares the two on random positions and venues, edges included.

use crate::account::Position;
use crate::health::PositionValue;
use crate::num::exact::pow10_small;
use crate::num::mul::mul_i128;
use crate::num::pow10div::{div_rem_euclid_pow10, div_round_pow10};
use crate::num::small::{Small, Term};
use crate::num::{Native, Ratio, Round, RATIO_DECIMALS};
use crate::state::State;

impl State {
    /// The figures of `pos` in straight-line i128; None where a step leaves i128 or the
    /// market's fractions are scaled (the caller takes the general path).
    pub(crate) fn position_value_straight(&self, pos: &Position) -> Option<PositionValue> {
        let cfg = self.venue.market(pos.market);
        let (sm, n, t) = self.straight_notional(pos.market, pos.size)?;
        let qd = self.quote_decimals();
        let dec = [
            cfg.size_decimals,
            self.venue.asset(cfg.base).price_scale,
            qd,
            self.funding_scale(pos.market),
        ];
        let (upnl_maint, upnl_init) = self.straight_upnl(pos, sm, dec)?;
        let tiers = straight_tiers(cfg, n, pow10_small(t - qd)?)?;
        let d = t.checked_add(RATIO_DECIMALS)? - qd;
        let (im, mm, le) = requirements(tiers, d)?;
        Some(PositionValue {
            notional: div_round_pow10(n, t - qd, Round::Floor)?,
            upnl_maint,
            upnl_init,
            im,
            mm,
            le,
        })
    }

    /// (s x index, the notional |s x index| at T, T = max(sd + ps, qd)) of `size` lots of
    /// `market`; None where the market's fractions are scaled (the straight line declines)
    /// or a step leaves i128.
    fn straight_notional(
        &self,
        market: crate::ids::MarketId,
        size: crate::num::Lots,
    ) -> Option<(i128, i128, u8)> {
        let scale = self.markets[market.index()].fraction_scale;
        if scale != 0 && scale != Ratio::ONE.0 {
            return None;
        }
        let cfg = self.venue.market(market);
        let sn = cfg
            .size_decimals
            .checked_add(self.venue.asset(cfg.base).price_scale)?;
        let t = sn.max(self.quote_decimals());
        let sm = i128::from(size.0) * i128::from(self.index(cfg.base).unwrap_or(0));
        let n = mul_i128(sm.checked_abs()?, pow10_small(t - sn)?)?;
        Some((sm, n, t))
    }

    /// IM_pos of `size` lots of `market` (tiered, rounded up to quote decimals) in
    /// straight-line i128: the notional at T and the tiers as for a position's figures. None
    /// where a step leaves i128 or the fractions are scaled (the caller takes `Exact`).
    pub(crate) fn im_pos_straight(
        &self,
        market: crate::ids::MarketId,
        size: crate::num::Lots,
    ) -> Option<i128> {
        let (_, n, t) = self.straight_notional(market, size)?;
        let qd = self.quote_decimals();
        let (ti, _) = straight_tiers(self.venue.market(market), n, pow10_small(t - qd)?)?;
        div_round_pow10(ti, t.checked_add(RATIO_DECIMALS)? - qd, Round::Ceil)
    }

    /// (floor(u), the initial PnL term) at quote decimals, from `sm = s x index` and the
    /// decimals `[sd, ps, qd, fs]`.
    fn straight_upnl(&self, pos: &Position, sm: i128, dec: [u8; 4]) -> Option<(i128, i128)> {
        let [sd, ps, qd, fs] = dec;
        let (sn, sf) = (sd.checked_add(ps)?, sd.checked_add(fs)?);
        let s_scale = sn.max(qd).max(sf);
        let delta = self.markets[pos.market.index()]
            .funding_index
            .checked_sub(pos.funding_mark)?;
        let owed = mul_i128(
            mul_i128(i128::from(pos.size.0), delta)?,
            pow10_small(s_scale - sf)?,
        )?;
        let u = mul_i128(sm, pow10_small(s_scale - sn)?)?
            .checked_add(mul_i128(pos.quote.0, pow10_small(s_scale - qd)?)?)?
            .checked_sub(owed)?;
        let e1 = s_scale - qd;
        let maint = div_round_pow10(u, e1, Round::Floor)?;
        let w = self.venue.market(pos.market).upnl_weight_init.0;
        if u <= 0 || w == Ratio::ONE.0 {
            return Some((maint, maint));
        }
        // floor(u x w): `Small`'s split answers it where the product itself leaves i128.
        let w = Small::new(w, RATIO_DECIMALS);
        let init = Small::new(u, s_scale).times_round(w, qd, Round::Floor)?;
        Some((maint, init))
    }
}

/// A balance's collateral terms in straight-line i128: its value `balance x index` at scale
/// `scale` (the asset's decimals plus its price scale), floored to the quote's decimals, times
/// each weight when positive. The same rationals `Exact` rounds, rounded once the same way;
/// None where a step leaves i128 (the caller takes `Exact`).
pub(crate) fn collateral_straight<const N: usize>(
    balance: Native,
    index: i64,
    scale: u8,
    qd: u8,
    weights: [Ratio; N],
) -> Option<[i128; N]> {
    let v = mul_i128(balance.0, i128::from(index))?;
    let floor_at = |x: i128, from: u8| -> Option<i128> {
        if from >= qd {
            div_round_pow10(x, from - qd, Round::Floor)
        } else {
            mul_i128(x, pow10_small(qd - from)?)
        }
    };
    if balance.0 <= 0 {
        return Some([floor_at(v, scale)?; N]);
    }
    let mut out = [0; N];
    for (o, w) in out.iter_mut().zip(weights) {
        *o = floor_at(mul_i128(v, w.0)?, scale.checked_add(RATIO_DECIMALS)?)?;
    }
    Some(out)
}

/// (tiered IM, tiered MM) of notional `n` (at scale T; `to_t` brings a quote amount there), at
/// scale T + 18: each bracket's part of `n` weighted by both of its fractions.
fn straight_tiers(cfg: &crate::venue::MarketConfig, n: i128, to_t: i128) -> Option<(i128, i128)> {
    let (mut ti, mut tm) = (0i128, 0i128);
    let (mut lower, mut fi, mut fm) = (0i128, cfg.imf.0, cfg.mmf.0);
    let mut add = |part: i128, fi: i128, fm: i128| -> Option<()> {
        if part > 0 {
            ti = ti.checked_add(mul_i128(part, fi)?)?;
            tm = tm.checked_add(mul_i128(part, fm)?)?;
        }
        Some(())
    };
    for tier in &cfg.tiers {
        let above = mul_i128(tier.above.0, to_t)?;
        add(n.min(above).checked_sub(lower)?, fi, fm)?;
        lower = above;
        (fi, fm) = (tier.imf.0, tier.mmf.0);
    }
    add(n.checked_sub(lower)?, fi, fm)?;
    Some((ti, tm))
}

/// (ceil IM, ceil MM, ceil LE = (IM + MM) / 2) at quote decimals from the tier sums at
/// `10^d` per quote unit: two divisions, LE from their quotients and remainders.
fn requirements((ti, tm): (i128, i128), d: u8) -> Option<(i128, i128, i128)> {
    let (qi, ri) = div_rem_euclid_pow10(ti, d)?;
    let (qm, rm) = div_rem_euclid_pow10(tm, d)?;
    let im = qi.checked_add(i128::from(ri > 0))?;
    let mm = qm.checked_add(i128::from(rm > 0))?;
    // ceil((ti + tm) / 10^d) = qi + qm + ceil((ri + rm) / 10^d), the remainders below 2 x 10^d;
    // then ceil(c / 2) is ceil((ti + tm) / (2 x 10^d)).
    let unit = pow10_small(d)?;
    let rs = ri.checked_add(rm)?;
    let c = qi
        .checked_add(qm)?
        .checked_add(i128::from(rs > 0) + i128::from(rs > unit))?;
    Some((im, mm, c.checked_add(1)?.div_euclid(2)))
}

#[cfg(test)]
mod tests {
    use super::collateral_straight;
    use crate::account::Position;
    use crate::ids::MarketId;
    use crate::num::{Exact, Lots, Native, Ratio, Ticks};
    use crate::state::State;
    use proptest::prelude::*;

    /// A state with one market whose decimals, tiers and weights are the arguments, priced.
    fn venue(sd: u8, ps: u8, tiers: &[(i128, i128, i128)], w: i128, index: i64) -> State {
        let mut lines = vec![
            r#"{"type":"asset","ts":0,"asset":"USDC","decimals":6,"quote":true}"#.to_string(),
            format!(
                r#"{{"type":"asset","ts":0,"asset":"BTC","decimals":8,"price_decimals":{ps},"oracle":{{"sources":1,"min_sources":1,"max_age_us":600000000,"max_deviation":"0.5"}}}}"#
            ),
        ];
        let tiers: Vec<String> = tiers
            .iter()
            .map(|(above, imf, mmf)| {
                format!(r#"{{"above":"{above}","imf":"0.{imf:03}","mmf":"0.{mmf:03}"}}"#)
            })
            .collect();
        lines.push(format!(
            r#"{{"type":"market","ts":0,"market":"BTC-PERP","base":"BTC","size_decimals":{sd},"imf":"0.1","mmf":"0.05","upnl_weight_init":"0.{w:03}","tiers":[{}]}}"#,
            tiers.join(",")
        ));
        let mut e = crate::engine::Engine::new();
        for l in &lines {
            let input = crate::codec::json_in::parse_input(l).expect("a valid line");
            e.apply(&input);
        }
        assert_eq!(e.state.markets.len(), 1, "listed: {lines:?}");
        e.state.assets[1].oracle.index = Some(Ticks(index));
        e.state
    }

    fn position() -> impl Strategy<Value = Position> {
        (
            prop_oneof![any::<i64>(), -1_000_000i64..1_000_000],
            prop_oneof![
                any::<i64>().prop_map(i128::from),
                -(10i128.pow(15))..10i128.pow(15)
            ],
            prop_oneof![
                Just(0i128),
                any::<i64>().prop_map(i128::from),
                any::<i128>()
            ],
        )
            .prop_map(|(size, quote, funding_mark)| Position {
                market: MarketId(0),
                size: Lots(size),
                quote: Native(quote),
                funding_mark,
            })
    }

    /// `venue` with two tiers or none, and fractions scaled by a dynamic factor or not.
    fn drawn_venue(sd: u8, ps: u8, w: i128, index: i64, tiered: bool, scaled: bool) -> State {
        let tiers: &[(i128, i128, i128)] = if tiered {
            &[(100_000, 150, 80), (10_000_000, 300, 200)]
        } else {
            &[]
        };
        let mut st = venue(sd, ps, tiers, w, index);
        if scaled {
            st.markets[0].fraction_scale = Ratio::ONE.0 * 3 / 2;
        }
        st
    }

    proptest! {
        /// Wherever the straight line answers, it answers the model's figures.
        #[test]
        fn it_gives_the_models_figures(
            pos in position(),
            sd in 0u8..9,
            ps in 0u8..9,
            w in 0i128..1000,
            index in prop_oneof![any::<i64>().prop_map(|i| i.max(0)), 1i64..10_000_000],
            funding in prop_oneof![Just(0i128), any::<i64>().prop_map(i128::from), any::<i128>()],
            tiered in any::<bool>(),
            scaled in any::<bool>(),
        ) {
            let mut st = drawn_venue(sd, ps, w, index, tiered, scaled);
            st.markets[0].funding_index = funding;
            if let Some(v) = st.position_value_straight(&pos) {
                prop_assert!(!scaled, "scaled fractions take the general path");
                prop_assert_eq!(Ok(v), st.position_value_general(&pos));
            }
        }
    }

    proptest! {
        /// IM_pos in straight-line i128, wherever it answers, is the model's.
        #[test]
        fn straight_im_pos_is_the_models(
            size in prop_oneof![any::<i64>(), -1_000_000i64..1_000_000],
            sd in 0u8..9,
            ps in 0u8..9,
            index in prop_oneof![any::<i64>().prop_map(|i| i.max(0)), 1i64..10_000_000],
            tiered in any::<bool>(),
            scaled in any::<bool>(),
        ) {
            let mut st = drawn_venue(sd, ps, 500, index, tiered, scaled);
            st.plain_valuation = true;
            let general = st.im_pos(MarketId(0), Lots(size));
            if let Some(im) = st.im_pos_straight(MarketId(0), Lots(size)) {
                prop_assert!(!scaled, "scaled fractions take the general path");
                prop_assert_eq!(Ok(im), general);
            }
        }
    }

    /// Everyday sizes take the straight line for IM_pos.
    #[test]
    fn everyday_im_pos_takes_the_straight_line() {
        let mut st = venue(3, 2, &[(100_000, 150, 80)], 800, 6_512_345);
        st.plain_valuation = true;
        for size in [1_500i64, -2_000, 0, 7] {
            let im = st
                .im_pos_straight(MarketId(0), Lots(size))
                .expect("fits i128");
            assert_eq!(Ok(im), st.im_pos(MarketId(0), Lots(size)));
        }
    }

    /// Moderate random positions on everyday decimals (a PnL scale up to 10^-24, where the
    /// initial term's split fits i128), random tiers, weights and funding: nearly all answer
    /// here, and every answer is the model's. Finer scales take the general path more often
    /// (`it_gives_the_models_figures` covers them).
    #[test]
    fn moderate_positions_answer_here_and_agree() {
        let mut rng = crate::rng::Rng::new(7);
        let (mut answered, mut tried) = (0, 0);
        for _ in 0..40 {
            let (sd, ps) = (rng.range(0, 4) as u8, rng.range(0, 2) as u8);
            let tiers: &[(i128, i128, i128)] = if rng.chance(500) {
                &[(50_000, 120, 70), (2_000_000, 250, 150)]
            } else {
                &[]
            };
            let w = i128::from(rng.range(0, 999));
            let mut st = venue(sd, ps, tiers, w, rng.range(1, 10_000_000));
            st.markets[0].funding_index =
                i128::from(rng.range(-1_000_000_000, 1_000_000_000)) << 20;
            for _ in 0..50 {
                let pos = Position {
                    market: MarketId(0),
                    size: Lots(rng.range(-10_000_000, 10_000_000)),
                    quote: Native(i128::from(rng.range(-1 << 40, 1 << 40))),
                    funding_mark: i128::from(rng.range(-1_000_000_000, 1_000_000_000)) << 20,
                };
                tried += 1;
                if let Some(v) = st.position_value_straight(&pos) {
                    answered += 1;
                    assert_eq!(
                        Ok(v),
                        st.position_value_general(&pos),
                        "{pos:?} sd {sd} ps {ps}"
                    );
                }
            }
        }
        assert!(
            answered * 100 >= tried * 95,
            "{answered} of {tried} answered"
        );
    }

    /// The everyday positions answer here rather than falling back.
    #[test]
    fn everyday_positions_take_the_straight_line() {
        let st = venue(3, 2, &[(100_000, 150, 80)], 800, 6_512_345);
        for (size, quote) in [(1_500i64, -97_000_000_000i128), (-2_000, 131_000_000_000)] {
            let pos = Position {
                market: MarketId(0),
                size: Lots(size),
                quote: Native(quote),
                funding_mark: -12_345_678_901_234_567_890,
            };
            let v = st.position_value_straight(&pos).expect("fits i128");
            assert_eq!(Ok(v), st.position_value_general(&pos));
        }
    }

    proptest! {
        /// Collateral terms in straight-line i128, wherever they answer, are `Exact`'s.
        #[test]
        fn straight_collateral_is_exacts(
            balance in prop_oneof![
                -1_000_000_000_000i128..1_000_000_000_000,
                any::<i64>().prop_map(i128::from),
                any::<i128>(),
            ],
            index in prop_oneof![1i64..100_000_000, any::<i64>()],
            decimals in 0u8..20,
            ps in 0u8..12,
            qd in 0u8..20,
            w in 0i128..=Ratio::ONE.0,
        ) {
            let weights = [Ratio(w), Ratio::ONE];
            if let Some(got) = collateral_straight(Native(balance), index, decimals + ps, qd, weights) {
                let v = Exact::new(balance, decimals).times(Exact::new(i128::from(index), ps)).unwrap();
                for (g, w) in got.iter().zip(weights) {
                    let want = if balance <= 0 { v.floor(qd) } else { v.times(w.exact()).and_then(|x| x.floor(qd)) };
                    prop_assert_eq!(Ok(*g), want);
                }
            }
        }
    }

    /// Everyday balances answer in straight-line i128.
    #[test]
    fn everyday_collateral_takes_the_straight_line() {
        let w = [Ratio(Ratio::ONE.0 * 9 / 10)];
        // 1.5 BTC (8 decimals) at 65,000.12 (2 decimals), USDC at 6 decimals, weight 0.9.
        let got = collateral_straight(Native(150_000_000), 6_500_012, 10, 6, w);
        assert_eq!(got, Some([87_750_162_000]));
        assert_eq!(
            collateral_straight(Native(-150_000_000), 6_500_012, 10, 6, w),
            Some([-97_500_180_000])
        );
    }
}
