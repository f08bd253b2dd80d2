//! Optional guards on top of the plain model, each off unless a parameter turns it on, so that
//! every figure of the plain model stays exact by default:
//!
//! - **circuit breaker** (asset `breaker`): an index print that moves more than `max_move` from
//!   any print of the last `window_us` marks the asset volatile until `confirm_us` after the last
//!   such move; liquidations of buckets exposed to it do not *start* meanwhile (bids, backstops
//!   and ends go on). When the asset calms down, they start at the next event.
//! - **spike guard** (market `spike_prints` N): a maintenance breach must be seen at N index prints
//!   in a row of the bucket's assets before its liquidation starts; a single-print spike never
//!   liquidates.
//! - **volatility-scaled margin** (market `vol`): an EWMA of squared index returns, kept in
//!   `fixed` (I64F64, every conversion and operation checked), gives sigma; the market's fractions are multiplied by
//!   `clamp(1 + mult * max(0, sigma / reference - 1), 1, cap)`, rounded up to 18 decimals, so the
//!   health function stays exact given the factor.
//! - **ramp** (market `ramp_us`): a change of that factor, and a `params` increase of `imf`,
//!   takes effect linearly over `ramp_us`, advanced at each index print of the base, so that a
//!   change cannot liquidate a crowd at once.
//!
//! Buckets held back by a guard are "deferred": visited on every event until they start or
//! recover, in both scan modes, so that outputs never depend on which buckets a tick happened
//! to visit.

use crate::account::{Bucket, Slot};
use crate::engine::Engine;
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::Ratio;
use crate::state::State;
use crate::venue::MarketConfig;
use fixed::types::I64F64;

/// Recent prints kept per asset for the circuit breaker.
const BREAKER_PRINTS_MAX: usize = 256;

impl State {
    /// Assets a bucket is exposed to: the bases of its positions and its non-quote balances.
    pub fn exposures<'a>(&'a self, bucket: &'a Bucket) -> impl Iterator<Item = AssetId> + 'a {
        let quote = self.quote();
        let bases = bucket
            .positions
            .iter()
            .map(|p| self.venue.market(p.market).base);
        let held = bucket.non_quote_assets(quote).map(|(a, _)| a);
        bases.chain(held)
    }

    /// True when a guard holds back the start of this bucket's liquidation now.
    pub fn liquidation_deferred(&self, bucket: &Bucket) -> bool {
        let volatile = self
            .exposures(bucket)
            .any(|a| self.clock_us < self.assets[a.index()].volatile_until_us);
        volatile || bucket.breach_prints < self.spike_prints(bucket)
    }

    /// Prints a breach must persist for (the largest `spike_prints` of the bucket's markets).
    fn spike_prints(&self, bucket: &Bucket) -> u32 {
        bucket
            .positions
            .iter()
            .map(|p| self.venue.market(p.market).spike_prints)
            .max()
            .unwrap_or(0)
    }
}

impl Engine {
    /// Called on every new index of an asset (after the oracle event computed it).
    pub(crate) fn on_index_print(
        &mut self,
        asset: AssetId,
        before: Option<i64>,
        index: i64,
    ) -> bool {
        let volatile = self.breaker_print(asset, before, index);
        for i in 0..self.state.venue.markets.len() {
            let m = MarketId(i as u16);
            if self.state.venue.market(m).base == asset {
                self.vol_print(m, before, index);
                self.ramp_step(m);
            }
        }
        volatile
    }

    /// Records a print for the breaker; true when it tripped (or the asset is still volatile).
    fn breaker_print(&mut self, asset: AssetId, before: Option<i64>, index: i64) -> bool {
        let Some(cfg) = self.state.venue.asset(asset).breaker.clone() else {
            return false;
        };
        let now = self.state.clock_us;
        let st = &mut self.state.assets[asset.index()];
        st.recent
            .retain(|&(t, _)| now.saturating_sub(t) <= cfg.window_us);
        if st.recent.is_empty() {
            // Nothing in the window yet (a breaker just configured, or a long gap): the move
            // is judged against the last index.
            if let Some(p) = before {
                st.recent.push((now, p));
            }
        }
        let moved = st.recent.iter().any(|&(_, p)| {
            // |index - p| > max_move * p, in integers (parts per 10^18).
            let diff = (i128::from(index) - i128::from(p)).unsigned_abs();
            diff.saturating_mul(Ratio::ONE.0 as u128)
                > (cfg.max_move.0 as u128).saturating_mul(p.unsigned_abs() as u128)
        });
        if st.recent.len() >= BREAKER_PRINTS_MAX {
            st.recent.remove(0);
        }
        st.recent.push((now, index));
        if moved {
            st.volatile_until_us = st.volatile_until_us.max(now.saturating_add(cfg.confirm_us));
        }
        now < st.volatile_until_us
    }

    /// Updates a market's volatility estimate and its target factor.
    fn vol_print(&mut self, market: MarketId, before: Option<i64>, index: i64) {
        let Some(v) = self.state.venue.market(market).vol.clone() else {
            return;
        };
        let ms = &mut self.state.markets[market.index()];
        let prev = before.filter(|p| *p > 0);
        let ewma = I64F64::from_bits(ms.vol_ewma_bits);
        let one_e18 = I64F64::from_num(Ratio::ONE.0 as i64);
        let ratio = |r: Ratio| {
            I64F64::checked_from_num(r.0)
                .and_then(|x| x.checked_div(one_e18))
                .unwrap_or(I64F64::MAX)
        };
        let lambda = ratio(v.lambda);
        let next = match prev {
            Some(p) => {
                let r = I64F64::checked_from_num(i128::from(index) - i128::from(p))
                    .and_then(|d| d.checked_div(I64F64::from_num(p)));
                let r2 = r.and_then(|r| r.checked_mul(r)).unwrap_or(I64F64::MAX);
                lambda
                    .checked_mul(ewma)
                    .and_then(|a| {
                        (I64F64::ONE - lambda)
                            .checked_mul(r2)
                            .and_then(|b| a.checked_add(b))
                    })
                    .unwrap_or(I64F64::MAX)
            }
            None => ewma,
        };
        ms.vol_ewma_bits = next.to_bits();
        ms.vol_last_index = index;
        let sigma = next.checked_sqrt().unwrap_or(I64F64::MAX);
        let excess = sigma
            .checked_div(ratio(v.reference))
            .map(|x| (x - I64F64::ONE).max(I64F64::ZERO))
            .unwrap_or(I64F64::MAX);
        let factor = excess
            .checked_mul(ratio(v.mult))
            .and_then(|x| x.checked_add(I64F64::ONE))
            .unwrap_or(I64F64::MAX)
            .min(ratio(v.cap));
        // Rounded up to 18 decimals: requirements never fall short by the rounding.
        let scaled = factor
            .checked_mul(one_e18)
            .and_then(|x| x.ceil().checked_to_num::<i128>());
        let target = scaled.unwrap_or(v.cap.0).clamp(Ratio::ONE.0, v.cap.0);
        self.retarget(market, target);
    }

    /// Heads a market's factor to `target`, ramping from where it is now.
    fn retarget(&mut self, market: MarketId, target: i128) {
        let now = self.state.clock_us;
        let ms = &mut self.state.markets[market.index()];
        if ms.fraction_target != target {
            ms.fraction_from = ms.fraction_scale;
            ms.fraction_target = target;
            ms.ramp_start_us = now;
        }
    }

    /// Advances a market's factor along its ramp; walks its holders when it changed.
    fn ramp_step(&mut self, market: MarketId) {
        let ramp_us = self.state.venue.market(market).ramp_us;
        let now = self.state.clock_us;
        let ms = &mut self.state.markets[market.index()];
        let elapsed = i128::from(now.saturating_sub(ms.ramp_start_us));
        let next = if ramp_us == 0 || elapsed >= i128::from(ramp_us) {
            ms.fraction_target
        } else {
            // from + (target - from) * elapsed / ramp, rounded toward the target's side of from.
            let span = ms.fraction_target - ms.fraction_from;
            ms.fraction_from
                + crate::num::mul_div(span, elapsed, i128::from(ramp_us), crate::num::Round::Trunc)
                    .unwrap_or(span)
        };
        if next != ms.fraction_scale {
            ms.fraction_scale = next;
            self.state.moved_prices();
            self.moved_markets.push(market);
            self.state.venue_epoch += 1;
        }
    }

    /// Replaces a market's configuration after a `params` event. With `ramp_us`, an increase of
    /// `imf` starts from the old level (the new fractions scaled by old/new) and ramps in.
    pub(crate) fn change_market_config(&mut self, id: MarketId, next: MarketConfig) {
        let old_imf = self.state.venue.market(id).imf;
        let ramp = next.ramp_us > 0 && next.imf > old_imf && old_imf.0 > 0;
        self.state.venue.markets[id.index()] = next.clone();
        // Valuations key on the epoch (the memo, band rates): move it with the change.
        self.state.venue_epoch += 1;
        if ramp {
            let ms = &mut self.state.markets[id.index()];
            let k = crate::num::mul_div(
                ms.fraction_scale,
                old_imf.0,
                next.imf.0,
                crate::num::Round::Floor,
            )
            .unwrap_or(ms.fraction_scale);
            ms.fraction_from = k;
            ms.fraction_scale = k;
            ms.ramp_start_us = self.state.clock_us;
            self.state.moved_prices();
        }
        if next.vol.is_none() {
            self.state.markets[id.index()].fraction_target = Ratio::ONE.0;
        }
        self.ramp_step(id);
    }

    /// Counts the index prints a breach persists for (once per event), before rule 1 is
    /// considered. A bucket that is not breached starts from zero again.
    pub(crate) fn count_breach(&mut self, account: AccountId, slot: Slot, breached: bool) {
        let input = self.state.input_seq;
        let printed = {
            let Some(bucket) = self.state.bucket(account, slot) else {
                return;
            };
            breached
                && self
                    .state
                    .exposures(bucket)
                    .any(|a| self.ticked_assets.contains(&a))
        };
        let Some(b) = self.state.bucket_mut(account, slot) else {
            return;
        };
        if !breached {
            b.breach_prints = 0;
        } else if printed && b.breach_input != input {
            b.breach_prints = b.breach_prints.saturating_add(1);
            b.breach_input = input;
        }
    }

    /// Whether rule 1 may start the liquidation of this bucket now; remembers it as deferred
    /// when a guard holds it back.
    pub(crate) fn may_start_liquidation(&mut self, account: AccountId, slot: Slot) -> bool {
        let deferred = self
            .state
            .bucket(account, slot)
            .is_some_and(|b| self.state.liquidation_deferred(b));
        if deferred {
            self.deferred.insert((account, slot));
        } else {
            self.deferred.remove(&(account, slot));
        }
        !deferred
    }

    /// Recomputes the deferred set from the state (a new engine over a loaded state).
    pub(crate) fn rebuild_deferred(&mut self) {
        let mut set = crate::ordered::OrderedSet::default();
        for acc in &self.state.accounts {
            for slot in acc.slots() {
                let Some(b) = acc.bucket(slot) else { continue };
                if b.has_positions() && !b.is_liquidating() {
                    let breached = self
                        .state
                        .bucket_health(b, &crate::health::Overlay::default())
                        .is_ok_and(|h| h.health_maint() < 0);
                    if breached {
                        set.insert((acc.id, slot));
                    }
                }
            }
        }
        self.deferred = set;
    }
}
