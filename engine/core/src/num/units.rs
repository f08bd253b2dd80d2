//! Newtypes for every unit that can be confused, each convertible to an [`Exact`] value with its
//! scale, so that products carry their scale with them and round exactly once.

use super::exact::{Exact, Overflow};

/// Scale of ratios (weights, margin fractions, rates): parts per 10^18.
pub const RATIO_DECIMALS: u8 = 18;

/// A position or order size in lots (`10^-size_decimals` of the base asset). Positive is long.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Lots(pub i64);

/// A price in ticks (`10^-price_decimals` of the quote asset per unit of base).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Ticks(pub i64);

/// An amount in native units of an asset (`10^-decimals`).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Native(pub i128);

/// A ratio held exactly as parts per 10^18 (weights, fractions, rates).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Ratio(pub i128);

impl Lots {
    pub const ZERO: Lots = Lots(0);

    pub fn exact(self, size_decimals: u8) -> Exact {
        Exact::new(i128::from(self.0), size_decimals)
    }

    pub fn abs(self) -> Lots {
        Lots(self.0.abs())
    }

    pub fn signum(self) -> i64 {
        self.0.signum()
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Lots) -> Result<Lots, Overflow> {
        self.0.checked_add(other.0).map(Lots).ok_or(Overflow)
    }

    pub fn checked_sub(self, other: Lots) -> Result<Lots, Overflow> {
        self.0.checked_sub(other.0).map(Lots).ok_or(Overflow)
    }
}

impl Ticks {
    pub fn exact(self, price_decimals: u8) -> Exact {
        Exact::new(i128::from(self.0), price_decimals)
    }
}

impl Native {
    pub const ZERO: Native = Native(0);

    pub fn exact(self, decimals: u8) -> Exact {
        Exact::new(self.0, decimals)
    }

    pub fn checked_add(self, other: Native) -> Result<Native, Overflow> {
        self.0.checked_add(other.0).map(Native).ok_or(Overflow)
    }

    pub fn checked_sub(self, other: Native) -> Result<Native, Overflow> {
        self.0.checked_sub(other.0).map(Native).ok_or(Overflow)
    }

    pub fn checked_neg(self) -> Result<Native, Overflow> {
        self.0.checked_neg().map(Native).ok_or(Overflow)
    }
}

impl Ratio {
    pub const ZERO: Ratio = Ratio(0);
    pub const ONE: Ratio = Ratio(1_000_000_000_000_000_000);

    pub fn exact(self) -> Exact {
        Exact::new(self.0, RATIO_DECIMALS)
    }
}
