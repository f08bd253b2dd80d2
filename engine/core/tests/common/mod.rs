//! Helpers shared by the integration tests: running a JSON Lines stream through the engine with
//! the invariants checked after every event, and comparing state reports as numbers.

#![allow(dead_code)]

use margin_engine::codec::parse_input;
use margin_engine::num::Dec;
use margin_engine::{Body, Engine, Record};
use serde_json::Value;

/// The result of one input line: `accepted`, or `rejected` with its reason.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Outcome {
    pub kind: String,
    pub reason: Option<String>,
}

/// Runs every line through a fresh engine, checking the invariants after each event.
/// Returns the engine, the outcome per line and all records.
pub fn run_lines(text: &str) -> (Engine, Vec<Outcome>, Vec<Record>) {
    let mut engine = Engine::new();
    let mut outcomes = Vec::new();
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let input = match parse_input(line) {
            Ok(i) => i,
            Err(_) => {
                outcomes.push(Outcome {
                    kind: "rejected".into(),
                    reason: Some("malformed".into()),
                });
                continue;
            }
        };
        let out = engine.apply(&input).to_vec();
        let first = &out[0];
        outcomes.push(match &first.body {
            Body::Accepted { .. } => Outcome {
                kind: "accepted".into(),
                reason: None,
            },
            Body::Rejected { reason, .. } => Outcome {
                kind: "rejected".into(),
                reason: Some(reason.code().into()),
            },
            other => panic!("line {}: first record is {other:?}", n + 1),
        });
        let errors = margin_engine::invariants::check(&engine.state);
        assert!(
            errors.is_empty(),
            "line {}: {line}\ninvariants broken:\n{}",
            n + 1,
            errors.join("\n")
        );
        records.extend(out);
    }
    (engine, outcomes, records)
}

fn as_dec(v: &Value) -> Option<Dec> {
    v.as_str().and_then(|s| Dec::parse(s).ok())
}

fn is_zero(v: &Value) -> bool {
    as_dec(v).is_some_and(|d| d == Dec::ZERO)
}

/// Differences between two JSON values, with decimal strings compared by value and missing map
/// entries equal to a zero decimal.
pub fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(&p, va, vb, out),
                    None if is_zero(va) => {}
                    None => out.push(format!("{p}: missing (want {va})")),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) && !is_zero(vb) {
                    out.push(format!("{path}.{k}: unexpected {vb}"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path}: {} entries, want {}", b.len(), a.len()));
            }
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (Value::String(_), Value::String(_)) => match (as_dec(want), as_dec(got)) {
            (Some(x), Some(y)) if x == y => {}
            (None, None) if want == got => {}
            _ => out.push(format!("{path}: got {got}, want {want}")),
        },
        _ if want == got => {}
        _ => out.push(format!("{path}: got {got}, want {want}")),
    }
}
