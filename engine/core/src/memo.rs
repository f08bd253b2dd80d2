//! The valuation memo: each bucket remembers the figures of its positions together with every
//! input they were computed from, so that a bucket revalued after a change of one position (a
//! fill) or one price (an oracle print) recomputes only the positions whose inputs moved.
//!
//! The memo is keyed by content, not invalidated by events: an entry holds the position itself
//! (market, size, quote, funding mark), the base asset's index, the market's funding index, its
//! dynamic-margin factor and the venue epoch (bumped by every change of listings or parameters).
//! Those are all that [`State::position_value`] reads, so an entry whose key equals the
//! position's key now holds exactly what a fresh computation would give; there is nothing to
//! forget to clear. The plain computation stays the oracle: `ScanMode::Naive` engines and the
//! property tests in `tests/valuation_memo.rs` compare against it.
//!
//! A bucket also remembers its maintenance sums (equity_maint, mm, le), which every liquidation
//! pass, band and ADL ranking reads, under the state's price epoch (moved by every index,
//! funding index and dynamic-margin factor change) and venue epoch; [`State::account_mut`] and
//! its siblings forget them when they hand a bucket out for change.
//!
//! Not persisted (snapshots skip it; a loaded bucket starts empty) and invisible to equality,
//! so two states that differ only in what they remember compare equal and hash the same.

use crate::account::{Bucket, Position};
use crate::health::{MaintHealth, PositionValue};
use crate::num::Overflow;
use crate::state::State;
use std::cell::{Cell, RefCell};

/// Everything a position's figures are a function of.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    position: Position,
    index_ticks: i64,
    funding_index: i128,
    fraction_scale: i128,
    venue_epoch: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    value: PositionValue,
}

/// A bucket's maintenance figures and the epochs they were computed at.
#[derive(Clone, Copy, Debug)]
struct Sums {
    price_epoch: u64,
    venue_epoch: u64,
    maint: MaintHealth,
}

/// The remembered figures of a bucket: its positions' by position index (an entry whose key
/// names another market is simply a miss), and its maintenance sums.
#[derive(Default)]
pub struct ValuationMemo {
    entries: RefCell<Vec<Option<Entry>>>,
    /// Valid while the state's price and venue epochs are those it names and the bucket has
    /// not been handed out for change since ([`State::account_mut`] forgets it).
    sums: Cell<Option<Sums>>,
}

/// A copy starts empty: what a bucket remembers is derived, and copies of the state (snapshots,
/// the live view, stress runs) are made on the sequencer thread, where an allocation per
/// bucket would cost more than the copy's first valuations.
impl Clone for ValuationMemo {
    fn clone(&self) -> ValuationMemo {
        ValuationMemo::default()
    }
}

/// What a bucket remembers is not part of its value.
impl PartialEq for ValuationMemo {
    fn eq(&self, _: &ValuationMemo) -> bool {
        true
    }
}

impl Eq for ValuationMemo {}

impl std::fmt::Debug for ValuationMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValuationMemo({} entries)", self.entries.borrow().len())
    }
}

impl ValuationMemo {
    /// Hints the CPU to fetch the remembered entries (a walk about to value this bucket).
    pub(crate) fn prefetch(&self) {
        if let Ok(entries) = self.entries.try_borrow() {
            crate::prefetch::prefetch(entries.as_ptr());
        }
    }

    /// Forgets the sums (the bucket is about to change). Position entries stay: their keys
    /// hold the position itself.
    pub fn forget_sums(&self) {
        #[cfg(test)]
        if KEEP_SUMS.with(|k| k.get()) {
            return;
        }
        self.sums.set(None);
    }
}

#[cfg(test)]
thread_local! {
    /// The planted mutation: leave the funding index out of the key, as a cache that forgot
    /// funding would. `memo::tests` turns it on and expects the oracle comparison to fail.
    static FORGET_FUNDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The other planted mutation: a bucket handed out for change keeps its sums.
    static KEEP_SUMS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl State {
    /// The key of a position's figures now.
    fn memo_key(&self, position: &Position) -> Key {
        let m = &self.markets[position.market.index()];
        let base = self.venue.market(position.market).base;
        #[allow(unused_mut)]
        let mut funding_index = m.funding_index;
        #[cfg(test)]
        if FORGET_FUNDING.with(|f| f.get()) {
            funding_index = 0;
        }
        Key {
            position: *position,
            index_ticks: self.index(base).unwrap_or(0),
            funding_index,
            fraction_scale: m.fraction_scale,
            venue_epoch: self.venue_epoch,
        }
    }

    /// The figures of the bucket's `i`th position, from the memo when its inputs have not
    /// moved, else computed (and remembered). Equal to `position_value(&bucket.positions[i])`.
    pub fn position_value_at(&self, bucket: &Bucket, i: usize) -> Result<PositionValue, Overflow> {
        let position = &bucket.positions[i];
        if self.plain_valuation {
            return self.position_value(position);
        }
        let key = self.memo_key(position);
        let mut entries = bucket.memo.entries.borrow_mut();
        if let Some(Some(e)) = entries.get(i) {
            if e.key == key {
                return Ok(e.value);
            }
        }
        let value = self.position_value(position)?;
        if entries.len() < bucket.positions.len() {
            entries.resize(bucket.positions.len(), None);
        }
        entries[i] = Some(Entry { key, value });
        Ok(value)
    }

    /// The bucket's remembered maintenance sums, if they are current.
    pub(crate) fn remembered_maint(&self, bucket: &Bucket) -> Option<MaintHealth> {
        if self.plain_valuation {
            return None;
        }
        let s = bucket.memo.sums.get()?;
        (s.price_epoch == self.price_epoch && s.venue_epoch == self.venue_epoch).then_some(s.maint)
    }

    /// The maintenance figures of a bucket, from its memo when neither prices, funding,
    /// parameters nor the bucket changed since they were computed. Equal to
    /// [`State::bucket_maint_plain`].
    pub fn bucket_maint(&self, bucket: &Bucket) -> Result<MaintHealth, Overflow> {
        if self.plain_valuation {
            return self.bucket_maint_plain(bucket);
        }
        if let Some(m) = self.remembered_maint(bucket) {
            return Ok(m);
        }
        let maint = self.bucket_maint_plain(bucket)?;
        bucket.memo.sums.set(Some(Sums {
            price_epoch: self.price_epoch,
            venue_epoch: self.venue_epoch,
            maint,
        }));
        Ok(maint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bucket's memoized figures against the plain computation, over the example venue
    /// at many points of its history. With `plant` on, counts the mismatches instead.
    fn mismatches(plant: &'static std::thread::LocalKey<std::cell::Cell<bool>>) -> usize {
        plant.with(|f| f.set(true));
        let mut bad = 0;
        let mut checked = 0;
        // One engine driven through the whole venue, checked after every line, so that
        // entries remembered at one point are looked up at later ones (after funding moved).
        let lines = crate::engine::example_lines();
        let mut e = crate::engine::example_engine(0);
        for input in &lines {
            e.apply(input);
            let st = &e.state;
            for acc in &st.accounts {
                for slot in acc.slots() {
                    let Some(b) = acc.bucket(slot) else { continue };
                    if st.bucket_maint(b).unwrap() != st.bucket_maint_plain(b).unwrap() {
                        bad += 1;
                    }
                    for (i, p) in b.positions.iter().enumerate() {
                        checked += 1;
                        if st.position_value_at(b, i).unwrap() != st.position_value(p).unwrap() {
                            bad += 1;
                        }
                    }
                }
            }
        }
        plant.with(|f| f.set(false));
        assert!(checked > 1000, "positions checked: {checked}");
        bad
    }

    thread_local! {
        static NOTHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn memoized_figures_equal_the_plain_computation() {
        assert_eq!(mismatches(&NOTHING), 0);
    }

    /// The planted mutations (funding left out of the key; a changed bucket keeping its sums)
    /// must each be caught by the same check.
    #[test]
    fn a_memo_that_forgets_funding_is_caught() {
        assert!(
            mismatches(&FORGET_FUNDING) > 0,
            "the stale position memo went unnoticed"
        );
    }

    #[test]
    fn a_memo_that_keeps_the_sums_of_a_changed_bucket_is_caught() {
        assert!(
            mismatches(&KEEP_SUMS) > 0,
            "the stale bucket sums went unnoticed"
        );
    }
}
