//! The replay tools against data directories made by the real pipeline: verification passes,
//! every damaged byte is reported and never passes, state at a seq matches a run stopped there,
//! and export -> run -> verify round-trips.

use margin_engine::persist::state_hash;
use margin_engine::record::Record;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::Input;
use margin_node::pipeline::datadir::DataDir;
use margin_node::pipeline::recovery::state_at;
use margin_node::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink};
use margin_replay::export::{export, Log};
use margin_replay::verify::{verify, Outcome};
use std::path::Path;

struct Null;
impl Sink for Null {
    fn applied(&mut self, _: u64, _: Origin, _: &[Record], _: &[u8], _: u64) {}
    fn malformed(&mut self, _: Origin, _: u64, _: &str, _: u64) {}
}

fn inputs(events: u64) -> Vec<Input> {
    Scenario::new(ScenarioConfig {
        seed: 21,
        accounts: 60,
        events,
        markets: 3,
        hours: 3,
        ..ScenarioConfig::default()
    })
    .collect()
}

fn cfg(dir: &Path) -> PipelineConfig {
    PipelineConfig {
        segment_bytes: 128 << 10,
        snapshot_every: 700,
        ..PipelineConfig::new(dir)
    }
}

fn run(dir: &Path, inputs: &[Input]) -> [u8; 32] {
    let mut p = Pipeline::start(cfg(dir), Box::new(Null)).unwrap();
    for i in inputs {
        p.submit(Item {
            kind: ItemKind::Event(i.clone()),
            origin: Origin::default(),
            sent_ns: now_ns(),
        })
        .unwrap();
    }
    state_hash(&p.finish().unwrap().engine.state)
}

fn verified(dir: &Path) -> bool {
    matches!(
        verify(&DataDir::new(dir), None, |_, _| {}),
        Ok(Outcome::Verified(_))
    )
}

#[test]
fn verify_passes_and_checks_snapshots() {
    let d = tempfile::tempdir().unwrap();
    run(d.path(), &inputs(3000));
    match verify(&DataDir::new(d.path()), None, |_, _| {}).unwrap() {
        Outcome::Verified(v) => {
            assert!(v.events > 3000);
            assert!(v.snapshots_checked >= 1, "{v:?}");
        }
        _ => panic!("a clean directory must verify"),
    }
    // From a snapshot too.
    let snaps = margin_node::pipeline::snapshot::list(&d.path().join("snapshots"));
    let seq = snaps.last().unwrap().seq;
    assert!(matches!(
        verify(&DataDir::new(d.path()), Some(seq), |_, _| {}).unwrap(),
        Outcome::Verified(_)
    ));
}

/// Replay runs in parallel segments cut at the snapshots, each starting from its snapshot. A
/// snapshot that is a valid file but holds another state (here: another venue's, at the same
/// seq) must be reported at its seq, before anything the segment started from it finds.
#[test]
fn a_wrong_snapshot_between_segments_is_the_finding() {
    let d = tempfile::tempdir().unwrap();
    run(d.path(), &inputs(3000));
    let other = tempfile::tempdir().unwrap();
    let other_inputs: Vec<Input> = Scenario::new(ScenarioConfig {
        seed: 22,
        accounts: 60,
        events: 3000,
        markets: 3,
        hours: 3,
        ..ScenarioConfig::default()
    })
    .collect();
    run(other.path(), &other_inputs);
    // The pipeline skips a snapshot when its writer is still busy with the previous one, so
    // take a seq both runs have, with segments of ours on both sides of it.
    let seqs = |dir: &Path| -> Vec<u64> {
        let mut v: Vec<u64> = margin_node::pipeline::snapshot::list(&dir.join("snapshots"))
            .iter()
            .map(|s| s.seq)
            .collect();
        v.sort_unstable();
        v
    };
    let (ours_seqs, theirs) = (seqs(d.path()), seqs(other.path()));
    let middle = ours_seqs[..ours_seqs.len() - 1]
        .iter()
        .skip(1)
        .find(|s| theirs.contains(s))
        .copied()
        .expect("a snapshot in the middle that both runs wrote");
    let name = format!("snapshot-{middle:020}.snap");
    let ours = d.path().join("snapshots").join(&name);
    std::fs::copy(other.path().join("snapshots").join(&name), &ours).unwrap();
    match verify(&DataDir::new(d.path()), None, |_, _| {}).unwrap() {
        Outcome::SnapshotMismatch { seq, .. } => assert_eq!(seq, middle),
        Outcome::Verified(_) => panic!("a wrong snapshot verified"),
        Outcome::Diverged(d) => panic!("reported a later divergence first: {}", d.input_seq),
    }
}

#[test]
fn every_flipped_byte_is_reported_and_never_verified() {
    let d = tempfile::tempdir().unwrap();
    run(d.path(), &inputs(400));
    for log in ["input", "output"] {
        let seg = std::fs::read_dir(d.path().join(log))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let pristine = std::fs::read(&seg).unwrap();
        let used = pristine.iter().rposition(|&b| b != 0).unwrap() + 1;
        let mut checked = 0;
        for at in (0..used).step_by(37) {
            let mut b = pristine.clone();
            b[at] ^= 0x04;
            std::fs::write(&seg, &b).unwrap();
            match verify(&DataDir::new(d.path()), None, |_, _| {}) {
                Err(e) => assert!(
                    e.contains(seg.to_str().unwrap()) || e.contains("seq"),
                    "flip at {at}: {e}"
                ),
                Ok(Outcome::Verified(_)) => panic!("{log}: a flip at byte {at} verified"),
                Ok(_) => {}
            }
            checked += 1;
        }
        std::fs::write(&seg, &pristine).unwrap();
        assert!(checked > 100);
        assert!(verified(d.path()));
    }
}

#[test]
fn state_at_a_seq_equals_a_run_stopped_there() {
    let all = inputs(2000);
    let full = tempfile::tempdir().unwrap();
    run(full.path(), &all);
    for k in [1usize, 150, 701, 1400, all.len()] {
        let stopped = tempfile::tempdir().unwrap();
        let want = run(stopped.path(), &all[..k]);
        for snapshots in [false, true] {
            let e = state_at(&DataDir::new(full.path()), k as u64, snapshots).unwrap();
            assert_eq!(state_hash(&e.state), want, "seq {k}, snapshots {snapshots}");
        }
    }
}

#[test]
fn export_run_verify_round_trips() {
    let a = tempfile::tempdir().unwrap();
    run(a.path(), &inputs(1500));
    let mut jsonl = Vec::new();
    export(
        &DataDir::new(a.path()),
        Log::Input,
        1,
        u64::MAX,
        None,
        &mut jsonl,
    )
    .unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut p = Pipeline::start(cfg(b.path()), Box::new(Null)).unwrap();
    margin_node::run::feed_lines(&mut p, &jsonl[..]).unwrap();
    let fb = p.finish().unwrap();
    assert!(verified(b.path()));
    let mut out_a = Vec::new();
    let mut out_b = Vec::new();
    export(
        &DataDir::new(a.path()),
        Log::Output,
        1,
        u64::MAX,
        None,
        &mut out_a,
    )
    .unwrap();
    export(
        &DataDir::new(b.path()),
        Log::Output,
        1,
        u64::MAX,
        None,
        &mut out_b,
    )
    .unwrap();
    assert_eq!(out_a, out_b, "the same outputs, byte for byte");
    let ea = state_at(&DataDir::new(a.path()), u64::MAX, false).unwrap();
    assert_eq!(state_hash(&ea.state), state_hash(&fb.engine.state));
}

#[test]
fn audit_passes_a_clean_history_and_renders_its_report() {
    let d = tempfile::tempdir().unwrap();
    run(d.path(), &inputs(1500));
    let r = margin_replay::audit::audit(&DataDir::new(d.path()), 50, |_, _| {}).unwrap();
    assert!(r.passed(), "{:?}", r.violations);
    assert!(r.events > 1500 && r.full_checks >= 50);
    let html = margin_replay::html::render(&r, "test");
    assert!(html.contains("<svg") && html.contains("PASSED"));
    // Provenance and what was checked, with counts that follow from the history.
    assert_eq!(r.provenance.last_seq, r.events);
    assert_eq!(r.provenance.input_digest.len(), 64);
    assert_eq!(r.outputs_compared, r.events, "every output compared");
    let count = |name: &str| {
        r.invariants
            .iter()
            .find(|i| i.name.contains(name))
            .map(|i| i.checks)
    };
    assert_eq!(count("conservation"), Some(r.events));
    assert_eq!(count("byte for byte"), Some(r.outputs_compared));
    assert_eq!(count("full model"), Some(r.full_checks));
    let adl: u64 = r.hours.iter().map(|h| h.adl_fills).sum();
    assert_eq!(count("auto-deleveraging"), Some(adl));
    // Every liquidation and bankruptcy counted per hour is listed (fewer than the cap here).
    let listed = |kind: &str| r.risk_events.iter().filter(|e| e.kind == kind).count() as u64;
    let started: u64 = r.hours.iter().map(|h| h.liquidations).sum();
    assert!(started > 0, "the scenario liquidates someone");
    assert_eq!(listed("liquidation_started"), started);
    assert_eq!(listed("bankruptcy"), r.bad_debt.bankruptcies);
    assert!(html.contains("Provenance") && html.contains(&r.provenance.input_digest));
    // The same history audited twice names the same digest; losses read as magnitudes.
    let again = margin_replay::audit::audit(&DataDir::new(d.path()), 50, |_, _| {}).unwrap();
    assert_eq!(again.provenance.input_digest, r.provenance.input_digest);
    assert!(r.largest_losses.iter().all(|(_, l)| !l.starts_with('-')));
}

#[test]
fn verify_follows_the_operators_skips_and_reconciles_the_logs() {
    // A directory with an input the operator skipped at recovery (--skip-input) verifies: the
    // replay skips the same seq and finds the same `skipped` record in the output log.
    let dir = tempfile::tempdir().unwrap();
    let all = inputs(400);
    let (a, b) = all.split_at(300);
    run(dir.path(), a);
    // Journal input 301 without its outputs, as a sequencer that died applying it leaves it.
    {
        let mut w = margin_journal::Writer::open(margin_journal::Config {
            segment_bytes: 128 << 10,
            max_record_bytes: margin_node::pipeline::MAX_RECORD_BYTES,
            ..margin_journal::Config::new(dir.path().join("input"), "input")
        })
        .unwrap()
        .0;
        let mut buf = rkyv::util::AlignedVec::new();
        margin_engine::persist::encode_input(&b[0], &mut buf).unwrap();
        assert_eq!(w.append(&buf).unwrap(), 301);
        w.sync().unwrap();
    }
    let skip = PipelineConfig {
        skip_inputs: vec![301],
        ..cfg(dir.path())
    };
    let mut p = Pipeline::start(skip, Box::new(Null)).unwrap();
    for i in &b[1..] {
        p.submit(Item {
            kind: ItemKind::Event(i.clone()),
            origin: Origin::default(),
            sent_ns: now_ns(),
        })
        .unwrap();
    }
    p.finish().unwrap();
    match verify(&DataDir::new(dir.path()), None, |_, _| {}) {
        Ok(Outcome::Verified(v)) => assert_eq!(v.outputs_compared, all.len() as u64),
        Ok(_) => panic!("a skipped input made verify diverge"),
        Err(e) => panic!("{e}"),
    }
    // Without the skip list the replay applies seq 301 and the logs disagree: a finding.
    std::fs::remove_file(dir.path().join("SKIPPED")).unwrap();
    assert!(
        !verified(dir.path()),
        "the skip list is what verify follows"
    );
}

#[test]
fn verify_fails_when_the_output_log_cannot_be_reconciled_with_the_journal() {
    // Hardening defect 2: verify accepted an output log longer than the input journal.
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &inputs(300));
    let other = tempfile::tempdir().unwrap();
    run(other.path(), &inputs(300)[..100]);
    // The input journal of a shorter history beside the output log of the longer one.
    std::fs::remove_dir_all(dir.path().join("input")).unwrap();
    std::fs::rename(other.path().join("input"), dir.path().join("input")).unwrap();
    let e = verify(&DataDir::new(dir.path()), None, |_, _| {})
        .err()
        .expect("an error, not a verified directory");
    assert!(e.contains("input journal ends at 100"), "{e}");
    // An emptied output log is no verified directory either.
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &inputs(100));
    for f in std::fs::read_dir(dir.path().join("output")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let e = verify(&DataDir::new(dir.path()), None, |_, _| {})
        .err()
        .expect("an error");
    assert!(e.contains("output log is empty"), "{e}");
}
