//! A set kept as key ranges that are unordered inside: the keys are split into blocks of at
//! most [`BLOCK_CAP`] by separators in one sorted array (block `i` holds the keys in
//! `(seps[i - 1], seps[i]]`), and a block's keys are in no particular order.
//!
//! This is the band sets' structure. A band update inserts and removes ends at random places
//! and a crossing asks for every end beyond a value; nobody asks for the ends in order (the
//! passes order the buckets they visit themselves). Keeping each block sorted, as
//! `OrderedSet` does, costs a scan of the whole block and a memmove of half of it per
//! operation, on a block that is usually cold. Here an insert appends (one cache line) and a
//! removal scans up to the key and moves the block's last key into its place.
//!
//! The shape depends only on the sequence of operations, and `for_each*` visit keys in an
//! order that does too, so nothing here can make two runs differ; callers that care about
//! order must not use this set.

/// Keys per block at most. A block is allocated with this capacity and split before it would
/// grow past it, so it never reallocates.
const BLOCK_CAP: usize = 64;
/// A block with fewer keys than this after a removal is merged with its successor when both
/// fit in three quarters of a block.
const BLOCK_LOW: usize = BLOCK_CAP / 4;

/// A set of `Copy` keys in key ranges, unordered within each.
#[derive(Clone, Debug)]
pub struct RangedSet<K> {
    /// Non-empty blocks, in the order of their ranges.
    blocks: Vec<Vec<K>>,
    /// `blocks.len() - 1` separators, strictly increasing: every key of block `i` is at most
    /// `seps[i]` and every key of block `i + 1` is above it.
    seps: Vec<K>,
    /// Emptied blocks, kept with their capacity for reuse.
    spare: Vec<Vec<K>>,
    len: usize,
}

impl<K> Default for RangedSet<K> {
    fn default() -> Self {
        RangedSet {
            blocks: Vec::new(),
            seps: Vec::new(),
            spare: Vec::new(),
            len: 0,
        }
    }
}

impl<K: Ord + Copy> RangedSet<K> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block whose range holds `key` (None when there is no block).
    fn block_of(&self, key: &K) -> Option<usize> {
        (!self.blocks.is_empty()).then(|| self.seps.partition_point(|s| s < key))
    }

    fn fresh_block(&mut self) -> Vec<K> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_CAP))
    }

    pub fn contains(&self, key: &K) -> bool {
        self.block_of(key)
            .is_some_and(|b| self.blocks[b].contains(key))
    }

    /// Inserts `key`, which must not be in the set: the caller knows (a band end is stored
    /// once), so the insert does not scan its block to find out (debug builds check).
    pub fn insert_new(&mut self, key: K) {
        debug_assert!(!self.contains(&key), "insert_new of a key already held");
        self.len += 1;
        let Some(mut b) = self.block_of(&key) else {
            let mut block = self.fresh_block();
            block.push(key);
            self.blocks.push(block);
            return;
        };
        if self.blocks[b].len() == BLOCK_CAP {
            // Split at the median before inserting, so that no block grows past capacity.
            let mut upper = self.fresh_block();
            let block = &mut self.blocks[b];
            let (_, &mut sep, _) = block.select_nth_unstable(BLOCK_CAP / 2 - 1);
            upper.extend_from_slice(&block[BLOCK_CAP / 2..]);
            block.truncate(BLOCK_CAP / 2);
            self.seps.insert(b, sep);
            self.blocks.insert(b + 1, upper);
            if key > sep {
                b += 1;
            }
        }
        self.blocks[b].push(key);
    }

    /// Removes `key`; false if it was not there.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(b) = self.block_of(key) else {
            return false;
        };
        let Some(at) = self.blocks[b].iter().position(|k| k == key) else {
            return false;
        };
        self.blocks[b].swap_remove(at);
        self.len -= 1;
        if self.blocks[b].is_empty() {
            let empty = self.blocks.remove(b);
            self.spare.push(empty);
            // The range joins its successor's (or, for the last block, its predecessor's).
            if b < self.seps.len() {
                self.seps.remove(b);
            } else if b > 0 {
                self.seps.remove(b - 1);
            }
        } else {
            self.merge_if_low(b);
        }
        true
    }

    /// Merges block `b` with its successor when it ran low and both fit comfortably in one.
    fn merge_if_low(&mut self, b: usize) {
        if self.blocks[b].len() >= BLOCK_LOW || b + 1 >= self.blocks.len() {
            return;
        }
        if self.blocks[b].len() + self.blocks[b + 1].len() > BLOCK_CAP * 3 / 4 {
            return;
        }
        let mut next = self.blocks.remove(b + 1);
        self.seps.remove(b);
        self.blocks[b].extend_from_slice(&next);
        next.clear();
        self.spare.push(next);
    }

    /// Calls `f` on every key (in no particular order).
    pub fn for_each(&self, mut f: impl FnMut(&K)) {
        for block in &self.blocks {
            block.iter().for_each(&mut f);
        }
    }

    /// Calls `f` on every key strictly greater than `bound`: the block whose range holds
    /// `bound` filtered, every later one whole.
    pub fn for_each_greater(&self, bound: &K, mut f: impl FnMut(&K)) {
        let first = self.seps.partition_point(|s| s <= bound);
        let mut blocks = self.blocks.iter().skip(first);
        if let Some(block) = blocks.next() {
            block.iter().filter(|k| *k > bound).for_each(&mut f);
        }
        blocks.for_each(|block| block.iter().for_each(&mut f));
    }

    /// Calls `f` on every key strictly less than `bound`: every block before the one whose
    /// range holds `bound` whole, that one filtered.
    pub fn for_each_less(&self, bound: &K, mut f: impl FnMut(&K)) {
        let last = self.seps.partition_point(|s| s < bound);
        for block in self.blocks.iter().take(last) {
            block.iter().for_each(&mut f);
        }
        if let Some(block) = self.blocks.get(last) {
            block.iter().filter(|k| *k < bound).for_each(&mut f);
        }
    }

    /// The keys sorted (allocates; for tests and cold paths).
    pub fn to_sorted_vec(&self) -> Vec<K> {
        let mut v = Vec::with_capacity(self.len);
        self.for_each(|k| v.push(*k));
        v.sort_unstable();
        v
    }

    /// Checks the invariants (tests): every key inside its block's range, blocks non-empty and
    /// within capacity, separators increasing, no key twice, `len` right.
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.seps.len() + 1, self.blocks.len().max(1));
        assert!(self.seps.windows(2).all(|w| w[0] < w[1]), "separators rise");
        let mut n = 0;
        for (i, b) in self.blocks.iter().enumerate() {
            assert!(!b.is_empty() && b.len() <= BLOCK_CAP && b.capacity() == BLOCK_CAP);
            for k in b {
                assert!(
                    i == 0 || self.seps[i - 1] < *k,
                    "key above its range's start"
                );
                assert!(
                    i == self.seps.len() || *k <= self.seps[i],
                    "key within its range"
                );
            }
            n += b.len();
        }
        assert_eq!(n, self.len);
        let sorted = self.to_sorted_vec();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]), "no key twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Against BTreeSet: the same keys and range answers after any inserts and removes.
        #[test]
        fn holds_what_a_btreeset_holds(ops in proptest::collection::vec((any::<bool>(), 0u16..200), 0..600), probe in 0u16..200) {
            holds_like_btreeset(ops, probe)?;
        }

        /// The same with many keys, so that blocks split, run low, merge and empty.
        #[test]
        fn holds_what_a_btreeset_holds_across_many_blocks(ops in proptest::collection::vec((0u8..5, 0u16..3000), 0..4000), probe in 0u16..3000) {
            let ops = ops.into_iter().map(|(o, k)| (o < 3, k)).collect();
            holds_like_btreeset(ops, probe)?;
        }
    }

    fn holds_like_btreeset(ops: Vec<(bool, u16)>, probe: u16) -> Result<(), TestCaseError> {
        let mut a = RangedSet::default();
        let mut b = BTreeSet::new();
        for (ins, k) in ops {
            if ins {
                if !a.contains(&k) {
                    a.insert_new(k);
                }
                b.insert(k);
            } else {
                prop_assert_eq!(a.remove(&k), b.remove(&k));
            }
            prop_assert_eq!(a.len(), b.len());
        }
        a.check();
        prop_assert_eq!(a.to_sorted_vec(), b.iter().copied().collect::<Vec<_>>());
        let sorted = |mut v: Vec<u16>| {
            v.sort_unstable();
            v
        };
        let mut g = Vec::new();
        a.for_each_greater(&probe, |k| g.push(*k));
        prop_assert_eq!(sorted(g), b.range(probe + 1..).copied().collect::<Vec<_>>());
        let mut l = Vec::new();
        a.for_each_less(&probe, |k| l.push(*k));
        prop_assert_eq!(sorted(l), b.range(..probe).copied().collect::<Vec<_>>());
        prop_assert_eq!(a.contains(&probe), b.contains(&probe));
        Ok(())
    }

    #[test]
    fn warmed_up_churn_reuses_blocks() {
        let mut a = RangedSet::default();
        for k in 0..1000u32 {
            a.insert_new(k);
        }
        let blocks = a.blocks.len() + a.spare.len();
        for round in 1..10u32 {
            for k in 0..1000u32 {
                a.remove(&k);
                a.insert_new(k + 1000 * round);
                a.remove(&(k + 1000 * round));
                a.insert_new(k);
            }
        }
        a.check();
        assert!(
            a.blocks.len() + a.spare.len() <= blocks + 2,
            "blocks are reused"
        );
        assert_eq!(a.len(), 1000);
    }
}
