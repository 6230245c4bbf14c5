//! Throughput of the MPMC queue between threads, with crossbeam's `ArrayQueue` in the
//! same group as a reference.
//!
//! The queue runs on a heap region ([`mpmc::channel`]): the very algorithm of the
//! shared-memory queue, without the processes. One iteration is one batch of `N`
//! `f64` through the queue, copied in (`send`) and copied out (`recv_into`), as
//! `ArrayQueue<[f64; N]>` copies a batch in `push` and out in `pop`. Both have 64
//! slots. Producers and consumers are threads; with more threads than cores the
//! figures measure scheduling as much as the queue.
//!
//! Run: `cargo bench --bench mpmc`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use shmbatch::mpmc;

const SLOTS: usize = 64;

/// Split `iters` batches between `n` producers.
fn share(iters: u64, n: usize, i: usize) -> u64 {
    iters / n as u64 + u64::from((i as u64) < iters % n as u64)
}

fn shmbatch_run<const N: usize>(producers: usize, consumers: usize, iters: u64) -> Duration {
    let (tx, rx) = mpmc::channel::<f64>(SLOTS, N).unwrap();
    let batch = [1.5f64; N];
    let start = Instant::now();
    thread::scope(|s| {
        for p in 0..producers {
            let tx = tx.clone();
            s.spawn(move || {
                for _ in 0..share(iters, producers, p) {
                    tx.send(&batch).unwrap();
                }
            });
        }
        for _ in 0..consumers {
            let rx = rx.clone();
            s.spawn(move || {
                let mut buf = Vec::with_capacity(N);
                // Ends with Disconnected once every producer is done.
                while rx.recv_into(&mut buf).is_ok() {
                    black_box(&buf);
                }
            });
        }
        drop((tx, rx));
    });
    start.elapsed()
}

/// Spin briefly, then yield: the usual way to wait on a non-blocking queue.
fn backoff(step: &mut u32) {
    if *step < 6 {
        for _ in 0..1 << *step {
            std::hint::spin_loop();
        }
        *step += 1;
    } else {
        thread::yield_now();
    }
}

fn crossbeam_run<const N: usize>(producers: usize, consumers: usize, iters: u64) -> Duration {
    let q = ArrayQueue::<[f64; N]>::new(SLOTS);
    let producing = AtomicBool::new(true);
    let batch = [1.5f64; N];
    let start = Instant::now();
    thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let q = &q;
                s.spawn(move || {
                    for _ in 0..share(iters, producers, p) {
                        let mut item = batch;
                        let mut step = 0;
                        while let Err(back) = q.push(item) {
                            item = back;
                            backoff(&mut step);
                        }
                    }
                })
            })
            .collect();
        for _ in 0..consumers {
            let (q, producing) = (&q, &producing);
            s.spawn(move || {
                let mut step = 0;
                loop {
                    match q.pop() {
                        Some(b) => {
                            black_box(&b);
                            step = 0;
                        }
                        None if !producing.load(Ordering::Acquire) && q.is_empty() => break,
                        None => backoff(&mut step),
                    }
                }
            });
        }
        for h in handles {
            h.join().unwrap();
        }
        producing.store(false, Ordering::Release);
    });
    start.elapsed()
}

fn group<const N: usize>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("mpmc/batch={N}"));
    g.throughput(Throughput::Elements(N as u64));
    for (p, cons) in [(1, 1), (2, 2)] {
        let id = format!("{p}p{cons}c");
        g.bench_function(BenchmarkId::new("shmbatch", &id), |b| {
            b.iter_custom(|iters| shmbatch_run::<N>(p, cons, iters))
        });
        g.bench_function(BenchmarkId::new("crossbeam ArrayQueue", &id), |b| {
            b.iter_custom(|iters| crossbeam_run::<N>(p, cons, iters))
        });
    }
    g.finish();
}

/// The fast path alone, without another core: one thread sends a batch of one
/// `f64` and receives it, over and over (one claim and one commit on each side
/// per iteration, every line in this core's cache). Scheduling and cache-line
/// transfers do not blur this figure, so it shows what each claim costs in
/// instructions and locked read-modify-writes.
fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mpmc/uncontended");
    g.throughput(Throughput::Elements(1));
    let (tx, rx) = mpmc::channel::<f64>(SLOTS, 1).unwrap();
    g.bench_function("shmbatch send+recv", |b| {
        b.iter(|| {
            tx.try_send(&[1.5]).unwrap();
            black_box(rx.try_recv().unwrap()[0]);
        })
    });
    let q = ArrayQueue::<[f64; 1]>::new(SLOTS);
    g.bench_function("crossbeam ArrayQueue push+pop", |b| {
        b.iter(|| {
            q.push([1.5]).unwrap();
            black_box(q.pop().unwrap());
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    uncontended(c);
    group::<1>(c);
    group::<1024>(c);
}

criterion_group! {
    name = mpmc_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    targets = benches
}
criterion_main!(mpmc_benches);
