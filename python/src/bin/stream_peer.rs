//! The Rust side of the Python package's cross-language tests
//! (`python/tests/test_interop.py`): streams checkable values through a queue
//! that either side may have created, and watches an array for torn reads.
//!
//! ```text
//! stream_peer send spsc|mpmc NAME TOTAL MAX_LEN SEED [create CAPACITY]
//!     send the values 0, 1, 2, ... TOTAL-1 as f64, in batches of random length
//!     1..=MAX_LEN, then disconnect
//! stream_peer recv spsc|mpmc NAME TOTAL [create CAPACITY MAX_LEN]
//!     receive until disconnected; check the values are 0, 1, 2, ... TOTAL-1
//! stream_peer watch NAME MILLIS
//!     snapshot the f64 array NAME for MILLIS ms; every snapshot must hold one
//!     value throughout (a writer sets all elements to the same value)
//! ```
//! `open` waits up to 10 s for the segment. Prints one line of counts; exits 1
//! with a message on any mismatch.

use std::process::exit;
use std::time::{Duration, Instant};

use shmbatch::{mpmc, spsc, Options, SharedArray};

fn fail(msg: String) -> ! {
    eprintln!("stream_peer: {msg}");
    exit(1)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(format!("argument {i} ({what}) missing or invalid")))
}

/// xorshift64: reproducible batch lengths without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn open_opts() -> Options {
    Options::new().open_timeout(Duration::from_secs(10))
}

/// Sends one batch.
type Sink = Box<dyn FnMut(&[f64])>;

fn send(args: &[String]) {
    let (kind, name): (String, String) = (arg(args, 2, "kind"), arg(args, 3, "name"));
    let total: u64 = arg(args, 4, "total");
    let max_len: u64 = arg(args, 5, "max_len");
    let mut rng = Rng(arg::<u64>(args, 6, "seed") | 1);
    let create = args.get(7).map(String::as_str) == Some("create");
    let cap: usize = if create { arg(args, 8, "capacity") } else { 0 };
    let mut send: Sink = match kind.as_str() {
        "spsc" => {
            let mut tx = if create {
                spsc::Sender::<f64>::create(&name, cap)
            } else {
                spsc::Sender::<f64>::open_with(&name, &open_opts())
            }
            .unwrap_or_else(|e| fail(format!("open sender: {e}")));
            Box::new(move |b| tx.send(b).unwrap_or_else(|e| fail(format!("send: {e}"))))
        }
        "mpmc" => {
            let tx = if create {
                mpmc::Sender::<f64>::create(&name, cap, max_len as usize)
            } else {
                mpmc::Sender::<f64>::open_with(&name, &open_opts())
            }
            .unwrap_or_else(|e| fail(format!("open sender: {e}")));
            Box::new(move |b| tx.send(b).unwrap_or_else(|e| fail(format!("send: {e}"))))
        }
        other => fail(format!("unknown kind {other}")),
    };
    let (mut next, mut batches) = (0u64, 0u64);
    let mut buf = Vec::new();
    while next < total {
        let len = (1 + rng.below(max_len)).min(total - next);
        buf.clear();
        buf.extend((next..next + len).map(|v| v as f64));
        send(&buf);
        next += len;
        batches += 1;
    }
    if create {
        // The creator's handle removes the segment: wait for the receiver to drain.
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("sent {next} values in {batches} batches");
}

fn recv(args: &[String]) {
    let (kind, name): (String, String) = (arg(args, 2, "kind"), arg(args, 3, "name"));
    let total: u64 = arg(args, 4, "total");
    let create = args.get(5).map(String::as_str) == Some("create");
    let (cap, max_len): (usize, usize) = if create {
        (arg(args, 6, "capacity"), arg(args, 7, "max_len"))
    } else {
        (0, 0)
    };
    let (mut next, mut batches) = (0u64, 0u64);
    let mut check = |b: &[f64]| {
        for &v in b {
            if v.to_bits() != (next as f64).to_bits() {
                fail(format!("value {next}: got {v}"));
            }
            next += 1;
        }
        batches += 1;
    };
    match kind.as_str() {
        "spsc" => {
            let mut rx = if create {
                spsc::Receiver::<f64>::create(&name, cap)
            } else {
                spsc::Receiver::<f64>::open_with(&name, &open_opts())
            }
            .unwrap_or_else(|e| fail(format!("open receiver: {e}")));
            if create {
                println!("ready");
            }
            loop {
                match rx.recv() {
                    Ok(b) => check(&b),
                    Err(e) if e.is_disconnected() => break,
                    Err(e) => fail(format!("recv: {e}")),
                }
            }
        }
        "mpmc" => {
            let rx = if create {
                mpmc::Receiver::<f64>::create(&name, cap, max_len)
            } else {
                mpmc::Receiver::<f64>::open_with(&name, &open_opts())
            }
            .unwrap_or_else(|e| fail(format!("open receiver: {e}")));
            if create {
                println!("ready");
            }
            loop {
                match rx.recv() {
                    Ok(b) => check(&b),
                    Err(e) if e.is_disconnected() => break,
                    Err(e) => fail(format!("recv: {e}")),
                }
            }
        }
        other => fail(format!("unknown kind {other}")),
    }
    if next != total {
        fail(format!("received {next} values, expected {total}"));
    }
    println!("received {next} values in {batches} batches");
}

fn watch(args: &[String]) {
    let name: String = arg(args, 2, "name");
    let millis: u64 = arg(args, 3, "millis");
    let a = SharedArray::<f64>::open_with(&name, &open_opts())
        .unwrap_or_else(|e| fail(format!("open array: {e}")));
    let end = Instant::now() + Duration::from_millis(millis);
    let (mut reads, mut values) = (0u64, std::collections::BTreeSet::new());
    while Instant::now() < end {
        let snap = a.snapshot();
        if let Some(bad) = snap.iter().position(|x| x.to_bits() != snap[0].to_bits()) {
            fail(format!(
                "torn snapshot: element 0 is {}, element {bad} is {}",
                snap[0], snap[bad]
            ));
        }
        values.insert(snap[0].to_bits());
        reads += 1;
    }
    println!(
        "{reads} snapshots, {} distinct values, none torn",
        values.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("send") => send(&args),
        Some("recv") => recv(&args),
        Some("watch") => watch(&args),
        _ => fail("usage: stream_peer send|recv|watch ... (see the source)".into()),
    }
}
