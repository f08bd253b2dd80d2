//! A seeded, deterministic venue scenario: the built-in demo, the benchmark workload and the
//! simulation tests all come from here. Same configuration, same events, byte for byte.
//!
//! The generator runs a shadow engine over what it emits, so that the stream behaves like a real
//! venue's: a trade is an `order` that passed the pre-trade check followed by its `fill`;
//! liquidators bid on auctions that really started; a crash drives margin calls, liquidations,
//! insurance payouts and ADL. It never reads a clock or the environment.

use crate::engine::Engine;
use crate::event::{
    AssetParams, AssetSpec, Event, FillSpec, Input, MarketParams, MarketSpec, OracleSpec,
    OrderSpec, RiskScenariosSpec, ScenarioSpec, TierSpec,
};
use crate::ids::{AccountId, OrderId, Side, Symbol};
use crate::num::Dec;
use crate::record::Body;
use crate::rng::Rng;
use std::collections::VecDeque;

/// What to generate.
#[derive(Clone, Debug)]
pub struct ScenarioConfig {
    pub seed: u64,
    /// Trading accounts (market makers and liquidators come on top).
    pub accounts: u32,
    /// Events after the venue set-up and the initial deposits.
    pub events: u64,
    /// Markets, 3 to 12.
    pub markets: u8,
    /// Where the crash starts, in per-mille of `events` (1000: no crash).
    pub crash_at_permille: u32,
    /// How far the crashed assets fall, in basis points.
    pub crash_depth_bps: u32,
    /// Simulated hours the events span (funding is paid every simulated hour).
    pub hours: u32,
    /// Traders that switch their cross bucket to portfolio margin, per mille (0: none, and no
    /// scenario set is listed: the stream is that of a venue without portfolio margin).
    pub portfolio_permille: u32,
    /// Scenarios in the venue's set when `portfolio_permille` > 0 (1 to 64).
    pub risk_scenarios: u8,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig {
            seed: 42,
            accounts: 5_000,
            events: 200_000,
            markets: 6,
            crash_at_permille: 600,
            crash_depth_bps: 3_000,
            hours: 24,
            portfolio_permille: 0,
            risk_scenarios: 24,
        }
    }
}

impl ScenarioConfig {
    /// A small venue (150 accounts, 5 markets, 12,000 events over 6 hours) with a crash whose
    /// start and depth vary with the seed: the stream the equivalence checks run.
    pub fn small_crash(seed: u64) -> ScenarioConfig {
        ScenarioConfig {
            seed,
            accounts: 150,
            events: 12_000,
            markets: 5,
            crash_at_permille: 300 + 100 * seed as u32,
            crash_depth_bps: 2_000 + 500 * seed as u32,
            hours: 6,
            ..ScenarioConfig::default()
        }
    }
}

/// One listed asset of the scenario: name, decimals, price decimals, start price in ticks,
/// weights (per-mille), size decimals of its market, margin fractions (per-mille).
struct AssetDef {
    name: &'static str,
    decimals: u8,
    price_decimals: u8,
    start_ticks: i64,
    weights: (u32, u32),
    size_decimals: u8,
    fractions: (u32, u32),
}

const ASSETS: [AssetDef; 12] = [
    AssetDef {
        name: "BTC",
        decimals: 8,
        price_decimals: 2,
        start_ticks: 6_500_000,
        weights: (800, 900),
        size_decimals: 4,
        fractions: (100, 50),
    },
    AssetDef {
        name: "ETH",
        decimals: 8,
        price_decimals: 2,
        start_ticks: 320_000,
        weights: (750, 850),
        size_decimals: 3,
        fractions: (100, 50),
    },
    AssetDef {
        name: "SOL",
        decimals: 9,
        price_decimals: 4,
        start_ticks: 1_500_000,
        weights: (600, 700),
        size_decimals: 1,
        fractions: (150, 75),
    },
    AssetDef {
        name: "AVAX",
        decimals: 8,
        price_decimals: 3,
        start_ticks: 35_000,
        weights: (0, 0),
        size_decimals: 1,
        fractions: (200, 100),
    },
    AssetDef {
        name: "LINK",
        decimals: 8,
        price_decimals: 3,
        start_ticks: 15_000,
        weights: (0, 0),
        size_decimals: 1,
        fractions: (200, 100),
    },
    AssetDef {
        name: "DOGE",
        decimals: 8,
        price_decimals: 5,
        start_ticks: 15_000,
        weights: (0, 0),
        size_decimals: 0,
        fractions: (200, 100),
    },
    AssetDef {
        name: "ARB",
        decimals: 8,
        price_decimals: 4,
        start_ticks: 12_000,
        weights: (0, 0),
        size_decimals: 0,
        fractions: (250, 125),
    },
    AssetDef {
        name: "OP",
        decimals: 8,
        price_decimals: 4,
        start_ticks: 25_000,
        weights: (0, 0),
        size_decimals: 0,
        fractions: (250, 125),
    },
    AssetDef {
        name: "SUI",
        decimals: 8,
        price_decimals: 4,
        start_ticks: 18_000,
        weights: (0, 0),
        size_decimals: 0,
        fractions: (250, 125),
    },
    AssetDef {
        name: "APT",
        decimals: 8,
        price_decimals: 3,
        start_ticks: 9_000,
        weights: (0, 0),
        size_decimals: 1,
        fractions: (250, 125),
    },
    AssetDef {
        name: "INJ",
        decimals: 8,
        price_decimals: 3,
        start_ticks: 25_000,
        weights: (0, 0),
        size_decimals: 1,
        fractions: (250, 125),
    },
    AssetDef {
        name: "TIA",
        decimals: 8,
        price_decimals: 3,
        start_ticks: 8_000,
        weights: (0, 0),
        size_decimals: 1,
        fractions: (250, 125),
    },
];

/// Oracle sources per asset.
const SOURCES: u64 = 3;
/// Market makers and liquidators.
const MAKERS: u64 = 4;
const LIQUIDATORS: u64 = 3;
/// Account ids: makers from 1, liquidators after them, traders after those.
const MAKER_BASE: u64 = 1;
const LIQUIDATOR_BASE: u64 = MAKER_BASE + MAKERS;
const TRADER_BASE: u64 = LIQUIDATOR_BASE + LIQUIDATORS;
/// Auction length of the scenario's markets.
const AUCTION_US: u64 = 30_000_000;

fn sym(s: &str) -> Symbol {
    Symbol::new(s).expect("scenario names are valid")
}

fn dec(mantissa: i128, scale: u8) -> Dec {
    Dec::new(mantissa, scale).expect("scenario decimals are in range")
}

fn permille(v: u32) -> Dec {
    dec(i128::from(v), 3)
}

/// The generator: an iterator of inputs.
pub struct Scenario {
    cfg: ScenarioConfig,
    rng: Rng,
    shadow: Engine,
    queue: VecDeque<Input>,
    /// Bids waiting for their event: (emit at event number, liquidator, account, market index).
    bids: Vec<(u64, u64, u64, usize)>,
    clock_us: u64,
    step_us: u64,
    emitted: u64,
    setup_done: bool,
    prices: Vec<i64>,
    next_order: Vec<u64>,
    next_hour_us: u64,
    /// Volatility regime: per-mille of the price a tick may move.
    vol_permille: i64,
    /// Resting orders to cancel later.
    cancels: VecDeque<(u64, u64)>,
    /// Crash steps still to come, and each step's fall in basis points.
    crash_steps_left: u32,
}

/// The crash falls in this many oracle ticks of each crashed asset.
const CRASH_STEPS: u32 = 12;

impl Scenario {
    pub fn new(cfg: ScenarioConfig) -> Scenario {
        let markets = usize::from(cfg.markets.clamp(3, 12));
        let total_us = u64::from(cfg.hours.max(1)) * 3_600_000_000;
        let step_us = (total_us / cfg.events.max(1)).max(1);
        let accounts = TRADER_BASE + u64::from(cfg.accounts) + 1;
        Scenario {
            rng: Rng::new(cfg.seed),
            prices: ASSETS[..markets].iter().map(|a| a.start_ticks).collect(),
            cfg: ScenarioConfig {
                markets: markets as u8,
                ..cfg
            },
            shadow: Engine::new(),
            queue: VecDeque::new(),
            bids: Vec::new(),
            clock_us: 1_000_000,
            step_us,
            emitted: 0,
            setup_done: false,
            next_order: vec![1; accounts as usize],
            next_hour_us: 1_000_000 + 3_600_000_000,
            vol_permille: 2,
            cancels: VecDeque::new(),
            crash_steps_left: 0,
        }
    }

    /// The configuration (with the market count clamped).
    pub fn config(&self) -> &ScenarioConfig {
        &self.cfg
    }

    fn markets(&self) -> usize {
        usize::from(self.cfg.markets)
    }

    /// Oracle max age: a few times the expected gap between two prints of one source.
    fn max_age_us(&self) -> u64 {
        let per_source_events = self.markets() as u64 * 7; // oracle ticks are ~15 % of events
        (self.step_us * per_source_events * 12).max(10_000_000)
    }

    /// Applies an input to the shadow engine, queues it for output and reacts to what it caused.
    fn push(&mut self, event: Event) {
        let input = Input {
            ts: self.clock_us,
            event,
        };
        let records = self.shadow.apply(&input);
        let mut started = Vec::new();
        for r in records {
            if let Body::LiquidationStarted {
                account, bucket: _, ..
            } = &r.body
            {
                started.push(account.0);
            }
        }
        for account in started {
            self.schedule_bids(account);
        }
        self.queue.push_back(input);
    }

    fn setup(&mut self) {
        self.push(Event::Asset(Box::new(AssetSpec {
            asset: sym("USDC"),
            decimals: 6,
            quote: true,
            params: AssetParams::default(),
        })));
        let max_age_us = self.max_age_us();
        for a in &ASSETS[..self.markets()] {
            self.push(Event::Asset(Box::new(AssetSpec {
                asset: sym(a.name),
                decimals: u64::from(a.decimals),
                quote: false,
                params: AssetParams {
                    price_decimals: Some(u64::from(a.price_decimals)),
                    weight_init: Some(permille(a.weights.0)),
                    weight_maint: Some(permille(a.weights.1)),
                    oracle: Some(OracleSpec {
                        sources: SOURCES,
                        min_sources: 2,
                        max_age_us,
                        max_deviation: dec(5, 2),
                    }),
                    breaker: None,
                },
            })));
        }
        for (i, a) in ASSETS[..self.markets()].iter().enumerate() {
            self.push(Event::Market(Box::new(self.market_spec(i, a))));
        }
        self.push(Event::Insurance {
            amount: dec(2_000_000, 0),
            market: None,
        });
        for i in 0..self.markets() {
            self.push_prices(i);
        }
        if self.cfg.portfolio_permille > 0 {
            self.push(Event::RiskScenarios(Box::new(self.risk_scenarios())));
        }
        self.fund_accounts();
    }

    /// The venue's scenario set: joint moves of every listed asset (a common move of up to
    /// ±15 % and an idiosyncratic one of up to ±3 %), weights 1, 0.5 or 0.3. Drawn from its own
    /// generator, so the rest of the stream does not depend on it.
    fn risk_scenarios(&self) -> RiskScenariosSpec {
        let mut rng = Rng::new(self.cfg.seed ^ 0x5ce9_a210_5e75);
        let count = self.cfg.risk_scenarios.clamp(1, 64);
        let scenarios = (0..count)
            .map(|j| {
                let common = rng.range(-150, 150);
                let moves = ASSETS[..self.markets()]
                    .iter()
                    .map(|a| {
                        let r = common + rng.range(-30, 30);
                        (a.name.to_string(), dec(i128::from(r), 3))
                    })
                    .collect();
                let weight = [dec(1, 0), dec(5, 1), dec(3, 1)][rng.below(3) as usize];
                ScenarioSpec {
                    name: format!("s{j:02}"),
                    weight,
                    moves,
                }
            })
            .collect();
        RiskScenariosSpec {
            name: "bench".to_string(),
            version: 1,
            im_factor: Some(dec(15, 1)),
            le_factor: Some(dec(125, 2)),
            scenarios,
        }
    }

    fn market_spec(&self, i: usize, a: &AssetDef) -> MarketSpec {
        let tiers = (i == 0).then(|| {
            vec![TierSpec {
                above: dec(2_000_000, 0),
                imf: permille(a.fractions.0 * 2),
                mmf: permille(a.fractions.1 * 2),
            }]
        });
        MarketSpec {
            market: sym(&format!("{}-PERP", a.name)),
            base: sym(a.name),
            size_decimals: u64::from(a.size_decimals),
            params: MarketParams {
                imf: Some(permille(a.fractions.0)),
                mmf: Some(permille(a.fractions.1)),
                tiers,
                upnl_weight_init: Some(dec(1, 0)),
                funding_rate_cap: Some(dec(1, 2)),
                liq_discount_start: Some(dec(5, 3)),
                liq_discount_max: Some(dec(3, 2)),
                liq_auction_us: Some(AUCTION_US),
                liq_if_fee: Some(dec(5, 3)),
                liq_min_notional: Some(dec(50, 0)),
                margin_call: Some(dec(125, 2)),
                ..MarketParams::default()
            },
        }
    }

    fn fund_accounts(&mut self) {
        for m in 0..MAKERS {
            self.deposit(MAKER_BASE + m, "USDC", 50_000_000_000_000);
        }
        for l in 0..LIQUIDATORS {
            self.deposit(LIQUIDATOR_BASE + l, "USDC", 5_000_000_000_000);
        }
        for t in 0..u64::from(self.cfg.accounts) {
            // Zipf-like wealth: a few large accounts, many small ones (1k .. 1M USDC).
            let usdc = 1_000_000_000 * (1 + 1000 / (1 + self.rng.below(1000)));
            self.deposit(TRADER_BASE + t, "USDC", usdc as i128);
            if self.rng.chance(200) {
                let amount = i128::from(self.rng.range(1_000_000, 50_000_000));
                self.deposit(TRADER_BASE + t, "BTC", amount);
            }
            if self.rng.chance(150) {
                let amount = i128::from(self.rng.range(10_000_000, 500_000_000));
                self.deposit(TRADER_BASE + t, "ETH", amount);
            }
            // Every trader in a fixed, evenly spread share (not a draw of the stream's
            // generator, so the rest of the stream stays the same).
            if (t * 7919) % 1000 < u64::from(self.cfg.portfolio_permille) {
                self.push(Event::CrossMode {
                    account: AccountId(TRADER_BASE + t),
                    portfolio: true,
                });
            }
        }
    }

    fn deposit(&mut self, account: u64, asset: &str, native: i128) {
        let d = if asset == "USDC" { 6 } else { 8 };
        self.push(Event::Deposit {
            account: AccountId(account),
            asset: sym(asset),
            amount: dec(native, d),
        });
    }

    /// Prints every source of asset `i` near its current price (sometimes an outlier, sometimes
    /// a missing source).
    fn push_prices(&mut self, i: usize) {
        let a = &ASSETS[i];
        for s in 0..SOURCES {
            if self.setup_done && self.rng.chance(30) {
                continue; // this source is late
            }
            let mut p = self.prices[i];
            let noise = (p / 5000).max(1);
            p += self.rng.range(-noise, noise);
            if self.setup_done && self.rng.chance(8) {
                p += p / 5; // a bad print, 20 % off
            }
            self.push(Event::Oracle {
                asset: sym(a.name),
                source: s,
                price: dec(i128::from(p.max(1)), a.price_decimals),
            });
        }
    }

    /// One step of the random walk of asset `i`, with volatility bursts.
    fn move_price(&mut self, i: usize) {
        let p = self.prices[i];
        if self.rng.chance(2) {
            self.vol_permille = if self.vol_permille > 2 { 2 } else { 6 };
        }
        let step = (p * self.vol_permille / 1000).max(1);
        self.prices[i] = (p + self.rng.range(-step, step)).max(1);
    }

    /// One step of the crash: the first three assets fall together.
    fn crash_step(&mut self) {
        self.crash_steps_left -= 1;
        let per_step_bps = i64::from(self.cfg.crash_depth_bps / CRASH_STEPS);
        for i in 0..3.min(self.markets()) {
            let p = self.prices[i];
            self.prices[i] = (p - p * per_step_bps / 10_000).max(1);
            self.push_prices(i);
        }
    }

    fn funding(&mut self) {
        for (i, a) in ASSETS[..self.markets()].iter().enumerate() {
            let rate = self.rng.range(-500, 500); // up to 0.05 % per hour
            let _ = i;
            self.push(Event::Funding {
                market: sym(&format!("{}-PERP", a.name)),
                rate: dec(i128::from(rate), 6),
            });
        }
    }

    fn trader(&mut self) -> u64 {
        TRADER_BASE + self.rng.zipf(u64::from(self.cfg.accounts.max(1)))
    }

    fn next_order_id(&mut self, account: u64) -> u64 {
        let slot = &mut self.next_order[account as usize];
        let id = *slot;
        *slot += 1;
        id
    }

    /// A trader's order (the pre-trade check) and, when accepted, its fill against a maker.
    fn trade(&mut self) {
        let taker = self.trader();
        let m = self.rng.zipf(self.markets() as u64) as usize;
        let a = &ASSETS[m];
        let equity = self
            .shadow
            .state
            .account(AccountId(taker))
            .map_or(0, |acc| acc.cross.balance(crate::ids::AssetId(0)).0);
        // Most traders run 1-3x; a few push toward the 10x the margin allows.
        let leverage = if self.rng.chance(150) {
            self.rng.range(5, 10)
        } else {
            self.rng.range(1, 3)
        } as i128;
        let notional_native = (equity * leverage / 4).max(10_000_000);
        let price = self.prices[m];
        // lots = notional / price, in the market's size and price units.
        let lots = notional_native
            * 10i128.pow(u32::from(a.size_decimals) + u32::from(a.price_decimals))
            / (i128::from(price) * 1_000_000);
        let lots = lots.clamp(1, 1_000_000_000) as i64;
        let side = if self.rng.chance(500) {
            Side::Buy
        } else {
            Side::Sell
        };
        let slip = (price / 2000).max(1);
        let limit = if side == Side::Buy {
            price + slip
        } else {
            price - slip
        };
        let order = self.next_order_id(taker);
        self.push(Event::Order(OrderSpec {
            account: AccountId(taker),
            order: OrderId(order),
            market: sym(&format!("{}-PERP", a.name)),
            side,
            price: dec(i128::from(limit.max(1)), a.price_decimals),
            size: dec(i128::from(lots), a.size_decimals),
            reduce_only: false,
        }));
        let accepted = self
            .shadow
            .state
            .account(AccountId(taker))
            .is_some_and(|acc| acc.order(OrderId(order)).is_some());
        if !accepted {
            return;
        }
        let maker = MAKER_BASE + self.rng.below(MAKERS);
        let fill_price = price + self.rng.range(-slip, slip);
        let fee = i128::from(lots) * i128::from(fill_price)
            / 10i128.pow(u32::from(a.size_decimals) + u32::from(a.price_decimals))
            * 5;
        self.clock_us += 1;
        self.push(Event::Fill(FillSpec {
            market: sym(&format!("{}-PERP", a.name)),
            taker: AccountId(taker),
            maker: AccountId(maker),
            side,
            price: dec(i128::from(fill_price.max(1)), a.price_decimals),
            size: dec(i128::from(lots), a.size_decimals),
            taker_order: Some(OrderId(order)),
            maker_order: None,
            taker_fee: Some(dec(fee * 100, 6)),
            maker_fee: Some(dec(-fee * 20, 6)),
        }));
    }

    /// A resting order that is cancelled later (orders and cancels without a fill).
    fn resting_order(&mut self) {
        let account = self.trader();
        let m = self.rng.below(self.markets() as u64) as usize;
        let a = &ASSETS[m];
        let price = self.prices[m];
        let side = if self.rng.chance(500) {
            Side::Buy
        } else {
            Side::Sell
        };
        let away = price / 50;
        let limit = if side == Side::Buy {
            price - away
        } else {
            price + away
        };
        let order = self.next_order_id(account);
        self.push(Event::Order(OrderSpec {
            account: AccountId(account),
            order: OrderId(order),
            market: sym(&format!("{}-PERP", a.name)),
            side,
            price: dec(i128::from(limit.max(1)), a.price_decimals),
            size: dec(10i128.pow(u32::from(a.size_decimals)), a.size_decimals),
            reduce_only: false,
        }));
        self.cancels.push_back((account, order));
        if self.cancels.len() > 64 || self.rng.chance(700) {
            if let Some((account, order)) = self.cancels.pop_front() {
                self.push(Event::Cancel {
                    account: AccountId(account),
                    order: OrderId(order),
                });
            }
        }
    }

    fn money_move(&mut self) {
        let account = self.trader();
        if self.rng.chance(600) {
            let amount = i128::from(self.rng.range(100, 10_000)) * 1_000_000;
            self.deposit(account, "USDC", amount);
        } else {
            let amount = dec(i128::from(self.rng.range(100, 20_000)) * 1_000_000, 6);
            self.push(Event::Withdraw {
                account: AccountId(account),
                asset: sym("USDC"),
                amount,
            });
        }
    }

    /// Liquidators bid on a bucket that started liquidation, within its auction.
    fn schedule_bids(&mut self, account: u64) {
        let Some(acc) = self.shadow.state.account(AccountId(account)) else {
            return;
        };
        let markets: Vec<usize> = acc
            .cross
            .positions
            .iter()
            .map(|p| p.market.index())
            .collect();
        for m in markets {
            self.schedule_bid(account, m);
        }
    }

    fn schedule_bid(&mut self, account: u64, m: usize) {
        let liquidator = LIQUIDATOR_BASE + self.rng.below(LIQUIDATORS);
        let auction_steps = (AUCTION_US / self.step_us).max(1);
        let delay = 1 + self.rng.below((auction_steps / 3).max(1));
        self.bids
            .push((self.emitted + delay, liquidator, account, m));
    }

    fn due_bids(&mut self) {
        let now = self.emitted;
        let due: Vec<(u64, u64, u64, usize)> =
            self.bids.iter().copied().filter(|b| b.0 <= now).collect();
        self.bids.retain(|b| b.0 > now);
        for (_, liquidator, account, m) in due {
            let a = &ASSETS[m];
            let market = crate::ids::MarketId(m as u16);
            let size = self
                .shadow
                .state
                .account(AccountId(account))
                .and_then(|acc| acc.cross.position(market))
                .map_or(0, |p| p.size.0.abs());
            if size == 0 {
                continue;
            }
            // A quarter of the position at a time (all of it when small); the engine refuses a
            // bid larger than the liquidation needs, as it would a real liquidator's.
            let bid = if size < 8 { size } else { size / 4 };
            self.push(Event::Liquidate {
                liquidator: AccountId(liquidator),
                account: AccountId(account),
                market: sym(&format!("{}-PERP", a.name)),
                size: dec(i128::from(bid), a.size_decimals),
            });
            let still = self
                .shadow
                .state
                .account(AccountId(account))
                .is_some_and(|acc| {
                    acc.cross.is_liquidating() && acc.cross.position(market).is_some()
                });
            if still {
                self.schedule_bid(account, m);
            }
        }
    }

    /// Generates the next step's events into the queue.
    fn step(&mut self) {
        self.clock_us += self.step_us;
        self.emitted += 1;
        if self.clock_us >= self.next_hour_us {
            self.next_hour_us += 3_600_000_000;
            self.funding();
        }
        self.due_bids();
        let crash_start = self.cfg.events * u64::from(self.cfg.crash_at_permille) / 1000;
        if self.emitted == crash_start && self.cfg.crash_at_permille < 1000 {
            self.crash_steps_left = CRASH_STEPS;
        }
        if self.crash_steps_left > 0 && self.emitted.is_multiple_of(3) {
            self.crash_step();
            return;
        }
        let r = self.rng.below(1000);
        if r < 50 {
            let i = self.rng.below(self.markets() as u64) as usize;
            self.move_price(i);
            self.push_prices(i);
        } else if r < 90 {
            self.resting_order();
        } else if r < 130 {
            self.money_move();
        } else {
            self.trade();
        }
    }
}

impl Iterator for Scenario {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        if !self.setup_done {
            self.setup();
            self.setup_done = true;
        }
        while self.queue.is_empty() {
            if self.emitted >= self.cfg.events {
                return None;
            }
            self.step();
        }
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ScenarioConfig {
        ScenarioConfig {
            seed: 3,
            accounts: 50,
            events: 3_000,
            markets: 4,
            ..ScenarioConfig::default()
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<Input> = Scenario::new(small()).collect();
        let b: Vec<Input> = Scenario::new(small()).collect();
        assert_eq!(a, b);
        let c: Vec<Input> = Scenario::new(ScenarioConfig { seed: 4, ..small() }).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn timestamps_never_go_backwards() {
        let inputs: Vec<Input> = Scenario::new(small()).collect();
        assert!(inputs.windows(2).all(|w| w[0].ts <= w[1].ts));
    }
}
