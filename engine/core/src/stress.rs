//! What-if: apply price shocks (and optionally scaled margin fractions) to a state and report
//! which buckets would breach maintenance, what they would lack if closed out at the shocked
//! index, whether the insurance fund covers it, and what auto-deleveraging would be left.
//! Pure and deterministic: it works on a copy and never touches the journals.

use crate::account::Slot;
use crate::health::Overlay;
use crate::ids::{AccountId, AssetId};
use crate::num::{format_scaled, Exact, Overflow, Ratio, Ticks};
use crate::state::State;
use serde::Serialize;

/// A price shock: the asset's index times (1 + move), `move` in parts per 10^18.
#[derive(Clone, Debug)]
pub struct Shock {
    pub asset: AssetId,
    pub change: Ratio,
}

/// One bucket that would breach.
#[derive(Clone, Debug, Serialize)]
pub struct Breach {
    pub account: u64,
    pub bucket: String,
    pub health_maint: String,
    /// What the bucket would lack if everything closed at the shocked index (0 if nothing).
    pub deficit: String,
    /// A portfolio bucket's worst scenario under the shocked prices (None: standard, or no
    /// scenario loses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst_scenario: Option<String>,
}

/// One scenario of the set in force, over the portfolio buckets with positions at the shocked
/// prices.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioLoad {
    pub name: String,
    /// Buckets whose largest weighted loss this scenario is (the first among equal ones).
    pub worst_for: usize,
    /// The sum of those buckets' weighted losses in it.
    pub loss: String,
}

/// The portfolio side of a stress run.
#[derive(Clone, Debug, Serialize)]
pub struct PortfolioStress {
    pub set: String,
    pub version: u64,
    /// Portfolio buckets with positions.
    pub buckets: usize,
    /// Of them, those whose requirement is the floor (no scenario loses more).
    pub at_floor: usize,
    pub scenarios: Vec<ScenarioLoad>,
}

/// The outcome of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct StressResult {
    pub shocks: Vec<(String, String)>,
    pub vol_mult: String,
    pub buckets: usize,
    pub breached: usize,
    pub bankrupt: usize,
    pub deficit: String,
    pub insurance_value: String,
    pub covered: String,
    /// Deficit the fund cannot cover: what ADL would put on counterparties.
    pub adl: String,
    pub worst: Vec<Breach>,
    /// Present once a scenario set is in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioStress>,
}

/// Applies the shocks to a copy of `state` and values every bucket.
pub fn run(state: &State, shocks: &[Shock], vol_mult: Ratio) -> Result<StressResult, Overflow> {
    let mut s = state.clone();
    for sh in shocks {
        let st = &mut s.assets[sh.asset.index()];
        if let Some(idx) = st.oracle.index {
            let moved =
                Exact::new(i128::from(idx.0), 0).times(Exact::int(1).plus(sh.change.exact())?)?;
            let ticks = moved.floor(0)?.max(1);
            st.oracle.index = Some(Ticks(i64::try_from(ticks).map_err(|_| Overflow)?));
        }
    }
    if vol_mult != Ratio::ONE {
        for m in &mut s.markets {
            let scaled = Exact::new(m.fraction_scale.max(Ratio::ONE.0), 18)
                .times(vol_mult.exact())?
                .ceil(18)?;
            m.fraction_scale = scaled;
        }
    }
    // The copy's memoized bucket sums are of the unshocked prices.
    s.moved_prices();
    let qd = s.quote_decimals();
    let mut total_deficit: i128 = 0;
    let (mut breached, mut bankrupt, mut buckets) = (0usize, 0usize, 0usize);
    let mut worst: Vec<(i128, Breach)> = Vec::new();
    for acc in &s.accounts {
        for slot in acc.slots() {
            let Some(b) = acc.bucket(slot) else { continue };
            if !b.has_positions() {
                continue;
            }
            buckets += 1;
            let h = s.bucket_health(b, &Overlay::default())?;
            if h.health_maint() >= 0 {
                continue;
            }
            breached += 1;
            let lack = closeout_deficit(&s, acc.id, slot)?;
            if lack > 0 {
                bankrupt += 1;
                total_deficit += lack;
            }
            worst.push((
                lack,
                Breach {
                    account: acc.id.0,
                    bucket: match slot {
                        Slot::Cross => "cross".into(),
                        Slot::Isolated(m) => s.venue.market(m).name.to_string(),
                    },
                    health_maint: format_scaled(h.health_maint(), qd),
                    deficit: format_scaled(lack, qd),
                    worst_scenario: worst_scenario(&s, b)?,
                },
            ));
        }
    }
    worst.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.account.cmp(&b.1.account)));
    let fund = insurance_value(&s)?;
    let covered = total_deficit.min(fund.max(0));
    Ok(StressResult {
        shocks: shocks
            .iter()
            .map(|sh| {
                (
                    s.venue.asset(sh.asset).name.to_string(),
                    crate::venue::fmt_ratio(sh.change),
                )
            })
            .collect(),
        vol_mult: crate::venue::fmt_ratio(vol_mult),
        buckets,
        breached,
        bankrupt,
        deficit: format_scaled(total_deficit, qd),
        insurance_value: format_scaled(fund, qd),
        covered: format_scaled(covered, qd),
        adl: format_scaled(total_deficit - covered, qd),
        worst: worst.into_iter().take(20).map(|w| w.1).collect(),
        portfolio: portfolio_stress(&s)?,
    })
}

/// The name of a portfolio bucket's worst scenario (None for a standard bucket, or when no
/// scenario loses).
fn worst_scenario(s: &State, b: &crate::account::Bucket) -> Result<Option<String>, Overflow> {
    let Some(set) = s.portfolio_set(b, &Overlay::default()) else {
        return Ok(None);
    };
    let f = s.portfolio_figures(set, b, &Overlay::default(), false)?;
    Ok(set.scenario_name(f.worst))
}

/// Which scenarios bind the portfolio buckets, and by how much.
fn portfolio_stress(s: &State) -> Result<Option<PortfolioStress>, Overflow> {
    let Some(set) = s.venue.risk.as_ref() else {
        return Ok(None);
    };
    let mut count = vec![0usize; set.scenarios.len()];
    let mut loss = vec![0i128; set.scenarios.len()];
    let (mut buckets, mut at_floor) = (0, 0);
    for acc in &s.accounts {
        let b = &acc.cross;
        if !b.portfolio || !b.has_positions() {
            continue;
        }
        buckets += 1;
        let f = s.portfolio_figures(set, b, &Overlay::default(), false)?;
        if f.mm == f.floor {
            at_floor += 1;
        }
        if let Some(j) = f.worst {
            count[j] += 1;
            loss[j] = loss[j].checked_add(f.worst_loss).ok_or(Overflow)?;
        }
    }
    let qd = s.quote_decimals();
    Ok(Some(PortfolioStress {
        set: set.name.to_string(),
        version: set.version,
        buckets,
        at_floor,
        scenarios: set
            .scenarios
            .iter()
            .enumerate()
            .map(|(j, sc)| ScenarioLoad {
                name: sc.name.to_string(),
                worst_for: count[j],
                loss: format_scaled(loss[j], qd),
            })
            .collect(),
    }))
}

/// -E after selling the bucket's other assets at their index less d_max, if positive.
fn closeout_deficit(s: &State, account: AccountId, slot: Slot) -> Result<i128, Overflow> {
    let b = s.bucket(account, slot).ok_or(Overflow)?;
    let quote = s.quote();
    let qd = s.quote_decimals();
    let mut e = Exact::new(b.balance(quote).0, qd);
    let mut d_max = Ratio::ZERO;
    for p in &b.positions {
        let cfg = s.venue.market(p.market);
        d_max = d_max.max(cfg.liq_discount_max);
        // q + sign(s) * n, n the index notional (the model's truncation).
        let n = p
            .size
            .abs()
            .exact(cfg.size_decimals)
            .times(s.mark(p.market))?
            .trunc(qd)?;
        e = e.plus(Exact::new(p.quote.0 + i128::from(p.size.signum()) * n, qd))?;
        e = e.minus(s.funding_owed(p)?)?;
    }
    for (asset, bal) in b.non_quote_assets(quote) {
        let cfg = s.venue.asset(asset);
        let px = Exact::new(i128::from(s.index(asset).unwrap_or(0)), cfg.price_scale);
        let keep = Exact::new(Ratio::ONE.0 - d_max.0, 18);
        e = e.plus(bal.exact(cfg.decimals).times(px)?.times(keep)?)?;
    }
    Ok((-e.floor(qd)?).max(0))
}

/// The fund's quote balance plus its assets at index (floor of the exact sum).
fn insurance_value(s: &State) -> Result<i128, Overflow> {
    let mut v = Exact::ZERO;
    for (i, a) in s.assets.iter().enumerate() {
        if a.insurance_holding.0 == 0 {
            continue;
        }
        let cfg = s.venue.asset(AssetId(i as u16));
        let px = Exact::new(
            i128::from(s.index(AssetId(i as u16)).unwrap_or(0)),
            cfg.price_scale,
        );
        v = v.plus(a.insurance_holding.exact(cfg.decimals).times(px)?)?;
    }
    Ok(s.insurance.0 + v.floor(s.quote_decimals())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deeper_shock_breaches_more_and_lacks_more() {
        let e = crate::engine::example_engine(200);
        let btc = e
            .state
            .venue
            .asset_id(&crate::ids::Symbol::new("BTC").unwrap())
            .unwrap();
        let at = |m: i128| {
            run(
                &e.state,
                &[Shock {
                    asset: btc,
                    change: Ratio(m * 10_000_000_000_000_000),
                }],
                Ratio::ONE,
            )
            .unwrap()
        };
        let calm = at(0);
        let crash = at(-50);
        assert_eq!(calm.breached, 0);
        assert!(crash.breached > calm.breached);
        assert!(!crash.deficit.starts_with('-'));
        // Deterministic: the same question, the same answer.
        assert_eq!(format!("{:?}", at(-50)), format!("{crash:?}"));
        assert!(
            calm.portfolio.is_none(),
            "no scenario set, no portfolio part"
        );
    }

    /// Portfolio buckets: every one with positions is counted once, either at its floor or
    /// under the scenario that binds it, and a breached one names that scenario.
    #[test]
    fn portfolio_buckets_name_the_scenario_that_binds_them() {
        let e = crate::portfolio::tests::venue(7, 300);
        let shock = |name: &str, percent: i128| Shock {
            asset: e
                .state
                .venue
                .asset_id(&crate::ids::Symbol::new(name).unwrap())
                .unwrap(),
            change: Ratio(percent * 10_000_000_000_000_000),
        };
        let shocks = [shock("BTC", -50), shock("ETH", 60), shock("SOL", -70)];
        let r = run(&e.state, &shocks, Ratio::ONE).unwrap();
        let p = r.portfolio.as_ref().expect("a set is in force");
        let bound: usize = p.scenarios.iter().map(|s| s.worst_for).sum();
        assert!(p.buckets > 20, "{p:?}");
        assert!(
            bound <= p.buckets && bound + p.at_floor >= p.buckets,
            "{p:?}"
        );
        assert!(r.breached > 0, "{r:?}");
        for b in &r.worst {
            let acc = e.state.account(crate::ids::AccountId(b.account)).unwrap();
            if !acc.cross.portfolio {
                assert_eq!(b.worst_scenario, None, "{b:?}");
            }
        }
        assert!(r.worst.iter().any(|b| b.worst_scenario.is_some()), "{r:?}");
    }
}
