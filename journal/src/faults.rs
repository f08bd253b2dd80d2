//! Storage faults a test can inject into a writer: a process that dies in the middle of an
//! append (leaving part of a frame behind), a sync that fails, a disk that fills up. A
//! production configuration carries no plan, and then none of this runs.
//!
//! Every trigger counts operations of one writer (1-based); `u64::MAX` never fires. Once a
//! fault has fired the writer is dead: every later call fails, and dropping it syncs nothing,
//! as a crashed process would not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const NEVER: u64 = u64::MAX;

/// The faults planned for one writer, and its operation counts so far.
#[derive(Debug)]
pub struct FaultPlan {
    crash_at_append: AtomicU64,
    /// Bytes of the dying frame (after its length word) that reach the file.
    torn_bytes: AtomicU64,
    fail_sync_at: AtomicU64,
    full_at_segment: AtomicU64,
    appends: AtomicU64,
    syncs: AtomicU64,
    segments: AtomicU64,
    dead: AtomicBool,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            crash_at_append: AtomicU64::new(NEVER),
            torn_bytes: AtomicU64::new(0),
            fail_sync_at: AtomicU64::new(NEVER),
            full_at_segment: AtomicU64::new(NEVER),
            appends: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            dead: AtomicBool::new(false),
        }
    }
}

/// What an append should do.
pub(crate) enum AppendFault {
    Proceed,
    /// Write this many bytes of the frame body, publish nothing, die.
    Crash {
        torn_bytes: usize,
    },
}

impl FaultPlan {
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// The process dies during the `n`th append, after `torn_bytes` bytes of the frame (past
    /// its length word, which is published last) reached the map.
    pub fn crash_at_append(self, n: u64, torn_bytes: u64) -> FaultPlan {
        self.crash_at_append.store(n, Ordering::Relaxed);
        self.torn_bytes.store(torn_bytes, Ordering::Relaxed);
        self
    }

    /// The `n`th sync fails with an I/O error.
    pub fn fail_sync_at(self, n: u64) -> FaultPlan {
        self.fail_sync_at.store(n, Ordering::Relaxed);
        self
    }

    /// Creating the `n`th new segment fails: the disk is full.
    pub fn full_at_segment(self, n: u64) -> FaultPlan {
        self.full_at_segment.store(n, Ordering::Relaxed);
        self
    }

    /// True once a fault has fired.
    pub fn fired(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn fire(&self) {
        self.dead.store(true, Ordering::Release);
    }

    fn count(counter: &AtomicU64, trigger: &AtomicU64) -> bool {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        n == trigger.load(Ordering::Relaxed)
    }

    pub(crate) fn dead_error() -> std::io::Error {
        std::io::Error::other("injected fault: the writer crashed earlier")
    }

    pub(crate) fn before_append(&self) -> std::io::Result<AppendFault> {
        if self.fired() {
            return Err(Self::dead_error());
        }
        if Self::count(&self.appends, &self.crash_at_append) {
            self.fire();
            let torn = self.torn_bytes.load(Ordering::Relaxed) as usize;
            return Ok(AppendFault::Crash { torn_bytes: torn });
        }
        Ok(AppendFault::Proceed)
    }

    pub(crate) fn before_sync(&self) -> std::io::Result<()> {
        if self.fired() {
            return Err(Self::dead_error());
        }
        if Self::count(&self.syncs, &self.fail_sync_at) {
            self.fire();
            return Err(std::io::Error::other("injected fault: fsync failed (EIO)"));
        }
        Ok(())
    }

    pub(crate) fn before_segment(&self) -> std::io::Result<()> {
        if self.fired() {
            return Err(Self::dead_error());
        }
        if Self::count(&self.segments, &self.full_at_segment) {
            self.fire();
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected fault: no space left on device (ENOSPC)",
            ));
        }
        Ok(())
    }
}

/// Deliberately broken behaviour, for proving that the simulation catches bugs. Compiled only
/// with the `planted-bugs` feature (test builds); every switch is off unless a test turns it on.
#[cfg(feature = "planted-bugs")]
pub mod planted {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The bugs that can be planted.
    #[derive(Clone, Copy, Debug)]
    pub enum Bug {
        /// Frames are accepted whatever their CRC says.
        SkipCrc,
        /// Recovery applies the last journaled input a second time.
        DoubleApply,
        /// The business logic panics on a deposit of exactly 666 (a stand-in for a poison-pill
        /// input, to prove the sequencer's death is contained and reported).
        PoisonPill,
    }

    static SKIP_CRC: AtomicBool = AtomicBool::new(false);
    static DOUBLE_APPLY: AtomicBool = AtomicBool::new(false);
    static POISON_PILL: AtomicBool = AtomicBool::new(false);

    fn flag(bug: Bug) -> &'static AtomicBool {
        match bug {
            Bug::SkipCrc => &SKIP_CRC,
            Bug::DoubleApply => &DOUBLE_APPLY,
            Bug::PoisonPill => &POISON_PILL,
        }
    }

    pub fn set(bug: Bug, on: bool) {
        flag(bug).store(on, Ordering::SeqCst);
    }

    pub fn on(bug: Bug) -> bool {
        flag(bug).load(Ordering::SeqCst)
    }
}
