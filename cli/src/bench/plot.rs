//! A hand-written SVG of a benchmark result (the JSON of `bench --json`): SPSC
//! throughput against batch size (log-log) with its legend beside the plot, the
//! round-trip latency percentiles, and the MPMC and SharedArray rates as bars
//! (the broadcast rates, elements per second per subscriber, in bars of their
//! own below them).
//! Every figure has a whisker from the smallest to the largest of its runs.
//!
//! Any key may be missing or null (a file from an older version, a skipped
//! peer): what is not there is left out, and the rest is drawn.

use std::fmt::Write;

use serde_json::Value;

/// About the width of one character of 12px sans-serif text (DejaVu Sans, one
/// of the widest), for laying out labels.
const CH: f64 = 7.0;
/// The outer margin.
const M: f64 = 20.0;
/// The height of one legend row.
const LEG_ROW: f64 = 18.0;
/// The space left of a plot area for its tick labels and rotated axis label.
const LEFT: f64 = 96.0;
/// The top of the throughput panel (its title).
const TOP1: f64 = 70.0;
/// The heights of the throughput, and the latency, plot areas.
const TPUT_H: f64 = 330.0;
const LAT_H: f64 = 230.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// shmbatch itself (`shmbatch ...`, `SharedArray ...`): drawn prominently.
    Ours,
    /// Another library.
    Peer,
    /// This machine's limit (`... (limit)`): grey and dashed.
    Limit,
}

fn kind(name: &str) -> Kind {
    if name.contains("(limit)") {
        Kind::Limit
    } else if name.starts_with("shmbatch") || name.starts_with("SharedArray") {
        Kind::Ours
    } else {
        Kind::Peer
    }
}

const OURS: [&str; 6] = [
    "#0b5fd3", "#d62728", "#17993b", "#7b2cbf", "#e8590c", "#0f8b8d",
];
const PEERS: [&str; 8] = [
    "#f0a030", "#9c6b4e", "#e377c2", "#4fb3d9", "#b5b82d", "#9e9ac8", "#c9a0a0", "#7fbf7f",
];
const LIMITS: [&str; 3] = ["#222222", "#808080", "#505050"];
const DASHES: [&str; 3] = ["7,4", "3,3", "10,3,2,3"];

/// How one series is drawn.
#[derive(Clone, Copy, Debug)]
struct Style {
    kind: Kind,
    color: &'static str,
    dash: &'static str,
}

impl Style {
    fn width(self) -> f64 {
        match self.kind {
            Kind::Ours => 3.0,
            Kind::Peer => 1.6,
            Kind::Limit => 1.8,
        }
    }

    /// ` stroke-dasharray="..."` for a limit, else nothing.
    fn dash_attr(self) -> String {
        if self.dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{}""#, self.dash)
        }
    }

    /// A point marker at (x, y): filled circles for shmbatch, small squares for
    /// peers, hollow circles for limits.
    fn marker(self, s: &mut String, x: f64, y: f64) {
        let c = self.color;
        let _ = match self.kind {
            Kind::Ours => writeln!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{c}"/>"#),
            Kind::Peer => writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="5" height="5" fill="{c}"/>"#,
                x - 2.5,
                y - 2.5
            ),
            Kind::Limit => writeln!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="white" stroke="{c}" stroke-width="1.5"/>"#
            ),
        };
    }

    /// A bar's fill and outline: solid for shmbatch and peers (peers lighter),
    /// pale with a dashed outline for limits.
    fn bar_attrs(self) -> String {
        let c = self.color;
        match self.kind {
            Kind::Ours => format!(r#"fill="{c}""#),
            Kind::Peer => format!(r#"fill="{c}" fill-opacity="0.8""#),
            Kind::Limit => format!(
                r#"fill="{c}" fill-opacity="0.18" stroke="{c}" stroke-width="1.5"{}"#,
                self.dash_attr()
            ),
        }
    }
}

/// A style for each name, each kind's colours taken in order.
fn styles(names: &[&str]) -> Vec<Style> {
    let mut n = [0usize; 3];
    names
        .iter()
        .map(|name| {
            let kind = kind(name);
            let i = &mut n[kind as usize];
            let (color, dash) = match kind {
                Kind::Ours => (OURS[*i % OURS.len()], ""),
                Kind::Peer => (PEERS[*i % PEERS.len()], ""),
                Kind::Limit => (LIMITS[*i % LIMITS.len()], DASHES[*i % DASHES.len()]),
            };
            *i += 1;
            Style { kind, color, dash }
        })
        .collect()
}

/// `s` with the characters XML gives a meaning escaped.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

/// `s` cut to at most `n` characters, an ellipsis marking the cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut o: String = s.chars().take(n.saturating_sub(1)).collect();
        o.push('…');
        o
    }
}

fn width_of(s: &str) -> f64 {
    s.chars().count() as f64 * CH
}

/// A `<text>` at (x, y) with extra attributes `attrs` (each with a leading space).
fn text(s: &mut String, x: f64, y: f64, attrs: &str, body: &str) {
    let _ = writeln!(
        s,
        r#"<text x="{x:.1}" y="{y:.1}"{attrs}>{}</text>"#,
        esc(body)
    );
}

/// A y-axis label, rotated, centred on `y` with its baseline at `x`.
fn y_label(s: &mut String, x: f64, y: f64, body: &str) {
    let _ = writeln!(
        s,
        r#"<text transform="translate({x:.1},{y:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        esc(body)
    );
}

/// A plot area's frame.
fn frame(s: &mut String, (x0, x1, top, bot): (f64, f64, f64, f64)) {
    let _ = writeln!(
        s,
        r##"<rect class="frame" x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        x1 - x0,
        bot - top
    );
}

/// A whisker from `a` to `b` across position `c`, with caps: vertical (`c` an
/// x, `a` and `b` y's) or horizontal.
fn whisker(s: &mut String, c: f64, a: f64, b: f64, vertical: bool, color: &str) {
    let d = if vertical {
        format!(
            "M{:.1} {a:.1}H{:.1}M{c:.1} {a:.1}V{b:.1}M{:.1} {b:.1}H{:.1}",
            c - 4.0,
            c + 4.0,
            c - 4.0,
            c + 4.0
        )
    } else {
        format!(
            "M{a:.1} {:.1}V{:.1}M{a:.1} {c:.1}H{b:.1}M{b:.1} {:.1}V{:.1}",
            c - 4.0,
            c + 4.0,
            c - 4.0,
            c + 4.0
        )
    };
    let _ = writeln!(
        s,
        r#"<path class="whisker" d="{d}" fill="none" stroke="{color}" stroke-width="1.3"/>"#
    );
}

/// A min–max pair from `{min, max}`, when both are there, positive, and apart.
fn spread(v: &Value) -> Option<(f64, f64)> {
    let (a, b) = (v["min"].as_f64()?, v["max"].as_f64()?);
    (a > 0.0 && b > a).then_some((a, b))
}

/// A logarithmic axis from `lo` to `hi`.
#[derive(Clone, Copy, Debug)]
struct Log {
    lo: f64,
    hi: f64,
}

impl Log {
    /// Whole powers of ten around every positive value (1 to 10 if none);
    /// with `headroom`, the top is that many times the largest value instead.
    fn decades(vals: impl IntoIterator<Item = f64>, headroom: Option<f64>) -> Log {
        let Some((a, b)) = positive_range(vals) else {
            return Log { lo: 1.0, hi: 10.0 };
        };
        let lo = 10f64.powf((a / 1.1).log10().floor());
        let mut hi = 10f64.powf((b * 1.1).log10().ceil()).max(lo * 10.0);
        if let Some(f) = headroom {
            hi = (b * f).max(lo * 2.0);
        }
        Log { lo, hi }
    }

    fn at(self, v: f64, a: f64, b: f64) -> f64 {
        let t = (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        a + t.min(1.0) * (b - a)
    }

    /// The powers of ten on the axis, with 2 and 5 times each on a short one.
    fn ticks(self) -> Vec<f64> {
        let decades = (self.hi / self.lo).log10().ceil().max(1.0) as i32;
        let steps: &[f64] = if decades <= 2 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut v = Vec::new();
        for d in 0..=decades {
            for m in steps {
                let t = self.lo * 10f64.powi(d) * m;
                if t <= self.hi * 1.0001 {
                    v.push(t);
                }
            }
        }
        v
    }
}

fn positive_range(vals: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut a, mut b) = (f64::INFINITY, 0.0f64);
    for v in vals {
        if v > 0.0 && v.is_finite() {
            a = a.min(v);
            b = b.max(v);
        }
    }
    (b > 0.0).then_some((a, b))
}

/// Horizontal grid lines and labels at `axis`'s ticks, over `x0..x1`.
fn y_grid(
    s: &mut String,
    (x0, x1, top, bot): (f64, f64, f64, f64),
    axis: Log,
    fmt: fn(f64) -> String,
) {
    for t in axis.ticks() {
        let y = axis.at(t, bot, top);
        let _ = writeln!(
            s,
            r##"<line x1="{x0:.1}" x2="{x1:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e4e4e4"/>"##
        );
        text(s, x0 - 5.0, y + 4.0, r#" text-anchor="end""#, &fmt(t));
    }
}

/// `v` with an SI prefix: "1.5 G", "200 M", "12 k", "7 ".
fn si(v: f64) -> String {
    let (d, p) = match v.abs() {
        a if a >= 1e12 => (1e12, "T"),
        a if a >= 1e9 => (1e9, "G"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let m = v / d;
    let digits = if m >= 100.0 || m == m.round() {
        0
    } else if m >= 10.0 {
        1
    } else {
        2
    };
    format!("{m:.digits$} {p}")
}

/// A count of nanoseconds, digits grouped by three with thin spaces.
fn ns(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut o = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            o.push('\u{2009}');
        }
        o.push(c);
    }
    o
}

/// One figure: its median, and the smallest and largest of its runs where
/// they differ.
#[derive(Clone, Copy, Debug)]
struct Fig {
    v: Option<f64>,
    sp: Option<(f64, f64)>,
}

/// One SPSC throughput series: its figure in bytes/s at each batch size.
struct Tput<'a> {
    name: &'a str,
    pts: Vec<(f64, Fig)>,
}

fn throughput(r: &Value) -> Vec<Tput<'_>> {
    let mut out: Vec<Tput> = Vec::new();
    for t in r["throughput"].as_array().into_iter().flatten() {
        let (Some(name), Some(batch)) = (t["name"].as_str(), t["batch"].as_f64()) else {
            continue;
        };
        if batch <= 0.0 {
            continue;
        }
        let v = t["bytes_per_s"]
            .as_f64()
            .or_else(|| t["elements_per_s"].as_f64().map(|e| e * 8.0))
            .filter(|v| *v > 0.0);
        let sp = spread(&t["spread_elements_per_s"]).map(|(a, b)| (a * 8.0, b * 8.0));
        let i = match out.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                out.push(Tput {
                    name,
                    pts: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[i].pts.push((batch, Fig { v, sp }));
    }
    for s in &mut out {
        s.pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The latency figures drawn: (key in the JSON, label).
const LAT_KEYS: [(&str, &str); 4] = [
    ("p50_ns", "p50"),
    ("mean_ns", "mean"),
    ("p99_ns", "p99"),
    ("p999_ns", "p99.9"),
];

/// One latency series: per figure, its median and the min–max of its runs.
struct Lat<'a> {
    name: &'a str,
    figs: Vec<Fig>,
}

fn latency(r: &Value) -> Vec<Lat<'_>> {
    r["latency"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let figs = LAT_KEYS
                .iter()
                .map(|(k, _)| {
                    let runs = l["runs"].as_array().into_iter().flatten();
                    let range = positive_range(runs.filter_map(|r| r[*k].as_f64()));
                    let v = l[*k].as_f64().filter(|v| *v > 0.0);
                    Fig {
                        v,
                        sp: range.filter(|(a, b)| b > a),
                    }
                })
                .collect();
            Lat {
                name: l["name"].as_str().unwrap_or("?"),
                figs,
            }
        })
        .collect()
}

/// One rate: its median per second and the min–max of its runs.
struct Rate<'a> {
    name: &'a str,
    v: Option<f64>,
    sp: Option<(f64, f64)>,
}

fn rates(r: &Value) -> Vec<Rate<'_>> {
    r["rates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| {
            Some(Rate {
                name: x["name"].as_str()?,
                v: x["per_s"].as_f64().filter(|v| *v >= 0.0),
                sp: spread(&x["spread_per_s"]),
            })
        })
        .collect()
}

/// A legend: a framed box at (x, y) of `cols` columns of `col_w`, one row per
/// entry, each with its sample drawn by `sample` at the row's left and centre.
fn legend(
    s: &mut String,
    (x, y): (f64, f64),
    (cols, col_w): (usize, f64),
    entries: &[(String, Style)],
    sample: impl Fn(&mut String, Style, f64, f64),
) {
    let rows = entries.len().div_ceil(cols.max(1));
    let _ = writeln!(
        s,
        r##"<rect class="legend-box" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="white" stroke="#ccc"/>"##,
        cols as f64 * col_w,
        rows as f64 * LEG_ROW + 8.0
    );
    for (i, (name, st)) in entries.iter().enumerate() {
        let (c, r) = (i / rows.max(1), i % rows.max(1));
        let ex = x + 8.0 + c as f64 * col_w;
        let ey = y + 4.0 + LEG_ROW * (r as f64 + 0.5);
        sample(s, *st, ex, ey);
        let weight = if st.kind == Kind::Ours {
            r#" font-weight="bold""#
        } else {
            ""
        };
        let fill = if name.ends_with("(not measured)") {
            r##" fill="#888""##
        } else {
            ""
        };
        text(s, ex + 32.0, ey + 4.0, &format!("{weight}{fill}"), name);
    }
}

/// The width of a legend column for `names`.
fn legend_col(names: &[String]) -> f64 {
    let w = |n: &String| width_of(n) * if kind(n) == Kind::Ours { 1.12 } else { 1.0 };
    names.iter().map(w).fold(60.0, f64::max) + 48.0
}

/// The SVG text for a result written by `bench --json`.
pub(crate) fn svg(r: &Value) -> String {
    let tput = throughput(r);
    let lats = latency(r);
    // The broadcast rows (`... (per sub)`) are many times the MPMC rates: on one
    // linear axis those would not show.
    let (bcast, rates): (Vec<_>, Vec<_>) = rates(r)
        .into_iter()
        .partition(|x| x.name.ends_with("(per sub)"));

    // The throughput legend beside its plot, in as many columns as it takes.
    let (pt, ph) = (TOP1 + 24.0, TPUT_H);
    let per_col = ((ph / LEG_ROW).floor() as usize).max(1);
    let tcols = tput.len().div_ceil(per_col).max(1);
    let tcol_w = legend_col(&tput_labels(&tput));
    let tleg_w = if tput.is_empty() {
        0.0
    } else {
        tcols as f64 * tcol_w
    };
    // Below: latency (its legend under it), and the rates beside it.
    let groups: Vec<usize> = (0..LAT_KEYS.len())
        .filter(|&g| lats.iter().any(|l| l.figs[g].v.is_some()))
        .collect();
    let lat_w = ((groups.len() * (lats.len() + 1)) as f64 * 12.0).max(340.0);
    let rate_label_w = rates
        .iter()
        .chain(&bcast)
        .map(|x| width_of(&clip(x.name, 48)))
        .fold(0.0, f64::max);
    let rates_w = if rates.is_empty() && bcast.is_empty() {
        0.0
    } else {
        rate_label_w + 10.0 + 300.0
    };
    let w = (LEFT + 480.0 + 15.0 + tleg_w + M)
        .max(LEFT + lat_w + 60.0 + rates_w + M)
        .max(1080.0)
        .ceil();

    let mut b = String::new();
    header(&mut b, r, w);
    let x1 = w - M - tleg_w - 15.0;
    throughput_panel(&mut b, &tput, (LEFT, x1, pt, ph), (tcols, tcol_w));
    let top2 = pt + ph + 70.0;
    let lx1 = LEFT + lat_w;
    let mut bottom = latency_panel(&mut b, &lats, &groups, (LEFT, lx1, top2));
    let mut rtop = top2;
    if !rates.is_empty() {
        let area = (lx1 + 60.0, w - M, rtop);
        let title = "MPMC (batches of one f64) and SharedArray, per second";
        rtop = rates_panel(&mut b, &rates, area, rate_label_w, title) + 10.0;
        bottom = bottom.max(rtop);
    }
    if !bcast.is_empty() {
        let area = (lx1 + 60.0, w - M, rtop);
        let title = "Broadcast (lossless, batches of 256 f64), per subscriber";
        bottom = bottom.max(rates_panel(&mut b, &bcast, area, rate_label_w, title));
    }
    let h = (footer(&mut b, r, w, bottom + 20.0) + M).ceil();

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    s.push_str(&b);
    s.push_str("</svg>\n");
    s
}

/// The legend texts of the throughput series.
fn tput_labels(tput: &[Tput]) -> Vec<String> {
    tput.iter()
        .map(|t| {
            if t.pts.iter().any(|p| p.1.v.is_some()) {
                t.name.to_owned()
            } else {
                format!("{} (not measured)", t.name)
            }
        })
        .collect()
}

/// What this is on the left; the machine and the commit in the right corner.
fn header(b: &mut String, r: &Value, w: f64) {
    text(
        b,
        M,
        30.0,
        r#" font-size="18" font-weight="bold""#,
        "shmbatch bench",
    );
    let settings = &r["settings"];
    let runs = settings["runs"].as_u64();
    let mut how = match runs {
        Some(n) if n > 1 => format!(
            "each figure the median of {n} runs; whiskers from the smallest to the largest run"
        ),
        Some(_) => "each figure one run (no whiskers: run with --runs N for the spread)".to_owned(),
        None => String::new(),
    };
    if settings["quick"] == true {
        how.push_str(" · --quick");
    }
    text(b, M, 50.0, r##" fill="#555""##, &how);
    let m = &r["machine"];
    let cpu = m["cpu"].as_str().unwrap_or("unknown CPU");
    let mut line2 = Vec::new();
    if let Some(c) = m["cores"].as_u64().filter(|c| *c > 0) {
        line2.push(format!("{c} cores"));
    }
    if let Some(k) = m["kernel"].as_str().filter(|k| !k.is_empty()) {
        line2.push(format!("Linux {k}"));
    }
    if let Some(c) = m["commit"].as_str().filter(|c| !c.is_empty()) {
        line2.push(format!("commit {c}"));
    }
    text(
        b,
        w - M,
        30.0,
        r#" text-anchor="end" class="machine""#,
        &clip(cpu, 70),
    );
    text(
        b,
        w - M,
        50.0,
        r##" text-anchor="end" fill="#555""##,
        &line2.join(" · "),
    );
}

/// Throughput against batch size in the plot area `x0..x1`, `pt..pt + ph`,
/// its legend (`cols` columns of `col_w`) to the right of it.
fn throughput_panel(
    b: &mut String,
    tput: &[Tput],
    (x0, x1, pt, ph): (f64, f64, f64, f64),
    (tcols, tcol_w): (usize, f64),
) {
    let tnames: Vec<&str> = tput.iter().map(|t| t.name).collect();
    let tstyle = styles(&tnames);
    let area = (x0, x1, pt, pt + ph);
    text(
        b,
        (x0 + x1) / 2.0,
        TOP1 + 12.0,
        r#" text-anchor="middle" font-size="14""#,
        "SPSC throughput between two processes (peers as named)",
    );
    let yaxis = Log::decades(
        tput.iter().flat_map(|t| {
            t.pts
                .iter()
                .flat_map(|p| [p.1.v, p.1.sp.map(|s| s.0), p.1.sp.map(|s| s.1)])
                .flatten()
        }),
        None,
    );
    let batches = {
        let mut v: Vec<f64> = tput
            .iter()
            .flat_map(|t| t.pts.iter().map(|p| p.0))
            .collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (bmin, bmax) = positive_range(batches.iter().copied()).unwrap_or((1.0, 65536.0));
    let xaxis = Log {
        lo: bmin / 1.6,
        hi: bmax * 1.6,
    };
    y_grid(b, area, yaxis, |v| format!("{}B/s", si(v)));
    let mut last = f64::NEG_INFINITY;
    for &n in &batches {
        let x = xaxis.at(n, x0, x1);
        let _ = writeln!(
            b,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{pt:.1}" y2="{:.1}" stroke="#f0f0f0"/>"##,
            pt + ph
        );
        let label = format!("{n}");
        if x - last >= width_of(&label) + 6.0 {
            text(b, x, pt + ph + 17.0, r#" text-anchor="middle""#, &label);
            last = x;
        }
    }
    text(
        b,
        (x0 + x1) / 2.0,
        pt + ph + 38.0,
        r#" text-anchor="middle""#,
        "batch size (f64 elements, log scale)",
    );
    y_label(b, M - 2.0, pt + ph / 2.0, "throughput (bytes/s, log scale)");
    if tput.iter().all(|t| t.pts.iter().all(|p| p.1.v.is_none())) {
        text(
            b,
            (x0 + x1) / 2.0,
            pt + ph / 2.0,
            r##" text-anchor="middle" fill="#888""##,
            "no throughput figures",
        );
    }
    // Peers first, then limits, then shmbatch on top; each series nudged a
    // little sideways so that whiskers at one batch size stay apart.
    let n = tput.len() as f64;
    let nudge = (24.0 / n).min(3.0);
    let mut order: Vec<usize> = (0..tput.len()).collect();
    order.sort_by_key(|&k| match tstyle[k].kind {
        Kind::Peer => 0,
        Kind::Limit => 1,
        Kind::Ours => 2,
    });
    for &k in &order {
        let (t, st) = (&tput[k], tstyle[k]);
        let dx = (k as f64 - (n - 1.0) / 2.0) * nudge;
        let pos = |p: &(f64, Fig)| {
            (
                xaxis.at(p.0, x0, x1) + dx,
                p.1.v.map(|v| yaxis.at(v, pt + ph, pt)),
            )
        };
        // A line through each run of consecutive measured points.
        for seg in t.pts.split(|p| p.1.v.is_none()) {
            if seg.len() < 2 {
                continue;
            }
            let pts: Vec<String> = seg
                .iter()
                .filter_map(|p| {
                    let (x, y) = pos(p);
                    Some(format!("{x:.1},{:.1}", y?))
                })
                .collect();
            let _ = writeln!(
                b,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-linejoin="round"{}/>"#,
                pts.join(" "),
                st.color,
                st.width(),
                st.dash_attr()
            );
        }
        for p in &t.pts {
            let (x, y) = pos(p);
            if let Some((a, c)) = p.1.sp {
                whisker(
                    b,
                    x,
                    yaxis.at(a, pt + ph, pt),
                    yaxis.at(c, pt + ph, pt),
                    true,
                    st.color,
                );
            }
            if let Some(y) = y {
                st.marker(b, x, y);
            }
        }
    }
    frame(b, area);
    if !tput.is_empty() {
        let entries: Vec<(String, Style)> = tput_labels(tput)
            .into_iter()
            .zip(tstyle.iter().copied())
            .collect();
        legend(
            b,
            (x1 + 15.0, pt),
            (tcols, tcol_w),
            &entries,
            |s, st, x, y| {
                let _ = writeln!(
                    s,
                    r#"<line x1="{x:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="{}"{}/>"#,
                    x + 24.0,
                    st.color,
                    st.width(),
                    st.dash_attr()
                );
                st.marker(s, x + 12.0, y);
            },
        );
    }
}

/// Latency: a group of bars per figure (`groups`, indices into [`LAT_KEYS`]),
/// a bar per series, the plot area from `lx0` to `lx1` under a title at `top2`,
/// the legend below. Returns the bottom of what it drew.
fn latency_panel(
    b: &mut String,
    lats: &[Lat],
    groups: &[usize],
    (lx0, lx1, top2): (f64, f64, f64),
) -> f64 {
    let lnames: Vec<&str> = lats.iter().map(|l| l.name).collect();
    let lstyle = styles(&lnames);
    let (lt, lh) = (top2 + 24.0, LAT_H);
    let larea = (lx0, lx1, lt, lt + lh);
    text(
        b,
        (lx0 + lx1) / 2.0,
        top2 + 12.0,
        r#" text-anchor="middle" font-size="14""#,
        "Round trip of one f64 between two processes",
    );
    // Room above the tallest bar for its label.
    let laxis = Log::decades(
        lats.iter().flat_map(|l| {
            l.figs
                .iter()
                .flat_map(|f| [f.v, f.sp.map(|s| s.0), f.sp.map(|s| s.1)])
                .flatten()
        }),
        Some(1.7),
    );
    y_grid(b, larea, laxis, ns);
    y_label(
        b,
        M - 2.0,
        lt + lh / 2.0,
        "round-trip latency (ns, log scale)",
    );
    let group = (lx1 - lx0) / groups.len().max(1) as f64;
    let bar = group / (lats.len() as f64 + 1.0);
    // Each bar with its whisker (x0, x1, top), and its value label.
    let mut bars: Vec<(f64, f64, f64)> = Vec::new();
    let mut labels: Vec<(f64, f64, String)> = Vec::new();
    for (gi, &g) in groups.iter().enumerate() {
        let gx = lx0 + gi as f64 * group;
        text(
            b,
            gx + group / 2.0,
            lt + lh + 17.0,
            r#" text-anchor="middle""#,
            LAT_KEYS[g].1,
        );
        for (k, l) in lats.iter().enumerate() {
            let st = lstyle[k];
            let Fig { v, sp } = l.figs[g];
            let bx = gx + bar * (k as f64 + 0.5);
            let cx = bx + bar * 0.45;
            let mut top = lt + lh;
            if let Some(v) = v {
                top = laxis.at(v, lt + lh, lt);
                let _ = writeln!(
                    b,
                    r#"<rect x="{bx:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" {}/>"#,
                    bar * 0.9,
                    lt + lh - top,
                    st.bar_attrs()
                );
            }
            if let Some((a, c)) = sp {
                let (ya, yc) = (laxis.at(a, lt + lh, lt), laxis.at(c, lt + lh, lt));
                whisker(b, cx, ya, yc, true, "#222");
                top = top.min(yc);
            }
            bars.push((bx.min(cx - 4.0), (bx + bar * 0.9).max(cx + 4.0), top));
            if let Some(v) = v {
                labels.push((cx, top, ns(v)));
            }
        }
    }
    // A value above each bar, where it covers no other bar and no other label.
    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
    for (cx, top, label) in labels {
        let half = label.chars().count() as f64 * 3.2 + 1.0;
        let (x0, x1, y0, y1) = (cx - half, cx + half, top - 15.0, top - 2.0);
        let clear = |&(a, c, d, e): &(f64, f64, f64, f64)| x1 < a || x0 > c || y1 < d || y0 > e;
        let over_bar = bars
            .iter()
            .any(|&(a, c, t)| !(clear(&(a, c, t, lt + lh)) || (cx > a && cx < c)));
        if y0 > lt && !over_bar && placed.iter().all(clear) {
            placed.push((x0, x1, y0, y1));
            text(
                b,
                cx,
                y1 - 2.0,
                r##" text-anchor="middle" font-size="10" fill="#333""##,
                &label,
            );
        }
    }
    text(
        b,
        (lx0 + lx1) / 2.0,
        lt + lh + 38.0,
        r#" text-anchor="middle""#,
        if groups.contains(&1) {
            "percentile (or the mean) over the round trips"
        } else {
            "percentile over the round trips"
        },
    );
    if groups.is_empty() {
        text(
            b,
            (lx0 + lx1) / 2.0,
            lt + lh / 2.0,
            r##" text-anchor="middle" fill="#888""##,
            "no latency figures",
        );
    }
    frame(b, larea);
    let mut bottom = lt + lh + 46.0;
    if !lats.is_empty() {
        let labels: Vec<String> = lnames.iter().map(|n| (*n).to_owned()).collect();
        let col_w = legend_col(&labels);
        let cols = (((lx1 - lx0 + LEFT - M) / col_w).floor() as usize).clamp(1, lats.len());
        let entries: Vec<(String, Style)> =
            labels.into_iter().zip(lstyle.iter().copied()).collect();
        legend(
            b,
            (M, lt + lh + 50.0),
            (cols, col_w),
            &entries,
            |s, st, x, y| {
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="20" height="11" {}/>"#,
                    x + 2.0,
                    y - 5.5,
                    st.bar_attrs()
                );
            },
        );
        bottom = lt + lh + 58.0 + lats.len().div_ceil(cols) as f64 * LEG_ROW;
    }

    bottom
}

/// The rates as horizontal bars between `x0` and `x1` under `title` at `top2`,
/// their names (`label_w` wide) left of the bars. Returns the bottom of what it
/// drew.
fn rates_panel(
    b: &mut String,
    rates: &[Rate],
    (x0, x1, top2): (f64, f64, f64),
    label_w: f64,
    title: &str,
) -> f64 {
    let (lt, lh) = (top2 + 24.0, LAT_H);
    let rx_label = x0 + label_w;
    let (bx0, bx1) = (rx_label + 10.0, x1);
    // As tall as the latency panel beside it, where there are few rates.
    let row = (lh / rates.len() as f64).clamp(24.0, 34.0);
    let bar_h = (row * 0.55).min(16.0);
    let rh = row * rates.len() as f64;
    let rarea = (bx0, bx1, lt, lt + rh);
    text(
        b,
        (x0 + x1) / 2.0,
        top2 + 12.0,
        r#" text-anchor="middle" font-size="14""#,
        title,
    );
    // The axis reaches far enough for every value label to fit inside.
    let bw = bx1 - bx0;
    let top = rates
        .iter()
        .filter_map(|x| {
            let v = x.v?;
            let end = x.sp.map_or(v, |s| s.1.max(v));
            let room = 1.0 - (10.0 + width_of(&format!("{}/s", si(v)))) / bw;
            Some(end / room.max(0.3))
        })
        .fold(0.0, f64::max);
    let (unit, div) = match top {
        t if t >= 1e9 => ("billion", 1e9),
        t if t >= 1e6 => ("million", 1e6),
        t if t >= 1e3 => ("thousand", 1e3),
        _ => ("", 1.0),
    };
    // About five ticks at 1, 2, 2.5 or 5 times a power of ten.
    let (step, xmax) = if top > 0.0 && top.is_finite() {
        let raw = top / div / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|st| *st >= raw)
            .unwrap_or(10.0 * mag);
        (step, (top / div / step).ceil() * step)
    } else {
        (0.2, 1.0)
    };
    let at = |v: f64| bx0 + (v / div / xmax).min(1.0) * (bx1 - bx0);
    for i in 0..=((xmax / step).round() as usize) {
        let t = i as f64 * step;
        let x = bx0 + t / xmax * (bx1 - bx0);
        let _ = writeln!(
            b,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{lt:.1}" y2="{:.1}" stroke="#e4e4e4"/>"##,
            lt + rh
        );
        let label = format!("{}", (t * 1000.0).round() / 1000.0);
        text(b, x, lt + rh + 17.0, r#" text-anchor="middle""#, &label);
    }
    let unit_label = if unit.is_empty() {
        "elements or operations per second (linear)".to_owned()
    } else {
        format!("{unit} elements or operations per second (linear)")
    };
    text(
        b,
        (bx0 + bx1) / 2.0,
        lt + rh + 38.0,
        r#" text-anchor="middle""#,
        &unit_label,
    );
    let rnames: Vec<&str> = rates.iter().map(|x| x.name).collect();
    let rstyle: Vec<Style> = rnames
        .iter()
        .map(|n| {
            let kind = kind(n);
            let (color, dash) = match kind {
                Kind::Ours => (OURS[0], ""),
                Kind::Peer => (PEERS[0], ""),
                Kind::Limit => (LIMITS[1], DASHES[0]),
            };
            Style { kind, color, dash }
        })
        .collect();
    for (i, x) in rates.iter().enumerate() {
        let st = rstyle[i];
        let cy = lt + row * (i as f64 + 0.5);
        let weight = if st.kind == Kind::Ours {
            r#" font-weight="bold""#
        } else {
            ""
        };
        text(
            b,
            rx_label,
            cy + 4.0,
            &format!(r#" text-anchor="end"{weight}"#),
            &clip(x.name, 48),
        );
        let Some(v) = x.v else {
            text(
                b,
                bx0 + 6.0,
                cy + 4.0,
                r##" fill="#888" font-style="italic""##,
                "not measured",
            );
            continue;
        };
        let _ = writeln!(
            b,
            r#"<rect x="{bx0:.1}" y="{:.1}" width="{:.1}" height="{bar_h:.1}" {}/>"#,
            cy - bar_h / 2.0,
            at(v) - bx0,
            st.bar_attrs()
        );
        let mut end = at(v);
        if let Some((a, c)) = x.sp {
            whisker(b, cy, at(a), at(c), false, "#222");
            end = end.max(at(c));
        }
        text(
            b,
            end + 6.0,
            cy + 4.0,
            r##" fill="#222""##,
            &format!("{}/s", si(v)),
        );
    }
    frame(b, rarea);
    lt + rh + 46.0
}

/// What was not measured, and why, from `y` down. Returns the bottom.
fn footer(b: &mut String, r: &Value, w: f64, mut y: f64) -> f64 {
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !skipped.is_empty() {
        let fit = ((w - 2.0 * M) / 6.2) as usize;
        text(
            b,
            M,
            y,
            r##" font-size="11" fill="#555" font-weight="bold""##,
            "Not measured:",
        );
        for (i, line) in skipped.iter().enumerate() {
            y += 15.0;
            if i == 8 {
                let more = format!("… and {} more (see the JSON)", skipped.len() - 8);
                text(b, M, y, r##" font-size="11" fill="#555""##, &more);
                break;
            }
            text(
                b,
                M,
                y,
                r##" font-size="11" fill="#555""##,
                &clip(line, fit),
            );
        }
    }
    y
}

#[cfg(test)]
mod tests;
