//! The buffers and caches the liquidation passes reuse from event to event, owned by the
//! [`Engine`](crate::engine::Engine) and cleared rather than dropped, so that a warmed-up engine
//! settles an event without allocating. Plain data: the passes that use them live in
//! `liquidation/`, which depends on this module and on `engine.rs`, never the other way round.

use crate::account::Slot;
use crate::health::MaintHealth;
use crate::ids::{AccountId, AssetId, MarketId};
use crate::liquidation::ranking::{Ranking, RateTables};
use crate::num::{Lots, Native};
use ethnum::I256;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A bucket in pass order.
pub(crate) type PassEntry = ((AccountId, u32), Slot);

/// Buffers the passes reuse from event to event, so that settling allocates nothing once they
/// have grown to size.
#[derive(Clone, Debug, Default)]
pub(crate) struct PassScratch {
    pub(crate) pending: BinaryHeap<Reverse<PassEntry>>,
    pub(crate) next: Vec<PassEntry>,
    /// Buckets visited in this event, numbered in visit order, with the figures of each visit
    /// (None when a rule acted).
    pub(crate) visited: Vec<(PassEntry, u32, Option<MaintHealth>)>,
    pub(crate) crossed: Vec<(AccountId, Slot)>,
    pub(crate) walk_markets: Vec<MarketId>,
    pub(crate) walk_assets: Vec<AssetId>,
}

/// A counterparty candidate with its ranking figures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counterparty {
    pub(crate) account: AccountId,
    pub(crate) slot: Slot,
    pub(crate) key: (AccountId, u32),
    pub(crate) size: Lots,
    pub(crate) upnl: i128,
    /// max(equity_maint, 1 native unit).
    pub(crate) equity: i128,
}

/// upnl / equity descending (equities are positive), then (account, bucket).
pub(crate) fn rank_order(a: &Counterparty, b: &Counterparty) -> Ordering {
    // Cross-multiplied to stay exact; i128 products unless they could overflow.
    let by_ratio = match (a.upnl.checked_mul(b.equity), b.upnl.checked_mul(a.equity)) {
        (Some(lhs), Some(rhs)) => rhs.cmp(&lhs),
        _ => (I256::from(b.upnl) * I256::from(a.equity))
            .cmp(&(I256::from(a.upnl) * I256::from(b.equity))),
    };
    by_ratio.then_with(|| a.key.cmp(&b.key))
}

/// A counterparty ordered by [`rank_order`], best first (an ordered-set key).
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct Ranked(pub(crate) Counterparty);

impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> Ordering {
        rank_order(&self.0, &other.0)
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// Rankings kept since the last event that moved the venue.
///
/// A ranking takes in changes only when it is used: from the state's change log when it
/// reaches back far enough, else in one walk of its side's holders in the market
/// (`MarketState::sides`) beside its own. Buckets that joined the side are valued and added,
/// those that left are marked gone, and holders whose balances or positions changed since it
/// valued them (the state's per-account change counts) are valued again. Price and funding
/// moves do not drop a ranking: it bounds its holders' figures from them
/// (`liquidation/ranking.rs`). The rankings' buffers outlive them (only `live` is reset) so that
/// a backstop in a warmed-up engine does not allocate.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdlCache {
    /// The first `live` rankings are current, the rest are spare buffers.
    pub(crate) rankings: Vec<Ranking>,
    pub(crate) live: usize,
    /// The counterparties chosen for the close in progress.
    pub(crate) chosen: Vec<Counterparty>,
    /// The naive mode's ranking, built afresh for each close.
    pub(crate) build: Vec<Ranked>,
    /// The coefficients of the bounds, per venue epoch.
    pub(crate) tables: RateTables,
    /// The driver moves since each snapshot: a buffer of one close.
    pub(crate) deltas: Vec<crate::liquidation::ranking::Move>,
    /// A walk's holders to value: (place in the new holders, account position, slot).
    pub(crate) todo: Vec<(u32, u32, crate::account::Slot)>,
}

impl AdlCache {
    /// Forgets every ranking (when an event moved the venue).
    pub(crate) fn clear(&mut self) {
        self.live = 0;
    }

    /// The index of the ranking for (market, side), if one is kept.
    pub(crate) fn find(&self, key: (MarketId, i64)) -> Option<usize> {
        self.rankings[..self.live].iter().position(|r| r.key == key)
    }

    /// A cleared ranking for `key` (up to date with the log), and its index: the kept one for
    /// `key` if there is one, else a new one.
    pub(crate) fn claim(&mut self, key: (MarketId, i64)) -> usize {
        let at = match self.find(key) {
            Some(i) => i,
            None => {
                if self.live == self.rankings.len() {
                    self.rankings.push(Ranking::default());
                }
                self.live += 1;
                self.live - 1
            }
        };
        self.rankings[at].reset(key);
        at
    }
}

/// One position to close: its market, size and index notional n_j (then the close notional).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Closing {
    pub(crate) market: MarketId,
    pub(crate) size: Lots,
    pub(crate) notional: i128,
    /// U_j, this position's part of the socialized loss.
    pub(crate) share: i128,
}

/// Buffers of the backstop, kept across events so that a warmed-up engine does not allocate.
#[derive(Clone, Debug, Default)]
pub(crate) struct BackstopScratch {
    pub(crate) closings: Vec<Closing>,
    pub(crate) held: Vec<(AssetId, Native)>,
}
