//! The single writer of a log: recovery on open, appends into the mapped segment, rollover,
//! durability (group commit), retention.

use crate::error::{JournalError, Result};
use crate::format::{self, Digest, Header, DIGEST_LEN, FLAG_CHAIN, HEADER_LEN, SEAL};
use crate::segment::{self, create_segment, list_segments, Scan};
use memmap2::{MmapMut, MmapOptions};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// When appended records are made durable (msync).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Durability {
    /// Never synced by the writer: the page cache decides (fast; a process crash loses nothing,
    /// a machine crash may lose the tail).
    None,
    /// Group commit: synced once `max_records` are pending or the oldest pending one is
    /// `max_delay` old, whichever comes first (checked on append and on `tick`).
    Batch {
        max_records: u32,
        max_delay: Duration,
    },
    /// Every append is synced before it returns.
    Every,
}

/// Configuration of one log.
#[derive(Clone, Debug)]
pub struct Config {
    pub dir: PathBuf,
    /// File-name prefix of the log's segments (`input`, `output`).
    pub name: String,
    /// Size of each preallocated segment file.
    pub segment_bytes: u64,
    /// Largest payload accepted.
    pub max_record_bytes: usize,
    /// Frames carry a running hash chain.
    pub chain: bool,
    pub durability: Durability,
    /// Fault all pages of a new segment in up front (avoids page faults on the append path).
    pub prefault: bool,
    /// Injected storage faults (simulation tests only; `None` in production).
    pub faults: Option<std::sync::Arc<crate::faults::FaultPlan>>,
}

impl Config {
    pub fn new(dir: impl Into<PathBuf>, name: &str) -> Config {
        Config {
            dir: dir.into(),
            name: name.to_string(),
            segment_bytes: 64 << 20,
            max_record_bytes: 1 << 20,
            chain: false,
            durability: Durability::None,
            prefault: false,
            faults: None,
        }
    }

    fn check(&self) -> Result<()> {
        // A record larger than a segment gets a segment of its own, sized for it.
        let smallest = HEADER_LEN + format::frame_len(self.chain, 0) + 4;
        if (self.segment_bytes as usize) < smallest {
            return Err(JournalError::Usage(format!(
                "segment of {} bytes is below the minimum of {smallest}",
                self.segment_bytes
            )));
        }
        if self.max_record_bytes >= SEAL as usize {
            return Err(JournalError::Usage(
                "max_record_bytes must be below 4 GiB".into(),
            ));
        }
        Ok(())
    }
}

/// What opening found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Seq of the last record kept (0 for an empty log).
    pub last_seq: u64,
    /// Bytes of a torn tail that were cut, and where it started.
    pub torn_bytes: u64,
    pub torn_at: Option<(PathBuf, u64)>,
    pub segments: usize,
}

struct Current {
    path: PathBuf,
    map: MmapMut,
    header: Header,
    pos: usize,
    /// First offset not yet synced.
    synced_to: usize,
}

/// The writer of a log. One per log; readers may run alongside.
pub struct Writer {
    cfg: Config,
    segments: Vec<(u64, PathBuf)>,
    cur: Current,
    next_seq: u64,
    head: Digest,
    durable_seq: u64,
    pending: u32,
    pending_since: Option<Instant>,
}

impl Writer {
    /// Opens a log (creating it if absent), recovering its end: a torn tail is cut and
    /// reported; corruption before it is an error naming the file and offset.
    pub fn open(cfg: Config) -> Result<(Writer, Recovery)> {
        cfg.check()?;
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&cfg.dir)
                .map_err(JournalError::io(&cfg.dir))?;
        }
        let mut segments = list_segments(&cfg.dir, &cfg.name)?;
        if segments.is_empty() {
            let header = new_header(&cfg, 1, [0; DIGEST_LEN]);
            let path = create_segment(&cfg.dir, &cfg.name, &header)?;
            segments.push((1, path));
        }
        check_earlier_segments(&cfg, &segments)?;
        let (base, path) = segments.last().cloned().expect("at least one segment");
        let (cur, scan) = open_current(&cfg, &path, base)?;
        let mut recovery = Recovery {
            last_seq: scan.last_seq,
            segments: segments.len(),
            ..Recovery::default()
        };
        if scan.torn_bytes > 0 {
            recovery.torn_bytes = scan.torn_bytes;
            recovery.torn_at = Some((path.clone(), scan.end as u64));
        }
        let w = Writer {
            cfg,
            segments,
            cur,
            next_seq: scan.last_seq + 1,
            head: scan.head,
            durable_seq: scan.last_seq,
            pending: 0,
            pending_since: None,
        };
        if scan.sealed {
            // The next segment is created before a segment is sealed, so a sealed last segment
            // means its successor was removed: records after the seal are lost.
            return Err(crate::segment::missing_successor(&path, scan.last_seq));
        }
        Ok((w, recovery))
    }

    /// The seq the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The seq of the last record (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The highest seq known to be synced to the file.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// The chain digest after the last record (zeros for an empty or unchained log).
    pub fn head(&self) -> Digest {
        self.head
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Appends one record; returns its seq. Durability per the configured policy.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        if payload.len() > self.cfg.max_record_bytes {
            return Err(JournalError::TooLarge {
                len: payload.len(),
                max: self.cfg.max_record_bytes,
            });
        }
        let extent = format::frame_len(self.cfg.chain, payload.len());
        if self.cur.pos + extent + 4 > self.cur.map.len() {
            self.roll(extent)?;
        }
        if let Some(f) = &self.cfg.faults {
            let fault = f
                .before_append()
                .map_err(JournalError::io(&self.cur.path))?;
            if let crate::faults::AppendFault::Crash { torn_bytes } = fault {
                self.write_torn(payload, extent, torn_bytes);
                return Err(JournalError::io(&self.cur.path)(std::io::Error::other(
                    "injected fault: the process died during an append",
                )));
            }
        }
        let seq = self.next_seq;
        self.write_frame(seq, payload, extent);
        self.next_seq += 1;
        self.pending += 1;
        self.pending_since.get_or_insert_with(Instant::now);
        match self.cfg.durability {
            Durability::None => {}
            Durability::Every => self.sync()?,
            Durability::Batch { max_records, .. } if self.pending >= max_records => self.sync()?,
            Durability::Batch { .. } => self.tick()?,
        }
        Ok(seq)
    }

    fn write_frame(&mut self, seq: u64, payload: &[u8], extent: usize) {
        let pos = self.cur.pos;
        let hdr = format::frame_header_len(self.cfg.chain);
        let digest = self
            .cfg
            .chain
            .then(|| format::chain_digest(&self.head, seq, payload));
        let crc = format::frame_crc(seq, digest.as_ref(), payload);
        let m = &mut self.cur.map[..];
        m[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        m[pos + 8..pos + 16].copy_from_slice(&seq.to_le_bytes());
        if let Some(d) = &digest {
            m[pos + 16..pos + 48].copy_from_slice(d);
            self.head = *d;
        }
        m[pos + hdr..pos + hdr + payload.len()].copy_from_slice(payload);
        m[pos + hdr + payload.len()..pos + extent].fill(0);
        publish_len(&mut self.cur.map, pos, payload.len() as u32);
        self.cur.pos = pos + extent;
    }

    /// What a process dying in the middle of `write_frame` leaves: the first `torn_bytes` of
    /// the frame past its length word, which is never published.
    fn write_torn(&mut self, payload: &[u8], extent: usize, torn_bytes: usize) {
        let pos = self.cur.pos;
        let hdr = format::frame_header_len(self.cfg.chain);
        let mut frame = vec![0u8; extent];
        let crc = format::frame_crc(self.next_seq, None, payload);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        frame[8..16].copy_from_slice(&self.next_seq.to_le_bytes());
        frame[hdr..hdr + payload.len()].copy_from_slice(payload);
        let n = torn_bytes.min(extent - 4);
        self.cur.map[pos + 4..pos + 4 + n].copy_from_slice(&frame[4..4 + n]);
    }

    fn dead(&self) -> bool {
        self.cfg.faults.as_ref().is_some_and(|f| f.fired())
    }

    /// Syncs if the batch policy's delay has passed (call it when idle too).
    pub fn tick(&mut self) -> Result<()> {
        if let Durability::Batch { max_delay, .. } = self.cfg.durability {
            if self.pending_since.is_some_and(|t| t.elapsed() >= max_delay) {
                self.sync()?;
            }
        }
        Ok(())
    }

    /// Makes every appended record durable (msync of the written range, then of the header
    /// with the new durable mark).
    pub fn sync(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        if let Some(f) = &self.cfg.faults {
            f.before_sync().map_err(JournalError::io(&self.cur.path))?;
        }
        let from = self.cur.synced_to;
        let to = self.cur.pos;
        self.cur
            .map
            .flush_range(from, to - from)
            .map_err(JournalError::io(&self.cur.path))?;
        self.cur.header.durable_end = to as u64;
        let h = self.cur.header.encode();
        self.cur.map[..HEADER_LEN].copy_from_slice(&h);
        self.cur
            .map
            .flush_range(0, HEADER_LEN)
            .map_err(JournalError::io(&self.cur.path))?;
        self.cur.synced_to = to;
        self.durable_seq = self.next_seq - 1;
        self.pending = 0;
        self.pending_since = None;
        Ok(())
    }

    /// Starts the next segment, large enough for a frame of `extent`, then seals the current
    /// one. In that order a crash leaves either an unsealed segment followed by an empty one, or
    /// a sealed one followed by its successor: never a seal with nothing after it, which is
    /// therefore always a removed segment.
    fn roll(&mut self, extent: usize) -> Result<()> {
        let next = self.create_next(extent)?;
        publish_len(&mut self.cur.map, self.cur.pos, SEAL);
        self.cur.pos += 4;
        if self.cfg.durability != Durability::None {
            self.sync_force()?;
        }
        self.segments.push((self.next_seq, next.path.clone()));
        self.cur = next;
        Ok(())
    }

    fn sync_force(&mut self) -> Result<()> {
        self.pending = self.pending.max(1);
        self.sync()
    }

    /// Creates and maps the segment that starts at the next seq.
    fn create_next(&mut self, extent: usize) -> Result<Current> {
        if let Some(f) = &self.cfg.faults {
            f.before_segment()
                .map_err(JournalError::io(&self.cfg.dir))?;
        }
        let mut header = new_header(&self.cfg, self.next_seq, self.head);
        let needed = (HEADER_LEN + extent + 4).next_multiple_of(4096) as u64;
        header.segment_len = header.segment_len.max(needed);
        let path = create_segment(&self.cfg.dir, &self.cfg.name, &header)?;
        map_current(&self.cfg, &path, header, HEADER_LEN)
    }

    /// Deletes whole segments that hold only records below `seq` (after a snapshot made them
    /// unnecessary). The current segment is never deleted. Returns the files removed.
    pub fn retain_from(&mut self, seq: u64) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        while self.segments.len() > 1 && self.segments[1].0 <= seq {
            let (_, path) = self.segments.remove(0);
            std::fs::remove_file(&path).map_err(JournalError::io(&path))?;
            removed.push(path);
        }
        if !removed.is_empty() {
            segment::sync_dir(&self.cfg.dir)?;
        }
        Ok(removed)
    }

    /// The segment files, oldest first.
    pub fn segments(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.1.clone()).collect()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Best effort: a clean shutdown leaves everything durable. A writer killed by an
        // injected fault leaves things as a crashed process would.
        if self.cfg.durability != Durability::None && !self.dead() {
            let _ = self.sync();
        }
    }
}

/// Stores a frame's length last, with release ordering, so that a reader that sees it also
/// sees the frame's bytes.
fn publish_len(map: &mut MmapMut, pos: usize, len: u32) {
    let cell = map[pos..pos + 4].as_mut_ptr().cast::<u32>();
    debug_assert!(cell.is_aligned());
    // SAFETY: `pos` is 16-byte aligned within the page-aligned map, so the cell is aligned and in
    // bounds; other threads only ever read it atomically.
    let atomic = unsafe { AtomicU32::from_ptr(cell) };
    atomic.store(len.to_le(), Ordering::Release);
}

fn new_header(cfg: &Config, base_seq: u64, prev_digest: Digest) -> Header {
    Header {
        flags: if cfg.chain { FLAG_CHAIN } else { 0 },
        base_seq,
        segment_len: cfg.segment_bytes,
        durable_end: HEADER_LEN as u64,
        prev_digest,
    }
}

fn map_current(cfg: &Config, path: &Path, header: Header, pos: usize) -> Result<Current> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(JournalError::io(path))?;
    // A segment cut short (a crash, a partial copy) is extended back with zeros.
    let len = file.metadata().map_err(JournalError::io(path))?.len();
    if len < header.segment_len {
        segment::reserve(&file, header.segment_len).map_err(JournalError::io(path))?;
    }
    // SAFETY: the file is owned by this writer; readers map it read-only and read frames only
    // after their published length. Truncating it under a live map is never done.
    let map = unsafe { MmapOptions::new().map_mut(&file) }.map_err(JournalError::io(path))?;
    if cfg.prefault {
        let _ = map.advise(memmap2::Advice::PopulateWrite);
    }
    Ok(Current {
        path: path.to_path_buf(),
        map,
        header,
        pos,
        synced_to: pos,
    })
}

/// Maps the last segment, scans it, cuts a torn tail and syncs what was recovered.
fn open_current(cfg: &Config, path: &Path, base: u64) -> Result<(Current, Scan)> {
    let stored = Header::decode(&read_header(path)?).map_err(|what| JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        what,
    })?;
    let mut cur = map_current(cfg, path, stored, HEADER_LEN)?;
    let scan = segment::scan(path, &cur.map, cfg.max_record_bytes, u64::MAX)?;
    scan.check_base(path, base)?;
    if scan.header.chained() != cfg.chain {
        return Err(JournalError::Usage(format!(
            "{}: log was written with chain={}, opened with chain={}",
            path.display(),
            scan.header.chained(),
            cfg.chain
        )));
    }
    if scan.torn_bytes > 0 {
        let end = scan.end + scan.torn_bytes as usize;
        cur.map[scan.end..end].fill(0);
    }
    cur.header = scan.header;
    cur.pos = scan.end;
    // What was recovered is made durable before anything new is appended after it. Only that
    // range: syncing the whole map would clean every page and cost a fault per page on the next
    // writes.
    let torn_end = scan.end + scan.torn_bytes as usize;
    cur.map
        .flush_range(0, torn_end.max(scan.end))
        .map_err(JournalError::io(path))?;
    cur.header.durable_end = scan.end as u64;
    let h = cur.header.encode();
    cur.map[..HEADER_LEN].copy_from_slice(&h);
    cur.map
        .flush_range(0, HEADER_LEN)
        .map_err(JournalError::io(path))?;
    cur.synced_to = scan.end;
    if cfg.prefault {
        let _ = cur.map.advise(memmap2::Advice::PopulateWrite);
    }
    Ok((cur, scan))
}

/// Every segment but the last must have a sound header and follow the one before.
fn check_earlier_segments(cfg: &Config, segments: &[(u64, PathBuf)]) -> Result<()> {
    for (i, (base, path)) in segments.iter().enumerate() {
        let bytes = read_header(path)?;
        let h = Header::decode(&bytes).map_err(|what| JournalError::Corrupt {
            path: path.clone(),
            offset: 0,
            what,
        })?;
        if h.base_seq != *base {
            return Err(JournalError::Corrupt {
                path: path.clone(),
                offset: 16,
                what: format!("header base seq {} but file name says {base}", h.base_seq),
            });
        }
        if i > 0 && h.chained() != cfg.chain {
            return Err(JournalError::Usage(format!(
                "{}: chain flag differs",
                path.display()
            )));
        }
    }
    Ok(())
}

fn read_header(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(JournalError::io(path))?;
    let mut b = vec![0u8; HEADER_LEN];
    f.read_exact(&mut b).map_err(JournalError::io(path))?;
    Ok(b)
}
