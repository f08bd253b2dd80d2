//! Keeps a held lease renewed while its holder is busy elsewhere: a primary between taking
//! the lease and starting its replicator (recovering a long journal can outlast a lease), and
//! a follower that took over while it reopens as the primary. Without it the lease lapses in
//! that gap and another follower may take over an engine that is about to serve.

use super::{renew_lease, Lease, Nats};
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

/// What the keeper hands back: the connection, the lease at its latest revision, when it
/// was last renewed, and whether it was lost meanwhile.
type Kept = (Nats, Lease, Instant, Result<(), String>);

/// A thread renewing a lease every quarter of the lease time until [`LeaseKeeper::finish`].
pub struct LeaseKeeper {
    stop: Sender<()>,
    thread: JoinHandle<Kept>,
}

impl LeaseKeeper {
    /// Starts renewing `lease` (just taken or renewed) over `nats`.
    pub fn start(nats: Nats, lease: Lease) -> Result<LeaseKeeper, String> {
        let (stop, stopped) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("lease-keeper".into())
            .spawn(move || {
                let every = nats.cfg.lease / 4;
                let mut lease = lease;
                let mut renewed_at = Instant::now();
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return (nats, lease, renewed_at, Ok(())),
                    }
                    let kv = nats.kv.clone();
                    match nats.rt.block_on(renew_lease(&kv, &mut lease)) {
                        Ok(true) => renewed_at = Instant::now(),
                        Ok(false) => {} // NATS did not answer: try again next time
                        Err(e) => return (nats, lease, renewed_at, Err(e)),
                    }
                }
            })
            .map_err(|e| format!("lease keeper thread: {e}"))?;
        Ok(LeaseKeeper { stop, thread })
    }

    /// Stops renewing and hands back the connection, the lease and when it was last renewed;
    /// an error when the lease was taken by another owner meanwhile (this engine must not
    /// serve as the primary).
    pub fn finish(self) -> Result<(Nats, Lease, Instant), String> {
        // A send fails only when the thread already returned (the lease was lost).
        let _ = self.stop.send(());
        let (nats, lease, renewed_at, kept) = self
            .thread
            .join()
            .map_err(|_| "the lease keeper thread panicked".to_string())?;
        kept.map_err(|e| format!("while recovering: {e}"))?;
        Ok((nats, lease, renewed_at))
    }
}

/// A kept lease handed from a follower that took over to the primary it reopens as. Shared so
/// that the serve configuration carrying it stays `Clone`; the first taker gets the keeper.
#[derive(Clone, Default)]
pub struct Handover(std::sync::Arc<std::sync::Mutex<Option<LeaseKeeper>>>);

impl Handover {
    pub fn new(keeper: LeaseKeeper) -> Handover {
        Handover(std::sync::Arc::new(std::sync::Mutex::new(Some(keeper))))
    }

    /// The keeper, once (None after it was taken).
    pub fn take(&self) -> Option<LeaseKeeper> {
        self.0.lock().ok().and_then(|mut k| k.take())
    }
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handover")
    }
}
