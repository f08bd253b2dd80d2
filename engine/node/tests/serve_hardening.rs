//! A torture test of the real `serve` binary (loopback only, every loop bounded): the server
//! defects of the hardening issue, each reproduced as its attack and checked by what the server
//! holds afterwards (RSS, threads, descriptors) and what the clients are answered.

mod server_proc;

use margin_engine::{Event, Input};
use server_proc::{start, start_with};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const VENUE: &str = include_str!("../../../examples/venue.jsonl");

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads lines until `n` are read or the connection ends.
fn read_lines(s: &TcpStream, n: usize) -> Vec<String> {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut out = Vec::new();
    let mut line = String::new();
    while out.len() < n && r.read_line(&mut line).map(|k| k > 0).unwrap_or(false) {
        out.push(std::mem::take(&mut line));
    }
    out
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting until {what}");
}

/// The venue's set-up lines (assets and markets), each with an id.
fn setup_lines() -> Vec<String> {
    VENUE
        .lines()
        .take_while(|l| l.contains("\"asset\"") || l.contains("\"market\""))
        .filter(|l| l.contains("\"type\":\"asset\"") || l.contains("\"type\":\"market\""))
        .map(String::from)
        .collect()
}

fn with_id(line: &str, id: u64) -> String {
    format!("{{\"id\":{id},{}\n", &line[1..])
}

#[test]
fn an_oversized_handshake_is_closed_and_holds_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"));
    let rss_before_kb = server.status("VmRSS");
    let mut s = connect(&server.addr);
    s.write_all(b"MRGB\xff\xff\xff\xff").unwrap();
    let chunk = vec![0x41u8; 1 << 20];
    let mut sent_mb = 0;
    for _ in 0..256 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent_mb += 1;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.contains("above the limit"), "{answer:?}");
    let rss_after_kb = server.status("VmRSS");
    eprintln!("sent {sent_mb} MiB; RSS {rss_before_kb} -> {rss_after_kb} kB");
    assert!(
        rss_after_kb < rss_before_kb + 32 * 1024,
        "RSS grew from {rss_before_kb} to {rss_after_kb} kB"
    );
    server.stop();
}

/// A subscriber from seq 1 that got its first record, retrying (bounded) while every place is
/// held by subscribers whose clients left a moment ago.
fn subscribe(addr: &str, refusals: &mut u32) -> TcpStream {
    for _ in 0..200 {
        let mut s = connect(addr);
        s.write_all(b"{\"subscribe\":1}\n").unwrap();
        let got = read_lines(&s, 1);
        if got[0].contains("too many subscribers") {
            *refusals += 1;
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert!(got[0].contains("\"seq\":1"), "{got:?}");
        return s;
    }
    panic!("subscriber places are never given back");
}

#[test]
fn subscribers_are_bounded_counted_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &["--max-subscribers", "4", "--max-connections", "8"],
    );
    // Something to stream.
    let mut w = connect(&server.addr);
    let setup = setup_lines();
    for (i, l) in setup.iter().enumerate() {
        w.write_all(with_id(l, i as u64).as_bytes()).unwrap();
    }
    read_lines(&w, setup.len());
    eventually("threads settle", || server.status("Threads") > 0);
    let threads_before = server.status("Threads");
    let fds_before = server.fds();
    // 200 rounds of connect, subscribe, close: more than four at once are refused, so the
    // rounds only go through because departed subscribers give their places back.
    let mut refusals = 0;
    for _ in 0..200 {
        drop(subscribe(&server.addr, &mut refusals));
    }
    eprintln!("200 subscribe rounds, {refusals} refusals while places were held");
    eventually("subscriber threads exit after their clients left", || {
        server.status("Threads") <= threads_before + 1
    });
    assert!(server.fds() <= fds_before + 2, "descriptors leak");
    // At most four at once: the fifth is refused with an answer.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| subscribe(&server.addr, &mut refusals))
        .collect();
    let mut fifth = connect(&server.addr);
    fifth.write_all(b"{\"subscribe\":1}\n").unwrap();
    let mut text = String::new();
    let _ = fifth.read_to_string(&mut text);
    assert!(text.contains("too many subscribers"), "{text:?}");
    // Subscribers count toward --max-connections: 4 subscribers + writer + 3 more fill 8.
    let extra: Vec<TcpStream> = (0..3).map(|_| connect(&server.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut over = connect(&server.addr);
    let mut text = String::new();
    let _ = over.read_to_string(&mut text);
    assert!(text.contains("too many connections"), "{text:?}");
    drop((held, extra, w));
    server.stop();
}

#[test]
fn strangers_that_never_authenticate_are_closed_and_a_writer_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &[
            "--token",
            "writer-secret",
            "--auth-timeout-secs",
            "1",
            "--max-connections",
            "16",
        ],
    );
    let strangers: Vec<TcpStream> = (0..16).map(|_| connect(&server.addr)).collect();
    // Every slot is taken now; after the deadline they are closed with an answer.
    for mut s in &strangers {
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        assert!(text.contains("not authenticated in time"), "{text:?}");
    }
    let mut w = connect(&server.addr);
    w.write_all(b"{\"auth\":\"writer-secret\"}\n").unwrap();
    let setup = setup_lines();
    for (i, l) in setup.iter().enumerate() {
        w.write_all(with_id(l, i as u64).as_bytes()).unwrap();
    }
    let got = read_lines(&w, setup.len());
    assert_eq!(got.len(), setup.len());
    assert!(
        got.iter().all(|l| l.contains("\"type\":\"accepted\"")),
        "{got:?}"
    );
    server.stop();
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(&dir.path().join("data"), &["--idle-timeout-secs", "1"]);
    let mut s = connect(&server.addr);
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed, not answered");
    assert!(t.elapsed() >= Duration::from_millis(900));
    server.stop();
}

#[test]
fn tokens_empty_refused_bad_ones_logged_and_slowed_down() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_margin-engine"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token", "", "--data"])
        .arg(dir.path().join("empty"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token is empty"));

    let file = dir.path().join("token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &["--token-file", file.to_str().unwrap()],
    );
    // The token from the file works.
    let mut ok = connect(&server.addr);
    ok.write_all(b"{\"auth\":\"from-a-file\"}\n").unwrap();
    ok.write_all(with_id(&setup_lines()[0], 1).as_bytes())
        .unwrap();
    assert!(read_lines(&ok, 1)[0].contains("accepted"));
    // Bad ones are answered, logged, and after five the address is refused for a while.
    for i in 0..5 {
        let mut s = connect(&server.addr);
        s.write_all(format!("{{\"auth\":\"wrong-{i}\"}}\n").as_bytes())
            .unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        assert!(text.contains("\"reason\":\"unauthorized\""), "{text}");
    }
    let mut s = connect(&server.addr);
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.contains("too many failed authentications"), "{text}");
    eventually("failures are logged", || {
        server
            .log()
            .contains("failed authentication from 127.0.0.1")
    });
    server.stop();
}

#[test]
fn half_closed_clients_get_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"));
    let mut s = connect(&server.addr);
    let setup = setup_lines();
    let mut bytes = String::new();
    for (i, l) in setup.iter().enumerate() {
        bytes.push_str(&with_id(l, i as u64));
    }
    bytes.push_str("not json\n");
    s.write_all(bytes.as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let results = text
        .lines()
        .filter(|l| l.contains("\"type\":\"accepted\"") || l.contains("\"type\":\"rejected\""))
        .count();
    assert_eq!(results, setup.len() + 1, "{text}");
    server.stop();
}

#[test]
fn refusals_subscribe_order_and_malformed_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &["--token", "w", "--admin-token", "a"],
    );
    let mut s = connect(&server.addr);
    s.write_all(b"{\"auth\":\"w\"}\n").unwrap();
    // A writer may not list assets: its own reason, its id echoed, no `line 0`.
    s.write_all(with_id(&setup_lines()[0], 5).as_bytes())
        .unwrap();
    // A subscribe after the first line is answered, and the connection goes on.
    s.write_all(b"{\"subscribe\":1}\n").unwrap();
    // A malformed line with an id gets the id back.
    s.write_all(b"{\"id\":9,\"type\":\"deposit\",\"ts\":1}\n")
        .unwrap();
    let got = read_lines(&s, 3);
    assert!(
        got[0].starts_with("{\"id\":5,") && got[0].contains("\"reason\":\"unauthorized\""),
        "{got:?}"
    );
    assert!(got[1].contains("must be the first line"), "{got:?}");
    assert!(
        got[2].starts_with("{\"id\":9,") && got[2].contains("\"reason\":\"malformed\""),
        "{got:?}"
    );
    server.stop();
}

#[test]
fn a_poison_frame_is_rejected_before_the_journal_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    let mut s = connect(&server.addr);
    let poison = Input {
        ts: 1,
        event: Event::Deposit {
            account: margin_engine::ids::AccountId(1),
            asset: margin_engine::ids::Symbol::new("USDC").unwrap(),
            amount: margin_engine::num::Dec::from_raw_parts(i128::MIN, 0),
        },
    };
    let mut payload = Vec::new();
    margin_engine::codec::binary::encode(&poison, &mut payload);
    let mut msg = b"MRGB".to_vec();
    msg.extend_from_slice(&0u32.to_le_bytes());
    msg.extend_from_slice(&((8 + payload.len()) as u32).to_le_bytes());
    msg.extend_from_slice(&3u64.to_le_bytes());
    msg.extend_from_slice(&payload);
    s.write_all(&msg).unwrap();
    let mut head = [0u8; 13];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[4], 1, "kind 1: malformed");
    let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
    let mut detail = vec![0u8; len - 9];
    s.read_exact(&mut detail).unwrap();
    let detail = String::from_utf8(detail).unwrap();
    assert!(detail.contains("amount"), "{detail}");
    // The server still answers JSON clients, and nothing was journaled.
    let mut j = connect(&server.addr);
    j.write_all(with_id(&setup_lines()[0], 1).as_bytes())
        .unwrap();
    assert!(read_lines(&j, 1)[0].contains("accepted"));
    server.stop();
    let r = margin_journal::Reader::open(&data.join("input"), "input", 1 << 28).unwrap();
    assert_eq!(r.last_seq(), 1);
}

#[test]
fn a_second_writer_is_refused_even_after_lock_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    std::fs::remove_file(data.join("LOCK")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_margin-engine"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another margin-engine"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Private permissions.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let seg = std::fs::read_dir(data.join("input"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(mode(&seg), 0o600);
    server.stop();
}

#[test]
fn startup_reports_recovery_and_status_and_stats_count_from_it() {
    // Issue 15: serve printed nothing of what recovery did, and its stats were wrong after a
    // restart ("published":0, "in_flight":1008 on an idle server).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The helper passes --stats-secs 0; these tests need the stats lines.
    let args = ["--json-stats"];
    let server = start_with(&data, &args);
    let mut s = connect(&server.addr);
    let setup = setup_lines();
    for (i, l) in setup.iter().enumerate() {
        s.write_all(with_id(l, i as u64).as_bytes()).unwrap();
    }
    assert_eq!(read_lines(&s, setup.len()).len(), setup.len());
    server.kill();
    // An interrupted write after the last frame of the input journal.
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
    bytes[at..at + 24].copy_from_slice(&[0x5a; 24]);
    std::fs::write(&seg, &bytes).unwrap();

    let server = start_with(&data, &args);
    let log = server.log();
    let n = setup.len();
    assert!(log.contains("warning: cut 24 torn bytes at"), "{log}");
    assert!(
        log.contains(&format!("last journaled input seq {n}")),
        "{log}"
    );
    let mut s = connect(&server.addr);
    s.write_all(b"{\"status\":{}}\n").unwrap();
    let status = read_lines(&s, 1).pop().unwrap();
    for field in ["journaled", "applied", "published"] {
        assert!(
            status.contains(&format!("\"{field}\":{n}")),
            "{field}: {status}"
        );
    }
    assert!(status.contains("\"durable\":null"), "{status}");
    eventually("a stats line", || server.log().contains("\"events_per_s\""));
    let log = server.log();
    let stats = log
        .lines()
        .find(|l| l.contains("\"events_per_s\""))
        .unwrap();
    assert!(stats.contains(&format!("\"published\":{n}")), "{stats}");
    assert!(stats.contains("\"in_flight\":0"), "{stats}");
    assert!(stats.contains("\"journal_lag\":null"), "{stats}");
    assert!(stats.contains("\"events_per_s\":0"), "{stats}");
    server.stop();
}
