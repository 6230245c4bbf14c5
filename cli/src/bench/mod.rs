//! `shmbatch bench`: shmbatch between real processes, next to this machine's
//! limits and the alternatives, in one run.

mod broadcast;
mod measure;
mod plot;

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::Result;

/// Batch sizes (in `f64`) of the SPSC throughput table.
pub(crate) const SIZES: [usize; 6] = [1, 16, 256, 1024, 4096, 65536];

/// Options of `shmbatch bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A 10-second version (shorter runs, one of each; same figures).
    #[arg(long)]
    quick: bool,
    /// Run the whole set of measurements N times and report the median of each
    /// figure (default 3, or 1 with --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=99))]
    runs: Option<u32>,
    /// Write every figure as JSON to this file (medians, with every run).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write an SVG plot (throughput against batch size, latency percentiles).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Leave out the other libraries (rtrb, crossbeam, pipe, socket, ipc-channel,
    /// ringfire, shaq, iceoryx2, Python).
    #[arg(long)]
    no_peers: bool,
}

/// The runs of one figure: every value measured, and why a run failed.
#[derive(Debug, Default)]
struct Runs {
    values: Vec<f64>,
    error: Option<String>,
}

impl Runs {
    /// The median of the runs that succeeded, or why none did.
    fn median(&self) -> std::result::Result<f64, &str> {
        median(&self.values).ok_or(self.error.as_deref().unwrap_or("not measured"))
    }

    fn spread(&self) -> Value {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        if self.values.is_empty() {
            Value::Null
        } else {
            json!({ "min": min, "max": max, "runs": self.values })
        }
    }
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One throughput figure: elements per second of `name` at `batch`, every run.
#[derive(Debug)]
struct Tput {
    name: &'static str,
    batch: usize,
    runs: Runs,
}

/// A figure that could not be measured, with the batch sizes it failed at.
#[derive(Debug)]
struct Skip {
    name: String,
    batches: Vec<usize>,
    reason: String,
}

struct Bench {
    dur: Duration,
    runs: u32,
    pb: ProgressBar,
    tput: Vec<Tput>,
    lat: Vec<(&'static str, Vec<measure::Latency>)>,
    rates: Vec<(&'static str, Runs)>,
    skipped: Vec<Skip>,
}

impl Bench {
    fn step<T>(&self, what: &str, f: impl FnOnce() -> T) -> T {
        self.pb.set_message(what.to_owned());
        let r = f();
        self.pb.inc(1);
        r
    }

    fn skip(&mut self, name: &str, batch: Option<usize>, reason: String) {
        let batches = batch.into_iter().collect::<Vec<_>>();
        match self
            .skipped
            .iter_mut()
            .find(|s| s.name == name && s.reason == reason)
        {
            Some(s) => {
                for b in batches {
                    if !s.batches.contains(&b) {
                        s.batches.push(b);
                    }
                }
            }
            None => self.skipped.push(Skip {
                name: name.to_owned(),
                batches,
                reason,
            }),
        }
    }

    fn tput(&mut self, name: &'static str, batch: usize, f: impl FnOnce() -> Result<f64>) {
        let r = self.step(&format!("{name}, batch {batch}"), f);
        let i = match self
            .tput
            .iter()
            .position(|t| t.name == name && t.batch == batch)
        {
            Some(i) => i,
            None => {
                self.tput.push(Tput {
                    name,
                    batch,
                    runs: Runs::default(),
                });
                self.tput.len() - 1
            }
        };
        match r {
            Ok(v) => self.tput[i].runs.values.push(v),
            Err(e) => {
                let e = e.to_string();
                self.tput[i].runs.error.get_or_insert_with(|| e.clone());
                self.skip(name, Some(batch), e);
            }
        }
    }

    /// The median of `name` at `batch`.
    fn get(&self, name: &str, batch: usize) -> Option<f64> {
        self.tput
            .iter()
            .find(|t| t.name == name && t.batch == batch)
            .and_then(|t| t.runs.median().ok())
    }

    fn rate(&mut self, name: &'static str, f: impl FnOnce() -> Result<f64>) {
        let r = self.step(name, f);
        let i = match self.rates.iter().position(|r| r.0 == name) {
            Some(i) => i,
            None => {
                self.rates.push((name, Runs::default()));
                self.rates.len() - 1
            }
        };
        match r {
            Ok(v) => self.rates[i].1.values.push(v),
            Err(e) => {
                let e = e.to_string();
                self.rates[i].1.error.get_or_insert_with(|| e.clone());
                self.skip(name, None, e);
            }
        }
    }

    /// The median of `name`.
    fn get_rate(&self, name: &str) -> Option<f64> {
        self.rates
            .iter()
            .find(|r| r.0 == name)
            .and_then(|r| r.1.median().ok())
    }

    fn lat(&mut self, name: &'static str, f: impl FnOnce() -> Result<measure::Latency>) -> Result {
        let l = self.step(name, f)?;
        match self.lat.iter_mut().find(|l| l.0 == name) {
            Some((_, v)) => v.push(l),
            None => self.lat.push((name, vec![l])),
        }
        Ok(())
    }

    /// The median of each percentile of `name` over the runs (and the largest
    /// maximum).
    fn get_lat(&self, name: &str) -> Option<measure::Latency> {
        let runs = &self.lat.iter().find(|l| l.0 == name)?.1;
        let med = |f: fn(&measure::Latency) -> u64| {
            median(&runs.iter().map(|l| f(l) as f64).collect::<Vec<_>>()).map(|v| v.round() as u64)
        };
        Some(measure::Latency {
            p50: med(|l| l.p50)?,
            p99: med(|l| l.p99)?,
            p999: med(|l| l.p999)?,
            max: runs.iter().map(|l| l.max).max()?,
            mean: median(&runs.iter().map(|l| l.mean).collect::<Vec<_>>())?,
            samples: runs.iter().map(|l| l.samples).sum(),
        })
    }
}

const MEMCPY: &str = "memcpy (limit)";
const HANDOFF: &str = "cross-core handoff (limit)";
const COPY: &str = "shmbatch copy";
const ZC: &str = "shmbatch zero-copy";
const RTRB: &str = "rtrb (threads)";
const PIPE: &str = "pipe";
const UDS: &str = "unix socket";
const IPC_CHANNEL: &str = "ipc-channel (bytes)";
const ICEORYX2: &str = "iceoryx2 pub/sub";
const RINGFIRE: &str = "ringfire spmc (lossless)";
const SHAQ: &str = "shaq spsc";
const PYTHON: &str = "python mp.Queue";
const MPMC11: &str = "shmbatch mpmc 1P/1C";
const MPMC22: &str = "shmbatch mpmc 2P/2C";
const CB11: &str = "crossbeam ArrayQueue 1P/1C (threads)";
const CB22: &str = "crossbeam ArrayQueue 2P/2C (threads)";
const LOCKED: &str = "SharedArray write (locked), 2 processes";
const FETCH_ADD: &str = "SharedArray fetch_add, 2 processes";
const BARE: &str = "bare atomic ping-pong (limit)";
const PINGPONG: &str = "shmbatch spsc ping-pong";

pub(crate) fn run(args: &Args) -> Result {
    let dur = Duration::from_millis(if args.quick { 120 } else { 300 });
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });
    let peers = !args.no_peers;
    let iceoryx2 = peers && shmbatch_bench_peers::ICEORYX2_BUILT;
    let per_size = 4 + if peers { 7 } else { 0 } + usize::from(iceoryx2);
    let per_run = SIZES.len() * per_size
        + 2
        + 2
        + 2
        + if peers { 2 } else { 0 }
        + broadcast::steps(peers, iceoryx2);
    let pb = ProgressBar::new((per_run * runs as usize) as u64);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let mut b = Bench {
        dur,
        runs,
        pb,
        tput: Vec::new(),
        lat: Vec::new(),
        rates: Vec::new(),
        skipped: Vec::new(),
    };
    let exe = std::env::current_exe()?;
    // Whole rounds, one after the other: a burst of load from elsewhere on the
    // machine then spoils one run of many figures rather than every run of one.
    for _ in 0..runs {
        b.lat(BARE, || measure::bare_pingpong(dur * 2))?;
        b.lat(PINGPONG, || measure::spsc_pingpong(dur * 2))?;
        b.lat(broadcast::PINGPONG, || broadcast::pingpong(dur * 2))?;
        for &n in &SIZES {
            b.tput(MEMCPY, n, || Ok(measure::memcpy(n, dur)));
            b.tput(HANDOFF, n, || measure::handoff(n, dur));
            b.tput(COPY, n, || measure::spsc_throughput(n, false, dur));
            b.tput(ZC, n, || measure::spsc_throughput(n, true, dur));
            if peers {
                use shmbatch_bench_peers as p;
                b.tput(RTRB, n, || Ok(p::rtrb_threads(n, dur)));
                b.tput(PIPE, n, || Ok(p::pipe(&exe, n, dur)?));
                b.tput(UDS, n, || Ok(p::unix_socket(&exe, n, dur)?));
                b.tput(IPC_CHANNEL, n, || Ok(p::ipc_channel(&exe, n, dur)?));
                b.tput(RINGFIRE, n, || Ok(p::ringfire(&exe, n, dur)?));
                b.tput(SHAQ, n, || Ok(p::shaq(&exe, n, dur)?));
                if iceoryx2 {
                    b.tput(ICEORYX2, n, || Ok(p::iceoryx2(&exe, n, dur)?));
                }
                b.tput(PYTHON, n, || Ok(p::python_mp_queue(n, dur)?));
            }
        }
        b.rate(MPMC11, || measure::mpmc_throughput(1, 1, dur));
        b.rate(MPMC22, || measure::mpmc_throughput(2, 2, dur));
        if peers {
            b.rate(CB11, || {
                Ok(shmbatch_bench_peers::crossbeam_threads(1, 1, dur))
            });
            b.rate(CB22, || {
                Ok(shmbatch_bench_peers::crossbeam_threads(2, 2, dur))
            });
        }
        b.rate(LOCKED, || measure::array_rate(true, dur));
        b.rate(FETCH_ADD, || measure::array_rate(false, dur));
        broadcast::measure(&mut b, &exe, peers, iceoryx2);
    }
    b.pb.finish_and_clear();
    if peers && !iceoryx2 {
        b.skip(
            ICEORYX2,
            None,
            "not built in: run with `cargo run --release -p shmbatch-cli --features iceoryx2 \
             -- bench` (about one more minute of build, Rust 1.89 or later)"
                .into(),
        );
    }

    let result = to_json(&b, args.quick);
    print_table(&b, &result);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, plot::svg(&result))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub(crate) fn peer(args: &[String]) -> Result {
    measure::child(args)
}

pub(crate) fn replot(json: &Path, svg: &Path) -> Result {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(json)?)?;
    std::fs::write(svg, plot::svg(&v))?;
    Ok(())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "cpu": cpu, "cores": cores, "kernel": kernel, "commit": commit(),
            "wake": wake() })
}

/// The commit of the checkout this binary was built from (`-dirty` with
/// uncommitted changes), if git can tell.
fn commit() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let hash = git(&["rev-parse", "--short=10", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// What this process measured of waiting and chose from it
/// (`shmbatch::calibration`).
fn wake() -> Value {
    let c = shmbatch::calibration();
    let ns = |d: std::time::Duration| d.as_nanos() as u64;
    json!({
        "protocol": format!("{:?}", c.protocol).to_lowercase(),
        "membarrier_ns": c.membarrier.map(ns),
        "fence_ns": ns(c.fence),
        "sleep_wake_ns": ns(c.sleep_wake),
        "spin_ns": ns(c.spin),
    })
}

fn to_json(b: &Bench, quick: bool) -> Value {
    let lat = |l: &measure::Latency| {
        json!({ "p50_ns": l.p50, "p99_ns": l.p99, "p999_ns": l.p999, "max_ns": l.max,
                "mean_ns": l.mean, "samples": l.samples })
    };
    let mut targets = Vec::new();
    let mut target =
        |name: &str, value: Option<f64>, goal: &str, ok: Option<bool>, extra: Value| {
            let mut t = json!({ "target": name, "value": value, "goal": goal, "met": ok });
            if let (Value::Object(t), Value::Object(extra)) = (&mut t, extra) {
                t.extend(extra);
            }
            targets.push(t);
        };
    let of = |name, f: fn(&measure::Latency) -> f64| b.get_lat(name).map(|l| f(&l));
    for (what, f, goal) in [
        (
            "p50",
            (|l| l.p50 as f64) as fn(&measure::Latency) -> f64,
            1.15,
        ),
        ("p99", |l| l.p99 as f64, 1.5),
        ("mean", |l| l.mean, 1.2),
    ] {
        let r = of(PINGPONG, f).zip(of(BARE, f)).map(|(p, b)| p / b);
        target(
            &format!("ping-pong {what} / bare atomic {what}"),
            r,
            &format!("<= {goal}"),
            r.map(|r| r <= goal),
            json!({}),
        );
    }
    let ratio = |a: &str, lim: &str, n| b.get(a, n).zip(b.get(lim, n)).map(|(c, m)| c / m);
    for n in [1, 16] {
        let r = ratio(COPY, RTRB, n);
        target(
            &format!("{n}-f64 copy (processes) / rtrb (threads)"),
            r,
            ">= 1",
            r.map(|r| r >= 1.0),
            json!({}),
        );
        let r = ratio(COPY, HANDOFF, n);
        target(
            &format!("{n}-f64 copy / cross-core handoff"),
            r,
            ">= 0.8",
            r.map(|r| r >= 0.8),
            json!({}),
        );
    }
    // Worst size from 256 up; memcpy within one core is context, not a goal (no
    // queue between two cores can reach it).
    let large = SIZES.iter().filter(|&&n| n >= 256);
    let worst = large
        .clone()
        .map(|&n| ratio(COPY, HANDOFF, n).map(|r| (r, n)))
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().min_by(|a, b| a.0.total_cmp(&b.0)));
    target(
        "min over sizes >= 256 of copy / cross-core handoff",
        worst.map(|w| w.0),
        ">= 0.95",
        worst.map(|w| w.0 >= 0.95),
        json!({ "at_batch": worst.map(|w| w.1),
                "vs_memcpy_1024": ratio(COPY, MEMCPY, 1024) }),
    );
    let min_over = |peer: &str| {
        let v: Vec<(f64, usize)> = SIZES
            .iter()
            .filter_map(|&n| ratio(COPY, peer, n).map(|r| (r, n)))
            .collect();
        v.into_iter().min_by(|a, b| a.0.total_cmp(&b.0))
    };
    for (peer, goal) in [
        (PYTHON, 30.0),
        (RINGFIRE, 1.0),
        (SHAQ, 1.0),
        (ICEORYX2, 1.0),
    ] {
        let w = min_over(peer);
        target(
            &format!("min over sizes of copy / {peer}"),
            w.map(|w| w.0),
            &format!(">= {goal}"),
            w.map(|w| w.0 >= goal),
            json!({ "at_batch": w.map(|w| w.1) }),
        );
    }
    let r = b.get_rate(MPMC22).zip(b.get_rate(CB22)).map(|(m, c)| m / c);
    target(
        "mpmc 2P/2C / crossbeam 2P/2C",
        r,
        ">= 1",
        r.map(|r| r >= 1.0),
        json!({}),
    );
    broadcast::targets(b, &mut target);
    json!({
        "machine": machine(),
        "settings": { "quick": quick, "run_ms": b.dur.as_millis() as u64, "runs": b.runs,
                      "statistic": "median of runs" },
        "throughput": b.tput.iter().map(|t| {
            let m = t.runs.median().ok();
            json!({
                "name": t.name, "batch": t.batch,
                "elements_per_s": m,
                "bytes_per_s": m.map(|e| e * 8.0),
                "spread_elements_per_s": t.runs.spread(),
                "skipped": t.runs.median().err(),
            })
        }).collect::<Vec<_>>(),
        "latency": b.lat.iter().filter_map(|(n, runs)| {
            let mut v = lat(&b.get_lat(n)?);
            v["name"] = json!(n);
            v["runs"] = runs.iter().map(lat).collect();
            Some(v)
        }).collect::<Vec<_>>(),
        "rates": b.rates.iter().map(|(n, r)| json!({
            "name": n, "per_s": r.median().ok(), "spread_per_s": r.spread(),
            "skipped": r.median().err(),
        })).collect::<Vec<_>>(),
        "targets": targets,
        "skipped": b.skipped.iter().map(Skip::line).collect::<Vec<_>>(),
    })
}

impl Skip {
    fn line(&self) -> String {
        match self.batches.as_slice() {
            [] => format!("{}: {}", self.name, self.reason),
            [one] => format!("{} (batch {one}): {}", self.name, self.reason),
            many => {
                let list = many.iter().map(usize::to_string).collect::<Vec<_>>();
                format!(
                    "{} (batches {}): {}",
                    self.name,
                    list.join(", "),
                    self.reason
                )
            }
        }
    }
}

/// A ratio of shmbatch's figure to another's, said the way it reads: "2.1x
/// faster" or "1.3x slower".
fn faster_or_slower(ratio: f64) -> String {
    if ratio >= 1.0 {
        format!("{ratio:.1}x faster")
    } else {
        format!("{:.1}x slower", 1.0 / ratio)
    }
}

fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.2} k", v / 1e3),
        v => format!("{v:.0} "),
    }
}

fn print_table(b: &Bench, result: &Value) {
    let m = &result["machine"];
    println!(
        "shmbatch bench{} on {} ({} cores, Linux {})",
        if result["settings"]["quick"] == true {
            " --quick"
        } else {
            ""
        },
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["kernel"].as_str().unwrap_or("?")
    );
    if let Some(c) = m["commit"].as_str() {
        println!("commit {c}");
    }
    let w = &m["wake"];
    let us = |v: &Value| {
        v.as_f64()
            .map_or("n/a".into(), |ns| format!("{:.1} µs", ns / 1e3))
    };
    println!(
        "wake protocol: {} (membarrier with a peer running {}, sleep and wake {}, fence {} ns); \
         waiters spin {} before sleeping",
        w["protocol"].as_str().unwrap_or("?"),
        us(&w["membarrier_ns"]),
        us(&w["sleep_wake_ns"]),
        w["fence_ns"],
        us(&w["spin_ns"]),
    );
    if b.runs > 1 {
        println!(
            "every figure: the median of {} runs (min and max in --json)\n",
            b.runs
        );
    } else {
        println!("every figure: one run (--runs N for medians)\n");
    }
    println!("Round trip of one f64 between two processes (ns)");
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>10}  mean vs limit (lower is better)",
        "", "p50", "p99", "p99.9", "mean", "max"
    );
    let bare = b.get_lat(BARE).map(|l| l.mean);
    for (n, _) in &b.lat {
        let Some(l) = b.get_lat(n) else { continue };
        let ratio = match bare {
            Some(x) if *n != BARE => format!("{:.2}x the limit", l.mean / x),
            _ => String::new(),
        };
        println!(
            "{n:<34} {:>8} {:>8} {:>8} {:>8.0} {:>10}  {ratio}",
            l.p50, l.p99, l.p999, l.mean, l.max
        );
    }
    println!("\nSPSC throughput, batches of f64 between two processes (peers as noted)");
    println!(
        "{:>6}  {:<26} {:>11} {:>11} {:>9} {:>10} {:>22}",
        "batch", "", "elements/s", "bytes/s", "vs memcpy", "vs handoff", "shmbatch copy vs this"
    );
    for &n in &SIZES {
        let memcpy = b.get(MEMCPY, n);
        let handoff = b.get(HANDOFF, n);
        let copy = b.get(COPY, n);
        for t in b.tput.iter().filter(|t| t.batch == n) {
            match t.runs.median() {
                Ok(e) => {
                    let vs = |lim: Option<f64>, of: &[&str]| match lim {
                        Some(m) if of.contains(&t.name) => format!("{:.2}", e / m),
                        _ => String::new(),
                    };
                    let this = match (t.name, copy) {
                        (MEMCPY | HANDOFF | COPY | ZC, _) | (_, None) => String::new(),
                        (_, Some(c)) => faster_or_slower(c / e),
                    };
                    println!(
                        "{n:>6}  {:<26} {:>11} {:>11} {:>9} {:>10} {this:>22}",
                        t.name,
                        si(e),
                        format!("{}B/s", si(e * 8.0)),
                        vs(memcpy, &[COPY, ZC, HANDOFF]),
                        vs(handoff, &[COPY]),
                    );
                }
                Err(e) => println!("{n:>6}  {:<26} skipped: {e}", t.name),
            }
        }
    }
    println!("\nMPMC (batches of one f64) and SharedArray, per second");
    for (n, r) in b.rates.iter().filter(|(n, _)| !broadcast::is_row(n)) {
        match r.median() {
            Ok(v) => println!("{n:<42} {:>12}", si(v)),
            Err(e) => println!("{n:<42} skipped: {e}"),
        }
    }
    broadcast::print_table(b);
    println!("\nTargets");
    for t in result["targets"].as_array().into_iter().flatten() {
        let v = t["value"]
            .as_f64()
            .map_or("n/a".into(), |v| format!("{v:.2}"));
        let met = match t["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        let beside = t["vs_handoff"].as_f64().map_or(String::new(), |h| {
            format!("  (vs cross-core handoff: {h:.2})")
        });
        println!(
            "{:<42} {v:>8}  (goal {}) {met}{beside}",
            t["target"].as_str().unwrap_or(""),
            t["goal"].as_str().unwrap_or("")
        );
    }
    if !b.skipped.is_empty() {
        println!("\nSkipped");
        for s in &b.skipped {
            println!("  {}", s.line());
        }
    }
}
