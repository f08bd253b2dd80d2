//! The venue's configuration: listed assets and markets, validated from `asset`, `market` and
//! `params` events. A configuration value here is always a valid listing; `params` builds the
//! changed listing and validates it whole before it replaces the old one.

use crate::event::{
    AssetParams, AssetSpec, BreakerSpec, MarketParams, MarketSpec, OracleSpec, TierSpec, VolSpec,
};
use crate::ids::{AssetId, MarketId, Symbol};
use crate::limits::{DECIMALS_MAX, DURATION_US_MAX, ORACLE_SOURCES_MAX, TIERS_MAX};
use crate::num::{Dec, Native, Ratio, RATIO_DECIMALS};
use crate::record::Reason;
use crate::reject;
use crate::reject::{scaled, Reject};
use rustc_hash::FxHashMap;

/// Oracle settings of a non-quote asset.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OracleConfig {
    pub sources: u8,
    pub min_sources: u8,
    pub max_age_us: u64,
    pub max_deviation: Ratio,
}

/// Circuit breaker on an asset's index moves.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BreakerConfig {
    pub max_move: Ratio,
    pub window_us: u64,
    pub confirm_us: u64,
}

/// A listed asset.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AssetConfig {
    pub name: Symbol,
    pub decimals: u8,
    pub quote: bool,
    /// Decimals oracle prices may have now.
    pub price_decimals: u8,
    /// Decimals of the internal price ticks, fixed at listing (`price_decimals` may later be
    /// lowered, never raised above it).
    pub price_scale: u8,
    pub weight_init: Ratio,
    pub weight_maint: Ratio,
    pub oracle: Option<OracleConfig>,
    pub breaker: Option<BreakerConfig>,
}

/// One incremental margin bracket: `imf`/`mmf` apply to the notional above `above`.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Tier {
    /// Quote native units.
    pub above: Native,
    pub imf: Ratio,
    pub mmf: Ratio,
}

/// Volatility scaling of a market's fractions.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct VolConfig {
    pub lambda: Ratio,
    pub reference: Ratio,
    pub mult: Ratio,
    pub cap: Ratio,
}

/// A listed market.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct MarketConfig {
    pub name: Symbol,
    pub base: AssetId,
    pub size_decimals: u8,
    pub imf: Ratio,
    pub mmf: Ratio,
    pub tiers: Vec<Tier>,
    pub upnl_weight_init: Ratio,
    pub funding_rate_cap: Ratio,
    pub liq_discount_start: Ratio,
    pub liq_discount_max: Ratio,
    pub liq_auction_us: u64,
    pub liq_if_fee: Ratio,
    /// Quote native units.
    pub liq_min_notional: Native,
    pub margin_call: Ratio,
    /// Time over which a change of the effective fractions ramps in (0: at once).
    pub ramp_us: u64,
    pub vol: Option<VolConfig>,
    /// Index prints a maintenance breach must persist before liquidation starts (0: off).
    pub spike_prints: u32,
    /// Most the venue-wide fund pays, in total, for this market's bankruptcies (None: no cap).
    pub insurance_cap: Option<Native>,
    /// The market keeps its own insurance fund.
    pub own_fund: bool,
    /// Floor charge of a position in a portfolio bucket, a fraction of its notional.
    pub pm_min_rate: Ratio,
}

/// Default `upnl_weight_init`: unrealised profit counts in full.
pub const DEFAULT_UPNL_WEIGHT_INIT: Ratio = Ratio::ONE;
/// Default `funding_rate_cap`: 1 % per funding event.
pub const DEFAULT_FUNDING_RATE_CAP: Ratio = Ratio(10_000_000_000_000_000);
/// Default `liq_auction_us`: one minute.
pub const DEFAULT_LIQ_AUCTION_US: u64 = 60_000_000;
/// Default `margin_call`: 125 % of maintenance.
pub const DEFAULT_MARGIN_CALL: Ratio = Ratio(1_250_000_000_000_000_000);

/// Default `pm_min_rate`: 1 % of notional.
pub const DEFAULT_PM_MIN_RATE: Ratio = Ratio(10_000_000_000_000_000);

/// The context a market is validated in: its base asset and the quote asset.
pub struct MarketContext<'a> {
    pub base_id: AssetId,
    pub base: &'a AssetConfig,
    pub quote_decimals: u8,
}

fn ratio(dec: &Dec, field: &str) -> Result<Ratio, Reject> {
    scaled(dec, RATIO_DECIMALS, Reason::InvalidParams, field).map(Ratio)
}

fn ratio_in(dec: &Dec, field: &str, lo: Ratio, hi: Ratio) -> Result<Ratio, Reject> {
    let r = ratio(dec, field)?;
    if r < lo || r > hi {
        return Err(reject!(
            Reason::InvalidParams,
            "{field} {dec} must be within [{}, {}]",
            fmt_ratio(lo),
            fmt_ratio(hi)
        ));
    }
    Ok(r)
}

/// A ratio as a trimmed decimal, for messages and reports.
pub fn fmt_ratio(r: Ratio) -> String {
    crate::num::format_trimmed(r.0, RATIO_DECIMALS)
}

fn decimals(v: u64, field: &str) -> Result<u8, Reject> {
    if v > DECIMALS_MAX {
        return Err(reject!(
            Reason::InvalidParams,
            "{field} {v} is above the limit of {DECIMALS_MAX}"
        ));
    }
    Ok(v as u8)
}

fn duration(v: u64, field: &str, allow_zero: bool) -> Result<u64, Reject> {
    if (!allow_zero && v == 0) || v > DURATION_US_MAX {
        return Err(reject!(
            Reason::InvalidParams,
            "{field} {v} must be within [{}, {DURATION_US_MAX}]",
            u64::from(!allow_zero)
        ));
    }
    Ok(v)
}

impl AssetConfig {
    /// Validates a listing. The caller has checked that the name is new and that at most one
    /// asset is the quote.
    pub fn from_spec(spec: &AssetSpec) -> Result<AssetConfig, Reject> {
        let d = decimals(spec.decimals, "decimals")?;
        let mut asset = AssetConfig {
            name: spec.asset,
            decimals: d,
            quote: spec.quote,
            price_decimals: 0,
            price_scale: 0,
            weight_init: if spec.quote { Ratio::ONE } else { Ratio::ZERO },
            weight_maint: if spec.quote { Ratio::ONE } else { Ratio::ZERO },
            oracle: None,
            breaker: None,
        };
        if !spec.quote {
            let pd = spec.params.price_decimals.ok_or_else(|| {
                reject!(
                    Reason::InvalidParams,
                    "asset {} needs price_decimals",
                    spec.asset
                )
            })?;
            asset.price_scale = decimals(pd, "price_decimals")?;
        }
        asset.apply(&spec.params)?;
        Ok(asset)
    }

    /// This asset with the given fields changed, validated whole.
    pub fn with_params(&self, p: &AssetParams) -> Result<AssetConfig, Reject> {
        let mut next = self.clone();
        next.apply(p)?;
        Ok(next)
    }

    fn apply(&mut self, p: &AssetParams) -> Result<(), Reject> {
        if let Some(pd) = p.price_decimals {
            let pd = decimals(pd, "price_decimals")?;
            if !self.quote && pd > self.price_scale {
                return Err(reject!(
                    Reason::InvalidParams,
                    "price_decimals {pd} is above the {} the asset was listed with",
                    self.price_scale
                ));
            }
            self.price_decimals = pd;
        } else if self.price_decimals == 0 {
            self.price_decimals = self.price_scale;
        }
        if let Some(w) = &p.weight_init {
            self.weight_init = ratio_in(w, "weight_init", Ratio::ZERO, Ratio::ONE)?;
        }
        if let Some(w) = &p.weight_maint {
            self.weight_maint = ratio_in(w, "weight_maint", Ratio::ZERO, Ratio::ONE)?;
        }
        if let Some(o) = &p.oracle {
            self.oracle = Some(oracle_config(o)?);
        }
        if let Some(b) = &p.breaker {
            self.breaker = Some(breaker_config(b)?);
        }
        self.validate()
    }

    fn validate(&self) -> Result<(), Reject> {
        if self.weight_init > self.weight_maint {
            return Err(reject!(
                Reason::InvalidParams,
                "weight_init {} is above weight_maint {}",
                fmt_ratio(self.weight_init),
                fmt_ratio(self.weight_maint)
            ));
        }
        if self.quote {
            if self.weight_init != Ratio::ONE || self.weight_maint != Ratio::ONE {
                return Err(reject!(
                    Reason::InvalidParams,
                    "the quote asset {} has weights 1 and 1",
                    self.name
                ));
            }
            if self.oracle.is_some() || self.breaker.is_some() {
                return Err(reject!(
                    Reason::InvalidParams,
                    "the quote asset {} has price 1 and takes no oracle",
                    self.name
                ));
            }
        } else if self.oracle.is_none() {
            return Err(reject!(
                Reason::InvalidParams,
                "asset {} needs an oracle configuration",
                self.name
            ));
        }
        Ok(())
    }
}

fn oracle_config(o: &OracleSpec) -> Result<OracleConfig, Reject> {
    if o.sources == 0 || o.sources > ORACLE_SOURCES_MAX {
        return Err(reject!(
            Reason::InvalidParams,
            "oracle sources {} must be within [1, {ORACLE_SOURCES_MAX}]",
            o.sources
        ));
    }
    if o.min_sources == 0 || o.min_sources > o.sources {
        return Err(reject!(
            Reason::InvalidParams,
            "oracle min_sources {} must be within [1, sources {}]",
            o.min_sources,
            o.sources
        ));
    }
    Ok(OracleConfig {
        sources: o.sources as u8,
        min_sources: o.min_sources as u8,
        max_age_us: duration(o.max_age_us, "oracle max_age_us", false)?,
        max_deviation: ratio_in(
            &o.max_deviation,
            "oracle max_deviation",
            Ratio::ZERO,
            Ratio(Ratio::ONE.0 * 100),
        )?,
    })
}

fn breaker_config(b: &BreakerSpec) -> Result<BreakerConfig, Reject> {
    let max_move = ratio_in(&b.max_move, "breaker max_move", Ratio::ZERO, Ratio::ONE)?;
    if max_move == Ratio::ZERO {
        return Err(reject!(
            Reason::InvalidParams,
            "breaker max_move must be positive"
        ));
    }
    Ok(BreakerConfig {
        max_move,
        window_us: duration(b.window_us, "breaker window_us", false)?,
        confirm_us: duration(b.confirm_us, "breaker confirm_us", true)?,
    })
}

impl MarketConfig {
    /// Validates a listing against its base and quote assets.
    pub fn from_spec(spec: &MarketSpec, ctx: &MarketContext<'_>) -> Result<MarketConfig, Reject> {
        if spec.market.as_str() == "cross" {
            return Err(reject!(
                Reason::InvalidParams,
                "\"cross\" names the cross bucket and cannot be a market"
            ));
        }
        let (imf, mmf) = match (&spec.params.imf, &spec.params.mmf) {
            (Some(i), Some(m)) => (
                ratio_in(i, "imf", Ratio::ZERO, Ratio::ONE)?,
                ratio_in(m, "mmf", Ratio::ZERO, Ratio::ONE)?,
            ),
            _ => {
                return Err(reject!(
                    Reason::InvalidParams,
                    "market {} needs imf and mmf",
                    spec.market
                ))
            }
        };
        let mut m = MarketConfig {
            name: spec.market,
            base: ctx.base_id,
            size_decimals: decimals(spec.size_decimals, "size_decimals")?,
            imf,
            mmf,
            tiers: Vec::new(),
            upnl_weight_init: DEFAULT_UPNL_WEIGHT_INIT,
            funding_rate_cap: DEFAULT_FUNDING_RATE_CAP,
            liq_discount_start: Ratio::ZERO,
            // Half the maintenance fraction keeps d_max + fee below (imf + mmf) / 2.
            liq_discount_max: Ratio(mmf.0 / 2),
            liq_auction_us: DEFAULT_LIQ_AUCTION_US,
            liq_if_fee: Ratio::ZERO,
            liq_min_notional: Native::ZERO,
            margin_call: DEFAULT_MARGIN_CALL,
            ramp_us: 0,
            vol: None,
            spike_prints: 0,
            insurance_cap: None,
            own_fund: false,
            pm_min_rate: DEFAULT_PM_MIN_RATE,
        };
        m.apply(&spec.params, ctx.quote_decimals)?;
        Ok(m)
    }

    /// This market with the given fields changed, validated whole.
    pub fn with_params(
        &self,
        p: &MarketParams,
        quote_decimals: u8,
    ) -> Result<MarketConfig, Reject> {
        let mut next = self.clone();
        next.apply(p, quote_decimals)?;
        Ok(next)
    }

    /// Checks the amounts of a change first (`invalid_amount`), then its ratios.
    pub fn check_amounts(p: &MarketParams, quote_decimals: u8) -> Result<(), Reject> {
        if let Some(tiers) = &p.tiers {
            for t in tiers {
                scaled(
                    &t.above,
                    quote_decimals,
                    Reason::InvalidAmount,
                    "tier above",
                )?;
            }
        }
        if let Some(v) = &p.liq_min_notional {
            scaled(v, quote_decimals, Reason::InvalidAmount, "liq_min_notional")?;
        }
        if let Some(v) = &p.insurance_cap {
            scaled(v, quote_decimals, Reason::InvalidAmount, "insurance_cap")?;
        }
        Ok(())
    }

    fn apply(&mut self, p: &MarketParams, qd: u8) -> Result<(), Reject> {
        let one = Ratio::ONE;
        if let Some(v) = &p.imf {
            self.imf = ratio_in(v, "imf", Ratio::ZERO, one)?;
        }
        if let Some(v) = &p.mmf {
            self.mmf = ratio_in(v, "mmf", Ratio::ZERO, one)?;
        }
        if let Some(tiers) = &p.tiers {
            self.tiers = tier_configs(tiers, qd)?;
        }
        if let Some(v) = &p.upnl_weight_init {
            self.upnl_weight_init = ratio_in(v, "upnl_weight_init", Ratio::ZERO, one)?;
        }
        if let Some(v) = &p.funding_rate_cap {
            self.funding_rate_cap = ratio_in(v, "funding_rate_cap", Ratio::ZERO, one)?;
        }
        if let Some(v) = &p.liq_discount_start {
            self.liq_discount_start = ratio_in(v, "liq_discount_start", Ratio::ZERO, one)?;
        }
        if let Some(v) = &p.liq_discount_max {
            self.liq_discount_max = ratio_in(v, "liq_discount_max", Ratio::ZERO, one)?;
        }
        if let Some(v) = p.liq_auction_us {
            self.liq_auction_us = duration(v, "liq_auction_us", false)?;
        }
        if let Some(v) = &p.liq_if_fee {
            self.liq_if_fee = ratio_in(v, "liq_if_fee", Ratio::ZERO, one)?;
        }
        if let Some(v) = &p.liq_min_notional {
            self.liq_min_notional = Native(amount_nonneg(v, qd, "liq_min_notional")?);
        }
        if let Some(v) = &p.margin_call {
            self.margin_call = ratio_in(v, "margin_call", one, Ratio(one.0 * 100))?;
        }
        self.apply_extensions(p, qd)?;
        self.validate()
    }

    fn apply_extensions(&mut self, p: &MarketParams, qd: u8) -> Result<(), Reject> {
        if let Some(v) = p.ramp_us {
            self.ramp_us = duration(v, "ramp_us", true)?;
        }
        if let Some(v) = &p.vol {
            self.vol = Some(vol_config(v)?);
        }
        if let Some(v) = p.spike_prints {
            if v > 1_000 {
                return Err(reject!(
                    Reason::InvalidParams,
                    "spike_prints {v} is above 1000"
                ));
            }
            self.spike_prints = v as u32;
        }
        if let Some(v) = &p.insurance_cap {
            self.insurance_cap = Some(Native(amount_nonneg(v, qd, "insurance_cap")?));
        }
        if let Some(v) = p.own_fund {
            self.own_fund = v;
        }
        if let Some(v) = &p.pm_min_rate {
            self.pm_min_rate = ratio_in(v, "pm_min_rate", Ratio::ZERO, Ratio::ONE)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Reject> {
        if self.imf == Ratio::ZERO {
            return Err(reject!(Reason::InvalidParams, "imf must be positive"));
        }
        if self.mmf > self.imf {
            return Err(reject!(
                Reason::InvalidParams,
                "mmf {} is above imf {}",
                fmt_ratio(self.mmf),
                fmt_ratio(self.imf)
            ));
        }
        let (mut prev_imf, mut prev_mmf) = (self.imf, self.mmf);
        for t in &self.tiers {
            if t.imf < prev_imf || t.mmf < prev_mmf {
                return Err(reject!(
                    Reason::InvalidParams,
                    "tier fractions must not decrease from tier to tier"
                ));
            }
            (prev_imf, prev_mmf) = (t.imf, t.mmf);
        }
        if self.liq_discount_start > self.liq_discount_max {
            return Err(reject!(
                Reason::InvalidParams,
                "liq_discount_start {} is above liq_discount_max {}",
                fmt_ratio(self.liq_discount_start),
                fmt_ratio(self.liq_discount_max)
            ));
        }
        // Each lot a liquidator takes must improve health_le: d_max + fee < (imf + mmf) / 2.
        let lhs = 2 * (self.liq_discount_max.0 + self.liq_if_fee.0);
        if lhs >= self.imf.0 + self.mmf.0 {
            return Err(reject!(
                Reason::InvalidParams,
                "liq_discount_max + liq_if_fee must be below (imf + mmf) / 2"
            ));
        }
        Ok(())
    }
}

fn amount_nonneg(v: &Dec, qd: u8, field: &str) -> Result<i128, Reject> {
    let x = scaled(v, qd, Reason::InvalidAmount, field)?;
    if !(0..=crate::limits::AMOUNT_MAX).contains(&x) {
        return Err(reject!(
            Reason::InvalidParams,
            "{field} {v} must be within [0, 10^30 native]"
        ));
    }
    Ok(x)
}

fn tier_configs(tiers: &[TierSpec], qd: u8) -> Result<Vec<Tier>, Reject> {
    if tiers.len() > TIERS_MAX {
        return Err(reject!(
            Reason::InvalidParams,
            "{} tiers, at most {TIERS_MAX} allowed",
            tiers.len()
        ));
    }
    let mut out: Vec<Tier> = Vec::with_capacity(tiers.len());
    for t in tiers {
        let above = Native(amount_nonneg(&t.above, qd, "tier above")?);
        if above.0 <= 0 || out.last().is_some_and(|p| p.above >= above) {
            return Err(reject!(
                Reason::InvalidParams,
                "tier above values must be positive and strictly increasing"
            ));
        }
        let tier = Tier {
            above,
            imf: ratio_in(&t.imf, "tier imf", Ratio::ZERO, Ratio::ONE)?,
            mmf: ratio_in(&t.mmf, "tier mmf", Ratio::ZERO, Ratio::ONE)?,
        };
        if tier.mmf > tier.imf {
            return Err(reject!(Reason::InvalidParams, "tier mmf is above its imf"));
        }
        out.push(tier);
    }
    Ok(out)
}

fn vol_config(v: &VolSpec) -> Result<VolConfig, Reject> {
    let one = Ratio::ONE;
    let lambda = ratio_in(&v.lambda, "vol lambda", Ratio::ZERO, one)?;
    if lambda == Ratio::ZERO || lambda == one {
        return Err(reject!(
            Reason::InvalidParams,
            "vol lambda must be within (0, 1)"
        ));
    }
    let reference = ratio_in(&v.reference, "vol reference", Ratio::ZERO, one)?;
    if reference == Ratio::ZERO {
        return Err(reject!(
            Reason::InvalidParams,
            "vol reference must be positive"
        ));
    }
    Ok(VolConfig {
        lambda,
        reference,
        mult: ratio_in(&v.mult, "vol mult", Ratio::ZERO, Ratio(one.0 * 100))?,
        cap: ratio_in(&v.cap, "vol cap", one, Ratio(one.0 * 100))?,
    })
}

/// Lookup of listed assets and markets by name and by dense id.
#[derive(Clone, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Venue {
    pub assets: Vec<AssetConfig>,
    pub markets: Vec<MarketConfig>,
    pub quote: Option<AssetId>,
    /// The scenario set of portfolio margin, once a `risk_scenarios` event was accepted.
    pub risk: Option<crate::portfolio::ScenarioSet>,
    /// Name index of `markets`, rebuilt after a snapshot is loaded; never iterated.
    #[rkyv(with = rkyv::with::Skip)]
    market_by_name: FxHashMap<Symbol, MarketId>,
}

impl Venue {
    pub fn asset_id(&self, name: &Symbol) -> Option<AssetId> {
        // Few assets: a linear scan over inline names beats hashing.
        self.assets
            .iter()
            .position(|a| a.name == *name)
            .map(|i| AssetId(i as u16))
    }

    pub fn market_id(&self, name: &Symbol) -> Option<MarketId> {
        self.market_by_name.get(name).copied()
    }

    /// Adds a validated market and returns its id.
    pub fn push_market(&mut self, m: MarketConfig) -> MarketId {
        let id = MarketId(self.markets.len() as u16);
        self.market_by_name.insert(m.name, id);
        self.markets.push(m);
        id
    }

    /// Rebuilds the name index (after loading a snapshot).
    pub fn rebuild_index(&mut self) {
        self.market_by_name = self
            .markets
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name, MarketId(i as u16)))
            .collect();
    }

    pub fn asset(&self, id: AssetId) -> &AssetConfig {
        &self.assets[id.index()]
    }

    pub fn market(&self, id: MarketId) -> &MarketConfig {
        &self.markets[id.index()]
    }

    /// Decimals of the quote asset (6 before it is listed; nothing is valued before then).
    pub fn quote_decimals(&self) -> u8 {
        self.quote.map_or(6, |q| self.asset(q).decimals)
    }
}
