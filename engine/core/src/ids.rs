//! Identifiers: account and order ids from the wire, dense indices of listed assets and markets,
//! and inline names that never allocate.

use std::fmt;

/// Longest asset or market name, in bytes.
pub const SYMBOL_LEN_MAX: usize = 32;

/// An asset or market name held inline (no allocation on the hot path): 1 to 32 bytes of
/// `[A-Za-z0-9._/:-]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct Symbol {
    len: u8,
    bytes: [u8; SYMBOL_LEN_MAX],
}

impl Symbol {
    /// Checks and copies a name; the error says what is wrong with it.
    pub fn new(name: &str) -> Result<Symbol, String> {
        let b = name.as_bytes();
        if b.is_empty() {
            return Err("name is empty".to_string());
        }
        if b.len() > SYMBOL_LEN_MAX {
            return Err(format!(
                "name {name:?} is {} bytes, at most {SYMBOL_LEN_MAX} allowed",
                b.len()
            ));
        }
        let allowed = |c: &u8| c.is_ascii_alphanumeric() || b"._/:-".contains(c);
        if !b.iter().all(allowed) {
            return Err(format!(
                "name {name:?} has a character outside [A-Za-z0-9._/:-]"
            ));
        }
        let mut bytes = [0u8; SYMBOL_LEN_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Symbol {
            len: b.len() as u8,
            bytes,
        })
    }

    /// True when the value is one [`Symbol::new`] could have made: 1 to 32 allowed bytes and
    /// zeros after them. A value decoded from bytes (a binary frame) is checked with this before
    /// it is trusted.
    pub fn is_valid(&self) -> bool {
        let len = usize::from(self.len);
        (1..=SYMBOL_LEN_MAX).contains(&len)
            && self.bytes[..len]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._/:-".contains(c))
            && self.bytes[len..].iter().all(|&b| b == 0)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`); an archived value that was tampered with
        // shows as an empty name rather than panicking.
        std::str::from_utf8(&self.bytes[..usize::from(self.len).min(SYMBOL_LEN_MAX)]).unwrap_or("")
    }
}

impl ArchivedSymbol {
    /// The archived name, with the same checks as [`Symbol::new`].
    pub fn to_symbol(&self) -> Result<Symbol, String> {
        let len = usize::from(self.len).min(SYMBOL_LEN_MAX);
        let s = std::str::from_utf8(&self.bytes[..len]).map_err(|_| "name is not UTF-8")?;
        Symbol::new(s)
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An account id as the venue assigns it.
    AccountId(u64)
);
id_type!(
    /// An order id, unique among one account's open orders.
    OrderId(u64)
);
id_type!(
    /// Dense index of a listed asset, in listing order.
    AssetId(u16)
);
id_type!(
    /// Dense index of a listed market, in listing order.
    MarketId(u16)
);

impl AssetId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl MarketId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Buy or sell.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum Side {
    Buy = 0,
    Sell = 1,
}

impl Side {
    /// +1 for a buy, -1 for a sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// How an account margins one market.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum MarginMode {
    Cross = 0,
    Isolated = 1,
}

impl MarginMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MarginMode::Cross => "cross",
            MarginMode::Isolated => "isolated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_check_their_text() {
        assert_eq!(Symbol::new("BTC-PERP").unwrap().as_str(), "BTC-PERP");
        assert!(Symbol::new("").is_err());
        assert!(Symbol::new(&"X".repeat(33)).is_err());
        assert!(Symbol::new("BTC PERP").is_err());
        assert!(Symbol::new("é").is_err());
        assert!(Symbol::new("ETH") < Symbol::new("ETH-PERP"));
    }
}
