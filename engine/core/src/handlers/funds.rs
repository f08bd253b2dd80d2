//! Account funds: `deposit`, `withdraw`, `margin_mode`, `isolate`.

use crate::account::{Bucket, Slot};
use crate::engine::Engine;
use crate::health::Overlay;
use crate::ids::{AccountId, AssetId, MarginMode, Symbol};
use crate::limits::{ACCOUNTS_MAX, AMOUNT_MAX, BALANCE_MAX};
use crate::num::{Dec, Exact, Native, Overflow};
use crate::record::{Cause, Reason};
use crate::reject;
use crate::reject::{scaled, Reject};

impl Engine {
    pub(crate) fn on_deposit(
        &mut self,
        account: AccountId,
        asset: &Symbol,
        amount: &Dec,
    ) -> Result<(), Reject> {
        let asset = self.asset_id(asset)?;
        let amount = self.amount_of(asset, amount)?;
        if amount.0 <= 0 {
            return Err(reject!(
                Reason::InvalidAmount,
                "deposit amount must be positive"
            ));
        }
        self.check_room_for(account)?;
        let old = self
            .state
            .bucket(account, Slot::Cross)
            .map_or(Native::ZERO, |b| b.balance(asset));
        let deposited = self.state.assets[asset.index()]
            .deposited
            .checked_add(amount.0);
        let next = old.0.checked_add(amount.0).filter(|v| *v <= BALANCE_MAX);
        let (Some(next), Some(deposited)) = (next, deposited) else {
            return Err(reject!(
                Reason::InvalidAmount,
                "balance would exceed the limit"
            ));
        };
        self.state.account_or_create(account);
        self.state.assets[asset.index()].deposited = deposited;
        self.set_balance(account, Slot::Cross, asset, Native(next), Cause::Deposit);
        Ok(())
    }

    pub(crate) fn on_withdraw(
        &mut self,
        account: AccountId,
        asset: &Symbol,
        amount: &Dec,
    ) -> Result<(), Reject> {
        let asset = self.asset_id(asset)?;
        let amount = self.amount_of(asset, amount)?;
        if amount.0 <= 0 {
            return Err(reject!(
                Reason::InvalidAmount,
                "withdrawal amount must be positive"
            ));
        }
        let next = self.check_take_from_cross(account, asset, amount, "withdrawal")?;
        self.state.assets[asset.index()].withdrawn += amount.0;
        self.set_balance(account, Slot::Cross, asset, next, Cause::Withdraw);
        Ok(())
    }

    pub(crate) fn on_margin_mode(
        &mut self,
        account: AccountId,
        market: &Symbol,
        mode: MarginMode,
    ) -> Result<(), Reject> {
        let market = self.market_id(market)?;
        let acc = self.account_checked(account)?;
        let slot = acc.slot_for(market);
        let bucket = acc.bucket_for(market);
        if !bucket.size(market).is_zero() || bucket.order_sums(market).count > 0 {
            return Err(reject!(
                Reason::InvalidParams,
                "margin_mode needs no position and no open order in {}",
                self.state.venue.market(market).name
            ));
        }
        match (slot, mode) {
            (Slot::Cross, MarginMode::Isolated) => {
                let acc = self.state.account_mut(account).expect("checked above");
                let i = acc
                    .isolated
                    .binary_search_by_key(&market, |b| b.0)
                    .unwrap_err();
                acc.isolated.insert(i, (market, Bucket::default()));
            }
            (Slot::Isolated(_), MarginMode::Cross) => self.close_isolated(account, market),
            _ => {} // already in that mode
        }
        Ok(())
    }

    /// The bucket form of `margin_mode`: the cross bucket margined as a portfolio or standard.
    /// No value moves; the checks are the contract's, in its order.
    pub(crate) fn on_cross_mode(
        &mut self,
        account: AccountId,
        portfolio: bool,
    ) -> Result<(), Reject> {
        let acc = self.account_checked(account)?;
        let bucket = &acc.cross;
        if bucket.portfolio == portfolio {
            return Ok(()); // already in that mode
        }
        if portfolio && self.state.venue.risk.is_none() {
            return Err(reject!(
                Reason::InvalidParams,
                "portfolio margin needs a scenario set (risk_scenarios) in force"
            ));
        }
        if bucket.is_liquidating() {
            return Err(reject!(
                Reason::Liquidating,
                "account {account} is in liquidation"
            ));
        }
        self.check_cross_fresh(bucket)?;
        let overlay = Overlay {
            portfolio: Some(portfolio),
            ..Overlay::default()
        };
        let what = if portfolio {
            "the switch to portfolio margin"
        } else {
            "the switch to standard margin"
        };
        self.check_health_init(bucket, &overlay, what)?;
        let acc = self.state.account_mut(account).expect("checked above");
        acc.cross.portfolio = portfolio;
        // Its mm and LE changed: the passes look at it and its bands are redrawn.
        self.mark_dirty(account, Slot::Cross);
        Ok(())
    }

    /// Returns an isolated bucket's quote to the cross bucket and removes the bucket.
    fn close_isolated(&mut self, account: AccountId, market: crate::ids::MarketId) {
        let quote = self.state.quote();
        let slot = Slot::Isolated(market);
        let iso = self
            .state
            .bucket(account, slot)
            .map_or(Native::ZERO, |b| b.balance(quote));
        let cross = self
            .state
            .bucket(account, Slot::Cross)
            .map_or(Native::ZERO, |b| b.balance(quote));
        if iso.0 != 0 {
            self.set_balance(account, slot, quote, Native::ZERO, Cause::Transfer);
            self.set_balance(
                account,
                Slot::Cross,
                quote,
                Native(cross.0 + iso.0),
                Cause::Transfer,
            );
        }
        self.state.liquidating.remove(&(account, slot));
        let acc = self
            .state
            .account_mut(account)
            .expect("caller checked the account");
        if let Ok(i) = acc.isolated.binary_search_by_key(&market, |b| b.0) {
            acc.isolated.remove(i);
        }
    }

    pub(crate) fn on_isolate(
        &mut self,
        account: AccountId,
        market: &Symbol,
        amount: &Dec,
    ) -> Result<(), Reject> {
        let market = self.market_id(market)?;
        let quote = self.state.quote();
        let amount = Native(scaled(
            amount,
            self.state.quote_decimals(),
            Reason::InvalidAmount,
            "amount",
        )?);
        if amount.0 == 0 || amount.0.unsigned_abs() > AMOUNT_MAX.unsigned_abs() {
            return Err(reject!(
                Reason::InvalidAmount,
                "isolate amount must be non-zero and within the limit"
            ));
        }
        let acc = self.account_checked(account)?;
        let slot = Slot::Isolated(market);
        let Some(iso) = acc.bucket(slot) else {
            return Err(reject!(
                Reason::InvalidParams,
                "market {} is not in isolated mode for account {account}",
                self.state.venue.market(market).name
            ));
        };
        if amount.0 > 0 {
            let cross_next = self.check_take_from_cross(account, quote, amount, "isolate")?;
            let iso_next = iso
                .balance(quote)
                .0
                .checked_add(amount.0)
                .filter(|v| *v <= BALANCE_MAX);
            let iso_next = iso_next.ok_or_else(|| {
                reject!(
                    Reason::InvalidAmount,
                    "isolated balance would exceed the limit"
                )
            })?;
            self.set_balance(account, Slot::Cross, quote, cross_next, Cause::Transfer);
            self.set_balance(account, slot, quote, Native(iso_next), Cause::Transfer);
        } else {
            let back = Native(-amount.0);
            let iso_next = self.check_take_from_isolated(account, market, iso, back)?;
            let cross = self
                .state
                .bucket(account, Slot::Cross)
                .map_or(Native::ZERO, |b| b.balance(quote));
            let cross_next = cross.0.checked_add(back.0).filter(|v| *v <= BALANCE_MAX);
            let cross_next = cross_next.ok_or_else(|| {
                reject!(
                    Reason::InvalidAmount,
                    "cross balance would exceed the limit"
                )
            })?;
            self.set_balance(account, slot, quote, iso_next, Cause::Transfer);
            self.set_balance(
                account,
                Slot::Cross,
                quote,
                Native(cross_next),
                Cause::Transfer,
            );
        }
        Ok(())
    }

    /// The checks of taking `amount` of `asset` out of the cross bucket, in the contract's order;
    /// returns the balance after.
    pub(crate) fn check_take_from_cross(
        &self,
        account: AccountId,
        asset: AssetId,
        amount: Native,
        what: &str,
    ) -> Result<Native, Reject> {
        let acc = self.account_checked(account)?;
        let bucket = &acc.cross;
        if bucket.is_liquidating() {
            return Err(reject!(
                Reason::Liquidating,
                "account {account} is in liquidation"
            ));
        }
        self.check_not_frozen()?;
        let old = bucket.balance(asset);
        let next = Native(old.0 - amount.0);
        if next.0 < 0 {
            return Err(reject!(
                Reason::InsufficientBalance,
                "{what} of {} {} exceeds the balance {}",
                crate::num::Scaled(amount.0, self.state.venue.asset(asset).decimals),
                self.state.venue.asset(asset).name,
                crate::num::Scaled(old.0, self.state.venue.asset(asset).decimals)
            ));
        }
        self.check_cross_fresh(bucket)?;
        let overlay = Overlay {
            balance: Some((asset, next)),
            ..Overlay::default()
        };
        self.check_health_init(bucket, &overlay, what)?;
        Ok(next)
    }

    fn check_take_from_isolated(
        &self,
        account: AccountId,
        market: crate::ids::MarketId,
        iso: &Bucket,
        amount: Native,
    ) -> Result<Native, Reject> {
        let quote = self.state.quote();
        if iso.is_liquidating() {
            return Err(reject!(
                Reason::Liquidating,
                "the isolated bucket of account {account} is in liquidation"
            ));
        }
        let next = Native(iso.balance(quote).0 - amount.0);
        if next.0 < 0 {
            return Err(reject!(
                Reason::InsufficientBalance,
                "isolated balance would go below zero"
            ));
        }
        let base = self.state.venue.market(market).base;
        if iso.has_positions() && self.state.is_stale(base) {
            return Err(reject!(
                Reason::OracleStale,
                "index of {} is stale",
                self.state.venue.asset(base).name
            ));
        }
        let overlay = Overlay {
            balance: Some((quote, next)),
            ..Overlay::default()
        };
        self.check_health_init(iso, &overlay, "isolate")?;
        Ok(next)
    }

    /// While the cross bucket has a position, every asset it holds or trades must be fresh.
    fn check_cross_fresh(&self, bucket: &Bucket) -> Result<(), Reject> {
        if !bucket.has_positions() {
            return Ok(());
        }
        let held = bucket
            .balances
            .iter()
            .enumerate()
            .filter(|(_, b)| b.0 != 0)
            .map(|(i, _)| AssetId(i as u16));
        let traded = bucket
            .positions
            .iter()
            .map(|p| self.state.venue.market(p.market).base);
        for asset in held.chain(traded) {
            if self.state.is_stale(asset) {
                return Err(reject!(
                    Reason::OracleStale,
                    "index of {} is stale",
                    self.state.venue.asset(asset).name
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn check_health_init(
        &self,
        bucket: &Bucket,
        overlay: &Overlay,
        what: &str,
    ) -> Result<(), Reject> {
        let h = self
            .state
            .bucket_health(bucket, overlay)
            .map_err(|_| reject!(Reason::InvalidAmount, "valuation after {what} overflows"))?;
        if h.health_init() < 0 {
            return Err(reject!(
                Reason::InsufficientMargin,
                "health_init after {what} {}",
                crate::num::Scaled(h.health_init(), self.state.quote_decimals())
            ));
        }
        Ok(())
    }

    /// `withdrawals_frozen` while the insurance fund's value is negative.
    pub(crate) fn check_not_frozen(&self) -> Result<(), Reject> {
        let v = self
            .insurance_value()
            .map_err(|_| reject!(Reason::InvalidAmount, "insurance fund valuation overflows"))?;
        if v < 0 {
            return Err(reject!(
                Reason::WithdrawalsFrozen,
                "withdrawals are frozen while the insurance fund is negative ({})",
                crate::num::Scaled(v, self.state.quote_decimals())
            ));
        }
        Ok(())
    }

    /// V: the floor of the fund's quote balance plus its assets at index, exactly summed.
    pub(crate) fn insurance_value(&self) -> Result<i128, Overflow> {
        let mut assets = Exact::ZERO;
        for (i, a) in self.state.assets.iter().enumerate() {
            if a.insurance_holding.0 == 0 {
                continue;
            }
            let id = AssetId(i as u16);
            let cfg = self.state.venue.asset(id);
            let price = Exact::new(
                i128::from(self.state.index(id).unwrap_or(0)),
                cfg.price_scale,
            );
            assets = assets.plus(a.insurance_holding.exact(cfg.decimals).times(price)?)?;
        }
        let qd = self.state.quote_decimals();
        self.state
            .insurance
            .0
            .checked_add(assets.floor(qd)?)
            .ok_or(Overflow)
    }

    /// An amount of `asset` in native units (`invalid_amount` when too fine or too large).
    pub(crate) fn amount_of(&self, asset: AssetId, amount: &Dec) -> Result<Native, Reject> {
        let d = self.state.venue.asset(asset).decimals;
        let v = scaled(amount, d, Reason::InvalidAmount, "amount")?;
        if v.unsigned_abs() > AMOUNT_MAX.unsigned_abs() {
            return Err(reject!(
                Reason::InvalidAmount,
                "amount {amount} is out of range"
            ));
        }
        Ok(Native(v))
    }

    pub(crate) fn account_checked(
        &self,
        account: AccountId,
    ) -> Result<&crate::account::Account, Reject> {
        self.state
            .account(account)
            .ok_or_else(|| reject!(Reason::UnknownAccount, "unknown account {account}"))
    }

    /// `invalid_params` when a new account would pass the account limit.
    pub(crate) fn check_room_for(&self, account: AccountId) -> Result<(), Reject> {
        if self.state.account(account).is_none() && self.state.accounts.len() >= ACCOUNTS_MAX {
            return Err(reject!(
                Reason::InvalidParams,
                "the venue holds its limit of {ACCOUNTS_MAX} accounts"
            ));
        }
        Ok(())
    }
}
