//! The built-in demo: a generated venue run through the real pipeline into a fresh data
//! directory, with a readable summary of what happened. Wall-clock timing is taken here, around
//! the pipeline, never inside the state machine.

use crate::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink};
use hdrhistogram::Histogram;
use margin_engine::persist::{hex, state_hash};
use margin_engine::record::{Body, Record};
use margin_engine::scenario::{Scenario, ScenarioConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A file the demo leaves in its data directory, so that it only ever wipes its own.
const MARKER: &str = ".margin-demo";

/// What the demo saw.
#[derive(Debug)]
pub struct DemoSummary {
    pub data: PathBuf,
    pub inputs: u64,
    pub accounts: usize,
    pub markets: usize,
    pub accepted: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub records: BTreeMap<&'static str, u64>,
    pub backstops: u64,
    pub elapsed_ns: u128,
    pub generate_ns: u128,
    /// Ingress to release (output log written), per event.
    pub latency_ns: Histogram<u64>,
    /// Offered rate (0: unpaced).
    pub rate: u64,
    pub insurance_start: String,
    pub insurance_end: String,
    pub output_head: String,
    pub state_hash: String,
    /// An account that exists at the end (for the printed `state --account` example): the
    /// first with a position, or the first at all.
    pub sample_account: u64,
}

impl DemoSummary {
    /// Inputs per second through the pipeline, in integers (no floating point in this crate).
    pub fn events_per_second(&self) -> u128 {
        u128::from(self.inputs) * 1_000_000_000 / self.elapsed_ns.max(1)
    }
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: BTreeMap<&'static str, u64>,
    records: BTreeMap<&'static str, u64>,
    backstops: u64,
    latency: Option<Histogram<u64>>,
    first_insurance: Option<(i128, u8)>,
}

struct DemoSink(Arc<Mutex<Tally>>);

impl Sink for DemoSink {
    fn applied(&mut self, _seq: u64, _o: Origin, records: &[Record], _enc: &[u8], sent_ns: u64) {
        let Ok(mut t) = self.0.lock() else { return };
        let lat = now_ns().saturating_sub(sent_ns).max(1);
        if let Some(h) = t.latency.as_mut() {
            h.saturating_record(lat);
        }
        match records.first().map(|r| &r.body) {
            Some(Body::Accepted { .. }) => t.accepted += 1,
            Some(Body::Rejected { reason, .. }) => {
                *t.rejected.entry(reason.code()).or_insert(0) += 1
            }
            _ => {}
        }
        for r in records {
            *t.records.entry(r.body.type_name()).or_insert(0) += 1;
            // The fund as the venue set it up: after its last top-up before anything else moved it.
            if let Body::Insurance {
                market: None,
                fund,
                cause,
                ..
            } = &r.body
            {
                if *cause == margin_engine::record::Cause::TopUp
                    && t.first_insurance
                        .is_none_or(|_| !t.records.contains_key("bankruptcy"))
                {
                    t.first_insurance = Some((fund.value, fund.decimals));
                }
            }
        }
        // A backstop shows as the engine closing positions itself: ADL records without a bid.
        if records.iter().any(|r| matches!(r.body, Body::Adl { .. })) {
            t.backstops += 1;
        }
    }

    fn malformed(&mut self, _o: Origin, _line: u64, _detail: &str, _sent_ns: u64) {}
}

/// Prepares a fresh demo directory: creates it, or wipes one the demo made before. Refuses a
/// directory it did not make.
pub fn fresh_dir(data: &Path) -> Result<(), String> {
    if data.exists() {
        let ours = data.join(MARKER).exists();
        let empty = std::fs::read_dir(data)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !ours && !empty {
            return Err(format!(
                "{} exists and was not made by the demo; pass another --data",
                data.display()
            ));
        }
        std::fs::remove_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    }
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    std::fs::write(
        data.join(MARKER),
        b"made by margin-engine demo; safe to delete\n",
    )
    .map_err(|e| format!("{}: {e}", data.display()))
}

/// Generates the scenario, runs it through the pipeline into `cfg.data`, and summarises.
/// `progress(done, total, phase)` is called now and then.
/// `rate` paces the feed at that many events per second (0: as fast as the pipeline takes
/// them); each event's latency runs from its scheduled send time, so a pipeline that falls
/// behind shows it (no coordinated omission).
pub fn run_demo(
    scenario: ScenarioConfig,
    cfg: PipelineConfig,
    rate: u64,
    mut progress: impl FnMut(u64, u64, &str),
) -> Result<DemoSummary, String> {
    fresh_dir(&cfg.data)?;
    let t0 = Instant::now();
    let expected = scenario.events;
    let mut inputs = Vec::with_capacity(expected as usize * 2);
    let mut steps = 0u64;
    for input in Scenario::new(scenario) {
        inputs.push(input);
        steps += 1;
        if steps.is_multiple_of(20_000) {
            progress(steps, expected * 2, "generating");
        }
    }
    let generate_ns = t0.elapsed().as_nanos();
    let tally = Arc::new(Mutex::new(Tally {
        latency: Some(Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?),
        ..Tally::default()
    }));
    let data = cfg.data.clone();
    let mut pipeline = Pipeline::start(cfg, Box::new(DemoSink(tally.clone())))?;
    let total = inputs.len() as u64;
    let t1 = Instant::now();
    let start_ns = now_ns();
    let interval_ns = 1_000_000_000u64.checked_div(rate).unwrap_or(0);
    for (i, input) in inputs.into_iter().enumerate() {
        let scheduled = start_ns + interval_ns * i as u64;
        if interval_ns > 0 {
            if now_ns() < scheduled {
                pipeline.flush()?;
            }
            while now_ns() < scheduled {
                std::hint::spin_loop();
            }
        }
        pipeline.submit(Item {
            kind: ItemKind::Event(input),
            origin: Origin::default(),
            sent_ns: if interval_ns > 0 { scheduled } else { now_ns() },
        })?;
        if i % 20_000 == 0 {
            progress(i as u64, total, "running");
        }
    }
    let finished = pipeline.finish()?;
    let elapsed_ns = t1.elapsed().as_nanos();
    progress(total, total, "done");
    let mut t = tally.lock().map_err(|_| "demo tally poisoned")?;
    let state = &finished.engine.state;
    let qd = state.quote_decimals();
    let (start, d) = t.first_insurance.unwrap_or((state.insurance.0, qd));
    Ok(DemoSummary {
        data,
        inputs: total,
        accounts: state.accounts.len(),
        markets: state.venue.markets.len(),
        accepted: t.accepted,
        rejected: std::mem::take(&mut t.rejected),
        records: std::mem::take(&mut t.records),
        backstops: t.backstops,
        elapsed_ns,
        generate_ns,
        latency_ns: t
            .latency
            .take()
            .unwrap_or_else(|| Histogram::new(3).expect("histogram")),
        rate,
        insurance_start: margin_engine::num::format_scaled(start, d),
        insurance_end: margin_engine::num::format_scaled(state.insurance.0, qd),
        output_head: hex(&finished.output_head),
        state_hash: hex(&state_hash(state)),
        sample_account: state
            .accounts
            .iter()
            .find(|a| a.cross.has_positions())
            .or(state.accounts.first())
            .map_or(1, |a| a.id.0),
    })
}
