//! An ordered set kept as a list of sorted blocks: each block a `Vec` of at most
//! [`BLOCK_CAP`] keys, the blocks in key order, and beside them the last key of every block so
//! that finding a key's block is a binary search over one contiguous array. Inserting or
//! removing moves at most one block's keys (one KiB for 16-byte keys) instead of chasing the
//! ~2 log n scattered nodes of a tree; a block that fills is split in two, one that runs low is
//! merged with its neighbour. Emptied blocks are kept for reuse, so a warmed-up set does not
//! allocate. Iteration is always in key order, and the shape depends only on the sequence of
//! operations.

/// Keys per block at most. A block is allocated with exactly this capacity and split before it
/// would grow past it, so it never reallocates. A key is found in its block by a scan, not a
/// binary search (see `locate`), which made the block size matter little: on the crash
/// profile at 10K accounts (5 interleaved runs each, medians) binary search at 32 took 7.48 s,
/// the scan 6.87 s at 32, 6.61 s at 64 and 6.59 s at 128; 64 keeps the memmove of an insert
/// at half a KiB on average.
const BLOCK_CAP: usize = 64;
/// A block with fewer keys than this after a removal is merged with its successor when both
/// fit in three quarters of a block.
const BLOCK_LOW: usize = BLOCK_CAP / 4;

/// An ordered set of `Copy` keys in sorted blocks.
#[derive(Clone, Debug)]
pub struct OrderedSet<K> {
    /// Sorted, non-empty blocks in key order.
    blocks: Vec<Vec<K>>,
    /// The last key of each block (same indices as `blocks`).
    lasts: Vec<K>,
    /// Emptied blocks, kept with their capacity for reuse.
    spare: Vec<Vec<K>>,
    len: usize,
}

impl<K> Default for OrderedSet<K> {
    fn default() -> Self {
        OrderedSet {
            blocks: Vec::new(),
            lasts: Vec::new(),
            spare: Vec::new(),
            len: 0,
        }
    }
}

/// Sets are equal when they hold the same keys (whatever their blocks look like).
impl<K: Ord + Copy> PartialEq for OrderedSet<K> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.to_vec() == other.to_vec()
    }
}

impl<K: Ord + Copy> Eq for OrderedSet<K> {}

impl<K: Ord + Copy> OrderedSet<K> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every key, keeping the blocks for reuse.
    pub fn clear(&mut self) {
        for mut b in self.blocks.drain(..) {
            b.clear();
            self.spare.push(b);
        }
        self.lasts.clear();
        self.len = 0;
    }

    /// The index of the block that holds `key` or would: the first whose last key is >= it,
    /// or the last block for a key above them all. None when the set has no block.
    fn block_of(&self, key: &K) -> Option<usize> {
        if self.blocks.is_empty() {
            return None;
        }
        let i = self.lasts.partition_point(|l| l < key);
        Some(i.min(self.blocks.len() - 1))
    }

    /// Where `key` is in `block` (Ok) or would go (Err), as `binary_search` answers. A count of
    /// the smaller keys instead of a binary search: the block a band update lands in is
    /// usually cold, and a scan issues its cache-line loads together where the search's are
    /// each dependent on the last.
    fn locate(block: &[K], key: &K) -> Result<usize, usize> {
        let at = block.iter().map(|k| usize::from(k < key)).sum();
        if block.get(at) == Some(key) {
            Ok(at)
        } else {
            Err(at)
        }
    }

    fn fresh_block(&mut self) -> Vec<K> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_CAP))
    }

    pub fn contains(&self, key: &K) -> bool {
        self.block_of(key)
            .is_some_and(|b| Self::locate(&self.blocks[b], key).is_ok())
    }

    /// Inserts `key`; false if it was already there.
    pub fn insert(&mut self, key: K) -> bool {
        let Some(mut b) = self.block_of(&key) else {
            let mut block = self.fresh_block();
            block.push(key);
            self.blocks.push(block);
            self.lasts.push(key);
            self.len = 1;
            return true;
        };
        let Err(mut at) = Self::locate(&self.blocks[b], &key) else {
            return false;
        };
        if self.blocks[b].len() == BLOCK_CAP {
            // Split before inserting, so that no block grows past its capacity.
            let mut upper = self.fresh_block();
            upper.extend_from_slice(&self.blocks[b][BLOCK_CAP / 2..]);
            self.blocks[b].truncate(BLOCK_CAP / 2);
            self.lasts[b] = self.blocks[b][BLOCK_CAP / 2 - 1];
            self.lasts.insert(b + 1, upper[upper.len() - 1]);
            self.blocks.insert(b + 1, upper);
            if at > BLOCK_CAP / 2 {
                b += 1;
                at -= BLOCK_CAP / 2;
            }
        }
        let block = &mut self.blocks[b];
        block.insert(at, key);
        if at + 1 == block.len() {
            self.lasts[b] = key;
        }
        self.len += 1;
        true
    }

    /// Removes `key`; false if it was not there.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(b) = self.block_of(key) else {
            return false;
        };
        let Ok(at) = Self::locate(&self.blocks[b], key) else {
            return false;
        };
        self.blocks[b].remove(at);
        self.len -= 1;
        match self.blocks[b].last() {
            None => {
                let empty = self.blocks.remove(b);
                self.lasts.remove(b);
                self.spare.push(empty);
            }
            Some(&last) => {
                self.lasts[b] = last;
                self.merge_if_low(b);
            }
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
        self.lasts.remove(b + 1);
        self.blocks[b].extend_from_slice(&next);
        self.lasts[b] = *self.blocks[b].last().expect("non-empty");
        next.clear();
        self.spare.push(next);
    }

    /// Replaces the contents with `keys`, which must be strictly increasing: blocks filled to
    /// three quarters (room for inserts before the first split), in O(n) instead of n inserts.
    pub fn rebuild_sorted(&mut self, keys: &[K]) {
        debug_assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "keys strictly increasing"
        );
        self.clear();
        for chunk in keys.chunks(BLOCK_CAP * 3 / 4) {
            let mut block = self.fresh_block();
            block.extend_from_slice(chunk);
            self.lasts.push(chunk[chunk.len() - 1]);
            self.blocks.push(block);
        }
        self.len = keys.len();
    }

    /// Calls `f` on the keys in order until it returns false.
    pub fn for_each_until(&self, mut f: impl FnMut(&K) -> bool) {
        for block in &self.blocks {
            for k in block {
                if !f(k) {
                    return;
                }
            }
        }
    }

    /// Calls `f` on every key, in order.
    pub fn for_each(&self, mut f: impl FnMut(&K)) {
        for block in &self.blocks {
            block.iter().for_each(&mut f);
        }
    }

    /// Calls `f` on every key strictly greater than `bound`, in order.
    pub fn for_each_greater(&self, bound: &K, mut f: impl FnMut(&K)) {
        let first = self.lasts.partition_point(|l| l <= bound);
        for (i, block) in self.blocks.iter().enumerate().skip(first) {
            let from = if i == first {
                block.partition_point(|k| k <= bound)
            } else {
                0
            };
            block[from..].iter().for_each(&mut f);
        }
    }

    /// Calls `f` on every key strictly less than `bound`, in order.
    pub fn for_each_less(&self, bound: &K, f: impl FnMut(&K)) {
        self.for_each_while(|k| k < bound, f);
    }

    /// Calls `f` on every key less than or equal to `bound`, in order.
    pub fn for_each_at_most(&self, bound: &K, f: impl FnMut(&K)) {
        self.for_each_while(|k| k <= bound, f);
    }

    /// Calls `f` on the keys in order while `keep` holds for them.
    fn for_each_while(&self, keep: impl Fn(&K) -> bool, mut f: impl FnMut(&K)) {
        for block in &self.blocks {
            let end = block.partition_point(&keep);
            block[..end].iter().for_each(&mut f);
            if end < block.len() {
                return;
            }
        }
    }

    /// The keys in order, as an owning iterator (allocates; for cold paths, where a `for` loop
    /// reads better than a callback).
    #[allow(clippy::should_implement_trait)]
    pub fn iter(&self) -> std::vec::IntoIter<K> {
        self.to_vec().into_iter()
    }

    /// The keys in order (allocates; for cold paths).
    pub fn to_vec(&self) -> Vec<K> {
        let mut v = Vec::with_capacity(self.len);
        self.for_each(|k| v.push(*k));
        v
    }

    /// The first key, if any.
    pub fn first(&self) -> Option<K> {
        self.blocks.first().map(|b| b[0])
    }

    /// Checks the blocks' invariants (tests): sorted within and across, non-empty, within
    /// capacity, `lasts` in step, `len` right.
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.blocks.len(), self.lasts.len());
        let mut prev: Option<K> = None;
        let mut n = 0;
        for (b, last) in self.blocks.iter().zip(&self.lasts) {
            assert!(!b.is_empty() && b.len() <= BLOCK_CAP && b.capacity() == BLOCK_CAP);
            assert!(b.last() == Some(last));
            for k in b {
                assert!(prev.is_none_or(|p| p < *k), "keys in order");
                prev = Some(*k);
            }
            n += b.len();
        }
        assert_eq!(n, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Against BTreeSet: the same contents, order and range answers after any operations.
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u16..200), 0..600), probe in 0u16..200) {
            behaves_like_btreeset(ops, probe)?;
        }

        /// The same with many keys, so that blocks split, run low and merge.
        #[test]
        fn behaves_like_a_btreeset_across_many_blocks(ops in proptest::collection::vec((0u8..5, 0u16..3000), 0..4000), probe in 0u16..3000) {
            let ops = ops.into_iter().map(|(o, k)| (o < 3, k)).collect();
            behaves_like_btreeset(ops, probe)?;
        }
    }

    fn behaves_like_btreeset(ops: Vec<(bool, u16)>, probe: u16) -> Result<(), TestCaseError> {
        {
            let mut a = OrderedSet::default();
            let mut b = BTreeSet::new();
            for (ins, k) in ops {
                if ins {
                    prop_assert_eq!(a.insert(k), b.insert(k));
                } else {
                    prop_assert_eq!(a.remove(&k), b.remove(&k));
                }
                prop_assert_eq!(a.len(), b.len());
            }
            a.check();
            prop_assert_eq!(a.to_vec(), b.iter().copied().collect::<Vec<_>>());
            let mut g = Vec::new();
            a.for_each_greater(&probe, |k| g.push(*k));
            prop_assert_eq!(g, b.range(probe + 1..).copied().collect::<Vec<_>>());
            let mut l = Vec::new();
            a.for_each_less(&probe, |k| l.push(*k));
            prop_assert_eq!(l, b.range(..probe).copied().collect::<Vec<_>>());
            let mut m = Vec::new();
            a.for_each_at_most(&probe, |k| m.push(*k));
            prop_assert_eq!(m, b.range(..=probe).copied().collect::<Vec<_>>());
            prop_assert_eq!(a.contains(&probe), b.contains(&probe));
            prop_assert_eq!(a.first(), b.first().copied());
            a.check();
            let mut until = Vec::new();
            a.for_each_until(|k| {
                until.push(*k);
                *k < probe
            });
            let mut expect: Vec<u16> = b.range(..probe).copied().collect();
            expect.extend(b.range(probe..).next());
            prop_assert_eq!(until, expect);
            // Rebuilt from its own keys, then changed again: still a set like the BTreeSet.
            let keys = a.to_vec();
            a.rebuild_sorted(&keys);
            a.check();
            prop_assert_eq!(a.to_vec(), keys);
            prop_assert_eq!(a.insert(probe), b.insert(probe));
            prop_assert_eq!(a.remove(&(probe / 2)), b.remove(&(probe / 2)));
            a.check();
            prop_assert_eq!(a.to_vec(), b.iter().copied().collect::<Vec<_>>());
            Ok(())
        }
    }

    #[test]
    fn warmed_up_churn_reuses_nodes() {
        let mut a = OrderedSet::default();
        for k in 0..1000u32 {
            a.insert(k);
        }
        let blocks = a.blocks.len() + a.spare.len();
        for round in 0..10u32 {
            for k in 0..1000u32 {
                a.remove(&k);
                a.insert(k + round);
                a.remove(&(k + round));
                a.insert(k);
            }
        }
        assert!(
            a.blocks.len() + a.spare.len() <= blocks + 1,
            "blocks are reused"
        );
        assert_eq!(a.len(), 1000);
    }
}
