//! `margin-engine serve`: many TCP clients on one non-blocking I/O thread.
//!
//! The I/O thread accepts connections, reads and splits requests (JSON Lines or binary frames,
//! [`conn`]), submits events to the pipeline, and writes back the answers the publisher hands
//! it. Subscribers get a thread of their own that tails the output log, so a slow reader never
//! slows the engine. Limits bound everything a client can make the server hold: line and frame
//! size, connections, queued answer bytes per client (a client that does not read is dropped).

pub mod conn;
pub mod sink;

use crate::event::Event;
use crate::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig};
use conn::{Mode, Reader, Request, Role};
use crossbeam_channel::{unbounded, Receiver};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Answers for one client, from the publisher to the I/O thread.
pub struct Delivery {
    pub client: u64,
    pub bytes: Vec<u8>,
}

/// How the service runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub max_connections: usize,
    /// Answers queued for one client beyond this many bytes: the client is disconnected.
    pub max_queued_bytes: usize,
    /// When set, clients must send it (`{"auth":...}`) before events.
    pub token: Option<String>,
    /// When set, venue set-up events need this token; otherwise any writer may send them.
    pub admin_token: Option<String>,
    /// Subscribers need no token.
    pub readers_open: bool,
    /// Seconds between stats lines on stderr (0: none).
    pub stats_secs: u64,
    pub json_stats: bool,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            listen,
            max_connections: 1024,
            max_queued_bytes: 64 << 20,
            token: None,
            admin_token: None,
            readers_open: true,
            stats_secs: 10,
            json_stats: false,
        }
    }

    fn initial_role(&self) -> Role {
        match (&self.token, &self.admin_token) {
            (None, None) => Role::Admin,
            (None, Some(_)) => Role::Writer,
            (Some(_), _) if self.readers_open => Role::Reader,
            (Some(_), _) => Role::None,
        }
    }

    fn role_for(&self, token: &str) -> Option<Role> {
        if self.admin_token.as_deref() == Some(token) {
            return Some(Role::Admin);
        }
        if self.token.as_deref() == Some(token) {
            return Some(if self.admin_token.is_none() {
                Role::Admin
            } else {
                Role::Writer
            });
        }
        None
    }
}

struct Conn {
    stream: TcpStream,
    client: u64,
    reader: Reader,
    role: Role,
    out: Vec<u8>,
    out_pos: usize,
    closing: bool,
}

/// What the service did, when it stops.
#[derive(Debug, Default)]
pub struct ServeSummary {
    pub connections: u64,
    pub last_seq: u64,
    pub output_head: [u8; 32],
}

/// Runs the service until `stop` is set (SIGINT/SIGTERM), then finishes the pipeline and exits.
pub fn serve(
    cfg: ServeConfig,
    pipeline: PipelineConfig,
    stop: Arc<AtomicBool>,
) -> Result<ServeSummary, String> {
    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| format!("waker: {e}"))?);
    let (tx, rx) = unbounded::<Delivery>();
    let latency = Arc::new(Mutex::new(sink::new_histogram()));
    let sink = sink::ServerSink::new(tx, waker.clone(), latency.clone());
    let output_dir = pipeline.data.join("output");
    let mut pipe = Pipeline::start(pipeline, Box::new(sink))?;
    let mut listener =
        listen(cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    eprintln!(
        "margin-engine: serving on {} (data {})",
        listener.local_addr().map_err(|e| e.to_string())?,
        output_dir
            .parent()
            .map_or_else(String::new, |p| p.display().to_string())
    );
    let mut io = Io {
        cfg,
        conns: Vec::new(),
        by_client: Default::default(),
        free: Vec::new(),
        next_client: 1,
        output_dir,
        stop: stop.clone(),
        summary: ServeSummary::default(),
    };
    let mut events = Events::with_capacity(1024);
    let mut stats = Stats::new(io.cfg.stats_secs, io.cfg.json_stats);
    while !stop.load(Ordering::Relaxed) {
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => io.accept(&mut listener, &poll),
                WAKER => {}
                Token(t) => io.ready(t - 2, &mut pipe, &poll),
            }
        }
        pipe.flush()?;
        io.deliver(&rx, &poll);
        stats.maybe_print(&pipe, &latency, io.conns.iter().flatten().count());
    }
    // Graceful stop: no more reads; every accepted event is applied, journaled and synced, and
    // the answers are written out as far as clients take them.
    let _ = poll.registry().deregister(&mut listener);
    let finished = pipe.finish()?;
    io.deliver(&rx, &poll);
    io.drain_writes(Duration::from_secs(2));
    io.summary.last_seq = finished.last_seq;
    io.summary.output_head = finished.output_head;
    Ok(io.summary)
}

/// Connections the kernel may complete before the I/O thread accepts them. The usual default
/// (128) drops a burst of connects past it, and each dropped SYN costs its client a one-second
/// retransmission.
const LISTEN_BACKLOG: i32 = 4096;

fn listen(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

struct Io {
    cfg: ServeConfig,
    conns: Vec<Option<Conn>>,
    /// Client id to connection slot (never iterated).
    by_client: rustc_hash::FxHashMap<u64, usize>,
    free: Vec<usize>,
    next_client: u64,
    output_dir: PathBuf,
    stop: Arc<AtomicBool>,
    summary: ServeSummary,
}

impl Io {
    fn accept(&mut self, listener: &mut TcpListener, poll: &Poll) {
        loop {
            let (mut stream, _) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            let live = self.conns.len() - self.free.len();
            if live >= self.cfg.max_connections {
                let _ = stream.write_all(b"{\"type\":\"rejected\",\"reason\":\"malformed\",\"detail\":\"too many connections\"}\n");
                continue; // dropped: closed
            }
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if poll
                .registry()
                .register(&mut stream, Token(slot + 2), Interest::READABLE)
                .is_err()
            {
                self.free.push(slot);
                continue;
            }
            self.summary.connections += 1;
            self.conns[slot] = Some(Conn {
                stream,
                client: 0,
                reader: Reader::default(),
                role: self.cfg.initial_role(),
                out: Vec::new(),
                out_pos: 0,
                closing: false,
            });
        }
    }

    fn ready(&mut self, slot: usize, pipe: &mut Pipeline, poll: &Poll) {
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return;
        };
        let mut requests = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => conn.reader.feed(&buf[..n], &mut requests),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            if requests.len() > 4096 {
                break; // let others have a turn; the rest stays readable
            }
        }
        if conn.client == 0 && conn.reader.mode != Mode::Unknown {
            let binary = if conn.reader.mode == Mode::Binary {
                sink::BINARY_CLIENT
            } else {
                0
            };
            conn.client = self.next_client | binary;
            self.next_client += 1;
            self.by_client.insert(conn.client, slot);
        }
        for r in requests {
            match self.handle(slot, r, pipe) {
                Ok(None) => {}
                Ok(Some(from)) => return self.start_subscriber(slot, from, poll),
                Err(()) => {
                    closed = true;
                    break;
                }
            }
        }
        let _ = self.flush_conn(slot, poll);
        if closed {
            self.close(slot, poll);
        }
    }

    /// One request of a connection; an error closes the connection, `Some(seq)` turns it into a
    /// subscriber from that seq.
    fn handle(
        &mut self,
        slot: usize,
        request: Request,
        pipe: &mut Pipeline,
    ) -> Result<Option<u64>, ()> {
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return Err(());
        };
        let origin = |id| Origin {
            client: conn.client,
            id,
        };
        let item = match request {
            Request::Event { input, id } => {
                let needed = if matches!(
                    input.event,
                    Event::Asset(_) | Event::Market(_) | Event::Params(_) | Event::Insurance { .. }
                ) {
                    Role::Admin
                } else {
                    Role::Writer
                };
                if conn.role < needed {
                    let detail = if needed == Role::Admin {
                        "venue set-up events need an admin connection"
                    } else {
                        "this connection may not send events: authenticate first ({\"auth\":\"TOKEN\"})"
                    };
                    ItemKind::Malformed {
                        line: 0,
                        detail: detail.into(),
                    }
                    .into_item(origin(id))
                } else {
                    ItemKind::Event(input).into_item(origin(id))
                }
            }
            Request::Malformed { line, id, detail } => {
                ItemKind::Malformed { line, detail }.into_item(origin(id))
            }
            Request::Auth { token } => {
                match self.cfg.role_for(&token) {
                    Some(role) => conn.role = role,
                    None => {
                        let _ = conn.stream.write_all(b"{\"type\":\"rejected\",\"reason\":\"malformed\",\"detail\":\"bad token\"}\n");
                        return Err(());
                    }
                }
                return Ok(None);
            }
            Request::Subscribe { from } => {
                if conn.role < Role::Reader {
                    return Err(());
                }
                return Ok(Some(from));
            }
        };
        pipe.submit(item).map(|_| None).map_err(|_| ())
    }

    /// Hands a connection to a thread that streams the output log from `from`.
    fn start_subscriber(&mut self, slot: usize, from: u64, poll: &Poll) {
        let Some(mut conn) = self.conns[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.by_client.remove(&conn.client);
        let _ = poll.registry().deregister(&mut conn.stream);
        let Ok(stream) = conn_into_std(conn.stream) else {
            return;
        };
        let dir = self.output_dir.clone();
        let stop = self.stop.clone();
        let _ = std::thread::Builder::new()
            .name("subscriber".into())
            .stack_size(256 * 1024)
            .spawn(move || subscriber(stream, &dir, from, &stop));
    }

    /// Queues answers the publisher produced; flushes what each socket takes.
    fn deliver(&mut self, rx: &Receiver<Delivery>, poll: &Poll) {
        while let Ok(d) = rx.try_recv() {
            let Some(&slot) = self.by_client.get(&d.client) else {
                continue; // the client left; its answers are in the output log
            };
            if let Some(Some(conn)) = self.conns.get_mut(slot) {
                if conn.out.len() - conn.out_pos + d.bytes.len() > self.cfg.max_queued_bytes {
                    conn.closing = true;
                }
                conn.out.extend_from_slice(&d.bytes);
            }
            if self.flush_conn(slot, poll).is_err() {
                self.close(slot, poll);
            }
        }
    }

    fn flush_conn(&mut self, slot: usize, poll: &Poll) -> io::Result<()> {
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return Ok(());
        };
        if conn.closing {
            return Err(io::Error::other("client too slow"));
        }
        while conn.out_pos < conn.out.len() {
            match conn.stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => return Err(io::Error::other("closed")),
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let interest = if conn.out_pos < conn.out.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            conn.out.clear();
            conn.out_pos = 0;
            Interest::READABLE
        };
        poll.registry()
            .reregister(&mut conn.stream, Token(slot + 2), interest)
    }

    fn close(&mut self, slot: usize, poll: &Poll) {
        if let Some(mut conn) = self.conns[slot].take() {
            let _ = poll.registry().deregister(&mut conn.stream);
            self.by_client.remove(&conn.client);
            self.free.push(slot);
        }
    }

    /// At shutdown: blocking writes of what is still queued, bounded in time.
    fn drain_writes(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        for conn in self.conns.iter_mut().flatten() {
            while conn.out_pos < conn.out.len() && Instant::now() < until {
                match conn.stream.write(&conn.out[conn.out_pos..]) {
                    Ok(0) => break,
                    Ok(n) => conn.out_pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => break,
                }
            }
            let _ = conn.stream.flush();
        }
    }
}

impl ItemKind {
    fn into_item(self, origin: Origin) -> Item {
        Item {
            kind: self,
            origin,
            sent_ns: now_ns(),
        }
    }
}

fn conn_into_std(stream: TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = stream.into_raw_fd();
    // SAFETY: the fd comes from a TcpStream we own and just gave up.
    let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    s.set_nonblocking(false)?;
    Ok(s)
}

/// Streams the output log from `from` as JSON lines until the client leaves or the server stops.
fn subscriber(
    mut stream: std::net::TcpStream,
    dir: &std::path::Path,
    from: u64,
    stop: &AtomicBool,
) {
    let mut tail =
        margin_journal::Tail::new(dir, "output", crate::pipeline::MAX_RECORD_BYTES, from);
    let mut line = String::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        match tail.poll() {
            Ok(Some(rec)) => {
                let Ok(batch) = crate::persist::decode_batch(&rec.payload) else {
                    return;
                };
                line.clear();
                for r in &batch.records {
                    crate::codec::write_record(&mut line, r);
                    line.push('\n');
                }
                if stream.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                let _ = writeln!(stream, "{{\"type\":\"rejected\",\"reason\":\"malformed\",\"detail\":\"output log: {e}\"}}");
                return;
            }
        }
    }
}

/// Periodic one-line statistics on stderr.
struct Stats {
    every: Option<Duration>,
    json: bool,
    last: Instant,
    last_published: u64,
}

impl Stats {
    fn new(secs: u64, json: bool) -> Stats {
        Stats {
            every: (secs > 0).then(|| Duration::from_secs(secs)),
            json,
            last: Instant::now(),
            last_published: 0,
        }
    }

    fn maybe_print(
        &mut self,
        pipe: &Pipeline,
        latency: &Mutex<hdrhistogram::Histogram<u64>>,
        conns: usize,
    ) {
        let Some(every) = self.every else { return };
        let elapsed = self.last.elapsed();
        if elapsed < every {
            return;
        }
        let c = &pipe.counters;
        let published = c.published.load(Ordering::Relaxed);
        let journaled = c.journaled.load(Ordering::Relaxed);
        let durable = c.durable_seq.load(Ordering::Relaxed);
        let rate = (published - self.last_published.min(published)) * 1_000_000
            / (elapsed.as_micros() as u64).max(1);
        let (p50, p99, max) = match latency.lock() {
            Ok(mut h) => {
                let v = (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max());
                h.reset();
                v
            }
            Err(_) => (0, 0, 0),
        };
        if self.json {
            eprintln!(
                "{{\"events_per_s\":{rate},\"journaled\":{journaled},\"durable\":{durable},\"applied\":{},\"published\":{published},\"journal_lag\":{},\"in_flight\":{},\"connections\":{conns},\"latency_ns_p50\":{p50},\"latency_ns_p99\":{p99},\"latency_ns_max\":{max}}}",
                c.applied.load(Ordering::Relaxed),
                journaled - durable.min(journaled),
                journaled - published.min(journaled),
            );
        } else {
            eprintln!(
                "stats: {rate} ev/s, seq {published}, journal lag {}, in flight {}, {conns} conns, latency p50 {}us p99 {}us max {}us",
                journaled - durable.min(journaled),
                journaled - published.min(journaled),
                p50 / 1000,
                p99 / 1000,
                max / 1000
            );
        }
        self.last = Instant::now();
        self.last_published = published;
    }
}
