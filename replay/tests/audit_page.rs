//! The audit page in a real browser: Debian's headless Chromium (installed by `.ci/run` when
//! missing; without it this test fails, it does not skip) loads `index.html` from
//! `margin-replay audit --report`, runs it with a virtual-time budget and dumps the DOM. The page
//! must render without console errors and show the figures of `report.json`.

use std::path::Path;
use std::process::Command;

mod common;
use common::{engine_bin, REPLAY};

#[test]
fn the_audit_page_renders_in_chromium_and_shows_the_reports_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/venue.jsonl");
    let run = Command::new(engine_bin())
        .args(["run", "--input"])
        .arg(&example)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(run.status.success());
    let report = dir.path().join("report");
    let audit = Command::new(REPLAY)
        .args(["audit", "--data"])
        .arg(&data)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(audit.status.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();

    let dom = common::rendered_dom(
        &format!("file://{}", report.join("index.html").display()),
        &dir.path().join("profile"),
        2000,
    );
    assert!(dom.contains("PASSED"), "{dom}");
    let digest = json["provenance"]["input_digest"].as_str().unwrap();
    assert!(dom.contains(digest), "the provenance digest is shown");
    for inv in json["invariants"].as_array().unwrap() {
        let checks = inv["checks"].as_u64().unwrap().to_string();
        assert!(dom.contains(&format!("<td>{checks}</td>")), "{inv}");
    }
    let events = json["risk_events"].as_array().unwrap();
    assert!(!events.is_empty(), "the example liquidates someone");
    for e in events {
        assert!(dom.contains(e["state_at"].as_str().unwrap()), "{e}");
    }
    assert!(dom.contains("<svg"), "the charts are drawn");
    // One open-interest chart per market, and time axes on the step charts.
    for m in json["open_interest"].as_object().unwrap().keys() {
        assert!(
            dom.contains(&format!("Open interest: {m} (base units)")),
            "{m}"
        );
    }
    assert!(dom.contains("(engine clock)"));
    let bankruptcies = json["bad_debt"]["bankruptcies"].as_u64().unwrap();
    assert!(dom.contains(&format!("<td>{bankruptcies}</td>")));
}
