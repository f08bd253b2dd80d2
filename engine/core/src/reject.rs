//! Rejections as values: a reason code of the contract and a message that names the problem.

use crate::num::{Dec, DecRangeError, Overflow};
use crate::record::{Detail, Reason};
use std::fmt::Write as _;

/// Why an event is not applied. The state is unchanged when one is returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Reject {
    pub reason: Reason,
    pub detail: Detail,
}

impl Reject {
    pub fn new(reason: Reason, detail: std::fmt::Arguments<'_>) -> Reject {
        let mut d = Detail::new("");
        let _ = d.write_fmt(detail);
        Reject { reason, detail: d }
    }
}

/// `reject!(Reason::X, "format {}", args)` builds a [`Reject`] without allocating.
#[macro_export]
macro_rules! reject {
    ($reason:expr, $($arg:tt)*) => {
        $crate::reject::Reject::new($reason, format_args!($($arg)*))
    };
}

/// Converts a decimal field to native units under the field's decimals, with the field's reason
/// code for a value that is too fine or too large.
pub fn scaled(dec: &Dec, decimals: u8, reason: Reason, field: &str) -> Result<i128, Reject> {
    dec.to_scaled(decimals).map_err(|e| match e {
        DecRangeError::TooFine { scale, allowed } => reject!(
            reason,
            "{field} {dec} has {scale} decimals, at most {allowed} allowed"
        ),
        DecRangeError::OutOfRange => reject!(reason, "{field} {dec} is out of range"),
    })
}

/// Like [`scaled`], and the value must be positive and at most `max`.
pub fn positive(
    dec: &Dec,
    decimals: u8,
    max: i128,
    reason: Reason,
    field: &str,
) -> Result<i128, Reject> {
    let v = scaled(dec, decimals, reason, field)?;
    if v <= 0 {
        return Err(reject!(reason, "{field} must be positive, got {dec}"));
    }
    if v > max {
        return Err(reject!(reason, "{field} {dec} is out of range"));
    }
    Ok(v)
}

/// An overflow in the arithmetic of an event, as a rejection with the given reason.
pub fn overflow(reason: Reason, what: &str) -> impl Fn(Overflow) -> Reject + '_ {
    move |_| reject!(reason, "{what} overflows")
}
