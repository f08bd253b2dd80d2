//! Segment files: naming, creation (atomic: temp file, then rename), listing, and the scan that
//! checks every frame and finds where the valid log ends.

use crate::error::{JournalError, Result};
use crate::format::{self, Digest, FrameAt, Header, ALIGN, HEADER_LEN};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name of the segment starting at `base_seq`.
pub fn segment_path(dir: &Path, name: &str, base_seq: u64) -> PathBuf {
    dir.join(format!("{name}-{base_seq:020}.seg"))
}

/// The segments of a log in a directory, sorted by base sequence.
pub fn list_segments(dir: &Path, name: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(JournalError::io(dir)(e)),
    };
    let prefix = format!("{name}-");
    for entry in entries {
        let entry = entry.map_err(JournalError::io(dir))?;
        let file_name = entry.file_name();
        let Some(s) = file_name.to_str() else {
            continue;
        };
        let Some(num) = s.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".seg")) else {
            continue;
        };
        if num.len() == 20 && num.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = num.parse::<u64>() {
                out.push((base, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Creates a segment file atomically: written and synced under a temporary name, then renamed,
/// so that a crash leaves either no file or a complete header.
pub fn create_segment(dir: &Path, name: &str, header: &Header) -> Result<PathBuf> {
    let path = segment_path(dir, name, header.base_seq);
    let tmp = dir.join(format!(".{name}-{:020}.seg.tmp", header.base_seq));
    let written = (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        reserve(&f, header.segment_len)?;
        f.write_all(&header.encode())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        // A full disk (or any failure) leaves no half-made segment behind.
        let _ = fs::remove_file(&tmp);
        return Err(JournalError::io(&tmp)(e));
    }
    fs::rename(&tmp, &path).map_err(JournalError::io(&path))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Allocates `len` bytes of real disk space for a file (zero-filled), so that writing through a
/// map can never meet a full disk: a sparse file would turn that into SIGBUS on some page
/// fault of the append path. A full disk fails here, as an error, before anything is mapped.
pub fn reserve(f: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| std::io::Error::other(format!("segment length {len} too large")))?;
    // SAFETY: a plain syscall on a descriptor this function borrows for its duration.
    let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: fall back to writing zeros for real.
        libc::EOPNOTSUPP | libc::EINVAL => write_zeros(f, len as u64),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

fn write_zeros(mut f: &File, len: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let have = f.metadata()?.len();
    if have >= len {
        return Ok(());
    }
    f.seek(SeekFrom::Start(have))?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = len - have;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.seek(SeekFrom::Start(0))?;
    Ok(())
}

/// The error for a sealed segment with no successor.
pub fn missing_successor(path: &Path, last_seq: u64) -> JournalError {
    JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        what: format!(
            "segment is sealed after seq {last_seq} but the segment that continues the log (base seq {}) is missing: records from seq {} on were removed",
            last_seq + 1,
            last_seq + 1
        ),
    }
}

/// Makes a directory's entries (new or removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io(dir))
}

/// What a scan of one segment found.
#[derive(Clone, Debug)]
pub struct Scan {
    pub header: Header,
    /// Frames checked.
    pub frames: u64,
    /// Offset just past the last valid frame.
    pub end: usize,
    /// Seq of the last valid frame (base_seq - 1 when there is none).
    pub last_seq: u64,
    /// Chain digest after the last valid frame (the header's `prev_digest` when none).
    pub head: Digest,
    /// The segment was sealed after its last frame.
    pub sealed: bool,
    /// Bytes after `end` that are not zero and not a seal: a torn tail to cut.
    pub torn_bytes: u64,
    /// Offsets of every `every`-th frame, for a sparse index: (seq, offset).
    pub marks: Vec<(u64, usize)>,
}

impl Scan {
    /// The header's base seq must be the one the file is named for.
    pub fn check_base(&self, path: &Path, base: u64) -> Result<()> {
        if self.header.base_seq == base {
            return Ok(());
        }
        Err(JournalError::Corrupt {
            path: path.to_path_buf(),
            offset: 16,
            what: format!(
                "header base seq {} but file name says {base}",
                self.header.base_seq
            ),
        })
    }
}

/// Checks every frame of a segment's bytes. Fails on corruption: a bad frame before the durable
/// mark. Past the mark nothing was promised (a machine crash loses, tears and reorders unsynced
/// pages), so the log ends at the first bad frame or hole and everything after it is reported
/// in `torn_bytes`.
pub fn scan(path: &Path, bytes: &[u8], max_payload: usize, mark_every: u64) -> Result<Scan> {
    let corrupt = |offset: usize, what: String| JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    let header = Header::decode(bytes).map_err(|w| corrupt(0, w))?;
    // A file shorter than its header says (cut by a crash or a copy) reads as zeros past its end.
    if header.segment_len < bytes.len() as u64 {
        return Err(corrupt(
            24,
            format!(
                "header says {} bytes, file has {}",
                header.segment_len,
                bytes.len()
            ),
        ));
    }
    if (bytes.len() as u64) < header.durable_end {
        return Err(corrupt(
            bytes.len(),
            format!(
                "file has {} bytes but its durable mark is at offset {}: the segment was truncated and synced records after offset {} are missing",
                bytes.len(),
                header.durable_end,
                bytes.len()
            ),
        ));
    }
    let chained = header.chained();
    let mut s = Scan {
        header,
        frames: 0,
        end: HEADER_LEN,
        last_seq: header.base_seq - 1,
        head: header.prev_digest,
        sealed: false,
        torn_bytes: 0,
        marks: Vec::new(),
    };
    loop {
        let pos = s.end;
        match format::frame_at(bytes, pos, chained, max_payload) {
            FrameAt::Frame(f) => {
                let expected = s.last_seq + 1;
                if f.seq != expected {
                    return Err(corrupt(
                        pos,
                        format!("seq {} where {expected} was expected", f.seq),
                    ));
                }
                if let Some(d) = f.digest {
                    if *d != format::chain_digest(&s.head, f.seq, f.payload) {
                        return Err(corrupt(pos, format!("hash chain broken at seq {}", f.seq)));
                    }
                    s.head = *d;
                }
                if s.frames.is_multiple_of(mark_every.max(1)) {
                    s.marks.push((f.seq, pos));
                }
                s.frames += 1;
                s.last_seq = f.seq;
                s.end = pos + f.extent;
            }
            FrameAt::Sealed => {
                s.sealed = true;
                check_zero_after(bytes, pos + 4, &corrupt)?;
                return Ok(s);
            }
            FrameAt::End if (pos as u64) < header.durable_end => {
                return Err(corrupt(
                    pos,
                    format!(
                        "the records end after seq {} at offset {pos}, before the durable mark {}: synced records from seq {} on are missing (zeroed or cut)",
                        s.last_seq,
                        header.durable_end,
                        s.last_seq + 1
                    ),
                ));
            }
            FrameAt::End => {
                s.torn_bytes = match tail_garbage(bytes, pos, &s, max_payload, &corrupt) {
                    Ok(n) => n,
                    // Past the durable mark nothing was promised: a machine crash can lose a
                    // page and keep a later one, so the log ends at the hole.
                    Err(_) if (pos as u64) >= header.durable_end => unsynced_rest(bytes, pos),
                    Err(e) => return Err(e),
                };
                return Ok(s);
            }
            FrameAt::Bad(what) => {
                if (pos as u64) < header.durable_end {
                    return Err(corrupt(
                        pos,
                        format!("{what} (before the durable mark {})", header.durable_end),
                    ));
                }
                s.torn_bytes = match tail_garbage(bytes, pos, &s, max_payload, &corrupt) {
                    Ok(n) => n,
                    Err(_) => unsynced_rest(bytes, pos),
                };
                return Ok(s);
            }
        }
    }
}

/// Bytes from `pos` to the last non-zero byte: the unsynced rest of a log cut at a hole.
fn unsynced_rest(bytes: &[u8], pos: usize) -> u64 {
    let pos = pos.min(bytes.len());
    bytes[pos..]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// After the valid frames end at `pos`: the count of garbage bytes up to the last non-zero one,
/// or a corruption error if a valid frame lies beyond (then the bad spot is not a tail).
fn tail_garbage(
    bytes: &[u8],
    pos: usize,
    s: &Scan,
    max_payload: usize,
    corrupt: &dyn Fn(usize, String) -> JournalError,
) -> Result<u64> {
    let pos = pos.min(bytes.len());
    let Some(last_nonzero) = bytes[pos..].iter().rposition(|&b| b != 0) else {
        return Ok(0);
    };
    let chained = s.header.chained();
    let mut at = pos + ALIGN;
    while at < pos + last_nonzero + 1 {
        if let FrameAt::Frame(f) = format::frame_at(bytes, at, chained, max_payload) {
            if f.seq > s.last_seq {
                return Err(corrupt(
                    pos,
                    format!(
                        "unreadable frame after seq {} with a valid frame (seq {}) behind it",
                        s.last_seq, f.seq
                    ),
                ));
            }
        }
        at += ALIGN;
    }
    Ok(last_nonzero as u64 + 1)
}

fn check_zero_after(
    bytes: &[u8],
    from: usize,
    corrupt: &dyn Fn(usize, String) -> JournalError,
) -> Result<()> {
    match bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b != 0))
    {
        Some(i) => Err(corrupt(from + i, "data after the segment's seal".into())),
        None => Ok(()),
    }
}
