//! An ordered set whose nodes live in one arena with a free list, so that inserting and removing
//! in a warmed-up set never allocates (a `BTreeSet` allocates and frees nodes as it splits and
//! merges). It is a treap: node priorities come from a counter mixed by SplitMix64, so the shape
//! depends only on the sequence of operations, and iteration is always in key order.

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node<K> {
    key: K,
    prio: u64,
    left: u32,
    right: u32,
}

/// An ordered set of `Copy` keys backed by an arena.
#[derive(Clone, Debug)]
pub struct OrderedSet<K> {
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
    root: u32,
    len: usize,
    counter: u64,
}

impl<K> Default for OrderedSet<K> {
    fn default() -> Self {
        OrderedSet {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            len: 0,
            counter: 0,
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sets are equal when they hold the same keys (whatever their arenas look like).
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

    /// Removes every key, keeping the arena's memory.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.free.clear();
        self.root = NIL;
        self.len = 0;
    }

    fn alloc(&mut self, key: K) -> u32 {
        self.counter += 1;
        let node = Node {
            key,
            prio: mix(self.counter),
            left: NIL,
            right: NIL,
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                // The free list can never hold more than the arena: size it with the arena so
                // that a removal never allocates.
                if self.free.capacity() < self.nodes.capacity() {
                    self.free
                        .reserve_exact(self.nodes.capacity() - self.free.len());
                }
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Splits `t` into keys < `key` and keys >= `key`.
    fn split(&mut self, t: u32, key: &K) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t as usize].key < *key {
            let (l, r) = self.split(self.nodes[t as usize].right, key);
            self.nodes[t as usize].right = l;
            (t, r)
        } else {
            let (l, r) = self.split(self.nodes[t as usize].left, key);
            self.nodes[t as usize].left = r;
            (l, t)
        }
    }

    /// Joins two treaps where every key of `a` is below every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let r = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = r;
            a
        } else {
            let l = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = l;
            b
        }
    }

    pub fn contains(&self, key: &K) -> bool {
        self.contains_in(self.root, key)
    }

    fn contains_in(&self, mut t: u32, key: &K) -> bool {
        while t != NIL {
            let n = &self.nodes[t as usize];
            match key.cmp(&n.key) {
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Less => t = n.left,
                std::cmp::Ordering::Greater => t = n.right,
            }
        }
        false
    }

    /// Inserts; false if the key was there.
    pub fn insert(&mut self, key: K) -> bool {
        let prio = mix(self.counter + 1);
        match self.insert_at(self.root, key, prio) {
            Some(root) => {
                self.root = root;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Puts `key` into the subtree `t` (None, and nothing changed, if it is there): down the
    /// search path to the first node of lower priority, where the subtree is split around the
    /// new node (on average a small subtree).
    fn insert_at(&mut self, t: u32, key: K, prio: u64) -> Option<u32> {
        if t == NIL || prio > self.nodes[t as usize].prio {
            if self.contains_in(t, &key) {
                return None;
            }
            let (l, r) = self.split(t, &key);
            let n = self.alloc(key);
            debug_assert_eq!(self.nodes[n as usize].prio, prio);
            self.nodes[n as usize].left = l;
            self.nodes[n as usize].right = r;
            return Some(n);
        }
        match key.cmp(&self.nodes[t as usize].key) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => {
                let l = self.insert_at(self.nodes[t as usize].left, key, prio)?;
                self.nodes[t as usize].left = l;
                Some(t)
            }
            std::cmp::Ordering::Greater => {
                let r = self.insert_at(self.nodes[t as usize].right, key, prio)?;
                self.nodes[t as usize].right = r;
                Some(t)
            }
        }
    }

    /// Removes; false if the key was not there.
    pub fn remove(&mut self, key: &K) -> bool {
        let (root, found) = self.remove_at(self.root, key);
        self.root = root;
        if found {
            self.len -= 1;
        }
        found
    }

    /// Takes `key` out of the subtree `t`, its children merged in its place.
    fn remove_at(&mut self, t: u32, key: &K) -> (u32, bool) {
        if t == NIL {
            return (NIL, false);
        }
        let n = &self.nodes[t as usize];
        match key.cmp(&n.key) {
            std::cmp::Ordering::Equal => {
                let (l, r) = (n.left, n.right);
                self.free.push(t);
                (self.merge(l, r), true)
            }
            std::cmp::Ordering::Less => {
                let (l, found) = self.remove_at(n.left, key);
                self.nodes[t as usize].left = l;
                (t, found)
            }
            std::cmp::Ordering::Greater => {
                let (r, found) = self.remove_at(n.right, key);
                self.nodes[t as usize].right = r;
                (t, found)
            }
        }
    }

    /// Calls `f` on every key, in order.
    pub fn for_each(&self, mut f: impl FnMut(&K)) {
        self.walk(self.root, &mut |k| {
            f(k);
            true
        });
    }

    /// Calls `f` on every key strictly greater than `bound`, in order.
    pub fn for_each_greater(&self, bound: &K, mut f: impl FnMut(&K)) {
        self.walk_from(self.root, bound, false, &mut f);
    }

    /// Calls `f` on every key strictly less than `bound`, in order.
    pub fn for_each_less(&self, bound: &K, mut f: impl FnMut(&K)) {
        self.walk(self.root, &mut |k| {
            if k < bound {
                f(k);
                true
            } else {
                false
            }
        });
    }

    /// Calls `f` on every key less than or equal to `bound`, in order.
    pub fn for_each_at_most(&self, bound: &K, mut f: impl FnMut(&K)) {
        self.walk(self.root, &mut |k| {
            if k <= bound {
                f(k);
                true
            } else {
                false
            }
        });
    }

    /// In-order walk; `f` returning false stops it. Returns false when stopped.
    fn walk(&self, t: u32, f: &mut dyn FnMut(&K) -> bool) -> bool {
        if t == NIL {
            return true;
        }
        let n = &self.nodes[t as usize];
        self.walk(n.left, f) && f(&n.key) && self.walk(n.right, f)
    }

    /// In-order walk of keys > bound (or >= bound when `inclusive`).
    fn walk_from(&self, t: u32, bound: &K, inclusive: bool, f: &mut dyn FnMut(&K)) {
        if t == NIL {
            return;
        }
        let n = &self.nodes[t as usize];
        let above = if inclusive {
            n.key >= *bound
        } else {
            n.key > *bound
        };
        if above {
            self.walk_from(n.left, bound, inclusive, f);
            f(&n.key);
            self.walk(n.right, &mut |k| {
                f(k);
                true
            });
        } else {
            self.walk_from(n.right, bound, inclusive, f);
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
        let mut t = self.root;
        let mut last = None;
        while t != NIL {
            last = Some(self.nodes[t as usize].key);
            t = self.nodes[t as usize].left;
        }
        last
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
        }
    }

    #[test]
    fn warmed_up_churn_reuses_nodes() {
        let mut a = OrderedSet::default();
        for k in 0..1000u32 {
            a.insert(k);
        }
        let cap = a.nodes.capacity();
        for round in 0..10u32 {
            for k in 0..1000u32 {
                a.remove(&k);
                a.insert(k + round);
                a.remove(&(k + round));
                a.insert(k);
            }
        }
        assert_eq!(a.nodes.capacity(), cap);
        assert_eq!(a.len(), 1000);
    }
}
