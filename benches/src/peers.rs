//! The peers every report puts beside the engine, measured in the same run:
//! - `percolator-engine` (crates.io) on the equivalent deposit/fill/oracle stream;
//! - the physical floor: the same journal record bytes copied into a preallocated memory map
//!   and CRC-checked, with no logic;
//! - the crossbeam-channel hand-off that each pipeline hop pays.

use crate::hist::new_ns;
use crate::workload::{Op, Synthetic, MAKER};
use crossbeam_channel::bounded;
use hdrhistogram::Histogram;
use margin_engine::ids::Side;
use margin_engine::{Engine, Input};
use margin_node::pipeline::now_ns;
use std::path::Path;
use std::time::Instant;

/// Fill and tick service times of one engine on the peer stream.
pub struct PeerRun {
    pub name: &'static str,
    pub fill: Histogram<u64>,
    pub tick: Histogram<u64>,
    /// Calls the engine refused (percolator's margin checks differ from ours at the edges).
    pub refused: u64,
}

/// The peer stream: `accounts` traders opened with a position each, then `steps` of which
/// one in six is an oracle tick and the rest small fills.
pub fn peer_ops(accounts: u64, steps: u64, seed: u64) -> (Vec<Input>, Vec<Op>) {
    let mut s = Synthetic::new(seed);
    let listing = s.listing();
    let mut ops: Vec<Op> = s.opening().to_vec();
    for _ in 0..accounts {
        ops.extend(s.open_account());
    }
    for i in 0..steps {
        if i % 6 == 0 {
            ops.push(s.tick(5));
        } else {
            let account = s.some_account();
            let side = s.side();
            ops.push(s.fill(account, side, 1 + (i % 4) as i64));
        }
    }
    (listing, ops)
}

/// The engine on the peer stream (listing untimed).
pub fn ours(listing: &[Input], ops: &[Op], seed: u64) -> PeerRun {
    let mut s = Synthetic::new(seed);
    let mut engine = Engine::new();
    for i in listing {
        engine.apply(i);
    }
    let mut run = PeerRun {
        name: "margin-engine",
        fill: new_ns(),
        tick: new_ns(),
        refused: 0,
    };
    for op in ops {
        let input = s.input(*op);
        let t = Instant::now();
        let accepted = matches!(
            engine.apply(&input).first().map(|r| &r.body),
            Some(margin_engine::Body::Accepted { .. })
        );
        let ns = (t.elapsed().as_nanos() as u64).max(1);
        record(&mut run, op, ns, accepted);
    }
    run
}

fn record(run: &mut PeerRun, op: &Op, ns: u64, accepted: bool) {
    match op {
        Op::Fill { .. } => run.fill.saturating_record(ns),
        Op::Tick { .. } => run.tick.saturating_record(ns),
        Op::Deposit { .. } => {}
    }
    if !accepted {
        run.refused += 1;
    }
}

/// Accounts percolator-engine holds at most (its `MAX_ACCOUNTS`, less the maker's slot).
pub const PERCOLATOR_ACCOUNTS_MAX: u64 = percolator::MAX_ACCOUNTS as u64 - 1;

fn percolator_params() -> percolator::RiskParams {
    use percolator::U128;
    percolator::RiskParams {
        warmup_period_slots: 100,
        maintenance_margin_bps: 500,
        initial_margin_bps: 1000,
        trading_fee_bps: 0,
        max_accounts: percolator::MAX_ACCOUNTS as u64,
        new_account_fee: U128::new(0),
        maintenance_fee_per_slot: U128::new(0),
        max_crank_staleness_slots: u64::MAX,
        liquidation_fee_bps: 50,
        liquidation_fee_cap: U128::new(100_000),
        min_liquidation_abs: U128::new(0),
        min_initial_deposit: U128::new(2),
        min_nonzero_mm_req: 1,
        min_nonzero_im_req: 2,
        insurance_floor: U128::ZERO,
    }
}

/// percolator-engine on the same steps: its prices are micro-USDC per BTC and its sizes
/// millionths of a BTC (0.0001 BTC = 100); a tick is `accrue_market_to` (it leaves finding
/// liquidatable accounts to an off-chain keeper), a fill `execute_trade_not_atomic` with the
/// buyer first.
pub fn percolator(ops: &[Op]) -> Result<PeerRun, String> {
    // The engine is one large value (every account inline): give it a thread with room.
    let ops = ops.to_vec();
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || percolator_run(&ops))
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|_| "percolator-engine panicked".to_string())
}

fn percolator_run(ops: &[Op]) -> PeerRun {
    let mut run = PeerRun {
        name: "percolator-engine 1.0.0",
        fill: new_ns(),
        tick: new_ns(),
        refused: 0,
    };
    let first_price = ops
        .iter()
        .find_map(|op| match op {
            Op::Tick { price_ticks } => Some(price_ticks * 10_000),
            _ => None,
        })
        .unwrap_or(1) as u64;
    let mut engine = Box::new(percolator::RiskEngine::new_with_market(
        percolator_params(),
        0,
        first_price,
    ));
    let mut oracle = first_price;
    let idx = |account: u64| (account - MAKER) as u16;
    for (slot, op) in (1u64..).zip(ops) {
        let t = Instant::now();
        let ok = match *op {
            Op::Deposit { account, micro } => engine
                .deposit(idx(account), micro as u128, oracle, slot)
                .is_ok(),
            Op::Fill {
                taker,
                side,
                lots,
                price_ticks,
            } => {
                let (buyer, seller) = match side {
                    Side::Buy => (idx(taker), idx(MAKER)),
                    Side::Sell => (idx(MAKER), idx(taker)),
                };
                let price = (price_ticks * 10_000) as u64;
                engine
                    .execute_trade_not_atomic(
                        buyer,
                        seller,
                        oracle,
                        slot,
                        i128::from(lots) * 100,
                        price,
                        0,
                    )
                    .is_ok()
            }
            Op::Tick { price_ticks } => {
                oracle = (price_ticks * 10_000) as u64;
                engine.accrue_market_to(slot, oracle).is_ok()
            }
        };
        let ns = (t.elapsed().as_nanos() as u64).max(1);
        record(&mut run, op, ns, ok);
    }
    debug_assert!(engine.check_conservation());
    run
}

/// The floor: each input's journal record bytes copied into a preallocated, mapped file and
/// CRC32C-checked. Per-record time, and bytes per second.
pub struct Floor {
    pub per_record: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
    pub elapsed_ns: u64,
}

pub fn floor(inputs: &[Input], dir: &Path) -> Result<Floor, String> {
    let mut buf = rkyv::util::AlignedVec::<16>::new();
    let mut encoded = Vec::with_capacity(inputs.len());
    for i in inputs {
        margin_engine::persist::encode_input(i, &mut buf)?;
        encoded.push(buf.to_vec());
    }
    let total: usize = encoded.iter().map(|e| e.len() + 16).sum();
    let path = dir.join("floor.map");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.set_len(total as u64).map_err(|e| e.to_string())?;
    // SAFETY: the file was just created by this process and nothing else maps or resizes it.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file) }.map_err(|e| e.to_string())?;
    // Touch every page first, as the journal's prefault does.
    for page in map.chunks_mut(4096) {
        page[0] = 0;
    }
    let mut per_record = new_ns();
    let mut at = 0usize;
    let start = Instant::now();
    for e in &encoded {
        let t = Instant::now();
        let crc = crc32c::crc32c(e);
        map[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        map[at + 16..at + 16 + e.len()].copy_from_slice(e);
        at += e.len() + 16;
        per_record.saturating_record((t.elapsed().as_nanos() as u64).max(1));
    }
    let elapsed_ns = start.elapsed().as_nanos() as u64;
    std::hint::black_box(&map);
    drop(map);
    let _ = std::fs::remove_file(&path);
    Ok(Floor {
        per_record,
        records: encoded.len() as u64,
        bytes: total as u64,
        elapsed_ns,
    })
}

/// The hand-off between two threads through a bounded crossbeam channel.
pub struct Handoff {
    /// One-way time of a single message (half a ping-pong round trip).
    pub one_way: Histogram<u64>,
    /// Messages per second streamed one by one through a channel of 1,024.
    pub single_per_second: u64,
    /// Items per second streamed in batches of 256 (as the pipeline's stages hand them over).
    pub batched_per_second: u64,
}

pub fn handoff(round_trips: u64, stream: u64) -> Handoff {
    let mut one_way = new_ns();
    let (to_b, from_a) = bounded::<u64>(1);
    let (to_a, from_b) = bounded::<u64>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = from_a.recv() {
            if to_a.send(v).is_err() {
                break;
            }
        }
    });
    for i in 0..round_trips {
        let t = now_ns();
        if to_b.send(i).is_err() || from_b.recv().is_err() {
            break;
        }
        one_way.saturating_record(((now_ns() - t) / 2).max(1));
    }
    drop(to_b);
    let _ = echo.join();

    let single_per_second = rate(stream, |n| {
        let (tx, rx) = bounded::<u64>(1024);
        let sink = std::thread::spawn(move || rx.iter().fold(0u64, |a, v| a.wrapping_add(v)));
        for i in 0..n {
            let _ = tx.send(i);
        }
        drop(tx);
        let _ = sink.join();
    });
    let batched_per_second = rate(stream, |n| {
        let (tx, rx) = bounded::<Vec<u64>>(64);
        let sink = std::thread::spawn(move || rx.iter().map(|b| b.len() as u64).sum::<u64>());
        let mut i = 0;
        while i < n {
            let batch: Vec<u64> = (i..(i + 256).min(n)).collect();
            i += batch.len() as u64;
            let _ = tx.send(batch);
        }
        drop(tx);
        let _ = sink.join();
    });
    Handoff {
        one_way,
        single_per_second,
        batched_per_second,
    }
}

fn rate(n: u64, f: impl FnOnce(u64)) -> u64 {
    let t = Instant::now();
    f(n);
    (u128::from(n) * 1_000_000_000 / t.elapsed().as_nanos().max(1)) as u64
}
