//! The buffers and caches the liquidation passes reuse from event to event, owned by the
//! [`Engine`](crate::engine::Engine) and cleared rather than dropped, so that a warmed-up engine
//! settles an event without allocating. Plain data: the passes that use them live in
//! `liquidation/`, which depends on this module and on `engine.rs`, never the other way round.

use crate::account::Slot;
use crate::health::MaintHealth;
use crate::ids::{AccountId, AssetId, MarketId};
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
    let lhs = I256::from(a.upnl) * I256::from(b.equity);
    let rhs = I256::from(b.upnl) * I256::from(a.equity);
    match rhs.cmp(&lhs) {
        Ordering::Equal => a.key.cmp(&b.key),
        o => o,
    }
}

/// Rankings made since the last event that moved valuations, and the buckets changed since.
///
/// The vectors outlive the rankings (only `live` is reset) so that a backstop in a warmed-up
/// engine does not allocate.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdlCache {
    /// (market, sign of the counterparties' positions) -> ranking, best first; the first
    /// `live` entries belong to the current event, the rest are spare buffers.
    pub(crate) lists: Vec<((MarketId, i64), Vec<Counterparty>)>,
    pub(crate) live: usize,
    pub(crate) stale: Vec<(AccountId, Slot)>,
    /// The counterparties chosen for the close in progress.
    pub(crate) chosen: Vec<Counterparty>,
}

/// Changed buckets kept for re-ranking before the rankings are dropped instead.
const STALE_MAX: usize = 1024;

impl AdlCache {
    /// Forgets every ranking (when an event may move prices, funding or parameters).
    pub(crate) fn clear(&mut self) {
        self.live = 0;
        self.stale.clear();
    }

    /// Notes a changed bucket, if any ranking is kept. Past `STALE_MAX` changed buckets a
    /// fresh ranking is cheaper than re-ranking them one by one, and the list stays bounded.
    pub(crate) fn touched(&mut self, account: AccountId, slot: Slot) {
        if self.live == 0 {
            return;
        }
        if self.stale.len() >= STALE_MAX {
            self.clear();
            return;
        }
        self.stale.push((account, slot));
    }

    /// The index of the ranking for (market, side), if this event made one.
    pub(crate) fn find(&self, key: (MarketId, i64)) -> Option<usize> {
        self.lists[..self.live].iter().position(|l| l.0 == key)
    }

    /// A cleared buffer for a new ranking under `key`, and its index.
    pub(crate) fn claim(&mut self, key: (MarketId, i64)) -> usize {
        if self.live == self.lists.len() {
            self.lists.push((key, Vec::new()));
        }
        let entry = &mut self.lists[self.live];
        entry.0 = key;
        entry.1.clear();
        self.live += 1;
        self.live - 1
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
