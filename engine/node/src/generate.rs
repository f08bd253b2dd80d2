//! The one scenario generator behind `margin-engine generate` and `margin-bench gen`: the same
//! flags, the same defaults (the benchmarks' standard scenario) and the same bytes for a seed.
//! Sizes the generator cannot honour are refused, never quietly changed.

use margin_engine::scenario::{Scenario, ScenarioConfig};
use std::io::Write;

/// The generator's flags, shared by both binaries (`#[command(flatten)]`).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct GenerateArgs {
    /// Trading accounts (market makers and liquidators come on top), at least 1.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u32,
    /// Steps of trading after the venue set-up and the first deposits (a trade step is an
    /// order and its fill).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Listed markets, 3 to 12 (the generator's asset list has 12).
    #[arg(long, default_value_t = 12)]
    pub markets: u8,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated hours the steps span (funding is paid every simulated hour), at least 1.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Where the crash starts, in per-mille of the steps (1000: no crash).
    #[arg(long, default_value_t = 600)]
    pub crash_at_permille: u32,
    /// How far the crashed assets fall, in basis points (below 10000).
    #[arg(long, default_value_t = 3_000)]
    pub crash_depth_bps: u32,
    /// Traders on portfolio margin, per mille (0: none, and no scenario set is listed).
    #[arg(long, default_value_t = 0)]
    pub portfolio_permille: u32,
    /// Scenarios in the venue's set when traders are on portfolio margin, 1 to 64.
    #[arg(long, default_value_t = 24)]
    pub risk_scenarios: u8,
}

impl Default for GenerateArgs {
    fn default() -> Self {
        GenerateArgs {
            accounts: 10_000,
            events: 1_000_000,
            markets: 12,
            seed: 42,
            hours: 24,
            crash_at_permille: 600,
            crash_depth_bps: 3_000,
            portfolio_permille: 0,
            risk_scenarios: 24,
        }
    }
}

impl GenerateArgs {
    /// The scenario these flags describe, or why the generator cannot honour them.
    pub fn config(&self) -> Result<ScenarioConfig, String> {
        if !(3..=12).contains(&self.markets) {
            return Err(format!(
                "--markets {}: the generator lists 3 to 12 markets",
                self.markets
            ));
        }
        if self.accounts == 0 {
            return Err("--accounts 0: the generator needs at least one trader".into());
        }
        if self.hours == 0 {
            return Err("--hours 0: the steps must span at least one simulated hour".into());
        }
        if self.crash_at_permille > 1000 {
            return Err(format!(
                "--crash-at-permille {}: at most 1000 (no crash)",
                self.crash_at_permille
            ));
        }
        if self.crash_depth_bps >= 10_000 {
            return Err(format!(
                "--crash-depth-bps {}: a price cannot fall by 100 % or more",
                self.crash_depth_bps
            ));
        }
        if self.portfolio_permille > 1000 {
            return Err(format!(
                "--portfolio-permille {}: at most 1000 (every trader)",
                self.portfolio_permille
            ));
        }
        if !(1..=64).contains(&self.risk_scenarios) {
            return Err(format!(
                "--risk-scenarios {}: a scenario set has 1 to 64",
                self.risk_scenarios
            ));
        }
        Ok(ScenarioConfig {
            seed: self.seed,
            accounts: self.accounts,
            events: self.events,
            markets: self.markets,
            crash_at_permille: self.crash_at_permille,
            crash_depth_bps: self.crash_depth_bps,
            hours: self.hours,
            portfolio_permille: self.portfolio_permille,
            risk_scenarios: self.risk_scenarios,
        })
    }
}

/// Writes the scenario as JSON Lines and returns how many lines it wrote.
pub fn write_jsonl(cfg: ScenarioConfig, out: &mut impl Write) -> std::io::Result<u64> {
    let mut n = 0;
    for input in Scenario::new(cfg) {
        out.write_all(margin_engine::codec::input_line(&input).as_bytes())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gen: GenerateArgs,
    }

    #[test]
    fn defaults_are_the_standard_scenario_and_flags_parse() {
        let none = Cli::try_parse_from(["gen"]).unwrap().gen;
        assert_eq!(none, GenerateArgs::default());
        let cfg = none.config().unwrap();
        assert_eq!((cfg.accounts, cfg.markets), (10_000, 12));
        let some = Cli::try_parse_from(["gen", "--accounts", "7", "--markets", "3"])
            .unwrap()
            .gen;
        assert_eq!((some.accounts, some.markets), (7, 3));
    }

    #[test]
    fn sizes_it_cannot_honour_are_refused() {
        let bad = [
            GenerateArgs {
                markets: 1,
                ..Default::default()
            },
            GenerateArgs {
                markets: 13,
                ..Default::default()
            },
            GenerateArgs {
                accounts: 0,
                ..Default::default()
            },
            GenerateArgs {
                hours: 0,
                ..Default::default()
            },
            GenerateArgs {
                crash_at_permille: 1001,
                ..Default::default()
            },
            GenerateArgs {
                crash_depth_bps: 10_000,
                ..Default::default()
            },
            GenerateArgs {
                portfolio_permille: 1001,
                ..Default::default()
            },
            GenerateArgs {
                risk_scenarios: 65,
                ..Default::default()
            },
        ];
        for args in bad {
            assert!(args.config().is_err(), "{args:?}");
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let gen = |seed| {
            let args = GenerateArgs {
                accounts: 50,
                events: 500,
                seed,
                ..Default::default()
            };
            let mut v = Vec::new();
            let n = write_jsonl(args.config().unwrap(), &mut v).unwrap();
            assert_eq!(n, v.iter().filter(|&&b| b == b'\n').count() as u64);
            v
        };
        assert_eq!(gen(7), gen(7));
        assert_ne!(gen(7), gen(8));
    }
}
