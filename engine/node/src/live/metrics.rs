//! `GET /metrics`: the OpenMetrics text exposition (which Prometheus scrapes), written by
//! `prometheus-client` from a collector that reads the live counters and the published state
//! view at scrape time. Names are prefixed `margin_engine_`; amounts are in the asset's units
//! (the exact decimal parsed to the nearest double: Prometheus values are doubles), native
//! seqs and counts are integers.

use super::http::Shared;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Quantiles exported from each latency histogram.
const QUANTILES: [(&str, f64); 5] = [
    ("0.5", 0.5),
    ("0.9", 0.9),
    ("0.99", 0.99),
    ("0.999", 0.999),
    ("1", 1.0),
];

#[derive(Debug)]
struct LiveCollector(Arc<Shared>);

type Labels = Vec<(&'static str, String)>;

fn counter_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m)
}

/// A decimal string as the nearest double (parsing, not arithmetic: the value stays the
/// engine's exact figure as far as a double can hold it).
fn decimal(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

impl Collector for LiveCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sh = &self.0;
        let live = &sh.live;
        let mut inputs: Vec<(Labels, u64)> = Vec::new();
        for c in live.inputs() {
            for (result, v) in [("accepted", c.accepted), ("rejected", c.rejected)] {
                inputs.push((
                    vec![("type", c.event_type.into()), ("result", result.into())],
                    v,
                ));
            }
        }
        for (result, v) in [
            ("malformed", live.malformed.load(Ordering::Relaxed)),
            ("unauthorized", live.refused.load(Ordering::Relaxed)),
        ] {
            inputs.push((vec![("type", "none".into()), ("result", result.into())], v));
        }
        counter_family(
            &mut enc,
            "inputs",
            "Inputs released, by event type and result (lines that were not events: type none)",
            &inputs,
        )?;
        let rejections: Vec<(Labels, u64)> = live
            .rejections()
            .into_iter()
            .map(|(r, v)| (vec![("reason", r.into())], v))
            .collect();
        counter_family(
            &mut enc,
            "rejections",
            "Rejected inputs by reason code",
            &rejections,
        )?;
        let records: Vec<(Labels, u64)> = live
            .records()
            .into_iter()
            .map(|(r, v)| (vec![("type", r.into())], v))
            .collect();
        counter_family(
            &mut enc,
            "risk_records",
            "Risk records emitted: margin calls, liquidations, liquidation fills, bankruptcies, ADL fills",
            &records,
        )?;
        let c = &sh.counters;
        let seqs = [
            ("journaled", c.journaled.load(Ordering::Relaxed)),
            ("durable", c.durable_seq.load(Ordering::Relaxed)),
            ("applied", c.applied.load(Ordering::Relaxed)),
            ("published", c.published.load(Ordering::Relaxed)),
            // 0 unless the engine replicates (`serve --replicate`).
            ("replicated", c.replicated_seq.load(Ordering::Relaxed)),
        ];
        let rows: Vec<(Labels, f64)> = seqs
            .iter()
            .map(|(stage, v)| (vec![("stage", (*stage).into())], *v as f64))
            .collect();
        gauge_family(&mut enc, "seq", "Last input seq per stage", &rows)?;
        let [journaled, _, applied, published, _] = seqs.map(|s| s.1);
        let depths = [
            ("sequencer", journaled.saturating_sub(applied)),
            ("publisher", applied.saturating_sub(published)),
        ];
        let rows: Vec<(Labels, f64)> = depths
            .iter()
            .map(|(q, v)| (vec![("queue", (*q).into())], *v as f64))
            .collect();
        gauge_family(
            &mut enc,
            "queue_depth_inputs",
            "Inputs waiting for the stage",
            &rows,
        )?;
        for (name, help, h) in [
            (
                "service_ns",
                "Time the sequencer took to apply one input (since start)",
                &live.service_ns,
            ),
            (
                "end_to_end_ns",
                "Ingress to release of one input's outputs (since start)",
                &live.end_to_end_ns,
            ),
        ] {
            let (rows, count) = match h.lock() {
                Ok(h) => (
                    QUANTILES
                        .iter()
                        .map(|(label, q)| {
                            (
                                vec![("quantile", (*label).into())],
                                h.value_at_quantile(*q) as f64,
                            )
                        })
                        .collect::<Vec<_>>(),
                    h.len(),
                ),
                Err(_) => (Vec::new(), 0),
            };
            gauge_family(&mut enc, name, help, &rows)?;
            counter_family(
                &mut enc,
                &format!("{name}_samples"),
                "Samples in the latency histogram",
                &[(Vec::new(), count)],
            )?;
        }
        let roles = ["none", "reader", "writer", "admin"];
        let rows: Vec<(Labels, f64)> = roles
            .iter()
            .zip(&live.clients)
            .map(|(r, n)| {
                (
                    vec![("role", (*r).into())],
                    n.load(Ordering::Relaxed) as f64,
                )
            })
            .collect();
        gauge_family(&mut enc, "clients", "Connected clients by role", &rows)?;
        gauge(
            &mut enc,
            "ready",
            "1 once recovery finished and the first state view is published",
            u64::from(live.ready.load(Ordering::Relaxed)),
        )?;
        self.encode_state(&mut enc)
    }
}

impl LiveCollector {
    /// The figures of the published state view.
    fn encode_state(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let Some(s) = self.0.view.with(|st| super::view::state_metrics(st)) else {
            return Ok(());
        };
        gauge(
            enc,
            "view_seq",
            "Input seq of the state the view shows",
            s.seq,
        )?;
        gauge(
            enc,
            "accounts_liquidating",
            "Buckets in liquidation",
            s.liquidating,
        )?;
        let rows = |v: &[(String, String)], label: &'static str| -> Vec<(Labels, f64)> {
            v.iter()
                .map(|(k, x)| (vec![(label, k.clone())], decimal(x)))
                .collect()
        };
        gauge_family(
            enc,
            "insurance_fund",
            "Insurance fund per asset (quote balance; assets held after bad-debt sales)",
            &rows(&s.insurance, "asset"),
        )?;
        gauge_family(
            enc,
            "fee_pool",
            "Fees collected, quote",
            &[(Vec::new(), decimal(&s.fee_pool))],
        )?;
        gauge_family(
            enc,
            "open_interest",
            "Open interest per market, base units",
            &rows(&s.open_interest, "market"),
        )?;
        gauge_family(
            enc,
            "funding_index",
            "Cumulative funding index per market",
            &rows(&s.funding_index, "market"),
        )
    }
}

/// The registry the server encodes on each scrape.
pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut r = Registry::with_prefix("margin_engine");
    r.register_collector(Box::new(LiveCollector(shared)));
    r
}
