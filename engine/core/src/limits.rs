//! Limits on everything the engine holds. Inputs beyond them are rejected with the field's reason
//! code; within them, no valuation can overflow the 256-bit intermediates.

/// Listed assets.
pub const ASSETS_MAX: usize = 64;
/// Listed markets.
pub const MARKETS_MAX: usize = 512;
/// Margin tiers of one market.
pub const TIERS_MAX: usize = 16;
/// Oracle sources of one asset.
pub const ORACLE_SOURCES_MAX: u64 = 32;
/// Decimals of an asset, a size or a price.
pub const DECIMALS_MAX: u64 = 18;
/// Open orders of one account.
pub const ORDERS_PER_ACCOUNT_MAX: usize = 1024;
/// Accounts.
pub const ACCOUNTS_MAX: usize = 50_000_000;
/// Size of one order, fill, bid or position, in lots.
pub const LOTS_MAX: i64 = 1_000_000_000_000_000;
/// A price, in ticks.
pub const TICKS_MAX: i64 = 1_000_000_000_000_000;
/// One amount (deposit, withdrawal, fee, transfer), in native units.
pub const AMOUNT_MAX: i128 = 1_000_000_000_000_000_000_000_000_000_000; // 10^30
/// A balance, the funds and pools, in native units.
pub const BALANCE_MAX: i128 = 100_000_000_000_000_000_000_000_000_000_000; // 10^32
/// Microseconds of an auction, an oracle age or a window.
pub const DURATION_US_MAX: u64 = 1_000_000_000_000_000_000;
/// Farthest one input may move the engine clock forward, in microseconds (366 days). An input
/// stamped further ahead is rejected and leaves the clock where it was: one bad timestamp would
/// otherwise pin the clock and make every oracle stale for good.
pub const CLOCK_STEP_MAX_US: u64 = 366 * 24 * 3600 * 1_000_000;
/// Latest timestamp accepted at all (2200-01-01T00:00:00Z, in microseconds since the epoch):
/// the bound for the first input, when there is no clock to step from.
pub const TS_MAX_US: u64 = 7_258_118_400_000_000;
