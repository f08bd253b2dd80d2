//! The price-tick index: per asset, ordered bands of prices within which a bucket's status
//! cannot change; per market, the same for the funding index. A tick visits only the buckets
//! whose band it leaves, so its cost is O(log n + k), k the buckets that really come near a
//! threshold.
//!
//! A bucket's status here is everything a pass or the margin-call check could change: it stays
//! while the buffer `equity_maint - r * mm` stays >= 0 (and, once under, while it stays < 0 and
//! `health_maint` stays >= 0). MaintHealth is linear in each price while the others hold, so a
//! conservative rate per unit of each driver bounds how fast the buffer can shrink; the buffer
//! (less a slop for per-term rounding) is shared equally among the drivers, and each driver's
//! band is its share over its rate. Moves inside all bands together cannot exhaust the buffer.
//!
//! The index only decides which buckets to look at; the look itself is the exact health
//! function. A band that is too narrow costs a visit, never a wrong answer; a band that is too
//! wide would miss one, which the equivalence tests against the naive scan guard.

use crate::account::{Bucket, Slot};
use crate::health::MaintHealth;
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::{Exact, Overflow, Ratio, Round, RATIO_DECIMALS};
use crate::ordered::OrderedSet;
use crate::state::State;
use ethnum::I256;
use rustc_hash::FxHashMap;

/// What moves a bucket's figures: an asset's index or a market's funding index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Driver {
    Price(AssetId),
    Funding(MarketId),
}

/// A stored band: the driver and its safe range [lo, hi] (index ticks or funding units).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Band {
    driver: Driver,
    lo: i128,
    hi: i128,
    /// The driver's value when the band was computed.
    centre: i128,
}

/// Bands of many buckets on one driver, ordered by each end.
#[derive(Clone, Debug, Default)]
struct BandSet {
    lower: OrderedSet<(i128, AccountId, Slot)>,
    upper: OrderedSet<(i128, AccountId, Slot)>,
}

impl BandSet {
    fn insert(&mut self, lo: i128, hi: i128, key: (AccountId, Slot)) {
        self.lower.insert((lo, key.0, key.1));
        self.upper.insert((hi, key.0, key.1));
    }

    fn remove(&mut self, lo: i128, hi: i128, key: (AccountId, Slot)) {
        self.lower.remove(&(lo, key.0, key.1));
        self.upper.remove(&(hi, key.0, key.1));
    }

    /// Buckets whose band does not contain `value`.
    fn crossed(&self, value: i128, out: &mut Vec<(AccountId, Slot)>) {
        let top = (
            value,
            AccountId(u64::MAX),
            Slot::Isolated(MarketId(u16::MAX)),
        );
        self.lower.for_each_greater(&top, |e| out.push((e.1, e.2)));
        let bottom = (value, AccountId(0), Slot::Cross);
        self.upper.for_each_less(&bottom, |e| out.push((e.1, e.2)));
    }

    fn len(&self) -> usize {
        self.lower.len()
    }
}

/// Rates, per unit of what drives them, in atto (10^-18) native quote units, rounded up.
#[derive(Clone, Copy, Debug, Default)]
struct MarketRates {
    /// Per lot per tick of the base's index: |s| moves u, and r * mmf_max moves the requirement.
    price_per_lot: i128,
    /// Per lot per unit of the funding index.
    funding_per_lot: i128,
    /// Per lot per tick in a portfolio bucket: |s| moves u, and max(r, le_factor) times the
    /// fastest the floor or a weighted scenario loss moves per unit of notional (max of
    /// pm_min_rate and weight x |move| of the base) moves the requirement.
    pm_price_per_lot: i128,
}

/// The index of every bucket's bands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bands {
    prices: Vec<BandSet>,
    funding: Vec<BandSet>,
    by_bucket: FxHashMap<(AccountId, Slot), Vec<Band>>,
    /// Per market and per asset (collateral) rates, valid for `rates_epoch` of the venue.
    market_rates: Vec<MarketRates>,
    asset_rates: Vec<i128>,
    /// Per native unit per tick of collateral in a portfolio bucket: its weight in equity plus
    /// max(r, le_factor) x weight x |move| for its scenario terms.
    pm_asset_rates: Vec<i128>,
    rates_epoch: Option<u64>,
    drivers: Vec<(Driver, i128)>,
    /// Buckets whose bands could not be computed, or whose auction may run out any moment:
    /// visited on every event instead (never dropped from view).
    pub(crate) unbanded: OrderedSet<(AccountId, Slot)>,
    /// Liquidating buckets by the earliest time their auction can run out.
    wake: OrderedSet<(u64, AccountId, Slot)>,
    wake_at: FxHashMap<(AccountId, Slot), u64>,
}

/// Share of a bucket's buffer given to a price driver relative to a funding driver: prices move
/// on every tick, funding once an hour.
const PRICE_WEIGHT: i128 = 4;
const ATTO: i128 = 1_000_000_000_000_000_000;

impl Bands {
    fn set(&mut self, d: Driver) -> &mut BandSet {
        let (v, i) = match d {
            Driver::Price(a) => (&mut self.prices, a.index()),
            Driver::Funding(m) => (&mut self.funding, m.index()),
        };
        if v.len() <= i {
            v.resize_with(i + 1, BandSet::default);
        }
        &mut v[i]
    }

    /// Buckets whose band on the asset's price no longer contains `ticks`.
    pub(crate) fn crossed_price(
        &self,
        asset: AssetId,
        ticks: i128,
        out: &mut Vec<(AccountId, Slot)>,
    ) {
        if let Some(s) = self.prices.get(asset.index()) {
            s.crossed(ticks, out);
        }
    }

    /// Buckets whose band on the market's funding index no longer contains `f`.
    pub(crate) fn crossed_funding(
        &self,
        market: MarketId,
        f: i128,
        out: &mut Vec<(AccountId, Slot)>,
    ) {
        if let Some(s) = self.funding.get(market.index()) {
            s.crossed(f, out);
        }
    }

    /// A bucket that cannot be banded: watched on every event.
    pub(crate) fn unbandable(&mut self, key: (AccountId, Slot)) {
        self.clear(key);
        self.unschedule(key);
        self.unbanded.insert(key);
    }

    /// Wakes a liquidating bucket at `at` (when its auction can first run out), or on every
    /// event once that time has come.
    pub(crate) fn schedule(&mut self, key: (AccountId, Slot), at: u64, clock: u64) {
        if at <= clock {
            self.unschedule(key);
            self.unbanded.insert(key);
            return;
        }
        if self.wake_at.get(&key) == Some(&at) {
            return;
        }
        self.unschedule(key);
        self.wake.insert((at, key.0, key.1));
        self.wake_at.insert(key, at);
    }

    pub(crate) fn unschedule(&mut self, key: (AccountId, Slot)) {
        if let Some(at) = self.wake_at.remove(&key) {
            self.wake.remove(&(at, key.0, key.1));
        }
    }

    /// Buckets whose wake-up time has come (they stay scheduled until their next visit).
    pub(crate) fn due(&self, clock: u64, out: &mut Vec<(AccountId, Slot)>) {
        let until = (
            clock,
            AccountId(u64::MAX),
            Slot::Isolated(MarketId(u16::MAX)),
        );
        self.wake.for_each_at_most(&until, |e| out.push((e.1, e.2)));
    }

    /// Removes every band of a bucket.
    pub(crate) fn clear(&mut self, key: (AccountId, Slot)) {
        // The bucket's (emptied) list stays in the map, so that banding it again reuses it.
        let Some(mut old) = self.by_bucket.remove(&key) else {
            return;
        };
        for b in old.drain(..) {
            self.set(b.driver).remove(b.lo, b.hi, key);
        }
        self.by_bucket.insert(key, old);
    }

    /// Stores new safe bands for a bucket, keeping each stored band that still lies inside its
    /// new safe band. New bands are stored at three quarters of their safe width, so that small
    /// changes of the bucket (a fill) usually leave the stored ones valid.
    pub(crate) fn update(&mut self, key: (AccountId, Slot), safe: &[Band]) {
        let mut stored = self.by_bucket.remove(&key).unwrap_or_default();
        // Drop stored bands of drivers the bucket no longer has.
        let mut i = 0;
        while i < stored.len() {
            if safe.iter().any(|s| s.driver == stored[i].driver) {
                i += 1;
            } else {
                let b = stored.swap_remove(i);
                self.set(b.driver).remove(b.lo, b.hi, key);
            }
        }
        for s in safe {
            let eighth = (s.hi - s.lo) / 8;
            let narrow = Band {
                driver: s.driver,
                lo: s.lo + eighth,
                hi: s.hi - eighth,
                centre: s.centre,
            };
            match stored.iter_mut().find(|o| o.driver == s.driver) {
                // Still safe, and the driver's value is still inside it.
                Some(o) if s.lo <= o.lo && o.hi <= s.hi && o.lo <= s.centre && s.centre <= o.hi => {
                }
                Some(o) => {
                    let old = *o;
                    *o = narrow;
                    let set = self.set(s.driver);
                    set.remove(old.lo, old.hi, key);
                    set.insert(narrow.lo, narrow.hi, key);
                }
                None => {
                    self.set(s.driver).insert(narrow.lo, narrow.hi, key);
                    stored.push(narrow);
                }
            }
        }
        self.by_bucket.insert(key, stored);
    }

    /// Entries in all price and funding sets (for tests and statistics).
    pub(crate) fn entries(&self) -> usize {
        self.prices
            .iter()
            .chain(&self.funding)
            .map(BandSet::len)
            .sum()
    }

    /// Recomputes the per-market and per-asset rates when the venue changed.
    fn refresh_rates(&mut self, state: &State, epoch: u64) -> Result<(), Overflow> {
        if self.rates_epoch == Some(epoch) {
            return Ok(());
        }
        let qd = state.quote_decimals();
        let r_max = state
            .venue
            .markets
            .iter()
            .map(|m| m.margin_call)
            .max()
            .unwrap_or(Ratio::ONE);
        let quote_atto = Exact::new(1, 0)
            .times(Exact::new(pow10_i128(qd), 0))?
            .times(Exact::new(ATTO, 0))?;
        // How much faster than the scenario losses the levels a band guards move: r x mm for
        // the margin call, le_factor x mm for the liquidation end (rounded up; 18 decimals).
        let pm_mult = state
            .venue
            .risk
            .as_ref()
            .map_or(Ratio::ONE, |s| r_max.max(s.le_factor));
        let pm_move = |asset: AssetId| -> Exact {
            let r = state.venue.risk.as_ref().map_or(0, |s| s.move_max(asset));
            Exact::new(r, crate::portfolio::set::MOVE_DECIMALS)
        };
        self.market_rates.clear();
        for (i, cfg) in state.venue.markets.iter().enumerate() {
            let m = MarketId(i as u16);
            let base = state.venue.asset(cfg.base);
            // The fastest a requirement can move per unit of notional: r * mmf_max for the
            // margin call, imf_max for the liquidation-end level; rounded up to 18 decimals (a
            // larger rate only narrows bands).
            let call = r_max
                .exact()
                .times(state.fraction_max(m, false))?
                .ceil(RATIO_DECIMALS)?;
            let init = state.fraction_max(m, true).ceil(RATIO_DECIMALS)?;
            let mm = Exact::new(call.max(init), RATIO_DECIMALS);
            let per_lot_tick = quote_atto
                .times(Exact::new(1, cfg.size_decimals))?
                .times(Exact::new(1, base.price_scale))?
                .times(Exact::int(1).plus(mm)?)?;
            let per_lot_unit = quote_atto
                .times(Exact::new(1, cfg.size_decimals))?
                .times(Exact::new(1, state.funding_scale(m)))?;
            let pm_fraction = Exact::new(cfg.pm_min_rate.0, RATIO_DECIMALS)
                .max(pm_move(cfg.base))?
                .times(pm_mult.exact())?;
            let pm_per_lot_tick = quote_atto
                .times(Exact::new(1, cfg.size_decimals))?
                .times(Exact::new(1, base.price_scale))?
                .times(Exact::int(1).plus(pm_fraction)?)?;
            self.market_rates.push(MarketRates {
                price_per_lot: per_lot_tick.ceil(0)?.max(1),
                funding_per_lot: per_lot_unit.ceil(0)?.max(1),
                pm_price_per_lot: pm_per_lot_tick.ceil(0)?.max(1),
            });
        }
        self.asset_rates.clear();
        self.pm_asset_rates.clear();
        for (i, a) in state.venue.assets.iter().enumerate() {
            let w = a.weight_maint.max(a.weight_init);
            let per_native = quote_atto
                .times(Exact::new(1, a.decimals))?
                .times(Exact::new(1, a.price_scale))?;
            self.asset_rates.push(per_native.times(w.exact())?.ceil(0)?);
            // A debt's scenario term counts in full (weight 1): bound every balance by it.
            let scenario = pm_move(AssetId(i as u16)).times(pm_mult.exact())?;
            let pm = per_native.times(w.exact().plus(scenario)?)?;
            self.pm_asset_rates.push(pm.ceil(0)?);
        }
        self.rates_epoch = Some(epoch);
        Ok(())
    }

    /// Tracks a visited bucket from its figures: its safe bands, and for a liquidating bucket
    /// the time its auction can first run out. `buf` is scratch for the bands.
    pub(crate) fn track(
        &mut self,
        state: &State,
        key: (AccountId, Slot),
        bucket: &Bucket,
        h: &MaintHealth,
        buf: &mut Vec<Band>,
    ) {
        self.unbanded.remove(&key);
        if let Err(()) = self.safe_bands(state, bucket, h, buf).map_err(|_| ()) {
            return self.unbandable(key);
        }
        self.update(key, buf);
        match bucket.liquidation {
            Some(liq) => {
                let shortest = bucket
                    .positions
                    .iter()
                    .map(|p| state.venue.market(p.market).liq_auction_us)
                    .min()
                    .unwrap_or(0);
                self.schedule(key, liq.started_us.saturating_add(shortest), state.clock_us);
            }
            None => self.unschedule(key),
        }
    }

    /// The safe bands of a bucket given its figures, centred on the current prices, into `out`.
    /// Empty when nothing a driver does can change its status (no exposure).
    pub(crate) fn safe_bands(
        &mut self,
        state: &State,
        bucket: &Bucket,
        h: &MaintHealth,
        out: &mut Vec<Band>,
    ) -> Result<(), Overflow> {
        out.clear();
        self.refresh_rates(state, state.venue_epoch())?;
        let buffer = state.band_buffer(bucket, h).max(0);
        self.collect_drivers(state, bucket);
        if self.drivers.is_empty() {
            return Ok(());
        }
        let weights: i128 = self
            .drivers
            .iter()
            .map(|(d, _)| {
                if matches!(d, Driver::Price(_)) {
                    PRICE_WEIGHT
                } else {
                    1
                }
            })
            .sum();
        for &(driver, rate) in &self.drivers {
            let w = if matches!(driver, Driver::Price(_)) {
                PRICE_WEIGHT
            } else {
                1
            };
            let share = buffer / weights * w;
            // half-width = floor(share / rate), rate in atto units.
            let half = crate::num::mul_div(share, ATTO, rate.max(1), Round::Floor)
                .unwrap_or(0)
                .min(i128::MAX / 4);
            let centre = match driver {
                Driver::Price(a) => i128::from(state.index(a).unwrap_or(0)),
                Driver::Funding(m) => state.markets[m.index()].funding_index,
            };
            out.push(Band {
                driver,
                lo: centre.saturating_sub(half),
                hi: centre.saturating_add(half),
                centre,
            });
        }
        Ok(())
    }

    /// Each driver of a bucket with its rate (atto native per tick or funding unit).
    fn collect_drivers(&mut self, state: &State, bucket: &Bucket) {
        self.drivers.clear();
        let add = |drivers: &mut Vec<(Driver, i128)>, d: Driver, rate: i128| {
            if rate <= 0 {
                return;
            }
            match drivers.iter_mut().find(|(x, _)| *x == d) {
                Some((_, r)) => *r = r.saturating_add(rate),
                None => drivers.push((d, rate)),
            }
        };
        let portfolio = state
            .portfolio_set(bucket, &crate::health::Overlay::default())
            .is_some();
        for p in &bucket.positions {
            let rates = self.market_rates[p.market.index()];
            let lots = i128::from(p.size.0.unsigned_abs());
            let base = state.venue.market(p.market).base;
            let per_lot = if portfolio {
                rates.pm_price_per_lot
            } else {
                rates.price_per_lot
            };
            add(
                &mut self.drivers,
                Driver::Price(base),
                lots.saturating_mul(per_lot),
            );
            add(
                &mut self.drivers,
                Driver::Funding(p.market),
                lots.saturating_mul(rates.funding_per_lot),
            );
        }
        let quote = state.quote();
        let asset_rates = if portfolio {
            &self.pm_asset_rates
        } else {
            &self.asset_rates
        };
        for (asset, balance) in bucket.non_quote_assets(quote) {
            let rate = balance.0.abs().saturating_mul(asset_rates[asset.index()]);
            add(&mut self.drivers, Driver::Price(asset), rate);
        }
    }
}

impl State {
    /// The buffer a band may use, in quote native units, after the rounding slop.
    fn band_buffer(&self, bucket: &Bucket, h: &MaintHealth) -> i128 {
        let ratio = self.margin_call_ratio(bucket).unwrap_or(Ratio::ONE);
        let r_ceil = (ratio.0 + Ratio::ONE.0 - 1) / Ratio::ONE.0;
        let one = Ratio::ONE.0;
        // equity_maint - r * mm, rounded down (conservative).
        let call_buffer = {
            let rm =
                (I256::from(ratio.0) * I256::from(h.mm) + I256::from(one - 1)) / I256::from(one);
            i128::try_from(I256::from(h.equity_maint) - rm).unwrap_or(i128::MIN)
        };
        let buffer = if !bucket.has_positions() {
            h.equity_maint
        } else if bucket.is_liquidating() {
            // In liquidation it ends at health_le >= 0 and is closed out at equity_maint <= 0;
            // its margin-call flag may flip too.
            let flag = if bucket.margin_called {
                -call_buffer - 1
            } else {
                call_buffer
            };
            (h.equity_maint - 1).min(-h.health_le() - 1).min(flag)
        } else if bucket.margin_called {
            // Under the call ratio: it may come back above it, or fall to a liquidation.
            let up = -call_buffer - 1;
            h.health_maint().min(up)
        } else {
            call_buffer
        };
        // Each rounded term can move one unit more than its exact value: one per balance, and
        // per position one for its PnL and r for its requirement.
        let balances = bucket.balances.iter().filter(|b| b.0 != 0).count() as i128;
        let positions = bucket.positions.len() as i128;
        let mut terms = balances + positions * (1 + r_ceil) + 2;
        if let Some(set) = self.portfolio_set(bucket, &crate::health::Overlay::default()) {
            // A scenario's P&L sums one rounded term per holding and its weighted loss rounds
            // once more; MM is read through r (the call) and le_factor (LE, rounded once more).
            let le_ceil = (set.le_factor.0 + Ratio::ONE.0 - 1) / Ratio::ONE.0;
            terms += (balances + positions + 2) * (1 + r_ceil.max(le_ceil)) + 1;
        }
        buffer.saturating_sub(terms)
    }

    /// The largest maintenance (or initial) fraction a market applies, its own or a tier's,
    /// scaled by its dynamic factor.
    fn fraction_max(&self, market: MarketId, initial: bool) -> Exact {
        let cfg = self.venue.market(market);
        let pick = |imf: Ratio, mmf: Ratio| if initial { imf } else { mmf };
        let own = pick(cfg.imf, cfg.mmf);
        let top = cfg
            .tiers
            .iter()
            .map(|t| pick(t.imf, t.mmf))
            .max()
            .unwrap_or(own)
            .max(own);
        let scale = self.markets[market.index()]
            .fraction_scale
            .max(Ratio::ONE.0);
        let v = Exact::new(top.0, RATIO_DECIMALS);
        match v
            .times(Exact::new(scale, RATIO_DECIMALS))
            .and_then(|x| x.ceil(RATIO_DECIMALS))
        {
            Ok(up) => Exact::new(up, RATIO_DECIMALS),
            Err(_) => Exact::int(1), // a fraction is at most 1 times a bounded scale
        }
    }

    /// A number that changes whenever anything the band rates depend on changes: listings,
    /// parameters, dynamic margin factors.
    pub(crate) fn venue_epoch(&self) -> u64 {
        self.venue_epoch
    }
}

fn pow10_i128(k: u8) -> i128 {
    10i128.pow(u32::from(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::Ticks;

    /// equity_maint - ceil(r × mm): what a band of a bucket that is neither margin-called nor
    /// in liquidation guards.
    fn call_buffer(state: &State, bucket: &Bucket) -> i128 {
        let h = state.bucket_maint_plain(bucket).expect("valuation");
        let r = state.margin_call_ratio(bucket).unwrap_or(Ratio::ONE).0;
        h.equity_maint - (r * h.mm + Ratio::ONE.0 - 1) / Ratio::ONE.0
    }

    /// Soundness of the portfolio bands: with every price driver of a portfolio bucket at any
    /// corner of its band at once, the status the band guards holds. This is what lets a tick
    /// skip the bucket; drawing the bands with the standard rates breaks it (the planted
    /// mutation below).
    fn unsound_corners(seed: u64, standard_rates: bool) -> (usize, usize) {
        // Scenario moves up to 40 %, far beyond any margin fraction: a band drawn with the
        // standard rates is then far too wide for a portfolio bucket.
        let e = crate::portfolio::tests::venue(seed, 400);
        let st = &e.state;
        let (mut checked, mut bad) = (0, 0);
        let mut bands = Bands::default();
        let mut buf = Vec::new();
        for acc in &st.accounts {
            let b = &acc.cross;
            if !b.portfolio || !b.has_positions() || b.is_liquidating() || b.margin_called {
                continue;
            }
            if call_buffer(st, b) < 0 {
                continue;
            }
            let mut probe = b.clone();
            probe.portfolio = !standard_rates;
            let h = st.bucket_maint_plain(b).unwrap();
            bands.safe_bands(st, &probe, &h, &mut buf).unwrap();
            let prices: Vec<&Band> = buf
                .iter()
                .filter(|x| matches!(x.driver, Driver::Price(_)))
                .collect();
            for corner in 0..(1u32 << prices.len()) {
                let mut moved = st.clone();
                for (i, band) in prices.iter().enumerate() {
                    let Driver::Price(a) = band.driver else {
                        continue;
                    };
                    let edge = if corner & (1 << i) != 0 {
                        band.hi
                    } else {
                        band.lo
                    };
                    moved.assets[a.index()].oracle.index = Some(Ticks(edge.max(1) as i64));
                }
                checked += 1;
                if call_buffer(&moved, moved.account(acc.id).map(|a| &a.cross).unwrap()) < 0 {
                    bad += 1;
                }
            }
        }
        (checked, bad)
    }

    #[test]
    fn portfolio_bands_hold_the_status_at_every_corner() {
        for seed in 1..=6 {
            let (checked, bad) = unsound_corners(seed, false);
            assert!(checked >= 40, "seed {seed}: {checked} corners checked");
            eprintln!("seed {seed}: {checked} corners");
            assert_eq!(
                bad, 0,
                "seed {seed}: {bad} of {checked} corners flip the status"
            );
        }
    }

    /// The planted mutation: bands of portfolio buckets drawn with the standard rates.
    #[test]
    fn portfolio_bands_drawn_with_standard_rates_are_caught() {
        let bad: usize = (1..=20).map(|seed| unsound_corners(seed, true).1).sum();
        eprintln!("standard-rate bands: {bad} unsound corners");
        assert!(bad > 0, "standard-rate bands went unnoticed");
    }
}
