//! The deterministic simulation: seeded venues run through the real pipeline on real files,
//! with storage faults injected (a process dying mid-append, torn and lost unsynced pages after
//! a machine crash, failed fsyncs, a full disk, bit flips in durable records and snapshots) and
//! a restart after each. After every restart it checks that nothing was lost or invented, that
//! the recovered state is exactly the uninterrupted run's over the same inputs, and at the end
//! that the output log holds the same bytes. A failure names the seed that reproduces it.
//!
//! The clock is read only for the time budget; everything else follows from the seed.

use crate::pipeline::{Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink, StorageFaults};
use margin_engine::engine::Engine;
use margin_engine::event::{Event, Input};
use margin_engine::num::Dec;
use margin_engine::persist::{self, state_hash, Hash32, OutputBatch};
use margin_engine::record::Record;
use margin_engine::rng::Rng;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_journal::format::{Header, HEADER_LEN};
use margin_journal::{Durability, FaultPlan, Reader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the whole simulation; each run draws its own seed from it.
    pub seed: u64,
    /// Stop starting new runs after this long.
    pub budget: Duration,
    /// Stop after this many runs.
    pub runs_max: u64,
    /// Where the runs' data directories go (each removed when its run passes).
    pub root: PathBuf,
}

/// What the simulation did.
#[derive(Clone, Debug, Default)]
pub struct SimStats {
    pub runs: u64,
    /// Inputs of the generated venues.
    pub inputs: u64,
    /// Inputs submitted to pipelines (resubmissions after a crash included).
    pub submitted: u64,
    /// Lines that were not events, submitted among them.
    pub malformed: u64,
    /// Pipelines opened on an existing directory.
    pub restarts: u64,
    /// Faults injected, by kind (those that fired).
    pub faults: BTreeMap<&'static str, u64>,
    /// Corruptions planted in durable data and reported at the next open.
    pub corruptions_detected: u64,
    /// Inputs the uninterrupted reference applied (the recovered runs matched every one).
    pub checked_states: u64,
}

impl SimStats {
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// A failed check, with what reproduces it.
#[derive(Clone, Debug)]
pub struct SimFailure {
    pub run_seed: u64,
    pub what: String,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "simulation failed with run seed {:#x}: {} (reproduce: margin-engine simulate --run-seed {:#x})",
            self.run_seed, self.what, self.run_seed
        )
    }
}

/// Runs seeded simulations until the budget or the run count is spent.
pub fn simulate(
    cfg: &SimConfig,
    mut progress: impl FnMut(&SimStats),
) -> Result<SimStats, SimFailure> {
    let mut rng = Rng::new(cfg.seed);
    let mut stats = SimStats::default();
    let start = Instant::now();
    while stats.runs < cfg.runs_max && start.elapsed() < cfg.budget {
        let run_seed = rng.next_u64();
        run_one(run_seed, &cfg.root, &mut stats)?;
        progress(&stats);
    }
    Ok(stats)
}

/// One run: a venue from `run_seed`, driven through crashes and faults to its end.
pub fn run_one(run_seed: u64, root: &Path, stats: &mut SimStats) -> Result<(), SimFailure> {
    let fail = |what: String| SimFailure { run_seed, what };
    let dir = root.join(format!("sim-{run_seed:016x}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    }
    let mut run = Run::new(run_seed, dir.clone());
    stats.runs += 1;
    stats.inputs += run.inputs.len() as u64;
    run.drive(stats).map_err(fail)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The uninterrupted run: state hash after each input, and each input's output-log bytes.
struct Reference {
    hashes: Vec<Hash32>,
    outputs: Vec<Vec<u8>>,
}

impl Reference {
    fn build(inputs: &[Input]) -> Reference {
        let mut engine = Engine::new();
        let mut hashes = vec![state_hash(&engine.state)];
        let mut outputs = Vec::with_capacity(inputs.len());
        let mut buf = rkyv::util::AlignedVec::new();
        for (i, input) in inputs.iter().enumerate() {
            let records = engine.apply(input).to_vec();
            let batch = OutputBatch {
                input: i as u64 + 1,
                records,
            };
            persist::encode_batch(&batch, &mut buf).expect("a batch encodes");
            outputs.push(buf.to_vec());
            hashes.push(state_hash(&engine.state));
        }
        Reference { hashes, outputs }
    }
}

/// The faults a stretch of a run can end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// A clean stop.
    None,
    /// The process dies during an append to the input journal or the output log.
    ProcessCrash { output: bool },
    /// The machine dies: a process crash, and the unsynced pages of the newest segments are
    /// lost, torn or scrambled.
    MachineCrash,
    /// An fsync of the input journal fails.
    SyncFails,
    /// A new segment of the input journal or the output log cannot be created.
    DiskFull { output: bool },
    /// A bit flips in a durable input record (found at the next open).
    FlipJournal,
    /// A bit flips in the newest snapshot (skipped at the next open).
    FlipSnapshot,
    /// The newest input segment is deleted (found at the next open: its predecessor's seal
    /// names a successor that is gone).
    RemoveSegment,
    /// The newest input segment is cut at a frame boundary below its durable mark (found at
    /// the next open).
    TruncateSegment,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "clean stop",
            Fault::ProcessCrash { output: false } => "process crash in input append",
            Fault::ProcessCrash { output: true } => "process crash in output append",
            Fault::MachineCrash => "machine crash (unsynced pages torn)",
            Fault::SyncFails => "fsync failure",
            Fault::DiskFull { output: false } => "disk full (input journal)",
            Fault::DiskFull { output: true } => "disk full (output log)",
            Fault::FlipJournal => "bit flip in a durable input record",
            Fault::FlipSnapshot => "bit flip in a snapshot",
            Fault::RemoveSegment => "newest input segment deleted",
            Fault::TruncateSegment => "input segment truncated below its durable mark",
        }
    }
}

/// Counts the highest input seq whose outputs were released.
struct Released(Arc<AtomicU64>);

impl Sink for Released {
    fn applied(&mut self, seq: u64, _o: Origin, _r: &[Record], _e: &[u8], _sent_ns: u64) {
        self.0.fetch_max(seq, Ordering::AcqRel);
    }
    fn malformed(&mut self, _o: Origin, _line: u64, _detail: &str, _sent_ns: u64) {}
}

struct Run {
    rng: Rng,
    dir: PathBuf,
    inputs: Vec<Input>,
    reference: Reference,
    /// Inputs whose outputs were released: recovery must keep at least these.
    floor: u64,
    /// Inputs handed to a pipeline so far (the most any recovery may find).
    ceiling: u64,
    durability: Durability,
}

impl Run {
    fn new(seed: u64, dir: PathBuf) -> Run {
        let mut rng = Rng::new(seed);
        let cfg = ScenarioConfig {
            seed,
            accounts: 10 + rng.below(120) as u32,
            events: 300 + rng.below(1_500),
            markets: 3 + rng.below(4) as u8,
            crash_at_permille: 200 + rng.below(700) as u32,
            crash_depth_bps: 1_000 + rng.below(4_000) as u32,
            hours: 1 + rng.below(6) as u32,
            ..ScenarioConfig::default()
        };
        let mut inputs: Vec<Input> = Scenario::new(cfg).collect();
        operator_actions(&mut rng, &mut inputs);
        let reference = Reference::build(&inputs);
        Run {
            rng,
            dir,
            inputs,
            reference,
            floor: 0,
            ceiling: 0,
            durability: Durability::None,
        }
    }

    fn n(&self) -> u64 {
        self.inputs.len() as u64
    }

    fn config(&mut self, faults: StorageFaults) -> PipelineConfig {
        PipelineConfig {
            durability: self.durability,
            // Small segments and snapshots now and then, so that rollover, snapshot loading
            // and replay from a snapshot are all on the path.
            segment_bytes: 16 << 10 << self.rng.below(3),
            snapshot_every: [0, 0, 37, 150][self.rng.below(4) as usize],
            batch_max: 1 + self.rng.below(64) as usize,
            queue_batches: 2 + self.rng.below(8) as usize,
            faults,
            ..PipelineConfig::new(&self.dir)
        }
    }

    fn pick_durability(&mut self) {
        self.durability = match self.rng.below(10) {
            0..=2 => Durability::None,
            3..=7 => Durability::Batch {
                max_records: 1 + self.rng.below(32) as u32,
                max_delay: Duration::from_micros(200),
            },
            _ => Durability::Every,
        };
    }

    fn pick_fault(&mut self) -> Fault {
        let durable = self.durability != Durability::None;
        let output = self.rng.chance(400);
        loop {
            let f = match self.rng.below(11) {
                0 => Fault::None,
                1 | 2 => Fault::ProcessCrash { output },
                3 | 4 => Fault::MachineCrash,
                5 => Fault::SyncFails,
                6 => Fault::DiskFull { output },
                7 => Fault::FlipJournal,
                8 => Fault::RemoveSegment,
                9 => Fault::TruncateSegment,
                _ => Fault::FlipSnapshot,
            };
            // Only a durable policy promises anything to a machine crash or a failed fsync.
            let needs_durable = matches!(
                f,
                Fault::MachineCrash
                    | Fault::SyncFails
                    | Fault::FlipJournal
                    | Fault::TruncateSegment
            );
            if durable || !needs_durable {
                return f;
            }
        }
    }

    fn drive(&mut self, stats: &mut SimStats) -> Result<(), String> {
        let mut stretches = 0u32;
        loop {
            self.pick_durability();
            let last = self.open_and_check(stats)?;
            if last == self.n() {
                break;
            }
            stretches += 1;
            if stretches > 400 {
                return Err("no progress after 400 stretches".into());
            }
            let fault = self.pick_fault();
            self.stretch(last, fault, stats)?;
        }
        self.final_check()
    }

    /// Opens the directory with no fault, checks what recovery found, stops cleanly.
    fn open_and_check(&mut self, stats: &mut SimStats) -> Result<u64, String> {
        let cfg = self.config(StorageFaults::default());
        let existed = self.dir.join("input").exists();
        let p = Pipeline::start(cfg, Box::new(Released(Arc::default())))
            .map_err(|e| format!("recovery failed: {e}"))?;
        let finished = p.finish().map_err(|e| format!("clean stop failed: {e}"))?;
        if existed {
            stats.restarts += 1;
        }
        let last = finished.last_seq;
        if last < self.floor {
            return Err(format!(
                "lost released inputs: recovery found {last}, outputs up to {} were released",
                self.floor
            ));
        }
        if last > self.ceiling {
            return Err(format!(
                "invented inputs: recovery found {last}, only {} were submitted",
                self.ceiling
            ));
        }
        self.ceiling = last;
        let state = &finished.engine.state;
        if state.input_seq != last {
            return Err(format!(
                "state is at input {} but the journal ends at {last}",
                state.input_seq
            ));
        }
        if state_hash(state) != self.reference.hashes[last as usize] {
            return Err(format!(
                "recovered state after {last} inputs differs from the uninterrupted run's"
            ));
        }
        let broken = margin_engine::invariants::check(state);
        if !broken.is_empty() {
            return Err(format!("invariants broken after recovery: {broken:?}"));
        }
        state
            .check_ledger()
            .map_err(|e| format!("conservation broken after recovery: {e}"))?;
        stats.checked_states += 1;
        Ok(last)
    }

    /// Runs inputs from `last` on with `fault` planned, then applies the fault's damage.
    fn stretch(&mut self, last: u64, fault: Fault, stats: &mut SimStats) -> Result<(), String> {
        let k = (1 + self.rng.below(400)).min(self.n() - last);
        let faults = self.plan(fault, k);
        let cfg = self.config(faults.clone());
        let released = Arc::new(AtomicU64::new(0));
        let fired = |f: &StorageFaults| {
            f.input.as_ref().is_some_and(|p| p.fired())
                || f.output.as_ref().is_some_and(|p| p.fired())
        };
        let started = Pipeline::start(cfg, Box::new(Released(released.clone())));
        let mut pipeline = match started {
            Ok(p) => p,
            Err(e) if fired(&faults) => {
                *stats.faults.entry(fault.name()).or_default() += 1;
                self.after_crash(fault, e);
                return Ok(());
            }
            Err(e) => return Err(format!("open failed without a fault: {e}")),
        };
        let mut result = Ok(());
        for i in last..last + k {
            if self.rng.chance(10) {
                stats.malformed += 1;
                let item = Item {
                    kind: ItemKind::Malformed {
                        line: i,
                        detail: "not json".into(),
                    },
                    origin: Origin::default(),
                    sent_ns: 0,
                };
                if let Err(e) = pipeline.submit(item) {
                    result = Err(e);
                    break;
                }
            }
            let item = Item {
                kind: ItemKind::Event(self.inputs[i as usize].clone()),
                origin: Origin::default(),
                sent_ns: 0,
            };
            if let Err(e) = pipeline.submit(item) {
                result = Err(e);
                break;
            }
            self.ceiling = self.ceiling.max(i + 1);
            stats.submitted += 1;
            if self.rng.chance(50) {
                if let Err(e) = pipeline.flush() {
                    result = Err(e);
                    break;
                }
            }
        }
        let finished = pipeline.finish().map(|_| ());
        let result = result.and(finished);
        self.floor = self.floor.max(released.load(Ordering::Acquire));
        let outcome = match result {
            Ok(()) => {
                if fired(&faults) {
                    return Err(format!(
                        "{} fired but the pipeline stopped cleanly",
                        fault.name()
                    ));
                }
                self.after_clean_stop(fault, stats)?
            }
            Err(e) if fired(&faults) => self.after_crash(fault, e),
            Err(e) => return Err(format!("pipeline failed without a fault: {e}")),
        };
        if outcome {
            *stats.faults.entry(fault.name()).or_default() += 1;
        }
        Ok(())
    }

    /// The fault plans for a stretch of `k` inputs.
    fn plan(&mut self, fault: Fault, k: u64) -> StorageFaults {
        let at = 1 + self.rng.below(k.max(1));
        let torn = self.rng.below(200);
        let plan = |p: FaultPlan| Some(Arc::new(p));
        match fault {
            Fault::ProcessCrash { output: false } | Fault::MachineCrash => StorageFaults {
                input: plan(FaultPlan::new().crash_at_append(at, torn)),
                output: None,
            },
            Fault::ProcessCrash { output: true } => StorageFaults {
                input: None,
                output: plan(FaultPlan::new().crash_at_append(at, torn)),
            },
            Fault::SyncFails => StorageFaults {
                input: plan(FaultPlan::new().fail_sync_at(1 + self.rng.below(8))),
                output: None,
            },
            Fault::DiskFull { output } => {
                let p = plan(FaultPlan::new().full_at_segment(1));
                if output {
                    StorageFaults {
                        input: None,
                        output: p,
                    }
                } else {
                    StorageFaults {
                        input: p,
                        output: None,
                    }
                }
            }
            Fault::None
            | Fault::FlipJournal
            | Fault::FlipSnapshot
            | Fault::RemoveSegment
            | Fault::TruncateSegment => StorageFaults::default(),
        }
    }

    /// After a crash: a machine crash also damages what was not synced. True: the fault
    /// counts as injected.
    fn after_crash(&mut self, fault: Fault, _error: String) -> bool {
        if fault == Fault::MachineCrash {
            for log in ["input", "output"] {
                tear_unsynced(&mut self.rng, &self.dir.join(log), log);
            }
        }
        true
    }

    /// After a clean stop: plant the bit flips, and check the next open reports them. True:
    /// the fault counts as injected.
    fn after_clean_stop(&mut self, fault: Fault, stats: &mut SimStats) -> Result<bool, String> {
        match fault {
            Fault::FlipJournal => {
                let Some((path, at, bit)) =
                    pick_durable_bit(&mut self.rng, &self.dir.join("input"))
                else {
                    return Ok(false);
                };
                flip(&path, at, bit)?;
                let cfg = self.config(StorageFaults::default());
                match Pipeline::start(cfg, Box::new(Released(Arc::default()))) {
                    Ok(p) => {
                        let _ = p.finish();
                        return Err(format!(
                            "a flipped bit at {}:{at} in a durable input record was not reported",
                            path.display()
                        ));
                    }
                    Err(e)
                        if e.contains("input journal") && e.contains("corrupt at byte offset") =>
                    {
                        stats.corruptions_detected += 1;
                    }
                    Err(e) => {
                        return Err(format!(
                            "a flipped bit at {}:{at} was reported as something else: {e}",
                            path.display()
                        ))
                    }
                }
                // The operator restores the segment from a replica.
                flip(&path, at, bit)?;
                Ok(true)
            }
            Fault::FlipSnapshot => {
                let Some(path) = newest_snapshot(&self.dir.join("snapshots")) else {
                    return Ok(false);
                };
                let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
                let at = self.rng.below(len.max(1));
                flip(&path, at, self.rng.below(8) as u8)?;
                // The next open must skip it and still reach the right state (checked there).
                Ok(true)
            }
            Fault::RemoveSegment | Fault::TruncateSegment => self.lose_segment(fault, stats),
            _ => Ok(false),
        }
    }

    /// Deletes the newest input segment, or cuts it below its durable mark; the next open must
    /// refuse naming the loss. Then the operator puts the file back (from a replica).
    fn lose_segment(&mut self, fault: Fault, stats: &mut SimStats) -> Result<bool, String> {
        let segs = segments(&self.dir.join("input"), "input");
        let Some(newest) = segs.last().cloned() else {
            return Ok(false);
        };
        let original = std::fs::read(&newest).map_err(|e| format!("{}: {e}", newest.display()))?;
        if fault == Fault::RemoveSegment {
            if segs.len() < 2 {
                return Ok(false);
            }
            std::fs::remove_file(&newest).map_err(|e| e.to_string())?;
        } else {
            let Some(cut) = frame_boundary_below_durable(&mut self.rng, &original) else {
                return Ok(false);
            };
            std::fs::write(&newest, &original[..cut]).map_err(|e| e.to_string())?;
        }
        let cfg = self.config(StorageFaults::default());
        match Pipeline::start(cfg, Box::new(Released(Arc::default()))) {
            Ok(p) => {
                let _ = p.finish();
                return Err(format!(
                    "{} ({}) was not reported",
                    fault.name(),
                    newest.display()
                ));
            }
            Err(e) if e.contains("input journal") && e.contains("missing") => {
                stats.corruptions_detected += 1;
            }
            Err(e) => {
                return Err(format!(
                    "{} was reported as something else: {e}",
                    fault.name()
                ))
            }
        }
        std::fs::write(&newest, &original).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// At the end: the output log holds exactly the uninterrupted run's bytes.
    fn final_check(&self) -> Result<(), String> {
        let log = Reader::open(
            &self.dir.join("output"),
            "output",
            crate::pipeline::MAX_RECORD_BYTES,
        )
        .map_err(|e| format!("output log: {e}"))?;
        if log.last_seq() != self.n() {
            return Err(format!(
                "output log ends at {} of {} inputs",
                log.last_seq(),
                self.n()
            ));
        }
        for (i, expected) in self.reference.outputs.iter().enumerate() {
            let seq = i as u64 + 1;
            let rec = log
                .get(seq)
                .map_err(|e| format!("output log: {e}"))?
                .ok_or_else(|| format!("output log has no seq {seq}"))?;
            if rec.payload != &expected[..] {
                return Err(format!(
                    "output log bytes of input {seq} differ from the uninterrupted run's"
                ));
            }
        }
        Ok(())
    }
}

/// Operator actions among the traders' events: insurance top-ups at random points.
fn operator_actions(rng: &mut Rng, inputs: &mut Vec<Input>) {
    let count = rng.below(4);
    for _ in 0..count {
        // After the venue set-up (the first dozen inputs list assets and markets).
        let at = 12 + rng.below((inputs.len() as u64).saturating_sub(12).max(1)) as usize;
        let at = at.min(inputs.len());
        let ts = inputs.get(at.saturating_sub(1)).map_or(0, |i| i.ts);
        let amount = Dec::new(i128::from(1_000 + rng.below(100_000)), 0).expect("in range");
        inputs.insert(
            at,
            Input {
                ts,
                event: Event::Insurance {
                    amount,
                    market: None,
                },
            },
        );
    }
}

/// Segment files of a log, oldest first.
fn segments(dir: &Path, name: &str) -> Vec<PathBuf> {
    margin_journal::segment::list_segments(dir, name)
        .map(|v| v.into_iter().map(|s| s.1).collect())
        .unwrap_or_default()
}

fn header_of(bytes: &[u8]) -> Option<Header> {
    Header::decode(bytes.get(..HEADER_LEN)?).ok()
}

/// What a machine crash does to the newest segment of a log: past its durable mark, each 4 KiB
/// page is kept, lost (zeroed), partly scrambled, or torn at a random byte.
fn tear_unsynced(rng: &mut Rng, dir: &Path, name: &str) {
    let Some(path) = segments(dir, name).pop() else {
        return;
    };
    let Ok(mut bytes) = std::fs::read(&path) else {
        return;
    };
    let Some(header) = header_of(&bytes) else {
        return;
    };
    let from = (header.durable_end as usize).max(HEADER_LEN);
    let Some(last) = bytes.iter().rposition(|&b| b != 0) else {
        return;
    };
    let mut page = from;
    while page <= last {
        let end = (page - page % 4096 + 4096).min(bytes.len());
        match rng.below(4) {
            0 => {}
            1 => bytes[page..end].fill(0),
            2 => {
                for _ in 0..1 + rng.below(4) {
                    let at = page + rng.below((end - page) as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            _ => {
                let cut = page + rng.below((end - page) as u64) as usize;
                bytes[cut..end].fill(0);
            }
        }
        page = end;
    }
    let _ = std::fs::write(&path, &bytes);
}

/// A random bit inside a frame below a segment's durable mark, if any segment has one.
fn pick_durable_bit(rng: &mut Rng, dir: &Path) -> Option<(PathBuf, u64, u8)> {
    let candidates: Vec<(PathBuf, u64)> = segments(dir, "input")
        .into_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            let h = header_of(&bytes)?;
            (h.durable_end > HEADER_LEN as u64).then_some((p, h.durable_end))
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let (path, durable_end) = candidates[rng.below(candidates.len() as u64) as usize].clone();
    let at = HEADER_LEN as u64 + rng.below(durable_end - HEADER_LEN as u64);
    Some((path, at, rng.below(8) as u8))
}

/// A frame boundary strictly inside a segment's durable range (after its first frame), if the
/// segment has one.
fn frame_boundary_below_durable(rng: &mut Rng, bytes: &[u8]) -> Option<usize> {
    use margin_journal::format::{frame_at, FrameAt};
    let h = header_of(bytes)?;
    let mut ends = Vec::new();
    let mut pos = HEADER_LEN;
    while let FrameAt::Frame(f) =
        frame_at(bytes, pos, h.chained(), crate::pipeline::MAX_RECORD_BYTES)
    {
        pos += f.extent;
        if (pos as u64) < h.durable_end {
            ends.push(pos);
        }
    }
    // Cutting at the header keeps no frame; cut after one at least, or at the header.
    let choices: Vec<usize> = std::iter::once(HEADER_LEN).chain(ends).collect();
    let cut = choices[rng.below(choices.len() as u64) as usize];
    ((cut as u64) < h.durable_end).then_some(cut)
}

fn flip(path: &Path, at: u64, bit: u8) -> Result<(), String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let b = bytes
        .get_mut(at as usize)
        .ok_or_else(|| format!("{}: no byte {at}", path.display()))?;
    *b ^= 1 << bit;
    std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn newest_snapshot(dir: &Path) -> Option<PathBuf> {
    crate::pipeline::snapshot::list(dir)
        .into_iter()
        .max_by_key(|s| s.seq)
        .map(|s| s.path)
}
