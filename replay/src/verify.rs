//! `verify`: re-run the input journal through the same state machine and compare every output
//! batch with the output log, byte for byte; the log's hash chain was checked when it was
//! opened, so equal bytes mean equal hashes. Snapshots are checked against the replay too.
//!
//! The history is cut at the snapshots into segments replayed in parallel: a segment starts
//! from the snapshot at its beginning and ends by checking that its replayed state equals the
//! snapshot at its end (by state hash). Each segment's starting state is thereby the replayed
//! state, so all segments passing is the same finding as one replay from the start. A
//! replay's speed is the state machine's alone (no journaling, no network), and it grows with
//! the cores: on the 2-core reference machine a verification outruns the engine that wrote the
//! history.

use crossbeam_channel::{unbounded, Sender};
use margin_engine::codec::{input_line, record_line};
use margin_engine::persist::{self, decode_batch, hex, state_hash, OutputBatch};
use margin_engine::{Engine, Input};
use margin_journal::Reader;
use margin_node::pipeline::datadir::DataDir;
use margin_node::pipeline::{snapshot, MAX_RECORD_BYTES};
use rkyv::util::AlignedVec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a successful verification checked.
#[derive(Debug)]
pub struct Verified {
    pub from_seq: u64,
    pub events: u64,
    pub output_head: String,
    pub snapshots_checked: usize,
    /// Inputs the output log does not reach yet (a live or crashed directory).
    pub pending_outputs: u64,
    /// Output batches compared with the replay.
    pub outputs_compared: u64,
    /// Torn tails left by an interrupted write (live or crashed directory): verification
    /// stops before them, as the engine's recovery would cut them.
    pub torn_tails: Vec<String>,
    pub elapsed: Duration,
}

/// The first output that differs from the replay.
#[derive(Debug)]
pub struct Divergence {
    pub input_seq: u64,
    /// Output record seq of the first differing record (or where a record is missing).
    pub output_seq: u64,
    pub logged: Option<String>,
    pub replayed: Option<String>,
    pub input: String,
}

pub enum Outcome {
    Verified(Verified),
    Diverged(Box<Divergence>),
    /// A snapshot whose state differs from the replayed one at its seq.
    SnapshotMismatch {
        seq: u64,
        path: String,
        detail: String,
    },
}

/// Verifies a data directory; `Err` means it could not be read (corrupt or missing), with the
/// file, offset and seq where the journal code could tell. `progress` gets (inputs replayed,
/// inputs to replay).
pub fn verify(
    dir: &DataDir,
    from_snapshot: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Outcome, String> {
    let started = Instant::now();
    let (inputs, outputs) = std::thread::scope(|s| {
        let outputs = s.spawn(|| open_log(&dir.output_dir(), "output", "output log"));
        let inputs = open_log(&dir.input_dir(), "input", "input journal");
        let outputs = outputs
            .join()
            .unwrap_or_else(|_| Err("output log: the reading thread failed".into()));
        (inputs, outputs)
    });
    let ((inputs, input_torn), (outputs, output_torn)) = (inputs?, outputs?);
    reconcile(&inputs, &outputs)?;
    let skips = dir.skipped_inputs()?;
    let first = match from_snapshot {
        None => Start::Genesis,
        Some(seq) => Start::Snapshot(snapshot::SnapshotFile {
            seq,
            path: snapshot::snapshot_path(&dir.snapshots(), seq),
        }),
    };
    let from = match &first {
        Start::Genesis => 1,
        Start::Snapshot(s) if !s.path.is_file() => {
            return Err(format!(
                "no snapshot at seq {} ({})",
                s.seq,
                s.path.display()
            ))
        }
        Start::Snapshot(s) => s.seq + 1,
    };
    if from < inputs.first_seq() {
        return Err(format!(
            "the input journal starts at seq {}; replay needs seq {from}",
            inputs.first_seq()
        ));
    }
    let last = inputs.last_seq();
    let segments = plan(first, from, last, snapshot::list(&dir.snapshots()));
    let total = last.saturating_sub(from - 1);
    let logs = Logs {
        inputs: &inputs,
        outputs: &outputs,
        skips: &skips,
    };
    let results = run_segments(&logs, &segments, |done| progress(done, total));
    let mut checked = 0;
    let mut earliest: Option<Failure> = None;
    for r in results {
        match r {
            Ok(n) => checked += n,
            Err(f) if earliest.as_ref().is_none_or(|e| f.at < e.at) => earliest = Some(f),
            Err(_) => {}
        }
    }
    if let Some(f) = earliest {
        return f.found;
    }
    Ok(Outcome::Verified(Verified {
        from_seq: from,
        events: total,
        output_head: hex(&outputs.summary().head),
        snapshots_checked: checked,
        pending_outputs: last.saturating_sub(outputs.last_seq()),
        outputs_compared: outputs.last_seq().saturating_sub(from - 1),
        torn_tails: input_torn.into_iter().chain(output_torn).collect(),
        elapsed: started.elapsed(),
    }))
}

/// Opens (and so checks: CRC of every frame, the hash chain) a whole log. Unreadable bytes past
/// the durable mark at its very end are an interrupted write, as on a live or crashed directory:
/// the reader stops before them (the engine cuts them when it next opens the directory) and
/// they are reported. Damage anywhere else is an error from the reader.
fn open_log(
    path: &std::path::Path,
    name: &str,
    what: &str,
) -> Result<(Reader, Option<String>), String> {
    let r = Reader::open(path, name, MAX_RECORD_BYTES).map_err(|e| format!("{what}: {e}"))?;
    let torn = (r.summary().torn_bytes > 0).then(|| {
        let file = r
            .paths()
            .last()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!(
            "{what}: {} bytes of an interrupted write after seq {} at the end of {file} (not verified; recovery cuts them)",
            r.summary().torn_bytes,
            r.last_seq()
        )
    });
    Ok((r, torn))
}

/// The two logs' lengths must be reconcilable: every output batch belongs to a journaled
/// input, and a journal with inputs has an output log that started.
fn reconcile(inputs: &Reader, outputs: &Reader) -> Result<(), String> {
    let (i, o) = (inputs.last_seq(), outputs.last_seq());
    if o > i {
        return Err(format!(
            "the output log reaches input seq {o} but the input journal ends at {i}: inputs {}..={o} are missing from the journal",
            i + 1
        ));
    }
    if i > 0 && o == 0 {
        return Err(format!(
            "the output log is empty but the input journal holds {i} inputs: nothing to compare (outputs removed?)"
        ));
    }
    Ok(())
}

/// Both logs of the directory, checked.
struct Logs<'a> {
    inputs: &'a Reader,
    outputs: &'a Reader,
    /// Input seqs the operator ordered skipped (the directory's `SKIPPED`).
    skips: &'a [u64],
}

/// Where a segment's replay starts.
enum Start {
    Genesis,
    Snapshot(snapshot::SnapshotFile),
}

/// Inputs `from..=to` replayed from `start`; `end_check` is the snapshot at `to`, if any.
struct Segment {
    start: Start,
    from: u64,
    to: u64,
    end_check: Option<snapshot::SnapshotFile>,
}

/// Cuts `from..=last` at every snapshot inside it.
fn plan(
    first: Start,
    from: u64,
    last: u64,
    mut snaps: Vec<snapshot::SnapshotFile>,
) -> Vec<Segment> {
    snaps.retain(|s| s.seq >= from && s.seq <= last);
    snaps.sort_by_key(|s| s.seq);
    let mut segments = vec![Segment {
        start: first,
        from,
        to: last,
        end_check: None,
    }];
    for s in snaps {
        let open = segments.last_mut().expect("one segment at least");
        open.to = s.seq;
        open.end_check = Some(s.clone());
        if s.seq < last {
            segments.push(Segment {
                start: Start::Snapshot(s.clone()),
                from: s.seq + 1,
                to: last,
                end_check: None,
            });
        }
    }
    segments
}

/// A finding that ends the verification, at the input seq where it was made (a divergence in
/// the outputs of seq s comes before a snapshot mismatch at s, as in one serial replay).
struct Failure {
    at: (u64, u8),
    found: Result<Outcome, String>,
}

/// Worker threads at most (each holds one engine).
const MAX_WORKERS: usize = 16;

/// Replays the segments on as many threads as there are cores, in order of their start;
/// returns per segment the snapshots it checked or its failure.
fn run_segments(
    logs: &Logs<'_>,
    segments: &[Segment],
    mut progress: impl FnMut(u64),
) -> Vec<Result<usize, Failure>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(segments.len().max(1));
    let next = AtomicUsize::new(0);
    let (done_tx, done_rx) = unbounded::<u64>();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let done_tx = done_tx.clone();
                let next = &next;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(seg) = segments.get(i) else {
                            return mine;
                        };
                        mine.push((i, replay_segment(logs, seg, &done_tx)));
                    }
                })
            })
            .collect();
        drop(done_tx);
        let mut replayed = 0;
        for n in done_rx {
            replayed += n;
            progress(replayed);
        }
        let mut all: Vec<(usize, Result<usize, Failure>)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all
    });
    if results.len() < segments.len() {
        // A worker died (a bug in the replay): never a verified directory.
        return vec![Err(Failure {
            at: (0, 0),
            found: Err("a replay thread failed".into()),
        })];
    }
    results.into_iter().map(|(_, r)| r).collect()
}

/// Inputs between two progress reports from a worker.
const PROGRESS_EVERY: u64 = 65_536;

/// Replays one segment, comparing each output batch with the log and the final state with the
/// snapshot at its end; returns how many snapshots it checked (its start included).
fn replay_segment(logs: &Logs<'_>, seg: &Segment, done: &Sender<u64>) -> Result<usize, Failure> {
    let fail_at = |seq: u64, rank: u8| {
        move |found: Result<Outcome, String>| Failure {
            at: (seq, rank),
            found,
        }
    };
    let mut checked = 0;
    let mut engine = match &seg.start {
        Start::Genesis => Engine::new(),
        Start::Snapshot(s) => {
            let state = snapshot::load(&s.path).map_err(|e| snapshot_failure(s, e))?;
            if state.input_seq != s.seq {
                return Err(fail_at(s.seq, 1)(Err(format!(
                    "{}: holds the state at seq {}, not {}",
                    s.path.display(),
                    state.input_seq,
                    s.seq
                ))));
            }
            Engine::from_state(state)
        }
    };
    engine.skip_inputs = logs.skips.to_vec();
    let compared_to = seg.to.min(logs.outputs.last_seq());
    let mut logged = logs.outputs.iter_from(seg.from);
    let mut buf = AlignedVec::new();
    // One batch reused for every comparison: no allocation per input once it has grown.
    let mut batch = OutputBatch {
        input: 0,
        records: Vec::new(),
    };
    let mut unreported = 0;
    for rec in logs.inputs.iter_from(seg.from) {
        let rec = rec.map_err(|e| fail_at(seg.from, 2)(Err(format!("input journal: {e}"))))?;
        if rec.seq > seg.to {
            break;
        }
        let input = persist::decode_input(rec.payload)
            .map_err(|e| fail_at(rec.seq, 2)(Err(format!("input journal seq {}: {e}", rec.seq))))?;
        let records = engine.apply_or_skip(&input, rec.seq);
        if rec.seq <= compared_to {
            let out = logged
                .next()
                .transpose()
                .map_err(|e| fail_at(rec.seq, 0)(Err(format!("output log: {e}"))))?
                .filter(|r| r.seq == rec.seq)
                .ok_or_else(|| {
                    fail_at(rec.seq, 0)(Err(format!(
                        "output log has no seq {} below its end",
                        rec.seq
                    )))
                })?;
            batch.input = rec.seq;
            batch.records.clear();
            batch.records.extend_from_slice(records);
            persist::encode_batch(&batch, &mut buf).map_err(|e| fail_at(rec.seq, 0)(Err(e)))?;
            if out.payload != &buf[..] {
                let d = divergence(rec.seq, out.payload, &batch, &input);
                return Err(fail_at(rec.seq, 0)(Ok(Outcome::Diverged(Box::new(d)))));
            }
        }
        unreported += 1;
        if unreported == PROGRESS_EVERY {
            let _ = done.send(unreported);
            unreported = 0;
        }
    }
    let _ = done.send(unreported);
    if engine.state.input_seq != seg.to {
        return Err(fail_at(engine.state.input_seq + 1, 2)(Err(format!(
            "input journal ends at seq {} inside a segment ending at {}",
            engine.state.input_seq, seg.to
        ))));
    }
    if let Some(s) = &seg.end_check {
        if let Some(detail) = check_snapshot(s, &engine) {
            return Err(snapshot_failure(s, detail));
        }
        checked += 1;
    }
    Ok(checked)
}

/// A snapshot that does not hold the replayed state, or that is gone: a live engine prunes its
/// oldest snapshots, and one pruned between listing and reading is no finding about the
/// history, only a reason to verify again (or a copy).
fn snapshot_failure(s: &snapshot::SnapshotFile, detail: String) -> Failure {
    let path = s.path.display().to_string();
    let found = if s.path.exists() {
        Ok(Outcome::SnapshotMismatch {
            seq: s.seq,
            path,
            detail,
        })
    } else {
        Err(format!(
            "{path}: removed while verifying (a live engine prunes its oldest snapshots); verify again, or verify a copy"
        ))
    };
    Failure {
        at: (s.seq, 1),
        found,
    }
}

/// None when the snapshot holds exactly the replayed state.
fn check_snapshot(s: &snapshot::SnapshotFile, engine: &Engine) -> Option<String> {
    match snapshot::load(&s.path) {
        Err(e) => Some(e),
        Ok(state) => {
            let (a, b) = (state_hash(&state), state_hash(&engine.state));
            (a != b).then(|| format!("snapshot state {} but replay gives {}", hex(&a), hex(&b)))
        }
    }
}

fn divergence(seq: u64, logged: &[u8], replayed: &OutputBatch, input: &Input) -> Divergence {
    let input = input_line(input);
    let Ok(logged) = decode_batch(logged) else {
        return Divergence {
            input_seq: seq,
            output_seq: replayed.records.first().map_or(0, |r| r.seq),
            logged: Some("<the logged batch does not decode>".into()),
            replayed: replayed.records.first().map(record_line),
            input,
        };
    };
    let n = logged.records.len().max(replayed.records.len());
    for i in 0..n {
        let (a, b) = (logged.records.get(i), replayed.records.get(i));
        if a != b {
            return Divergence {
                input_seq: seq,
                output_seq: a.or(b).map_or(0, |r| r.seq),
                logged: a.map(record_line),
                replayed: b.map(record_line),
                input,
            };
        }
    }
    Divergence {
        input_seq: seq,
        output_seq: 0,
        logged: Some(format!(
            "batch for input {} (same records, different bytes)",
            logged.input
        )),
        replayed: None,
        input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn snap(seq: u64) -> snapshot::SnapshotFile {
        snapshot::SnapshotFile {
            seq,
            path: PathBuf::from(format!("s{seq}")),
        }
    }

    /// (from, to, start snapshot, end snapshot) of each segment.
    fn shape(segments: &[Segment]) -> Vec<(u64, u64, Option<u64>, Option<u64>)> {
        segments
            .iter()
            .map(|s| {
                let start = match &s.start {
                    Start::Genesis => None,
                    Start::Snapshot(f) => Some(f.seq),
                };
                (s.from, s.to, start, s.end_check.as_ref().map(|e| e.seq))
            })
            .collect()
    }

    #[test]
    fn segments_cover_the_range_and_chain_through_every_snapshot() {
        // Out of order, one before the range, one past the journal's end, one at its end.
        let snaps = vec![snap(700), snap(50), snap(300), snap(2000), snap(1000)];
        let segments = plan(Start::Genesis, 100, 1000, snaps);
        assert_eq!(
            shape(&segments),
            vec![
                (100, 300, None, Some(300)),
                (301, 700, Some(300), Some(700)),
                (701, 1000, Some(700), Some(1000)),
            ]
        );
        let none = plan(Start::Genesis, 1, 10, vec![]);
        assert_eq!(shape(&none), vec![(1, 10, None, None)]);
    }

    #[test]
    fn a_pruned_snapshot_is_a_reason_to_retry_not_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let present = snapshot::SnapshotFile {
            seq: 5,
            path: dir.path().join("snapshot-5.snap"),
        };
        std::fs::write(&present.path, b"x").unwrap();
        let f = snapshot_failure(&present, "digest".into());
        assert!(matches!(
            f.found,
            Ok(Outcome::SnapshotMismatch { seq: 5, .. })
        ));
        let gone = snapshot::SnapshotFile {
            seq: 6,
            path: dir.path().join("snapshot-6.snap"),
        };
        let f = snapshot_failure(&gone, "no such file".into());
        let e = f.found.err().expect("an error, not a finding");
        assert!(e.contains("removed while verifying"), "{e}");
        assert_eq!(f.at, (6, 1));
    }
}
