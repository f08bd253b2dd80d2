//! The node around the margin engine's state machine (`margin-engine`): everything that touches
//! the world. The journaled LMAX-style pipeline and recovery ([`pipeline`]), the TCP service
//! ([`server`]), running a file of events ([`run`]), the demo ([`demo`]), the scenario generator ([`generate`]), the fault-injecting
//! simulation ([`sim`]), and the `margin-engine` binary's helpers. The state machine itself
//! knows nothing of journals; this crate joins it to `margin-journal`.

pub mod demo;
pub mod generate;
pub mod lines;
pub mod live;
pub mod pipeline;
pub mod replica;
pub mod run;
pub mod server;
pub mod sim;
pub mod stdout;
