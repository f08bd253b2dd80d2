//! Parsing input events from JSON Lines, strictly: unknown fields, wrong types, missing fields
//! and text that is not a decimal are `malformed`, with a message that names the problem.
//! Values are not judged here (decimals, names of assets): the state machine does that.

use crate::event::{
    AssetParams, AssetSpec, BreakerSpec, Event, FillSpec, Input, MarketParams, MarketSpec,
    OracleSpec, OrderSpec, ParamsSpec, RiskScenariosSpec, ScenarioSpec, TierSpec, VolSpec,
};
use crate::ids::{AccountId, MarginMode, OrderId, Side, Symbol};
use crate::num::Dec;
use serde::Deserialize;

/// Longest input line accepted, in bytes.
pub const LINE_LEN_MAX: usize = 64 * 1024;

/// Why a line is not an event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! bad {
    ($($arg:tt)*) => { Malformed(format!($($arg)*)) };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOracle<'a> {
    sources: u64,
    min_sources: u64,
    max_age_us: u64,
    #[serde(borrow)]
    max_deviation: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier<'a> {
    #[serde(borrow)]
    above: &'a str,
    imf: &'a str,
    mmf: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker<'a> {
    #[serde(borrow)]
    max_move: &'a str,
    window_us: u64,
    confirm_us: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVol<'a> {
    #[serde(borrow)]
    lambda: &'a str,
    reference: &'a str,
    mult: &'a str,
    cap: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario<'a> {
    #[serde(borrow)]
    name: &'a str,
    weight: &'a str,
    #[serde(borrow)]
    moves: RawMoves<'a>,
}

/// A scenario's moves: asset name -> decimal string, in the order written; a key written twice
/// is an error (a map type would quietly keep one of them).
struct RawMoves<'a>(Vec<(&'a str, &'a str)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawMoves<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawMoves<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of asset names to decimal strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(&'de str, &'de str)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<&'de str, &'de str>()? {
                    if out.iter().any(|(o, _)| *o == k) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate asset {k:?} in moves"
                        )));
                    }
                    out.push((k, v));
                }
                Ok(RawMoves(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A JSON integer of either sign (a version's range is judged later, not here).
struct JsonInt(i128);

impl<'de> Deserialize<'de> for JsonInt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = JsonInt;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON integer")
            }
            fn visit_u64<E>(self, v: u64) -> Result<JsonInt, E> {
                Ok(JsonInt(i128::from(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<JsonInt, E> {
                Ok(JsonInt(i128::from(v)))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Every field of every event, all optional; which ones an event type allows is checked after.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<&'a str>,
    ts: Option<u64>,
    /// A client's correlation id (TCP only; a file may not carry one).
    id: Option<u64>,
    asset: Option<&'a str>,
    decimals: Option<u64>,
    quote: Option<bool>,
    price_decimals: Option<u64>,
    weight_init: Option<&'a str>,
    weight_maint: Option<&'a str>,
    #[serde(borrow)]
    oracle: Option<RawOracle<'a>>,
    #[serde(borrow)]
    breaker: Option<RawBreaker<'a>>,
    market: Option<&'a str>,
    base: Option<&'a str>,
    size_decimals: Option<u64>,
    imf: Option<&'a str>,
    mmf: Option<&'a str>,
    #[serde(borrow)]
    tiers: Option<Vec<RawTier<'a>>>,
    upnl_weight_init: Option<&'a str>,
    funding_rate_cap: Option<&'a str>,
    liq_discount_start: Option<&'a str>,
    liq_discount_max: Option<&'a str>,
    liq_auction_us: Option<u64>,
    liq_if_fee: Option<&'a str>,
    liq_min_notional: Option<&'a str>,
    margin_call: Option<&'a str>,
    ramp_us: Option<u64>,
    #[serde(borrow)]
    vol: Option<RawVol<'a>>,
    spike_prints: Option<u64>,
    insurance_cap: Option<&'a str>,
    own_fund: Option<bool>,
    pm_min_rate: Option<&'a str>,
    name: Option<&'a str>,
    version: Option<JsonInt>,
    im_factor: Option<&'a str>,
    le_factor: Option<&'a str>,
    #[serde(borrow)]
    scenarios: Option<Vec<RawScenario<'a>>>,
    amount: Option<&'a str>,
    account: Option<u64>,
    mode: Option<&'a str>,
    order: Option<u64>,
    side: Option<&'a str>,
    price: Option<&'a str>,
    size: Option<&'a str>,
    reduce_only: Option<bool>,
    taker: Option<u64>,
    maker: Option<u64>,
    taker_order: Option<u64>,
    maker_order: Option<u64>,
    taker_fee: Option<&'a str>,
    maker_fee: Option<&'a str>,
    source: Option<u64>,
    rate: Option<&'a str>,
    liquidator: Option<u64>,
}

const ASSET_PARAM_FIELDS: &[&str] = &[
    "price_decimals",
    "weight_init",
    "weight_maint",
    "oracle",
    "breaker",
];
const MARKET_PARAM_FIELDS: &[&str] = &[
    "imf",
    "mmf",
    "tiers",
    "upnl_weight_init",
    "funding_rate_cap",
    "liq_discount_start",
    "liq_discount_max",
    "liq_auction_us",
    "liq_if_fee",
    "liq_min_notional",
    "margin_call",
    "ramp_us",
    "vol",
    "spike_prints",
    "insurance_cap",
    "own_fund",
    "pm_min_rate",
];

impl<'a> Raw<'a> {
    /// Every field but `type` and `ts`, with whether it is present.
    fn fields(&self) -> [(&'static str, bool); 50] {
        [
            ("asset", self.asset.is_some()),
            ("decimals", self.decimals.is_some()),
            ("quote", self.quote.is_some()),
            ("price_decimals", self.price_decimals.is_some()),
            ("weight_init", self.weight_init.is_some()),
            ("weight_maint", self.weight_maint.is_some()),
            ("oracle", self.oracle.is_some()),
            ("breaker", self.breaker.is_some()),
            ("market", self.market.is_some()),
            ("base", self.base.is_some()),
            ("size_decimals", self.size_decimals.is_some()),
            ("imf", self.imf.is_some()),
            ("mmf", self.mmf.is_some()),
            ("tiers", self.tiers.is_some()),
            ("upnl_weight_init", self.upnl_weight_init.is_some()),
            ("funding_rate_cap", self.funding_rate_cap.is_some()),
            ("liq_discount_start", self.liq_discount_start.is_some()),
            ("liq_discount_max", self.liq_discount_max.is_some()),
            ("liq_auction_us", self.liq_auction_us.is_some()),
            ("liq_if_fee", self.liq_if_fee.is_some()),
            ("liq_min_notional", self.liq_min_notional.is_some()),
            ("margin_call", self.margin_call.is_some()),
            ("ramp_us", self.ramp_us.is_some()),
            ("vol", self.vol.is_some()),
            ("spike_prints", self.spike_prints.is_some()),
            ("insurance_cap", self.insurance_cap.is_some()),
            ("own_fund", self.own_fund.is_some()),
            ("pm_min_rate", self.pm_min_rate.is_some()),
            ("name", self.name.is_some()),
            ("version", self.version.is_some()),
            ("im_factor", self.im_factor.is_some()),
            ("le_factor", self.le_factor.is_some()),
            ("scenarios", self.scenarios.is_some()),
            ("amount", self.amount.is_some()),
            ("account", self.account.is_some()),
            ("mode", self.mode.is_some()),
            ("order", self.order.is_some()),
            ("side", self.side.is_some()),
            ("price", self.price.is_some()),
            ("size", self.size.is_some()),
            ("reduce_only", self.reduce_only.is_some()),
            ("taker", self.taker.is_some()),
            ("maker", self.maker.is_some()),
            ("taker_order", self.taker_order.is_some()),
            ("maker_order", self.maker_order.is_some()),
            ("taker_fee", self.taker_fee.is_some()),
            ("maker_fee", self.maker_fee.is_some()),
            ("source", self.source.is_some()),
            ("rate", self.rate.is_some()),
            ("liquidator", self.liquidator.is_some()),
        ]
    }

    /// Rejects any present field not in `allowed`.
    fn only(&self, ty: &str, allowed: &[&str]) -> Result<(), Malformed> {
        for (f, present) in self.fields() {
            if present && !allowed.contains(&f) {
                return Err(bad!("field `{f}` is not part of a `{ty}` event"));
            }
        }
        Ok(())
    }
}

fn req<T>(v: Option<T>, field: &str, ty: &str) -> Result<T, Malformed> {
    v.ok_or_else(|| bad!("`{ty}` event needs field `{field}`"))
}

fn dec(text: &str, field: &str) -> Result<Dec, Malformed> {
    Dec::parse(text).map_err(|e| bad!("field `{field}`: {text:?} is {e}"))
}

fn opt_dec(text: Option<&str>, field: &str) -> Result<Option<Dec>, Malformed> {
    text.map(|t| dec(t, field)).transpose()
}

fn sym(text: &str, field: &str) -> Result<Symbol, Malformed> {
    Symbol::new(text).map_err(|e| bad!("field `{field}`: {e}"))
}

fn side(text: &str) -> Result<Side, Malformed> {
    match text {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        _ => Err(bad!(
            "field `side` must be \"buy\" or \"sell\", got {text:?}"
        )),
    }
}

/// Parses one line into an input event (the contract's events only: no `id`).
pub fn parse_input(line: &str) -> Result<Input, Malformed> {
    match parse_line(line)? {
        (input, None) => Ok(input),
        (_, Some(_)) => Err(bad!(
            "unknown field `id` (correlation ids are for TCP clients)"
        )),
    }
}

/// Parses one line from a client, which may carry its own correlation `id`.
pub fn parse_line(line: &str) -> Result<(Input, Option<u64>), Malformed> {
    if line.len() > LINE_LEN_MAX {
        return Err(bad!(
            "line of {} bytes is above the limit of {LINE_LEN_MAX}",
            line.len()
        ));
    }
    if let Some(field) = null_field(line) {
        return Err(bad!(
            "field `{field}` is null (leave an optional field out instead)"
        ));
    }
    let raw = raw_of(line)?;
    let ty = raw.ty.ok_or_else(|| bad!("missing field `type`"))?;
    let ts = raw.ts.ok_or_else(|| bad!("missing field `ts`"))?;
    let event = event_of(ty, &raw)?;
    Ok((Input { ts, event }, raw.id))
}

/// The line's fields. The fast path parses without tracking where it is; only a line that
/// fails is parsed again with the path tracked, to name the field in the message.
fn raw_of(line: &str) -> Result<Raw<'_>, Malformed> {
    let mut de = serde_json::Deserializer::from_str(line);
    if let Ok(raw) = Raw::deserialize(&mut de) {
        if de.end().is_ok() {
            return Ok(raw);
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let raw: Raw<'_> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let msg = json_error(e.inner());
        if path == "." || path.is_empty() {
            bad!("{msg}")
        } else {
            bad!("field `{path}`: {msg}")
        }
    })?;
    de.end().map_err(|e| bad!("{}", json_error(&e)))?;
    Ok(raw)
}

/// The key of the first `null` value in a line, if any (serde would read it as an absent
/// field, so that `"reduce_only": null` would quietly mean false). A scan outside strings, run
/// only when the text contains `null` at all.
fn null_field(line: &str) -> Option<&str> {
    if !line.contains("null") {
        return None;
    }
    let b = line.as_bytes();
    let (mut i, mut key_start, mut key_end) = (0, 0, 0);
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                (key_start, key_end) = (start, i.min(b.len()));
            }
            b'n' if b[i..].starts_with(b"null") => {
                return line.get(key_start..key_end).or(Some("?"));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde_json says "expected a borrowed string" both for a string with escapes and for a
    // value that is no string at all; say which plainly.
    if msg.contains("borrowed string") {
        if msg.contains("invalid type: string") {
            return format!("strings with escape sequences are not accepted ({msg})");
        }
        return msg.replace("a borrowed string", "a string");
    }
    msg
}

fn event_of(ty: &str, r: &Raw<'_>) -> Result<Event, Malformed> {
    Ok(match ty {
        "asset" => asset_event(r)?,
        "market" => market_event(r)?,
        "params" => params_event(r)?,
        "insurance" => {
            r.only(ty, &["amount", "market"])?;
            Event::Insurance {
                amount: dec(req(r.amount, "amount", ty)?, "amount")?,
                market: r.market.map(|m| sym(m, "market")).transpose()?,
            }
        }
        "deposit" | "withdraw" => {
            r.only(ty, &["account", "asset", "amount"])?;
            let account = AccountId(req(r.account, "account", ty)?);
            let asset = sym(req(r.asset, "asset", ty)?, "asset")?;
            let amount = dec(req(r.amount, "amount", ty)?, "amount")?;
            if ty == "deposit" {
                Event::Deposit {
                    account,
                    asset,
                    amount,
                }
            } else {
                Event::Withdraw {
                    account,
                    asset,
                    amount,
                }
            }
        }
        "margin_mode" => margin_mode_event(r)?,
        "risk_scenarios" => risk_scenarios_event(r)?,
        "isolate" => {
            r.only(ty, &["account", "market", "amount"])?;
            Event::Isolate {
                account: AccountId(req(r.account, "account", ty)?),
                market: sym(req(r.market, "market", ty)?, "market")?,
                amount: dec(req(r.amount, "amount", ty)?, "amount")?,
            }
        }
        "order" => order_event(r)?,
        "cancel" => {
            r.only(ty, &["account", "order"])?;
            Event::Cancel {
                account: AccountId(req(r.account, "account", ty)?),
                order: OrderId(req(r.order, "order", ty)?),
            }
        }
        "fill" => fill_event(r)?,
        "oracle" => {
            r.only(ty, &["asset", "source", "price"])?;
            Event::Oracle {
                asset: sym(req(r.asset, "asset", ty)?, "asset")?,
                source: req(r.source, "source", ty)?,
                price: dec(req(r.price, "price", ty)?, "price")?,
            }
        }
        "funding" => {
            r.only(ty, &["market", "rate"])?;
            Event::Funding {
                market: sym(req(r.market, "market", ty)?, "market")?,
                rate: dec(req(r.rate, "rate", ty)?, "rate")?,
            }
        }
        "liquidate" => {
            r.only(ty, &["liquidator", "account", "market", "size"])?;
            Event::Liquidate {
                liquidator: AccountId(req(r.liquidator, "liquidator", ty)?),
                account: AccountId(req(r.account, "account", ty)?),
                market: sym(req(r.market, "market", ty)?, "market")?,
                size: dec(req(r.size, "size", ty)?, "size")?,
            }
        }
        other => return Err(bad!("unknown event type {other:?}")),
    })
}

/// `margin_mode` in its two shapes: `cross`/`isolated` with a `market`, `portfolio`/`standard`
/// without one (the cross bucket's margin).
fn margin_mode_event(r: &Raw<'_>) -> Result<Event, Malformed> {
    let ty = "margin_mode";
    r.only(ty, &["account", "market", "mode"])?;
    let account = AccountId(req(r.account, "account", ty)?);
    let mode = req(r.mode, "mode", ty)?;
    let market_mode = match mode {
        "cross" => Some(MarginMode::Cross),
        "isolated" => Some(MarginMode::Isolated),
        "portfolio" | "standard" => None,
        other => {
            return Err(bad!(
                "field `mode` must be \"cross\", \"isolated\", \"portfolio\" or \"standard\", got {other:?}"
            ))
        }
    };
    match (market_mode, r.market) {
        (Some(mode), Some(m)) => Ok(Event::MarginMode {
            account,
            market: sym(m, "market")?,
            mode,
        }),
        (Some(_), None) => Err(bad!(
            "`margin_mode` with mode {mode:?} needs field `market`"
        )),
        (None, None) => Ok(Event::CrossMode {
            account,
            portfolio: mode == "portfolio",
        }),
        (None, Some(_)) => Err(bad!(
            "`margin_mode` with mode {mode:?} sets the cross bucket's margin and takes no `market`"
        )),
    }
}

fn risk_scenarios_event(r: &Raw<'_>) -> Result<Event, Malformed> {
    let ty = "risk_scenarios";
    r.only(
        ty,
        &["name", "version", "im_factor", "le_factor", "scenarios"],
    )?;
    let raw = req(r.scenarios.as_ref(), "scenarios", ty)?;
    let mut scenarios = Vec::with_capacity(raw.len());
    for s in raw {
        let mut moves = Vec::with_capacity(s.moves.0.len());
        for (asset, m) in &s.moves.0 {
            moves.push((asset.to_string(), dec(m, "scenarios.moves")?));
        }
        scenarios.push(ScenarioSpec {
            name: s.name.to_string(),
            weight: dec(s.weight, "scenarios.weight")?,
            moves,
        });
    }
    Ok(Event::RiskScenarios(Box::new(RiskScenariosSpec {
        name: req(r.name, "name", ty)?.to_string(),
        version: req(r.version.as_ref(), "version", ty)?.0,
        im_factor: opt_dec(r.im_factor, "im_factor")?,
        le_factor: opt_dec(r.le_factor, "le_factor")?,
        scenarios,
    })))
}

fn asset_params(r: &Raw<'_>) -> Result<AssetParams, Malformed> {
    Ok(AssetParams {
        price_decimals: r.price_decimals,
        weight_init: opt_dec(r.weight_init, "weight_init")?,
        weight_maint: opt_dec(r.weight_maint, "weight_maint")?,
        oracle: r
            .oracle
            .as_ref()
            .map(|o| -> Result<OracleSpec, Malformed> {
                Ok(OracleSpec {
                    sources: o.sources,
                    min_sources: o.min_sources,
                    max_age_us: o.max_age_us,
                    max_deviation: dec(o.max_deviation, "oracle.max_deviation")?,
                })
            })
            .transpose()?,
        breaker: r
            .breaker
            .as_ref()
            .map(|b| -> Result<BreakerSpec, Malformed> {
                Ok(BreakerSpec {
                    max_move: dec(b.max_move, "breaker.max_move")?,
                    window_us: b.window_us,
                    confirm_us: b.confirm_us,
                })
            })
            .transpose()?,
    })
}

fn asset_event(r: &Raw<'_>) -> Result<Event, Malformed> {
    let mut allowed = vec!["asset", "decimals", "quote"];
    allowed.extend_from_slice(ASSET_PARAM_FIELDS);
    r.only("asset", &allowed)?;
    Ok(Event::Asset(Box::new(AssetSpec {
        asset: sym(req(r.asset, "asset", "asset")?, "asset")?,
        decimals: req(r.decimals, "decimals", "asset")?,
        quote: r.quote.unwrap_or(false),
        params: asset_params(r)?,
    })))
}

fn market_params(r: &Raw<'_>) -> Result<MarketParams, Malformed> {
    let tiers = r
        .tiers
        .as_ref()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    Ok(TierSpec {
                        above: dec(t.above, "tiers.above")?,
                        imf: dec(t.imf, "tiers.imf")?,
                        mmf: dec(t.mmf, "tiers.mmf")?,
                    })
                })
                .collect::<Result<Vec<_>, Malformed>>()
        })
        .transpose()?;
    let vol = r
        .vol
        .as_ref()
        .map(|v| -> Result<VolSpec, Malformed> {
            Ok(VolSpec {
                lambda: dec(v.lambda, "vol.lambda")?,
                reference: dec(v.reference, "vol.reference")?,
                mult: dec(v.mult, "vol.mult")?,
                cap: dec(v.cap, "vol.cap")?,
            })
        })
        .transpose()?;
    Ok(MarketParams {
        imf: opt_dec(r.imf, "imf")?,
        mmf: opt_dec(r.mmf, "mmf")?,
        tiers,
        upnl_weight_init: opt_dec(r.upnl_weight_init, "upnl_weight_init")?,
        funding_rate_cap: opt_dec(r.funding_rate_cap, "funding_rate_cap")?,
        liq_discount_start: opt_dec(r.liq_discount_start, "liq_discount_start")?,
        liq_discount_max: opt_dec(r.liq_discount_max, "liq_discount_max")?,
        liq_auction_us: r.liq_auction_us,
        liq_if_fee: opt_dec(r.liq_if_fee, "liq_if_fee")?,
        liq_min_notional: opt_dec(r.liq_min_notional, "liq_min_notional")?,
        margin_call: opt_dec(r.margin_call, "margin_call")?,
        ramp_us: r.ramp_us,
        vol,
        spike_prints: r.spike_prints,
        insurance_cap: opt_dec(r.insurance_cap, "insurance_cap")?,
        own_fund: r.own_fund,
        pm_min_rate: opt_dec(r.pm_min_rate, "pm_min_rate")?,
    })
}

fn market_event(r: &Raw<'_>) -> Result<Event, Malformed> {
    let mut allowed = vec!["market", "base", "size_decimals"];
    allowed.extend_from_slice(MARKET_PARAM_FIELDS);
    r.only("market", &allowed)?;
    Ok(Event::Market(Box::new(MarketSpec {
        market: sym(req(r.market, "market", "market")?, "market")?,
        base: sym(req(r.base, "base", "market")?, "base")?,
        size_decimals: req(r.size_decimals, "size_decimals", "market")?,
        params: market_params(r)?,
    })))
}

fn params_event(r: &Raw<'_>) -> Result<Event, Malformed> {
    match (r.asset, r.market) {
        (Some(a), None) => {
            let mut allowed = vec!["asset"];
            allowed.extend_from_slice(ASSET_PARAM_FIELDS);
            r.only("params", &allowed)
                .map_err(|e| bad!("{e} for an asset"))?;
            Ok(Event::Params(Box::new(ParamsSpec::Asset {
                asset: sym(a, "asset")?,
                params: asset_params(r)?,
            })))
        }
        (None, Some(m)) => {
            let mut allowed = vec!["market"];
            allowed.extend_from_slice(MARKET_PARAM_FIELDS);
            r.only("params", &allowed)
                .map_err(|e| bad!("{e} for a market"))?;
            Ok(Event::Params(Box::new(ParamsSpec::Market {
                market: sym(m, "market")?,
                params: market_params(r)?,
            })))
        }
        _ => Err(bad!(
            "`params` event needs exactly one of `asset` or `market`"
        )),
    }
}

fn order_event(r: &Raw<'_>) -> Result<Event, Malformed> {
    let ty = "order";
    r.only(
        ty,
        &[
            "account",
            "order",
            "market",
            "side",
            "price",
            "size",
            "reduce_only",
        ],
    )?;
    Ok(Event::Order(OrderSpec {
        account: AccountId(req(r.account, "account", ty)?),
        order: OrderId(req(r.order, "order", ty)?),
        market: sym(req(r.market, "market", ty)?, "market")?,
        side: side(req(r.side, "side", ty)?)?,
        price: dec(req(r.price, "price", ty)?, "price")?,
        size: dec(req(r.size, "size", ty)?, "size")?,
        reduce_only: r.reduce_only.unwrap_or(false),
    }))
}

fn fill_event(r: &Raw<'_>) -> Result<Event, Malformed> {
    let ty = "fill";
    r.only(
        ty,
        &[
            "market",
            "taker",
            "maker",
            "side",
            "price",
            "size",
            "taker_order",
            "maker_order",
            "taker_fee",
            "maker_fee",
        ],
    )?;
    Ok(Event::Fill(FillSpec {
        market: sym(req(r.market, "market", ty)?, "market")?,
        taker: AccountId(req(r.taker, "taker", ty)?),
        maker: AccountId(req(r.maker, "maker", ty)?),
        side: side(req(r.side, "side", ty)?)?,
        price: dec(req(r.price, "price", ty)?, "price")?,
        size: dec(req(r.size, "size", ty)?, "size")?,
        taker_order: r.taker_order.map(OrderId),
        maker_order: r.maker_order.map(OrderId),
        taker_fee: opt_dec(r.taker_fee, "taker_fee")?,
        maker_fee: opt_dec(r.maker_fee, "maker_fee")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_examples() {
        let lines = [
            r#"{"type":"asset","ts":0,"asset":"USDC","decimals":6,"quote":true}"#,
            r#"{"type":"asset","ts":0,"asset":"BTC","decimals":8,"price_decimals":2,"weight_init":"0.8","weight_maint":"0.9","oracle":{"sources":3,"min_sources":2,"max_age_us":10000000,"max_deviation":"0.05"}}"#,
            r#"{"type":"market","ts":0,"market":"BTC-PERP","base":"BTC","size_decimals":4,"imf":"0.1","mmf":"0.05","tiers":[{"above":"1000000","imf":"0.2","mmf":"0.1"}],"upnl_weight_init":"1","funding_rate_cap":"0.01","liq_discount_start":"0.005","liq_discount_max":"0.05","liq_auction_us":60000000,"liq_if_fee":"0.005","liq_min_notional":"50","margin_call":"1.25"}"#,
            r#"{"type":"params","ts":5,"market":"BTC-PERP","imf":"0.12"}"#,
            r#"{"type":"params","ts":5,"asset":"BTC","weight_init":"0.75"}"#,
            r#"{"type":"insurance","ts":6,"amount":"250000"}"#,
            r#"{"type":"deposit","ts":10,"account":7,"asset":"USDC","amount":"10000"}"#,
            r#"{"type":"withdraw","ts":11,"account":7,"asset":"BTC","amount":"0.5"}"#,
            r#"{"type":"margin_mode","ts":12,"account":7,"market":"BTC-PERP","mode":"isolated"}"#,
            r#"{"type":"isolate","ts":13,"account":7,"market":"BTC-PERP","amount":"1000"}"#,
            r#"{"type":"order","ts":20,"account":7,"order":991,"market":"BTC-PERP","side":"buy","price":"65000","size":"0.5","reduce_only":false}"#,
            r#"{"type":"cancel","ts":21,"account":7,"order":991}"#,
            r#"{"type":"fill","ts":22,"market":"BTC-PERP","taker":7,"maker":9,"side":"buy","price":"65000","size":"0.5","taker_order":991,"maker_order":12,"taker_fee":"16.25","maker_fee":"-3.25"}"#,
            r#"{"type":"oracle","ts":30,"asset":"BTC","source":1,"price":"65010.5"}"#,
            r#"{"type":"funding","ts":40,"market":"BTC-PERP","rate":"0.0001"}"#,
            r#"{"type":"liquidate","ts":50,"liquidator":42,"account":7,"market":"BTC-PERP","size":"0.25"}"#,
        ];
        for l in lines {
            parse_input(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        }
    }

    fn err(line: &str) -> String {
        parse_input(line).unwrap_err().0
    }

    #[test]
    fn malformed_lines_name_the_problem() {
        assert!(err("not json").contains("expected"));
        assert!(
            err(r#"{"type":"deposit","ts":1,"account":7,"asset":"USDC","amount":"1","x":1}"#)
                .contains("unknown field `x`")
        );
        assert!(
            err(r#"{"type":"deposit","ts":1,"account":7,"asset":"USDC","price":"1"}"#)
                .contains("`price` is not part of a `deposit`")
        );
        assert!(
            err(r#"{"type":"deposit","ts":1,"account":7,"asset":"USDC"}"#)
                .contains("needs field `amount`")
        );
        assert!(
            err(r#"{"type":"deposit","ts":1,"account":"7","asset":"USDC","amount":"1"}"#)
                .contains("invalid type")
        );
        assert!(
            err(r#"{"type":"deposit","ts":1,"account":7,"asset":"USDC","amount":1}"#)
                .contains("invalid type")
        );
        assert!(
            err(r#"{"type":"deposit","ts":1,"account":7,"asset":"USDC","amount":"1e5"}"#)
                .contains("`amount`")
        );
        assert!(err(r#"{"type":"teleport","ts":1}"#).contains("unknown event type"));
        assert!(err(r#"{"ts":1}"#).contains("missing field `type`"));
        assert!(err(r#"{"type":"cancel","account":1,"order":2}"#).contains("missing field `ts`"));
        assert!(err(r#"{"type":"cancel","ts":-1,"account":1,"order":2}"#).contains("invalid value"));
        assert!(
            err(r#"{"type":"cancel","ts":1,"ts":2,"account":1,"order":2}"#)
                .contains("duplicate field")
        );
        assert!(err(r#"{"type":"order","ts":1,"account":1,"order":2,"market":"M","side":"up","price":"1","size":"1"}"#).contains("`side`"));
        assert!(err(r#"{"type":"params","ts":1,"asset":"A","market":"M"}"#).contains("exactly one"));
        assert!(err(r#"{"type":"params","ts":1,"market":"M","base":"X"}"#).contains("`base`"));
        // An explicit null is not an absent field (hardening defect 13).
        assert!(err(r#"{"type":"order","ts":1,"account":1,"order":2,"market":"M","side":"buy","price":"1","size":"1","reduce_only":null}"#).contains("field `reduce_only` is null"));
        assert!(err(r#"{"type":"fill","ts":1,"market":"M","taker":1,"maker":2,"side":"buy","price":"1","size":"1","taker_fee": null}"#).contains("`taker_fee` is null"));
        // The word inside a string is no null.
        assert!(parse_input(
            r#"{"type":"deposit","ts":1,"account":7,"asset":"null","amount":"1"}"#
        )
        .is_ok());
        assert!(parse_input(
            r#"{"type":"deposit","ts":1,"account":7,"asset":"a:null","amount":"1"}"#
        )
        .is_ok());
    }

    #[test]
    fn values_are_judged_later_not_here() {
        // Too fine or too large is not malformed: the state machine answers with the field's code.
        let i = parse_input(
            r#"{"type":"deposit","ts":1,"account":7,"asset":"NOPE","amount":"0.0000000000001"}"#,
        )
        .unwrap();
        assert!(matches!(i.event, Event::Deposit { .. }));
        let huge = format!(
            r#"{{"type":"deposit","ts":1,"account":7,"asset":"USDC","amount":"{}"}}"#,
            "9".repeat(80)
        );
        match parse_input(&huge).unwrap().event {
            Event::Deposit { amount, .. } => assert!(amount.is_out_of_range()),
            _ => unreachable!(),
        }
    }
}
