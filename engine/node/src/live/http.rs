//! The HTTP server of the live view: hyper's HTTP/1 server on a one-thread tokio runtime of its
//! own. Read-only routes; at most [`CONNECTIONS_MAX`] connections at once (more are closed on
//! accept), request heads within hyper's smallest buffer (8 KiB), request targets within
//! [`URL_BYTES_MAX`], one request per connection (no keep-alive, so an idle browser holds
//! nothing) and [`CONNECTION_DEADLINE`] for the whole exchange.
//!
//! | route | access | answer |
//! |---|---|---|
//! | `GET /metrics` | public | OpenMetrics text |
//! | `GET /healthz` | public | 200 `ok`, or 503 naming the failing stage |
//! | `GET /readyz` | public | 200 once recovery finished and a state view is published, else 503 (served during recovery too) |
//! | `GET /` | public | the dashboard page (static; it reads the API with the token it is given) |
//! | `GET /api/summary`, `/api/markets`, `/api/accounts/{id}`, `/api/risk?limit=N`, `/api/liquidations`, `/api/stats` | token (when the service has one) | JSON |
//!
//! With tokens configured, `/api/*` needs `Authorization: Bearer TOKEN` with a token that may
//! subscribe (the subscribe, writer or admin token), as the TCP service's readers do.

use super::view::{self, StateView};
use super::LiveCounters;
use crate::pipeline::Counters;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once; one more is closed as soon as it is accepted.
pub const CONNECTIONS_MAX: usize = 64;
/// Longest request target accepted (path and query).
pub const URL_BYTES_MAX: usize = 2048;
/// The time a connection has to send its request and take the answer.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);
/// The I/O thread beats at least every 100 ms; past this it is reported stalled.
const INGRESS_STALL_MS: u64 = 5_000;
/// How often the view keeper looks for a new state clone.
const KEEPER_PERIOD: Duration = Duration::from_millis(20);

const DASHBOARD: &str = include_str!("dashboard.html");

/// What the HTTP threads read.
pub struct Shared {
    pub live: Arc<LiveCounters>,
    pub counters: Arc<Counters>,
    pub view: StateView,
    /// Tokens that may read `/api/*` (empty: no token needed).
    pub read_tokens: Vec<String>,
    /// Milliseconds (monotonic) of the I/O thread's last loop.
    pub ingress_beat_ms: AtomicU64,
    pub stop: Arc<AtomicBool>,
    /// The states of a journal at any seq (`margin-replay serve`: `?at=SEQ`); None live.
    pub history: Option<History>,
}

/// Loads the state after any input seq of a data directory, remembering the last one.
pub struct History {
    pub load: Box<dyn Fn(u64) -> Result<margin_engine::state::State, String> + Send + Sync>,
    last: std::sync::Mutex<Option<Box<margin_engine::state::State>>>,
}

impl History {
    pub fn new(
        load: Box<dyn Fn(u64) -> Result<margin_engine::state::State, String> + Send + Sync>,
    ) -> History {
        History {
            load,
            last: std::sync::Mutex::new(None),
        }
    }

    fn with_state<R>(
        &self,
        seq: u64,
        f: impl FnOnce(&mut margin_engine::state::State) -> Result<R, (u16, String)>,
    ) -> Result<R, (u16, String)> {
        let mut last = self
            .last
            .lock()
            .map_err(|_| (500, "the history cache is poisoned".to_string()))?;
        if last.as_ref().is_none_or(|s| s.input_seq != seq) {
            let mut state = (self.load)(seq).map_err(|e| (404, e))?;
            state.plain_valuation = true;
            *last = Some(Box::new(state));
        }
        f(last.as_mut().expect("loaded above"))
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared")
    }
}

/// A running HTTP view; dropped, it stops its threads.
/// The live view's side of a running pipeline: the counters the publisher fills, what the HTTP
/// threads read, and the HTTP server when an address was given. The state feed is wired into
/// the pipeline's configuration, and the HTTP side starts before recovery, so that /healthz and
/// /readyz answer during it. Held for as long as the pipeline runs.
pub struct LiveSide {
    pub live: Arc<LiveCounters>,
    pub shared: Arc<Shared>,
    pub http: Option<HttpView>,
}

impl LiveSide {
    pub fn start(
        http: Option<std::net::SocketAddr>,
        refresh: std::time::Duration,
        read_tokens: Vec<String>,
        pipeline: &mut crate::pipeline::PipelineConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<LiveSide, String> {
        let live = Arc::new(LiveCounters::default());
        let (view_tx, view_rx) = crossbeam_channel::bounded(1);
        if http.is_some() {
            pipeline.view = Some(crate::live::ViewFeed {
                tx: view_tx,
                every: refresh,
                live: live.clone(),
            });
        }
        let counters = Arc::new(Counters::default());
        pipeline.counters = Some(counters.clone());
        let shared = Arc::new(Shared {
            live: live.clone(),
            counters,
            view: StateView::new(view_rx),
            read_tokens,
            ingress_beat_ms: AtomicU64::new(crate::pipeline::now_ns() / 1_000_000),
            stop,
            history: None,
        });
        let http = match http {
            None => None,
            Some(addr) => {
                let view = HttpView::start(addr, shared.clone())?;
                eprintln!("margin-engine: live view on http://{}/", view.addr);
                Some(view)
            }
        };
        Ok(LiveSide { live, shared, http })
    }

    /// Marks the engine ready (recovery done) and beats.
    pub fn ready(&self) {
        self.live.ready.store(true, Ordering::Release);
        self.beat();
    }

    /// The loop that feeds the pipeline is alive (read by /healthz).
    pub fn beat(&self) {
        self.shared
            .ingress_beat_ms
            .store(crate::pipeline::now_ns() / 1_000_000, Ordering::Release);
    }
}

pub struct HttpView {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    pub addr: std::net::SocketAddr,
}

impl HttpView {
    pub fn start(addr: std::net::SocketAddr, shared: Arc<Shared>) -> Result<HttpView, String> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot serve HTTP on {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let registry = Arc::new(super::metrics::registry(shared.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("http".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .enable_time()
                        .build();
                    match rt {
                        Ok(rt) => rt.block_on(serve(listener, shared, registry, stop)),
                        Err(e) => eprintln!("margin-engine: the live view cannot start: {e}"),
                    }
                })
                .map_err(|e| e.to_string())?
        };
        // Takes the sequencer's clones as they come (its channel holds one) and promotes each
        // once published, so that the view is at most one refresh behind.
        let keeper = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("http-view".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        shared
                            .view
                            .refresh(shared.counters.published.load(Ordering::Acquire));
                        std::thread::sleep(KEEPER_PERIOD);
                    }
                })
                .map_err(|e| e.to_string())?
        };
        Ok(HttpView {
            stop,
            threads: vec![server, keeper],
            addr,
        })
    }
}

impl Drop for HttpView {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// Accepts connections until `stop`, each served on its own task within the bounds.
async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    registry: Arc<prometheus_client::registry::Registry>,
    stop: Arc<AtomicBool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        eprintln!("margin-engine: the live view cannot register its listener");
        return;
    };
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        let Ok((stream, _)) = accepted else { continue };
        if active.load(Ordering::Acquire) >= CONNECTIONS_MAX {
            drop(stream);
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (shared, registry, active) = (shared.clone(), registry.clone(), active.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = route(&req, &shared, &registry);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .max_buf_size(8192)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
            active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

type Answer = hyper::Response<http_body_util::Full<bytes::Bytes>>;

fn answer(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body.into())));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

fn json(status: u16, v: &serde_json::Value) -> Answer {
    answer(
        status,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn error(status: u16, message: &str) -> Answer {
    json(status, &serde_json::json!({ "error": message }))
}

fn route<B>(
    req: &hyper::Request<B>,
    sh: &Shared,
    registry: &prometheus_client::registry::Registry,
) -> Answer {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    if path.len() + query.len() > URL_BYTES_MAX {
        return error(
            414,
            &format!("request target longer than {URL_BYTES_MAX} bytes"),
        );
    }
    if !matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD) {
        return error(405, "the live view is read-only: GET only");
    }
    sh.view
        .refresh(sh.counters.published.load(Ordering::Acquire));
    match path {
        "/metrics" => metrics(registry),
        "/healthz" => healthz(sh),
        "/readyz" => readyz(sh),
        "/" | "/index.html" => answer(200, "text/html; charset=utf-8", DASHBOARD),
        p if p.starts_with("/api/") => {
            if !authorized(req, sh) {
                return error(
                    401,
                    "this route needs Authorization: Bearer TOKEN (a token that may subscribe)",
                );
            }
            api(&p[5..], query, sh)
        }
        _ => error(404, &format!("no route {path}")),
    }
}

fn authorized<B>(req: &hyper::Request<B>, sh: &Shared) -> bool {
    if sh.read_tokens.is_empty() {
        return true;
    }
    let Some(token) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    sh.read_tokens
        .iter()
        .any(|t| crate::server::same_secret(t, token.trim()))
}

fn metrics(registry: &prometheus_client::registry::Registry) -> Answer {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => answer(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        ),
        Err(_) => error(500, "metrics could not be encoded"),
    }
}

/// Which stage is down, if one is.
fn failing_stage(sh: &Shared) -> Option<String> {
    if let Some(why) = sh.counters.failure() {
        let stage = if sh.counters.sequencer_died_at.load(Ordering::Acquire) > 0 {
            "sequencer"
        } else {
            "journal"
        };
        return Some(format!("{stage}: {why}"));
    }
    if sh.counters.publisher_failed.load(Ordering::Acquire) {
        return Some("publisher: the output log failed; nothing more is released".into());
    }
    if sh.history.is_some() || !sh.live.ready.load(Ordering::Acquire) {
        // margin-replay serve has no pipeline behind it; during recovery the I/O thread has
        // not started (recovering is not failing: /readyz says it).
        return None;
    }
    let beat = sh.ingress_beat_ms.load(Ordering::Acquire);
    let now = crate::pipeline::now_ns() / 1_000_000;
    if now.saturating_sub(beat) > INGRESS_STALL_MS {
        return Some(format!(
            "ingress: the I/O thread has not run for {} ms",
            now.saturating_sub(beat)
        ));
    }
    if sh.stop.load(Ordering::Relaxed) {
        return Some("ingress: the service is stopping".into());
    }
    None
}

fn healthz(sh: &Shared) -> Answer {
    match failing_stage(sh) {
        None => answer(200, "text/plain; charset=utf-8", "ok\n"),
        Some(why) => answer(503, "text/plain; charset=utf-8", format!("{why}\n")),
    }
}

fn readyz(sh: &Shared) -> Answer {
    let ready = sh.live.ready.load(Ordering::Acquire) && sh.view.with(|_| ()).is_some();
    if ready {
        answer(200, "text/plain; charset=utf-8", "ready\n")
    } else {
        answer(503, "text/plain; charset=utf-8", "recovering\n")
    }
}

fn query_param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn api(path: &str, query: &str, sh: &Shared) -> Answer {
    let c = &sh.counters;
    let seqs = serde_json::json!({
        "journaled": c.journaled.load(Ordering::Relaxed),
        "durable": c.durable_seq.load(Ordering::Relaxed),
        "applied": c.applied.load(Ordering::Relaxed),
        "published": c.published.load(Ordering::Relaxed),
        "replicated": c.replicated_seq.load(Ordering::Relaxed),
    });
    if path == "stats" {
        let inputs: Vec<serde_json::Value> = sh
            .live
            .inputs()
            .into_iter()
            .map(|i| serde_json::json!({"type": i.event_type, "accepted": i.accepted, "rejected": i.rejected}))
            .collect();
        let rejections: serde_json::Map<String, serde_json::Value> = sh
            .live
            .rejections()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.to_string(), n.into()))
            .collect();
        return json(
            200,
            &serde_json::json!({
                "seqs": seqs,
                "last_minute": sh.live.minute(),
                "inputs": inputs,
                "malformed": sh.live.malformed.load(Ordering::Relaxed),
                "rejections": rejections,
                "risk_records": sh.live.records().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            }),
        );
    }
    let recent = if path == "liquidations" {
        sh.live.recent()
    } else {
        Vec::new()
    };
    // Liquidations mix in the publisher's recent records: not remembered with the view.
    let key = format!("{path}?{query}");
    let compute =
        |st: &mut margin_engine::state::State| -> Result<serde_json::Value, (u16, String)> {
            Ok(match path {
                "summary" => view::summary(st),
                "markets" => view::markets(st),
                "liquidations" => view::liquidations(st, recent),
                "risk" => {
                    let limit = match query_param(query, "limit").map(str::parse::<usize>) {
                        None => 20,
                        Some(Ok(n)) if (1..=view::RISK_LIMIT_MAX).contains(&n) => n,
                        Some(_) => {
                            return Err((
                                400,
                                format!("limit must be an integer in 1..={}", view::RISK_LIMIT_MAX),
                            ))
                        }
                    };
                    view::risk(st, limit)
                }
                p if p.starts_with("accounts/") => {
                    let id = &p["accounts/".len()..];
                    let Ok(id) = id.parse::<u64>() else {
                        return Err((400, format!("account id {id:?} is not an integer")));
                    };
                    match view::account(st, id) {
                        Some(v) => v,
                        None => {
                            return Err((
                                404,
                                format!("account {id} does not exist at seq {}", st.input_seq),
                            ))
                        }
                    }
                }
                _ => return Err((404, format!("no route /api/{path}"))),
            })
        };
    let answer = match query_param(query, "at") {
        Some(at) => {
            let Ok(at) = at.parse::<u64>() else {
                return error(400, &format!("at={at:?} is not an input seq"));
            };
            match &sh.history {
                Some(h) => Some(h.with_state(at, compute)),
                None => Some(Err((
                    400,
                    "?at=SEQ is served by margin-replay serve (a live engine shows its latest seq)"
                        .to_string(),
                ))),
            }
        }
        None if path == "liquidations" => sh.view.with(compute),
        None => sh.view.answer(&key, compute),
    };
    match answer {
        None => error(503, "no state view yet (recovering)"),
        Some(Ok(mut v)) => {
            if path == "summary" {
                // The pipeline's seqs are live, not of the view.
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("seqs".into(), seqs);
                }
            }
            json(200, &v)
        }
        Some(Err((status, message))) => error(status, &message),
    }
}

/// How often the sequencer hands the view a state clone by default.
pub const REFRESH_DEFAULT: Duration = Duration::from_millis(1000);

/// Serves the live view's routes over a data directory's history (`margin-replay serve`):
/// `state` is the journal's end (shown without `?at=`), `load` gives the state after any seq.
/// Runs until `stop` is set.
pub fn serve_history(
    addr: std::net::SocketAddr,
    state: margin_engine::state::State,
    load: Box<dyn Fn(u64) -> Result<margin_engine::state::State, String> + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> Result<HttpView, String> {
    let counters = Arc::new(Counters::default());
    for c in [
        &counters.journaled,
        &counters.durable_seq,
        &counters.applied,
        &counters.published,
    ] {
        c.store(state.input_seq, Ordering::Relaxed);
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let _ = tx.send(Box::new(state));
    let live = Arc::new(LiveCounters::default());
    live.ready.store(true, Ordering::Release);
    let shared = Arc::new(Shared {
        live,
        counters,
        view: StateView::new(rx),
        read_tokens: Vec::new(),
        ingress_beat_ms: AtomicU64::new(0),
        stop,
        history: Some(History::new(load)),
    });
    HttpView::start(addr, shared)
}
