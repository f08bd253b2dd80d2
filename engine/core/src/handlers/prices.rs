//! Prices and funding: `oracle` and `funding`.

use crate::engine::Engine;
use crate::ids::Symbol;
use crate::num::{Dec, RATIO_DECIMALS};
use crate::record::{Body, Num, Reason};
use crate::reject;
use crate::reject::{scaled, Reject};

impl Engine {
    pub(crate) fn on_oracle(
        &mut self,
        asset: &Symbol,
        source: u64,
        price: &Dec,
    ) -> Result<(), Reject> {
        let id = self.asset_id(asset)?;
        let cfg = self.state.venue.asset(id);
        let ticks = if cfg.quote {
            None
        } else {
            Some(self.ticks_of(cfg, price)?)
        };
        let (Some(ticks), Some(oracle)) = (ticks, cfg.oracle.as_ref()) else {
            return Err(reject!(
                Reason::InvalidParams,
                "{asset} is the quote asset: its price is 1"
            ));
        };
        if source >= u64::from(oracle.sources) {
            return Err(reject!(
                Reason::InvalidParams,
                "source {source} of {asset} must be within [0, {})",
                oracle.sources
            ));
        }
        let before = self.state.assets[id.index()].oracle.index;
        let clock = self.state.clock_us;
        let cfg = self.state.venue.assets[id.index()].clone();
        let update =
            self.state.assets[id.index()]
                .oracle
                .update(&cfg, source as usize, ticks, clock);
        let Some(index) = update.index else {
            return Ok(()); // too few fresh sources: the index keeps its last value
        };
        if before != Some(index) {
            // Before anything values a bucket at the new index.
            self.state.moved_prices();
        }
        for (src, p) in update.outliers() {
            self.emit(Body::OracleOutlier {
                asset: cfg.name,
                source: *src,
                price: Num::new(i128::from(p.0), cfg.price_scale),
            });
        }
        let volatile = self.on_index_print(id, before.map(|t| t.0), index.0);
        self.emit(Body::Index {
            asset: cfg.name,
            index: Num::new(i128::from(index.0), cfg.price_scale),
            sources: update.kept,
            volatile,
        });
        if before != Some(index) {
            self.ticked_assets.push(id);
        }
        Ok(())
    }

    pub(crate) fn on_funding(&mut self, market: &Symbol, rate: &Dec) -> Result<(), Reject> {
        let id = self.market_id(market)?;
        let r = scaled(rate, RATIO_DECIMALS, Reason::InvalidParams, "rate")?;
        let cfg = self.state.venue.market(id);
        if r.unsigned_abs() > cfg.funding_rate_cap.0.unsigned_abs() {
            return Err(reject!(
                Reason::InvalidParams,
                "funding rate {rate} is beyond the cap {}",
                crate::venue::fmt_ratio(cfg.funding_rate_cap)
            ));
        }
        let base = cfg.base;
        let Some(m) = self.state.index(base) else {
            return Err(reject!(
                Reason::OracleStale,
                "{} has never had an index",
                self.state.venue.asset(base).name
            ));
        };
        let ms = &self.state.markets[id.index()];
        let next = r
            .checked_mul(i128::from(m))
            .and_then(|d| ms.funding_index.checked_add(d))
            .ok_or_else(|| {
                reject!(
                    Reason::InvalidAmount,
                    "funding index of {market} would overflow"
                )
            })?;
        self.state.markets[id.index()].funding_index = next;
        self.state.moved_prices();
        let scale = self.state.funding_scale(id);
        let ps = self.state.venue.asset(base).price_scale;
        self.emit(Body::Funding {
            market: *market,
            rate: Num::new(r, RATIO_DECIMALS),
            index_price: Num::new(i128::from(m), ps),
            funding_index: Num::new(next, scale),
        });
        self.funded_markets.push(id);
        Ok(())
    }

    /// Emits `oracle_stale` records for assets whose staleness changed since last reported.
    pub(crate) fn report_staleness(&mut self) {
        for i in 0..self.state.assets.len() {
            let id = crate::ids::AssetId(i as u16);
            let Some(cfg) = self.state.venue.asset(id).oracle.as_ref() else {
                continue;
            };
            let oracle = &self.state.assets[i].oracle;
            let stale = oracle.is_stale(cfg, self.state.clock_us);
            if stale != oracle.stale_reported {
                self.state.assets[i].oracle.stale_reported = stale;
                let name = self.state.venue.asset(id).name;
                self.emit(Body::OracleStale { asset: name, stale });
            }
        }
    }
}
