//! The harness itself, at smoke size: every stage runs and the report holds every table. No
//! timing is asserted (benchmarks report; tests judge behaviour).

use margin_bench::report::{self, Plan};

#[test]
fn smoke_report_has_every_section_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = Plan::smoke(dir.path().join("report"));
    plan.command = "smoke test".into();
    let r = report::run(&plan, |_| {}).expect("the smoke run completes");
    let md = std::fs::read_to_string(plan.out.join("report.md")).unwrap();
    for heading in [
        "## Business logic alone",
        "## Pipeline",
        "## Scaling",
        "## Peers, same run",
        "## Targets",
    ] {
        assert!(md.contains(heading), "missing {heading}");
    }
    assert!(md.contains("percolator-engine 1.0.0"));
    assert_eq!(r.scaling.len(), plan.scaling_sizes.len());
    for p in &r.scaling {
        assert_eq!(p.tick.len(), plan.budget.ticks, "every tick recorded");
        assert_eq!(p.fill.len(), plan.budget.fills, "every fill recorded");
    }
    // Every input of the scenario went through the pipeline and was answered.
    for (_, points, unpaced) in &r.sweeps {
        assert_eq!(unpaced.latency.len(), r.inputs);
        assert!(!points.is_empty());
        for p in points {
            assert_eq!(p.latency.len(), p.events);
        }
    }
    assert_eq!(r.service.all.len(), r.inputs);
    // Both engines saw the same number of fills and ticks.
    assert_eq!(r.peers[0].fill.len(), r.peers[1].fill.len());
    assert_eq!(r.peers[0].tick.len(), r.peers[1].tick.len());
    assert!(plan.out.join("service-all.hgrm").exists());
    assert!(plan.out.join("pipeline-none-unpaced.hgrm").exists());
    if r.plots.is_ok() {
        assert!(plan.out.join("scaling.png").exists());
        assert!(plan.out.join("latency-none.png").exists());
    }
}
