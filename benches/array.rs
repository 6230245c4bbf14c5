//! `SharedArray` benchmarks (criterion):
//!
//! - `write`: an uncontended `write` lock round trip (lock, copy-in, closure,
//!   publish, unlock) on small arrays of a real segment;
//! - `fetch_add`: `SharedArray::<f64>::fetch_add` against a plain `AtomicU64`
//!   compare-and-swap loop doing the same f64 addition;
//! - `snapshot_1MiB`: consistent copies of a 1 MiB array against `memcpy` of a
//!   private buffer of the same size.
//!
//! ```text
//! cargo bench --bench array
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmbatch::SharedArray;

fn name(tag: &str) -> String {
    format!("shmbatch-bench-array-{}-{tag}", std::process::id())
}

fn write(c: &mut Criterion) {
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Elements(1));
    for len in [1usize, 8, 64] {
        let a = SharedArray::<f64>::create(&name(&format!("write{len}")), len).unwrap();
        g.bench_with_input(BenchmarkId::new("lock_round_trip", len), &a, |b, a| {
            b.iter(|| a.write(|xs| xs[0] += 1.0).value)
        });
    }
    let a = SharedArray::<f64>::create(&name("try"), 1).unwrap();
    g.bench_function("try_write/1", |b| {
        b.iter(|| a.try_write(|xs| xs[0] += 1.0).is_ok())
    });
    g.finish();
}

fn fetch_add(c: &mut Criterion) {
    let mut g = c.benchmark_group("fetch_add");
    g.throughput(Throughput::Elements(1));
    let a = SharedArray::<f64>::create(&name("fadd"), 16).unwrap();
    g.bench_function("shared_array_f64", |b| {
        b.iter(|| a.fetch_add(black_box(3), 1.0).unwrap())
    });
    let plain = AtomicU64::new(0f64.to_bits());
    g.bench_function("atomic_u64_cas_loop", |b| {
        b.iter(|| {
            let mut cur = plain.load(Ordering::Relaxed);
            loop {
                let new = (f64::from_bits(cur) + 1.0).to_bits();
                match plain.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(old) => break f64::from_bits(old),
                    Err(now) => cur = now,
                }
            }
        })
    });
    let i = SharedArray::<u64>::create(&name("faddu"), 16).unwrap();
    g.bench_function("shared_array_u64", |b| {
        b.iter(|| i.fetch_add(black_box(3), 1).unwrap())
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    const LEN: usize = (1 << 20) / 8;
    let mut g = c.benchmark_group("snapshot_1MiB");
    g.throughput(Throughput::Bytes((LEN * 8) as u64));
    let init: Vec<f64> = (0..LEN).map(|i| i as f64).collect();
    let a = SharedArray::<f64>::create_from(&name("snap"), &init).unwrap();
    g.bench_function("snapshot", |b| b.iter(|| a.snapshot()));
    let mut out = Vec::with_capacity(LEN);
    g.bench_function("snapshot_into", |b| {
        b.iter(|| {
            a.snapshot_into(&mut out);
            black_box(out.as_ptr());
        })
    });
    let mut dst = vec![0f64; LEN];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&init));
            black_box(dst.as_ptr());
        })
    });
    g.bench_function("write_all_elements", |b| {
        b.iter(|| a.write(|xs| xs.iter_mut().for_each(|x| *x += 1.0)).value)
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = write, fetch_add, snapshot
}
criterion_main!(benches);
