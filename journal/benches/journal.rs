//! Append and read costs of the journal for 64-256 byte records, beside the physical floor:
//! copying the same bytes into the same kind of preallocated map and computing their CRC.
//!
//! `cargo bench -p margin-journal`. Numbers go to docs/benchmarks.md with the machine.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use margin_journal::{Config, Durability, Reader, Writer};
use memmap2::MmapOptions;
use std::time::Duration;

const RECORDS: usize = 100_000;

fn config(dir: &std::path::Path, durability: Durability) -> Config {
    Config {
        segment_bytes: 64 << 20,
        max_record_bytes: 4096,
        chain: false,
        durability,
        prefault: true,
        ..Config::new(dir, "bench")
    }
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(10);
    for size in [64usize, 128, 256] {
        let payload = vec![0xA5u8; size];
        let policies = [
            ("none", Durability::None),
            (
                "batch",
                Durability::Batch {
                    max_records: 1024,
                    max_delay: Duration::from_millis(1),
                },
            ),
        ];
        for (name, policy) in policies {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter_batched(
                    || {
                        let dir = tempfile::tempdir().unwrap();
                        let (w, _) = Writer::open(config(dir.path(), policy)).unwrap();
                        (dir, w)
                    },
                    |(dir, mut w)| {
                        for _ in 0..RECORDS {
                            w.append(&payload).unwrap();
                        }
                        (dir, w)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.bench_with_input(BenchmarkId::new("floor_memcpy_crc", size), &size, |b, _| {
            b.iter_batched(
                || {
                    // The same kind of map the journal writes: a preallocated, prefaulted file.
                    let file = tempfile::tempfile().unwrap();
                    file.set_len(64 << 20).unwrap();
                    let map = unsafe { MmapOptions::new().map_mut(&file) }.unwrap();
                    let _ = map.advise(memmap2::Advice::PopulateWrite);
                    (file, map)
                },
                |(file, mut map)| {
                    let mut pos = 0;
                    let stride = (16 + size + 15) & !15;
                    for seq in 0..RECORDS as u64 {
                        map[pos + 16..pos + 16 + size].copy_from_slice(&payload);
                        let crc =
                            crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), &payload);
                        map[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
                        pos += stride;
                    }
                    (file, map)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(10);
    for size in [64usize, 128, 256] {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Writer::open(config(dir.path(), Durability::None)).unwrap();
        for _ in 0..RECORDS {
            w.append(&vec![0x5Au8; size]).unwrap();
        }
        drop(w);
        let r = Reader::open(dir.path(), "bench", 4096).unwrap();
        g.bench_with_input(BenchmarkId::new("iterate_checked", size), &size, |b, _| {
            b.iter(|| {
                r.iter_from(1)
                    .map(|x| x.unwrap().payload.len())
                    .sum::<usize>()
            })
        });
        g.bench_with_input(BenchmarkId::new("open_and_verify", size), &size, |b, _| {
            b.iter(|| Reader::open(dir.path(), "bench", 4096).unwrap().last_seq())
        });
    }
    g.finish();
}

// Criterion's own charts are off: with the workspace's `plotters` (ab_glyph fonts) they would
// need a font registered first, and the figures that matter go to docs/benchmarks.md.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = append, read
}
criterion_main!(benches);
