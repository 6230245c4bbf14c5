//! Property test: random single-threaded operation sequences on the SPSC ring,
//! checked against a simple model — a `VecDeque<Vec<f64>>` plus the byte accounting
//! that defines when the ring is full (records of `8 + 8 * len` bytes; a record
//! that does not fit before the end wastes the rest of the ring and starts at 0;
//! the 8 bytes after the last record stay free for the empty header), and the
//! counts (`len`, `is_empty`, `is_full`) after every operation.

use std::collections::VecDeque;

use proptest::prelude::*;
use shmbatch::spsc;
use shmbatch::{TryRecvError, TrySendError};

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    Reserve {
        len: usize,
        keep: usize,
        commit: bool,
    },
    Recv {
        modify: bool,
    },
    RecvInto,
    DropSender,
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..=max + 2).prop_map(Op::Send),
        2 => (0..=max + 1, 0..=max, any::<bool>())
            .prop_map(|(len, keep, commit)| Op::Reserve { len, keep, commit }),
        4 => any::<bool>().prop_map(|modify| Op::Recv { modify }),
        2 => Just(Op::RecvInto),
        1 => Just(Op::DropSender),
    ]
}

/// The model of the ring's state.
struct Model {
    ring: usize,
    max: usize,
    queue: VecDeque<(Vec<f64>, usize)>,
    used: usize,
    off: usize,
    connected: bool,
}

impl Model {
    fn record(len: usize) -> usize {
        8 + 8 * len
    }
    /// Bytes a batch of `len` would take now, and its new write offset.
    fn need(&self, len: usize) -> (usize, usize) {
        self.need_reserved(len, len)
    }
    /// The same for a batch committed with `len` elements from a reservation of
    /// `reserved`: whether it wraps was decided when it was reserved.
    fn need_reserved(&self, reserved: usize, len: usize) -> (usize, usize) {
        let rec = Self::record(len);
        if self.off + Self::record(reserved) <= self.ring {
            (rec, (self.off + rec) % self.ring)
        } else {
            (self.ring - self.off + rec, rec % self.ring)
        }
    }
    fn fits(&self, len: usize) -> bool {
        self.used + self.need(len).0 + 8 <= self.ring
    }
    fn push(&mut self, batch: Vec<f64>) {
        self.push_reserved(batch.len(), batch);
    }
    fn push_reserved(&mut self, reserved: usize, batch: Vec<f64>) {
        let (need, off) = self.need_reserved(reserved, batch.len());
        self.used += need;
        self.off = off;
        self.queue.push_back((batch, need));
    }
    fn pop(&mut self) -> Option<Vec<f64>> {
        let (b, need) = self.queue.pop_front()?;
        self.used -= need;
        Some(b)
    }
}

/// Ring bytes of a queue of `capacity` f64, as the module docs give them
/// ("Capacity"): two records of `ceil(capacity / 2)` elements.
fn ring_bytes(capacity: usize) -> usize {
    2 * (8 + 8 * capacity.div_ceil(2))
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 512 }))]

    #[test]
    fn ring_matches_the_model(capacity in 1usize..48, ops in prop::collection::vec(op(24), 1..120)) {
        let (tx, mut rx) = spsc::channel::<f64>(capacity).unwrap();
        let mut tx = Some(tx);
        let max = tx.as_ref().unwrap().max_batch();
        let mut m = Model {
            ring: ring_bytes(capacity),
            max,
            queue: VecDeque::new(),
            used: 0,
            off: 0,
            connected: true,
        };
        let mut counter = 0u64;
        let mut next = |len: usize| -> Vec<f64> {
            (0..len).map(|_| { counter += 1; f64::from_bits(counter.wrapping_mul(0x9E37_79B9_7F4A_7C15)) }).collect()
        };
        let mut buf = Vec::new();
        for op in ops {
            match op {
                Op::Send(len) => {
                    let Some(tx) = tx.as_mut() else { continue };
                    let batch = next(len);
                    let r = tx.try_send(&batch);
                    if len > m.max {
                        prop_assert_eq!(r, Err(TrySendError::TooLarge { len, max: m.max }));
                    } else if m.fits(len) {
                        prop_assert_eq!(r, Ok(()));
                        m.push(batch);
                    } else {
                        prop_assert_eq!(r, Err(TrySendError::Full));
                    }
                }
                Op::Reserve { len, keep, commit } => {
                    let Some(tx) = tx.as_mut() else { continue };
                    let batch = next(len);
                    match tx.try_reserve(len) {
                        Ok(mut r) => {
                            prop_assert!(len <= m.max && m.fits(len));
                            prop_assert_eq!(r.len(), len);
                            r.copy_from_slice(&batch);
                            r.truncate(keep);
                            let kept = len.min(keep);
                            prop_assert_eq!(r.len(), kept);
                            if commit {
                                r.commit();
                                m.push_reserved(len, batch[..kept].to_vec());
                            }
                        }
                        Err(TrySendError::TooLarge { .. }) => prop_assert!(len > m.max),
                        Err(TrySendError::Full) => prop_assert!(len <= m.max && !m.fits(len)),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Recv { modify } => match rx.try_recv() {
                    Ok(mut b) => {
                        let want = m.pop();
                        prop_assert_eq!(Some(bits(&b)), want.as_deref().map(bits));
                        if modify {
                            b.iter_mut().for_each(|x| *x = -*x);
                        }
                    }
                    Err(TryRecvError::Empty) => prop_assert!(m.queue.is_empty() && m.connected),
                    Err(TryRecvError::Disconnected) => prop_assert!(m.queue.is_empty() && !m.connected),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                Op::RecvInto => match rx.try_recv_into(&mut buf) {
                    Ok(n) => {
                        let want = m.pop().unwrap();
                        prop_assert_eq!(n, want.len());
                        prop_assert_eq!(bits(&buf), bits(&want));
                    }
                    Err(TryRecvError::Empty) => prop_assert!(m.queue.is_empty() && m.connected),
                    Err(TryRecvError::Disconnected) => prop_assert!(m.queue.is_empty() && !m.connected),
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                Op::DropSender => {
                    tx = None;
                    m.connected = false;
                }
            }
            prop_assert_eq!(rx.is_empty(), m.queue.is_empty());
            prop_assert_eq!(rx.len(), m.queue.len());
            if let Some(tx) = tx.as_ref() {
                prop_assert_eq!(tx.len(), m.queue.len());
                prop_assert_eq!(tx.is_empty(), m.queue.is_empty());
                prop_assert_eq!(tx.is_full(), !m.fits(m.max));
            }
        }
    }
}
