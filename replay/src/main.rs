//! The `margin-replay` binary: argument parsing only; the work is in the library and the
//! engine crate. Exit status: 0 success, 1 the check failed (divergence, corruption, a broken
//! invariant), 2 bad usage or an unreadable directory.

use clap::{Parser, Subcommand};
use margin_engine::ids::{AccountId, Symbol};
use margin_engine::num::{Dec, Ratio, RATIO_DECIMALS};
use margin_engine::persist::hex;
use margin_engine::stress::{self, Shock};
use margin_node::pipeline::datadir::DataDir;
use margin_node::pipeline::recovery::state_at;
use margin_node::say;
use margin_replay::export::{export, Log};
use margin_replay::verify::{verify, Outcome};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "margin-replay",
    version,
    about = "Verify, inspect, export, audit and stress a margin-engine data directory (read-only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Re-run the input journal and check the output log byte for byte and hash for hash;
    /// also checks every snapshot against the replay.
    Verify {
        /// The data directory (as written by margin-engine run, serve or demo).
        #[arg(long)]
        data: PathBuf,
        /// Start from the snapshot taken at this seq instead of genesis.
        #[arg(long)]
        from_snapshot: Option<u64>,
    },
    /// The state report of the contract at any input seq (default: the end).
    State {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The input seq to report the state after (default: the journal's end).
        #[arg(long)]
        at: Option<u64>,
        /// Only this account (an error if it does not exist at that seq).
        #[arg(long)]
        account: Option<u64>,
    },
    /// The live view's HTTP API and dashboard over a data directory's history (read-only):
    /// the same routes as `margin-engine serve --http`, at the journal's end, or at any input
    /// seq with `?at=SEQ` on every /api route. Stops on SIGINT/SIGTERM.
    Serve {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Address to serve on (loopback unless the network in front of it is trusted).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7481")]
        http: std::net::SocketAddr,
    },
    /// The input journal or the output log as JSON Lines.
    Export {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Which log: the input journal (events as JSON Lines `run` takes) or the output log.
        #[arg(long, default_value = "output", value_parser = ["input", "output"])]
        log: String,
        /// First input seq to export (for the output log too: the records those inputs caused).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last input seq to export (default: the end of the log).
        #[arg(long)]
        to: Option<u64>,
        /// Only events or records naming this account.
        #[arg(long)]
        account: Option<u64>,
    },
    /// Check every invariant over the whole history; write an HTML and JSON report.
    Audit {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// Directory for index.html and report.json.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Full invariant checks spread over the history (the ledger is checked every event).
        #[arg(long, default_value_t = 200)]
        full_checks: u64,
    },
    /// Apply price shocks to the state at a seq: who breaches, what they lack, whether the
    /// insurance fund covers it, and what ADL would follow.
    Stress {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The input seq whose state is shocked (default: the journal's end).
        #[arg(long)]
        at: Option<u64>,
        /// ASSET=MOVE, e.g. BTC=-0.30 (repeatable).
        #[arg(long)]
        shock: Vec<String>,
        /// ASSET=FROM:TO:STEP, e.g. BTC=-0.30:0.30:0.10: one scenario per step.
        #[arg(long)]
        grid: Option<String>,
        /// Multiply every market's margin fractions by this factor.
        #[arg(long, default_value = "1")]
        vol_mult: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("margin-replay: {msg}");
    ExitCode::from(2)
}

fn failed(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("margin-replay: {msg}");
    ExitCode::from(1)
}

fn data_dir(path: &std::path::Path) -> Result<DataDir, ExitCode> {
    let dir = DataDir::new(path);
    if !dir.input_dir().is_dir() {
        return Err(usage(format!(
            "{} holds no input journal (no {})",
            path.display(),
            dir.input_dir().display()
        )));
    }
    let want = format!(
        "margin-engine data directory, format {}\n",
        margin_engine::persist::PERSIST_VERSION
    );
    match std::fs::read_to_string(path.join("FORMAT")) {
        Ok(text) if text == want => Ok(dir),
        Ok(text) => Err(usage(format!(
            "{} was written in another format ({:?})",
            path.display(),
            text.trim()
        ))),
        Err(e) => Err(usage(format!(
            "{}: no readable FORMAT file ({e})",
            path.display()
        ))),
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Verify {
            data,
            from_snapshot,
        } => cmd_verify(&data, from_snapshot),
        Command::State { data, at, account } => cmd_state(&data, at, account),
        Command::Serve { data, http } => cmd_serve(&data, http),
        Command::Export {
            data,
            log,
            from,
            to,
            account,
        } => {
            let dir = match data_dir(&data) {
                Ok(d) => d,
                Err(c) => return c,
            };
            let log = if log == "input" {
                Log::Input
            } else {
                Log::Output
            };
            let mut out = BufWriter::new(io::stdout().lock());
            match export(&dir, log, from, to.unwrap_or(u64::MAX), account, &mut out).and_then(|n| {
                out.flush()
                    .map(|_| n)
                    .map_err(|e| margin_node::stdout::quit(&e))
            }) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => failed(e),
            }
        }
        Command::Audit {
            data,
            report,
            full_checks,
        } => cmd_audit(&data, report, full_checks),
        Command::Stress {
            data,
            at,
            shock,
            grid,
            vol_mult,
            json,
        } => cmd_stress(&data, at, &shock, grid.as_deref(), &vol_mult, json),
    }
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {per_sec}")
            .expect("template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}

fn cmd_verify(data: &std::path::Path, from_snapshot: Option<u64>) -> ExitCode {
    let dir = match data_dir(data) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let pb = bar(0, "verifying");
    let outcome = verify(&dir, from_snapshot, |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    match outcome {
        Err(e) => failed(format!("cannot verify: {e}")),
        Ok(Outcome::Verified(v)) => {
            let ms = v.elapsed.as_millis().max(1);
            say!(
                "verified {} events (from seq {}) in {} ms ({} events/s): {} output batches compared, every one identical",
                v.events,
                v.from_seq,
                ms,
                u128::from(v.events) * 1000 / ms,
                v.outputs_compared
            );
            for t in &v.torn_tails {
                say!("note: {t}");
            }
            say!("output log head {}", v.output_head);
            say!("snapshots checked {}", v.snapshots_checked);
            if v.pending_outputs > 0 {
                say!("note: {} journaled inputs have no outputs yet (a live or interrupted directory)", v.pending_outputs);
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Diverged(d)) => {
            say!(
                "DIVERGENCE at input seq {} (output record seq {})",
                d.input_seq,
                d.output_seq
            );
            say!(
                "  logged:   {}",
                d.logged.as_deref().unwrap_or("(no record)")
            );
            say!(
                "  replayed: {}",
                d.replayed.as_deref().unwrap_or("(no record)")
            );
            say!("  input:    {}", d.input);
            ExitCode::from(1)
        }
        Ok(Outcome::SnapshotMismatch { seq, path, detail }) => {
            say!("SNAPSHOT MISMATCH at seq {seq} ({path}): {detail}");
            ExitCode::from(1)
        }
    }
}

/// The engine of a data directory at input seq `at` (its end when None), from the nearest
/// snapshot below it.
fn engine_at(data: &std::path::Path, at: Option<u64>) -> Result<margin_engine::Engine, ExitCode> {
    let dir = data_dir(data)?;
    state_at(&dir, at.unwrap_or(u64::MAX), true).map_err(failed)
}

fn cmd_serve(data: &std::path::Path, http: std::net::SocketAddr) -> ExitCode {
    let engine = match engine_at(data, None) {
        Ok(e) => e,
        Err(c) => return c,
    };
    let dir = match data_dir(data) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let end = engine.state.input_seq;
    let load = Box::new(move |seq: u64| {
        if seq > end {
            return Err(format!("the journal ends at seq {end}, before {seq}"));
        }
        state_at(&dir, seq, true).map(|e| e.state)
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            return failed(format!("cannot install signal handler: {e}"));
        }
    }
    let view = match margin_node::live::http::serve_history(http, engine.state, load, stop.clone())
    {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    eprintln!(
        "margin-replay: serving {} (input seqs 1..={end}) on http://{}/",
        data.display(),
        view.addr
    );
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(view);
    ExitCode::SUCCESS
}

fn cmd_state(data: &std::path::Path, at: Option<u64>, account: Option<u64>) -> ExitCode {
    let engine = match engine_at(data, at) {
        Ok(e) => e,
        Err(c) => return c,
    };
    if let Some(seq) = at {
        if engine.state.input_seq < seq {
            return usage(format!(
                "the journal ends at seq {}, before {seq}",
                engine.state.input_seq
            ));
        }
    }
    if let Some(id) = account {
        if engine.state.account(AccountId(id)).is_none() {
            return usage(format!(
                "account {id} does not exist at seq {}",
                engine.state.input_seq
            ));
        }
    }
    match engine.state.report(account.map(AccountId)) {
        Ok(r) => {
            say!(
                "{}",
                serde_json::to_string_pretty(&r).expect("report serializes")
            );
            ExitCode::SUCCESS
        }
        Err(_) => failed("the state report overflows"),
    }
}

fn cmd_audit(data: &std::path::Path, report: Option<PathBuf>, full_checks: u64) -> ExitCode {
    let dir = match data_dir(data) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let pb = bar(0, "auditing");
    let r = margin_replay::audit::audit(&dir, full_checks, |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    let r = match r {
        Ok(r) => r,
        Err(e) => return failed(format!("cannot audit: {e}")),
    };
    if let Some(out) = &report {
        let json = serde_json::to_string_pretty(&r).expect("report serializes");
        let html = margin_replay::html::render(&r, &data.display().to_string());
        let written = std::fs::create_dir_all(out)
            .and_then(|_| std::fs::write(out.join("report.json"), json + "\n"))
            .and_then(|_| std::fs::write(out.join("index.html"), html));
        if let Err(e) = written {
            return usage(format!("cannot write the report to {}: {e}", out.display()));
        }
        say!("report: {}", out.join("index.html").display());
    }
    if r.passed() {
        say!("PASSED");
    } else {
        say!("FAILED");
    }
    say!(
        "audited {} events ({} output batches compared with the replay, {} snapshots checked), {} full checks: {} violations; bad debt {} (insurance {}, socialised {}); output head {}",
        r.events,
        r.outputs_compared,
        r.snapshots_checked,
        r.full_checks,
        r.violations.len(),
        r.bad_debt.deficit,
        r.bad_debt.insurance_paid,
        r.bad_debt.socialized,
        r.output_head
    );
    for v in r.violations.iter().take(20) {
        say!("  {v}");
    }
    if r.pending_outputs > 0 {
        say!(
            "note: {} journaled inputs have no outputs yet (a live or interrupted directory)",
            r.pending_outputs
        );
    }
    if report.is_none() {
        eprintln!("margin-replay: no --report DIR given: no HTML or JSON report written");
    }
    if r.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn ratio(text: &str) -> Result<Ratio, String> {
    Dec::parse(text)
        .map_err(|e| format!("{text:?}: {e}"))?
        .to_scaled(RATIO_DECIMALS)
        .map(Ratio)
        .map_err(|e| format!("{text:?} {e}"))
}

/// Scenarios one `--grid` may ask for.
const GRID_POINTS_MAX: usize = 1000;

/// A price move: a fraction above -1 (a move of -100 % or worse would make a price zero or
/// negative, which no valuation means).
fn move_ratio(text: &str) -> Result<Ratio, String> {
    let r = ratio(text)?;
    if r.0 <= -(10i128.pow(u32::from(RATIO_DECIMALS))) {
        return Err(format!("{text:?}: a move must be above -1 (-100 %)"));
    }
    Ok(r)
}

fn cmd_stress(
    data: &std::path::Path,
    at: Option<u64>,
    shocks: &[String],
    grid: Option<&str>,
    vol_mult: &str,
    json: bool,
) -> ExitCode {
    let engine = match engine_at(data, at) {
        Ok(e) => e,
        Err(c) => return c,
    };
    let state = &engine.state;
    let parse_shock = |s: &str| -> Result<(margin_engine::ids::AssetId, String), String> {
        let (a, m) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected ASSET=MOVE"))?;
        let asset = Symbol::new(a)
            .ok()
            .and_then(|n| state.venue.asset_id(&n))
            .ok_or_else(|| format!("unknown asset {a:?}"))?;
        Ok((asset, m.to_string()))
    };
    let vm = match ratio(vol_mult) {
        Ok(r) => r,
        Err(e) => return usage(format!("--vol-mult {e}")),
    };
    let mut fixed = Vec::new();
    for s in shocks {
        match parse_shock(s).and_then(|(a, m)| {
            Ok(Shock {
                asset: a,
                change: move_ratio(&m)?,
            })
        }) {
            Ok(sh) => fixed.push(sh),
            Err(e) => return usage(format!("--shock {e}")),
        }
    }
    let mut scenarios: Vec<Vec<Shock>> = Vec::new();
    match grid {
        None => scenarios.push(fixed.clone()),
        Some(g) => {
            let parsed = parse_shock(g).and_then(|(a, range)| {
                let parts: Vec<&str> = range.split(':').collect();
                let [from, to, step] = parts.as_slice() else {
                    return Err(format!("{g:?}: expected ASSET=FROM:TO:STEP"));
                };
                Ok((a, move_ratio(from)?, move_ratio(to)?, ratio(step)?))
            });
            let (asset, from, to, step) = match parsed {
                Ok(p) if p.3 .0 <= 0 => return usage("--grid step must be positive"),
                Ok(p) if p.1 .0 > p.2 .0 => return usage("--grid FROM must not be above TO"),
                Ok(p) => p,
                Err(e) => return usage(format!("--grid {e}")),
            };
            let points = (to.0 - from.0) / step.0 + 1;
            if points > GRID_POINTS_MAX as i128 {
                return usage(format!(
                    "--grid has {points} points, at most {GRID_POINTS_MAX} allowed"
                ));
            }
            let mut m = from.0;
            while m <= to.0 {
                let mut s = fixed.clone();
                s.push(Shock {
                    asset,
                    change: Ratio(m),
                });
                scenarios.push(s);
                m += step.0;
            }
        }
    }
    let mut results = Vec::new();
    for s in &scenarios {
        match stress::run(state, s, vm) {
            Ok(r) => results.push(r),
            Err(_) => return failed("a scenario's valuation overflows"),
        }
    }
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&results).expect("serializes")
        );
        return ExitCode::SUCCESS;
    }
    say!(
        "state at seq {} (hash {})",
        state.input_seq,
        hex(&margin_engine::persist::state_hash(state)[..8])
    );
    say!(
        "| shocks | vol x | buckets | breached | bankrupt | deficit | insurance | covered | ADL |"
    );
    say!("|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        let shocks: Vec<String> = r.shocks.iter().map(|(a, m)| format!("{a} {m}")).collect();
        say!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            shocks.join(", "),
            r.vol_mult,
            r.buckets,
            r.breached,
            r.bankrupt,
            r.deficit,
            r.insurance_value,
            r.covered,
            r.adl
        );
    }
    print_portfolio_stress(&results);
    ExitCode::SUCCESS
}

/// For each shock with a scenario set in force: how many portfolio buckets each scenario binds
/// (the binding ones, most buckets first) and their weighted losses in it.
fn print_portfolio_stress(results: &[stress::StressResult]) {
    for r in results {
        let Some(p) = &r.portfolio else { continue };
        let shocks: Vec<String> = r.shocks.iter().map(|(a, m)| format!("{a} {m}")).collect();
        let mut binding: Vec<&stress::ScenarioLoad> =
            p.scenarios.iter().filter(|s| s.worst_for > 0).collect();
        binding.sort_by_key(|s| std::cmp::Reverse(s.worst_for));
        let list: Vec<String> = binding
            .iter()
            .map(|s| format!("{} {} (loss {})", s.name, s.worst_for, s.loss))
            .collect();
        say!(
            "portfolio [{}]: set {} v{}, {} buckets, {} at the floor; worst scenario: {}",
            shocks.join(", "),
            p.set,
            p.version,
            p.buckets,
            p.at_floor,
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        );
    }
}
