//! No allocation in the business logic per event after warm-up. A counting allocator wraps the
//! system one and counts every allocation made while `Engine::apply` runs.
//!
//! Two checks:
//! - a repeated cycle of orders, cancels, fills both ways and oracle prints over a warmed-up
//!   venue allocates nothing at all once the first cycles have sized the buffers;
//! - the second half of a random scenario, which holds the crash (the peak of liquidations,
//!   backstops and ADL), allocates only where state or a buffer grows past its high-water mark
//!   (new positions and orders, the crash's larger candidate lists): fewer than one allocation
//!   per 200 events (about one per 400 when this was written).

use margin_engine::event::{Event, FillSpec, OrderSpec};
use margin_engine::ids::{AccountId, OrderId, Side};
use margin_engine::num::Dec;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::{Engine, Input};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

struct Counting;

thread_local! {
    /// Allocations made by this thread (tests run on several threads at once).
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    // try_with: the allocator may run while the thread's locals are being torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarding the caller's contract to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Applies each input and counts (events, allocations) per event type.
fn count(engine: &mut Engine, inputs: &[Input]) -> BTreeMap<&'static str, (u64, u64)> {
    let mut by_type: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for input in inputs {
        let before = allocations();
        engine.apply(input);
        let n = allocations() - before;
        let e = by_type.entry(input.event.type_name()).or_default();
        e.0 += 1;
        e.1 += n;
    }
    for (t, (events, allocs)) in &by_type {
        eprintln!("{t:<10} {events:>7} events {allocs:>7} allocations");
    }
    by_type
}

fn totals(by_type: &BTreeMap<&str, (u64, u64)>) -> (u64, u64) {
    by_type
        .values()
        .fold((0, 0), |(e, a), &(de, da)| (e + de, a + da))
}

fn scenario(events: u64) -> Vec<Input> {
    let cfg = ScenarioConfig {
        seed: 9,
        accounts: 200,
        events,
        markets: 4,
        hours: 4,
        ..ScenarioConfig::default()
    };
    Scenario::new(cfg).collect()
}

/// One cycle over every market: two makers place and cancel an order each, trade once each
/// way, and every oracle source prints the current index nudged up then back.
fn cycle(engine: &Engine, ts: &mut u64, order: &mut u64) -> Vec<Input> {
    let state = &engine.state;
    let mut out = Vec::new();
    let mut push = |event: Event, ts: &mut u64| {
        *ts += 1_000;
        out.push(Input { ts: *ts, event });
    };
    for m in &state.venue.markets {
        let base = state.venue.asset(m.base);
        let index = state.index(m.base).expect("scenario prices every asset");
        let price = Dec::new(i128::from(index), base.price_scale).unwrap();
        let size = Dec::new(1, m.size_decimals).unwrap();
        for (account, side) in [(1, Side::Buy), (2, Side::Sell)] {
            *order += 1;
            let spec = OrderSpec {
                account: AccountId(account),
                order: OrderId(*order),
                market: m.name,
                side,
                price,
                size,
                reduce_only: false,
            };
            push(Event::Order(spec), ts);
            let cancel = Event::Cancel {
                account: AccountId(account),
                order: OrderId(*order),
            };
            push(cancel, ts);
        }
        for side in [Side::Buy, Side::Sell] {
            let fill = FillSpec {
                market: m.name,
                taker: AccountId(1),
                maker: AccountId(2),
                side,
                price,
                size,
                taker_order: None,
                maker_order: None,
                taker_fee: None,
                maker_fee: None,
            };
            push(Event::Fill(fill), ts);
        }
        for nudge in [1, 0] {
            for source in 0..3 {
                let price = Dec::new(i128::from(index + nudge), base.price_scale).unwrap();
                let event = Event::Oracle {
                    asset: base.name,
                    source,
                    price,
                };
                push(event, ts);
            }
        }
    }
    out
}

#[test]
fn a_repeated_cycle_allocates_nothing_after_warm_up() {
    let mut engine = Engine::new();
    for input in scenario(20_000) {
        engine.apply(&input);
    }
    let mut ts = engine.state.clock_us;
    let mut order = 1_000_000_000;
    // Inputs are built before they are counted: making them allocates, applying them must not.
    let cycles: Vec<Vec<Input>> = (0..12)
        .map(|_| cycle(&engine, &mut ts, &mut order))
        .collect();
    for c in &cycles[..2] {
        for input in c {
            let first = engine.apply(input)[0].body.clone();
            assert!(
                matches!(first, margin_engine::record::Body::Accepted { .. }),
                "{:?} was not accepted: {first:?}",
                input.event
            );
        }
    }
    let steady: Vec<Input> = cycles[2..].concat();
    let by_type = count(&mut engine, &steady);
    let (events, allocs) = totals(&by_type);
    assert!(events > 100, "the cycle has events");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations over {events} cycled events"
    );
}

#[test]
fn a_random_stream_allocates_only_to_grow() {
    let inputs = scenario(40_000);
    let mut engine = Engine::new();
    let (warm, steady) = inputs.split_at(inputs.len() / 2);
    for input in warm {
        engine.apply(input);
    }
    let by_type = count(&mut engine, steady);
    let (events, allocs) = totals(&by_type);
    assert!(
        by_type.get("oracle").is_some_and(|o| o.0 > 1_000),
        "the stream has oracle ticks"
    );
    assert!(
        allocs * 200 < events,
        "{allocs} allocations over {events} steady-state events"
    );
}
