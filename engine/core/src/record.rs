//! Output records: what the engine says about every input. Each record carries its numbers with
//! their decimals, so that it can be printed (export, audit) without the venue state.

use crate::ids::{AccountId, MarginMode, OrderId, Side, Symbol};
use std::fmt::{self, Write as _};

/// Why an event was rejected: the contract's full set of reason codes.
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
pub enum Reason {
    Malformed,
    UnknownAsset,
    UnknownMarket,
    UnknownAccount,
    UnknownOrder,
    DuplicateOrder,
    InvalidAmount,
    InvalidPrice,
    InvalidSize,
    InvalidParams,
    InsufficientBalance,
    InsufficientMargin,
    OracleStale,
    ReduceOnly,
    Liquidating,
    NotLiquidatable,
    LiquidationSize,
    WithdrawalsFrozen,
    SelfTrade,
    /// The operator skipped this journaled input at recovery (`--skip-input SEQ`): it was not
    /// applied and changed nothing but the input seq.
    Skipped,
    /// Not an engine rejection: the connection's role may not send this event (never
    /// journaled; TCP service only).
    Unauthorized,
}

impl Reason {
    pub const ALL: [Reason; 21] = [
        Reason::Malformed,
        Reason::UnknownAsset,
        Reason::UnknownMarket,
        Reason::UnknownAccount,
        Reason::UnknownOrder,
        Reason::DuplicateOrder,
        Reason::InvalidAmount,
        Reason::InvalidPrice,
        Reason::InvalidSize,
        Reason::InvalidParams,
        Reason::InsufficientBalance,
        Reason::InsufficientMargin,
        Reason::OracleStale,
        Reason::ReduceOnly,
        Reason::Liquidating,
        Reason::NotLiquidatable,
        Reason::LiquidationSize,
        Reason::WithdrawalsFrozen,
        Reason::SelfTrade,
        Reason::Skipped,
        Reason::Unauthorized,
    ];

    /// The contract's code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnknownAsset => "unknown_asset",
            Reason::UnknownMarket => "unknown_market",
            Reason::UnknownAccount => "unknown_account",
            Reason::UnknownOrder => "unknown_order",
            Reason::DuplicateOrder => "duplicate_order",
            Reason::InvalidAmount => "invalid_amount",
            Reason::InvalidPrice => "invalid_price",
            Reason::InvalidSize => "invalid_size",
            Reason::InvalidParams => "invalid_params",
            Reason::InsufficientBalance => "insufficient_balance",
            Reason::InsufficientMargin => "insufficient_margin",
            Reason::OracleStale => "oracle_stale",
            Reason::ReduceOnly => "reduce_only",
            Reason::Liquidating => "liquidating",
            Reason::NotLiquidatable => "not_liquidatable",
            Reason::LiquidationSize => "liquidation_size",
            Reason::WithdrawalsFrozen => "withdrawals_frozen",
            Reason::SelfTrade => "self_trade",
            Reason::Skipped => "skipped",
            Reason::Unauthorized => "unauthorized",
        }
    }

    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Longest rejection detail kept, in bytes; longer texts are cut at a character boundary.
pub const DETAIL_LEN_MAX: usize = 120;

/// A short human-readable text held inline, so that a rejection never allocates.
#[derive(Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Detail {
    len: u8,
    bytes: [u8; DETAIL_LEN_MAX],
}

impl Detail {
    pub fn new(text: &str) -> Detail {
        let mut d = Detail {
            len: 0,
            bytes: [0; DETAIL_LEN_MAX],
        };
        let _ = d.write_str(text);
        d
    }

    pub fn as_str(&self) -> &str {
        let len = usize::from(self.len).min(DETAIL_LEN_MAX);
        std::str::from_utf8(&self.bytes[..len]).unwrap_or("")
    }
}

impl fmt::Write for Detail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let used = usize::from(self.len);
        let room = DETAIL_LEN_MAX - used;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[used..used + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len = (used + take) as u8;
        Ok(())
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A number with its decimals: `value / 10^decimals` (amounts, sizes, prices, rates).
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Num {
    pub value: i128,
    pub decimals: u8,
}

impl Num {
    pub fn new(value: i128, decimals: u8) -> Num {
        Num { value, decimals }
    }
}

/// Which bucket of an account: the cross bucket, or the isolated bucket of a market.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Debug,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub enum BucketName {
    Cross,
    Isolated(Symbol),
}

/// Why an order left the book.
#[derive(Clone, Copy, PartialEq, Eq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[repr(u8)]
pub enum CloseReason {
    Filled,
    Cancelled,
    Liquidation,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Filled => "filled",
            CloseReason::Cancelled => "cancelled",
            CloseReason::Liquidation => "liquidation",
        }
    }
}

/// Why a liquidation ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[repr(u8)]
pub enum EndReason {
    /// health_le came back to zero or above.
    Healthy,
    /// No position is left.
    Closed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Healthy => "healthy",
            EndReason::Closed => "closed",
        }
    }
}

/// Why a balance or the insurance fund moved.
#[derive(Clone, Copy, PartialEq, Eq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[repr(u8)]
pub enum Cause {
    Deposit,
    Withdraw,
    Transfer,
    Fee,
    Pnl,
    Funding,
    LiquidationFee,
    AssetSale,
    Backstop,
    BadDebt,
    TopUp,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Deposit => "deposit",
            Cause::Withdraw => "withdraw",
            Cause::Transfer => "transfer",
            Cause::Fee => "fee",
            Cause::Pnl => "pnl",
            Cause::Funding => "funding",
            Cause::LiquidationFee => "liquidation_fee",
            Cause::AssetSale => "asset_sale",
            Cause::Backstop => "backstop",
            Cause::BadDebt => "bad_debt",
            Cause::TopUp => "top_up",
        }
    }
}

/// One output record: dense `seq`, the `input` that caused it, the engine clock, and the body.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Record {
    pub seq: u64,
    pub input: u64,
    pub ts: u64,
    pub body: Body,
}

/// What a record says. Variant order is part of the output log format: append, never reorder.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Body {
    /// The input was applied. `order_unknown` lists order ids of a fill that named no open order.
    Accepted {
        order_unknown: [Option<OrderId>; 2],
    },
    Rejected {
        reason: Reason,
        detail: Detail,
    },
    Balance {
        account: AccountId,
        bucket: BucketName,
        asset: Symbol,
        balance: Num,
        delta: Num,
        cause: Cause,
    },
    Position {
        account: AccountId,
        market: Symbol,
        mode: MarginMode,
        size: Num,
        quote: Num,
        /// Quote the change realised into the bucket's balance.
        realized: Num,
    },
    OrderOpen {
        account: AccountId,
        order: OrderId,
        market: Symbol,
        side: Side,
        price: Num,
        size: Num,
        reduce_only: bool,
    },
    OrderClosed {
        account: AccountId,
        order: OrderId,
        market: Symbol,
        remaining: Num,
        reason: CloseReason,
    },
    Index {
        asset: Symbol,
        index: Num,
        sources: u8,
        /// The circuit breaker holds the asset volatile.
        volatile: bool,
    },
    OracleStale {
        asset: Symbol,
        stale: bool,
    },
    OracleOutlier {
        asset: Symbol,
        source: u32,
        price: Num,
    },
    Funding {
        market: Symbol,
        rate: Num,
        index_price: Num,
        funding_index: Num,
    },
    MarginCall {
        account: AccountId,
        bucket: BucketName,
        equity_maint: Num,
        mm: Num,
    },
    LiquidationStarted {
        account: AccountId,
        bucket: BucketName,
        equity_maint: Num,
        mm: Num,
    },
    LiquidationFill {
        account: AccountId,
        bucket: BucketName,
        liquidator: AccountId,
        market: Symbol,
        /// The liquidated bucket's side of the takeover.
        side: Side,
        size: Num,
        price: Num,
        fee: Num,
    },
    LiquidationEnded {
        account: AccountId,
        bucket: BucketName,
        reason: EndReason,
    },
    Bankruptcy {
        account: AccountId,
        bucket: BucketName,
        /// -E: the quote the bucket lacked after selling its other assets.
        deficit: Num,
        /// C: what the insurance fund paid.
        insurance: Num,
        /// U: what was left to the counterparties.
        socialized: Num,
    },
    Insurance {
        /// The market of a per-market fund; `None` for the venue-wide fund.
        market: Option<Symbol>,
        fund: Num,
        delta: Num,
        cause: Cause,
    },
    /// The fund took over an asset in a bad-debt sale.
    InsuranceAsset {
        asset: Symbol,
        holding: Num,
        delta: Num,
    },
    Adl {
        account: AccountId,
        bucket: BucketName,
        market: Symbol,
        /// The counterparty's side of the forced trade.
        side: Side,
        size: Num,
        notional: Num,
        liquidated: AccountId,
    },
}

impl Body {
    /// The contract's record type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::Accepted { .. } => "accepted",
            Body::Rejected { .. } => "rejected",
            Body::Balance { .. } => "balance",
            Body::Position { .. } => "position",
            Body::OrderOpen { .. } => "order_open",
            Body::OrderClosed { .. } => "order_closed",
            Body::Index { .. } => "index",
            Body::OracleStale { .. } => "oracle_stale",
            Body::OracleOutlier { .. } => "oracle_outlier",
            Body::Funding { .. } => "funding",
            Body::MarginCall { .. } => "margin_call",
            Body::LiquidationStarted { .. } => "liquidation_started",
            Body::LiquidationFill { .. } => "liquidation_fill",
            Body::LiquidationEnded { .. } => "liquidation_ended",
            Body::Bankruptcy { .. } => "bankruptcy",
            Body::Insurance { .. } => "insurance",
            Body::InsuranceAsset { .. } => "insurance",
            Body::Adl { .. } => "adl",
        }
    }
}
