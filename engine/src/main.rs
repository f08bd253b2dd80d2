//! The `margin-engine` binary: argument parsing only; the work is in the library.

use clap::{Parser, Subcommand};
use margin_engine::demo::run_demo;
use margin_engine::run::run_in_memory;
use margin_engine::scenario::ScenarioConfig;
use margin_engine::Engine;
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
    /// Run the engine over a JSON Lines event stream.
    ///
    /// This build applies the stream in memory: nothing is journaled yet, so a data directory
    /// is not written. Venue set-up events are allowed (the input is the operator's own).
    Run {
        /// Event stream, JSON Lines; `-` for standard input.
        #[arg(long)]
        input: String,
        /// Where to write the output records as JSON Lines; `-` for standard output.
        #[arg(long)]
        outputs: Option<String>,
        /// Where to write the final state report (JSON).
        #[arg(long)]
        state: Option<PathBuf>,
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

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("margin-engine: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            input,
            outputs,
            state,
        } => run(&input, outputs.as_deref(), state.as_deref()),
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

fn open_output(path: &str) -> Result<Box<dyn Write>, String> {
    if path == "-" {
        return Ok(Box::new(BufWriter::new(io::stdout())));
    }
    File::create(path)
        .map(|f| Box::new(BufWriter::with_capacity(1 << 16, f)) as Box<dyn Write>)
        .map_err(|e| format!("cannot write --outputs {path}: {e}"))
}

fn run(input: &str, outputs: Option<&str>, state: Option<&std::path::Path>) -> ExitCode {
    let reader = match open_input(input) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut writer = match outputs.map(open_output).transpose() {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut engine = Engine::new();
    let summary = match run_in_memory(&mut engine, reader, writer.as_mut()) {
        Ok(s) => s,
        Err(e) => return fail(format!("reading {input}: {e}")),
    };
    if let Some(w) = writer.as_mut() {
        if let Err(e) = w.flush() {
            return fail(format!("writing outputs: {e}"));
        }
    }
    if let Some(path) = state {
        let report = match engine.state.report(None) {
            Ok(r) => r,
            Err(_) => return fail("state report overflows"),
        };
        let text = serde_json::to_string_pretty(&report).expect("report serializes");
        if let Err(e) = std::fs::write(path, text + "\n") {
            return fail(format!("cannot write --state {}: {e}", path.display()));
        }
    }
    eprintln!(
        "margin-engine: {} lines, {} accepted, {} rejected, {} malformed, {} records",
        summary.lines, summary.accepted, summary.rejected, summary.malformed, summary.records
    );
    ExitCode::SUCCESS
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
