//! The server's sink: on the publisher thread, each input's records are formatted for the client
//! that sent it (JSON lines echoing its `id`, or a binary frame) and handed to the I/O thread,
//! one hand-off per batch. Latency from ingress to release is recorded here.

use super::{Delivery, Published};
use crate::pipeline::{now_ns, Origin, Sink};
use crate::run::malformed_line;
use crossbeam_channel::Sender;
use hdrhistogram::Histogram;
use margin_engine::codec::write_record;
use margin_engine::record::Record;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// Kinds of binary answer frames: an output batch, a malformed detail, an unauthorized one.
const FRAME_MALFORMED: u8 = 1;
const FRAME_UNAUTHORIZED: u8 = 2;

/// Client ids with this bit speak the binary framing.
pub const BINARY_CLIENT: u64 = 1 << 63;

pub struct ServerSink {
    tx: Sender<Delivery>,
    waker: Arc<mio::Waker>,
    /// Answer bytes and the count of requests they answer, per client (drained per batch; the
    /// order of hand-offs between clients does not matter).
    pending: FxHashMap<u64, (Vec<u8>, u32)>,
    latency: Histogram<u64>,
    shared_latency: Arc<Mutex<Histogram<u64>>>,
    published: Arc<Published>,
}

impl ServerSink {
    pub fn new(
        tx: Sender<Delivery>,
        waker: Arc<mio::Waker>,
        shared_latency: Arc<Mutex<Histogram<u64>>>,
        published: Arc<Published>,
    ) -> ServerSink {
        ServerSink {
            tx,
            waker,
            pending: FxHashMap::default(),
            latency: new_histogram(),
            shared_latency,
            published,
        }
    }

    /// Answers an item that never reached the journal: a binary frame of `kind` with the detail,
    /// or the JSON line `json` makes, with the client's id.
    fn unjournaled(
        &mut self,
        origin: Origin,
        kind: u8,
        detail: &str,
        json: impl FnOnce() -> String,
    ) {
        if origin.client == 0 {
            return;
        }
        if origin.client & BINARY_CLIENT != 0 {
            binary_frame(
                self.answer(origin.client),
                kind,
                origin.id.unwrap_or(0),
                detail.as_bytes(),
            );
        } else {
            let text = json();
            json_with_id(self.answer(origin.client), origin.id, &text);
        }
    }

    /// The answer buffer of a client, counting one more request answered.
    fn answer(&mut self, client: u64) -> &mut Vec<u8> {
        let e = self.pending.entry(client).or_default();
        e.1 += 1;
        &mut e.0
    }
}

/// Latency histogram from 1 ns to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn json_with_id(out: &mut Vec<u8>, id: Option<u64>, line: &str) {
    match id {
        Some(id) => {
            out.extend_from_slice(format!("{{\"id\":{id},").as_bytes());
            out.extend_from_slice(&line.as_bytes()[1..]);
        }
        None => out.extend_from_slice(line.as_bytes()),
    }
    out.push(b'\n');
}

fn binary_frame(out: &mut Vec<u8>, kind: u8, id: u64, payload: &[u8]) {
    out.extend_from_slice(&((9 + payload.len()) as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
}

impl Sink for ServerSink {
    fn applied(
        &mut self,
        _seq: u64,
        origin: Origin,
        records: &[Record],
        encoded: &[u8],
        sent_ns: u64,
    ) {
        let _ = self.latency.record(now_ns().saturating_sub(sent_ns).max(1));
        if origin.client == 0 {
            return;
        }
        if origin.client & BINARY_CLIENT != 0 {
            binary_frame(
                self.answer(origin.client),
                0,
                origin.id.unwrap_or(0),
                encoded,
            );
            return;
        }
        let mut line = String::with_capacity(160);
        let out = self.answer(origin.client);
        for r in records {
            line.clear();
            write_record(&mut line, r);
            json_with_id(out, origin.id, &line);
        }
    }

    fn malformed(&mut self, origin: Origin, line: u64, detail: &str, _sent_ns: u64) {
        self.unjournaled(origin, FRAME_MALFORMED, detail, || {
            malformed_line(line, detail)
        });
    }

    fn refused(&mut self, origin: Origin, detail: &str, _sent_ns: u64) {
        self.unjournaled(origin, FRAME_UNAUTHORIZED, detail, || {
            let mut text =
                String::from("{\"type\":\"rejected\",\"reason\":\"unauthorized\",\"detail\":");
            margin_engine::codec::write_json_str(&mut text, detail);
            text.push('}');
            text
        });
    }

    fn batch_done(&mut self) {
        if let Ok(mut h) = self.shared_latency.try_lock() {
            let _ = h.add(&self.latency);
            self.latency.reset();
        }
        self.published.bump();
        if self.pending.is_empty() {
            return;
        }
        for (client, (bytes, answered)) in self.pending.drain() {
            let _ = self.tx.send(Delivery {
                client,
                bytes,
                answered,
            });
        }
        let _ = self.waker.wake();
    }

    fn finish(&mut self) {
        self.batch_done();
    }
}
