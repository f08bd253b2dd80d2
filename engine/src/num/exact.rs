//! Exact intermediate values and the one rounding step of every term.
//!
//! The margin model multiplies up to four decimals (a balance, a price, a weight, a power of ten)
//! before it rounds once. Those products overflow i128, so they are held as [`Exact`]: a 256-bit
//! mantissa over a power of ten. Every operation is checked; an overflow is an [`Overflow`] value,
//! never a wrap, and the caller turns it into a rejection.

use ethnum::I256;
use std::cmp::Ordering;

/// Arithmetic left the representable range. Events that cause it are rejected, state unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Overflow;

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("arithmetic overflow")
    }
}

/// Largest power of ten an I256 holds (5.7e76).
pub const EXACT_SCALE_MAX: u8 = 76;

/// `10^k` as I256 for `k <= 76`.
pub fn pow10(k: u8) -> Result<I256, Overflow> {
    if k > EXACT_SCALE_MAX {
        return Err(Overflow);
    }
    // A table would be faster; exponentiation by squaring is 7 multiplications at most.
    Ok(I256::new(10).pow(u32::from(k)))
}

/// An exact rational `m / 10^scale`.
#[derive(Clone, Copy, Debug)]
pub struct Exact {
    m: I256,
    scale: u8,
}

/// Direction of the single rounding step that turns an exact term into native units.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Round {
    /// Toward -infinity: collateral and PnL terms, amounts paid to an account.
    Floor,
    /// Toward +infinity: requirements, amounts an account pays.
    Ceil,
    /// Toward zero: the truncations the model writes for transfers (fill notional, shares).
    Trunc,
}

impl Exact {
    pub const ZERO: Exact = Exact {
        m: I256::ZERO,
        scale: 0,
    };

    /// `v / 10^scale`.
    pub fn new(v: i128, scale: u8) -> Exact {
        Exact {
            m: I256::from(v),
            scale,
        }
    }

    /// An integer.
    pub fn int(v: i128) -> Exact {
        Exact::new(v, 0)
    }

    pub fn mantissa(&self) -> I256 {
        self.m
    }

    pub fn scale(&self) -> u8 {
        self.scale
    }

    pub fn signum(&self) -> i32 {
        self.m.signum().as_i32()
    }

    pub fn is_negative(&self) -> bool {
        self.m < I256::ZERO
    }

    pub fn is_positive(&self) -> bool {
        self.m > I256::ZERO
    }

    pub fn is_zero(&self) -> bool {
        self.m == I256::ZERO
    }

    /// The same value at a larger scale.
    pub fn rescale(self, scale: u8) -> Result<Exact, Overflow> {
        debug_assert!(scale >= self.scale);
        let factor = pow10(scale - self.scale)?;
        Ok(Exact {
            m: self.m.checked_mul(factor).ok_or(Overflow)?,
            scale,
        })
    }

    fn aligned(self, other: Exact) -> Result<(I256, I256, u8), Overflow> {
        let scale = self.scale.max(other.scale);
        let a = self.rescale(scale)?;
        let b = other.rescale(scale)?;
        Ok((a.m, b.m, scale))
    }

    pub fn plus(self, other: Exact) -> Result<Exact, Overflow> {
        let (a, b, scale) = self.aligned(other)?;
        Ok(Exact {
            m: a.checked_add(b).ok_or(Overflow)?,
            scale,
        })
    }

    pub fn minus(self, other: Exact) -> Result<Exact, Overflow> {
        let (a, b, scale) = self.aligned(other)?;
        Ok(Exact {
            m: a.checked_sub(b).ok_or(Overflow)?,
            scale,
        })
    }

    pub fn times(self, other: Exact) -> Result<Exact, Overflow> {
        let scale = self.scale.checked_add(other.scale).ok_or(Overflow)?;
        if scale > EXACT_SCALE_MAX {
            return Err(Overflow);
        }
        Ok(Exact {
            m: self.m.checked_mul(other.m).ok_or(Overflow)?,
            scale,
        })
    }

    pub fn negate(self) -> Result<Exact, Overflow> {
        Ok(Exact {
            m: self.m.checked_neg().ok_or(Overflow)?,
            scale: self.scale,
        })
    }

    pub fn abs(self) -> Result<Exact, Overflow> {
        if self.is_negative() {
            self.negate()
        } else {
            Ok(self)
        }
    }

    /// Divides by a positive integer exactly when possible at a larger scale: `x / 2` is `5x/10`.
    /// Only powers of 2 and 5 keep the value exact; others are refused by the type system of use
    /// (callers only halve).
    pub fn half(self) -> Result<Exact, Overflow> {
        let scale = self.scale.checked_add(1).ok_or(Overflow)?;
        if scale > EXACT_SCALE_MAX {
            return Err(Overflow);
        }
        Ok(Exact {
            m: self.m.checked_mul(I256::new(5)).ok_or(Overflow)?,
            scale,
        })
    }

    pub fn max(self, other: Exact) -> Result<Exact, Overflow> {
        Ok(if self.cmp_exact(other)? == Ordering::Less {
            other
        } else {
            self
        })
    }

    pub fn min(self, other: Exact) -> Result<Exact, Overflow> {
        Ok(if self.cmp_exact(other)? == Ordering::Greater {
            other
        } else {
            self
        })
    }

    /// Exact comparison.
    pub fn cmp_exact(self, other: Exact) -> Result<Ordering, Overflow> {
        let (a, b, _) = self.aligned(other)?;
        Ok(a.cmp(&b))
    }

    /// The value in units of `10^-decimals`, rounded once in the given direction.
    pub fn round(self, decimals: u8, mode: Round) -> Result<i128, Overflow> {
        let v = if decimals >= self.scale {
            self.m
                .checked_mul(pow10(decimals - self.scale)?)
                .ok_or(Overflow)?
        } else {
            div_round(self.m, pow10(self.scale - decimals)?, mode)?
        };
        i128::try_from(v).map_err(|_| Overflow)
    }

    pub fn floor(self, decimals: u8) -> Result<i128, Overflow> {
        self.round(decimals, Round::Floor)
    }

    pub fn ceil(self, decimals: u8) -> Result<i128, Overflow> {
        self.round(decimals, Round::Ceil)
    }

    pub fn trunc(self, decimals: u8) -> Result<i128, Overflow> {
        self.round(decimals, Round::Trunc)
    }
}

/// `n / d` for `d > 0`, rounded in the given direction.
pub fn div_round(n: I256, d: I256, mode: Round) -> Result<I256, Overflow> {
    if d <= I256::ZERO {
        return Err(Overflow);
    }
    let q = n.checked_div(d).ok_or(Overflow)?; // truncates toward zero
    let r = n - q * d;
    Ok(match mode {
        Round::Trunc => q,
        Round::Floor if r < I256::ZERO => q - 1,
        Round::Ceil if r > I256::ZERO => q + 1,
        _ => q,
    })
}

/// `a * b / d` with one rounding, for integers (shares, proportional splits).
pub fn mul_div(a: i128, b: i128, d: i128, mode: Round) -> Result<i128, Overflow> {
    let n = I256::from(a).checked_mul(I256::from(b)).ok_or(Overflow)?;
    let q = div_round(n, I256::from(d), mode)?;
    i128::try_from(q).map_err(|_| Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_of_exact_decimal_is_exact() {
        // 1000 at weight 0.8 is worth exactly 800, never 799.999999.
        let v = Exact::new(1000_000000, 6).times(Exact::new(8, 1)).unwrap();
        assert_eq!(v.floor(6), Ok(800_000000));
    }

    #[test]
    fn rounding_directions() {
        let x = Exact::new(-15, 1); // -1.5
        assert_eq!(x.floor(0), Ok(-2));
        assert_eq!(x.ceil(0), Ok(-1));
        assert_eq!(x.trunc(0), Ok(-1));
        let y = Exact::new(15, 1);
        assert_eq!(y.floor(0), Ok(1));
        assert_eq!(y.ceil(0), Ok(2));
        assert_eq!(y.trunc(0), Ok(1));
        assert_eq!(Exact::new(3, 0).floor(2), Ok(300));
    }

    #[test]
    fn overflow_is_reported() {
        let big = Exact::new(i128::MAX, 0);
        let sq = big.times(big).unwrap();
        assert_eq!(sq.floor(0), Err(Overflow));
        assert!(sq.times(big).is_err());
        assert!(Exact::new(1, 70).times(Exact::new(1, 10)).is_err());
    }

    #[test]
    fn half_is_exact() {
        let x = Exact::new(7, 0).half().unwrap();
        assert_eq!(x.ceil(0), Ok(4));
        assert_eq!(x.floor(0), Ok(3));
        assert_eq!(x.cmp_exact(Exact::new(35, 1)), Ok(Ordering::Equal));
    }

    #[test]
    fn mul_div_rounds_once() {
        assert_eq!(mul_div(7, 3, 2, Round::Trunc), Ok(10));
        assert_eq!(mul_div(-7, 3, 2, Round::Floor), Ok(-11));
        assert_eq!(mul_div(-7, 3, 2, Round::Trunc), Ok(-10));
        assert_eq!(mul_div(7, 3, 2, Round::Ceil), Ok(11));
        assert_eq!(mul_div(i128::MAX, 4, 2, Round::Trunc), Err(Overflow));
    }
}
