//! The margin engine: a deterministic state machine over a venue's accounts, positions, prices
//! and funds, with exact fixed-point arithmetic.
//!
//! - [`event`] and [`record`]: what goes in and what comes out.
//! - [`engine::Engine::apply`]: the one transition function.
//! - [`codec`]: JSON Lines for events and records, exactly per the contract.
//! - [`report`]: the state report.

pub mod account;
pub mod codec;
pub mod demo;
pub mod dynamic;
pub mod engine;
pub mod event;
mod fill;
mod handlers;
pub mod health;
pub mod ids;
pub mod invariants;
pub mod limits;
pub mod lines;
mod liquidation;
pub mod num;
pub mod oracle;
pub mod ordered;
pub mod persist;
pub mod pipeline;
pub mod record;
pub mod reject;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod state;
pub mod stdout;
pub mod stress;
pub mod venue;

pub use engine::Engine;
pub use event::{Event, Input};
pub use record::{Body, Reason, Record};
