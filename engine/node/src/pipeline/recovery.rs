//! Opening a data directory: the journals are recovered (torn tails cut and reported), the
//! newest valid snapshot is loaded, and the input journal's tail is replayed through the same
//! state machine. Outputs already in the output log are checked byte for byte against the
//! replay; inputs whose outputs were lost in a crash get them written now. Nothing is journaled
//! twice and nothing already logged is rewritten.

use super::{datadir::DataDir, snapshot, PipelineConfig};
use margin_engine::engine::Engine;
use margin_engine::persist::{self, OutputBatch};
use margin_engine::state::State;
use margin_journal::{Reader, Writer};
use rkyv::util::AlignedVec;

/// What opening did.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Seq of the snapshot the state came from (None: genesis).
    pub snapshot_seq: Option<u64>,
    /// Inputs replayed after the snapshot.
    pub replayed: u64,
    /// Of those, inputs whose outputs were missing and were written.
    pub outputs_written: u64,
    /// Torn tails cut from the input journal and the output log, in bytes.
    pub input_torn_bytes: u64,
    pub output_torn_bytes: u64,
    /// Snapshots skipped and other things an operator should know.
    pub warnings: Vec<String>,
}

impl RecoveryReport {
    /// What an operator should read at start-up, one line each: where the state came from, what
    /// was replayed and rewritten, every warning, and the seq a feeder resumes after.
    pub fn lines(&self, data: &std::path::Path, last_journaled: u64) -> Vec<String> {
        let from = match self.snapshot_seq {
            Some(seq) => format!("the snapshot at input seq {seq}"),
            None => "genesis".to_string(),
        };
        let mut out = vec![format!(
            "opened {}: state from {from}, {} journaled inputs replayed, {} missing outputs written",
            data.display(),
            self.replayed,
            self.outputs_written
        )];
        out.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        out.push(format!(
            "last journaled input seq {last_journaled} (a feeder resumes after it)"
        ));
        out
    }
}

/// An opened, recovered data directory, ready to continue.
pub struct Opened {
    pub engine: Engine,
    pub input: Writer,
    pub output: Writer,
    pub report: RecoveryReport,
}

pub fn open(dir: &DataDir, cfg: &PipelineConfig) -> Result<Opened, String> {
    let (input, in_rec) =
        Writer::open(dir.input_config(cfg)).map_err(|e| format!("input journal: {e}"))?;
    let (mut output, out_rec) =
        Writer::open(dir.output_config(cfg)).map_err(|e| format!("output log: {e}"))?;
    let mut report = RecoveryReport {
        input_torn_bytes: in_rec.torn_bytes,
        output_torn_bytes: out_rec.torn_bytes,
        ..RecoveryReport::default()
    };
    if let Some((path, at)) = &in_rec.torn_at {
        report.warnings.push(format!(
            "cut {} torn bytes at {}:{at}",
            in_rec.torn_bytes,
            path.display()
        ));
    }
    if let Some((path, at)) = &out_rec.torn_at {
        report.warnings.push(format!(
            "cut {} torn bytes at {}:{at}",
            out_rec.torn_bytes,
            path.display()
        ));
    }
    let input_last = input.last_seq();
    let output_last = output.last_seq();
    if output_last > input_last {
        return Err(format!(
            "output log reaches seq {output_last} but the input journal only {input_last}: the directory is inconsistent"
        ));
    }
    // The replay must produce every output the log lacks, so it starts from a state at or
    // before the log's end.
    let (snap, warnings) = snapshot::load_newest(&dir.snapshots(), output_last);
    report.warnings.extend(warnings);
    report.snapshot_seq = snap.as_ref().map(|s| s.input_seq);
    dir.add_skips(&cfg.skip_inputs, input_last, output_last)?;
    let mut engine = Engine::with_scan(snap.unwrap_or_default(), cfg.scan);
    engine.skip_inputs = dir.skipped_inputs()?;
    for seq in &cfg.skip_inputs {
        report.warnings.push(format!(
            "input seq {seq} skipped by the operator (--skip-input)"
        ));
    }
    replay(dir, &mut engine, &mut output, output_last, &mut report)?;
    output.sync().map_err(|e| format!("output log: {e}"))?;
    Ok(Opened {
        engine,
        input,
        output,
        report,
    })
}

/// Replays the input journal after the engine's seq; checks or writes each output batch.
fn replay(
    dir: &DataDir,
    engine: &mut Engine,
    output: &mut Writer,
    output_last: u64,
    report: &mut RecoveryReport,
) -> Result<(), String> {
    let from = engine.state.input_seq + 1;
    // Both logs are read whole at every start, sealed segments included: every frame's CRC
    // (and the output log's hash chain) is checked, so damage anywhere is found now, before
    // the engine serves, not at the next audit.
    let inputs = Reader::open(&dir.input_dir(), "input", super::MAX_RECORD_BYTES)
        .map_err(|e| format!("input journal: {e}"))?;
    let outputs = Reader::open(&dir.output_dir(), "output", super::MAX_RECORD_BYTES)
        .map_err(|e| format!("output log: {e}"))?;
    if inputs.last_seq() < from {
        return Ok(());
    }
    if inputs.first_seq() > from {
        return Err(format!(
            "input journal starts at seq {} but the state needs seq {from}: journal segments were removed before a snapshot covered them",
            inputs.first_seq()
        ));
    }
    let mut buf = AlignedVec::new();
    for rec in inputs.iter_from(from) {
        let rec = rec.map_err(|e| format!("input journal: {e}"))?;
        let input = persist::decode_input(rec.payload)
            .map_err(|e| format!("input seq {}: {e}", rec.seq))?;
        let records = super::apply_journaled(engine, &input, rec.seq)
            .map_err(|e| format!("recovery: {e}"))?
            .to_vec();
        debug_assert_eq!(engine.state.input_seq, rec.seq);
        let batch = OutputBatch {
            input: rec.seq,
            records,
        };
        persist::encode_batch(&batch, &mut buf)?;
        if rec.seq <= output_last {
            let logged = outputs
                .get(rec.seq)
                .map_err(|e| format!("output log: {e}"))?
                .ok_or_else(|| format!("output log has no seq {} below its end", rec.seq))?;
            if logged.payload != &buf[..] {
                return Err(format!(
                    "output log diverges from the replay at input seq {}: refusing to continue (run margin-replay verify)",
                    rec.seq
                ));
            }
        } else {
            let seq = output
                .append(&buf)
                .map_err(|e| format!("output log: {e}"))?;
            debug_assert_eq!(seq, rec.seq);
            report.outputs_written += 1;
        }
        report.replayed += 1;
    }
    #[cfg(feature = "planted-bugs")]
    planted_double_apply(engine, &inputs)?;
    Ok(())
}

/// The planted bug: the last journaled input is applied a second time.
#[cfg(feature = "planted-bugs")]
fn planted_double_apply(engine: &mut Engine, inputs: &Reader) -> Result<(), String> {
    use margin_journal::faults::planted::{on, Bug};
    if !on(Bug::DoubleApply) {
        return Ok(());
    }
    if let Some(rec) = inputs
        .get(inputs.last_seq())
        .map_err(|e| format!("input journal: {e}"))?
    {
        let input = persist::decode_input(rec.payload)?;
        engine.apply(&input);
    }
    Ok(())
}

/// Replays a data directory's input journal from genesis (or a snapshot) up to `to_seq`,
/// read-only: what the replay tools use.
pub fn state_at(dir: &DataDir, to_seq: u64, use_snapshots: bool) -> Result<Engine, String> {
    let (snap, _) = if use_snapshots {
        snapshot::load_newest(&dir.snapshots(), to_seq)
    } else {
        (None, Vec::new())
    };
    let mut engine = Engine::from_state(snap.unwrap_or_else(State::default));
    engine.skip_inputs = dir.skipped_inputs()?;
    let inputs = Reader::open(&dir.input_dir(), "input", super::MAX_RECORD_BYTES)
        .map_err(|e| format!("input journal: {e}"))?;
    for rec in inputs.iter_from(engine.state.input_seq + 1) {
        let rec = rec.map_err(|e| format!("input journal: {e}"))?;
        if rec.seq > to_seq {
            break;
        }
        let input = persist::decode_input(rec.payload)
            .map_err(|e| format!("input seq {}: {e}", rec.seq))?;
        engine.apply_or_skip(&input, rec.seq);
    }
    Ok(engine)
}
