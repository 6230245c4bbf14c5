//! Behaviour of the SPSC ring on heap regions: the same algorithm code as the
//! shared-memory queue, fast enough to run under miri.

use std::time::Duration;

use shmbatch::spsc::{self, Receiver, Sender};
use shmbatch::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

fn pair(capacity: usize) -> (Sender<f64>, Receiver<f64>) {
    spsc::channel::<f64>(capacity).unwrap()
}

#[test]
fn batches_arrive_whole_and_in_order() {
    let (mut tx, mut rx) = pair(64);
    tx.send(&[1.0, 2.0, 3.0]).unwrap();
    tx.send(&[4.0]).unwrap();
    tx.send(&[]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[1.0, 2.0, 3.0]);
    assert_eq!(&*rx.recv().unwrap(), &[4.0]);
    assert_eq!(rx.recv().unwrap().len(), 0);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn max_batch_is_at_least_half_the_capacity() {
    for cap in [1, 2, 3, 7, 64, 1000, 4097] {
        let (tx, rx) = pair(cap);
        assert!(
            tx.max_batch() >= cap.div_ceil(2),
            "cap {cap}: {}",
            tx.max_batch()
        );
        assert_eq!(tx.max_batch(), rx.max_batch());
        assert!(tx.capacity() >= cap);
    }
}

#[test]
fn too_large_is_refused_and_max_is_accepted() {
    let (mut tx, mut rx) = pair(64);
    let max = tx.max_batch();
    let big = vec![1.5; max + 1];
    assert_eq!(
        tx.try_send(&big).unwrap_err(),
        TrySendError::TooLarge { len: max + 1, max }
    );
    assert_eq!(
        tx.send(&big).unwrap_err(),
        SendError::TooLarge { len: max + 1, max }
    );
    assert!(matches!(
        tx.try_reserve(max + 1),
        Err(TrySendError::TooLarge { .. })
    ));
    let full: Vec<f64> = (0..max).map(|i| i as f64).collect();
    tx.send(&full).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &full[..]);
}

#[test]
fn full_then_empty() {
    let (mut tx, mut rx) = pair(16);
    let mut sent = 0;
    while tx.try_send(&[sent as f64]).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    assert_eq!(tx.try_send(&[0.0]).unwrap_err(), TrySendError::Full);
    assert_eq!(
        tx.send_timeout(&[0.0], Duration::from_millis(5))
            .unwrap_err(),
        SendTimeoutError::Timeout
    );
    for i in 0..sent {
        assert_eq!(&*rx.try_recv().unwrap(), &[i as f64]);
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert!(rx.is_empty());
    tx.try_send(&[9.0]).unwrap();
    assert!(!rx.is_empty());
}

#[test]
fn wraps_around_with_every_batch_contiguous() {
    let (mut tx, mut rx) = pair(40);
    let max = tx.max_batch();
    let mut next = 0u64;
    let mut expect = 0u64;
    let rounds = if cfg!(miri) { 60 } else { 2_000 };
    for round in 0..rounds {
        let len = 1 + (round * 7) % max;
        let batch: Vec<f64> = (0..len as u64).map(|i| (next + i) as f64).collect();
        next += len as u64;
        tx.try_send(&batch).unwrap();
        let got = rx.try_recv().unwrap();
        assert_eq!(got.len(), len);
        for x in got.iter() {
            assert_eq!(*x, expect as f64);
            expect += 1;
        }
    }
}

#[test]
fn nan_and_negative_zero_round_trip_bit_exact() {
    let (mut tx, mut rx) = pair(64);
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001),
        f64::from_bits(0xfff8_dead_beef_0001),
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE / 2.0,
    ];
    tx.send(&specials).unwrap();
    assert_eq!(bits(&rx.recv().unwrap()), bits(&specials));
}

#[test]
fn receiver_modifies_in_place() {
    let (mut tx, mut rx) = pair(64);
    tx.send(&[1.0, 2.0]).unwrap();
    let mut b = rx.recv().unwrap();
    for x in b.iter_mut() {
        *x *= 10.0;
    }
    assert_eq!(&*b, &[10.0, 20.0]);
}

#[test]
fn reserve_commit_publishes_and_drop_publishes_nothing() {
    let (mut tx, mut rx) = pair(64);
    {
        let mut r = tx.reserve(3).unwrap();
        r.copy_from_slice(&[7.0, 8.0, 9.0]);
        // dropped without commit
    }
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    let mut r = tx.try_reserve(3).unwrap();
    r.copy_from_slice(&[1.0, 2.0, 3.0]);
    r.commit();
    let mut r = tx.reserve_timeout(4, Duration::from_millis(10)).unwrap();
    r[..2].copy_from_slice(&[4.0, 5.0]);
    r.truncate(2);
    assert_eq!(r.len(), 2);
    r.commit();
    assert_eq!(&*rx.recv().unwrap(), &[1.0, 2.0, 3.0]);
    assert_eq!(&*rx.recv().unwrap(), &[4.0, 5.0]);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn recv_into_replaces_the_vector() {
    let (mut tx, mut rx) = pair(64);
    let mut v = vec![99.0; 10];
    tx.send(&[1.0, 2.0]).unwrap();
    tx.send(&[3.0]).unwrap();
    assert_eq!(rx.recv_into(&mut v).unwrap(), 2);
    assert_eq!(v, [1.0, 2.0]);
    assert_eq!(rx.try_recv_into(&mut v).unwrap(), 1);
    assert_eq!(v, [3.0]);
    assert_eq!(
        rx.recv_into_timeout(&mut v, Duration::from_millis(1))
            .unwrap_err(),
        RecvTimeoutError::Timeout
    );
}

#[test]
fn receiver_drains_then_sees_disconnected() {
    let (mut tx, mut rx) = pair(64);
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0]).unwrap();
    assert!(!rx.is_disconnected());
    drop(tx);
    assert!(rx.is_disconnected());
    assert_eq!(&*rx.recv().unwrap(), &[1.0]);
    assert_eq!(&*rx.try_recv().unwrap(), &[2.0]);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
}

#[test]
fn sender_sees_disconnected_when_receiver_drops() {
    let (mut tx, rx) = pair(64);
    tx.send(&[1.0]).unwrap();
    drop(rx);
    assert!(tx.is_disconnected());
    assert_eq!(tx.try_send(&[1.0]).unwrap_err(), TrySendError::Disconnected);
    assert_eq!(tx.send(&[1.0]).unwrap_err(), SendError::Disconnected);
    assert!(matches!(tx.reserve(1), Err(SendError::Disconnected)));
}

#[test]
fn blocked_receiver_wakes_on_disconnect() {
    let (tx, mut rx) = pair(64);
    let t = std::thread::spawn(move || rx.recv().map(|b| b.len()));
    std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 50 }));
    drop(tx);
    assert_eq!(t.join().unwrap(), Err(RecvError::Disconnected));
}

#[test]
fn blocked_sender_wakes_when_space_frees() {
    let (mut tx, mut rx) = pair(8);
    while tx.try_send(&[1.0, 2.0]).is_ok() {}
    let t = std::thread::spawn(move || {
        tx.send(&[3.0, 4.0]).unwrap();
        tx
    });
    std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 50 }));
    let mut got = Vec::new();
    while got.last() != Some(&vec![3.0, 4.0]) {
        let mut v = Vec::new();
        rx.recv_into(&mut v).unwrap();
        got.push(v);
    }
    drop(t.join().unwrap());
}

#[test]
fn two_threads_stream_every_value() {
    let (mut tx, mut rx) = pair(256);
    let n: u64 = if cfg!(miri) { 300 } else { 200_000 };
    let max = tx.max_batch() as u64;
    let producer = std::thread::spawn(move || {
        let mut i = 0u64;
        let mut round = 0u64;
        while i < n {
            let len = (1 + round % max).min(n - i);
            round += 1;
            if round % 2 == 0 {
                let batch: Vec<f64> = (i..i + len).map(f64::from_bits).collect();
                tx.send(&batch).unwrap();
            } else {
                let mut r = tx.reserve(len as usize).unwrap();
                for (k, x) in r.iter_mut().enumerate() {
                    *x = f64::from_bits(i + k as u64);
                }
                r.commit();
            }
            i += len;
        }
    });
    let mut expect = 0u64;
    loop {
        match rx.recv() {
            Ok(b) => {
                for x in b.iter() {
                    assert_eq!(x.to_bits(), expect);
                    expect += 1;
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(expect, n);
}

#[test]
fn works_for_other_pod_types() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(16))]
    struct Tick {
        price: f64,
        qty: u32,
        venue: u32,
    }
    let (mut tx, mut rx) = spsc::channel::<Tick>(10).unwrap();
    let t = Tick {
        price: 1.5,
        qty: 3,
        venue: 7,
    };
    tx.send(&[t, t]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[t, t]);

    let (mut tx, mut rx) = spsc::channel::<u8>(5).unwrap();
    assert!(tx.max_batch() >= 3);
    for len in 0..=tx.max_batch() {
        let b: Vec<u8> = (0..len as u8).collect();
        tx.send(&b).unwrap();
        assert_eq!(&*rx.recv().unwrap(), &b[..]);
    }
}

#[test]
fn bad_sizes_and_types_are_errors() {
    assert!(matches!(
        spsc::channel::<f64>(0),
        Err(shmbatch::Error::InvalidSize {
            what: "capacity",
            ..
        })
    ));
    assert!(matches!(
        spsc::channel::<f64>(usize::MAX),
        Err(shmbatch::Error::InvalidSize { .. })
    ));
    assert!(matches!(
        spsc::channel::<f64>(1 << 60),
        Err(shmbatch::Error::InvalidSize { .. })
    ));
    assert!(matches!(
        spsc::channel::<()>(8),
        Err(shmbatch::Error::UnsupportedType { .. })
    ));
}

#[test]
fn deadlines_bound_every_wait() {
    use std::time::Instant;
    let (mut tx, mut rx) = pair(8);
    let soon = || Instant::now() + Duration::from_millis(5);
    assert_eq!(
        rx.recv_deadline(soon()).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    let mut v = vec![1.0];
    assert_eq!(
        rx.recv_into_deadline(&mut v, Instant::now()).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert_eq!(v, [1.0], "untouched on timeout");
    let max = vec![3.0; tx.max_batch()];
    tx.send_deadline(&max, soon()).unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(20);
    assert_eq!(
        tx.send_deadline(&max, deadline).unwrap_err(),
        SendTimeoutError::Timeout
    );
    assert!(Instant::now() >= deadline);
    assert!(matches!(
        tx.reserve_deadline(max.len(), soon()),
        Err(SendTimeoutError::Timeout)
    ));
    assert_eq!(
        tx.send_deadline(&vec![0.0; max.len() + 1], soon())
            .unwrap_err(),
        SendTimeoutError::TooLarge {
            len: max.len() + 1,
            max: max.len()
        }
    );
    assert_eq!(rx.recv_deadline(soon()).unwrap().len(), max.len());
    let mut r = tx.reserve_deadline(2, soon()).unwrap();
    r.copy_from_slice(&[4.0, 5.0]);
    r.commit();
    assert_eq!(rx.recv_into_deadline(&mut v, soon()).unwrap(), 2);
    assert_eq!(v, [4.0, 5.0]);
    drop(rx);
    assert_eq!(
        tx.send_deadline(&[1.0], soon()).unwrap_err(),
        SendTimeoutError::Disconnected
    );
}

#[test]
fn a_deadline_in_the_past_still_takes_what_is_ready() {
    use std::time::Instant;
    let (mut tx, mut rx) = pair(8);
    let past = Instant::now();
    tx.send_deadline(&[1.0], past).unwrap();
    assert_eq!(&*rx.recv_deadline(past).unwrap(), &[1.0]);
}

#[test]
fn capacity_is_what_create_was_given() {
    for cap in [1, 2, 3, 7, 64, 1000, 4096, 4097] {
        let (tx, rx) = pair(cap);
        assert_eq!((tx.capacity(), rx.capacity()), (cap, cap));
    }
    let (tx, _rx) = spsc::channel::<u8>(5).unwrap();
    assert_eq!(tx.capacity(), 5);
}

#[test]
fn len_counts_batches_on_both_ends() {
    let (mut tx, mut rx) = pair(64);
    assert_eq!((tx.len(), rx.len()), (0, 0));
    assert!(tx.is_empty() && rx.is_empty());
    tx.send(&[1.0, 2.0]).unwrap();
    tx.send(&[]).unwrap();
    let mut r = tx.reserve(3).unwrap();
    r.fill(3.0);
    r.commit();
    drop(tx.reserve(1).unwrap()); // not committed: not counted
    assert_eq!((tx.len(), rx.len()), (3, 3));
    assert!(!tx.is_empty() && !rx.is_empty());
    let b = rx.recv().unwrap();
    assert_eq!(tx.len(), 3, "a batch being read still counts");
    drop(b);
    assert_eq!((tx.len(), rx.len()), (2, 2));
    let mut v = Vec::new();
    rx.recv_into(&mut v).unwrap();
    rx.try_recv_into(&mut v).unwrap();
    assert_eq!((tx.len(), rx.len()), (0, 0));
    assert!(tx.is_empty() && rx.is_empty());
}

#[test]
fn len_follows_a_wrapping_stream() {
    let (mut tx, mut rx) = pair(40);
    let max = tx.max_batch();
    let rounds = if cfg!(miri) { 40 } else { 1_000 };
    let mut waiting = 0;
    for round in 0..rounds {
        let len = (round * 5) % (max + 1);
        if tx.try_send(&vec![0.5; len]).is_ok() {
            waiting += 1;
        }
        if round % 3 == 0 && rx.try_recv().is_ok() {
            waiting -= 1;
        }
        assert_eq!((tx.len(), rx.len()), (waiting, waiting));
        assert_eq!(tx.is_empty(), waiting == 0);
        assert_eq!(rx.is_empty(), waiting == 0);
    }
}

#[test]
fn is_full_means_a_longest_batch_would_wait() {
    let (mut tx, mut rx) = pair(16);
    let max = vec![1.0; tx.max_batch()];
    assert!(!tx.is_full());
    tx.send(&max).unwrap();
    assert!(tx.is_full());
    assert_eq!(tx.try_send(&max).unwrap_err(), TrySendError::Full);
    drop(rx.recv().unwrap());
    assert!(!tx.is_full());
    // Short batches until even one element does not fit.
    while tx.try_send(&[2.0]).is_ok() {
        assert_eq!(tx.is_full(), tx.try_reserve(max.len()).is_err());
    }
    assert!(tx.is_full());
}

#[test]
fn iter_receives_until_the_sender_is_gone() {
    let (mut tx, mut rx) = pair(64);
    let n = if cfg!(miri) { 20 } else { 2_000 };
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(&[i as f64, -(i as f64)]).unwrap();
        }
    });
    let mut it = rx.iter();
    assert_eq!(it.error(), None);
    let mut count = 0;
    for (i, b) in it.by_ref().enumerate() {
        assert_eq!(b, [i as f64, -(i as f64)]);
        count += 1;
    }
    assert_eq!(count, n);
    assert_eq!(it.error(), Some(RecvError::Disconnected));
    assert_eq!(it.next(), None, "still the end");
    producer.join().unwrap();
}

#[test]
fn for_loops_over_a_receiver() {
    let (mut tx, mut rx) = pair(64);
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0, 3.0]).unwrap();
    drop(tx);
    let mut got = Vec::new();
    for b in &mut rx {
        got.push(b);
    }
    assert_eq!(got, [vec![1.0], vec![2.0, 3.0]]);
}

#[test]
fn try_iter_ends_when_empty_and_resumes() {
    let (mut tx, mut rx) = pair(64);
    tx.send(&[1.0]).unwrap();
    tx.send(&[]).unwrap();
    let mut it = rx.try_iter();
    assert_eq!(it.next(), Some(vec![1.0]));
    assert_eq!(it.next(), Some(vec![]));
    assert_eq!(it.next(), None);
    assert_eq!(it.error(), Some(TryRecvError::Empty));
    drop(it);
    tx.send(&[2.0]).unwrap();
    drop(tx);
    let mut it = rx.try_iter();
    assert_eq!(it.by_ref().collect::<Vec<_>>(), [vec![2.0]]);
    assert_eq!(it.error(), Some(TryRecvError::Disconnected));
}
