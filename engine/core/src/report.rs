//! The state report of the contract: one JSON object with the venue's funds, prices, markets and
//! every account's figures, values as decimal strings with their asset's full decimals.

use crate::account::{Account, Bucket, Slot};
use crate::health::{Health, Overlay};
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::{format_scaled, format_trimmed, Overflow, RATIO_DECIMALS};
use crate::state::State;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize, Debug)]
pub struct StateReport {
    pub seq: u64,
    pub ts: u64,
    pub insurance_fund: String,
    pub fee_pool: String,
    pub funding_pools: BTreeMap<String, String>,
    pub insurance_assets: BTreeMap<String, String>,
    pub assets: BTreeMap<String, AssetReport>,
    pub markets: BTreeMap<String, MarketReport>,
    pub accounts: Vec<AccountReport>,
    /// The scenario set in force (absent before the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_scenarios: Option<RiskScenariosReport>,
}

#[derive(Serialize, Debug)]
pub struct RiskScenariosReport {
    pub name: String,
    pub version: u64,
    pub im_factor: String,
    pub le_factor: String,
    /// How many scenarios the set has.
    pub scenarios: usize,
}

/// The portfolio figures of an account's cross bucket in portfolio mode.
#[derive(Serialize, Debug)]
pub struct PortfolioReport {
    pub set: String,
    pub version: u64,
    pub floor: String,
    /// The scenario with the largest weighted loss (null when every one is 0).
    pub worst_scenario: Option<String>,
    pub worst_loss: String,
}

#[derive(Serialize, Debug)]
pub struct AssetReport {
    pub index: Option<String>,
    pub stale: bool,
}

#[derive(Serialize, Debug)]
pub struct MarketReport {
    pub open_interest: String,
    pub funding_index: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_fund: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct PositionReport {
    pub market: String,
    pub mode: &'static str,
    pub size: String,
    pub quote: String,
    pub notional: String,
    pub upnl: String,
    /// Null in a portfolio bucket (a position has no requirement of its own there).
    pub im: Option<String>,
    pub mm: Option<String>,
    pub isolated_balance: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct IsolatedReport {
    pub market: String,
    pub balance: String,
    pub equity_init: String,
    pub equity_maint: String,
    pub im: String,
    pub mm: String,
    pub health_init: String,
    pub health_maint: String,
    pub liquidating: bool,
}

#[derive(Serialize, Debug)]
pub struct AccountReport {
    pub account: u64,
    pub balances: BTreeMap<String, String>,
    pub positions: Vec<PositionReport>,
    pub equity_init: String,
    pub equity_maint: String,
    pub im: String,
    pub mm: String,
    pub health_init: String,
    pub health_maint: String,
    pub liquidating: bool,
    pub isolated: Vec<IsolatedReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portfolio: Option<PortfolioReport>,
}

impl State {
    /// The report; `only` restricts the accounts listed to one.
    pub fn report(&self, only: Option<AccountId>) -> Result<StateReport, Overflow> {
        let qd = self.quote_decimals();
        let q = |v: i128| format_scaled(v, qd);
        let mut r = StateReport {
            seq: self.input_seq,
            ts: self.clock_us,
            insurance_fund: q(self.insurance.0),
            fee_pool: q(self.fee_pool.0),
            funding_pools: BTreeMap::new(),
            insurance_assets: BTreeMap::new(),
            assets: BTreeMap::new(),
            markets: BTreeMap::new(),
            accounts: Vec::new(),
            risk_scenarios: self.venue.risk.as_ref().map(|s| RiskScenariosReport {
                name: s.name.to_string(),
                version: s.version,
                im_factor: format_trimmed(s.im_factor.0, RATIO_DECIMALS),
                le_factor: format_trimmed(s.le_factor.0, RATIO_DECIMALS),
                scenarios: s.scenarios.len(),
            }),
        };
        for (i, a) in self.venue.assets.iter().enumerate() {
            let st = &self.assets[i];
            if st.insurance_holding.0 != 0 {
                r.insurance_assets.insert(
                    a.name.to_string(),
                    format_scaled(st.insurance_holding.0, a.decimals),
                );
            }
            if a.quote {
                continue;
            }
            r.assets.insert(
                a.name.to_string(),
                AssetReport {
                    index: st
                        .oracle
                        .index
                        .map(|t| format_scaled(i128::from(t.0), a.price_scale)),
                    stale: self.is_stale(AssetId(i as u16)),
                },
            );
        }
        for (i, m) in self.venue.markets.iter().enumerate() {
            let st = &self.markets[i];
            r.funding_pools
                .insert(m.name.to_string(), q(st.funding_pool.0));
            r.markets.insert(
                m.name.to_string(),
                MarketReport {
                    open_interest: format_scaled(st.open_interest, m.size_decimals),
                    funding_index: format_trimmed(
                        st.funding_index,
                        self.funding_scale(MarketId(i as u16)),
                    ),
                    own_fund: m.own_fund.then(|| q(st.own_fund.0)),
                },
            );
        }
        let mut ids: Vec<AccountId> = match only {
            Some(id) => self.account(id).map(|a| a.id).into_iter().collect(),
            None => self.accounts.iter().map(|a| a.id).collect(),
        };
        ids.sort_unstable();
        for id in ids {
            let acc = self.account(id).expect("listed above");
            r.accounts.push(self.account_report(acc)?);
        }
        Ok(r)
    }

    fn account_report(&self, acc: &Account) -> Result<AccountReport, Overflow> {
        let qd = self.quote_decimals();
        let q = |v: i128| format_scaled(v, qd);
        let h = self.bucket_health(&acc.cross, &Overlay::default())?;
        let mut balances = BTreeMap::new();
        for (i, b) in acc.cross.balances.iter().enumerate() {
            if b.0 != 0 {
                let a = self.venue.asset(AssetId(i as u16));
                balances.insert(a.name.to_string(), format_scaled(b.0, a.decimals));
            }
        }
        let mut positions = Vec::new();
        for slot in acc.slots() {
            let bucket = acc.bucket(slot).expect("slot of the account");
            for p in &bucket.positions {
                positions.push(self.position_report(bucket, slot, p)?);
            }
        }
        positions.sort_by(|a, b| a.market.cmp(&b.market));
        let mut isolated = Vec::new();
        for (m, bucket) in &acc.isolated {
            isolated.push(self.isolated_report(*m, bucket)?);
        }
        isolated.sort_by(|a, b| a.market.cmp(&b.market));
        Ok(AccountReport {
            account: acc.id.0,
            balances,
            positions,
            equity_init: q(h.equity_init),
            equity_maint: q(h.equity_maint),
            im: q(h.im),
            mm: q(h.mm),
            health_init: q(h.health_init()),
            health_maint: q(h.health_maint()),
            liquidating: acc.cross.is_liquidating(),
            isolated,
            portfolio: self.portfolio_report(&acc.cross)?,
        })
    }

    fn portfolio_report(&self, bucket: &Bucket) -> Result<Option<PortfolioReport>, Overflow> {
        let Some(set) = self.portfolio_set(bucket, &Overlay::default()) else {
            return Ok(None);
        };
        let pf = self.portfolio_figures(set, bucket, &Overlay::default(), false)?;
        let qd = self.quote_decimals();
        Ok(Some(PortfolioReport {
            set: set.name.to_string(),
            version: set.version,
            floor: format_scaled(pf.floor, qd),
            worst_scenario: set.scenario_name(pf.worst),
            worst_loss: format_scaled(pf.worst_loss, qd),
        }))
    }

    fn position_report(
        &self,
        bucket: &Bucket,
        slot: Slot,
        p: &crate::account::Position,
    ) -> Result<PositionReport, Overflow> {
        let qd = self.quote_decimals();
        let q = |v: i128| format_scaled(v, qd);
        let cfg = self.venue.market(p.market);
        let v = self.position_value(p)?;
        let own = self.portfolio_set(bucket, &Overlay::default()).is_none();
        Ok(PositionReport {
            market: cfg.name.to_string(),
            mode: match slot {
                Slot::Cross => "cross",
                Slot::Isolated(_) => "isolated",
            },
            size: format_scaled(i128::from(p.size.0), cfg.size_decimals),
            quote: q(p.quote.0),
            notional: q(v.notional),
            upnl: q(v.upnl_maint),
            im: own.then(|| q(v.im)),
            mm: own.then(|| q(v.mm)),
            isolated_balance: match slot {
                Slot::Cross => None,
                Slot::Isolated(_) => Some(q(bucket.balance(self.quote()).0)),
            },
        })
    }

    fn isolated_report(
        &self,
        market: MarketId,
        bucket: &Bucket,
    ) -> Result<IsolatedReport, Overflow> {
        let qd = self.quote_decimals();
        let q = |v: i128| format_scaled(v, qd);
        let h: Health = self.bucket_health(bucket, &Overlay::default())?;
        Ok(IsolatedReport {
            market: self.venue.market(market).name.to_string(),
            balance: q(bucket.balance(self.quote()).0),
            equity_init: q(h.equity_init),
            equity_maint: q(h.equity_maint),
            im: q(h.im),
            mm: q(h.mm),
            health_init: q(h.health_init()),
            health_maint: q(h.health_maint()),
            liquidating: bucket.is_liquidating(),
        })
    }
}
