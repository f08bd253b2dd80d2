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
            crate::persist::PERSIST_VERSION
        );
        match fs::read_to_string(&path) {
            Ok(text) if text == want => Ok(()),
            Ok(text) => Err(format!(
                "{} was written in another format ({:?}); this build reads format {}",
                self.root.display(),
                text.trim(),
                crate::persist::PERSIST_VERSION
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.has_journal() => {
                fs::write(&path, want).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "{} holds a journal but no FORMAT file: not written by this engine",
                self.root.display()
            )),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// True when the directory already holds an input journal.
    pub fn has_journal(&self) -> bool {
        fs::read_dir(self.input_dir())
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    /// Creates the directory if needed and takes the writer's lock, failing at once if another
    /// engine holds it.
    pub fn lock(&self) -> Result<DirLock, String> {
        fs::create_dir_all(&self.root).map_err(|e| format!("{}: {e}", self.root.display()))?;
        let path = self.root.join("LOCK");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(_) => Err(format!(
                "{} is in use by another margin-engine (lock held on {})",
                self.root.display(),
                path.display()
            )),
        }
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
