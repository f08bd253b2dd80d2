//! Writing records and events as JSON Lines: numbers as decimal strings with their asset's
//! decimals, ids and counts as integers, fields in a fixed order so that the bytes are stable.

use crate::event::{
    AssetParams, Event, Input, MarketParams, OracleSpec, ParamsSpec, RiskScenariosSpec, TierSpec,
};
use crate::ids::Symbol;
use crate::num::{decimal::write_scaled, Dec};

/// How an out-of-range decimal is written in an exported input: 10^39, which no i128 holds.
const OUT_OF_RANGE_TEXT: &str = "1000000000000000000000000000000000000000";
use crate::record::{Body, BucketName, Num, Record};
use std::fmt::Write as _;

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A small builder of one JSON object.
struct Obj<'a> {
    out: &'a mut String,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.out.ends_with('{') {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.out
    }

    fn int(&mut self, k: &str, v: impl std::fmt::Display) -> &mut Self {
        let o = self.key(k);
        let _ = write!(o, "{v}");
        self
    }

    fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let o = self.key(k);
        write_json_str(o, v);
        self
    }

    fn num(&mut self, k: &str, v: Num) -> &mut Self {
        let o = self.key(k);
        o.push('"');
        write_scaled(o, v.value, v.decimals);
        o.push('"');
        self
    }

    fn dec(&mut self, k: &str, v: &Dec) -> &mut Self {
        if v.is_out_of_range() {
            // The feeder's digits did not fit and are gone; 10^39 is beyond i128 and parses
            // back to the same marker, so an exported input replays to the same rejection.
            return self.str(k, OUT_OF_RANGE_TEXT);
        }
        let s = v.to_string();
        self.str(k, &s)
    }

    fn opt_dec(&mut self, k: &str, v: &Option<Dec>) -> &mut Self {
        if let Some(v) = v {
            self.dec(k, v);
        }
        self
    }

    fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        let o = self.key(k);
        o.push_str(if v { "true" } else { "false" });
        self
    }

    fn bucket(&mut self, b: &BucketName) -> &mut Self {
        match b {
            BucketName::Cross => self.str("bucket", "cross"),
            BucketName::Isolated(m) => self.str("bucket", m.as_str()),
        }
    }

    fn sym(&mut self, k: &str, s: &Symbol) -> &mut Self {
        self.str(k, s.as_str())
    }

    fn end(&mut self) {
        self.out.push('}');
    }
}

/// Appends one record as a JSON object (no newline).
pub fn write_record(out: &mut String, r: &Record) {
    let mut o = Obj::new(out);
    o.int("seq", r.seq).int("input", r.input).int("ts", r.ts);
    o.str("type", r.body.type_name());
    write_body(&mut o, &r.body);
    o.end();
}

/// A record as one JSON line (without the newline).
pub fn record_line(r: &Record) -> String {
    let mut s = String::with_capacity(160);
    write_record(&mut s, r);
    s
}

fn write_body(o: &mut Obj<'_>, body: &Body) {
    match body {
        Body::Accepted { order_unknown } => {
            let ids: Vec<String> = order_unknown
                .iter()
                .flatten()
                .map(|id| id.0.to_string())
                .collect();
            if !ids.is_empty() {
                let k = o.key("order_unknown");
                let _ = write!(k, "[{}]", ids.join(","));
            }
        }
        Body::Rejected { reason, detail } => {
            o.str("reason", reason.code())
                .str("detail", detail.as_str());
        }
        Body::Balance {
            account,
            bucket,
            asset,
            balance,
            delta,
            cause,
        } => {
            o.int("account", account).bucket(bucket).sym("asset", asset);
            o.num("balance", *balance)
                .num("delta", *delta)
                .str("cause", cause.as_str());
        }
        Body::Position {
            account,
            market,
            mode,
            size,
            quote,
            realized,
        } => {
            o.int("account", account)
                .sym("market", market)
                .str("mode", mode.as_str());
            o.num("size", *size)
                .num("quote", *quote)
                .num("realized", *realized);
        }
        Body::OrderOpen {
            account,
            order,
            market,
            side,
            price,
            size,
            reduce_only,
        } => {
            o.int("account", account)
                .int("order", order)
                .sym("market", market);
            o.str("side", side.as_str())
                .num("price", *price)
                .num("size", *size);
            o.bool("reduce_only", *reduce_only);
        }
        Body::OrderClosed {
            account,
            order,
            market,
            remaining,
            reason,
        } => {
            o.int("account", account)
                .int("order", order)
                .sym("market", market);
            o.num("remaining", *remaining)
                .str("reason", reason.as_str());
        }
        Body::Index {
            asset,
            index,
            sources,
            volatile,
        } => {
            o.sym("asset", asset)
                .num("index", *index)
                .int("sources", sources);
            if *volatile {
                o.bool("volatile", true);
            }
        }
        Body::OracleStale { asset, stale } => {
            o.sym("asset", asset).bool("stale", *stale);
        }
        Body::OracleOutlier {
            asset,
            source,
            price,
        } => {
            o.sym("asset", asset)
                .int("source", source)
                .num("price", *price);
        }
        Body::Funding {
            market,
            rate,
            index_price,
            funding_index,
        } => {
            o.sym("market", market)
                .num("rate", *rate)
                .num("index_price", *index_price);
            o.num("funding_index", *funding_index);
        }
        Body::MarginCall {
            account,
            bucket,
            equity_maint,
            mm,
        } => {
            o.int("account", account).bucket(bucket);
            o.num("equity_maint", *equity_maint).num("mm", *mm);
        }
        Body::LiquidationStarted {
            account,
            bucket,
            equity_maint,
            mm,
        } => {
            o.int("account", account).bucket(bucket);
            o.num("equity_maint", *equity_maint).num("mm", *mm);
        }
        Body::LiquidationFill {
            account,
            bucket,
            liquidator,
            market,
            side,
            size,
            price,
            fee,
        } => {
            o.int("account", account)
                .bucket(bucket)
                .int("liquidator", liquidator);
            o.sym("market", market).str("side", side.as_str());
            o.num("size", *size).num("price", *price).num("fee", *fee);
        }
        Body::LiquidationEnded {
            account,
            bucket,
            reason,
        } => {
            o.int("account", account)
                .bucket(bucket)
                .str("reason", reason.as_str());
        }
        Body::Bankruptcy {
            account,
            bucket,
            deficit,
            insurance,
            socialized,
        } => {
            o.int("account", account).bucket(bucket);
            o.num("deficit", *deficit)
                .num("insurance", *insurance)
                .num("socialized", *socialized);
        }
        Body::Insurance {
            market,
            fund,
            delta,
            cause,
        } => {
            if let Some(m) = market {
                o.sym("market", m);
            }
            o.num("fund", *fund)
                .num("delta", *delta)
                .str("cause", cause.as_str());
        }
        Body::InsuranceAsset {
            asset,
            holding,
            delta,
        } => {
            o.sym("asset", asset)
                .num("holding", *holding)
                .num("delta", *delta);
        }
        Body::Adl {
            account,
            bucket,
            market,
            side,
            size,
            notional,
            liquidated,
        } => {
            o.int("account", account)
                .bucket(bucket)
                .sym("market", market);
            o.str("side", side.as_str())
                .num("size", *size)
                .num("notional", *notional);
            o.int("liquidated", liquidated);
        }
    }
}

/// An input event as one JSON line of the contract (without the newline): what `export` prints
/// and `run` reads back.
pub fn input_line(input: &Input) -> String {
    let mut out = String::with_capacity(160);
    let mut o = Obj::new(&mut out);
    o.str("type", input.event.type_name()).int("ts", input.ts);
    write_event(&mut o, &input.event);
    o.end();
    out
}

fn write_event(o: &mut Obj<'_>, e: &Event) {
    match e {
        Event::Asset(a) => {
            o.sym("asset", &a.asset).int("decimals", a.decimals);
            if a.quote {
                o.bool("quote", true);
            }
            write_asset_params(o, &a.params);
        }
        Event::Market(m) => {
            o.sym("market", &m.market)
                .sym("base", &m.base)
                .int("size_decimals", m.size_decimals);
            write_market_params(o, &m.params);
        }
        Event::Params(p) => match p.as_ref() {
            ParamsSpec::Asset { asset, params } => {
                o.sym("asset", asset);
                write_asset_params(o, params);
            }
            ParamsSpec::Market { market, params } => {
                o.sym("market", market);
                write_market_params(o, params);
            }
        },
        Event::Insurance { amount, market } => {
            o.dec("amount", amount);
            if let Some(m) = market {
                o.sym("market", m);
            }
        }
        Event::Deposit {
            account,
            asset,
            amount,
        }
        | Event::Withdraw {
            account,
            asset,
            amount,
        } => {
            o.int("account", account)
                .sym("asset", asset)
                .dec("amount", amount);
        }
        Event::MarginMode {
            account,
            market,
            mode,
        } => {
            o.int("account", account)
                .sym("market", market)
                .str("mode", mode.as_str());
        }
        Event::Isolate {
            account,
            market,
            amount,
        } => {
            o.int("account", account)
                .sym("market", market)
                .dec("amount", amount);
        }
        Event::Order(s) => {
            o.int("account", s.account)
                .int("order", s.order)
                .sym("market", &s.market);
            o.str("side", s.side.as_str())
                .dec("price", &s.price)
                .dec("size", &s.size);
            o.bool("reduce_only", s.reduce_only);
        }
        Event::Cancel { account, order } => {
            o.int("account", account).int("order", order);
        }
        Event::Fill(f) => {
            o.sym("market", &f.market)
                .int("taker", f.taker)
                .int("maker", f.maker);
            o.str("side", f.side.as_str())
                .dec("price", &f.price)
                .dec("size", &f.size);
            if let Some(id) = f.taker_order {
                o.int("taker_order", id);
            }
            if let Some(id) = f.maker_order {
                o.int("maker_order", id);
            }
            o.opt_dec("taker_fee", &f.taker_fee)
                .opt_dec("maker_fee", &f.maker_fee);
        }
        Event::Oracle {
            asset,
            source,
            price,
        } => {
            o.sym("asset", asset)
                .int("source", source)
                .dec("price", price);
        }
        Event::Funding { market, rate } => {
            o.sym("market", market).dec("rate", rate);
        }
        Event::Liquidate {
            liquidator,
            account,
            market,
            size,
        } => {
            o.int("liquidator", liquidator).int("account", account);
            o.sym("market", market).dec("size", size);
        }
        Event::RiskScenarios(r) => write_risk_scenarios(o, r),
        Event::CrossMode { account, portfolio } => {
            o.int("account", account)
                .str("mode", if *portfolio { "portfolio" } else { "standard" });
        }
    }
}

fn write_risk_scenarios(o: &mut Obj<'_>, r: &RiskScenariosSpec) {
    o.str("name", &r.name).int("version", r.version);
    o.opt_dec("im_factor", &r.im_factor)
        .opt_dec("le_factor", &r.le_factor);
    let k = o.key("scenarios");
    k.push('[');
    for (i, s) in r.scenarios.iter().enumerate() {
        if i > 0 {
            k.push(',');
        }
        let mut inner = Obj::new(k);
        inner.str("name", &s.name).dec("weight", &s.weight);
        let m = inner.key("moves");
        let mut moves = Obj::new(m);
        for (asset, r) in &s.moves {
            moves.dec(asset, r);
        }
        moves.end();
        inner.end();
    }
    k.push(']');
}

fn write_asset_params(o: &mut Obj<'_>, p: &AssetParams) {
    if let Some(pd) = p.price_decimals {
        o.int("price_decimals", pd);
    }
    o.opt_dec("weight_init", &p.weight_init)
        .opt_dec("weight_maint", &p.weight_maint);
    if let Some(OracleSpec {
        sources,
        min_sources,
        max_age_us,
        max_deviation,
    }) = &p.oracle
    {
        let k = o.key("oracle");
        let mut inner = Obj::new(k);
        inner
            .int("sources", sources)
            .int("min_sources", min_sources)
            .int("max_age_us", max_age_us);
        inner.dec("max_deviation", max_deviation).end();
    }
    if let Some(b) = &p.breaker {
        let k = o.key("breaker");
        let mut inner = Obj::new(k);
        inner
            .dec("max_move", &b.max_move)
            .int("window_us", b.window_us)
            .int("confirm_us", b.confirm_us);
        inner.end();
    }
}

fn write_market_params(o: &mut Obj<'_>, p: &MarketParams) {
    o.opt_dec("imf", &p.imf).opt_dec("mmf", &p.mmf);
    if let Some(tiers) = &p.tiers {
        let k = o.key("tiers");
        k.push('[');
        for (i, TierSpec { above, imf, mmf }) in tiers.iter().enumerate() {
            if i > 0 {
                k.push(',');
            }
            let mut inner = Obj::new(k);
            inner
                .dec("above", above)
                .dec("imf", imf)
                .dec("mmf", mmf)
                .end();
        }
        k.push(']');
    }
    o.opt_dec("upnl_weight_init", &p.upnl_weight_init);
    o.opt_dec("funding_rate_cap", &p.funding_rate_cap);
    o.opt_dec("liq_discount_start", &p.liq_discount_start);
    o.opt_dec("liq_discount_max", &p.liq_discount_max);
    if let Some(v) = p.liq_auction_us {
        o.int("liq_auction_us", v);
    }
    o.opt_dec("liq_if_fee", &p.liq_if_fee)
        .opt_dec("liq_min_notional", &p.liq_min_notional);
    o.opt_dec("margin_call", &p.margin_call);
    if let Some(v) = p.ramp_us {
        o.int("ramp_us", v);
    }
    if let Some(v) = &p.vol {
        let k = o.key("vol");
        let mut inner = Obj::new(k);
        inner
            .dec("lambda", &v.lambda)
            .dec("reference", &v.reference);
        inner.dec("mult", &v.mult).dec("cap", &v.cap).end();
    }
    if let Some(v) = p.spike_prints {
        o.int("spike_prints", v);
    }
    o.opt_dec("insurance_cap", &p.insurance_cap);
    if let Some(v) = p.own_fund {
        o.bool("own_fund", v);
    }
    o.opt_dec("pm_min_rate", &p.pm_min_rate);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json_in::parse_input;

    #[test]
    fn events_round_trip_through_json() {
        let lines = [
            r#"{"type":"asset","ts":0,"asset":"BTC","decimals":8,"price_decimals":2,"weight_init":"0.8","weight_maint":"0.9","oracle":{"sources":3,"min_sources":2,"max_age_us":10000000,"max_deviation":"0.05"}}"#,
            r#"{"type":"market","ts":0,"market":"BTC-PERP","base":"BTC","size_decimals":4,"imf":"0.1","mmf":"0.05","tiers":[{"above":"1000000","imf":"0.2","mmf":"0.1"}],"liq_auction_us":60000000}"#,
            r#"{"type":"fill","ts":22,"market":"BTC-PERP","taker":7,"maker":9,"side":"buy","price":"65000","size":"0.5","taker_order":991,"taker_fee":"16.25","maker_fee":"-3.25"}"#,
            r#"{"type":"params","ts":5,"asset":"BTC","weight_init":"0.75"}"#,
            r#"{"type":"params","ts":5,"market":"BTC-PERP","pm_min_rate":"0.02"}"#,
            r#"{"type":"risk_scenarios","ts":6,"name":"crypto","version":3,"im_factor":"1.5","scenarios":[{"name":"dn","weight":"0.5","moves":{"BTC":"-0.1","ETH":"-0.12"}},{"name":"flat","weight":"1","moves":{}}]}"#,
            r#"{"type":"risk_scenarios","ts":6,"name":"x","version":-4,"scenarios":[]}"#,
            r#"{"type":"margin_mode","ts":7,"account":3,"mode":"portfolio"}"#,
            r#"{"type":"margin_mode","ts":7,"account":3,"mode":"standard"}"#,
        ];
        for l in lines {
            let a = parse_input(l).unwrap();
            let b = parse_input(&input_line(&a)).unwrap();
            assert_eq!(a, b, "{l}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\n\u{1}");
        assert_eq!(s, r#""a\"b\\c\n\u0001""#);
    }
}
