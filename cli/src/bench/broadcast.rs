//! Broadcast rows of `shmbatch bench`: one publisher (this process) to 1, 2 and 4
//! subscriber processes, lossless, batches of 256 `f64`, shmbatch and its peers
//! measured the same way ([`shmbatch_bench_peers::broadcast`]); and a round trip
//! out through a broadcast log and back through an SPSC queue.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shmbatch::{broadcast, spsc};
use shmbatch_bench_peers as p;
use shmbatch_bench_peers::broadcast::{Subscribers, BATCH, SUBSCRIBERS};

use super::measure::{histogram, ring_for, seg, Latency};
use super::{faster_or_slower, si, Bench};
use crate::Result;

// The row names below say the batch.
const _: () = assert!(BATCH == 256);

/// Per subscriber count (1, 2, 4): the row names of shmbatch and each peer.
const OURS: [&str; 3] = [
    "shmbatch broadcast 256 f64, 1 sub (per sub)",
    "shmbatch broadcast 256 f64, 2 subs (per sub)",
    "shmbatch broadcast 256 f64, 4 subs (per sub)",
];
const RINGFIRE: [&str; 3] = [
    "ringfire spmc 256 f64, 1 sub (per sub)",
    "ringfire spmc 256 f64, 2 subs (per sub)",
    "ringfire spmc 256 f64, 4 subs (per sub)",
];
const SHAQ: [&str; 3] = [
    "shaq broadcast 256 f64, 1 sub (per sub)",
    "shaq broadcast 256 f64, 2 subs (per sub)",
    "shaq broadcast 256 f64, 4 subs (per sub)",
];
const ICEORYX2: [&str; 3] = [
    "iceoryx2 pub/sub 256 f64, 1 sub (per sub)",
    "iceoryx2 pub/sub 256 f64, 2 subs (per sub)",
    "iceoryx2 pub/sub 256 f64, 4 subs (per sub)",
];
/// The peers: the short name used in the targets, and the rows.
const PEERS: [(&str, [&str; 3]); 3] = [
    ("ringfire spmc", RINGFIRE),
    ("shaq broadcast", SHAQ),
    ("iceoryx2 pub/sub", ICEORYX2),
];

/// The round trip: out through a broadcast log, back through an SPSC queue.
pub(super) const PINGPONG: &str = "shmbatch broadcast+spsc ping-pong";

/// Whether `name` is one of the broadcast throughput rows (printed in their own
/// table rather than with the MPMC and SharedArray rates).
pub(super) fn is_row(name: &str) -> bool {
    [OURS, RINGFIRE, SHAQ, ICEORYX2]
        .iter()
        .any(|rows| rows.contains(&name))
}

/// The progress bar's steps of one round: the round trip and the throughput rows.
pub(super) fn steps(peers: bool, iceoryx2: bool) -> usize {
    let per_count = 1 + if peers { 2 } else { 0 } + usize::from(iceoryx2);
    1 + SUBSCRIBERS.len() * per_count
}

/// One round of the broadcast throughput rows (the round trip, [`pingpong`],
/// runs beside the other round trips).
pub(super) fn measure(b: &mut Bench, exe: &Path, peers: bool, iceoryx2: bool) {
    let dur = b.dur;
    for (i, &n) in SUBSCRIBERS.iter().enumerate() {
        b.rate(OURS[i], || throughput(n, dur));
        if peers {
            b.rate(RINGFIRE[i], || Ok(p::ringfire_broadcast(exe, n, dur)?));
            // shaq 4.3.0 has a broadcast queue (`shaq::broadcast`), lossless.
            b.rate(SHAQ[i], || Ok(p::shaq_broadcast(exe, n, dur)?));
            if iceoryx2 {
                b.rate(ICEORYX2[i], || Ok(p::iceoryx2_broadcast(exe, n, dur)?));
            }
        }
    }
}

/// shmbatch broadcast between processes: this process creates a lossless log
/// of `ring_for(256)` elements (as the SPSC rows' ring: 16384) and publishes
/// with `send` (one copy in); each of `subs` child processes subscribes before
/// the first batch and takes every batch with `recv_into` (one copy out), as
/// the peers copy in and out. Elements per second per subscriber (see
/// [`shmbatch_bench_peers::broadcast`]).
fn throughput(subs: usize, dur: Duration) -> Result<f64> {
    let name = seg("bcast");
    // Dropped after `tx`: on an error path the subscribers get Disconnected.
    let mut s = Subscribers::new(None);
    let mut tx = broadcast::Publisher::<f64>::create(&name, ring_for(BATCH))?;
    s.spawn(&std::env::current_exe()?, subs, &["bcast-sub".into(), name])?;
    let mut src: Vec<f64> = (0..BATCH).map(|i| i as f64).collect();
    let rate = p::broadcast::publish(&mut s, dur, |x, _: &mut Subscribers| {
        src[0] = x;
        tx.send(&src)
    })?;
    Ok(rate)
}

/// Ping-pong of one `f64` between two processes, out as a batch of a broadcast
/// log and back over an SPSC queue.
pub(super) fn pingpong(dur: Duration) -> Result<Latency> {
    let (a, c) = (seg("bping"), seg("bpong"));
    let mut s = Subscribers::new(None); // dropped last, as in `throughput`
    let mut tx = broadcast::Publisher::<f64>::create(&a, 1024)?;
    let mut rx = spsc::Receiver::<f64>::create(&c, 1024)?;
    s.spawn(&std::env::current_exe()?, 1, &["bcast-pong".into(), a, c])?;
    // It has subscribed: nothing sent from here on is lost.
    s.ready()?;
    let mut h = histogram();
    let mut x = 0.0;
    let warm = Instant::now();
    while warm.elapsed() < dur / 10 {
        tx.send(&[x])?;
        x = rx.recv()?[0] + 1.0;
    }
    let start = Instant::now();
    while start.elapsed() < dur {
        let t = Instant::now();
        tx.send(&[x])?;
        x = rx.recv()?[0] + 1.0;
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    drop(tx); // the subscriber gets Disconnected and exits
    drop(rx);
    s.wait()?;
    Ok(Latency::of(&h))
}

/// The child ends (`bench-peer bcast-sub NAME`, `bench-peer bcast-pong NAME
/// NAME`); `None` for another peer.
pub(super) fn child(args: &[String]) -> Option<Result> {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    Some(match a(0) {
        "bcast-sub" => subscribe(a(1)),
        "bcast-pong" => pong(a(1), a(2)),
        _ => return None,
    })
}

fn subscribe(name: &str) -> Result {
    let mut rx = broadcast::Subscriber::<f64>::open(name)?;
    let mut out = Vec::with_capacity(BATCH);
    p::broadcast::subscribe(|| {
        rx.recv_into(&mut out).map_err(|e| e.to_string())?;
        out.first()
            .copied()
            .ok_or_else(|| "an empty batch".to_owned())
    })?;
    Ok(())
}

fn pong(name: &str, back: &str) -> Result {
    let mut rx = broadcast::Subscriber::<f64>::open(name)?;
    let mut tx = spsc::Sender::<f64>::open(back)?;
    println!("ready");
    while let Ok(b) = rx.recv() {
        let x = b[0];
        drop(b);
        if tx.send(&[x]).is_err() {
            break;
        }
    }
    Ok(())
}

/// The targets: shmbatch against each peer at each subscriber count.
pub(super) fn targets(
    b: &Bench,
    target: &mut impl FnMut(&str, Option<f64>, &str, Option<bool>, Value),
) {
    for (peer, rows) in PEERS {
        for (i, &n) in SUBSCRIBERS.iter().enumerate() {
            let r = b
                .get_rate(OURS[i])
                .zip(b.get_rate(rows[i]))
                .map(|(o, p)| o / p);
            let subs = if n == 1 { "sub" } else { "subs" };
            target(
                &format!("broadcast {n} {subs} / {peer} {n} {subs}"),
                r,
                ">= 1",
                r.map(|r| r >= 1.0),
                json!({}),
            );
        }
    }
}

/// The table of the broadcast rows.
pub(super) fn print_table(b: &Bench) {
    let rows: Vec<_> = b.rates.iter().filter(|(n, _)| is_row(n)).collect();
    if rows.is_empty() {
        return;
    }
    println!(
        "\nBroadcast, lossless, batches of {BATCH} f64 from one process to N others \
         (each subscriber receives every batch)"
    );
    println!(
        "{:<46} {:>11} {:>11} {:>12} {:>22}",
        "", "per sub/s", "bytes/s", "all subs/s", "shmbatch vs this"
    );
    for (i, &n) in SUBSCRIBERS.iter().enumerate() {
        let ours = b.get_rate(OURS[i]);
        for (name, r) in rows
            .iter()
            .filter(|(name, _)| name == &OURS[i] || PEERS.iter().any(|(_, rows)| name == &rows[i]))
        {
            match r.median() {
                Ok(v) => {
                    let vs = match ours {
                        Some(o) if *name != OURS[i] => faster_or_slower(o / v),
                        _ => String::new(),
                    };
                    println!(
                        "{name:<46} {:>11} {:>11} {:>12} {vs:>22}",
                        si(v),
                        format!("{}B/s", si(v * 8.0)),
                        si(v * n as f64),
                    );
                }
                Err(e) => println!("{name:<46} skipped: {e}"),
            }
        }
    }
}
