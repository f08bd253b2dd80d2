//! Snapshot files: the whole state at an input seq, written atomically (temp file, sync,
//! rename), checked on load by a digest of their bytes. A corrupt snapshot is skipped with a
//! warning and an older one (or genesis) is used instead.
//!
//! Layout: a 64-byte header (magic `MRGNSNAP`, version u32, zero u32, seq u64, payload length
//! u64, BLAKE3 of the payload [32]) followed by the rkyv-encoded state at offset 64.

use margin_engine::persist::{self, Hash32};
use margin_engine::state::State;
use rkyv::util::AlignedVec;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"MRGNSNAP";
const HEADER_LEN: usize = 64;
/// Snapshots kept when a new one is written, by default: enough starting points for a parallel
/// verification of a long history (a snapshot is ~0.5 % of the journal it summarises at the
/// default interval: 6 MB per million inputs at 10,000 accounts).
pub const SNAPSHOTS_KEPT: usize = 64;

/// A snapshot on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    pub seq: u64,
    pub path: PathBuf,
}

pub fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:020}.snap"))
}

/// Snapshot files in a directory, newest first.
pub fn list(dir: &Path) -> Vec<SnapshotFile> {
    let mut out: Vec<SnapshotFile> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name
                .strip_prefix("snapshot-")?
                .strip_suffix(".snap")?
                .parse()
                .ok()?;
            Some(SnapshotFile {
                seq,
                path: e.path(),
            })
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.seq));
    out
}

/// Writes a snapshot of `state` (at `state.input_seq`) atomically; returns its path and the
/// state's digest.
pub fn write(dir: &Path, state: &State) -> Result<(PathBuf, Hash32), String> {
    super::datadir::private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let payload = persist::encode_state(state)?;
    let digest = *blake3::hash(&payload).as_bytes();
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&persist::PERSIST_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&state.input_seq.to_le_bytes());
    header[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[32..64].copy_from_slice(&digest);
    let path = snapshot_path(dir, state.input_seq);
    let tmp = dir.join(format!(".snapshot-{:020}.tmp", state.input_seq));
    let written = (|| -> std::io::Result<()> {
        let mut f = super::datadir::private_file(&tmp)?;
        f.write_all(&header)?;
        f.write_all(&payload)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        // A full disk leaves no partial snapshot behind.
        let _ = fs::remove_file(&tmp);
        return Err(format!("{}: {e}", tmp.display()));
    }
    fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((path, persist::state_hash(state)))
}

/// Reads and checks one snapshot.
pub fn load(path: &Path) -> Result<State, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    if bytes.len() < HEADER_LEN || bytes[0..8] != MAGIC {
        return Err(bad("not a snapshot (bad magic)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != persist::PERSIST_VERSION {
        return Err(bad(&format!(
            "snapshot version {version}, this build reads {}",
            persist::PERSIST_VERSION
        )));
    }
    let seq = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes")) as usize;
    if bytes.len() != HEADER_LEN + len {
        return Err(bad("length does not match the header (truncated?)"));
    }
    let payload = &bytes[HEADER_LEN..];
    if blake3::hash(payload).as_bytes()[..] != bytes[32..64] {
        return Err(bad("digest mismatch (corrupt)"));
    }
    let mut aligned = AlignedVec::<16>::with_capacity(len);
    aligned.extend_from_slice(payload);
    let state = persist::decode_state(&aligned).map_err(|e| bad(&e))?;
    if state.input_seq != seq {
        return Err(bad(&format!(
            "header seq {seq}, state seq {}",
            state.input_seq
        )));
    }
    Ok(state)
}

/// The newest valid snapshot at or below `max_seq`, with a warning for each one skipped.
pub fn load_newest(dir: &Path, max_seq: u64) -> (Option<State>, Vec<String>) {
    let mut warnings = Vec::new();
    for snap in list(dir) {
        if snap.seq > max_seq {
            warnings.push(format!(
                "{}: beyond what the journals cover (seq {max_seq}); not used",
                snap.path.display()
            ));
            continue;
        }
        match load(&snap.path) {
            Ok(state) => return (Some(state), warnings),
            Err(e) => warnings.push(format!("skipping snapshot: {e}")),
        }
    }
    (None, warnings)
}

/// Deletes all but the newest `keep` snapshots.
pub fn prune(dir: &Path, keep: usize) {
    for old in list(dir).into_iter().skip(keep) {
        let _ = fs::remove_file(old.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use margin_engine::codec::parse_input;
    use margin_engine::Engine;

    #[test]
    fn write_load_and_every_flip_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Engine::new();
        for line in include_str!("../../../../examples/venue.jsonl")
            .lines()
            .take(300)
        {
            e.apply(&parse_input(line).unwrap());
        }
        let (path, hash) = write(dir.path(), &e.state).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(persist::state_hash(&back), hash);
        let pristine = fs::read(&path).unwrap();
        for i in (0..pristine.len()).step_by(61) {
            let mut b = pristine.clone();
            b[i] ^= 1;
            fs::write(&path, &b).unwrap();
            assert!(load(&path).is_err(), "flip at byte {i} not caught");
        }
        fs::write(&path, &pristine[..pristine.len() - 1]).unwrap();
        assert!(load(&path).is_err());
        let (s, warnings) = load_newest(dir.path(), u64::MAX);
        assert!(s.is_none() && warnings.len() == 1, "{warnings:?}");
    }
}
