//! The scenario figures of a portfolio bucket: per scenario, the P&L of every holding under the
//! scenario's joint move (each term rounded down once), the weighted loss, the floor, and from
//! them MM, LE and the order-aware IM (docs/margin-model.md, "Portfolio margin").
//!
//! Computed from the bucket as it is plus an [`Overlay`], like the standard health, so that a
//! what-if check (an order added, a balance lowered, a takeover) never clones the bucket.

use super::set::{ScenarioSet, MOVE_DECIMALS, SCENARIOS_MAX};
use crate::account::{Bucket, OrderSums, Position};
use crate::health::Overlay;
use crate::ids::{AssetId, MarketId};
use crate::num::{Exact, Lots, Native, Overflow, Ratio};
use crate::state::State;

/// The portfolio figures of one bucket, in quote native units.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PortfolioFigures {
    /// FL: the sum of the positions' floor charges.
    pub floor: i128,
    /// MM = max(FL, WL_1, ..., WL_J).
    pub mm: i128,
    /// LE = ceil(le_factor × MM).
    pub le: i128,
    /// IM = ceil(im_factor × MM°) + X (ceil(im_factor × MM) without open orders).
    pub im: i128,
    /// X: the immediate loss of the open orders at their limits (0 without orders).
    pub order_loss: i128,
    /// The scenario with the largest WL_j, the first among equal ones; None when all are 0.
    pub worst: Option<usize>,
    /// WL of `worst` (0 when None).
    pub worst_loss: i128,
}

/// The scenario P&L and floor of every holding of a bucket but one market's position: what a
/// takeover in that market leaves as it is, so that probing sizes of that position (the
/// portfolio bid size rule) values one position per probe.
pub struct ScenarioBase {
    t: [i128; SCENARIOS_MAX],
    floor: i128,
    market: MarketId,
}

/// Running sums of one evaluation: T_j and T°_j per scenario, FL and FL°, X.
struct Sums {
    t: [i128; SCENARIOS_MAX],
    t_orders: [i128; SCENARIOS_MAX],
    floor: i128,
    floor_orders: i128,
    order_loss: i128,
}

#[cfg(test)]
thread_local! {
    /// The planted mutation: round position terms up (in the account's favour). The oracle
    /// test in `portfolio::tests` turns it on and expects to catch it.
    pub(crate) static ROUND_POSITION_TERMS_UP: std::cell::Cell<bool> =
        const { std::cell::Cell::new(false) };
}

impl Sums {
    fn empty() -> Sums {
        Sums {
            t: [0; SCENARIOS_MAX],
            t_orders: [0; SCENARIOS_MAX],
            floor: 0,
            floor_orders: 0,
            order_loss: 0,
        }
    }
}

fn add(a: i128, b: i128) -> Result<i128, Overflow> {
    a.checked_add(b).ok_or(Overflow)
}

impl State {
    /// The scenario set a bucket is margined under, if it is a portfolio bucket (`overlay`
    /// may ask for a mode other than the bucket's own).
    pub fn portfolio_set(&self, bucket: &Bucket, overlay: &Overlay) -> Option<&ScenarioSet> {
        if overlay.portfolio.unwrap_or(bucket.portfolio) {
            self.venue.risk.as_ref()
        } else {
            None
        }
    }

    /// The portfolio figures of `bucket` with `overlay` under `set`; with `orders` false the
    /// open orders are left out (MM and LE never read them).
    pub fn portfolio_figures(
        &self,
        set: &ScenarioSet,
        bucket: &Bucket,
        overlay: &Overlay,
        orders: bool,
    ) -> Result<PortfolioFigures, Overflow> {
        let j_count = set.scenarios.len().min(SCENARIOS_MAX);
        let mut sums = self.holding_sums(set, bucket, overlay, None)?;
        sums.t_orders = sums.t;
        sums.floor_orders = sums.floor;
        let mut with_orders = false;
        if orders {
            for (market, order_sums) in overlaid_orders(bucket, overlay) {
                let size = overlaid_size(bucket, overlay, market);
                self.order_scenarios(set, market, size, &order_sums, &mut sums)?;
                with_orders = true;
            }
        }
        let qd = self.quote_decimals();
        let (worst, worst_loss) = weighted_losses(set, &sums.t[..j_count], qd)?;
        let mm = sums.floor.max(worst_loss);
        // Without open orders MM° is MM: the scenario losses are not weighed twice.
        let mm_orders = if with_orders {
            let (_, wl) = weighted_losses(set, &sums.t_orders[..j_count], qd)?;
            sums.floor_orders.max(wl)
        } else {
            mm
        };
        let times = |f: Ratio, v: i128| Exact::new(v, qd).times(f.exact())?.ceil(qd);
        Ok(PortfolioFigures {
            floor: sums.floor,
            mm,
            le: times(set.le_factor, mm)?,
            im: add(times(set.im_factor, mm_orders)?, sums.order_loss)?,
            order_loss: sums.order_loss,
            worst,
            worst_loss,
        })
    }

    /// The sums of every holding of `bucket` (with `overlay`) but its position in `market`.
    pub fn scenario_base(
        &self,
        set: &ScenarioSet,
        bucket: &Bucket,
        overlay: &Overlay,
        market: MarketId,
    ) -> Result<ScenarioBase, Overflow> {
        let sums = self.holding_sums(set, bucket, overlay, Some(market))?;
        Ok(ScenarioBase {
            t: sums.t,
            floor: sums.floor,
            market,
        })
    }

    /// (MM, LE) of the base with the position in its market at `size` lots (no open orders).
    pub fn maint_requirements_at(
        &self,
        set: &ScenarioSet,
        base: &ScenarioBase,
        size: Lots,
    ) -> Result<(i128, i128), Overflow> {
        let j_count = set.scenarios.len().min(SCENARIOS_MAX);
        let mut sums = Sums {
            t: base.t,
            floor: base.floor,
            ..Sums::empty()
        };
        if !size.is_zero() {
            let pos = Position {
                market: base.market,
                size,
                quote: Native::ZERO,
                funding_mark: 0,
            };
            self.position_scenarios(set, &pos, &mut sums)?;
        }
        let qd = self.quote_decimals();
        let (_, wl_max) = weighted_losses(set, &sums.t[..j_count], qd)?;
        let mm = sums.floor.max(wl_max);
        let le = Exact::new(mm, qd).times(set.le_factor.exact())?.ceil(qd)?;
        Ok((mm, le))
    }

    /// T_j and FL over the bucket's balances and positions (with `overlay`), leaving out the
    /// position in `without` if given.
    fn holding_sums(
        &self,
        set: &ScenarioSet,
        bucket: &Bucket,
        overlay: &Overlay,
        without: Option<MarketId>,
    ) -> Result<Sums, Overflow> {
        let j_count = set.scenarios.len().min(SCENARIOS_MAX);
        let mut sums = Sums::empty();
        for (asset, b) in overlaid_balances(bucket, overlay) {
            self.collateral_scenarios(set, asset, b, &mut sums.t[..j_count])?;
        }
        for pos in overlaid_positions(bucket, overlay).filter(|p| Some(p.market) != without) {
            self.position_scenarios(set, &pos, &mut sums)?;
        }
        Ok(sums)
    }

    /// c_{j,k} = floor(b × P × w × r_{j,k}) for each scenario, w = weight_maint for a positive
    /// balance and 1 for a debt; the quote and an asset never priced have no term.
    fn collateral_scenarios(
        &self,
        set: &ScenarioSet,
        asset: AssetId,
        balance: Native,
        t: &mut [i128],
    ) -> Result<(), Overflow> {
        let cfg = self.venue.asset(asset);
        if cfg.quote || balance.0 == 0 {
            return Ok(());
        }
        let Some(index) = self.index(asset) else {
            return Ok(());
        };
        let w = if balance.0 > 0 {
            cfg.weight_maint
        } else {
            Ratio::ONE
        };
        let value = balance
            .exact(cfg.decimals)
            .times(Exact::new(i128::from(index), cfg.price_scale))?
            .times(w.exact())?;
        self.add_scenario_terms(set, asset, value, t)
    }

    /// T_j += floor(value × r_{j,asset}) for each scenario.
    fn add_scenario_terms(
        &self,
        set: &ScenarioSet,
        asset: AssetId,
        value: Exact,
        t: &mut [i128],
    ) -> Result<(), Overflow> {
        let qd = self.quote_decimals();
        // One product per scenario of the same value: in i128 with one division by a power
        // of ten when it fits (floor: div_euclid by a positive divisor), exactly else.
        let shift = (value.scale() + MOVE_DECIMALS).checked_sub(qd);
        let fast = value
            .small_mantissa()
            .zip(shift.and_then(crate::num::exact::pow10_small));
        for (tj, s) in t.iter_mut().zip(&set.scenarios) {
            let r = s.move_of(asset);
            if r == 0 {
                continue;
            }
            let term = match fast.and_then(|(m, d)| Some((m.checked_mul(i128::from(r))?, d))) {
                Some((p, d)) => p.div_euclid(d),
                None => value
                    .times(Exact::new(i128::from(r), MOVE_DECIMALS))?
                    .floor(qd)?,
            };
            *tj = add(*tj, term)?;
        }
        Ok(())
    }

    /// p_{j,m} = floor(s × M × r_{j,B}) for each scenario, and the position's floor charge.
    fn position_scenarios(
        &self,
        set: &ScenarioSet,
        pos: &Position,
        sums: &mut Sums,
    ) -> Result<(), Overflow> {
        let j_count = set.scenarios.len().min(SCENARIOS_MAX);
        let base = self.venue.market(pos.market).base;
        let sm = self.signed_notional(pos.market, i128::from(pos.size.0))?;
        #[cfg(test)]
        if ROUND_POSITION_TERMS_UP.with(|f| f.get()) {
            let qd = self.quote_decimals();
            for (tj, s) in sums.t[..j_count].iter_mut().zip(&set.scenarios) {
                let r = Exact::new(i128::from(s.move_of(base)), MOVE_DECIMALS);
                *tj = add(*tj, sm.times(r)?.ceil(qd)?)?;
            }
            sums.floor = add(sums.floor, self.floor_charge(pos.market, sm)?)?;
            return Ok(());
        }
        self.add_scenario_terms(set, base, sm, &mut sums.t[..j_count])?;
        sums.floor = add(sums.floor, self.floor_charge(pos.market, sm)?)?;
        Ok(())
    }

    /// s × M exact (M = 0 before the first index).
    fn signed_notional(&self, market: MarketId, lots: i128) -> Result<Exact, Overflow> {
        let sd = self.venue.market(market).size_decimals;
        Exact::new(lots, sd).times(self.mark(market))
    }

    /// fl_m(s) = ceil(pm_min_rate × |s × M|).
    fn floor_charge(&self, market: MarketId, sm: Exact) -> Result<i128, Overflow> {
        let rate = self.venue.market(market).pm_min_rate;
        sm.abs()?.times(rate.exact())?.ceil(self.quote_decimals())
    }

    /// A market's open orders: per scenario the worst change of the position's term if a
    /// whole side filled (or none), the worst change of its floor, and the immediate loss.
    fn order_scenarios(
        &self,
        set: &ScenarioSet,
        market: MarketId,
        size: Lots,
        orders: &OrderSums,
        sums: &mut Sums,
    ) -> Result<(), Overflow> {
        let j_count = set.scenarios.len().min(SCENARIOS_MAX);
        let qd = self.quote_decimals();
        let cfg = self.venue.market(market);
        let base = cfg.base;
        let s = i128::from(size.0);
        let sm = self.signed_notional(market, s)?;
        let fl_now = self.floor_charge(market, sm)?;
        let m_ticks = i128::from(self.index(base).unwrap_or(0));
        let x_scale = cfg.size_decimals + self.venue.asset(base).price_scale;
        let sides = [
            (orders.buy_lots, orders.buy_cost, 1i128),
            (orders.sell_lots, orders.sell_cost, -1i128),
        ];
        let mut worst = [0i128; SCENARIOS_MAX];
        let (mut fl_worst, mut loss_worst) = (fl_now, 0i128);
        for (lots, cost, sign) in sides {
            if lots <= 0 {
                continue;
            }
            let sm_side = self.signed_notional(market, add(s, sign * lots)?)?;
            for (j, sc) in set.scenarios.iter().take(j_count).enumerate() {
                let r = Exact::new(i128::from(sc.move_of(base)), MOVE_DECIMALS);
                let delta = sm_side.times(r)?.floor(qd)? - sm.times(r)?.floor(qd)?;
                worst[j] = worst[j].min(delta);
            }
            fl_worst = fl_worst.max(self.floor_charge(market, sm_side)?);
            // x = size × (M - limit) over the buys, size × (limit - M) over the sells.
            let x = sign * (m_ticks.checked_mul(lots).ok_or(Overflow)? - cost);
            loss_worst = loss_worst.max(Exact::new((-x).max(0), x_scale).ceil(qd)?);
        }
        for (tj, w) in sums.t_orders.iter_mut().zip(&worst[..j_count]) {
            *tj = add(*tj, *w)?;
        }
        sums.floor_orders = add(sums.floor_orders, fl_worst - fl_now)?;
        sums.order_loss = add(sums.order_loss, loss_worst)?;
        Ok(())
    }
}

/// (worst scenario, its WL) with WL_j = ceil(ω_j × max(0, -T_j)): the first largest WL, None
/// (and 0) when every WL is 0.
fn weighted_losses(
    set: &ScenarioSet,
    t: &[i128],
    qd: u8,
) -> Result<(Option<usize>, i128), Overflow> {
    let (mut worst, mut worst_loss) = (None, 0i128);
    let one = Ratio::ONE.0;
    for (j, (tj, s)) in t.iter().zip(&set.scenarios).enumerate() {
        let loss = tj.checked_neg().ok_or(Overflow)?.max(0);
        // ceil(ω × L) with ω in parts of 10^18: in i128 when the product fits, exactly else.
        let wl = match loss.checked_mul(s.weight.0) {
            Some(p) => p.div_euclid(one) + i128::from(p.rem_euclid(one) != 0),
            None => Exact::new(loss, qd).times(s.weight.exact())?.ceil(qd)?,
        };
        if wl > worst_loss {
            (worst, worst_loss) = (Some(j), wl);
        }
    }
    Ok((worst, worst_loss))
}

/// The bucket's non-zero balances with the overlay's balance in place of its own.
pub(crate) fn overlaid_balances<'a>(
    bucket: &'a Bucket,
    overlay: &'a Overlay,
) -> impl Iterator<Item = (AssetId, Native)> + 'a {
    let own = bucket.balances.iter().enumerate().map(move |(i, b)| {
        let asset = AssetId(i as u16);
        match overlay.balance {
            Some((a, v)) if a == asset => (asset, v),
            _ => (asset, *b),
        }
    });
    let extra = overlay
        .balance
        .filter(|(a, _)| a.index() >= bucket.balances.len());
    own.chain(extra).filter(|(_, b)| b.0 != 0)
}

/// The bucket's positions with the overlay's position in place of (or beside) its own; no
/// zero sizes.
fn overlaid_positions<'a>(
    bucket: &'a Bucket,
    overlay: &'a Overlay,
) -> impl Iterator<Item = Position> + 'a {
    let own = bucket
        .positions
        .iter()
        .map(move |p| match overlay.position {
            Some(o) if o.market == p.market => o,
            _ => *p,
        });
    let extra = overlay
        .position
        .filter(|o| bucket.position(o.market).is_none());
    own.chain(extra).filter(|p| !p.size.is_zero())
}

/// The bucket's open-order sums with the overlay's in place of (or beside) its own.
fn overlaid_orders<'a>(
    bucket: &'a Bucket,
    overlay: &'a Overlay,
) -> impl Iterator<Item = (MarketId, OrderSums)> + 'a {
    let own = bucket
        .orders
        .iter()
        .map(move |(m, s)| match overlay.orders {
            Some((o, os)) if o == *m => (*m, os),
            _ => (*m, *s),
        });
    let extra = overlay
        .orders
        .filter(|(m, _)| bucket.orders.binary_search_by_key(m, |o| o.0).is_err());
    own.chain(extra).filter(|(_, s)| s.count > 0)
}

fn overlaid_size(bucket: &Bucket, overlay: &Overlay, market: MarketId) -> Lots {
    match overlay.position {
        Some(p) if p.market == market => p.size,
        _ => bucket.size(market),
    }
}
