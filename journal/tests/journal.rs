//! The journal's promises, tested: round trips, reopening, crashes at every byte, bit flips,
//! a tail that follows a live writer, retention.

use margin_journal::{Config, Durability, JournalError, Reader, Tail, Writer};
use std::path::Path;

/// The payload of record `seq`: deterministic, 1 to 256 bytes, content tied to the seq.
fn payload(seq: u64) -> Vec<u8> {
    let len = 1 + (seq.wrapping_mul(2654435761) % 256) as usize;
    (0..len)
        .map(|i| (seq as usize * 31 + i * 7) as u8)
        .collect()
}

fn config(dir: &Path, segment: u64, chain: bool) -> Config {
    Config {
        segment_bytes: segment,
        max_record_bytes: 4096,
        chain,
        ..Config::new(dir, "log")
    }
}

fn write_n(cfg: &Config, from: u64, n: u64) -> Writer {
    let (mut w, _) = Writer::open(cfg.clone()).unwrap();
    assert_eq!(w.next_seq(), from);
    for seq in from..from + n {
        assert_eq!(w.append(&payload(seq)).unwrap(), seq);
    }
    w
}

fn check_all(dir: &Path, last: u64) {
    let r = Reader::open(dir, "log", 4096).unwrap();
    assert_eq!(r.last_seq(), last);
    let mut expect = r.first_seq();
    for rec in r.iter_from(1) {
        let rec = rec.unwrap();
        assert_eq!(rec.seq, expect);
        assert_eq!(rec.payload, &payload(rec.seq)[..]);
        assert_eq!(
            rec.payload.as_ptr() as usize % 16,
            0,
            "payloads are 16-byte aligned"
        );
        expect += 1;
    }
    assert_eq!(expect, last + 1);
}

#[test]
fn millions_of_records_round_trip_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 4 << 20, false);
    let n = 2_000_000;
    drop(write_n(&cfg, 1, n));
    check_all(dir.path(), n);
    let r = Reader::open(dir.path(), "log", 4096).unwrap();
    assert!(r.summary().segments > 50);
    for seq in [1, 2, 63, 64, 65, 777_777, n - 1, n] {
        assert_eq!(r.get(seq).unwrap().unwrap().payload, &payload(seq)[..]);
    }
    assert!(r.get(n + 1).unwrap().is_none());
    assert!(r.get(0).unwrap().is_none());
    let from: Vec<u64> = r.iter_from(n - 2).map(|x| x.unwrap().seq).collect();
    assert_eq!(from, vec![n - 2, n - 1, n]);
}

#[test]
fn reopen_continues_the_sequence_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 10, true);
    let head = write_n(&cfg, 1, 1000).head();
    let (w, rec) = Writer::open(cfg.clone()).unwrap();
    assert_eq!(rec.last_seq, 1000);
    assert_eq!(rec.torn_bytes, 0);
    assert_eq!(w.head(), head, "the chain head is recovered");
    drop(w);
    drop(write_n(&cfg, 1001, 1000));
    check_all(dir.path(), 2000);
    assert_eq!(
        Reader::open(dir.path(), "log", 4096)
            .unwrap()
            .summary()
            .last_seq,
        2000
    );
}

/// A crash can leave the log cut at any byte (truncated or never written). Recovery must keep
/// exactly the records that were whole, cut the rest and report it, and go on appending.
#[test]
fn crash_at_every_byte_of_the_tail_recovers_the_longest_valid_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 10, true);
    let n = 120;
    drop(write_n(&cfg, 1, n));
    let seg = dir.path().join("log-00000000000000000001.seg");
    let pristine = std::fs::read(&seg).unwrap();
    // Where each frame's data ends (its zero padding is not needed to read it), to know how
    // many records are whole at each cut.
    let mut ends = vec![];
    let mut pos = 128usize;
    for seq in 1..=n {
        ends.push(pos + 48 + payload(seq).len());
        pos += margin_journal::format::frame_len(true, payload(seq).len());
    }
    let start = ends[n as usize - 6];
    for cut in (start..=ends[n as usize - 1] + 1).chain([ends[n as usize - 1] + 4]) {
        for truncate in [true, false] {
            let case = tempfile::tempdir().unwrap();
            let mut bytes = pristine.clone();
            if truncate {
                bytes.truncate(cut);
            } else {
                bytes[cut..].fill(0);
            }
            std::fs::write(case.path().join("log-00000000000000000001.seg"), &bytes).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count() as u64;
            let c = config(case.path(), 64 << 10, true);
            let (mut w, rec) = Writer::open(c.clone()).unwrap();
            assert_eq!(rec.last_seq, whole, "cut at {cut}");
            let partial_frame =
                whole < n && bytes[ends[whole as usize - 1]..].iter().any(|&b| b != 0);
            assert_eq!(rec.torn_bytes > 0, partial_frame, "cut at {cut}");
            w.append(&payload(whole + 1)).unwrap();
            drop(w);
            check_all(case.path(), whole + 1);
        }
    }
}

/// Any single flipped bit is caught: the reader fails naming the file and offset, or reports
/// the damaged tail; it never hands out a record that differs from what was written.
#[test]
fn bit_flips_anywhere_are_detected() {
    for durability in [Durability::None, Durability::Every] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            durability,
            ..config(dir.path(), 16 << 10, true)
        };
        let n = 60;
        drop(write_n(&cfg, 1, n));
        let seg = dir.path().join("log-00000000000000000001.seg");
        let pristine = std::fs::read(&seg).unwrap();
        let last_frame_end = pristine.iter().rposition(|&b| b != 0).unwrap() + 1;
        let used = last_frame_end + 64;
        for byte in 0..used {
            let bit = byte % 8;
            let mut bytes = pristine.clone();
            bytes[byte] ^= 1 << bit;
            std::fs::write(&seg, &bytes).unwrap();
            match Reader::open(dir.path(), "log", 4096) {
                Err(JournalError::Corrupt { path, offset, .. }) => {
                    assert_eq!(path, seg);
                    assert!(
                        offset <= byte as u64 + 48,
                        "offset {offset} for a flip at {byte}"
                    );
                }
                Err(e) => panic!("flip at {byte}: unexpected error {e}"),
                Ok(r) => {
                    assert!(
                        r.summary().torn_bytes > 0 || r.last_seq() < n,
                        "flip at byte {byte} ({durability:?}) went unnoticed"
                    );
                    assert!(
                        durability == Durability::None || byte >= last_frame_end,
                        "flip at {byte}: a flip before the durable mark is an error"
                    );
                    for rec in r.iter_from(1) {
                        let rec = rec.unwrap();
                        assert_eq!(rec.payload, &payload(rec.seq)[..]);
                    }
                }
            }
        }
    }
}

#[test]
fn corruption_in_the_middle_stops_the_writer_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 10, false);
    let mut w = write_n(&cfg, 1, 50);
    w.sync().unwrap();
    drop(w);
    let seg = dir.path().join("log-00000000000000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[128 + 20] ^= 0x10; // inside the first frame's payload
    std::fs::write(&seg, &bytes).unwrap();
    match Writer::open(cfg) {
        Err(JournalError::Corrupt { path, offset, what }) => {
            assert_eq!(path, seg);
            assert_eq!(offset, 128);
            assert!(what.contains("checksum"), "{what}");
        }
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("a corrupt middle frame must not open"),
    }
}

/// Past the durable mark nothing was promised: a machine crash can lose one page and keep a
/// later one, so a bad frame there ends the log (reported as torn), valid frames behind it or
/// not.
#[test]
fn a_bad_frame_past_the_durable_mark_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 64 << 10, false);
    let mut w = write_n(&cfg, 1, 10);
    w.sync().unwrap();
    let durable = w.last_seq();
    for i in 11..=50 {
        w.append(&payload(i)).unwrap();
    }
    drop(w); // Durability::None: nothing after seq 10 is synced or marked durable
    let seg = dir.path().join("log-00000000000000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let header = margin_journal::format::Header::decode(&bytes[..128]).unwrap();
    let hole = header.durable_end as usize + 20;
    bytes[hole] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let (w, rec) = Writer::open(cfg).unwrap();
    assert_eq!(
        w.last_seq(),
        durable,
        "the log ends at the last durable frame"
    );
    assert!(rec.torn_bytes > 0, "the cut is reported");
}

#[test]
fn a_tail_follows_a_live_writer_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 32 << 10, true);
    let (mut w, _) = Writer::open(cfg).unwrap();
    let n = 200_000u64;
    let path = dir.path().to_path_buf();
    let reader = std::thread::spawn(move || {
        let mut tail = Tail::new(&path, "log", 4096, 1);
        let mut seen = 0u64;
        while seen < n {
            match tail.poll().unwrap() {
                Some(rec) => {
                    seen += 1;
                    assert_eq!(rec.seq, seen);
                    assert_eq!(rec.payload, payload(rec.seq));
                }
                None => std::thread::yield_now(),
            }
        }
        assert!(tail.poll().unwrap().is_none());
        seen
    });
    for seq in 1..=n {
        w.append(&payload(seq)).unwrap();
    }
    assert_eq!(reader.join().unwrap(), n);
    let mut late = Tail::new(dir.path(), "log", 4096, n - 10);
    let got: Vec<u64> = std::iter::from_fn(|| late.poll().unwrap())
        .map(|r| r.seq)
        .collect();
    assert_eq!(got, (n - 10..=n).collect::<Vec<_>>());
}

#[test]
fn retention_deletes_whole_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 16 << 10, true);
    let mut w = write_n(&cfg, 1, 3000);
    let before = w.segments().len();
    let removed = w.retain_from(1500).unwrap();
    assert!(!removed.is_empty() && removed.len() < before);
    let r = Reader::open(dir.path(), "log", 4096).unwrap();
    assert!(r.first_seq() <= 1500 && r.first_seq() > 1);
    assert_eq!(r.last_seq(), 3000);
    for rec in r.iter_from(1) {
        let rec = rec.unwrap();
        assert_eq!(rec.payload, &payload(rec.seq)[..]);
    }
}

#[test]
fn durable_seq_follows_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let base = config(dir.path(), 64 << 10, false);
    let (mut none, _) = Writer::open(Config {
        name: "a".into(),
        ..base.clone()
    })
    .unwrap();
    none.append(b"x").unwrap();
    assert_eq!(none.durable_seq(), 0);
    none.sync().unwrap();
    assert_eq!(none.durable_seq(), 1);
    let batch = Durability::Batch {
        max_records: 3,
        max_delay: std::time::Duration::from_secs(3600),
    };
    let (mut b, _) = Writer::open(Config {
        name: "b".into(),
        durability: batch,
        ..base.clone()
    })
    .unwrap();
    b.append(b"1").unwrap();
    b.append(b"2").unwrap();
    assert_eq!(b.durable_seq(), 0);
    b.append(b"3").unwrap();
    assert_eq!(b.durable_seq(), 3);
    let (mut e, _) = Writer::open(Config {
        name: "c".into(),
        durability: Durability::Every,
        ..base
    })
    .unwrap();
    e.append(b"1").unwrap();
    assert_eq!(e.durable_seq(), 1);
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        segment_bytes: 16 << 10,
        max_record_bytes: 1 << 20,
        ..Config::new(dir.path(), "log")
    };
    let (mut w, _) = Writer::open(cfg.clone()).unwrap();
    let big = vec![7u8; 100_000];
    w.append(b"small").unwrap();
    w.append(&big).unwrap();
    w.append(b"after").unwrap();
    drop(w);
    let r = Reader::open(dir.path(), "log", 1 << 20).unwrap();
    let got: Vec<Vec<u8>> = r
        .iter_from(1)
        .map(|x| x.unwrap().payload.to_vec())
        .collect();
    assert_eq!(got, vec![b"small".to_vec(), big, b"after".to_vec()]);
    let (w, rec) = Writer::open(cfg).unwrap();
    assert_eq!(rec.last_seq, 3);
    assert_eq!(w.next_seq(), 4);
}
