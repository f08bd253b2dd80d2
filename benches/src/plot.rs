//! PNG plots of the report: latency by percentile per offered rate, and tick / fill cost by
//! venue size. Text needs a TrueType font; the usual system paths are tried (Debian's
//! `fonts-dejavu-core`), and without one the plots are skipped with a note in the report.

#![allow(clippy::float_arithmetic)] // plotting coordinates; nothing here feeds the engine

use crate::hist::at_ppm;
use crate::scaling::Point;
use crate::sweep::RatePoint;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a system font once; the error says what to install.
fn font() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let bytes = FONT_PATHS
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or("no TrueType font found (install fonts-dejavu-core)")?;
            // Registered fonts live for the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| "the system font could not be read".to_string())
        })
        .clone()
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Percentiles along the x axis, as "nines": 1 = p90, 2 = p99, ... 5 = p99.999.
const NINES_PPM: [u64; 11] = [
    0, 500_000, 750_000, 900_000, 950_000, 990_000, 995_000, 999_000, 999_500, 999_900, 999_990,
];

fn nines(ppm: u64) -> f64 {
    if ppm >= 1_000_000 {
        return 6.0;
    }
    let rest = (1_000_000 - ppm) as f64 / 1_000_000.0;
    -rest.log10()
}

/// Latency (us, log scale) by percentile, one line per offered rate.
pub fn latency_by_percentile(points: &[RatePoint], title: &str, out: &Path) -> Result<(), String> {
    font()?;
    let max_us = points
        .iter()
        .map(|p| p.latency.max() as f64 / 1_000.0)
        .fold(1.0, f64::max);
    let root = BitMapBackend::new(out, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0f64..5.0f64, (0.1f64..max_us * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, us")
        .x_labels(6)
        .y_label_formatter(&|y| short(*y))
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0".into(),
            1 => "90".into(),
            2 => "99".into(),
            3 => "99.9".into(),
            4 => "99.99".into(),
            _ => "99.999".into(),
        })
        .draw()
        .map_err(err)?;
    for (i, p) in points.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let series: Vec<(f64, f64)> = NINES_PPM
            .iter()
            .map(|&ppm| {
                (
                    nines(ppm),
                    (at_ppm(&p.latency, ppm) as f64 / 1_000.0).max(0.1),
                )
            })
            .collect();
        let label = if p.rate == 0 {
            "unpaced".to_string()
        } else {
            format!("{}K/s", p.rate / 1_000)
        };
        chart
            .draw_series(LineSeries::new(series, color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    finish(&mut chart, &root)
}

/// Which median of a scaling point a line shows.
type Median = fn(&Point) -> u64;

/// Median tick and fill cost (ns, log) by accounts with positions (log), indexed and naive.
pub fn cost_by_size(points: &[Point], out: &Path) -> Result<(), String> {
    font()?;
    if points.is_empty() {
        return Ok(());
    }
    let xs: Vec<f64> = points.iter().map(|p| p.accounts as f64).collect();
    let lines: [(&str, Median); 4] = [
        ("tick, indexed", |p| at_ppm(&p.tick, 500_000)),
        ("tick, naive", |p| at_ppm(&p.naive_tick, 500_000)),
        ("fill, indexed", |p| at_ppm(&p.fill, 500_000)),
        ("fill, naive", |p| at_ppm(&p.naive_fill, 500_000)),
    ];
    let max_ns = points
        .iter()
        .flat_map(|p| lines.iter().map(move |(_, f)| f(p)))
        .max()
        .unwrap_or(1) as f64;
    let (x0, x1) = (xs[0] / 2.0, xs[xs.len() - 1] * 2.0);
    let root = BitMapBackend::new(out, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("median cost by accounts with positions", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (10.0f64..max_ns * 3.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("accounts with open positions")
        .y_desc("ns per event (p50)")
        .x_label_formatter(&|x| short(*x))
        .y_label_formatter(&|y| short(*y))
        .draw()
        .map_err(err)?;
    for (i, (name, f)) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let series: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.accounts as f64, (f(p) as f64).max(10.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|c| Circle::new(c, 4, color.filled())),
            )
            .map_err(err)?;
    }
    finish(&mut chart, &root)
}

/// Draws the legend in the upper left and writes the image.
fn finish<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
) -> Result<(), String>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// An axis figure without decimals noise: 0.5, 20, 3K, 1M.
fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{}M", (v / 1e6).round()),
        v if v >= 1e3 => format!("{}K", (v / 1e3).round()),
        v if v >= 1.0 => format!("{}", v.round()),
        v => format!("{v:.1}"),
    }
}

fn err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}
