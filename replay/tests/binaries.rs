//! `margin-replay verify` (the real binary) on data directories made by the real
//! `margin-engine run`, `serve` and `demo` commands: each verifies, the output-log head it
//! reports is the one the engine printed, and a flipped byte makes it fail with exit 1.
//!
//! The engine's binary is the sibling of this package's: `cargo test --workspace` builds both
//! before any test runs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const REPLAY: &str = env!("CARGO_BIN_EXE_margin-replay");

fn engine_bin() -> PathBuf {
    let bin = Path::new(REPLAY).with_file_name("margin-engine");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p margin-engine` first)",
        bin.display()
    );
    bin
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/venue.jsonl")
}

/// The 64-hex-digit output head after `marker` in the engine's report.
fn head_after(text: &str, marker: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{text}"));
    let head: String = text[at + marker.len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(head.len(), 64, "an output head after {marker:?}: {text}");
    head
}

fn verify(data: &Path) -> Output {
    Command::new(REPLAY)
        .args(["verify", "--data"])
        .arg(data)
        .output()
        .expect("run margin-replay verify")
}

/// Verify passes and reports the head the engine printed.
fn assert_verifies(data: &Path, head: &str) {
    let out = verify(data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify failed on {}: {stdout}{}",
        data.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("output batches compared, every one identical"),
        "{stdout}"
    );
    assert_eq!(head_after(&stdout, "output log head"), head, "{stdout}");
}

/// Flips one byte inside the first record of the first output segment.
fn flip_output_byte(data: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data.join("output"))
        .expect("output dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    segments.sort();
    let seg = segments.first().expect("an output segment").clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Past the 128-byte segment header and the first frame's header: payload bytes.
    bytes[128 + 64 + 3] ^= 0x10;
    std::fs::write(&seg, bytes).unwrap();
    seg
}

#[test]
fn verify_passes_on_a_directory_made_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(engine_bin())
        .args(["run", "--input"])
        .arg(example())
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run margin-engine run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_verifies(&data, &head_after(&stderr, "output head"));
}

#[test]
fn verify_passes_on_a_demo_and_fails_on_one_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = Command::new(engine_bin())
        .args(["demo", "--accounts", "150", "--events", "4000"])
        .args(["--snapshot-every", "1500", "--segment-mb", "1", "--data"])
        .arg(&data)
        .output()
        .expect("run margin-engine demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_verifies(&data, &head_after(&stdout, "output head"));

    let seg = flip_output_byte(&data);
    let out = verify(&data);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        said.contains(&name),
        "names the damaged file {name}: {said}"
    );
}

#[test]
fn verify_passes_on_a_directory_made_by_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(engine_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--stats-secs", "0"])
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn margin-engine serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("margin-engine: serving on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };

    let events = std::fs::read_to_string(example()).unwrap();
    let events: Vec<&str> = events.lines().filter(|l| !l.is_empty()).collect();
    let mut s = TcpStream::connect(&addr).expect("connect");
    for (i, e) in events.iter().enumerate() {
        writeln!(s, "{{\"id\":{i},{}", &e[1..]).unwrap();
    }
    // Every input is answered with its id; wait for the last one.
    let last = format!("{{\"id\":{},", events.len() - 1);
    let mut answers = BufReader::new(s.try_clone().unwrap()).lines();
    assert!(
        answers.any(|l| l.unwrap().starts_with(&last)),
        "the last input was answered"
    );
    drop(s);

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let stopped = lines
        .map(Result::unwrap)
        .find(|l| l.contains("stopped after"))
        .expect("serve reports its stop");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_verifies(&data, &head_after(&stopped, "output head"));
}

/// A directory made by `run` over the example venue.
fn example_dir(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let out = Command::new(engine_bin())
        .args(["run", "--input"])
        .arg(example())
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run margin-engine run");
    assert!(out.status.success());
    data
}

fn replay(args: &[&str], data: &Path) -> Output {
    Command::new(REPLAY)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run margin-replay")
}

#[test]
fn a_closed_pipe_is_no_panic_and_bad_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = example_dir(dir.path());
    // `margin-replay state | head -1`, and the same for stress and export.
    for args in [
        "state --data D",
        "stress --json --shock BTC=-0.3 --data D",
        "export --data D",
    ] {
        let cmd = format!(
            "{REPLAY} {} | head -1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
            args.replace('D', &data.display().to_string())
        );
        let out = Command::new("bash").args(["-c", &cmd]).output().unwrap();
        let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status, "0", "{args}: exit {status}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args}: {stderr}");
    }
    // Refused with exit 2 and a line that says why.
    for (args, says) in [
        (&["state", "--account", "999999"][..], "does not exist"),
        (&["stress", "--shock", "BTC=-1"][..], "above -1"),
        (&["stress", "--shock", "BTC=-1.5"][..], "above -1"),
        (
            &["stress", "--grid", "BTC=0.3:-0.3:0.1"][..],
            "FROM must not be above TO",
        ),
        (
            &["stress", "--grid", "BTC=-0.9:0.9:0.0001"][..],
            "at most 1000",
        ),
    ] {
        let out = replay(args, &data);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn verify_stops_before_a_torn_tail_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = example_dir(dir.path());
    let before = verify(&data);
    assert!(before.status.success());
    // An interrupted write past the durable mark: bytes after the last frame of the input log.
    let seg = std::fs::read_dir(data.join("input"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Just past the last frame, where an interrupted write would start.
    let at = margin_journal::segment::scan(&seg, &bytes, 1 << 28, 64)
        .unwrap()
        .end;
    bytes[at..at + 20].copy_from_slice(&[0x5a; 20]);
    std::fs::write(&seg, &bytes).unwrap();
    let out = verify(&data);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("interrupted write"), "{stdout}");
}

#[test]
fn audit_fails_on_an_output_log_of_another_history_or_an_empty_one() {
    // Issue 15: audit printed PASSED without comparing the replay with the output log.
    let dir = tempfile::tempdir().unwrap();
    let data = example_dir(dir.path());
    let ok = replay(&["audit"], &data);
    let said = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(ok.status.success(), "{said}");
    assert!(
        said.starts_with("PASSED") && said.contains("output batches compared"),
        "{said}"
    );

    // The output log of another history (a generated venue), and a short one (the output log
    // of the example's first 300 lines: a consistent prefix, but not the whole history).
    let events = std::fs::read_to_string(example()).unwrap();
    let generated = Command::new(engine_bin())
        .args(["generate", "--events", "400"])
        .output()
        .unwrap()
        .stdout;
    // As many inputs as the example has, or fewer: the logs' lengths agree, the bytes do not.
    let generated: String = String::from_utf8(generated)
        .unwrap()
        .lines()
        .take(events.lines().count())
        .map(|l| format!("{l}\n"))
        .collect();
    let generated = generated.into_bytes();
    let short: String = events.lines().take(300).map(|l| format!("{l}\n")).collect();
    for (name, text, says) in [
        ("other", generated, "diverges from the replay"),
        ("short", short.into_bytes(), "the output log is short"),
    ] {
        let file = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&file, text).unwrap();
        let other = dir.path().join(name);
        let out = Command::new(engine_bin())
            .args(["run", "--input"])
            .arg(&file)
            .arg("--data")
            .arg(&other)
            .output()
            .unwrap();
        assert!(out.status.success());
        let swapped = dir.path().join(format!("swapped-{name}"));
        copy_dir(&data, &swapped);
        std::fs::remove_dir_all(swapped.join("output")).unwrap();
        copy_dir(&other.join("output"), &swapped.join("output"));
        std::fs::remove_dir_all(swapped.join("snapshots")).unwrap();
        let bad = replay(&["audit"], &swapped);
        let said = String::from_utf8_lossy(&bad.stdout).to_string();
        assert_eq!(bad.status.code(), Some(1), "{name}: {said}");
        assert!(
            said.starts_with("FAILED") && said.contains(says),
            "{name}: {said}"
        );
    }

    // An emptied output log.
    let emptied = dir.path().join("emptied");
    copy_dir(&data, &emptied);
    for f in std::fs::read_dir(emptied.join("output")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let bad = replay(&["audit"], &emptied);
    let said = String::from_utf8_lossy(&bad.stdout).to_string();
    assert_eq!(bad.status.code(), Some(1), "{said}");
    assert!(said.contains("output log is empty"), "{said}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn the_demos_next_steps_run_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(engine_bin())
        .current_dir(dir.path())
        .args(["demo", "--accounts", "100", "--events", "3000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let steps: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            l.split_once("cargo run --release -p margin-replay -- ")
                .map(|x| x.1)
        })
        .collect();
    assert_eq!(steps.len(), 3, "{stdout}");
    for step in steps {
        // What `cargo run -p margin-replay --` runs: this package's binary, from the same place.
        let out = Command::new(REPLAY)
            .current_dir(dir.path())
            .args(step.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{step}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn run_fresh_refuses_a_directory_with_a_journal_and_generate_honours_its_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let data = example_dir(dir.path());
    let out = Command::new(engine_bin())
        .args(["run", "--fresh", "--input"])
        .arg(example())
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a journal"));
    let out = Command::new(engine_bin())
        .args(["generate", "--markets", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 to 12 markets"));
    // One generator behind both binaries: the same flags give the same bytes, and the same
    // sizes are refused.
    let bench = Path::new(REPLAY).with_file_name("margin-bench");
    let flags = ["--accounts", "40", "--events", "600", "--seed", "9"];
    let engine_gen = Command::new(engine_bin())
        .arg("generate")
        .args(flags)
        .output()
        .unwrap();
    let bench_gen = Command::new(&bench)
        .arg("gen")
        .args(flags)
        .output()
        .unwrap();
    assert!(engine_gen.status.success() && bench_gen.status.success());
    assert!(engine_gen.stdout.len() > 10_000);
    assert_eq!(engine_gen.stdout, bench_gen.stdout);
    let out = Command::new(&bench)
        .args(["gen", "--markets", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 to 12 markets"));
    let cmd = format!(
        "{} generate --events 200000 | head -1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        engine_bin().display()
    );
    let out = Command::new("bash").args(["-c", &cmd]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}
