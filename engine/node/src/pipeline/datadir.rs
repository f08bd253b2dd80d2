//! The data directory: `input/` (the input journal), `output/` (the hash-chained output log),
//! `snapshots/`, and a `LOCK` file held by the one engine that writes here. Readers (the replay
//! tools) never take the lock, so they work on a live directory.

use super::PipelineConfig;
use margin_journal::{Config, Durability};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Paths of a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// The exclusive lock of a writing engine; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Creates (truncating) a file readable and writable by the owner alone (0600): journals hold
/// every account's activity.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Creates a directory and its parents, each new one private to the owner (0700).
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Writes a small file atomically: a temporary sibling, synced, then renamed over `path`.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let name = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let written = (|| {
        let mut f = private_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(name(&tmp, e));
    }
    fs::rename(&tmp, path).map_err(|e| name(path, e))
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn input_dir(&self) -> PathBuf {
        self.root.join("input")
    }

    pub fn output_dir(&self) -> PathBuf {
        self.root.join("output")
    }

    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Checks (or, for a new directory, writes) the format marker: a directory written by a
    /// build with other persisted types is refused with a clear message, never misread.
    pub fn check_format(&self) -> Result<(), String> {
        let path = self.root.join("FORMAT");
        let want = format!(
            "margin-engine data directory, format {}\n",
            margin_engine::persist::PERSIST_VERSION
        );
        match fs::read_to_string(&path) {
            Ok(text) if text == want => Ok(()),
            Ok(text) => Err(format!(
                "{} was written in another format ({:?}); this build reads format {}",
                self.root.display(),
                text.trim(),
                margin_engine::persist::PERSIST_VERSION
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.has_journal() => {
                write_synced(&path, want.as_bytes())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "{} holds a journal but no FORMAT file: not written by this engine",
                self.root.display()
            )),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The file listing the input seqs the operator ordered skipped, one per line.
    pub fn skip_path(&self) -> PathBuf {
        self.root.join("SKIPPED")
    }

    /// The input seqs the operator ordered skipped (sorted, without repeats); none when the
    /// file is absent. A line that is not a seq is an error naming the file and line.
    pub fn skipped_inputs(&self) -> Result<Vec<u64>, String> {
        let path = self.skip_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut seqs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let seq = line.parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                format!("{}:{}: {line:?} is not an input seq", path.display(), i + 1)
            })?;
            seqs.push(seq);
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    /// Adds seqs to the skip list (written to a temporary file, synced, then renamed). Only
    /// inputs that are journaled and have no output yet may be skipped: skipping an input
    /// whose outputs were released would rewrite history.
    pub fn add_skips(&self, seqs: &[u64], input_last: u64, output_last: u64) -> Result<(), String> {
        if seqs.is_empty() {
            return Ok(());
        }
        for &seq in seqs {
            if seq <= output_last || seq > input_last {
                return Err(format!(
                    "--skip-input {seq}: only journaled inputs without outputs can be skipped (journaled up to {input_last}, outputs up to {output_last})"
                ));
            }
        }
        let mut all = self.skipped_inputs()?;
        all.extend_from_slice(seqs);
        all.sort_unstable();
        all.dedup();
        let mut text = String::from("# input seqs skipped by the operator (--skip-input)\n");
        for s in &all {
            text.push_str(&format!("{s}\n"));
        }
        let path = self.skip_path();
        write_synced(&path, text.as_bytes())
    }

    /// True when the directory already holds an input journal.
    pub fn has_journal(&self) -> bool {
        fs::read_dir(self.input_dir())
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    /// Creates the directory if needed and takes the writer's lock, failing at once if another
    /// engine holds it. The lock is an OS lock (`flock`) on the directory itself, held by the
    /// process while the returned value lives: deleting any file cannot release it, and a
    /// killed process releases it with its descriptors. `LOCK` names the holder for operators.
    pub fn lock(&self) -> Result<DirLock, String> {
        private_dir(&self.root).map_err(|e| format!("{}: {e}", self.root.display()))?;
        let dir = File::open(&self.root).map_err(|e| format!("{}: {e}", self.root.display()))?;
        if dir.try_lock().is_err() {
            let holder = fs::read_to_string(self.root.join("LOCK")).unwrap_or_default();
            return Err(format!(
                "{} is in use by another margin-engine ({})",
                self.root.display(),
                holder.trim()
            ));
        }
        let _ = write_synced(
            &self.root.join("LOCK"),
            format!("held by process {}\n", std::process::id()).as_bytes(),
        );
        Ok(DirLock { _file: dir })
    }

    pub fn input_config(&self, cfg: &PipelineConfig) -> Config {
        Config {
            segment_bytes: cfg.segment_bytes,
            max_record_bytes: super::MAX_RECORD_BYTES,
            chain: false,
            durability: cfg.durability,
            prefault: cfg.prefault,
            faults: cfg.faults.input.clone(),
            ..Config::new(self.input_dir(), "input")
        }
    }

    /// The output log is chained; it can always be rebuilt from the input journal, so the
    /// writer does not sync it per batch (it is synced on shutdown and at snapshots).
    pub fn output_config(&self, cfg: &PipelineConfig) -> Config {
        Config {
            segment_bytes: cfg.segment_bytes,
            max_record_bytes: super::MAX_RECORD_BYTES,
            chain: true,
            durability: Durability::None,
            prefault: cfg.prefault,
            faults: cfg.faults.output.clone(),
            ..Config::new(self.output_dir(), "output")
        }
    }
}
