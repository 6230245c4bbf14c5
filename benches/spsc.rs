//! SPSC throughput between two threads over the same ring algorithm as the
//! shared-memory queue (`spsc::channel`, heap-backed), with rtrb — the reference
//! lock-free SPSC ring for Rust — moving the same batches in the same group.
//!
//! Both queues do the same work per batch:
//! - `copy`: the producer copies the batch in from a buffer, the consumer copies it
//!   out into a buffer (shmbatch `send` / `recv_into`; rtrb chunks, or
//!   `push`/`pop` for single elements, its fastest path);
//! - `zero_copy`: the producer fills the batch in place, the consumer folds every
//!   element in place (shmbatch `reserve` / `recv` guard; rtrb write/read chunks).
//!
//! `spsc/uncontended` sends and receives one 1-f64 batch on one thread, so no
//! scheduling noise gets in: the cost of the fast path alone, next to rtrb's.
//!
//! Run: `cargo bench --bench spsc`

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmbatch::spsc;

const SIZES: [usize; 4] = [1, 64, 1024, 65536];

fn capacity(batch: usize) -> usize {
    (4 * batch).max(1 << 16)
}

fn fold(xs: &[f64]) -> u64 {
    xs.iter().fold(0, |a, x| a ^ x.to_bits())
}

fn run(
    iters: u64,
    produce: impl FnOnce() + Send + 'static,
    consume: impl FnOnce() + Send + 'static,
) -> Duration {
    let consumer = thread::spawn(consume);
    let start = Instant::now();
    produce();
    consumer.join().unwrap();
    let _ = iters;
    start.elapsed()
}

fn shmbatch_copy(batch: usize, iters: u64) -> Duration {
    let (mut tx, mut rx) = spsc::channel::<f64>(capacity(batch)).unwrap();
    let data = vec![1.0f64; batch];
    run(
        iters,
        move || (0..iters).for_each(|_| tx.send(&data).unwrap()),
        move || {
            let mut out = Vec::with_capacity(batch);
            for _ in 0..iters {
                rx.recv_into(&mut out).unwrap();
                black_box(&out);
            }
        },
    )
}

fn shmbatch_zero_copy(batch: usize, iters: u64) -> Duration {
    let (mut tx, mut rx) = spsc::channel::<f64>(capacity(batch)).unwrap();
    run(
        iters,
        move || {
            for i in 0..iters {
                let mut r = tx.reserve(batch).unwrap();
                r.fill(i as f64);
                r.commit();
            }
        },
        move || {
            let mut acc = 0;
            for _ in 0..iters {
                acc ^= fold(&rx.recv().unwrap());
            }
            black_box(acc);
        },
    )
}

/// Wait until the expression is `Ok`: spin, then yield, as shmbatch's own waits do,
/// so that the reference is not penalised on an oversubscribed machine.
macro_rules! spin {
    ($e:expr) => {{
        let mut spins = 0u32;
        loop {
            match $e {
                Ok(v) => break v,
                Err(_) if spins < 64 => {
                    spins += 1;
                    std::hint::spin_loop();
                }
                Err(_) => thread::yield_now(),
            }
        }
    }};
}

fn rtrb_copy(batch: usize, iters: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<f64>::new(capacity(batch));
    let data = vec![1.0f64; batch];
    if batch == 1 {
        return run(
            iters,
            move || (0..iters).for_each(|_| spin!(tx.push(data[0]))),
            move || {
                (0..iters).for_each(|_| {
                    black_box(spin!(rx.pop()));
                })
            },
        );
    }
    run(
        iters,
        move || {
            for _ in 0..iters {
                let mut chunk = spin!(tx.write_chunk(batch));
                let (a, b) = chunk.as_mut_slices();
                let n = a.len();
                a.copy_from_slice(&data[..n]);
                b.copy_from_slice(&data[n..]);
                chunk.commit_all();
            }
        },
        move || {
            let mut out = vec![0.0f64; batch];
            for _ in 0..iters {
                let chunk = spin!(rx.read_chunk(batch));
                let (a, b) = chunk.as_slices();
                out[..a.len()].copy_from_slice(a);
                out[a.len()..].copy_from_slice(b);
                chunk.commit_all();
                black_box(&out);
            }
        },
    )
}

fn rtrb_zero_copy(batch: usize, iters: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<f64>::new(capacity(batch));
    run(
        iters,
        move || {
            for i in 0..iters {
                let mut chunk = spin!(tx.write_chunk(batch));
                let (a, b) = chunk.as_mut_slices();
                a.fill(i as f64);
                b.fill(i as f64);
                chunk.commit_all();
            }
        },
        move || {
            let mut acc = 0;
            for _ in 0..iters {
                let chunk = spin!(rx.read_chunk(batch));
                let (a, b) = chunk.as_slices();
                acc ^= fold(a) ^ fold(b);
                chunk.commit_all();
            }
            black_box(acc);
        },
    )
}

/// One benchmarked implementation: (batch length, iterations) -> elapsed.
type Case = fn(usize, u64) -> Duration;

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_threads");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    for batch in SIZES {
        group.throughput(Throughput::Bytes((batch * 8) as u64));
        let cases: [(&str, Case); 4] = [
            ("shmbatch_copy", shmbatch_copy),
            ("rtrb_copy", rtrb_copy),
            ("shmbatch_zero_copy", shmbatch_zero_copy),
            ("rtrb_zero_copy", rtrb_zero_copy),
        ];
        for (name, f) in cases {
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &n| {
                b.iter_custom(|iters| f(n, iters))
            });
        }
    }
    group.finish();
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("spsc/uncontended");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    let (mut tx, mut rx) = spsc::channel::<f64>(1 << 10).unwrap();
    g.bench_function("shmbatch try_send+try_recv", |b| {
        b.iter(|| {
            tx.try_send(&[1.5]).unwrap();
            black_box(rx.try_recv().unwrap()[0]);
        })
    });
    g.bench_function("shmbatch send+recv_into", |b| {
        let mut out = Vec::with_capacity(1);
        b.iter(|| {
            tx.send(&[1.5]).unwrap();
            black_box(rx.recv_into(&mut out).unwrap());
        })
    });
    g.bench_function("shmbatch reserve+commit+recv", |b| {
        b.iter(|| {
            let mut r = tx.reserve(1).unwrap();
            r[0] = 1.5;
            r.commit();
            black_box(rx.recv().unwrap()[0]);
        })
    });
    let (mut p, mut q) = rtrb::RingBuffer::<f64>::new(1 << 10);
    g.bench_function("rtrb push+pop", |b| {
        b.iter(|| {
            p.push(1.5).unwrap();
            black_box(q.pop().unwrap());
        })
    });
    g.finish();
}

criterion_group!(benches, uncontended, throughput);
criterion_main!(benches);
