//! Multi-source index prices: freshness by the event clock, exact median, outlier exclusion.
//!
//! The index is recomputed only on `oracle` events. Staleness is a function of the clock and is
//! judged whenever a decision or a report needs it, so it never needs a timer.

use crate::num::Ticks;
use crate::venue::{AssetConfig, OracleConfig};

/// The last price of one source and when (engine clock) it arrived.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct SourceSlot {
    pub price: Ticks,
    pub updated_us: u64,
    pub present: bool,
}

/// Oracle state of one asset.
#[derive(
    Clone, PartialEq, Eq, Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct OracleState {
    pub slots: Vec<SourceSlot>,
    /// The index, in ticks of the asset's price scale; `None` before the first one.
    pub index: Option<Ticks>,
    /// The staleness last reported with an `oracle_stale` record.
    pub stale_reported: bool,
}

/// What an `oracle` event did to the index.
#[derive(Clone, Debug)]
pub struct IndexUpdate {
    /// The new index, if enough fresh sources agreed.
    pub index: Option<Ticks>,
    /// Sources the index was taken from.
    pub kept: u8,
    /// Sources left out as outliers, with their prices (the first `outlier_count`).
    pub outliers: [(u32, Ticks); crate::limits::ORACLE_SOURCES_MAX as usize],
    pub outlier_count: usize,
}

impl Default for IndexUpdate {
    fn default() -> Self {
        IndexUpdate {
            index: None,
            kept: 0,
            outliers: [(0, Ticks(0)); crate::limits::ORACLE_SOURCES_MAX as usize],
            outlier_count: 0,
        }
    }
}

impl IndexUpdate {
    /// The sources left out.
    pub fn outliers(&self) -> &[(u32, Ticks)] {
        &self.outliers[..self.outlier_count]
    }
}

impl OracleState {
    pub fn new(cfg: &OracleConfig) -> OracleState {
        OracleState {
            slots: vec![SourceSlot::default(); usize::from(cfg.sources)],
            index: None,
            stale_reported: true,
        }
    }

    /// Follows a change of the number of sources: new slots start empty, dropped ones go.
    pub fn resize(&mut self, cfg: &OracleConfig) {
        self.slots
            .resize(usize::from(cfg.sources), SourceSlot::default());
    }

    fn is_fresh(slot: &SourceSlot, cfg: &OracleConfig, clock_us: u64) -> bool {
        slot.present && clock_us.saturating_sub(slot.updated_us) <= cfg.max_age_us
    }

    /// Fewer than `min_sources` fresh sources at `clock_us`.
    pub fn is_stale(&self, cfg: &OracleConfig, clock_us: u64) -> bool {
        let fresh = self
            .slots
            .iter()
            .filter(|s| Self::is_fresh(s, cfg, clock_us))
            .count();
        fresh < usize::from(cfg.min_sources)
    }

    /// Records a source's price at `clock_us` and recomputes the index.
    pub fn update(
        &mut self,
        asset: &AssetConfig,
        source: usize,
        price: Ticks,
        clock_us: u64,
    ) -> IndexUpdate {
        let Some(cfg) = asset.oracle.as_ref() else {
            return IndexUpdate::default();
        };
        self.slots[source] = SourceSlot {
            price,
            updated_us: clock_us,
            present: true,
        };
        // A stack buffer: the oracle path must not allocate per event.
        let mut buf = [(0u32, Ticks(0)); crate::limits::ORACLE_SOURCES_MAX as usize];
        let mut n = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if Self::is_fresh(s, cfg, clock_us) {
                buf[n] = (i as u32, s.price);
                n += 1;
            }
        }
        if n < usize::from(cfg.min_sources) {
            return IndexUpdate::default();
        }
        let fresh = &mut buf[..n];
        fresh.sort_unstable_by_key(|&(i, p)| (p, i));
        let twice_median = twice_median(fresh);
        let is_outlier = |p: Ticks| {
            // |p - m| > dev * m, with m = twice_median / 2, in integers:
            // |2p - 2m| * 10^18 > dev * 2m.
            let diff = (2 * i128::from(p.0) - twice_median).unsigned_abs();
            diff * 1_000_000_000_000_000_000u128
                > cfg.max_deviation.0 as u128 * twice_median as u128
        };
        let kept_count = fresh.iter().filter(|(_, p)| !is_outlier(*p)).count();
        let mut update = IndexUpdate::default();
        let mut kept = [(0u32, Ticks(0)); crate::limits::ORACLE_SOURCES_MAX as usize];
        let mut k = 0;
        let drop_outliers = kept_count >= usize::from(cfg.min_sources) && kept_count < n;
        for &(i, p) in fresh.iter() {
            if drop_outliers && is_outlier(p) {
                update.outliers[update.outlier_count] = (i, p);
                update.outlier_count += 1;
            } else {
                kept[k] = (i, p);
                k += 1;
            }
        }
        let fresh = &kept[..k];
        let index = median_index(fresh, asset);
        update.index = Some(index);
        update.kept = fresh.len() as u8;
        self.index = Some(index);
        update
    }
}

/// Twice the exact median of sorted prices (an integer even for an even count).
fn twice_median(sorted: &[(u32, Ticks)]) -> i128 {
    let n = sorted.len();
    let mid = i128::from(sorted[n / 2].1 .0);
    if n % 2 == 1 {
        2 * mid
    } else {
        i128::from(sorted[n / 2 - 1].1 .0) + mid
    }
}

/// The index from sorted kept prices: the median, and for an even count the mean of the middle
/// two rounded down to the asset's current price decimals.
fn median_index(sorted: &[(u32, Ticks)], asset: &AssetConfig) -> Ticks {
    let twice = twice_median(sorted);
    if sorted.len() % 2 == 1 {
        return Ticks((twice / 2) as i64);
    }
    // Prices are positive, so integer division is the floor; then floor to the coarser grid
    // when price_decimals was lowered below the listing's scale.
    let mean = twice / 2;
    let step = 10i128.pow(u32::from(asset.price_scale - asset.price_decimals));
    Ticks((mean - mean % step) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Symbol;
    use crate::num::Ratio;

    fn asset(sources: u8, min: u8, dev: Ratio) -> AssetConfig {
        AssetConfig {
            name: Symbol::new("BTC").unwrap(),
            decimals: 8,
            quote: false,
            price_decimals: 2,
            price_scale: 2,
            weight_init: Ratio::ZERO,
            weight_maint: Ratio::ZERO,
            oracle: Some(OracleConfig {
                sources,
                min_sources: min,
                max_age_us: 10,
                max_deviation: dev,
            }),
            breaker: None,
        }
    }

    #[test]
    fn needs_min_sources_fresh() {
        let a = asset(3, 2, Ratio(50_000_000_000_000_000));
        let mut o = OracleState::new(a.oracle.as_ref().unwrap());
        assert!(o.update(&a, 0, Ticks(100), 0).index.is_none());
        assert!(o.is_stale(a.oracle.as_ref().unwrap(), 0));
        assert_eq!(o.update(&a, 1, Ticks(103), 5).index, Some(Ticks(101)));
        // mean of 100 and 103 = 101.5, rounded down.
        assert!(!o.is_stale(a.oracle.as_ref().unwrap(), 10));
        assert!(o.is_stale(a.oracle.as_ref().unwrap(), 11));
        // at 16 sources 0 and 1 are too old: one fresh source, index kept.
        assert!(o.update(&a, 2, Ticks(200), 16).index.is_none());
        assert_eq!(o.index, Some(Ticks(101)));
    }

    #[test]
    fn outliers_left_out_when_enough_remain() {
        let a = asset(3, 2, Ratio(50_000_000_000_000_000)); // 5 %
        let mut o = OracleState::new(a.oracle.as_ref().unwrap());
        o.update(&a, 0, Ticks(10000), 0);
        o.update(&a, 1, Ticks(10100), 0);
        let u = o.update(&a, 2, Ticks(20000), 0);
        assert_eq!(u.outliers(), &[(2, Ticks(20000))]);
        assert_eq!(u.index, Some(Ticks(10050)));
        assert_eq!(u.kept, 2);
    }

    #[test]
    fn two_sources_never_drop_either() {
        let a = asset(2, 1, Ratio(10_000_000_000_000_000));
        let mut o = OracleState::new(a.oracle.as_ref().unwrap());
        o.update(&a, 0, Ticks(100), 0);
        let u = o.update(&a, 1, Ticks(300), 0);
        assert!(u.outliers().is_empty());
        assert_eq!(u.index, Some(Ticks(200)));
    }
}
