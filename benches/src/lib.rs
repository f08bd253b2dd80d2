//! `margin-bench`: how fast the margin engine is, measured so that another engineer can rerun it
//! and trust it (see `docs/benchmarks.md`).
//!
//! - [`workload`]: the seeded event stream (`margin-bench gen`) and the synthetic venues of the
//!   scaling and peer runs.
//! - [`service`]: business logic alone, per event type, indexed and naive.
//! - [`scaling`]: oracle-tick and fill cost as the venue grows from 1K to 1M accounts.
//! - [`sweep`]: the open-loop, coordinated-omission-free pipeline sweep over offered rates.
//! - [`peers`]: percolator-engine on the equivalent stream, the memcpy+CRC floor, the
//!   crossbeam hand-off.
//! - [`report`]: Markdown tables, `.hgrm` percentile files and PNG plots.
//!
//! Everything here reads clocks; nothing here is business logic. Measurements are reported,
//! never asserted.

pub mod hist;
pub mod peers;
pub mod plot;
pub mod report;
pub mod scaling;
pub mod service;
pub mod sweep;
pub mod workload;
