//! Behaviour of the MPMC slot queue on heap regions: the same algorithm code as the
//! shared-memory queue, fast enough to run under miri.

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use shmbatch::mpmc::{self, Receiver, Sender};
use shmbatch::{
    Error, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

/// A generous bound for waits that should end quickly (miri is slow).
const LONG: Duration = Duration::from_secs(60);

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

fn pair(slots: usize, max_batch: usize) -> (Sender<f64>, Receiver<f64>) {
    mpmc::channel::<f64>(slots, max_batch).unwrap()
}

#[test]
fn batches_arrive_whole_and_in_order() {
    let (tx, rx) = pair(8, 16);
    tx.send(&[1.0, 2.0, 3.0]).unwrap();
    tx.send(&[4.0]).unwrap();
    tx.send(&[]).unwrap();
    let mut r = tx.reserve(2).unwrap();
    r.copy_from_slice(&[5.0, 6.0]);
    r.commit();
    assert_eq!(&*rx.recv().unwrap(), &[1.0, 2.0, 3.0]);
    assert_eq!(&*rx.try_recv().unwrap(), &[4.0]);
    assert_eq!(rx.recv_timeout(LONG).unwrap().len(), 0);
    let mut v = vec![9.0; 7];
    assert_eq!(rx.recv_into(&mut v).unwrap(), 2);
    assert_eq!(v, [5.0, 6.0]);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert!(rx.is_empty());
}

#[test]
fn geometry_is_reported() {
    let (tx, rx) = pair(5, 100);
    assert_eq!((tx.capacity(), tx.max_batch()), (5, 100));
    assert_eq!((rx.capacity(), rx.max_batch()), (5, 100));
    assert_eq!((tx.name(), rx.name()), (None, None));
    assert!(!tx.is_disconnected() && !rx.is_disconnected());
}

#[test]
fn zero_and_absurd_sizes_are_rejected() {
    let size = |r: shmbatch::Result<(Sender<f64>, Receiver<f64>)>| match r {
        Err(Error::InvalidSize { what, value, .. }) => (what, value),
        other => panic!("expected InvalidSize, got {other:?}"),
    };
    assert_eq!(size(mpmc::channel(0, 8)), ("slots", 0));
    assert_eq!(size(mpmc::channel(8, 0)), ("max_batch", 0));
    let too_many = mpmc::MAX_SLOTS + 1;
    assert_eq!(size(mpmc::channel(too_many, 1)), ("slots", too_many));
    assert_eq!(
        size(mpmc::channel(1, usize::MAX / 4)),
        ("max_batch", usize::MAX / 4)
    );
    assert_eq!(
        size(mpmc::channel(1 << 20, 1 << 30)),
        ("slots", 1 << 20),
        "each slot fits, all of them do not"
    );
}

#[test]
fn too_large_is_refused_and_max_is_accepted() {
    let (tx, rx) = pair(4, 32);
    let big = vec![1.5; 33];
    let e = TrySendError::TooLarge { len: 33, max: 32 };
    assert_eq!(tx.try_send(&big).unwrap_err(), e);
    assert_eq!(
        tx.send(&big).unwrap_err(),
        SendError::TooLarge { len: 33, max: 32 }
    );
    assert_eq!(
        tx.send_timeout(&big, LONG).unwrap_err(),
        SendTimeoutError::TooLarge { len: 33, max: 32 }
    );
    assert_eq!(tx.try_reserve(33).unwrap_err(), e);
    let full: Vec<f64> = (0..32).map(|i| i as f64 * 0.5).collect();
    tx.send(&full).unwrap();
    assert_eq!(bits(&rx.recv().unwrap()), bits(&full));
}

#[test]
fn full_then_empty() {
    let (tx, rx) = pair(3, 4);
    for i in 0..3 {
        tx.try_send(&[i as f64]).unwrap();
    }
    assert_eq!(tx.try_send(&[9.0]).unwrap_err(), TrySendError::Full);
    assert!(matches!(tx.try_reserve(1), Err(TrySendError::Full)));
    assert_eq!(
        tx.send_timeout(&[9.0], Duration::from_millis(5))
            .unwrap_err(),
        SendTimeoutError::Timeout
    );
    assert_eq!(&*rx.recv().unwrap(), &[0.0]);
    tx.try_send(&[3.0]).unwrap();
    for i in 1..4 {
        assert_eq!(&*rx.try_recv().unwrap(), &[i as f64]);
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    let mut v = Vec::new();
    assert_eq!(
        rx.recv_into_timeout(&mut v, Duration::from_millis(1))
            .unwrap_err(),
        RecvTimeoutError::Timeout
    );
}

#[test]
fn wraps_around_many_laps() {
    // 3 slots: not a power of two, so positions skip from index 2 to the next lap.
    let (tx, rx) = pair(3, 8);
    let laps = if cfg!(miri) { 20 } else { 2000 };
    let mut next_in = 0u64;
    let mut next_out = 0u64;
    let mut out = Vec::new();
    for round in 0..laps {
        // Fill to a level that varies, then drain some.
        let fill = round % 4;
        for _ in 0..fill {
            let len = (next_in % 9) as usize;
            let batch: Vec<f64> = (0..len).map(|k| (next_in * 10 + k as u64) as f64).collect();
            match tx.try_send(&batch) {
                Ok(()) => next_in += 1,
                Err(TrySendError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        for _ in 0..(round % 3) {
            match rx.try_recv_into(&mut out) {
                Ok(len) => {
                    assert_eq!(len as u64, next_out % 9);
                    for (k, x) in out.iter().enumerate() {
                        assert_eq!(x.to_bits(), ((next_out * 10 + k as u64) as f64).to_bits());
                    }
                    next_out += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    while rx.try_recv_into(&mut out).is_ok() {
        next_out += 1;
    }
    assert_eq!(next_in, next_out);
    assert!(next_in > laps as u64 / 2);
}

#[test]
fn a_dropped_reservation_is_skipped() {
    let (tx, rx) = pair(2, 4);
    let mut r = tx.reserve(3).unwrap();
    r[0] = 7.0;
    drop(r); // cancelled
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    tx.send(&[1.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[1.0]);
    // Every slot is usable again: the skipped one did not wedge the queue.
    for round in 0..4 {
        drop(tx.try_reserve(1).unwrap());
        tx.try_send(&[round as f64]).unwrap();
        assert_eq!(&*rx.try_recv().unwrap(), &[round as f64]);
    }
    // A queue of only skipped slots is empty and then fills again.
    drop(tx.reserve(1).unwrap());
    drop(tx.reserve(1).unwrap());
    assert_eq!(tx.try_send(&[0.0]).unwrap_err(), TrySendError::Full);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    tx.try_send(&[5.0]).unwrap();
    tx.try_send(&[6.0]).unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), &[5.0]);
    assert_eq!(&*rx.try_recv().unwrap(), &[6.0]);
}

#[test]
fn truncate_commits_fewer_elements() {
    let (tx, rx) = pair(2, 8);
    let mut r = tx.reserve(8).unwrap();
    r[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
    r.truncate(3);
    r.truncate(5); // no effect
    assert_eq!(r.len(), 3);
    r.commit();
    assert_eq!(&*rx.recv().unwrap(), &[1.0, 2.0, 3.0]);
}

#[test]
fn a_batch_is_modified_in_place() {
    let (tx, rx) = pair(1, 4);
    tx.send(&[1.0, 2.0]).unwrap();
    let mut b = rx.recv().unwrap();
    b[1] = f64::NAN;
    b.iter_mut().for_each(|x| *x = -*x);
    assert_eq!(bits(&b), bits(&[-1.0, -f64::NAN]));
    drop(b);
    // The slot's previous contents show through a fresh reservation.
    let r = tx.reserve(2).unwrap();
    assert_eq!(bits(&r), bits(&[-1.0, -f64::NAN]));
}

#[test]
fn a_held_batch_keeps_its_slot_while_other_receivers_go_on() {
    let (tx, rx1) = pair(2, 1);
    let rx2 = rx1.clone();
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0]).unwrap();
    let held = rx1.recv().unwrap();
    assert_eq!(&*rx2.recv().unwrap(), &[2.0]);
    // The next position is the held batch's slot: full until it is released.
    assert_eq!(tx.try_send(&[3.0]).unwrap_err(), TrySendError::Full);
    assert_eq!(&*held, &[1.0]);
    drop(held);
    tx.try_send(&[3.0]).unwrap();
    tx.try_send(&[4.0]).unwrap();
    assert_eq!(&*rx2.recv().unwrap(), &[3.0]);
    assert_eq!(&*rx1.recv().unwrap(), &[4.0]);
}

#[test]
fn receivers_drain_then_see_disconnected_when_every_sender_is_gone() {
    let (tx, rx) = pair(4, 2);
    let tx2 = tx.clone();
    tx.send(&[1.0]).unwrap();
    tx2.send(&[2.0]).unwrap();
    drop(tx);
    assert!(!rx.is_disconnected(), "a clone is still attached");
    tx2.send(&[3.0]).unwrap();
    drop(tx2);
    assert!(rx.is_disconnected());
    for x in [1.0, 2.0, 3.0] {
        assert_eq!(&*rx.recv().unwrap(), &[x]);
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    assert_eq!(
        rx.recv_timeout(LONG).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    let mut v = Vec::new();
    assert_eq!(rx.recv_into(&mut v).unwrap_err(), RecvError::Disconnected);
}

#[test]
fn senders_see_disconnected_when_every_receiver_is_gone() {
    let (tx, rx) = pair(4, 2);
    let rx2 = rx.clone();
    drop(rx);
    tx.send(&[1.0]).unwrap();
    drop(rx2);
    assert!(tx.is_disconnected());
    assert_eq!(tx.try_send(&[1.0]).unwrap_err(), TrySendError::Disconnected);
    assert_eq!(tx.send(&[1.0]).unwrap_err(), SendError::Disconnected);
    assert_eq!(
        tx.send_timeout(&[1.0], LONG).unwrap_err(),
        SendTimeoutError::Disconnected
    );
    assert!(matches!(tx.reserve(1), Err(SendError::Disconnected)));
}

#[test]
fn blocking_recv_wakes_on_send() {
    let (tx, rx) = pair(2, 2);
    let t = thread::spawn(move || {
        let b = rx.recv_timeout(LONG).unwrap();
        b.to_vec()
    });
    thread::sleep(Duration::from_millis(20));
    tx.send(&[4.0, 2.0]).unwrap();
    assert_eq!(t.join().unwrap(), [4.0, 2.0]);
}

#[test]
fn blocking_send_wakes_on_release() {
    let (tx, rx) = pair(1, 1);
    tx.send(&[1.0]).unwrap();
    let t = thread::spawn(move || {
        tx.send_timeout(&[2.0], LONG).unwrap();
        tx
    });
    thread::sleep(Duration::from_millis(20));
    assert_eq!(&*rx.recv().unwrap(), &[1.0]);
    let _tx = t.join().unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[2.0]);
}

#[test]
fn blocked_handles_wake_on_disconnect() {
    let (tx, rx) = pair(1, 1);
    let t = thread::spawn(move || rx.recv_timeout(LONG).map(|b| b.len()));
    thread::sleep(Duration::from_millis(20));
    drop(tx);
    assert_eq!(t.join().unwrap(), Err(RecvTimeoutError::Disconnected));

    let (tx, rx) = pair(1, 1);
    tx.send(&[1.0]).unwrap();
    let t = thread::spawn(move || tx.send_timeout(&[2.0], LONG));
    thread::sleep(Duration::from_millis(20));
    drop(rx);
    assert_eq!(t.join().unwrap(), Err(SendTimeoutError::Disconnected));
}

#[test]
fn other_element_types_keep_their_alignment() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(128))]
    struct Wide {
        x: [u64; 16],
    }
    let (tx, rx) = mpmc::channel::<Wide>(3, 2).unwrap();
    let w = |v| Wide { x: [v; 16] };
    for round in 0..5u64 {
        tx.send(&[w(round), w(round + 100)]).unwrap();
        let b = rx.recv().unwrap();
        assert_eq!(b.as_ptr() as usize % 128, 0);
        assert_eq!(&*b, &[w(round), w(round + 100)]);
    }

    let (tx, rx) = mpmc::channel::<u8>(2, 3).unwrap();
    tx.send(b"abc").unwrap();
    tx.send(b"").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"abc");
    assert_eq!(&*rx.recv().unwrap(), b"");
}

#[test]
fn handles_are_send_and_clone() {
    fn send_clone<X: Send + Clone>() {}
    send_clone::<Sender<f64>>();
    send_clone::<Receiver<f64>>();
}

/// Every batch encodes its producer, sequence number and length; consumers check
/// contents and per-producer order, and the union is checked for exactly once.
#[test]
fn many_producers_many_consumers_deliver_exactly_once() {
    exactly_once_in_order(pair(4, 5), if cfg!(miri) { 30 } else { 20_000 });
}

#[test]
fn positions_wrap_around_at_2_pow_48() {
    // Started 3 laps of 4 positions (3 slots, one_lap 4) before the wrap: the
    // positions, stamps and claim words go through it while threads race.
    let per = if cfg!(miri) { 30 } else { 2_000 };
    exactly_once_in_order(mpmc::channel_near_wrap::<f64>(3, 5, 3).unwrap(), per);
    // And single-threaded, lap by lap through it.
    let (tx, rx) = mpmc::channel_near_wrap::<f64>(3, 2, 2).unwrap();
    for i in 0..40 {
        for k in 0..(i % 4) {
            tx.try_send(&[i as f64, k as f64]).unwrap();
        }
        for k in 0..(i % 4) {
            assert_eq!(&*rx.try_recv().unwrap(), &[i as f64, k as f64]);
        }
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    }
}

/// `PRODUCERS` threads send `per` batches each through `(tx, rx)`, cancelling a
/// reservation now and then; `CONSUMERS` threads receive: every batch arrives
/// exactly once, whole, in its producer's order.
fn exactly_once_in_order((tx, rx): (Sender<f64>, Receiver<f64>), per: u64) {
    const PRODUCERS: u64 = 3;
    const CONSUMERS: usize = 2;
    let value = |p: u64, seq: u64, k: usize| f64::from_bits(p << 56 | seq << 8 | k as u64);
    let len = |p: u64, seq: u64| ((p + seq) % 6) as usize;

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                for seq in 0..per {
                    let n = len(p, seq);
                    if seq % 3 == 0 {
                        let mut r = tx.reserve_timeout(n, LONG).unwrap();
                        for (k, x) in r.iter_mut().enumerate() {
                            *x = value(p, seq, k);
                        }
                        r.commit();
                    } else {
                        if seq % 7 == 1 {
                            // A cancelled reservation in between: skipped by everyone.
                            drop(tx.reserve_timeout(1, LONG).unwrap());
                        }
                        let b: Vec<f64> = (0..n).map(|k| value(p, seq, k)).collect();
                        tx.send_timeout(&b, LONG).unwrap();
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let rx = rx.clone();
            thread::spawn(move || {
                let mut got: HashMap<u64, Vec<u64>> = HashMap::new();
                let mut buf = Vec::new();
                loop {
                    let b = if c == 0 {
                        match rx.recv_timeout(LONG) {
                            Ok(b) => b.to_vec(),
                            Err(RecvTimeoutError::Disconnected) => break,
                            Err(e) => panic!("{e}"),
                        }
                    } else {
                        match rx.recv_into_timeout(&mut buf, LONG) {
                            Ok(_) => buf.clone(),
                            Err(RecvTimeoutError::Disconnected) => break,
                            Err(e) => panic!("{e}"),
                        }
                    };
                    // An empty batch carries no id: only (p + seq) % 6 == 0 is empty,
                    // so identify it by elimination at the end.
                    if b.is_empty() {
                        got.entry(u64::MAX).or_default().push(0);
                        continue;
                    }
                    let id = b[0].to_bits();
                    let (p, seq) = (id >> 56, (id >> 8) & ((1 << 48) - 1));
                    assert_eq!(b.len(), len(p, seq), "length of {p}/{seq}");
                    for (k, x) in b.iter().enumerate() {
                        assert_eq!(x.to_bits(), value(p, seq, k).to_bits());
                    }
                    let mine = got.entry(p).or_default();
                    assert!(
                        mine.last().map_or(true, |&last| last < seq),
                        "producer {p}: {seq} after {:?}",
                        mine.last()
                    );
                    mine.push(seq);
                }
                got
            })
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().unwrap();
    }
    let mut all: HashMap<u64, Vec<u64>> = HashMap::new();
    for c in consumers {
        for (p, seqs) in c.join().unwrap() {
            all.entry(p).or_default().extend(seqs);
        }
    }
    let empties = all.remove(&u64::MAX).map_or(0, |v| v.len() as u64);
    let mut expected_empties = 0;
    for p in 0..PRODUCERS {
        let mut seqs = all.remove(&p).unwrap_or_default();
        seqs.sort_unstable();
        let want: Vec<u64> = (0..per).filter(|&s| len(p, s) != 0).collect();
        expected_empties += per - want.len() as u64;
        assert_eq!(
            seqs, want,
            "producer {p}: every non-empty batch exactly once"
        );
    }
    assert_eq!(empties, expected_empties);
    assert!(all.is_empty());
}

// ------------------------------------------------------------ process death
//
// `simulate_death` marks a handle's attachment as that of a dead process and
// leaves its claim in place, which is what a SIGKILL at that instant leaves (the
// cross-process trials in mpmc_processes.rs kill real processes).

/// Recovery runs on the slow path, at most every liveness slice (20 ms): wait for
/// it with a timeout, never with a fixed sleep.
const RECOVERY: Duration = Duration::from_secs(10);

#[test]
fn a_producer_dying_in_reserve_is_skipped_and_the_queue_flows() {
    let (mut tx, mut rx) = pair(4, 2);
    let dying = tx.attach_again().unwrap();
    dying.reserve(1).unwrap().simulate_death();
    drop(dying);
    flows_past_a_dead_claim(&mut tx, &mut rx);
}

/// With one of the 4 slots held by a dead claim: a producer fills every other
/// slot and more, and the receiver gets all of it, in order, past the dead claim.
fn flows_past_a_dead_claim(tx: &mut Sender<f64>, rx: &mut Receiver<f64>) {
    for i in 0..3 {
        tx.send(&[i as f64]).unwrap();
    }
    for i in 0..3 {
        assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[i as f64]);
    }
    for i in 3..40 {
        tx.send_timeout(&[i as f64], RECOVERY).unwrap();
        assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[i as f64]);
    }
}

#[test]
fn after_a_dead_producer_every_committed_batch_is_drained_then_disconnected() {
    // The measured failure: a producer dies holding a reservation, another sends
    // 15 batches into 16 slots and leaves; all 15 must arrive, then Disconnected.
    let (tx, rx) = pair(16, 4);
    let dying = tx.attach_again().unwrap();
    dying.reserve(4).unwrap().simulate_death();
    drop(dying);
    let b = tx;
    for i in 0..15 {
        b.send(&[i as f64; 3]).unwrap();
    }
    drop(b);
    for i in 0..15 {
        assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[i as f64; 3]);
    }
    assert_eq!(
        rx.recv_timeout(RECOVERY).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
}

#[test]
fn a_batch_held_by_a_dead_receiver_is_delivered_again_while_senders_wait() {
    let (tx, rx) = pair(2, 1);
    let dying = rx.attach_again().unwrap();
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0]).unwrap();
    dying.recv().unwrap().simulate_death();
    drop(dying);
    assert_eq!(&*rx.recv().unwrap(), &[2.0]);
    // The queue is "full" at the dead receiver's slot: the sender recovers it (the
    // batch is committed again, ahead of ours) and the queue flows.
    tx.send_timeout(&[3.0], RECOVERY).unwrap();
    let got: Vec<f64> = (0..2)
        .map(|_| rx.recv_timeout(RECOVERY).unwrap()[0])
        .collect();
    assert_eq!(got, [1.0, 3.0], "redelivered, after a later batch (2.0)");
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty, "once");
    for i in 5..20 {
        tx.send_timeout(&[i as f64], RECOVERY).unwrap();
        assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[i as f64]);
    }
}

#[test]
fn a_batch_held_by_a_dead_receiver_is_found_by_an_idle_receiver() {
    // No sender comes back to the slot: a waiting receiver finds the orphan.
    let (tx, rx) = pair(8, 1);
    let dying = rx.attach_again().unwrap();
    tx.send(&[7.0]).unwrap();
    dying.recv().unwrap().simulate_death();
    drop(dying);
    assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[7.0]);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        TryRecvError::Empty,
        "delivered once more, not twice"
    );
    tx.send(&[8.0]).unwrap();
    assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[8.0]);
}

#[test]
fn orphaned_batches_are_drained_before_disconnected() {
    let (tx, rx) = pair(8, 1);
    let dying = rx.attach_again().unwrap();
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0]).unwrap();
    dying.recv().unwrap().simulate_death();
    drop((dying, tx));
    let mut got: Vec<f64> = Vec::new();
    loop {
        match rx.recv_timeout(RECOVERY) {
            Ok(b) => got.push(b[0]),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    got.sort_by(f64::total_cmp);
    assert_eq!(got, [1.0, 2.0]);
}

#[test]
fn a_producer_killed_right_after_its_claim_is_skipped() {
    // The claim CAS names its claimer in tail; the claim word is written after it.
    // A claimer killed in between is known all the same.
    let (mut tx, mut rx) = pair(4, 2);
    let dying = tx.attach_again().unwrap();
    dying.simulate_death_claiming(1).unwrap();
    drop(dying);
    // Before anyone claims after it (the dead claimer is named in tail only), a
    // receiver's liveness check steps over it.
    rx.check_peers_next();
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    flows_past_a_dead_claim(&mut tx, &mut rx);
}

#[test]
fn producers_killed_one_after_another_right_after_their_claims_are_skipped() {
    // The second dead claimer replaced the first one's name in tail: it wrote the
    // first one's claim word before its own CAS.
    for slots in [1, 2, 3, 5] {
        let (tx, rx) = pair(slots, 2);
        for _ in 0..slots.min(3) {
            let dying = tx.attach_again().unwrap();
            dying.simulate_death_claiming(2).unwrap();
        }
        if slots <= 3 {
            // Every slot holds a dead claim: the receiver steps over them first.
            rx.check_peers_next();
            assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        }
        let b = tx;
        let n = 3 * slots;
        for i in 0..n {
            b.send_timeout(&[i as f64], RECOVERY)
                .unwrap_or_else(|e| panic!("{slots} slots, send {i}: {e}"));
            assert_eq!(
                &*rx.recv_timeout(RECOVERY).unwrap(),
                &[i as f64],
                "{slots} slots"
            );
        }
        drop(b);
        assert_eq!(
            rx.recv_timeout(RECOVERY).unwrap_err(),
            RecvTimeoutError::Disconnected
        );
    }
}

#[test]
fn a_receiver_killed_right_after_its_take_is_redelivered() {
    for slots in [1, 2, 4] {
        let (tx, rx) = pair(slots, 1);
        tx.send(&[1.0]).unwrap();
        let dying = rx.attach_again().unwrap();
        assert_eq!(dying.simulate_death_taking().unwrap(), [1.0]);
        drop(dying);
        // Found by the idle receiver (the dead taker is named in head only).
        assert_eq!(
            &*rx.recv_timeout(RECOVERY).unwrap(),
            &[1.0],
            "{slots} slots"
        );
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty, "once");
        // Two in a row, then the sender needs their slots back.
        if slots >= 2 {
            tx.send(&[2.0]).unwrap();
            tx.send(&[3.0]).unwrap();
            for want in [2.0, 3.0] {
                let dying = rx.attach_again().unwrap();
                assert_eq!(dying.simulate_death_taking().unwrap(), [want]);
            }
            let mut got: Vec<f64> = (0..2)
                .map(|_| rx.recv_timeout(RECOVERY).unwrap()[0])
                .collect();
            got.sort_by(f64::total_cmp);
            assert_eq!(got, [2.0, 3.0]);
        }
        for i in 5..20 {
            tx.send_timeout(&[i as f64], RECOVERY).unwrap();
            assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[i as f64]);
        }
    }
}

#[test]
fn deaths_are_recovered_across_the_wrap() {
    let (tx, rx) = mpmc::channel_near_wrap::<f64>(2, 1, 1).unwrap();
    let dying = tx.attach_again().unwrap();
    dying.simulate_death_claiming(1).unwrap();
    tx.send(&[1.0]).unwrap();
    assert_eq!(&*rx.recv_timeout(RECOVERY).unwrap(), &[1.0]);
    tx.send(&[2.0]).unwrap();
    let dying = rx.attach_again().unwrap();
    dying.recv().unwrap().simulate_death();
    tx.send(&[3.0]).unwrap();
    // Full: the sender commits the dead receiver's batch again to make room.
    let mut got: Vec<f64> = Vec::new();
    for i in 4..12 {
        got.push(rx.recv_timeout(RECOVERY).unwrap()[0]);
        tx.send_timeout(&[i as f64], RECOVERY).unwrap();
    }
    while got.len() < 10 {
        got.push(rx.recv_timeout(RECOVERY).unwrap()[0]);
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty, "once");
    got.sort_by(f64::total_cmp);
    let want: Vec<f64> = (2..12).map(|i| i as f64).collect();
    assert_eq!(got, want);
}

// ------------------------------------------------------------ the API of issue 10

#[test]
fn handles_are_sync_and_send_through_an_arc() {
    fn sync<S: Sync + Send>() {}
    sync::<Sender<f64>>();
    sync::<Receiver<f64>>();
    let (tx, rx) = pair(4, 2);
    let (tx, rx) = (std::sync::Arc::new(tx), std::sync::Arc::new(rx));
    let per = if cfg!(miri) { 10 } else { 1000 };
    let threads: Vec<_> = (0..2)
        .map(|p| {
            let tx = std::sync::Arc::clone(&tx);
            thread::spawn(move || {
                for i in 0..per {
                    tx.send_timeout(&[p as f64, i as f64], LONG).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let rx = std::sync::Arc::clone(&rx);
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(b) = rx.recv_timeout(Duration::from_millis(300)) {
                    got.push((b[0] as u64, b[1] as u64));
                }
                got
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut all: Vec<(u64, u64)> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    all.sort_unstable();
    let want: Vec<(u64, u64)> = (0..2).flat_map(|p| (0..per).map(move |i| (p, i))).collect();
    assert_eq!(all, want);
}

#[test]
fn iterators_len_and_fullness() {
    let (tx, rx) = pair(3, 2);
    assert!(tx.is_empty() && rx.is_empty() && !tx.is_full());
    assert_eq!((tx.len(), rx.len()), (0, 0));
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0, 3.0]).unwrap();
    assert_eq!((tx.len(), rx.len()), (2, 2));
    assert!(!rx.is_empty() && !tx.is_full());
    tx.send(&[]).unwrap();
    assert!(tx.is_full());
    assert_eq!(tx.len(), 3);
    let now: Vec<Vec<f64>> = rx.try_iter().collect();
    assert_eq!(now, [vec![1.0], vec![2.0, 3.0], vec![]]);
    assert!(rx.is_empty() && tx.is_empty() && !tx.is_full());
    assert_eq!(rx.try_iter().count(), 0, "try_iter ends when empty");
    // iter blocks for the next batch and ends at Disconnected.
    let t = thread::spawn(move || {
        for i in 0..5 {
            tx.send_timeout(&[i as f64], LONG).unwrap();
        }
    });
    let all: Vec<f64> = rx.iter().map(|b| b[0]).collect();
    t.join().unwrap();
    assert_eq!(all, [0.0, 1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn deadlines_are_instants() {
    use std::time::Instant;
    let (tx, rx) = pair(1, 1);
    let soon = Instant::now() + Duration::from_millis(30);
    assert_eq!(
        rx.recv_deadline(soon).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert!(Instant::now() >= soon);
    let mut v = Vec::new();
    assert_eq!(
        rx.recv_into_deadline(&mut v, Instant::now()).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    let later = Instant::now() + LONG;
    tx.send_deadline(&[1.0], later).unwrap();
    assert_eq!(
        tx.send_deadline(&[2.0], Instant::now() + Duration::from_millis(30))
            .unwrap_err(),
        SendTimeoutError::Timeout
    );
    assert_eq!(
        tx.reserve_deadline(1, Instant::now()).unwrap_err(),
        SendTimeoutError::Timeout
    );
    assert_eq!(rx.recv_into_deadline(&mut v, later).unwrap(), 1);
    assert_eq!(v, [1.0]);
    let mut r = tx.reserve_deadline(1, later).unwrap();
    r[0] = 5.0;
    r.commit();
    assert_eq!(&*rx.recv_deadline(later).unwrap(), &[5.0]);
}
