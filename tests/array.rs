//! `SharedArray` behaviour on heap arrays: the same code as shared segments, fast,
//! and run under miri (`cargo +nightly miri test --test array`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use shmbatch::{Error, IndexOutOfBounds, LockBusy, Recovered, SharedArray};

fn n(full: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        full
    }
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn new_array_is_zeroed_and_reports_its_shape() {
    let a = SharedArray::<f64>::heap(5).unwrap();
    assert_eq!(a.len(), 5);
    assert!(!a.is_empty());
    assert_eq!(a.name(), None);
    assert_eq!(bits(&a.snapshot()), [0; 5]);
    assert_eq!(a.data_offset(), 512);
    assert_eq!(SharedArray::<f64>::DATA_OFFSET, 512);
    assert_eq!(SharedArray::<f32>::DATA_OFFSET, 512);
    assert_eq!(shmbatch::layout::ARRAY_DATA_OFFSET, 512);
    assert!(!a.is_partial());
}

#[test]
fn dtype_names_numpy_scalars() {
    assert_eq!(SharedArray::<f64>::heap(1).unwrap().dtype(), Some("<f8"));
    assert_eq!(SharedArray::<f32>::heap(1).unwrap().dtype(), Some("<f4"));
    assert_eq!(SharedArray::<i64>::heap(1).unwrap().dtype(), Some("<i8"));
    assert_eq!(SharedArray::<u8>::heap(1).unwrap().dtype(), Some("|u1"));
    assert_eq!(SharedArray::<[u8; 3]>::heap(1).unwrap().dtype(), None);
}

#[test]
fn zero_and_absurd_lengths_are_refused() {
    for len in [0, usize::MAX, usize::MAX / 8, 1 << 40] {
        match SharedArray::<f64>::heap(len) {
            Err(Error::InvalidSize { what: "len", .. }) => {}
            other => panic!("len {len}: {other:?}"),
        }
    }
    assert!(matches!(
        SharedArray::<f64>::heap_from(&[]),
        Err(Error::InvalidSize { .. })
    ));
    assert!(matches!(
        SharedArray::<()>::heap(4),
        Err(Error::UnsupportedType { .. })
    ));
}

#[test]
fn write_updates_in_place_and_returns_the_closure_value() {
    let a = SharedArray::<f64>::heap_from(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let out = a.write(|xs| {
        xs.iter_mut().for_each(|x| *x += 10.0);
        xs.len()
    });
    assert_eq!(out.value, 5);
    assert_eq!(out.recovered, None);
    assert!(!out.may_be_partial());
    assert_eq!(a.snapshot(), [11.0, 12.0, 13.0, 14.0, 15.0]);
    assert_eq!(a.read(|xs| xs.iter().sum::<f64>()), 65.0);
    let mut v = vec![9.0; 100];
    a.snapshot_into(&mut v);
    assert_eq!(v, [11.0, 12.0, 13.0, 14.0, 15.0]);
    assert_eq!(
        a.read_timeout(Duration::from_secs(1), |xs| xs[4]).unwrap(),
        15.0
    );
    assert_eq!(a.snapshot_timeout(Duration::from_secs(1)).unwrap().len(), 5);
}

#[test]
fn nan_and_negative_zero_round_trip_exactly() {
    let weird = [
        f64::NAN,
        -0.0,
        f64::INFINITY,
        f64::from_bits(0x7ff0_0000_0000_0001),
    ];
    let a = SharedArray::<f64>::heap_from(&weird).unwrap();
    assert_eq!(bits(&a.snapshot()), bits(&weird));
    let _ = a.write(|xs| xs.reverse());
    let mut rev = weird;
    rev.reverse();
    assert_eq!(bits(&a.snapshot()), bits(&rev));
    assert_eq!(a.load(0).unwrap().to_bits(), rev[0].to_bits());
}

#[test]
fn odd_sized_elements_keep_their_neighbours() {
    // 5 * 3 = 15 bytes: the last word is partly padding.
    let v: Vec<[u8; 3]> = (0..5u8).map(|i| [i, i + 10, i + 20]).collect();
    let a = SharedArray::<[u8; 3]>::heap_from(&v).unwrap();
    assert_eq!(a.snapshot(), v);
    let _ = a.write(|xs| xs[4] = [7, 7, 7]);
    let mut w = v.clone();
    w[4] = [7, 7, 7];
    assert_eq!(a.snapshot(), w);

    let b = SharedArray::<u16>::heap_from(&[1, 2, 3]).unwrap();
    let _ = b.write(|xs| xs[1] = 20);
    assert_eq!(b.snapshot(), [1, 20, 3]);
}

#[test]
fn element_operations_work_and_check_bounds() {
    let a = SharedArray::<f64>::heap_from(&[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(a.load(1), Ok(2.0));
    assert_eq!(a.fetch_add(1, 0.5), Ok(2.0));
    assert_eq!(a.load(1), Ok(2.5));
    assert_eq!(a.store(2, -1.0), Ok(()));
    assert_eq!(a.swap(2, 4.0), Ok(-1.0));
    assert_eq!(a.compare_exchange(0, 1.0, 9.0), Ok(Ok(1.0)));
    assert_eq!(a.compare_exchange(0, 1.0, 8.0), Ok(Err(9.0)));
    assert_eq!(a.snapshot(), [9.0, 2.5, 4.0]);

    let oob = IndexOutOfBounds { index: 3, len: 3 };
    assert_eq!(a.load(3), Err(oob));
    assert_eq!(a.store(3, 0.0), Err(oob));
    assert_eq!(a.swap(3, 0.0), Err(oob));
    assert_eq!(a.fetch_add(3, 1.0), Err(oob));
    assert_eq!(a.compare_exchange(3, 0.0, 1.0), Err(oob));
    assert_eq!(
        a.load(usize::MAX),
        Err(IndexOutOfBounds {
            index: usize::MAX,
            len: 3
        })
    );
    assert_eq!(
        oob.to_string(),
        "index 3 is out of bounds for an array of 3 elements"
    );
}

#[test]
fn compare_exchange_compares_bits() {
    let a = SharedArray::<f64>::heap_from(&[f64::NAN, 0.0]).unwrap();
    assert!(a.compare_exchange(0, f64::NAN, 1.0).unwrap().is_ok());
    // -0.0 == 0.0 as floats, but not bitwise.
    let r = a.compare_exchange(1, -0.0, 1.0).unwrap();
    assert_eq!(r.unwrap_err().to_bits(), 0.0f64.to_bits());
}

#[test]
fn four_byte_elements_are_independent_within_a_word() {
    let a = SharedArray::<f32>::heap_from(&[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(a.fetch_add(1, 1.5), Ok(2.0));
    assert_eq!(a.store(2, 7.0), Ok(()));
    assert_eq!(a.compare_exchange(0, 1.0, 5.0), Ok(Ok(1.0)));
    assert_eq!(a.compare_exchange(0, 1.0, 6.0), Ok(Err(5.0)));
    assert_eq!(a.snapshot(), [5.0, 3.5, 7.0]);

    let b = SharedArray::<u32>::heap_from(&[u32::MAX, 1]).unwrap();
    assert_eq!(b.fetch_add(0, 1), Ok(u32::MAX)); // wraps, no carry into [1]
    assert_eq!(b.snapshot(), [0, 1]);
    let c = SharedArray::<i64>::heap_from(&[i64::MAX]).unwrap();
    assert_eq!(c.fetch_add(0, 1), Ok(i64::MAX));
    assert_eq!(c.load(0), Ok(i64::MIN));
}

#[test]
fn a_panicking_writer_publishes_nothing_and_releases_the_lock() {
    let a = SharedArray::<f64>::heap_from(&[1.0, 2.0]).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.write(|xs| {
            xs[0] = 100.0;
            panic!("boom");
        })
    }));
    assert!(r.is_err());
    assert_eq!(a.snapshot(), [1.0, 2.0]);
    let out = a.try_write(|xs| xs[1] = 3.0).expect("lock was released");
    assert_eq!(out.recovered, None);
    assert_eq!(a.snapshot(), [1.0, 3.0]);
}

#[test]
fn try_write_and_write_timeout_fail_while_another_thread_writes() {
    let a = SharedArray::<f64>::heap(2).unwrap();
    let (locked_tx, locked_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let a = &a;
        s.spawn(move || {
            let _ = a.write(|xs| {
                xs[0] = 1.0;
                locked_tx.send(()).unwrap();
                done_rx.recv().unwrap();
            });
        });
        locked_rx.recv().unwrap();
        let me = std::process::id();
        assert_eq!(a.try_write(|_| ()).unwrap_err(), LockBusy { pid: me });
        let e = a
            .write_timeout(Duration::from_millis(30), |_| ())
            .unwrap_err();
        assert_eq!(e.pid, me);
        // Readers are not blocked by a writer's closure.
        assert_eq!(a.snapshot(), [0.0, 0.0]);
        done_tx.send(()).unwrap();
    });
    assert_eq!(a.snapshot(), [1.0, 0.0]);
}

#[test]
fn threads_incrementing_under_the_lock_lose_nothing() {
    let per = n(20_000, 30);
    let a = SharedArray::<f64>::heap(3).unwrap();
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..per {
                    let _ = a.write(|xs| xs[1] += 1.0);
                }
            });
        }
    });
    assert_eq!(a.load(1).unwrap().to_bits(), ((4 * per) as f64).to_bits());
}

#[test]
fn concurrent_fetch_add_loses_nothing() {
    let per = n(50_000, 50);
    let a = SharedArray::<f64>::heap(2).unwrap();
    let b = SharedArray::<f32>::heap(3).unwrap();
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..per {
                    a.fetch_add(0, 1.0).unwrap();
                    b.fetch_add(1, 1.0).unwrap();
                }
            });
        }
    });
    assert_eq!(a.load(0).unwrap().to_bits(), ((4 * per) as f64).to_bits());
    assert_eq!(b.snapshot(), [0.0, (4 * per) as f32, 0.0]);
}

#[test]
fn snapshots_never_see_a_half_done_write() {
    let len = n(1024, 8);
    let rounds = n(2000, 10);
    let a = SharedArray::<f64>::heap(len).unwrap();
    let stop = AtomicBool::new(false);
    let start = Barrier::new(3);
    thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for k in 1..=rounds {
                let _ = a.write(|xs| xs.fill(k as f64));
            }
            stop.store(true, Ordering::Release);
        });
        for _ in 0..2 {
            s.spawn(|| {
                start.wait();
                let mut seen = 0u64;
                let mut buf = Vec::new();
                loop {
                    let done = stop.load(Ordering::Acquire);
                    a.snapshot_into(&mut buf);
                    assert!(
                        buf.iter().all(|x| x.to_bits() == buf[0].to_bits()),
                        "torn snapshot: first {} last {}",
                        buf[0],
                        buf[len - 1]
                    );
                    seen += 1;
                    if done {
                        assert_eq!(buf[0], rounds as f64);
                        break;
                    }
                }
                assert!(seen > 0);
            });
        }
    });
}

#[test]
fn write_keeps_atomic_updates_of_elements_it_does_not_change() {
    let per = n(20_000, 20);
    let a = SharedArray::<f64>::heap(2).unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..per {
                a.fetch_add(0, 1.0).unwrap();
            }
        });
        s.spawn(|| {
            for _ in 0..per {
                let _ = a.write(|xs| xs[1] += 1.0);
            }
        });
    });
    assert_eq!(a.snapshot(), [per as f64, per as f64]);
}

#[test]
fn handles_share_across_threads_with_arc() {
    let a = Arc::new(SharedArray::<i64>::heap(1).unwrap());
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let a = Arc::clone(&a);
            thread::spawn(move || a.fetch_add(0, 2).unwrap())
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(a.load(0), Ok(4));
}

#[test]
fn raw_view_sees_the_same_memory() {
    let a = SharedArray::<f64>::heap_from(&[1.0, 2.0]).unwrap();
    assert_eq!(a.as_ptr() as usize % 128, 0);
    // SAFETY: single thread, no other access while the slices live.
    unsafe {
        assert_eq!(a.as_slice_unchecked(), &[1.0, 2.0]);
        a.as_mut_slice_unchecked()[1] = 5.0;
    }
    assert_eq!(a.snapshot(), [1.0, 5.0]);
}

#[test]
fn recovered_notice_is_comparable() {
    let r = Recovered {
        pid: 7,
        partial: true,
    };
    assert_eq!(r, r);
    assert!(format!("{r:?}").contains("partial: true"));
}

#[test]
fn a_write_guard_publishes_on_commit_and_nothing_when_dropped() {
    let a = SharedArray::<f64>::heap_from(&[1.0, 2.0, 3.0]).unwrap();
    let mut g = a.lock();
    assert_eq!(&*g, &[1.0, 2.0, 3.0]);
    assert_eq!(g.recovered(), None);
    g[0] = 10.0;
    g[2] = -0.0;
    // Not visible before the commit: readers see the array as it was.
    assert_eq!(bits(&a.snapshot()), bits(&[1.0, 2.0, 3.0]));
    assert!(matches!(a.try_write(|_| ()), Err(LockBusy { .. })));
    assert!(a.try_lock().is_err());
    assert_eq!(g.commit(), None);
    assert_eq!(bits(&a.snapshot()), bits(&[10.0, 2.0, -0.0]));

    let mut g = a.try_lock().unwrap();
    g.fill(99.0);
    drop(g);
    assert_eq!(bits(&a.snapshot()), bits(&[10.0, 2.0, -0.0]));
    assert!(a.lock_timeout(Duration::from_millis(1)).is_ok());
}

#[test]
fn a_write_guard_waits_for_the_holder_and_times_out() {
    let a = Arc::new(SharedArray::<u64>::heap(4).unwrap());
    let g = a.lock();
    let e = a.lock_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(e.pid, std::process::id());
    let a2 = Arc::clone(&a);
    let t = thread::spawn(move || {
        let mut g = a2.lock();
        g[1] += 5;
        g.commit()
    });
    thread::sleep(Duration::from_millis(n(20, 1) as u64));
    drop(g);
    assert_eq!(t.join().unwrap(), None);
    assert_eq!(a.snapshot(), [0, 5, 0, 0]);
}

#[test]
fn shapes_are_checked_against_the_length() {
    use shmbatch::Options;
    let e = SharedArray::<f64>::create_with("shape-never-made", 6, &Options::new().shape(&[4, 2]))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidSize { what: "shape", .. }), "{e}");
    for bad in [&[][..], &[6, 0, 1], &[1; 9]] {
        let e = SharedArray::<f64>::create_with("shape-never-made", 6, &Options::new().shape(bad));
        assert!(
            matches!(e, Err(Error::InvalidSize { what: "shape", .. })),
            "{bad:?}: {e:?}"
        );
    }
    assert_eq!(SharedArray::<f64>::heap(6).unwrap().shape(), [6]);
}
