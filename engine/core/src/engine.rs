//! The state machine: `apply(state, input) -> records`. One function, no clock, no randomness,
//! no I/O; the same code runs live, in recovery and in the replay tools.
//!
//! An event is applied in four steps: the clock advances; the handler checks everything, then
//! commits (a rejection leaves the state as it was); oracle staleness transitions are reported;
//! the liquidation passes settle the consequences. Records are buffered and numbered at the end.

use crate::account::{Position, Slot};
use crate::event::{Event, Input};
use crate::ids::{AccountId, AssetId, MarketId};
use crate::num::Native;
use crate::record::{Body, BucketName, Cause, Num, Record};
use crate::reject::Reject;
use crate::state::State;

/// How the liquidation passes find the buckets a price or funding change may have moved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScanMode {
    /// Visit only the buckets whose safe band the tick left (the price-tick index).
    Indexed,
    /// Re-check every bucket exposed to the changed market or asset, and rank ADL
    /// counterparties afresh for every close. Same outputs, O(n) per tick; kept as the
    /// reference the index and the ranking cache are tested against.
    Naive,
}

/// The margin engine: its state plus reusable buffers for one event's work.
#[derive(Clone, Debug)]
pub struct Engine {
    pub state: State,
    out: Vec<Record>,
    /// Buckets changed by the current event or pass (candidates for the next pass).
    pub(crate) dirty: Vec<(AccountId, Slot)>,
    /// Markets whose parameters changed in the current event.
    pub(crate) moved_markets: Vec<MarketId>,
    /// Assets whose parameters changed in the current event.
    pub(crate) moved_assets: Vec<AssetId>,
    /// Assets whose index changed in the current event.
    pub(crate) ticked_assets: Vec<AssetId>,
    /// Markets whose funding index changed in the current event.
    pub(crate) funded_markets: Vec<MarketId>,
    /// The price-tick index (derived; rebuilt from the state when an engine is made).
    pub(crate) bands: crate::tick_index::Bands,
    /// Reused buffers of the liquidation passes.
    pub(crate) scratch: crate::scratch::PassScratch,
    /// Reused buffer for a bucket's bands.
    pub(crate) band_buf: Vec<crate::tick_index::Band>,
    /// ADL rankings kept within the current event.
    pub(crate) adl: crate::scratch::AdlCache,
    /// Reused buffers of the backstop.
    pub(crate) backstop: crate::scratch::BackstopScratch,
    /// Breached buckets a guard holds back (spike guard, circuit breaker): visited on every
    /// event until they start or recover.
    pub(crate) deferred: crate::ordered::OrderedSet<(AccountId, Slot)>,
    pub scan: ScanMode,
    /// Buckets visited by liquidation passes since the engine was made (statistics only).
    pub visits: u64,
    /// Holders valued to build ADL rankings since the engine was made (statistics only).
    pub ranked: u64,
    /// Input seqs the operator ordered skipped (sorted; see [`Engine::apply_or_skip`]).
    pub skip_inputs: Vec<u64>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

/// What a handler reports on success: order ids of a fill that matched no open order.
pub type Accepted = [Option<crate::ids::OrderId>; 2];

impl Engine {
    pub fn new() -> Engine {
        Engine::from_state(State::default())
    }

    /// An engine over a state loaded from a snapshot.
    pub fn from_state(state: State) -> Engine {
        Engine::with_scan(state, ScanMode::Indexed)
    }

    /// An engine over a state with the given way of finding moved buckets.
    pub fn with_scan(mut state: State, scan: ScanMode) -> Engine {
        state.rebuild_indices();
        // The naive mode is the oracle of every cache, the valuation memo included.
        state.plain_valuation = scan == ScanMode::Naive;
        let mut engine = Engine {
            state,
            out: Vec::with_capacity(64),
            dirty: Vec::with_capacity(64),
            moved_markets: Vec::new(),
            moved_assets: Vec::new(),
            ticked_assets: Vec::new(),
            funded_markets: Vec::new(),
            bands: crate::tick_index::Bands::default(),
            scratch: Default::default(),
            band_buf: Vec::new(),
            adl: Default::default(),
            backstop: Default::default(),
            deferred: Default::default(),
            scan,
            visits: 0,
            ranked: 0,
            skip_inputs: Vec::new(),
        };
        engine.rebuild_bands();
        engine.rebuild_deferred();
        engine
    }

    /// Applies one journaled input and returns the records it caused (the result first).
    pub fn apply(&mut self, input: &Input) -> &[Record] {
        self.state.input_seq += 1;
        let clock = self.check_clock(input.ts);
        if clock.is_ok() {
            self.state.clock_us = self.state.clock_us.max(input.ts);
        }
        self.out.clear();
        self.dirty.clear();
        self.moved_markets.clear();
        self.moved_assets.clear();
        self.ticked_assets.clear();
        self.funded_markets.clear();
        let venue_epoch = self.state.venue_epoch;
        self.emit(Body::Accepted {
            order_unknown: [None, None],
        });
        match clock.and_then(|()| self.dispatch(&input.event)) {
            Ok(order_unknown) => {
                if input.event.is_admin() {
                    // Listings and parameters feed derived caches (band rates).
                    self.state.venue_epoch += 1;
                }
                self.out[0].body = Body::Accepted { order_unknown };
            }
            Err(rej) => {
                debug_assert_eq!(self.out.len(), 1, "a rejected event emitted effects");
                self.out.truncate(1);
                self.dirty.clear();
                self.moved_markets.clear();
                self.moved_assets.clear();
                self.ticked_assets.clear();
                self.funded_markets.clear();
                self.out[0].body = Body::Rejected {
                    reason: rej.reason,
                    detail: rej.detail,
                };
            }
        }
        if self.moved_equity(input, venue_epoch) {
            // ADL rankings stay exact across events that move no listing or parameter (the
            // buckets events change are re-ranked, price and funding moves are bounded); these
            // may move any bucket's equity in ways a ranking does not follow.
            self.adl.clear();
        }
        self.report_staleness();
        self.settle();
        debug_assert_eq!(
            self.state.check_ledger(),
            Ok(()),
            "value conserved after input {}",
            self.state.input_seq
        );
        self.number_outputs();
        &self.out
    }

    /// True when the event just dispatched moved something a kept ADL ranking cannot follow: a
    /// listing or a parameter (an accepted venue event). Index and funding moves are bounded by
    /// the rankings; the dynamic-margin ramp moves requirements, not equity.
    fn moved_equity(&self, input: &Input, venue_epoch_before: u64) -> bool {
        input.event.is_admin() && self.state.venue_epoch != venue_epoch_before
    }

    /// An input's timestamp may move the clock at most [`CLOCK_STEP_MAX_US`] ahead, and never
    /// past [`TS_MAX_US`]; beyond that it is rejected (`invalid_params`) and the clock stays.
    ///
    /// [`CLOCK_STEP_MAX_US`]: crate::limits::CLOCK_STEP_MAX_US
    /// [`TS_MAX_US`]: crate::limits::TS_MAX_US
    fn check_clock(&self, ts: u64) -> Result<(), Reject> {
        use crate::limits::{CLOCK_STEP_MAX_US, TS_MAX_US};
        let clock = self.state.clock_us;
        if ts > TS_MAX_US {
            return Err(crate::reject!(
                crate::record::Reason::InvalidParams,
                "ts {ts} is past the latest accepted timestamp {TS_MAX_US}"
            ));
        }
        if clock > 0 && ts > clock.saturating_add(CLOCK_STEP_MAX_US) {
            return Err(crate::reject!(
                crate::record::Reason::InvalidParams,
                "ts {ts} is more than {CLOCK_STEP_MAX_US} us ahead of the engine clock {clock}"
            ));
        }
        Ok(())
    }

    /// Applies the input journaled at `seq`, or skips it when the operator listed the seq in
    /// [`Engine::skip_inputs`]. Every consumer of a journal (pipeline, recovery, replay tools)
    /// goes through here, so a skip gives the same bytes wherever the journal is replayed.
    pub fn apply_or_skip(&mut self, input: &Input, seq: u64) -> &[Record] {
        debug_assert_eq!(seq, self.state.input_seq + 1, "inputs applied in seq order");
        if self.is_skipped(seq) {
            return self.skip();
        }
        self.apply(input)
    }

    /// True when the operator listed this input seq to be skipped.
    pub fn is_skipped(&self, seq: u64) -> bool {
        self.skip_inputs.binary_search(&seq).is_ok()
    }

    /// The records of the last input applied or skipped.
    pub fn records(&self) -> &[Record] {
        &self.out
    }

    /// Gives the event's records their output seqs (dense from 1 across the history).
    fn number_outputs(&mut self) {
        let mut seq = self.state.output_seq;
        for r in &mut self.out {
            seq += 1;
            r.seq = seq;
        }
        self.state.output_seq = seq;
    }

    /// Records the next input as skipped by the operator: one `rejected` result with reason
    /// `skipped`; nothing else changes (not even the clock: the input may be what is broken).
    pub fn skip(&mut self) -> &[Record] {
        self.state.input_seq += 1;
        self.out.clear();
        self.emit(Body::Rejected {
            reason: crate::record::Reason::Skipped,
            detail: crate::record::Detail::new(
                "input skipped by the operator at recovery (--skip-input)",
            ),
        });
        self.number_outputs();
        &self.out
    }

    fn dispatch(&mut self, event: &Event) -> Result<Accepted, Reject> {
        const NONE: Accepted = [None, None];
        match event {
            Event::Asset(spec) => self.on_asset(spec).map(|_| NONE),
            Event::Market(spec) => self.on_market(spec).map(|_| NONE),
            Event::Params(spec) => self.on_params(spec).map(|_| NONE),
            Event::Insurance { amount, market } => {
                self.on_insurance(amount, market.as_ref()).map(|_| NONE)
            }
            Event::Deposit {
                account,
                asset,
                amount,
            } => self.on_deposit(*account, asset, amount).map(|_| NONE),
            Event::Withdraw {
                account,
                asset,
                amount,
            } => self.on_withdraw(*account, asset, amount).map(|_| NONE),
            Event::MarginMode {
                account,
                market,
                mode,
            } => self.on_margin_mode(*account, market, *mode).map(|_| NONE),
            Event::Isolate {
                account,
                market,
                amount,
            } => self.on_isolate(*account, market, amount).map(|_| NONE),
            Event::Order(spec) => self.on_order(spec).map(|_| NONE),
            Event::Cancel { account, order } => self.on_cancel(*account, *order).map(|_| NONE),
            Event::Fill(spec) => self.on_fill(spec),
            Event::Oracle {
                asset,
                source,
                price,
            } => self.on_oracle(asset, *source, price).map(|_| NONE),
            Event::Funding { market, rate } => self.on_funding(market, rate).map(|_| NONE),
            Event::Liquidate {
                liquidator,
                account,
                market,
                size,
            } => self
                .on_liquidate(*liquidator, *account, market, size)
                .map(|_| NONE),
            Event::RiskScenarios(spec) => self.on_risk_scenarios(spec).map(|_| NONE),
            Event::CrossMode { account, portfolio } => {
                self.on_cross_mode(*account, *portfolio).map(|_| NONE)
            }
        }
    }

    /// Appends an effect record (numbered when the event is done).
    pub(crate) fn emit(&mut self, body: Body) {
        self.out.push(Record {
            seq: 0,
            input: self.state.input_seq,
            ts: self.state.clock_us,
            body,
        });
    }

    /// The name of a bucket for records.
    pub(crate) fn bucket_name(&self, slot: Slot) -> BucketName {
        match slot {
            Slot::Cross => BucketName::Cross,
            Slot::Isolated(m) => BucketName::Isolated(self.state.venue.market(m).name),
        }
    }

    pub(crate) fn mark_dirty(&mut self, account: AccountId, slot: Slot) {
        self.dirty.push((account, slot));
    }

    /// Sets a balance to `value` (already checked), records the move and keeps the holder index.
    pub(crate) fn set_balance(
        &mut self,
        account: AccountId,
        slot: Slot,
        asset: AssetId,
        value: Native,
        cause: Cause,
    ) {
        let quote = self.state.quote();
        let Some(bucket) = self.state.bucket_mut_valued(account, slot) else {
            debug_assert!(false, "balance of a missing bucket");
            return;
        };
        let old = bucket.balance(asset);
        if old == value {
            return;
        }
        bucket.set_balance(asset, value);
        self.state.ledger.held(asset, value.0 - old.0);
        if slot == Slot::Cross && asset != quote {
            // Changes only when the balance leaves or reaches zero, as for positions.
            let holders = &mut self.state.assets[asset.index()].holders;
            debug_assert_eq!(
                holders.contains(&account),
                old.0 != 0,
                "holders lists exactly the non-zero balances"
            );
            match (old.0 == 0, value.0 == 0) {
                (false, true) => {
                    holders.remove(&account);
                }
                (true, false) => {
                    holders.insert(account);
                }
                _ => {}
            }
        }
        let decimals = self.state.venue.asset(asset).decimals;
        let body = Body::Balance {
            account,
            bucket: self.bucket_name(slot),
            asset: self.state.venue.asset(asset).name,
            balance: Num::new(value.0, decimals),
            delta: Num::new(value.0 - old.0, decimals),
            cause,
        };
        self.emit(body);
        self.mark_dirty(account, slot);
    }

    /// Stores a position (already checked), records it and keeps open interest and holders.
    pub(crate) fn set_position(
        &mut self,
        account: AccountId,
        slot: Slot,
        pos: Position,
        realized: Native,
    ) {
        let market = pos.market;
        let Some(bucket) = self.state.bucket_mut_valued(account, slot) else {
            debug_assert!(false, "position of a missing bucket");
            return;
        };
        let old = bucket.size(market);
        let old_quote = bucket.position(market).map_or(0, |p| p.quote.0);
        bucket.put_position(pos);
        let quote = self.state.quote();
        self.state.ledger.held(quote, pos.quote.0 - old_quote);
        self.state
            .ledger
            .size(market, i128::from(pos.size.0) - i128::from(old.0));
        let ms = &mut self.state.markets[market.index()];
        ms.open_interest += i128::from(pos.size.0.max(0)) - i128::from(old.0.max(0));
        // The set holds the buckets with a position in the market: it changes only when one
        // opens or closes (an insert of a held key still searches its block).
        debug_assert_eq!(
            ms.holders.contains(&(account, slot)),
            !old.is_zero(),
            "holders lists exactly the open positions"
        );
        match (old.is_zero(), pos.size.is_zero()) {
            (false, true) => {
                ms.holders.remove(&(account, slot));
            }
            (true, false) => {
                ms.holders.insert((account, slot));
            }
            _ => {}
        }
        if pos.size.signum() != old.signum() {
            use crate::state::side_index;
            if !old.is_zero() {
                ms.sides[side_index(old.signum())].remove(&(account, slot));
            }
            if !pos.size.is_zero() {
                ms.sides[side_index(pos.size.signum())].insert((account, slot));
            }
        }
        let cfg = self.state.venue.market(market);
        let qd = self.state.quote_decimals();
        let mode = match slot {
            Slot::Cross => crate::ids::MarginMode::Cross,
            Slot::Isolated(_) => crate::ids::MarginMode::Isolated,
        };
        let body = Body::Position {
            account,
            market: cfg.name,
            mode,
            size: Num::new(i128::from(pos.size.0), cfg.size_decimals),
            quote: Num::new(pos.quote.0, qd),
            realized: Num::new(realized.0, qd),
        };
        self.emit(body);
        self.mark_dirty(account, slot);
    }

    /// Moves the insurance fund (already checked) and records it.
    pub(crate) fn set_insurance(&mut self, value: Native, cause: Cause) {
        let old = self.state.insurance;
        if old == value {
            return;
        }
        self.state.insurance = value;
        let quote = self.state.quote();
        self.state.ledger.held(quote, value.0 - old.0);
        let qd = self.state.quote_decimals();
        self.emit(Body::Insurance {
            market: None,
            fund: Num::new(value.0, qd),
            delta: Num::new(value.0 - old.0, qd),
            cause,
        });
    }
}

/// An engine that has applied the first `lines` events of `examples/venue.jsonl` (unit tests'
/// common starting point).
#[cfg(test)]
pub(crate) fn example_engine(lines: usize) -> Engine {
    let mut e = Engine::new();
    for input in example_lines().iter().take(lines) {
        e.apply(input);
    }
    e
}

/// The inputs of `examples/venue.jsonl`.
#[cfg(test)]
pub(crate) fn example_lines() -> Vec<Input> {
    include_str!("../../../examples/venue.jsonl")
        .lines()
        .map(|line| crate::codec::parse_input(line).expect("the example parses"))
        .collect()
}
