//! Poison pills: an input that the business logic cannot apply must never take the venue down
//! silently. Defect 1 of the hardening issue: a binary `deposit` with an amount mantissa of
//! `i128::MIN` panicked the sequencer; the server kept journaling and never answered, and every
//! restart panicked again.
//!
//! Covered here: (1) such values never pass the binary codec and are rejected by the state
//! machine if they ever reach it; (2) a sequencer that panics anyway (a planted bug, this file
//! is its own test binary so the switch cannot leak) stops ingress, reports the seq, recovery
//! refuses to apply it again, and `--skip-input` records it as skipped for good.

use margin_engine::codec::parse_input;
use margin_engine::event::{Event, FillSpec, Input};
use margin_engine::ids::{AccountId, Side, Symbol};
use margin_engine::num::Dec;
use margin_engine::persist::{decode_batch, state_hash};
use margin_engine::record::{Body, Reason, Record};
use margin_engine::Engine;
use margin_journal::faults::planted::{set, Bug};
use margin_node::pipeline::{now_ns, Item, ItemKind, Origin, Pipeline, PipelineConfig, Sink};
use margin_node::server::conn::{Reader as ConnReader, Request, BINARY_MAGIC};
use std::path::Path;

const VENUE: &str = include_str!("../../../examples/venue.jsonl");

fn venue_engine() -> Engine {
    let mut e = Engine::new();
    for line in VENUE.lines().take(40) {
        e.apply(&parse_input(line).unwrap());
    }
    e
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

/// Every amount-carrying event with `i128::MIN` (and its neighbours) in the amount.
fn extreme_events() -> Vec<Event> {
    let mut out = Vec::new();
    for m in [i128::MIN, i128::MIN + 1, i128::MAX] {
        let d = Dec::from_raw_parts(m, 0);
        let acc = AccountId(1001);
        out.push(Event::Deposit {
            account: acc,
            asset: sym("USDC"),
            amount: d,
        });
        out.push(Event::Withdraw {
            account: acc,
            asset: sym("USDC"),
            amount: d,
        });
        out.push(Event::Isolate {
            account: acc,
            market: sym("BTC-PERP"),
            amount: d,
        });
        out.push(Event::Insurance {
            amount: d,
            market: None,
        });
        out.push(Event::Fill(FillSpec {
            market: sym("BTC-PERP"),
            taker: acc,
            maker: AccountId(1002),
            side: Side::Buy,
            price: Dec::from_int(65_000),
            size: Dec::from_int(1),
            taker_order: None,
            maker_order: None,
            taker_fee: Some(d),
            maker_fee: Some(d),
        }));
        out.push(Event::Funding {
            market: sym("BTC-PERP"),
            rate: d,
        });
    }
    out
}

#[test]
fn extreme_amounts_are_rejected_by_the_state_machine_not_a_panic() {
    let mut e = venue_engine();
    for event in extreme_events() {
        let before = state_hash(&e.state);
        let input = Input { ts: 1, event };
        let out = e.apply(&input).to_vec();
        match &out[0].body {
            Body::Rejected { .. } => {}
            other => panic!("{input:?} was {other:?}"),
        }
        let mut after = e.state.clone();
        after.input_seq -= 1;
        after.output_seq -= 1;
        assert_eq!(state_hash(&after), before, "{input:?} changed the state");
    }
}

fn frame(input: &Input, id: u64) -> Vec<u8> {
    let mut payload = Vec::new();
    margin_engine::codec::binary::encode(input, &mut payload);
    let mut f = ((8 + payload.len()) as u32).to_le_bytes().to_vec();
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&payload);
    f
}

fn binary_requests(frames: &[Vec<u8>]) -> Vec<Request> {
    let mut bytes = BINARY_MAGIC.to_vec();
    bytes.extend_from_slice(&0u32.to_le_bytes());
    for f in frames {
        bytes.extend_from_slice(f);
    }
    let mut r = ConnReader::default();
    let mut out = Vec::new();
    r.feed(&bytes, &mut out);
    out
}

#[test]
fn binary_frames_with_non_canonical_values_never_reach_the_journal() {
    let mut bad: Vec<Input> = extreme_events()
        .into_iter()
        .map(|event| Input { ts: 1, event })
        .filter(|i| format!("{:?}", i.event).contains("-170141183460469231731687303715884105728"))
        .collect();
    assert!(!bad.is_empty());
    // Not normalised (10 / 10^1), beyond the scale limit, a forged out-of-range marker.
    for d in [
        Dec::from_raw_parts(10, 1),
        Dec::from_raw_parts(1, 39),
        Dec::from_raw_parts(5, u8::MAX),
    ] {
        bad.push(Input {
            ts: 1,
            event: Event::Deposit {
                account: AccountId(1),
                asset: sym("USDC"),
                amount: d,
            },
        });
    }
    let frames: Vec<Vec<u8>> = bad
        .iter()
        .enumerate()
        .map(|(i, b)| frame(b, i as u64))
        .collect();
    let got = binary_requests(&frames);
    assert_eq!(got.len(), bad.len());
    for (i, r) in got.iter().enumerate() {
        match r {
            Request::Malformed { id, detail, .. } => {
                assert_eq!(*id, Some(i as u64));
                assert!(detail.contains("not canonical"), "{detail}");
                assert!(!detail.contains("0x"), "no addresses in answers: {detail}");
            }
            other => panic!("frame {i} ({:?}) was accepted: {other:?}", bad[i]),
        }
    }
    // A canonical frame still passes.
    let good =
        parse_input(r#"{"type":"deposit","ts":1,"account":1,"asset":"USDC","amount":"10.5"}"#)
            .unwrap();
    assert!(matches!(
        binary_requests(&[frame(&good, 7)]).as_slice(),
        [Request::Event { id: Some(7), .. }]
    ));
}

struct Null;
impl Sink for Null {
    fn applied(&mut self, _: u64, _: Origin, _: &[Record], _: &[u8], _: u64) {}
    fn malformed(&mut self, _: Origin, _: u64, _: &str, _: u64) {}
}

fn item(line: &str) -> Item {
    Item {
        kind: ItemKind::Event(parse_input(line).unwrap()),
        origin: Origin::default(),
        sent_ns: now_ns(),
    }
}

fn deposit(account: u64, amount: &str) -> String {
    format!(
        r#"{{"type":"deposit","ts":100,"account":{account},"asset":"USDC","amount":"{amount}"}}"#
    )
}

fn cfg(dir: &Path) -> PipelineConfig {
    PipelineConfig {
        segment_bytes: 256 << 10,
        snapshot_every: 0,
        ..PipelineConfig::new(dir)
    }
}

#[test]
fn a_sequencer_panic_stops_ingress_names_the_seq_and_can_be_skipped_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let setup: Vec<&str> = VENUE.lines().take(4).collect();
    set(Bug::PoisonPill, true);
    let mut p = Pipeline::start(cfg(dir.path()), Box::new(Null)).unwrap();
    for l in &setup {
        p.submit(item(l)).unwrap();
    }
    p.submit(item(&deposit(1, "5"))).unwrap();
    let poison_seq = setup.len() as u64 + 2;
    p.submit(item(&deposit(2, "666"))).unwrap();
    p.submit(item(&deposit(3, "7"))).unwrap();
    p.flush().unwrap();
    // Ingress stops at once: a later submit fails with the seq (no silent journaling forever).
    let mut refused = None;
    for _ in 0..2_000 {
        if let Err(e) = p.submit(item(&deposit(4, "8"))).and_then(|_| p.flush()) {
            refused = Some(e);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let refused = refused.expect("ingress refused after the sequencer died");
    assert!(
        refused.contains(&format!("input seq {poison_seq}")),
        "{refused}"
    );
    let err = p.finish().err().expect("finish reports the death");
    assert!(err.contains(&format!("input seq {poison_seq}")), "{err}");

    // A restart replays the journaled poison and refuses, naming it: never applied silently.
    let again = Pipeline::start(cfg(dir.path()), Box::new(Null))
        .err()
        .unwrap();
    assert!(
        again.contains(&format!("input seq {poison_seq}")),
        "{again}"
    );
    set(Bug::PoisonPill, false);

    // Skipping a seq that already has its outputs is refused (it would rewrite history).
    let early = PipelineConfig {
        skip_inputs: vec![1],
        ..cfg(dir.path())
    };
    let e = Pipeline::start(early, Box::new(Null)).err().unwrap();
    assert!(e.contains("--skip-input 1"), "{e}");

    // The operator skips it explicitly; the output log records the skip.
    set(Bug::PoisonPill, true);
    let skip = PipelineConfig {
        skip_inputs: vec![poison_seq],
        ..cfg(dir.path())
    };
    let mut p = Pipeline::start(skip, Box::new(Null)).unwrap();
    assert!(p
        .recovery()
        .warnings
        .iter()
        .any(|w| w.contains(&format!("input seq {poison_seq} skipped"))));
    p.submit(item(&deposit(5, "9"))).unwrap();
    let f = p.finish().unwrap();
    let out = margin_journal::Reader::open(&dir.path().join("output"), "output", 1 << 28).unwrap();
    let batch = decode_batch(out.get(poison_seq).unwrap().unwrap().payload).unwrap();
    assert_eq!(batch.records.len(), 1);
    assert!(matches!(
        batch.records[0].body,
        Body::Rejected {
            reason: Reason::Skipped,
            ..
        }
    ));
    // The input after the poison was applied (account 3 exists), and the skip is permanent:
    // a further restart (no flag) replays the same bytes and state.
    assert!(f.engine.state.account(AccountId(3)).is_some());
    assert!(f.engine.state.account(AccountId(2)).is_none());
    let hash = state_hash(&f.engine.state);
    let p = Pipeline::start(cfg(dir.path()), Box::new(Null)).unwrap();
    let f2 = p.finish().unwrap();
    assert_eq!(state_hash(&f2.engine.state), hash);
    assert_eq!(f2.output_head, f.output_head);
    set(Bug::PoisonPill, false);
    assert!(std::fs::read_to_string(dir.path().join("SKIPPED"))
        .unwrap()
        .contains(&poison_seq.to_string()));
}
