//! Loom models of the SPSC ring: every interleaving (up to loom's preemption bound)
//! of one producer and one consumer thread over a tiny ring, so wrap-around, full
//! and empty all happen. Payload accesses are reported to loom through the region's
//! shadow cells, so a missing Release/Acquire pair shows up as a causality error.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_spsc`
#![cfg(loom)]

use loom::thread;
use shmbatch::spsc;
use shmbatch::{RecvError, TryRecvError, TrySendError};

/// capacity 4 u64: the ring is 48 bytes, records are 16 (1 element) or 24 (2)
/// bytes, so the third batch below must wrap and wait for the first to be freed.
const CAP: usize = 4;

#[test]
fn wraps_full_and_empty_with_variable_batches() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::channel::<u64>(CAP).unwrap();
        assert_eq!(tx.max_batch(), 2);
        let producer = thread::spawn(move || {
            let batches: [&[u64]; 3] = [&[1], &[2, 3], &[4]];
            for (i, b) in batches.iter().enumerate() {
                loop {
                    // Alternate the copying and the zero-copy path.
                    let r = if i % 2 == 0 {
                        tx.try_send(b)
                    } else {
                        tx.try_reserve(b.len()).map(|mut r| {
                            r.copy_from_slice(b);
                            r.commit();
                        })
                    };
                    match r {
                        Ok(()) => break,
                        Err(TrySendError::Full) => thread::yield_now(),
                        Err(e) => panic!("send: {e}"),
                    }
                }
            }
            tx
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            match rx.try_recv() {
                Ok(mut b) => {
                    got.push(b.to_vec());
                    // In-place modification of the slot before it is released.
                    b[0] = 0;
                }
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(got, vec![vec![1], vec![2, 3], vec![4]]);
        let tx = producer.join().unwrap();
        assert_eq!((tx.len(), rx.len()), (0, 0));
        assert!(tx.is_empty() && !tx.is_full());
        drop(tx);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    });
}

#[test]
fn receiver_drains_then_sees_disconnected() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::channel::<u64>(CAP).unwrap();
        let producer = thread::spawn(move || {
            tx.send(&[7, 8]).unwrap();
            tx.send(&[9]).unwrap();
            // tx drops here: detach after the last publish.
        });
        let mut got = Vec::new();
        loop {
            match rx.recv() {
                Ok(b) => got.push(b.to_vec()),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(got, vec![vec![7, 8], vec![9]]);
        assert_eq!(rx.len(), 0);
        producer.join().unwrap();
    });
}

#[test]
fn sender_sees_disconnected_after_receiver_drops() {
    loom::model(|| {
        let (mut tx, rx) = spsc::channel::<u64>(CAP).unwrap();
        let consumer = thread::spawn(move || drop(rx));
        // The ring holds at most 3 one-element batches, so this loop must end in
        // Disconnected and never hang in a blocking send.
        let mut sent = 0;
        loop {
            match tx.send(&[sent]) {
                Ok(()) => sent += 1,
                Err(shmbatch::SendError::Disconnected) => break,
                Err(e) => panic!("send: {e}"),
            }
            assert!(sent <= 3);
        }
        consumer.join().unwrap();
    });
}
