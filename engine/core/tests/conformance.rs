//! The conformance cases: venues with the results and final state an independent exact
//! implementation of the margin model computed. Every figure must match.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // tests read their venues from files

mod common;

use common::{diff, run_lines};
use serde_json::Value;
use std::path::Path;

fn check_case(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name);
    let events = std::fs::read_to_string(dir.join("events.jsonl")).expect("events.jsonl");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json is JSON");
    let (engine, outcomes, _) = run_lines(&events);
    let mut problems = Vec::new();
    let results = expected["results"].as_array().expect("results");
    assert_eq!(results.len(), outcomes.len(), "{name}: one result per line");
    let lines: Vec<&str> = events.lines().collect();
    for (i, (want, got)) in results.iter().zip(&outcomes).enumerate() {
        let kind = want["type"].as_str().unwrap_or("");
        let reason = want.get("reason").and_then(Value::as_str);
        if kind != got.kind || reason != got.reason.as_deref() {
            problems.push(format!(
                "line {}: got {} {:?}, want {kind} {reason:?}\n    {}",
                i + 1,
                got.kind,
                got.reason,
                lines[i]
            ));
        }
    }
    let report = serde_json::to_value(engine.state.report(None).expect("report")).expect("json");
    diff("state", &expected["state"], &report, &mut problems);
    assert!(
        problems.is_empty(),
        "{name}: {} differences:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

macro_rules! cases {
    ($($test:ident => $dir:literal),* $(,)?) => {
        $(#[test] fn $test() { check_case($dir); })*
    };
}

cases! {
    core_1001_tiers => "core-1001-tiers",
    core_1002_isolated => "core-1002-isolated",
    core_1003_stale => "core-1003-stale",
    core_1004_outlier => "core-1004-outlier",
    core_1005_funding => "core-1005-funding",
    core_1006_volatile => "core-1006-volatile",
    core_1007_mixed => "core-1007-mixed",
    core_1008_plain => "core-1008-plain",
    liquidation_2001 => "liquidation-2001",
    liquidation_2002 => "liquidation-2002",
    liquidation_2003 => "liquidation-2003",
    liquidation_2004 => "liquidation-2004",
    portfolio_3001 => "portfolio-3001",
    portfolio_3002 => "portfolio-3002",
    portfolio_3003 => "portfolio-3003",
}

/// The comparison itself must catch a changed figure, a missing account and a changed result.
#[test]
fn comparison_detects_differences() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/core-1008-plain");
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let (engine, _, _) = run_lines(&events);
    let report = serde_json::to_value(engine.state.report(None).unwrap()).unwrap();
    let mut want = expected["state"].clone();
    let mut none = Vec::new();
    diff("state", &want, &report, &mut none);
    assert!(none.is_empty(), "{none:?}");
    want["accounts"][0]["equity_maint"] = Value::String("248423.709405".into());
    want["fee_pool"] = Value::String("244.2195970".into()); // same value, other spelling
    let mut found = Vec::new();
    diff("state", &want, &report, &mut found);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("equity_maint"));
    want["accounts"].as_array_mut().unwrap().pop();
    let mut found = Vec::new();
    diff("state", &want, &report, &mut found);
    assert!(found.iter().any(|f| f.contains("entries")));
}
