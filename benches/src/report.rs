//! The whole benchmark run and its report folder: `report.md` with every table, one `.hgrm`
//! file per latency distribution, PNG plots.

use crate::hist::{at_ppm, fmt_ns, header_cells, hgrm, row_cells};
use crate::peers::{self, PeerRun};
use crate::scaling::{self, Budget, Point};
use crate::service::{self, Service};
use crate::sweep::{self, Policy, RatePoint};
use crate::workload;
use margin_engine::engine::ScanMode;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What to run, and how big.
#[derive(Clone, Debug)]
pub struct Plan {
    pub out: PathBuf,
    pub seed: u64,
    /// The scenario of the service-time and pipeline runs.
    pub accounts: u32,
    pub events: u64,
    /// Naive service time runs on the first this-many inputs (it is slow by design).
    pub naive_events: usize,
    pub scaling_sizes: Vec<u64>,
    pub budget: Budget,
    pub rates: Vec<u64>,
    pub seconds_per_rate: u64,
    pub min_events_per_rate: usize,
    pub policies: Vec<Policy>,
    pub peer_accounts: u64,
    pub peer_steps: u64,
    pub round_trips: u64,
    pub stream: u64,
    /// The command line, for the report.
    pub command: String,
}

impl Plan {
    /// The full run of docs/benchmarks.md (tens of minutes on 2 cores; 1M accounts need a few
    /// GiB of memory).
    pub fn full(out: PathBuf) -> Plan {
        Plan {
            out,
            seed: 42,
            accounts: 10_000,
            events: 1_000_000,
            naive_events: 200_000,
            scaling_sizes: vec![1_000, 10_000, 100_000, 1_000_000],
            budget: Budget {
                ticks: 2_000,
                fills: 20_000,
                naive_visits: 200_000_000,
            },
            rates: vec![
                10_000, 25_000, 50_000, 125_000, 250_000, 500_000, 1_000_000, 2_000_000,
            ],
            seconds_per_rate: 4,
            min_events_per_rate: 50_000,
            policies: vec![Policy::None, Policy::Durable],
            peer_accounts: 4_000,
            peer_steps: 200_000,
            round_trips: 200_000,
            stream: 5_000_000,
            command: String::new(),
        }
    }

    /// Seconds-long run with small sizes, so that CI exercises the whole harness.
    pub fn smoke(out: PathBuf) -> Plan {
        Plan {
            accounts: 200,
            events: 5_000,
            naive_events: 2_000,
            scaling_sizes: vec![100, 1_000],
            budget: Budget {
                ticks: 100,
                fills: 500,
                naive_visits: 100_000,
            },
            rates: vec![20_000, 5_000_000],
            seconds_per_rate: 1,
            min_events_per_rate: 2_000,
            peer_accounts: 200,
            peer_steps: 2_000,
            round_trips: 2_000,
            stream: 20_000,
            ..Plan::full(out)
        }
    }
}

/// Everything measured in one run.
pub struct Results {
    pub inputs: u64,
    pub service: Service,
    pub naive: Service,
    /// The same scenario with a third of the traders on portfolio margin over 24 scenarios.
    pub portfolio: Service,
    pub sweeps: Vec<(Policy, Vec<RatePoint>, RatePoint)>,
    pub scaling: Vec<Point>,
    pub peers: Vec<PeerRun>,
    pub floor: peers::Floor,
    pub handoff: peers::Handoff,
    pub plots: Result<(), String>,
}

/// Runs the plan, writing the report folder; `progress` hears about each stage.
pub fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> Result<Results, String> {
    std::fs::create_dir_all(&plan.out).map_err(|e| format!("{}: {e}", plan.out.display()))?;
    progress("generating the scenario");
    let inputs = workload::inputs(workload::scenario(plan.accounts, plan.events, plan.seed));
    progress("service time, indexed");
    let service = service::measure(&inputs, ScanMode::Indexed);
    progress("service time, naive");
    let naive_n = plan.naive_events.min(inputs.len());
    let naive = service::measure(&inputs[..naive_n], ScanMode::Naive);
    progress("service time, a third of the traders on portfolio margin");
    let portfolio = service::measure(
        &workload::inputs(workload::portfolio_scenario(
            plan.accounts,
            plan.events,
            plan.seed,
        )),
        ScanMode::Indexed,
    );
    let scratch = tempfile::tempdir_in(&plan.out).map_err(|e| e.to_string())?;
    let mut sweeps = Vec::new();
    for &policy in &plan.policies {
        progress(&format!("pipeline, {}, unpaced", policy.name()));
        let dir = scratch.path().join(format!("{}-unpaced", policy.slug()));
        let unpaced = sweep::run_at(&inputs, 0, policy, &dir)?;
        let points = sweep::sweep(
            &inputs,
            &plan.rates,
            policy,
            plan.seconds_per_rate,
            plan.min_events_per_rate,
            scratch.path(),
            |p| progress(&format!("pipeline, {}, {} events/s", policy.name(), p.rate)),
        )?;
        sweeps.push((policy, points, unpaced));
    }
    let mut scaling_points = Vec::new();
    for &n in &plan.scaling_sizes {
        progress(&format!("scaling, {n} accounts"));
        scaling_points.push(scaling::point(n, plan.budget, plan.seed));
    }
    progress("peers");
    let peer_accounts = plan.peer_accounts.min(peers::PERCOLATOR_ACCOUNTS_MAX);
    let (listing, ops) = peers::peer_ops(peer_accounts, plan.peer_steps, plan.seed);
    let peer_runs = vec![
        peers::ours(&listing, &ops, plan.seed),
        peers::percolator(&ops)?,
    ];
    let floor = peers::floor(&inputs, scratch.path())?;
    let handoff = peers::handoff(plan.round_trips, plan.stream);
    let results = Results {
        inputs: inputs.len() as u64,
        service,
        naive,
        portfolio,
        sweeps,
        scaling: scaling_points,
        peers: peer_runs,
        floor,
        handoff,
        plots: Ok(()),
    };
    progress("writing the report");
    write(plan, results)
}

fn write(plan: &Plan, mut r: Results) -> Result<Results, String> {
    let out = &plan.out;
    let put = |name: &str, text: &str| -> Result<(), String> {
        std::fs::write(out.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    put("service-all.hgrm", &hgrm(&r.service.all))?;
    for (t, h) in &r.service.by_type {
        put(&format!("service-{t}.hgrm"), &hgrm(h))?;
    }
    put("service-portfolio-all.hgrm", &hgrm(&r.portfolio.all))?;
    for (policy, points, unpaced) in &r.sweeps {
        put(
            &format!("pipeline-{}-unpaced.hgrm", policy.slug()),
            &hgrm(&unpaced.latency),
        )?;
        for p in points {
            put(
                &format!("pipeline-{}-{}.hgrm", policy.slug(), p.rate),
                &hgrm(&p.latency),
            )?;
        }
    }
    for p in &r.scaling {
        put(&format!("scaling-tick-{}.hgrm", p.accounts), &hgrm(&p.tick))?;
        put(&format!("scaling-fill-{}.hgrm", p.accounts), &hgrm(&p.fill))?;
    }
    for p in &r.peers {
        let slug = p.name.split(' ').next().unwrap_or("peer");
        put(&format!("peer-{slug}-fill.hgrm"), &hgrm(&p.fill))?;
        put(&format!("peer-{slug}-tick.hgrm"), &hgrm(&p.tick))?;
    }
    r.plots = plots(out, &r);
    put("report.md", &markdown(plan, &r))?;
    Ok(r)
}

fn plots(out: &Path, r: &Results) -> Result<(), String> {
    for (policy, points, _) in &r.sweeps {
        crate::plot::latency_by_percentile(
            points,
            &format!("pipeline latency by percentile, journal {}", policy.name()),
            &out.join(format!("latency-{}.png", policy.slug())),
        )?;
    }
    crate::plot::cost_by_size(&r.scaling, &out.join("scaling.png"))
}

/// The machine, read from /proc where there is one.
pub fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "{model}, {cores} cores available, {} GiB memory, Linux {}",
        (mem_kib + (1 << 19)) >> 20,
        kernel.trim()
    )
}

fn markdown(plan: &Plan, r: &Results) -> String {
    let mut s = String::new();
    let (head, rule) = header_cells();
    let _ = writeln!(s, "# margin-bench report\n");
    let _ = writeln!(s, "- machine: {}", machine());
    let _ = writeln!(s, "- command: `{}`", plan.command);
    let _ = writeln!(
        s,
        "- workload: seed {}, {} trading accounts, {} steps -> {} inputs, 12 markets, crash at 60 %",
        plan.seed, plan.accounts, plan.events, r.inputs
    );
    let _ = writeln!(
        s,
        "- latencies in ns/us/ms; every event recorded in an HdrHistogram (3 significant digits)\n"
    );
    service_section(&mut s, r, &head, &rule);
    pipeline_section(&mut s, r, &head, &rule);
    scaling_section(&mut s, r, &head, &rule);
    peers_section(&mut s, r, &head, &rule);
    targets_section(&mut s, r);
    match &r.plots {
        Ok(()) => {
            let _ = writeln!(s, "## Plots\n");
            for (policy, _, _) in &r.sweeps {
                let _ = writeln!(s, "![{0}](latency-{0}.png)", policy.slug());
            }
            let _ = writeln!(s, "![scaling](scaling.png)");
        }
        Err(e) => {
            let _ = writeln!(s, "## Plots\n\nskipped: {e}");
        }
    }
    s
}

fn service_section(s: &mut String, r: &Results, head: &str, rule: &str) {
    let _ = writeln!(s, "## Business logic alone (service time)\n");
    let _ = writeln!(
        s,
        "One thread applies each input to the engine; no journal. Indexed: {} inputs/s over {} \
         inputs. Naive (re-check every bucket with a position on every event): {} inputs/s over \
         the first {} inputs.\n",
        r.service.events_per_second(),
        r.service.events,
        r.naive.events_per_second(),
        r.naive.events
    );
    let _ = writeln!(
        s,
        "Portfolio (the same scenario with every third trader on portfolio margin over 24 \
         scenarios, indexed): {} inputs/s over {} inputs.\n",
        r.portfolio.events_per_second(),
        r.portfolio.events
    );
    let _ = writeln!(s, "| event | mode | count |{head}");
    let _ = writeln!(s, "| --- | --- | ---: |{rule}");
    for (mode, svc) in [
        ("indexed", &r.service),
        ("naive", &r.naive),
        ("portfolio 1/3", &r.portfolio),
    ] {
        let _ = writeln!(
            s,
            "| all | {mode} | {} |{}",
            svc.all.len(),
            row_cells(&svc.all)
        );
        for (t, h) in &svc.by_type {
            if h.len() >= 100 {
                let _ = writeln!(s, "| {t} | {mode} | {} |{}", h.len(), row_cells(h));
            }
        }
    }
    s.push('\n');
}

fn pipeline_section(s: &mut String, r: &Results, head: &str, rule: &str) {
    let _ = writeln!(s, "## Pipeline (journal -> business logic -> output log)\n");
    let _ = writeln!(
        s,
        "Open loop: inputs are offered at a fixed rate; latency runs from each input's \
         intended send time to its outputs being in the output log, so a stall shows on every \
         input it delays. Each rate runs on a fresh data directory; the sweep stops after the \
         first rate whose median passes 1 ms.\n"
    );
    for (policy, points, unpaced) in &r.sweeps {
        let _ = writeln!(s, "### Journal: {}\n", policy.name());
        let _ = writeln!(
            s,
            "Unpaced (sustained throughput): {} inputs/s over {} inputs.\n",
            unpaced.achieved, unpaced.events
        );
        let _ = writeln!(s, "| offered rate | achieved |{head}");
        let _ = writeln!(s, "| ---: | ---: |{rule}");
        for p in points {
            let _ = writeln!(
                s,
                "| {}K | {}K |{}",
                p.rate / 1_000,
                p.achieved / 1_000,
                row_cells(&p.latency)
            );
        }
        s.push('\n');
    }
}

fn scaling_section(s: &mut String, r: &Results, head: &str, rule: &str) {
    let _ = writeln!(
        s,
        "## Scaling: tick and fill cost by accounts with positions\n"
    );
    let _ = writeln!(
        s,
        "A synthetic venue (one market, one oracle source so every print moves the index) with \
         N traders, each holding a position of 1-3x its equity (1 in 100 at 8x). Ticks are a \
         mean-reverting walk of up to 5 bps a print; fills are 0.0001 BTC opened and closed \
         again by random traders. Naive runs fewer events at large N.\n"
    );
    let _ = writeln!(
        s,
        "| accounts | build | tick p50 | tick p99 | tick max | visits/tick | naive tick p50 | fill p50 | fill p99 | naive fill p50 |"
    );
    let _ = writeln!(
        s,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for p in &r.scaling {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {}.{:03} | {} | {} | {} | {} |",
            p.accounts,
            fmt_ns(p.build_ns),
            fmt_ns(at_ppm(&p.tick, 500_000)),
            fmt_ns(at_ppm(&p.tick, 990_000)),
            fmt_ns(p.tick.max()),
            p.visits_per_tick_milli / 1_000,
            p.visits_per_tick_milli % 1_000,
            fmt_ns(at_ppm(&p.naive_tick, 500_000)),
            fmt_ns(at_ppm(&p.fill, 500_000)),
            fmt_ns(at_ppm(&p.fill, 990_000)),
            fmt_ns(at_ppm(&p.naive_fill, 500_000)),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Tick distribution, indexed:\n");
    let _ = writeln!(s, "| accounts |{head}");
    let _ = writeln!(s, "| ---: |{rule}");
    for p in &r.scaling {
        let _ = writeln!(s, "| {} |{}", p.accounts, row_cells(&p.tick));
    }
    s.push('\n');
}

fn peers_section(s: &mut String, r: &Results, head: &str, rule: &str) {
    let _ = writeln!(s, "## Peers, same run\n");
    let _ = writeln!(
        s,
        "The equivalent stream (one market, deposits, a position per trader, then five fills \
         to one oracle tick) through each engine. percolator-engine's tick is \
         `accrue_market_to`: it leaves finding liquidatable accounts to an off-chain keeper, \
         where this engine re-checks every bucket the move can have pushed over a line.\n"
    );
    let _ = writeln!(s, "| engine | op | count | refused |{head}");
    let _ = writeln!(s, "| --- | --- | ---: | ---: |{rule}");
    for p in &r.peers {
        for (op, h) in [("fill", &p.fill), ("tick", &p.tick)] {
            let _ = writeln!(
                s,
                "| {} | {op} | {} | {} |{}",
                p.name,
                h.len(),
                p.refused,
                row_cells(h)
            );
        }
    }
    let f = &r.floor;
    let _ = writeln!(
        s,
        "| floor: memcpy + CRC32C into a mapped file | record | {} | 0 |{}",
        f.records,
        row_cells(&f.per_record)
    );
    let _ = writeln!(
        s,
        "| crossbeam hand-off, one way | message | {} | 0 |{}",
        r.handoff.one_way.len(),
        row_cells(&r.handoff.one_way)
    );
    let _ = writeln!(
        s,
        "\nFloor throughput: {} records/s ({} MB/s). Crossbeam streaming: {} messages/s one by \
         one, {} items/s in batches of 256.\n",
        u128::from(f.records) * 1_000_000_000 / u128::from(f.elapsed_ns.max(1)),
        u128::from(f.bytes) * 1_000 / u128::from(f.elapsed_ns.max(1)),
        r.handoff.single_per_second,
        r.handoff.batched_per_second
    );
}

fn targets_section(s: &mut String, r: &Results) {
    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(s, "| target | measured | met |");
    let _ = writeln!(s, "| --- | --- | --- |");
    let p50 = |h: &hdrhistogram::Histogram<u64>| at_ppm(h, 500_000);
    let yes = |b: bool| if b { "yes" } else { "no" };
    let at = |n: u64| r.scaling.iter().find(|p| p.accounts == n);
    if let (Some(small), Some(big)) = (at(10_000), r.scaling.last()) {
        let (a, b) = (p50(&small.tick), p50(&big.tick));
        let _ = writeln!(
            s,
            "| tick at {} accounts within 2x of 10K | {} vs {} | {} |",
            big.accounts,
            fmt_ns(b),
            fmt_ns(a),
            yes(b <= 2 * a)
        );
    }
    if let Some(fill) = r.service.by_type.get("fill") {
        let _ = writeln!(
            s,
            "| fill p50 under 300 ns (scenario) | {} | {} |",
            fmt_ns(p50(fill)),
            yes(p50(fill) < 300)
        );
        let tail = at_ppm(fill, 999_900);
        let _ = writeln!(
            s,
            "| fill p99.99 under 20 us (scenario) | {} | {} |",
            fmt_ns(tail),
            yes(tail < 20_000)
        );
    }
    if let [ours, theirs, ..] = &r.peers[..] {
        let _ = writeln!(
            s,
            "| fill at least as fast as percolator-engine (p50, peer stream) | {} vs {} | {} |",
            fmt_ns(p50(&ours.fill)),
            fmt_ns(p50(&theirs.fill)),
            yes(p50(&ours.fill) <= p50(&theirs.fill))
        );
    }
    if let Some((_, points, unpaced)) = r.sweeps.iter().find(|s| s.0 == Policy::None) {
        let _ = writeln!(
            s,
            "| pipeline sustains 1M inputs/s (page cache) | {} /s | {} |",
            unpaced.achieved,
            yes(unpaced.achieved >= 1_000_000)
        );
        let at500 = points.iter().find(|p| p.rate == 500_000);
        let _ = writeln!(
            s,
            "| p99 under 50 us at 500K/s offered | {} | {} |",
            at500.map_or(
                "not reached (the sweep stopped earlier)".into(),
                |p| fmt_ns(at_ppm(&p.latency, 990_000))
            ),
            yes(at500.is_some_and(|p| at_ppm(&p.latency, 990_000) < 50_000))
        );
    }
    s.push('\n');
}
