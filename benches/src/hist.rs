//! Latency histograms: creation, summaries and the `.hgrm` percentile text format.

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// The percentiles every table reports, in per-million (p50 = 500,000).
pub const PERCENTILES_PPM: [(u64, &str); 5] = [
    (500_000, "p50"),
    (900_000, "p90"),
    (990_000, "p99"),
    (999_000, "p99.9"),
    (999_900, "p99.99"),
];

/// A histogram of nanoseconds from 1 ns to 10 minutes at 3 significant digits.
pub fn new_ns() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("static histogram bounds are valid")
}

/// The value at a percentile given in per-million.
pub fn at_ppm(h: &Histogram<u64>, ppm: u64) -> u64 {
    h.value_at_quantile(ppm_quantile(ppm))
}

#[allow(clippy::float_arithmetic)] // reporting only: hdrhistogram takes its quantile as f64
fn ppm_quantile(ppm: u64) -> f64 {
    ppm as f64 / 1_000_000.0
}

/// Nanoseconds as a short human figure: `840 ns`, `12.3 us`, `4.56 ms`, `1.20 s`.
pub fn fmt_ns(ns: u64) -> String {
    let (unit, div) = match ns {
        0..1_000 => return format!("{ns} ns"),
        1_000..1_000_000 => ("us", 1_000),
        1_000_000..1_000_000_000 => ("ms", 1_000_000),
        _ => ("s", 1_000_000_000),
    };
    let whole = ns / div;
    let digits = match whole {
        0..10 => 2,
        10..100 => 1,
        _ => 0,
    };
    let frac = (ns % div) * 10u64.pow(digits) / div;
    if digits == 0 {
        format!("{whole} {unit}")
    } else {
        format!("{whole}.{frac:0width$} {unit}", width = digits as usize)
    }
}

/// The percentile cells of a Markdown row, then the max.
pub fn row_cells(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    for (ppm, _) in PERCENTILES_PPM {
        let _ = write!(s, " {} |", fmt_ns(at_ppm(h, ppm)));
    }
    let _ = write!(s, " {} |", fmt_ns(h.max()));
    s
}

/// The header cells matching [`row_cells`].
pub fn header_cells() -> (String, String) {
    let mut head = String::new();
    let mut rule = String::new();
    for (_, name) in PERCENTILES_PPM {
        let _ = write!(head, " {name} |");
        rule.push_str(" ---: |");
    }
    head.push_str(" max |");
    rule.push_str(" ---: |");
    (head, rule)
}

/// The histogram in HdrHistogram's percentile-distribution text format (`.hgrm`), values in
/// microseconds, as the usual plotter expects.
#[allow(clippy::float_arithmetic)] // reporting only: the format is decimal text
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let value_us = v.value_iterated_to() as f64 / 1_000.0;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value_us:12.3} {q:14.12} {:10} {:14.2}",
                cumulative(h, v.value_iterated_to()),
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(
                out,
                "{value_us:12.3} {q:14.12} {:10}",
                cumulative(h, v.value_iterated_to())
            );
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1_000.0,
        h.stdev() / 1_000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1_000.0,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

fn cumulative(h: &Histogram<u64>, value: u64) -> u64 {
    h.count_between(0, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_figures() {
        assert_eq!(fmt_ns(840), "840 ns");
        assert_eq!(fmt_ns(12_345), "12.3 us");
        assert_eq!(fmt_ns(4_560_000), "4.56 ms");
        assert_eq!(fmt_ns(1_204_000_000), "1.20 s");
        assert_eq!(fmt_ns(250_000), "250 us");
    }

    #[test]
    fn hgrm_lists_rising_values_and_totals() {
        let mut h = new_ns();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let text = hgrm(&h);
        assert!(text.starts_with("       Value"));
        assert!(text.contains("Total count    =        10000"));
        let values: Vec<f64> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(values.len() > 20);
        assert!(values.windows(2).all(|w| w[0] <= w[1]));
    }
}
