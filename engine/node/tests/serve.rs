//! The real `margin-engine serve` binary under several clients, killed with SIGKILL mid-stream
//! and stopped gracefully with SIGTERM, restarted on the same data directory each time. At the
//! end, the directory must be exactly what one uninterrupted run over the accepted input (the
//! input journal) gives: the same outputs byte for byte and the same state.

use margin_engine::codec::input_line;
use margin_engine::persist::{self, decode_input, state_hash};
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::{Engine, Input};
use margin_journal::Reader;
use margin_node::pipeline::MAX_RECORD_BYTES;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod server_proc;
use server_proc::{start, start_with};

/// Sends `lines[from..]` with ids, reading answers on another thread; returns how many were
/// answered (by the highest id seen) when the connection ends or all are answered.
fn client(
    addr: &str,
    lines: &[String],
    from: usize,
    answered: &Arc<AtomicU64>,
    stop_after: Option<usize>,
    paced: bool,
) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let r = s.try_clone().expect("clone");
    let seen = answered.clone();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if let Some(id) = line
                .strip_prefix("{\"id\":")
                .and_then(|x| x.split(',').next())
                .and_then(|x| x.parse::<u64>().ok())
            {
                seen.fetch_max(id + 1, Ordering::Relaxed);
            }
            line.clear();
        }
    });
    let end = stop_after.map_or(lines.len(), |n| (from + n).min(lines.len()));
    for (i, l) in lines.iter().enumerate().take(end).skip(from) {
        let with_id = format!("{{\"id\":{i},{}\n", &l[1..]);
        if s.write_all(with_id.as_bytes()).is_err() {
            break;
        }
        if paced && i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(2)); // still sending when the server dies
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while (answered.load(Ordering::Relaxed) as usize) < end
        && Instant::now() < deadline
        && !reader.is_finished()
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = reader.join();
}

/// A client that sends garbage, an oversized line and a truncated binary frame, then hangs up.
fn vandal(addr: &str) {
    if let Ok(mut s) = TcpStream::connect(addr) {
        let _ = s.write_all(b"\x00\xff\xfe garbage {{{\nnot json at all\n");
        let _ = s.write_all(&vec![b'x'; 70 * 1024]);
        let _ = s.write_all(b"\n{\"type\":\"deposit\",\"ts\":1,\"account\":1,\"asset\":\"USDC\",\"amount\":\"1e5\"}\n");
        let mut buf = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_millis(300))).ok();
        let _ = s.read(&mut buf);
    }
    if let Ok(mut s) = TcpStream::connect(addr) {
        let _ = s.write_all(b"MRGB\x00\x00\x00\x00\x40\x00\x00\x00\x01\x02");
    }
}

/// A client speaking the binary framing: one event, one framed answer.
fn binary_client(addr: &str, input: &Input) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut payload = Vec::new();
    margin_engine::codec::binary::encode(input, &mut payload);
    let mut msg = b"MRGB".to_vec();
    msg.extend_from_slice(&0u32.to_le_bytes());
    msg.extend_from_slice(&((8 + payload.len()) as u32).to_le_bytes());
    msg.extend_from_slice(&77u64.to_le_bytes());
    msg.extend_from_slice(&payload);
    s.write_all(&msg).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut head = [0u8; 13];
    s.read_exact(&mut head).expect("a framed answer");
    let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
    assert_eq!(head[4], 0, "kind 0: an output batch");
    assert_eq!(
        u64::from_le_bytes(head[5..13].try_into().unwrap()),
        77,
        "the id echoed"
    );
    let mut body = vec![0u8; len - 9];
    s.read_exact(&mut body).unwrap();
    body
}

#[test]
fn serve_survives_kill_and_restart_and_equals_one_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inputs: Vec<Input> = Scenario::new(ScenarioConfig {
        seed: 5,
        accounts: 40,
        events: 2500,
        markets: 3,
        hours: 2,
        ..ScenarioConfig::default()
    })
    .collect();
    let lines: Vec<String> = inputs.iter().map(input_line).collect();
    let setup = lines
        .iter()
        .take_while(|l| !l.contains("\"type\":\"order\"") && !l.contains("\"type\":\"fill\""))
        .count();
    let (head, rest) = lines.split_at(setup);
    // Three trading clients share the rest, round robin.
    let slices: Vec<Vec<String>> = (0..3)
        .map(|c| rest.iter().skip(c).step_by(3).cloned().collect())
        .collect();

    let server = start(&data);
    let setup_done = Arc::new(AtomicU64::new(0));
    client(&server.addr, head, 0, &setup_done, None, false);
    assert_eq!(
        setup_done.load(Ordering::Relaxed) as usize,
        head.len(),
        "every set-up line answered"
    );
    let body = binary_client(&server.addr, &inputs[setup]);
    assert!(persist::decode_batch(&body).is_ok());

    let answered: Vec<Arc<AtomicU64>> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let phase1_target = slices[0].len() / 3;
    // Phase 1: the clients stream while the server is killed under them.
    let handles: Vec<_> = (0..3)
        .map(|c| {
            let (addr, slice, a) = (server.addr.clone(), slices[c].clone(), answered[c].clone());
            std::thread::spawn(move || client(&addr, &slice, 0, &a, Some(slice.len() / 3), true))
        })
        .collect();
    vandal(&server.addr);
    std::thread::sleep(Duration::from_millis(40));
    server.kill();
    for h in handles {
        h.join().unwrap();
    }
    let at_kill: Vec<u64> = answered.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    assert!(
        at_kill.iter().any(|&n| (n as usize) < phase1_target),
        "the kill should land mid-stream: {at_kill:?}"
    );
    // Phase 2: restart after the crash; resume from what each client saw answered.
    let server = start(&data);
    vandal(&server.addr);
    let handles: Vec<_> = (0..3)
        .map(|c| {
            let (addr, slice, a) = (server.addr.clone(), slices[c].clone(), answered[c].clone());
            let from = a.load(Ordering::Relaxed) as usize;
            std::thread::spawn(move || {
                client(&addr, &slice, from, &a, Some(slice.len() / 3), false)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    server.stop();
    // Phase 3: after a graceful stop, the rest.
    let server = start(&data);
    let handles: Vec<_> = (0..3)
        .map(|c| {
            let (addr, slice, a) = (server.addr.clone(), slices[c].clone(), answered[c].clone());
            let from = a.load(Ordering::Relaxed) as usize;
            std::thread::spawn(move || client(&addr, &slice, from, &a, None, false))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    server.stop();

    check_equals_uninterrupted(&data, lines.len(), &answered);
}

/// What was accepted is the input journal. One uninterrupted run over it must give the output
/// log, byte for byte, and the state.
fn check_equals_uninterrupted(data: &Path, lines_sent: usize, answered: &[Arc<AtomicU64>]) {
    let journal = Reader::open(&data.join("input"), "input", MAX_RECORD_BYTES).unwrap();
    let outputs = Reader::open(&data.join("output"), "output", MAX_RECORD_BYTES).unwrap();
    assert_eq!(
        journal.last_seq(),
        outputs.last_seq(),
        "every journaled input has its outputs"
    );
    let killed_at: Vec<u64> = answered.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    eprintln!("journaled {} inputs for {} lines sent (some twice after the crash); answered {killed_at:?}", journal.last_seq(), lines_sent);
    assert!(
        journal.last_seq() as usize >= lines_sent,
        "every line got through (resends may add more)"
    );
    let mut engine = Engine::new();
    let mut buf = rkyv::util::AlignedVec::new();
    for rec in journal.iter_from(1) {
        let rec = rec.unwrap();
        let input = decode_input(rec.payload).unwrap();
        let batch = persist::OutputBatch {
            input: rec.seq,
            records: engine.apply(&input).to_vec(),
        };
        persist::encode_batch(&batch, &mut buf).unwrap();
        assert_eq!(
            outputs.get(rec.seq).unwrap().unwrap().payload,
            &buf[..],
            "output of input {}",
            rec.seq
        );
    }
    let recovered = margin_node::pipeline::recovery::state_at(
        &margin_node::pipeline::datadir::DataDir::new(data),
        u64::MAX,
        true,
    )
    .unwrap();
    assert_eq!(state_hash(&recovered.state), state_hash(&engine.state));
    let broken = margin_engine::invariants::check(&engine.state);
    assert!(broken.is_empty(), "{broken:?}");
}

fn scenario_lines(seed: u64, events: u64) -> Vec<String> {
    Scenario::new(ScenarioConfig {
        seed,
        accounts: 40,
        events,
        markets: 3,
        hours: 2,
        ..ScenarioConfig::default()
    })
    .map(|i| input_line(&i))
    .collect()
}

/// SIGKILL at seeded random moments under a streaming client, five times over; after each
/// restart the client resumes from the last answer it saw. The directory must still equal
/// one uninterrupted run over what was journaled.
#[test]
fn serve_survives_repeated_kills_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let lines = scenario_lines(11, 3000);
    let answered = vec![Arc::new(AtomicU64::new(0))];
    let mut rng = margin_engine::rng::Rng::new(0x4b11);
    let mut kills = 0;
    for _ in 0..5 {
        let server = start(&data);
        let (addr, all, a) = (server.addr.clone(), lines.clone(), answered[0].clone());
        let from = a.load(Ordering::Relaxed) as usize;
        let h = std::thread::spawn(move || client(&addr, &all, from, &a, None, true));
        std::thread::sleep(Duration::from_millis(30 + rng.below(250)));
        server.kill();
        kills += 1;
        h.join().unwrap();
        if answered[0].load(Ordering::Relaxed) as usize >= lines.len() {
            break;
        }
    }
    let server = start(&data);
    let from = answered[0].load(Ordering::Relaxed) as usize;
    client(&server.addr, &lines, from, &answered[0], None, false);
    server.stop();
    eprintln!("{kills} kills");
    check_equals_uninterrupted(&data, lines.len(), &answered);
}

/// The soft limit on open files of this process (from /proc; 1024 if unknown).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// Up to 10,000 idle connections (some stopped mid-line or mid-frame) do not keep an active
/// client from being served; connections past the limit get an answer and are closed.
#[test]
fn idle_connections_do_not_starve_an_active_client() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Both ends live on this machine: leave room under the file limit for each process.
    let idle_n = 10_000.min(open_files_limit().saturating_sub(300));
    let limit = idle_n + 5;
    let server = start_with(&data, &["--max-connections", &limit.to_string()]);
    let mut idle = Vec::with_capacity(idle_n);
    let t0 = Instant::now();
    for i in 0..idle_n {
        let Ok(mut s) = TcpStream::connect(&server.addr) else {
            break;
        };
        match i % 100 {
            0 => drop(s.write_all(b"MRGB\x00\x00\x00\x00\x40\x00\x00\x00\x01")), // mid-frame
            1 => drop(s.write_all(b"{\"type\":\"deposit\",\"ts\":1,")),          // mid-line
            _ => {}
        }
        idle.push(s);
    }
    let opened = idle.len();
    eprintln!(
        "opened {opened} idle connections in {} ms",
        t0.elapsed().as_millis()
    );
    let lines = scenario_lines(3, 200);
    let answered = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    client(&server.addr, &lines, 0, &answered, None, false);
    assert_eq!(
        answered.load(Ordering::Relaxed) as usize,
        lines.len(),
        "the active client was served beside {opened} idle connections"
    );
    eprintln!(
        "{opened} idle connections; {} lines answered in {} ms",
        lines.len(),
        t.elapsed().as_millis()
    );
    // Past the limit: answered and closed, not left hanging. All ten stay open while they
    // are read, so the first five take the last free places.
    let extra: Vec<TcpStream> = (0..10)
        .filter_map(|_| TcpStream::connect(&server.addr).ok())
        .collect();
    let mut refused = 0;
    for mut s in &extra {
        s.set_read_timeout(Some(Duration::from_millis(1500))).ok();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        if text.contains("too many connections") {
            refused += 1;
        }
    }
    assert!(
        refused >= 5,
        "connections past the limit are refused ({refused} of 10)"
    );
    drop(idle);
    server.stop();
}
