//! Following a live writer: a tailing reader sees every record once, in order, as soon as its
//! length is published, across segment rollovers.

use crate::error::{JournalError, Result};
use crate::format::{self, Header, HEADER_LEN, SEAL};
use crate::segment::{list_segments, segment_path};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A record copied out of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    pub seq: u64,
    pub payload: Vec<u8>,
}

struct Mapped {
    path: PathBuf,
    map: MmapRaw,
    header: Header,
    pos: usize,
}

/// A reader that follows a log while it is written.
pub struct Tail {
    dir: PathBuf,
    name: String,
    max_payload: usize,
    next_seq: u64,
    cur: Option<Mapped>,
}

impl Tail {
    /// A tail that starts at `from_seq` (1 for the whole log).
    pub fn new(dir: &Path, name: &str, max_payload: usize, from_seq: u64) -> Tail {
        Tail {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            max_payload,
            next_seq: from_seq.max(1),
            cur: None,
        }
    }

    /// The seq the next record will have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next record if one has been published; `None` means "not yet".
    pub fn poll(&mut self) -> Result<Option<OwnedRecord>> {
        loop {
            if self.cur.is_none() && !self.locate()? {
                return Ok(None);
            }
            let cur = self.cur.as_mut().expect("located");
            let len = load_len(&cur.map, cur.pos);
            if len == 0 {
                return Ok(None);
            }
            if len == SEAL {
                // The writer moved on; the next segment starts at our next seq.
                if cur.header.base_seq == self.next_seq {
                    return Err(corrupt(cur, "segment sealed before its first frame".into()));
                }
                let next = segment_path(&self.dir, &self.name, self.next_seq);
                if !next.exists() {
                    return Ok(None);
                }
                let m = map(&next, HEADER_LEN)?;
                if m.header.base_seq != self.next_seq {
                    return Err(corrupt(
                        &m,
                        format!(
                            "header base seq {} but file name says {}",
                            m.header.base_seq, self.next_seq
                        ),
                    ));
                }
                self.cur = Some(m);
                continue;
            }
            let rec = read_frame(cur, len as usize, self.max_payload)?;
            if rec.0.seq != self.next_seq {
                return Err(corrupt(
                    cur,
                    format!("seq {} where {} was expected", rec.0.seq, self.next_seq),
                ));
            }
            cur.pos += rec.1;
            self.next_seq += 1;
            return Ok(Some(rec.0));
        }
    }

    /// Finds the segment holding `next_seq` and the frame position in it.
    fn locate(&mut self) -> Result<bool> {
        let segments = list_segments(&self.dir, &self.name)?;
        let Some((_, path)) = segments
            .iter()
            .rev()
            .find(|(base, _)| *base <= self.next_seq)
        else {
            return Ok(false);
        };
        let mut m = map(path, HEADER_LEN)?;
        let mut seq = m.header.base_seq;
        while seq < self.next_seq {
            let len = load_len(&m.map, m.pos);
            if len == 0 || len == SEAL {
                // Not written yet, or the seq lives in a later segment that does not exist yet.
                return Ok(false);
            }
            let (_, ext) = read_frame(&m, len as usize, self.max_payload)?;
            m.pos += ext;
            seq += 1;
        }
        self.cur = Some(m);
        Ok(true)
    }
}

fn map(path: &Path, pos: usize) -> Result<Mapped> {
    let file = File::open(path).map_err(JournalError::io(path))?;
    let map = MmapOptions::new()
        .map_raw_read_only(&file)
        .map_err(JournalError::io(path))?;
    // SAFETY: the header is written before the file is renamed into place and never changes
    // except its durable mark, which this reader does not use.
    let head = unsafe { std::slice::from_raw_parts(map.as_ptr(), HEADER_LEN.min(map.len())) };
    let header = Header::decode(head).map_err(|what| JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        what,
    })?;
    Ok(Mapped {
        path: path.to_path_buf(),
        map,
        header,
        pos,
    })
}

fn load_len(map: &MmapRaw, pos: usize) -> u32 {
    if pos + 4 > map.len() {
        return SEAL;
    }
    // SAFETY: in bounds and 4-byte aligned (frames are 16-aligned in a page-aligned map); the
    // writer publishes with a release store, this acquire load pairs with it.
    let cell = unsafe { AtomicU32::from_ptr(map.as_mut_ptr().add(pos).cast::<u32>()) };
    u32::from_le(cell.load(Ordering::Acquire))
}

fn corrupt(m: &Mapped, what: String) -> JournalError {
    JournalError::Corrupt {
        path: m.path.clone(),
        offset: m.pos as u64,
        what,
    }
}

/// Copies out and checks the frame at the current position.
fn read_frame(m: &Mapped, len: usize, max_payload: usize) -> Result<(OwnedRecord, usize)> {
    let chained = m.header.chained();
    let hdr = format::frame_header_len(chained);
    if len > max_payload || m.pos + hdr + len > m.map.len() {
        return Err(corrupt(m, format!("frame length {len} out of bounds")));
    }
    // SAFETY: the range is in bounds and was published (len loaded with acquire) before we read
    // it; the writer never rewrites a published frame.
    let bytes = unsafe { std::slice::from_raw_parts(m.map.as_ptr().add(m.pos), hdr + len) };
    let crc = format::u32_at(bytes, 4);
    let seq = format::u64_at(bytes, 8);
    let digest: Option<&format::Digest> =
        chained.then(|| bytes[16..48].try_into().expect("32 bytes"));
    let payload = &bytes[hdr..];
    if format::frame_crc(seq, digest, payload) != crc {
        return Err(corrupt(
            m,
            format!("checksum mismatch in frame of seq {seq}"),
        ));
    }
    Ok((
        OwnedRecord {
            seq,
            payload: payload.to_vec(),
        },
        format::align_up(hdr + len),
    ))
}
