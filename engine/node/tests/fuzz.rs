//! Fuzz harnesses on stable Rust (proptest; cargo-fuzz needs a nightly toolchain this project
//! does not use): the JSON Lines decoder, the binary frame decoder, the snapshot loader and the
//! state machine fed arbitrary event sequences. None may panic; the state machine must keep
//! every invariant and leave the state untouched on a rejection. Failing cases proptest finds
//! are kept in `fuzz.proptest-regressions` and replayed first on every run.

use margin_engine::codec::{input_line, parse_line};
use margin_engine::persist::{decode_state, encode_state, state_hashes};
use margin_engine::record::Body;
use margin_engine::Engine;
use margin_node::server::conn::{Reader, Request};
use proptest::prelude::*;

const VENUE: &str = include_str!("../../../examples/venue.jsonl");

fn venue_lines() -> Vec<&'static str> {
    VENUE.lines().filter(|l| !l.trim().is_empty()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any text: an event or a malformed answer that says something.
    #[test]
    fn jsonl_decoder_takes_any_text(line in ".{0,300}") {
        if let Err(m) = parse_line(&line) {
            prop_assert!(!m.0.is_empty());
        }
    }

    /// Valid lines with bytes changed, inserted and removed: never a panic, and whatever
    /// still parses round-trips through the encoder.
    #[test]
    fn jsonl_decoder_takes_mutated_events(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8),
    ) {
        let lines = venue_lines();
        let mut bytes = lines[pick.index(lines.len())].as_bytes().to_vec();
        for (at, op, b) in edits {
            let i = at.index(bytes.len().max(1)).min(bytes.len());
            match op {
                0 if i < bytes.len() => bytes[i] = b,
                1 => bytes.insert(i, b),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok((input, _)) = parse_line(&text) {
            let again = parse_line(&input_line(&input)).map(|p| p.0);
            prop_assert_eq!(again.ok(), Some(input));
        }
    }

    /// The connection reader on arbitrary bytes in arbitrary chunks, JSON or binary.
    #[test]
    fn frame_decoder_takes_any_bytes(
        binary in any::<bool>(),
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
    ) {
        let mut r = Reader::default();
        let mut out = Vec::new();
        if binary {
            r.feed(b"MRGB", &mut out);
        }
        for c in &chunks {
            r.feed(c, &mut out);
        }
        for req in &out {
            if let Request::Malformed { detail, .. } = req {
                prop_assert!(!detail.is_empty());
            }
        }
    }

    /// Binary frames with valid headers around garbage payloads: each is answered.
    #[test]
    fn frame_decoder_answers_every_whole_frame(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..10),
    ) {
        let mut stream = b"MRGB".to_vec();
        stream.extend_from_slice(&0u32.to_le_bytes());
        for (id, p) in payloads.iter().enumerate() {
            stream.extend_from_slice(&((8 + p.len()) as u32).to_le_bytes());
            stream.extend_from_slice(&(id as u64).to_le_bytes());
            stream.extend_from_slice(p);
        }
        let mut r = Reader::default();
        let mut out = Vec::new();
        r.feed(&stream, &mut out);
        prop_assert_eq!(out.len(), payloads.len(), "one answer per frame");
    }

    /// Snapshot bytes with random damage: decoding never panics.
    #[test]
    fn snapshot_decoder_takes_damaged_bytes(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut e = Engine::new();
        for l in venue_lines().iter().take(60) {
            if let Ok((input, _)) = parse_line(l) {
                e.apply(&input);
            }
        }
        let mut bytes = encode_state(&e.state).unwrap().to_vec();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x | 1;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = decode_state(&bytes);
    }
}

const TYPES: [&str; 12] = [
    "deposit",
    "withdraw",
    "order",
    "cancel",
    "fill",
    "oracle",
    "funding",
    "liquidate",
    "margin_mode",
    "isolate",
    "params",
    "insurance",
];
const NUMBERS: [&str; 16] = [
    "0",
    "1",
    "-1",
    "0.5",
    "65000",
    "0.0001",
    "-0.0001",
    "12345.6789",
    "1e5",
    "abc",
    "",
    "100000000000000000000000000000000000000",
    "0.0000000000000000000001",
    "99999999999999999999.9999",
    "3000",
    "0.01",
];
const GOOD_NUMBERS: [&str; 8] = ["1", "0.5", "65000", "0.01", "3000", "2", "100", "64000"];
const MARKETS: [&str; 4] = ["BTC-PERP", "ETH-PERP", "NOPE-PERP", ""];
const ASSETS: [&str; 4] = ["USDC", "BTC", "ETH", "XYZ"];
const ACCOUNTS: [&str; 6] = ["1", "2", "3", "4", "0", "18446744073709551615"];

/// An event line built from small pools of good and bad values.
fn event_line(k: [u8; 7], ts: u64) -> String {
    let t = TYPES[k[0] as usize % TYPES.len()];
    // Three times in four a plausible figure, so that trades and liquidations happen too.
    let n = |i: usize| {
        let v = k[i] as usize;
        if v.is_multiple_of(4) {
            NUMBERS[v / 4 % NUMBERS.len()]
        } else {
            GOOD_NUMBERS[v / 4 % GOOD_NUMBERS.len()]
        }
    };
    let m = MARKETS[k[2] as usize % MARKETS.len()];
    let a = ASSETS[k[2] as usize % ASSETS.len()];
    let acc = ACCOUNTS[k[1] as usize % ACCOUNTS.len()];
    let acc2 = ACCOUNTS[k[6] as usize % ACCOUNTS.len()];
    let side = if k[5].is_multiple_of(2) {
        "buy"
    } else {
        "sell"
    };
    let order = k[6] % 5;
    match t {
        "deposit" | "withdraw" => format!(
            r#"{{"type":"{t}","ts":{ts},"account":{acc},"asset":"{a}","amount":"{}"}}"#,
            n(3)
        ),
        "order" => format!(
            r#"{{"type":"order","ts":{ts},"account":{acc},"order":{order},"market":"{m}","side":"{side}","price":"{}","size":"{}","reduce_only":{}}}"#,
            n(3),
            n(4),
            k[5].is_multiple_of(3)
        ),
        "cancel" => format!(r#"{{"type":"cancel","ts":{ts},"account":{acc},"order":{order}}}"#),
        "fill" => format!(
            r#"{{"type":"fill","ts":{ts},"market":"{m}","taker":{acc},"maker":{acc2},"side":"{side}","price":"{}","size":"{}"}}"#,
            n(3),
            n(4)
        ),
        "oracle" => format!(
            r#"{{"type":"oracle","ts":{ts},"asset":"{a}","source":{},"price":"{}"}}"#,
            k[4] % 4,
            n(3)
        ),
        "funding" => format!(
            r#"{{"type":"funding","ts":{ts},"market":"{m}","rate":"{}"}}"#,
            n(3)
        ),
        "liquidate" => format!(
            r#"{{"type":"liquidate","ts":{ts},"liquidator":{acc},"account":{acc2},"market":"{m}","size":"{}"}}"#,
            n(4)
        ),
        "margin_mode" => format!(
            r#"{{"type":"margin_mode","ts":{ts},"account":{acc},"market":"{m}","mode":"{}"}}"#,
            if k[5].is_multiple_of(2) {
                "cross"
            } else {
                "isolated"
            }
        ),
        "isolate" => format!(
            r#"{{"type":"isolate","ts":{ts},"account":{acc},"market":"{m}","amount":"{}"}}"#,
            n(3)
        ),
        "params" => format!(
            r#"{{"type":"params","ts":{ts},"market":"{m}","imf":"{}","mmf":"{}"}}"#,
            n(3),
            n(4)
        ),
        _ => format!(r#"{{"type":"insurance","ts":{ts},"amount":"{}"}}"#, n(3)),
    }
}

/// The example venue's set-up (assets, markets, prices, first deposits).
fn set_up() -> Engine {
    let mut e = Engine::new();
    for l in venue_lines().iter().take(60) {
        if let Ok((input, _)) = parse_line(l) {
            e.apply(&input);
        }
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Arbitrary sequences of good and bad events: no panic, invariants and conservation after
    /// every one, and a rejection changes nothing but the clock.
    #[test]
    fn state_machine_takes_arbitrary_events(
        events in prop::collection::vec(any::<[u8; 7]>(), 1..60),
    ) {
        let mut e = set_up();
        let mut ts = e.state.clock_us;
        for (i, k) in events.iter().enumerate() {
            // Now and then a timestamp from the past.
            ts = if k[4].is_multiple_of(7) { ts.saturating_sub(1_000_000) } else { ts + 1_000 };
            let line = event_line(*k, ts);
            let Ok((input, _)) = parse_line(&line) else { continue };
            let before = state_hashes(&e.state);
            let out = e.apply(&input).to_vec();
            let rejected = matches!(out[0].body, Body::Rejected { .. });
            let broken = margin_engine::invariants::check(&e.state);
            prop_assert!(broken.is_empty(), "event {} {}: {:?}", i, line, broken);
            prop_assert!(e.state.check_ledger().is_ok(), "event {} {}: conservation", i, line);
            if rejected {
                let after = state_hashes(&e.state);
                prop_assert_eq!(
                    (before.venue, before.prices, before.markets, before.accounts),
                    (after.venue, after.prices, after.markets, after.accounts),
                    "event {} {} was rejected but changed the state", i, line
                );
            }
        }
    }
}
