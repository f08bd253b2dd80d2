//! How the cost of an oracle tick and of a fill grows with the venue: the synthetic venue is
//! built with 1K .. 1M accounts, each with an open position, then ticked and traded. The naive
//! mode (re-check every position on every event) runs on a copy of the same state.

use crate::hist::new_ns;
use crate::workload::Synthetic;
use hdrhistogram::Histogram;
use margin_engine::engine::ScanMode;
use margin_engine::Engine;
use std::time::Instant;

/// One venue size's figures.
pub struct Point {
    pub accounts: u64,
    pub build_ns: u64,
    pub tick: Histogram<u64>,
    pub fill: Histogram<u64>,
    /// Naive mode, on fewer ticks at large sizes (each costs a walk over every position).
    pub naive_tick: Histogram<u64>,
    pub naive_fill: Histogram<u64>,
    /// Buckets the indexed mode visited per tick, on average (x1000).
    pub visits_per_tick_milli: u64,
}

/// How many events of each kind to time at each size.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub ticks: u64,
    pub fills: u64,
    /// Naive ticks and fills at one size: at most this many account-visits in total.
    pub naive_visits: u64,
}

/// Builds the venue with `accounts` traders and times ticks and fills, indexed and naive.
pub fn point(accounts: u64, budget: Budget, seed: u64) -> Point {
    let mut s = Synthetic::new(seed);
    let mut engine = Engine::new();
    let t = Instant::now();
    for i in s.setup() {
        engine.apply(&i);
    }
    for _ in 0..accounts {
        for op in s.open_account() {
            engine.apply(&s.input(op));
        }
    }
    let build_ns = t.elapsed().as_nanos() as u64;
    let naive_events = (budget.naive_visits / accounts.max(1)).clamp(5, budget.ticks);
    let (ticks, fills) = stream(&mut s, budget.ticks, budget.fills);
    let mut naive = Engine::with_scan(engine.state.clone(), ScanMode::Naive);
    let visits_before = engine.visits;
    let tick = time(&mut engine, &ticks);
    let visits = engine.visits - visits_before;
    let fill = time(&mut engine, &fills);
    let naive_tick = time(&mut naive, &ticks[..naive_events as usize]);
    let naive_fill = time(
        &mut naive,
        &fills[..naive_events.min(budget.fills) as usize],
    );
    Point {
        accounts,
        build_ns,
        tick,
        fill,
        naive_tick,
        naive_fill,
        visits_per_tick_milli: visits * 1_000 / budget.ticks.max(1),
    }
}

/// Price ticks (a mean-reverting walk of up to 5 bps a print) and small fills of random
/// traders, each pair opened and closed again so positions keep their size.
fn stream(
    s: &mut Synthetic,
    ticks: u64,
    fills: u64,
) -> (Vec<margin_engine::Input>, Vec<margin_engine::Input>) {
    let t: Vec<_> = (0..ticks)
        .map(|_| {
            let op = s.tick(5);
            s.input(op)
        })
        .collect();
    let mut f = Vec::with_capacity(fills as usize);
    while (f.len() as u64) < fills {
        let account = s.some_account();
        let side = s.side();
        for side in [side, side.opposite()] {
            let op = s.fill(account, side, 1);
            f.push(s.input(op));
        }
    }
    f.truncate(fills as usize);
    (t, f)
}

fn time(engine: &mut Engine, inputs: &[margin_engine::Input]) -> Histogram<u64> {
    let mut h = new_ns();
    for input in inputs {
        let t = Instant::now();
        std::hint::black_box(engine.apply(input));
        h.saturating_record((t.elapsed().as_nanos() as u64).max(1));
    }
    h
}
