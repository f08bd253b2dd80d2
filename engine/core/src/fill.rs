//! Applying a trade to one side: funding settled first, then the position changes with the
//! model's truncations, realised PnL to the bucket's quote balance, the fee to the fee pool.
//!
//! Fills from the venue, liquidation takeovers and backstop closes all go through
//! [`Engine::plan_side`] (pure, checked) and [`Engine::commit_side`] (infallible), so that value
//! moves the same way whoever causes it.

use crate::account::{Position, Slot};
use crate::engine::{Accepted, Engine};
use crate::event::FillSpec;
use crate::ids::{AccountId, MarketId, OrderId, Side};
use crate::limits::{AMOUNT_MAX, BALANCE_MAX, LOTS_MAX};
use crate::num::{mul_div, Exact, Lots, Native, Overflow, Round, Ticks};
use crate::record::{Cause, CloseReason, Reason};
use crate::reject;
use crate::reject::{scaled, Reject};

/// The checked outcome of one side of a trade.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SidePlan {
    pub account: AccountId,
    pub slot: Slot,
    /// Funding settled: > 0 paid into the pool, < 0 received from it.
    pub funding_paid: i128,
    pub position: Position,
    pub realized: i128,
    pub fee: i128,
    /// The bucket's quote balance after funding, PnL and fee.
    pub balance_after: Native,
}

impl Engine {
    /// n = trunc(size / 10^sd * price * 10^dQ): the one notional both sides use.
    pub(crate) fn fill_notional(
        &self,
        market: MarketId,
        size: Lots,
        price: Ticks,
    ) -> Result<i128, Overflow> {
        let cfg = self.state.venue.market(market);
        let ps = self.state.venue.asset(cfg.base).price_scale;
        let v = size
            .exact(cfg.size_decimals)
            .times(Exact::new(i128::from(price.0), ps))?;
        v.trunc(self.state.quote_decimals())
    }

    /// What settling a position's funding moves: ceil(g) paid when it owes, floor(-g) received
    /// when it is owed (so rounding always goes against the account).
    pub(crate) fn funding_settlement(&self, pos: &Position) -> Result<i128, Overflow> {
        let g = self.state.funding_owed(pos)?;
        let qd = self.state.quote_decimals();
        if g.is_positive() {
            g.ceil(qd)
        } else if g.is_negative() {
            Ok(-g.negate()?.floor(qd)?)
        } else {
            Ok(0)
        }
    }

    /// Plans one side: `delta` lots (buy > 0) for `notional` quote, paying `fee`.
    pub(crate) fn plan_side(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        delta: Lots,
        notional: i128,
        fee: i128,
    ) -> Result<SidePlan, Overflow> {
        let quote = self.state.quote();
        let f_now = self.state.markets[market.index()].funding_index;
        let bucket = self.state.bucket(account, slot);
        let old = bucket
            .and_then(|b| b.position(market))
            .copied()
            .unwrap_or(Position {
                market,
                size: Lots::ZERO,
                quote: Native::ZERO,
                funding_mark: f_now,
            });
        let paid = self.funding_settlement(&old)?;
        let (position, realized) = trade(old, delta, notional, f_now)?;
        let balance = bucket.map_or(Native::ZERO, |b| b.balance(quote)).0;
        let after = balance
            .checked_sub(paid)
            .and_then(|b| b.checked_add(realized))
            .and_then(|b| b.checked_sub(fee))
            .filter(|b| b.unsigned_abs() <= BALANCE_MAX.unsigned_abs())
            .ok_or(Overflow)?;
        if position.size.0.unsigned_abs() > LOTS_MAX.unsigned_abs()
            || position.quote.0.unsigned_abs() > BALANCE_MAX.unsigned_abs()
        {
            return Err(Overflow);
        }
        Ok(SidePlan {
            account,
            slot,
            funding_paid: paid,
            position,
            realized,
            fee,
            balance_after: Native(after),
        })
    }

    /// Applies a planned side and records it. The plan was made against the current state.
    pub(crate) fn commit_side(&mut self, p: &SidePlan) {
        let quote = self.state.quote();
        let mut balance = self
            .state
            .bucket(p.account, p.slot)
            .map_or(Native::ZERO, |b| b.balance(quote));
        if p.funding_paid != 0 {
            let pool = &mut self.state.markets[p.position.market.index()].funding_pool;
            pool.0 += p.funding_paid;
            self.state.ledger.held(quote, p.funding_paid);
            balance = Native(balance.0 - p.funding_paid);
            self.set_balance(p.account, p.slot, quote, balance, Cause::Funding);
        }
        self.set_position(p.account, p.slot, p.position, Native(p.realized));
        if p.realized != 0 {
            balance = Native(balance.0 + p.realized);
            self.set_balance(p.account, p.slot, quote, balance, Cause::Pnl);
        }
        if p.fee != 0 {
            self.state.fee_pool.0 += p.fee;
            self.state.ledger.held(quote, p.fee);
            balance = Native(balance.0 - p.fee);
            self.set_balance(p.account, p.slot, quote, balance, Cause::Fee);
        }
        debug_assert_eq!(balance, p.balance_after);
    }

    pub(crate) fn on_fill(&mut self, spec: &FillSpec) -> Result<Accepted, Reject> {
        let market = self.market_id(&spec.market)?;
        let qd = self.state.quote_decimals();
        let fee = |f: &Option<crate::num::Dec>, who: &str| -> Result<i128, Reject> {
            let Some(f) = f else { return Ok(0) };
            let v = scaled(f, qd, Reason::InvalidAmount, who)?;
            if v.unsigned_abs() > AMOUNT_MAX.unsigned_abs() {
                return Err(reject!(Reason::InvalidAmount, "{who} {f} is out of range"));
            }
            Ok(v)
        };
        let taker_fee = fee(&spec.taker_fee, "taker_fee")?;
        let maker_fee = fee(&spec.maker_fee, "maker_fee")?;
        let price = self.price_of(market, &spec.price)?;
        let size = self.size_of(market, &spec.size)?;
        if spec.taker == spec.maker {
            return Err(reject!(
                Reason::SelfTrade,
                "account {} is both taker and maker",
                spec.taker
            ));
        }
        let base = self.state.venue.market(market).base;
        if self.state.never_priced(base) {
            return Err(reject!(
                Reason::OracleStale,
                "{} has never had an index; its markets cannot trade yet",
                self.state.venue.asset(base).name
            ));
        }
        self.check_room_for(spec.taker)?;
        self.check_room_for(spec.maker)?;
        let (taker, maker) = self
            .plan_fill(spec, market, size, price, taker_fee, maker_fee)
            .map_err(|_| reject!(Reason::InvalidSize, "fill size x price overflows"))?;
        self.state.account_or_create(spec.taker);
        self.state.account_or_create(spec.maker);
        self.commit_side(&taker);
        self.commit_side(&maker);
        let unknown_taker = self.fill_order(spec.taker, spec.taker_order, market, spec.side, size);
        let unknown_maker = self.fill_order(
            spec.maker,
            spec.maker_order,
            market,
            spec.side.opposite(),
            size,
        );
        Ok([unknown_taker, unknown_maker])
    }

    fn plan_fill(
        &self,
        spec: &FillSpec,
        market: MarketId,
        size: Lots,
        price: Ticks,
        taker_fee: i128,
        maker_fee: i128,
    ) -> Result<(SidePlan, SidePlan), Overflow> {
        let n = self.fill_notional(market, size, price)?;
        if n > BALANCE_MAX {
            return Err(Overflow);
        }
        let slot_of = |a: AccountId| {
            self.state
                .account(a)
                .map_or(Slot::Cross, |acc| acc.slot_for(market))
        };
        let d = Lots(size.0 * spec.side.sign());
        let taker = self.plan_side(spec.taker, slot_of(spec.taker), market, d, n, taker_fee)?;
        let maker = self.plan_side(
            spec.maker,
            slot_of(spec.maker),
            market,
            Lots(-d.0),
            n,
            maker_fee,
        )?;
        let pool = self.state.markets[market.index()].funding_pool.0;
        pool.checked_add(taker.funding_paid)
            .and_then(|p| p.checked_add(maker.funding_paid))
            .filter(|p| p.unsigned_abs() <= BALANCE_MAX.unsigned_abs())
            .ok_or(Overflow)?;
        self.state
            .fee_pool
            .0
            .checked_add(taker_fee + maker_fee)
            .filter(|p| p.unsigned_abs() <= BALANCE_MAX.unsigned_abs())
            .ok_or(Overflow)?;
        Ok((taker, maker))
    }

    /// Reduces the named open order by a fill; returns the id when it names no such order.
    fn fill_order(
        &mut self,
        account: AccountId,
        order: Option<OrderId>,
        market: MarketId,
        side: Side,
        size: Lots,
    ) -> Option<OrderId> {
        let id = order?;
        let acc = self.state.account(account)?;
        let Some(o) = acc
            .orders
            .iter()
            .find(|o| o.id == id && o.market == market && o.side == side)
            .copied()
        else {
            return Some(id);
        };
        if size.0 >= o.remaining.0 {
            self.close_order(account, id, CloseReason::Filled);
        } else {
            let slot = acc.slot_for(market);
            self.reduce_order_sums(account, slot, &o, size);
            if let Some(acc) = self.state.account_mut(account) {
                if let Some(open) = acc.orders.iter_mut().find(|x| x.id == id) {
                    open.remaining = Lots(o.remaining.0 - size.0);
                }
            }
        }
        None
    }
}

/// The position after a trade of `delta` lots for `notional`, and the PnL it realises.
fn trade(
    old: Position,
    delta: Lots,
    notional: i128,
    f_now: i128,
) -> Result<(Position, i128), Overflow> {
    let s0 = old.size.0;
    let d = delta.0;
    let sign_d = i128::from(d.signum());
    let mut pos = Position {
        funding_mark: f_now,
        ..old
    };
    if d == 0 {
        return Ok((pos, 0)); // settles funding only
    }
    if s0 == 0 || s0.signum() == d.signum() {
        pos.size = Lots(s0.checked_add(d).ok_or(Overflow)?);
        pos.quote = Native(old.quote.0.checked_sub(sign_d * notional).ok_or(Overflow)?);
        return Ok((pos, 0));
    }
    let closed = i128::from(d.unsigned_abs().min(s0.unsigned_abs()));
    let q_closed = mul_div(
        old.quote.0,
        closed,
        i128::from(s0.unsigned_abs()),
        Round::Trunc,
    )?;
    let n_closed = mul_div(notional, closed, i128::from(d.unsigned_abs()), Round::Trunc)?;
    let realized = q_closed
        .checked_add(i128::from(s0.signum()) * n_closed)
        .ok_or(Overflow)?;
    pos.size = Lots(s0 + d);
    pos.quote = Native(old.quote.0 - q_closed);
    if d.unsigned_abs() > s0.unsigned_abs() {
        pos.quote = Native(-sign_d * (notional - n_closed));
    }
    Ok((pos, realized))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(size: i64, quote: i128) -> Position {
        Position {
            market: MarketId(0),
            size: Lots(size),
            quote: Native(quote),
            funding_mark: 0,
        }
    }

    #[test]
    fn opening_moves_notional_into_quote() {
        let (p, r) = trade(pos(0, 0), Lots(5), 1000, 0).unwrap();
        assert_eq!((p.size.0, p.quote.0, r), (5, -1000, 0));
        let (p, r) = trade(pos(-5, 1000), Lots(-5), 1100, 0).unwrap();
        assert_eq!((p.size.0, p.quote.0, r), (-10, 2100, 0));
    }

    #[test]
    fn reducing_realises_with_truncation() {
        // Long 3 bought for 1000 (q = -1000); sell 1 for 400:
        // q_closed = trunc(-1000 * 1/3) = -333, n_closed = 400, realised = -333 + 400 = 67.
        let (p, r) = trade(pos(3, -1000), Lots(-1), 400, 0).unwrap();
        assert_eq!((p.size.0, p.quote.0, r), (2, -667, 67));
    }

    #[test]
    fn flipping_opens_the_rest_the_other_way() {
        // Long 2 for 1000; sell 5 for 3000: closes 2 (n_closed = 1200, realised 200),
        // opens short 3 with q = +1800.
        let (p, r) = trade(pos(2, -1000), Lots(-5), 3000, 0).unwrap();
        assert_eq!((p.size.0, p.quote.0, r), (-3, 1800, 200));
    }

    #[test]
    fn closing_exactly_leaves_no_quote() {
        let (p, r) = trade(pos(-7, 7001), Lots(7), 6000, 0).unwrap();
        assert_eq!((p.size.0, p.quote.0, r), (0, 0, 1001));
    }
}
