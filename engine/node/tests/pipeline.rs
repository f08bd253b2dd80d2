//! The journaled pipeline: whatever the restarts, crashes and snapshots, the final state and the
//! output log are those of one uninterrupted run over the same accepted input.

use margin_engine::codec::parse_input;
use margin_engine::persist::{decode_batch, state_hash};
use margin_engine::record::Record;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::Input;
use margin_journal::{Durability, Reader};
use margin_node::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink};
use std::path::Path;

struct Null;
impl Sink for Null {
    fn applied(&mut self, _: u64, _: Origin, _: &[Record], _: &[u8], _: u64) {}
    fn malformed(&mut self, _: Origin, _: u64, _: &str, _: u64) {}
}

fn inputs() -> Vec<Input> {
    Scenario::new(ScenarioConfig {
        seed: 11,
        accounts: 80,
        events: 4_000,
        markets: 4,
        hours: 4,
        ..ScenarioConfig::default()
    })
    .collect()
}

fn cfg(dir: &Path) -> PipelineConfig {
    PipelineConfig {
        segment_bytes: 256 << 10,
        snapshot_every: 0,
        ..PipelineConfig::new(dir)
    }
}

/// Runs `inputs` through a pipeline on `dir`; returns the final state hash and output head.
fn feed(c: PipelineConfig, inputs: &[Input]) -> ([u8; 32], [u8; 32], u64) {
    let mut p = Pipeline::start(c, Box::new(Null)).unwrap();
    for input in inputs {
        p.submit(Item {
            kind: ItemKind::Event(input.clone()),
            origin: Origin::default(),
            sent_ns: now_ns(),
        })
        .unwrap();
    }
    let f = p.finish().unwrap();
    (state_hash(&f.engine.state), f.output_head, f.last_seq)
}

fn output_bytes(dir: &Path) -> Vec<Vec<u8>> {
    let r = Reader::open(&dir.join("output"), "output", 1 << 20).unwrap();
    r.iter_from(1)
        .map(|x| x.unwrap().payload.to_vec())
        .collect()
}

#[test]
fn restarts_give_the_same_state_and_output_log() {
    let all = inputs();
    let one = tempfile::tempdir().unwrap();
    let reference = feed(cfg(one.path()), &all);
    let split = tempfile::tempdir().unwrap();
    let (a, b) = (all.len() / 3, 2 * all.len() / 3);
    feed(cfg(split.path()), &all[..a]);
    feed(cfg(split.path()), &all[a..b]);
    let last = feed(cfg(split.path()), &all[b..]);
    assert_eq!(last, reference);
    assert_eq!(output_bytes(one.path()), output_bytes(split.path()));
    // The output log decodes, one batch per input, in order.
    for (i, bytes) in output_bytes(one.path()).iter().enumerate().take(100) {
        assert_eq!(decode_batch(bytes).unwrap().input, i as u64 + 1);
    }
}

#[test]
fn lost_outputs_are_rewritten_and_snapshots_give_the_same_bytes() {
    let all = inputs();
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = feed(cfg(reference_dir.path()), &all);
    let dir = tempfile::tempdir().unwrap();
    let with_snaps = PipelineConfig {
        snapshot_every: 500,
        ..cfg(dir.path())
    };
    feed(with_snaps.clone(), &all[..2500]);
    let snaps = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .count();
    assert!(snaps >= 2, "snapshots written: {snaps}");
    // A crash after journaling but before the outputs: remove the output log entirely.
    std::fs::remove_dir_all(dir.path().join("output")).unwrap();
    let recovered = feed(with_snaps.clone(), &all[2500..]);
    assert_eq!(recovered, reference);
    assert_eq!(output_bytes(dir.path()), output_bytes(reference_dir.path()));
}

#[test]
fn a_corrupt_newest_snapshot_is_skipped() {
    let all = inputs();
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = feed(cfg(reference_dir.path()), &all);
    let dir = tempfile::tempdir().unwrap();
    let c = PipelineConfig {
        snapshot_every: 700,
        ..cfg(dir.path())
    };
    feed(c.clone(), &all[..3000]);
    let mut snaps: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    snaps.sort();
    let newest = snaps.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(newest, bytes).unwrap();
    let mut p = Pipeline::start(c.clone(), Box::new(Null)).unwrap();
    assert!(
        p.recovery()
            .warnings
            .iter()
            .any(|w| w.contains("skipping snapshot")),
        "{:?}",
        p.recovery().warnings
    );
    assert!(p.recovery().snapshot_seq.unwrap() < 3000);
    for input in &all[3000..] {
        p.submit(Item {
            kind: ItemKind::Event(input.clone()),
            origin: Origin::default(),
            sent_ns: now_ns(),
        })
        .unwrap();
    }
    let f = p.finish().unwrap();
    assert_eq!(
        (state_hash(&f.engine.state), f.output_head, f.last_seq),
        reference
    );
}

#[test]
fn malformed_lines_never_reach_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pipeline::start(cfg(dir.path()), Box::new(Null)).unwrap();
    let good =
        parse_input(r#"{"type":"asset","ts":0,"asset":"USDC","decimals":6,"quote":true}"#).unwrap();
    p.submit(Item {
        kind: ItemKind::Malformed {
            line: 1,
            detail: "nope".into(),
        },
        origin: Origin::default(),
        sent_ns: 0,
    })
    .unwrap();
    p.submit(Item {
        kind: ItemKind::Event(good),
        origin: Origin::default(),
        sent_ns: 0,
    })
    .unwrap();
    let f = p.finish().unwrap();
    assert_eq!(f.last_seq, 1);
    assert_eq!(f.engine.state.input_seq, 1);
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(cfg(dir.path()), Box::new(Null)).unwrap();
    let second = Pipeline::start(cfg(dir.path()), Box::new(Null));
    assert!(second.err().unwrap().contains("in use"));
    p.finish().unwrap();
    Pipeline::start(cfg(dir.path()), Box::new(Null))
        .unwrap()
        .finish()
        .unwrap();
}

#[test]
fn durable_release_waits_for_the_journal() {
    let all = inputs();
    let dir = tempfile::tempdir().unwrap();
    let c = PipelineConfig {
        durability: Durability::Batch {
            max_records: 64,
            max_delay: std::time::Duration::from_millis(2),
        },
        release_after_durable: true,
        ..cfg(dir.path())
    };
    let reference_dir = tempfile::tempdir().unwrap();
    assert_eq!(
        feed(c, &all[..1000]).0,
        feed(cfg(reference_dir.path()), &all[..1000]).0
    );
}
