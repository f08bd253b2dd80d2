//! Replication on NATS JetStream: one venue's inputs in one stream, a primary that appends to
//! it, followers that apply it, a lease that says who the primary is.
//!
//! - The stream `NAME` holds one message per input on subject `NAME.inputs`: the journal
//!   record's payload, message id = input seq. Stream sequence and input seq are the same
//!   number, so every append carries `Nats-Expected-Last-Sequence: seq - 1`: of two writers
//!   only one can append each seq, and the other is fenced at its next append.
//! - The key-value bucket `NAME-lease` holds key `primary` = the primary's owner id, with a
//!   bucket-wide age limit (the lease time). The primary renews it by revision; a follower with
//!   `--takeover` creates it when it has expired (create fails while it exists).
//! - Every `heads_every` inputs the primary publishes `SEQ HEX` (its output log's chain head at
//!   SEQ) on `NAME.heads`; followers compare their own head at SEQ and stop on a divergence.
//!
//! Only the node touches NATS; the state machine sees the same inputs in the same order.

pub mod follow;
pub mod keeper;
pub mod primary;

use async_nats::jetstream::{self, kv, stream};
use std::time::Duration;

/// Where and how to replicate.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// `nats://HOST:PORT`.
    pub url: String,
    /// The stream's name (one per venue): letters, digits, `-` and `_`.
    pub stream: String,
    /// How long a lease lasts without renewal; renewed every quarter of it.
    pub lease: Duration,
    /// The primary publishes its output head every this many inputs.
    pub heads_every: u64,
    /// Most publishes in flight without an acknowledgement.
    pub window: usize,
}

impl ReplicaConfig {
    pub fn new(url: impl Into<String>, stream: impl Into<String>) -> ReplicaConfig {
        ReplicaConfig {
            url: url.into(),
            stream: stream.into(),
            lease: Duration::from_millis(2_000),
            heads_every: 1_000,
            window: 4_096,
        }
    }

    /// Checks what the flags can get wrong.
    pub fn check(&self) -> Result<(), String> {
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.stream.is_empty() || self.stream.len() > 64 || !self.stream.chars().all(ok) {
            return Err(format!(
                "--stream {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.stream
            ));
        }
        if self.lease < Duration::from_millis(500) {
            return Err("--lease-ms: at least 500".into());
        }
        if self.heads_every == 0 || self.window == 0 {
            return Err("--heads-every and the publish window must be positive".into());
        }
        Ok(())
    }

    fn inputs_subject(&self) -> String {
        format!("{}.inputs", self.stream)
    }

    fn heads_subject(&self) -> String {
        format!("{}.heads", self.stream)
    }

    fn lease_bucket(&self) -> String {
        format!("{}-lease", self.stream)
    }
}

/// The lease's key in its bucket.
const LEASE_KEY: &str = "primary";

/// A connection to NATS with the venue's stream and lease bucket, and the runtime that drives
/// it (one thread; the callers block on it).
pub struct Nats {
    pub rt: tokio::runtime::Runtime,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub stream: stream::Stream,
    pub kv: kv::Store,
    pub cfg: ReplicaConfig,
}

impl Nats {
    /// Connects and makes sure the stream and the lease bucket exist.
    pub fn connect(cfg: &ReplicaConfig) -> Result<Nats, String> {
        cfg.check()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let (client, js, stream, kv) = rt.block_on(async {
            let client = tokio::time::timeout(
                Duration::from_secs(10),
                async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connect(&cfg.url),
            )
            .await
            .map_err(|_| format!("{}: no NATS server answered within 10 s", cfg.url))?
            .map_err(|e| format!("{}: {e}", cfg.url))?;
            let mut js = jetstream::new(client.clone());
            js.set_timeout(Duration::from_secs(5));
            let stream = js
                .get_or_create_stream(stream::Config {
                    name: cfg.stream.clone(),
                    subjects: vec![cfg.inputs_subject()],
                    storage: stream::StorageType::File,
                    duplicate_window: Duration::from_secs(120),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("stream {}: {e}", cfg.stream))?;
            // The bucket's stream is made here, as the key-value layout asks (one message per
            // key, the age limit as the lease time): the client's own bucket creation first
            // asks for account details in a form older servers (Debian's 2.9) do not give.
            js.get_or_create_stream(stream::Config {
                name: format!("KV_{}", cfg.lease_bucket()),
                subjects: vec![format!("$KV.{}.>", cfg.lease_bucket())],
                max_messages_per_subject: 1,
                max_age: cfg.lease,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("lease bucket {}: {e}", cfg.lease_bucket()))?;
            let kv = js
                .get_key_value(cfg.lease_bucket())
                .await
                .map_err(|e| format!("lease bucket {}: {e}", cfg.lease_bucket()))?;
            Ok::<_, String>((client, js, stream, kv))
        })?;
        Ok(Nats {
            rt,
            client,
            js,
            stream,
            kv,
            cfg: cfg.clone(),
        })
    }

    /// The stream's last sequence (= the last replicated input seq).
    pub fn last_seq(&mut self) -> Result<u64, String> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            stream
                .info()
                .await
                .map(|i| i.state.last_sequence)
                .map_err(|e| format!("stream info: {e}"))
        })
    }
}

/// A held lease: who holds it and the revision its next renewal must name.
#[derive(Clone, Debug)]
pub struct Lease {
    pub owner: String,
    pub revision: u64,
}

/// An owner id for this process: host, pid and start time, unique enough among the engines of
/// one venue.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{host}:{}:{since_epoch}", std::process::id())
}

/// Why taking the lease failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseRefused {
    /// Another owner holds it (its id).
    HeldBy(String),
    /// NATS did not answer.
    Unavailable(String),
}

impl std::fmt::Display for LeaseRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseRefused::HeldBy(o) => write!(f, "the primary lease is held by {o}"),
            LeaseRefused::Unavailable(e) => write!(f, "the lease bucket did not answer: {e}"),
        }
    }
}

/// Takes the lease if nobody holds it.
pub async fn take_lease(kv: &kv::Store, owner: &str) -> Result<Lease, LeaseRefused> {
    match kv.create(LEASE_KEY, owner.to_string().into()).await {
        Ok(revision) => Ok(Lease {
            owner: owner.to_string(),
            revision,
        }),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            let holder = kv
                .entry(LEASE_KEY)
                .await
                .ok()
                .flatten()
                .map(|e| String::from_utf8_lossy(&e.value).into_owned())
                .unwrap_or_else(|| "another engine".into());
            Err(LeaseRefused::HeldBy(holder))
        }
        Err(e) => Err(LeaseRefused::Unavailable(e.to_string())),
    }
}

/// Renews a held lease. `Ok(false)` when it could not be reached this time (try again);
/// an error when another owner holds it now.
pub async fn renew_lease(kv: &kv::Store, lease: &mut Lease) -> Result<bool, String> {
    match kv
        .update(LEASE_KEY, lease.owner.clone().into(), lease.revision)
        .await
    {
        Ok(revision) => {
            lease.revision = revision;
            Ok(true)
        }
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
            // Expired while we could not renew (say NATS was down): take it again if nobody
            // else has; the stream's sequence fence guards the log either way.
            match take_lease(kv, &lease.owner).await {
                Ok(l) => {
                    *lease = l;
                    Ok(true)
                }
                Err(LeaseRefused::HeldBy(o)) => Err(format!("the primary lease was taken by {o}")),
                Err(LeaseRefused::Unavailable(_)) => Ok(false),
            }
        }
        Err(_) => Ok(false),
    }
}

/// Parses a heads message, `SEQ HEX`.
pub fn parse_head(payload: &[u8]) -> Option<(u64, [u8; 32])> {
    let text = std::str::from_utf8(payload).ok()?;
    let (seq, hex) = text.split_once(' ')?;
    let seq = seq.parse().ok()?;
    let mut head = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, b) in head.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((seq, head))
}

/// Formats a head as 64 hex digits.
pub fn hex(head: &[u8; 32]) -> String {
    head.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_bad_ones_are_refused() {
        let head = [0xab; 32];
        let text = format!("1000 {}", hex(&head));
        assert_eq!(parse_head(text.as_bytes()), Some((1000, head)));
        assert_eq!(parse_head(b"1000 abc"), None);
        assert_eq!(parse_head(b"x 00"), None);
        assert_eq!(parse_head(&[0xff, 0x20]), None);
    }

    #[test]
    fn stream_names_are_checked() {
        assert!(ReplicaConfig::new("nats://x", "venue-1_a").check().is_ok());
        for bad in ["", "a.b", "a b", "a*", &"x".repeat(65)] {
            assert!(
                ReplicaConfig::new("nats://x", bad).check().is_err(),
                "{bad}"
            );
        }
    }
}
