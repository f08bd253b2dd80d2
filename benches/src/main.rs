//! `margin-bench`: the workload generator and the benchmark report (see docs/benchmarks.md).

use clap::{Parser, Subcommand};
use margin_bench::report::{self, Plan};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "margin-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the seeded workload as JSON Lines (same seed, same bytes; the same generator,
    /// flags and defaults as `margin-engine generate`).
    Gen {
        #[command(flatten)]
        args: margin_node::generate::GenerateArgs,
    },
    /// Run the benchmarks and write the report folder (report.md, .hgrm files, PNG plots).
    Report {
        #[arg(long, default_value = "bench-report")]
        out: PathBuf,
        /// Small sizes, seconds in all: checks the harness, measures nothing worth quoting.
        #[arg(long)]
        smoke: bool,
        /// Override the scenario's trading accounts.
        #[arg(long)]
        accounts: Option<u32>,
        /// Override the scenario's steps.
        #[arg(long)]
        events: Option<u64>,
        /// Override the scaling sizes (comma-separated accounts).
        #[arg(long, value_delimiter = ',')]
        scaling: Option<Vec<u64>>,
        /// Override the offered rates of the pipeline sweep (comma-separated events/s).
        #[arg(long, value_delimiter = ',')]
        rates: Option<Vec<u64>>,
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Gen { args } => {
            let cfg = match args.config() {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("margin-bench: {e}");
                    return ExitCode::from(2);
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            match margin_node::generate::write_jsonl(cfg, &mut out).and_then(|_| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("margin-bench: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Report {
            out,
            smoke,
            accounts,
            events,
            scaling,
            rates,
            seed,
        } => {
            let mut plan = if smoke {
                Plan::smoke(out)
            } else {
                Plan::full(out)
            };
            plan.accounts = accounts.unwrap_or(plan.accounts);
            plan.events = events.unwrap_or(plan.events);
            plan.scaling_sizes = scaling.unwrap_or(plan.scaling_sizes);
            plan.rates = rates.unwrap_or(plan.rates);
            plan.seed = seed.unwrap_or(plan.seed);
            plan.command = std::env::args().collect::<Vec<_>>().join(" ");
            let started = std::time::Instant::now();
            let result = report::run(&plan, |stage| {
                eprintln!("[{:>6} s] {stage}", started.elapsed().as_secs());
            });
            match result {
                Ok(r) => {
                    if let Err(e) = &r.plots {
                        eprintln!("plots skipped: {e}");
                    }
                    eprintln!("report: {}", plan.out.join("report.md").display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("margin-bench: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
