//! Hostile segments: arbitrary bytes are written to a shared-memory object, which
//! is then opened as an SPSC receiver and sender and driven a little. Every outcome
//! must be a value or an error: never a panic, an out-of-bounds access or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmbatch::spsc::{Receiver, Sender};

mod common;

fuzz_target!(|data: &[u8]| {
    let name = format!("shmbatch-fuzz-spsc-{}", std::process::id());
    common::write_segment(&name, data.to_vec());

    if let Ok(mut rx) = Receiver::<f64>::open(&name) {
        for _ in 0..4 {
            match rx.try_recv() {
                Ok(mut b) => common::touch(&mut b),
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
    let _ = shmbatch::remove_any(&name);
});
