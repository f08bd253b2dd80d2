//! The pipeline under an open-loop load: inputs are offered at a fixed rate, and each input's
//! latency runs from its *intended* send time to the moment the publisher has written its
//! outputs to the output log and handed them on. A pipeline that falls behind therefore shows
//! every delayed input, not just the first (no coordinated omission).

use crate::hist::{at_ppm, new_ns};
use hdrhistogram::Histogram;
use margin_engine::record::Record;
use margin_engine::Input;
use margin_journal::Durability;
use margin_node::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the journal is synced in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Page cache only.
    None,
    /// Group commit (fsync per batch of up to 1,024 records or 1 ms), outputs released only
    /// once their input is durable.
    Durable,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "none (page cache)",
            Policy::Durable => "batch fsync, release after durable",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Durable => "durable",
        }
    }

    fn apply(self, cfg: PipelineConfig) -> PipelineConfig {
        match self {
            Policy::None => cfg,
            Policy::Durable => PipelineConfig {
                durability: Durability::Batch {
                    max_records: 1024,
                    max_delay: Duration::from_millis(1),
                },
                release_after_durable: true,
                ..cfg
            },
        }
    }
}

/// One offered rate's result.
pub struct RatePoint {
    /// Offered events per second (0: unpaced, as fast as the feeder can submit).
    pub rate: u64,
    pub policy: Policy,
    pub events: u64,
    pub latency: Histogram<u64>,
    /// Events per second the pipeline actually completed.
    pub achieved: u64,
}

struct LatencySink(Arc<Mutex<Histogram<u64>>>);

impl Sink for LatencySink {
    fn applied(&mut self, _seq: u64, _o: Origin, _r: &[Record], _e: &[u8], sent_ns: u64) {
        let lat = now_ns().saturating_sub(sent_ns).max(1);
        if let Ok(mut h) = self.0.lock() {
            h.saturating_record(lat);
        }
    }

    fn malformed(&mut self, _o: Origin, _line: u64, _detail: &str, sent_ns: u64) {
        let lat = now_ns().saturating_sub(sent_ns).max(1);
        if let Ok(mut h) = self.0.lock() {
            h.saturating_record(lat);
        }
    }
}

/// Runs `inputs` through a fresh pipeline in `dir` at `rate` events per second (0: unpaced).
pub fn run_at(
    inputs: &[Input],
    rate: u64,
    policy: Policy,
    dir: &Path,
) -> Result<RatePoint, String> {
    let cfg = policy.apply(PipelineConfig {
        // Snapshots are not what is measured here.
        snapshot_every: 0,
        ..PipelineConfig::new(dir)
    });
    let hist = Arc::new(Mutex::new(new_ns()));
    // Items are made before the clock starts: cloning an input is the feeder's cost, not the
    // pipeline's.
    let mut items: Vec<Item> = inputs
        .iter()
        .map(|i| Item {
            kind: ItemKind::Event(i.clone()),
            origin: Origin::default(),
            sent_ns: 0,
        })
        .collect();
    let mut pipeline = Pipeline::start(cfg, Box::new(LatencySink(hist.clone())))?;
    let interval_ns = 1_000_000_000u64.checked_div(rate).unwrap_or(0);
    let start_ns = now_ns();
    for (i, mut item) in items.drain(..).enumerate() {
        let scheduled = start_ns + interval_ns * i as u64;
        if interval_ns > 0 {
            if now_ns() < scheduled {
                // Ahead of schedule: hand over what is queued rather than sit on it.
                pipeline.flush()?;
            }
            wait_until(scheduled);
            item.sent_ns = scheduled;
        } else {
            item.sent_ns = now_ns();
        }
        pipeline.submit(item)?;
    }
    pipeline.finish()?;
    let elapsed = now_ns() - start_ns;
    let latency = Arc::try_unwrap(hist)
        .map_err(|_| "the sink outlived the pipeline".to_string())?
        .into_inner()
        .map_err(|_| "latency histogram poisoned".to_string())?;
    Ok(RatePoint {
        rate,
        policy,
        events: inputs.len() as u64,
        achieved: (u128::from(inputs.len() as u64) * 1_000_000_000 / u128::from(elapsed.max(1)))
            as u64,
        latency,
    })
}

/// Waits for `deadline_ns`: asleep while it is far (on a 2-core machine a spinning feeder
/// would take a core from the pipeline), spinning for the last stretch. A late wake-up is
/// charged to the pipeline's latency, which errs on the side of reporting worse figures.
fn wait_until(deadline_ns: u64) {
    const SPIN_NS: u64 = 100_000;
    loop {
        let now = now_ns();
        if now >= deadline_ns {
            return;
        }
        let left = deadline_ns - now;
        if left > SPIN_NS {
            std::thread::sleep(Duration::from_nanos(left - SPIN_NS));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The sweep: each rate in turn (each on a fresh data directory under `root`, `seconds` of
/// offered load, at least `min_events`), stopping after the first rate whose median passes
/// 1 ms.
pub fn sweep(
    inputs: &[Input],
    rates: &[u64],
    policy: Policy,
    seconds: u64,
    min_events: usize,
    root: &Path,
    mut progress: impl FnMut(&RatePoint),
) -> Result<Vec<RatePoint>, String> {
    let mut out = Vec::new();
    for &rate in rates {
        let n = (rate.saturating_mul(seconds) as usize)
            .max(min_events)
            .min(inputs.len());
        let dir = root.join(format!("{}-{rate}", policy.slug()));
        let point = run_at(&inputs[..n], rate, policy, &dir)?;
        let _ = std::fs::remove_dir_all(&dir);
        let median = at_ppm(&point.latency, 500_000);
        progress(&point);
        out.push(point);
        if median > 1_000_000 {
            break;
        }
    }
    Ok(out)
}
