//! Optional guards on top of the plain model, each off unless a parameter turns it on: the
//! circuit breaker (assets), volatility-scaled margin with a ramp, and the spike guard (markets).

use crate::account::Slot;
use crate::engine::Engine;
use crate::ids::{AccountId, AssetId, MarketId};
use crate::venue::MarketConfig;

impl Engine {
    /// Called on every new index of an asset (after the oracle event computed it).
    pub(crate) fn on_index_print(&mut self, _asset: AssetId, _before: Option<i64>, _index: i64) {}

    /// Whether rule 1 may start the liquidation of this bucket now.
    pub(crate) fn may_start_liquidation(&mut self, _account: AccountId, _slot: Slot) -> bool {
        true
    }

    /// Replaces a market's configuration after a `params` event.
    pub(crate) fn change_market_config(&mut self, id: MarketId, next: MarketConfig) {
        self.state.venue.markets[id.index()] = next;
    }
}
