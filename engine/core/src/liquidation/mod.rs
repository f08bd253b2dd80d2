//! Settling the consequences of an event: the liquidation passes of the margin model.
//!
//! A pass visits buckets in ascending (account, cross, isolated by market name) order and applies
//! the first rule that holds: start, end, backstop, bad debt. Passes repeat until one changes
//! nothing. Only buckets whose figures can have moved are visited: those the event or an earlier
//! visit changed, those exposed to a moved price, funding or parameter, and every bucket in
//! liquidation (its auction clock runs). Any other bucket would match no rule, so the outcome is
//! that of visiting them all.

mod adl;
mod auction;
mod backstop;
pub(crate) mod ranking;

use crate::scratch::{PassEntry, PassScratch};
use crate::tick_index::Bands;

use crate::account::{Liquidation, Slot};
use crate::engine::Engine;
use crate::health::MaintHealth;
use crate::ids::AccountId;
use crate::ids::MarketId;
use crate::num::Ratio;
use crate::record::{Body, EndReason, Num};
use std::cmp::Reverse;

/// More passes than this in one event means a rule keeps undoing another: a bug. The loop stops
/// rather than spin, and debug builds fail loudly.
const PASSES_MAX: u32 = 10_000;

impl Engine {
    /// Runs the liquidation passes for the current event, then the margin-call check.
    pub(crate) fn settle(&mut self) {
        let mut sc = std::mem::take(&mut self.scratch);
        sc.visited.clear();
        self.first_pass_candidates(&mut sc);
        let mut passes = 0;
        loop {
            let mut changed = false;
            let mut last: Option<PassEntry> = None;
            while let Some(Reverse(entry)) = sc.pending.pop() {
                if last == Some(entry) {
                    continue; // queued twice in this pass
                }
                last = Some(entry);
                self.visits += 1;
                self.dirty.clear();
                let (acted, health) = self.visit(entry.0 .0, entry.1);
                // The figures stay valid unless the bucket changes again, and then it is visited
                // again (every change marks it dirty), so the last visit's figures are current.
                let n = sc.visited.len() as u32;
                sc.visited
                    .push((entry, n, if acted { None } else { health }));
                for i in 0..self.dirty.len() {
                    let (acc, slot) = self.dirty[i];
                    let e = (self.state.pass_key(acc, slot), slot);
                    if e > entry {
                        sc.pending.push(Reverse(e));
                    } else {
                        sc.next.push(e);
                    }
                }
                if acted {
                    changed = true;
                    sc.next.push(entry);
                }
            }
            passes += 1;
            if !changed || passes >= PASSES_MAX {
                debug_assert!(passes < PASSES_MAX, "liquidation passes did not settle");
                break;
            }
            sc.next.sort_unstable();
            sc.next.dedup();
            sc.pending.extend(sc.next.drain(..).map(Reverse));
        }
        sc.next.clear();
        sc.pending.clear();
        self.dirty.clear();
        self.margin_calls(&mut sc);
        self.scratch = sc;
    }

    /// Buckets the event changed or exposed to a moved price, plus every liquidating bucket.
    fn first_pass_candidates(&mut self, sc: &mut PassScratch) {
        let state = &self.state;
        let key = |acc: AccountId, slot: Slot| Reverse((state.pass_key(acc, slot), slot));
        let pending = &mut sc.pending;
        pending.extend(self.dirty.iter().map(|&(a, s)| key(a, s)));
        self.deferred.for_each(|&(a, s)| pending.push(key(a, s)));
        if self.scan == crate::engine::ScanMode::Naive {
            state
                .liquidating
                .for_each(|&(a, s)| pending.push(key(a, s)));
        } else {
            // Liquidating buckets are banded like the others; their auction clock wakes them.
            self.bands
                .unbanded
                .for_each(|&(a, s)| pending.push(key(a, s)));
            sc.crossed.clear();
            self.bands.due(state.clock_us, &mut sc.crossed);
            for &a in &self.ticked_assets {
                let ticks = i128::from(state.index(a).unwrap_or(0));
                self.bands.crossed_price(state, a, ticks, &mut sc.crossed);
            }
            for &m in &self.funded_markets {
                self.bands.crossed_funding(
                    state,
                    m,
                    state.markets[m.index()].funding_index,
                    &mut sc.crossed,
                );
            }
            pending.extend(sc.crossed.iter().map(|&(a, s)| key(a, s)));
        }
        sc.walk_markets.clear();
        sc.walk_assets.clear();
        sc.walk_markets.extend_from_slice(&self.moved_markets);
        sc.walk_assets.extend_from_slice(&self.moved_assets);
        if self.scan == crate::engine::ScanMode::Naive {
            sc.walk_markets.extend_from_slice(&self.funded_markets);
            sc.walk_assets.extend_from_slice(&self.ticked_assets);
        }
        for &a in &sc.walk_assets {
            state.assets[a.index()]
                .holders
                .for_each(|&acc| pending.push(key(acc, Slot::Cross)));
            for (i, m) in state.venue.markets.iter().enumerate() {
                if m.base == a {
                    sc.walk_markets.push(MarketId(i as u16));
                }
            }
        }
        for &m in &sc.walk_markets {
            state.markets[m.index()]
                .holders
                .for_each(|&(a, s)| pending.push(key(a, s)));
        }
    }

    /// Computes every bucket's bands from scratch (a new engine over a loaded state).
    pub(crate) fn rebuild_bands(&mut self) {
        self.bands = Bands::default();
        if self.scan == crate::engine::ScanMode::Naive {
            return;
        }
        for acc in &self.state.accounts {
            for slot in acc.slots() {
                let Some(bucket) = acc.bucket(slot) else {
                    continue;
                };
                let Ok(h) = self.state.bucket_maint(bucket) else {
                    continue;
                };
                let mut buf = Vec::new();
                self.bands
                    .track(&self.state, (acc.id, slot), bucket, &h, &mut buf);
            }
        }
    }

    /// Entries in the price-tick index (statistics).
    pub fn band_entries(&self) -> usize {
        self.bands.entries()
    }

    /// Applies the first of rules 1-4 that holds; true when it acted. Returns the figures it
    /// judged by.
    fn visit(&mut self, account: AccountId, slot: Slot) -> (bool, Option<MaintHealth>) {
        let Some(bucket) = self.state.bucket(account, slot) else {
            return (false, None);
        };
        let Ok(h) = self.state.bucket_maint(bucket) else {
            debug_assert!(false, "valuation overflow in a pass");
            return (false, None);
        };
        (self.apply_rules(account, slot, &h), Some(h))
    }

    fn apply_rules(&mut self, account: AccountId, slot: Slot, h: &MaintHealth) -> bool {
        let Some(bucket) = self.state.bucket(account, slot) else {
            return false;
        };
        let breached = bucket.has_positions() && !bucket.is_liquidating() && h.health_maint() < 0;
        if !breached && !self.deferred.is_empty() {
            self.deferred.remove(&(account, slot));
        }
        self.count_breach(account, slot, breached);
        let Some(bucket) = self.state.bucket(account, slot) else {
            return false;
        };
        let has_positions = bucket.has_positions();
        match bucket.liquidation {
            None if has_positions && h.health_maint() < 0 => {
                if !self.may_start_liquidation(account, slot) {
                    return false;
                }
                self.start_liquidation(account, slot, h);
                true
            }
            Some(_) if !has_positions || h.health_le() >= 0 => {
                self.end_liquidation(account, slot, has_positions);
                true
            }
            Some(liq) if h.equity_maint <= 0 || self.auction_expired(account, slot, liq) => {
                self.backstop(account, slot);
                true
            }
            _ if !has_positions && h.equity_maint < 0 => {
                self.settle_bad_debt(account, slot);
                true
            }
            _ => false,
        }
    }

    /// Rule 1: liquidation starts, open orders are cancelled.
    fn start_liquidation(&mut self, account: AccountId, slot: Slot, h: &MaintHealth) {
        let started_us = self.state.clock_us;
        if let Some(b) = self.state.bucket_mut(account, slot) {
            b.liquidation = Some(Liquidation { started_us });
            b.breach_prints = 0;
        }
        self.state.liquidating.insert((account, slot));
        let qd = self.state.quote_decimals();
        let bucket = self.bucket_name(slot);
        self.emit(Body::LiquidationStarted {
            account,
            bucket,
            equity_maint: Num::new(h.equity_maint, qd),
            mm: Num::new(h.mm, qd),
        });
        self.cancel_bucket_orders(account, slot);
        self.mark_dirty(account, slot);
    }

    /// Rule 2: liquidation ends.
    fn end_liquidation(&mut self, account: AccountId, slot: Slot, has_positions: bool) {
        if let Some(b) = self.state.bucket_mut(account, slot) {
            b.liquidation = None;
        }
        self.state.liquidating.remove(&(account, slot));
        let bucket = self.bucket_name(slot);
        let reason = if has_positions {
            EndReason::Healthy
        } else {
            EndReason::Closed
        };
        self.emit(Body::LiquidationEnded {
            account,
            bucket,
            reason,
        });
        self.mark_dirty(account, slot);
    }

    /// The auction has run for the `liq_auction_us` of the bucket's position with the largest
    /// notional (ties by market name).
    fn auction_expired(&self, account: AccountId, slot: Slot, liq: Liquidation) -> bool {
        let Some(bucket) = self.state.bucket(account, slot) else {
            return false;
        };
        let mut best: Option<(crate::num::Exact, crate::ids::Symbol, u64)> = None;
        for p in &bucket.positions {
            let Ok(n) = self.state.notional_exact(p.market, p.size) else {
                continue;
            };
            let cfg = self.state.venue.market(p.market);
            let better = match &best {
                None => true,
                Some((bn, bname, _)) => match n.cmp_exact(*bn) {
                    Ok(std::cmp::Ordering::Greater) => true,
                    Ok(std::cmp::Ordering::Equal) => cfg.name < *bname,
                    _ => false,
                },
            };
            if better {
                best = Some((n, cfg.name, cfg.liq_auction_us));
            }
        }
        let Some((_, _, auction_us)) = best else {
            return false;
        };
        self.state.clock_us.saturating_sub(liq.started_us) >= auction_us
    }

    /// Rule 6: a `margin_call` record once per crossing under the ratio, for visited buckets;
    /// then their bands are refreshed.
    fn margin_calls(&mut self, sc: &mut PassScratch) {
        // Stable sort by bucket, then keep each bucket's last visit (its current figures).
        // By bucket, then visit number (an unstable sort on a unique key: no scratch buffer);
        // each bucket's last visit has its current figures.
        sc.visited.sort_unstable_by_key(|v| (v.0, v.1));
        let mut i = 0;
        while i < sc.visited.len() {
            let (entry, _, cached) = sc.visited[i];
            i += 1;
            if sc.visited.get(i).is_some_and(|n| n.0 == entry) {
                continue;
            }
            self.margin_call_of(entry.0 .0, entry.1, cached);
        }
    }

    fn margin_call_of(&mut self, account: AccountId, slot: Slot, cached: Option<MaintHealth>) {
        let Some(bucket) = self.state.bucket(account, slot) else {
            self.bands.clear(&self.state, (account, slot));
            return;
        };
        let health = cached.or_else(|| self.state.bucket_maint(bucket).ok());
        let under = match (self.state.margin_call_ratio(bucket), health) {
            (Some(ratio), Some(h)) => under_ratio(h.equity_maint, h.mm, ratio.0),
            _ => false,
        };
        let was = bucket.margin_called;
        if under != was {
            if let Some(b) = self.state.bucket_mut(account, slot) {
                b.margin_called = under;
            }
        }
        if let Some(h) = health {
            self.refresh_bands(account, slot, &h);
        }
        if under && !was {
            let h = health.unwrap_or_default();
            let qd = self.state.quote_decimals();
            let bucket = self.bucket_name(slot);
            self.emit(Body::MarginCall {
                account,
                bucket,
                equity_maint: Num::new(h.equity_maint, qd),
                mm: Num::new(h.mm, qd),
            });
        }
    }
}

impl Engine {
    /// Recomputes a visited bucket's bands (after its margin-call flag is settled).
    fn refresh_bands(&mut self, account: AccountId, slot: Slot, h: &MaintHealth) {
        if self.scan == crate::engine::ScanMode::Naive {
            return;
        }
        let Some(bucket) = self.state.bucket(account, slot) else {
            return self.bands.clear(&self.state, (account, slot));
        };
        let mut buf = std::mem::take(&mut self.band_buf);
        self.bands
            .track(&self.state, (account, slot), bucket, h, &mut buf);
        self.band_buf = buf;
    }
}

/// equity_maint < r * mm, exactly (r in parts per 10^18): in i128 while both products fit.
fn under_ratio(equity_maint: i128, mm: i128, ratio: i128) -> bool {
    use crate::num::mul::mul_i128;
    match (mul_i128(equity_maint, Ratio::ONE.0), mul_i128(ratio, mm)) {
        (Some(l), Some(r)) => l < r,
        _ => under_ratio_wide(equity_maint, mm, ratio),
    }
}

/// [`under_ratio`] in 256 bits (and its test's oracle).
fn under_ratio_wide(equity_maint: i128, mm: i128, ratio: i128) -> bool {
    use ethnum::I256;
    I256::from(equity_maint) * I256::from(Ratio::ONE.0) < I256::from(ratio) * I256::from(mm)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The i128 comparison answers as the 256-bit one, at every magnitude.
        #[test]
        fn under_ratio_matches_the_wide_comparison(
            e in proptest::num::i128::ANY, mm in proptest::num::i128::ANY,
            r in proptest::num::i128::ANY, shift in 0u32..127,
        ) {
            let (e, mm, r) = (e >> shift, mm >> (shift / 2), r >> (shift / 3));
            proptest::prop_assert_eq!(under_ratio(e, mm, r), under_ratio_wide(e, mm, r));
        }
    }
}
