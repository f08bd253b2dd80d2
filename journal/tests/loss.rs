//! Loss that must be noticed. Defects 2 and 3 of the hardening issue: zeroing or truncating the
//! last segment at a frame boundary below its durable mark, or deleting the newest segment,
//! made readers accept a shorter history; a full disk killed the writer with SIGBUS because
//! segments were sparse. Each case here is an error naming the file, or a clean I/O error.

use margin_journal::format::{frame_at, FrameAt, HEADER_LEN};
use margin_journal::segment::list_segments;
use margin_journal::{Config, Durability, JournalError, Reader, Writer};
use std::path::{Path, PathBuf};

fn config(dir: &Path, durability: Durability) -> Config {
    Config {
        segment_bytes: 64 << 10,
        max_record_bytes: 4096,
        durability,
        ..Config::new(dir, "log")
    }
}

fn payload(seq: u64) -> Vec<u8> {
    vec![(seq % 251) as u8 + 1; 40 + (seq % 90) as usize]
}

/// Writes `n` records, synced, and closes the writer.
fn write(dir: &Path, n: u64) {
    write_with(dir, n, Durability::Every)
}

fn write_with(dir: &Path, n: u64, durability: Durability) {
    let (mut w, _) = Writer::open(config(dir, durability)).unwrap();
    for seq in 1..=n {
        assert_eq!(w.append(&payload(seq)).unwrap(), seq);
    }
    w.sync().unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir, "log")
        .unwrap()
        .into_iter()
        .map(|s| s.1)
        .collect()
}

/// Offset of the `k`-th frame of a segment file (a frame boundary).
fn frame_offset(path: &Path, k: usize) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let mut pos = HEADER_LEN;
    for _ in 0..k {
        match frame_at(&bytes, pos, false, 4096) {
            FrameAt::Frame(f) => pos += f.extent,
            _ => panic!("fewer than {k} frames in {}", path.display()),
        }
    }
    pos
}

fn expect_corrupt(dir: &Path, file: &Path, needle: &str) {
    let named = |e: &JournalError| {
        let text = e.to_string();
        assert!(
            text.contains(&file.display().to_string()) && text.contains(needle),
            "{text}"
        );
    };
    named(
        &Reader::open(dir, "log", 4096)
            .err()
            .expect("reader refuses"),
    );
    named(
        &Writer::open(config(dir, Durability::None))
            .err()
            .expect("writer refuses"),
    );
}

#[test]
fn zeroing_the_last_segment_below_the_durable_mark_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 6_144);
    let last = segments(dir.path()).pop().unwrap();
    let cut = frame_offset(&last, 10);
    let mut bytes = std::fs::read(&last).unwrap();
    bytes[cut..].fill(0);
    std::fs::write(&last, &bytes).unwrap();
    expect_corrupt(dir.path(), &last, "are missing");
}

#[test]
fn truncating_the_last_segment_at_a_frame_boundary_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 6_144);
    let last = segments(dir.path()).pop().unwrap();
    let cut = frame_offset(&last, 3);
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(cut as u64).unwrap();
    drop(f);
    // The reader sees the short file; the writer extends a short file before it scans, then
    // finds the records end before the durable mark. Both name the loss.
    expect_corrupt(dir.path(), &last, "missing");
}

#[test]
fn deleting_the_newest_segment_is_an_error_naming_the_missing_range() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 6_144);
    let mut segs = segments(dir.path());
    assert!(segs.len() > 2, "several segments");
    let newest = segs.pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    let sealed = segs.pop().unwrap();
    expect_corrupt(dir.path(), &sealed, "is missing");
}

#[test]
fn a_crash_between_creating_the_next_segment_and_sealing_loses_nothing() {
    // The writer creates the successor before it seals: an unsealed segment followed by an
    // empty one is a state a crash can leave, and it opens cleanly with every record.
    // Unsynced (durability none): the seal was never made durable, as after such a crash.
    let dir = tempfile::tempdir().unwrap();
    write_with(dir.path(), 3_000, Durability::None);
    let segs = segments(dir.path());
    let prev = &segs[segs.len() - 2];
    let bytes = std::fs::read(prev).unwrap();
    let r = Reader::open(dir.path(), "log", 4096).unwrap();
    let last = r.last_seq();
    drop(r);
    // Remove the seal of the second-newest segment (a crash just before it was written).
    let mut pos = HEADER_LEN;
    while let FrameAt::Frame(f) = frame_at(&bytes, pos, false, 4096) {
        pos += f.extent;
    }
    let mut unsealed = bytes.clone();
    unsealed[pos..pos + 4].fill(0);
    std::fs::write(prev, &unsealed).unwrap();
    let r = Reader::open(dir.path(), "log", 4096).unwrap();
    assert_eq!(r.last_seq(), last);
    let (w, _) = Writer::open(config(dir.path(), Durability::None)).unwrap();
    assert_eq!(w.last_seq(), last);
}

/// A small tmpfs mounted for one test and unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "this test needs to mount a small tmpfs (run as root, as CI does)"
        );
        SmallDisk { path, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

#[test]
fn a_full_disk_is_a_clean_error_not_a_bus_error() {
    let disk = SmallDisk::mount("1m");
    let cfg = Config {
        segment_bytes: 256 << 10,
        ..config(&disk.path, Durability::Every)
    };
    let (mut w, _) = Writer::open(cfg.clone()).unwrap();
    let mut failed = None;
    for seq in 1..=100_000u64 {
        match w.append(&payload(seq)) {
            Ok(s) => assert_eq!(s, seq),
            Err(e) => {
                failed = Some((seq, e.to_string()));
                break;
            }
        }
    }
    let (seq, e) = failed.expect("a 1 MiB disk fills up");
    assert!(e.contains("No space left"), "{e}");
    // Everything appended before the failure is there, and no temporary file is left.
    drop(w);
    let names: Vec<String> = std::fs::read_dir(&disk.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let r = Reader::open(&disk.path, "log", 4096).unwrap();
    assert_eq!(r.last_seq(), seq - 1);
}
