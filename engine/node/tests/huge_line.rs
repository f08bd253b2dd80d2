//! A 1 GiB line costs no more memory than a short one: it is skipped as it streams by and
//! answered as too long, and the next line is read as usual. A tracking allocator measures the
//! peak of live heap bytes while it streams.

use margin_engine::Engine;
use margin_node::run::run_in_memory;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Tracking;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarding the caller's contract to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// 1 GiB of `x`, a newline, then a valid event: produced as it is read, never held.
struct HugeLine {
    left: u64,
    tail: &'static [u8],
}

impl Read for HugeLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left > 0 {
            let n = (buf.len() as u64).min(self.left) as usize;
            buf[..n].fill(b'x');
            self.left -= n as u64;
            return Ok(n);
        }
        let n = buf.len().min(self.tail.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail = &self.tail[n..];
        Ok(n)
    }
}

#[test]
fn a_one_gib_line_is_answered_in_bounded_memory() {
    let mut engine = Engine::new();
    let reader = std::io::BufReader::with_capacity(
        1 << 16,
        HugeLine {
            left: 1 << 30,
            tail: b"\n{\"type\":\"asset\",\"ts\":1,\"asset\":\"USDC\",\"decimals\":6,\"quote\":true}\n",
        },
    );
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut out: Vec<u8> = Vec::new();
    let summary = run_in_memory(&mut engine, reader, Some(&mut out)).unwrap();
    let peak_growth = PEAK.load(Ordering::Relaxed) - before;
    let text = String::from_utf8(out).unwrap();
    let mut answers = text.lines();
    let first = answers.next().unwrap();
    assert!(
        first.contains("\"line\":1") && first.contains("1073741824 bytes"),
        "{first}"
    );
    assert!(answers.next().unwrap().contains("\"type\":\"accepted\""));
    assert_eq!(summary.malformed, 1);
    assert!(
        peak_growth < 8 << 20,
        "reading a 1 GiB line grew the heap by {peak_growth} bytes"
    );
}
