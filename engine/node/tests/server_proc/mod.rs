//! The real `margin-engine serve` binary as a child process, for the tests that drive it over
//! TCP: started on a free loopback port, its address read from its first lines, stopped with
//! SIGTERM (checking the exit status) or killed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every line the server wrote to stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

pub fn start(data: &Path) -> Server {
    start_with(data, &[])
}

pub fn start_with(data: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_margin-engine"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--stats-secs",
            if extra.contains(&"--json-stats") {
                "1"
            } else {
                "0"
            },
            "--snapshot-every",
            "500",
            "--segment-mb",
            "1",
            "--data",
        ])
        .arg(data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn margin-engine serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "the server stopped before printing its address:\n{}",
                stderr.lock().unwrap().join("\n")
            );
        };
        stderr.lock().unwrap().push(line.clone());
        if let Some(rest) = line.strip_prefix("margin-engine: serving on ") {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    // Keep draining stderr so the server never blocks on it.
    let keep = stderr.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            keep.lock().unwrap().push(line);
        }
    });
    Server {
        child,
        addr,
        stderr,
    }
}

impl Server {
    /// The server's stderr so far, one string.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// A figure from /proc/PID/status (`Threads`, `VmRSS` in kB, ...).
    pub fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Open file descriptors of the server.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
        let status = self.child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "graceful stop exits 0");
    }
}
