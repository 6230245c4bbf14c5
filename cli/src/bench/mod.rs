//! `shmbatch bench`: shmbatch between real processes, next to this machine's
//! limits and the alternatives, in one run.

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
    /// A 10-second version (shorter runs, same figures).
    #[arg(long)]
    quick: bool,
    /// Write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write an SVG plot (throughput against batch size, latency percentiles).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Leave out the other libraries (rtrb, crossbeam, pipe, socket, Python).
    #[arg(long)]
    no_peers: bool,
}

/// One throughput figure: elements per second of `name` at `batch`, or why the
/// figure is missing.
#[derive(Debug)]
struct Tput {
    name: &'static str,
    batch: usize,
    eps: std::result::Result<f64, String>,
}

struct Bench {
    dur: Duration,
    pb: ProgressBar,
    tput: Vec<Tput>,
    lat: Vec<(&'static str, measure::Latency)>,
    rates: Vec<(&'static str, std::result::Result<f64, String>)>,
    skipped: Vec<String>,
}

impl Bench {
    fn step<T>(&self, what: &str, f: impl FnOnce() -> T) -> T {
        self.pb.set_message(what.to_owned());
        let r = f();
        self.pb.inc(1);
        r
    }

    fn tput(&mut self, name: &'static str, batch: usize, f: impl FnOnce() -> Result<f64>) {
        let eps = self
            .step(&format!("{name}, batch {batch}"), f)
            .map_err(|e| e.to_string());
        if let Err(e) = &eps {
            self.skipped.push(format!("{name} (batch {batch}): {e}"));
        }
        self.tput.push(Tput { name, batch, eps });
    }

    fn get(&self, name: &str, batch: usize) -> Option<f64> {
        self.tput
            .iter()
            .find(|t| t.name == name && t.batch == batch)
            .and_then(|t| t.eps.as_ref().ok().copied())
    }

    fn rate(&mut self, name: &'static str, f: impl FnOnce() -> Result<f64>) {
        let r = self.step(name, f).map_err(|e| e.to_string());
        if let Err(e) = &r {
            self.skipped.push(format!("{name}: {e}"));
        }
        self.rates.push((name, r));
    }

    fn get_rate(&self, name: &str) -> Option<f64> {
        self.rates
            .iter()
            .find(|r| r.0 == name)
            .and_then(|r| r.1.as_ref().ok().copied())
    }
}

const MEMCPY: &str = "memcpy (limit)";
const COPY: &str = "shmbatch copy";
const ZC: &str = "shmbatch zero-copy";
const RTRB: &str = "rtrb (threads)";
const PIPE: &str = "pipe";
const UDS: &str = "unix socket";
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
    let dur = Duration::from_millis(if args.quick { 120 } else { 800 });
    let peers = !args.no_peers;
    let per_size = 3 + if peers { 4 } else { 0 };
    let total = SIZES.len() * per_size + 2 + 2 + 2 + if peers { 2 } else { 0 };
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let mut b = Bench {
        dur,
        pb,
        tput: Vec::new(),
        lat: Vec::new(),
        rates: Vec::new(),
        skipped: Vec::new(),
    };
    let lat = |b: &Bench, what, f: fn(Duration) -> Result<measure::Latency>| {
        b.step(what, || f(b.dur * 2))
    };
    let bare = lat(&b, BARE, measure::bare_pingpong)?;
    b.lat.push((BARE, bare));
    let pp = lat(&b, PINGPONG, measure::spsc_pingpong)?;
    b.lat.push((PINGPONG, pp));
    let exe = std::env::current_exe()?;
    for &n in &SIZES {
        b.tput(MEMCPY, n, || Ok(measure::memcpy(n, dur)));
        b.tput(COPY, n, || measure::spsc_throughput(n, false, dur));
        b.tput(ZC, n, || measure::spsc_throughput(n, true, dur));
        if peers {
            use shmbatch_bench_peers as p;
            b.tput(RTRB, n, || Ok(p::rtrb_threads(n, dur)));
            b.tput(PIPE, n, || Ok(p::pipe(&exe, n, dur)?));
            b.tput(UDS, n, || Ok(p::unix_socket(&exe, n, dur)?));
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
    b.pb.finish_and_clear();
    if peers {
        b.skipped
            .push("ipc-channel and iceoryx2: not built into this version of the benchmark".into());
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
    json!({ "cpu": cpu, "cores": cores, "kernel": kernel })
}

fn to_json(b: &Bench, quick: bool) -> Value {
    let lat = |l: &measure::Latency| {
        json!({ "p50_ns": l.p50, "p99_ns": l.p99, "p999_ns": l.p999, "max_ns": l.max,
                "samples": l.samples })
    };
    let mut targets = Vec::new();
    let mut target = |name: &str, value: Option<f64>, goal: &str, ok: Option<bool>| {
        targets.push(json!({ "target": name, "value": value, "goal": goal, "met": ok }));
    };
    let bare = b.lat.iter().find(|l| l.0 == BARE).map(|l| l.1.p50 as f64);
    let pp = b
        .lat
        .iter()
        .find(|l| l.0 == PINGPONG)
        .map(|l| l.1.p50 as f64);
    let r = pp.zip(bare).map(|(p, b)| p / b);
    target(
        "ping-pong p50 / bare atomic p50",
        r,
        "<= 1.3",
        r.map(|r| r <= 1.3),
    );
    let r = b
        .get(COPY, 1024)
        .zip(b.get(MEMCPY, 1024))
        .map(|(c, m)| c / m);
    target("1024-f64 copy / memcpy", r, ">= 0.8", r.map(|r| r >= 0.8));
    let r = b.get(COPY, 1).zip(b.get(RTRB, 1)).map(|(c, m)| c / m);
    target(
        "1-f64 copy (processes) / rtrb (threads)",
        r,
        ">= 1",
        r.map(|r| r >= 1.0),
    );
    let r = SIZES
        .iter()
        .map(|&n| b.get(COPY, n).zip(b.get(PYTHON, n)).map(|(c, p)| c / p))
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.into_iter().fold(f64::INFINITY, f64::min));
    target(
        "min over sizes of copy / python",
        r,
        ">= 30",
        r.map(|r| r >= 30.0),
    );
    let r = b.get_rate(MPMC22).zip(b.get_rate(CB22)).map(|(m, c)| m / c);
    target(
        "mpmc 2P/2C / crossbeam 2P/2C",
        r,
        ">= 1",
        r.map(|r| r >= 1.0),
    );
    json!({
        "machine": machine(),
        "settings": { "quick": quick, "run_ms": b.dur.as_millis() as u64 },
        "throughput": b.tput.iter().map(|t| json!({
            "name": t.name, "batch": t.batch,
            "elements_per_s": t.eps.as_ref().ok(),
            "bytes_per_s": t.eps.as_ref().ok().map(|e| e * 8.0),
            "skipped": t.eps.as_ref().err(),
        })).collect::<Vec<_>>(),
        "latency": b.lat.iter().map(|(n, l)| {
            let mut v = lat(l);
            v["name"] = json!(n);
            v
        }).collect::<Vec<_>>(),
        "rates": b.rates.iter().map(|(n, r)| json!({
            "name": n, "per_s": r.as_ref().ok(), "skipped": r.as_ref().err(),
        })).collect::<Vec<_>>(),
        "targets": targets,
        "skipped": b.skipped,
    })
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
        "shmbatch bench{} on {} ({} cores, Linux {})\n",
        if result["settings"]["quick"] == true {
            " --quick"
        } else {
            ""
        },
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["kernel"].as_str().unwrap_or("?")
    );
    println!("Round trip of one f64 between two processes (ns)");
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>10} {:>9}",
        "", "p50", "p99", "p99.9", "max", "vs limit"
    );
    let bare = b.lat.iter().find(|l| l.0 == BARE).map(|l| l.1.p50);
    for (n, l) in &b.lat {
        let ratio = bare.map_or(String::new(), |x| {
            format!("{:.2}x", l.p50 as f64 / x as f64)
        });
        println!(
            "{n:<32} {:>8} {:>8} {:>8} {:>10} {ratio:>9}",
            l.p50, l.p99, l.p999, l.max
        );
    }
    println!("\nSPSC throughput, batches of f64 between two processes (peers as noted)");
    println!(
        "{:>6}  {:<20} {:>12} {:>11} {:>9} {:>14}",
        "batch", "", "elements/s", "bytes/s", "vs memcpy", "shmbatch/this"
    );
    for &n in &SIZES {
        let memcpy = b.get(MEMCPY, n);
        let copy = b.get(COPY, n);
        for t in b.tput.iter().filter(|t| t.batch == n) {
            match &t.eps {
                Ok(e) => {
                    let vs = match (t.name, memcpy) {
                        (COPY | ZC, Some(m)) => format!("{:.2}", e / m),
                        _ => String::new(),
                    };
                    let this = match (t.name, copy) {
                        (MEMCPY | COPY | ZC, _) | (_, None) => String::new(),
                        (_, Some(c)) => format!("{:.1}x", c / e),
                    };
                    println!(
                        "{n:>6}  {:<20} {:>12} {:>11} {vs:>9} {this:>14}",
                        t.name,
                        si(*e),
                        format!("{}B", si(e * 8.0)),
                    );
                }
                Err(e) => println!("{n:>6}  {:<20} skipped: {e}", t.name),
            }
        }
    }
    println!("\nMPMC (batches of one f64) and SharedArray, per second");
    for (n, r) in &b.rates {
        match r {
            Ok(v) => println!("{n:<42} {:>12}", si(*v)),
            Err(e) => println!("{n:<42} skipped: {e}"),
        }
    }
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
        println!(
            "{:<42} {v:>8}  (goal {}) {met}",
            t["target"].as_str().unwrap_or(""),
            t["goal"].as_str().unwrap_or("")
        );
    }
    if !b.skipped.is_empty() {
        println!("\nSkipped");
        for s in &b.skipped {
            println!("  {s}");
        }
    }
}
