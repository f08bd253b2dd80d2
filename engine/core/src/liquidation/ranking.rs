//! ADL rankings kept across price and funding moves.
//!
//! The model ranks the opposite positions of a market by upnl / max(equity_maint, 1), and a
//! price or funding move changes every holder's figures. Valuing every holder after each move
//! (what the naive mode does) costs O(n) bucket valuations, each a walk over scattered memory.
//! Instead a ranking keeps, per holder, its exact figures as of the drivers (every asset's index
//! and every market's funding index) it was last valued at, a *snapshot*, and how fast those
//! figures can move per unit of each driver. At the next close the figures of a holder not
//! valued since are bounded from the driver moves alone, over a contiguous array; holders are
//! then valued exactly in order of their upper bound until the counterparties taken, exact and
//! in the model's order, rank above every bound still unvalued. The choice is exactly the
//! model's; only the holders that could be in it are valued.
//!
//! Why the bounds hold: between its snapshot and now a holder's balances and positions did not
//! change (every change moves its account's change count, and a changed holder is valued
//! afresh before the ranking is read) and no listing or parameter moved (those events drop the
//! rankings), so each term of its equity is the floor of a quantity linear in the drivers. The
//! exact terms moved by the sum of their coefficients times each driver's move, both known
//! (the coefficient to within one atto per unit, where a collateral weight was truncated), and
//! each floor adds less than one unit. So the bound is the exact figure give or take a few
//! native units: only holders whose ratio is that close to the choice are valued.

use crate::account::{Bucket, Slot};
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::mul::mul_i128;
use crate::num::pow10div::div_round_pow10;
use crate::num::Round;
use crate::scratch::{Counterparty, Ranked};
use crate::state::State;
use ethnum::I256;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Snapshots a ranking keeps before it is rebuilt from scratch (each close at new prices adds
/// one; the bounds of every holder read the one it was valued at).
pub(crate) const SNAPS_MAX: usize = 64;
/// A coefficient that could not be bounded (an odd scale, an overflow): the holder is valued
/// exactly whenever prices moved since its snapshot.
const UNBOUNDED: i128 = i128::MAX;
const ATTO: i128 = 1_000_000_000_000_000_000;
const ATTO_DECIMALS: u8 = 18;

/// How a bucket's equity moves per unit of one driver: the net signed coefficient of its
/// terms in atto native quote units (exact but for a truncated collateral weight: the exact
/// one lies in [atto, atto + 1)), and how many rounded terms move with it.
/// The coefficient is kept as two 64-bit halves: 24 bytes a rate instead of the 32 an `i128`'s
/// alignment pads it to, and a ranking's rates are read by the thousand from cold memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rate {
    /// An asset's index (its id), or a market's funding index (the number of assets plus the
    /// market's id).
    pub(crate) driver: u32,
    pub(crate) terms: u32,
    atto_halves: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<Rate>() == 24);

impl Rate {
    fn new(driver: u32) -> Rate {
        Rate {
            driver,
            terms: 0,
            atto_halves: [0; 2],
        }
    }

    pub(crate) fn atto(&self) -> i128 {
        ((u128::from(self.atto_halves[1]) << 64) | u128::from(self.atto_halves[0])) as i128
    }

    fn set_atto(&mut self, atto: i128) {
        self.atto_halves = [atto as u64, ((atto as u128) >> 64) as u64];
    }
}

/// One holder of the ranked side: its exact figures as of snapshot `snap`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holder {
    pub(crate) bucket: (AccountId, Slot),
    /// The account's position in the state, and the state's change count when the holder was
    /// valued: a later hand-out of the account for change means its figures must be redone.
    pub(crate) account_at: u32,
    pub(crate) change_seq: u64,
    /// The ranking figures (None: valuation overflowed; never chosen).
    pub(crate) cp: Option<Counterparty>,
    /// equity_maint itself (the ranking divides by max(equity_maint, 1)).
    pub(crate) equity: i128,
    pub(crate) snap: u32,
    /// The holder's equity rates: `rates[start..end]` of the ranking.
    pub(crate) rates: (u32, u32),
    /// The signed coefficients of the ranked position's upnl: atto per tick of the market's
    /// base and per unit of its funding driver (`UNBOUNDED`: not an integer).
    pub(crate) upnl_coefs: (i128, i128),
    /// Moves whenever the holder is replaced (valued again, or gone): heap entries naming an
    /// older version are stale and skipped.
    pub(crate) version: u32,
    /// Left the side (kept in place so that the indices heap entries name stay valid).
    pub(crate) gone: bool,
}

impl Holder {
    /// A place in a walk's new holders that a valuation fills in (left `gone`, and dropped,
    /// where the valuation finds no position).
    pub(crate) const PLACEHOLDER: Holder = Holder {
        bucket: (AccountId(0), Slot::Cross),
        account_at: 0,
        change_seq: 0,
        cp: None,
        equity: 0,
        snap: 0,
        rates: (0, 0),
        upnl_coefs: (0, 0),
        version: 0,
        gone: true,
    };
}

/// A ratio num / den, den >= 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frac {
    pub(crate) num: i128,
    pub(crate) den: i128,
}

/// a / b against c / d (b, d >= 1), exactly.
pub(crate) fn cmp_ratio(a: i128, b: i128, c: i128, d: i128) -> Ordering {
    match (mul_i128(a, d), mul_i128(c, b)) {
        (Some(l), Some(r)) => l.cmp(&r),
        _ => (I256::from(a) * I256::from(d)).cmp(&(I256::from(c) * I256::from(b))),
    }
}

/// An unvalued holder by the key of its upper bound, for a max-heap; among equal keys the
/// lower index pops first, so that the heap's order is a function of its contents. The last
/// field is the holder's version when the entry was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Bound(pub(crate) i128, pub(crate) Reverse<u32>, pub(crate) u32);

/// A holder valued at the current snapshot, by the model's rank order (for a min-heap: best
/// first), with its index and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pick(pub(crate) Ranked, pub(crate) u32, pub(crate) u32);

/// What a ranking's selection left for the next close at the same snapshot: the holders not
/// valued at it by upper bound, the valued ones not taken by rank, and the ones taken (the
/// closes change them; any that did not change goes back among the valued).
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection {
    pub(crate) snap: Option<u32>,
    pub(crate) unvalued: BinaryHeap<Bound>,
    pub(crate) valued: BinaryHeap<Reverse<Pick>>,
    pub(crate) taken: Vec<(u32, u32)>,
}

impl Selection {
    /// Forgets the heaps (the holders were renumbered or the drivers moved), keeping buffers.
    pub(crate) fn forget(&mut self) {
        self.snap = None;
        self.unvalued.clear();
        self.valued.clear();
        self.taken.clear();
    }
}

/// Per market and per asset the coefficients every bound multiplies, for one venue epoch.
#[derive(Clone, Debug, Default)]
pub(crate) struct RateTables {
    epoch: Option<u64>,
    /// Per market: its base, one lot per tick in atto quote (None: not an integer), one lot per
    /// unit of its funding driver, and how many funding-index units make one such unit.
    markets: Vec<MarketRate>,
    /// Per asset: one native unit per tick in atto quote, and its maintenance weight.
    assets: Vec<(Option<i128>, i128)>,
}

#[derive(Clone, Copy, Debug)]
struct MarketRate {
    base: AssetId,
    lot_tick: Option<i128>,
    lot_funding: i128,
    funding_div: Option<i128>,
}

impl RateTables {
    /// Recomputes the tables for the venue's current listings if they changed.
    pub(crate) fn refresh(&mut self, state: &State) {
        if self.epoch == Some(state.venue_epoch) {
            return;
        }
        let qd = i32::from(state.quote_decimals());
        let pow = |exp: i32| -> Option<i128> {
            u32::try_from(exp)
                .ok()
                .and_then(crate::num::decimal::pow10_i128)
        };
        self.markets.clear();
        for (i, m) in state.venue.markets.iter().enumerate() {
            let ps = i32::from(state.venue.asset(m.base).price_scale);
            let sd = i32::from(m.size_decimals);
            // Funding owed is s / 10^sd x delta / 10^fs quote: 10^(18 + qd - sd - fs) atto per
            // lot and funding unit, which is 10^k atto per 10^-k' units when negative.
            let fs = i32::from(state.funding_scale(MarketId(i as u16)));
            let exp = 18 + qd - sd - fs;
            let (lot_funding, funding_div) = if exp >= 0 {
                (pow(exp).unwrap_or(UNBOUNDED), Some(1))
            } else {
                (1, pow(-exp))
            };
            self.markets.push(MarketRate {
                base: m.base,
                lot_tick: pow(18 + qd - sd - ps),
                lot_funding,
                funding_div,
            });
        }
        self.assets.clear();
        for a in &state.venue.assets {
            let k = pow(18 + qd - i32::from(a.decimals) - i32::from(a.price_scale));
            self.assets.push((k, a.weight_maint.0));
        }
        self.epoch = Some(state.venue_epoch);
    }

    /// The drivers of a market's position: its base's index and its funding index.
    pub(crate) fn position_drivers(&self, market: MarketId) -> (u32, u32) {
        let base = self.markets[market.index()].base;
        (
            u32::from(base.0),
            (self.assets.len() + market.index()) as u32,
        )
    }

    /// (per tick of the base, per unit of the funding driver) of `lots` lots of `market`.
    fn position_rates(&self, market: MarketId, lots: i128) -> (Option<i128>, Option<i128>) {
        let m = &self.markets[market.index()];
        let funding = if m.lot_funding == UNBOUNDED {
            None
        } else {
            m.lot_funding.checked_mul(lots)
        };
        (m.lot_tick.and_then(|k| k.checked_mul(lots)), funding)
    }

    /// The signed coefficients of the upnl of a position of `size` lots of `market`:
    /// u = s M + q - s (F - f) moves by s per unit of M and by -s per unit of F.
    pub(crate) fn upnl_coefs(&self, market: MarketId, size: i128) -> (i128, i128) {
        let (p, f) = self.position_rates(market, size);
        let f = f.and_then(i128::checked_neg);
        (p.unwrap_or(UNBOUNDED), f.unwrap_or(UNBOUNDED))
    }

    /// Appends the bucket's equity rates to `out` (one per driver it is exposed to); the
    /// range. Quote balances never move; every other term does with one or two drivers.
    pub(crate) fn bucket_rates(
        &self,
        state: &State,
        bucket: &Bucket,
        out: &mut Vec<Rate>,
    ) -> (u32, u32) {
        let start = out.len();
        let add = |out: &mut Vec<Rate>, driver: u32, coef: Option<i128>| {
            let at = match out[start..].iter().position(|r| r.driver == driver) {
                Some(i) => start + i,
                None => {
                    out.push(Rate::new(driver));
                    out.len() - 1
                }
            };
            let r = &mut out[at];
            r.terms = r.terms.saturating_add(1);
            // Signed until the end; an unbounded term stays unbounded.
            let atto = r.atto();
            r.set_atto(match coef {
                Some(c) if atto != UNBOUNDED => atto.checked_add(c).unwrap_or(UNBOUNDED),
                _ => UNBOUNDED,
            });
        };
        for p in &bucket.positions {
            let (price, funding) = self.position_drivers(p.market);
            let (kp, kf) = self.position_rates(p.market, i128::from(p.size.0));
            add(out, price, kp);
            // Funding owed is subtracted.
            add(out, funding, kf.and_then(i128::checked_neg));
        }
        for (asset, balance) in bucket.non_quote_assets(state.quote()) {
            let (k, weight) = self.assets[asset.index()];
            let coef = k.and_then(|k| k.checked_mul(balance.0)).and_then(|c| {
                if balance.0 > 0 {
                    crate::num::mul_div(c, weight, ATTO, crate::num::Round::Trunc).ok()
                } else {
                    Some(c)
                }
            });
            add(out, u32::from(asset.0), coef);
        }
        // The net is exact but for the weighted collateral's truncation: the exact coefficient
        // lies in [net, net + 1) atto ([`moved`] widens by that).
        (start as u32, out.len() as u32)
    }

    /// Every driver's value now: the assets' indices (0 before the first, as valuations read
    /// it), then the markets' funding indices.
    fn drivers<'a>(&'a self, state: &'a State) -> impl Iterator<Item = i128> + 'a {
        let prices = state
            .assets
            .iter()
            .map(|a| i128::from(a.oracle.index.map_or(0, |x| x.0)));
        prices.chain(state.markets.iter().map(|m| m.funding_index))
    }

    /// The unit a driver's move is counted in: one tick, or for a funding driver
    /// `funding_div` units of the index (rounded up; None: too fine to bound).
    fn unit(&self, driver: usize) -> Option<i128> {
        match driver.checked_sub(self.assets.len()) {
            None => Some(1),
            Some(m) => self.markets.get(m).and_then(|m| m.funding_div),
        }
    }
}

/// One (market, side) ranking, kept until the venue changes.
#[derive(Clone, Debug)]
pub(crate) struct Ranking {
    /// (market, sign of the counterparties' positions).
    pub(crate) key: (MarketId, i64),
    /// The holders on the side: the first `sorted` by bucket (as the last walk left them),
    /// then those that joined since, in order of joining. Holders that left stay, `gone`.
    pub(crate) holders: Vec<Holder>,
    pub(crate) sorted: usize,
    /// The state's change count the holders are current with.
    pub(crate) synced_seq: u64,
    /// The live rates after the last walk (compaction is judged against it).
    pub(crate) rates_at_walk: usize,
    /// The selection heaps, kept across closes at one snapshot.
    pub(crate) selection: Selection,
    /// The buffer a refresh builds the next `holders` in.
    pub(crate) spare_holders: Vec<Holder>,
    /// Every holder's equity rates (a holder valued again appends new ones).
    pub(crate) rates: Vec<Rate>,
    /// The buffer `compact_rates` copies the live rates into.
    pub(crate) spare_rates: Vec<Rate>,
    /// Every driver's value, `stride` per snapshot, oldest first.
    pub(crate) snaps: Vec<i128>,
    pub(crate) stride: usize,
}

impl Default for Ranking {
    fn default() -> Ranking {
        Ranking {
            key: (MarketId(0), 0),
            holders: Vec::new(),
            sorted: 0,
            synced_seq: 0,
            rates_at_walk: 0,
            selection: Selection::default(),
            spare_holders: Vec::new(),
            rates: Vec::new(),
            spare_rates: Vec::new(),
            snaps: Vec::new(),
            stride: 0,
        }
    }
}

impl Ranking {
    /// Empties the ranking for `key`, keeping its buffers.
    pub(crate) fn reset(&mut self, key: (MarketId, i64)) {
        self.key = key;
        self.holders.clear();
        self.sorted = 0;
        self.selection.forget();
        self.rates.clear();
        self.snaps.clear();
        self.stride = 0;
    }

    /// The number of the current snapshot, after taking the drivers now if they differ from
    /// the last one's.
    pub(crate) fn snapshot(&mut self, tables: &RateTables, state: &State) -> u32 {
        let stride = state.assets.len() + state.markets.len();
        let same = stride == self.stride
            && self.snaps.len() >= stride
            && self.snaps[self.snaps.len() - stride..]
                .iter()
                .zip(tables.drivers(state))
                .all(|(&t, now)| t == now);
        if !same {
            // A ranking read with another stride was `worn` and built afresh.
            debug_assert!(self.snaps.is_empty() || stride == self.stride);
            if stride != self.stride {
                self.snaps.clear();
            }
            self.stride = stride;
            self.snaps.extend(tables.drivers(state));
        }
        (self.snaps.len() / stride.max(1)).saturating_sub(1) as u32
    }

    /// Room for every snapshot the ranking may take before it is built afresh.
    pub(crate) fn reserve_snapshots(&mut self, state: &State) {
        let stride = state.assets.len() + state.markets.len();
        self.snaps.reserve(SNAPS_MAX * stride);
    }

    /// True when the ranking should be built afresh rather than read: it has taken so many
    /// snapshots that its holders' bounds read stale drivers, or the venue lists a different
    /// number of drivers than its snapshots hold (events that list drop the rankings; this
    /// keeps a missed drop from reading past a snapshot).
    pub(crate) fn worn(&self, state: &State) -> bool {
        let stride = state.assets.len() + state.markets.len();
        stride != self.stride || self.snaps.len() / stride.max(1) >= SNAPS_MAX
    }

    /// Drops the rates that holders valued again left behind, once they are most of them
    /// (judged against the live rates after the last walk, so that the test costs O(1)).
    pub(crate) fn compact_rates(&mut self) {
        if self.rates.len() <= 2 * self.rates_at_walk + 4096 {
            return;
        }
        let mut kept = std::mem::take(&mut self.spare_rates);
        kept.clear();
        for h in &mut self.holders {
            let start = kept.len() as u32;
            if h.gone {
                h.rates = (start, start);
                continue;
            }
            kept.extend_from_slice(&self.rates[h.rates.0 as usize..h.rates.1 as usize]);
            h.rates = (start, kept.len() as u32);
        }
        self.spare_rates = std::mem::replace(&mut self.rates, kept);
        self.rates_at_walk = self.rates.len();
    }

    /// Puts `fresh` (a holder valued now) in place of holder `found`, or appends it as a
    /// joiner; a `fresh` of None marks `found` gone. Either moves the version, so that heap
    /// entries for the old figures are skipped; a holder valued at the selection's snapshot
    /// goes among its valued.
    pub(crate) fn replace(&mut self, found: Option<usize>, fresh: Option<Holder>) {
        let at = match (found, fresh) {
            (Some(i), Some(mut f)) => {
                f.version = self.holders[i].version.wrapping_add(1);
                self.holders[i] = f;
                i
            }
            (Some(i), None) => {
                let h = &mut self.holders[i];
                h.gone = true;
                h.version = h.version.wrapping_add(1);
                return;
            }
            (None, Some(f)) => {
                self.holders.push(f);
                self.holders.len() - 1
            }
            (None, None) => return,
        };
        let h = &self.holders[at];
        if let (Some(cp), true) = (h.cp, self.selection.snap == Some(h.snap)) {
            let pick = Pick(Ranked(cp), at as u32, h.version);
            self.selection.valued.push(Reverse(pick));
        }
    }

    /// Puts the holders the last close took back among the valued, those that did not change
    /// since (the others were offered again when their change was taken in).
    pub(crate) fn restore_taken(&mut self) {
        let mut taken = std::mem::take(&mut self.selection.taken);
        for (i, version) in taken.drain(..) {
            if !self.current(i, version) {
                continue;
            }
            if let Some(cp) = self.holders[i as usize].cp {
                let pick = Pick(Ranked(cp), i, version);
                self.selection.valued.push(Reverse(pick));
            }
        }
        self.selection.taken = taken;
    }

    /// Whether a heap entry still names the holder's current figures.
    fn current(&self, i: u32, version: u32) -> bool {
        let h = &self.holders[i as usize];
        h.version == version && !h.gone
    }

    /// The largest bound still unvalued (stale entries dropped on the way).
    pub(crate) fn bar(&mut self) -> Option<i128> {
        while let Some(&Bound(key, Reverse(i), version)) = self.selection.unvalued.peek() {
            if self.current(i, version) {
                return Some(key);
            }
            self.selection.unvalued.pop();
        }
        None
    }

    /// The best valued holder not taken (stale entries dropped on the way).
    pub(crate) fn best_valued(&mut self) -> Option<Reverse<Pick>> {
        while let Some(&Reverse(p)) = self.selection.valued.peek() {
            if self.current(p.1, p.2) {
                return Some(Reverse(p));
            }
            self.selection.valued.pop();
        }
        None
    }

    /// The index of the live holder of `bucket`, if it has one: a binary search over the
    /// walked part, then the joiners.
    pub(crate) fn find(&self, bucket: (AccountId, Slot)) -> Option<usize> {
        let walked = &self.holders[..self.sorted];
        if let Ok(i) = walked.binary_search_by(|h| h.bucket.cmp(&bucket)) {
            if !walked[i].gone {
                return Some(i);
            }
        }
        let joined = &self.holders[self.sorted..];
        let j = joined.iter().rposition(|h| h.bucket == bucket && !h.gone)?;
        Some(self.sorted + j)
    }

    /// How far every driver moved since each snapshot, signed, into `out`.
    pub(crate) fn deltas(&self, tables: &RateTables, state: &State, out: &mut Vec<Move>) {
        out.clear();
        #[cfg(test)]
        let still = tests::CHECK.with(|c| c.get().plant_still_drivers);
        for snap in self.snaps.chunks(self.stride.max(1)) {
            for (d, (&then, now)) in snap.iter().zip(tables.drivers(state)).enumerate() {
                let mv = match (now.checked_sub(then), tables.unit(d)) {
                    (Some(0), _) => Move::STILL,
                    (Some(by), Some(per)) => Move { by, per },
                    _ => Move { by: 1, per: 0 },
                };
                #[cfg(test)]
                let mv = if still { Move::STILL } else { mv };
                out.push(mv);
            }
        }
    }

    /// A key at least 2^32 times the largest ratio holder `h` can have now, given the driver
    /// moves since its snapshot (`deltas` as from [`Ranking::deltas`]), with `drivers` the
    /// ranked market's; `snap` is the current snapshot. None for a holder that cannot be
    /// chosen (its valuation overflowed at these very drivers).
    pub(crate) fn upper_key(
        &self,
        h: &Holder,
        drivers: (u32, u32),
        snap: u32,
        deltas: &[Move],
    ) -> Option<i128> {
        let Some(cp) = h.cp else {
            // Valued again at other prices, it may not overflow.
            return (h.snap != snap).then_some(i128::MAX);
        };
        let hi = if h.snap == snap {
            Some(ratio(&cp))
        } else {
            self.upper(h, &cp, drivers, deltas)
        };
        Some(hi.map_or(i128::MAX, key_above))
    }

    /// The largest ratio `h` (figures `cp`) can have now (None: unbounded). Each figure is
    /// a sum of floored terms linear in the drivers, so it moved by its coefficients times the
    /// driver moves (signed, known exactly), give or take one unit per term that moved.
    fn upper(
        &self,
        h: &Holder,
        cp: &Counterparty,
        drivers: (u32, u32),
        deltas: &[Move],
    ) -> Option<Frac> {
        let d = &deltas[h.snap as usize * self.stride..][..self.stride];
        let (mp, mf) = (d[drivers.0 as usize], d[drivers.1 as usize]);
        let (_, up) = moved(h.upnl_coefs.0, mp)?;
        let (_, uf) = moved(h.upnl_coefs.1, mf)?;
        // One floored term moving with two drivers: one unit of rounding for both.
        let rounding = i128::from(mp.by != 0 || mf.by != 0);
        let u_hi = cp
            .upnl
            .checked_add(units_ceil(up.checked_add(uf)?)?)?
            .checked_add(rounding)?;
        let (mut lo, mut hi, mut terms) = (0i128, 0i128, 0i128);
        for r in &self.rates[h.rates.0 as usize..h.rates.1 as usize] {
            let mv = d[r.driver as usize];
            if mv.by != 0 {
                let (a, b) = moved(r.atto(), mv)?;
                lo = lo.checked_add(a)?;
                hi = hi.checked_add(b)?;
                terms += i128::from(r.terms);
            }
        }
        // A gain is largest over the smallest equity, a loss smallest over the largest.
        let den = if u_hi >= 0 {
            h.equity.checked_add(units_floor(lo))?.checked_sub(terms)?
        } else {
            h.equity.checked_add(units_ceil(hi)?)?.checked_add(terms)?
        };
        Some(Frac {
            num: u_hi,
            den: den.max(1),
        })
    }
}

/// A driver's move since a snapshot: its raw change `by`, and the raw units a coefficient
/// counts per (`per`: 1 for an index; a funding index's `funding_div`; 0: cannot be bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Move {
    pub(crate) by: i128,
    pub(crate) per: i128,
}

impl Move {
    const STILL: Move = Move { by: 0, per: 1 };
}

/// The atto a coefficient `c` (atto per `per` raw units, exact within [c, c + 1)) moves by
/// over `mv`, as (lowest, highest); None when unbounded.
fn moved(c: i128, mv: Move) -> Option<(i128, i128)> {
    if mv.by == 0 {
        return Some((0, 0));
    }
    if c == UNBOUNDED || mv.per <= 0 {
        return None;
    }
    let x = mul_i128(c, mv.by)?;
    // Prices move in whole ticks (`per` 1): no 128-bit division for those.
    let (lo, hi, slack) = if mv.per == 1 {
        (x, x, mv.by.checked_abs()?.checked_add(1)?)
    } else {
        let lo = x.div_euclid(mv.per);
        let hi = lo + i128::from(x.rem_euclid(mv.per) != 0);
        (lo, hi, mv.by.checked_abs()? / mv.per + 1)
    };
    // A truncated coefficient is short by less than one atto per unit moved (the slack).
    Some((lo.checked_sub(slack)?, hi.checked_add(slack)?))
}

/// Native units of an atto amount, rounded down and up.
fn units_floor(atto: i128) -> i128 {
    // Never None: 10^18 is in the table.
    div_round_pow10(atto, ATTO_DECIMALS, Round::Floor).unwrap_or(i128::MIN)
}

fn units_ceil(atto: i128) -> Option<i128> {
    div_round_pow10(atto, ATTO_DECIMALS, Round::Ceil)
}

/// The scale of heap keys: a ratio times 2^32, rounded up.
pub(crate) const KEY_ONE: i128 = 1 << 32;

/// ceil(f x 2^32), or a larger key when that does not fit (every key bounds a ratio from
/// above; comparing with one stays exact, see [`ranks_above`]).
fn key_above(f: Frac) -> i128 {
    match f.num.checked_mul(KEY_ONE) {
        Some(x) => x / f.den + i128::from(x % f.den > 0),
        None if f.num > 0 => i128::MAX,
        None => 0,
    }
}

/// True when the valued `cp` ranks above every ratio a key `key` bounds: ratio > key / 2^32.
pub(crate) fn ranks_above(cp: &Counterparty, key: i128) -> bool {
    cmp_ratio(cp.upnl, cp.equity, key, KEY_ONE) == Ordering::Greater
}

/// The exact ratio of a valued counterparty.
pub(crate) fn ratio(cp: &Counterparty) -> Frac {
    Frac {
        num: cp.upnl,
        den: cp.equity,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::engine::{Engine, ScanMode};
    use crate::scenario::{Scenario, ScenarioConfig};
    use crate::state::State;
    use std::cell::Cell;

    /// What the check counted, and the planted mutation.
    #[derive(Clone, Copy, Default)]
    pub(crate) struct Check {
        pub(crate) on: bool,
        /// The planted mutation: the bounds take the drivers as unmoved since each snapshot,
        /// as a ranking that forgot price moves would.
        pub(crate) plant_still_drivers: bool,
        /// The other planted mutation: catching up from the change log takes in nothing, as
        /// a ranking that missed the log's changes would.
        pub(crate) plant_deaf_log: bool,
        pub(crate) closes: u64,
        pub(crate) at_moved_prices: u64,
        pub(crate) wrong: u64,
        /// Rankings brought up to date from the change log, by a walk, and closes that went
        /// on with the heaps the last close left.
        pub(crate) caught_up: u64,
        pub(crate) walked: u64,
        pub(crate) heaps_kept: u64,
    }

    /// Updates the counts (when the check is on).
    pub(crate) fn count(f: impl FnOnce(&mut Check)) {
        CHECK.with(|c| {
            let mut k = c.get();
            if k.on {
                f(&mut k);
                c.set(k);
            }
        });
    }

    thread_local! {
        pub(crate) static CHECK: Cell<Check> = Cell::new(Check::default());
    }

    /// Crash streams through an indexed engine, every ADL choice checked against the
    /// reference's (every holder valued afresh, sorted); what the check counted.
    fn checked_crashes(plant: Check) -> Check {
        CHECK.with(|c| c.set(Check { on: true, ..plant }));
        for seed in 1..=3 {
            let mut engine = Engine::with_scan(State::default(), ScanMode::Indexed);
            for input in Scenario::new(ScenarioConfig::small_crash(seed)) {
                engine.apply(&input);
            }
        }
        let k = CHECK.with(|c| c.get());
        CHECK.with(|c| c.set(Check::default()));
        eprintln!(
            "plant (drivers {}, log {}): {} closes, {} at moved prices, {} wrong; {} caught up from the log, \
             {} walked, {} with the heaps kept",
            plant.plant_still_drivers,
            plant.plant_deaf_log,
            k.closes,
            k.at_moved_prices,
            k.wrong,
            k.caught_up,
            k.walked,
            k.heaps_kept
        );
        k
    }

    /// Every holder of every side, valued at one snapshot, then the indices and funding
    /// indices moved at random (up to 30 % and far past an hour's funding): (holders checked,
    /// their ratio moved, their exact ratio at the moved drivers outside the bound).
    fn containment(plant: bool) -> (u64, u64, u64) {
        use super::{ranks_above, Ranking};
        use crate::ids::MarketId;
        use crate::state::side_index;
        let mut engine = Engine::with_scan(State::default(), ScanMode::Indexed);
        for input in Scenario::new(ScenarioConfig::small_crash(2)).take(7_000) {
            engine.apply(&input);
        }
        let mut rng = crate::rng::Rng::new(11);
        CHECK.with(|c| {
            c.set(Check {
                plant_still_drivers: plant,
                ..Check::default()
            })
        });
        let (mut checked, mut moved_ratio, mut outside) = (0u64, 0u64, 0u64);
        for trial in 0..12 {
            engine.adl.tables.refresh(&engine.state);
            let mut rankings = Vec::new();
            for m in 0..engine.state.markets.len() {
                for side in [-1i64, 1] {
                    let key = (MarketId(m as u16), side);
                    let mut r = Ranking::default();
                    r.reset(key);
                    let snap = r.snapshot(&engine.adl.tables, &engine.state);
                    let mut holders = Vec::new();
                    engine.state.markets[m].sides[side_index(side)].for_each(|&b| {
                        holders.extend(engine.holder(key, &mut r.rates, b, snap));
                    });
                    r.holders = holders;
                    rankings.push(r);
                }
            }
            for a in &mut engine.state.assets {
                if let Some(t) = a.oracle.index.as_mut() {
                    let pct = rng.range(-30, 30);
                    t.0 = (t.0 + t.0 * pct / 100).max(1);
                }
            }
            for m in &mut engine.state.markets {
                m.funding_index += i128::from(rng.range(-1_000_000, 1_000_000)) << (trial % 40);
            }
            engine.state.moved_prices();
            for r in &mut rankings {
                let snap = r.snapshot(&engine.adl.tables, &engine.state);
                let mut deltas = Vec::new();
                r.deltas(&engine.adl.tables, &engine.state, &mut deltas);
                let drivers = engine.adl.tables.position_drivers(r.key.0);
                for h in &r.holders {
                    let Some(old) = h.cp else { continue };
                    let key = r
                        .upper_key(h, drivers, snap, &deltas)
                        .expect("a valued holder");
                    let now = engine
                        .counterparty(h.bucket.0, h.bucket.1, r.key.0, r.key.1)
                        .expect("still on its side");
                    outside += u64::from(ranks_above(&now, key));
                    checked += 1;
                    moved_ratio += u64::from((old.upnl, old.equity) != (now.upnl, now.equity));
                }
            }
        }
        CHECK.with(|c| c.set(Check::default()));
        (checked, moved_ratio, outside)
    }

    #[test]
    fn bounds_contain_the_figures_at_moved_drivers() {
        let (checked, moved, outside) = containment(false);
        assert_eq!(
            outside, 0,
            "{outside} of {checked} holders outside their bound"
        );
        assert!(
            checked > 2_000 && moved * 2 > checked,
            "{moved} of {checked} moved"
        );
    }

    /// The planted mutation (bounds that take the drivers as unmoved) breaks containment.
    #[test]
    fn bounds_that_forget_moves_do_not_contain_the_figures() {
        let (checked, _, outside) = containment(true);
        assert!(outside > 0, "all {checked} holders inside stale bounds");
    }

    #[test]
    fn kept_rankings_choose_what_fresh_ones_do() {
        let k = checked_crashes(Check::default());
        assert_eq!(k.wrong, 0, "{} of {} ADL choices differ", k.wrong, k.closes);
        // The check says little unless most choices read rankings kept across price moves,
        // and many were brought up to date from the log or went on with kept heaps.
        assert!(
            k.at_moved_prices * 2 > k.closes && k.closes > 100,
            "{} of {} choices at moved prices",
            k.at_moved_prices,
            k.closes
        );
        assert!(
            k.caught_up > 50 && k.walked > 50 && k.heaps_kept > 50,
            "{} caught up, {} walked, {} with kept heaps",
            k.caught_up,
            k.walked,
            k.heaps_kept
        );
    }

    #[test]
    fn bounds_that_forget_price_moves_are_caught() {
        let k = checked_crashes(Check {
            plant_still_drivers: true,
            ..Check::default()
        });
        assert!(k.wrong > 0, "no wrong choice in {} closes", k.closes);
    }

    /// Caught either by a wrong choice or, in debug builds, by the selection's assertion
    /// that a holder the log did not name is still on its side.
    #[test]
    fn a_ranking_deaf_to_the_change_log_is_caught() {
        let run = std::panic::catch_unwind(|| {
            checked_crashes(Check {
                plant_deaf_log: true,
                ..Check::default()
            })
        });
        if let Ok(k) = run {
            assert!(k.wrong > 0, "no wrong choice in {} closes", k.closes);
        }
    }
}
