//! A hand-written SVG of a benchmark result: throughput against batch size (log-log)
//! on the left, round-trip latency percentiles on the right.

use std::fmt::Write;

use serde_json::Value;

const COLORS: [&str; 11] = [
    "#888888", "#444444", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#d62728",
    "#17becf", "#e377c2", "#bcbd22",
];

fn log_scale(v: f64, lo: f64, hi: f64, a: f64, b: f64) -> f64 {
    let t = (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln());
    a + t * (b - a)
}

/// A panel's title, frame and horizontal grid lines at every power of ten from
/// `lo` to `hi` (log scale), labelled by `label`.
fn log_panel(
    s: &mut String,
    (x0, x1, y0, y1): (f64, f64, f64, f64),
    (lo, hi): (f64, f64),
    title: &str,
    label: fn(f64) -> String,
) {
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{title}</text>"#,
        (x0 + x1) / 2.0
    );
    let _ = writeln!(
        s,
        r#"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        x1 - x0,
        y0 - y1
    );
    let mut d = lo;
    while d <= hi * 1.001 {
        let y = log_scale(d, lo, hi, y0, y1);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 4.0,
            y + 4.0,
            label(d)
        );
        d *= 10.0;
    }
}

/// The SVG text for a result written by `bench --json`.
pub(crate) fn svg(r: &Value) -> String {
    let mut s = String::new();
    let (w, h) = (1000.0, 460.0);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    // Left panel: bytes/s against batch size.
    let (x0, x1, y0, y1) = (70.0, 560.0, 400.0, 40.0);
    let pts: Vec<(&str, f64, f64)> = r["throughput"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["name"].as_str()?,
                t["batch"].as_f64()?,
                t["bytes_per_s"].as_f64()?,
            ))
        })
        .collect();
    let (bmin, bmax) = (1.0, 65536.0);
    let vmin = pts
        .iter()
        .map(|p| p.2)
        .fold(f64::INFINITY, f64::min)
        .max(1.0);
    let vmax = pts.iter().map(|p| p.2).fold(1.0, f64::max);
    let (lo, hi) = (
        10f64.powf(vmin.log10().floor()),
        10f64.powf(vmax.log10().ceil()),
    );
    log_panel(
        &mut s,
        (x0, x1, y0, y1),
        (lo, hi),
        "SPSC throughput (bytes/s) against batch size (f64)",
        |d| format!("{d:.0e}"),
    );
    for &b in &crate::bench::SIZES {
        let x = log_scale(b as f64, bmin, bmax, x0, x1);
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{b}</text>"#,
            y0 + 16.0
        );
    }
    let mut names: Vec<&str> = Vec::new();
    for p in &pts {
        if !names.contains(&p.0) {
            names.push(p.0);
        }
    }
    for (k, name) in names.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let line: Vec<String> = pts
            .iter()
            .filter(|p| p.0 == *name)
            .map(|p| {
                format!(
                    "{:.1},{:.1}",
                    log_scale(p.1, bmin, bmax, x0, x1),
                    log_scale(p.2, lo, hi, y0, y1)
                )
            })
            .collect();
        let dash = if name.contains("(limit)") {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"#,
            line.join(" ")
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{c}">{name}</text>"#,
            x0 + 10.0,
            y1 + 16.0 + 15.0 * k as f64
        );
    }
    // Right panel: latency percentiles.
    let (x0, x1) = (640.0, 970.0);
    let lats: Vec<&Value> = r["latency"].as_array().into_iter().flatten().collect();
    let keys = [("p50_ns", "p50"), ("p99_ns", "p99"), ("p999_ns", "p99.9")];
    let top = lats
        .iter()
        .flat_map(|l| keys.iter().filter_map(|k| l[k.0].as_f64()))
        .fold(1.0, f64::max);
    let hi = 10f64.powf(top.log10().ceil());
    let lo = 10.0;
    log_panel(
        &mut s,
        (x0, x1, y0, y1),
        (lo, hi),
        "Round trip, one f64 (ns)",
        |d| format!("{d:.0}"),
    );
    let group = (x1 - x0) / keys.len() as f64;
    let bar = group / (lats.len() as f64 + 1.0);
    for (g, (key, label)) in keys.iter().enumerate() {
        let gx = x0 + g as f64 * group;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            gx + group / 2.0,
            y0 + 16.0
        );
        for (k, l) in lats.iter().enumerate() {
            let Some(v) = l[*key].as_f64() else { continue };
            let y = log_scale(v, lo, hi, y0, y1);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                gx + bar * (k as f64 + 0.5),
                bar * 0.9,
                y0 - y,
                COLORS[(k + 1) % COLORS.len()]
            );
        }
    }
    for (k, l) in lats.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{}">{}</text>"#,
            x0 + 10.0,
            y1 + 16.0 + 15.0 * k as f64,
            COLORS[(k + 1) % COLORS.len()],
            l["name"].as_str().unwrap_or("")
        );
    }
    s.push_str("</svg>\n");
    s
}
