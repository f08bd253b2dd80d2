//! The `margin-engine` binary: argument parsing only; the work is in the library.

use clap::{Parser, Subcommand};
use margin_engine::persist::hex;
use margin_engine::scenario::ScenarioConfig;
use margin_engine::Engine;
use margin_journal::Durability;
use margin_node::demo::{run_demo, DemoSummary};
use margin_node::pipeline::datadir::DataDir;
use margin_node::pipeline::{Pipeline, PipelineConfig};
use margin_node::run::{feed_lines, JsonLinesSink};
use margin_node::say;
use margin_node::server::ServeConfig;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "margin-engine",
    version,
    about = "Deterministic derivative margin engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine over a JSON Lines event stream, through the journaled pipeline.
    ///
    /// Every event is journaled into DIR/input before it is applied; outputs go to the
    /// hash-chained log DIR/output. A DIR that already holds a journal is recovered (snapshot +
    /// journal tail) and continued, never overwritten. Venue set-up events are allowed (the
    /// input is the operator's own).
    Run {
        /// Event stream, JSON Lines; `-` for standard input.
        #[arg(long)]
        input: String,
        /// Data directory (journals, output log, snapshots).
        #[arg(long, default_value = "./margin-data")]
        data: PathBuf,
        /// Where to write the output records as JSON Lines; `-` for standard output.
        #[arg(long)]
        outputs: Option<String>,
        /// Where to write the final state report (JSON).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Refuse a DIR that already holds a journal (without it, such a DIR is recovered and
        /// continued: running the same file twice applies its events twice).
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Serve the venue's sequencer and readers over TCP (JSON Lines and binary frames).
    ///
    /// Binds loopback unless told otherwise. Stops gracefully on SIGINT/SIGTERM: the current
    /// batch is finished, journals synced, then exit 0.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: std::net::SocketAddr,
        /// Data directory (journals, output log, snapshots).
        #[arg(long, default_value = "./margin-data")]
        data: PathBuf,
        /// Most simultaneous connections.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        #[command(flatten)]
        tokens: TokenArgs,
        /// Most simultaneous subscribers (each holds a thread; counted in --max-connections).
        #[arg(long, default_value_t = 64)]
        max_subscribers: usize,
        /// Seconds a connection has to authenticate when a token is set; then it is closed.
        #[arg(long, default_value_t = 10)]
        auth_timeout_secs: u64,
        /// Seconds a connection may send nothing before it is closed (0: never).
        #[arg(long, default_value_t = 600)]
        idle_timeout_secs: u64,
        /// Seconds between stats lines on stderr (0: none).
        #[arg(long, default_value_t = 10)]
        stats_secs: u64,
        /// Stats lines as JSON.
        #[arg(long)]
        json_stats: bool,
        /// Serve the live view (Prometheus /metrics, /healthz, /readyz, the JSON API and the
        /// dashboard) on this address; off unless given. Use a loopback address unless the
        /// network in front of it is trusted: /metrics and the page are public.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Milliseconds between the state views the sequencer hands the HTTP side (each is
        /// one clone of the state on the sequencer thread).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
        http_refresh_ms: u64,
        /// Replicate every input to this NATS server's JetStream (`nats://HOST:PORT`) after it
        /// is journaled and before its outputs are released; needs --stream. Takes the venue's
        /// primary lease, and refuses to start when another engine holds it.
        #[arg(long, value_name = "URL", requires = "stream")]
        replicate: Option<String>,
        #[command(flatten)]
        replica: ReplicaArgs,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Follow a primary's JetStream stream as a hot standby and read replica: journal and
    /// apply every input into DIR, check the primary's output heads, and with --takeover
    /// become the primary when its lease expires.
    Follow {
        /// The NATS server (`nats://HOST:PORT`).
        #[arg(long, value_name = "URL")]
        nats: String,
        /// Data directory of this follower (its own journals, output log, snapshots).
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        replica: ReplicaArgs,
        /// Take over as the primary when the lease expires: drain the stream, then serve on
        /// --listen and append to the same stream.
        #[arg(long, requires = "listen")]
        takeover: bool,
        /// Where to serve after taking over.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        tokens: TokenArgs,
        /// The live view (as `serve --http`): the read replica's while following, the
        /// primary's after a takeover (the same address).
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Write a generated scenario's events as JSON Lines (deterministic for a seed; the same
    /// generator, flags and defaults as `margin-bench gen`).
    Generate {
        #[command(flatten)]
        args: margin_node::generate::GenerateArgs,
    },
    /// Run the built-in default scenario (no arguments needed) through the journaled pipeline
    /// into a fresh data directory, and print what happened.
    Demo {
        /// Data directory for the demo (re-created on each run; only ever one the demo made).
        #[arg(long, default_value = "./margin-demo")]
        data: PathBuf,
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Trading accounts.
        #[arg(long, default_value_t = 5_000)]
        accounts: u32,
        /// Steps of trading after the set-up (each step is one or more events).
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Seed of the scenario.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Offer events at this rate per second, open loop (0: as fast as they are taken).
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Run the deterministic simulation: seeded venues through the real pipeline with storage
    /// faults and restarts, every recovery checked against an uninterrupted run.
    Simulate {
        /// Seconds to keep starting new runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seed of the whole simulation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replay just this run (the seed a failure printed).
        #[arg(long, value_parser = parse_seed)]
        run_seed: Option<u64>,
        /// Where the runs' data directories go (removed when a run passes).
        #[arg(long = "data", alias = "root", default_value = "./margin-sim")]
        root: PathBuf,
    },
}

/// The service's secrets. Each may come from the command line (visible to `ps`: for tests),
/// from the environment, or from a file (first line, surrounding white space trimmed).
#[derive(clap::Args, Clone, Debug)]
struct TokenArgs {
    /// Secret clients send (`{"auth":"..."}`) before events.
    #[arg(long, env = "MARGIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the --token secret.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Secret for connections allowed to send venue set-up events.
    #[arg(long, env = "MARGIN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// File holding the --admin-token secret.
    #[arg(long, conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// Secret subscribers send; without it subscribing needs no token (needs --token).
    #[arg(long, env = "MARGIN_SUBSCRIBE_TOKEN", hide_env_values = true)]
    subscribe_token: Option<String>,
    /// File holding the --subscribe-token secret.
    #[arg(long, conflicts_with = "subscribe_token")]
    subscribe_token_file: Option<PathBuf>,
}

type Tokens = (Option<String>, Option<String>, Option<String>);

impl TokenArgs {
    fn resolve(&self) -> Result<Tokens, String> {
        let one =
            |value: &Option<String>, file: &Option<PathBuf>| -> Result<Option<String>, String> {
                match (value, file) {
                    (Some(v), _) => Ok(Some(v.clone())),
                    (None, Some(path)) => std::fs::read_to_string(path)
                        .map(|t| Some(t.lines().next().unwrap_or("").trim().to_string()))
                        .map_err(|e| format!("cannot read token file {}: {e}", path.display())),
                    (None, None) => Ok(None),
                }
            };
        Ok((
            one(&self.token, &self.token_file)?,
            one(&self.admin_token, &self.admin_token_file)?,
            one(&self.subscribe_token, &self.subscribe_token_file)?,
        ))
    }
}

/// A seed in decimal or 0x-hex.
fn parse_seed(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s}: {e}"))
}

/// Journaling and pipeline options shared by `run`, `serve` and `demo`.
#[derive(clap::Args, Clone, Debug)]
struct PipelineArgs {
    /// When the input journal is synced: none (page cache), batch (group commit), every.
    #[arg(long, default_value = "none", value_parser = ["none", "batch", "every"])]
    durability: String,
    /// Batch durability: sync at most this many records after the last sync...
    #[arg(long, default_value_t = 1024)]
    batch_records: u32,
    /// ...or this many microseconds after the first unsynced one.
    #[arg(long, default_value_t = 1000)]
    batch_us: u64,
    /// Release outputs only once their input is durable (needs batch or every).
    #[arg(long)]
    release_after_durable: bool,
    /// Write a snapshot every N inputs (0: only at shutdown).
    #[arg(long, default_value_t = 1_000_000)]
    snapshot_every: u64,
    /// Keep the newest N snapshots (starting points for recovery and parallel verification).
    #[arg(long, default_value_t = margin_node::pipeline::snapshot::SNAPSHOTS_KEPT)]
    snapshots_kept: usize,
    /// Size of journal segment files, MiB.
    #[arg(long, default_value_t = 64)]
    segment_mb: u64,
    /// Skip the journaled input with this seq at recovery instead of applying it (repeatable):
    /// for an input that kills the sequencer. It must be journaled and have no output yet; it
    /// is listed in DIR/SKIPPED for good and answered `rejected` with reason `skipped` in the
    /// output log, so every replay skips it the same way.
    #[arg(long = "skip-input", value_name = "SEQ")]
    skip_inputs: Vec<u64>,
}

impl PipelineArgs {
    fn config(&self, data: &std::path::Path) -> PipelineConfig {
        let durability = match self.durability.as_str() {
            "batch" => Durability::Batch {
                max_records: self.batch_records.max(1),
                max_delay: std::time::Duration::from_micros(self.batch_us),
            },
            "every" => Durability::Every,
            _ => Durability::None,
        };
        PipelineConfig {
            durability,
            release_after_durable: self.release_after_durable,
            snapshot_every: self.snapshot_every,
            snapshots_kept: self.snapshots_kept.max(1),
            segment_bytes: self.segment_mb.max(1) << 20,
            skip_inputs: self.skip_inputs.clone(),
            ..PipelineConfig::new(data)
        }
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("margin-engine: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            input,
            data,
            outputs,
            state,
            fresh,
            pipeline,
        } => {
            if fresh && DataDir::new(&data).has_journal() {
                return fail(format!(
                    "--fresh: {} already holds a journal; remove it, or drop --fresh to continue it",
                    data.display()
                ));
            }
            run(
                &input,
                &pipeline.config(&data),
                outputs.as_deref(),
                state.as_deref(),
            )
        }
        Command::Serve {
            listen,
            data,
            max_connections,
            tokens,
            max_subscribers,
            auth_timeout_secs,
            idle_timeout_secs,
            stats_secs,
            json_stats,
            http,
            http_refresh_ms,
            replicate,
            replica,
            pipeline,
        } => {
            let (token, admin_token, subscribe_token) = match tokens.resolve() {
                Ok(t) => t,
                Err(e) => return fail(e),
            };
            let cfg = ServeConfig {
                max_connections,
                token,
                admin_token,
                subscribe_token,
                max_subscribers,
                auth_timeout: std::time::Duration::from_secs(auth_timeout_secs),
                idle_timeout: std::time::Duration::from_secs(idle_timeout_secs),
                stats_secs,
                json_stats,
                http,
                http_refresh: std::time::Duration::from_millis(http_refresh_ms),
                replicate: match replicate.map(|url| replica.config(url)).transpose() {
                    Ok(r) => r.map(|r| (r, None)),
                    Err(e) => return fail(e),
                },
                ..ServeConfig::new(listen)
            };
            if let Err(e) = cfg.check() {
                return fail(e);
            }
            serve(cfg, pipeline.config(&data))
        }
        Command::Follow {
            nats,
            data,
            replica,
            takeover,
            listen,
            tokens,
            http,
            pipeline,
        } => {
            let replica = match replica.config(nats) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            let takeover = match (takeover, listen) {
                (true, Some(listen)) => {
                    let (token, admin_token, subscribe_token) = match tokens.resolve() {
                        Ok(t) => t,
                        Err(e) => return fail(e),
                    };
                    let cfg = ServeConfig {
                        token,
                        admin_token,
                        subscribe_token,
                        http,
                        ..ServeConfig::new(listen)
                    };
                    if let Err(e) = cfg.check() {
                        return fail(e);
                    }
                    Some(cfg)
                }
                _ => None,
            };
            follow(replica, pipeline.config(&data), takeover, http)
        }
        Command::Demo {
            data,
            pipeline,
            accounts,
            events,
            seed,
            rate,
        } => demo(accounts, events, seed, rate, data, pipeline),
        Command::Simulate {
            seconds,
            seed,
            run_seed,
            root,
        } => simulate(seconds, seed, run_seed, root),
        Command::Generate { args } => match args.config() {
            Ok(cfg) => generate(cfg),
            Err(e) => fail(e),
        },
    }
}

fn simulate(seconds: u64, seed: u64, run_seed: Option<u64>, root: PathBuf) -> ExitCode {
    use margin_node::sim::{run_one, simulate, SimConfig, SimStats};
    let result = match run_seed {
        Some(s) => {
            let mut stats = SimStats::default();
            run_one(s, &root, &mut stats).map(|_| stats)
        }
        None => {
            let cfg = SimConfig {
                seed,
                budget: std::time::Duration::from_secs(seconds),
                runs_max: u64::MAX,
                root: root.clone(),
            };
            // indicatif draws only on a terminal: piped, stderr gets no carriage returns.
            let bar = indicatif::ProgressBar::new_spinner();
            let shown = simulate(&cfg, |s| {
                bar.set_message(format!(
                    "runs {}  inputs {}  restarts {}  faults {}",
                    s.runs,
                    s.submitted,
                    s.restarts,
                    s.faults_total()
                ));
                bar.tick();
            });
            bar.finish_and_clear();
            shown
        }
    };
    let _ = std::fs::remove_dir(&root);
    match result {
        Ok(s) => {
            say!("runs                  {}", s.runs);
            say!("venue inputs          {}", s.inputs);
            say!(
                "inputs submitted      {} (resubmissions after crashes included)",
                s.submitted
            );
            say!("malformed lines       {}", s.malformed);
            say!("restarts              {}", s.restarts);
            say!("states checked        {}", s.checked_states);
            say!("corruptions detected  {}", s.corruptions_detected);
            say!("faults injected       {}", s.faults_total());
            for (kind, n) in &s.faults {
                say!("  {kind:<48} {n}");
            }
            say!("lost or invented      0");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("{f}");
            ExitCode::from(1)
        }
    }
}

fn open_input(path: &str) -> Result<Box<dyn io::BufRead>, String> {
    if path == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    File::open(path)
        .map(|f| Box::new(BufReader::with_capacity(1 << 16, f)) as Box<dyn io::BufRead>)
        .map_err(|e| format!("cannot read --input {path}: {e}"))
}

fn open_output(path: &str) -> Result<Box<dyn Write + Send>, String> {
    if path == "-" {
        return Ok(Box::new(BufWriter::new(io::stdout())));
    }
    File::create(path)
        .map(|f| Box::new(BufWriter::with_capacity(1 << 16, f)) as Box<dyn Write + Send>)
        .map_err(|e| format!("cannot write --outputs {path}: {e}"))
}

/// True when two paths name one existing file.
fn same_file(a: &str, b: &str) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn write_state(engine: &Engine, path: &std::path::Path) -> Result<(), String> {
    let report = engine
        .state
        .report(None)
        .map_err(|_| "state report overflows".to_string())?;
    let text = serde_json::to_string_pretty(&report).expect("report serializes");
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write --state {}: {e}", path.display()))
}

fn run(
    input: &str,
    cfg: &PipelineConfig,
    outputs: Option<&str>,
    state: Option<&std::path::Path>,
) -> ExitCode {
    let reader = match open_input(input) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(out) = outputs.filter(|o| *o != "-" && same_file(o, input)) {
        return fail(format!(
            "--outputs {out} is the --input file: writing it would erase the events being read"
        ));
    }
    let writer = match outputs.map(open_output).transpose() {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let sink = JsonLinesSink::new(writer);
    let summary = sink.summary.clone();
    let mut pipeline = match Pipeline::start(cfg.clone(), Box::new(sink)) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    report_recovery(&pipeline, &cfg.data);
    let fed = feed_lines(&mut pipeline, reader);
    let finished = match pipeline.finish() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("margin-engine: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = fed {
        return fail(format!("reading {input}: {e}"));
    }
    if let Some(path) = state {
        if let Err(e) = write_state(&finished.engine, path) {
            return fail(e);
        }
    }
    let s = summary.lock().map(|s| s.clone()).unwrap_or_default();
    eprintln!(
        "margin-engine: {} lines, {} accepted, {} rejected, {} malformed, {} records; journal at seq {}, output head {}",
        s.lines,
        s.accepted,
        s.rejected,
        s.malformed,
        s.records,
        finished.last_seq,
        hex(&finished.output_head)
    );
    ExitCode::SUCCESS
}

/// The replication flags shared by `serve --replicate` and `follow`.
#[derive(clap::Args, Clone, Debug)]
struct ReplicaArgs {
    /// The venue's JetStream stream (one per venue): letters, digits, '-' and '_'.
    #[arg(long, default_value = "margin-venue")]
    stream: String,
    /// Milliseconds the primary's lease lasts without renewal (renewed every quarter of it);
    /// a follower with --takeover takes over this long after the primary stopped renewing.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(500..=600_000))]
    lease_ms: u64,
    /// The primary publishes its output head every this many inputs; followers compare.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    heads_every: u64,
    /// Most publishes in flight without an acknowledgement.
    #[arg(long, default_value_t = 4_096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    publish_window: u64,
}

impl ReplicaArgs {
    fn config(&self, url: String) -> Result<margin_node::replica::ReplicaConfig, String> {
        let cfg = margin_node::replica::ReplicaConfig {
            lease: std::time::Duration::from_millis(self.lease_ms),
            heads_every: self.heads_every,
            window: self.publish_window as usize,
            ..margin_node::replica::ReplicaConfig::new(url, self.stream.clone())
        };
        cfg.check()?;
        Ok(cfg)
    }
}

fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    Ok(stop)
}

fn follow(
    replica: margin_node::replica::ReplicaConfig,
    pipeline: PipelineConfig,
    takeover: Option<ServeConfig>,
    http: Option<std::net::SocketAddr>,
) -> ExitCode {
    use margin_node::replica::follow::{follow, FollowConfig, FollowEnd};
    let stop = match stop_on_signals() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let cfg = FollowConfig {
        replica,
        pipeline,
        takeover,
        http,
    };
    match follow(cfg, stop) {
        Ok(FollowEnd::Stopped {
            last_seq,
            output_head,
        }) => {
            eprintln!(
                "margin-engine: follower stopped; journal at seq {last_seq}, output head {}",
                hex(&output_head)
            );
            ExitCode::SUCCESS
        }
        Ok(FollowEnd::Served(s)) => served(Ok(s)),
        Err(e) => served(Err(e)),
    }
}

fn serve(cfg: ServeConfig, pipeline: PipelineConfig) -> ExitCode {
    let stop = match stop_on_signals() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    served(margin_node::server::serve(cfg, pipeline, stop))
}

/// The last line of a serving engine, and its exit status.
fn served(result: Result<margin_node::server::ServeSummary, String>) -> ExitCode {
    match result {
        Ok(s) => {
            eprintln!(
                "margin-engine: stopped after {} connections; journal at seq {}, output head {}",
                s.connections,
                s.last_seq,
                hex(&s.output_head)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("margin-engine: {e}");
            ExitCode::from(1)
        }
    }
}

fn report_recovery(pipeline: &Pipeline, data: &std::path::Path) {
    let last = pipeline
        .counters
        .journaled
        .load(std::sync::atomic::Ordering::Relaxed);
    for line in pipeline.recovery().lines(data, last) {
        eprintln!("margin-engine: {line}");
    }
}

fn generate(cfg: ScenarioConfig) -> ExitCode {
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    if let Err(e) = margin_node::generate::write_jsonl(cfg, &mut out).and_then(|_| out.flush()) {
        margin_node::stdout::quit(&e);
    }
    ExitCode::SUCCESS
}

fn demo(
    accounts: u32,
    events: u64,
    seed: u64,
    rate: u64,
    data: PathBuf,
    pipeline: PipelineArgs,
) -> ExitCode {
    let scenario = ScenarioConfig {
        seed,
        accounts,
        events,
        ..ScenarioConfig::default()
    };
    let markets = scenario.markets;
    eprintln!("margin-engine demo: {accounts} accounts, {markets} markets, {events} steps of trading (seed {seed})");
    let bar = indicatif::ProgressBar::new(events);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:<11} [{bar:40}] {pos}/{len} {per_sec}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let progress = |done: u64, total: u64, phase: &str| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(phase.to_string());
    };
    let summary = match run_demo(scenario, pipeline.config(&data), rate, progress) {
        Ok(s) => s,
        Err(e) => {
            bar.abandon();
            return fail(e);
        }
    };
    bar.finish_and_clear();
    print_demo(&summary);
    ExitCode::SUCCESS
}

fn print_demo(s: &DemoSummary) {
    let h = &s.latency_ns;
    let count = |t: &str| s.records.get(t).copied().unwrap_or(0);
    say!("data dir        {}", s.data.display());
    say!(
        "venue           {} accounts, {} markets",
        s.accounts,
        s.markets
    );
    say!(
        "inputs          {} ({} accepted, {} rejected), generated in {} ms",
        s.inputs,
        s.accepted,
        s.inputs - s.accepted,
        s.generate_ns / 1_000_000
    );
    say!(
        "throughput      {} events/s through the journaled pipeline ({} ms)",
        s.events_per_second(),
        s.elapsed_ns / 1_000_000
    );
    let load = if s.rate > 0 {
        format!("offered at {} events/s, open loop", s.rate)
    } else {
        "unpaced: mostly time queued behind earlier events; use --rate for latency".to_string()
    };
    say!(
        "latency (us)    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}   (ingress to output log; {load})",
        h.value_at_quantile(0.5) / 1000,
        h.value_at_quantile(0.9) / 1000,
        h.value_at_quantile(0.99) / 1000,
        h.value_at_quantile(0.999) / 1000,
        h.max() / 1000
    );
    say!(
        "risk            {} margin calls, {} liquidations started, {} auction fills, {} ended",
        count("margin_call"),
        count("liquidation_started"),
        count("liquidation_fill"),
        count("liquidation_ended")
    );
    say!(
        "backstop        {} inputs closed positions by ADL ({} ADL fills), {} bankruptcies",
        s.backstops,
        count("adl"),
        count("bankruptcy")
    );
    say!(
        "insurance fund  {} -> {}",
        s.insurance_start,
        s.insurance_end
    );
    let reasons: Vec<String> = s.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
    say!("rejections      {}", reasons.join(", "));
    say!(
        "records         {} in the output log",
        s.records.values().sum::<u64>()
    );
    say!("output head     {}", s.output_head);
    say!("state hash      {}", s.state_hash);
    say!("");
    // Commands that run as printed from where the demo was started (the replay tool is built
    // by cargo on first use).
    let d = s.data.display();
    say!("replay and check it:   cargo run --release -p margin-replay -- verify --data {d}");
    say!(
        "audit it:              cargo run --release -p margin-replay -- audit --data {d} --report {d}-audit"
    );
    say!(
        "state of an account:   cargo run --release -p margin-replay -- state --data {d} --account {}",
        s.sample_account
    );
}
