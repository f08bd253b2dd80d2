//! `audit`: replays the whole history and checks every invariant of the margin model, while
//! gathering the figures a risk officer reads: the insurance fund over time, open interest,
//! margin calls and liquidations per hour, the largest losses, bad debt.
//!
//! First it runs `verify` (the same parallel replay): every output batch of the log compared with
//! the replay, the two logs' lengths reconciled, snapshots checked. A divergence, an empty or
//! short output log or an unreadable one is a violation, so an audit never passes a directory
//! whose output log is not the one its input journal produces.
//!
//! Per event: the conservation ledger (O(assets + markets)), sizes summing to zero, and that
//! auto-deleveraging only ever took from opposite positions. Every `full_every` events and at
//! the end: the full invariant check over the whole state.

use margin_engine::num::format_scaled;
use margin_engine::persist::{self, hex, state_hash};
use margin_engine::record::Body;
use margin_engine::Engine;
use margin_journal::Reader;
use margin_node::pipeline::datadir::DataDir;
use margin_node::pipeline::MAX_RECORD_BYTES;
use serde::Serialize;
use std::collections::BTreeMap;

const HOUR_US: u64 = 3_600_000_000;

#[derive(Serialize, Debug, Default, Clone)]
pub struct Hour {
    pub hour: u64,
    pub margin_calls: u64,
    pub liquidations: u64,
    pub auction_fills: u64,
    pub bankruptcies: u64,
    pub adl_fills: u64,
}

#[derive(Serialize, Debug, Default)]
pub struct BadDebt {
    pub bankruptcies: u64,
    pub deficit: String,
    pub insurance_paid: String,
    pub socialized: String,
}

/// Where a report comes from: enough to reproduce it and to know what it covers.
#[derive(Serialize, Debug, Default)]
pub struct Provenance {
    /// The tool and its version.
    pub tool: String,
    /// First and last input seq replayed.
    pub first_seq: u64,
    pub last_seq: u64,
    /// BLAKE3 over the replayed input records in order (seq, then payload), so that a report
    /// names the exact history it covers.
    pub input_digest: String,
}

/// One invariant the audit checked, and how many times.
#[derive(Serialize, Debug, Default)]
pub struct Invariant {
    pub name: String,
    pub checks: u64,
}

/// A liquidation started or a bankruptcy, with the command that shows the account then.
#[derive(Serialize, Debug, Default, Clone)]
pub struct RiskEvent {
    pub input_seq: u64,
    pub ts: u64,
    pub kind: String,
    pub account: u64,
    pub bucket: String,
    /// `margin-replay state --at SEQ --account ID` (the data directory's flag added by the
    /// reader).
    pub state_at: String,
}

/// Risk events listed at most (the counts per hour cover all of them).
const RISK_EVENTS_MAX: usize = 1000;

#[derive(Serialize, Debug, Default)]
pub struct AuditReport {
    pub provenance: Provenance,
    /// Every invariant checked, with its count.
    pub invariants: Vec<Invariant>,
    /// Liquidations started and bankruptcies, in order (the first 1000).
    pub risk_events: Vec<RiskEvent>,
    pub events: u64,
    /// Output batches `verify` compared with the replay (0 when it could not).
    pub outputs_compared: u64,
    /// Snapshots `verify` checked against the replay.
    pub snapshots_checked: usize,
    /// Journaled inputs with no output yet (a live or crashed directory).
    pub pending_outputs: u64,
    pub output_head: String,
    pub state_hash: String,
    pub full_checks: u64,
    pub violations: Vec<String>,
    /// (engine clock, insurance fund) at each change, thinned to at most 1000 points.
    pub insurance_fund: Vec<(u64, String)>,
    /// Per market, (clock, open interest) sampled each simulated hour.
    pub open_interest: BTreeMap<String, Vec<(u64, String)>>,
    pub hours: Vec<Hour>,
    /// Largest realised losses by account (quote), worst first.
    pub largest_losses: Vec<(u64, String)>,
    pub bad_debt: BadDebt,
    pub quote: String,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

fn note_risk(
    events: &mut Vec<RiskEvent>,
    rec: &margin_engine::Record,
    kind: &str,
    account: u64,
    bucket: &margin_engine::record::BucketName,
) {
    if events.len() >= RISK_EVENTS_MAX {
        return;
    }
    events.push(RiskEvent {
        input_seq: rec.input,
        ts: rec.ts,
        kind: kind.into(),
        account,
        bucket: match bucket {
            margin_engine::record::BucketName::Cross => "cross".to_string(),
            margin_engine::record::BucketName::Isolated(m) => m.to_string(),
        },
        state_at: format!("margin-replay state --at {} --account {account}", rec.input),
    });
}

/// Compares the output log with the replay (`verify`); what it finds is a violation.
fn compare_outputs(dir: &DataDir, r: &mut AuditReport) {
    use crate::verify::{verify, Outcome};
    match verify(dir, None, |_, _| {}) {
        Ok(Outcome::Verified(v)) => {
            r.outputs_compared = v.outputs_compared;
            r.snapshots_checked = v.snapshots_checked;
            r.pending_outputs = v.pending_outputs;
            if v.pending_outputs > 0 {
                // An audit speaks for the whole history: outputs it cannot compare fail it.
                r.violations.push(format!(
                    "the output log is short: {} journaled inputs have no outputs (a live or crashed directory: start the engine on it to write them, then audit)",
                    v.pending_outputs
                ));
            }
        }
        Ok(Outcome::Diverged(d)) => r.violations.push(format!(
            "the output log diverges from the replay at input seq {} (output record seq {}): logged {}, replayed {}",
            d.input_seq,
            d.output_seq,
            d.logged.as_deref().unwrap_or("(no record)"),
            d.replayed.as_deref().unwrap_or("(no record)")
        )),
        Ok(Outcome::SnapshotMismatch { seq, path, detail }) => r
            .violations
            .push(format!("snapshot at seq {seq} ({path}) differs from the replay: {detail}")),
        Err(e) => r
            .violations
            .push(format!("the output log could not be compared with the replay: {e}")),
    }
}

/// Runs the audit; `progress(done, total)` now and then.
pub fn audit(
    dir: &DataDir,
    full_checks: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<AuditReport, String> {
    let inputs = Reader::open(&dir.input_dir(), "input", MAX_RECORD_BYTES)
        .map_err(|e| format!("input journal: {e}"))?;
    let outputs = Reader::open(&dir.output_dir(), "output", MAX_RECORD_BYTES)
        .map_err(|e| format!("output log: {e}"))?;
    let total = inputs.last_seq();
    let full_every = (total / full_checks.max(1)).max(1);
    let mut engine = Engine::new();
    engine.skip_inputs = dir.skipped_inputs()?;
    let mut r = AuditReport {
        output_head: hex(&outputs.summary().head),
        ..AuditReport::default()
    };
    compare_outputs(dir, &mut r);
    let mut hours: BTreeMap<u64, Hour> = BTreeMap::new();
    let mut losses: BTreeMap<u64, i128> = BTreeMap::new();
    let (mut deficit, mut paid, mut socialized) = (0i128, 0i128, 0i128);
    let mut last_fund: Option<i128> = None;
    let mut next_oi_sample = 0u64;
    let mut digest = blake3::Hasher::new();
    let mut adl_checks = 0u64;
    r.provenance.tool = format!("margin-replay {}", env!("CARGO_PKG_VERSION"));
    r.provenance.first_seq = inputs.first_seq();
    r.provenance.last_seq = total;
    for rec in inputs.iter_from(1) {
        let rec = rec.map_err(|e| format!("input journal: {e}"))?;
        let input = persist::decode_input(rec.payload)
            .map_err(|e| format!("input seq {}: {e}", rec.seq))?;
        digest.update(&rec.seq.to_le_bytes());
        digest.update(rec.payload);
        let out = engine.apply_or_skip(&input, rec.seq).to_vec();
        let st = &engine.state;
        if let Err(e) = st.check_ledger() {
            r.violations.push(format!("after input {}: {e}", rec.seq));
        }
        for rec_out in &out {
            let h = hours.entry(rec_out.ts / HOUR_US).or_insert_with(|| Hour {
                hour: rec_out.ts / HOUR_US,
                ..Hour::default()
            });
            match &rec_out.body {
                Body::MarginCall { .. } => h.margin_calls += 1,
                Body::LiquidationStarted {
                    account, bucket, ..
                } => {
                    h.liquidations += 1;
                    note_risk(
                        &mut r.risk_events,
                        rec_out,
                        "liquidation_started",
                        account.0,
                        bucket,
                    );
                }
                Body::LiquidationFill { .. } => h.auction_fills += 1,
                Body::Bankruptcy {
                    account,
                    bucket,
                    deficit: d,
                    insurance,
                    socialized: u,
                } => {
                    h.bankruptcies += 1;
                    note_risk(&mut r.risk_events, rec_out, "bankruptcy", account.0, bucket);
                    deficit += d.value;
                    paid += insurance.value;
                    socialized += u.value;
                }
                Body::Adl {
                    account,
                    market,
                    side,
                    ..
                } => {
                    h.adl_fills += 1;
                    adl_checks += 1;
                    check_adl(
                        &engine,
                        rec.seq,
                        account.0,
                        market,
                        *side,
                        &mut r.violations,
                    );
                }
                Body::Position {
                    account, realized, ..
                } if realized.value < 0 => {
                    *losses.entry(account.0).or_insert(0) += realized.value;
                }
                _ => {}
            }
        }
        let st = &engine.state;
        if last_fund != Some(st.insurance.0) {
            last_fund = Some(st.insurance.0);
            r.insurance_fund.push((
                st.clock_us,
                format_scaled(st.insurance.0, st.quote_decimals()),
            ));
        }
        if st.clock_us >= next_oi_sample {
            next_oi_sample = (st.clock_us / HOUR_US + 1) * HOUR_US;
            for (i, m) in st.venue.markets.iter().enumerate() {
                r.open_interest
                    .entry(m.name.to_string())
                    .or_default()
                    .push((
                        st.clock_us,
                        format_scaled(st.markets[i].open_interest, m.size_decimals),
                    ));
            }
        }
        if rec.seq.is_multiple_of(full_every) || rec.seq == total {
            r.full_checks += 1;
            for v in margin_engine::invariants::check(st) {
                r.violations.push(format!("after input {}: {v}", rec.seq));
            }
        }
        if r.violations.len() > 100 {
            r.violations.truncate(100);
            r.violations
                .push("... (stopped after 100 violations)".into());
            break;
        }
        r.events += 1;
        if rec.seq.is_multiple_of(65_536) {
            progress(rec.seq, total);
        }
    }
    r.provenance.input_digest = digest.finalize().to_hex().to_string();
    r.invariants = vec![
        Invariant {
            name: "every output batch equals the replay's, byte for byte (verify)".into(),
            checks: r.outputs_compared,
        },
        Invariant {
            name: "every snapshot holds the replayed state (verify)".into(),
            checks: r.snapshots_checked as u64,
        },
        Invariant {
            name: "conservation ledger balances after every event".into(),
            checks: r.events,
        },
        Invariant {
            name:
                "full model invariants (sizes sum to zero, indices, holders, liquidating set, ...)"
                    .into(),
            checks: r.full_checks,
        },
        Invariant {
            name: "auto-deleveraging only takes from opposite positions".into(),
            checks: adl_checks,
        },
    ];
    let st = &engine.state;
    let qd = st.quote_decimals();
    r.state_hash = hex(&state_hash(st));
    r.quote = st
        .venue
        .quote
        .map(|q| st.venue.asset(q).name.to_string())
        .unwrap_or_default();
    r.hours = hours.into_values().collect();
    let mut worst: Vec<(u64, i128)> = losses.into_iter().collect();
    worst.sort_by_key(|&(a, l)| (l, a));
    // Losses as magnitudes: the column says "loss", so a loss of 5 reads 5, not -5.
    r.largest_losses = worst
        .into_iter()
        .filter(|&(_, l)| l < 0)
        .take(10)
        .map(|(a, l)| (a, format_scaled(l.saturating_neg(), qd)))
        .collect();
    r.bad_debt = BadDebt {
        bankruptcies: r.hours.iter().map(|h| h.bankruptcies).sum(),
        deficit: format_scaled(deficit, qd),
        insurance_paid: format_scaled(paid, qd),
        socialized: format_scaled(socialized, qd),
    };
    thin(&mut r.insurance_fund, 1000);
    Ok(r)
}

/// After an ADL fill the counterparty's position must still be on its old side (or flat): it
/// had an opposite position, and it never took more than it held.
fn check_adl(
    engine: &Engine,
    seq: u64,
    account: u64,
    market: &margin_engine::ids::Symbol,
    side: margin_engine::ids::Side,
    v: &mut Vec<String>,
) {
    let st = &engine.state;
    let Some(m) = st.venue.market_id(market) else {
        return;
    };
    let size = st
        .account(margin_engine::ids::AccountId(account))
        .map_or(0, |a| a.bucket_for(m).size(m).0);
    let ok = match side {
        margin_engine::ids::Side::Buy => size <= 0,
        margin_engine::ids::Side::Sell => size >= 0,
    };
    if !ok {
        v.push(format!("after input {seq}: ADL charged account {account} in {market} beyond an opposite position"));
    }
}

/// Keeps at most `n` evenly spaced points (and the last).
fn thin<T: Clone>(points: &mut Vec<T>, n: usize) {
    if points.len() <= n {
        return;
    }
    let step = points.len().div_ceil(n);
    let last = points.last().cloned();
    let kept: Vec<T> = points.iter().step_by(step).cloned().collect();
    *points = kept;
    if let Some(l) = last {
        points.push(l);
    }
}
