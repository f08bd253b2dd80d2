//! `margin-engine serve`: many TCP clients on one non-blocking I/O thread.
//!
//! The I/O thread accepts connections, reads and splits requests (JSON Lines or binary frames,
//! [`conn`]), submits events to the pipeline, and writes back the answers the publisher hands
//! it. Subscribers get a thread of their own that tails the output log, woken by the publisher
//! when it releases a batch, so a slow reader never slows the engine. Limits bound everything a
//! client can make the server hold: line, frame and handshake size, connections and subscribers
//! (counted together), queued answer bytes per client (far less before it authenticates), the
//! time to authenticate and the time a connection may stay idle. A client that half-closes its
//! side still gets every answer before the server closes.

pub mod conn;
pub mod sink;

use crate::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig};
use conn::{Mode, Reader, Request, Role};
use crossbeam_channel::{unbounded, Receiver};
use margin_engine::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Answers for one client, from the publisher to the I/O thread.
pub struct Delivery {
    pub client: u64,
    pub bytes: Vec<u8>,
    /// Requests of the client these bytes answer.
    pub answered: u32,
}

/// Answer bytes queued for a client that has not authenticated (when tokens are set) beyond
/// which it is disconnected: a stranger cannot make the server hold much.
const UNAUTHENTICATED_QUEUED_MAX: usize = 256 << 10;
/// Failed authentications from one address within [`AUTH_FAILURE_WINDOW`] after which its new
/// connections are refused until the window passes.
const AUTH_FAILURES_MAX: u32 = 5;
const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(10);
/// Addresses remembered for failed authentications (the table is cleared past this).
const AUTH_FAILURE_ADDRS_MAX: usize = 16_384;

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
    /// When set (needs `token`), subscribing needs this token (or a writer's or admin's);
    /// otherwise subscribers need none.
    pub subscribe_token: Option<String>,
    /// Subscribers at most (each holds a thread); they count toward `max_connections` too.
    pub max_subscribers: usize,
    /// A connection that has not authenticated this long after it was accepted is closed
    /// (only when a token is set).
    pub auth_timeout: Duration,
    /// A connection that sent nothing for this long is closed (zero: never).
    pub idle_timeout: Duration,
    /// Seconds between stats lines on stderr (0: none).
    pub stats_secs: u64,
    pub json_stats: bool,
    /// The live view's HTTP address (`--http`), off when None.
    pub http: Option<SocketAddr>,
    /// How often the sequencer hands the live view a state clone.
    pub http_refresh: Duration,
    /// Replicate every input to NATS JetStream before its outputs are released
    /// (`--replicate`), with the kept lease a follower hands over when it took over.
    pub replicate: Option<(
        crate::replica::ReplicaConfig,
        Option<crate::replica::keeper::Handover>,
    )>,
}

impl ServeConfig {
    pub fn new(listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            http: None,
            http_refresh: crate::live::http::REFRESH_DEFAULT,
            listen,
            max_connections: 1024,
            max_queued_bytes: 64 << 20,
            token: None,
            admin_token: None,
            subscribe_token: None,
            max_subscribers: 64,
            auth_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            stats_secs: 10,
            json_stats: false,
            replicate: None,
        }
    }

    /// Refuses configurations that would not mean what they say: an empty token (it would
    /// grant its role to `{"auth":""}`), or a subscribe token without a writer token.
    pub fn check(&self) -> Result<(), String> {
        for (name, t) in [
            ("--token", &self.token),
            ("--admin-token", &self.admin_token),
            ("--subscribe-token", &self.subscribe_token),
        ] {
            match t {
                Some(t) if t.is_empty() => return Err(format!("{name} is empty")),
                Some(t) if t.len() > conn::TOKEN_LEN_MAX => {
                    return Err(format!(
                        "{name} is longer than {} bytes",
                        conn::TOKEN_LEN_MAX
                    ))
                }
                _ => {}
            }
        }
        if self.subscribe_token.is_some() && self.token.is_none() {
            return Err(
                "--subscribe-token needs --token (writers would be open while readers are not)"
                    .into(),
            );
        }
        Ok(())
    }

    fn initial_role(&self) -> Role {
        match (&self.token, &self.admin_token) {
            (None, None) => Role::Admin,
            (None, Some(_)) => Role::Writer,
            (Some(_), _) if self.subscribe_token.is_none() => Role::Reader,
            (Some(_), _) => Role::None,
        }
    }

    /// True when connections must authenticate before they may send events.
    fn needs_auth(&self) -> bool {
        self.token.is_some()
    }

    fn role_for(&self, token: &str) -> Option<Role> {
        let is = |t: &Option<String>| t.as_deref().is_some_and(|t| same_secret(t, token));
        if is(&self.admin_token) {
            return Some(Role::Admin);
        }
        if is(&self.token) {
            return Some(if self.admin_token.is_none() {
                Role::Admin
            } else {
                Role::Writer
            });
        }
        if is(&self.subscribe_token) {
            return Some(Role::Reader);
        }
        None
    }
}

/// Compares two secrets in time that does not depend on where they differ (both are hashed,
/// and the digests compared without an early exit).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (blake3::hash(a.as_bytes()), blake3::hash(b.as_bytes()));
    let diff = x
        .as_bytes()
        .iter()
        .zip(y.as_bytes())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q));
    std::hint::black_box(diff) == 0
}

struct Conn {
    stream: TcpStream,
    peer: std::net::IpAddr,
    client: u64,
    reader: Reader,
    role: Role,
    authenticated: bool,
    out: Vec<u8>,
    out_pos: usize,
    closing: bool,
    accepted_at: Instant,
    last_read: Instant,
    /// Requests read so far (a subscribe is valid only as the first).
    requests: u64,
    /// Requests submitted and not yet answered.
    in_flight: u64,
    /// The client shut its sending side: answer what it sent, then close.
    read_closed: bool,
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
    mut pipeline: PipelineConfig,
    stop: Arc<AtomicBool>,
) -> Result<ServeSummary, String> {
    cfg.check()?;
    let read_tokens = match &cfg.subscribe_token {
        None => Vec::new(),
        Some(_) => [&cfg.subscribe_token, &cfg.token, &cfg.admin_token]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
    };
    // The live view starts before recovery, so that /healthz and /readyz answer during it.
    let side = crate::live::http::LiveSide::start(
        cfg.http,
        cfg.http_refresh,
        read_tokens,
        &mut pipeline,
        stop.clone(),
    )?;
    let live = side.live.clone();
    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| format!("waker: {e}"))?);
    let (tx, rx) = unbounded::<Delivery>();
    let latency = Arc::new(Mutex::new(sink::new_histogram()));
    let published = Arc::new(Published::default());
    let sink = sink::ServerSink::new(tx, waker.clone(), latency.clone(), published.clone());
    let output_dir = pipeline.data.join("output");
    let data = pipeline.data.clone();
    // A primary takes the lease before recovery (an engine that may not write stops before it
    // touches anything), and checks the stream against its journal after.
    let replica = match &cfg.replicate {
        Some((rc, handover)) => {
            let kept = handover.as_ref().and_then(|h| h.take());
            let p = crate::replica::primary::prepare(rc, kept, true)?;
            pipeline.replica = Some(p.tap());
            pipeline.heads = Some(p.head_tap());
            Some(p)
        }
        None => None,
    };
    let mut pipe = Pipeline::start(pipeline, Box::new(sink))?;
    let replicator = match replica {
        Some(p) => {
            let journaled = pipe.counters.journaled.load(Ordering::Relaxed);
            Some(p.start(&data, journaled, pipe.counters.clone())?)
        }
        None => None,
    };
    // Pipeline::start returned: recovery is done.
    side.ready();
    let journaled = pipe.counters.journaled.load(Ordering::Relaxed);
    for line in pipe.recovery().lines(&data, journaled) {
        eprintln!("margin-engine: {line}");
    }
    let mut last_roles = Instant::now();
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
        subscribers: Arc::new(AtomicUsize::new(0)),
        published,
        auth_failures: Default::default(),
        last_sweep: Instant::now(),
    };
    let mut events = Events::with_capacity(1024);
    let mut stats = Stats::new(io.cfg.stats_secs, io.cfg.json_stats, &pipe);
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
        io.sweep(&poll);
        stats.maybe_print(&pipe, &latency, io.conns.iter().flatten().count());
        side.beat();
        if last_roles.elapsed() >= Duration::from_millis(100) {
            io.count_roles(&live);
            last_roles = Instant::now();
        }
    }
    // Graceful stop: no more reads; every accepted event is applied, journaled and synced, and
    // the answers are written out as far as clients take them.
    let _ = poll.registry().deregister(&mut listener);
    let finished = pipe.finish()?;
    if let Some(r) = replicator {
        // The journaler's tap closed with the pipeline: the replicator appends what is left.
        let _ = r.join();
    }
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
    /// Live subscriber threads.
    subscribers: Arc<AtomicUsize>,
    /// Wakes subscribers when the publisher releases a batch.
    published: Arc<Published>,
    /// Failed authentications per address: (count, start of the window). Never iterated.
    auth_failures: rustc_hash::FxHashMap<std::net::IpAddr, (u32, Instant)>,
    last_sweep: Instant,
}

/// The publisher's signal to subscribers: a counter bumped per released batch.
#[derive(Default)]
pub struct Published {
    batches: Mutex<u64>,
    cv: Condvar,
}

impl Published {
    /// Called by the publisher after each batch it released.
    pub fn bump(&self) {
        if let Ok(mut n) = self.batches.lock() {
            *n += 1;
            self.cv.notify_all();
        }
    }

    /// Waits until a batch is released after `seen`, or `limit` passes; returns the count.
    fn wait(&self, seen: u64, limit: Duration) -> u64 {
        let Ok(n) = self.batches.lock() else {
            return seen;
        };
        match self.cv.wait_timeout_while(n, limit, |n| *n == seen) {
            Ok((n, _)) => *n,
            Err(_) => seen,
        }
    }

    fn current(&self) -> u64 {
        self.batches.lock().map_or(0, |n| *n)
    }
}

impl Io {
    /// Publishes the count of connected clients by role for the live view.
    fn count_roles(&self, live: &crate::live::LiveCounters) {
        let mut n = [0u64; 4];
        for c in self.conns.iter().flatten() {
            n[c.role as usize] += 1;
        }
        for (slot, v) in live.clients.iter().zip(n) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    fn accept(&mut self, listener: &mut TcpListener, poll: &Poll) {
        loop {
            let (mut stream, peer) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            let live =
                self.conns.len() - self.free.len() + self.subscribers.load(Ordering::Relaxed);
            if live >= self.cfg.max_connections {
                let _ = stream.write_all(b"{\"type\":\"rejected\",\"reason\":\"malformed\",\"detail\":\"too many connections\"}\n");
                continue; // dropped: closed
            }
            if self.penalized(peer.ip()) {
                let _ = stream.write_all(b"{\"type\":\"rejected\",\"reason\":\"unauthorized\",\"detail\":\"too many failed authentications from this address; retry later\"}\n");
                continue;
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
            let now = Instant::now();
            self.conns[slot] = Some(Conn {
                stream,
                peer: peer.ip(),
                client: 0,
                reader: Reader::default(),
                role: self.cfg.initial_role(),
                authenticated: !self.cfg.needs_auth(),
                out: Vec::new(),
                out_pos: 0,
                closing: false,
                accepted_at: now,
                last_read: now,
                requests: 0,
                in_flight: 0,
                read_closed: false,
            });
        }
    }

    /// True when `ip` failed to authenticate too often lately.
    fn penalized(&mut self, ip: std::net::IpAddr) -> bool {
        match self.auth_failures.get(&ip) {
            Some(&(n, since)) if since.elapsed() < AUTH_FAILURE_WINDOW => n >= AUTH_FAILURES_MAX,
            Some(_) => {
                self.auth_failures.remove(&ip);
                false
            }
            None => false,
        }
    }

    fn auth_failed(&mut self, ip: std::net::IpAddr) {
        if self.auth_failures.len() >= AUTH_FAILURE_ADDRS_MAX {
            self.auth_failures.clear();
        }
        let e = self.auth_failures.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= AUTH_FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
        eprintln!(
            "margin-engine: failed authentication from {ip} ({} in the last {} s)",
            e.0,
            AUTH_FAILURE_WINDOW.as_secs()
        );
    }

    /// Closes connections past their authentication deadline or idle too long, and half-closed
    /// ones that have every answer written. Runs about once a second.
    fn sweep(&mut self, poll: &Poll) {
        if self.last_sweep.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_sweep = Instant::now();
        let (auth, idle) = (self.cfg.auth_timeout, self.cfg.idle_timeout);
        let mut doomed = Vec::new();
        for (slot, conn) in self.conns.iter().enumerate() {
            let Some(c) = conn else { continue };
            let late = !c.authenticated && c.accepted_at.elapsed() >= auth;
            let idle = !idle.is_zero() && c.in_flight == 0 && c.last_read.elapsed() >= idle;
            if late || idle || c.done() {
                doomed.push((slot, late));
            }
        }
        for (slot, late) in doomed {
            if let Some(Some(c)) = self.conns.get_mut(slot) {
                let why: &[u8] = if late {
                    b"{\"type\":\"rejected\",\"reason\":\"unauthorized\",\"detail\":\"not authenticated in time\"}\n"
                } else {
                    b""
                };
                if !c.done() {
                    let _ = c.stream.write(why);
                }
            }
            self.close(slot, poll);
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
            if conn.read_closed {
                break;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    // A half-close: the client sent everything; it still gets every answer.
                    conn.read_closed = true;
                    break;
                }
                Ok(n) => {
                    conn.last_read = Instant::now();
                    conn.reader.feed(&buf[..n], &mut requests);
                }
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
        if self.flush_conn(slot, poll).is_err() {
            closed = true;
        }
        let done = matches!(self.conns.get(slot), Some(Some(c)) if c.done());
        if closed || done {
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
        conn.requests += 1;
        let first = conn.requests == 1;
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
                    ItemKind::Refused {
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
                    Some(role) => {
                        conn.role = role;
                        conn.authenticated = true;
                    }
                    None => {
                        let _ = conn.stream.write_all(b"{\"type\":\"rejected\",\"reason\":\"unauthorized\",\"detail\":\"bad token\"}\n");
                        let ip = conn.peer;
                        self.auth_failed(ip);
                        return Err(());
                    }
                }
                return Ok(None);
            }
            Request::Subscribe { from } if first => {
                if conn.role < Role::Reader {
                    let _ = conn.stream.write_all(b"{\"type\":\"rejected\",\"reason\":\"unauthorized\",\"detail\":\"subscribing needs a token\"}\n");
                    return Err(());
                }
                return Ok(Some(from));
            }
            Request::Subscribe { .. } => ItemKind::Malformed {
                line: conn.reader.lines(),
                detail: "`subscribe` must be the first line of a connection".into(),
            }
            .into_item(origin(None)),
            Request::Status => {
                // Queued behind the answers already waiting, never in the middle of one.
                let line = status_line(pipe);
                conn.out.extend_from_slice(line.as_bytes());
                return Ok(None);
            }
            Request::Close { detail } => {
                let mut line =
                    String::from("{\"type\":\"rejected\",\"reason\":\"malformed\",\"detail\":");
                margin_engine::codec::write_json_str(&mut line, &detail);
                line.push_str("}\n");
                let _ = conn.stream.write_all(line.as_bytes());
                return Err(());
            }
        };
        conn.in_flight += 1;
        pipe.submit(item).map(|_| None).map_err(|_| ())
    }

    /// Hands a connection to a thread that streams the output log from `from`, if fewer than
    /// `max_subscribers` run; the thread ends when the client leaves or the server stops.
    fn start_subscriber(&mut self, slot: usize, from: u64, poll: &Poll) {
        let Some(mut conn) = self.conns[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.by_client.remove(&conn.client);
        let _ = poll.registry().deregister(&mut conn.stream);
        if self.subscribers.load(Ordering::Acquire) >= self.cfg.max_subscribers {
            let _ = conn.stream.write_all(b"{\"type\":\"rejected\",\"reason\":\"malformed\",\"detail\":\"too many subscribers\"}\n");
            return;
        }
        let Ok(stream) = conn_into_std(conn.stream) else {
            return;
        };
        let sub = Subscriber {
            dir: self.output_dir.clone(),
            stop: self.stop.clone(),
            published: self.published.clone(),
            count: SubscriberCount::enter(self.subscribers.clone()),
        };
        let spawned = std::thread::Builder::new()
            .name("subscriber".into())
            .stack_size(256 * 1024)
            .spawn(move || sub.run(stream, from));
        if spawned.is_err() {
            eprintln!("margin-engine: cannot start a subscriber thread");
        }
    }

    /// Queues answers the publisher produced; flushes what each socket takes.
    fn deliver(&mut self, rx: &Receiver<Delivery>, poll: &Poll) {
        while let Ok(d) = rx.try_recv() {
            let Some(&slot) = self.by_client.get(&d.client) else {
                continue; // the client left; its answers are in the output log
            };
            if let Some(Some(conn)) = self.conns.get_mut(slot) {
                let limit = if conn.authenticated {
                    self.cfg.max_queued_bytes
                } else {
                    UNAUTHENTICATED_QUEUED_MAX.min(self.cfg.max_queued_bytes)
                };
                if conn.out.len() - conn.out_pos + d.bytes.len() > limit {
                    conn.closing = true;
                }
                conn.out.extend_from_slice(&d.bytes);
                conn.in_flight = conn.in_flight.saturating_sub(u64::from(d.answered));
            }
            let failed = self.flush_conn(slot, poll).is_err();
            let done = matches!(self.conns.get(slot), Some(Some(c)) if c.done());
            if failed || done {
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
        let pending = conn.out_pos < conn.out.len();
        if !pending {
            conn.out.clear();
            conn.out_pos = 0;
        }
        // A half-closed client is no longer read (it would be readable at EOF forever).
        let interest = match (pending, conn.read_closed) {
            (true, false) => Interest::READABLE | Interest::WRITABLE,
            (true, true) => Interest::WRITABLE,
            (false, _) => Interest::READABLE,
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

/// The answer to `{"status":{}}`: what was journaled, applied, published and made durable, and
/// the durability policy (under `none` nothing is synced by the engine: `durable` is null).
fn status_line(pipe: &Pipeline) -> String {
    let c = &pipe.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let durable = match pipe.durability() {
        margin_journal::Durability::None => "null".to_string(),
        _ => load(&c.durable_seq).to_string(),
    };
    let replicated = if pipe.replicating() {
        load(&c.replicated_seq).to_string()
    } else {
        "null".to_string()
    };
    format!(
        "{{\"type\":\"status\",\"journaled\":{},\"applied\":{},\"published\":{},\"durable\":{durable},\"replicated\":{replicated},\"durability\":\"{}\"}}\n",
        load(&c.journaled),
        load(&c.applied),
        load(&c.published),
        match pipe.durability() {
            margin_journal::Durability::None => "none",
            margin_journal::Durability::Batch { .. } => "batch",
            margin_journal::Durability::Every => "every",
        }
    )
}

impl Conn {
    /// A half-closed connection with every answer written: nothing is left to do for it.
    fn done(&self) -> bool {
        self.read_closed && self.in_flight == 0 && self.out_pos >= self.out.len()
    }
}

/// Holds one place among the live subscribers while it lives.
struct SubscriberCount(Arc<AtomicUsize>);

impl SubscriberCount {
    fn enter(count: Arc<AtomicUsize>) -> SubscriberCount {
        count.fetch_add(1, Ordering::AcqRel);
        SubscriberCount(count)
    }
}

impl Drop for SubscriberCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a subscriber waits for the publisher before it checks its client and the stop flag.
const SUBSCRIBER_WAIT: Duration = Duration::from_millis(200);

/// One subscriber thread's world.
struct Subscriber {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    published: Arc<Published>,
    count: SubscriberCount,
}

impl Subscriber {
    /// Streams the output log from `from` as JSON lines until the client leaves (noticed even
    /// when nothing is published), sends anything more, or the server stops.
    fn run(self, mut stream: std::net::TcpStream, from: u64) {
        let mut tail =
            margin_journal::Tail::new(&self.dir, "output", crate::pipeline::MAX_RECORD_BYTES, from);
        let mut line = String::with_capacity(4096);
        let mut seen = self.published.current();
        while !self.stop.load(Ordering::Relaxed) {
            match tail.poll() {
                Ok(Some(rec)) => {
                    let Ok(batch) = margin_engine::persist::decode_batch(&rec.payload) else {
                        return;
                    };
                    line.clear();
                    for r in &batch.records {
                        margin_engine::codec::write_record(&mut line, r);
                        line.push('\n');
                    }
                    if stream.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    if !client_still_listening(&stream) {
                        return;
                    }
                    seen = self.published.wait(seen, SUBSCRIBER_WAIT);
                }
                Err(e) => {
                    let _ = writeln!(stream, "{{\"type\":\"rejected\",\"reason\":\"malformed\",\"detail\":\"output log: {e}\"}}");
                    return;
                }
            }
        }
        drop(self.count);
    }
}

/// False when a subscriber's client closed its side or sent anything (a subscriber connection
/// takes no further requests): checked without blocking and without consuming bytes.
fn client_still_listening(stream: &std::net::TcpStream) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
    match socket2::SockRef::from(stream).recv_with_flags(&mut probe, flags) {
        Err(e) => e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted,
        Ok(_) => false,
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
    /// Counting from what the pipeline recovered, so that the first line after a restart
    /// reports this run's rate, not the whole history's.
    fn new(secs: u64, json: bool, pipe: &Pipeline) -> Stats {
        Stats {
            every: (secs > 0).then(|| Duration::from_secs(secs)),
            json,
            last: Instant::now(),
            last_published: pipe.counters.published.load(Ordering::Relaxed),
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
        // Under durability none the engine never syncs: there is no journal lag to report.
        let lag = match pipe.durability() {
            margin_journal::Durability::None => None,
            _ => Some(journaled - durable.min(journaled)),
        };
        let lag_json = lag.map_or("null".to_string(), |l| l.to_string());
        let lag_text = lag.map_or("n/a (durability none)".to_string(), |l| l.to_string());
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
                "{{\"events_per_s\":{rate},\"journaled\":{journaled},\"durable\":{durable},\"applied\":{},\"published\":{published},\"journal_lag\":{lag_json},\"in_flight\":{},\"connections\":{conns},\"latency_ns_p50\":{p50},\"latency_ns_p99\":{p99},\"latency_ns_max\":{max}}}",
                c.applied.load(Ordering::Relaxed),
                journaled - published.min(journaled),
            );
        } else {
            eprintln!(
                "stats: {rate} ev/s, seq {published}, journal lag {lag_text}, in flight {}, {conns} conns, latency p50 {}us p99 {}us max {}us",
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
