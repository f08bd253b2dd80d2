//! One client connection: what it speaks (detected from its first bytes), its bounded read
//! buffer split into lines or frames, and its bounded queue of answers.
//!
//! JSON Lines: one event per line, optionally with a numeric `id` the answers echo. Control
//! lines: `{"auth":"TOKEN"}`, `{"subscribe":SEQ}` (first line only: the connection then streams
//! the output log from SEQ), `{"status":{}}` (the journaled, applied, published and durable
//! seqs).
//!
//! Binary: the client starts with `MRGB`, then a u32 token length and the token bytes (length 0
//! for none). Each request frame is `[u32 len][u64 id][rkyv Input]` (len counts id + payload);
//! each answer `[u32 len][u8 kind][u64 id][payload]`: kind 0 an rkyv `OutputBatch`, kind 1 a
//! UTF-8 `malformed` detail. All integers little-endian.

use margin_engine::codec::{parse_line, LINE_LEN_MAX};
use margin_engine::event::Input;

/// Largest binary request frame (id + payload).
pub const FRAME_LEN_MAX: usize = 1 << 20;
/// Binary handshake.
pub const BINARY_MAGIC: &[u8; 4] = b"MRGB";
/// Longest token a client may send, in bytes (JSON `auth` or the binary handshake).
pub const TOKEN_LEN_MAX: usize = 4096;

/// What a connection speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Unknown,
    Json,
    Binary,
}

/// What a client may do.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Role {
    /// Nothing until it authenticates.
    None,
    /// Read the output log (subscribe).
    Reader,
    /// Send trading and account events.
    Writer,
    /// Send venue set-up events too.
    Admin,
}

/// Something a connection's bytes amounted to.
#[allow(clippy::large_enum_variant)] // events are the common case; boxing them would allocate
#[derive(Debug)]
pub enum Request {
    Event {
        input: Input,
        id: Option<u64>,
    },
    Malformed {
        line: u64,
        id: Option<u64>,
        detail: String,
    },
    Auth {
        token: String,
    },
    Subscribe {
        from: u64,
    },
    /// `{"status":{}}`: the seqs a feeder needs to resume (any role).
    Status,
    /// The stream cannot go on (an oversized handshake): answer `detail`, then close.
    Close {
        detail: String,
    },
}

/// The reading side of a connection.
#[derive(Debug)]
pub struct Reader {
    pub mode: Mode,
    buf: Vec<u8>,
    /// Bytes to drop before the next line or frame (the rest of an overlong one).
    skipping: Option<usize>,
    lines: u64,
    handshake_done: bool,
    /// A [`Request::Close`] was returned: every later byte is dropped unread.
    closed: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            mode: Mode::Unknown,
            buf: Vec::with_capacity(4096),
            skipping: None,
            lines: 0,
            handshake_done: false,
            closed: false,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    auth: Option<String>,
    subscribe: Option<u64>,
    status: Option<serde::de::IgnoredAny>,
}

impl Reader {
    /// Lines (or frames) read so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Takes bytes read from the socket and returns the requests they complete.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Request>) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.mode == Mode::Unknown {
            match self.buf.first() {
                None => return,
                Some(b'M') if self.buf.len() < 4 => return,
                Some(_) if self.buf.starts_with(BINARY_MAGIC) => {
                    self.mode = Mode::Binary;
                    self.buf.drain(..4);
                }
                Some(_) => self.mode = Mode::Json,
            }
        }
        match self.mode {
            Mode::Json => self.json_lines(out),
            Mode::Binary => self.frames(out),
            Mode::Unknown => {}
        }
    }

    fn json_lines(&mut self, out: &mut Vec<Request>) {
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let line = &self.buf[start..end];
            start = end + 1;
            if let Some(skipped) = self.skipping.take() {
                self.lines += 1;
                out.push(Request::Malformed {
                    line: self.lines,
                    id: None,
                    detail: format!(
                        "line of {} bytes is above the limit of {LINE_LEN_MAX}",
                        skipped + line.len()
                    ),
                });
                continue;
            }
            self.lines += 1;
            out.push(json_request(self.lines, line));
        }
        self.buf.drain(..start);
        if self.buf.len() > LINE_LEN_MAX {
            // An overlong line: forget its bytes as they come, answer when it ends.
            let dropped = self.buf.len() + self.skipping.unwrap_or(0);
            self.skipping = Some(dropped);
            self.buf.clear();
        }
    }

    fn frames(&mut self, out: &mut Vec<Request>) {
        if !self.handshake_done {
            if self.buf.len() < 4 {
                return;
            }
            let n = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
            if n > TOKEN_LEN_MAX {
                // Nothing after an oversized handshake can be trusted or resynchronised: the
                // connection ends here, holding no more than the bytes already read.
                out.push(Request::Close {
                    detail: format!(
                        "handshake token of {n} bytes is above the limit of {TOKEN_LEN_MAX}"
                    ),
                });
                self.closed = true;
                self.buf = Vec::new();
                return;
            }
            if self.buf.len() < 4 + n {
                return;
            }
            let token = String::from_utf8_lossy(&self.buf[4..4 + n]).into_owned();
            self.buf.drain(..4 + n);
            self.handshake_done = true;
            if n > 0 {
                out.push(Request::Auth { token });
            }
        }
        loop {
            // Drop what is left of a frame we answered as malformed (usize::MAX: everything,
            // the stream cannot be resynchronised).
            if let Some(rest) = self.skipping {
                let drop = rest.min(self.buf.len());
                self.buf.drain(..drop);
                match rest - drop {
                    0 => self.skipping = None,
                    left => {
                        self.skipping = Some(left);
                        return;
                    }
                }
            }
            if self.buf.len() < 4 {
                return;
            }
            let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
            self.lines += 1;
            if !(8..=FRAME_LEN_MAX).contains(&len) {
                out.push(Request::Malformed {
                    line: self.lines,
                    id: None,
                    detail: format!("frame of {len} bytes is outside [8, {FRAME_LEN_MAX}]"),
                });
                self.buf.drain(..4);
                self.skipping = Some(len);
                continue;
            }
            if self.buf.len() < 4 + len {
                self.lines -= 1;
                return;
            }
            let id = u64::from_le_bytes(self.buf[4..12].try_into().expect("8 bytes"));
            let request = match decode_frame_input(&self.buf[12..4 + len]) {
                Ok(input) => Request::Event {
                    input,
                    id: Some(id),
                },
                Err(detail) => Request::Malformed {
                    line: self.lines,
                    id: Some(id),
                    detail,
                },
            };
            out.push(request);
            self.buf.drain(..4 + len);
        }
    }
}

/// Decodes a binary frame's payload, a binary event record (docs/formats.md), under the JSON
/// codec's rules.
fn decode_frame_input(payload: &[u8]) -> Result<Input, String> {
    margin_engine::codec::binary::decode(payload).map_err(|e| e.0)
}

fn json_request(line_no: u64, line: &[u8]) -> Request {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(text) = std::str::from_utf8(line) else {
        return Request::Malformed {
            line: line_no,
            id: None,
            detail: "line is not valid UTF-8".into(),
        };
    };
    if !text.contains("\"type\"") {
        if let Ok(c) = serde_json::from_str::<Control>(text) {
            match (c.auth, c.subscribe, c.status) {
                (Some(token), None, None) => return Request::Auth { token },
                (None, Some(from), None) => return Request::Subscribe { from },
                (None, None, Some(_)) => return Request::Status,
                _ => {}
            }
        }
    }
    match parse_line(text) {
        Ok((input, id)) => Request::Event { input, id },
        Err(e) => Request::Malformed {
            line: line_no,
            id: id_of(text),
            detail: e.0,
        },
    }
}

/// The client's correlation `id` of a line that is not an event, when the line is a JSON object
/// with a numeric `id`: its answer echoes it like any other.
fn id_of(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<u64>,
    }
    serde_json::from_str::<IdOnly>(text).ok()?.id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(chunks: &[&[u8]]) -> Vec<Request> {
        let mut r = Reader::default();
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn json_lines_split_anywhere() {
        let line = br#"{"type":"cancel","ts":1,"account":1,"order":2,"id":9}"#;
        let mut whole = line.to_vec();
        whole.push(b'\n');
        for cut in 0..whole.len() {
            let got = requests(&[&whole[..cut], &whole[cut..]]);
            assert!(
                matches!(got.as_slice(), [Request::Event { id: Some(9), .. }]),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn garbage_and_overlong_lines_are_answered_and_the_connection_goes_on() {
        let mut long = vec![b'x'; LINE_LEN_MAX + 10];
        long.push(b'\n');
        let got = requests(&[
            b"not json\n",
            &long,
            b"{\"subscribe\":5}\n",
            b"{\"auth\":\"k\"}\n",
        ]);
        assert!(matches!(got[0], Request::Malformed { line: 1, .. }));
        assert!(
            matches!(&got[1], Request::Malformed { line: 2, detail, .. } if detail.contains("above the limit"))
        );
        assert!(matches!(got[2], Request::Subscribe { from: 5 }));
        assert!(matches!(&got[3], Request::Auth { token } if token == "k"));
    }

    #[test]
    fn an_oversized_handshake_closes_and_holds_nothing_more() {
        let mut r = Reader::default();
        let mut out = Vec::new();
        let mut hello = BINARY_MAGIC.to_vec();
        hello.extend_from_slice(&u32::MAX.to_le_bytes());
        r.feed(&hello, &mut out);
        assert!(
            matches!(&out[..], [Request::Close { detail }] if detail.contains("above the limit"))
        );
        // Streaming on is dropped unread: the buffer does not grow (hardening defect 5).
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..64 {
            r.feed(&chunk, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(r.buf.capacity(), 0);
    }

    #[test]
    fn malformed_lines_echo_the_clients_id() {
        let got = requests(&[
            b"{\"id\":41,\"type\":\"deposit\",\"ts\":1}\n",
            b"{\"id\":\"x\",\"type\":\"nope\"}\n",
        ]);
        assert!(matches!(got[0], Request::Malformed { id: Some(41), .. }));
        assert!(matches!(got[1], Request::Malformed { id: None, .. }));
    }

    #[test]
    fn binary_frames_round_trip_and_bad_frames_are_skipped() {
        let input =
            margin_engine::codec::parse_input(r#"{"type":"cancel","ts":1,"account":1,"order":2}"#)
                .unwrap();
        let mut payload = Vec::new();
        margin_engine::codec::binary::encode(&input, &mut payload);
        let mut bytes = BINARY_MAGIC.to_vec();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        let frame = |id: u64, p: &[u8]| {
            let mut f = ((8 + p.len()) as u32).to_le_bytes().to_vec();
            f.extend_from_slice(&id.to_le_bytes());
            f.extend_from_slice(p);
            f
        };
        bytes.extend(frame(1, &payload));
        bytes.extend(frame(2, b"garbage garbage!"));
        bytes.extend(frame(3, &payload));
        for cut in [0, 3, 5, 13, 40, bytes.len()] {
            let got = requests(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(got.len(), 3, "cut {cut}: {got:?}");
            assert!(matches!(&got[0], Request::Event { id: Some(1), input: i } if *i == input));
            assert!(matches!(got[1], Request::Malformed { id: Some(2), .. }));
            assert!(matches!(got[2], Request::Event { id: Some(3), .. }));
        }
    }
}
