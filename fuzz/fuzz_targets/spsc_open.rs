//! Hostile segments: arbitrary bytes are written to a shared-memory object, which
//! is then opened as an SPSC receiver and sender and driven a little. Every outcome
//! must be a value or an error: never a panic, an out-of-bounds access or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbatch::spsc::{Receiver, Sender};

/// `init` word (offset 16) value of a published header; set so that `open` does
/// not wait for a creator (the unpublished case is covered by unit tests).
const READY: [u8; 4] = *b"REDY";

fuzz_target!(|data: &[u8]| {
    let name = format!("shmbatch-fuzz-spsc-{}", std::process::id());
    let mut bytes = data.to_vec();
    if bytes.len() < 256 {
        bytes.resize(256, 0);
    }
    bytes[16..20].copy_from_slice(&READY);
    std::fs::write(format!("/dev/shm/{name}"), &bytes).unwrap();

    if let Ok(mut rx) = Receiver::<f64>::open(&name) {
        for _ in 0..4 {
            match rx.try_recv() {
                Ok(mut b) => {
                    let _ = b.iter().map(|x| x.to_bits()).sum::<u64>();
                    if let Some(x) = b.first_mut() {
                        *x = 1.0;
                    }
                }
                Err(_) => break,
            }
        }
    }
    if let Ok(mut tx) = Sender::<f64>::open(&name) {
        let _ = tx.try_send(&[1.0, 2.0, 3.0]);
        if let Ok(mut r) = tx.try_reserve(2) {
            r.fill(4.0);
            r.commit();
        }
    }
    let _ = shmbatch::remove(&name);
});
