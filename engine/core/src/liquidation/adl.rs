//! Auto-deleveraging: the backstop closes a position against the opposite positions of the same
//! market, the most profitable relative to their equity first. Buckets without a position in the
//! market are never charged.
//!
//! Ranking every opposite position afresh is O(n) valuations, and a crash tick can back-stop
//! many buckets of one market in the same event, the liquidation bids that follow it more. So
//! a (market, side) ranking is kept until a listing or parameter changes: before each use it
//! takes in the buckets that joined or left its side and values again those whose balances or
//! positions changed, and the holders it has not valued at the current prices are read through
//! bounds (`ranking.rs`), valued only when their bound reaches the choice. The result is that
//! of ranking afresh (the naive mode does, `ranking::tests` compares every choice of three
//! crash streams, and `tests/index_equivalence.rs` compares output bytes).

use crate::account::Slot;
use crate::engine::Engine;
use crate::ids::{AccountId, MarketId, Side};
use crate::liquidation::ranking::{ranks_above, Bound, Holder, Pick, Ranking, Rate};
use crate::num::Lots;
use crate::record::{Body, Num};
use crate::scratch::{Counterparty, Ranked};
use crate::state::side_index;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Joiners a ranking takes in from the log before a walk folds them into its sorted part
/// (they are found by a linear search).
const JOINED_MAX: usize = 64;

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
        let need = i128::from(size.0.unsigned_abs());
        chosen.clear();
        if self.scan == crate::engine::ScanMode::Naive {
            self.adl.clear();
            return self.choose_afresh((account, slot), market, side, need, chosen);
        }
        self.adl.tables.refresh(&self.state);
        let at = match self.adl.find((market, side)) {
            Some(i) if !self.adl.rankings[i].worn(&self.state) => {
                self.sync_ranking(i);
                i
            }
            _ => self.rank_all(market, side),
        };
        self.select(at, (account, slot), need, chosen);
        #[cfg(test)]
        self.check_choice((account, slot), market, side, need, at, chosen);
    }

    /// With the check on (`ranking::tests`), the choice against the reference's, counted.
    #[cfg(test)]
    fn check_choice(
        &mut self,
        me: (AccountId, Slot),
        market: MarketId,
        side: i64,
        need: i128,
        at: usize,
        chosen: &[Counterparty],
    ) {
        use crate::liquidation::ranking::tests::CHECK;
        if !CHECK.with(|c| c.get().on) {
            return;
        }
        let ranked = self.ranked;
        let mut fresh = Vec::new();
        self.choose_afresh(me, market, side, need, &mut fresh);
        self.ranked = ranked;
        let same = fresh.len() == chosen.len()
            && fresh.iter().zip(chosen).all(|(a, b)| {
                (a.account, a.slot, a.size, a.upnl, a.equity)
                    == (b.account, b.slot, b.size, b.upnl, b.equity)
            });
        let r = &self.adl.rankings[at];
        let moved = r.snaps.len() > r.stride;
        CHECK.with(|c| {
            let mut k = c.get();
            k.closes += 1;
            k.at_moved_prices += u64::from(moved);
            k.wrong += u64::from(!same);
            c.set(k);
        });
    }

    /// The reference (the naive mode): every holder valued and sorted, the best taken.
    fn choose_afresh(
        &mut self,
        me: (AccountId, Slot),
        market: MarketId,
        side: i64,
        mut need: i128,
        chosen: &mut Vec<Counterparty>,
    ) {
        let mut build = std::mem::take(&mut self.adl.build);
        build.clear();
        self.ranked += self.state.markets[market.index()].holders.len() as u64;
        self.state.markets[market.index()]
            .holders
            .for_each(|&(acc, s)| {
                build.extend(self.counterparty(acc, s, market, side).map(Ranked))
            });
        // rank_order ends on the unique (account, bucket) key, so an unstable sort is exact
        // and does not allocate.
        build.sort_unstable();
        for r in &build {
            if need <= 0 {
                break;
            }
            if (r.0.account, r.0.slot) != me {
                need -= i128::from(r.0.size.0.unsigned_abs());
                chosen.push(r.0);
            }
        }
        self.adl.build = build;
    }

    /// The ranking figures of one bucket's position in `market` on side `side`, if it has one
    /// (None too when its valuation overflows: such a position is never chosen).
    pub(super) fn counterparty(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        side: i64,
    ) -> Option<Counterparty> {
        let bucket = self.state.bucket(account, slot)?;
        self.valued_holder(bucket, account, slot, market, side)?.0
    }

    /// The ranking figures of the bucket's position in `market` with equity_maint itself (None
    /// inside: the valuation overflowed); None when it has no position on the side.
    fn valued_holder(
        &self,
        bucket: &crate::account::Bucket,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        side: i64,
    ) -> Option<(Option<Counterparty>, i128)> {
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
            return Some((None, 0));
        };
        let cp = Counterparty {
            account,
            slot,
            key: self.state.pass_key(account, slot),
            size: pos.size,
            upnl,
            equity: equity.max(1),
        };
        Some((Some(cp), equity))
    }

    /// A holder of side `key` valued now (snapshot `snap`), its rates appended to `rates`;
    /// None when the bucket has no position on the side.
    pub(super) fn holder(
        &self,
        key: (MarketId, i64),
        rates: &mut Vec<Rate>,
        bucket_key: (AccountId, Slot),
        snap: u32,
    ) -> Option<Holder> {
        // One lookup of the account: its position is kept for the change counts.
        let account_at = self.state.account_pos(bucket_key.0)?;
        self.holder_at(key, rates, account_at, bucket_key.1, snap)
    }

    /// [`Engine::holder`] for the account at position `account_at` (callers that know it: the
    /// change log, a kept holder).
    fn holder_at(
        &self,
        key: (MarketId, i64),
        rates: &mut Vec<Rate>,
        account_at: usize,
        slot: Slot,
        snap: u32,
    ) -> Option<Holder> {
        let (market, side) = key;
        let acc = self.state.accounts.get(account_at)?;
        let bucket_key = (acc.id, slot);
        let bucket = acc.bucket(slot)?;
        let (cp, equity) = self.valued_holder(bucket, acc.id, slot, market, side)?;
        let tables = &self.adl.tables;
        let size = i128::from(bucket.size(market).0);
        Some(Holder {
            bucket: bucket_key,
            account_at: account_at as u32,
            change_seq: self.state.change_seq,
            cp,
            equity,
            snap,
            rates: tables.bucket_rates(&self.state, bucket, rates),
            upnl_coefs: tables.upnl_coefs(market, size),
            version: 0,
            gone: false,
        })
    }

    /// Values every position on `side` of `market` into a new kept ranking; its index.
    fn rank_all(&mut self, market: MarketId, side: i64) -> usize {
        let at = self.adl.claim((market, side));
        let mut ranking = std::mem::take(&mut self.adl.rankings[at]);
        let holders = &self.state.markets[market.index()].sides[side_index(side)];
        // Grown once to size rather than by doubling (a warmed-up engine does not allocate).
        // Room for the joiners the log may add before a walk folds them in.
        ranking.holders.reserve(holders.len() + JOINED_MAX + 1);
        ranking
            .spare_holders
            .reserve(holders.len() + JOINED_MAX + 1);
        ranking.rates.reserve(holders.len() * 4);
        ranking.spare_rates.reserve(holders.len() * 4);
        ranking.reserve_snapshots(&self.state);
        let snap = ranking.snapshot(&self.adl.tables, &self.state);
        // The side's holders come in bucket order, so `holders` is sorted as it is filled.
        holders.for_each(|&key| {
            if let Some(h) = self.holder((market, side), &mut ranking.rates, key, snap) {
                ranking.holders.push(h);
            }
        });
        self.ranked += holders.len() as u64;
        ranking.sorted = ranking.holders.len();
        ranking.synced_seq = self.state.change_seq;
        ranking.rates_at_walk = ranking.rates.len();
        self.adl.rankings[at] = ranking;
        at
    }

    /// Brings ranking `at` up to date with the buckets changed since it was last current:
    /// from the state's change log when it reaches back that far and holds fewer changes than
    /// a walk would visit, else by walking the side.
    fn sync_ranking(&mut self, at: usize) {
        let r = &self.adl.rankings[at];
        let walk = match self.state.changes_since(r.synced_seq) {
            Some(log) => log.len() > r.holders.len() / 2 + 64,
            None => true,
        };
        #[cfg(test)]
        crate::liquidation::ranking::tests::count(|k| {
            k.walked += u64::from(walk);
            k.caught_up += u64::from(!walk);
        });
        if walk {
            self.refresh_ranking(at);
        } else {
            self.catch_up(at);
        }
        let r = &mut self.adl.rankings[at];
        r.synced_seq = self.state.change_seq;
        if r.holders.len() - r.sorted > JOINED_MAX {
            // Joiners are found by a linear search: fold them in by a walk.
            self.refresh_ranking(at);
        }
    }

    /// Takes in the changes in the log since the ranking was current: per changed account its
    /// cross and isolated bucket in the market, valued again (joined, changed) or marked gone.
    /// A holder valued here is exact at the current snapshot: it goes among the valued.
    fn catch_up(&mut self, at: usize) {
        let mut ranking = std::mem::take(&mut self.adl.rankings[at]);
        let snap = ranking.snapshot(&self.adl.tables, &self.state);
        let key = ranking.key;
        let Some(log) = self.state.changes_since(ranking.synced_seq) else {
            self.adl.rankings[at] = ranking;
            return self.refresh_ranking(at);
        };
        let mut valued = 0u64;
        #[cfg(test)]
        let log = if crate::liquidation::ranking::tests::CHECK.with(|c| c.get().plant_deaf_log) {
            &log[..0]
        } else {
            log
        };
        for (j, &account_at) in log.iter().enumerate() {
            // Entry j is change number synced_seq + j + 1. An account changed again later in
            // the log is taken in at its last entry, once, without touching it here: its
            // change count (a dense array) says whether this entry is the last.
            if self.state.changed_at(account_at as usize) != ranking.synced_seq + j as u64 + 1 {
                continue;
            }
            let Some(acc) = self.state.accounts.get(account_at as usize) else {
                continue;
            };
            for slot in [Slot::Cross, Slot::Isolated(key.0)] {
                let found = ranking.find((acc.id, slot));
                if let Some(i) = found {
                    let h = &ranking.holders[i];
                    if self.state.changed_at(h.account_at as usize) <= h.change_seq {
                        continue; // a repeat in the log, already taken in
                    }
                }
                let at = account_at as usize;
                let fresh = self.holder_at(key, &mut ranking.rates, at, slot, snap);
                valued += u64::from(fresh.is_some());
                ranking.replace(found, fresh);
            }
        }
        self.ranked += valued;
        ranking.compact_rates();
        self.adl.rankings[at] = ranking;
    }

    /// Prefetch for a walk's valuations: the account of `far` (its bucket headers), and what
    /// the bucket of `near` (fetched a few steps ago) points to: its positions, balances and
    /// remembered figures.
    fn prefetch_holder(&self, far: Option<&(u32, u32, Slot)>, near: Option<&(u32, u32, Slot)>) {
        use crate::prefetch::prefetch;
        if let Some(acc) = far.and_then(|t| self.state.accounts.get(t.1 as usize)) {
            prefetch(acc);
            prefetch((acc as *const crate::account::Account).wrapping_byte_add(64));
        }
        let near = near.and_then(|t| Some((self.state.accounts.get(t.1 as usize)?, t.2)));
        if let Some(bucket) = near.and_then(|(acc, slot)| acc.bucket(slot)) {
            prefetch(bucket.positions.as_ptr());
            prefetch(bucket.balances.as_ptr());
            bucket.memo.prefetch();
        }
    }

    /// Brings ranking `at` up to date with the buckets changed since it valued them, in one
    /// walk of the side's holders beside its own (both in bucket order): a bucket that joined
    /// the side is valued and added, one that left is dropped, and one whose balances or
    /// positions changed since its valuation is valued afresh. O(holders): used when the
    /// change log does not reach back or holds more changes than that.
    fn refresh_ranking(&mut self, at: usize) {
        let mut ranking = std::mem::take(&mut self.adl.rankings[at]);
        let snap = ranking.snapshot(&self.adl.tables, &self.state);
        let key = ranking.key;
        let mut old = std::mem::take(&mut ranking.holders);
        if ranking.sorted < old.len() {
            // The joiners since the last walk, in bucket order, so that one merge finds them
            // (a bucket's live holder before any gone one).
            old.sort_unstable_by_key(|h| (h.bucket, h.gone));
        }
        let mut next = std::mem::take(&mut ranking.spare_holders);
        next.clear();
        let side_len = self.state.markets[key.0.index()].sides[side_index(key.1)].len();
        next.reserve(side_len + JOINED_MAX + 1);
        // First the merge: unchanged holders are kept, every other one gets a place in `next`
        // and an entry in `todo`; then the valuations, with the accounts a few entries ahead
        // prefetched (each valuation is a chain of misses into a scattered account).
        let mut todo = std::mem::take(&mut self.adl.todo);
        todo.clear();
        let mut i = 0;
        let side = &self.state.markets[key.0.index()].sides[side_index(key.1)];
        side.for_each(|&bucket| {
            while i < old.len() && old[i].bucket < bucket {
                i += 1; // left the side
            }
            let kept = old.get(i).filter(|h| h.bucket == bucket && !h.gone);
            let account_at = match kept {
                Some(h) if self.state.changed_at(h.account_at as usize) <= h.change_seq => {
                    return next.push(*h);
                }
                // Changed: its account's position is known, no lookup by id.
                Some(h) => h.account_at,
                None => match self.state.account_pos(bucket.0) {
                    Some(at) => at as u32,
                    None => return,
                },
            };
            todo.push((next.len() as u32, account_at, bucket.1));
            next.push(Holder::PLACEHOLDER);
        });
        let mut dropped = false;
        for j in 0..todo.len() {
            self.prefetch_holder(todo.get(j + 8), todo.get(j + 4));
            let (place, account_at, slot) = todo[j];
            let fresh = self.holder_at(key, &mut ranking.rates, account_at as usize, slot, snap);
            match fresh {
                Some(h) => next[place as usize] = h,
                None => dropped = true,
            }
        }
        if dropped {
            next.retain(|h| !h.gone);
        }
        let valued = todo.len() as u64;
        self.adl.todo = todo;
        self.ranked += valued;
        ranking.holders = next;
        ranking.spare_holders = old;
        ranking.sorted = ranking.holders.len();
        // Renumbered: the selection heaps name old indices.
        ranking.selection.forget();
        ranking.rates_at_walk = ranking
            .holders
            .iter()
            .map(|h| (h.rates.1 - h.rates.0) as usize)
            .sum();
        ranking.compact_rates();
        self.adl.rankings[at] = ranking;
    }

    /// The model's choice from ranking `at`: holders are valued in order of the most their
    /// ratio can be now; a valued one is taken once it ranks above every bound still unvalued,
    /// until the sizes taken cover `need`. `me` (the closed bucket) is never taken. The heaps
    /// outlive the close: the next close at the same snapshot goes on from where this one
    /// stopped, after the changes were taken in (`catch_up`).
    fn select(
        &mut self,
        at: usize,
        me: (AccountId, Slot),
        need: i128,
        chosen: &mut Vec<Counterparty>,
    ) {
        let mut ranking = std::mem::take(&mut self.adl.rankings[at]);
        let snap = ranking.snapshot(&self.adl.tables, &self.state);
        if ranking.selection.snap == Some(snap) {
            #[cfg(test)]
            crate::liquidation::ranking::tests::count(|k| k.heaps_kept += 1);
            ranking.restore_taken();
        } else {
            self.build_selection(&mut ranking, snap);
        }
        let mut covered: i128 = 0;
        'taking: loop {
            let bar = ranking.bar();
            while let Some(Reverse(Pick(Ranked(cp), i, version))) = ranking.best_valued() {
                // Strictly above: an unvalued holder at the bar could win the tie on its key.
                if bar.is_some_and(|bar| !ranks_above(&cp, bar)) {
                    break;
                }
                ranking.selection.valued.pop();
                ranking.selection.taken.push((i, version));
                if (cp.account, cp.slot) == me {
                    continue;
                }
                covered += i128::from(cp.size.0.unsigned_abs());
                chosen.push(cp);
                if covered >= need {
                    break 'taking;
                }
            }
            // `bar` left the top unvalued entry current.
            let Some(Bound(_, Reverse(i), _)) = ranking.selection.unvalued.pop() else {
                break;
            };
            let h = ranking.holders[i as usize];
            debug_assert!(h.snap != snap && !h.gone, "an unvalued entry is current");
            self.ranked += 1;
            // Its bucket did not change since its snapshot, so it is still on the side.
            let at = h.account_at as usize;
            let fresh = self.holder_at(ranking.key, &mut ranking.rates, at, h.bucket.1, snap);
            debug_assert!(fresh.is_some(), "an unchanged holder left its side");
            ranking.replace(Some(i as usize), fresh);
        }
        self.adl.rankings[at] = ranking;
    }

    /// Fills the selection heaps of `ranking` for snapshot `snap`: holders valued at it by
    /// rank, every other one by the upper bound of its ratio now.
    fn build_selection(&mut self, ranking: &mut Ranking, snap: u32) {
        let drivers = self.adl.tables.position_drivers(ranking.key.0);
        let mut deltas = std::mem::take(&mut self.adl.deltas);
        ranking.deltas(&self.adl.tables, &self.state, &mut deltas);
        let mut sel = std::mem::take(&mut ranking.selection);
        sel.forget();
        let mut bounds = sel.unvalued.into_vec();
        let mut valued = sel.valued.into_vec();
        // Each heap may come to hold every holder (and the valued one a few repeats).
        bounds.reserve(ranking.holders.len());
        valued.reserve(ranking.holders.len() + JOINED_MAX);
        sel.taken.reserve(JOINED_MAX);
        for (i, h) in ranking.holders.iter().enumerate() {
            if h.gone {
                continue;
            }
            let i = i as u32;
            match h.cp {
                Some(cp) if h.snap == snap => valued.push(Reverse(Pick(Ranked(cp), i, h.version))),
                _ if h.snap == snap => {} // overflowed at these very drivers: never chosen
                _ => {
                    if let Some(key) = ranking.upper_key(h, drivers, snap, &deltas) {
                        bounds.push(Bound(key, Reverse(i), h.version));
                    }
                }
            }
        }
        sel.unvalued = BinaryHeap::from(bounds);
        sel.valued = BinaryHeap::from(valued);
        sel.snap = Some(snap);
        ranking.selection = sel;
        self.adl.deltas = deltas;
    }
}
