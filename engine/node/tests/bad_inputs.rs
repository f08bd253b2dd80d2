//! The bad-input corpus (tests/corpus/bad_inputs.txt): every case gets the expected answer,
//! with a message that names the problem, and a rejection leaves the state as it was. Non-UTF-8
//! bytes go through the line reader.

use margin_engine::codec::parse_line;
use margin_engine::persist::state_hashes;
use margin_engine::record::Body;
use margin_engine::Engine;
use margin_node::run::run_in_memory;

const VENUE: &[&str] = &[
    r#"{"type":"asset","ts":0,"asset":"USDC","decimals":6,"quote":true}"#,
    r#"{"type":"asset","ts":0,"asset":"BTC","decimals":8,"price_decimals":2,"weight_init":"0.8","weight_maint":"0.9","oracle":{"sources":2,"min_sources":2,"max_age_us":10000000,"max_deviation":"0.1"}}"#,
    r#"{"type":"market","ts":0,"market":"BTC-PERP","base":"BTC","size_decimals":4,"imf":"0.1","mmf":"0.05","liq_discount_start":"0.01","liq_discount_max":"0.05","liq_if_fee":"0.01"}"#,
    r#"{"type":"oracle","ts":1,"asset":"BTC","source":0,"price":"10000"}"#,
    r#"{"type":"oracle","ts":1,"asset":"BTC","source":1,"price":"10000"}"#,
    r#"{"type":"deposit","ts":2,"account":1,"asset":"USDC","amount":"1000"}"#,
    r#"{"type":"deposit","ts":2,"account":2,"asset":"USDC","amount":"1000000"}"#,
];

const CORPUS: &str = include_str!("corpus/bad_inputs.txt");

fn venue() -> Engine {
    let mut e = Engine::new();
    for l in VENUE {
        let (input, _) = parse_line(l).unwrap();
        assert!(
            matches!(e.apply(&input)[0].body, Body::Accepted { .. }),
            "{l}"
        );
    }
    e
}

#[test]
fn every_bad_input_gets_its_answer() {
    let mut e = venue();
    let mut cases = 0;
    for (n, raw) in CORPUS.lines().enumerate() {
        if raw.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        let mut parts = raw.splitn(3, '|');
        let (expect, mention, line) = (
            parts.next().unwrap().trim(),
            parts.next().unwrap_or("").trim(),
            parts.next().unwrap_or("").strip_prefix(' ').unwrap_or(""),
        );
        cases += 1;
        let at = format!("corpus line {}: {line}", n + 1);
        let (answer, detail) = match parse_line(line) {
            Err(m) => ("malformed".to_string(), m.0),
            Ok((input, _)) => {
                let before = state_hashes(&e.state);
                let out = e.apply(&input).to_vec();
                match &out[0].body {
                    Body::Accepted { .. } => ("accepted".to_string(), String::new()),
                    Body::Rejected { reason, detail } => {
                        let after = state_hashes(&e.state);
                        assert_eq!(
                            (before.venue, before.prices, before.markets, before.accounts),
                            (after.venue, after.prices, after.markets, after.accounts),
                            "{at}: a rejection changed the state"
                        );
                        (reason.code().to_string(), detail.as_str().to_string())
                    }
                    other => panic!("{at}: first record {other:?}"),
                }
            }
        };
        assert_eq!(answer, expect, "{at}: answered {answer} ({detail})");
        if answer != "accepted" {
            assert!(!detail.is_empty(), "{at}: an answer without a message");
        }
        assert!(
            detail.contains(mention),
            "{at}: the message {detail:?} does not name {mention:?}"
        );
    }
    assert!(cases >= 200, "the corpus has its cases ({cases})");
}

#[test]
fn non_utf8_and_broken_lines_are_answered_and_the_run_goes_on() {
    let mut e = venue();
    let mut input: Vec<u8> = Vec::new();
    input.extend_from_slice(b"\xff\xfe\xfd\n");
    input.extend_from_slice(b"{\"type\":\"deposit\",\"ts\":5,\"account\":1,\"asset\":\"US\xc3\x28DC\",\"amount\":\"1\"}\n");
    input.extend_from_slice(b"\x00\x00\x00\n");
    input
        .extend_from_slice(br#"{"type":"deposit","ts":5,"account":1,"asset":"USDC","amount":"1"}"#);
    input.extend_from_slice(b"\n{\"type\":\"depo"); // cut mid-line at the end of the stream
    let mut out: Vec<u8> = Vec::new();
    let summary = run_in_memory(&mut e, &input[..], Some(&mut out)).unwrap();
    let text = String::from_utf8(out).unwrap();
    let answers: Vec<&str> = text.lines().collect();
    assert!(answers[0].contains("\"line\":1") && answers[0].contains("UTF-8"));
    assert!(answers[1].contains("\"line\":2") && answers[1].contains("UTF-8"));
    assert!(answers[2].contains("\"line\":3") && answers[2].contains("malformed"));
    assert!(
        answers[3].contains("\"type\":\"accepted\""),
        "{}",
        answers[3]
    );
    assert!(answers.last().unwrap().contains("\"line\":5"));
    assert_eq!(summary.malformed, 4);
}
