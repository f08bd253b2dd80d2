//! The primary's side: the replicator thread that appends every journaled input to the stream,
//! in order, fenced by the expected last sequence, and moves `replicated_seq` as the stream
//! acknowledges; it renews the lease and publishes the output heads.
//!
//! Publishes are pipelined (up to `window` in flight on one connection, acknowledged in
//! order). A publish that times out or meets a closed connection is sent again with the same
//! message id and the same expected sequence, so a retry never appends twice; a refusal for a
//! wrong last sequence is a fence unless the stream already holds exactly this input (an
//! acknowledgement lost on the way back).

use super::keeper::LeaseKeeper;
use super::{hex, renew_lease, take_lease, Lease, LeaseRefused, Nats, ReplicaConfig};
use crate::pipeline::{Counters, HeadTap, JournaledBatch, ReplicaTap, MAX_RECORD_BYTES};
use async_nats::jetstream::context::{Publish, PublishErrorKind};
use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, TryRecvError};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batches of journaled inputs waiting for the replicator, at most.
const TAP_BATCHES: usize = 64;

/// A primary connected and holding the lease, before its pipeline starts; the keeper renews
/// the lease until the replicator takes it over.
pub struct Prepared {
    keeper: LeaseKeeper,
    inputs: Receiver<JournaledBatch>,
    heads: Receiver<(u64, [u8; 32])>,
    tap: ReplicaTap,
    head_tap: HeadTap,
}

/// Connects and takes the lease (or goes on with `handover`, the kept lease of a follower
/// that took over).
pub fn prepare(
    cfg: &ReplicaConfig,
    handover: Option<LeaseKeeper>,
    release_after_replicated: bool,
) -> Result<Prepared, String> {
    let keeper = match handover {
        Some(k) => k,
        None => {
            let nats = Nats::connect(cfg)?;
            let lease = nats
                .rt
                .block_on(take_lease(&nats.kv, &super::owner_id()))
                .map_err(|e| match e {
                    LeaseRefused::HeldBy(o) => format!(
                        "not starting as primary of stream {}: the lease is held by {o} (another primary is alive, or took over; run `margin-engine follow` here instead)",
                        cfg.stream
                    ),
                    other => other.to_string(),
                })?;
            LeaseKeeper::start(nats, lease)?
        }
    };
    let (tx, inputs) = bounded(TAP_BATCHES);
    let (heads_tx, heads) = bounded(1024);
    Ok(Prepared {
        tap: ReplicaTap {
            inputs: tx,
            release_after_replicated,
        },
        head_tap: HeadTap {
            every: cfg.heads_every,
            heads: heads_tx,
        },
        keeper,
        inputs,
        heads,
    })
}

impl Prepared {
    /// The journaler's tap (for `PipelineConfig::replica`).
    pub fn tap(&self) -> ReplicaTap {
        self.tap.clone()
    }

    /// The publisher's head tap (for `PipelineConfig::heads`).
    pub fn head_tap(&self) -> HeadTap {
        self.head_tap.clone()
    }

    /// After recovery: checks that the stream is a prefix of the journal (else another primary
    /// wrote: refuse), appends what the stream lacks, and starts the replicator thread.
    pub fn start(
        self,
        data: &Path,
        journal_last: u64,
        counters: Arc<Counters>,
    ) -> Result<JoinHandle<()>, String> {
        let (mut nats, lease, renewed_at) = self.keeper.finish()?;
        let last = nats.last_seq()?;
        let stream = nats.cfg.stream.clone();
        if last > journal_last {
            return Err(format!(
                "stream {stream} holds inputs up to seq {last}, this journal only up to {journal_last}: another primary appended. Run `margin-engine follow` on this directory to catch up"
            ));
        }
        let journal = margin_journal::Reader::open(&data.join("input"), "input", MAX_RECORD_BYTES)
            .map_err(|e| format!("input journal: {e}"))?;
        if last > 0 {
            let ours = journal
                .get(last)
                .map_err(|e| format!("input journal: {e}"))?
                .map(|r| r.payload.to_vec());
            let theirs = nats
                .rt
                .block_on(nats.stream.get_raw_message(last))
                .map_err(|e| format!("stream {stream} seq {last}: {e}"))?
                .payload;
            if ours.as_deref() != Some(&theirs[..]) {
                return Err(format!(
                    "stream {stream} seq {last} is not this journal's input {last}: the histories diverged; this directory cannot be primary"
                ));
            }
        }
        let mut missing: VecDeque<(u64, Bytes)> = journal
            .iter_from(last + 1)
            .map(|r| r.map(|r| (r.seq, Bytes::copy_from_slice(r.payload))))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("input journal: {e}"))?;
        drop(journal);
        let backfill = missing.len();
        let (inputs, heads) = (self.inputs, self.heads);
        let mut r = Replicator {
            inputs,
            subject: nats.cfg.inputs_subject(),
            heads_subject: nats.cfg.heads_subject(),
            renew_every: nats.cfg.lease / 4,
            window: nats.cfg.window,
            nats,
            lease,
            counters,
            last_renew: renewed_at,
            stopping: false,
        };
        r.publish_all(&mut missing)?;
        r.counters
            .replicated_seq
            .store(journal_last.max(last), Ordering::Release);
        if backfill > 0 {
            eprintln!(
                "margin-engine: appended journaled inputs {}..={journal_last} the stream lacked",
                last + 1
            );
        }
        eprintln!(
            "margin-engine: primary of stream {stream} (lease {}), replicated up to seq {journal_last}",
            r.lease.owner
        );
        std::thread::Builder::new()
            .name("replicator".into())
            .spawn(move || {
                if let Err(why) = r.run(&heads) {
                    eprintln!("margin-engine: replication stopped: {why}");
                    r.counters.fail_replica(why);
                }
            })
            .map_err(|e| e.to_string())
    }
}

struct Replicator {
    nats: Nats,
    /// The journaler's tap (read here too while waiting out an outage, to notice a stop).
    inputs: Receiver<JournaledBatch>,
    lease: Lease,
    counters: Arc<Counters>,
    subject: String,
    heads_subject: String,
    renew_every: Duration,
    window: usize,
    last_renew: Instant,
    /// The pipeline is stopping (the tap closed): an outage is waited out only so long.
    stopping: bool,
}

/// How long a stopping primary waits for an unavailable NATS before it gives up on the inputs
/// not yet replicated (their outputs stay unreleased; they are in the local journal).
const STOPPING_WAIT: Duration = Duration::from_secs(10);

impl Replicator {
    fn run(&mut self, heads: &Receiver<(u64, [u8; 32])>) -> Result<(), String> {
        let inputs = self.inputs.clone();
        let mut pending: VecDeque<(u64, Bytes)> = VecDeque::new();
        let mut done = false;
        while !done || !pending.is_empty() {
            match inputs.recv_timeout(self.renew_every) {
                Ok(b) => extend(&mut pending, b),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    done = true;
                    self.stopping = true;
                }
            }
            while pending.len() < self.window {
                match inputs.try_recv() {
                    Ok(b) => extend(&mut pending, b),
                    Err(_) => break,
                }
            }
            self.publish_all(&mut pending)?;
            self.publish_heads(heads);
            self.renew_if_due()?;
        }
        self.publish_heads(heads);
        let client = self.nats.client.clone();
        let _ = self.nats.rt.block_on(client.flush());
        Ok(())
    }

    fn renew_if_due(&mut self) -> Result<(), String> {
        if self.last_renew.elapsed() < self.renew_every {
            return Ok(());
        }
        let kv = self.nats.kv.clone();
        if self.nats.rt.block_on(renew_lease(&kv, &mut self.lease))? {
            self.last_renew = Instant::now();
        }
        Ok(())
    }

    fn publish_heads(&mut self, heads: &Receiver<(u64, [u8; 32])>) {
        while let Ok((seq, head)) = heads.try_recv() {
            let msg = format!("{seq} {}", hex(&head));
            let client = self.nats.client.clone();
            let subject = self.heads_subject.clone();
            let _ = self
                .nats
                .rt
                .block_on(client.publish(subject, msg.into_bytes().into()));
        }
    }

    /// Appends every pending input, in order, until each is acknowledged; retries through
    /// NATS outages; an error only for a fence or a lost lease.
    fn publish_all(&mut self, pending: &mut VecDeque<(u64, Bytes)>) -> Result<(), String> {
        let mut backoff = Duration::from_millis(50);
        let mut since: Option<Instant> = None;
        while !pending.is_empty() {
            match self.publish_window(pending) {
                Ok(()) => {
                    backoff = Duration::from_millis(50);
                    since = None;
                }
                Err(Failure::Fenced(why)) => return Err(why),
                Err(Failure::Unavailable(why)) => {
                    // Take what the journaler handed on meanwhile, and notice a stop.
                    loop {
                        match self.inputs.try_recv() {
                            Ok(b) => extend(pending, b),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                self.stopping = true;
                                break;
                            }
                        }
                    }
                    let waited = since.get_or_insert_with(Instant::now).elapsed();
                    if self.stopping && waited >= STOPPING_WAIT {
                        return Err(format!(
                            "stopping while NATS is unavailable ({why}): inputs from seq {} on are journaled here but not replicated, and their outputs were not released",
                            pending.front().map_or(0, |p| p.0)
                        ));
                    }
                    eprintln!("margin-engine: replication waits for NATS ({why}); retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    self.renew_if_due()?;
                }
            }
        }
        Ok(())
    }

    /// Sends up to `window` pending inputs without waiting, then takes their acknowledgements
    /// in order, dropping each acknowledged one from `pending`.
    fn publish_window(&mut self, pending: &mut VecDeque<(u64, Bytes)>) -> Result<(), Failure> {
        let js = self.nats.js.clone();
        let stream = self.nats.stream.clone();
        let subject = self.subject.clone();
        let counters = self.counters.clone();
        let window: Vec<(u64, Bytes)> = pending.iter().take(self.window).cloned().collect();
        let kv = self.nats.kv.clone();
        let every = self.renew_every;
        let Replicator {
            nats,
            lease,
            last_renew,
            ..
        } = self;
        // The lease is renewed between publishes too: a window waiting for its acks under load
        // must not let it expire while this engine still appends.
        nats.rt.block_on(async {
            let mut acks = Vec::with_capacity(window.len());
            for (seq, payload) in &window {
                renew_due(&kv, lease, last_renew, every).await?;
                let publish = Publish::build()
                    .payload(payload.clone())
                    .message_id(seq.to_string())
                    .expected_last_sequence(seq - 1);
                match js.send_publish(subject.clone(), publish).await {
                    Ok(ack) => acks.push((*seq, payload, ack)),
                    Err(e) => {
                        if acks.is_empty() {
                            return Err(Failure::Unavailable(e.to_string()));
                        }
                        break;
                    }
                }
            }
            for (seq, payload, ack) in acks {
                renew_due(&kv, lease, last_renew, every).await?;
                match ack.await {
                    Ok(a) if a.sequence == seq => {}
                    Ok(a) => {
                        return Err(Failure::Fenced(format!(
                            "input seq {seq} landed at stream seq {}: the stream is not this venue's alone",
                            a.sequence
                        )))
                    }
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                        // Stored already (our earlier try, its acknowledgement lost)? Else
                        // another writer appended: fenced.
                        let stored = stream.get_raw_message(seq).await.ok();
                        if stored.as_ref().map(|m| &m.payload) != Some(payload) {
                            return Err(Failure::Fenced(format!(
                                "the stream refused input seq {seq} (another primary appended to it): this engine is fenced and stops"
                            )));
                        }
                    }
                    Err(e) => return Err(Failure::Unavailable(e.to_string())),
                }
                counters.replicated_seq.store(seq, Ordering::Release);
                pending.pop_front();
            }
            Ok(())
        })
    }
}

/// Renews the lease when a quarter of its time has passed since the last renewal; a lease taken
/// by another owner is a fence.
async fn renew_due(
    kv: &async_nats::jetstream::kv::Store,
    lease: &mut Lease,
    last_renew: &mut Instant,
    every: Duration,
) -> Result<(), Failure> {
    if last_renew.elapsed() < every {
        return Ok(());
    }
    if renew_lease(kv, lease).await.map_err(Failure::Fenced)? {
        *last_renew = Instant::now();
    }
    Ok(())
}

/// Queues a journaled batch behind the pending inputs.
fn extend(pending: &mut VecDeque<(u64, Bytes)>, batch: JournaledBatch) {
    pending.extend(batch.into_iter().map(|(seq, p)| (seq, Bytes::from(p))));
}

enum Failure {
    Fenced(String),
    Unavailable(String),
}
