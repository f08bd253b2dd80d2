//! Reading JSON Lines with a bound on line length: an overlong line is skipped to its end and
//! reported, never buffered whole, so a 1 GB line costs no more memory than a short one.

use std::io::{self, BufRead};

/// One line as read: its number (from 1) and either its text or why it is unusable.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text { number: u64, text: String },
    TooLong { number: u64, len: u64 },
    NotUtf8 { number: u64 },
}

/// Iterates the lines of a reader, at most `limit` bytes each.
pub struct BoundedLines<R> {
    reader: R,
    limit: usize,
    number: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> BoundedLines<R> {
    pub fn new(reader: R, limit: usize) -> Self {
        BoundedLines {
            reader,
            limit,
            number: 0,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Reads the next line; `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut saw_any = false;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            total += take as u64;
            if self.buf.len() <= self.limit {
                let room = self.limit + 1 - self.buf.len();
                self.buf.extend_from_slice(&chunk[..take.min(room)]);
            }
            self.reader.consume(take + usize::from(done));
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.number += 1;
        let number = self.number;
        if total as usize > self.limit {
            return Ok(Some(Line::TooLong { number, len: total }));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(text) => Ok(Some(Line::Text { number, text })),
            Err(_) => Ok(Some(Line::NotUtf8 { number })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], limit: usize) -> Vec<Line> {
        let mut r = BoundedLines::new(std::io::BufReader::with_capacity(4, input), limit);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn splits_and_bounds_lines() {
        let lines = all(b"ab\r\n0123456789\n\xff\xfe\nlast", 5);
        assert_eq!(
            lines,
            vec![
                Line::Text {
                    number: 1,
                    text: "ab".into()
                },
                Line::TooLong { number: 2, len: 10 },
                Line::NotUtf8 { number: 3 },
                Line::Text {
                    number: 4,
                    text: "last".into()
                },
            ]
        );
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(all(b"", 5).is_empty());
        assert_eq!(
            all(b"\n", 5),
            vec![Line::Text {
                number: 1,
                text: String::new()
            }]
        );
    }
}
