//! Auto-deleveraging: the backstop closes a position against the opposite positions of the same
//! market, the most profitable relative to their equity first. Buckets without a position in the
//! market are never charged.
//!
//! Ranking every opposite position is O(n); a crash tick can back-stop many buckets of one
//! market in the same event, and the liquidation bids that follow it back-stop more, one event
//! each. A ranking depends on prices, funding and parameters, which only oracle, funding and
//! venue events move, and on the ranked buckets themselves, whose every change marks them
//! dirty. So the [`AdlCache`] keeps each ranking until the next event that moves valuations
//! and re-ranks only the buckets that changed; the result is the same as ranking afresh (the
//! naive mode does, and `tests/index_equivalence.rs` compares their outputs byte for byte).

use crate::account::Slot;
use crate::engine::Engine;
use crate::ids::{AccountId, MarketId, Side};
use crate::num::Lots;
use crate::record::{Body, Num};
use crate::scratch::{rank_order, Counterparty};
use std::cmp::Ordering;

impl Engine {
    /// Closes the bucket's position in `market` for `notional` quote against counterparties.
    pub(crate) fn adl_close(
        &mut self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        notional: i128,
    ) {
        let Some(size) = self
            .state
            .bucket(account, slot)
            .and_then(|b| b.position(market))
            .map(|p| p.size)
        else {
            return;
        };
        let mut chosen = std::mem::take(&mut self.adl.chosen);
        self.choose_counterparties(account, slot, market, size, &mut chosen);
        match self.plan_side(account, slot, market, Lots(-size.0), notional, 0) {
            Ok(plan) => self.commit_side(&plan),
            Err(_) => {
                debug_assert!(false, "backstop close overflow");
                self.adl.chosen = chosen;
                return;
            }
        }
        let total = size.0.unsigned_abs() as i128;
        let mut remaining = total;
        let mut paid = 0i128;
        for &cp in &chosen {
            if remaining == 0 {
                break;
            }
            let take = remaining.min(cp.size.0.unsigned_abs() as i128);
            remaining -= take;
            let share = if remaining == 0 {
                notional - paid
            } else {
                crate::num::mul_div(notional, take, total, crate::num::Round::Trunc).unwrap_or(0)
            };
            paid += share;
            let delta = Lots(size.signum() * take as i64);
            match self.plan_side(cp.account, cp.slot, market, delta, share, 0) {
                Ok(plan) => self.commit_side(&plan),
                Err(_) => {
                    debug_assert!(false, "adl counterparty overflow");
                    continue;
                }
            }
            let cfg = self.state.venue.market(market);
            let qd = self.state.quote_decimals();
            let body = Body::Adl {
                account: cp.account,
                bucket: self.bucket_name(cp.slot),
                market: cfg.name,
                side: if delta.0 > 0 { Side::Buy } else { Side::Sell },
                size: Num::new(take, cfg.size_decimals),
                notional: Num::new(share, qd),
                liquidated: account,
            };
            self.emit(body);
        }
        debug_assert_eq!(remaining, 0, "sizes in a market must sum to zero");
        self.adl.chosen = chosen;
    }

    /// The best-ranked opposite positions, just enough to take `size`, into `chosen`.
    fn choose_counterparties(
        &mut self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        size: Lots,
        chosen: &mut Vec<Counterparty>,
    ) {
        let side = -size.signum();
        if self.scan == crate::engine::ScanMode::Naive {
            // The reference: rank everything afresh each time.
            self.adl.clear();
        }
        self.refresh_rankings();
        let pos = match self.adl.find((market, side)) {
            Some(i) => i,
            None => {
                let i = self.adl.claim((market, side));
                let mut list = std::mem::take(&mut self.adl.lists[i].1);
                self.rank_all(market, side, &mut list);
                self.adl.lists[i].1 = list;
                i
            }
        };
        let mut need = i128::from(size.0.unsigned_abs());
        chosen.clear();
        for cp in &self.adl.lists[pos].1 {
            if need <= 0 {
                break;
            }
            if (cp.account, cp.slot) == (account, slot) {
                continue;
            }
            need -= i128::from(cp.size.0.unsigned_abs());
            chosen.push(*cp);
        }
    }

    /// The ranking figures of one bucket's position in `market` on side `side`, if it has one.
    fn counterparty(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        side: i64,
    ) -> Option<Counterparty> {
        let bucket = self.state.bucket(account, slot)?;
        let pos = bucket.position(market)?;
        if pos.size.signum() != side {
            return None;
        }
        let qd = self.state.quote_decimals();
        let (Ok(upnl), Ok(equity)) = (
            self.state.upnl_exact(pos).and_then(|u| u.floor(qd)),
            self.state.equity_maint(bucket),
        ) else {
            debug_assert!(false, "ranking valuation overflow");
            return None;
        };
        Some(Counterparty {
            account,
            slot,
            key: self.state.pass_key(account, slot),
            size: pos.size,
            upnl,
            equity: equity.max(1),
        })
    }

    /// Every position on `side` of `market`, ranked, into `out`.
    fn rank_all(&self, market: MarketId, side: i64, out: &mut Vec<Counterparty>) {
        out.clear();
        self.state.markets[market.index()]
            .holders
            .for_each(|&(acc, s)| out.extend(self.counterparty(acc, s, market, side)));
        // rank_order ends on the unique (account, bucket) key, so an unstable sort is exact
        // and does not allocate.
        out.sort_unstable_by(rank_order);
    }

    /// Re-ranks, in every kept ranking, the buckets that changed since it was made.
    fn refresh_rankings(&mut self) {
        if self.adl.stale.is_empty() {
            return;
        }
        let mut stale = std::mem::take(&mut self.adl.stale);
        stale.sort_unstable();
        stale.dedup();
        let mut lists = std::mem::take(&mut self.adl.lists);
        for ((market, side), list) in &mut lists[..self.adl.live] {
            list.retain(|cp| stale.binary_search(&(cp.account, cp.slot)).is_err());
            for &(acc, slot) in &stale {
                if let Some(cp) = self.counterparty(acc, slot, *market, *side) {
                    let at = list.partition_point(|x| rank_order(x, &cp) == Ordering::Less);
                    list.insert(at, cp);
                }
            }
        }
        self.adl.lists = lists;
        stale.clear();
        self.adl.stale = stale;
    }
}
