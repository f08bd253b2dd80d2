//! The built-in demo: a generated venue run through the engine, with a readable summary of what
//! happened. Wall-clock timing is taken here, around the state machine, never inside it.

use crate::engine::Engine;
use crate::record::Body;
use crate::scenario::{Scenario, ScenarioConfig};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Instant;

impl DemoSummary {
    /// Inputs per second, in integers (no floating point in this crate).
    pub fn events_per_second(&self) -> u128 {
        u128::from(self.inputs) * 1_000_000_000 / self.elapsed_ns
    }
}

/// What the demo saw.
#[derive(Debug)]
pub struct DemoSummary {
    pub inputs: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub records: BTreeMap<&'static str, u64>,
    pub elapsed_ns: u128,
    pub latency_ns: Histogram<u64>,
    pub insurance_start: String,
    pub insurance_end: String,
    pub accounts: usize,
}

/// Generates the scenario and applies it, timing each event.
pub fn run_demo(cfg: ScenarioConfig, mut on_progress: impl FnMut(u64)) -> (Engine, DemoSummary) {
    let inputs: Vec<_> = Scenario::new(cfg).collect();
    let mut engine = Engine::new();
    let mut latency_ns = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let mut summary_records = BTreeMap::new();
    let mut rejected = BTreeMap::new();
    let mut accepted = 0;
    let mut insurance_start = None;
    let started = Instant::now();
    for (i, input) in inputs.iter().enumerate() {
        let t0 = Instant::now();
        let out = engine.apply(input);
        let ns = t0.elapsed().as_nanos() as u64;
        latency_ns.saturating_record(ns.max(1));
        for r in out {
            *summary_records.entry(r.body.type_name()).or_insert(0) += 1;
        }
        match &out[0].body {
            Body::Accepted { .. } => accepted += 1,
            Body::Rejected { reason, .. } => *rejected.entry(reason.code()).or_insert(0) += 1,
            _ => {}
        }
        if insurance_start.is_none() && engine.state.insurance.0 > 0 {
            insurance_start = Some(engine.state.insurance.0);
        }
        if i % 10_000 == 0 {
            on_progress(i as u64);
        }
    }
    let qd = engine.state.quote_decimals();
    let summary = DemoSummary {
        inputs: inputs.len() as u64,
        accepted,
        rejected,
        records: summary_records,
        elapsed_ns: started.elapsed().as_nanos().max(1),
        latency_ns,
        insurance_start: crate::num::format_scaled(insurance_start.unwrap_or(0), qd),
        insurance_end: crate::num::format_scaled(engine.state.insurance.0, qd),
        accounts: engine.state.accounts.len(),
    };
    (engine, summary)
}
