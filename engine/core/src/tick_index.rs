//! The price-tick index: per asset, ordered bands of prices within which a bucket's status
//! cannot change; per market, the same for the funding index. A tick visits only the buckets
//! whose band it leaves, so its cost is O(log n + k), k the buckets that really come near a
//! threshold.
//!
//! A bucket's status here is everything a pass or the margin-call check could change: it stays
//! while the buffer `equity_maint - r * mm` stays >= 0 (and, once under, while it stays < 0 and
//! `health_maint` stays >= 0). MaintHealth is linear in each price while the others hold, so a
//! conservative rate per unit of each driver bounds how fast the buffer can shrink; the buffer
//! (less a slop for per-term rounding) is shared among the drivers (the prices' part in
//! proportion to each price's exposure, so that all price bands are one fraction of their price
//! wide), and each driver's band is its share over its rate. Moves inside all bands together
//! cannot exhaust the buffer.
//! A bucket that only a fall of its buffer can change (standard, neither margin-called nor in
//! liquidation) has one-sided rates: a long's buffer shrinks as its price falls (at its PnL
//! rate) and as the price rises only by what its requirement outgrows its PnL (for
//! r x mmf_max < 1, never), so its upper price end and its lower funding end are free: never
//! crossed, never moved. Rates net across the positions and collateral on one driver. Other
//! buckets guard both ways and count a move either way at the faster rate.
//! A re-banded bucket keeps its stored bands whole while their reach from the current values,
//! at the current rates, still fits its new buffer (a fill or a deposit mostly moves nothing).
//!
//! The index only decides which buckets to look at; the look itself is the exact health
//! function. A band that is too narrow costs a visit, never a wrong answer; a band that is too
//! wide would miss one, which the equivalence tests against the naive scan guard.

use crate::account::{Bucket, Slot};
use crate::health::MaintHealth;
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::mul::{mul_i128, mul_sat_i128};
use crate::num::{Exact, Overflow, Ratio, Round, RATIO_DECIMALS};
use crate::ordered::OrderedSet;
use crate::ranged::RangedSet;
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

/// A band as stored for a bucket: the driver and the range its set entries name (48 bytes,
/// three cache lines fewer per bucket of 12 drivers than a `Band`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stored {
    driver: Driver,
    lo: i128,
    hi: i128,
}

const _: () = assert!(std::mem::size_of::<Stored>() == 48);

/// How fast a driver can shrink a bucket's buffer (atto native quote per tick or funding
/// unit), moving down and moving up; 0 where a move that way cannot shrink it, whose band end
/// is then [`END_FREE`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct DriverRate {
    driver: Driver,
    down: i128,
    up: i128,
}

impl DriverRate {
    /// The faster way: what the driver's share of the buffer is sized by.
    fn fastest(&self) -> i128 {
        self.down.max(self.up)
    }
}

/// A driver's signed rates while they are summed, per way (a gain is negative); None once a
/// sum left i128, which then counts as the fastest rate there is.
#[derive(Clone, Copy, Debug)]
struct Net {
    down: Option<i128>,
    up: Option<i128>,
}

impl Net {
    /// `lots` lots at per-lot rates `[down, up]`.
    fn of(lots: i128, per_lot: [i128; 2]) -> Net {
        Net {
            down: mul_i128(lots, per_lot[0]),
            up: mul_i128(lots, per_lot[1]),
        }
    }

    fn add(&mut self, o: Net) {
        self.down = self.down.zip(o.down).and_then(|(a, b)| a.checked_add(b));
        self.up = self.up.zip(o.up).and_then(|(a, b)| a.checked_add(b));
    }

    /// The rate each way, none below 0.
    fn rate(self, driver: Driver) -> DriverRate {
        DriverRate {
            driver,
            down: self.down.map_or(i128::MAX, |x| x.max(0)),
            up: self.up.map_or(i128::MAX, |x| x.max(0)),
        }
    }
}

/// The end of a band on a side the driver cannot hurt from: never reached.
const END_FREE: i128 = i128::MAX / 4;

/// A bucket as the band sets store it: its account's position in `State::accounts` (stable:
/// accounts are never removed) in the high half, its slot (0 cross, 1 + market isolated) in the
/// low half. One `u64` instead of an `(AccountId, Slot)` pair keeps a set entry at 16 bytes and
/// its comparison at two integer compares.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct BucketKey(u64);

// The account position must fit the high half.
const _: () = assert!(crate::limits::ACCOUNTS_MAX <= u32::MAX as usize);

impl BucketKey {
    fn new(account_pos: usize, slot: Slot) -> BucketKey {
        let code = match slot {
            Slot::Cross => 0,
            Slot::Isolated(m) => 1 + u64::from(m.0),
        };
        BucketKey(((account_pos as u64) << 32) | code)
    }

    fn of(state: &State, key: (AccountId, Slot)) -> Option<BucketKey> {
        state
            .account_pos(key.0)
            .map(|pos| BucketKey::new(pos, key.1))
    }

    /// The bucket back as the passes name it.
    fn decode(self, state: &State) -> Option<(AccountId, Slot)> {
        let acc = state.accounts.get((self.0 >> 32) as usize)?;
        let slot = match self.0 as u32 {
            0 => Slot::Cross,
            c => Slot::Isolated(MarketId(u16::try_from(c - 1).ok()?)),
        };
        Some((acc.id, slot))
    }
}

/// One end of a band with its bucket, as a band set orders them.
trait BandEnd: Ord + Copy {
    fn new(end: i128, bucket: BucketKey) -> Self;
    fn bucket(self) -> BucketKey;
    /// Whether a driver at `value` lies beyond every storable end, below or above.
    fn off_below(value: i128) -> bool;
    fn off_above(value: i128) -> bool;
}

/// A price end as one ordered integer: the end in ticks (clamped into i64, sign bit flipped so
/// that unsigned order is signed order) above the bucket key. Ticks are i64, so only the ends
/// of very wide bands are clamped.
impl BandEnd for u128 {
    fn new(end: i128, bucket: BucketKey) -> u128 {
        let end = end.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        (u128::from((end as u64) ^ (1 << 63)) << 64) | u128::from(bucket.0)
    }

    fn bucket(self) -> BucketKey {
        BucketKey(self as u64)
    }

    fn off_below(value: i128) -> bool {
        value < i128::from(i64::MIN)
    }

    fn off_above(value: i128) -> bool {
        value > i128::from(i64::MAX)
    }
}

/// A funding end: the funding index counts units of 10^-(18 + price scale), beyond i64.
impl BandEnd for (i128, BucketKey) {
    fn new(end: i128, bucket: BucketKey) -> Self {
        (end, bucket)
    }

    fn bucket(self) -> BucketKey {
        self.1
    }

    fn off_below(_: i128) -> bool {
        false
    }

    fn off_above(_: i128) -> bool {
        false
    }
}

/// Bands of many buckets on one driver, ordered by each end. Ends a `BandEnd` cannot hold are
/// stored clamped; a value beyond them is then reported as crossing every band on that side, a
/// superset of the truth (an extra visit, never a miss).
#[derive(Clone, Debug)]
struct BandSet<E> {
    lower: RangedSet<E>,
    upper: RangedSet<E>,
}

impl<E> Default for BandSet<E> {
    fn default() -> Self {
        BandSet {
            lower: RangedSet::default(),
            upper: RangedSet::default(),
        }
    }
}

/// A change to one end of a stored band.
#[derive(Clone, Copy)]
enum EndOp {
    InsertLower,
    InsertUpper,
    RemoveLower,
    RemoveUpper,
}

impl<E: BandEnd> BandSet<E> {
    /// Calls `f` on the buckets whose band does not contain `value`.
    fn crossed(&self, value: i128, mut f: impl FnMut(BucketKey)) {
        let mut push = |e: &E| f(e.bucket());
        if E::off_below(value) {
            self.lower.for_each(&mut push);
        } else {
            let above = E::new(value, BucketKey(u64::MAX));
            self.lower.for_each_greater(&above, &mut push);
        }
        if E::off_above(value) {
            self.upper.for_each(&mut push);
        } else {
            let below = E::new(value, BucketKey(0));
            self.upper.for_each_less(&below, &mut push);
        }
    }

    fn apply(&mut self, op: EndOp, end: i128, bucket: BucketKey) {
        let e = E::new(end, bucket);
        // One end per bucket, driver and side, stored once (`insert_new` checks in debug builds).
        match op {
            EndOp::InsertLower => self.lower.insert_new(e),
            EndOp::InsertUpper => self.upper.insert_new(e),
            EndOp::RemoveLower => {
                let done = self.lower.remove(&e);
                debug_assert!(done, "a removed lower end was stored");
            }
            EndOp::RemoveUpper => {
                let done = self.upper.remove(&e);
                debug_assert!(done, "a removed upper end was stored");
            }
        }
    }

    fn len(&self) -> usize {
        self.lower.len()
    }
}

/// Every driver's band set: prices by asset, funding by market.
#[derive(Clone, Debug, Default)]
struct Sets {
    prices: Vec<BandSet<u128>>,
    funding: Vec<BandSet<(i128, BucketKey)>>,
}

impl Sets {
    /// Applies `op` in the driver's set, grown on first use.
    fn apply(&mut self, d: Driver, op: EndOp, end: i128, bucket: BucketKey) {
        match d {
            Driver::Price(a) => grown(&mut self.prices, a.index()).apply(op, end, bucket),
            Driver::Funding(m) => grown(&mut self.funding, m.index()).apply(op, end, bucket),
        }
    }

    /// Removes both ends of a stored band.
    fn remove(&mut self, b: &Stored, bucket: BucketKey) {
        self.apply(b.driver, EndOp::RemoveLower, b.lo, bucket);
        self.apply(b.driver, EndOp::RemoveUpper, b.hi, bucket);
    }

    fn entries(&self) -> usize {
        let p: usize = self.prices.iter().map(BandSet::len).sum();
        p + self.funding.iter().map(BandSet::len).sum::<usize>()
    }
}

/// Whether a bucket's stored bands still hold as they are, for its fresh figures: it has the
/// same drivers (`rates`, atto native per tick or funding unit), each driver's value lies in
/// its band, and the moves the bands allow from there, at the current rates, add up to no
/// more than the buffer. Then moves inside all of them together still cannot change the
/// bucket's status, whatever the fresh even shares would be, and no end needs to move. That is
/// the common case after a fill or a deposit, where the shares' own test moved an end whenever
/// the buffer shrank by a quarter.
fn still_hold(
    stored: &[Stored],
    rates: &[DriverRate],
    value: impl Fn(Driver) -> i128,
    buffer: i128,
) -> bool {
    if stored.len() != rates.len() {
        return false;
    }
    let Some(budget) = buffer.checked_mul(ATTO) else {
        return false;
    };
    let mut used: i128 = 0;
    for (k, r) in rates.iter().enumerate() {
        // `update` leaves the bands in the order the drivers come in; the search is for a
        // bucket whose drivers came in another order since.
        let o = match stored.get(k) {
            Some(o) if o.driver == r.driver => Some(o),
            _ => stored.iter().find(|o| o.driver == r.driver),
        };
        let Some(o) = o else {
            return false;
        };
        let v = value(r.driver);
        let (Some(below), Some(above)) = (v.checked_sub(o.lo), o.hi.checked_sub(v)) else {
            return false;
        };
        if below < 0 || above < 0 {
            return false;
        }
        // The farther the driver can go the way that hurts, at that way's rate (a free end is
        // far, at rate 0).
        let reach_at = |rate: i128, by: i128| {
            if rate == 0 {
                Some(0)
            } else {
                mul_i128(rate, by)
            }
        };
        let reach = reach_at(r.down, below).zip(reach_at(r.up, above));
        match reach
            .map(|(d, u)| d.max(u))
            .and_then(|m| used.checked_add(m))
        {
            Some(u) if u <= budget => used = u,
            _ => return false,
        }
    }
    true
}

/// A driver's current value: the asset's index in ticks, or the market's funding index.
fn driver_value(state: &State, driver: Driver) -> i128 {
    match driver {
        Driver::Price(a) => i128::from(state.index(a).unwrap_or(0)),
        Driver::Funding(m) => state.markets[m.index()].funding_index,
    }
}

fn grown<E>(sets: &mut Vec<BandSet<E>>, i: usize) -> &mut BandSet<E> {
    if sets.len() <= i {
        sets.resize_with(i + 1, BandSet::default);
    }
    &mut sets[i]
}

/// Rates, per unit of what drives them, in atto (10^-18) native quote units, rounded up.
#[derive(Clone, Copy, Debug, Default)]
struct MarketRates {
    /// Per lot per tick of the base's index: |s| moves u, and r * mmf_max moves the requirement.
    price_per_lot: i128,
    /// Per lot per unit of the funding index.
    funding_per_lot: i128,
    /// One-sided rates per lot, signed (a gain negative), [down, up] for the price and then for
    /// the funding index: of a long, and of a short.
    long: [[i128; 2]; 2],
    short: [[i128; 2]; 2],
    /// Per lot per tick in a portfolio bucket: |s| moves u, and max(r, le_factor) times the
    /// fastest the floor or a weighted scenario loss moves per unit of notional (max of
    /// pm_min_rate and weight x |move| of the base) moves the requirement.
    pm_price_per_lot: i128,
}

/// The index of every bucket's bands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bands {
    sets: Sets,
    by_bucket: FxHashMap<BucketKey, Vec<Stored>>,
    /// Per market and per asset (collateral) rates, valid for `rates_epoch` of the venue.
    market_rates: Vec<MarketRates>,
    asset_rates: Vec<i128>,
    /// Per native unit per tick of collateral in a portfolio bucket: its weight in equity plus
    /// max(r, le_factor) x weight x |move| for its scenario terms.
    pm_asset_rates: Vec<i128>,
    rates_epoch: Option<u64>,
    drivers: Vec<DriverRate>,
    /// Scratch for `collect_drivers`: each driver's sides while they are summed.
    summing: Vec<(Driver, Net)>,
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
    /// Buckets whose band on the asset's price no longer contains `ticks`.
    pub(crate) fn crossed_price(
        &self,
        state: &State,
        asset: AssetId,
        ticks: i128,
        out: &mut Vec<(AccountId, Slot)>,
    ) {
        if let Some(s) = self.sets.prices.get(asset.index()) {
            s.crossed(ticks, |k| out.extend(k.decode(state)));
        }
    }

    /// Buckets whose band on the market's funding index no longer contains `f`.
    pub(crate) fn crossed_funding(
        &self,
        state: &State,
        market: MarketId,
        f: i128,
        out: &mut Vec<(AccountId, Slot)>,
    ) {
        if let Some(s) = self.sets.funding.get(market.index()) {
            s.crossed(f, |k| out.extend(k.decode(state)));
        }
    }

    /// A bucket that cannot be banded: watched on every event.
    pub(crate) fn unbandable(&mut self, state: &State, key: (AccountId, Slot)) {
        self.clear(state, key);
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
    pub(crate) fn clear(&mut self, state: &State, key: (AccountId, Slot)) {
        if let Some(bucket) = BucketKey::of(state, key) {
            self.clear_key(bucket);
        }
    }

    fn clear_key(&mut self, bucket: BucketKey) {
        // The bucket's (emptied) list stays in the map, so that banding it again reuses it.
        let Some(old) = self.by_bucket.get_mut(&bucket) else {
            return;
        };
        for b in old.drain(..) {
            self.sets.remove(&b, bucket);
        }
    }

    /// Stores new safe bands for a bucket (one whose stored bands do not `still_hold`),
    /// keeping each stored end that still lies inside its new safe band (on the same side of
    /// the driver's value). A new end is stored at three quarters of its safe half-width, so
    /// that small changes of the bucket usually leave the stored ones valid. Ends are kept or
    /// moved one by one: a price that left its band upwards moves the upper end only, one set
    /// operation pair instead of two.
    fn update(&mut self, bucket: BucketKey, safe: &[Band]) {
        let stored = self.by_bucket.entry(bucket).or_default();
        // Drop stored bands of drivers the bucket no longer has.
        let mut i = 0;
        while i < stored.len() {
            if safe.iter().any(|s| s.driver == stored[i].driver) {
                i += 1;
            } else {
                let b = stored.swap_remove(i);
                self.sets.remove(&b, bucket);
            }
        }
        for s in safe {
            // A quarter of the half-width in from each safe end (a free end stays free).
            let lo = if s.lo == -END_FREE {
                s.lo
            } else {
                s.lo + (s.centre - s.lo) / 4
            };
            let hi = if s.hi == END_FREE {
                s.hi
            } else {
                s.hi - (s.hi - s.centre) / 4
            };
            let sets = &mut self.sets;
            let Some(o) = stored.iter_mut().find(|o| o.driver == s.driver) else {
                sets.apply(s.driver, EndOp::InsertLower, lo, bucket);
                sets.apply(s.driver, EndOp::InsertUpper, hi, bucket);
                stored.push(Stored {
                    driver: s.driver,
                    lo,
                    hi,
                });
                continue;
            };
            let lo_safe = s.lo <= o.lo && o.lo <= s.centre;
            let hi_safe = s.centre <= o.hi && o.hi <= s.hi;
            if lo_safe && hi_safe {
                continue;
            }
            // One end left its safe range: it moves in. The other stays if it is still safe
            // and at least as wide as a fresh end would be.
            if !(lo_safe && o.lo <= lo) {
                sets.apply(s.driver, EndOp::RemoveLower, o.lo, bucket);
                sets.apply(s.driver, EndOp::InsertLower, lo, bucket);
                o.lo = lo;
            }
            if !(hi_safe && hi <= o.hi) {
                sets.apply(s.driver, EndOp::RemoveUpper, o.hi, bucket);
                sets.apply(s.driver, EndOp::InsertUpper, hi, bucket);
                o.hi = hi;
            }
        }
        // In the drivers' order, which the next `still_hold` walks.
        for (i, s) in safe.iter().enumerate() {
            if stored[i].driver != s.driver {
                if let Some(j) = stored[i..].iter().position(|o| o.driver == s.driver) {
                    stored.swap(i, i + j);
                }
            }
        }
        debug_assert!(
            stored.len() == safe.len()
                && stored.iter().zip(safe).all(|(o, s)| o.driver == s.driver),
            "a bucket's bands follow its drivers"
        );
    }

    /// Entries in all price and funding sets (for tests and statistics).
    pub(crate) fn entries(&self) -> usize {
        self.sets.entries()
    }

    /// Checks that the sets hold exactly the stored bands' ends, each once (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut lower = vec![Vec::new(); 2];
        let mut upper = vec![Vec::new(); 2];
        for (&bucket, bands) in &self.by_bucket {
            for b in bands {
                assert!(b.lo <= b.hi, "a stored band is not empty");
                let (kind, i) = match b.driver {
                    Driver::Price(a) => (0, a.index() as u128),
                    Driver::Funding(m) => (1, m.index() as u128),
                };
                lower[kind].push((i, b.lo, bucket));
                upper[kind].push((i, b.hi, bucket));
            }
        }
        let price = |e: u128| {
            (
                ((e >> 64) as u64 ^ (1 << 63)) as i64 as i128,
                BucketKey(e as u64),
            )
        };
        let mut held = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for (i, set) in self.sets.prices.iter().enumerate() {
            let i = i as u128;
            set.lower
                .for_each(|&e| held[0].push((i, price(e).0, price(e).1)));
            set.upper
                .for_each(|&e| held[1].push((i, price(e).0, price(e).1)));
        }
        for (i, set) in self.sets.funding.iter().enumerate() {
            let i = i as u128;
            set.lower.for_each(|&(end, b)| held[2].push((i, end, b)));
            set.upper.for_each(|&(end, b)| held[3].push((i, end, b)));
        }
        let clamp = |v: &mut Vec<(u128, i128, BucketKey)>, kind: usize| {
            if kind == 0 {
                for e in v.iter_mut() {
                    e.1 = e.1.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                }
            }
            v.sort_unstable();
        };
        for (kind, (lo, hi)) in lower.iter_mut().zip(upper.iter_mut()).enumerate() {
            clamp(lo, kind);
            clamp(hi, kind);
            for v in &mut held[2 * kind..2 * kind + 2] {
                v.sort_unstable();
            }
            assert!(held[2 * kind] == *lo, "lower ends match the stored bands");
            assert!(
                held[2 * kind + 1] == *hi,
                "upper ends match the stored bands"
            );
        }
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
            let pnl_per_lot_tick = quote_atto
                .times(Exact::new(1, cfg.size_decimals))?
                .times(Exact::new(1, base.price_scale))?;
            let price_per_lot = per_lot_tick.ceil(0)?.max(1);
            let funding_per_lot = per_lot_unit.ceil(0)?.max(1);
            // A long's PnL falls with its price (a loss, rounded up) and rises with it (a
            // gain, rounded down), while its requirement grows at most at r x mmf_max as the
            // price rises and never as it falls; it owes more as funding rises. A short the
            // other way round, its requirement growing as the price rises all the same.
            let (pnl_gain, pnl_loss) = (pnl_per_lot_tick.floor(0)?, pnl_per_lot_tick.ceil(0)?);
            let mm_per_lot = pnl_per_lot_tick.times(mm)?.ceil(0)?;
            let owed_gain = per_lot_unit.floor(0)?;
            let long = [
                [pnl_loss, mm_per_lot - pnl_gain],
                [-owed_gain, funding_per_lot],
            ];
            let short = [[-pnl_gain, price_per_lot], [funding_per_lot, -owed_gain]];
            self.market_rates.push(MarketRates {
                price_per_lot,
                funding_per_lot,
                long,
                short,
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
        let Some(packed) = BucketKey::of(state, key) else {
            debug_assert!(false, "a tracked bucket's account exists");
            return;
        };
        let Ok(buffer) = self.drivers_of(state, bucket, h) else {
            return self.unbandable(state, key);
        };
        let stored = self.by_bucket.get(&packed).map_or(&[][..], Vec::as_slice);
        if !still_hold(stored, &self.drivers, |d| driver_value(state, d), buffer) {
            self.bands_from_drivers(state, buffer, buf);
            self.update(packed, buf);
        }
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

    /// The safe bands of a bucket given its figures, centred on the current prices, into `out`;
    /// returns the buffer they share. Empty when nothing a driver does can change its status
    /// (no exposure). What `track` does in two steps (tests).
    #[cfg(test)]
    pub(crate) fn safe_bands(
        &mut self,
        state: &State,
        bucket: &Bucket,
        h: &MaintHealth,
        out: &mut Vec<Band>,
    ) -> Result<i128, Overflow> {
        let buffer = self.drivers_of(state, bucket, h)?;
        self.bands_from_drivers(state, buffer, out);
        Ok(buffer)
    }

    /// The bucket's drivers with their rates (into `self.drivers`) and the buffer its bands
    /// may use.
    fn drivers_of(
        &mut self,
        state: &State,
        bucket: &Bucket,
        h: &MaintHealth,
    ) -> Result<i128, Overflow> {
        self.refresh_rates(state, state.venue_epoch())?;
        let buffer = state.band_buffer(bucket, h).max(0);
        self.collect_drivers(state, bucket);
        Ok(buffer)
    }

    /// Fresh bands for `self.drivers`. Each funding driver gets an even share of the buffer
    /// (prices weigh `PRICE_WEIGHT` times as much); the prices' part is split in proportion to
    /// each price's exposure, rate x price, so that every price band is the same fraction of
    /// its price wide. An even split would make the band of the largest exposure the
    /// narrowest relative to its price, and that one would be crossed most. A share over the
    /// faster way's rate is the half-width that way; the other way, at a slower rate, reaches
    /// as far as the same share allows (free where it cannot hurt). So moves inside all bands
    /// together use at most the buffer.
    fn bands_from_drivers(&self, state: &State, buffer: i128, out: &mut Vec<Band>) {
        out.clear();
        if self.drivers.is_empty() {
            return;
        }
        let prices = self
            .drivers
            .iter()
            .filter(|r| matches!(r.driver, Driver::Price(_)))
            .count() as i128;
        let weights = PRICE_WEIGHT * prices + (self.drivers.len() as i128 - prices);
        let unit = buffer / weights;
        // Σ rate x price over the price drivers (None: too large to split by; split evenly).
        let exposure =
            self.drivers
                .iter()
                .try_fold(0i128, |sum, r| match r.driver {
                    Driver::Price(_) => sum
                        .checked_add(mul_i128(r.fastest(), driver_value(state, r.driver).max(1))?),
                    Driver::Funding(_) => Some(sum),
                });
        for r in &self.drivers {
            let (driver, rate) = (r.driver, r.fastest());
            let centre = driver_value(state, driver);
            let even = |w: i128| {
                crate::num::mul_div(unit * w, ATTO, rate.max(1), Round::Floor).unwrap_or(0)
            };
            // half-width = floor(share / rate), rate in atto units: for a price,
            // floor(price share x atto x price / exposure), the rate cancelling.
            let half = match (driver, exposure) {
                (Driver::Funding(_), _) => even(1),
                (Driver::Price(_), Some(e)) if e > 0 => ATTO
                    .checked_mul(centre.max(1))
                    .and_then(|k| {
                        crate::num::mul_div(unit * PRICE_WEIGHT * prices, k, e, Round::Floor).ok()
                    })
                    .unwrap_or(0),
                (Driver::Price(_), _) => even(PRICE_WEIGHT),
            }
            .min(END_FREE);
            // The same share at a slower rate reaches half x rate / slower.
            let reach = |slower: i128| -> Option<i128> {
                match slower {
                    0 => None,
                    s if s == rate => Some(half),
                    s => Some(
                        crate::num::mul_div(half, rate, s, Round::Floor)
                            .map_or(END_FREE, |x| x.min(END_FREE)),
                    ),
                }
            };
            out.push(Band {
                driver,
                lo: reach(r.down).map_or(-END_FREE, |h| centre.saturating_sub(h)),
                hi: reach(r.up).map_or(END_FREE, |h| centre.saturating_add(h)),
                centre,
            });
        }
    }

    /// Each driver of a bucket with its rates (atto native per tick or funding unit). A bucket
    /// that only a fall of its buffer can change (standard, neither margin-called nor in
    /// liquidation) counts each move the way it goes: a long loses as its price falls and as
    /// funding rises, and gains the other way (its requirement only grows with its notional).
    /// Every other bucket counts a move either way at the fastest rate of the two.
    fn collect_drivers(&mut self, state: &State, bucket: &Bucket) {
        self.drivers.clear();
        let mut sums = std::mem::take(&mut self.summing);
        sums.clear();
        let portfolio = state
            .portfolio_set(bucket, &crate::health::Overlay::default())
            .is_some();
        let one_sided = !portfolio && !bucket.margin_called && !bucket.is_liquidating();
        #[cfg(test)]
        let flip = tests::PLANT_FLIPPED_SIDES.with(|f| f.get());
        #[cfg(not(test))]
        let flip = false;
        let mut add = |d: Driver, n: Net| match sums.iter_mut().find(|(x, _)| *x == d) {
            Some((_, sum)) => sum.add(n),
            None => sums.push((d, n)),
        };
        for p in &bucket.positions {
            let rates = &self.market_rates[p.market.index()];
            let lots = i128::from(p.size.0.unsigned_abs());
            let base = state.venue.market(p.market).base;
            let [price, funding] = if one_sided {
                if (p.size.0 > 0) != flip {
                    rates.long
                } else {
                    rates.short
                }
            } else {
                let price = if portfolio {
                    rates.pm_price_per_lot
                } else {
                    rates.price_per_lot
                };
                [[price; 2], [rates.funding_per_lot; 2]]
            };
            add(Driver::Price(base), Net::of(lots, price));
            add(Driver::Funding(p.market), Net::of(lots, funding));
        }
        let quote = state.quote();
        let asset_rates = if portfolio {
            &self.pm_asset_rates
        } else {
            &self.asset_rates
        };
        for (asset, balance) in bucket.non_quote_assets(quote) {
            let rate = mul_sat_i128(balance.0.abs(), asset_rates[asset.index()]);
            add(Driver::Price(asset), Net::of(1, [rate; 2]));
        }
        for &(driver, n) in &sums {
            let rate = n.rate(driver);
            if rate.fastest() > 0 {
                self.drivers.push(rate);
            }
        }

        self.summing = sums;
    }
}

impl State {
    /// The buffer a band may use, in quote native units, after the rounding slop.
    fn band_buffer(&self, bucket: &Bucket, h: &MaintHealth) -> i128 {
        let ratio = self.margin_call_ratio(bucket).unwrap_or(Ratio::ONE);
        let r_ceil = (ratio.0 + Ratio::ONE.0 - 1) / Ratio::ONE.0;
        let call_buffer = buffer_above_call(h.equity_maint, h.mm, ratio.0);
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

/// equity_maint - r x mm (r in parts per 10^18), the product rounded up: the buffer above the
/// margin-call level, conservative; i128::MIN when it does not fit. In i128 while it fits.
fn buffer_above_call(equity_maint: i128, mm: i128, ratio: i128) -> i128 {
    mul_i128(ratio, mm)
        .filter(|&p| p >= 0)
        .and_then(|p| crate::num::pow10div::div_round_pow10(p, RATIO_DECIMALS, Round::Ceil))
        .and_then(|rm| equity_maint.checked_sub(rm))
        .unwrap_or_else(|| buffer_above_call_wide(equity_maint, mm, ratio))
}

/// [`buffer_above_call`] in 256 bits (and its test's oracle).
fn buffer_above_call_wide(equity_maint: i128, mm: i128, ratio: i128) -> i128 {
    let one = I256::from(Ratio::ONE.0);
    let rm = (I256::from(ratio) * I256::from(mm) + one - I256::ONE) / one;
    i128::try_from(I256::from(equity_maint) - rm).unwrap_or(i128::MIN)
}

fn pow10_i128(k: u8) -> i128 {
    10i128.pow(u32::from(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::Ticks;

    thread_local! {
        /// The planted mutation: one-sided rates with longs and shorts swapped, as a sign slip
        /// would give them.
        pub(super) static PLANT_FLIPPED_SIDES: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
    }

    /// Soundness of the one-sided bands: with every price and funding driver of a standard
    /// bucket (neither called nor liquidating) at a corner of its safe band at once, a free end
    /// taken as a move far past any band (a price of one tick or four times the index, a
    /// funding index 10^24 units away), the buffer the bands guard stays >= 0.
    fn unsound_one_sided_corners(seed: u64, flipped: bool) -> (usize, usize, usize) {
        PLANT_FLIPPED_SIDES.with(|f| f.set(flipped));
        let e = crate::portfolio::tests::venue(seed, 400);
        let st = &e.state;
        let (mut checked, mut bad, mut free) = (0, 0, 0);
        let mut bands = Bands::default();
        let mut buf = Vec::new();
        let mut rng = crate::rng::Rng::new(seed);
        for acc in &st.accounts {
            let mut b = acc.cross.clone();
            b.portfolio = false;
            if !b.has_positions() || b.is_liquidating() || b.margin_called {
                continue;
            }
            if call_buffer(st, &b) < 0 {
                continue;
            }
            let h = st.bucket_maint_plain(&b).unwrap();
            bands.safe_bands(st, &b, &h, &mut buf).unwrap();
            free += buf
                .iter()
                .filter(|x| x.lo == -END_FREE || x.hi == END_FREE)
                .count();
            let far = |band: &Band, high: bool| -> i128 {
                let end = if high { band.hi } else { band.lo };
                match (band.driver, end.abs() == END_FREE) {
                    (_, false) => end,
                    (Driver::Price(_), true) if high => band.centre * 4,
                    (Driver::Price(_), true) => 1,
                    (Driver::Funding(_), true) => band.centre + end.signum() * 10i128.pow(24),
                }
            };
            let n = buf.len().min(24);
            for _ in 0..48 {
                let corner = rng.range(0, (1i64 << n) - 1) as u64;
                let mut moved = st.clone();
                for (i, band) in buf.iter().take(n).enumerate() {
                    let v = far(band, corner & (1 << i) != 0);
                    match band.driver {
                        Driver::Price(a) => {
                            moved.assets[a.index()].oracle.index = Some(Ticks(v.max(1) as i64))
                        }
                        Driver::Funding(m) => moved.markets[m.index()].funding_index = v,
                    }
                }
                let mut probe = moved.account(acc.id).unwrap().cross.clone();
                probe.portfolio = false;
                checked += 1;
                if call_buffer(&moved, &probe) < 0 {
                    bad += 1;
                }
            }
        }
        PLANT_FLIPPED_SIDES.with(|f| f.set(false));
        (checked, bad, free)
    }

    #[test]
    fn one_sided_bands_hold_the_status_at_every_corner() {
        let mut free = 0;
        for seed in 1..=6 {
            let (checked, bad, f) = unsound_one_sided_corners(seed, false);
            assert!(checked >= 400, "seed {seed}: {checked} corners checked");
            assert_eq!(
                bad, 0,
                "seed {seed}: {bad} of {checked} corners flip the status"
            );
            eprintln!("seed {seed}: {checked} corners, {f} free ends");
            free += f;
        }
        // The check means little unless many bands have a free end.
        assert!(free >= 100, "{free} free ends");
    }

    /// The planted mutation: swapped sides leave the way that hurts free, and corners catch it.
    #[test]
    fn one_sided_bands_with_swapped_sides_are_caught() {
        let bad: usize = (1..=6)
            .map(|seed| unsound_one_sided_corners(seed, true).1)
            .sum();
        eprintln!("swapped sides: {bad} unsound corners");
        assert!(bad > 0, "swapped sides went unnoticed");
    }

    /// Stored bands are kept exactly while the moves they allow, at the fresh rates, fit the
    /// fresh buffer, and the value is inside each and the drivers are the same.
    #[test]
    fn stored_bands_hold_while_their_reach_fits_the_buffer() {
        let price = Driver::Price(AssetId(1));
        let funding = Driver::Funding(MarketId(0));
        let stored = [
            Stored {
                driver: price,
                lo: 90,
                hi: 104,
            },
            Stored {
                driver: funding,
                lo: -50,
                hi: 10,
            },
        ];
        let both = |driver: Driver, r: i128| DriverRate {
            driver,
            down: r,
            up: r,
        };
        let rates = |r: i128| [both(price, r), both(funding, ATTO)];
        let at = |tick: i128| move |d: Driver| if d == price { tick } else { 0 };
        // Reach 10 ticks at 2 native units a tick, plus 50 funding units at 1: 70 native units.
        assert!(still_hold(&stored, &rates(2 * ATTO), at(100), 70));
        assert!(!still_hold(&stored, &rates(2 * ATTO), at(100), 69));
        // The bands need not come in the drivers' order.
        let swapped = [stored[1], stored[0]];
        assert!(still_hold(&swapped, &rates(2 * ATTO), at(100), 70));
        assert!(!still_hold(&swapped, &rates(2 * ATTO), at(100), 69));
        // A faster rate, the value outside a band, a driver more or fewer: made afresh.
        assert!(!still_hold(&stored, &rates(3 * ATTO), at(100), 70));
        assert!(!still_hold(&stored, &rates(ATTO), at(105), 1_000));
        assert!(!still_hold(&stored[..1], &rates(ATTO), at(100), 1_000));
        assert!(!still_hold(&stored, &rates(ATTO)[..1], at(100), 1_000));
        // A buffer whose atto value leaves i128 is never taken as room.
        assert!(!still_hold(&stored, &rates(ATTO), at(100), i128::MAX / 2));
        // One-sided: only the way that hurts counts. At 100 the price can fall 10 ticks and
        // rise 4: falling at 2 a tick and rising free fits 20 + 50.
        let one_sided = |down: i128, up: i128| {
            [
                DriverRate {
                    driver: price,
                    down,
                    up,
                },
                both(funding, ATTO),
            ]
        };
        assert!(still_hold(&stored, &one_sided(2 * ATTO, 0), at(100), 70));
        assert!(!still_hold(&stored, &one_sided(2 * ATTO, 0), at(100), 69));
        assert!(still_hold(&stored, &one_sided(0, 5 * ATTO), at(100), 70));
        assert!(!still_hold(&stored, &one_sided(0, 6 * ATTO), at(100), 69));
        // A free end at a rate that is not 0 any more: made afresh.
        let free = [
            Stored {
                driver: price,
                lo: 90,
                hi: END_FREE,
            },
            stored[1],
        ];
        assert!(still_hold(&free, &one_sided(2 * ATTO, 0), at(100), 70));
        assert!(!still_hold(&free, &one_sided(2 * ATTO, 1), at(100), 1_000));
    }

    proptest::proptest! {
        /// The i128 call buffer is the 256-bit one wherever it answers, including near the
        /// edges where the product or the difference leaves i128.
        #[test]
        fn buffer_above_call_matches_the_wide_computation(
            e in proptest::num::i128::ANY, mm in 0..=i128::MAX, r in 0..=i128::MAX / 2,
            shift in 0u32..120,
        ) {
            let (mm, r) = (mm >> shift, r >> (shift / 2));
            proptest::prop_assert_eq!(buffer_above_call(e, mm, r), buffer_above_call_wide(e, mm, r));
        }

        /// The packed price entries order as (end clamped into i64, bucket) do.
        #[test]
        fn packed_price_entries_keep_the_order_of_their_parts(
            a in proptest::num::i128::ANY, b in proptest::num::i128::ANY,
            x in proptest::num::u64::ANY, y in proptest::num::u64::ANY,
            wide in proptest::bool::ANY,
        ) {
            let shrink = |v: i128| if wide { v } else { v >> 66 };
            let (a, b) = (shrink(a), shrink(b));
            let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
            let ea = <u128 as BandEnd>::new(a, BucketKey(x));
            let eb = <u128 as BandEnd>::new(b, BucketKey(y));
            proptest::prop_assert_eq!(ea.cmp(&eb), (clamp(a), x).cmp(&(clamp(b), y)));
            proptest::prop_assert_eq!(ea.bucket(), BucketKey(x));
        }
    }

    #[test]
    fn bucket_keys_decode_to_their_buckets() {
        let e = crate::engine::example_engine(usize::MAX);
        let st = &e.state;
        let mut seen = 0;
        for acc in &st.accounts {
            for slot in acc.slots() {
                let k = BucketKey::of(st, (acc.id, slot)).expect("an account's bucket");
                assert_eq!(k.decode(st), Some((acc.id, slot)));
                seen += 1;
            }
        }
        assert!(seen > 3, "{seen} buckets");
    }

    /// Over a crash stream, the band sets hold exactly the stored bands' ends after every
    /// few events (every move of one end removed the old entry and added the new one).
    #[test]
    fn band_sets_hold_exactly_the_stored_bands() {
        let mut engine =
            crate::engine::Engine::with_scan(State::default(), crate::engine::ScanMode::Indexed);
        let mut checks = 0;
        for (i, input) in
            crate::scenario::Scenario::new(crate::scenario::ScenarioConfig::small_crash(1))
                .enumerate()
        {
            engine.apply(&input);
            if i % 500 == 0 {
                engine.bands.check();
                checks += 1;
            }
        }
        engine.bands.check();
        assert!(
            checks > 10 && engine.bands.entries() > 100,
            "{checks} checks"
        );
    }

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

    /// Fresh bands spend at most the buffer (Σ rate x half-width), and the price bands of a
    /// bucket are one fraction of their prices wide (to within a tick of rounding).
    #[test]
    fn fresh_bands_split_the_buffer_by_exposure() {
        let (mut buckets, mut multi) = (0, 0);
        for seed in 1..=6 {
            let e = crate::portfolio::tests::venue(seed, 400);
            let st = &e.state;
            let mut bands = Bands::default();
            let mut buf = Vec::new();
            for acc in &st.accounts {
                let mut b = acc.cross.clone();
                b.portfolio = false;
                if !b.has_positions() || b.is_liquidating() || b.margin_called {
                    continue;
                }
                let h = st.bucket_maint_plain(&b).unwrap();
                let buffer = bands.safe_bands(st, &b, &h, &mut buf).unwrap();
                let rate = |d: Driver| *bands.drivers.iter().find(|x| x.driver == d).unwrap();
                let spent = buf.iter().try_fold(I256::ZERO, |sum, band| {
                    let r = rate(band.driver);
                    let down = I256::from(r.down) * I256::from(band.centre - band.lo);
                    let up = I256::from(r.up) * I256::from(band.hi - band.centre);
                    Some(sum + down.max(up))
                });
                let spent = spent.unwrap();
                assert!(
                    spent <= I256::from(buffer) * I256::from(ATTO),
                    "within the buffer"
                );
                let prices: Vec<&Band> = buf
                    .iter()
                    .filter(|x| matches!(x.driver, Driver::Price(_)) && x.centre > 0)
                    .collect();
                // The way that hurts fastest is the one the share sizes.
                let width = |band: &Band| {
                    let r = rate(band.driver);
                    if r.up >= r.down {
                        band.hi - band.centre
                    } else {
                        band.centre - band.lo
                    }
                };
                for pair in prices.windows(2) {
                    let (a, b) = (pair[0], pair[1]);
                    let cross = I256::from(width(a)) * I256::from(b.centre)
                        - I256::from(width(b)) * I256::from(a.centre);
                    let tick = I256::from(a.centre.max(b.centre));
                    assert!(
                        cross.abs() <= tick,
                        "price bands equally wide relative to price"
                    );
                }
                buckets += 1;
                multi += usize::from(prices.len() > 1);
            }
        }
        assert!(
            buckets >= 40 && multi >= 20,
            "{buckets} buckets, {multi} with several prices"
        );
    }

    /// The planted mutation: bands of portfolio buckets drawn with the standard rates.
    #[test]
    fn portfolio_bands_drawn_with_standard_rates_are_caught() {
        let bad: usize = (1..=20).map(|seed| unsound_corners(seed, true).1).sum();
        eprintln!("standard-rate bands: {bad} unsound corners");
        assert!(bad > 0, "standard-rate bands went unnoticed");
    }
}
