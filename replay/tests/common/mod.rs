//! What the tests that drive real binaries and a real browser share.

#![allow(dead_code)] // each test crate uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

pub const REPLAY: &str = env!("CARGO_BIN_EXE_margin-replay");

/// The engine's binary, the sibling of this package's (`cargo test --workspace` builds both).
pub fn engine_bin() -> PathBuf {
    Path::new(REPLAY).with_file_name("margin-engine")
}

/// Debian's Chromium (installed by `.ci/run` when missing): without it the test fails, it does
/// not skip.
pub fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("this test needs Debian's chromium (apt-get install chromium; .ci/run installs it)");
}

/// Loads `url` in headless Chromium, runs it for `budget_ms` of virtual time and returns the
/// DOM, after checking that the page logged no script error.
pub fn rendered_dom(url: &str, profile: &Path, budget_ms: u32) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed");
    let log = String::from_utf8_lossy(&out.stderr);
    for bad in ["Uncaught", ":CONSOLE", "SyntaxError"] {
        assert!(!log.contains(bad), "the page logged {bad}: {log}");
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
