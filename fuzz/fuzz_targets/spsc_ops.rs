//! Random operation sequences on an SPSC ring: whatever the sequence, batches come
//! out whole, in order, exactly as they went in, and both ends count them right
//! (checked against a FIFO model).
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmbatch::{spsc, TryRecvError, TrySendError};

#[derive(Arbitrary, Debug)]
enum Op {
    Send(u8),
    Reserve { len: u8, keep: u8, commit: bool },
    Recv { modify: bool },
    RecvInto,
    DropSender,
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let Ok((tx, mut rx)) = spsc::channel::<u64>(input.capacity as usize) else {
        assert_eq!(input.capacity, 0);
        return;
    };
    let mut tx = Some(tx);
    let mut model: VecDeque<Vec<u64>> = VecDeque::new();
    let mut counter = 0u64;
    let mut buf = Vec::new();
    for op in input.ops {
        match op {
            Op::Send(len) => {
                let Some(tx) = tx.as_mut() else { continue };
                let batch: Vec<u64> = (0..len)
                    .map(|_| {
                        counter += 1;
                        counter
                    })
                    .collect();
                match tx.try_send(&batch) {
                    Ok(()) => model.push_back(batch),
                    Err(TrySendError::Full) => {}
                    Err(TrySendError::TooLarge { len: l, max }) => assert!(l > max),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Reserve { len, keep, commit } => {
                let Some(tx) = tx.as_mut() else { continue };
                if let Ok(mut r) = tx.try_reserve(len as usize) {
                    for x in r.iter_mut() {
                        counter += 1;
                        *x = counter;
                    }
                    r.truncate(keep as usize);
                    if commit {
                        model.push_back(r.to_vec());
                        r.commit();
                    }
                }
            }
            Op::Recv { modify } => match rx.try_recv() {
                Ok(mut b) => {
                    assert_eq!(Some(&b.to_vec()), model.front());
                    model.pop_front();
                    if modify {
                        b.fill(0);
                    }
                }
                Err(TryRecvError::Empty) => assert!(model.is_empty() && tx.is_some()),
                Err(TryRecvError::Disconnected) => assert!(model.is_empty() && tx.is_none()),
                Err(e) => panic!("{e}"),
            },
            Op::RecvInto => match rx.try_recv_into(&mut buf) {
                Ok(_) => assert_eq!(Some(buf.clone()), model.pop_front()),
                Err(TryRecvError::Empty) => assert!(model.is_empty() && tx.is_some()),
                Err(TryRecvError::Disconnected) => assert!(model.is_empty() && tx.is_none()),
                Err(e) => panic!("{e}"),
            },
            Op::DropSender => tx = None,
        }
        assert_eq!(rx.len(), model.len());
        assert_eq!(rx.is_empty(), model.is_empty());
        if let Some(tx) = tx.as_ref() {
            assert_eq!(tx.len(), model.len());
            assert_eq!(tx.is_empty(), model.is_empty());
        }
    }
});
