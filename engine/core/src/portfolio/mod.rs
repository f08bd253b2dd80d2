//! Portfolio margin (the extension of docs/margin-model.md, "Portfolio margin"): a cross
//! bucket in portfolio mode is charged the worst weighted loss of its whole book over the
//! venue's scenario set instead of the sum of its positions' own requirements.
//!
//! - [`set`]: the scenario set, validated from a `risk_scenarios` event.
//! - [`figures`]: MM, LE and IM of a portfolio bucket, with what-if overlays.

pub mod figures;
pub mod set;
#[cfg(test)]
pub(crate) mod tests;

pub use figures::PortfolioFigures;
pub use set::{Scenario, ScenarioSet};
