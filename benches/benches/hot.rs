//! Criterion micro-benchmarks of the hot functions on a warmed-up synthetic venue of 10,000
//! traders with positions: apply(fill), apply(oracle tick), and the health function; and the
//! ingress decoders (a fill as a JSON line, as a binary record, as the journal's rkyv record).
//! The journal's append and read have their own in `journal/benches`.

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

/// One fill with both orders and both fees, decoded from each ingress form.
fn decode(c: &mut Criterion) {
    let line = r#"{"type":"fill","ts":1700000000000000,"market":"BTC-PERP","taker":1234,"maker":77,"side":"buy","price":"65000.5","size":"0.25","taker_order":991,"maker_order":12,"taker_fee":"16.25","maker_fee":"-3.25"}"#;
    let input = margin_engine::codec::parse_input(line).expect("a fill");
    let mut record = Vec::new();
    margin_engine::codec::binary::encode(&input, &mut record);
    let mut archive = rkyv::util::AlignedVec::<16>::new();
    margin_engine::persist::encode_input(&input, &mut archive).expect("encodes");
    let mut g = c.benchmark_group("decode fill");
    g.bench_function("JSON line (parse_input)", |b| {
        b.iter(|| black_box(margin_engine::codec::parse_input(black_box(line))))
    });
    g.bench_function("binary record (codec::binary::decode)", |b| {
        b.iter(|| black_box(margin_engine::codec::binary::decode(black_box(&record))))
    });
    g.bench_function("rkyv journal record (persist::decode_input)", |b| {
        b.iter(|| black_box(margin_engine::persist::decode_input(black_box(&archive))))
    });
    g.finish();
}

// Criterion's own charts are off: with the workspace's `plotters` (ab_glyph fonts) they would
// need a font registered first, and the figures that matter go to docs/benchmarks.md.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = hot, decode
}
criterion_main!(benches);
