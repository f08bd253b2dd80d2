//! The health function of the margin model: collateral with weights, PnL with its weight, tiered
//! requirements and order margin, each term rounded once in the venue's favour.
//!
//! Checks that ask "what if" (an order added, a balance lowered) pass an [`Overlay`] instead of
//! cloning the bucket, so that a pre-trade check never allocates.

use crate::account::{Bucket, OrderSums, Position};
use crate::ids::{AssetId, MarketId};
use crate::num::small::{Small, Term};
use crate::num::{Exact, Lots, Native, Overflow, Ratio, Round, RATIO_DECIMALS};
use crate::state::State;
use crate::venue::MarketConfig;

/// The figures of one bucket, in quote native units.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Health {
    pub equity_init: i128,
    pub equity_maint: i128,
    /// Sum of IM_pos plus order margin.
    pub im: i128,
    pub mm: i128,
    /// Sum of LE_pos: the level a liquidation must restore.
    pub le: i128,
    pub order_margin: i128,
}

impl Health {
    pub fn health_init(&self) -> i128 {
        self.equity_init - self.im
    }

    pub fn health_maint(&self) -> i128 {
        self.equity_maint - self.mm
    }

    pub fn health_le(&self) -> i128 {
        self.equity_maint - self.le
    }
}

/// The maintenance side of a bucket's health: everything the liquidation passes, the margin-call
/// check and the price-tick index read (order margin and the initial terms enter none of them,
/// so they are not computed for them). The type keeps them from reading anything else.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MaintHealth {
    pub equity_maint: i128,
    pub mm: i128,
    /// Sum of LE_pos: the level a liquidation must restore.
    pub le: i128,
}

impl MaintHealth {
    pub fn health_maint(&self) -> i128 {
        self.equity_maint - self.mm
    }

    pub fn health_le(&self) -> i128 {
        self.equity_maint - self.le
    }
}

impl From<&Health> for MaintHealth {
    fn from(h: &Health) -> MaintHealth {
        MaintHealth {
            equity_maint: h.equity_maint,
            mm: h.mm,
            le: h.le,
        }
    }
}

/// The figures of one position, in quote native units.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PositionValue {
    /// N rounded down.
    pub notional: i128,
    /// The maintenance PnL term, floor(u).
    pub upnl_maint: i128,
    /// The initial PnL term.
    pub upnl_init: i128,
    pub im: i128,
    pub mm: i128,
    pub le: i128,
}

/// Changes to a bucket that a check wants to value without applying them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overlay {
    pub balance: Option<(AssetId, Native)>,
    pub position: Option<Position>,
    pub orders: Option<(MarketId, OrderSums)>,
    /// Values the bucket in this mode (portfolio when true) instead of its own.
    pub portfolio: Option<bool>,
}

/// Which fraction a requirement uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fraction {
    Init,
    /// Only the tests' plain recomputation asks for it; `position_value` takes both at once.
    #[cfg_attr(not(test), allow(dead_code))]
    Maint,
}

impl State {
    /// The scale of a market's funding index: 18 + the base asset's price scale.
    pub fn funding_scale(&self, market: MarketId) -> u8 {
        let m = self.venue.market(market);
        RATIO_DECIMALS + self.venue.asset(m.base).price_scale
    }

    /// The market's index price M as an exact quote value (0 before the first index).
    pub fn mark(&self, market: MarketId) -> Exact {
        let m = self.venue.market(market);
        let base = self.venue.asset(m.base);
        Exact::new(
            i128::from(self.index(m.base).unwrap_or(0)),
            base.price_scale,
        )
    }

    /// N = |s| * M, exact.
    pub fn notional_exact(&self, market: MarketId, size: Lots) -> Result<Exact, Overflow> {
        let sd = self.venue.market(market).size_decimals;
        size.abs().exact(sd).times(self.mark(market))
    }

    /// tiered(N, f): the market's own fraction up to the first tier, each tier's above it.
    fn tiered(&self, market: MarketId, n: Exact, which: Fraction) -> Result<Exact, Overflow> {
        let cfg = self.venue.market(market);
        let qd = self.quote_decimals();
        let pick = |imf: Ratio, mmf: Ratio| match which {
            Fraction::Init => imf,
            Fraction::Maint => mmf,
        };
        let mut total = Exact::ZERO;
        let mut lower = Exact::ZERO;
        let mut fraction = pick(cfg.imf, cfg.mmf);
        for tier in &cfg.tiers {
            let above = tier.above.exact(qd);
            let part = n.min(above)?.minus(lower)?;
            if part.is_positive() {
                total = total.plus(part.times(fraction.exact())?)?;
            }
            lower = above;
            fraction = pick(tier.imf, tier.mmf);
        }
        let part = n.minus(lower)?;
        if part.is_positive() {
            total = total.plus(part.times(fraction.exact())?)?;
        }
        self.scale_fraction(market, total).ok_or(Overflow)
    }

    /// (tiered(N, imf), tiered(N, mmf)) in one walk of the tiers: each bracket's part of N is
    /// found once and weighted by both fractions.
    fn tiered_both<T: Term>(&self, market: MarketId, n: T) -> Option<(T, T)> {
        let cfg = self.venue.market(market);
        let qd = self.quote_decimals();
        let (mut ti, mut tm) = (T::ZERO, T::ZERO);
        let mut lower = T::ZERO;
        let (mut fi, mut fm) = (cfg.imf, cfg.mmf);
        let ratio = |r: Ratio| T::new(r.0, RATIO_DECIMALS);
        for tier in &cfg.tiers {
            let above = T::new(tier.above.0, qd);
            let part = n.min(above)?.minus(lower)?;
            if part.is_positive() {
                ti = ti.plus(part.times(ratio(fi))?)?;
                tm = tm.plus(part.times(ratio(fm))?)?;
            }
            lower = above;
            (fi, fm) = (tier.imf, tier.mmf);
        }
        let part = n.minus(lower)?;
        if part.is_positive() {
            ti = ti.plus(part.times(ratio(fi))?)?;
            tm = tm.plus(part.times(ratio(fm))?)?;
        }
        Some((
            self.scale_fraction(market, ti)?,
            self.scale_fraction(market, tm)?,
        ))
    }

    /// Applies the dynamic-margin factor of the market (exactly 1 unless turned on).
    fn scale_fraction<T: Term>(&self, market: MarketId, v: T) -> Option<T> {
        let scale = self.markets[market.index()].fraction_scale;
        if scale == 0 || scale == Ratio::ONE.0 {
            return Some(v);
        }
        v.times(T::new(scale, RATIO_DECIMALS))
    }

    /// IM_pos for a size.
    pub fn im_pos(&self, market: MarketId, size: Lots) -> Result<i128, Overflow> {
        if !self.plain_valuation {
            if let Some(im) = self.im_pos_straight(market, size) {
                return Ok(im);
            }
        }
        let n = self.notional_exact(market, size)?;
        self.tiered(market, n, Fraction::Init)?
            .ceil(self.quote_decimals())
    }

    /// g = s * (F - f): the funding a position owes (negative: is owed), exact.
    pub fn funding_owed(&self, pos: &Position) -> Result<Exact, Overflow> {
        self.funding_owed_in(pos).ok_or(Overflow)
    }

    /// `funding_owed` in one number type.
    fn funding_owed_in<T: Term>(&self, pos: &Position) -> Option<T> {
        let f_now = self.markets[pos.market.index()].funding_index;
        let delta = f_now.checked_sub(pos.funding_mark)?;
        let sd = self.venue.market(pos.market).size_decimals;
        T::new(i128::from(pos.size.0), sd).times(T::new(delta, self.funding_scale(pos.market)))
    }

    /// u = s * M + q - g, exact.
    pub fn upnl_exact(&self, pos: &Position) -> Result<Exact, Overflow> {
        let sd = self.venue.market(pos.market).size_decimals;
        let sm = pos.size.exact(sd).times(self.mark(pos.market))?;
        let q = pos.quote.exact(self.quote_decimals());
        sm.plus(q)?.minus(self.funding_owed(pos)?)
    }

    /// (u, N) of a position with s * M computed once: u = s*M + q - g, and N = |s| * M =
    /// |s * M| (M >= 0), the same exact values `upnl_exact` and `notional_exact` give.
    fn upnl_and_notional<T: Term>(&self, pos: &Position) -> Option<(T, T)> {
        let cfg = self.venue.market(pos.market);
        let (sd, ps) = (cfg.size_decimals, self.venue.asset(cfg.base).price_scale);
        let index = self.index(cfg.base).unwrap_or(0);
        let sm = T::product_i64(pos.size.0, sd, index, ps)?;
        let u = sm
            .plus(T::new(pos.quote.0, self.quote_decimals()))?
            .minus(self.funding_owed_in(pos)?)?;
        Some((u, sm.abs()?))
    }

    /// Every figure of one position: in straight-line i128 where every step fits (nearly
    /// always; `straight.rs`), else by the general path. The figures are the same either way.
    /// The naive mode takes the general path only, so that it stays the oracle of this one.
    pub fn position_value(&self, pos: &Position) -> Result<PositionValue, Overflow> {
        if !self.plain_valuation {
            if let Some(v) = self.position_value_straight(pos) {
                return Ok(v);
            }
        }
        self.position_value_general(pos)
    }

    /// The model's text run in i128 where every step fits, else again with 256-bit
    /// intermediates; the figures are the same either way (see `num::small`), and an overflow
    /// only where the wide path overflows too.
    pub(crate) fn position_value_general(&self, pos: &Position) -> Result<PositionValue, Overflow> {
        self.position_value_in::<Small>(pos)
            .or_else(|| self.position_value_in::<Exact>(pos))
            .ok_or(Overflow)
    }

    /// `position_value` in one number type.
    fn position_value_in<T: Term>(&self, pos: &Position) -> Option<PositionValue> {
        let qd = self.quote_decimals();
        let cfg = self.venue.market(pos.market);
        let (u, n) = self.upnl_and_notional::<T>(pos)?;
        let upnl_maint = u.floor(qd)?;
        let upnl_init = if u.is_positive() {
            u.times_round(
                T::new(cfg.upnl_weight_init.0, RATIO_DECIMALS),
                qd,
                Round::Floor,
            )?
        } else {
            upnl_maint
        };
        let (ti, tm) = self.tiered_both(pos.market, n)?;
        Some(PositionValue {
            notional: n.floor(qd)?,
            upnl_maint,
            upnl_init,
            im: ti.ceil(qd)?,
            mm: tm.ceil(qd)?,
            le: ti.plus(tm)?.half()?.ceil(qd)?,
        })
    }

    /// (init, maint) collateral terms of one balance.
    pub fn collateral_terms(
        &self,
        asset: AssetId,
        balance: Native,
    ) -> Result<(i128, i128), Overflow> {
        let cfg = self.venue.asset(asset);
        let [i, m] =
            self.collateral_weighted(asset, balance, [cfg.weight_init, cfg.weight_maint])?;
        Ok((i, m))
    }

    /// The maintenance collateral term of one balance (the second of `collateral_terms`).
    pub(crate) fn collateral_maint(
        &self,
        asset: AssetId,
        balance: Native,
    ) -> Result<i128, Overflow> {
        let w = self.venue.asset(asset).weight_maint;
        let [m] = self.collateral_weighted(asset, balance, [w])?;
        Ok(m)
    }

    /// A balance's collateral terms under each weight: its value at the index (computed once),
    /// weighted when positive (a debt counts in full); the quote at its balance; an asset never
    /// priced at nothing.
    fn collateral_weighted<const N: usize>(
        &self,
        asset: AssetId,
        balance: Native,
        weights: [Ratio; N],
    ) -> Result<[i128; N], Overflow> {
        let cfg = self.venue.asset(asset);
        if cfg.quote {
            return Ok([balance.0; N]);
        }
        let Some(index) = self.index(asset) else {
            return Ok([0; N]);
        };
        let qd = self.quote_decimals();
        if !self.plain_valuation {
            let scale = cfg.decimals.checked_add(cfg.price_scale);
            if let Some(out) = scale
                .and_then(|s| crate::straight::collateral_straight(balance, index, s, qd, weights))
            {
                return Ok(out);
            }
        }
        let v = balance
            .exact(cfg.decimals)
            .times(Exact::new(i128::from(index), cfg.price_scale))?;
        if balance.0 <= 0 {
            return Ok([v.floor(qd)?; N]);
        }
        let mut out = [0; N];
        for (o, w) in out.iter_mut().zip(weights) {
            *o = v.times(w.exact())?.floor(qd)?;
        }
        Ok(out)
    }

    /// Order margin of one market: max(0, cost of the bid scenario, cost of the ask scenario).
    pub fn order_margin(
        &self,
        market: MarketId,
        size: Lots,
        sums: &OrderSums,
    ) -> Result<i128, Overflow> {
        if sums.count == 0 {
            return Ok(0);
        }
        let cfg = self.venue.market(market);
        let base = self.venue.asset(cfg.base);
        let scale = cfg.size_decimals + base.price_scale;
        let m = i128::from(self.index(cfg.base).unwrap_or(0));
        let qd = self.quote_decimals();
        let im_now = self.im_pos(market, size)?;
        let scenario = |lots: i128, cost: i128, sign: i128| -> Result<i128, Overflow> {
            if lots == 0 {
                return Ok(0);
            }
            let after = i128::from(size.0)
                .checked_add(sign * lots)
                .ok_or(Overflow)?;
            let after = Lots(i64::try_from(after).map_err(|_| Overflow)?);
            // Immediate PnL x of filling at the limits: buys gain M - limit, sells limit - M.
            let x = sign * (m.checked_mul(lots).ok_or(Overflow)? - cost);
            let loss = ceil_at((-x).max(0), scale, qd)?;
            Ok(self.im_pos(market, after)? - im_now + loss)
        };
        let bid = scenario(sums.buy_lots, sums.buy_cost, 1)?;
        let ask = scenario(sums.sell_lots, sums.sell_cost, -1)?;
        Ok(bid.max(ask).max(0))
    }

    /// The health of a bucket, with an optional overlay of changes.
    pub fn bucket_health(&self, bucket: &Bucket, overlay: &Overlay) -> Result<Health, Overflow> {
        let mut h = Health::default();
        self.add_collateral(&mut h, bucket, overlay)?;
        let overlay_pos = overlay
            .position
            .filter(|p| bucket.position(p.market).is_none());
        for (i, pos) in bucket
            .positions
            .iter()
            .chain(overlay_pos.iter())
            .enumerate()
        {
            let v = match overlay.position {
                Some(p) if p.market == pos.market => {
                    if p.size.is_zero() {
                        continue;
                    }
                    self.position_value(&p)?
                }
                _ if pos.size.is_zero() => continue,
                _ => self.position_value_at(bucket, i)?,
            };
            h.equity_init = h.equity_init.checked_add(v.upnl_init).ok_or(Overflow)?;
            h.equity_maint = h.equity_maint.checked_add(v.upnl_maint).ok_or(Overflow)?;
            h.im = h.im.checked_add(v.im).ok_or(Overflow)?;
            h.mm = h.mm.checked_add(v.mm).ok_or(Overflow)?;
            h.le = h.le.checked_add(v.le).ok_or(Overflow)?;
        }
        if let Some(set) = self.portfolio_set(bucket, overlay) {
            // Equity as above; the requirements are those of the whole book.
            let pf = self.portfolio_figures(set, bucket, overlay, true)?;
            (h.im, h.mm, h.le, h.order_margin) = (pf.im, pf.mm, pf.le, pf.order_loss);
            return Ok(h);
        }
        h.order_margin = self.bucket_order_margin(bucket, overlay)?;
        h.im = h.im.checked_add(h.order_margin).ok_or(Overflow)?;
        Ok(h)
    }

    /// The maintenance figures of a bucket as it is: the same numbers as the matching fields of
    /// [`State::bucket_health`], without the initial terms and order margin, computed afresh
    /// (apart from the positions' memo, which is keyed by everything it reads);
    /// [`State::bucket_maint`] remembers them.
    pub fn bucket_maint_plain(&self, bucket: &Bucket) -> Result<MaintHealth, Overflow> {
        let mut h = MaintHealth::default();
        for (i, b) in bucket.balances.iter().enumerate() {
            if b.0 != 0 {
                let m = self.collateral_maint(AssetId(i as u16), *b)?;
                h.equity_maint = h.equity_maint.checked_add(m).ok_or(Overflow)?;
            }
        }
        for i in 0..bucket.positions.len() {
            let v = self.position_value_at(bucket, i)?;
            h.equity_maint = h.equity_maint.checked_add(v.upnl_maint).ok_or(Overflow)?;
            h.mm = h.mm.checked_add(v.mm).ok_or(Overflow)?;
            h.le = h.le.checked_add(v.le).ok_or(Overflow)?;
        }
        if let Some(set) = self.portfolio_set(bucket, &Overlay::default()) {
            let pf = self.portfolio_figures(set, bucket, &Overlay::default(), false)?;
            (h.mm, h.le) = (pf.mm, pf.le);
        }
        Ok(h)
    }

    fn add_collateral(
        &self,
        h: &mut Health,
        bucket: &Bucket,
        overlay: &Overlay,
    ) -> Result<(), Overflow> {
        for (asset, b) in crate::portfolio::figures::overlaid_balances(bucket, overlay) {
            let (i, m) = self.collateral_terms(asset, b)?;
            h.equity_init = h.equity_init.checked_add(i).ok_or(Overflow)?;
            h.equity_maint = h.equity_maint.checked_add(m).ok_or(Overflow)?;
        }
        Ok(())
    }

    fn bucket_order_margin(&self, bucket: &Bucket, overlay: &Overlay) -> Result<i128, Overflow> {
        let size_of = |m: MarketId| match overlay.position {
            Some(p) if p.market == m => p.size,
            _ => bucket.size(m),
        };
        let mut total: i128 = 0;
        for (market, sums) in &bucket.orders {
            let sums = match overlay.orders {
                Some((m, s)) if m == *market => s,
                _ => *sums,
            };
            total = total
                .checked_add(self.order_margin(*market, size_of(*market), &sums)?)
                .ok_or(Overflow)?;
        }
        if let Some((m, s)) = overlay.orders {
            if bucket.orders.binary_search_by_key(&m, |o| o.0).is_err() {
                total = total
                    .checked_add(self.order_margin(m, size_of(m), &s)?)
                    .ok_or(Overflow)?;
            }
        }
        Ok(total)
    }

    /// equity_maint alone (collateral and PnL maintenance terms), as ADL ranks by it. A
    /// standard bucket's comes with its maintenance sums, which are remembered for the passes
    /// that usually visit it next; a portfolio bucket's is summed without the scenario
    /// figures, which cost J x holdings terms and which the ranking never reads. Equal to
    /// `bucket_maint_plain(bucket).equity_maint` (`memo::tests`).
    pub fn equity_maint(&self, bucket: &Bucket) -> Result<i128, Overflow> {
        if self.plain_valuation || self.portfolio_set(bucket, &Overlay::default()).is_none() {
            return Ok(self.bucket_maint(bucket)?.equity_maint);
        }
        if let Some(m) = self.remembered_maint(bucket) {
            return Ok(m.equity_maint);
        }
        let mut e: i128 = 0;
        for (i, b) in bucket.balances.iter().enumerate() {
            if b.0 != 0 {
                let m = self.collateral_maint(AssetId(i as u16), *b)?;
                e = e.checked_add(m).ok_or(Overflow)?;
            }
        }
        for i in 0..bucket.positions.len() {
            let v = self.position_value_at(bucket, i)?;
            e = e.checked_add(v.upnl_maint).ok_or(Overflow)?;
        }
        Ok(e)
    }

    /// The largest `margin_call` ratio of the bucket's markets (None without positions).
    pub fn margin_call_ratio(&self, bucket: &Bucket) -> Option<Ratio> {
        bucket
            .positions
            .iter()
            .map(|p| self.venue.market(p.market).margin_call)
            .max()
    }

    /// The market config of a position.
    pub fn market_cfg(&self, market: MarketId) -> &MarketConfig {
        self.venue.market(market)
    }
}

/// `v` at `scale` decimals rounded up to `to` decimals: by a reciprocal division or a power
/// of ten in i128 where that fits, else through `Exact`.
fn ceil_at(v: i128, scale: u8, to: u8) -> Result<i128, Overflow> {
    let fast = if scale >= to {
        crate::num::pow10div::div_round_pow10(v, scale - to, Round::Ceil)
    } else {
        crate::num::exact::pow10_small(to - scale).and_then(|p| crate::num::mul::mul_i128(v, p))
    };
    match fast {
        Some(x) => Ok(x),
        None => Exact::new(v, scale).ceil(to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The i128 rounding up to quote decimals is `Exact`'s, at every scale and magnitude.
        #[test]
        fn ceil_at_is_exacts(
            v in proptest::prop_oneof![proptest::num::i128::ANY, -1_000_000_000i128..1_000_000_000],
            scale in 0u8..60,
            to in 0u8..40,
        ) {
            proptest::prop_assert_eq!(ceil_at(v, scale, to), Exact::new(v, scale).ceil(to));
        }
    }

    /// `position_value` (s * M shared, both tiers in one walk) against the plain recomputation
    /// of each term on its own, for every position of the example venue at many points of its
    /// history (tiers crossed, funding accrued, prices crashed).
    #[test]
    fn fused_position_value_equals_the_plain_terms() {
        let mut checked = 0;
        for lines in (40..=742).step_by(23) {
            let e = crate::engine::example_engine(lines);
            let st = &e.state;
            let qd = st.quote_decimals();
            for acc in &st.accounts {
                for slot in acc.slots() {
                    let Some(b) = acc.bucket(slot) else { continue };
                    for pos in b.positions.iter().filter(|p| !p.size.is_zero()) {
                        let v = st.position_value(pos).unwrap();
                        let cfg = st.venue.market(pos.market);
                        let u = st.upnl_exact(pos).unwrap();
                        let n = st.notional_exact(pos.market, pos.size).unwrap();
                        let ti = st.tiered(pos.market, n, Fraction::Init).unwrap();
                        let tm = st.tiered(pos.market, n, Fraction::Maint).unwrap();
                        let upnl_init = if u.is_positive() {
                            u.times(cfg.upnl_weight_init.exact())
                                .unwrap()
                                .floor(qd)
                                .unwrap()
                        } else {
                            u.floor(qd).unwrap()
                        };
                        let plain = PositionValue {
                            notional: n.floor(qd).unwrap(),
                            upnl_maint: u.floor(qd).unwrap(),
                            upnl_init,
                            im: ti.ceil(qd).unwrap(),
                            mm: tm.ceil(qd).unwrap(),
                            le: ti.plus(tm).unwrap().half().unwrap().ceil(qd).unwrap(),
                        };
                        assert_eq!(v, plain, "{pos:?} after {lines} lines");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "positions checked: {checked}");
    }

    /// The i128 valuation against the 256-bit one (the same text in the other number type) on
    /// venues and positions drawn from the whole range: odd scales, deep tiers, dynamic margin,
    /// funding far from the mark, sizes and prices near their limits. Where the i128 path
    /// answers it must give the wide path's figures; where it declines, the wide path decides
    /// (and an overflow there is the event's rejection, as before).
    mod small_against_exact {
        use super::*;
        use crate::venue::Tier;
        use proptest::prelude::*;

        fn magnitude() -> impl Strategy<Value = i128> {
            prop_oneof![
                -1_000_000i128..1_000_000,
                any::<i64>().prop_map(i128::from),
                any::<i128>().prop_map(|v| v >> 40),
                any::<i128>(),
            ]
        }

        fn ratio() -> impl Strategy<Value = Ratio> {
            prop_oneof![
                (0i128..=Ratio::ONE.0).prop_map(Ratio),
                any::<i128>().prop_map(|v| Ratio(v.abs() >> 30)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn the_i128_path_gives_the_wide_paths_figures(
                qd in 0u8..30,
                sd in 0u8..30,
                ps in 0u8..30,
                size in any::<i64>(),
                index in prop_oneof![Just(None), any::<i64>().prop_map(Some), (1i64..10_000_000).prop_map(Some)],
                quote in magnitude(),
                funding in (magnitude(), magnitude()),
                fractions in (ratio(), ratio(), ratio()),
                tiers in proptest::collection::vec((magnitude(), ratio(), ratio()), 0..4),
                fraction_scale in prop_oneof![Just(0i128), Just(Ratio::ONE.0), (1i128..4 * Ratio::ONE.0)],
            ) {
                let mut st = crate::engine::example_engine(742).state;
                let pos = Position {
                    market: MarketId(0),
                    size: Lots(size),
                    quote: Native(quote),
                    funding_mark: funding.1,
                };
                let base = st.venue.markets[0].base;
                let quote_asset = st.venue.quote.expect("the example lists a quote");
                st.venue.assets[quote_asset.index()].decimals = qd;
                st.venue.assets[base.index()].price_scale = ps;
                st.assets[base.index()].oracle.index = index.map(crate::num::Ticks);
                let m = &mut st.venue.markets[0];
                m.size_decimals = sd;
                (m.imf, m.mmf, m.upnl_weight_init) = fractions;
                let mut above: Vec<i128> = tiers.iter().map(|t| t.0.abs()).collect();
                above.sort_unstable();
                m.tiers = above
                    .iter()
                    .zip(&tiers)
                    .map(|(&a, t)| Tier { above: Native(a), imf: t.1, mmf: t.2 })
                    .collect();
                st.markets[0].funding_index = funding.0;
                st.markets[0].fraction_scale = fraction_scale;
                let small = st.position_value_in::<Small>(&pos);
                let wide = st.position_value_in::<Exact>(&pos);
                if let Some(v) = small {
                    prop_assert_eq!(Some(v), wide);
                }
            }
        }

        /// The comparison above is not vacuous: the everyday positions of the example venue
        /// all take the i128 path.
        #[test]
        fn everyday_positions_take_the_i128_path() {
            let e = crate::engine::example_engine(742);
            let mut n = 0;
            for acc in &e.state.accounts {
                for slot in acc.slots() {
                    let Some(b) = acc.bucket(slot) else { continue };
                    for pos in &b.positions {
                        assert!(e.state.position_value_in::<Small>(pos).is_some(), "{pos:?}");
                        n += 1;
                    }
                }
            }
            assert!(n > 20, "positions: {n}");
        }
    }

    /// `bucket_maint` against the maintenance fields of the full `bucket_health`, for every
    /// bucket of the example venue at many points of its history.
    #[test]
    fn maintenance_figures_equal_those_of_the_full_health() {
        let mut checked = 0;
        for lines in (40..=742).step_by(19) {
            let e = crate::engine::example_engine(lines);
            let st = &e.state;
            for acc in &st.accounts {
                for slot in acc.slots() {
                    let Some(b) = acc.bucket(slot) else { continue };
                    let full = st.bucket_health(b, &Overlay::default()).unwrap();
                    assert_eq!(st.bucket_maint(b).unwrap(), MaintHealth::from(&full));
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "buckets checked: {checked}");
    }
}
