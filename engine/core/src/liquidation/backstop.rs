//! The backstop (rule 3) and bad-debt settlement (rule 4): the engine closes out a bucket itself
//! when its auction ran out or its equity is gone, selling its other assets to the insurance fund,
//! drawing on the fund, and leaving what the fund cannot cover to the counterparties.

use crate::account::Slot;
use crate::engine::Engine;
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::{Exact, Lots, Native, Overflow, Ratio, RATIO_DECIMALS};
use crate::record::{Body, Cause, Num};
use crate::scratch::Closing;

impl Engine {
    /// Rule 3: closes every position of the bucket in one step.
    pub(crate) fn backstop(&mut self, account: AccountId, slot: Slot) {
        self.settle_bucket_funding(account, slot);
        let mut closings = std::mem::take(&mut self.backstop.closings);
        let Ok(e) = self.index_closeout(account, slot, &mut closings) else {
            debug_assert!(false, "backstop valuation overflow");
            self.backstop.closings = closings;
            return;
        };
        let d_max = self.bucket_discount_max(account, slot);
        let mut e = e;
        if e < 0 {
            e += self.sell_assets_to_fund(account, slot, -e, d_max);
        }
        let mut deficit = (0, 0, 0);
        if e < 0 {
            let cover = self.fund_cover(slot, -e);
            let socialized = -e - cover;
            allocate_loss(&mut closings, socialized);
            deficit = (-e, cover, socialized);
        }
        for c in &closings {
            self.adl_close(account, slot, c.market, c.notional);
        }
        self.backstop.closings = closings;
        self.cancel_bucket_orders(account, slot);
        if e < 0 {
            self.draw_fund(account, slot, deficit.1, Cause::Backstop);
            let qd = self.state.quote_decimals();
            let bucket = self.bucket_name(slot);
            self.emit(Body::Bankruptcy {
                account,
                bucket,
                deficit: Num::new(deficit.0, qd),
                insurance: Num::new(deficit.1, qd),
                socialized: Num::new(deficit.2, qd),
            });
        }
        self.mark_dirty(account, slot);
    }

    /// Rule 4: a bucket without positions whose equity is negative is settled at once.
    pub(crate) fn settle_bad_debt(&mut self, account: AccountId, slot: Slot) {
        let quote = self.state.quote();
        let Some(bucket) = self.state.bucket(account, slot) else {
            return;
        };
        let owed = -bucket.balance(quote).0;
        if owed <= 0 {
            return;
        }
        let d_max = self.bucket_discount_max(account, slot);
        let proceeds = self.sell_assets_to_fund(account, slot, owed, d_max);
        let left = (owed - proceeds).max(0);
        // With no position left there is nobody to deleverage: the fund pays in full, and may
        // go negative (visibly; withdrawals freeze while the venue fund is).
        self.draw_fund(account, slot, left, Cause::BadDebt);
        let qd = self.state.quote_decimals();
        let bucket = self.bucket_name(slot);
        self.emit(Body::Bankruptcy {
            account,
            bucket,
            deficit: Num::new(owed, qd),
            insurance: Num::new(left, qd),
            socialized: Num::new(0, qd),
        });
        self.mark_dirty(account, slot);
    }

    /// Settles the funding of every position of a bucket (step 3a).
    fn settle_bucket_funding(&mut self, account: AccountId, slot: Slot) {
        // A zero-lot trade never opens or closes a position, so the indices stay put.
        for i in 0.. {
            let Some(m) = self
                .state
                .bucket(account, slot)
                .and_then(|b| b.positions.get(i))
                .map(|p| p.market)
            else {
                break;
            };
            // A zero-lot trade settles funding and changes nothing else.
            match self.plan_side(account, slot, m, Lots::ZERO, 0, 0) {
                Ok(plan) => self.commit_side(&plan),
                Err(_) => debug_assert!(false, "funding settlement overflow"),
            }
        }
    }

    /// n_j for each position (into `closings`, in market-name order) and E, the quote balance
    /// if everything closed at the index.
    fn index_closeout(
        &self,
        account: AccountId,
        slot: Slot,
        closings: &mut Vec<Closing>,
    ) -> Result<i128, Overflow> {
        let bucket = self.state.bucket(account, slot).ok_or(Overflow)?;
        let quote = self.state.quote();
        let mut e = bucket.balance(quote).0;
        closings.clear();
        for p in &bucket.positions {
            let m = self
                .state
                .index(self.state.venue.market(p.market).base)
                .unwrap_or(0);
            let n = self.fill_notional(p.market, p.size.abs(), crate::num::Ticks(m))?;
            e = e
                .checked_add(p.quote.0)
                .and_then(|e| e.checked_add(i128::from(p.size.signum()) * n))
                .ok_or(Overflow)?;
            closings.push(Closing {
                market: p.market,
                size: p.size,
                notional: n,
                share: 0,
            });
        }
        let ranks = &self.state.market_rank;
        // Market ranks are distinct, so the unstable sort is exact.
        closings.sort_unstable_by_key(|c| ranks[c.market.index()]);
        Ok(e)
    }

    /// d_max: the largest `liq_discount_max` of the bucket's markets.
    fn bucket_discount_max(&self, account: AccountId, slot: Slot) -> Ratio {
        let Some(bucket) = self.state.bucket(account, slot) else {
            return Ratio::ZERO;
        };
        let from_positions = bucket
            .positions
            .iter()
            .map(|p| self.state.venue.market(p.market).liq_discount_max)
            .max();
        match (from_positions, slot) {
            (Some(d), _) => d,
            (None, Slot::Isolated(m)) => self.state.venue.market(m).liq_discount_max,
            (None, Slot::Cross) => Ratio::ZERO,
        }
    }

    /// Sells the bucket's non-quote assets to the fund at (1 - d_max) of their index, in name
    /// order, until `missing` quote is covered; returns the proceeds credited to the bucket.
    fn sell_assets_to_fund(
        &mut self,
        account: AccountId,
        slot: Slot,
        missing: i128,
        d_max: Ratio,
    ) -> i128 {
        let quote = self.state.quote();
        let Some(bucket) = self.state.bucket(account, slot) else {
            return 0;
        };
        let mut held = std::mem::take(&mut self.backstop.held);
        held.clear();
        held.extend(bucket.non_quote_assets(quote).filter(|(_, b)| b.0 > 0));
        // Asset names are distinct, so the unstable sort is exact.
        held.sort_unstable_by_key(|(a, _)| self.state.venue.asset(*a).name);
        let mut total = 0i128;
        for &(asset, balance) in &held {
            let still = missing - total;
            if still <= 0 {
                break;
            }
            let Ok((amount, proceeds)) = self.sale(asset, balance, still, d_max) else {
                debug_assert!(false, "asset sale overflow");
                continue;
            };
            if amount.0 == 0 {
                continue;
            }
            self.transfer_asset_to_fund(account, slot, asset, balance, amount, proceeds);
            total += proceeds;
        }
        self.backstop.held = held;
        total
    }

    /// The smallest amount of `balance` whose proceeds cover `missing`, or all of it; and the
    /// proceeds floor(a / 10^d * P * (1 - d_max)).
    fn sale(
        &self,
        asset: AssetId,
        balance: Native,
        missing: i128,
        d_max: Ratio,
    ) -> Result<(Native, i128), Overflow> {
        let cfg = self.state.venue.asset(asset);
        let qd = self.state.quote_decimals();
        let price = Exact::new(
            i128::from(self.state.index(asset).unwrap_or(0)),
            cfg.price_scale,
        );
        let keep = Exact::new(Ratio::ONE.0 - d_max.0, RATIO_DECIMALS);
        let unit = price.times(keep)?; // quote per unit of the asset
        let proceeds = |a: i128| -> Result<i128, Overflow> {
            Exact::new(a, cfg.decimals).times(unit)?.floor(qd)
        };
        let all = proceeds(balance.0)?;
        if all <= missing || unit.is_zero() {
            return Ok((balance, all));
        }
        // floor(a * unit) >= missing  <=>  a * unit >= missing  <=>  a >= missing / unit.
        let need = Exact::new(missing, qd);
        let mut a = div_exact_ceil(need, unit, cfg.decimals)?;
        a = a.min(balance.0);
        Ok((Native(a), proceeds(a)?))
    }

    fn transfer_asset_to_fund(
        &mut self,
        account: AccountId,
        slot: Slot,
        asset: AssetId,
        balance: Native,
        amount: Native,
        proceeds: i128,
    ) {
        let quote = self.state.quote();
        self.set_balance(
            account,
            slot,
            asset,
            Native(balance.0 - amount.0),
            Cause::AssetSale,
        );
        let q = self
            .state
            .bucket(account, slot)
            .map_or(0, |b| b.balance(quote).0);
        self.set_balance(account, slot, quote, Native(q + proceeds), Cause::AssetSale);
        let holding = &mut self.state.assets[asset.index()].insurance_holding;
        holding.0 += amount.0;
        self.state.ledger.held(asset, amount.0);
        let (name, d, now) = (
            self.state.venue.asset(asset).name,
            self.state.venue.asset(asset).decimals,
            holding.0,
        );
        self.emit(Body::InsuranceAsset {
            asset: name,
            holding: Num::new(now, d),
            delta: Num::new(amount.0, d),
        });
        let fund = self.state.insurance.0 - proceeds;
        self.set_insurance(Native(fund), Cause::AssetSale);
    }

    /// Which fund stands behind a bucket: an isolated bucket of a market with its own fund is
    /// covered by that fund only (its risk stays in the market); every other bucket by the
    /// venue fund, within the market's `insurance_cap` for an isolated bucket.
    fn fund_of(&self, slot: Slot) -> (Option<MarketId>, Option<i128>) {
        match slot {
            Slot::Isolated(m) => {
                let cfg = self.state.venue.market(m);
                if cfg.own_fund {
                    (Some(m), None)
                } else {
                    let paid = self.state.markets[m.index()].insurance_paid.0;
                    (None, cfg.insurance_cap.map(|cap| (cap.0 - paid).max(0)))
                }
            }
            Slot::Cross => (None, None),
        }
    }

    /// C = min(-E, max(0, V)), V the fund's quote plus its assets at index (and within a cap).
    fn fund_cover(&self, slot: Slot, deficit: i128) -> i128 {
        match self.fund_of(slot) {
            (Some(m), _) => deficit.min(self.state.markets[m.index()].own_fund.0.max(0)),
            (None, cap) => {
                let v = self.insurance_value().unwrap_or(0);
                deficit.min(v.max(0)).min(cap.unwrap_or(i128::MAX))
            }
        }
    }

    /// Takes `amount` from the bucket's fund (may go negative) into its quote balance.
    fn draw_fund(&mut self, account: AccountId, slot: Slot, amount: i128, cause: Cause) {
        if amount == 0 {
            return;
        }
        let quote = self.state.quote();
        match self.fund_of(slot) {
            (Some(m), _) => {
                let fund = self.state.markets[m.index()].own_fund.0 - amount;
                self.set_market_fund(m, Native(fund), cause);
            }
            (None, _) => {
                let fund = self.state.insurance.0 - amount;
                self.set_insurance(Native(fund), cause);
                if let Slot::Isolated(m) = slot {
                    self.state.markets[m.index()].insurance_paid.0 += amount;
                }
            }
        }
        let bal = self
            .state
            .bucket(account, slot)
            .map_or(0, |b| b.balance(quote).0);
        self.set_balance(account, slot, quote, Native(bal + amount), cause);
    }
}

/// The smallest integer a (native units at `decimals`) with a / 10^decimals * unit >= need.
fn div_exact_ceil(need: Exact, unit: Exact, decimals: u8) -> Result<i128, Overflow> {
    use crate::num::exact::{div_round, pow10};
    use crate::num::Round;
    // a >= need / unit * 10^decimals; bring both to integers over a common scale.
    let scale = need.scale().max(unit.scale());
    let n = need.rescale(scale)?.mantissa();
    let u = unit.rescale(scale)?.mantissa();
    let num = n.checked_mul(pow10(decimals)?).ok_or(Overflow)?;
    let a = div_round(num, u, Round::Ceil)?;
    i128::try_from(a).map_err(|_| Overflow)
}

/// Spreads U over the positions in proportion to n_j (floor), the remainder to the largest n_j
/// (ties by market name), all of it to the first market when every n_j is 0. A long is then
/// sold for n_j + U_j, a short bought back for n_j - U_j.
fn allocate_loss(closings: &mut [Closing], u: i128) {
    if closings.is_empty() || u == 0 {
        return;
    }
    let total: i128 = closings.iter().map(|c| c.notional).sum();
    if total == 0 {
        closings[0].share = u;
    } else {
        for c in closings.iter_mut() {
            c.share =
                crate::num::mul_div(u, c.notional, total, crate::num::Round::Floor).unwrap_or(0);
        }
        let rest = u - closings.iter().map(|c| c.share).sum::<i128>();
        // closings are in market-name order, so the first maximum is the name tie-break.
        let mut best = 0;
        for (i, c) in closings.iter().enumerate() {
            if c.notional > closings[best].notional {
                best = i;
            }
        }
        closings[best].share += rest;
    }
    for c in closings.iter_mut() {
        c.notional += if c.size.0 > 0 { c.share } else { -c.share };
    }
}
