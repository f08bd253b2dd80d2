//! A follower: consumes the venue's stream from its own journal's next seq, journals and
//! applies each input through the same pipeline as the primary (so its output log is the
//! primary's, byte for byte), checks the primary's published output heads against its own, and
//! with `--takeover` becomes the primary when the lease expires.

use super::keeper::{Handover, LeaseKeeper};
use super::{hex, parse_head, take_lease, Lease, Nats, ReplicaConfig, LEASE_KEY};
use crate::pipeline::{
    now_ns, HeadTap, Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink, MAX_RECORD_BYTES,
};
use crate::server::{ServeConfig, ServeSummary};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use crossbeam_channel::{bounded, Receiver};
use futures::StreamExt;
use margin_engine::record::Record;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a follower runs.
pub struct FollowConfig {
    pub replica: ReplicaConfig,
    pub pipeline: PipelineConfig,
    /// With `--takeover`: how to serve once this follower holds the lease.
    pub takeover: Option<ServeConfig>,
    /// The live view while following (a read replica's /metrics, /api/*, dashboard).
    pub http: Option<std::net::SocketAddr>,
}

/// How following ended.
pub enum FollowEnd {
    /// Stopped by the operator (or the stop flag).
    Stopped {
        last_seq: u64,
        output_head: [u8; 32],
    },
    /// Took the lease, drained the stream and served as the primary until stopped.
    Served(ServeSummary),
}

/// A follower's pipeline answers nobody: its records go to its own output log only.
struct Quiet;

impl Sink for Quiet {
    fn applied(&mut self, _: u64, _: Origin, _: &[Record], _: &[u8], _: u64) {}
    fn malformed(&mut self, _: Origin, _: u64, _: &str, _: u64) {}
}

/// The heads seen on both sides, compared as soon as both have one for a seq.
#[derive(Default)]
struct Heads {
    primary: BTreeMap<u64, [u8; 32]>,
    ours: BTreeMap<u64, [u8; 32]>,
    compared: u64,
}

impl Heads {
    /// Records a head the primary published; two different heads for one seq are a
    /// divergence too (two writers, or a forged head).
    fn primary_says(&mut self, seq: u64, head: [u8; 32]) -> Result<(), String> {
        match self.primary.insert(seq, head) {
            Some(before) if before != head => Err(format!(
                "DIVERGENCE at input seq {seq}: two different output heads were published for it ({} and {}). Stopped",
                hex(&before),
                hex(&head)
            )),
            _ => Ok(()),
        }
    }

    /// Compares what both sides have; a divergence report on the first mismatch.
    fn check(&mut self) -> Result<(), String> {
        let both: Vec<u64> = self
            .ours
            .keys()
            .filter(|s| self.primary.contains_key(s))
            .copied()
            .collect();
        for seq in both {
            let (p, o) = (self.primary.remove(&seq), self.ours.remove(&seq));
            if p != o {
                return Err(format!(
                    "DIVERGENCE at input seq {seq}: the primary's output head is {}, this follower's {}. Stopped; compare the two directories with `margin-replay verify` and `export`",
                    p.map_or_else(String::new, |h| hex(&h)),
                    o.map_or_else(String::new, |h| hex(&h)),
                ));
            }
            self.compared += 1;
        }
        // Heads one side will never match (published before this follower started, or
        // dropped under load) are forgotten after a while.
        let newest = self.ours.keys().last().copied().unwrap_or(0);
        self.primary
            .retain(|&s, _| s + 1_000_000 > newest || self.ours.is_empty());
        if self.ours.len() > 4096 {
            let cut = *self.ours.keys().nth(self.ours.len() - 4096).unwrap_or(&0);
            self.ours.retain(|&s, _| s >= cut);
        }
        Ok(())
    }
}

/// Follows the stream until stopped, a divergence, or (with takeover) serves as the primary.
pub fn follow(cfg: FollowConfig, stop: Arc<AtomicBool>) -> Result<FollowEnd, String> {
    let mut nats = Nats::connect(&cfg.replica)?;
    let (heads_tx, own_heads) = bounded(4096);
    let mut pcfg = cfg.pipeline.clone();
    pcfg.heads = Some(HeadTap {
        every: cfg.replica.heads_every,
        heads: heads_tx,
    });
    let data = pcfg.data.clone();
    let side = crate::live::http::LiveSide::start(
        cfg.http,
        crate::live::http::REFRESH_DEFAULT,
        Vec::new(),
        &mut pcfg,
        stop.clone(),
    )?;
    let mut pipe = Pipeline::start(pcfg, Box::new(Quiet))?;
    side.ready();
    let journaled = pipe.counters.journaled.load(Ordering::Relaxed);
    for line in pipe.recovery().lines(&data, journaled) {
        eprintln!("margin-engine: {line}");
    }
    let stream_last = loop {
        match nats.last_seq() {
            Ok(last) => break last,
            Err(e) if !stop.load(Ordering::Relaxed) => {
                eprintln!("margin-engine: waiting for NATS ({e})");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    };
    check_prefix(&mut nats, &data, journaled, stream_last)?;
    eprintln!(
        "margin-engine: following stream {} from seq {} (the stream holds {stream_last})",
        cfg.replica.stream,
        journaled + 1
    );
    let lease = consume(
        &mut nats, &mut pipe, &own_heads, journaled, &cfg, &side, &stop,
    )?;
    // From here until the primary's replicator runs, the keeper renews a lease we took.
    let (nats, keeper) = match lease {
        Some(lease) => (None, Some(LeaseKeeper::start(nats, lease)?)),
        None => (Some(nats), None),
    };
    let finished = pipe.finish()?;
    // The read replica's view closes before a primary's may open on the same address.
    drop(side);
    let Some(keeper) = keeper else {
        return Ok(FollowEnd::Stopped {
            last_seq: finished.last_seq,
            output_head: finished.output_head,
        });
    };
    drop(nats);
    let mut serve = cfg.takeover.expect("a lease is taken only with takeover");
    eprintln!(
        "margin-engine: took over stream {} at seq {}: serving as the primary",
        cfg.replica.stream, finished.last_seq
    );
    serve.replicate = Some((cfg.replica, Some(Handover::new(keeper))));
    crate::server::serve(serve, cfg.pipeline, stop).map(FollowEnd::Served)
}

/// An ordered consumer of the stream's inputs from `seq`.
async fn ordered_from(
    stream: &async_nats::jetstream::stream::Stream,
    cfg: &ReplicaConfig,
    seq: u64,
) -> Result<async_nats::jetstream::consumer::pull::Ordered, String> {
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: cfg.inputs_subject(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: seq,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("consumer: {e}"))?;
    consumer
        .messages()
        .await
        .map_err(|e| format!("consumer: {e}"))
}

/// A follower's journal must be a prefix of the stream (else it is another history).
fn check_prefix(
    nats: &mut Nats,
    data: &std::path::Path,
    journaled: u64,
    stream_last: u64,
) -> Result<(), String> {
    if journaled == 0 {
        return Ok(());
    }
    if journaled > stream_last {
        return Err(format!(
            "this journal holds {journaled} inputs, the stream only {stream_last}: this directory is not a follower of it"
        ));
    }
    let journal = margin_journal::Reader::open(&data.join("input"), "input", MAX_RECORD_BYTES)
        .map_err(|e| format!("input journal: {e}"))?;
    let ours = journal
        .get(journaled)
        .map_err(|e| format!("input journal: {e}"))?
        .map(|r| r.payload.to_vec());
    let theirs = nats
        .rt
        .block_on(nats.stream.get_raw_message(journaled))
        .map_err(|e| format!("stream seq {journaled}: {e}"))?
        .payload;
    if ours.as_deref() != Some(&theirs[..]) {
        return Err(format!(
            "input {journaled} of this journal is not the stream's: another history"
        ));
    }
    Ok(())
}

/// Applies the stream's inputs as they come; returns the lease when it took over (after the
/// stream was drained to its end and every input applied and written).
fn consume(
    nats: &mut Nats,
    pipe: &mut Pipeline,
    own_heads: &Receiver<(u64, [u8; 32])>,
    journaled: u64,
    cfg: &FollowConfig,
    side: &crate::live::http::LiveSide,
    stop: &AtomicBool,
) -> Result<Option<Lease>, String> {
    let Nats {
        rt,
        client,
        stream,
        kv,
        ..
    } = nats;
    let owner = super::owner_id();
    rt.block_on(async {
        let mut heads_sub = client
            .subscribe(cfg.replica.heads_subject())
            .await
            .map_err(|e| format!("heads subject: {e}"))?;
        // The consumer is (re)made from the next seq due whenever it is missing: at the start
        // and after a stream error (NATS restarting, say); what was applied stays applied.
        let mut messages: Option<pull::Ordered> = None;
        let mut next = journaled + 1;
        let mut heads = Heads::default();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut taken: Option<(Lease, u64)> = None;
        loop {
            tokio::select! {
                m = async { messages.as_mut().expect("guarded").next().await }, if messages.is_some() => {
                    let m = match m {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            eprintln!("margin-engine: the stream consumer failed ({e}); making it again from seq {next}");
                            messages = None;
                            continue;
                        }
                        None => {
                            eprintln!("margin-engine: the stream consumer ended; making it again from seq {next}");
                            messages = None;
                            continue;
                        }
                    };
                    let info = m.info().map_err(|e| format!("stream message: {e}"))?;
                    if info.stream_sequence != next {
                        return Err(format!(
                            "stream delivered seq {} where {next} was due",
                            info.stream_sequence
                        ));
                    }
                    let input = margin_engine::persist::decode_input(&m.payload)
                        .map_err(|e| format!("stream seq {next}: not an input ({e})"))?;
                    pipe.submit(Item {
                        kind: ItemKind::Event(input),
                        origin: Origin::default(),
                        sent_ns: now_ns(),
                    })?;
                    next += 1;
                    if info.pending == 0 {
                        pipe.flush()?;
                    }
                }
                h = heads_sub.next() => {
                    if let Some((seq, head)) = h.and_then(|h| parse_head(&h.payload)) {
                        heads.primary_says(seq, head)?;
                    }
                }
                _ = tick.tick() => {
                    pipe.flush()?;
                    side.beat();
                    if stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    if messages.is_none() {
                        match ordered_from(stream, &cfg.replica, next).await {
                            Ok(m) => messages = Some(m),
                            Err(e) => eprintln!("margin-engine: waiting for NATS ({e})"),
                        }
                    }
                    if let Some((lease, _)) = taken.as_mut() {
                        // Keep the lease while draining.
                        super::renew_lease(kv, lease).await?;
                    } else if cfg.takeover.is_some() {
                        let expired = matches!(kv.entry(LEASE_KEY).await, Ok(None));
                        if expired {
                            if let Ok(lease) = take_lease(kv, &owner).await {
                                // The stream's end once the lease is ours: nobody else may
                                // append now (the old primary's next append is fenced).
                                let last = loop {
                                    match stream.info().await {
                                        Ok(i) => break i.state.last_sequence,
                                        Err(e) => {
                                            eprintln!("margin-engine: waiting for NATS ({e})");
                                            tokio::time::sleep(Duration::from_millis(200)).await;
                                        }
                                    }
                                };
                                eprintln!("margin-engine: the lease expired; took it, draining the stream to seq {last}");
                                taken = Some((lease, last));
                            }
                        }
                    }
                }
            }
            while let Ok((seq, head)) = own_heads.try_recv() {
                heads.ours.insert(seq, head);
            }
            heads.check()?;
            if let Some((lease, last)) = &taken {
                let published = pipe.counters.published.load(Ordering::Acquire);
                if next > *last && published >= *last {
                    eprintln!(
                        "margin-engine: drained and applied the stream to seq {last}; {} output heads matched the primary's",
                        heads.compared
                    );
                    return Ok(Some(lease.clone()));
                }
            }
        }
    })
}
