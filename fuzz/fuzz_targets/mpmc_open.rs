//! Hostile MPMC segments: arbitrary bytes are written to a shared-memory object,
//! which is then opened as an MPMC receiver and sender and driven a little. Every
//! outcome must be a value or an error: never a panic, an out-of-bounds access or a
//! hang.
//!
//! Random bytes rarely make a header that passes validation, so when the first
//! input byte is even the target keeps the input's control block and slots but
//! puts a valid header (4 slots of up to 4 `f64`, taken from a real segment) in
//! front: then the fuzzer works on positions, stamps, lengths and peer words.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shmbatch::mpmc::{Receiver, Sender};

mod common;

/// Identity block, control block, and the data offset of an MPMC segment.
const IDENTITY: usize = 256;
const DATA_OFFSET: usize = 256 + 1024;

/// The bytes of a fresh, valid segment: 4 slots of up to 4 f64.
fn template() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let name = format!("shmbatch-fuzz-mpmc-template-{}", std::process::id());
        let _ = shmbatch::remove_any(&name);
        let tx = Sender::<f64>::create(&name, 4, 4).expect("template segment");
        let bytes = std::fs::read(format!("/dev/shm/{name}")).expect("template bytes");
        drop(tx);
        bytes
    })
}

fuzz_target!(|data: &[u8]| {
    let name = format!("shmbatch-fuzz-mpmc-{}", std::process::id());
    let bytes = if data.first().is_some_and(|b| b % 2 == 0) {
        // A valid header over the input's control block and slots.
        let t = template();
        let mut b = t.to_vec();
        for (dst, src) in b[IDENTITY..].iter_mut().zip(&data[1..]) {
            *dst = *src;
        }
        debug_assert!(b.len() > DATA_OFFSET);
        b
    } else {
        data.to_vec()
    };
    common::write_segment(&name, bytes);

    if let Ok(rx) = Receiver::<f64>::open(&name) {
        for _ in 0..4 {
            // Every look may recover slots whose (hostile) claim words name dead
            // or absent holders.
            rx.check_peers_next();
            match rx.try_recv() {
                Ok(mut b) => common::touch(&mut b),
                Err(_) => break,
            }
        }
        let mut v = Vec::new();
        let _ = rx.recv_into_timeout(&mut v, Duration::ZERO);
        let _ = rx.is_empty();
        let _ = rx.is_disconnected();
    }
    if let Ok(tx) = Sender::<f64>::open(&name) {
        tx.check_peers_next();
        let _ = tx.try_send(&[1.0, 2.0, 3.0]);
        tx.check_peers_next();
        if let Ok(mut r) = tx.try_reserve(2) {
            r.fill(4.0);
            r.commit();
        }
        // A cancelled reservation publishes a skipped slot.
        drop(tx.try_reserve(1));
        let _ = tx.send_timeout(&[5.0], Duration::ZERO);
        let _ = tx.is_disconnected();
    }
    let _ = shmbatch::remove_any(&name);
});
