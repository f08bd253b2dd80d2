//! The audit report as one self-contained HTML page: summary, violations, and charts drawn as
//! inline SVG with integer arithmetic (no scripts, no external files).

use crate::audit::AuditReport;
use margin_engine::num::Dec;
use std::fmt::Write as _;

const W: i128 = 720;
const H: i128 = 180;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A decimal string as an integer at 6 decimals (enough resolution for a chart).
fn micro(s: &str) -> i128 {
    Dec::parse(s)
        .ok()
        .and_then(|d| {
            if d.scale() <= 6 {
                d.to_scaled(6).ok()
            } else {
                Dec::new(d.mantissa() / 10i128.pow(u32::from(d.scale() - 6)), 6)
                    .and_then(|x| x.to_scaled(6).ok())
            }
        })
        .unwrap_or(0)
}

/// An engine clock (microseconds) as seconds with one decimal, for an axis label.
fn clock_label(us: u64) -> String {
    format!("{}.{} s", us / 1_000_000, us % 1_000_000 / 100_000)
}

/// A step chart of one or more series of (clock, value) points: each value holds until the
/// next point, as the fund or the open interest does between the events that change them.
/// The time axis runs from the first point to the last, labelled at both ends.
fn line_chart(title: &str, series: &[(String, Vec<(u64, i128)>)]) -> String {
    let all: Vec<(u64, i128)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let mut out = format!("<h3>{}</h3>", esc(title));
    if all.is_empty() {
        out.push_str("<p>(no data)</p>");
        return out;
    }
    let (x0, x1) = (
        all.iter().map(|p| p.0).min().unwrap_or(0),
        all.iter().map(|p| p.0).max().unwrap_or(1),
    );
    let (y0, y1) = (
        all.iter().map(|p| p.1).min().unwrap_or(0).min(0),
        all.iter().map(|p| p.1).max().unwrap_or(1),
    );
    let dx = i128::from(x1.saturating_sub(x0)).max(1);
    let dy = (y1 - y0).max(1);
    let _ = write!(out, "<svg width='{}' height='{}' viewBox='0 0 {} {}' style='background:#fafafa;border:1px solid #ddd'>", W + 60, H + 30, W + 60, H + 30);
    let colors = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f",
    ];
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        let at = |x: u64, y: i128| {
            let px = 50 + i128::from(x - x0) * W / dx;
            let py = 10 + H - (y - y0) * H / dy;
            format!("{px},{py}")
        };
        let mut path: Vec<String> = Vec::with_capacity(pts.len() * 2);
        for (k, &(x, y)) in pts.iter().enumerate() {
            if k > 0 {
                path.push(at(x, pts[k - 1].1)); // the previous value holds until now
            }
            path.push(at(x, y));
        }
        let _ = write!(
            out,
            "<polyline fill='none' stroke='{c}' stroke-width='1.5' points='{}'/>",
            path.join(" ")
        );
        // Sparse series (an hourly sample of a short history) get a dot per point, so that
        // one sample still shows.
        if pts.len() < 50 {
            for &(x, y) in pts {
                let px = 50 + i128::from(x - x0) * W / dx;
                let py = 10 + H - (y - y0) * H / dy;
                let _ = write!(out, "<circle cx='{px}' cy='{py}' r='3' fill='{c}'/>");
            }
        }
        let _ = write!(
            out,
            "<text x='{}' y='{}' font-size='11' fill='{c}'>{}</text>",
            55 + 120 * i as i128,
            H + 26,
            esc(name)
        );
    }
    let _ = write!(
        out,
        "<text x='50' y='{}' font-size='10'>{}</text><text x='{}' y='{}' font-size='10' text-anchor='end'>{} (engine clock)</text>",
        H + 16,
        clock_label(x0),
        W + 50,
        H + 16,
        clock_label(x1)
    );
    let _ = write!(out, "<text x='2' y='14' font-size='10'>{}</text><text x='2' y='{}' font-size='10'>{}</text></svg>", fmt_micro(y1), H + 10, fmt_micro(y0));
    out
}

fn bar_chart(title: &str, bars: &[(String, i128)]) -> String {
    let mut out = format!("<h3>{}</h3>", esc(title));
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let n = bars.len().max(1) as i128;
    let bw = (W / n).max(1);
    let _ = write!(
        out,
        "<svg width='{}' height='{}' style='background:#fafafa;border:1px solid #ddd'>",
        W + 60,
        H + 30
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = v * H / max;
        let x = 50 + i as i128 * bw;
        let _ = write!(out, "<rect x='{x}' y='{}' width='{}' height='{h}' fill='#d62728'><title>{}: {v}</title></rect>", 10 + H - h, (bw - 1).max(1), esc(label));
    }
    let _ = write!(out, "<text x='2' y='14' font-size='10'>{max}</text></svg>");
    out
}

fn fmt_micro(v: i128) -> String {
    margin_engine::num::format_scaled(v / 10_000 * 10_000, 6)
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// Renders the page.
pub fn render(r: &AuditReport, data: &str) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let status = if r.passed() {
        "<b style='color:#2ca02c'>PASSED</b>"
    } else {
        "<b style='color:#d62728'>FAILED</b>"
    };
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset='utf-8'><title>margin audit</title>\
         <style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}td,th{{padding:2px 10px;text-align:right}}</style></head><body>\
         <h1>Audit of {}</h1><p>{status}: {} events replayed, {} output batches compared with the replay, {} snapshots checked, {} full invariant checks, {} violations.</p>\
         <p>Output log head (hash chain): <code>{}</code><br>Final state hash: <code>{}</code></p>",
        esc(data), r.events, r.outputs_compared, r.snapshots_checked, r.full_checks, r.violations.len(), r.output_head, r.state_hash
    );
    let p = &r.provenance;
    let _ = write!(
        h,
        "<h2>Provenance</h2><p>{} over input seqs {}..={} of <code>{}</code>; input journal digest (BLAKE3 of seq and payload of every record) <code>{}</code>.</p>",
        esc(&p.tool), p.first_seq, p.last_seq, esc(data), p.input_digest
    );
    h.push_str("<h2>Invariants checked</h2><table><tr><th>invariant</th><th>checks</th></tr>");
    for inv in &r.invariants {
        let _ = write!(
            h,
            "<tr><td style='text-align:left'>{}</td><td>{}</td></tr>",
            esc(&inv.name),
            inv.checks
        );
    }
    h.push_str("</table>");
    if !r.risk_events.is_empty() {
        let _ = write!(
            h,
            "<h2>Liquidations and bankruptcies</h2><p>{} listed (at most 1000); each with the command that shows the account right after.</p><table><tr><th>input seq</th><th>clock (us)</th><th>event</th><th>account</th><th>bucket</th><th style='text-align:left'>state then</th></tr>",
            r.risk_events.len()
        );
        for e in &r.risk_events {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style='text-align:left'><code>{} --data {}</code></td></tr>",
                e.input_seq, e.ts, esc(&e.kind), e.account, esc(&e.bucket), esc(&e.state_at), esc(data)
            );
        }
        h.push_str("</table>");
    }
    if !r.violations.is_empty() {
        h.push_str("<h2>Violations</h2><ul>");
        for v in &r.violations {
            let _ = write!(h, "<li>{}</li>", esc(v));
        }
        h.push_str("</ul>");
    }
    let fund: Vec<(u64, i128)> = r
        .insurance_fund
        .iter()
        .map(|(t, v)| (*t, micro(v)))
        .collect();
    h.push_str(&line_chart(
        &format!("Insurance fund ({})", r.quote),
        &[("fund".into(), fund)],
    ));
    // One chart per market: open interests of very different sizes on one axis would leave
    // the small markets flat.
    for (m, pts) in &r.open_interest {
        let pts: Vec<(u64, i128)> = pts.iter().map(|(t, v)| (*t, micro(v))).collect();
        h.push_str(&line_chart(
            &format!("Open interest: {m} (base units)"),
            &[(m.clone(), pts)],
        ));
    }
    let calls: Vec<(String, i128)> = r
        .hours
        .iter()
        .map(|x| (format!("hour {}", x.hour), i128::from(x.margin_calls)))
        .collect();
    h.push_str(&bar_chart("Margin calls per hour", &calls));
    let liqs: Vec<(String, i128)> = r
        .hours
        .iter()
        .map(|x| (format!("hour {}", x.hour), i128::from(x.liquidations)))
        .collect();
    h.push_str(&bar_chart("Liquidations started per hour", &liqs));
    h.push_str("<h3>Largest realised losses</h3><table><tr><th>account</th><th>loss</th></tr>");
    for (a, l) in &r.largest_losses {
        let _ = write!(h, "<tr><td>{a}</td><td>{l}</td></tr>");
    }
    let _ = write!(
        h,
        "</table><h3>Bad debt</h3><table><tr><th>bankruptcies</th><th>deficit</th><th>paid by insurance</th><th>socialised (ADL)</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        r.bad_debt.bankruptcies, r.bad_debt.deficit, r.bad_debt.insurance_paid, r.bad_debt.socialized
    );
    h.push_str("<h3>Per hour</h3><table><tr><th>hour</th><th>margin calls</th><th>liquidations</th><th>auction fills</th><th>bankruptcies</th><th>ADL fills</th></tr>");
    for x in &r.hours {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            x.hour, x.margin_calls, x.liquidations, x.auction_fills, x.bankruptcies, x.adl_fills
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polyline's points as (x, y) pixel pairs.
    fn points(svg: &str) -> Vec<(i128, i128)> {
        let at = svg.find("points='").expect("a polyline") + "points='".len();
        let end = at + svg[at..].find('\'').expect("closed");
        svg[at..end]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_value_holds_until_the_next_point_and_the_axis_is_the_clock() {
        // The fund is 0 until t = 1 s, then 500 until the end at t = 7 s: a step, not a ramp.
        let svg = line_chart(
            "fund",
            &[(
                "fund".into(),
                vec![(0, 0), (1_000_000, 500_000_000), (7_000_000, 500_000_000)],
            )],
        );
        let p = points(&svg);
        assert_eq!(p.len(), 5, "{p:?}");
        // Each vertical step is preceded by a horizontal run at the old value.
        assert_eq!(p[1].1, p[0].1, "the zero holds until t = 1 s");
        assert_eq!(p[1].0, p[2].0, "the rise is vertical, at t = 1 s");
        assert!(p[2].1 < p[1].1, "up is smaller y");
        assert_eq!(p[3].1, p[2].1);
        // x is proportional to the clock: t = 1 s of 7 s is a seventh of the width.
        assert_eq!(p[2].0 - p[0].0, W / 7);
        assert!(
            svg.contains("0.0 s") && svg.contains("7.0 s (engine clock)"),
            "{svg}"
        );
        assert!(svg.contains(">500<"), "the top of the axis: {svg}");
    }

    #[test]
    fn an_empty_series_says_so() {
        assert!(line_chart("x", &[("x".into(), vec![])]).contains("(no data)"));
    }
}
