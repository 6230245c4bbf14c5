//! Loom models of the broadcast log: every interleaving (up to loom's preemption
//! bound) of a publisher and two subscribers over a tiny log, so that
//! wrap-around, a full log, lapped readers, a join during publishing and an eviction all
//! happen. Payload accesses of lossless logs are reported to loom through the
//! region's shadow cells, so a missing Release/Acquire pair shows up as a
//! causality error.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_broadcast`
#![cfg(loom)]

use loom::thread;
use shmbatch::broadcast::{self, Policy, Start, Subscriber, TryRecvError};
use shmbatch::{Options, TrySendError};

/// capacity 6 u64: a log of 96 bytes, records of 32 bytes (up to 2 elements)
/// and a pending header of 16: two batches fit, the third waits, and the fourth
/// wraps.
const CAP: usize = 6;

/// `loom::model` with room for spinning threads, and at most two preemptions
/// (three, CI's default for the other models, takes hours here).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.preemption_bound = Some(b.preemption_bound.map_or(2, |p| p.min(2)));
    b.check(f);
}

fn batch(i: u64) -> Vec<u64> {
    vec![i; (i % 2 + 1) as usize]
}

/// Receive until `n` batches have come (or, lossy, been missed), checking each
/// for order and integrity; returns (delivered, missed).
fn drain(rx: &mut Subscriber<u64>, n: u64, first: u64) -> (u64, u64) {
    let mut v = Vec::new();
    let (mut next, mut missed) = (first, 0);
    while next < n {
        match rx.try_recv_into(&mut v) {
            Ok(_) => {
                assert_eq!(v, batch(v[0]), "torn batch");
                assert!(v[0] >= next, "out of order: {} after {}", v[0], next);
                assert!(v[0] == next || missed > 0, "a gap without a lag");
                next = v[0] + 1;
            }
            Err(TryRecvError::Lagged { missed: m }) => {
                missed += m;
                next += m;
            }
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert_eq!(next, n);
    (n - first - missed, missed)
}

fn send_all(tx: &mut broadcast::Publisher<u64>, batches: std::ops::Range<u64>) {
    for i in batches {
        loop {
            match tx.try_send(&batch(i)) {
                Ok(()) => break,
                Err(TrySendError::Full) => thread::yield_now(),
                Err(e) => panic!("send: {e}"),
            }
        }
    }
}

#[test]
fn lossless_two_subscribers_wrap_and_wait() {
    model(|| {
        let (mut tx, a) = broadcast::channel::<u64>(CAP).unwrap();
        let b = tx.subscribe(Start::Next).unwrap();
        let publisher = thread::spawn(move || {
            send_all(&mut tx, 0..4);
            tx
        });
        // Both subscribers in one thread, taking turns: they never touch each
        // other's words, so what matters is each against the publisher, which
        // must wait for the slower one. (Three threads take hours.)
        let mut subs = [(a, 0u64), (b, 0u64)];
        let mut v = Vec::new();
        while subs.iter().any(|(_, n)| *n < 4) {
            for (rx, next) in &mut subs {
                match rx.try_recv_into(&mut v) {
                    Ok(_) => {
                        assert_eq!(v, batch(*next));
                        *next += 1;
                    }
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        drop(publisher.join().unwrap());
        for (rx, _) in &mut subs {
            assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
        }
    });
}

#[test]
fn lossy_lapped_readers_count_exactly() {
    model(|| {
        let opts = Options::new().broadcast_policy(Policy::Lossy);
        let (mut tx, a) = broadcast::channel_with::<u64>(CAP, &opts).unwrap();
        let b = tx.subscribe(Start::Next).unwrap();
        let publisher = thread::spawn(move || {
            // Never waits, so either reader may be lapped at any point.
            send_all(&mut tx, 0..4);
            tx
        });
        // Two readers taking turns in one thread (see the lossless model): each
        // gets intact batches in order, and delivered plus missed is 4 (the log holds
        // two, so the fourth laps the first).
        let mut subs = [(a, 0u64, 0u64), (b, 0u64, 0u64)];
        let mut v = Vec::new();
        while subs.iter().any(|(_, next, _)| *next < 4) {
            for (rx, next, missed) in &mut subs {
                if *next == 4 {
                    continue;
                }
                match rx.try_recv_into(&mut v) {
                    Ok(_) => {
                        assert_eq!(v, batch(v[0]), "torn batch");
                        assert!(v[0] == *next || *missed > 0, "a gap without a lag");
                        assert!(v[0] >= *next, "out of order");
                        *next = v[0] + 1;
                    }
                    Err(TryRecvError::Lagged { missed: m }) => {
                        *missed += m;
                        *next += m;
                    }
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        for (rx, next, missed) in &subs {
            assert_eq!(*next, 4);
            assert_eq!(rx.missed(), *missed);
        }
        drop(publisher.join().unwrap());
    });
}

#[test]
fn lossless_join_while_publishing() {
    model(|| {
        let (mut tx, first) = broadcast::channel::<u64>(CAP).unwrap();
        tx.send(&batch(0)).unwrap();
        let publisher = thread::spawn(move || {
            send_all(&mut tx, 1..4); // the third waits for `first` to leave
            tx
        });
        // Join at the oldest batch while the publisher may be scanning, let the
        // first subscriber go, then receive a gapless suffix: a lossless log
        // never overwrites a live subscriber's batch.
        let mut late = first.subscribe(Start::Oldest).unwrap();
        drop(first);
        let mut v = Vec::new();
        let mut got = Vec::new();
        while got.last() != Some(&3) {
            match late.try_recv_into(&mut v) {
                Ok(_) => {
                    assert_eq!(v, batch(v[0]), "torn batch");
                    got.push(v[0]);
                }
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "gap: {got:?}");
        drop(publisher.join().unwrap());
    });
}

#[test]
fn lossless_eviction_races_a_read() {
    model(|| {
        let opts = Options::new().evict_after(std::time::Duration::from_millis(1));
        let (mut tx, mut stalled) = broadcast::channel_with::<u64>(CAP, &opts).unwrap();
        let reader = thread::spawn(move || {
            // One read, racing the eviction: batch 0 intact, or Evicted; never a
            // batch the publisher overwrote.
            let mut v = Vec::new();
            let first = loop {
                match stalled.try_recv_into(&mut v) {
                    Ok(_) => break Ok(v.clone()),
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => break Err(e),
                }
            };
            (first, stalled)
        });
        // The third batch needs the stalled subscriber's space: after two looks
        // at the same blocker (loom's stand-in for the timeout) it is evicted.
        send_all(&mut tx, 0..4);
        let (first, mut stalled) = reader.join().unwrap();
        match first {
            Ok(v) => assert_eq!(v, batch(0)),
            Err(e) => assert_eq!(e, TryRecvError::Evicted),
        }
        assert_eq!(
            stalled.try_recv_into(&mut Vec::new()),
            Err(TryRecvError::Evicted)
        );
        assert!(stalled.is_evicted());
    });
}
