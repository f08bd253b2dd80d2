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
use crate::scratch::{Counterparty, Ranked};

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
        let at = match self.adl.find((market, side)) {
            Some(i) => {
                self.refresh_ranking(i);
                i
            }
            None => self.rank_all(market, side),
        };
        let mut need = i128::from(size.0.unsigned_abs());
        chosen.clear();
        self.adl.rankings[at].ranked.for_each_until(|r| {
            let cp = r.0;
            if (cp.account, cp.slot) != (account, slot) {
                need -= i128::from(cp.size.0.unsigned_abs());
                chosen.push(cp);
            }
            need > 0
        });
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
        let i = bucket
            .positions
            .binary_search_by_key(&market, |p| p.market)
            .ok()?;
        let pos = &bucket.positions[i];
        if pos.size.signum() != side {
            return None;
        }
        let (Ok(upnl), Ok(equity)) = (
            self.state
                .position_value_at(bucket, i)
                .map(|v| v.upnl_maint),
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

    /// Ranks every position on `side` of `market` into a new kept ranking; its index.
    fn rank_all(&mut self, market: MarketId, side: i64) -> usize {
        let at = self.adl.claim((market, side));
        let mut ranking = std::mem::take(&mut self.adl.rankings[at]);
        let mut build = std::mem::take(&mut self.adl.build);
        build.clear();
        self.ranked += self.state.markets[market.index()].holders.len() as u64;
        // Holders come in bucket order, so `by_bucket` is sorted as it is filled.
        self.state.markets[market.index()]
            .holders
            .for_each(|&(acc, s)| {
                let cp = self.counterparty(acc, s, market, side);
                ranking.by_bucket.push(((acc, s), cp));
                build.extend(cp.map(Ranked));
            });
        // rank_order ends on the unique (account, bucket) key, so an unstable sort is exact
        // and does not allocate.
        build.sort_unstable();
        ranking.ranked.rebuild_sorted(&build);
        self.adl.rankings[at] = ranking;
        self.adl.build = build;
        at
    }

    /// Takes the buckets changed since ranking `at` last looked into it: each one's old entry
    /// is replaced by its figures now (or dropped, when it left the side).
    fn refresh_ranking(&mut self, at: usize) {
        let mut ranking = std::mem::take(&mut self.adl.rankings[at]);
        let (market, side) = ranking.key;
        for &bucket in &self.adl.stale[ranking.seen..] {
            let now = self.counterparty(bucket.0, bucket.1, market, side);
            match ranking.by_bucket.binary_search_by(|e| e.0.cmp(&bucket)) {
                Ok(i) => {
                    if let Some(old) = ranking.by_bucket[i].1 {
                        ranking.ranked.remove(&Ranked(old));
                    }
                    ranking.by_bucket[i].1 = now;
                }
                Err(_) if now.is_none() => continue,
                Err(i) => ranking.by_bucket.insert(i, (bucket, now)),
            }
            if let Some(cp) = now {
                ranking.ranked.insert(Ranked(cp));
            }
        }
        ranking.seen = self.adl.stale.len();
        self.adl.rankings[at] = ranking;
    }
}
