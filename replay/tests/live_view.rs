//! The live view of the real `margin-engine serve --http`: a venue fed over TCP, then
//! `/metrics` parsed by a real Prometheus text parser (its counters must equal what was sent and
//! answered), the JSON API checked against `margin-replay state` of the same data directory at
//! the same seq, the routes' refusals, and the dashboard page rendered by Debian's headless
//! Chromium (installed by `.ci/run` when missing; without it the test fails, it does not skip).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{engine_bin, REPLAY};

struct Served {
    child: Child,
    tcp: String,
    http: String,
}

impl Served {
    fn start(data: &Path, extra: &[&str]) -> Served {
        let mut child = Command::new(engine_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--http-refresh-ms",
                "50",
                "--stats-secs",
                "0",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn margin-engine serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut tcp, mut http) = (None, None);
        while tcp.is_none() {
            let line = lines
                .next()
                .expect("the server printed its addresses")
                .unwrap();
            if let Some(rest) = line.strip_prefix("margin-engine: live view on http://") {
                http = Some(rest.trim_end_matches('/').to_string());
            }
            if let Some(rest) = line.strip_prefix("margin-engine: serving on ") {
                tcp = Some(rest.split_whitespace().next().unwrap().to_string());
            }
        }
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Served {
            child,
            tcp: tcp.unwrap(),
            http: http.expect("the live view's address is printed before the TCP one"),
        }
        .wait_ready()
    }

    /// `margin-replay serve` over a data directory.
    fn replay(data: &Path) -> Served {
        let mut child = Command::new(REPLAY)
            .args(["serve", "--http", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn margin-replay serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let http = loop {
            let line = lines
                .next()
                .expect("margin-replay printed its address")
                .unwrap();
            if let Some(at) = line.find("on http://") {
                break line[at + "on http://".len()..]
                    .trim_end_matches('/')
                    .to_string();
            }
        };
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Served {
            child,
            tcp: String::new(),
            http,
        }
    }

    /// Waits until /readyz answers 200 (recovery done, a state view published).
    fn wait_ready(self) -> Served {
        let start = Instant::now();
        while self.get("/readyz").0 != 200 {
            assert!(start.elapsed() < Duration::from_secs(30), "never ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        self
    }

    /// (status, body) of a request with `method` on the live view.
    fn request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let mut s = TcpStream::connect(&self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let status = raw[9..12].parse().unwrap();
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap();
        (status, body)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, None)
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Waits until the view shows seq `seq` (it refreshes every 50 ms).
    fn summary_at(&self, seq: u64) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.json("/api/summary");
            if s["seq"] == seq {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the view never reached seq {seq}: {s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) {
        // SIGTERM: a graceful stop, exit 0.
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
    }
}

impl Drop for Served {
    /// A failed test leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `lines` over TCP and reads every answer line until the server closes.
fn feed(addr: &str, lines: &str) -> Vec<serde_json::Value> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(lines.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/venue.jsonl"))
        .unwrap()
}

/// What was sent, counted as the metrics must count it: per (type, result), from each line's
/// type and the answer's result record.
fn expected_counts(sent: &str, answers: &[serde_json::Value]) -> BTreeMap<(String, String), u64> {
    let mut results = answers
        .iter()
        .filter(|a| a["type"] == "accepted" || a["type"] == "rejected");
    let mut counts = BTreeMap::new();
    for line in sent.lines() {
        let result = results.next().expect("one result per line");
        let (ty, res) = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if result["reason"] != "malformed" => (
                v["type"].as_str().unwrap().to_string(),
                result["type"].as_str().unwrap().to_string(),
            ),
            _ => ("none".to_string(), "malformed".to_string()),
        };
        *counts.entry((ty, res)).or_insert(0) += 1;
    }
    counts
}

/// The state report's entry of an account.
fn account_of<'a>(report: &'a serde_json::Value, id: &serde_json::Value) -> &'a serde_json::Value {
    report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["account"] == *id)
        .unwrap()
}

fn replay_state(data: &Path, account: Option<u64>) -> serde_json::Value {
    replay_state_at(data, None, account)
}

fn replay_state_at(data: &Path, at: Option<u64>, account: Option<u64>) -> serde_json::Value {
    let mut cmd = Command::new(REPLAY);
    cmd.args(["state", "--data"]).arg(data);
    if let Some(seq) = at {
        cmd.args(["--at", &seq.to_string()]);
    }
    if let Some(a) = account {
        cmd.args(["--account", &a.to_string()]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_count_what_was_sent_and_the_api_equals_margin_replay_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = Served::start(&data, &[]);
    assert_eq!(served.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(served.get("/readyz").0, 200);

    let mut sent = example();
    sent.push_str("not json at all\n{\"type\":\"deposit\",\"ts\":1}\n");
    let answers = feed(&served.tcp, &sent);
    let journaled = sent.lines().count() as u64 - 2;
    let summary = served.summary_at(journaled);

    // /metrics, through a real parser of the text format.
    let (status, text) = served.get("/metrics");
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses as Prometheus text");
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut seen_names = std::collections::BTreeSet::new();
    for s in &scrape.samples {
        seen_names.insert(s.metric.clone());
        if s.metric == "margin_engine_inputs_total" {
            // The exposition is OpenMetrics (TYPE names the family, samples end in _total);
            // a Prometheus 0.0.4 parser reads those samples as untyped.
            let (prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v)) =
                s.value
            else {
                panic!("inputs_total is a counter: {:?}", s.value)
            };
            if v > 0.0 {
                let key = (s.labels["type"].to_string(), s.labels["result"].to_string());
                got.insert(key, format!("{v}").parse().unwrap());
            }
        }
    }
    assert_eq!(got, expected_counts(&sent, &answers));
    assert!(text.contains("# TYPE margin_engine_inputs counter\n"));
    for name in [
        "margin_engine_rejections_total",
        "margin_engine_risk_records_total",
        "margin_engine_seq",
        "margin_engine_queue_depth_inputs",
        "margin_engine_service_ns",
        "margin_engine_end_to_end_ns",
        "margin_engine_clients",
        "margin_engine_insurance_fund",
        "margin_engine_open_interest",
        "margin_engine_funding_index",
        "margin_engine_accounts_liquidating",
    ] {
        assert!(seen_names.contains(name), "{name} missing from /metrics");
    }
    let published = scrape
        .samples
        .iter()
        .find(|s| s.metric == "margin_engine_seq" && s.labels.get("stage") == Some("published"))
        .unwrap();
    assert!(matches!(published.value, prometheus_parse::Value::Gauge(v) if v == journaled as f64));

    // The API at the seq the view shows, against margin-replay state of the same journal.
    let accounts: Vec<u64> = [1u64, 3, 9, 17].into();
    let api_accounts: Vec<serde_json::Value> = accounts
        .iter()
        .map(|a| served.json(&format!("/api/accounts/{a}")))
        .collect();
    let risk = served.json("/api/risk?limit=5");
    let markets = served.json("/api/markets");
    let liquidations = served.json("/api/liquidations");
    assert_eq!(served.get("/api/accounts/424242").0, 404);
    assert_eq!(served.get("/api/risk?limit=0").0, 400);
    assert_eq!(served.get("/api/risk?limit=x").0, 400);
    assert_eq!(served.get("/api/nothing").0, 404);
    assert_eq!(served.request("POST", "/api/summary", None).0, 405);
    assert_eq!(served.get(&format!("/{}", "a".repeat(3000))).0, 414);
    served.stop();

    let full = replay_state(&data, None);
    assert_eq!(full["seq"], summary["seq"]);
    assert_eq!(full["insurance_fund"], summary["insurance_fund"]);
    assert_eq!(full["fee_pool"], summary["fee_pool"]);
    assert_eq!(
        full["accounts"].as_array().unwrap().len() as u64,
        summary["accounts"].as_u64().unwrap()
    );
    for (a, mut api) in accounts.iter().zip(api_accounts) {
        assert_eq!(api["seq"], summary["seq"]);
        api.as_object_mut().unwrap().remove("seq");
        let replayed = replay_state(&data, Some(*a));
        assert_eq!(api, replayed["accounts"][0], "account {a}");
    }
    for m in markets.as_array().unwrap() {
        let name = m["market"].as_str().unwrap();
        assert_eq!(m["open_interest"], full["markets"][name]["open_interest"]);
        assert_eq!(m["funding_index"], full["markets"][name]["funding_index"]);
    }
    // Nearest liquidation first: health ratios ascending, each with its liquidation prices.
    let ratios: Vec<f64> = risk
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["health_ratio"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ratios.len(), 5);
    assert!(ratios.windows(2).all(|w| w[0] <= w[1]), "{ratios:?}");
    for r in risk.as_array().unwrap() {
        let acc = account_of(&full, &r["account"]);
        if r["bucket"] == "cross" {
            assert_eq!(acc["equity_maint"], r["equity_maint"]);
            assert_eq!(acc["mm"], r["mm"]);
        }
        assert!(!r["liquidation_prices"].as_object().unwrap().is_empty());
    }
    // The example venue liquidates: the recent records show it.
    let recent = liquidations["recent"].as_array().unwrap();
    assert!(recent
        .iter()
        .any(|r| r["record"]["type"] == "liquidation_started"));

    // margin-replay serve: the same routes over the history, at the end and at any seq.
    let offline = Served::replay(&data);
    let end = offline.json("/api/summary");
    for field in [
        "seq",
        "insurance_fund",
        "fee_pool",
        "state_hash",
        "accounts",
    ] {
        assert_eq!(end[field], summary[field], "{field} at the end");
    }
    for at in [120u64, 400, 569] {
        let mut api = offline.json(&format!("/api/accounts/1?at={at}"));
        assert_eq!(api["seq"], at);
        api.as_object_mut().unwrap().remove("seq");
        assert_eq!(
            api,
            replay_state_at(&data, Some(at), Some(1))["accounts"][0],
            "at {at}"
        );
        let s = offline.json(&format!("/api/summary?at={at}"));
        let replayed = replay_state_at(&data, Some(at), None);
        assert_eq!(s["insurance_fund"], replayed["insurance_fund"]);
    }
    assert_eq!(offline.get("/api/summary?at=99999").0, 404);
    assert_eq!(offline.get("/api/summary?at=x").0, 400);
    assert_eq!(offline.get("/healthz").0, 200);
    offline.stop();
}

/// A portfolio venue (the published hedged-book case) served live: the summary names the set and
/// counts the portfolio accounts, every risk row of a portfolio bucket names the scenario that
/// binds it as the account's state report does, and `margin-replay stress` over the same data
/// directory says which scenarios bind the portfolio buckets under a shock.
#[test]
fn portfolio_buckets_show_their_worst_scenario_live_and_under_stress() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = Served::start(&data, &[]).wait_ready();
    let events = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/core/tests/conformance/portfolio-3001/events.jsonl"),
    )
    .unwrap();
    let answers = feed(&served.tcp, &events);
    let sent = events.lines().count() as u64;
    assert!(answers.len() as u64 >= sent);
    let summary = loop {
        let s = served.json("/api/summary");
        if s["seq"] == sent {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(summary["risk_scenarios"]["name"], "crypto", "{summary}");
    let full = replay_state(&data, None);
    let portfolio: Vec<&serde_json::Value> = full["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a.get("portfolio").is_some())
        .collect();
    assert!(portfolio.len() >= 2, "{full}");
    assert_eq!(summary["portfolio_accounts"], portfolio.len());
    let risk = served.json("/api/risk?limit=100");
    let mut rows = 0;
    for r in risk.as_array().unwrap() {
        let acc = account_of(&full, &r["account"]);
        match (acc.get("portfolio"), r.get("portfolio")) {
            (Some(p), Some(row)) if r["bucket"] == "cross" => {
                assert_eq!(p["worst_scenario"], row["worst_scenario"], "{r}");
                assert_eq!(p["worst_loss"], row["worst_loss"], "{r}");
                assert_eq!(p["floor"], row["floor"], "{r}");
                rows += 1;
            }
            (None, None) => {}
            (p, row) => panic!("account {}: report {p:?}, risk row {row:?}", r["account"]),
        }
    }
    assert!(rows >= 2, "{risk}");
    served.stop();
    let out = Command::new(REPLAY)
        .args(["stress", "--data"])
        .arg(&data)
        .args(["--shock", "ETH=-0.2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("portfolio [ETH -0.2]"))
        .unwrap_or_else(|| panic!("no portfolio line in:\n{text}"));
    assert!(
        line.contains("set crypto v1") && line.contains("worst scenario: "),
        "{line}"
    );
}

#[test]
fn the_api_needs_a_reader_token_when_subscribing_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        &dir.path().join("data"),
        &["--token", "w-secret", "--subscribe-token", "r-secret"],
    );
    assert_eq!(served.get("/api/summary").0, 401);
    assert_eq!(served.request("GET", "/api/summary", Some("wrong")).0, 401);
    assert_eq!(
        served.request("GET", "/api/summary", Some("r-secret")).0,
        200
    );
    assert_eq!(
        served.request("GET", "/api/summary", Some("w-secret")).0,
        200
    );
    assert_eq!(served.get("/metrics").0, 200, "metrics stay public");
    assert_eq!(served.get("/healthz").0, 200);
    served.stop();
}

#[test]
fn the_dashboard_renders_in_chromium_and_shows_the_fund_and_the_nearest_account() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&dir.path().join("data"), &[]);
    let sent = example();
    feed(&served.tcp, &sent);
    let summary = served.summary_at(sent.lines().count() as u64);
    let risk = served.json("/api/risk?limit=15");
    let nearest = &risk[0];

    let dom = common::rendered_dom(
        &format!("http://{}/", served.http),
        &dir.path().join("profile"),
        5000,
    );
    served.stop();
    let fund = summary["insurance_fund"].as_str().unwrap();
    assert!(
        dom.contains(fund),
        "the insurance fund {fund} is on the page"
    );
    assert!(dom.contains("engine healthy"), "{dom}");
    let cell = |v: &serde_json::Value| format!("<td>{}</td>", v.as_u64().unwrap());
    assert!(
        dom.contains(&cell(&nearest["account"])),
        "the nearest account is listed"
    );
    let ratio = nearest["health_ratio"].as_str().unwrap();
    assert!(dom.contains(ratio), "its health ratio {ratio} is shown");
    assert!(!dom.contains("HTTP 4"), "no API call failed: {dom}");
}
