//! The bytes the engine persists, all rkyv: journaled inputs, the output batch of each input,
//! and snapshots of the whole state, with the stable digests that compare them.
//!
//! Encoding is deterministic: the same value gives the same bytes (rkyv zeroes padding), so
//! digests of encodings are stable across runs and machines.

use crate::event::Input;
use crate::ids::MarketId;
use crate::record::Record;
use crate::state::State;
use rkyv::rancor;
use rkyv::util::AlignedVec;

/// Format version of journaled inputs, output batches and snapshots; bumped on any change of
/// the persisted types (a data directory records the version it was written with).
pub const PERSIST_VERSION: u32 = 3;

/// The records one input caused, as stored in the output log (one frame per input).
#[derive(Clone, PartialEq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OutputBatch {
    pub input: u64,
    pub records: Vec<Record>,
}

/// Encodes a value into `buf` (cleared first); no allocation once `buf` and the thread's
/// arena have grown to size.
fn encode_into<T>(value: &T, buf: &mut AlignedVec) -> Result<(), String>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    let mut out = std::mem::take(buf);
    out.clear();
    *buf =
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, out).map_err(|e| e.to_string())?;
    Ok(())
}

pub fn encode_input(input: &Input, buf: &mut AlignedVec) -> Result<(), String> {
    encode_into(input, buf)
}

/// Decodes a journaled input, validating the bytes first (a corrupt record is an error).
pub fn decode_input(bytes: &[u8]) -> Result<Input, String> {
    aligned(bytes, |b| {
        rkyv::from_bytes::<Input, rancor::BoxedError>(b)
            .map_err(|e| format!("bad input record: {e}"))
    })
}

pub fn encode_batch(batch: &OutputBatch, buf: &mut AlignedVec) -> Result<(), String> {
    encode_into(batch, buf)
}

pub fn decode_batch(bytes: &[u8]) -> Result<OutputBatch, String> {
    aligned(bytes, |b| {
        rkyv::from_bytes::<OutputBatch, rancor::BoxedError>(b)
            .map_err(|e| format!("bad output batch: {e}"))
    })
}

pub fn encode_state(state: &State) -> Result<AlignedVec, String> {
    let mut buf = AlignedVec::new();
    encode_into(state, &mut buf)?;
    Ok(buf)
}

/// Decodes a snapshot's state and rebuilds its derived indices.
pub fn decode_state(bytes: &[u8]) -> Result<State, String> {
    let mut state = aligned(bytes, |b| {
        rkyv::from_bytes::<State, rancor::BoxedError>(b).map_err(|e| format!("bad snapshot: {e}"))
    })?;
    check_shape(&state).map_err(|e| format!("bad snapshot: {e}"))?;
    // The shape check covers every id the derived indices follow; a state that passes it but
    // still trips an assertion (a forged file with a valid digest) is refused, not obeyed.
    let rebuilt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        state.rebuild_indices();
        crate::invariants::check(&state)
    }));
    match rebuilt {
        Ok(broken) if broken.is_empty() => Ok(state),
        Ok(broken) => Err(format!("bad snapshot: invariants broken: {broken:?}")),
        Err(_) => Err("bad snapshot: inconsistent state".into()),
    }
}

/// Every id a decoded state refers to is in range, and its tables agree in length.
fn check_shape(s: &State) -> Result<(), String> {
    let (n_assets, n_markets) = (s.venue.assets.len(), s.venue.markets.len());
    if s.assets.len() != n_assets || s.markets.len() != n_markets {
        return Err("asset or market tables disagree with the venue".into());
    }
    if s.venue.quote.is_some_and(|q| q.index() >= n_assets) {
        return Err("quote asset out of range".into());
    }
    for (m, cfg) in s.venue.markets.iter().enumerate() {
        if cfg.base.index() >= n_assets {
            return Err(format!("market {m}: base asset out of range"));
        }
    }
    for (a, (cfg, st)) in s.venue.assets.iter().zip(&s.assets).enumerate() {
        let sources = cfg.oracle.as_ref().map_or(0, |o| o.sources as usize);
        if st.oracle.slots.len() > sources.max(1) {
            return Err(format!("asset {a}: more oracle slots than sources"));
        }
    }
    // Accounts are kept in the order they came into being (not by id: a deposit to account 5
    // then to 3 is a valid history); ids must only be unique.
    let mut ids: Vec<u64> = s.accounts.iter().map(|a| a.id.0).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("account {} appears twice", w[0]));
    }
    let market_ok = |m: MarketId| m.index() < n_markets;
    for acc in &s.accounts {
        let buckets = std::iter::once(&acc.cross).chain(acc.isolated.iter().map(|(_, b)| b));
        for b in buckets {
            if b.balances.len() > n_assets
                || !b.positions.iter().all(|p| market_ok(p.market))
                || !b.orders.iter().all(|(m, _)| market_ok(*m))
            {
                return Err(format!("account {}: ids out of range", acc.id));
            }
        }
        if !acc.isolated.iter().all(|(m, _)| market_ok(*m))
            || !acc.orders.iter().all(|o| market_ok(o.market))
        {
            return Err(format!("account {}: ids out of range", acc.id));
        }
    }
    Ok(())
}

/// Runs `f` on a 16-byte aligned copy of `bytes` when they are not aligned already.
fn aligned<T>(bytes: &[u8], f: impl FnOnce(&[u8]) -> Result<T, String>) -> Result<T, String> {
    if (bytes.as_ptr() as usize).is_multiple_of(16) {
        return f(bytes);
    }
    let mut v = AlignedVec::<16>::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    f(&v)
}

/// A 32-byte digest.
pub type Hash32 = [u8; 32];

/// Digests of the state, whole and per part (exchange-core style module hashes), over the
/// canonical rkyv encoding.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateHashes {
    pub state: Hash32,
    pub venue: Hash32,
    pub prices: Hash32,
    pub markets: Hash32,
    pub accounts: Hash32,
    pub funds: Hash32,
}

fn digest_of<T>(value: &T) -> Hash32
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    let mut buf = AlignedVec::new();
    match encode_into(value, &mut buf) {
        Ok(()) => *blake3::hash(&buf).as_bytes(),
        Err(_) => [0xFF; 32],
    }
}

/// The digest of the whole state.
pub fn state_hash(state: &State) -> Hash32 {
    digest_of(state)
}

/// The digests of the state and of each of its parts.
pub fn state_hashes(state: &State) -> StateHashes {
    let funds = (
        state.insurance,
        state.fee_pool,
        state.topups,
        state.clock_us,
        state.input_seq,
        state.output_seq,
    );
    StateHashes {
        state: state_hash(state),
        venue: digest_of(&state.venue),
        prices: digest_of(&state.assets),
        markets: digest_of(&state.markets),
        accounts: digest_of(&state.accounts),
        funds: digest_of(&funds),
    }
}

/// Lower-case hex of a digest.
pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::parse_input;
    use crate::Engine;

    fn venue_engine() -> Engine {
        crate::engine::example_engine(400)
    }

    #[test]
    fn inputs_and_batches_round_trip() {
        let mut buf = AlignedVec::new();
        for line in include_str!("../../../examples/venue.jsonl")
            .lines()
            .take(50)
        {
            let input = parse_input(line).unwrap();
            encode_input(&input, &mut buf).unwrap();
            assert_eq!(decode_input(&buf).unwrap(), input);
        }
        let mut e = Engine::new();
        let input = parse_input(
            include_str!("../../../examples/venue.jsonl")
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        let batch = OutputBatch {
            input: 1,
            records: e.apply(&input).to_vec(),
        };
        encode_batch(&batch, &mut buf).unwrap();
        assert_eq!(decode_batch(&buf).unwrap(), batch);
    }

    #[test]
    fn snapshots_of_accounts_created_out_of_id_order_load() {
        // Hardening defect 4: a deposit to account 5, then to 3, made every later snapshot
        // fail its load check.
        let mut e = venue_engine();
        for id in [900_005u64, 900_003, 900_004] {
            let line = format!(
                r#"{{"type":"deposit","ts":1,"account":{id},"asset":"USDC","amount":"10"}}"#
            );
            e.apply(&parse_input(&line).unwrap());
        }
        let restored = decode_state(&encode_state(&e.state).unwrap()).unwrap();
        assert_eq!(state_hashes(&restored), state_hashes(&e.state));
        // A forged snapshot with a repeated account is still refused.
        let mut forged = e.state.clone();
        let dup = forged.accounts[0].clone();
        forged.accounts.push(dup);
        let err = decode_state(&encode_state(&forged).unwrap()).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn snapshot_restores_the_same_state_and_hash() {
        let e = venue_engine();
        let bytes = encode_state(&e.state).unwrap();
        let restored = decode_state(&bytes).unwrap();
        assert_eq!(state_hashes(&restored), state_hashes(&e.state));
        let a = serde_json::to_string(&e.state.report(None).unwrap()).unwrap();
        let b = serde_json::to_string(&restored.report(None).unwrap()).unwrap();
        assert_eq!(a, b);
    }
}
