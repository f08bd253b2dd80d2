//! `export`: the input journal or the output log as JSON Lines of the contract, optionally a
//! range of seqs and one account; an input export can be fed back to `margin-engine run`.

use margin_engine::codec::{input_line, record_line};
use margin_engine::event::Event;
use margin_engine::persist::{decode_batch, decode_input};
use margin_engine::record::Body;
use margin_journal::Reader;
use margin_node::pipeline::datadir::DataDir;
use margin_node::pipeline::MAX_RECORD_BYTES;
use std::io::Write;

/// Which log to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    Input,
    Output,
}

/// Writes the selected entries; returns how many lines were written.
pub fn export(
    dir: &DataDir,
    log: Log,
    from: u64,
    to: u64,
    account: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let (path, name) = match log {
        Log::Input => (dir.input_dir(), "input"),
        Log::Output => (dir.output_dir(), "output"),
    };
    let reader = Reader::open(&path, name, MAX_RECORD_BYTES).map_err(|e| format!("{name}: {e}"))?;
    let mut lines = 0;
    // A reader that stopped early (`| head`) ends the export quietly.
    let io = |e: std::io::Error| -> String { margin_node::stdout::quit(&e) };
    for rec in reader.iter_from(from.max(1)) {
        let rec = rec.map_err(|e| format!("{name}: {e}"))?;
        if rec.seq > to {
            break;
        }
        match log {
            Log::Input => {
                let input =
                    decode_input(rec.payload).map_err(|e| format!("input seq {}: {e}", rec.seq))?;
                if account.is_none_or(|a| names_account(&input.event, a)) {
                    writeln!(out, "{}", input_line(&input)).map_err(io)?;
                    lines += 1;
                }
            }
            Log::Output => {
                let batch = decode_batch(rec.payload)
                    .map_err(|e| format!("output seq {}: {e}", rec.seq))?;
                for r in &batch.records {
                    if account.is_none_or(|a| record_names(&r.body, a)) {
                        writeln!(out, "{}", record_line(r)).map_err(io)?;
                        lines += 1;
                    }
                }
            }
        }
    }
    Ok(lines)
}

/// True when an event involves the account in any role.
pub fn names_account(e: &Event, a: u64) -> bool {
    match e {
        Event::Deposit { account, .. }
        | Event::Withdraw { account, .. }
        | Event::MarginMode { account, .. }
        | Event::CrossMode { account, .. }
        | Event::Isolate { account, .. }
        | Event::Cancel { account, .. } => account.0 == a,
        Event::Order(o) => o.account.0 == a,
        Event::Fill(f) => f.taker.0 == a || f.maker.0 == a,
        Event::Liquidate {
            liquidator,
            account,
            ..
        } => liquidator.0 == a || account.0 == a,
        _ => false,
    }
}

/// True when a record is about the account.
pub fn record_names(b: &Body, a: u64) -> bool {
    match b {
        Body::Balance { account, .. }
        | Body::Position { account, .. }
        | Body::OrderOpen { account, .. }
        | Body::OrderClosed { account, .. }
        | Body::MarginCall { account, .. }
        | Body::LiquidationStarted { account, .. }
        | Body::LiquidationEnded { account, .. }
        | Body::Bankruptcy { account, .. } => account.0 == a,
        Body::LiquidationFill {
            account,
            liquidator,
            ..
        } => account.0 == a || liquidator.0 == a,
        Body::Adl {
            account,
            liquidated,
            ..
        } => account.0 == a || liquidated.0 == a,
        _ => false,
    }
}
