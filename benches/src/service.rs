//! Business logic alone (service time): each input applied to a bare engine, no journal, no
//! threads; per event type, every event recorded.

use crate::hist::new_ns;
use hdrhistogram::Histogram;
use margin_engine::engine::ScanMode;
use margin_engine::state::State;
use margin_engine::{Engine, Input};
use std::collections::BTreeMap;
use std::time::Instant;

/// Service times of one run.
pub struct Service {
    pub scan: ScanMode,
    pub all: Histogram<u64>,
    pub by_type: BTreeMap<&'static str, Histogram<u64>>,
    pub events: u64,
    pub elapsed_ns: u64,
}

impl Service {
    /// Inputs per second over the whole run.
    pub fn events_per_second(&self) -> u64 {
        (u128::from(self.events) * 1_000_000_000 / u128::from(self.elapsed_ns.max(1))) as u64
    }
}

/// Applies `inputs` in order to a fresh engine and times each one.
pub fn measure(inputs: &[Input], scan: ScanMode) -> Service {
    let mut engine = Engine::with_scan(State::default(), scan);
    measure_on(&mut engine, inputs)
}

/// Applies `inputs` in order to `engine` and times each one.
pub fn measure_on(engine: &mut Engine, inputs: &[Input]) -> Service {
    let mut all = new_ns();
    let mut by_type: BTreeMap<&'static str, Histogram<u64>> = BTreeMap::new();
    let start = Instant::now();
    for input in inputs {
        let t = Instant::now();
        std::hint::black_box(engine.apply(input));
        let ns = (t.elapsed().as_nanos() as u64).max(1);
        all.saturating_record(ns);
        by_type
            .entry(input.event.type_name())
            .or_insert_with(new_ns)
            .saturating_record(ns);
    }
    Service {
        scan: engine.scan,
        all,
        by_type,
        events: inputs.len() as u64,
        elapsed_ns: start.elapsed().as_nanos() as u64,
    }
}
