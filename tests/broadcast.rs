//! Broadcast: heap-backed behaviour (also under miri) and named segments.

use std::time::Duration;

use shmbatch::broadcast::{
    self, Policy, Publisher, RecvError, RecvTimeoutError, Start, Subscriber, TryRecvError,
};
use shmbatch::{Options, TrySendError};

/// Batches of the longer loops (fewer under miri, which is ~1000x slower).
const MANY: u64 = if cfg!(miri) { 600 } else { 20_000 };

fn lossy() -> Options {
    Options::new().broadcast_policy(Policy::Lossy)
}

/// Batches of distinct lengths and values: batch `i` has `i % 7 + 1` elements
/// `i * 1000 + j`.
fn batch(i: u64) -> Vec<f64> {
    (0..i % 7 + 1).map(|j| (i * 1000 + j) as f64).collect()
}

#[test]
fn every_subscriber_sees_every_batch_in_order() {
    let (mut tx, mut a) = broadcast::channel::<f64>(256).unwrap();
    let mut b = tx.subscribe(Start::Next).unwrap();
    assert_eq!(tx.subscribers(), 2);
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    let mut v = Vec::new();
    // More than the log holds, so the publisher must wait for both.
    for i in 0..500u64 {
        while tx.try_send(&batch(i)).is_err() {
            while a.try_recv_into(&mut v).is_ok() {
                got_a.push(v.clone());
            }
            while let Ok(x) = b.try_recv() {
                got_b.push(x.to_vec());
            }
        }
    }
    drop(tx);
    got_a.extend(a.iter());
    got_b.extend(b.iter());
    let want: Vec<_> = (0..500).map(batch).collect();
    assert_eq!(got_a, want);
    assert_eq!(got_b, want);
    assert_eq!(a.try_recv_into(&mut v), Err(TryRecvError::Disconnected));
}

#[test]
fn lossless_publisher_waits_for_the_slowest() {
    let (mut tx, mut rx) = broadcast::channel::<f64>(16).unwrap();
    let mut n = 0;
    while tx.try_send(&[n as f64]).is_ok() {
        n += 1;
        assert!(n < 1000, "a lossless log never filled up");
    }
    assert_eq!(tx.try_send(&[0.0]), Err(TrySendError::Full));
    assert!(tx
        .send_timeout(&[0.0], Duration::from_millis(5))
        .unwrap_err()
        .is_timeout());
    assert_eq!(rx.behind(), n);
    // One received frees room for one more.
    assert_eq!(&*rx.recv().unwrap(), &[0.0]);
    tx.try_send(&[n as f64]).unwrap();
    for i in 1..=n {
        assert_eq!(&*rx.recv().unwrap(), &[i as f64]);
    }
}

#[test]
fn a_dropped_subscriber_holds_nothing_back() {
    let (mut tx, rx) = broadcast::channel::<f64>(16).unwrap();
    let slow = tx.subscribe(Start::Next).unwrap();
    drop(slow);
    drop(rx);
    for i in 0..1000 {
        tx.try_send(&[i as f64]).unwrap();
    }
    assert_eq!(tx.subscribers(), 0);
}

#[test]
fn new_subscribers_start_next_or_oldest() {
    let (mut tx, mut first) = broadcast::channel::<u64>(64).unwrap();
    for i in 0..5u64 {
        tx.send(&[i]).unwrap();
    }
    let mut next = tx.subscribe(Start::Next).unwrap();
    let mut oldest = tx.subscribe(Start::Oldest).unwrap();
    tx.send(&[5]).unwrap();
    assert_eq!(&*next.recv().unwrap(), &[5]);
    assert_eq!(next.try_recv().unwrap_err(), TryRecvError::Empty);
    for i in 0..6u64 {
        assert_eq!(&*oldest.recv().unwrap(), &[i]);
        assert_eq!(&*first.recv().unwrap(), &[i]);
    }
}

#[test]
fn lossy_publisher_never_waits_and_lag_is_exact() {
    let (mut tx, mut rx) = broadcast::channel_with::<u64>(64, &lossy()).unwrap();
    assert_eq!(tx.policy(), Policy::Lossy);
    for i in 0..MANY {
        tx.try_send(&[i, i]).unwrap();
    }
    let mut v = Vec::new();
    let missed = match rx.recv_into(&mut v) {
        Err(RecvError::Lagged { missed }) => missed,
        other => panic!("expected Lagged, got {other:?}"),
    };
    assert!(v.is_empty());
    // Resumes at the oldest batch still held, which is batch number `missed`.
    let mut expect = missed;
    while let Ok(n) = rx.try_recv_into(&mut v) {
        assert_eq!(n, 2);
        assert_eq!(v, [expect, expect]);
        expect += 1;
    }
    assert_eq!(expect, MANY);
    assert_eq!(rx.missed(), missed);
}

#[test]
fn lossy_delivered_plus_missed_is_published() {
    let (mut tx, mut rx) = broadcast::channel_with::<u64>(256, &lossy()).unwrap();
    let mut v = Vec::new();
    let (mut delivered, mut missed, mut next) = (0u64, 0u64, 0u64);
    for i in 0..MANY {
        let len = (i % 13 + 1) as usize;
        tx.send(&vec![i; len]).unwrap();
        if i % 37 == 0 {
            loop {
                match rx.try_recv_into(&mut v) {
                    Ok(n) => {
                        assert!(v[0] >= next, "out of order");
                        assert_eq!(n, (v[0] % 13 + 1) as usize);
                        assert!(v.iter().all(|&x| x == v[0]), "torn batch {v:?}");
                        next = v[0] + 1;
                        delivered += 1;
                    }
                    Err(TryRecvError::Lagged { missed: m }) => {
                        missed += m;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    drop(tx);
    for b in rx.iter() {
        assert_eq!(b[0], next);
        next += 1;
        delivered += 1;
    }
    missed = missed.max(rx.missed());
    assert_eq!(delivered + missed, MANY);
    assert!(missed > 0);
}

#[test]
fn lossy_in_place_batch_overwritten_is_reported_on_drop() {
    let (mut tx, mut rx) = broadcast::channel_with::<u64>(16, &lossy()).unwrap();
    tx.send(&[7]).unwrap();
    {
        let b = rx.recv().unwrap();
        assert!(b.is_intact());
        // The publisher laps the guard's batch while it is held... in another
        // thread in real use; here through a second handle is impossible, so
        // check the guard's verdict after a lap made before reading.
        drop(b);
    }
    tx.send(&[8]).unwrap();
    let b = rx.try_recv().unwrap();
    assert_eq!(&*b, &[8]);
    drop(b);
    for i in 0..100 {
        tx.send(&[i]).unwrap();
    }
    assert!(rx.try_recv().unwrap_err().is_lagged());
}

#[test]
fn eviction_drops_a_stalled_subscriber() {
    let opts = Options::new().evict_after(Duration::from_millis(20));
    let (mut tx, mut stalled) = broadcast::channel_with::<f64>(16, &opts).unwrap();
    let t = std::time::Instant::now();
    for i in 0..100 {
        tx.send(&[i as f64]).unwrap();
    }
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert_eq!(stalled.recv_into(&mut Vec::new()), Err(RecvError::Evicted));
    assert!(stalled.is_evicted());
    assert_eq!(stalled.try_recv().unwrap_err(), TryRecvError::Evicted);
    // Its entry is taken back when it drops; a new subscriber joins.
    drop(stalled);
    let mut again = tx.subscribe(Start::Oldest).unwrap();
    assert!(again.recv_into(&mut Vec::new()).unwrap() == 1);
}

#[test]
fn timeouts_and_disconnect() {
    let (tx, mut rx) = broadcast::channel::<f64>(16).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    drop(tx);
    assert!(rx.recv().unwrap_err().is_disconnected());
}

#[test]
fn reserve_commit_truncate_and_cancel() {
    let (mut tx, mut rx) = broadcast::channel::<f64>(64).unwrap();
    let mut r = tx.reserve(8).unwrap();
    r.copy_from_slice(&[1.0; 8]);
    r.truncate(3);
    r.commit();
    drop(tx.reserve(4).unwrap()); // cancelled: nothing published
    tx.send(&[2.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[1.0; 3]);
    assert_eq!(&*rx.recv().unwrap(), &[2.0]);
    assert!(rx.try_recv().unwrap_err().is_empty());
}

#[test]
fn too_large_and_too_many() {
    let (mut tx, _rx) = broadcast::channel::<f64>(16).unwrap();
    assert_eq!(
        tx.try_send(&[0.0; 9]),
        Err(TrySendError::TooLarge { len: 9, max: 8 })
    );
    let mut subs = Vec::new();
    while subs.len() < broadcast::MAX_SUBSCRIBERS - 1 {
        subs.push(tx.subscribe(Start::Next).unwrap());
    }
    assert!(tx.subscribe(Start::Next).is_err());
    subs.pop();
    tx.subscribe(Start::Next).unwrap();
}

#[test]
fn threads_publisher_and_subscribers() {
    let (mut tx, rx) = broadcast::channel::<u64>(1024).unwrap();
    let mut subs = vec![rx];
    for _ in 0..2 {
        subs.push(tx.subscribe(Start::Next).unwrap());
    }
    const N: u64 = if cfg!(miri) { 200 } else { 100_000 };
    let handles: Vec<_> = subs
        .into_iter()
        .map(|mut rx| {
            std::thread::spawn(move || {
                let mut next = 0;
                for b in rx.iter() {
                    assert_eq!(b.len() as u64, next % 5 + 1);
                    assert!(b.iter().all(|&x| x == next));
                    next += 1;
                }
                next
            })
        })
        .collect();
    for i in 0..N {
        tx.send(&vec![i; (i % 5 + 1) as usize]).unwrap();
    }
    drop(tx);
    for h in handles {
        assert_eq!(h.join().unwrap(), N);
    }
}

#[test]
#[cfg_attr(miri, ignore = "named segments need shm_open")]
fn named_segment_between_handles() {
    let name = format!("shmbatch-test-bcast-{}", std::process::id());
    let mut tx = Publisher::<f64>::create(&name, 1024).unwrap();
    let mut a = Subscriber::<f64>::open(&name).unwrap();
    let mut b = Subscriber::<f64>::open_with(&name, &Options::new().start(Start::Oldest)).unwrap();
    tx.send(&[1.0, -0.0, f64::NAN]).unwrap();
    let x = a.recv().unwrap();
    assert_eq!(x[0], 1.0);
    assert!(x[1].is_sign_negative() && x[2].is_nan());
    drop(x);
    assert_eq!(b.recv().unwrap().len(), 3);
    let info = shmbatch::inspect(&name).unwrap();
    assert_eq!(info.kind, shmbatch::Kind::Broadcast);
    let bi = info.broadcast.unwrap();
    assert!(!bi.lossy);
    assert_eq!(bi.published, 1);
    assert_eq!(bi.subscribers.len(), 2);
    assert!(bi
        .subscribers
        .iter()
        .all(|s| s.behind == 0 && s.process.alive));
    assert!(
        Subscriber::<u32>::open(&name).is_err(),
        "type mismatch accepted"
    );
    assert!(
        shmbatch::spsc::Receiver::<f64>::open(&name).is_err(),
        "kind mismatch accepted"
    );
    drop(tx);
    assert!(a.recv().unwrap_err().is_disconnected());
}

#[test]
fn a_held_in_place_batch_is_never_evicted() {
    let opts = Options::new().evict_after(Duration::from_millis(5));
    let (mut tx, mut rx) = broadcast::channel_with::<f64>(16, &opts).unwrap();
    while tx.try_send(&[1.0]).is_ok() {}
    {
        let b = rx.recv().unwrap();
        // Far past the eviction timeout: the publisher must keep waiting,
        // because this batch is being read in place.
        assert!(tx
            .send_timeout(&[2.0], Duration::from_millis(40))
            .unwrap_err()
            .is_timeout());
        assert!(b.is_intact());
        assert_eq!(&*b, &[1.0]);
    }
    // Released one: room for one more, then the stall evicts it.
    tx.send(&[2.0]).unwrap();
    for _ in 0..100 {
        tx.send(&[3.0]).unwrap();
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Evicted);
}
