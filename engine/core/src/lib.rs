//! The margin engine: a deterministic state machine over a venue's accounts, positions, prices
//! and funds, with exact fixed-point arithmetic. A library a venue can embed: it reads nothing
//! but its state and the event it is given (no clock, no randomness, no I/O, no threads), and
//! the compiler holds it to that (the lints below and `clippy.toml` beside this crate).
//!
//! - [`event`] and [`record`]: what goes in and what comes out.
//! - [`engine::Engine::apply`]: the one transition function.
//! - [`codec`]: JSON Lines for events and records, exactly per the contract.
//! - [`persist`]: the rkyv encodings of inputs, output batches and snapshots, and state hashes.
//! - [`report`]: the state report.
//!
//! The node around it (journals, pipeline, TCP service, CLI) is the `margin-node` crate.

#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

pub mod account;
pub mod codec;
pub mod dynamic;
pub mod engine;
pub mod event;
mod fill;
mod handlers;
pub mod health;
pub mod ids;
pub mod invariants;
pub mod limits;
mod liquidation;
pub mod memo;
pub mod num;
pub mod oracle;
pub mod ordered;
pub mod persist;
pub mod portfolio;
mod prefetch;
pub mod ranged;
pub mod record;
pub mod reject;
pub mod report;
pub mod rng;
pub mod scenario;
mod scratch;
pub mod state;
mod straight;
pub mod stress;
mod tick_index;
pub mod venue;

pub use engine::Engine;
pub use event::{Event, Input};
pub use record::{Body, Reason, Record};
