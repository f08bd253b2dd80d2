//! Errors that name what failed and where: the file, and the byte offset for corruption.

use std::path::PathBuf;

/// Everything the journal can report.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A frame or header that fails its checks before the end of the log.
    #[error("{path}: corrupt at byte offset {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// Segment files that do not follow each other.
    #[error("{path}: {what}")]
    Layout { path: PathBuf, what: String },
    #[error("record of {len} bytes is above the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("{0}")]
    Usage(String),
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> JournalError {
        let path = path.into();
        move |source| JournalError::Io { path, source }
    }
}

pub type Result<T> = std::result::Result<T, JournalError>;
