//! margin-replay: what an auditor needs from a margin engine's data directory. Everything here
//! reads; nothing writes the journals, so the tools work on a live directory and on a copy.
//!
//! - [`verify`]: replay the input journal and compare every output, byte for byte.
//! - [`export`]: the logs as JSON Lines of the contract.
//! - [`audit`]: every invariant over the whole history, and a report a risk officer reads.
//! - state at any seq and stress scenarios come from the engine crate
//!   (`margin_node::pipeline::recovery::state_at`, `margin_engine::stress`).

pub mod audit;
pub mod export;
pub mod html;
pub mod verify;
