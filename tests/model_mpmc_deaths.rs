//! Property test: random single-threaded operation sequences on the MPMC queue in
//! which handles die holding a reservation or a batch (`simulate_death`), or right
//! after their claim CAS (`simulate_death_claiming`, `_taking`), checked
//! against a model: a `VecDeque` of committed batches and dead reservations (which
//! take a slot until a receiver steps over them), and the set of batches that dead
//! receivers held, which must each be delivered again exactly once. Every
//! operation asks for the liveness check first (`check_peers_next`), which a real
//! queue makes at least every 20 ms on its slow path.

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
    Recv {
        h: usize,
    },
    /// A new attachment reserves and dies holding the reservation.
    ReserveDie {
        h: usize,
        len: usize,
    },
    /// A new attachment receives and dies holding the batch.
    RecvDie {
        h: usize,
    },
    /// A new attachment dies right after its claim CAS, before it wrote its
    /// claim word.
    ClaimDie {
        h: usize,
        len: usize,
    },
    /// A new attachment dies right after it took a batch, before it wrote its
    /// claim word.
    TakeDie {
        h: usize,
    },
    CloneSender(usize),
    CloneReceiver(usize),
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    let h = 0..3usize;
    prop_oneof![
        6 => (h.clone(), 1..=max).prop_map(|(h, len)| Op::Send { h, len }),
        6 => h.clone().prop_map(|h| Op::Recv { h }),
        1 => (h.clone(), 1..=max).prop_map(|(h, len)| Op::ReserveDie { h, len }),
        1 => h.clone().prop_map(|h| Op::RecvDie { h }),
        1 => (h.clone(), 1..=max).prop_map(|(h, len)| Op::ClaimDie { h, len }),
        1 => h.clone().prop_map(|h| Op::TakeDie { h }),
        1 => h.clone().prop_map(Op::CloneSender),
        1 => h.prop_map(Op::CloneReceiver),
    ]
}

struct Model {
    slots: usize,
    /// Committed batches (`Some`) and dead reservations (`None`), in claim order.
    queue: VecDeque<Option<Vec<u64>>>,
    /// Batches dead receivers held: each comes back once, in any order.
    limbo: Vec<Vec<u64>>,
}

impl Model {
    /// An upper bound of the slots in use (a dead reservation may already have
    /// been stepped over).
    fn used(&self) -> usize {
        self.queue.len() + self.limbo.len()
    }
    fn nothing_to_deliver(&self) -> bool {
        self.limbo.is_empty() && self.queue.iter().all(Option::is_none)
    }
    /// Account for a received batch: the next committed one in order, or one a dead
    /// receiver held.
    fn delivered(&mut self, got: Vec<u64>) -> Result<(), TestCaseError> {
        if let Some(i) = self.limbo.iter().position(|b| *b == got) {
            self.limbo.swap_remove(i);
            return Ok(());
        }
        while let Some(front) = self.queue.pop_front() {
            if let Some(b) = front {
                prop_assert_eq!(b, got, "out of order");
                return Ok(());
            }
        }
        prop_assert!(false, "delivered a batch nobody sent: {:?}", got);
        Ok(())
    }
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    #[test]
    fn deaths_lose_and_duplicate_nothing(
        slots in 1usize..5,
        ops in prop::collection::vec(op(3), 1..120),
    ) {
        let (tx, rx) = mpmc::channel::<f64>(slots, 3).unwrap();
        let mut txs: Vec<Sender<f64>> = vec![tx];
        let mut rxs: Vec<Receiver<f64>> = vec![rx];
        let mut m = Model { slots, queue: VecDeque::new(), limbo: Vec::new() };
        let mut counter = 0u64;
        let mut next = |len: usize| -> Vec<f64> {
            (0..len).map(|_| { counter += 1; f64::from_bits(counter) }).collect()
        };
        for op in ops {
            let (nt, nr) = (txs.len(), rxs.len());
            match op {
                Op::Send { h, len } => {
                    let tx = &mut txs[h % nt];
                    let batch = next(len);
                    tx.check_peers_next();
                    match tx.try_send(&batch) {
                        Ok(()) => m.queue.push_back(Some(bits(&batch))),
                        Err(TrySendError::Full) => prop_assert!(m.used() >= m.slots),
                        Err(e) => prop_assert!(false, "send: {e}"),
                    }
                }
                Op::Recv { h } => {
                    let rx = &mut rxs[h % nr];
                    rx.check_peers_next();
                    match rx.try_recv() {
                        Ok(b) => m.delivered(bits(&b))?,
                        Err(TryRecvError::Empty) => prop_assert!(m.nothing_to_deliver()),
                        Err(e) => prop_assert!(false, "recv: {e}"),
                    }
                }
                Op::ReserveDie { h, len } => {
                    let dying = txs[h % nt].attach_again().unwrap();
                    dying.check_peers_next();
                    match dying.try_reserve(len) {
                        Ok(r) => {
                            r.simulate_death();
                            m.queue.push_back(None);
                        }
                        Err(TrySendError::Full) => prop_assert!(m.used() >= m.slots),
                        Err(e) => prop_assert!(false, "reserve: {e}"),
                    };
                }
                Op::RecvDie { h } => {
                    let dying = rxs[h % nr].attach_again().unwrap();
                    dying.check_peers_next();
                    match dying.try_recv() {
                        Ok(b) => {
                            let got = bits(&b);
                            m.delivered(got.clone())?;
                            b.simulate_death();
                            m.limbo.push(got);
                        }
                        Err(TryRecvError::Empty) => prop_assert!(m.nothing_to_deliver()),
                        Err(e) => prop_assert!(false, "recv: {e}"),
                    };
                }
                Op::ClaimDie { h, len } => {
                    let dying = txs[h % nt].attach_again().unwrap();
                    dying.check_peers_next();
                    match dying.simulate_death_claiming(len) {
                        Ok(()) => m.queue.push_back(None),
                        Err(TrySendError::Full) => prop_assert!(m.used() >= m.slots),
                        Err(e) => prop_assert!(false, "claim: {e}"),
                    };
                }
                Op::TakeDie { h } => {
                    let dying = rxs[h % nr].attach_again().unwrap();
                    dying.check_peers_next();
                    match dying.simulate_death_taking() {
                        Ok(b) => {
                            let got = bits(&b);
                            m.delivered(got.clone())?;
                            m.limbo.push(got);
                        }
                        Err(TryRecvError::Empty) => prop_assert!(m.nothing_to_deliver()),
                        Err(e) => prop_assert!(false, "take: {e}"),
                    };
                }
                Op::CloneSender(h) => txs.push(txs[h % nt].clone()),
                Op::CloneReceiver(h) => rxs.push(rxs[h % nr].clone()),
            }
        }
        // Every sender leaves: everything committed, the dead receivers' batches
        // included, is delivered, and then Disconnected.
        txs.clear();
        let rx = &mut rxs[0];
        loop {
            rx.check_peers_next();
            match rx.try_recv() {
                Ok(b) => m.delivered(bits(&b))?,
                Err(TryRecvError::Disconnected) => break,
                Err(e) => prop_assert!(false, "drain: {e}"),
            }
        }
        prop_assert!(m.nothing_to_deliver(), "left undelivered: {:?} {:?}", m.queue, m.limbo);
    }
}
