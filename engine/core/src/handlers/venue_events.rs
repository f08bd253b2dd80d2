//! Venue set-up: `asset`, `market`, `params`, `insurance`.

use crate::engine::Engine;
use crate::event::{AssetSpec, MarketSpec, ParamsSpec, RiskScenariosSpec};
use crate::ids::{AssetId, MarketId, Symbol};
use crate::limits::{AMOUNT_MAX, ASSETS_MAX, BALANCE_MAX, MARKETS_MAX};
use crate::num::{Dec, Native, Ratio};
use crate::oracle::OracleState;
use crate::portfolio::ScenarioSet;
use crate::record::{Body, Cause, Num, Reason};
use crate::reject;
use crate::reject::{positive, Reject};
use crate::state::{AssetState, MarketState};
use crate::venue::{AssetConfig, MarketConfig, MarketContext};

impl Engine {
    pub(crate) fn on_asset(&mut self, spec: &AssetSpec) -> Result<(), Reject> {
        let venue = &self.state.venue;
        if venue.asset_id(&spec.asset).is_some() {
            return Err(reject!(
                Reason::InvalidParams,
                "asset {} is already listed (use params to change it)",
                spec.asset
            ));
        }
        if spec.quote && venue.quote.is_some() {
            return Err(reject!(
                Reason::InvalidParams,
                "a quote asset is already listed; exactly one asset is the quote"
            ));
        }
        if venue.assets.len() >= ASSETS_MAX {
            return Err(reject!(
                Reason::InvalidParams,
                "at most {ASSETS_MAX} assets"
            ));
        }
        let cfg = AssetConfig::from_spec(spec)?;
        let id = AssetId(venue.assets.len() as u16);
        let oracle = cfg
            .oracle
            .as_ref()
            .map(OracleState::new)
            .unwrap_or_default();
        if cfg.quote {
            self.state.venue.quote = Some(id);
        }
        self.state.venue.assets.push(cfg);
        self.state.assets.push(AssetState {
            oracle,
            ..AssetState::default()
        });
        Ok(())
    }

    pub(crate) fn on_market(&mut self, spec: &MarketSpec) -> Result<(), Reject> {
        let venue = &self.state.venue;
        let base_id = venue
            .asset_id(&spec.base)
            .ok_or_else(|| reject!(Reason::UnknownAsset, "unknown base asset {}", spec.base))?;
        let qd = venue.quote_decimals();
        MarketConfig::check_amounts(&spec.params, qd)?;
        if venue.quote.is_none() {
            return Err(reject!(
                Reason::InvalidParams,
                "list the quote asset before any market"
            ));
        }
        if venue.market_id(&spec.market).is_some() {
            return Err(reject!(
                Reason::InvalidParams,
                "market {} is already listed (use params to change it)",
                spec.market
            ));
        }
        if venue.markets.len() >= MARKETS_MAX {
            return Err(reject!(
                Reason::InvalidParams,
                "at most {MARKETS_MAX} markets"
            ));
        }
        let base = venue.asset(base_id);
        if base.quote {
            return Err(reject!(
                Reason::InvalidParams,
                "the base of market {} cannot be the quote asset",
                spec.market
            ));
        }
        let ctx = MarketContext {
            base_id,
            base,
            quote_decimals: qd,
        };
        let cfg = MarketConfig::from_spec(spec, &ctx)?;
        self.state.venue.push_market(cfg);
        self.state.markets.push(MarketState {
            fraction_scale: Ratio::ONE.0,
            fraction_target: Ratio::ONE.0,
            fraction_from: Ratio::ONE.0,
            ..MarketState::default()
        });
        self.state.rerank_markets();
        Ok(())
    }

    pub(crate) fn on_params(&mut self, spec: &ParamsSpec) -> Result<(), Reject> {
        match spec {
            ParamsSpec::Asset { asset, params } => {
                let id = self.asset_id(asset)?;
                let next = self.state.venue.asset(id).with_params(params)?;
                if let Some(cfg) = &next.oracle {
                    self.state.assets[id.index()].oracle.resize(cfg);
                }
                self.state.venue.assets[id.index()] = next;
                // Valuations key on the epoch (the memo, band rates): move it with the change.
                self.state.venue_epoch += 1;
                self.moved_assets.push(id);
                self.push_markets_on(id);
            }
            ParamsSpec::Market { market, params } => {
                let id = self.market_id(market)?;
                let qd = self.state.quote_decimals();
                MarketConfig::check_amounts(params, qd)?;
                let next = self.state.venue.market(id).with_params(params, qd)?;
                self.change_market_config(id, next);
                self.moved_markets.push(id);
            }
        }
        Ok(())
    }

    /// A new scenario set: validated whole, its version above the one in force, then in force
    /// at once. Every bucket exposed to any asset is looked at by this event's passes (a
    /// portfolio bucket's requirement may have moved either way).
    pub(crate) fn on_risk_scenarios(&mut self, spec: &RiskScenariosSpec) -> Result<(), Reject> {
        let set = ScenarioSet::from_spec(spec, &self.state.venue)?;
        if let Some(cur) = &self.state.venue.risk {
            if set.version <= cur.version {
                return Err(reject!(
                    Reason::InvalidParams,
                    "version {} does not rise above {} of the set in force ({})",
                    set.version,
                    cur.version,
                    cur.name
                ));
            }
        }
        self.state.venue.risk = Some(set);
        for i in 0..self.state.venue.assets.len() {
            let id = AssetId(i as u16);
            if !self.state.venue.asset(id).quote {
                self.moved_assets.push(id);
            }
        }
        Ok(())
    }

    pub(crate) fn on_insurance(
        &mut self,
        amount: &Dec,
        market: Option<&Symbol>,
    ) -> Result<(), Reject> {
        let quote = self
            .state
            .venue
            .quote
            .ok_or_else(|| reject!(Reason::UnknownAsset, "no quote asset is listed yet"))?;
        let qd = self.state.venue.asset(quote).decimals;
        let market = market.map(|m| self.market_id(m)).transpose()?;
        let v = positive(amount, qd, AMOUNT_MAX, Reason::InvalidAmount, "amount")?;
        let topups = self.state.topups.checked_add(v);
        match market {
            None => {
                let next = self
                    .state
                    .insurance
                    .0
                    .checked_add(v)
                    .filter(|x| *x <= BALANCE_MAX);
                let (Some(next), Some(topups)) = (next, topups) else {
                    return Err(reject!(
                        Reason::InvalidAmount,
                        "insurance fund would overflow"
                    ));
                };
                self.state.topups = topups;
                self.set_insurance(Native(next), Cause::TopUp);
            }
            Some(m) => {
                if !self.state.venue.market(m).own_fund {
                    return Err(reject!(
                        Reason::InvalidParams,
                        "market {} has no fund of its own (own_fund)",
                        self.state.venue.market(m).name
                    ));
                }
                let fund = self.state.markets[m.index()].own_fund.0;
                let next = fund.checked_add(v).filter(|x| *x <= BALANCE_MAX);
                let (Some(next), Some(topups)) = (next, topups) else {
                    return Err(reject!(
                        Reason::InvalidAmount,
                        "insurance fund would overflow"
                    ));
                };
                self.state.topups = topups;
                self.set_market_fund(m, Native(next), Cause::TopUp);
            }
        }
        Ok(())
    }

    /// Moves a market's own fund (already checked) and records it.
    pub(crate) fn set_market_fund(&mut self, market: MarketId, value: Native, cause: Cause) {
        let ms = &mut self.state.markets[market.index()];
        let old = ms.own_fund;
        if old == value {
            return;
        }
        ms.own_fund = value;
        let quote = self.state.quote();
        self.state.ledger.held(quote, value.0 - old.0);
        let qd = self.state.quote_decimals();
        self.emit(Body::Insurance {
            market: Some(self.state.venue.market(market).name),
            fund: Num::new(value.0, qd),
            delta: Num::new(value.0 - old.0, qd),
            cause,
        });
    }

    pub(crate) fn asset_id(&self, name: &Symbol) -> Result<AssetId, Reject> {
        self.state
            .venue
            .asset_id(name)
            .ok_or_else(|| reject!(Reason::UnknownAsset, "unknown asset {name}"))
    }

    pub(crate) fn market_id(&self, name: &Symbol) -> Result<MarketId, Reject> {
        self.state
            .venue
            .market_id(name)
            .ok_or_else(|| reject!(Reason::UnknownMarket, "unknown market {name}"))
    }

    /// Marks every market whose base is `asset` as moved (no allocation).
    pub(crate) fn push_markets_on(&mut self, asset: AssetId) {
        for (i, m) in self.state.venue.markets.iter().enumerate() {
            if m.base == asset {
                self.moved_markets.push(MarketId(i as u16));
            }
        }
    }
}
