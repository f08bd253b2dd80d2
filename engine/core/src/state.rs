//! The whole state of one venue: configuration, prices, markets, accounts, funds and clock.
//! Everything a transition reads or writes is here, and nothing else is: the state machine is a
//! function of this value and the next event.

use crate::account::{Account, Bucket, Slot};
use crate::ids::{AccountId, AssetId};
use crate::num::Native;
use crate::oracle::OracleState;
use crate::ordered::OrderedSet;
use crate::venue::Venue;
use rustc_hash::FxHashMap;

/// The index in [`MarketState::sides`] of positions of sign `sign` (-1 or 1).
pub fn side_index(sign: i64) -> usize {
    usize::from(sign > 0)
}

/// Per-market state that changes with events.
#[derive(
    Clone, PartialEq, Eq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct MarketState {
    /// F: cumulative funding, quote per unit of base at the funding scale
    /// (`10^(18 + price_scale of the base)`).
    pub funding_index: i128,
    /// What settling positions paid minus what they received.
    pub funding_pool: Native,
    /// Sum of long sizes, lots.
    pub open_interest: i128,
    /// Buckets holding a position in the market (derived; rebuilt after a snapshot load).
    #[rkyv(with = rkyv::with::Skip)]
    pub holders: OrderedSet<(AccountId, Slot)>,
    /// The same buckets by side: short positions first, then long ones (derived; what an ADL
    /// ranking of one side walks).
    #[rkyv(with = rkyv::with::Skip)]
    pub sides: [OrderedSet<(AccountId, Slot)>; 2],
    /// The market's own insurance fund (`own_fund` markets), quote native.
    pub own_fund: Native,
    /// What the venue-wide fund has paid for this market's bankruptcies (for `insurance_cap`).
    pub insurance_paid: Native,
    /// Dynamic margin: the factor applied to the market's fractions now (10^18 = 1).
    pub fraction_scale: i128,
    /// Dynamic margin: the factor the ramp is heading to, and when the ramp started.
    pub fraction_target: i128,
    pub fraction_from: i128,
    pub ramp_start_us: u64,
    /// EWMA of squared index returns, as `fixed` bits (I32F96), and the last index it saw.
    pub vol_ewma_bits: i128,
    pub vol_last_index: i64,
}

/// Per-asset state that changes with events.
#[derive(
    Clone, PartialEq, Eq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct AssetState {
    pub oracle: OracleState,
    /// What the insurance fund holds of this asset after bad-debt sales.
    pub insurance_holding: Native,
    /// Totals for the conservation check.
    pub deposited: i128,
    pub withdrawn: i128,
    /// Accounts whose cross bucket holds a non-zero balance of this (non-quote) asset
    /// (derived; rebuilt after a snapshot load).
    #[rkyv(with = rkyv::with::Skip)]
    pub holders: OrderedSet<AccountId>,
    /// Circuit breaker: recent (clock, index) prints within the window, oldest first.
    pub recent: Vec<(u64, i64)>,
    /// Circuit breaker: liquidations that depend on this asset wait until this time.
    pub volatile_until_us: u64,
}

/// The state of the venue. Derived indices (name and id lookups, holder sets, the liquidating
/// set, market ranks) are not persisted: [`State::rebuild_indices`] recomputes them.
#[derive(Clone, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct State {
    pub venue: Venue,
    pub assets: Vec<AssetState>,
    pub markets: Vec<MarketState>,
    /// Accounts in creation order; `account_index` maps ids to positions here.
    pub accounts: Vec<Account>,
    #[rkyv(with = rkyv::with::Skip)]
    account_index: FxHashMap<AccountId, u32>,
    /// The insurance fund's quote balance (may go negative, visibly).
    pub insurance: Native,
    pub fee_pool: Native,
    /// Insurance top-ups, for the conservation check.
    pub topups: i128,
    /// The engine clock: the largest `ts` seen, microseconds.
    pub clock_us: u64,
    /// The last input sequence applied.
    pub input_seq: u64,
    /// The last output sequence written.
    pub output_seq: u64,
    /// Buckets in liquidation.
    #[rkyv(with = rkyv::with::Skip)]
    pub liquidating: OrderedSet<(AccountId, Slot)>,
    /// Rank of each market's name among all market names (for the pass order).
    #[rkyv(with = rkyv::with::Skip)]
    pub market_rank: Vec<u16>,
    /// Bumped on every change of listings, parameters or dynamic margin factors (derived
    /// caches key on it; not persisted).
    #[rkyv(with = rkyv::with::Skip)]
    pub venue_epoch: u64,
    /// Bumped on every change of an index, a funding index or a dynamic-margin factor (the
    /// buckets' memoized sums key on it; not persisted).
    #[rkyv(with = rkyv::with::Skip)]
    pub price_epoch: u64,
    /// Counts every change of a balance or a position; `changed_at` holds, per account (by
    /// position), the count at its last one. ADL rankings compare it with the count they
    /// valued a holder at, without touching the account (derived; not persisted).
    #[rkyv(with = rkyv::with::Skip)]
    pub change_seq: u64,
    #[rkyv(with = rkyv::with::Skip)]
    pub changed_at: Vec<u64>,
    /// The accounts of the latest changes, for readers that catch up by change count.
    #[rkyv(with = rkyv::with::Skip)]
    change_log: ChangeLog,
    /// Values every position afresh instead of through the buckets' valuation memos (the
    /// naive mode's oracle; not persisted).
    #[rkyv(with = rkyv::with::Skip)]
    pub plain_valuation: bool,
    /// The conservation ledger, kept by every primitive that moves value: per asset, what the
    /// venue holds (balances, position quotes, funds, pools); per market, the sum of sizes.
    #[rkyv(with = rkyv::with::Skip)]
    pub ledger: Ledger,
}

/// Changes the log holds before it starts over (a reader further behind walks its holders).
const CHANGE_LOG_MAX: usize = 1 << 16;

/// The accounts (by position) of the latest changes of balances or positions: entry k is
/// change number `from + k + 1`. Cleared when full, so that it never grows or reallocates; a
/// reader that fell further behind learns so and walks what it keeps instead.
#[derive(Debug, Default)]
struct ChangeLog {
    entries: Vec<u32>,
    /// The change count before the first entry; None: unknown (a copy), reset at the next push.
    from: Option<u64>,
}

impl ChangeLog {
    /// Logs change number `seq + 1`, of the account at `account`.
    fn push(&mut self, account: u32, seq: u64) {
        if self.from.is_none() || self.entries.len() >= CHANGE_LOG_MAX {
            self.entries.clear();
            self.from = Some(seq);
        }
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(CHANGE_LOG_MAX);
        }
        self.entries.push(account);
    }

    /// The accounts of the changes after count `seq`, if the log reaches back that far.
    fn since(&self, seq: u64) -> Option<&[u32]> {
        let from = usize::try_from(seq.checked_sub(self.from?)?).ok()?;
        self.entries.get(from..)
    }
}

/// A copy forgets the log (copies of the state are made on the sequencer thread, and the
/// ADL rankings that read it belong to the engine, not the state): readers of the copy walk.
impl Clone for ChangeLog {
    fn clone(&self) -> ChangeLog {
        ChangeLog::default()
    }
}

/// Running totals for an O(assets + markets) conservation check after every event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub held: Vec<i128>,
    pub net_size: Vec<i128>,
}

impl Ledger {
    pub(crate) fn held(&mut self, asset: AssetId, delta: i128) {
        let i = asset.index();
        if self.held.len() <= i {
            self.held.resize(i + 1, 0);
        }
        self.held[i] += delta;
    }

    pub(crate) fn size(&mut self, market: crate::ids::MarketId, delta: i128) {
        let i = market.index();
        if self.net_size.len() <= i {
            self.net_size.resize(i + 1, 0);
        }
        self.net_size[i] += delta;
    }
}

impl State {
    /// The conservation check from the ledger: every asset held equals what came in minus what
    /// went out, every market's sizes sum to zero. `Err` names the first difference.
    pub fn check_ledger(&self) -> Result<(), String> {
        for (i, a) in self.assets.iter().enumerate() {
            let mut expected = a.deposited - a.withdrawn;
            if Some(AssetId(i as u16)) == self.venue.quote {
                expected += self.topups;
            }
            let held = self.ledger.held.get(i).copied().unwrap_or(0);
            if held != expected {
                let name = self.venue.assets[i].name;
                return Err(format!("{name}: held {held} native, expected {expected}"));
            }
        }
        for (i, n) in self.ledger.net_size.iter().enumerate() {
            if *n != 0 {
                return Err(format!(
                    "{}: sizes sum to {n} lots",
                    self.venue.markets[i].name
                ));
            }
        }
        Ok(())
    }

    /// The ledger as a recount over the whole state would make it (the invariant check compares
    /// it with the running one).
    pub fn recounted_ledger(&self) -> Ledger {
        let mut l = Ledger::default();
        let quote = self.quote();
        for (i, a) in self.assets.iter().enumerate() {
            l.held(AssetId(i as u16), a.insurance_holding.0);
        }
        for acc in &self.accounts {
            for slot in acc.slots() {
                let Some(b) = acc.bucket(slot) else { continue };
                for (i, v) in b.balances.iter().enumerate() {
                    l.held(AssetId(i as u16), v.0);
                }
                for p in &b.positions {
                    l.held(quote, p.quote.0);
                    l.size(p.market, i128::from(p.size.0));
                }
            }
        }
        if self.venue.quote.is_some() {
            let pools: i128 = self
                .markets
                .iter()
                .map(|m| m.funding_pool.0 + m.own_fund.0)
                .sum();
            l.held(quote, self.insurance.0 + self.fee_pool.0 + pools);
        }
        l
    }

    /// Recomputes the ledger from the state (after a snapshot is loaded).
    pub(crate) fn rebuild_ledger(&mut self) {
        self.ledger = self.recounted_ledger();
    }

    pub fn account_pos(&self, id: AccountId) -> Option<usize> {
        self.account_index.get(&id).map(|&i| i as usize)
    }

    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.account_pos(id).map(|i| &self.accounts[i])
    }

    /// The account, handed out for change: its buckets forget their memoized sums.
    pub fn account_mut(&mut self, id: AccountId) -> Option<&mut Account> {
        self.account_pos(id).map(move |i| {
            let acc = &mut self.accounts[i];
            acc.forget_sums();
            acc
        })
    }

    /// The bucket, handed out for a change of what its equity is made of (a balance or a
    /// position): besides forgetting its sums, the account's change count moves.
    pub(crate) fn bucket_mut_valued(&mut self, id: AccountId, slot: Slot) -> Option<&mut Bucket> {
        let i = self.account_pos(id)?;
        self.note_change(i);
        let acc = &mut self.accounts[i];
        acc.forget_sums();
        acc.bucket_mut(slot)
    }

    /// Notes that a balance or position of the account at position `i` changes.
    fn note_change(&mut self, i: usize) {
        self.change_log.push(i as u32, self.change_seq);
        self.change_seq += 1;
        if self.changed_at.len() <= i {
            self.changed_at.resize(self.accounts.len().max(i + 1), 0);
        }
        self.changed_at[i] = self.change_seq;
    }

    /// The accounts changed after change count `seq` (by position, in order, repeats kept), if
    /// the log still reaches back that far.
    pub(crate) fn changes_since(&self, seq: u64) -> Option<&[u32]> {
        self.change_log.since(seq)
    }

    /// The change count at the last change of a balance or position of the account at
    /// position `i` (0: none since this state was made or loaded).
    pub fn changed_at(&self, i: usize) -> u64 {
        self.changed_at.get(i).copied().unwrap_or(0)
    }

    /// The account, created empty if it does not exist yet.
    pub fn account_or_create(&mut self, id: AccountId) -> &mut Account {
        let i = match self.account_index.get(&id) {
            Some(&i) => i as usize,
            None => {
                let i = self.accounts.len();
                self.accounts.push(Account::new(id));
                self.account_index.insert(id, i as u32);
                i
            }
        };
        let acc = &mut self.accounts[i];
        acc.forget_sums();
        acc
    }

    /// Notes that an index, a funding index or a dynamic-margin factor moved.
    pub(crate) fn moved_prices(&mut self) {
        self.price_epoch += 1;
    }

    pub fn bucket(&self, id: AccountId, slot: Slot) -> Option<&Bucket> {
        self.account(id).and_then(|a| a.bucket(slot))
    }

    pub fn bucket_mut(&mut self, id: AccountId, slot: Slot) -> Option<&mut Bucket> {
        self.account_mut(id).and_then(|a| a.bucket_mut(slot))
    }

    pub fn quote(&self) -> AssetId {
        self.venue.quote.unwrap_or(AssetId(0))
    }

    pub fn quote_decimals(&self) -> u8 {
        self.venue.quote_decimals()
    }

    /// Rebuilds the derived indices after the state was loaded from a snapshot.
    pub fn rebuild_indices(&mut self) {
        self.venue.rebuild_index();
        self.account_index = self
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i as u32))
            .collect();
        self.rerank_markets();
        self.rebuild_holders();
        self.rebuild_ledger();
    }

    /// Recomputes the holder sets and the liquidating set from the accounts.
    fn rebuild_holders(&mut self) {
        let quote = self.quote();
        for m in &mut self.markets {
            m.holders.clear();
            m.sides.iter_mut().for_each(OrderedSet::clear);
        }
        for a in &mut self.assets {
            a.holders.clear();
        }
        self.liquidating.clear();
        for acc in &self.accounts {
            for slot in acc.slots() {
                let Some(bucket) = acc.bucket(slot) else {
                    continue;
                };
                for p in &bucket.positions {
                    let m = &mut self.markets[p.market.index()];
                    m.holders.insert((acc.id, slot));
                    m.sides[side_index(p.size.signum())].insert((acc.id, slot));
                }
                if bucket.is_liquidating() {
                    self.liquidating.insert((acc.id, slot));
                }
            }
            for (i, b) in acc.cross.balances.iter().enumerate() {
                if b.0 != 0 && i != quote.index() {
                    self.assets[i].holders.insert(acc.id);
                }
            }
        }
    }

    /// Recomputes the name rank of every market (after a listing).
    pub fn rerank_markets(&mut self) {
        let mut ids: Vec<usize> = (0..self.venue.markets.len()).collect();
        ids.sort_by_key(|&i| self.venue.markets[i].name);
        self.market_rank = vec![0; ids.len()];
        for (rank, i) in ids.into_iter().enumerate() {
            self.market_rank[i] = rank as u16;
        }
    }

    /// The order key of a bucket in liquidation passes: account id, then the cross bucket, then
    /// isolated buckets by market name.
    pub fn pass_key(&self, account: AccountId, slot: Slot) -> (AccountId, u32) {
        match slot {
            Slot::Cross => (account, 0),
            Slot::Isolated(m) => (account, 1 + u32::from(self.market_rank[m.index()])),
        }
    }

    /// The index of an asset in ticks of its price scale (quote: `None`, it is priced at 1).
    pub fn index(&self, asset: AssetId) -> Option<i64> {
        self.assets[asset.index()].oracle.index.map(|t| t.0)
    }

    /// True when the asset's fresh sources are fewer than its minimum at the current clock.
    /// The quote asset is never stale.
    pub fn is_stale(&self, asset: AssetId) -> bool {
        match &self.venue.asset(asset).oracle {
            None => false,
            Some(cfg) => self.assets[asset.index()]
                .oracle
                .is_stale(cfg, self.clock_us),
        }
    }

    /// The asset has never had an index (its markets cannot trade yet).
    pub fn never_priced(&self, asset: AssetId) -> bool {
        !self.venue.asset(asset).quote && self.assets[asset.index()].oracle.index.is_none()
    }
}
