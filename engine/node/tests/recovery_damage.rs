//! What a start finds in a damaged or unusual data directory (hardening defects 4 and 13):
//! snapshots of accounts created out of id order are used, not skipped; a flipped bit in a
//! sealed output segment stops the start with the file named; `run` refuses to write its
//! outputs over its input.

use margin_engine::codec::parse_input;
use margin_engine::record::Record;
use margin_node::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink};
use std::path::{Path, PathBuf};

const VENUE: &str = include_str!("../../../examples/venue.jsonl");

struct Null;
impl Sink for Null {
    fn applied(&mut self, _: u64, _: Origin, _: &[Record], _: &[u8], _: u64) {}
    fn malformed(&mut self, _: Origin, _: u64, _: &str, _: u64) {}
}

fn cfg(dir: &Path) -> PipelineConfig {
    PipelineConfig {
        segment_bytes: 64 << 10,
        snapshot_every: 0,
        ..PipelineConfig::new(dir)
    }
}

/// Starts a pipeline on a directory a finished one just released. Other tests of this binary
/// spawn processes, and a child forked in that instant holds a copy of the directory's locked
/// descriptor until it execs (the lock is an `flock`, shared by the copy): the start is retried
/// while it says the directory is in use, for at most two seconds; any other answer is final.
fn start(c: PipelineConfig) -> Result<Pipeline, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match Pipeline::start(c.clone(), Box::new(Null)) {
            Err(e)
                if e.contains("is in use by another") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn feed(c: PipelineConfig, lines: &[String], snapshot: bool) {
    let mut p = start(c).unwrap();
    for l in lines {
        p.submit(Item {
            kind: ItemKind::Event(parse_input(l).unwrap()),
            origin: Origin::default(),
            sent_ns: now_ns(),
        })
        .unwrap();
    }
    if snapshot {
        p.snapshot().unwrap();
    }
    p.finish().unwrap();
}

fn setup() -> Vec<String> {
    VENUE
        .lines()
        .filter(|l| l.contains("\"type\":\"asset\"") || l.contains("\"type\":\"market\""))
        .map(String::from)
        .collect()
}

fn deposit(account: u64) -> String {
    format!(
        r#"{{"type":"deposit","ts":2000000,"account":{account},"asset":"USDC","amount":"100"}}"#
    )
}

#[test]
fn a_snapshot_with_accounts_out_of_id_order_is_used_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = setup();
    lines.extend([deposit(5), deposit(3), deposit(4)]);
    feed(cfg(dir.path()), &lines, true);
    let p = start(cfg(dir.path())).unwrap();
    let r = p.recovery().clone();
    assert_eq!(r.snapshot_seq, Some(lines.len() as u64), "{r:?}");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.replayed, 0);
    p.finish().unwrap();
}

fn output_segments(dir: &Path) -> Vec<PathBuf> {
    margin_journal::segment::list_segments(&dir.join("output"), "output")
        .unwrap()
        .into_iter()
        .map(|s| s.1)
        .collect()
}

#[test]
fn a_flipped_bit_in_a_sealed_output_segment_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = setup();
    lines.extend((1..=600).map(deposit));
    feed(cfg(dir.path()), &lines, true);
    let segs = output_segments(dir.path());
    assert!(segs.len() >= 2, "several output segments");
    let first = &segs[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[200] ^= 0x10;
    std::fs::write(first, &bytes).unwrap();
    let err = start(cfg(dir.path())).err().expect("the start refuses");
    assert!(
        err.contains("output log") && err.contains(&first.display().to_string()),
        "{err}"
    );
}

#[test]
fn run_refuses_to_write_its_outputs_over_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, setup().join("\n") + "\n").unwrap();
    let before = std::fs::read(&input).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_margin-engine"))
        .args(["run", "--input"])
        .arg(&input)
        .arg("--outputs")
        .arg(dir.path().join(".").join("events.jsonl"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the --input file"));
    assert_eq!(
        std::fs::read(&input).unwrap(),
        before,
        "the input is intact"
    );
}

/// A small tmpfs mounted for one test and unmounted when dropped (needs root, as CI runs).
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let disk = SmallDisk { path, _dir: dir };
        disk.mount_opts(&format!("size={size}"), false);
        disk
    }

    fn mount_opts(&self, opts: &str, remount: bool) {
        let opts = if remount {
            format!("remount,{opts}")
        } else {
            opts.to_string()
        };
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(&self.path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "this test mounts a small tmpfs (run as root, as CI does)"
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

fn run_on(data: &Path, input: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_margin-engine"))
        .args([
            "run",
            "--durability",
            "every",
            "--segment-mb",
            "1",
            "--input",
        ])
        .arg(input)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_stops_run_with_a_message_and_the_directory_recovers() {
    // Hardening defect 3: a full disk was a SIGBUS (exit 135, no message).
    let work = tempfile::tempdir().unwrap();
    let mut lines = setup();
    lines.extend((1..=20_000).map(deposit));
    let input = work.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let disk = SmallDisk::mount("3m");
    let data = disk.path.join("data");
    let out = run_on(&data, &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("No space left") && stderr.contains("outputs are not released"),
        "{stderr}"
    );
    let leftovers: Vec<String> = walk(&data)
        .into_iter()
        .filter(|p| p.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // With room again, the same directory opens and agrees with its journal.
    disk.mount_opts("size=64m", true);
    let p = Pipeline::start(cfg(&data), Box::new(Null)).unwrap();
    let f = p.finish().unwrap();
    assert!(f.last_seq > 0);
    assert_eq!(f.engine.state.input_seq, f.last_seq);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
