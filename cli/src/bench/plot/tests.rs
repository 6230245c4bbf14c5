//! Tests of the bench plot: rendered from small JSON documents.
use serde_json::{json, Value};

use super::svg;

/// Checks that `svg` is well-formed enough: every tag closed in order, quotes
/// balanced, no stray `<`, `>` or `&` in text, one `<svg>` root.
fn well_formed(svg: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = svg;
    let check_text = |t: &str| -> Result<(), String> {
        if t.contains('>') {
            return Err(format!("stray '>' in {t:?}"));
        }
        for (i, _) in t.match_indices('&') {
            let e = &t[i..];
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|x| e.starts_with(x));
            if !ok {
                return Err(format!("bare '&' in {t:?}"));
            }
        }
        Ok(())
    };
    while let Some(i) = rest.find('<') {
        check_text(&rest[..i])?;
        let j = i + rest[i..].find('>').ok_or("unclosed tag")?;
        let tag = &rest[i + 1..j];
        if tag.contains('<') {
            return Err(format!("'<' inside tag {tag:?}"));
        }
        if !tag.matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes in {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or("");
            if name.is_empty() {
                return Err("empty tag".into());
            }
            if stack.is_empty() {
                roots += 1;
                if name != "svg" {
                    return Err(format!("root <{name}>"));
                }
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[j + 1..];
    }
    check_text(rest)?;
    match (stack.is_empty(), roots) {
        (true, 1) => Ok(()),
        (false, _) => Err(format!("unclosed: {stack:?}")),
        (_, n) => Err(format!("{n} roots")),
    }
}

/// The numbers of attribute `attr` in every element opening with `open`.
fn attr_of(svg: &str, open: &str, attr: &str) -> Vec<f64> {
    svg.lines()
        .filter(|l| l.starts_with(open))
        .filter_map(|l| {
            let k = format!(" {attr}=\"");
            let at = l.find(&k)? + k.len();
            l[at..].split('"').next()?.parse().ok()
        })
        .collect()
}

/// The boxes (x0, y0, x1, y1) of the rects with `class`.
fn boxes(svg: &str, class: &str) -> Vec<(f64, f64, f64, f64)> {
    let open = format!(r#"<rect class="{class}""#);
    let [x, y, w, h] = ["x", "y", "width", "height"].map(|a| attr_of(svg, &open, a));
    assert!(x.len() == y.len() && y.len() == w.len() && w.len() == h.len());
    (0..x.len())
        .map(|i| (x[i], y[i], x[i] + w[i], y[i] + h[i]))
        .collect()
}

fn spread(v: f64) -> Value {
    json!({ "min": v * 0.9, "max": v * 1.1, "runs": [v * 0.9, v, v * 1.1] })
}

fn full() -> Value {
    let mut tput = Vec::new();
    for (k, name) in [
        "memcpy (limit)",
        "shmbatch copy",
        "shmbatch zero-copy",
        "pipe",
    ]
    .iter()
    .enumerate()
    {
        for (i, batch) in [1, 16, 256, 65536].iter().enumerate() {
            let e = 1e6 * (k + 1) as f64 * 10f64.powi(i as i32);
            tput.push(json!({
                "name": name, "batch": batch, "elements_per_s": e, "bytes_per_s": e * 8.0,
                "spread_elements_per_s": spread(e), "skipped": null,
            }));
        }
    }
    let lat = |p50: f64| {
        json!({ "p50_ns": p50, "p99_ns": p50 * 3.0, "p999_ns": p50 * 10.0,
                "max_ns": p50 * 100.0, "mean_ns": p50 * 1.5, "samples": 1000 })
    };
    let mut bare = lat(300.0);
    bare["name"] = json!("bare atomic ping-pong (limit)");
    bare["runs"] = json!([lat(280.0), lat(300.0), lat(330.0)]);
    let mut ping = lat(320.0);
    ping["name"] = json!("shmbatch spsc ping-pong");
    ping["runs"] = json!([lat(310.0), lat(320.0), lat(350.0)]);
    json!({
        "machine": { "cpu": "Test CPU <9000> & Co @ 3.0GHz", "cores": 2, "kernel": "6.1.0",
                     "commit": "abc1234" },
        "settings": { "quick": false, "run_ms": 300, "runs": 3, "statistic": "median of runs" },
        "throughput": tput,
        "latency": [bare, ping],
        "rates": [
            { "name": "shmbatch mpmc 1P/1C", "per_s": 3e7, "spread_per_s": spread(3e7) },
            { "name": "crossbeam ArrayQueue 2P/2C (threads)", "per_s": 2e7,
              "spread_per_s": spread(2e7) },
            { "name": "SharedArray fetch_add, 2 processes", "per_s": 5e7,
              "spread_per_s": spread(5e7) },
        ],
        "skipped": [],
    })
}

/// 16 throughput points, 2 × 4 latency figures and 3 rates, each with a spread.
const FULL_WHISKERS: usize = 16 + 8 + 3;

#[test]
fn full_result() {
    let s = svg(&full());
    well_formed(&s).unwrap();
    for label in [
        "batch size (f64 elements, log scale)",
        "throughput (bytes/s, log scale)",
        "round-trip latency (ns, log scale)",
        "elements or operations per second",
        "Test CPU &lt;9000&gt; &amp; Co @ 3.0GHz",
        "commit abc1234",
        "median of 3 runs",
        ">mean<",
        ">p99.9<",
        "crossbeam ArrayQueue 2P/2C (threads)",
        "30 M/s",
    ] {
        assert!(s.contains(label), "no {label:?} in\n{s}");
    }
    assert_eq!(s.matches(r#"class="whisker""#).count(), FULL_WHISKERS);
    // Limits dashed, and only they.
    assert!(s.contains("stroke-dasharray"));
    let dashed = s.lines().filter(|l| l.contains("stroke-dasharray")).count();
    assert!(dashed >= 2, "{dashed}");
}

#[test]
fn legends_are_off_the_data() {
    let mut r = full();
    // Many series: the legend takes more columns, still beside the plot.
    let t = r["throughput"].as_array_mut().unwrap();
    for k in 0..30 {
        t.push(
            json!({ "name": format!("peer number {k} with a long name"), "batch": 16,
                       "bytes_per_s": 1e8 * (k + 1) as f64, "spread_elements_per_s": null }),
        );
    }
    let s = svg(&r);
    well_formed(&s).unwrap();
    let frames = boxes(&s, "frame");
    let legends = boxes(&s, "legend-box");
    assert_eq!(frames.len(), 3);
    assert_eq!(legends.len(), 2);
    let width = attr_of(&s, "<svg ", "width")[0];
    for l in &legends {
        assert!(l.2 <= width, "legend {l:?} past the right edge {width}");
        for f in &frames {
            let apart = l.2 <= f.0 || l.0 >= f.2 || l.3 <= f.1 || l.1 >= f.3;
            assert!(apart, "legend {l:?} over plot area {f:?}");
        }
    }
}

#[test]
fn broadcast_rates_get_their_own_panel() {
    let mut r = full();
    let rates = r["rates"].as_array_mut().unwrap();
    for (name, v) in [
        ("shmbatch broadcast 256 f64, 2 subs (per sub)", 4e8),
        ("ringfire spmc 256 f64, 2 subs (per sub)", 1e8),
    ] {
        rates.push(json!({ "name": name, "per_s": v, "spread_per_s": spread(v) }));
    }
    let s = svg(&r);
    well_formed(&s).unwrap();
    for label in [
        "MPMC (batches of one f64) and SharedArray, per second",
        "Broadcast (lossless, batches of 256 f64), per subscriber",
        "ringfire spmc 256 f64, 2 subs (per sub)",
        "400 M/s",
        "30 M/s",
    ] {
        assert!(s.contains(label), "no {label:?} in\n{s}");
    }
    assert_eq!(s.matches(r#"class="whisker""#).count(), FULL_WHISKERS + 2);
    // The broadcast panel is below the MPMC one, not over it.
    let frames = boxes(&s, "frame");
    assert_eq!(frames.len(), 4);
    let (mpmc, bcast) = (frames[2], frames[3]);
    assert!(bcast.1 > mpmc.3, "{mpmc:?} {bcast:?}");
    let height = attr_of(&s, "<svg ", "height")[0];
    assert!(bcast.3 < height, "{bcast:?} past the bottom {height}");
}

#[test]
fn old_or_partial_json() {
    // No commit, no mean, a skipped peer, null spreads, a rate not measured,
    // one run, and values of the wrong type.
    let r = json!({
        "machine": { "cpu": "Old CPU", "cores": 4, "kernel": "5.10" },
        "settings": { "quick": true, "runs": 1 },
        "throughput": [
            { "name": "shmbatch copy", "batch": 1, "bytes_per_s": 8e8,
              "spread_elements_per_s": { "min": 1e8, "max": 1e8, "runs": [1e8] } },
            { "name": "shmbatch copy", "batch": 16, "bytes_per_s": null,
              "spread_elements_per_s": null, "skipped": "failed" },
            { "name": "shmbatch copy", "batch": 256, "elements_per_s": 1e9 },
            { "name": "python mp.Queue", "batch": 1, "bytes_per_s": null,
              "spread_elements_per_s": null, "skipped": "no python" },
            { "name": "broken", "batch": "sixteen", "bytes_per_s": "fast" },
            { "batch": 1, "bytes_per_s": 1.0 },
        ],
        "latency": [ { "name": "shmbatch spsc ping-pong", "p50_ns": 300, "p99_ns": 900,
                       "p999_ns": null } ],
        "rates": [ { "name": "shmbatch mpmc 2P/2C", "per_s": null, "spread_per_s": null } ],
        "skipped": ["python mp.Queue: no python <here> & there"],
    });
    let s = svg(&r);
    well_formed(&s).unwrap();
    assert!(s.contains("Old CPU"));
    assert!(!s.contains("commit"));
    assert!(!s.contains(">mean<"));
    assert!(s.contains("python mp.Queue (not measured)"));
    assert!(s.contains("not measured"));
    assert!(s.contains("no python &lt;here&gt; &amp; there"));
    assert!(s.contains("batch size (f64 elements, log scale)"));
    assert_eq!(s.matches(r#"class="whisker""#).count(), 0);
    assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
}

#[test]
fn nothing_at_all() {
    for r in [
        json!({}),
        json!(null),
        json!([1, 2]),
        json!({ "throughput": {}, "rates": 3 }),
    ] {
        let s = svg(&r);
        well_formed(&s).unwrap();
        assert!(s.contains("no throughput figures"));
        assert!(s.contains("no latency figures"));
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
    }
}

#[test]
fn checker_catches_broken_svg() {
    assert!(well_formed("<svg><g></svg>").is_err());
    assert!(well_formed("<svg><text>a & b</text></svg>").is_err());
    assert!(well_formed(r#"<svg><rect x="1/></svg>"#).is_err());
    assert!(well_formed("<svg></svg><svg></svg>").is_err());
    assert!(well_formed("<svg><g/></svg>").is_ok());
}
