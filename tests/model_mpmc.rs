//! Property test: random single-threaded operation sequences on the MPMC queue,
//! through several cloned senders and receivers, checked against a model — a
//! `VecDeque` of at most `slots` entries, where a cancelled reservation is an entry
//! that takes a slot until a receiver steps over it.

use std::collections::VecDeque;

use proptest::prelude::*;
use shmbatch::mpmc::{self, Receiver, Sender};
use shmbatch::{TryRecvError, TrySendError};

#[derive(Debug, Clone)]
enum Op {
    Send {
        h: usize,
        len: usize,
    },
    Reserve {
        h: usize,
        len: usize,
        keep: usize,
        commit: bool,
    },
    Recv {
        h: usize,
        modify: bool,
    },
    RecvInto {
        h: usize,
    },
    CloneSender(usize),
    DropSender(usize),
    CloneReceiver(usize),
    DropReceiver(usize),
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    let h = 0..4usize;
    prop_oneof![
        6 => (h.clone(), 0..=max + 1).prop_map(|(h, len)| Op::Send { h, len }),
        3 => (h.clone(), 0..=max + 1, 0..=max, any::<bool>())
            .prop_map(|(h, len, keep, commit)| Op::Reserve { h, len, keep, commit }),
        6 => (h.clone(), any::<bool>()).prop_map(|(h, modify)| Op::Recv { h, modify }),
        2 => h.clone().prop_map(|h| Op::RecvInto { h }),
        1 => h.clone().prop_map(Op::CloneSender),
        1 => h.clone().prop_map(Op::DropSender),
        1 => h.clone().prop_map(Op::CloneReceiver),
        1 => h.prop_map(Op::DropReceiver),
    ]
}

/// The queue's state: committed batches (`Some`) and skipped slots (`None`).
struct Model {
    slots: usize,
    max: usize,
    queue: VecDeque<Option<Vec<f64>>>,
}

impl Model {
    fn full(&self) -> bool {
        self.queue.len() == self.slots
    }
    /// What a receive returns: skipped slots at the head are stepped over.
    fn pop(&mut self) -> Option<Vec<f64>> {
        while let Some(front) = self.queue.pop_front() {
            if front.is_some() {
                return front;
            }
        }
        None
    }
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 512 }))]

    #[test]
    fn queue_matches_the_model(
        slots in 1usize..6,
        max in 1usize..6,
        ops in prop::collection::vec(op(5), 1..150),
    ) {
        let (tx, rx) = mpmc::channel::<f64>(slots, max).unwrap();
        let mut txs: Vec<Sender<f64>> = vec![tx];
        let mut rxs: Vec<Receiver<f64>> = vec![rx];
        let mut m = Model { slots, max, queue: VecDeque::new() };
        let mut counter = 0u64;
        let mut next = |len: usize| -> Vec<f64> {
            (0..len).map(|_| { counter += 1; f64::from_bits(counter.wrapping_mul(0x9E37_79B9_7F4A_7C15)) }).collect()
        };
        let mut buf = Vec::new();
        for op in ops {
            let (nt, nr) = (txs.len(), rxs.len());
            match op {
                Op::Send { h, len } => {
                    let Some(tx) = txs.get_mut(h % nt.max(1)) else { continue };
                    let batch = next(len);
                    let r = tx.try_send(&batch);
                    if len > m.max {
                        prop_assert_eq!(r, Err(TrySendError::TooLarge { len, max: m.max }));
                    } else if nr == 0 {
                        prop_assert_eq!(r, Err(TrySendError::Disconnected));
                    } else if m.full() {
                        prop_assert_eq!(r, Err(TrySendError::Full));
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        m.queue.push_back(Some(batch));
                    }
                }
                Op::Reserve { h, len, keep, commit } => {
                    let Some(tx) = txs.get_mut(h % nt.max(1)) else { continue };
                    let batch = next(len);
                    match tx.try_reserve(len) {
                        Ok(mut r) => {
                            prop_assert!(len <= m.max && nr > 0 && !m.full());
                            prop_assert_eq!(r.len(), len);
                            r.copy_from_slice(&batch);
                            r.truncate(keep);
                            let kept = len.min(keep);
                            prop_assert_eq!(r.len(), kept);
                            if commit {
                                r.commit();
                                m.queue.push_back(Some(batch[..kept].to_vec()));
                            } else {
                                drop(r);
                                m.queue.push_back(None);
                            }
                        }
                        Err(TrySendError::TooLarge { .. }) => prop_assert!(len > m.max),
                        Err(TrySendError::Disconnected) => prop_assert!(len <= m.max && nr == 0),
                        Err(TrySendError::Full) => prop_assert!(len <= m.max && nr > 0 && m.full()),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Recv { h, modify } => {
                    let Some(rx) = rxs.get_mut(h % nr.max(1)) else { continue };
                    let want = m.pop();
                    match rx.try_recv() {
                        Ok(mut b) => {
                            prop_assert_eq!(Some(bits(&b)), want.as_deref().map(bits));
                            if modify {
                                b.iter_mut().for_each(|x| *x = -*x);
                            }
                        }
                        Err(TryRecvError::Empty) => prop_assert!(want.is_none() && nt > 0),
                        Err(TryRecvError::Disconnected) => prop_assert!(want.is_none() && nt == 0),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::RecvInto { h } => {
                    let Some(rx) = rxs.get_mut(h % nr.max(1)) else { continue };
                    let want = m.pop();
                    match rx.try_recv_into(&mut buf) {
                        Ok(n) => {
                            let want = want.unwrap();
                            prop_assert_eq!(n, want.len());
                            prop_assert_eq!(bits(&buf), bits(&want));
                        }
                        Err(TryRecvError::Empty) => prop_assert!(want.is_none() && nt > 0),
                        Err(TryRecvError::Disconnected) => prop_assert!(want.is_none() && nt == 0),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::CloneSender(h) => {
                    if let Some(tx) = txs.get(h % nt.max(1)) {
                        txs.push(tx.clone());
                    }
                }
                Op::DropSender(h) => {
                    if nt > 0 {
                        txs.swap_remove(h % nt);
                    }
                }
                Op::CloneReceiver(h) => {
                    if let Some(rx) = rxs.get(h % nr.max(1)) {
                        rxs.push(rx.clone());
                    }
                }
                Op::DropReceiver(h) => {
                    if nr > 0 {
                        rxs.swap_remove(h % nr);
                    }
                }
            }
            if let Some(rx) = rxs.first() {
                prop_assert_eq!(rx.is_empty(), m.queue.is_empty());
                prop_assert_eq!(rx.is_disconnected(), txs.is_empty());
            }
            if let Some(tx) = txs.first() {
                prop_assert_eq!(tx.is_disconnected(), rxs.is_empty());
            }
        }
    }
}
