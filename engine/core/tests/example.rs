//! The example venue under examples/: it must run clean, show the life cycle the README
//! promises, and give the same bytes every time.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests read their venues from files

mod common;

use common::run_lines;
use margin_engine::codec::record_line;

fn example() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/venue.jsonl");
    std::fs::read_to_string(path).expect("examples/venue.jsonl")
}

#[test]
fn example_shows_margin_calls_liquidations_and_adl() {
    let (_, outcomes, records) = run_lines(&example());
    assert!(outcomes
        .iter()
        .all(|o| o.reason.as_deref() != Some("malformed")));
    let count = |t: &str| records.iter().filter(|r| r.body.type_name() == t).count();
    for t in [
        "margin_call",
        "liquidation_started",
        "liquidation_fill",
        "liquidation_ended",
        "adl",
        "funding",
        "index",
    ] {
        assert!(count(t) > 0, "the example should produce `{t}` records");
    }
}

#[test]
fn same_input_same_output_bytes() {
    let text = example();
    let (a_engine, _, a) = run_lines(&text);
    let (b_engine, _, b) = run_lines(&text);
    let a: Vec<String> = a.iter().map(record_line).collect();
    let b: Vec<String> = b.iter().map(record_line).collect();
    assert_eq!(a, b);
    let ra = serde_json::to_string(&a_engine.state.report(None).unwrap()).unwrap();
    let rb = serde_json::to_string(&b_engine.state.report(None).unwrap()).unwrap();
    assert_eq!(ra, rb);
}
