//! `verify`: re-run the input journal through the same state machine and compare every output
//! batch with the output log, byte for byte; the log's hash chain was checked when it was
//! opened, so equal bytes mean equal hashes. Snapshots are checked against the replay too.

use margin_engine::codec::{input_line, record_line};
use margin_engine::persist::{self, decode_batch, hex, state_hash, OutputBatch};
use margin_engine::pipeline::datadir::DataDir;
use margin_engine::pipeline::{snapshot, MAX_RECORD_BYTES};
use margin_engine::Engine;
use margin_journal::Reader;
use rkyv::util::AlignedVec;
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
/// file, offset and seq where the journal code could tell.
pub fn verify(
    dir: &DataDir,
    from_snapshot: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Outcome, String> {
    let started = Instant::now();
    let inputs = Reader::open(&dir.input_dir(), "input", MAX_RECORD_BYTES)
        .map_err(|e| format!("input journal: {e}"))?;
    let outputs = Reader::open(&dir.output_dir(), "output", MAX_RECORD_BYTES)
        .map_err(|e| format!("output log: {e}"))?;
    // Unreadable bytes after the end of a log are an interrupted write (the engine cuts them
    // when it next opens the directory) or damage: either way not a verified directory.
    for (name, r) in [("input journal", &inputs), ("output log", &outputs)] {
        if r.summary().torn_bytes > 0 {
            let file = r
                .paths()
                .last()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(format!(
                "{name}: {} unreadable bytes after seq {} at the end of {file} (an interrupted write or damage)",
                r.summary().torn_bytes,
                r.last_seq()
            ));
        }
    }
    let mut engine = match from_snapshot {
        None => Engine::new(),
        Some(seq) => {
            let path = snapshot::snapshot_path(&dir.snapshots(), seq);
            Engine::from_state(snapshot::load(&path)?)
        }
    };
    let from = engine.state.input_seq + 1;
    if from < inputs.first_seq() {
        return Err(format!(
            "the input journal starts at seq {}; replay needs seq {from}",
            inputs.first_seq()
        ));
    }
    let mut snaps: Vec<snapshot::SnapshotFile> = snapshot::list(&dir.snapshots());
    snaps.retain(|s| s.seq >= from && s.seq <= inputs.last_seq());
    snaps.sort_by_key(|s| s.seq);
    let mut snaps = snaps.into_iter().peekable();
    let mut checked = 0;
    let mut buf = AlignedVec::new();
    let last = inputs.last_seq();
    let mut events = 0;
    for rec in inputs.iter_from(from) {
        let rec = rec.map_err(|e| format!("input journal: {e}"))?;
        let input = persist::decode_input(rec.payload)
            .map_err(|e| format!("input journal seq {}: {e}", rec.seq))?;
        let records = engine.apply(&input).to_vec();
        events += 1;
        if rec.seq.is_multiple_of(65_536) {
            progress(rec.seq, last);
        }
        if rec.seq <= outputs.last_seq() {
            let batch = OutputBatch {
                input: rec.seq,
                records,
            };
            persist::encode_batch(&batch, &mut buf)?;
            let logged = outputs
                .get(rec.seq)
                .map_err(|e| format!("output log: {e}"))?
                .ok_or_else(|| format!("output log has no seq {} below its end", rec.seq))?;
            if logged.payload != &buf[..] {
                return Ok(Outcome::Diverged(Box::new(divergence(
                    rec.seq,
                    logged.payload,
                    &batch,
                    &input,
                ))));
            }
        }
        while let Some(s) = snaps.next_if(|s| s.seq == rec.seq) {
            if let Some(detail) = check_snapshot(&s, &engine) {
                return Ok(Outcome::SnapshotMismatch {
                    seq: s.seq,
                    path: s.path.display().to_string(),
                    detail,
                });
            }
            checked += 1;
        }
    }
    Ok(Outcome::Verified(Verified {
        from_seq: from,
        events,
        output_head: hex(&outputs.summary().head),
        snapshots_checked: checked,
        pending_outputs: last.saturating_sub(outputs.last_seq()),
        elapsed: started.elapsed(),
    }))
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

fn divergence(
    seq: u64,
    logged: &[u8],
    replayed: &OutputBatch,
    input: &margin_engine::Input,
) -> Divergence {
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
