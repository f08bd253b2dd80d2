//! `Exact` without its 256-bit half: a rational `m / 10^scale` with an i128 mantissa, every
//! operation checked and answering `None` where `Exact` would widen. The hot valuations run on
//! it and fall back to `Exact` on `None`, so they give `Exact`'s figures, only faster: a
//! `Small` is two registers where an `Exact` is a 48-byte enum, and no step returns a `Result`.
//!
//! Every operation picks the scale `Exact`'s does. A computation that answers here therefore
//! holds the same mantissas `Exact` would (it never widens at a scale this one fits) and passes
//! the same scale limit, so `Exact` could not have overflowed where this answered: falling back
//! only on `None` keeps the set of rejected inputs the same as well as the figures.

use super::exact::{pow10_small, EXACT_SCALE_MAX};
use super::mul::mul_i128;
use super::pow10div::{div_rem_euclid_pow10, div_round_pow10};
use super::{Exact, Round};
use std::cmp::Ordering;

/// A rational `m / 10^scale`, `scale <= EXACT_SCALE_MAX`; its operations are `Term`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Small {
    m: i128,
    scale: u8,
}

/// The arithmetic a valuation is written in, so that one text serves both number types: the
/// hot path runs it on `Small` and, where that declines, again on `Exact`. Each operation is
/// `Exact`'s, with `None` for its `Overflow`.
pub(crate) trait Term: Copy {
    const ZERO: Self;
    /// `v / 10^scale`.
    fn new(v: i128, scale: u8) -> Self;
    /// `a * b` at `scale_a + scale_b`, for factors that fit i64 (a size times a price).
    fn product_i64(a: i64, sa: u8, b: i64, sb: u8) -> Option<Self>;
    fn plus(self, o: Self) -> Option<Self>;
    fn negate(self) -> Option<Self>;
    fn times(self, o: Self) -> Option<Self>;
    /// `x / 2` as `5x / 10`.
    fn half(self) -> Option<Self>;
    /// The smaller, as it was given (the first on a tie).
    fn min(self, o: Self) -> Option<Self>;
    fn is_positive(self) -> bool;
    fn is_negative(self) -> bool;
    /// The value in units of `10^-decimals`, rounded once.
    fn round(self, decimals: u8, mode: Round) -> Option<i128>;

    fn minus(self, o: Self) -> Option<Self> {
        self.plus(o.negate()?)
    }

    fn abs(self) -> Option<Self> {
        if self.is_negative() {
            self.negate()
        } else {
            Some(self)
        }
    }

    fn floor(self, decimals: u8) -> Option<i128> {
        self.round(decimals, Round::Floor)
    }

    fn ceil(self, decimals: u8) -> Option<i128> {
        self.round(decimals, Round::Ceil)
    }

    /// `self.times(o)` rounded once.
    fn times_round(self, o: Self, decimals: u8, mode: Round) -> Option<i128> {
        self.times(o)?.round(decimals, mode)
    }
}

impl Small {
    /// The same value at a scale `>= self.scale` (`Exact::rescale`).
    fn rescale(self, scale: u8) -> Option<Small> {
        if scale > EXACT_SCALE_MAX {
            return None;
        }
        let k = scale - self.scale;
        if k == 0 {
            return Some(self);
        }
        Some(Small {
            m: mul_i128(self.m, pow10_small(k)?)?,
            scale,
        })
    }

    fn aligned(self, o: Small) -> Option<(i128, i128, u8)> {
        if self.scale == o.scale {
            return Some((self.m, o.m, self.scale));
        }
        let scale = self.scale.max(o.scale);
        Some((self.rescale(scale)?.m, o.rescale(scale)?.m, scale))
    }
}

impl Term for Small {
    const ZERO: Small = Small { m: 0, scale: 0 };

    fn new(v: i128, scale: u8) -> Small {
        Small { m: v, scale }
    }

    /// The product of two i64 cannot leave i128: no check on the multiplication itself.
    fn product_i64(a: i64, sa: u8, b: i64, sb: u8) -> Option<Small> {
        Some(Small {
            m: i128::from(a) * i128::from(b),
            scale: checked_scale(sa, sb)?,
        })
    }

    fn plus(self, o: Small) -> Option<Small> {
        let (a, b, scale) = self.aligned(o)?;
        Some(Small {
            m: a.checked_add(b)?,
            scale,
        })
    }

    fn negate(self) -> Option<Small> {
        Some(Small {
            m: self.m.checked_neg()?,
            scale: self.scale,
        })
    }

    fn times(self, o: Small) -> Option<Small> {
        Some(Small {
            m: mul_i128(self.m, o.m)?,
            scale: checked_scale(self.scale, o.scale)?,
        })
    }

    fn half(self) -> Option<Small> {
        Some(Small {
            m: mul_i128(self.m, 5)?,
            scale: checked_scale(self.scale, 1)?,
        })
    }

    fn min(self, o: Small) -> Option<Small> {
        let (a, b, _) = self.aligned(o)?;
        Some(if a.cmp(&b) == Ordering::Greater {
            o
        } else {
            self
        })
    }

    fn is_positive(self) -> bool {
        self.m > 0
    }

    fn is_negative(self) -> bool {
        self.m < 0
    }

    fn round(self, decimals: u8, mode: Round) -> Option<i128> {
        if decimals >= self.scale {
            return mul_i128(self.m, pow10_small(decimals - self.scale)?);
        }
        div_round_pow10(self.m, self.scale - decimals, mode)
    }

    /// Also where the product itself leaves i128 but the rounded figure does not (a PnL at the
    /// funding scale times a weight): with `e1 = scale - decimals` and `e2 = o.scale`,
    /// `self = q 10^e1 + r` and `q o = x1 10^e2 + x0` (Euclidean), the product is
    /// `x1 + (x0 10^e1 + r o) / 10^(e1 + e2)`, every part in i128 while `e1 + e2 <= 38`.
    /// Floor and ceil only; `o >= 0`.
    fn times_round(self, o: Small, decimals: u8, mode: Round) -> Option<i128> {
        let product = self.times(o);
        if product.is_some() || checked_scale(self.scale, o.scale).is_none() {
            return product?.round(decimals, mode);
        }
        if o.m < 0 || mode == Round::Trunc {
            return None;
        }
        let e1 = self.scale.checked_sub(decimals)?;
        let p1 = pow10_small(e1)?;
        let (q, r) = div_rem_euclid_pow10(self.m, e1)?;
        let x = mul_i128(q, o.m)?;
        let (x1, x0) = div_rem_euclid_pow10(x, o.scale)?;
        let fraction = mul_i128(x0, p1)?.checked_add(mul_i128(r, o.m)?)?;
        x1.checked_add(div_round_pow10(fraction, e1.checked_add(o.scale)?, mode)?)
    }
}

impl Term for Exact {
    const ZERO: Exact = Exact::ZERO;

    fn new(v: i128, scale: u8) -> Exact {
        Exact::new(v, scale)
    }

    fn product_i64(a: i64, sa: u8, b: i64, sb: u8) -> Option<Exact> {
        Exact::new(i128::from(a), sa)
            .times(Exact::new(i128::from(b), sb))
            .ok()
    }

    fn plus(self, o: Exact) -> Option<Exact> {
        Exact::plus(self, o).ok()
    }

    fn negate(self) -> Option<Exact> {
        Exact::negate(self).ok()
    }

    fn times(self, o: Exact) -> Option<Exact> {
        Exact::times(self, o).ok()
    }

    fn half(self) -> Option<Exact> {
        Exact::half(self).ok()
    }

    fn min(self, o: Exact) -> Option<Exact> {
        Exact::min(self, o).ok()
    }

    fn is_positive(self) -> bool {
        Exact::is_positive(&self)
    }

    fn is_negative(self) -> bool {
        Exact::is_negative(&self)
    }

    fn round(self, decimals: u8, mode: Round) -> Option<i128> {
        Exact::round(self, decimals, mode).ok()
    }
}

/// The scale of a product, within what `Exact` holds.
fn checked_scale(a: u8, b: u8) -> Option<u8> {
    a.checked_add(b).filter(|s| *s <= EXACT_SCALE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(s: Option<Small>, e: Result<Exact, crate::num::Overflow>) -> Result<(), TestCaseError> {
        if let Some(s) = s {
            let e = e.map_err(|_| TestCaseError::fail("exact overflowed where small answered"))?;
            prop_assert_eq!(e.scale(), s.scale);
            prop_assert_eq!(e.small_mantissa(), Some(s.m));
        }
        Ok(())
    }

    fn value() -> impl Strategy<Value = (i128, u8)> {
        (
            prop_oneof![
                any::<i64>().prop_map(i128::from),
                any::<i128>(),
                -1000i128..1000
            ],
            0u8..40,
        )
    }

    proptest! {
        /// Each operation gives Exact's mantissa at Exact's scale wherever it answers, and
        /// rounds as Exact does.
        #[test]
        fn every_operation_is_exacts(a in value(), b in value(), d in 0u8..45) {
            let (sa, sb) = (Small::new(a.0, a.1), Small::new(b.0, b.1));
            let (ea, eb) = (Exact::new(a.0, a.1), Exact::new(b.0, b.1));
            same(sa.plus(sb), ea.plus(eb))?;
            same(sa.minus(sb), ea.minus(eb))?;
            same(sa.times(sb), ea.times(eb))?;
            same(sa.abs(), ea.abs())?;
            same(sa.half(), ea.half())?;
            same(sa.min(sb), ea.min(eb))?;
            for mode in [Round::Floor, Round::Ceil, Round::Trunc] {
                if let Some(v) = sa.round(d, mode) {
                    prop_assert_eq!(ea.round(d, mode), Ok(v));
                }
                if let Some(v) = sa.times_round(sb, d, mode) {
                    prop_assert_eq!(ea.times(eb).and_then(|p| p.round(d, mode)), Ok(v));
                }
            }
            if let (Ok(x), Ok(y)) = (i64::try_from(a.0), i64::try_from(b.0)) {
                same(Small::product_i64(x, a.1, y, b.1), ea.times(eb))?;
            }
        }
    }

    #[test]
    fn it_declines_what_only_the_wide_path_holds() {
        let big = Small::new(i128::MAX / 2 + 1, 0);
        assert_eq!(big.plus(big), None);
        assert_eq!(big.times(Small::new(3, 0)), None);
        assert_eq!(Small::new(1, 40).times(Small::new(1, 40)), None);
        assert_eq!(Small::new(1, 0).round(39, Round::Floor), None);
        // ...and answers the everyday figures: 2.5 x 4 = 10.
        let v = Small::new(25, 1).times(Small::new(4, 0)).unwrap();
        assert_eq!(v.floor(0), Some(10));
    }

    /// A PnL of 3,494.322249 at 23 decimals times a weight of 0.95: the product needs 43
    /// digits, the figure 10; the split answers it as Exact does, in both directions.
    #[test]
    fn a_product_beyond_i128_rounds_through_the_split() {
        let u = Small::new(3_494_322_249 * 10i128.pow(17) + 12_345, 23);
        let w = Small::new(95 * 10i128.pow(16), 18);
        assert_eq!(u.times(w), None);
        let (eu, ew) = (Exact::new(u.m, u.scale), Exact::new(w.m, w.scale));
        for mode in [Round::Floor, Round::Ceil] {
            let want = eu.times(ew).unwrap().round(6, mode).unwrap();
            assert_eq!(u.times_round(w, 6, mode), Some(want));
            let neg = u.negate().unwrap();
            let want = eu
                .negate()
                .unwrap()
                .times(ew)
                .unwrap()
                .round(6, mode)
                .unwrap();
            assert_eq!(neg.times_round(w, 6, mode), Some(want));
        }
    }
}
