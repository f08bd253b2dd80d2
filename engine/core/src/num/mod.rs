//! Exact numbers: decimal strings from the wire, native integers in the state, and 256-bit
//! intermediates that are rounded once per term. No floating point anywhere.

pub mod decimal;
pub mod exact;
pub(crate) mod mul;
pub(crate) mod pow10div;
pub(crate) mod small;
pub mod units;

pub use decimal::{format_scaled, format_trimmed, Dec, DecRangeError, DecSyntaxError, Scaled};
pub use exact::{mul_div, Exact, Overflow, Round};
pub use units::{Lots, Native, Ratio, Ticks, RATIO_DECIMALS};
