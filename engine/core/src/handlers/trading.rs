//! The pre-trade check: `order` and `cancel`.

use crate::account::{Order, Slot};
use crate::engine::Engine;
use crate::event::OrderSpec;
use crate::health::Overlay;
use crate::ids::{AccountId, MarketId, OrderId};
use crate::limits::{LOTS_MAX, ORDERS_PER_ACCOUNT_MAX, TICKS_MAX};
use crate::num::{Dec, Lots, Ticks};
use crate::record::{Body, CloseReason, Num, Reason};
use crate::reject;
use crate::reject::{positive, Reject};

impl Engine {
    pub(crate) fn on_order(&mut self, spec: &OrderSpec) -> Result<(), Reject> {
        let market = self.market_id(&spec.market)?;
        let price = self.price_of(market, &spec.price)?;
        let size = self.size_of(market, &spec.size)?;
        let acc = self.account_checked(spec.account)?;
        if acc.orders.len() >= ORDERS_PER_ACCOUNT_MAX {
            return Err(reject!(
                Reason::InvalidParams,
                "account {} has its limit of {ORDERS_PER_ACCOUNT_MAX} open orders",
                spec.account
            ));
        }
        if acc.order(spec.order).is_some() {
            return Err(reject!(
                Reason::DuplicateOrder,
                "order {} is already open for account {}",
                spec.order,
                spec.account
            ));
        }
        let slot = acc.slot_for(market);
        let bucket = acc.bucket_for(market);
        let mut sums = bucket.order_sums(market);
        let pos = bucket.size(market);
        let same_side_open = sums.lots(spec.side);
        let reducing = !pos.is_zero()
            && pos.signum() == -spec.side.sign()
            && i128::from(size.0) + same_side_open <= i128::from(pos.0.abs());
        sums.change(spec.side, price, size, 1)
            .map_err(|_| reject!(Reason::InvalidSize, "order size x price overflows"))?;
        sums.count += 1;
        if !reducing {
            self.check_increasing_order(spec, market, bucket, &sums)?;
        }
        let acc = self.state.account_mut(spec.account).expect("checked above");
        acc.orders.push(Order {
            id: spec.order,
            market,
            side: spec.side,
            price,
            remaining: size,
            reduce_only: spec.reduce_only,
        });
        // Order margin enters only the initial requirement: nothing the liquidation passes,
        // the margin-call check, the bands or the ADL ranking read (equity_maint, mm, LE)
        // moves, so the bucket is not marked dirty and the event wakes no pass.
        acc.bucket_mut(slot)
            .expect("slot of the account")
            .set_order_sums(market, sums);
        let cfg = self.state.venue.market(market);
        let pd = self.state.venue.asset(cfg.base).price_scale;
        self.emit(Body::OrderOpen {
            account: spec.account,
            order: spec.order,
            market: cfg.name,
            side: spec.side,
            price: Num::new(i128::from(price.0), pd),
            size: Num::new(i128::from(size.0), cfg.size_decimals),
            reduce_only: spec.reduce_only,
        });
        Ok(())
    }

    /// Checks of an order that is not reducing, in the contract's order.
    fn check_increasing_order(
        &self,
        spec: &OrderSpec,
        market: MarketId,
        bucket: &crate::account::Bucket,
        sums: &crate::account::OrderSums,
    ) -> Result<(), Reject> {
        if bucket.is_liquidating() {
            return Err(reject!(
                Reason::Liquidating,
                "account {} is in liquidation: only reducing orders",
                spec.account
            ));
        }
        if spec.reduce_only {
            return Err(reject!(
                Reason::ReduceOnly,
                "reduce_only order {} would not reduce the position",
                spec.order
            ));
        }
        let base = self.state.venue.market(market).base;
        if self.state.never_priced(base) || self.state.is_stale(base) {
            return Err(reject!(
                Reason::OracleStale,
                "index of {} is stale",
                self.state.venue.asset(base).name
            ));
        }
        let overlay = Overlay {
            orders: Some((market, *sums)),
            ..Overlay::default()
        };
        self.check_health_init(bucket, &overlay, "order")
    }

    pub(crate) fn on_cancel(&mut self, account: AccountId, order: OrderId) -> Result<(), Reject> {
        let acc = self.account_checked(account)?;
        if acc.order(order).is_none() {
            return Err(reject!(
                Reason::UnknownOrder,
                "order {order} is not open for account {account}"
            ));
        }
        self.close_order(account, order, CloseReason::Cancelled);
        Ok(())
    }

    /// Removes an open order, updates its bucket's sums and records it.
    pub(crate) fn close_order(&mut self, account: AccountId, order: OrderId, reason: CloseReason) {
        let Some(acc) = self.state.account_mut(account) else {
            return;
        };
        let Some(i) = acc.orders.iter().position(|o| o.id == order) else {
            return;
        };
        let o = acc.orders.remove(i);
        let slot = acc.slot_for(o.market);
        self.reduce_order_sums(account, slot, &o, o.remaining);
        let cfg = self.state.venue.market(o.market);
        self.emit(Body::OrderClosed {
            account,
            order,
            market: cfg.name,
            remaining: Num::new(i128::from(o.remaining.0), cfg.size_decimals),
            reason,
        });
    }

    /// Takes `lots` of an order out of its bucket's sums.
    pub(crate) fn reduce_order_sums(
        &mut self,
        account: AccountId,
        slot: Slot,
        o: &Order,
        lots: Lots,
    ) {
        if let Some(bucket) = self.state.bucket_mut(account, slot) {
            let mut sums = bucket.order_sums(o.market);
            // Removing what was added cannot overflow.
            let _ = sums.change(o.side, o.price, lots, -1);
            if lots == o.remaining {
                sums.count -= 1;
            }
            bucket.set_order_sums(o.market, sums);
        }
        // Like opening an order, closing one moves only the initial requirement: no pass
        // needs to look at the bucket for it (a fill or a liquidation that closes orders marks
        // the bucket for what it does to the position).
    }

    /// Cancels every open order of a bucket (liquidation start and backstop).
    pub(crate) fn cancel_bucket_orders(&mut self, account: AccountId, slot: Slot) {
        loop {
            let next = self.state.account(account).and_then(|a| {
                a.orders
                    .iter()
                    .find(|o| a.slot_for(o.market) == slot)
                    .map(|o| o.id)
            });
            match next {
                Some(id) => self.close_order(account, id, CloseReason::Liquidation),
                None => break,
            }
        }
    }

    /// A price in ticks of the market's base (`invalid_price`).
    pub(crate) fn price_of(&self, market: MarketId, price: &Dec) -> Result<Ticks, Reject> {
        let base = self.state.venue.asset(self.state.venue.market(market).base);
        self.ticks_of(base, price)
    }

    /// A price of an asset in ticks of its price scale, at most its current price decimals.
    pub(crate) fn ticks_of(
        &self,
        asset: &crate::venue::AssetConfig,
        price: &Dec,
    ) -> Result<Ticks, Reject> {
        let v = positive(
            price,
            asset.price_decimals,
            i128::from(TICKS_MAX),
            Reason::InvalidPrice,
            "price",
        )?;
        let step = 10i128.pow(u32::from(asset.price_scale - asset.price_decimals));
        let ticks = v * step;
        if ticks > i128::from(TICKS_MAX) {
            return Err(reject!(
                Reason::InvalidPrice,
                "price {price} is out of range"
            ));
        }
        Ok(Ticks(ticks as i64))
    }

    /// A size in lots of the market (`invalid_size`).
    pub(crate) fn size_of(&self, market: MarketId, size: &Dec) -> Result<Lots, Reject> {
        let sd = self.state.venue.market(market).size_decimals;
        let v = positive(size, sd, i128::from(LOTS_MAX), Reason::InvalidSize, "size")?;
        Ok(Lots(v as i64))
    }
}
