//! Input events in the form they are journaled: shape checked, values still as the feeder wrote
//! them. Names stay names and decimals stay decimals, because their meaning (which asset, how
//! many decimals) is decided by the venue state when the event is applied, and replay must decide
//! it the same way.

use crate::ids::{AccountId, MarginMode, OrderId, Side, Symbol};
use crate::num::Dec;

/// One journaled input: the feeder's timestamp (microseconds since the Unix epoch) and the event.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Input {
    pub ts: u64,
    pub event: Event,
}

/// Every event of the contract. Variant order is part of the journal format: append, never
/// reorder.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Event {
    Asset(Box<AssetSpec>),
    Market(Box<MarketSpec>),
    Params(Box<ParamsSpec>),
    Insurance {
        amount: Dec,
        /// A market with its own fund (`own_fund`); the venue-wide fund when absent.
        market: Option<Symbol>,
    },
    Deposit {
        account: AccountId,
        asset: Symbol,
        amount: Dec,
    },
    Withdraw {
        account: AccountId,
        asset: Symbol,
        amount: Dec,
    },
    MarginMode {
        account: AccountId,
        market: Symbol,
        mode: MarginMode,
    },
    Isolate {
        account: AccountId,
        market: Symbol,
        amount: Dec,
    },
    Order(OrderSpec),
    Cancel {
        account: AccountId,
        order: OrderId,
    },
    Fill(FillSpec),
    Oracle {
        asset: Symbol,
        source: u64,
        price: Dec,
    },
    Funding {
        market: Symbol,
        rate: Dec,
    },
    Liquidate {
        liquidator: AccountId,
        account: AccountId,
        market: Symbol,
        size: Dec,
    },
    /// The venue's scenario set for portfolio margin (replaces the set in force whole).
    RiskScenarios(Box<RiskScenariosSpec>),
    /// The bucket form of `margin_mode`: the cross bucket's margin, portfolio or standard.
    CrossMode {
        account: AccountId,
        portfolio: bool,
    },
}

impl Event {
    /// The contract's name of the event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Asset(_) => "asset",
            Event::Market(_) => "market",
            Event::Params(_) => "params",
            Event::Insurance { .. } => "insurance",
            Event::Deposit { .. } => "deposit",
            Event::Withdraw { .. } => "withdraw",
            Event::MarginMode { .. } => "margin_mode",
            Event::Isolate { .. } => "isolate",
            Event::Order(_) => "order",
            Event::Cancel { .. } => "cancel",
            Event::Fill(_) => "fill",
            Event::Oracle { .. } => "oracle",
            Event::Funding { .. } => "funding",
            Event::Liquidate { .. } => "liquidate",
            Event::RiskScenarios(_) => "risk_scenarios",
            Event::CrossMode { .. } => "margin_mode",
        }
    }

    /// True for the operator's venue set-up events (`asset`, `market`, `params`, `insurance`,
    /// `risk_scenarios`).
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Event::Asset(_)
                | Event::Market(_)
                | Event::Params(_)
                | Event::Insurance { .. }
                | Event::RiskScenarios(_)
        )
    }
}

/// A `risk_scenarios` event as written: names stay text (a name outside the alphabet is
/// `invalid_params`, judged with the rest of the set when it is applied).
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct RiskScenariosSpec {
    pub name: String,
    /// A JSON integer of any sign (the range is a rule of the set, not of its shape).
    pub version: i128,
    pub im_factor: Option<Dec>,
    pub le_factor: Option<Dec>,
    pub scenarios: Vec<ScenarioSpec>,
}

/// One joint move of a scenario set.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ScenarioSpec {
    pub name: String,
    pub weight: Dec,
    /// (asset name, relative move) in the order written; names unique.
    pub moves: Vec<(String, Dec)>,
}

/// A pre-trade order.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderSpec {
    pub account: AccountId,
    pub order: OrderId,
    pub market: Symbol,
    pub side: Side,
    pub price: Dec,
    pub size: Dec,
    pub reduce_only: bool,
}

/// A trade that already happened on the venue.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FillSpec {
    pub market: Symbol,
    pub taker: AccountId,
    pub maker: AccountId,
    /// The taker's side.
    pub side: Side,
    pub price: Dec,
    pub size: Dec,
    pub taker_order: Option<OrderId>,
    pub maker_order: Option<OrderId>,
    pub taker_fee: Option<Dec>,
    pub maker_fee: Option<Dec>,
}

/// Oracle configuration of an asset.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OracleSpec {
    pub sources: u64,
    pub min_sources: u64,
    pub max_age_us: u64,
    pub max_deviation: Dec,
}

/// The optional circuit breaker of an asset (off unless given).
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BreakerSpec {
    /// An index move larger than this fraction within `window_us` marks the asset volatile.
    pub max_move: Dec,
    pub window_us: u64,
    /// How long the index must stay without a new trip before liquidations on it go ahead.
    pub confirm_us: u64,
}

/// Fields of an asset that `params` may change.
#[derive(Clone, PartialEq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AssetParams {
    pub price_decimals: Option<u64>,
    pub weight_init: Option<Dec>,
    pub weight_maint: Option<Dec>,
    pub oracle: Option<OracleSpec>,
    pub breaker: Option<BreakerSpec>,
}

/// An `asset` listing.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AssetSpec {
    pub asset: Symbol,
    pub decimals: u64,
    pub quote: bool,
    pub params: AssetParams,
}

/// One incremental margin bracket on position notional.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TierSpec {
    pub above: Dec,
    pub imf: Dec,
    pub mmf: Dec,
}

/// Volatility-scaled margin of a market (off unless given).
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct VolSpec {
    /// EWMA decay per index print, in (0, 1).
    pub lambda: Dec,
    /// Per-print volatility (standard deviation of returns) the plain fractions are sized for.
    pub reference: Dec,
    /// How much of the excess volatility ratio is added to the fractions.
    pub mult: Dec,
    /// Largest factor the fractions can be scaled by.
    pub cap: Dec,
}

/// Fields of a market that `params` may change (all optional in a listing too, except `imf` and
/// `mmf`, which a listing requires).
#[derive(Clone, PartialEq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct MarketParams {
    pub imf: Option<Dec>,
    pub mmf: Option<Dec>,
    pub tiers: Option<Vec<TierSpec>>,
    pub upnl_weight_init: Option<Dec>,
    pub funding_rate_cap: Option<Dec>,
    pub liq_discount_start: Option<Dec>,
    pub liq_discount_max: Option<Dec>,
    pub liq_auction_us: Option<u64>,
    pub liq_if_fee: Option<Dec>,
    pub liq_min_notional: Option<Dec>,
    pub margin_call: Option<Dec>,
    pub ramp_us: Option<u64>,
    pub vol: Option<VolSpec>,
    pub spike_prints: Option<u64>,
    pub insurance_cap: Option<Dec>,
    pub own_fund: Option<bool>,
    /// Floor charge of a position in a portfolio bucket (portfolio-margin extension).
    pub pm_min_rate: Option<Dec>,
}

/// A `market` listing.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct MarketSpec {
    pub market: Symbol,
    pub base: Symbol,
    pub size_decimals: u64,
    pub params: MarketParams,
}

/// A `params` change of one listed asset or market.
#[allow(clippy::large_enum_variant)] // boxed as a whole inside `Event::Params`
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum ParamsSpec {
    Asset {
        asset: Symbol,
        params: AssetParams,
    },
    Market {
        market: Symbol,
        params: MarketParams,
    },
}

/// Why a decoded input is not one the JSON codec could have produced.
fn bad_field(field: &str, what: &str) -> String {
    format!("field `{field}`: {what}")
}

fn check_dec(d: &Dec, field: &str) -> Result<(), String> {
    if d.is_canonical() {
        return Ok(());
    }
    Err(bad_field(
        field,
        &format!(
            "decimal (mantissa {}, scale {}) is not canonical: normalised, at most {} decimals, mantissa above i128::MIN",
            d.mantissa(),
            d.scale(),
            crate::num::decimal::DEC_SCALE_MAX
        ),
    ))
}

fn check_opt_dec(d: &Option<Dec>, field: &str) -> Result<(), String> {
    d.as_ref().map_or(Ok(()), |d| check_dec(d, field))
}

fn check_sym(s: &Symbol, field: &str) -> Result<(), String> {
    if s.is_valid() {
        return Ok(());
    }
    Err(bad_field(
        field,
        "name is not 1 to 32 bytes of [A-Za-z0-9._/:-]",
    ))
}

impl Input {
    /// Checks that a decoded input holds only values the JSON codec could have produced:
    /// canonical decimals and valid names. Binary frames pass this before they are journaled,
    /// so both codecs feed the state machine the same set of inputs (one validation path: the
    /// JSON parser builds values through the same constructors this checks against).
    pub fn check_wire(&self) -> Result<(), String> {
        self.event.check_wire()
    }
}

impl Event {
    fn check_wire(&self) -> Result<(), String> {
        match self {
            Event::Asset(a) => {
                check_sym(&a.asset, "asset")?;
                a.params.check_wire()
            }
            Event::Market(m) => {
                check_sym(&m.market, "market")?;
                check_sym(&m.base, "base")?;
                m.params.check_wire()
            }
            Event::Params(p) => match p.as_ref() {
                ParamsSpec::Asset { asset, params } => {
                    check_sym(asset, "asset")?;
                    params.check_wire()
                }
                ParamsSpec::Market { market, params } => {
                    check_sym(market, "market")?;
                    params.check_wire()
                }
            },
            Event::Insurance { amount, market } => {
                check_dec(amount, "amount")?;
                market.as_ref().map_or(Ok(()), |m| check_sym(m, "market"))
            }
            Event::Deposit { asset, amount, .. } | Event::Withdraw { asset, amount, .. } => {
                check_sym(asset, "asset")?;
                check_dec(amount, "amount")
            }
            Event::MarginMode { market, .. } => check_sym(market, "market"),
            Event::Isolate { market, amount, .. } => {
                check_sym(market, "market")?;
                check_dec(amount, "amount")
            }
            Event::Order(o) => {
                check_sym(&o.market, "market")?;
                check_dec(&o.price, "price")?;
                check_dec(&o.size, "size")
            }
            Event::Cancel { .. } => Ok(()),
            Event::Fill(f) => {
                check_sym(&f.market, "market")?;
                check_dec(&f.price, "price")?;
                check_dec(&f.size, "size")?;
                check_opt_dec(&f.taker_fee, "taker_fee")?;
                check_opt_dec(&f.maker_fee, "maker_fee")
            }
            Event::Oracle { asset, price, .. } => {
                check_sym(asset, "asset")?;
                check_dec(price, "price")
            }
            Event::Funding { market, rate } => {
                check_sym(market, "market")?;
                check_dec(rate, "rate")
            }
            Event::Liquidate { market, size, .. } => {
                check_sym(market, "market")?;
                check_dec(size, "size")
            }
            Event::RiskScenarios(r) => r.check_wire(),
            Event::CrossMode { .. } => Ok(()),
        }
    }
}

impl RiskScenariosSpec {
    fn check_wire(&self) -> Result<(), String> {
        check_opt_dec(&self.im_factor, "im_factor")?;
        check_opt_dec(&self.le_factor, "le_factor")?;
        for s in &self.scenarios {
            check_dec(&s.weight, "scenarios.weight")?;
            for (_, r) in &s.moves {
                check_dec(r, "scenarios.moves")?;
            }
        }
        Ok(())
    }
}

impl AssetParams {
    fn check_wire(&self) -> Result<(), String> {
        check_opt_dec(&self.weight_init, "weight_init")?;
        check_opt_dec(&self.weight_maint, "weight_maint")?;
        if let Some(o) = &self.oracle {
            check_dec(&o.max_deviation, "oracle.max_deviation")?;
        }
        if let Some(b) = &self.breaker {
            check_dec(&b.max_move, "breaker.max_move")?;
        }
        Ok(())
    }
}

impl MarketParams {
    fn check_wire(&self) -> Result<(), String> {
        check_opt_dec(&self.imf, "imf")?;
        check_opt_dec(&self.mmf, "mmf")?;
        for t in self.tiers.iter().flatten() {
            check_dec(&t.above, "tiers.above")?;
            check_dec(&t.imf, "tiers.imf")?;
            check_dec(&t.mmf, "tiers.mmf")?;
        }
        let fields = [
            (&self.upnl_weight_init, "upnl_weight_init"),
            (&self.funding_rate_cap, "funding_rate_cap"),
            (&self.liq_discount_start, "liq_discount_start"),
            (&self.liq_discount_max, "liq_discount_max"),
            (&self.liq_if_fee, "liq_if_fee"),
            (&self.liq_min_notional, "liq_min_notional"),
            (&self.margin_call, "margin_call"),
            (&self.insurance_cap, "insurance_cap"),
            (&self.pm_min_rate, "pm_min_rate"),
        ];
        for (d, name) in fields {
            check_opt_dec(d, name)?;
        }
        if let Some(v) = &self.vol {
            check_dec(&v.lambda, "vol.lambda")?;
            check_dec(&v.reference, "vol.reference")?;
            check_dec(&v.mult, "vol.mult")?;
            check_dec(&v.cap, "vol.cap")?;
        }
        Ok(())
    }
}
