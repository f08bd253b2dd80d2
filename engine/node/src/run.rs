//! Feeding a JSON Lines stream to the engine: lines that are not events get a `malformed`
//! rejection naming the line and the problem and never reach the state machine; every other
//! line is applied and its records written out.

use crate::lines::{BoundedLines, Line};
use margin_engine::codec::json_out::write_json_str;
use margin_engine::codec::{parse_input, write_record, LINE_LEN_MAX};
use margin_engine::engine::Engine;
use margin_engine::event::Input;
use margin_engine::record::{Body, Record};
use std::io::{self, BufRead, Write};

/// Counts of what a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub lines: u64,
    pub malformed: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub records: u64,
}

impl RunSummary {
    /// Counts one applied input from its records.
    pub fn count(&mut self, records: &[Record]) {
        self.records += records.len() as u64;
        match records.first().map(|r| &r.body) {
            Some(Body::Accepted { .. }) => self.accepted += 1,
            _ => self.rejected += 1,
        }
    }
}

/// A line, parsed: an input, or the `malformed` answer for the feeder.
#[allow(clippy::large_enum_variant)] // transient, one at a time
pub enum Parsed {
    Input(Input),
    Malformed { line: u64, detail: String },
}

/// Reads and parses the next line; `None` at the end of input.
pub fn next_parsed<R: BufRead>(lines: &mut BoundedLines<R>) -> io::Result<Option<Parsed>> {
    Ok(lines.next_line()?.map(|line| match line {
        Line::Text { number, text } => match parse_input(&text) {
            Ok(input) => Parsed::Input(input),
            Err(e) => Parsed::Malformed {
                line: number,
                detail: e.0,
            },
        },
        Line::TooLong { number, len } => Parsed::Malformed {
            line: number,
            detail: format!("line of {len} bytes is above the limit of {LINE_LEN_MAX}"),
        },
        Line::NotUtf8 { number } => Parsed::Malformed {
            line: number,
            detail: "line is not valid UTF-8".to_string(),
        },
    }))
}

/// The `malformed` answer for a line that never reached the journal (it has no seq).
pub fn malformed_line(line: u64, detail: &str) -> String {
    let mut s =
        format!("{{\"type\":\"rejected\",\"reason\":\"malformed\",\"line\":{line},\"detail\":");
    write_json_str(&mut s, detail);
    s.push('}');
    s
}

/// Runs a whole stream in memory, writing records (and malformed answers) to `out`.
pub fn run_in_memory<R: BufRead, W: Write>(
    engine: &mut Engine,
    input: R,
    mut out: Option<&mut W>,
) -> io::Result<RunSummary> {
    let mut lines = BoundedLines::new(input, LINE_LEN_MAX);
    let mut summary = RunSummary::default();
    let mut buf = String::with_capacity(4096);
    while let Some(parsed) = next_parsed(&mut lines)? {
        summary.lines += 1;
        buf.clear();
        match parsed {
            Parsed::Malformed { line, detail } => {
                summary.malformed += 1;
                buf.push_str(&malformed_line(line, &detail));
                buf.push('\n');
            }
            Parsed::Input(input) => {
                let records = engine.apply(&input);
                summary.count(records);
                for r in records {
                    write_record(&mut buf, r);
                    buf.push('\n');
                }
            }
        }
        if let Some(w) = out.as_deref_mut() {
            w.write_all(buf.as_bytes())?;
        }
    }
    Ok(summary)
}

/// A sink that writes released records (and malformed answers) as JSON Lines, and counts them.
pub struct JsonLinesSink {
    out: Option<Box<dyn Write + Send>>,
    buf: String,
    pub summary: std::sync::Arc<std::sync::Mutex<RunSummary>>,
    error: Option<io::Error>,
}

impl JsonLinesSink {
    pub fn new(out: Option<Box<dyn Write + Send>>) -> JsonLinesSink {
        JsonLinesSink {
            out,
            buf: String::with_capacity(1 << 16),
            summary: Default::default(),
            error: None,
        }
    }

    fn drain(&mut self, force: bool) {
        if self.buf.len() < (1 << 15) && !force {
            return;
        }
        if let (Some(w), None) = (self.out.as_mut(), &self.error) {
            if let Err(e) = w.write_all(self.buf.as_bytes()) {
                self.error = Some(e);
            }
        }
        self.buf.clear();
    }
}

impl crate::pipeline::Sink for JsonLinesSink {
    fn applied(
        &mut self,
        _seq: u64,
        _origin: crate::pipeline::Origin,
        records: &[Record],
        _encoded: &[u8],
        _sent_ns: u64,
    ) {
        if let Ok(mut s) = self.summary.lock() {
            s.lines += 1;
            s.count(records);
        }
        if self.out.is_some() {
            for r in records {
                write_record(&mut self.buf, r);
                self.buf.push('\n');
            }
            self.drain(false);
        }
    }

    fn malformed(
        &mut self,
        _origin: crate::pipeline::Origin,
        line: u64,
        detail: &str,
        _sent_ns: u64,
    ) {
        if let Ok(mut s) = self.summary.lock() {
            s.lines += 1;
            s.malformed += 1;
        }
        if self.out.is_some() {
            self.buf.push_str(&malformed_line(line, detail));
            self.buf.push('\n');
            self.drain(false);
        }
    }

    fn finish(&mut self) {
        self.drain(true);
        if let Some(w) = self.out.as_mut() {
            if let Err(e) = w.flush() {
                self.error.get_or_insert(e);
            }
        }
        if let Some(e) = &self.error {
            eprintln!("margin-engine: writing outputs failed: {e}");
        }
    }
}

/// Feeds a JSON Lines stream through a started pipeline; returns when the input ends.
pub fn feed_lines<R: BufRead>(
    pipeline: &mut crate::pipeline::Pipeline,
    input: R,
) -> io::Result<()> {
    use crate::pipeline::{now_ns, Item, ItemKind, Origin};
    let mut lines = BoundedLines::new(input, LINE_LEN_MAX);
    while let Some(parsed) = next_parsed(&mut lines)? {
        let kind = match parsed {
            Parsed::Input(input) => ItemKind::Event(input),
            Parsed::Malformed { line, detail } => ItemKind::Malformed { line, detail },
        };
        let item = Item {
            kind,
            origin: Origin::default(),
            sent_ns: now_ns(),
        };
        pipeline.submit(item).map_err(io::Error::other)?;
    }
    pipeline.flush().map_err(io::Error::other)
}
