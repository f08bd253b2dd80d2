//! Checked and saturating i128 multiplication with a fast path for factors that fit i64.
//!
//! `i128::checked_mul` handles every sign and magnitude with three 64-bit multiplications and
//! a chain of overflow tests. Nearly every product on the hot path (a size times a price, a
//! mantissa times a power of ten, a rate times a move) has both factors inside i64, and the
//! product of two i64 always fits i128: one widening multiplication, no overflow test.

/// `a * b`, None on overflow; the same answers as `i128::checked_mul`.
#[inline(always)]
pub(crate) fn mul_i128(a: i128, b: i128) -> Option<i128> {
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(x), Ok(y)) => Some(i128::from(x) * i128::from(y)),
        _ => a.checked_mul(b),
    }
}

/// `a * b` clamped to i128's range; the same answers as `i128::saturating_mul`.
#[inline(always)]
pub(crate) fn mul_sat_i128(a: i128, b: i128) -> i128 {
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(x), Ok(y)) => i128::from(x) * i128::from(y),
        _ => a.saturating_mul(b),
    }
}

#[cfg(test)]
mod tests {
    use super::{mul_i128, mul_sat_i128};
    use proptest::prelude::*;

    fn factor() -> impl Strategy<Value = i128> {
        prop_oneof![
            any::<i64>().prop_map(i128::from),
            any::<i128>(),
            any::<i128>().prop_map(|v| v >> 64),
            -3i128..3,
        ]
    }

    #[test]
    fn edges_match_checked_mul() {
        let edges = [
            0,
            1,
            -1,
            i128::from(i64::MAX),
            i128::from(i64::MIN),
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
            i128::MAX,
            i128::MIN,
            1 << 63,
            1 << 64,
            -(1 << 64),
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(mul_i128(a, b), a.checked_mul(b), "{a} x {b}");
                assert_eq!(mul_sat_i128(a, b), a.saturating_mul(b), "{a} x {b}");
            }
        }
    }

    proptest! {
        #[test]
        fn it_is_checked_mul(a in factor(), b in factor()) {
            prop_assert_eq!(mul_i128(a, b), a.checked_mul(b));
            prop_assert_eq!(mul_sat_i128(a, b), a.saturating_mul(b));
        }
    }
}
