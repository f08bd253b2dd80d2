//! The on-disk format: segment header and frames, their checksums and the hash chain.
//! docs/formats.md describes the same bytes for an independent reader.

/// First bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"MRGNJNL\0";
/// Format version written by this code.
pub const VERSION: u32 = 1;
/// Segment header size; frames start here.
pub const HEADER_LEN: usize = 128;
/// Frame alignment: payloads start at 16-byte aligned offsets so rkyv archives read in place.
pub const ALIGN: usize = 16;
/// Frame header without the chain digest: len u32, crc u32, seq u64.
pub const FRAME_BASE_LEN: usize = 16;
/// Length of a chain digest.
pub const DIGEST_LEN: usize = 32;
/// `len` value that seals a segment: the log continues in the next segment file.
pub const SEAL: u32 = u32::MAX;
/// Header flag: frames carry a chain digest.
pub const FLAG_CHAIN: u32 = 1;

/// A chain digest.
pub type Digest = [u8; DIGEST_LEN];

/// The segment header, as stored in its first `HEADER_LEN` bytes (little-endian):
///
/// | offset | field |
/// |---|---|
/// | 0 | magic `MRGNJNL\0` |
/// | 8 | version u32 |
/// | 12 | flags u32 (bit 0: chained) |
/// | 16 | base_seq u64: seq of the first frame |
/// | 24 | segment_len u64: size of the file |
/// | 32 | durable_end u64: frames before this offset were synced |
/// | 40 | header_crc u32: CRC32C of bytes 0..40 and 44..128 |
/// | 44 | zero |
/// | 48 | prev_digest [32]: chain digest of the frame before `base_seq` |
/// | 80 | zero up to 128 |
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    pub flags: u32,
    pub base_seq: u64,
    pub segment_len: u64,
    pub durable_end: u64,
    pub prev_digest: Digest,
}

impl Header {
    pub fn chained(&self) -> bool {
        self.flags & FLAG_CHAIN != 0
    }

    /// Size of a frame header in segments with this header.
    pub fn frame_header_len(&self) -> usize {
        frame_header_len(self.chained())
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.base_seq.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.durable_end.to_le_bytes());
        b[48..80].copy_from_slice(&self.prev_digest);
        let crc = header_crc(&b);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header; the error says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Header, String> {
        if b.len() < HEADER_LEN {
            return Err(format!(
                "header needs {HEADER_LEN} bytes, file has {}",
                b.len()
            ));
        }
        if b[0..8] != MAGIC {
            return Err("bad magic (not a margin journal segment)".into());
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(format!(
                "format version {version}, this build reads {VERSION}"
            ));
        }
        if u32_at(b, 40) != header_crc(b) {
            return Err("header checksum mismatch".into());
        }
        let h = Header {
            flags: u32_at(b, 12),
            base_seq: u64_at(b, 16),
            segment_len: u64_at(b, 24),
            durable_end: u64_at(b, 32),
            prev_digest: b[48..80].try_into().expect("32 bytes"),
        };
        if h.flags & !FLAG_CHAIN != 0 {
            return Err(format!("unknown flags {:#x}", h.flags));
        }
        if h.base_seq == 0 {
            return Err("base sequence 0 (sequences start at 1)".into());
        }
        Ok(h)
    }
}

fn header_crc(b: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&b[0..40]), &b[44..HEADER_LEN])
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Frame header length: 16, or 48 with a chain digest.
pub fn frame_header_len(chained: bool) -> usize {
    FRAME_BASE_LEN + if chained { DIGEST_LEN } else { 0 }
}

/// Bytes a frame with `payload_len` occupies, padding included.
pub fn frame_len(chained: bool, payload_len: usize) -> usize {
    align_up(frame_header_len(chained) + payload_len)
}

pub fn align_up(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// CRC32C over seq, digest (when chained) and payload.
pub fn frame_crc(seq: u64, digest: Option<&Digest>, payload: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&seq.to_le_bytes());
    if let Some(d) = digest {
        c = crc32c::crc32c_append(c, d);
    }
    crc32c::crc32c_append(c, payload)
}

/// The chain digest of a frame: BLAKE3 of the previous digest, the seq and the payload.
pub fn chain_digest(prev: &Digest, seq: u64, payload: &[u8]) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&seq.to_le_bytes());
    h.update(payload);
    *h.finalize().as_bytes()
}

/// A frame read from bytes and checked.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    pub seq: u64,
    pub digest: Option<&'a Digest>,
    pub payload: &'a [u8],
    /// Bytes the frame occupies (header, payload, padding).
    pub extent: usize,
}

/// What is at a frame position.
#[derive(Debug)]
pub enum FrameAt<'a> {
    /// A checked frame.
    Frame(FrameRef<'a>),
    /// `len` 0: nothing written here yet.
    End,
    /// The segment was sealed here; the log continues in the next segment.
    Sealed,
    /// Something that is not a valid frame, and why.
    Bad(String),
}

/// Reads and checks the frame at `pos` of a segment's bytes.
pub fn frame_at(bytes: &[u8], pos: usize, chained: bool, max_payload: usize) -> FrameAt<'_> {
    let hdr = frame_header_len(chained);
    if pos + 4 > bytes.len() {
        return FrameAt::End;
    }
    let len = u32_at(bytes, pos);
    if len == 0 {
        return FrameAt::End;
    }
    if len == SEAL {
        return FrameAt::Sealed;
    }
    let len = len as usize;
    if len > max_payload {
        return FrameAt::Bad(format!(
            "frame length {len} above the limit of {max_payload}"
        ));
    }
    let end = pos + hdr + len;
    if end > bytes.len() {
        return FrameAt::Bad(format!(
            "frame of {len} bytes runs past the end of the segment"
        ));
    }
    let crc = u32_at(bytes, pos + 4);
    let seq = u64_at(bytes, pos + 8);
    let digest: Option<&Digest> =
        chained.then(|| bytes[pos + 16..pos + 48].try_into().expect("32 bytes"));
    let payload = &bytes[pos + hdr..end];
    if frame_crc(seq, digest, payload) != crc && !crc_check_skipped() {
        return FrameAt::Bad(format!("checksum mismatch in frame of seq {seq}"));
    }
    let extent = align_up(hdr + len);
    // Padding is part of the format (always zero), so a flipped padding bit is caught too.
    let pad_end = (pos + extent).min(bytes.len());
    if bytes[end..pad_end].iter().any(|&b| b != 0) {
        return FrameAt::Bad(format!("non-zero padding after frame of seq {seq}"));
    }
    FrameAt::Frame(FrameRef {
        seq,
        digest,
        payload,
        extent,
    })
}

/// Whether the planted CRC bug is on (always false in a normal build).
#[inline]
fn crc_check_skipped() -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        crate::faults::planted::on(crate::faults::planted::Bug::SkipCrc)
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            flags: FLAG_CHAIN,
            base_seq: 42,
            segment_len: 1 << 20,
            durable_end: 4096,
            prev_digest: [7; 32],
        };
        let b = h.encode();
        assert_eq!(Header::decode(&b), Ok(h));
        let mut bad = b;
        bad[17] ^= 1;
        assert!(Header::decode(&bad).unwrap_err().contains("checksum"));
        let mut bad = b;
        bad[0] = b'X';
        assert!(Header::decode(&bad).unwrap_err().contains("magic"));
    }

    #[test]
    fn frame_lengths_are_aligned() {
        assert_eq!(frame_len(false, 0), 16);
        assert_eq!(frame_len(false, 1), 32);
        assert_eq!(frame_len(true, 16), 64);
        assert_eq!(frame_len(true, 17), 80);
    }
}
