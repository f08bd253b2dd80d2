//! Auction bids: a liquidator takes over part of a liquidating bucket's position at a price that
//! falls (for a long) or rises (for a short) with the time since the liquidation started.

use crate::account::Slot;
use crate::engine::Engine;
use crate::fill::SidePlan;
use crate::health::Overlay;
use crate::ids::{AccountId, MarketId, Side, Symbol};
use crate::num::{exact::div_round, Dec, Lots, Native, Overflow, Round, Ticks};
use crate::record::{Body, Cause, Num, Reason};
use crate::reject;
use crate::reject::Reject;
use ethnum::I256;

/// The bisection the size rules write: lo, hi; while lo < hi, mid = floor((lo + hi) / 2) and
/// hi = mid if `probe(mid)` else lo = mid + 1; the final lo. (The first size in [lo, hi] at
/// which the probe holds when it holds from some size on; with a probe that is not monotone it
/// is still exactly the size the model's steps reach, which is what the portfolio rule asks.)
fn bisect(
    mut lo: i64,
    mut hi: i64,
    mut probe: impl FnMut(i64) -> Result<bool, Overflow>,
) -> Result<i64, Overflow> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if probe(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// A checked takeover, ready to commit.
struct Takeover {
    bucket: SidePlan,
    liquidator: SidePlan,
    fee: i128,
    price: Ticks,
    /// The liquidated bucket's side.
    side: Side,
}

impl Engine {
    pub(crate) fn on_liquidate(
        &mut self,
        liquidator: AccountId,
        account: AccountId,
        market: &Symbol,
        size: &Dec,
    ) -> Result<(), Reject> {
        let market = self.market_id(market)?;
        let size = self.size_of(market, size)?;
        let liq_acc = self.account_checked(liquidator)?;
        let acc = self.account_checked(account)?;
        if liquidator == account {
            return Err(reject!(
                Reason::SelfTrade,
                "account {account} cannot liquidate itself"
            ));
        }
        let slot = acc.slot_for(market);
        let bucket = acc.bucket_for(market);
        let pos = bucket.size(market);
        let Some(liq) = bucket.liquidation.filter(|_| !pos.is_zero()) else {
            return Err(reject!(
                Reason::NotLiquidatable,
                "account {account} has no position in liquidation in {}",
                self.state.venue.market(market).name
            ));
        };
        let liq_slot = liq_acc.slot_for(market);
        if liq_acc.bucket_for(market).is_liquidating() {
            return Err(reject!(
                Reason::Liquidating,
                "liquidator {liquidator} is itself in liquidation"
            ));
        }
        let price = self
            .auction_price(market, pos, liq.started_us)
            .map_err(|_| reject!(Reason::InvalidSize, "auction price overflows"))?;
        let allowed = self
            .bid_size_limit(account, slot, market, pos, price)
            .map_err(|_| reject!(Reason::InvalidSize, "bid valuation overflows"))?;
        if size.0 > allowed.0 {
            let sd = self.state.venue.market(market).size_decimals;
            return Err(reject!(
                Reason::LiquidationSize,
                "bid of {} lots is above the {} allowed",
                crate::num::Scaled(i128::from(size.0), sd),
                crate::num::Scaled(i128::from(allowed.0), sd)
            ));
        }
        let t = self
            .plan_takeover(
                account, slot, liquidator, liq_slot, market, pos, size, price,
            )
            .map_err(|_| reject!(Reason::InvalidSize, "bid size x price overflows"))?;
        self.check_liquidator_margin(&t)?;
        self.commit_takeover(&t, market, size);
        Ok(())
    }

    /// M * (1 - d) for a long, M * (1 + d) for a short, rounded to the price decimals in the
    /// liquidated bucket's favour; d = min(d_max, d_start + (d_max - d_start) * elapsed / T).
    pub(crate) fn auction_price(
        &self,
        market: MarketId,
        pos: Lots,
        started_us: u64,
    ) -> Result<Ticks, Overflow> {
        let cfg = self.state.venue.market(market);
        let base = self.state.venue.asset(cfg.base);
        let m = I256::from(self.state.index(cfg.base).unwrap_or(0));
        let t = I256::from(cfg.liq_auction_us);
        let elapsed = I256::from(self.state.clock_us.saturating_sub(started_us)).min(t);
        let one = I256::from(crate::num::Ratio::ONE.0);
        let (ds, dm) = (
            I256::from(cfg.liq_discount_start.0),
            I256::from(cfg.liq_discount_max.0),
        );
        // d * 10^18 * T, exactly.
        let d_num = ds * t + (dm - ds) * elapsed;
        let (factor, mode) = if pos.0 > 0 {
            (one * t - d_num, Round::Ceil)
        } else {
            (one * t + d_num, Round::Floor)
        };
        let step = I256::from(10i128.pow(u32::from(base.price_scale - base.price_decimals)));
        let den = (one * t).checked_mul(step).ok_or(Overflow)?;
        let ticks = div_round(m.checked_mul(factor).ok_or(Overflow)?, den, mode)? * step;
        Ok(Ticks(i64::try_from(ticks).map_err(|_| Overflow)?))
    }

    /// ceil(liq_if_fee * size * M): what the liquidated bucket pays the insurance fund.
    fn liquidation_fee(&self, market: MarketId, size: Lots) -> Result<i128, Overflow> {
        let cfg = self.state.venue.market(market);
        self.state
            .notional_exact(market, size)?
            .times(cfg.liq_if_fee.exact())?
            .ceil(self.state.quote_decimals())
    }

    /// The largest bid allowed: the smallest size after which health_le >= 0 (the whole position
    /// if none), or the whole position when what would be left is below `liq_min_notional`.
    fn bid_size_limit(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        pos: Lots,
        price: Ticks,
    ) -> Result<Lots, Overflow> {
        let whole = pos.0.abs();
        // Only this position and the quote balance change with the bid: value everything else
        // once, then each probe re-values just the position (the sum is the same figure).
        let bucket = self.state.bucket(account, slot).ok_or(Overflow)?;
        if self
            .state
            .portfolio_set(bucket, &Overlay::default())
            .is_some()
        {
            let x_need = self.portfolio_size_need(account, slot, market, pos, price)?;
            return self.size_limit_from_need(market, whole, x_need);
        }
        let h = self.state.bucket_health(bucket, &Overlay::default())?;
        let balance = bucket.balance(self.state.quote()).0;
        let now = self
            .state
            .position_value(bucket.position(market).ok_or(Overflow)?)?;
        let equity_rest = h.equity_maint - balance - now.upnl_maint;
        let le_rest = h.le - now.le;
        let le_after = |x: i64| -> Result<i128, Overflow> {
            let plan = self.plan_bucket_side(account, slot, market, pos, Lots(x), price)?;
            let fee = self.liquidation_fee(market, Lots(x))?;
            let (upnl, le) = if plan.position.size.is_zero() {
                (0, 0)
            } else {
                let v = self.state.position_value(&plan.position)?;
                (v.upnl_maint, v.le)
            };
            Ok(equity_rest + plan.balance_after.0 - fee + upnl - (le_rest + le))
        };
        let x_need = if le_after(whole)? < 0 {
            whole
        } else {
            // health_le grows with each lot taken (the market's parameters guarantee it), so the
            // smallest size that restores it is found by bisection.
            bisect(1, whole, |x| Ok(le_after(x)? >= 0))?
        };
        self.size_limit_from_need(market, whole, x_need)
    }

    /// The whole position when what `x_need` would leave is below `liq_min_notional`, else
    /// `x_need` lots.
    fn size_limit_from_need(
        &self,
        market: MarketId,
        whole: i64,
        x_need: i64,
    ) -> Result<Lots, Overflow> {
        let cfg = self.state.venue.market(market);
        let left = self.state.notional_exact(market, Lots(whole - x_need))?;
        let min = cfg.liq_min_notional.exact(self.state.quote_decimals());
        if left.cmp_exact(min)? == std::cmp::Ordering::Less {
            return Ok(Lots(whole));
        }
        Ok(Lots(x_need))
    }

    /// x_need of a portfolio bucket: each lot taken need not raise its health_le (taking the
    /// short of a hedge exposes the collateral left behind), so the two bisections of the
    /// portfolio rule, followed exactly as the model writes them: the first size x_pk after
    /// which one more lot no longer helps, then the smallest size up to it that restores
    /// health_le >= 0 (x_pk itself when none does; 0 when no lot helps).
    fn portfolio_size_need(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        pos: Lots,
        price: Ticks,
    ) -> Result<i64, Overflow> {
        let h = self.portfolio_health_le_after(account, slot, market, pos, price)?;
        let x_pk = bisect(0, pos.0.abs(), |mid| Ok(h(mid + 1)? <= h(mid)?))?;
        if x_pk == 0 || h(x_pk)? < 0 {
            return Ok(x_pk);
        }
        bisect(1, x_pk, |x| Ok(h(x)? >= 0))
    }

    /// h(x): the portfolio bucket's health_le after `x` lots of its position in `market` are
    /// taken over at `price` with the fee, as the bid would apply them. Everything but that
    /// position and the quote balance is valued once (equity and scenario terms alike); each
    /// probe values the one position. `portfolio::tests` checks it against the whole bucket
    /// valued with an overlay.
    pub(crate) fn portfolio_health_le_after(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        pos: Lots,
        price: Ticks,
    ) -> Result<impl Fn(i64) -> Result<i128, Overflow> + '_, Overflow> {
        let bucket = self.state.bucket(account, slot).ok_or(Overflow)?;
        let none = Overlay::default();
        let set = self.state.portfolio_set(bucket, &none).ok_or(Overflow)?;
        let h0 = self.state.bucket_maint(bucket)?;
        let quote = self.state.quote();
        let now = self
            .state
            .position_value(bucket.position(market).ok_or(Overflow)?)?;
        let equity_rest = h0.equity_maint - bucket.balance(quote).0 - now.upnl_maint;
        let base = self.state.scenario_base(set, bucket, &none, market)?;
        Ok(move |x: i64| -> Result<i128, Overflow> {
            if x == 0 {
                return Ok(h0.health_le());
            }
            let plan = self.plan_bucket_side(account, slot, market, pos, Lots(x), price)?;
            let fee = self.liquidation_fee(market, Lots(x))?;
            let upnl = if plan.position.size.is_zero() {
                0
            } else {
                self.state.position_value(&plan.position)?.upnl_maint
            };
            let (_, le) = self
                .state
                .maint_requirements_at(set, &base, plan.position.size)?;
            Ok(equity_rest + plan.balance_after.0 - fee + upnl - le)
        })
    }

    /// The liquidated bucket's side of taking over `x` lots at `price`.
    fn plan_bucket_side(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        pos: Lots,
        x: Lots,
        price: Ticks,
    ) -> Result<SidePlan, Overflow> {
        let n = self.fill_notional(market, x, price)?;
        self.plan_side(account, slot, market, Lots(-pos.signum() * x.0), n, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_takeover(
        &self,
        account: AccountId,
        slot: Slot,
        liquidator: AccountId,
        liq_slot: Slot,
        market: MarketId,
        pos: Lots,
        size: Lots,
        price: Ticks,
    ) -> Result<Takeover, Overflow> {
        let bucket = self.plan_bucket_side(account, slot, market, pos, size, price)?;
        let n = self.fill_notional(market, size, price)?;
        let liquidator = self.plan_side(
            liquidator,
            liq_slot,
            market,
            Lots(pos.signum() * size.0),
            n,
            0,
        )?;
        let fee = self.liquidation_fee(market, size)?;
        let side = if pos.0 > 0 { Side::Sell } else { Side::Buy };
        Ok(Takeover {
            bucket,
            liquidator,
            fee,
            price,
            side,
        })
    }

    fn check_liquidator_margin(&self, t: &Takeover) -> Result<(), Reject> {
        let p = &t.liquidator;
        let bucket = self
            .state
            .bucket(p.account, p.slot)
            .ok_or_else(|| reject!(Reason::UnknownAccount, "unknown account {}", p.account))?;
        let overlay = Overlay {
            balance: Some((self.state.quote(), p.balance_after)),
            position: Some(p.position),
            ..Overlay::default()
        };
        self.check_health_init(bucket, &overlay, "the takeover")
    }

    fn commit_takeover(&mut self, t: &Takeover, market: MarketId, size: Lots) {
        self.commit_side(&t.bucket);
        self.commit_side(&t.liquidator);
        let quote = self.state.quote();
        let (account, slot) = (t.bucket.account, t.bucket.slot);
        if t.fee != 0 {
            let bal = t.bucket.balance_after.0 - t.fee;
            self.set_balance(account, slot, quote, Native(bal), Cause::LiquidationFee);
            self.pay_liquidation_fee(market, t.fee);
        }
        let cfg = self.state.venue.market(market);
        let ps = self.state.venue.asset(cfg.base).price_scale;
        let qd = self.state.quote_decimals();
        let body = Body::LiquidationFill {
            account,
            bucket: self.bucket_name(slot),
            liquidator: t.liquidator.account,
            market: cfg.name,
            side: t.side,
            size: Num::new(i128::from(size.0), cfg.size_decimals),
            price: Num::new(i128::from(t.price.0), ps),
            fee: Num::new(t.fee, qd),
        };
        self.emit(body);
    }

    /// A liquidation fee goes to the market's own fund if it has one, else the venue fund.
    fn pay_liquidation_fee(&mut self, market: MarketId, fee: i128) {
        if self.state.venue.market(market).own_fund {
            let next = Native(self.state.markets[market.index()].own_fund.0 + fee);
            self.set_market_fund(market, next, Cause::LiquidationFee);
        } else {
            let next = Native(self.state.insurance.0 + fee);
            self.set_insurance(next, Cause::LiquidationFee);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portfolio probe h(x), which values everything but the taken position once, against
    /// the whole bucket valued afresh with the takeover as an overlay, on every position of
    /// every liquidating portfolio bucket of random venues after a crash.
    #[test]
    fn the_portfolio_probe_equals_the_whole_bucket_revalued() {
        let mut checked = 0;
        for seed in 1..=40 {
            let mut e = crate::portfolio::tests::venue(seed, 300);
            for (a, p) in [("BTC", "45000"), ("ETH", "4300"), ("SOL", "80")] {
                let line =
                    format!(r#"{{"type":"oracle","ts":2,"asset":"{a}","source":0,"price":"{p}"}}"#);
                e.apply(&crate::codec::parse_input(&line).unwrap());
            }
            let quote = e.state.quote();
            let liquidating: Vec<AccountId> = e
                .state
                .accounts
                .iter()
                .filter(|a| a.cross.portfolio && a.cross.is_liquidating())
                .map(|a| a.id)
                .collect();
            for acc in liquidating {
                let bucket = e.state.bucket(acc, Slot::Cross).unwrap();
                for p in bucket.positions.clone() {
                    let started = bucket.liquidation.unwrap().started_us;
                    let price = e.auction_price(p.market, p.size, started).unwrap();
                    let h = e
                        .portfolio_health_le_after(acc, Slot::Cross, p.market, p.size, price)
                        .unwrap();
                    let whole = p.size.0.abs();
                    for x in [0, 1, whole / 3, whole / 2, whole - 1, whole] {
                        let full = if x == 0 {
                            e.state.bucket_maint(bucket).unwrap().health_le()
                        } else {
                            let plan = e
                                .plan_bucket_side(
                                    acc,
                                    Slot::Cross,
                                    p.market,
                                    p.size,
                                    Lots(x),
                                    price,
                                )
                                .unwrap();
                            let fee = e.liquidation_fee(p.market, Lots(x)).unwrap();
                            let overlay = Overlay {
                                balance: Some((quote, Native(plan.balance_after.0 - fee))),
                                position: Some(plan.position),
                                ..Overlay::default()
                            };
                            e.state.bucket_health(bucket, &overlay).unwrap().health_le()
                        };
                        assert_eq!(h(x).unwrap(), full, "account {acc} x {x}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 200, "probes checked: {checked}");
    }
}
