//! Loom models of the `SharedArray` lock and seqlock.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_array
//! ```
//! Under loom the array's data words are loom atomics, so loom explores which value
//! each Relaxed load may return and checks the fences that order them: a broken
//! pairing shows up as a lost increment or a torn snapshot.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;

use shmbatch::SharedArray;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Two writers increment under the lock: mutual exclusion means no lost update.
#[test]
fn lock_excludes_concurrent_writers() {
    model(|| {
        let a = Arc::new(SharedArray::<u64>::heap(1).unwrap());
        let b = Arc::clone(&a);
        let t = thread::spawn(move || {
            let _ = b.write(|xs| xs[0] += 1);
        });
        let _ = a.write(|xs| xs[0] += 1);
        t.join().unwrap();
        assert_eq!(a.snapshot(), [2]);
    });
}

/// `try_write` either gets the lock or reports the holder; it never breaks it.
#[test]
fn try_write_never_breaks_the_lock() {
    model(|| {
        let a = Arc::new(SharedArray::<u64>::heap(1).unwrap());
        let b = Arc::clone(&a);
        let t = thread::spawn(move || b.try_write(|xs| xs[0] += 1).is_ok() as u64);
        let mine = a.try_write(|xs| xs[0] += 1).is_ok() as u64;
        let theirs = t.join().unwrap();
        assert!(mine + theirs >= 1);
        assert_eq!(a.snapshot(), [mine + theirs]);
    });
}

/// A reader never sees part of a write: every snapshot of a two-word array is
/// uniform, for two successive writes. (The reader is the spawned thread: loom then
/// explores every value each of its loads may return from the writer's history.)
#[test]
fn reader_never_sees_a_torn_write() {
    model(|| {
        let a = Arc::new(SharedArray::<u64>::heap(2).unwrap());
        let r = Arc::clone(&a);
        let t = thread::spawn(move || {
            let s = r.snapshot();
            assert_eq!(s[0], s[1], "torn snapshot {s:?}");
        });
        let _ = a.write(|xs| xs.fill(1));
        let _ = a.write(|xs| xs.fill(2));
        t.join().unwrap();
        assert_eq!(a.snapshot(), [2, 2]);
    });
}

/// Two readers and a writer: each snapshot is uniform, and a reader that saw the
/// write once never goes back (the seqlock's Acquire load makes it visible).
#[test]
fn readers_see_whole_writes_in_order() {
    model(|| {
        let a = Arc::new(SharedArray::<u64>::heap(2).unwrap());
        let w = Arc::clone(&a);
        let r = Arc::clone(&a);
        let tw = thread::spawn(move || {
            let _ = w.write(|xs| xs.fill(7));
        });
        let tr = thread::spawn(move || {
            let s1 = r.snapshot();
            let s2 = r.snapshot();
            assert_eq!(s1[0], s1[1]);
            assert_eq!(s2[0], s2[1]);
            assert!(s2[0] >= s1[0]);
        });
        let s = a.snapshot();
        assert_eq!(s[0], s[1]);
        tw.join().unwrap();
        tr.join().unwrap();
    });
}

/// Element atomics lose nothing, and a write that does not change an element keeps
/// a concurrent atomic update of it.
#[test]
fn fetch_add_and_write_of_other_elements_compose() {
    model(|| {
        let a = Arc::new(SharedArray::<f64>::heap(2).unwrap());
        let b = Arc::clone(&a);
        let t = thread::spawn(move || {
            b.fetch_add(0, 1.0).unwrap();
        });
        a.fetch_add(0, 1.0).unwrap();
        let _ = a.write(|xs| xs[1] = 5.0);
        t.join().unwrap();
        assert_eq!(a.snapshot(), [2.0, 5.0]);
    });
}
