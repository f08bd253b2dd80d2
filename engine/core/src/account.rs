//! Accounts, their buckets (the cross bucket and one per isolated market), positions and open
//! orders. Plain data with small, local operations; the rules that decide what may change live in
//! the handlers.

use crate::ids::{AccountId, AssetId, MarketId, OrderId, Side};
use crate::num::{Lots, Native, Overflow, Ticks};

/// A position in one market: size in lots, the quote that went in and out of it, and the funding
/// index it last settled at.
#[derive(Clone, Copy, PartialEq, Eq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Position {
    pub market: MarketId,
    pub size: Lots,
    /// q: quote native units.
    pub quote: Native,
    /// f: the market's funding index when the position last settled (funding scale).
    pub funding_mark: i128,
}

/// Open orders of one bucket in one market, summed per side for the order-margin scenarios.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct OrderSums {
    pub buy_lots: i128,
    /// Sum of lots x limit ticks of the buys.
    pub buy_cost: i128,
    pub sell_lots: i128,
    pub sell_cost: i128,
    pub count: u32,
}

impl OrderSums {
    /// Adds (`sign` 1) or removes (`sign` -1) `lots` of an order at `price`.
    pub fn change(
        &mut self,
        side: Side,
        price: Ticks,
        lots: Lots,
        sign: i128,
    ) -> Result<(), Overflow> {
        let l = i128::from(lots.0) * sign;
        let c = l.checked_mul(i128::from(price.0)).ok_or(Overflow)?;
        let (lots_sum, cost_sum) = match side {
            Side::Buy => (&mut self.buy_lots, &mut self.buy_cost),
            Side::Sell => (&mut self.sell_lots, &mut self.sell_cost),
        };
        *lots_sum = lots_sum.checked_add(l).ok_or(Overflow)?;
        *cost_sum = cost_sum.checked_add(c).ok_or(Overflow)?;
        Ok(())
    }

    pub fn lots(&self, side: Side) -> i128 {
        match side {
            Side::Buy => self.buy_lots,
            Side::Sell => self.sell_lots,
        }
    }
}

/// The state of a bucket's liquidation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Liquidation {
    pub started_us: u64,
}

/// A bucket: balances, positions, order sums, and its liquidation and margin-call state.
#[derive(
    Clone, PartialEq, Eq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Bucket {
    /// Balances by asset id; missing entries are zero. An isolated bucket holds only quote.
    pub balances: Vec<Native>,
    /// Positions, sorted by market id; never a zero size.
    pub positions: Vec<Position>,
    /// Open-order sums, sorted by market id; never an entry with no order.
    pub orders: Vec<(MarketId, OrderSums)>,
    pub liquidation: Option<Liquidation>,
    /// Under the margin-call ratio at the last check (a record is emitted once per crossing).
    pub margin_called: bool,
    /// Index prints a breach has persisted for (spike guard).
    pub breach_prints: u32,
    /// The input that last counted a print (a print counts once per event).
    pub breach_input: u64,
    /// Margined as a portfolio (only ever set on a cross bucket; needs the venue's set).
    pub portfolio: bool,
    /// The figures of its positions as last computed, with what they were computed from
    /// (derived; not persisted, not compared).
    #[rkyv(with = rkyv::with::Skip)]
    pub memo: crate::memo::ValuationMemo,
}

impl Bucket {
    pub fn balance(&self, asset: AssetId) -> Native {
        self.balances
            .get(asset.index())
            .copied()
            .unwrap_or(Native::ZERO)
    }

    pub fn set_balance(&mut self, asset: AssetId, value: Native) {
        let i = asset.index();
        if self.balances.len() <= i {
            self.balances.resize(i + 1, Native::ZERO);
        }
        self.balances[i] = value;
    }

    pub fn position(&self, market: MarketId) -> Option<&Position> {
        self.positions
            .binary_search_by_key(&market, |p| p.market)
            .ok()
            .map(|i| &self.positions[i])
    }

    /// The position's size, zero when there is none.
    pub fn size(&self, market: MarketId) -> Lots {
        self.position(market).map_or(Lots::ZERO, |p| p.size)
    }

    /// Stores a position, removing it when its size is zero. A zero-size position keeps no quote
    /// (closing moves all of it to the balance), so nothing is lost by dropping it.
    pub fn put_position(&mut self, pos: Position) {
        match self
            .positions
            .binary_search_by_key(&pos.market, |p| p.market)
        {
            Ok(i) if pos.size.is_zero() => {
                debug_assert_eq!(pos.quote, Native::ZERO, "a closed position keeps no quote");
                self.positions.remove(i);
            }
            Ok(i) => self.positions[i] = pos,
            Err(_) if pos.size.is_zero() => {}
            Err(i) => self.positions.insert(i, pos),
        }
    }

    pub fn has_positions(&self) -> bool {
        !self.positions.is_empty()
    }

    pub fn order_sums(&self, market: MarketId) -> OrderSums {
        self.orders
            .binary_search_by_key(&market, |o| o.0)
            .map_or(OrderSums::default(), |i| self.orders[i].1)
    }

    pub fn set_order_sums(&mut self, market: MarketId, sums: OrderSums) {
        match self.orders.binary_search_by_key(&market, |o| o.0) {
            Ok(i) if sums.count == 0 => {
                self.orders.remove(i);
            }
            Ok(i) => self.orders[i].1 = sums,
            Err(_) if sums.count == 0 => {}
            Err(i) => self.orders.insert(i, (market, sums)),
        }
    }

    pub fn is_liquidating(&self) -> bool {
        self.liquidation.is_some()
    }

    /// True when the bucket holds anything but quote (assets the backstop may sell).
    pub fn non_quote_assets(&self, quote: AssetId) -> impl Iterator<Item = (AssetId, Native)> + '_ {
        self.balances
            .iter()
            .enumerate()
            .filter(move |(i, b)| *i != quote.index() && b.0 != 0)
            .map(|(i, b)| (AssetId(i as u16), *b))
    }
}

/// An open order.
#[derive(Clone, Copy, PartialEq, Eq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub market: MarketId,
    pub side: Side,
    pub price: Ticks,
    pub remaining: Lots,
    pub reduce_only: bool,
}

/// Which bucket of an account: the cross bucket or an isolated market's.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub enum Slot {
    Cross,
    Isolated(MarketId),
}

/// An account: its cross bucket, its isolated buckets (one per market in isolated mode) and its
/// open orders.
#[derive(Clone, PartialEq, Eq, Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub cross: Bucket,
    /// Markets in isolated mode with their buckets, sorted by market id.
    pub isolated: Vec<(MarketId, Bucket)>,
    /// Open orders in arrival order.
    pub orders: Vec<Order>,
}

impl Account {
    pub fn new(id: AccountId) -> Account {
        Account {
            id,
            cross: Bucket::default(),
            isolated: Vec::new(),
            orders: Vec::new(),
        }
    }

    /// The slot that holds the account's position and orders in `market`.
    pub fn slot_for(&self, market: MarketId) -> Slot {
        match self.isolated.binary_search_by_key(&market, |b| b.0) {
            Ok(_) => Slot::Isolated(market),
            Err(_) => Slot::Cross,
        }
    }

    pub fn bucket(&self, slot: Slot) -> Option<&Bucket> {
        match slot {
            Slot::Cross => Some(&self.cross),
            Slot::Isolated(m) => self
                .isolated
                .binary_search_by_key(&m, |b| b.0)
                .ok()
                .map(|i| &self.isolated[i].1),
        }
    }

    pub fn bucket_mut(&mut self, slot: Slot) -> Option<&mut Bucket> {
        match slot {
            Slot::Cross => Some(&mut self.cross),
            Slot::Isolated(m) => match self.isolated.binary_search_by_key(&m, |b| b.0) {
                Ok(i) => Some(&mut self.isolated[i].1),
                Err(_) => None,
            },
        }
    }

    /// The bucket for `market` (isolated or cross).
    pub fn bucket_for(&self, market: MarketId) -> &Bucket {
        match self.isolated.binary_search_by_key(&market, |b| b.0) {
            Ok(i) => &self.isolated[i].1,
            Err(_) => &self.cross,
        }
    }

    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.iter().find(|o| o.id == id)
    }

    /// Sum of the remaining lots of open orders on `side` in `market`.
    pub fn open_lots(&self, market: MarketId, side: Side) -> i128 {
        self.bucket_for(market).order_sums(market).lots(side)
    }

    /// Forgets every bucket's memoized sums (the account is about to change).
    pub fn forget_sums(&self) {
        self.cross.memo.forget_sums();
        for (_, b) in &self.isolated {
            b.memo.forget_sums();
        }
    }

    /// Every slot of the account: cross first, then isolated by market id.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        std::iter::once(Slot::Cross).chain(self.isolated.iter().map(|(m, _)| Slot::Isolated(*m)))
    }
}
