//! The venue's scenario set: validated from a `risk_scenarios` event, in force until the next
//! accepted one replaces it whole (docs/margin-model.md, "Portfolio margin").

use crate::event::RiskScenariosSpec;
use crate::ids::{AssetId, Symbol};
use crate::num::{Dec, Ratio, RATIO_DECIMALS};
use crate::record::Reason;
use crate::reject;
use crate::reject::{scaled, Reject};
use crate::venue::{fmt_ratio, Venue};

/// Most scenarios in a set.
pub const SCENARIOS_MAX: usize = 64;
/// Decimals of a move: parts of 10^9 (so that a collateral term's product fits 256 bits).
pub const MOVE_DECIMALS: u8 = 9;
/// 10^MOVE_DECIMALS.
pub const MOVE_ONE: i64 = 1_000_000_000;
/// The highest version a set may carry.
pub const VERSION_MAX: i128 = i64::MAX as i128;
/// im_factor when the event leaves it out: 1.5.
pub const DEFAULT_IM_FACTOR: Ratio = Ratio(1_500_000_000_000_000_000);

/// One joint move of index prices, weighted.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Scenario {
    pub name: Symbol,
    /// The fraction of the scenario's loss that counts, in (0, 1].
    pub weight: Ratio,
    /// Relative move of each asset's index in parts of 10^9, by asset id; assets past the end
    /// (listed after the set) and the quote move 0.
    pub moves: Vec<i64>,
}

impl Scenario {
    /// The move of an asset in parts of 10^9.
    pub fn move_of(&self, asset: AssetId) -> i64 {
        self.moves.get(asset.index()).copied().unwrap_or(0)
    }
}

/// The scenario set in force.
#[derive(Clone, PartialEq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ScenarioSet {
    pub name: Symbol,
    pub version: u64,
    pub im_factor: Ratio,
    pub le_factor: Ratio,
    /// In the order that breaks ties between equal losses.
    pub scenarios: Vec<Scenario>,
}

impl ScenarioSet {
    /// The name of scenario `j` (a worst scenario's, as reports show it), if any.
    pub fn scenario_name(&self, j: Option<usize>) -> Option<String> {
        j.and_then(|j| self.scenarios.get(j))
            .map(|s| s.name.to_string())
    }

    /// The largest |move| × weight of an asset over the scenarios, in parts of 10^9 (rounded
    /// up): how fast a scenario loss can move per unit of the asset's value.
    pub fn move_max(&self, asset: AssetId) -> i128 {
        self.scenarios
            .iter()
            .map(|s| {
                let r = i128::from(s.move_of(asset).unsigned_abs());
                (r * s.weight.0 + Ratio::ONE.0 - 1) / Ratio::ONE.0
            })
            .max()
            .unwrap_or(0)
    }
}

fn name_of(text: &str, what: &str) -> Result<Symbol, Reject> {
    Symbol::new(text).map_err(|_| {
        reject!(
            Reason::InvalidParams,
            "{what} {text:?} is not 1 to 32 bytes of [A-Za-z0-9._/:-]"
        )
    })
}

fn ratio_field(dec: &Dec, field: &str) -> Result<Ratio, Reject> {
    scaled(dec, RATIO_DECIMALS, Reason::InvalidParams, field).map(Ratio)
}

impl ScenarioSet {
    /// Validates a set against the listed assets, in the contract's order: every unknown asset
    /// first (`unknown_asset`), then the rules of the event alone (`invalid_params`). The
    /// version's rise is the caller's (it needs the set in force).
    pub fn from_spec(spec: &RiskScenariosSpec, venue: &Venue) -> Result<ScenarioSet, Reject> {
        for s in &spec.scenarios {
            for (asset, _) in &s.moves {
                let known = Symbol::new(asset)
                    .ok()
                    .and_then(|a| venue.asset_id(&a))
                    .is_some();
                if !known {
                    return Err(reject!(
                        Reason::UnknownAsset,
                        "scenario {:?} moves unknown asset {asset:?}",
                        s.name
                    ));
                }
            }
        }
        let name = name_of(&spec.name, "set name")?;
        let version = u64::try_from(spec.version)
            .ok()
            .filter(|v| (1..=VERSION_MAX).contains(&i128::from(*v)))
            .ok_or_else(|| {
                reject!(
                    Reason::InvalidParams,
                    "version {} must be within [1, 2^63 - 1]",
                    spec.version
                )
            })?;
        let (im_factor, le_factor) = factors(spec)?;
        if spec.scenarios.is_empty() || spec.scenarios.len() > SCENARIOS_MAX {
            return Err(reject!(
                Reason::InvalidParams,
                "{} scenarios: a set has 1 to {SCENARIOS_MAX}",
                spec.scenarios.len()
            ));
        }
        let mut scenarios: Vec<Scenario> = Vec::with_capacity(spec.scenarios.len());
        for s in &spec.scenarios {
            let scenario = scenario_of(s, venue)?;
            if scenarios.iter().any(|o| o.name == scenario.name) {
                return Err(reject!(
                    Reason::InvalidParams,
                    "scenario name {:?} appears twice",
                    s.name
                ));
            }
            scenarios.push(scenario);
        }
        Ok(ScenarioSet {
            name,
            version,
            im_factor,
            le_factor,
            scenarios,
        })
    }
}

/// (im_factor, le_factor): 1 < im_factor <= 10, 1 <= le_factor <= im_factor, the default
/// le_factor (1 + im_factor) / 2 exact in 18 decimals.
fn factors(spec: &RiskScenariosSpec) -> Result<(Ratio, Ratio), Reject> {
    let one = Ratio::ONE.0;
    let im = match &spec.im_factor {
        Some(d) => ratio_field(d, "im_factor")?,
        None => DEFAULT_IM_FACTOR,
    };
    if im.0 <= one || im.0 > 10 * one {
        return Err(reject!(
            Reason::InvalidParams,
            "im_factor {} must be within (1, 10]",
            fmt_ratio(im)
        ));
    }
    let le = match &spec.le_factor {
        Some(d) => ratio_field(d, "le_factor")?,
        None if (one + im.0) % 2 != 0 => {
            return Err(reject!(
                Reason::InvalidParams,
                "the default le_factor (1 + im_factor) / 2 would need more than 18 decimals"
            ))
        }
        None => Ratio((one + im.0) / 2),
    };
    if le.0 < one || le > im {
        return Err(reject!(
            Reason::InvalidParams,
            "le_factor {} must be within [1, im_factor {}]",
            fmt_ratio(le),
            fmt_ratio(im)
        ));
    }
    Ok((im, le))
}

fn scenario_of(s: &crate::event::ScenarioSpec, venue: &Venue) -> Result<Scenario, Reject> {
    let name = name_of(&s.name, "scenario name")?;
    let weight = ratio_field(&s.weight, "weight")?;
    if weight.0 <= 0 || weight > Ratio::ONE {
        return Err(reject!(
            Reason::InvalidParams,
            "scenario {:?}: weight {} must be within (0, 1]",
            s.name,
            s.weight
        ));
    }
    let mut moves = vec![0i64; venue.assets.len()];
    for (asset, r) in &s.moves {
        let id = Symbol::new(asset)
            .ok()
            .and_then(|a| venue.asset_id(&a))
            .ok_or_else(|| reject!(Reason::UnknownAsset, "unknown asset {asset:?}"))?;
        if venue.asset(id).quote {
            return Err(reject!(
                Reason::InvalidParams,
                "scenario {:?} moves the quote asset {asset} (its price is 1)",
                s.name
            ));
        }
        let v = scaled(r, MOVE_DECIMALS, Reason::InvalidParams, "move")?;
        if v <= -i128::from(MOVE_ONE) || v > 10 * i128::from(MOVE_ONE) {
            return Err(reject!(
                Reason::InvalidParams,
                "scenario {:?}: move {r} of {asset} must be within (-1, 10]",
                s.name
            ));
        }
        moves[id.index()] = v as i64;
    }
    Ok(Scenario {
        name,
        weight,
        moves,
    })
}
