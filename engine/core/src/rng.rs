//! A small seeded generator (SplitMix64) for scenarios and tests: the same seed gives the same
//! numbers on every machine and every build. Never used by the state machine itself.

/// SplitMix64: 64-bit state, passes BigCrush, trivially portable.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A Zipf-like pick in `[0, n)`: index i has weight about 1 / (i + 1). Integer-only: draws a
    /// uniform u in [1, n] and a second one below it, which favours small indices harmonically.
    pub fn zipf(&mut self, n: u64) -> u64 {
        let a = 1 + self.below(n);
        self.below(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED_FIRST: u64 = 7_960_286_522_194_355_700;

    #[test]
    fn same_seed_same_numbers() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // A fixed value pins the algorithm: changing it would change every generated stream.
        assert_eq!(Rng::new(0).next_u64(), PINNED_FIRST);
    }

    #[test]
    fn zipf_favours_small_indices() {
        let mut r = Rng::new(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[r.zipf(10) as usize] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[5] && counts[5] > counts[9]);
    }
}
