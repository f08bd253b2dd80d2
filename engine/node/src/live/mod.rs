//! The operator's live view (`serve --http ADDR`): Prometheus metrics, health and readiness,
//! a read-only JSON query API and an embedded dashboard page.
//!
//! Nothing here runs on the sequencer but two cheap things: a clock read around each apply
//! (the service-time histogram) and, every `--http-refresh-ms`, a clone of the state handed
//! over with `try_send` (a full channel skips the hand-off; the sequencer never waits). The
//! publisher counts inputs and records as it releases them; the HTTP threads answer from the
//! last state clone whose seq the publisher has released, so a reader never sees an effect
//! before it is published.
//!
//! - [`LiveCounters`]: atomics and small windows shared by the stages and the HTTP threads.
//! - [`view`]: the JSON answers, computed from a state clone.
//! - [`metrics`]: the Prometheus exposition (a `prometheus-client` collector over the counters).
//! - [`http`]: the `tiny_http` server, its routes and limits.

pub mod http;
pub mod metrics;
pub mod view;

use hdrhistogram::Histogram;
use margin_engine::record::{Body, Reason, Record};
use margin_engine::state::State;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The event types of the contract, in the order of the counters.
pub const EVENT_TYPES: [&str; 14] = [
    "asset",
    "market",
    "params",
    "insurance",
    "deposit",
    "withdraw",
    "margin_mode",
    "isolate",
    "order",
    "cancel",
    "fill",
    "oracle",
    "funding",
    "liquidate",
];

/// Record types counted for the risk desk.
pub const RECORD_TYPES: [&str; 6] = [
    "margin_call",
    "liquidation_started",
    "liquidation_fill",
    "liquidation_ended",
    "bankruptcy",
    "adl",
];

/// Recent liquidation records kept for `/api/liquidations`.
pub const RECENT_LIQUIDATIONS_MAX: usize = 200;

/// Per-second throughput samples kept (the dashboard's last minute).
const RATE_WINDOW_S: usize = 60;

/// What the stages count and the HTTP threads read.
pub struct LiveCounters {
    /// inputs[type][0] accepted, [1] rejected.
    inputs: [[AtomicU64; 2]; EVENT_TYPES.len()],
    /// Lines that were not events (malformed), and events refused for the sender's role.
    pub malformed: AtomicU64,
    pub refused: AtomicU64,
    rejections: [AtomicU64; Reason::ALL.len()],
    records: [AtomicU64; RECORD_TYPES.len()],
    /// Clients connected now, by role (none, reader, writer, admin).
    pub clients: [AtomicU64; 4],
    /// Recovery finished and the first state view is published.
    pub ready: AtomicBool,
    /// Latencies in nanoseconds: apply time on the sequencer, ingress to release end to end.
    pub service_ns: Mutex<Histogram<u64>>,
    pub end_to_end_ns: Mutex<Histogram<u64>>,
    /// The same over the current minute (reset when it is over), for the dashboard.
    minute: Mutex<Minute>,
    recent: Mutex<VecDeque<RecentRecord>>,
}

/// A liquidation-related record as the API shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecentRecord {
    pub seq: u64,
    pub input: u64,
    pub ts: u64,
    pub record: serde_json::Value,
}

struct Minute {
    started: Instant,
    service_ns: Histogram<u64>,
    end_to_end_ns: Histogram<u64>,
    /// (second since start, inputs published in it), oldest first.
    rate: VecDeque<(u64, u64)>,
    epoch: Instant,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

impl Default for LiveCounters {
    fn default() -> Self {
        LiveCounters {
            inputs: Default::default(),
            malformed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            rejections: Default::default(),
            records: Default::default(),
            clients: Default::default(),
            ready: AtomicBool::new(false),
            service_ns: Mutex::new(new_histogram()),
            end_to_end_ns: Mutex::new(new_histogram()),
            minute: Mutex::new(Minute {
                started: Instant::now(),
                service_ns: new_histogram(),
                end_to_end_ns: new_histogram(),
                rate: VecDeque::new(),
                epoch: Instant::now(),
            }),
            recent: Mutex::new(VecDeque::new()),
        }
    }
}

/// Counts for one label set.
pub struct InputCount {
    pub event_type: &'static str,
    pub accepted: u64,
    pub rejected: u64,
}

/// The figures of the current minute.
#[derive(Debug, Default, serde::Serialize)]
pub struct MinuteStats {
    pub window_s: u64,
    pub inputs_per_s: u64,
    pub service_ns_p50: u64,
    pub service_ns_p99: u64,
    pub service_ns_max: u64,
    pub end_to_end_ns_p50: u64,
    pub end_to_end_ns_p99: u64,
    pub end_to_end_ns_max: u64,
}

impl LiveCounters {
    /// Counts one released input from its records (the first is its result). Publisher thread.
    pub fn count_input(&self, event_type: &str, records: &[Record]) {
        let Some(t) = EVENT_TYPES.iter().position(|n| *n == event_type) else {
            return;
        };
        let rejected = match records.first().map(|r| &r.body) {
            Some(Body::Rejected { reason, .. }) => {
                self.rejections[*reason as usize].fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        };
        self.inputs[t][usize::from(rejected)].fetch_add(1, Ordering::Relaxed);
        for r in records.iter().skip(1) {
            let name = r.body.type_name();
            if let Some(i) = RECORD_TYPES.iter().position(|n| *n == name) {
                self.records[i].fetch_add(1, Ordering::Relaxed);
                self.remember(r);
            }
        }
    }

    /// Folds in a batch of the publisher's end-to-end latencies, one per input it released.
    pub fn add_released(&self, end_to_end: &Histogram<u64>) -> bool {
        self.fold(&self.end_to_end_ns, end_to_end, |m| {
            let _ = m.end_to_end_ns.add(end_to_end);
            let second = m.epoch.elapsed().as_secs();
            let n = end_to_end.len();
            match m.rate.back_mut() {
                Some((s, c)) if *s == second => *c += n,
                _ => {
                    m.rate.push_back((second, n));
                    while m.rate.len() > RATE_WINDOW_S {
                        m.rate.pop_front();
                    }
                }
            }
        })
    }

    /// Folds a batch of the sequencer's apply times in.
    pub fn add_service(&self, batch: &Histogram<u64>) -> bool {
        self.fold(&self.service_ns, batch, |m| {
            let _ = m.service_ns.add(batch);
        })
    }

    /// Adds `batch` to the since-start histogram `all` and, through `minute`, to the current
    /// minute's figures. Both locks are only tried: the stage keeps its batch and retries after
    /// its next one when `all` is held (false), and the minute's figures, which only the
    /// dashboard reads, skip a batch while a reader holds them.
    fn fold(
        &self,
        all: &Mutex<Histogram<u64>>,
        batch: &Histogram<u64>,
        minute: impl FnOnce(&mut Minute),
    ) -> bool {
        let Ok(mut all) = all.try_lock() else {
            return false;
        };
        let _ = all.add(batch);
        if let Ok(mut m) = self.minute.try_lock() {
            m.roll();
            minute(&mut m);
        }
        true
    }

    fn remember(&self, r: &Record) {
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        let mut line = String::new();
        margin_engine::codec::write_record(&mut line, r);
        let record = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
        recent.push_back(RecentRecord {
            seq: r.seq,
            input: r.input,
            ts: r.ts,
            record,
        });
        while recent.len() > RECENT_LIQUIDATIONS_MAX {
            recent.pop_front();
        }
    }

    pub fn inputs(&self) -> Vec<InputCount> {
        EVENT_TYPES
            .iter()
            .zip(&self.inputs)
            .map(|(t, c)| InputCount {
                event_type: t,
                accepted: c[0].load(Ordering::Relaxed),
                rejected: c[1].load(Ordering::Relaxed),
            })
            .collect()
    }

    pub fn rejections(&self) -> Vec<(&'static str, u64)> {
        Reason::ALL
            .iter()
            .map(|r| {
                (
                    r.code(),
                    self.rejections[*r as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    pub fn records(&self) -> Vec<(&'static str, u64)> {
        RECORD_TYPES
            .iter()
            .zip(&self.records)
            .map(|(t, c)| (*t, c.load(Ordering::Relaxed)))
            .collect()
    }

    pub fn recent(&self) -> Vec<RecentRecord> {
        self.recent
            .lock()
            .map(|r| r.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn minute(&self) -> MinuteStats {
        let Ok(mut m) = self.minute.lock() else {
            return MinuteStats::default();
        };
        m.roll();
        let now = m.epoch.elapsed().as_secs();
        let recent: Vec<u64> = m
            .rate
            .iter()
            .filter(|(s, _)| now.saturating_sub(*s) < RATE_WINDOW_S as u64 && *s < now)
            .map(|(_, n)| *n)
            .collect();
        let inputs_per_s = if recent.is_empty() {
            0
        } else {
            recent.iter().sum::<u64>() / recent.len() as u64
        };
        MinuteStats {
            window_s: m.started.elapsed().as_secs(),
            inputs_per_s,
            service_ns_p50: m.service_ns.value_at_quantile(0.5),
            service_ns_p99: m.service_ns.value_at_quantile(0.99),
            service_ns_max: m.service_ns.max(),
            end_to_end_ns_p50: m.end_to_end_ns.value_at_quantile(0.5),
            end_to_end_ns_p99: m.end_to_end_ns.value_at_quantile(0.99),
            end_to_end_ns_max: m.end_to_end_ns.max(),
        }
    }
}

impl Minute {
    /// Starts a new minute's histograms when the current one is over.
    fn roll(&mut self) {
        if self.started.elapsed().as_secs() >= RATE_WINDOW_S as u64 {
            self.started = Instant::now();
            self.service_ns.reset();
            self.end_to_end_ns.reset();
        }
    }
}

/// The sequencer's side of the view: state clones at most every `every`, never waiting.
#[derive(Clone)]
pub struct ViewFeed {
    pub tx: crossbeam_channel::Sender<Box<State>>,
    pub every: std::time::Duration,
    pub live: std::sync::Arc<LiveCounters>,
}

impl std::fmt::Debug for ViewFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewFeed(every {:?})", self.every)
    }
}
