//! Replication through a real `nats-server -js` (Debian's `nats-server`, installed by `.ci/run`;
//! a test that cannot find it fails): the real `margin-engine serve --replicate` and `follow`
//! binaries, a generated venue of more than 100,000 inputs, and a feeder over TCP that resends
//! from the seq the new primary reports.
//!
//! What must hold: followers end with the primary's output head (hence the same records and
//! state); with the primary killed (-9) at seeded points three times, a standby takes over and
//! the final history equals one uninterrupted `run` over the same inputs; an old primary
//! restarted after a takeover cannot append; and nats-server itself killed and restarted mid
//! stream loses nothing that was acknowledged.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ENGINE: &str = env!("CARGO_BIN_EXE_margin-engine");

fn nats_server_bin() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = Path::new(dir).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    panic!("nats-server is not installed: `.ci/run` installs Debian's nats-server (apt-get install nats-server)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process whose stderr lines are collected as they come.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stderr.take().unwrap();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Proc { child, lines }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The first line containing `needle`, waiting up to `secs`.
    fn wait_for(&mut self, needle: &str, secs: u64) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return Some(l.clone());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                // Exited: its last lines may still be on their way through the reader thread.
                let grace = Instant::now() + Duration::from_secs(3);
                while Instant::now() < grace {
                    let found = self
                        .lines
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|l| l.contains(needle))
                        .cloned();
                    if found.is_some() {
                        return found;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, the exit status, and the output head of the final line.
    fn stop(&mut self) -> String {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(status.success(), "{status}:\n{}", self.text());
        head_of(&self.text()).unwrap_or_else(|| panic!("no output head:\n{}", self.text()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn head_of(text: &str) -> Option<String> {
    let at = text.rfind("output head ")? + "output head ".len();
    Some(text[at..at + 64].to_string())
}

struct Nats {
    proc: Proc,
    port: u16,
    store: PathBuf,
}

impl Nats {
    fn start(store: &Path, port: u16) -> Nats {
        let mut cmd = Command::new(nats_server_bin());
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store);
        let mut proc = Proc::spawn(cmd);
        assert!(
            proc.wait_for("Server is ready", 20).is_some(),
            "nats-server did not start:\n{}",
            proc.text()
        );
        Nats {
            proc,
            port,
            store: store.to_path_buf(),
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// An engine command on a venue's stream: `head` names the command and its NATS flag.
fn on_stream(head: &[&str], nats: &str, stream: &str, data: &Path) -> Command {
    let mut cmd = Command::new(ENGINE);
    // The default lease (2 s): a standby that takes over keeps it renewed while it drains and,
    // through the lease keeper, while it reopens its directory as the primary.
    cmd.args(head)
        .arg(nats)
        .args(["--stream", stream, "--heads-every", "500"])
        .arg("--data")
        .arg(data);
    cmd
}

fn primary(data: &Path, nats: &str, stream: &str) -> Proc {
    let head = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--stats-secs",
        "0",
        "--replicate",
    ];
    Proc::spawn(on_stream(&head, nats, stream, data))
}

fn follower(data: &Path, nats: &str, stream: &str, takeover: bool) -> Proc {
    let mut cmd = on_stream(&["follow", "--nats"], nats, stream, data);
    if takeover {
        cmd.args(["--takeover", "--listen", "127.0.0.1:0"]);
    }
    Proc::spawn(cmd)
}

fn serving_addr(p: &mut Proc, secs: u64) -> Option<String> {
    let line = p.wait_for("margin-engine: serving on ", secs)?;
    let rest = line.split("serving on ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

/// The generated venue, more than 100,000 inputs, as lines.
fn venue_lines() -> Vec<String> {
    let args = margin_node::generate::GenerateArgs {
        accounts: 1_000,
        events: 55_000,
        seed: 17,
        ..Default::default()
    };
    let mut out = Vec::new();
    margin_node::generate::write_jsonl(args.config().unwrap(), &mut out).unwrap();
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(lines.len() >= 100_000, "{} inputs", lines.len());
    lines
}

/// Asks a server for its status; the seq a feeder resumes after (the replicated one).
fn resume_seq(addr: &str) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"{\"status\":{}}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let replicated = v["replicated"]
        .as_u64()
        .expect("a replicating primary's status");
    assert_eq!(v["journaled"].as_u64(), Some(replicated), "{line}");
    replicated
}

/// Sends `lines[from..]` and reads answers until every input is answered or the connection
/// breaks; calls `at_acked` with each newly answered seq (it may kill the server). Returns the
/// highest answered input seq.
fn feed(addr: &str, lines: &[String], from: u64, mut at_acked: impl FnMut(u64) -> bool) -> u64 {
    let stream = TcpStream::connect(addr).unwrap();
    let mut w = stream.try_clone().unwrap();
    let body: Vec<u8> = lines[from as usize..]
        .iter()
        .flat_map(|l| l.bytes().chain(std::iter::once(b'\n')))
        .collect();
    std::thread::spawn(move || {
        let _ = w.write_all(&body);
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let mut acked = from;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if !(line.contains("\"type\":\"accepted\"") || line.contains("\"type\":\"rejected\"")) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let Some(seq) = v["input"].as_u64() else {
            panic!("an answer without an input seq: {line}")
        };
        assert_eq!(seq, acked + 1, "answers come in input order");
        acked = seq;
        if at_acked(seq) {
            break;
        }
        if acked == lines.len() as u64 {
            break;
        }
    }
    acked
}

fn output_seq(data: &Path) -> u64 {
    margin_journal::Reader::open(&data.join("output"), "output", 1 << 28)
        .map(|r| r.last_seq())
        .unwrap_or(0)
}

fn wait_output(data: &Path, seq: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while output_seq(data) < seq {
        assert!(
            Instant::now() < deadline,
            "{} stayed at {} of {seq}",
            data.display(),
            output_seq(data)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The head of one uninterrupted `run` over the inputs.
fn uninterrupted_head(lines: &[String], dir: &Path) -> String {
    let file = dir.join("inputs.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = Command::new(ENGINE)
        .args(["run", "--input"])
        .arg(&file)
        .arg("--data")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    assert!(out.status.success());
    head_of(&String::from_utf8_lossy(&out.stderr)).expect("run prints its head")
}

#[test]
fn followers_match_the_primary_and_a_standby_takes_over_three_times() {
    let dir = tempfile::tempdir().unwrap();
    let lines = venue_lines();
    let n = lines.len() as u64;
    let nats = Nats::start(&dir.path().join("nats"), free_port());
    let url = nats.url();
    let stream = "venue-a";
    // Seeded kill points, spread over the history.
    let mut rng = margin_engine::rng::Rng::new(2026);
    let mut kills: Vec<u64> = (0..3).map(|_| n / 8 + rng.below(n * 3 / 4)).collect();
    kills.sort();
    let mut dirs = 0;
    let mut fresh = |name: &str| {
        dirs += 1;
        dir.path().join(format!("{name}-{dirs}"))
    };
    let first = fresh("primary");
    let mut current = primary(&first, &url, stream);
    let mut addr = serving_addr(&mut current, 30).unwrap_or_else(|| panic!("{}", current.text()));
    let mut current_dir = first.clone();
    let mut standbys: Vec<(Proc, PathBuf)> = (0..2)
        .map(|_| {
            let d = fresh("standby");
            (follower(&d, &url, stream, true), d)
        })
        .collect();
    // A read replica that never takes over.
    let replica_dir = fresh("replica");
    let mut replica = follower(&replica_dir, &url, stream, false);
    let mut acked = 0;
    let mut takeovers_ms = Vec::new();
    for round in 0..=kills.len() {
        let from = resume_seq(&addr);
        assert!(from <= acked.max(from), "resume at {from}");
        let kill_at = kills.get(round).copied();
        acked = feed(&addr, &lines, from, |seq| kill_at.is_some_and(|k| seq >= k));
        if kill_at.is_none() {
            assert_eq!(
                acked,
                n,
                "the last primary answered everything:\n{}",
                current.text()
            );
            break;
        }
        // Kill -9 the primary mid-stream; a standby takes over.
        current.kill9();
        let killed = Instant::now();
        let (mut next, next_dir, next_addr) = loop {
            let found = standbys.iter_mut().position(|(p, _)| {
                p.lines
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|l| l.contains("serving on"))
            });
            if let Some(i) = found {
                let (mut p, d) = standbys.remove(i);
                let a = serving_addr(&mut p, 1).unwrap();
                break (p, d, a);
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no standby took over"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        takeovers_ms.push(killed.elapsed().as_millis());
        eprintln!(
            "round {round}: killed at answered seq {acked}; took over in {} ms",
            killed.elapsed().as_millis()
        );
        if round == 0 {
            // The old primary, restarted on its own directory, may not append.
            let mut old = primary(&current_dir, &url, stream);
            let status = old.child.wait().unwrap();
            // Its stderr is read by a thread: wait for the line rather than race it.
            let said = old.wait_for("lease is held", 10);
            assert_eq!(status.code(), Some(1), "{}", old.text());
            assert!(said.is_some(), "{}", old.text());
        }
        std::mem::swap(&mut current, &mut next);
        drop(next);
        current_dir = next_dir;
        addr = next_addr;
        let d = fresh("standby");
        standbys.push((follower(&d, &url, stream, true), d));
    }
    assert_eq!(acked, n, "every input answered");
    assert_eq!(takeovers_ms.len(), 3, "three takeovers");
    for (_, d) in &standbys {
        wait_output(d, n, 120);
    }
    wait_output(&replica_dir, n, 120);
    let head = current.stop();
    let want = uninterrupted_head(&lines, dir.path());
    assert_eq!(head, want, "the history equals one uninterrupted run");
    for (p, _) in standbys.iter_mut() {
        assert_eq!(p.stop(), want);
    }
    let replica_text = {
        let h = replica.stop();
        assert_eq!(h, want);
        replica.text()
    };
    assert!(!replica_text.contains("DIVERGENCE"), "{replica_text}");
    eprintln!("takeovers in ms: {takeovers_ms:?}");
    drop(nats);
}

#[test]
fn nats_killed_and_restarted_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = venue_lines().into_iter().take(30_000).collect();
    let n = lines.len() as u64;
    let port = free_port();
    let store = dir.path().join("nats");
    let mut nats = Nats::start(&store, port);
    let url = nats.url();
    let data = dir.path().join("primary");
    let mut p = primary(&data, &url, "venue-b");
    let addr = serving_addr(&mut p, 30).unwrap();
    let follower_dir = dir.path().join("follower");
    let mut f = follower(&follower_dir, &url, "venue-b", false);
    let mut restarted = false;
    let mut restart: Option<std::thread::JoinHandle<Nats>> = None;
    let mut acked = 0;
    while acked < n {
        let from = resume_seq(&addr);
        acked = feed(&addr, &lines, from, |seq| {
            if !restarted && seq >= n / 3 {
                // Kill -9 nats-server under load and restart it on the same store half a
                // second later, while the feed goes on: the primary has inputs to replicate
                // during the outage however fast it keeps up.
                nats.proc.kill9();
                let store = nats.store.clone();
                restart = Some(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(500));
                    Nats::start(&store, port)
                }));
                restarted = true;
            }
            false
        });
    }
    assert!(restarted);
    // The restarted server lives until the end of the test.
    let _nats_again = restart.map(|h| h.join().expect("nats-server restarted"));
    if output_seq(&follower_dir) < n {
        std::thread::sleep(Duration::from_secs(20));
    }
    assert_eq!(output_seq(&follower_dir), n, "{}\n{}", f.text(), p.text());
    let head = p.stop();
    assert_eq!(head, uninterrupted_head(&lines, dir.path()));
    assert_eq!(f.stop(), head, "the follower has every acknowledged input");
    assert!(
        p.text().contains("replication waits for NATS"),
        "the outage was seen and waited out:\n{}",
        p.text()
    );
}

#[test]
fn a_follower_that_diverges_stops_with_a_divergence_report() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = venue_lines().into_iter().take(6_000).collect();
    let nats = Nats::start(&dir.path().join("nats"), free_port());
    let url = nats.url();
    let mut p = primary(&dir.path().join("primary"), &url, "venue-c");
    let addr = serving_addr(&mut p, 30).unwrap();
    let mut f = follower(&dir.path().join("follower"), &url, "venue-c", false);
    // Heads travel on a plain subject: a follower compares those published while it listens.
    assert!(f.wait_for("following stream", 30).is_some(), "{}", f.text());
    std::thread::sleep(Duration::from_millis(300));
    let partial = lines[..2_000].to_vec();
    assert_eq!(feed(&addr, &partial, 0, |_| false), 2_000);
    // A head for seq 2,500 that no engine computed, published where the primary's go.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = async_nats::connect(url.as_str()).await.unwrap();
        let forged = format!("2500 {}", "00".repeat(32));
        c.publish("venue-c.heads", forged.into_bytes().into())
            .await
            .unwrap();
        c.flush().await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(feed(&addr, &lines, 2_000, |_| false), lines.len() as u64);
    let status = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = f.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the follower went on:\n{}",
                f.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(status.code(), Some(1), "{}", f.text());
    assert!(
        f.text().contains("DIVERGENCE at input seq 2500"),
        "{}",
        f.text()
    );
    // The primary is not affected.
    p.stop();
}

/// Who holds the lease of `stream` now (None: nobody; it expired).
fn lease_holder(nats: &margin_node::replica::Nats) -> Option<String> {
    let entry = nats
        .rt
        .block_on(nats.kv.entry("primary"))
        .expect("the lease bucket answers");
    entry.map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

/// A taken lease, kept by a `LeaseKeeper` for three lease times, is still held by its owner
/// (and the keeper hands it back); the same lease left alone for as long expires, which is
/// what a primary recovering a long journal, or a standby reopening as the primary, did
/// before the keeper.
#[test]
fn a_kept_lease_outlives_its_lease_time_and_an_unkept_one_does_not() {
    use margin_node::replica::keeper::LeaseKeeper;
    use margin_node::replica::{take_lease, Nats as Client, ReplicaConfig};
    let dir = tempfile::tempdir().unwrap();
    let server = Nats::start(&dir.path().join("nats"), free_port());
    let mut cfg = ReplicaConfig::new(server.url(), "venue-lease");
    cfg.lease = Duration::from_millis(1_000);
    let three_leases = 3 * cfg.lease;

    let client = Client::connect(&cfg).expect("connect");
    let lease = client
        .rt
        .block_on(take_lease(&client.kv, "kept-owner"))
        .expect("a free lease");
    let keeper = LeaseKeeper::start(client, lease).expect("keeper");
    std::thread::sleep(three_leases);
    let (client, lease, _) = keeper.finish().expect("the lease was kept");
    assert_eq!(lease.owner, "kept-owner");
    assert_eq!(lease_holder(&client).as_deref(), Some("kept-owner"));

    // Left alone, the same lease lapses.
    std::thread::sleep(three_leases);
    assert_eq!(lease_holder(&client), None, "an unkept lease expired");
}
