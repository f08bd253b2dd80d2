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

/// Powers of ten that fit an i128 (10^0 ..= 10^38).
const POW10_I128: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Powers of ten up to 10^76 as I256, built once.
static POW10_WIDE: std::sync::LazyLock<[I256; 77]> = std::sync::LazyLock::new(|| {
    let mut t = [I256::ONE; 77];
    for i in 1..77 {
        t[i] = t[i - 1] * I256::new(10);
    }
    t
});

/// `10^k` as I256 for `k <= 76`.
pub fn pow10(k: u8) -> Result<I256, Overflow> {
    POW10_WIDE.get(usize::from(k)).copied().ok_or(Overflow)
}

/// `10^k` as i128 for `k <= 38`.
pub fn pow10_small(k: u8) -> Option<i128> {
    POW10_I128.get(usize::from(k)).copied()
}

/// A mantissa: an i128 while it fits (the common case, and much faster), 256 bits beyond.
#[derive(Clone, Copy, Debug)]
enum Mant {
    Small(i128),
    Wide(I256),
}

impl Mant {
    fn wide(self) -> I256 {
        match self {
            Mant::Small(v) => I256::from(v),
            Mant::Wide(v) => v,
        }
    }

    /// Back to the small form when the value fits.
    fn norm(v: I256) -> Mant {
        match i128::try_from(v) {
            Ok(s) => Mant::Small(s),
            Err(_) => Mant::Wide(v),
        }
    }

    fn add(self, o: Mant) -> Result<Mant, Overflow> {
        if let (Mant::Small(a), Mant::Small(b)) = (self, o) {
            if let Some(v) = a.checked_add(b) {
                return Ok(Mant::Small(v));
            }
        }
        Ok(Mant::norm(
            self.wide().checked_add(o.wide()).ok_or(Overflow)?,
        ))
    }

    fn mul(self, o: Mant) -> Result<Mant, Overflow> {
        if let (Mant::Small(a), Mant::Small(b)) = (self, o) {
            if let Some(v) = super::mul::mul_i128(a, b) {
                return Ok(Mant::Small(v));
            }
        }
        Ok(Mant::norm(
            self.wide().checked_mul(o.wide()).ok_or(Overflow)?,
        ))
    }

    fn neg(self) -> Result<Mant, Overflow> {
        match self {
            Mant::Small(v) => match v.checked_neg() {
                Some(n) => Ok(Mant::Small(n)),
                None => Ok(Mant::Wide(-I256::from(v))),
            },
            Mant::Wide(v) => Ok(Mant::norm(v.checked_neg().ok_or(Overflow)?)),
        }
    }

    fn scale_up(self, k: u8) -> Result<Mant, Overflow> {
        if k == 0 {
            return Ok(self);
        }
        match pow10_small(k) {
            Some(f) => self.mul(Mant::Small(f)),
            None => self.mul(Mant::Wide(pow10(k)?)),
        }
    }

    fn signum(self) -> i32 {
        match self {
            Mant::Small(v) => v.signum() as i32,
            Mant::Wide(v) => v.signum().as_i32(),
        }
    }

    fn cmp(self, o: Mant) -> Ordering {
        match (self, o) {
            (Mant::Small(a), Mant::Small(b)) => a.cmp(&b),
            _ => self.wide().cmp(&o.wide()),
        }
    }
}

/// An exact rational `m / 10^scale`.
#[derive(Clone, Copy, Debug)]
pub struct Exact {
    m: Mant,
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
        m: Mant::Small(0),
        scale: 0,
    };

    /// `v / 10^scale`.
    pub fn new(v: i128, scale: u8) -> Exact {
        Exact {
            m: Mant::Small(v),
            scale,
        }
    }

    /// An integer.
    pub fn int(v: i128) -> Exact {
        Exact::new(v, 0)
    }

    pub fn mantissa(&self) -> I256 {
        self.m.wide()
    }

    /// The mantissa when it is held as an i128 (the fast paths of callers that repeat one
    /// product many times).
    pub fn small_mantissa(&self) -> Option<i128> {
        match self.m {
            Mant::Small(v) => Some(v),
            Mant::Wide(_) => None,
        }
    }

    pub fn scale(&self) -> u8 {
        self.scale
    }

    pub fn signum(&self) -> i32 {
        self.m.signum()
    }

    pub fn is_negative(&self) -> bool {
        self.signum() < 0
    }

    pub fn is_positive(&self) -> bool {
        self.signum() > 0
    }

    pub fn is_zero(&self) -> bool {
        self.signum() == 0
    }

    /// The same value at a larger scale.
    pub fn rescale(self, scale: u8) -> Result<Exact, Overflow> {
        debug_assert!(scale >= self.scale);
        if scale > EXACT_SCALE_MAX {
            return Err(Overflow);
        }
        Ok(Exact {
            m: self.m.scale_up(scale - self.scale)?,
            scale,
        })
    }

    fn aligned(self, other: Exact) -> Result<(Mant, Mant, u8), Overflow> {
        if self.scale == other.scale {
            return Ok((self.m, other.m, self.scale));
        }
        let scale = self.scale.max(other.scale);
        Ok((self.rescale(scale)?.m, other.rescale(scale)?.m, scale))
    }

    pub fn plus(self, other: Exact) -> Result<Exact, Overflow> {
        let (a, b, scale) = self.aligned(other)?;
        Ok(Exact {
            m: a.add(b)?,
            scale,
        })
    }

    pub fn minus(self, other: Exact) -> Result<Exact, Overflow> {
        self.plus(other.negate()?)
    }

    pub fn times(self, other: Exact) -> Result<Exact, Overflow> {
        let scale = self.scale.checked_add(other.scale).ok_or(Overflow)?;
        if scale > EXACT_SCALE_MAX {
            return Err(Overflow);
        }
        Ok(Exact {
            m: self.m.mul(other.m)?,
            scale,
        })
    }

    pub fn negate(self) -> Result<Exact, Overflow> {
        Ok(Exact {
            m: self.m.neg()?,
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

    /// Half of the value, exactly: `x / 2` is `5x / 10`.
    pub fn half(self) -> Result<Exact, Overflow> {
        let scale = self.scale.checked_add(1).ok_or(Overflow)?;
        if scale > EXACT_SCALE_MAX {
            return Err(Overflow);
        }
        Ok(Exact {
            m: self.m.mul(Mant::Small(5))?,
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
        Ok(a.cmp(b))
    }

    /// The value in units of `10^-decimals`, rounded once in the given direction.
    pub fn round(self, decimals: u8, mode: Round) -> Result<i128, Overflow> {
        if decimals >= self.scale {
            return match self.m.scale_up(decimals - self.scale)? {
                Mant::Small(v) => Ok(v),
                Mant::Wide(_) => Err(Overflow),
            };
        }
        let k = self.scale - decimals;
        if let Mant::Small(n) = self.m {
            if let Some(q) = super::pow10div::div_round_pow10(n, k, mode) {
                return Ok(q);
            }
        }
        let v = div_round(self.m.wide(), pow10(k)?, mode)?;
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

/// `n / d` for `d > 0` in i128, rounded; u64 division when both fit (the common case).
pub(crate) fn div_round_small(n: i128, d: i128, mode: Round) -> i128 {
    let (q, r) = if n.unsigned_abs() <= u128::from(u64::MAX) && d <= i128::from(u64::MAX) {
        let (a, b) = (n.unsigned_abs() as u64, d as u64);
        let (q, r) = ((a / b) as i128, (a % b) as i128);
        if n < 0 {
            (-q, -r)
        } else {
            (q, r)
        }
    } else {
        (n / d, n % d)
    };
    match mode {
        Round::Trunc => q,
        Round::Floor if r < 0 => q - 1,
        Round::Ceil if r > 0 => q + 1,
        _ => q,
    }
}

/// `n / d` for `d > 0`, rounded in the given direction.
pub fn div_round(n: I256, d: I256, mode: Round) -> Result<I256, Overflow> {
    if d <= I256::ZERO {
        return Err(Overflow);
    }
    if let (Ok(ns), Ok(ds)) = (i128::try_from(n), i128::try_from(d)) {
        return Ok(I256::from(div_round_small(ns, ds, mode)));
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
    if d <= 0 {
        return Err(Overflow);
    }
    if let Some(n) = super::mul::mul_i128(a, b) {
        return Ok(div_round_small(n, d, mode));
    }
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
        assert_eq!(sq.cmp_exact(big), Ok(Ordering::Greater));
        assert_eq!(sq.minus(sq).unwrap().floor(0), Ok(0));
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

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The reference: the same operation done in 256 bits only.
    fn wide_round(n: I256, scale: u8, decimals: u8, mode: Round) -> Option<i128> {
        let v = if decimals >= scale {
            n.checked_mul(pow10(decimals - scale).ok()?)?
        } else {
            let d = pow10(scale - decimals).ok()?;
            let q = n / d;
            let r = n - q * d;
            match mode {
                Round::Trunc => q,
                Round::Floor if r < I256::ZERO => q - 1,
                Round::Ceil if r > I256::ZERO => q + 1,
                _ => q,
            }
        };
        i128::try_from(v).ok()
    }

    proptest! {
        #[test]
        fn fast_path_matches_wide(a in any::<i64>(), b in any::<i64>(), c in any::<i128>(),
                                  sa in 0u8..20, sb in 0u8..20, d in 0u8..24) {
            let x = Exact::new(i128::from(a), sa);
            let y = Exact::new(i128::from(b), sb);
            let z = Exact::new(c, sa);
            let p = x.times(y).unwrap();
            let wide = I256::from(a) * I256::from(b);
            for mode in [Round::Floor, Round::Ceil, Round::Trunc] {
                prop_assert_eq!(p.round(d, mode).ok(), wide_round(wide, sa + sb, d, mode));
            }
            let s = x.plus(z).unwrap();
            let ws = I256::from(a) + I256::from(c);
            prop_assert_eq!(s.floor(d).ok(), wide_round(ws, sa, d, Round::Floor));
        }
    }
}
