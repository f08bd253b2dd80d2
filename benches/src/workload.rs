//! The workloads: the seeded venue scenario (the engine's own generator, `margin_node::generate`,
//! behind `margin-bench gen`) and the synthetic venues of the scaling and peer runs, built event by event so
//! that the engine under test reaches its state the way a real one would.

use margin_engine::codec::parse_input;
use margin_engine::event::{Event, FillSpec};
use margin_engine::ids::{AccountId, Side, Symbol};
use margin_engine::num::Dec;
use margin_engine::rng::Rng;
use margin_engine::scenario::{Scenario, ScenarioConfig};
use margin_engine::Input;

/// The benchmark scenario: every listed market (12), a crash at 60 % of the stream that drives
/// liquidations, auctions, insurance payouts and ADL (the generator's defaults but the sizes).
pub fn scenario(accounts: u32, events: u64, seed: u64) -> ScenarioConfig {
    margin_node::generate::GenerateArgs {
        accounts,
        events,
        seed,
        ..Default::default()
    }
    .config()
    .expect("the standard scenario's sizes are valid")
}

/// The benchmark scenario with every third trader on portfolio margin over a set of 24 joint
/// moves (the portfolio rows of the report).
pub fn portfolio_scenario(accounts: u32, events: u64, seed: u64) -> ScenarioConfig {
    ScenarioConfig {
        portfolio_permille: 333,
        risk_scenarios: 24,
        ..scenario(accounts, events, seed)
    }
}

/// The scenario's inputs.
pub fn inputs(cfg: ScenarioConfig) -> Vec<Input> {
    Scenario::new(cfg).collect()
}

/// The synthetic venue of the scaling and peer runs: USDC, BTC with one oracle source (every
/// print moves the index), BTC-PERP at 10 % / 5 %.
const VENUE: &str = r#"{"type":"asset","ts":1,"asset":"USDC","decimals":6,"quote":true}
{"type":"asset","ts":1,"asset":"BTC","decimals":8,"price_decimals":2,"weight_init":"0.8","weight_maint":"0.9","oracle":{"sources":1,"min_sources":1,"max_age_us":100000000000000,"max_deviation":"0.5"}}
{"type":"market","ts":1,"market":"BTC-PERP","base":"BTC","size_decimals":4,"imf":"0.1","mmf":"0.05","liq_discount_start":"0.005","liq_discount_max":"0.03","liq_auction_us":30000000,"liq_if_fee":"0.005","liq_min_notional":"50","margin_call":"1.25"}
{"type":"insurance","ts":1,"amount":"1000000000"}"#;

/// The price the synthetic venue starts at, in ticks of 0.01 USDC (65,000 USDC).
pub const START_TICKS: i64 = 6_500_000;
/// The maker on the other side of every synthetic trade.
pub const MAKER: u64 = 1;

/// One step of the synthetic stream, in plain integers so that a peer engine can be fed the
/// same thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `micro` millionths of a USDC.
    Deposit { account: u64, micro: i128 },
    /// `taker` trades `lots` of 0.0001 BTC on `side` against the maker at `price_ticks` (0.01).
    Fill {
        taker: u64,
        side: Side,
        lots: i64,
        price_ticks: i64,
    },
    /// The oracle prints `price_ticks`.
    Tick { price_ticks: i64 },
}

impl Op {
    /// The engine's event for this step.
    pub fn event(&self) -> Event {
        match *self {
            Op::Deposit { account, micro } => Event::Deposit {
                account: AccountId(account),
                asset: usdc(),
                amount: Dec::new(micro, 6).expect("in range"),
            },
            Op::Fill {
                taker,
                side,
                lots,
                price_ticks,
            } => Event::Fill(FillSpec {
                market: market(),
                taker: AccountId(taker),
                maker: AccountId(MAKER),
                side,
                price: Dec::new(i128::from(price_ticks), 2).expect("in range"),
                size: Dec::new(i128::from(lots), 4).expect("in range"),
                taker_order: None,
                maker_order: None,
                taker_fee: None,
                maker_fee: None,
            }),
            Op::Tick { price_ticks } => Event::Oracle {
                asset: Symbol::new("BTC").expect("valid name"),
                source: 0,
                price: Dec::new(i128::from(price_ticks), 2).expect("in range"),
            },
        }
    }
}

/// A stream over the synthetic venue: its random source, clock, price and traders.
pub struct Synthetic {
    rng: Rng,
    pub ts: u64,
    pub price_ticks: i64,
    pub accounts: u64,
}

fn usdc() -> Symbol {
    Symbol::new("USDC").expect("valid name")
}

fn market() -> Symbol {
    Symbol::new("BTC-PERP").expect("valid name")
}

impl Synthetic {
    pub fn new(seed: u64) -> Synthetic {
        Synthetic {
            rng: Rng::new(seed),
            ts: 10,
            price_ticks: START_TICKS,
            accounts: 0,
        }
    }

    /// The engine's input for a step, stamped with the next microsecond.
    pub fn input(&mut self, op: Op) -> Input {
        self.ts += 1;
        Input {
            ts: self.ts,
            event: op.event(),
        }
    }

    /// The venue listing (engine only: a peer has its market built in).
    pub fn listing(&self) -> Vec<Input> {
        VENUE
            .lines()
            .map(|l| parse_input(l).expect("the synthetic venue parses"))
            .collect()
    }

    /// The first price and the maker's deposit (a billion USDC).
    pub fn opening(&self) -> [Op; 2] {
        [
            Op::Tick {
                price_ticks: self.price_ticks,
            },
            Op::Deposit {
                account: MAKER,
                micro: 1_000_000_000_000_000,
            },
        ]
    }

    /// Listing and opening as engine inputs.
    pub fn setup(&mut self) -> Vec<Input> {
        let mut out = self.listing();
        for op in self.opening() {
            out.push(self.input(op));
        }
        out
    }

    /// A trade of `lots` at the current price.
    pub fn fill(&self, taker: u64, side: Side, lots: i64) -> Op {
        Op::Fill {
            taker,
            side,
            lots,
            price_ticks: self.price_ticks,
        }
    }

    /// A new trader with 10,000 USDC and a position of 1-3x its equity (1 in 100 at 8x, near
    /// its maintenance line): a deposit and a fill.
    pub fn open_account(&mut self) -> [Op; 2] {
        self.accounts += 1;
        let account = MAKER + self.accounts;
        let equity_usdc = 10_000i128;
        let leverage = if self.rng.chance(10) {
            8
        } else {
            1 + self.rng.below(3) as i128
        };
        // lots of 0.0001 BTC: notional / price, price in ticks of 0.01.
        let lots = (equity_usdc * leverage * 10_000 * 100 / i128::from(self.price_ticks)).max(1);
        let side = self.side();
        [
            Op::Deposit {
                account,
                micro: equity_usdc * 1_000_000,
            },
            self.fill(account, side, lots as i64),
        ]
    }

    /// A random existing trader.
    pub fn some_account(&mut self) -> u64 {
        MAKER + 1 + self.rng.below(self.accounts.max(1))
    }

    /// A coin flip.
    pub fn side(&mut self) -> Side {
        if self.rng.chance(500) {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    /// An oracle print a random step of up to `bps` basis points from the last.
    pub fn tick(&mut self, bps: i64) -> Op {
        let step = (self.price_ticks * bps / 10_000).max(1);
        // Mean-reverting, so that long runs stay near the start and few accounts drift into
        // liquidation.
        let pull = (START_TICKS - self.price_ticks) / 50;
        self.price_ticks = (self.price_ticks + self.rng.range(-step, step) + pull).max(1);
        Op::Tick {
            price_ticks: self.price_ticks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_venue_is_accepted() {
        let mut s = Synthetic::new(1);
        let mut engine = margin_engine::Engine::new();
        let mut inputs = s.setup();
        for _ in 0..100 {
            for op in s.open_account() {
                inputs.push(s.input(op));
            }
        }
        for _ in 0..50 {
            let op = s.tick(5);
            inputs.push(s.input(op));
        }
        for i in &inputs {
            let first = engine.apply(i)[0].body.clone();
            assert!(
                matches!(first, margin_engine::Body::Accepted { .. }),
                "{:?}: {first:?}",
                i.event
            );
        }
        assert_eq!(engine.state.accounts.len(), 101);
    }
}
