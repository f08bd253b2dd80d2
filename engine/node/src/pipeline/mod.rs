//! The LMAX-style pipeline: ingress -> journaler -> sequencer (business logic) -> publisher.
//!
//! - The **journaler** appends each event to the input journal (that assigns its input seq) and
//!   syncs per the durability policy; it publishes the durable seq.
//! - The **sequencer** owns the engine and applies events in seq order: no I/O, no allocation
//!   per event (batches are recycled through return channels).
//! - The **publisher** writes each input's records to the hash-chained output log, waits for
//!   the input to be durable when so configured, then hands them to the [`Sink`] (a file, TCP
//!   clients, the demo's counters).
//!
//! Stages hand over batches through bounded crossbeam channels, so a slow stage pushes back on
//! the ones before it instead of growing memory. Lines that are not events never reach the
//! journal; they travel through the stages unjournaled so that their answers keep their place
//! among the others.

pub mod datadir;
pub mod recovery;
pub mod snapshot;

use crossbeam_channel::{bounded, Receiver, Sender};
use datadir::{DataDir, DirLock};
use margin_engine::engine::{Engine, ScanMode};
use margin_engine::event::Input;
use margin_engine::persist::{self, OutputBatch};
use margin_engine::record::Record;
use margin_journal::{Durability, Writer};
use rkyv::util::AlignedVec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest journaled record (an input or one input's output batch; a backstop with ADL against
/// many counterparties makes large batches). A record larger than a segment gets its own.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// How the pipeline runs.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub data: std::path::PathBuf,
    pub durability: Durability,
    /// Hand outputs to the sink only once their input is durable (needs batch or every).
    pub release_after_durable: bool,
    /// Write a snapshot every this many inputs (0: only on request and at shutdown).
    pub snapshot_every: u64,
    /// Snapshots kept on disk (the newest); each is a starting point for recovery and for a
    /// parallel `margin-replay verify`.
    pub snapshots_kept: usize,
    pub segment_bytes: u64,
    pub prefault: bool,
    /// Items per batch between stages, and batches in flight per hop.
    pub batch_max: usize,
    pub queue_batches: usize,
    pub scan: ScanMode,
    /// Injected storage faults (simulation tests only).
    pub faults: StorageFaults,
    /// Journaled inputs the operator orders skipped (`--skip-input`): each must be journaled
    /// and have no output yet; they are added to the directory's `SKIPPED` list for good.
    pub skip_inputs: Vec<u64>,
    /// The live view's feed (`serve --http`): state clones and latency for the HTTP threads.
    pub view: Option<crate::live::ViewFeed>,
    /// Counters made by the caller (the live view reads them during recovery already).
    pub counters: Option<Arc<Counters>>,
    /// Replication (`serve --replicate`): every journaled input goes to this tap, and outputs
    /// wait for [`Counters::replicated_seq`] when `release_after_replicated` is set.
    pub replica: Option<ReplicaTap>,
    /// Output-log heads every `every` inputs, for a replica's divergence check.
    pub heads: Option<HeadTap>,
}

/// One batch of journaled inputs for replication: each input's seq and its journal payload (the
/// same bytes as the journal record).
pub type JournaledBatch = Vec<(u64, Vec<u8>)>;

/// Where the journaler hands journaled inputs for replication.
#[derive(Clone, Debug)]
pub struct ReplicaTap {
    pub inputs: Sender<JournaledBatch>,
    pub release_after_replicated: bool,
}

/// Where the publisher hands the output log's chain head after every `every`-th input.
#[derive(Clone, Debug)]
pub struct HeadTap {
    pub every: u64,
    pub heads: Sender<(u64, [u8; 32])>,
}

/// Fault plans for the two logs of a data directory; none in production.
#[derive(Clone, Debug, Default)]
pub struct StorageFaults {
    pub input: Option<Arc<margin_journal::FaultPlan>>,
    pub output: Option<Arc<margin_journal::FaultPlan>>,
}

impl PipelineConfig {
    pub fn new(data: impl Into<std::path::PathBuf>) -> PipelineConfig {
        PipelineConfig {
            data: data.into(),
            durability: Durability::None,
            release_after_durable: false,
            snapshot_every: 0,
            snapshots_kept: snapshot::SNAPSHOTS_KEPT,
            segment_bytes: 64 << 20,
            prefault: false,
            batch_max: 256,
            queue_batches: 64,
            scan: ScanMode::Indexed,
            faults: StorageFaults::default(),
            skip_inputs: Vec::new(),
            view: None,
            counters: None,
            replica: None,
            heads: None,
        }
    }
}

/// Who sent an item, so that its answer can be routed back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// Connection id (0 for a local feeder).
    pub client: u64,
    /// The client's own correlation id, if it sent one.
    pub id: Option<u64>,
}

/// One line from a feeder: an event, or why it is not one.
#[allow(clippy::large_enum_variant)] // events are the common case; boxing them would allocate
#[derive(Debug)]
pub enum ItemKind {
    Event(Input),
    Malformed {
        line: u64,
        detail: String,
    },
    /// An event the connection's role may not send (answered `unauthorized`, never journaled).
    Refused {
        detail: String,
    },
}

/// An item entering the pipeline.
#[derive(Debug)]
pub struct Item {
    pub kind: ItemKind,
    pub origin: Origin,
    /// Monotonic nanoseconds when the item was (or should have been) sent; for latency only.
    pub sent_ns: u64,
}

/// Receives what the pipeline releases, on the publisher thread, in input order.
pub trait Sink: Send {
    /// An input was journaled and applied: its records, and the same as the output log's
    /// encoded batch.
    fn applied(
        &mut self,
        seq: u64,
        origin: Origin,
        records: &[Record],
        encoded: &[u8],
        sent_ns: u64,
    );
    /// A line that never reached the journal.
    fn malformed(&mut self, origin: Origin, line: u64, detail: &str, sent_ns: u64);
    /// An event refused for the sender's role; never journaled.
    fn refused(&mut self, origin: Origin, detail: &str, sent_ns: u64) {
        self.malformed(origin, 0, detail, sent_ns);
    }
    /// The publisher finished a batch (a good moment to hand buffered answers on).
    fn batch_done(&mut self) {}
    /// The pipeline is stopping; flush what is buffered.
    fn finish(&mut self) {}
}

/// Monotonic nanoseconds since the first call in this process (for latency stamps).
pub fn now_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

enum ToJournal {
    Items(Vec<Item>),
    Snapshot,
    Shutdown,
}

struct Seqd {
    seq: u64,
    item: Item,
}

enum ToSequencer {
    Items(Vec<Seqd>),
    Snapshot,
    Shutdown,
}

/// An item that was never journaled, answered in its place among the others.
enum Unjournaled {
    Malformed { line: u64, detail: String },
    Refused { detail: String },
}

/// One applied item, pointing into its batch's record buffer.
struct Applied {
    seq: u64,
    /// The event's type name ("" for an item that is not an event).
    event_type: &'static str,
    origin: Origin,
    sent_ns: u64,
    records: (u32, u32),
    unjournaled: Option<Unjournaled>,
}

#[derive(Default)]
struct OutBatch {
    items: Vec<Applied>,
    records: Vec<Record>,
}

enum ToPublisher {
    Batch(OutBatch),
    Shutdown,
}

/// Live counters, readable from any thread.
#[derive(Debug, Default)]
pub struct Counters {
    pub journaled: AtomicU64,
    pub durable_seq: AtomicU64,
    pub applied: AtomicU64,
    pub published: AtomicU64,
    pub malformed: AtomicU64,
    pub snapshots: AtomicU64,
    /// The journaler stopped on an error: nothing more becomes durable.
    pub journal_failed: std::sync::atomic::AtomicBool,
    /// The input seq whose application panicked the sequencer (0: none). The sequencer stops
    /// there; ingress refuses new items at once; the process must exit and be restarted,
    /// possibly with `--skip-input SEQ`.
    pub sequencer_died_at: AtomicU64,
    /// The publisher stopped on an error (the output log failed): nothing more is released.
    pub publisher_failed: std::sync::atomic::AtomicBool,
    /// Highest input seq the replicated log acknowledged (replication only).
    pub replicated_seq: AtomicU64,
    /// Why replication stopped (fenced by another primary, lease lost): nothing more is
    /// released and ingress refuses new items.
    pub replica_failure: std::sync::Mutex<Option<String>>,
}

impl Counters {
    /// Why the pipeline cannot go on, if it cannot.
    pub fn failure(&self) -> Option<String> {
        let seq = self.sequencer_died_at.load(Ordering::Acquire);
        if seq > 0 {
            return Some(sequencer_death_message(seq));
        }
        if self.journal_failed.load(Ordering::Acquire) {
            return Some(
                "the input journal failed: nothing more is journaled and outputs after the durable seq are not released".into(),
            );
        }
        self.replica_failure()
    }

    /// Why replication stopped, if it did.
    pub fn replica_failure(&self) -> Option<String> {
        self.replica_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records why replication stopped (the first reason stays).
    pub fn fail_replica(&self, why: String) {
        let mut f = self
            .replica_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f.get_or_insert(why);
    }
}

/// What an operator reads when the business logic panicked on an input.
pub fn sequencer_death_message(seq: u64) -> String {
    format!(
        "the sequencer died applying input seq {seq}: ingress is stopped and no later input was applied. \
         The input stays journaled; inspect it (margin-replay export --data DIR --log input --from {seq} --to {seq}) \
         and restart with --skip-input {seq} to record it as skipped in the output log"
    )
}

/// What the pipeline returns when it stops.
pub struct Finished {
    pub engine: Engine,
    /// Seq of the last input journaled.
    pub last_seq: u64,
    /// Chain head of the output log.
    pub output_head: [u8; 32],
    pub report: recovery::RecoveryReport,
}

/// A running pipeline. Feed it with [`Pipeline::submit`], stop it with [`Pipeline::finish`].
pub struct Pipeline {
    to_journal: Sender<ToJournal>,
    pending: Vec<Item>,
    batch_max: usize,
    recycled_items: Receiver<Vec<Item>>,
    journaler: Option<JoinHandle<Result<Writer, String>>>,
    sequencer: Option<JoinHandle<Engine>>,
    publisher: Option<JoinHandle<Result<Writer, String>>>,
    pub counters: Arc<Counters>,
    report: recovery::RecoveryReport,
    durability: Durability,
    replicating: bool,
    _lock: DirLock,
}

impl Pipeline {
    /// Opens (recovering) the data directory and starts the stages.
    pub fn start(cfg: PipelineConfig, sink: Box<dyn Sink>) -> Result<Pipeline, String> {
        if cfg.release_after_durable && cfg.durability == Durability::None {
            return Err(
                "releasing outputs after durability needs --durability batch or every".into(),
            );
        }
        let dir = DataDir::new(&cfg.data);
        let lock = dir.lock()?;
        dir.check_format()?;
        let opened = recovery::open(&dir, &cfg)?;
        let counters = cfg.counters.clone().unwrap_or_default();
        counters
            .journaled
            .store(opened.input.last_seq(), Ordering::Relaxed);
        counters
            .durable_seq
            .store(opened.input.durable_seq(), Ordering::Relaxed);
        counters
            .applied
            .store(opened.engine.state.input_seq, Ordering::Relaxed);
        // Recovery wrote every missing output: what is in the output log was published.
        counters
            .published
            .store(opened.output.last_seq(), Ordering::Relaxed);
        let depth = cfg.queue_batches.max(2);
        let (to_journal, journal_rx) = bounded::<ToJournal>(depth);
        let (to_seq, seq_rx) = bounded::<ToSequencer>(depth);
        let (to_pub, pub_rx) = bounded::<ToPublisher>(depth);
        let (recycle_items_tx, recycle_items_rx) = bounded::<Vec<Item>>(depth * 2);
        let (recycle_seqd_tx, recycle_seqd_rx) = bounded::<Vec<Seqd>>(depth * 2);
        let (recycle_out_tx, recycle_out_rx) = bounded::<OutBatch>(depth * 2);
        let snapshots = dir.snapshots();
        let journaler = {
            let c = counters.clone();
            let input = opened.input;
            let tap = cfg.replica.as_ref().map(|r| r.inputs.clone());
            std::thread::Builder::new()
                .name("journaler".into())
                .spawn(move || {
                    journal_stage(
                        input,
                        journal_rx,
                        to_seq,
                        recycle_items_tx,
                        recycle_seqd_rx,
                        tap,
                        &c,
                    )
                })
                .map_err(|e| e.to_string())?
        };
        let live = cfg.view.as_ref().map(|v| v.live.clone());
        let view = cfg.view.clone();
        let sequencer = {
            let c = counters.clone();
            let engine = opened.engine;
            let every = (cfg.snapshot_every, cfg.snapshots_kept.max(1));
            std::thread::Builder::new()
                .name("sequencer".into())
                .spawn(move || {
                    sequencer_stage(
                        engine,
                        seq_rx,
                        to_pub,
                        recycle_seqd_tx,
                        recycle_out_rx,
                        every,
                        snapshots,
                        view,
                        &c,
                    )
                })
                .map_err(|e| e.to_string())?
        };
        let publisher = {
            let c = counters.clone();
            let output = opened.output;
            // With a durable policy an input's outputs wait for the input to be durable: then
            // the output log never runs ahead of what a machine crash keeps of the journal.
            let release = Release {
                after_durable: cfg.release_after_durable || cfg.durability != Durability::None,
                after_replicated: cfg
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.release_after_replicated),
                heads: cfg.heads.clone(),
            };
            std::thread::Builder::new()
                .name("publisher".into())
                .spawn(move || {
                    publish_stage(output, pub_rx, recycle_out_tx, sink, release, live, &c)
                })
                .map_err(|e| e.to_string())?
        };
        Ok(Pipeline {
            to_journal,
            pending: Vec::with_capacity(cfg.batch_max),
            batch_max: cfg.batch_max.max(1),
            recycled_items: recycle_items_rx,
            journaler: Some(journaler),
            sequencer: Some(sequencer),
            publisher: Some(publisher),
            counters,
            report: opened.report,
            durability: cfg.durability,
            replicating: cfg.replica.is_some(),
            _lock: lock,
        })
    }

    /// When the input journal is synced.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// True when every input is replicated before its outputs are released.
    pub fn replicating(&self) -> bool {
        self.replicating
    }

    /// What recovery did when the pipeline started.
    pub fn recovery(&self) -> &recovery::RecoveryReport {
        &self.report
    }

    /// Queues an item; it is sent with its batch (full, or on [`Pipeline::flush`]). Fails at
    /// once, taking nothing more, when a stage has died.
    pub fn submit(&mut self, item: Item) -> Result<(), String> {
        if let Some(why) = self.counters.failure() {
            return Err(why);
        }
        self.pending.push(item);
        if self.pending.len() >= self.batch_max {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the partial batch now (call when the feeder has nothing more for a while).
    pub fn flush(&mut self) -> Result<(), String> {
        if let Some(why) = self.counters.failure() {
            self.pending.clear();
            return Err(why);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let fresh = self
            .recycled_items
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.batch_max));
        let batch = std::mem::replace(&mut self.pending, fresh);
        self.to_journal
            .send(ToJournal::Items(batch))
            .map_err(|_| self.stopped())
    }

    /// Why a stage is gone: the recorded failure when there is one (the stage may have stopped
    /// between the check before a send and the send).
    fn stopped(&self) -> String {
        self.counters
            .failure()
            .unwrap_or_else(|| "the pipeline stopped (see its error)".to_string())
    }

    /// Asks for a snapshot after the inputs submitted so far.
    pub fn snapshot(&mut self) -> Result<(), String> {
        self.flush()?;
        self.to_journal
            .send(ToJournal::Snapshot)
            .map_err(|_| "the pipeline stopped".to_string())
    }

    /// Flushes, stops every stage in order and returns the final engine.
    pub fn finish(mut self) -> Result<Finished, String> {
        let sent = self.flush().and_then(|_| {
            self.to_journal
                .send(ToJournal::Shutdown)
                .map_err(|_| "the pipeline stopped".to_string())
        });
        // Every stage is joined before any error is returned: a stage left running would keep
        // its journal mapped and writing after the caller believes the pipeline stopped.
        let input = join(self.journaler.take(), "journaler");
        let engine = self
            .sequencer
            .take()
            .expect("started")
            .join()
            .map_err(|_| "sequencer panicked".to_string());
        let output = join(self.publisher.take(), "publisher");
        let died = self.counters.sequencer_died_at.load(Ordering::Acquire);
        if died > 0 {
            return Err(sequencer_death_message(died));
        }
        let input = input.map_err(|e| {
            format!(
                "the input journal failed ({e}): nothing more is journaled, and outputs are not released after input seq {} (the last durable one); free the disk or fix the error, then restart on the same directory",
                self.counters.durable_seq.load(Ordering::Acquire)
            )
        });
        let (input, engine, output) = (input?, engine?, output?);
        sent?;
        Ok(Finished {
            last_seq: input.last_seq(),
            output_head: output.head(),
            engine,
            report: std::mem::take(&mut self.report),
        })
    }
}

fn join(h: Option<JoinHandle<Result<Writer, String>>>, what: &str) -> Result<Writer, String> {
    h.expect("started")
        .join()
        .map_err(|_| format!("{what} panicked"))?
}

fn journal_stage(
    mut input: Writer,
    rx: Receiver<ToJournal>,
    to_seq: Sender<ToSequencer>,
    recycle_items: Sender<Vec<Item>>,
    recycled_seqd: Receiver<Vec<Seqd>>,
    tap: Option<Sender<JournaledBatch>>,
    c: &Counters,
) -> Result<Writer, String> {
    let mut buf = AlignedVec::new();
    let idle = match input.config().durability {
        Durability::Batch { max_delay, .. } => max_delay,
        _ => Duration::from_millis(50),
    };
    let result = (|| -> Result<(), String> {
        loop {
            let msg = match rx.recv_timeout(idle) {
                Ok(m) => m,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    input.tick().map_err(|e| e.to_string())?;
                    c.durable_seq.store(input.durable_seq(), Ordering::Release);
                    continue;
                }
                Err(_) => return Ok(()),
            };
            match msg {
                ToJournal::Items(mut items) => {
                    let mut out = recycled_seqd
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(items.len()));
                    let mut replicate = tap.as_ref().map(|_| Vec::with_capacity(items.len()));
                    for item in items.drain(..) {
                        let seq = match &item.kind {
                            ItemKind::Event(ev) => {
                                persist::encode_input(ev, &mut buf)?;
                                let seq = input
                                    .append(&buf)
                                    .map_err(|e| format!("input journal: {e}"))?;
                                if let Some(r) = replicate.as_mut() {
                                    r.push((seq, buf.to_vec()));
                                }
                                seq
                            }
                            ItemKind::Malformed { .. } | ItemKind::Refused { .. } => 0,
                        };
                        out.push(Seqd { seq, item });
                    }
                    if let (Some(tap), Some(batch)) = (&tap, replicate) {
                        if !batch.is_empty() && tap.send(batch).is_err() {
                            return Err("the replicator stopped".into());
                        }
                    }
                    let _ = recycle_items.try_send(items);
                    c.journaled.store(input.last_seq(), Ordering::Relaxed);
                    c.durable_seq.store(input.durable_seq(), Ordering::Release);
                    let msg = match to_seq.try_send(ToSequencer::Items(out)) {
                        Ok(()) => None,
                        Err(crossbeam_channel::TrySendError::Full(m)) => Some(m),
                        Err(_) => return Err("sequencer stopped".into()),
                    };
                    if let Some(msg) = msg {
                        // About to wait for the stages behind, which may be waiting for these
                        // inputs to be durable: make them durable first, or nobody moves.
                        input.sync().map_err(|e| format!("input journal: {e}"))?;
                        c.durable_seq.store(input.durable_seq(), Ordering::Release);
                        if to_seq.send(msg).is_err() {
                            return Err("sequencer stopped".into());
                        }
                    }
                }
                ToJournal::Snapshot => {
                    let _ = to_seq.send(ToSequencer::Snapshot);
                }
                ToJournal::Shutdown => return Ok(()),
            }
        }
    })();
    // Whatever happened, make what was journaled durable and tell the next stage to stop.
    let synced = input.sync().map_err(|e| e.to_string());
    c.durable_seq.store(input.durable_seq(), Ordering::Release);
    if result.is_err() || synced.is_err() {
        c.journal_failed.store(true, Ordering::Release);
    }
    let _ = to_seq.send(ToSequencer::Shutdown);
    result.and(synced).map(|_| input)
}

#[allow(clippy::too_many_arguments)]
fn sequencer_stage(
    mut engine: Engine,
    rx: Receiver<ToSequencer>,
    to_pub: Sender<ToPublisher>,
    recycle_seqd: Sender<Vec<Seqd>>,
    recycled_out: Receiver<OutBatch>,
    (snapshot_every, snapshots_kept): (u64, usize),
    snapshot_dir: std::path::PathBuf,
    view: Option<crate::live::ViewFeed>,
    c: &Counters,
) -> Engine {
    // The live view: a state clone now (recovery published everything) and every `every`.
    let mut last_view = Instant::now();
    let mut view_seq = engine.state.input_seq;
    let mut service = crate::live::new_histogram();
    if let Some(v) = &view {
        let _ = v.tx.try_send(Box::new(engine.state.clone()));
    }
    // Hands the view a clone when `every` has passed and the state moved (never waiting).
    let mut offer_view = |engine: &Engine, view: &Option<crate::live::ViewFeed>| {
        let Some(v) = view else { return };
        if last_view.elapsed() < v.every || engine.state.input_seq == view_seq {
            return;
        }
        // A full channel means the last clone was not taken yet: skip this one.
        if v.tx.is_empty() && v.tx.try_send(Box::new(engine.state.clone())).is_ok() {
            view_seq = engine.state.input_seq;
        }
        last_view = Instant::now();
    };
    let (snap_tx, snap_rx) = bounded::<margin_engine::state::State>(1);
    let snapshotter = std::thread::Builder::new()
        .name("snapshots".into())
        .spawn(move || {
            for state in snap_rx {
                match snapshot::write(&snapshot_dir, &state) {
                    Ok(_) => snapshot::prune(&snapshot_dir, snapshots_kept),
                    Err(e) => eprintln!("snapshot failed: {e}"),
                }
            }
        })
        .ok();
    let snapshot = |engine: &Engine| {
        // Cloning is the one allocation of the business-logic thread, once per snapshot.
        if snap_tx.try_send(engine.state.clone()).is_ok() {
            c.snapshots.fetch_add(1, Ordering::Relaxed);
        }
    };
    'run: loop {
        let msg = match &view {
            // With a live view, wake up when idle too, so the view catches up with the state.
            Some(v) => match rx.recv_timeout(v.every) {
                Ok(msg) => msg,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    offer_view(&engine, &view);
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => break,
            },
        };
        match msg {
            ToSequencer::Items(mut items) => {
                let mut out = recycled_out.try_recv().unwrap_or_default();
                for s in items.drain(..) {
                    let start = out.records.len() as u32;
                    let mut event_type = "";
                    let unjournaled = match s.item.kind {
                        ItemKind::Event(input) => {
                            event_type = input.event.type_name();
                            let t = view.as_ref().map(|_| Instant::now());
                            if !apply_guarded(&mut engine, &input, s.seq, &mut out.records, c) {
                                break 'run;
                            }
                            if let Some(t) = t {
                                let _ = service.record((t.elapsed().as_nanos() as u64).max(1));
                            }
                            debug_assert_eq!(
                                engine.state.input_seq, s.seq,
                                "journal and engine seqs agree"
                            );
                            if snapshot_every > 0 && s.seq.is_multiple_of(snapshot_every) {
                                snapshot(&engine);
                            }
                            None
                        }
                        ItemKind::Malformed { line, detail } => {
                            Some(Unjournaled::Malformed { line, detail })
                        }
                        ItemKind::Refused { detail } => Some(Unjournaled::Refused { detail }),
                    };
                    out.items.push(Applied {
                        seq: s.seq,
                        event_type,
                        origin: s.item.origin,
                        sent_ns: s.item.sent_ns,
                        records: (start, out.records.len() as u32),
                        unjournaled,
                    });
                }
                let _ = recycle_seqd.try_send(items);
                c.applied.store(engine.state.input_seq, Ordering::Relaxed);
                if let Some(v) = &view {
                    if v.live.add_service(&service) {
                        service.reset();
                    }
                }
                offer_view(&engine, &view);
                if to_pub.send(ToPublisher::Batch(out)).is_err() {
                    break;
                }
            }
            ToSequencer::Snapshot => snapshot(&engine),
            ToSequencer::Shutdown => break,
        }
    }
    let _ = to_pub.send(ToPublisher::Shutdown);
    // A clean stop leaves a snapshot, so the next start replays nothing (never after a death:
    // that state is not trusted).
    let died = c.sequencer_died_at.load(Ordering::Acquire) > 0;
    if snapshot_every > 0
        && !died
        && engine.state.input_seq > 0
        && snap_tx.send(engine.state.clone()).is_ok()
    {
        c.snapshots.fetch_add(1, Ordering::Relaxed);
    }
    drop(snap_tx);
    if let Some(h) = snapshotter {
        let _ = h.join();
    }
    engine
}

/// Applies (or skips, per the operator's list) the input journaled at `seq`, catching a panic of
/// the business logic: the one place where the pipeline and recovery apply journaled inputs.
/// After a panic the engine's state is not trusted; the error names the seq.
pub fn apply_journaled<'e>(
    engine: &'e mut Engine,
    input: &Input,
    seq: u64,
) -> Result<&'e [Record], String> {
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(feature = "planted-bugs")]
        if !engine.is_skipped(seq) {
            planted_poison(input);
        }
        engine.apply_or_skip(input, seq);
    }));
    match applied {
        Ok(()) => Ok(engine.records()),
        Err(_) => Err(sequencer_death_message(seq)),
    }
}

/// The planted bug: a deposit of exactly 666 panics, as the i128::MIN amount once did.
#[cfg(feature = "planted-bugs")]
fn planted_poison(input: &Input) {
    use margin_journal::faults::planted::{on, Bug};
    if let margin_engine::event::Event::Deposit { amount, .. } = &input.event {
        if on(Bug::PoisonPill) && *amount == margin_engine::num::Dec::from_int(666) {
            panic!("planted poison pill");
        }
    }
}

/// Applies one journaled input on the sequencer thread; `false` stops the stage after a panic
/// (recorded in the counters, which stop ingress, and printed for the operator).
fn apply_guarded(
    engine: &mut Engine,
    input: &Input,
    seq: u64,
    records: &mut Vec<Record>,
    c: &Counters,
) -> bool {
    match apply_journaled(engine, input, seq) {
        Ok(out) => {
            records.extend_from_slice(out);
            true
        }
        Err(why) => {
            c.sequencer_died_at.store(seq, Ordering::Release);
            eprintln!("margin-engine: {why}");
            false
        }
    }
}

/// Waits until input `seq` is durable; fails if the journaler stopped first (then the input
/// may never be, and its outputs must not be released).
fn wait_durable(c: &Counters, seq: u64) -> Result<(), String> {
    while c.durable_seq.load(Ordering::Acquire) < seq {
        if c.journal_failed.load(Ordering::Acquire) {
            return Err(format!(
                "the input journal failed before input seq {seq} was durable; its outputs are not released"
            ));
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// When the publisher may release an input's outputs, and where it reports heads.
struct Release {
    after_durable: bool,
    after_replicated: bool,
    heads: Option<HeadTap>,
}

fn wait_replicated(c: &Counters, seq: u64) -> Result<(), String> {
    let mut spins = 0u32;
    while c.replicated_seq.load(Ordering::Acquire) < seq {
        if let Some(why) = c.replica_failure() {
            return Err(format!(
                "replication stopped before input seq {seq} was acknowledged ({why}); its outputs are not released"
            ));
        }
        // Acknowledgements take a network round trip: sleep rather than spin.
        spins += 1;
        if spins < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    Ok(())
}

fn publish_stage(
    mut output: Writer,
    rx: Receiver<ToPublisher>,
    recycle_out: Sender<OutBatch>,
    mut sink: Box<dyn Sink>,
    release: Release,
    live: Option<Arc<crate::live::LiveCounters>>,
    c: &Counters,
) -> Result<Writer, String> {
    let mut buf = AlignedVec::new();
    let mut batch_records: Vec<Record> = Vec::with_capacity(64);
    let mut e2e = crate::live::new_histogram();
    let result = (|| -> Result<(), String> {
        while let Ok(msg) = rx.recv() {
            let ToPublisher::Batch(mut out) = msg else {
                break;
            };
            for a in out.items.drain(..) {
                match &a.unjournaled {
                    Some(Unjournaled::Malformed { line, detail }) => {
                        c.malformed.fetch_add(1, Ordering::Relaxed);
                        if let Some(l) = &live {
                            l.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                        sink.malformed(a.origin, *line, detail, a.sent_ns);
                        continue;
                    }
                    Some(Unjournaled::Refused { detail }) => {
                        if let Some(l) = &live {
                            l.refused.fetch_add(1, Ordering::Relaxed);
                        }
                        sink.refused(a.origin, detail, a.sent_ns);
                        continue;
                    }
                    None => {}
                }
                let records = &out.records[a.records.0 as usize..a.records.1 as usize];
                batch_records.clear();
                batch_records.extend_from_slice(records);
                let batch = OutputBatch {
                    input: a.seq,
                    records: std::mem::take(&mut batch_records),
                };
                persist::encode_batch(&batch, &mut buf)?;
                batch_records = batch.records;
                if release.after_durable {
                    wait_durable(c, a.seq)?;
                }
                if release.after_replicated {
                    wait_replicated(c, a.seq)?;
                }
                let seq = output
                    .append(&buf)
                    .map_err(|e| format!("output log: {e}"))?;
                if seq != a.seq {
                    return Err(format!("output log seq {seq} for input seq {}", a.seq));
                }
                if let Some(h) = &release.heads {
                    if seq % h.every.max(1) == 0 {
                        let _ = h.heads.try_send((seq, output.head()));
                    }
                }
                c.published.store(a.seq, Ordering::Relaxed);
                if let Some(l) = &live {
                    l.count_input(a.event_type, records);
                    let _ = e2e.record(now_ns().saturating_sub(a.sent_ns).max(1));
                }
                sink.applied(a.seq, a.origin, records, &buf, a.sent_ns);
            }
            out.records.clear();
            let _ = recycle_out.try_send(out);
            if let Some(l) = &live {
                if l.add_released(&e2e) {
                    e2e.reset();
                }
            }
            sink.batch_done();
        }
        Ok(())
    })();
    sink.finish();
    if result.is_err() {
        c.publisher_failed.store(true, Ordering::Release);
    }
    let synced = output.sync().map_err(|e| e.to_string());
    result.and(synced).map(|_| output)
}
