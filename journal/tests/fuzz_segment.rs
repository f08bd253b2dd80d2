//! Fuzzing the segment reader on stable with proptest: arbitrary bytes, and valid segments with
//! random damage, given to every reader of the crate. Only errors may come out: no panic, no
//! out-of-bounds read. (cargo-fuzz needs nightly for its sanitizers; this harness runs in CI.)

use margin_journal::{Config, Reader, Tail, Writer};
use proptest::prelude::*;

fn valid_segment(records: usize, chain: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        segment_bytes: 8 << 10,
        max_record_bytes: 512,
        chain,
        ..Config::new(dir.path(), "f")
    };
    let (mut w, _) = Writer::open(cfg).unwrap();
    for i in 0..records {
        w.append(&vec![i as u8; 1 + i * 13 % 200]).unwrap();
    }
    drop(w);
    std::fs::read(dir.path().join("f-00000000000000000001.seg")).unwrap()
}

/// Every way the crate reads a segment, on these bytes.
fn read_all_ways(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f-00000000000000000001.seg");
    std::fs::write(&path, bytes).unwrap();
    if let Ok(r) = Reader::open(dir.path(), "f", 512) {
        for rec in r.iter_from(1) {
            let _ = rec;
        }
        let _ = r.get(r.last_seq());
    }
    let mut tail = Tail::new(dir.path(), "f", 512, 1);
    for _ in 0..300 {
        match tail.poll() {
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let cfg = Config {
        segment_bytes: 8 << 10,
        max_record_bytes: 512,
        ..Config::new(dir.path(), "f")
    };
    if let Ok((mut w, _)) = Writer::open(cfg) {
        let _ = w.append(b"after");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        read_all_ways(&bytes);
    }

    #[test]
    fn damaged_segments_never_panic(
        records in 0usize..40,
        chain in any::<bool>(),
        damage in proptest::collection::vec((0usize..8192, any::<u8>()), 1..12),
        cut in proptest::option::of(0usize..8192),
    ) {
        let mut bytes = valid_segment(records, chain);
        for (at, v) in damage {
            if at < bytes.len() {
                bytes[at] = v;
            }
        }
        if let Some(c) = cut {
            bytes.truncate(c);
        }
        read_all_ways(&bytes);
    }
}

/// Found by the harness: a segment whose first frame is a seal sent the tail reader back to the
/// same file forever.
#[test]
fn regression_seal_as_first_frame() {
    let mut bytes = valid_segment(3, false);
    bytes[128..132].copy_from_slice(&u32::MAX.to_le_bytes());
    read_all_ways(&bytes);
}

/// Found by the harness: a file cut inside the last frame's padding made the tail check slice
/// past the end.
#[test]
fn regression_cut_inside_padding() {
    // Record 2 is 14 bytes of 1 at offset 160 + 16: its data ends at 190, its padding at 192.
    let bytes = valid_segment(2, false);
    assert_eq!(&bytes[176..190], &[1u8; 14]);
    read_all_ways(&bytes[..190]);
}
