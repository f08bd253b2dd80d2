//! Criterion micro-benchmarks of the hot functions on a warmed-up synthetic venue of 10,000
//! traders with positions: apply(fill), apply(oracle tick), and the health function. The
//! journal's append and read have their own in `journal/benches`.

use criterion::{criterion_group, criterion_main, Criterion};
use margin_bench::workload::Synthetic;
use margin_engine::health::Overlay;
use margin_engine::ids::AccountId;
use margin_engine::Engine;
use std::hint::black_box;

fn venue(accounts: u64) -> (Engine, Synthetic) {
    let mut s = Synthetic::new(7);
    let mut engine = Engine::new();
    for i in s.setup() {
        engine.apply(&i);
    }
    for _ in 0..accounts {
        for op in s.open_account() {
            engine.apply(&s.input(op));
        }
    }
    (engine, s)
}

fn hot(c: &mut Criterion) {
    let (mut engine, mut s) = venue(10_000);
    let mut g = c.benchmark_group("apply");
    // A fill and its reverse, so that the venue stays the same across iterations.
    let pair: Vec<_> = {
        let account = s.some_account();
        let side = s.side();
        [side, side.opposite()]
            .into_iter()
            .map(|side| {
                let op = s.fill(account, side, 1);
                s.input(op)
            })
            .collect()
    };
    let mut ts = s.ts;
    g.bench_function("fill (open and close, per fill)", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                for i in &pair {
                    let mut input = i.clone();
                    ts += 1;
                    input.ts = ts;
                    black_box(engine.apply(&input));
                }
            }
            start.elapsed() / 2
        })
    });
    // Ticks alternate between two nearby prices: the band index is exercised, nothing drifts.
    let ticks: Vec<_> = [1i64, -1]
        .into_iter()
        .map(|d| {
            s.price_ticks += d * 300;
            let op = margin_bench::workload::Op::Tick {
                price_ticks: s.price_ticks,
            };
            s.input(op)
        })
        .collect();
    g.bench_function("oracle tick (10,000 positions)", |b| {
        let mut k = 0usize;
        b.iter(|| {
            let mut input = ticks[k % 2].clone();
            k += 1;
            ts += 1;
            input.ts = ts;
            black_box(engine.apply(&input).len())
        })
    });
    g.finish();
    let bucket = engine
        .state
        .account(AccountId(2))
        .map(|a| a.cross.clone())
        .expect("trader 2 exists");
    c.bench_function("health (one cross bucket, one position)", |b| {
        b.iter(|| {
            black_box(
                engine
                    .state
                    .bucket_health(black_box(&bucket), &Overlay::default()),
            )
        })
    });
}

// Criterion's own charts are off: with the workspace's `plotters` (ab_glyph fonts) they would
// need a font registered first, and the figures that matter go to docs/benchmarks.md.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = hot
}
criterion_main!(benches);
