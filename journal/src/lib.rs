//! margin-journal: an append-only log of byte records addressed by dense sequence numbers,
//! stored in preallocated, memory-mapped segment files.
//!
//! Knows nothing of margins: it stores and returns checksummed bytes by sequence number.
//!
//! - [`Writer`]: the one writer; recovers on open (a torn tail is cut and reported, corruption
//!   before it is an error naming file and offset), appends, rolls segments, syncs per its
//!   [`Durability`], deletes old segments on request.
//! - [`Reader`]: checks a whole log, then gives random access and zero-copy iteration.
//! - [`Tail`]: follows a live writer.
//!
//! The format is in [`format`] and docs/formats.md.

pub mod error;
pub mod faults;
pub mod format;
pub mod reader;
pub mod segment;
pub mod tail;
pub mod writer;

pub use error::{JournalError, Result};
pub use faults::FaultPlan;
pub use format::Digest;
pub use reader::{ReadSummary, Reader, RecordRef};
pub use tail::{OwnedRecord, Tail};
pub use writer::{Config, Durability, Recovery, Writer};
