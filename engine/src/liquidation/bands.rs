//! The price-tick index: per asset, ordered bands of prices within which a bucket's status
//! cannot change; per market, the same for the funding index. A tick visits only the buckets
//! whose band it leaves, so its cost is O(log n + k), k the buckets that really come near a
//! threshold.
//!
//! A bucket's status here is everything a pass or the margin-call check could change: it stays
//! while the buffer `equity_maint - r * mm` stays >= 0 (and, once under, while it stays < 0 and
//! `health_maint` stays >= 0). Health is linear in each price while the others hold, so a
//! conservative rate per unit of each driver bounds how fast the buffer can shrink; the buffer
//! (less a slop for per-term rounding) is shared equally among the drivers, and each driver's
//! band is its share over its rate. Moves inside all bands together cannot exhaust the buffer.
//!
//! The index only decides which buckets to look at; the look itself is the exact health
//! function. A band that is too narrow costs a visit, never a wrong answer; a band that is too
//! wide would miss one, which the equivalence tests against the naive scan guard.

use crate::account::{Bucket, Slot};
use crate::health::Health;
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::exact::{div_round, pow10};
use crate::num::{Exact, Overflow, Ratio, Round, RATIO_DECIMALS};
use crate::state::State;
use ethnum::I256;
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::ops::Bound;

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
}

/// Bands of many buckets on one driver, ordered by each end.
#[derive(Clone, Debug, Default)]
struct BandSet {
    lower: BTreeSet<(i128, AccountId, Slot)>,
    upper: BTreeSet<(i128, AccountId, Slot)>,
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
        let above = (
            Bound::Excluded((
                value,
                AccountId(u64::MAX),
                Slot::Isolated(MarketId(u16::MAX)),
            )),
            Bound::Unbounded,
        );
        out.extend(self.lower.range(above).map(|e| (e.1, e.2)));
        let below = (
            Bound::Unbounded,
            Bound::Excluded((value, AccountId(0), Slot::Cross)),
        );
        out.extend(self.upper.range(below).map(|e| (e.1, e.2)));
    }

    fn len(&self) -> usize {
        self.lower.len()
    }
}

/// The index of every bucket's bands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bands {
    prices: Vec<BandSet>,
    funding: Vec<BandSet>,
    by_bucket: FxHashMap<(AccountId, Slot), Vec<Band>>,
}

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

    /// Removes every band of a bucket.
    pub(crate) fn clear(&mut self, key: (AccountId, Slot)) {
        if let Some(old) = self.by_bucket.remove(&key) {
            for b in old {
                self.set(b.driver).remove(b.lo, b.hi, key);
            }
        }
    }

    /// Stores new safe bands for a bucket unless the stored ones still lie inside them. New
    /// bands are stored at half their safe width, so that small changes of the bucket (a fill)
    /// usually leave the stored ones valid.
    pub(crate) fn update(&mut self, key: (AccountId, Slot), safe: &[Band]) {
        if let Some(old) = self.by_bucket.get(&key) {
            let still_valid = old.len() == safe.len()
                && safe.iter().all(|s| {
                    old.iter()
                        .any(|o| o.driver == s.driver && s.lo <= o.lo && o.hi <= s.hi)
                });
            if still_valid {
                return;
            }
        }
        self.clear(key);
        if safe.is_empty() {
            return;
        }
        let mut stored = Vec::with_capacity(safe.len());
        for s in safe {
            let quarter = (s.hi - s.lo) / 4;
            let b = Band {
                driver: s.driver,
                lo: s.lo + quarter,
                hi: s.hi - quarter,
            };
            self.set(b.driver).insert(b.lo, b.hi, key);
            stored.push(b);
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
}

impl State {
    /// The safe bands of a bucket given its figures, centred on the current prices. Empty when
    /// nothing a driver does can change its status (no exposure) or when it is in liquidation
    /// (liquidating buckets are visited on every event anyway).
    pub(crate) fn safe_bands(&self, bucket: &Bucket, h: &Health) -> Result<Vec<Band>, Overflow> {
        if bucket.is_liquidating() {
            return Ok(Vec::new());
        }
        let buffer = self.band_buffer(bucket, h);
        let drivers = self.band_drivers(bucket)?;
        if drivers.is_empty() {
            return Ok(Vec::new());
        }
        let share = (buffer.max(0) / drivers.len() as i128).max(0);
        let mut out = Vec::with_capacity(drivers.len());
        for (driver, rate) in drivers {
            // half-width = floor(share / rate); rate = m / 10^k, so floor(share * 10^k / m).
            let half = div_round(
                I256::from(share)
                    .checked_mul(pow10(rate.scale())?)
                    .ok_or(Overflow)?,
                rate.mantissa(),
                Round::Floor,
            )?;
            let half = i128::try_from(half)
                .unwrap_or(i128::MAX / 4)
                .min(i128::MAX / 4);
            let centre = match driver {
                Driver::Price(a) => i128::from(self.index(a).unwrap_or(0)),
                Driver::Funding(m) => self.markets[m.index()].funding_index,
            };
            out.push(Band {
                driver,
                lo: centre.saturating_sub(half),
                hi: centre.saturating_add(half),
            });
        }
        Ok(out)
    }

    /// The buffer a band may use, in quote native units, after the rounding slop.
    fn band_buffer(&self, bucket: &Bucket, h: &Health) -> i128 {
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
        } else if bucket.margin_called {
            // Under the call ratio: it may come back above it, or fall to a liquidation.
            let up = -call_buffer - 1;
            h.health_maint().min(up)
        } else {
            call_buffer
        };
        // Each rounded term can move one unit more than its exact value: one per balance, and
        // per position one for its PnL and r for its requirement.
        let terms = bucket.balances.iter().filter(|b| b.0 != 0).count() as i128
            + bucket.positions.len() as i128 * (1 + r_ceil)
            + 2;
        buffer.saturating_sub(terms)
    }

    /// Each driver of a bucket with its rate: the most its buffer can shrink per tick of the
    /// asset's index (or per unit of a market's funding index), as an exact value in quote
    /// native units.
    fn band_drivers(&self, bucket: &Bucket) -> Result<Vec<(Driver, Exact)>, Overflow> {
        let qd = self.quote_decimals();
        let ratio = self.margin_call_ratio(bucket).unwrap_or(Ratio::ONE).exact();
        let mut out: Vec<(Driver, Exact)> = Vec::new();
        let mut add = |d: Driver, rate: Exact| -> Result<(), Overflow> {
            if !rate.is_positive() {
                return Ok(());
            }
            match out.iter_mut().find(|(x, _)| *x == d) {
                Some((_, r)) => *r = r.plus(rate)?,
                None => out.push((d, rate)),
            }
            Ok(())
        };
        for p in &bucket.positions {
            let cfg = self.venue.market(p.market);
            let base = self.venue.asset(cfg.base);
            let lots = p.size.abs().exact(cfg.size_decimals);
            // One tick of price moves u by |s| ticks and the requirement by at most
            // |s| * mmf_max per tick, weighted by r in the call buffer.
            let tick = Exact::new(1, base.price_scale);
            let mm_rate = ratio.times(self.mmf_max(p.market))?;
            let per_tick = lots.times(tick)?.times(Exact::int(1).plus(mm_rate)?)?;
            add(Driver::Price(cfg.base), per_tick.rescale_to(qd)?)?;
            // One unit of the funding index moves g by |s| units.
            let unit = Exact::new(1, self.funding_scale(p.market));
            add(Driver::Funding(p.market), lots.times(unit)?.rescale_to(qd)?)?;
        }
        let quote = self.quote();
        for (asset, balance) in bucket.non_quote_assets(quote) {
            let cfg = self.venue.asset(asset);
            let weight = cfg.weight_maint.max(cfg.weight_init);
            let tick = Exact::new(1, cfg.price_scale);
            let per_tick = balance
                .exact(cfg.decimals)
                .abs()?
                .times(tick)?
                .times(weight.exact())?;
            add(Driver::Price(asset), per_tick.rescale_to(qd)?)?;
        }
        Ok(out)
    }

    /// The largest maintenance fraction a market applies (its own or a tier's), scaled by its
    /// dynamic factor.
    fn mmf_max(&self, market: MarketId) -> Exact {
        let cfg = self.venue.market(market);
        let top = cfg
            .tiers
            .iter()
            .map(|t| t.mmf)
            .max()
            .unwrap_or(cfg.mmf)
            .max(cfg.mmf);
        let scale = self.markets[market.index()]
            .fraction_scale
            .max(Ratio::ONE.0);
        let v = Exact::new(top.0, RATIO_DECIMALS);
        v.times(Exact::new(scale, RATIO_DECIMALS)).unwrap_or(v)
    }
}

impl Exact {
    /// The value in native units of `decimals` as an exact value, without rounding (an exact
    /// value is already exact; this only states the unit for readers).
    fn rescale_to(self, decimals: u8) -> Result<Exact, Overflow> {
        // quote native = value * 10^decimals: multiply the mantissa, keep the scale.
        self.times(Exact::new(pow10_i128(decimals), 0))
    }
}

fn pow10_i128(k: u8) -> i128 {
    10i128.pow(u32::from(k))
}
