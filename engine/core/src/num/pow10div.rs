//! Division of an i128 by a power of ten without a 128-bit division instruction sequence.
//!
//! Every rounding of an exact figure divides by `10^k`, and at the funding scale the dividend
//! leaves 64 bits, where Rust's `/` on i128 calls a software routine (`__divti3`: a few
//! dozen instructions and a hardware division or two). For `10^k < 2^64` the divisor is
//! known in advance, so a precomputed reciprocal turns the division into two multiplications
//! (Möller and Granlund, "Improved division by invariant integers", 2011, algorithm 4: a
//! two-word by one-word division with a normalised divisor). Divisors beyond 64 bits
//! (`k >= 20`, a rounding of a product of two 18-decimal figures) divide twice: by `10^19`,
//! then the quotient by `10^(k - 19)`.

use super::Round;

/// Per `k` in `0..=19`: `10^k`, the shift that normalises it (top bit set), and the
/// reciprocal `floor((2^128 - 1) / (10^k << shift)) - 2^64` of the normalised divisor.
const TABLE: [(u64, u32, u64); 20] = table();

const fn table() -> [(u64, u32, u64); 20] {
    let mut t = [(0u64, 0u32, 0u64); 20];
    let mut k = 0;
    let mut d: u64 = 1;
    while k < 20 {
        let s = d.leading_zeros();
        let dn = d << s;
        let v = (u128::MAX / dn as u128 - (1u128 << 64)) as u64;
        t[k] = (d, s, v);
        if k < 19 {
            d *= 10;
        }
        k += 1;
    }
    t
}

/// `(u1 2^64 + u0) / d` and its remainder for a normalised `d` (top bit set), `u1 < d`, and
/// `v` the reciprocal of `d` as in [`TABLE`].
#[inline]
fn div_2by1(u1: u64, u0: u64, d: u64, v: u64) -> (u64, u64) {
    let q = u128::from(v) * u128::from(u1);
    let q = q.wrapping_add((u128::from(u1) << 64) | u128::from(u0));
    let mut q1 = ((q >> 64) as u64).wrapping_add(1);
    let q0 = q as u64;
    let mut r = u0.wrapping_sub(q1.wrapping_mul(d));
    if r > q0 {
        q1 = q1.wrapping_sub(1);
        r = r.wrapping_add(d);
    }
    if r >= d {
        q1 += 1;
        r -= d;
    }
    (q1, r)
}

/// `n / 10^k` and `n % 10^k` for `k <= 19`.
#[inline]
fn div_rem_u128(n: u128, k: usize) -> (u128, u64) {
    let (d, s, v) = TABLE[k];
    let (n1, n0) = ((n >> 64) as u64, n as u64);
    // The high word alone: rarely at least the divisor (a dividend beyond 2^64 10^k).
    let (q1, r1) = if n1 < d { (0, n1) } else { (n1 / d, n1 % d) };
    // r1 < d, so the shifted pair is below the shifted divisor.
    let (u1, u0) = if s == 0 {
        (r1, n0)
    } else {
        ((r1 << s) | (n0 >> (64 - s)), n0 << s)
    };
    let (q0, r) = div_2by1(u1, u0, d << s, v);
    ((u128::from(q1) << 64) | u128::from(q0), r >> s)
}

/// `(n / 10^k, n % 10^k)` truncated toward zero, as i128's `/` and `%` give them; None for
/// `k > 38` (the divisor would not be an i128).
#[inline]
pub(crate) fn div_rem_pow10(n: i128, k: u8) -> Option<(i128, i128)> {
    let k = usize::from(k);
    let (q, r) = if k < TABLE.len() {
        let (q, r) = div_rem_u128(n.unsigned_abs(), k);
        (q, u128::from(r))
    } else if k <= 38 {
        // 10^k = 10^19 x 10^(k - 19), both in the table: floor(floor(n / a) / b) is
        // floor(n / ab), and the remainder is r2 x a + r1 < 10^k.
        let (q1, r1) = div_rem_u128(n.unsigned_abs(), TABLE.len() - 1);
        let (q, r2) = div_rem_u128(q1, k - (TABLE.len() - 1));
        let a = u128::from(TABLE[TABLE.len() - 1].0);
        (q, u128::from(r2) * a + u128::from(r1))
    } else {
        return None;
    };
    // |n| <= 2^127, so q fits unless n is i128::MIN and k is 0, where q is 2^127; r < 10^38.
    let (q, r) = (q as i128, r as i128);
    Some(if n < 0 {
        (q.wrapping_neg(), -r)
    } else {
        (q, r)
    })
}

/// `floor(n / 10^k)` and the non-negative remainder, as `div_euclid` and `rem_euclid` give them.
#[inline]
pub(crate) fn div_rem_euclid_pow10(n: i128, k: u8) -> Option<(i128, i128)> {
    let (q, r) = div_rem_pow10(n, k)?;
    Some(if r < 0 {
        (q - 1, r + super::exact::pow10_small(k)?)
    } else {
        (q, r)
    })
}

/// `n / 10^k` rounded in the given direction; None for `k > 38`.
#[inline]
pub(crate) fn div_round_pow10(n: i128, k: u8, mode: Round) -> Option<i128> {
    let (q, r) = div_rem_pow10(n, k)?;
    Some(match mode {
        Round::Trunc => q,
        Round::Floor if r < 0 => q - 1,
        Round::Ceil if r > 0 => q + 1,
        _ => q,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain(n: i128, k: u8) -> (i128, i128) {
        let d = 10i128.pow(u32::from(k));
        (n / d, n % d)
    }

    fn edges() -> Vec<i128> {
        let mut v = vec![0, 1, -1, i128::MAX, i128::MIN, i128::MIN + 1, i128::MAX - 1];
        for k in 0..=38u32 {
            let p = 10i128.pow(k);
            for x in [p, p - 1, p + 1, p.saturating_mul(7) - 1] {
                v.extend([x, -x]);
            }
        }
        for b in 0..127u32 {
            let p = 1i128 << b;
            v.extend([p, p - 1, p + 1, -p, -(p - 1)]);
        }
        v
    }

    #[test]
    fn table_holds_the_normalised_reciprocals() {
        for (k, &(d, s, v)) in TABLE.iter().enumerate() {
            assert_eq!(u128::from(d), 10u128.pow(k as u32));
            assert!((d << s) >> 63 == 1, "normalised");
            let dn = u128::from(d << s);
            assert_eq!(u128::from(v) + (1 << 64), u128::MAX / dn);
        }
    }

    #[test]
    fn edge_dividends_divide_as_plain_division_does() {
        for n in edges() {
            for k in 0..=38u8 {
                assert_eq!(div_rem_pow10(n, k), Some(plain(n, k)), "{n} / 10^{k}");
                let d = 10i128.pow(u32::from(k));
                let e = (n.div_euclid(d), n.rem_euclid(d));
                assert_eq!(div_rem_euclid_pow10(n, k), Some(e), "{n} euclid 10^{k}");
            }
        }
        assert_eq!(div_rem_pow10(i128::MIN, 1), Some(plain(i128::MIN, 1)));
        assert_eq!(div_rem_pow10(5, 39), None);
    }

    proptest! {
        #[test]
        fn any_dividend_divides_as_plain_division_does(n in any::<i128>(), k in 0u8..=38, shift in 0u32..127) {
            // Dividends of every magnitude, not only near 2^127.
            let n = n >> shift;
            prop_assert_eq!(div_rem_pow10(n, k), Some(plain(n, k)));
            let d = 10i128.pow(u32::from(k));
            prop_assert_eq!(div_rem_euclid_pow10(n, k), Some((n.div_euclid(d), n.rem_euclid(d))));
            for mode in [Round::Floor, Round::Ceil, Round::Trunc] {
                let want = super::super::exact::div_round_small(n, d, mode);
                prop_assert_eq!(div_round_pow10(n, k, mode), Some(want));
            }
        }
    }
}
