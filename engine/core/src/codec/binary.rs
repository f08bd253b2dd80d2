//! The binary ingress format: one fixed-layout, little-endian record per event, version 1,
//! that a feeder in any language can write with a few stores (docs/formats.md, "Binary
//! events"). It is not a dump of internal types: its layout is fixed here and only grows by new
//! type codes or a new version.
//!
//! Decoding is strict: the length must be exactly the type's, reserved bytes and unused fields
//! zero, flags known, enum bytes in range. Names are built with the JSON codec's constructor
//! (`Symbol::new`), decimals must be what the JSON codec could have made (`Dec::is_canonical`),
//! so that the whole input meets [`Input::check_wire`], so both codecs feed the state
//! machine the same set of inputs and the state machine judges them the same way.
//! Venue set-up events (`asset`, `market`, `params`, `risk_scenarios`), whose shape is not
//! fixed, and the bucket form of `margin_mode` (rare, and added after version 1 was fixed) travel
//! as a JSON line inside a frame of type [`TYPE_JSON`] and are parsed by the JSON codec itself.

use super::json_in::{parse_input, Malformed};
use crate::event::{Event, FillSpec, Input, OrderSpec};
use crate::ids::{AccountId, MarginMode, OrderId, Side, Symbol, SYMBOL_LEN_MAX};
use crate::num::Dec;

/// The format version, the first byte of every record.
pub const VERSION: u8 = 1;
/// Bytes of the header: version, type, six reserved zero bytes, `ts`.
pub const HEADER_LEN: usize = 16;
/// Bytes of an encoded decimal: the mantissa (i128) and the scale (u8).
pub const DEC_LEN: usize = 17;
/// Bytes of an encoded name: the name's bytes, zero-padded.
pub const SYM_LEN: usize = SYMBOL_LEN_MAX;

/// Type codes (stable: never renumbered).
pub const TYPE_INSURANCE: u8 = 1;
pub const TYPE_DEPOSIT: u8 = 2;
pub const TYPE_WITHDRAW: u8 = 3;
pub const TYPE_MARGIN_MODE: u8 = 4;
pub const TYPE_ISOLATE: u8 = 5;
pub const TYPE_ORDER: u8 = 6;
pub const TYPE_CANCEL: u8 = 7;
pub const TYPE_FILL: u8 = 8;
pub const TYPE_ORACLE: u8 = 9;
pub const TYPE_FUNDING: u8 = 10;
pub const TYPE_LIQUIDATE: u8 = 11;
/// The rest of the record is one JSON event line (UTF-8, no newline).
pub const TYPE_JSON: u8 = 0xFF;

/// Body bytes after the header, per fixed type code.
pub fn body_len(ty: u8) -> Option<usize> {
    Some(match ty {
        TYPE_INSURANCE => 1 + DEC_LEN + SYM_LEN,
        TYPE_DEPOSIT | TYPE_WITHDRAW | TYPE_ISOLATE => 8 + SYM_LEN + DEC_LEN,
        TYPE_MARGIN_MODE => 8 + SYM_LEN + 1,
        TYPE_ORDER => 8 + 8 + SYM_LEN + 1 + 1 + 2 * DEC_LEN,
        TYPE_CANCEL => 16,
        TYPE_FILL => SYM_LEN + 8 + 8 + 1 + 1 + 2 * DEC_LEN + 8 + 8 + 2 * DEC_LEN,
        TYPE_ORACLE => SYM_LEN + 8 + DEC_LEN,
        TYPE_FUNDING => SYM_LEN + DEC_LEN,
        TYPE_LIQUIDATE => 8 + 8 + SYM_LEN + DEC_LEN,
        _ => return None,
    })
}

// Flag bits of an `insurance` record.
const INSURANCE_MARKET: u8 = 1;
// Flag bits of a `fill` record.
const FILL_TAKER_ORDER: u8 = 1;
const FILL_MAKER_ORDER: u8 = 2;
const FILL_TAKER_FEE: u8 = 4;
const FILL_MAKER_FEE: u8 = 8;

/// Appends the record of `input` to `out`. Set-up events are written as a [`TYPE_JSON`]
/// record holding their JSON line.
pub fn encode(input: &Input, out: &mut Vec<u8>) {
    let mut w = Writer { out };
    let ty = match &input.event {
        Event::Asset(_)
        | Event::Market(_)
        | Event::Params(_)
        | Event::RiskScenarios(_)
        | Event::CrossMode { .. } => TYPE_JSON,
        Event::Insurance { .. } => TYPE_INSURANCE,
        Event::Deposit { .. } => TYPE_DEPOSIT,
        Event::Withdraw { .. } => TYPE_WITHDRAW,
        Event::MarginMode { .. } => TYPE_MARGIN_MODE,
        Event::Isolate { .. } => TYPE_ISOLATE,
        Event::Order(_) => TYPE_ORDER,
        Event::Cancel { .. } => TYPE_CANCEL,
        Event::Fill(_) => TYPE_FILL,
        Event::Oracle { .. } => TYPE_ORACLE,
        Event::Funding { .. } => TYPE_FUNDING,
        Event::Liquidate { .. } => TYPE_LIQUIDATE,
    };
    w.bytes(&[VERSION, ty, 0, 0, 0, 0, 0, 0]);
    w.u64(input.ts);
    match &input.event {
        Event::Asset(_)
        | Event::Market(_)
        | Event::Params(_)
        | Event::RiskScenarios(_)
        | Event::CrossMode { .. } => {
            w.bytes(super::input_line(input).as_bytes());
        }
        Event::Insurance { amount, market } => {
            w.u8(if market.is_some() {
                INSURANCE_MARKET
            } else {
                0
            });
            w.dec(Some(amount));
            w.sym(market.as_ref());
        }
        // One layout for the three: account, name, amount.
        Event::Deposit {
            account,
            asset: name,
            amount,
        }
        | Event::Withdraw {
            account,
            asset: name,
            amount,
        }
        | Event::Isolate {
            account,
            market: name,
            amount,
        } => {
            w.u64(account.0);
            w.sym(Some(name));
            w.dec(Some(amount));
        }
        Event::MarginMode {
            account,
            market,
            mode,
        } => {
            w.u64(account.0);
            w.sym(Some(market));
            w.u8(*mode as u8);
        }
        Event::Order(o) => {
            w.u64(o.account.0);
            w.u64(o.order.0);
            w.sym(Some(&o.market));
            w.u8(o.side as u8);
            w.u8(u8::from(o.reduce_only));
            w.dec(Some(&o.price));
            w.dec(Some(&o.size));
        }
        Event::Cancel { account, order } => {
            w.u64(account.0);
            w.u64(order.0);
        }
        Event::Fill(f) => encode_fill(f, &mut w),
        Event::Oracle {
            asset,
            source,
            price,
        } => {
            w.sym(Some(asset));
            w.u64(*source);
            w.dec(Some(price));
        }
        Event::Funding { market, rate } => {
            w.sym(Some(market));
            w.dec(Some(rate));
        }
        Event::Liquidate {
            liquidator,
            account,
            market,
            size,
        } => {
            w.u64(liquidator.0);
            w.u64(account.0);
            w.sym(Some(market));
            w.dec(Some(size));
        }
    }
}

fn encode_fill(f: &FillSpec, w: &mut Writer<'_>) {
    let flags = [
        (f.taker_order.is_some(), FILL_TAKER_ORDER),
        (f.maker_order.is_some(), FILL_MAKER_ORDER),
        (f.taker_fee.is_some(), FILL_TAKER_FEE),
        (f.maker_fee.is_some(), FILL_MAKER_FEE),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, bit)| acc | bit);
    w.sym(Some(&f.market));
    w.u64(f.taker.0);
    w.u64(f.maker.0);
    w.u8(f.side as u8);
    w.u8(flags);
    w.dec(Some(&f.price));
    w.dec(Some(&f.size));
    w.u64(f.taker_order.map_or(0, |o| o.0));
    w.u64(f.maker_order.map_or(0, |o| o.0));
    w.dec(f.taker_fee.as_ref());
    w.dec(f.maker_fee.as_ref());
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// An absent decimal is all zero bytes.
    fn dec(&mut self, d: Option<&Dec>) {
        let (m, s) = d.map_or((0, 0), |d| (d.mantissa(), d.scale()));
        self.bytes(&m.to_le_bytes());
        self.u8(s);
    }
    /// An absent name is all zero bytes.
    fn sym(&mut self, s: Option<&Symbol>) {
        let mut field = [0u8; SYM_LEN];
        if let Some(s) = s {
            let name = s.as_str().as_bytes();
            field[..name.len()].copy_from_slice(name);
        }
        self.bytes(&field);
    }
}

macro_rules! bad {
    ($($arg:tt)*) => { Malformed(format!($($arg)*)) };
}

/// Decodes one record, under the same rules as a JSON line.
pub fn decode(record: &[u8]) -> Result<Input, Malformed> {
    if record.len() < HEADER_LEN {
        return Err(bad!(
            "binary event of {} bytes is shorter than its {HEADER_LEN}-byte header",
            record.len()
        ));
    }
    let (version, ty) = (record[0], record[1]);
    if version != VERSION {
        return Err(bad!(
            "binary event version {version}: this engine reads version {VERSION}"
        ));
    }
    if record[2..8] != [0; 6] {
        return Err(bad!(
            "binary event header: reserved bytes 2..8 must be zero"
        ));
    }
    let ts = u64::from_le_bytes(record[8..16].try_into().expect("8 bytes"));
    let body = &record[HEADER_LEN..];
    if ty == TYPE_JSON {
        let text = std::str::from_utf8(body)
            .map_err(|_| bad!("binary event of type json: the line is not valid UTF-8"))?;
        let input = parse_input(text)?;
        if input.ts != ts {
            return Err(bad!(
                "binary event of type json: header ts {ts} differs from the line's ts {}",
                input.ts
            ));
        }
        return Ok(input);
    }
    let want = body_len(ty).ok_or_else(|| bad!("binary event type {ty} is not known"))?;
    if body.len() != want {
        return Err(bad!(
            "binary event type {ty}: body of {} bytes, its layout has {want}",
            body.len()
        ));
    }
    let mut r = Reader { body, at: 0 };
    let event = decode_body(ty, &mut r)?;
    debug_assert_eq!(r.at, want, "every body byte is read");
    let input = Input { ts, event };
    // The reader held every name and decimal to the rules `check_wire` states.
    debug_assert_eq!(input.check_wire(), Ok(()));
    Ok(input)
}

fn decode_body(ty: u8, r: &mut Reader<'_>) -> Result<Event, Malformed> {
    Ok(match ty {
        TYPE_INSURANCE => {
            let flags = r.flags(INSURANCE_MARKET, "insurance")?;
            let amount = r.dec("amount")?;
            let market = r.opt_sym(flags & INSURANCE_MARKET != 0, "market")?;
            Event::Insurance { amount, market }
        }
        TYPE_DEPOSIT | TYPE_WITHDRAW => {
            let account = AccountId(r.u64());
            let asset = r.sym("asset")?;
            let amount = r.dec("amount")?;
            if ty == TYPE_DEPOSIT {
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
        TYPE_MARGIN_MODE => Event::MarginMode {
            account: AccountId(r.u64()),
            market: r.sym("market")?,
            mode: match r.u8() {
                0 => MarginMode::Cross,
                1 => MarginMode::Isolated,
                other => {
                    return Err(bad!(
                        "field `mode`: byte {other}, 0 (cross) or 1 (isolated)"
                    ))
                }
            },
        },
        TYPE_ISOLATE => Event::Isolate {
            account: AccountId(r.u64()),
            market: r.sym("market")?,
            amount: r.dec("amount")?,
        },
        TYPE_ORDER => Event::Order(OrderSpec {
            account: AccountId(r.u64()),
            order: OrderId(r.u64()),
            market: r.sym("market")?,
            side: r.side()?,
            reduce_only: match r.u8() {
                0 => false,
                1 => true,
                other => return Err(bad!("field `reduce_only`: byte {other}, 0 or 1")),
            },
            price: r.dec("price")?,
            size: r.dec("size")?,
        }),
        TYPE_CANCEL => Event::Cancel {
            account: AccountId(r.u64()),
            order: OrderId(r.u64()),
        },
        TYPE_FILL => Event::Fill(decode_fill(r)?),
        TYPE_ORACLE => Event::Oracle {
            asset: r.sym("asset")?,
            source: r.u64(),
            price: r.dec("price")?,
        },
        TYPE_FUNDING => Event::Funding {
            market: r.sym("market")?,
            rate: r.dec("rate")?,
        },
        TYPE_LIQUIDATE => Event::Liquidate {
            liquidator: AccountId(r.u64()),
            account: AccountId(r.u64()),
            market: r.sym("market")?,
            size: r.dec("size")?,
        },
        other => unreachable!("body_len knows type {other}"),
    })
}

fn decode_fill(r: &mut Reader<'_>) -> Result<FillSpec, Malformed> {
    let market = r.sym("market")?;
    let (taker, maker) = (AccountId(r.u64()), AccountId(r.u64()));
    let side = r.side()?;
    let all = FILL_TAKER_ORDER | FILL_MAKER_ORDER | FILL_TAKER_FEE | FILL_MAKER_FEE;
    let flags = r.flags(all, "fill")?;
    let price = r.dec("price")?;
    let size = r.dec("size")?;
    let taker_order = r.opt_u64(flags & FILL_TAKER_ORDER != 0, "taker_order")?;
    let maker_order = r.opt_u64(flags & FILL_MAKER_ORDER != 0, "maker_order")?;
    Ok(FillSpec {
        market,
        taker,
        maker,
        side,
        price,
        size,
        taker_order: taker_order.map(OrderId),
        maker_order: maker_order.map(OrderId),
        taker_fee: r.opt_dec(flags & FILL_TAKER_FEE != 0, "taker_fee")?,
        maker_fee: r.opt_dec(flags & FILL_MAKER_FEE != 0, "maker_fee")?,
    })
}

/// Reads a body whose length was checked against its layout, so every read is in bounds.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let b = &self.body[self.at..self.at + n];
        self.at += n;
        b
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn side(&mut self) -> Result<Side, Malformed> {
        match self.u8() {
            0 => Ok(Side::Buy),
            1 => Ok(Side::Sell),
            other => Err(bad!("field `side`: byte {other}, 0 (buy) or 1 (sell)")),
        }
    }
    fn flags(&mut self, known: u8, ty: &str) -> Result<u8, Malformed> {
        let flags = self.u8();
        if flags & !known != 0 {
            return Err(bad!("`{ty}` flags {flags:#04x}: unknown bits set"));
        }
        Ok(flags)
    }
    fn dec(&mut self, field: &str) -> Result<Dec, Malformed> {
        let mantissa = i128::from_le_bytes(self.take(16).try_into().expect("16 bytes"));
        let scale = self.u8();
        // The same judgement as the JSON codec's output: normalised, in range, or exactly the
        // out-of-range marker a too-long decimal text becomes (the handler then answers it with
        // the field's code). One event has one encoding.
        let d = Dec::from_raw_parts(mantissa, scale);
        if !d.is_canonical() {
            return Err(bad!(
                "field `{field}`: decimal (mantissa {mantissa}, scale {scale}) is not canonical: normalised (no trailing zero), scale at most 38, mantissa above i128::MIN, or (0, 255) for out of range"
            ));
        }
        Ok(d)
    }
    fn sym(&mut self, field: &str) -> Result<Symbol, Malformed> {
        let raw = self.take(SYM_LEN);
        let len = raw.iter().position(|&b| b == 0).unwrap_or(SYM_LEN);
        if raw[len..].iter().any(|&b| b != 0) {
            return Err(bad!(
                "field `{field}`: bytes after the name's end must be zero"
            ));
        }
        let text = std::str::from_utf8(&raw[..len])
            .map_err(|_| bad!("field `{field}`: the name is not valid UTF-8"))?;
        Symbol::new(text).map_err(|e| bad!("field `{field}`: {e}"))
    }
    /// An absent field must be all zero bytes, so that one event has one encoding.
    fn absent(&mut self, n: usize, field: &str) -> Result<(), Malformed> {
        if self.take(n).iter().any(|&b| b != 0) {
            return Err(bad!(
                "field `{field}` is flagged absent but its bytes are not zero"
            ));
        }
        Ok(())
    }
    fn opt_sym(&mut self, present: bool, field: &str) -> Result<Option<Symbol>, Malformed> {
        if !present {
            self.absent(SYM_LEN, field)?;
            return Ok(None);
        }
        self.sym(field).map(Some)
    }
    fn opt_u64(&mut self, present: bool, field: &str) -> Result<Option<u64>, Malformed> {
        if !present {
            self.absent(8, field)?;
            return Ok(None);
        }
        Ok(Some(self.u64()))
    }
    fn opt_dec(&mut self, present: bool, field: &str) -> Result<Option<Dec>, Malformed> {
        if !present {
            self.absent(DEC_LEN, field)?;
            return Ok(None);
        }
        self.dec(field).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<&'static str> {
        vec![
            r#"{"type":"asset","ts":1,"asset":"USDC","decimals":6,"quote":true}"#,
            r#"{"type":"market","ts":1,"market":"BTC-PERP","base":"BTC","size_decimals":4,"imf":"0.1","mmf":"0.05"}"#,
            r#"{"type":"params","ts":2,"market":"BTC-PERP","imf":"0.12"}"#,
            r#"{"type":"insurance","ts":3,"amount":"250000"}"#,
            r#"{"type":"insurance","ts":3,"amount":"1.5","market":"ETH-PERP"}"#,
            r#"{"type":"deposit","ts":10,"account":7,"asset":"USDC","amount":"10000.25"}"#,
            r#"{"type":"withdraw","ts":11,"account":7,"asset":"BTC","amount":"0.5"}"#,
            r#"{"type":"margin_mode","ts":12,"account":7,"market":"BTC-PERP","mode":"isolated"}"#,
            r#"{"type":"isolate","ts":13,"account":7,"market":"BTC-PERP","amount":"-1000"}"#,
            r#"{"type":"order","ts":20,"account":7,"order":991,"market":"BTC-PERP","side":"sell","price":"65000","size":"0.5","reduce_only":true}"#,
            r#"{"type":"cancel","ts":21,"account":7,"order":991}"#,
            r#"{"type":"fill","ts":22,"market":"BTC-PERP","taker":7,"maker":9,"side":"buy","price":"65000","size":"0.5"}"#,
            r#"{"type":"fill","ts":22,"market":"BTC-PERP","taker":7,"maker":9,"side":"sell","price":"65000.5","size":"0.5","taker_order":991,"maker_order":12,"taker_fee":"16.25","maker_fee":"-3.25"}"#,
            r#"{"type":"oracle","ts":30,"asset":"BTC","source":1,"price":"65010.5"}"#,
            r#"{"type":"funding","ts":40,"market":"BTC-PERP","rate":"-0.0001"}"#,
            r#"{"type":"liquidate","ts":50,"liquidator":42,"account":7,"market":"BTC-PERP","size":"0.25"}"#,
        ]
    }

    #[test]
    fn every_event_round_trips_to_the_same_input_as_its_json_line() {
        for line in lines() {
            let input = parse_input(line).unwrap();
            let mut rec = Vec::new();
            encode(&input, &mut rec);
            if let Some(n) = body_len(rec[1]) {
                assert_eq!(rec.len(), HEADER_LEN + n, "{line}");
            }
            assert_eq!(decode(&rec).unwrap(), input, "{line}");
        }
    }

    #[test]
    fn a_fill_record_has_the_documented_layout() {
        let input = parse_input(lines()[12]).unwrap();
        let mut rec = Vec::new();
        encode(&input, &mut rec);
        assert_eq!(rec.len(), 150);
        assert_eq!(&rec[..8], &[1, TYPE_FILL, 0, 0, 0, 0, 0, 0]);
        assert_eq!(u64::from_le_bytes(rec[8..16].try_into().unwrap()), 22);
        assert_eq!(&rec[16..24], b"BTC-PERP");
        assert_eq!(u64::from_le_bytes(rec[48..56].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(rec[56..64].try_into().unwrap()), 9);
        assert_eq!((rec[64], rec[65]), (1, 0x0f), "sell, every optional field");
        assert_eq!(
            i128::from_le_bytes(rec[66..82].try_into().unwrap()),
            650_005
        );
        assert_eq!(rec[82], 1, "price scale");
        assert_eq!(
            i128::from_le_bytes(rec[133..149].try_into().unwrap()),
            -325,
            "maker fee mantissa"
        );
    }

    fn fill_record() -> Vec<u8> {
        let mut rec = Vec::new();
        encode(&parse_input(lines()[11]).unwrap(), &mut rec);
        rec
    }

    #[test]
    fn bad_records_are_malformed_with_a_reason_and_never_panic() {
        type Breaker = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(Breaker, &str)> = vec![
            (
                Box::new(|r| r.truncate(10)),
                "shorter than its 16-byte header",
            ),
            (Box::new(|r| r[0] = 2), "version 2"),
            (Box::new(|r| r[3] = 1), "reserved bytes"),
            (Box::new(|r| r[1] = 77), "type 77 is not known"),
            (Box::new(|r| r.push(0)), "body of 135 bytes"),
            (Box::new(|r| r[16] = b'!'), "field `market`"),
            (Box::new(|r| r[30] = b'X'), "after the name's end"),
            (Box::new(|r| r[16..48].fill(0)), "name is empty"),
            (Box::new(|r| r[64] = 2), "field `side`"),
            (Box::new(|r| r[65] = 0x10), "unknown bits"),
            (Box::new(|r| r[82] = 200), "scale 200"),
            (
                Box::new(|r| r[66..82].copy_from_slice(&i128::MIN.to_le_bytes())),
                "above i128::MIN",
            ),
            // A trailing zero: "65000.0" is not how any JSON text decodes.
            (
                Box::new(|r| {
                    r[66..82].copy_from_slice(&650_000i128.to_le_bytes());
                    r[82] = 1;
                }),
                "not canonical",
            ),
            (Box::new(|r| r[110] = 1), "flagged absent"),
        ];
        for (break_it, says) in cases {
            let mut rec = fill_record();
            break_it(&mut rec);
            let err = decode(&rec).expect_err(says).0;
            assert!(err.contains(says), "{says:?} not in {err:?}");
        }
        let mut json = Vec::from(*b"\x01\xff\0\0\0\0\0\0");
        json.extend_from_slice(&5u64.to_le_bytes());
        json.extend_from_slice(br#"{"type":"cancel","ts":6,"account":1,"order":2}"#);
        assert!(decode(&json).unwrap_err().0.contains("differs"));
        json[16] = 0xff;
        assert!(decode(&json).unwrap_err().0.contains("UTF-8"));
    }

    #[test]
    fn no_byte_string_panics_the_decoder() {
        // Every prefix and every single-byte change of a valid record decodes or is refused.
        let rec = fill_record();
        for n in 0..=rec.len() {
            let _ = decode(&rec[..n]);
        }
        for i in 0..rec.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut r = rec.clone();
                r[i] = v;
                if let Ok(input) = decode(&r) {
                    let mut again = Vec::new();
                    encode(&input, &mut again);
                    assert_eq!(again, r, "one event, one encoding");
                }
            }
        }
    }
}

#[cfg(test)]
mod scenario_tests {
    use super::*;
    use crate::scenario::{Scenario, ScenarioConfig};

    #[test]
    fn every_generated_input_round_trips() {
        let cfg = ScenarioConfig {
            accounts: 60,
            events: 3_000,
            markets: 12,
            ..ScenarioConfig::default()
        };
        let mut rec = Vec::new();
        let mut types = std::collections::BTreeSet::new();
        for input in Scenario::new(cfg) {
            rec.clear();
            encode(&input, &mut rec);
            types.insert(rec[1]);
            assert_eq!(decode(&rec).unwrap(), input);
        }
        assert!(
            types.len() >= 8,
            "the scenario exercises most types: {types:?}"
        );
    }
}
