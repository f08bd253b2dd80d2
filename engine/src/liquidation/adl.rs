//! Auto-deleveraging: the backstop closes a position against the opposite positions of the same
//! market, the most profitable relative to their equity first. Buckets without a position in the
//! market are never charged.

use crate::account::Slot;
use crate::engine::Engine;
use crate::ids::{AccountId, MarketId, Side};
use crate::num::Lots;
use crate::record::{Body, Num};
use ethnum::I256;
use std::cmp::Ordering;

/// A counterparty candidate with its ranking figures.
#[derive(Clone, Copy, Debug)]
struct Counterparty {
    account: AccountId,
    slot: Slot,
    key: (AccountId, u32),
    size: Lots,
    upnl: i128,
    /// max(equity_maint, 1 native unit).
    equity: i128,
}

impl Engine {
    /// Closes the bucket's position in `market` for `notional` quote against counterparties.
    pub(crate) fn adl_close(
        &mut self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        notional: i128,
    ) {
        let Some(size) = self
            .state
            .bucket(account, slot)
            .and_then(|b| b.position(market))
            .map(|p| p.size)
        else {
            return;
        };
        let ranked = self.rank_counterparties(account, slot, market, size);
        match self.plan_side(account, slot, market, Lots(-size.0), notional, 0) {
            Ok(plan) => self.commit_side(&plan),
            Err(_) => {
                debug_assert!(false, "backstop close overflow");
                return;
            }
        }
        let total = size.0.unsigned_abs() as i128;
        let mut remaining = total;
        let mut paid = 0i128;
        for cp in ranked {
            if remaining == 0 {
                break;
            }
            let take = remaining.min(cp.size.0.unsigned_abs() as i128);
            remaining -= take;
            let share = if remaining == 0 {
                notional - paid
            } else {
                crate::num::mul_div(notional, take, total, crate::num::Round::Trunc).unwrap_or(0)
            };
            paid += share;
            let delta = Lots(size.signum() * take as i64);
            match self.plan_side(cp.account, cp.slot, market, delta, share, 0) {
                Ok(plan) => self.commit_side(&plan),
                Err(_) => {
                    debug_assert!(false, "adl counterparty overflow");
                    continue;
                }
            }
            let cfg = self.state.venue.market(market);
            let qd = self.state.quote_decimals();
            let body = Body::Adl {
                account: cp.account,
                bucket: self.bucket_name(cp.slot),
                market: cfg.name,
                side: if delta.0 > 0 { Side::Buy } else { Side::Sell },
                size: Num::new(take, cfg.size_decimals),
                notional: Num::new(share, qd),
                liquidated: account,
            };
            self.emit(body);
        }
        debug_assert_eq!(remaining, 0, "sizes in a market must sum to zero");
    }

    /// Opposite positions of every other bucket, ranked by upnl / max(equity_maint, 1) descending,
    /// ties by (account, bucket).
    fn rank_counterparties(
        &self,
        account: AccountId,
        slot: Slot,
        market: MarketId,
        size: Lots,
    ) -> Vec<Counterparty> {
        let mut out = Vec::new();
        for &(acc, s) in &self.state.markets[market.index()].holders {
            if (acc, s) == (account, slot) {
                continue;
            }
            let Some(bucket) = self.state.bucket(acc, s) else {
                continue;
            };
            let Some(pos) = bucket.position(market) else {
                continue;
            };
            if pos.size.signum() != -size.signum() {
                continue;
            }
            let qd = self.state.quote_decimals();
            let (Ok(upnl), Ok(equity)) = (
                self.state.upnl_exact(pos).and_then(|u| u.floor(qd)),
                self.state.equity_maint(bucket),
            ) else {
                debug_assert!(false, "ranking valuation overflow");
                continue;
            };
            out.push(Counterparty {
                account: acc,
                slot: s,
                key: self.state.pass_key(acc, s),
                size: pos.size,
                upnl,
                equity: equity.max(1),
            });
        }
        out.sort_by(|a, b| {
            // a before b when a.upnl / a.equity > b.upnl / b.equity (equities are positive).
            let lhs = I256::from(a.upnl) * I256::from(b.equity);
            let rhs = I256::from(b.upnl) * I256::from(a.equity);
            match rhs.cmp(&lhs) {
                Ordering::Equal => a.key.cmp(&b.key),
                o => o,
            }
        });
        out
    }
}
