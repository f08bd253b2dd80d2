//! Decimal strings as they travel on the wire, held exactly.
//!
//! A [`Dec`] is what the feeder wrote, normalised so that its value alone decides how fine it is:
//! `"65000.50"` and `"65000.5"` are the same `Dec` with scale 1. Converting to native units of a
//! field (`to_scaled`) is where a decimal that is finer than the field allows, or too large, is
//! caught; the parser only rejects text that is not a decimal at all.

use std::fmt;

/// Largest scale (digits after the point) a parsed decimal may keep after normalisation.
pub const DEC_SCALE_MAX: u8 = 38;

/// An exact decimal `mantissa / 10^scale`, normalised (no trailing zero in the fraction).
///
/// A decimal whose digits do not fit (mantissa beyond i128 or more than [`DEC_SCALE_MAX`]
/// fractional digits) is kept as the out-of-range marker, so that the state machine can answer
/// with the reason code of the field it was meant for.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct Dec {
    mantissa: i128,
    scale: u8,
}

/// Why text is not a decimal string.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecSyntaxError {
    Empty,
    BadCharacter,
    MissingDigits,
}

impl fmt::Display for DecSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecSyntaxError::Empty => "empty decimal string",
            DecSyntaxError::BadCharacter => {
                "not a plain decimal (digits, one optional '.', optional leading '-')"
            }
            DecSyntaxError::MissingDigits => "a decimal needs digits on both sides of '.'",
        })
    }
}

/// Why a decimal cannot be converted to a field's native units.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecRangeError {
    /// More fractional digits than the field allows (never silently rounded).
    TooFine { scale: u8, allowed: u8 },
    /// The value does not fit the integer range of the field.
    OutOfRange,
}

impl fmt::Display for DecRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecRangeError::TooFine { scale, allowed } => {
                write!(f, "has {scale} decimals, at most {allowed} allowed")
            }
            DecRangeError::OutOfRange => f.write_str("is out of range"),
        }
    }
}

const OUT_OF_RANGE_SCALE: u8 = u8::MAX;

impl Dec {
    pub const ZERO: Dec = Dec {
        mantissa: 0,
        scale: 0,
    };

    /// The marker for a syntactically valid decimal whose digits do not fit.
    pub const OUT_OF_RANGE: Dec = Dec {
        mantissa: 0,
        scale: OUT_OF_RANGE_SCALE,
    };

    /// A decimal with exactly these parts, checked for nothing: what a decoded binary record
    /// holds until it passes [`Dec::is_canonical`] (the binary codec refuses it otherwise). For
    /// that decoder, fuzzing and tests of the checks; never for parsing text.
    #[doc(hidden)]
    pub fn from_raw_parts(mantissa: i128, scale: u8) -> Dec {
        Dec { mantissa, scale }
    }

    /// Builds a normalised decimal from parts; `None` if the scale is beyond [`DEC_SCALE_MAX`] or
    /// the mantissa is `i128::MIN`.
    pub fn new(mantissa: i128, scale: u8) -> Option<Dec> {
        let (mut m, mut s) = (mantissa, scale);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        (s <= DEC_SCALE_MAX && m != i128::MIN).then_some(Dec {
            mantissa: m,
            scale: s,
        })
    }

    /// An integer as a decimal.
    pub fn from_int(v: i128) -> Dec {
        Dec {
            mantissa: v,
            scale: 0,
        }
    }

    /// Parses `-?[0-9]+(\.[0-9]+)?`. Digits that do not fit give [`Dec::OUT_OF_RANGE`].
    pub fn parse(text: &str) -> Result<Dec, DecSyntaxError> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return Err(DecSyntaxError::Empty);
        }
        let (negative, digits) = match bytes[0] {
            b'-' => (true, &bytes[1..]),
            _ => (false, bytes),
        };
        let dot = digits.iter().position(|&b| b == b'.');
        let (int_part, frac_part) = match dot {
            Some(i) => (&digits[..i], &digits[i + 1..]),
            None => (digits, &digits[digits.len()..]),
        };
        if int_part.is_empty() || (dot.is_some() && frac_part.is_empty()) {
            return Err(DecSyntaxError::MissingDigits);
        }
        if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
            return Err(DecSyntaxError::BadCharacter);
        }
        // Trailing zeros of the fraction carry no value: drop them before counting the scale.
        let frac_len = frac_part.len() - frac_part.iter().rev().take_while(|&&b| b == b'0').count();
        let frac_part = &frac_part[..frac_len];
        if frac_part.len() > DEC_SCALE_MAX as usize {
            return Ok(Dec::OUT_OF_RANGE);
        }
        let mut mantissa: i128 = 0;
        for &b in int_part.iter().chain(frac_part) {
            let digit = i128::from(b - b'0');
            let next = mantissa.checked_mul(10).and_then(|m| m.checked_add(digit));
            match next {
                Some(m) => mantissa = m,
                None => return Ok(Dec::OUT_OF_RANGE),
            }
        }
        if negative {
            mantissa = -mantissa;
        }
        Ok(Dec {
            mantissa,
            scale: frac_part.len() as u8,
        })
    }

    /// True when the value is one [`Dec::parse`] could have made: normalised (no trailing zero
    /// in the fraction), a scale of at most [`DEC_SCALE_MAX`], a mantissa other than `i128::MIN`
    /// (whose magnitude has no i128), or exactly the out-of-range marker. A value decoded from
    /// bytes (a binary frame) is checked with this before it is trusted.
    pub fn is_canonical(&self) -> bool {
        if self.is_out_of_range() {
            return self.mantissa == 0;
        }
        // i128 division is a library call; most mantissas fit in i64.
        let trailing_zero = match i64::try_from(self.mantissa) {
            Ok(m) => m % 10 == 0,
            Err(_) => self.mantissa % 10 == 0,
        };
        self.scale <= DEC_SCALE_MAX
            && self.mantissa != i128::MIN
            && (self.scale == 0 || !trailing_zero)
    }

    pub fn is_out_of_range(&self) -> bool {
        self.scale == OUT_OF_RANGE_SCALE
    }

    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    pub fn scale(&self) -> u8 {
        self.scale
    }

    pub fn is_negative(&self) -> bool {
        !self.is_out_of_range() && self.mantissa < 0
    }

    pub fn is_positive(&self) -> bool {
        !self.is_out_of_range() && self.mantissa > 0
    }

    /// The value in units of `10^-decimals`, exactly, or why it cannot be.
    pub fn to_scaled(&self, decimals: u8) -> Result<i128, DecRangeError> {
        // i128::MIN has no magnitude in i128: refused, so that every caller may take `abs`.
        if self.is_out_of_range() || self.mantissa == i128::MIN {
            return Err(DecRangeError::OutOfRange);
        }
        if self.scale > decimals {
            return Err(DecRangeError::TooFine {
                scale: self.scale,
                allowed: decimals,
            });
        }
        let factor =
            pow10_i128(u32::from(decimals - self.scale)).ok_or(DecRangeError::OutOfRange)?;
        self.mantissa
            .checked_mul(factor)
            .ok_or(DecRangeError::OutOfRange)
    }

    /// Like [`Dec::to_scaled`], bounded to `[-limit, limit]`.
    pub fn to_scaled_within(&self, decimals: u8, limit: i128) -> Result<i128, DecRangeError> {
        let v = self.to_scaled(decimals)?;
        if v.unsigned_abs() > limit.unsigned_abs() {
            return Err(DecRangeError::OutOfRange);
        }
        Ok(v)
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_out_of_range() {
            return f.write_str("<out of range>");
        }
        f.write_str(&format_scaled(self.mantissa, self.scale))
    }
}

/// `value / 10^decimals` for messages, written without allocating.
#[derive(Clone, Copy, Debug)]
pub struct Scaled(pub i128, pub u8);

impl fmt::Display for Scaled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut digits = [0u8; 48];
        let mut i = digits.len();
        let mut v = self.0.unsigned_abs();
        let decimals = usize::from(self.1);
        let mut written = 0;
        while v > 0 || written <= decimals {
            if written == decimals && decimals > 0 {
                i -= 1;
                digits[i] = b'.';
            }
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            written += 1;
        }
        if self.0 < 0 {
            f.write_str("-")?;
        }
        f.write_str(std::str::from_utf8(&digits[i..]).unwrap_or("?"))
    }
}

/// `10^exp` as i128 when it fits (exp <= 38).
pub fn pow10_i128(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

/// Formats `value / 10^decimals` with exactly `decimals` fractional digits: `(1500000, 6)` gives
/// `"1.500000"`.
pub fn format_scaled(value: i128, decimals: u8) -> String {
    let mut out = String::with_capacity(48);
    write_scaled(&mut out, value, decimals);
    out
}

/// Appends `value / 10^decimals` with exactly `decimals` fractional digits to `out`.
pub fn write_scaled(out: &mut String, value: i128, decimals: u8) {
    let mut digits = itoa_u128(value.unsigned_abs());
    let decimals = usize::from(decimals);
    if value < 0 {
        out.push('-');
    }
    if decimals == 0 {
        out.push_str(&digits);
        return;
    }
    if digits.len() <= decimals {
        let pad = decimals + 1 - digits.len();
        digits.insert_str(0, &"0".repeat(pad));
    }
    let split = digits.len() - decimals;
    out.push_str(&digits[..split]);
    out.push('.');
    out.push_str(&digits[split..]);
}

/// Formats `value / 10^decimals` without trailing fractional zeros (`"12.5"`, `"0"`).
pub fn format_trimmed(value: i128, decimals: u8) -> String {
    let mut s = format_scaled(value, decimals);
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

fn itoa_u128(mut v: u128) -> String {
    if v == 0 {
        return "0".to_string();
    }
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    String::from_utf8_lossy(&buf[i..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises_trailing_zeros() {
        let a = Dec::parse("65000.50").unwrap();
        assert_eq!((a.mantissa(), a.scale()), (650005, 1));
        assert_eq!(a.to_scaled(2), Ok(6500050));
        assert_eq!(Dec::parse("0.5000").unwrap().to_scaled(4), Ok(5000));
        assert_eq!(Dec::parse("-0").unwrap(), Dec::ZERO);
    }

    #[test]
    fn too_fine_is_an_error_not_a_rounding() {
        let a = Dec::parse("65000.123").unwrap();
        assert_eq!(
            a.to_scaled(2),
            Err(DecRangeError::TooFine {
                scale: 3,
                allowed: 2
            })
        );
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "", "-", "1.", ".5", "1e5", "+1", "1.2.3", "0x10", " 1", "１",
        ] {
            assert!(Dec::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn huge_values_are_out_of_range_not_errors() {
        let huge = "9".repeat(60);
        assert!(Dec::parse(&huge).unwrap().is_out_of_range());
        let fine = format!("0.{}1", "0".repeat(40));
        assert!(Dec::parse(&fine).unwrap().is_out_of_range());
        assert_eq!(
            Dec::parse(&huge).unwrap().to_scaled(0),
            Err(DecRangeError::OutOfRange)
        );
        let big = Dec::parse("170141183460469231731687303715884105727").unwrap();
        assert_eq!(big.to_scaled(1), Err(DecRangeError::OutOfRange));
    }

    #[test]
    fn scaled_display_matches_format_scaled() {
        for (v, d) in [
            (1_500_000i128, 6u8),
            (-5, 6),
            (0, 2),
            (42, 0),
            (-1, 0),
            (123_456_789, 3),
            (i128::MIN + 1, 4),
        ] {
            assert_eq!(Scaled(v, d).to_string(), format_scaled(v, d), "{v} {d}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(format_scaled(1_500_000, 6), "1.500000");
        assert_eq!(format_scaled(-5, 6), "-0.000005");
        assert_eq!(format_scaled(0, 2), "0.00");
        assert_eq!(format_scaled(42, 0), "42");
        assert_eq!(
            format_scaled(i128::MIN, 0),
            "-170141183460469231731687303715884105728"
        );
        assert_eq!(format_trimmed(-1044928026, 8), "-10.44928026");
        assert_eq!(format_trimmed(1200, 3), "1.2");
        assert_eq!(format_trimmed(0, 3), "0");
    }
}
