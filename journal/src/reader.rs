//! Reading a log: every frame checked when the reader opens (checksums, sequence, hash chain,
//! segment continuity), then random access by seq through a sparse index and zero-copy
//! iteration. A reader never returns a record whose checksum fails.

use crate::error::{JournalError, Result};
use crate::format::{self, Digest, FrameAt};
use crate::segment::{self, list_segments};
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Every this many frames the index keeps an offset.
const MARK_EVERY: u64 = 64;

struct Segment {
    path: PathBuf,
    map: Mmap,
    base_seq: u64,
    last_seq: u64,
    chained: bool,
    marks: Vec<(u64, usize)>,
}

/// One record: its seq, its payload (borrowed from the map, 16-byte aligned) and its chain
/// digest when the log is chained.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub payload: &'a [u8],
    pub digest: Option<&'a Digest>,
}

/// What the reader found when it opened the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub first_seq: u64,
    pub last_seq: u64,
    pub segments: usize,
    /// Bytes of a torn tail in the last segment (left in place; only a writer cuts it).
    pub torn_bytes: u64,
    /// Chain digest after the last record.
    pub head: Digest,
}

/// A read-only view of a log as it was when opened.
pub struct Reader {
    segments: Vec<Segment>,
    summary: ReadSummary,
    max_payload: usize,
}

impl Reader {
    /// Opens and checks a whole log. `max_payload` bounds what a frame may claim.
    pub fn open(dir: &Path, name: &str, max_payload: usize) -> Result<Reader> {
        let files = list_segments(dir, name)?;
        let mut segments = Vec::with_capacity(files.len());
        let mut summary = ReadSummary::default();
        let mut prev: Option<(u64, Digest)> = None;
        for (i, (base, path)) in files.iter().enumerate() {
            let file = File::open(path).map_err(JournalError::io(path))?;
            // SAFETY: mapped read-only; the writer only appends past the published end and
            // never truncates, so the bytes this reader checked do not change under it.
            let map = unsafe { Mmap::map(&file) }.map_err(JournalError::io(path))?;
            let scan = segment::scan(path, &map, max_payload, MARK_EVERY)?;
            check_follows(path, *base, &scan, prev)?;
            let is_last = i + 1 == files.len();
            if scan.torn_bytes > 0 && !is_last {
                return Err(JournalError::Corrupt {
                    path: path.clone(),
                    offset: scan.end as u64,
                    what: "unreadable bytes at the end of a segment that is not the last".into(),
                });
            }
            // A live writer creates the successor before it seals, so a successor created
            // after the listing above exists by now; only a removed one is missing.
            if scan.sealed
                && is_last
                && !segment::segment_path(dir, name, scan.last_seq + 1).exists()
            {
                return Err(segment::missing_successor(path, scan.last_seq));
            }
            summary.torn_bytes = scan.torn_bytes;
            summary.head = scan.head;
            prev = Some((scan.last_seq, scan.head));
            segments.push(Segment {
                path: path.clone(),
                map,
                base_seq: *base,
                last_seq: scan.last_seq,
                chained: scan.header.chained(),
                marks: scan.marks,
            });
        }
        summary.segments = segments.len();
        summary.first_seq = segments.first().map_or(0, |s| s.base_seq);
        summary.last_seq = segments.last().map_or(0, |s| s.last_seq);
        Ok(Reader {
            segments,
            summary,
            max_payload,
        })
    }

    pub fn summary(&self) -> &ReadSummary {
        &self.summary
    }

    pub fn first_seq(&self) -> u64 {
        self.summary.first_seq
    }

    pub fn last_seq(&self) -> u64 {
        self.summary.last_seq
    }

    /// The record with this seq, if the log holds it.
    pub fn get(&self, seq: u64) -> Result<Option<RecordRef<'_>>> {
        let Some(si) = self.segment_of(seq) else {
            return Ok(None);
        };
        let seg = &self.segments[si];
        let mi = seg.marks.partition_point(|m| m.0 <= seq);
        let Some(&(mut at_seq, mut pos)) = mi.checked_sub(1).and_then(|i| seg.marks.get(i)) else {
            return Ok(None);
        };
        loop {
            let f = self.frame(seg, pos)?;
            if at_seq == seq {
                return Ok(Some(f.0));
            }
            pos += f.1;
            at_seq += 1;
        }
    }

    /// Records from `seq` to the end, in order.
    pub fn iter_from(&self, seq: u64) -> Iter<'_> {
        Iter {
            reader: self,
            next: seq.max(self.first_seq()),
            seg: usize::MAX,
            pos: 0,
        }
    }

    /// The files of the log.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    fn segment_of(&self, seq: u64) -> Option<usize> {
        let i = self
            .segments
            .partition_point(|s| s.base_seq <= seq)
            .checked_sub(1)?;
        (seq <= self.segments[i].last_seq).then_some(i)
    }

    /// The checked frame at `pos` and its extent.
    fn frame<'a>(&'a self, seg: &'a Segment, pos: usize) -> Result<(RecordRef<'a>, usize)> {
        match format::frame_at(&seg.map, pos, seg.chained, self.max_payload) {
            FrameAt::Frame(f) => Ok((
                RecordRef {
                    seq: f.seq,
                    payload: f.payload,
                    digest: f.digest,
                },
                f.extent,
            )),
            other => Err(JournalError::Corrupt {
                path: seg.path.clone(),
                offset: pos as u64,
                what: format!("expected a frame, found {other:?}"),
            }),
        }
    }
}

/// Iterates records in order; each is checked again as it is read.
pub struct Iter<'a> {
    reader: &'a Reader,
    next: u64,
    seg: usize,
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<RecordRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.reader;
        if self.next > r.last_seq() || r.segments.is_empty() {
            return None;
        }
        let si = r.segment_of(self.next)?;
        if si != self.seg {
            // Position at the record through the index (first use or a new segment).
            self.seg = si;
            let seg = &r.segments[si];
            let mi = seg.marks.partition_point(|m| m.0 <= self.next) - 1;
            let (mut s, mut pos) = seg.marks[mi];
            while s < self.next {
                match r.frame(seg, pos) {
                    Ok((_, ext)) => pos += ext,
                    Err(e) => return Some(Err(e)),
                }
                s += 1;
            }
            self.pos = pos;
        }
        let seg = &r.segments[si];
        match r.frame(seg, self.pos) {
            Ok((rec, ext)) => {
                self.pos += ext;
                self.next += 1;
                Some(Ok(rec))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

fn check_follows(
    path: &Path,
    base: u64,
    scan: &segment::Scan,
    prev: Option<(u64, Digest)>,
) -> Result<()> {
    scan.check_base(path, base)?;
    if let Some((last, head)) = prev {
        if base != last + 1 {
            return Err(JournalError::Layout {
                path: path.to_path_buf(),
                what: format!("segment starts at seq {base}, the previous one ends at {last}"),
            });
        }
        if scan.header.chained() && scan.header.prev_digest != head {
            return Err(JournalError::Corrupt {
                path: path.to_path_buf(),
                offset: 48,
                what: "hash chain does not continue from the previous segment".into(),
            });
        }
    }
    Ok(())
}
