//! Loom models of the MPMC slot queue: every interleaving (up to loom's preemption
//! bound) of two producers and one consumer, and of one producer and two consumers,
//! over two slots, so that positions wrap and the queue is full and empty. Payload
//! accesses are reported to loom through the region's shadow cells, so a missing
//! Release/Acquire pair shows up as a causality error; exactly-once delivery and
//! per-producer order are asserted in every execution.
//!
//! Waiting: a claimed but uncommitted slot holds up everyone behind it (Vyukov's
//! queue is not lock-free in that window), so with three threads two of them can
//! poll while the third, which would let them progress, is not scheduled. Loom
//! explores such unfair schedules without end if the pollers merely yield. So a
//! handle that finds the queue full or empty instead waits on a [`Progress`]
//! counter that every thread bumps after each successful operation and after
//! dropping its handle: it polls again only after someone did something.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_mpmc`
#![cfg(loom)]

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use shmbatch::mpmc::{self, Receiver, Sender};
use shmbatch::{TryRecvError, TrySendError};

const SLOTS: usize = 2;
const MAX_BATCH: usize = 2;

/// Run `f` under loom with at most 3 preemptions (unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise): unbounded, these three-thread models take hours.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = b.preemption_bound.or(Some(3));
    b.check(f);
}

/// Counts completed operations; see the module docs.
#[derive(Default)]
struct Progress {
    done: Mutex<u64>,
    cv: Condvar,
}

impl Progress {
    fn now(&self) -> u64 {
        *self.done.lock().unwrap()
    }
    fn bump(&self) {
        *self.done.lock().unwrap() += 1;
        self.cv.notify_all();
    }
    /// Wait until someone completes an operation after `seen`.
    fn wait_past(&self, seen: u64) {
        let mut done = self.done.lock().unwrap();
        while *done == seen {
            done = self.cv.wait(done).unwrap();
        }
    }
}

/// Send `batch` with `try_send` (or the zero-copy path), waiting while full.
fn send(tx: &mut Sender<u64>, batch: &[u64], zero_copy: bool, progress: &Progress) {
    loop {
        let seen = progress.now();
        let r = if zero_copy {
            tx.try_reserve(batch.len()).map(|mut r| {
                r.copy_from_slice(batch);
                r.commit();
            })
        } else {
            tx.try_send(batch)
        };
        match r {
            Ok(()) => return progress.bump(),
            Err(TrySendError::Full) => progress.wait_past(seen),
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// Receive until every sender is gone and the queue is drained. (Dropping the
/// receiver is no progress anyone here waits for: senders finish first.)
fn drain(rx: Receiver<u64>, progress: &Progress) -> Vec<Vec<u64>> {
    let mut got = Vec::new();
    loop {
        let seen = progress.now();
        match rx.try_recv() {
            Ok(mut b) => {
                got.push(b.to_vec());
                // In-place modification before the slot is released.
                b[0] = 0;
                drop(b);
                progress.bump();
            }
            Err(TryRecvError::Empty) => progress.wait_past(seen),
            Err(TryRecvError::Disconnected) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

/// Batches are `[producer * 10 + seq, ..]`: check that the receivers' batches hold
/// each of `sent` exactly once, and that each receiver saw each producer's batches
/// in order.
fn check(per_receiver: &[Vec<Vec<u64>>], sent: &[Vec<u64>]) {
    for got in per_receiver {
        for p in 0..3 {
            let seqs: Vec<u64> = got.iter().map(|b| b[0]).filter(|id| id / 10 == p).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order: {got:?}");
        }
    }
    let mut all: Vec<Vec<u64>> = per_receiver.iter().flatten().cloned().collect();
    all.sort();
    let mut want = sent.to_vec();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn two_producers_one_consumer_exactly_once() {
    model(|| {
        let progress = Arc::new(Progress::default());
        let (tx, rx) = mpmc::channel::<u64>(SLOTS, MAX_BATCH).unwrap();
        let mut tx2 = tx.clone();
        let mut tx1 = tx;
        // Three batches through two slots: the third claims a slot on lap 1.
        let pr = Arc::clone(&progress);
        let p1 = thread::spawn(move || {
            send(&mut tx1, &[10, 1], false, &pr);
            send(&mut tx1, &[11], true, &pr);
            drop(tx1);
            pr.bump();
        });
        let pr = Arc::clone(&progress);
        let p2 = thread::spawn(move || {
            send(&mut tx2, &[20, 2], true, &pr);
            drop(tx2);
            pr.bump();
        });
        let got = drain(rx, &progress);
        p1.join().unwrap();
        p2.join().unwrap();
        check(&[got], &[vec![10, 1], vec![11], vec![20, 2]]);
    });
}

#[test]
fn one_producer_two_consumers_exactly_once() {
    model(|| {
        let progress = Arc::new(Progress::default());
        let (mut tx, rx) = mpmc::channel::<u64>(SLOTS, MAX_BATCH).unwrap();
        let rx2 = rx.clone();
        let pr = Arc::clone(&progress);
        let c2 = thread::spawn(move || drain(rx2, &pr));
        let pr = Arc::clone(&progress);
        let producer = thread::spawn(move || {
            send(&mut tx, &[10, 1], false, &pr);
            // A cancelled reservation: receivers must step over its slot. (Nobody
            // needs a bump for it: a receiver waiting there is woken by the next
            // send, which only needs the first batch's slot.)
            drop(tx.try_reserve(1));
            send(&mut tx, &[11], true, &pr);
            drop(tx);
            pr.bump();
        });
        let got1 = drain(rx, &progress);
        producer.join().unwrap();
        let got2 = c2.join().unwrap();
        check(&[got1, got2], &[vec![10, 1], vec![11]]);
    });
}

/// Sends `batches` with `try_send` once each (the queue has room for all of them
/// unless a dead claim holds a slot); returns those that went in.
fn try_send_each(tx: &mut Sender<u64>, batches: &[&[u64]]) -> Vec<Vec<u64>> {
    let mut sent = Vec::new();
    for b in batches {
        // Time does not pass in a model: ask for the liveness check (and recovery)
        // that a full queue makes every 20 ms.
        tx.check_peers_next();
        match tx.try_send(b) {
            Ok(()) => sent.push(b.to_vec()),
            Err(TrySendError::Full) => {}
            Err(e) => panic!("send: {e}"),
        }
    }
    sent
}

/// Receive until `Disconnected` into `got`, asking for the liveness check (and
/// recovery) before each try, as time does not pass in a model.
fn drain_recovering(rx: &mut Receiver<u64>, got: &mut Vec<Vec<u64>>) {
    loop {
        rx.check_peers_next();
        match rx.try_recv() {
            Ok(b) => got.push(b.to_vec()),
            Err(TryRecvError::Disconnected) => break,
            Err(e) => panic!("recv: {e} after {got:?}"),
        }
    }
}

// The process-death models. A dead claimer's slot is recovered on a slow path, by
// whoever finds it; that recovery is progress the `Progress` harness above cannot
// see (it counts successful operations), so here the threads that race with the
// death do not wait, and the recovery is checked in the drain that follows them.

/// A producer that dies holding a reservation (marked dead, its claim left in the
/// slot) while another sends: every batch the other sent arrives, then
/// `Disconnected`, and the queue has room for a whole lap again.
#[test]
fn a_producer_dying_in_reserve_is_skipped() {
    model(|| {
        let (mut tx, mut rx) = mpmc::channel::<u64>(SLOTS, MAX_BATCH).unwrap();
        let dying = tx.attach_again().unwrap();
        let d = thread::spawn(move || {
            if let Ok(r) = dying.try_reserve(1) {
                r.simulate_death();
            }
        });
        let p = thread::spawn(move || {
            let sent = try_send_each(&mut tx, &[&[10, 1], &[11]]);
            (tx, sent)
        });
        d.join().unwrap();
        let (mut tx, mut sent) = p.join().unwrap();
        let mut got = Vec::new();
        loop {
            rx.check_peers_next();
            match rx.try_recv() {
                Ok(b) => got.push(b.to_vec()),
                Err(_) => break,
            }
        }
        // The dead claim is behind us: a whole lap fits again.
        let more = try_send_each(&mut tx, &[&[12], &[13]]);
        assert_eq!(more.len(), 2, "room for a lap after {sent:?}");
        sent.extend(more);
        drop(tx);
        drain_recovering(&mut rx, &mut got);
        assert_eq!(got, sent, "in order, none lost");
    });
}

/// A receiver that dies holding a batch: the batch is delivered again to the
/// other receiver, and nothing is lost.
#[test]
fn a_receiver_dying_with_a_batch_is_redelivered() {
    model(|| {
        let (mut tx, mut rx) = mpmc::channel::<u64>(SLOTS, MAX_BATCH).unwrap();
        let dying = rx.attach_again().unwrap();
        let d = thread::spawn(move || {
            if let Ok(b) = dying.try_recv() {
                b.simulate_death();
            }
        });
        let p = thread::spawn(move || try_send_each(&mut tx, &[&[10, 1], &[11]]));
        d.join().unwrap();
        let sent = p.join().unwrap();
        assert_eq!(sent.len(), 2, "two slots");
        let mut got = Vec::new();
        drain_recovering(&mut rx, &mut got);
        got.sort();
        assert_eq!(got, sent);
    });
}

/// A producer killed right after its claim CAS, before it wrote its claim word,
/// while another sends: the other's claim CAS (or a recovery) writes it, and
/// every batch the other sent arrives, in order, then `Disconnected`.
#[test]
fn a_producer_dying_right_after_its_claim_is_skipped() {
    model(|| {
        let (mut tx, mut rx) = mpmc::channel::<u64>(SLOTS, MAX_BATCH).unwrap();
        let dying = tx.attach_again().unwrap();
        let d = thread::spawn(move || {
            let _ = dying.simulate_death_claiming(1);
        });
        let p = thread::spawn(move || {
            let sent = try_send_each(&mut tx, &[&[10, 1], &[11]]);
            (tx, sent)
        });
        d.join().unwrap();
        let (tx, sent) = p.join().unwrap();
        drop(tx);
        let mut got = Vec::new();
        drain_recovering(&mut rx, &mut got);
        assert_eq!(got, sent, "in order, none lost");
    });
}

/// A receiver killed right after it took a batch, before it wrote its claim
/// word, while another receives: the batch is delivered again, nothing is lost.
#[test]
fn a_receiver_dying_right_after_its_take_is_redelivered() {
    model(|| {
        let (tx, mut rx) = mpmc::channel::<u64>(SLOTS, MAX_BATCH).unwrap();
        tx.try_send(&[10, 1]).unwrap();
        tx.try_send(&[11]).unwrap();
        drop(tx);
        let dying = rx.attach_again().unwrap();
        let d = thread::spawn(move || dying.simulate_death_taking().ok());
        // One receive races with the death; the drain follows it (a receiver
        // that is alive may hold a batch when the queue says Disconnected).
        let mut got = Vec::new();
        rx.check_peers_next();
        if let Ok(b) = rx.try_recv() {
            got.push(b.to_vec());
        }
        let died_with = d.join().unwrap();
        drain_recovering(&mut rx, &mut got);
        got.sort();
        assert_eq!(got, [vec![10, 1], vec![11]], "died with {died_with:?}");
    });
}
