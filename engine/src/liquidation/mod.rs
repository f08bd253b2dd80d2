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
mod bands;

pub(crate) use bands::Bands;

use crate::account::{Liquidation, Slot};
use crate::engine::Engine;
use crate::health::{Health, Overlay};
use crate::ids::AccountId;
use crate::record::{Body, EndReason, Num};
use std::collections::BTreeSet;

/// A bucket in pass order.
pub(crate) type PassEntry = ((AccountId, u32), Slot);

/// More passes than this in one event means a rule keeps undoing another: a bug. The loop stops
/// rather than spin, and debug builds fail loudly.
const PASSES_MAX: u32 = 10_000;

impl Engine {
    /// Runs the liquidation passes for the current event, then the margin-call check.
    pub(crate) fn settle(&mut self) {
        let mut pending = self.first_pass_candidates();
        let mut next: BTreeSet<PassEntry> = BTreeSet::new();
        let mut passes = 0;
        loop {
            let mut changed = false;
            while let Some(entry) = pending.pop_first() {
                self.dirty.clear();
                let (acted, health) = self.visit(entry.0 .0, entry.1);
                // The figures stay valid unless the bucket changes again, and then it is visited
                // again (every change marks it dirty), so the last visit's figures are current.
                self.visited
                    .insert(entry, if acted { None } else { health });
                let dirtied = std::mem::take(&mut self.dirty);
                for (acc, slot) in dirtied.iter().copied() {
                    let e = (self.state.pass_key(acc, slot), slot);
                    if e > entry {
                        pending.insert(e);
                    } else {
                        next.insert(e);
                    }
                }
                self.dirty = dirtied;
                if acted {
                    changed = true;
                    next.insert(entry);
                }
            }
            passes += 1;
            if !changed || passes >= PASSES_MAX {
                debug_assert!(passes < PASSES_MAX, "liquidation passes did not settle");
                break;
            }
            pending = std::mem::take(&mut next);
        }
        self.dirty.clear();
        self.margin_calls();
    }

    /// Buckets the event changed or exposed to a moved price, plus every liquidating bucket.
    fn first_pass_candidates(&mut self) -> BTreeSet<PassEntry> {
        let mut set: BTreeSet<PassEntry> = BTreeSet::new();
        let mut add = |state: &crate::state::State, acc: AccountId, slot: Slot| {
            set.insert((state.pass_key(acc, slot), slot));
        };
        for &(acc, slot) in &self.dirty {
            add(&self.state, acc, slot);
        }
        for &(acc, slot) in &self.state.liquidating {
            add(&self.state, acc, slot);
        }
        let naive = self.scan == crate::engine::ScanMode::Naive;
        let mut walk_markets: Vec<crate::ids::MarketId> = self.moved_markets.clone();
        let mut walk_assets: Vec<crate::ids::AssetId> = self.moved_assets.clone();
        if naive {
            walk_markets.extend(self.funded_markets.iter().copied());
            for &a in &self.ticked_assets {
                walk_assets.push(a);
                walk_markets.extend(
                    (0..self.state.venue.markets.len())
                        .map(|i| crate::ids::MarketId(i as u16))
                        .filter(|m| self.state.venue.market(*m).base == a),
                );
            }
        } else {
            let mut crossed = Vec::new();
            for &a in &self.ticked_assets {
                let ticks = i128::from(self.state.index(a).unwrap_or(0));
                self.bands.crossed_price(a, ticks, &mut crossed);
            }
            for &m in &self.funded_markets {
                let f = self.state.markets[m.index()].funding_index;
                self.bands.crossed_funding(m, f, &mut crossed);
            }
            for (acc, slot) in crossed {
                add(&self.state, acc, slot);
            }
        }
        for m in walk_markets {
            for &(acc, slot) in &self.state.markets[m.index()].holders {
                add(&self.state, acc, slot);
            }
        }
        for a in walk_assets {
            for &acc in &self.state.assets[a.index()].holders {
                add(&self.state, acc, Slot::Cross);
            }
            for &(acc, slot) in self.markets_holders_on(a).iter() {
                add(&self.state, acc, slot);
            }
        }
        set
    }

    /// Buckets holding a position in a market whose base is `asset`.
    fn markets_holders_on(&self, asset: crate::ids::AssetId) -> Vec<(AccountId, Slot)> {
        let mut out = Vec::new();
        for (i, m) in self.state.venue.markets.iter().enumerate() {
            if m.base == asset {
                out.extend(self.state.markets[i].holders.iter().copied());
            }
        }
        out
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
                let Ok(h) = self.state.bucket_health(bucket, &Overlay::default()) else {
                    continue;
                };
                if let Ok(safe) = self.state.safe_bands(bucket, &h) {
                    self.bands.update((acc.id, slot), &safe);
                }
            }
        }
    }

    /// Entries in the price-tick index (statistics).
    pub fn band_entries(&self) -> usize {
        self.bands.entries()
    }

    /// Applies the first of rules 1-4 that holds; true when it acted. Returns the figures it
    /// judged by.
    fn visit(&mut self, account: AccountId, slot: Slot) -> (bool, Option<Health>) {
        let Some(bucket) = self.state.bucket(account, slot) else {
            return (false, None);
        };
        let Ok(h) = self.state.bucket_health(bucket, &Overlay::default()) else {
            debug_assert!(false, "valuation overflow in a pass");
            return (false, None);
        };
        (self.apply_rules(account, slot, &h), Some(h))
    }

    fn apply_rules(&mut self, account: AccountId, slot: Slot, h: &Health) -> bool {
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
    fn start_liquidation(&mut self, account: AccountId, slot: Slot, h: &Health) {
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

    /// Rule 6: a `margin_call` record once per crossing under the ratio, for visited buckets.
    fn margin_calls(&mut self) {
        let visited = std::mem::take(&mut self.visited);
        for (&(key, slot), cached) in &visited {
            let account = key.0;
            let Some(bucket) = self.state.bucket(account, slot) else {
                continue;
            };
            let under = match self.state.margin_call_ratio(bucket) {
                None => None,
                Some(ratio) => cached
                    .or_else(|| self.state.bucket_health(bucket, &Overlay::default()).ok())
                    .map(|h| (h, under_ratio(h.equity_maint, h.mm, ratio.0))),
            };
            let was = bucket.margin_called;
            let now = under.is_some_and(|(_, u)| u);
            if now != was {
                if let Some(b) = self.state.bucket_mut(account, slot) {
                    b.margin_called = now;
                }
            }
            self.refresh_bands(account, slot, cached);
            if now == was {
                continue;
            }
            if let (true, Some((h, _))) = (now, under) {
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
        self.visited = visited;
        self.visited.clear();
    }
}

impl Engine {
    /// Recomputes a visited bucket's bands (after its margin-call flag is settled).
    fn refresh_bands(&mut self, account: AccountId, slot: Slot, cached: &Option<Health>) {
        if self.scan == crate::engine::ScanMode::Naive {
            return;
        }
        let Some(bucket) = self.state.bucket(account, slot) else {
            self.bands.clear((account, slot));
            return;
        };
        let h = match cached {
            Some(h) => *h,
            None => match self.state.bucket_health(bucket, &Overlay::default()) {
                Ok(h) => h,
                Err(_) => return self.bands.clear((account, slot)),
            },
        };
        match self.state.safe_bands(bucket, &h) {
            Ok(safe) => self.bands.update((account, slot), &safe),
            // No band means the bucket is looked at only when it changes: make it always crossed
            // instead by leaving no entry and visiting it through the liquidating or dirty sets.
            Err(_) => self.bands.clear((account, slot)),
        }
    }
}

/// equity_maint < r * mm, exactly (r in parts per 10^18).
fn under_ratio(equity_maint: i128, mm: i128, ratio: i128) -> bool {
    use ethnum::I256;
    I256::from(equity_maint) * I256::from(1_000_000_000_000_000_000i128)
        < I256::from(ratio) * I256::from(mm)
}
