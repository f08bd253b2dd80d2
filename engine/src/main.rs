//! The `margin-engine` binary: argument parsing only; the work is in the library.

use clap::{Parser, Subcommand};
use margin_engine::demo::run_demo;
use margin_engine::persist::hex;
use margin_engine::pipeline::recovery::RecoveryReport;
use margin_engine::pipeline::{Pipeline, PipelineConfig};
use margin_engine::run::{feed_lines, JsonLinesSink};
use margin_engine::scenario::ScenarioConfig;
use margin_engine::Engine;
use margin_journal::Durability;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Write a generated scenario's events as JSON Lines (deterministic for a seed).
    Generate {
        #[arg(long, default_value_t = 100)]
        accounts: u32,
        #[arg(long, default_value_t = 1_000)]
        events: u64,
        #[arg(long, default_value_t = 3)]
        markets: u8,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Simulated hours the events span.
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
    /// Run the built-in default scenario (no arguments needed) and print what happened.
    Demo {
        /// Trading accounts.
        #[arg(long, default_value_t = 2_000)]
        accounts: u32,
        /// Events after the set-up.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Seed of the scenario.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
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
    /// Size of journal segment files, MiB.
    #[arg(long, default_value_t = 64)]
    segment_mb: u64,
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
            segment_bytes: self.segment_mb.max(1) << 20,
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
            pipeline,
        } => run(
            &input,
            &pipeline.config(&data),
            outputs.as_deref(),
            state.as_deref(),
        ),
        Command::Demo {
            accounts,
            events,
            seed,
        } => demo(accounts, events, seed),
        Command::Generate {
            accounts,
            events,
            markets,
            seed,
            hours,
        } => {
            let cfg = ScenarioConfig {
                seed,
                accounts,
                events,
                markets,
                hours,
                ..ScenarioConfig::default()
            };
            generate(cfg)
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
    report_recovery(pipeline.recovery(), &cfg.data);
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

fn report_recovery(r: &RecoveryReport, data: &std::path::Path) {
    if r.replayed > 0 || r.snapshot_seq.is_some() {
        eprintln!(
            "margin-engine: recovered {}: snapshot {:?}, {} inputs replayed, {} outputs rewritten",
            data.display(),
            r.snapshot_seq,
            r.replayed,
            r.outputs_written
        );
    }
    for w in &r.warnings {
        eprintln!("margin-engine: warning: {w}");
    }
}

fn generate(cfg: ScenarioConfig) -> ExitCode {
    let mut out = BufWriter::new(io::stdout().lock());
    for input in margin_engine::scenario::Scenario::new(cfg) {
        let line = margin_engine::codec::input_line(&input);
        if writeln!(out, "{line}").is_err() {
            return fail("cannot write to standard output");
        }
    }
    if out.flush().is_err() {
        return fail("cannot write to standard output");
    }
    ExitCode::SUCCESS
}

fn demo(accounts: u32, events: u64, seed: u64) -> ExitCode {
    let cfg = ScenarioConfig {
        seed,
        accounts,
        events,
        ..ScenarioConfig::default()
    };
    eprintln!(
        "margin-engine demo: generating {events} events over {accounts} accounts (seed {seed})..."
    );
    let (_engine, s) = run_demo(cfg, |_| {});
    let h = &s.latency_ns;
    println!("inputs applied       {}", s.inputs);
    println!(
        "accepted / rejected  {} / {}",
        s.accepted,
        s.inputs - s.accepted
    );
    println!(
        "throughput           {} events/s ({} ms)",
        s.events_per_second(),
        s.elapsed_ns / 1_000_000
    );
    println!(
        "apply latency (ns)   p50 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max()
    );
    println!("accounts             {}", s.accounts);
    println!(
        "insurance fund       {} -> {}",
        s.insurance_start, s.insurance_end
    );
    println!("records by type:");
    for (k, v) in &s.records {
        println!("  {k:<22} {v}");
    }
    println!("rejections by reason:");
    for (k, v) in &s.rejected {
        println!("  {k:<22} {v}");
    }
    ExitCode::SUCCESS
}
