//! Broadcast segments damaged by a hostile peer must give errors, never panics.
//!
//! The subscriber adds the log's length to positions it read from the
//! publisher's line (`tail`, `oldest`) without bounding them first, so a
//! position near `u64::MAX` overflows (a panic wherever overflow checks are on:
//! debug builds, tests, the fuzz target `broadcast_open`, which found the first):
//! - joining: `Sub::settle`, `claim > pos + ring` (src/broadcast/log.rs:679),
//!   with `tail` (`Start::Next`) or `oldest` (`Start::Oldest`) near `u64::MAX`;
//! - catching up (lossy): `Sub::catch_up` calls `claim_ok(oldest)`, whose
//!   `pos + ring` (src/broadcast/log.rs:792) overflows for such an `oldest`.
//!
//! These tests fail (panic) until that is fixed.
#![cfg(not(miri))]

use std::fs::File;
use std::os::unix::fs::FileExt;

use shmbatch::broadcast::{Policy, Publisher, Start, Subscriber};
use shmbatch::layout::CONTROL_OFFSET;
use shmbatch::Options;

/// Word `i` of the publisher's line (0 tail, 1 seq, 2 claim, 3 oldest): its
/// offset in the segment.
fn publisher_word(i: u64) -> u64 {
    CONTROL_OFFSET as u64 + 8 * i
}

/// A position near the top of the range, a multiple of 16 as positions are.
const HUGE: u64 = u64::MAX - 15;

fn file(name: &str) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap()
}

#[test]
fn joining_at_a_huge_tail_or_oldest_is_an_error() {
    for (word, start) in [(0, Start::Next), (3, Start::Oldest)] {
        let name = format!("shmbatch-test-bcast-hostile-{}-{word}", std::process::id());
        let _tx = Publisher::<f64>::create(&name, 16).unwrap();
        let f = file(&name);
        // tail, and oldest <= tail
        for w in [0, word] {
            f.write_all_at(&HUGE.to_le_bytes(), publisher_word(w))
                .unwrap();
        }
        let r = Subscriber::<f64>::open_with(&name, &Options::new().start(start));
        assert!(r.is_err(), "{start:?}: joined a damaged log");
    }
}

#[test]
fn catching_up_to_a_huge_oldest_is_an_error() {
    let name = format!("shmbatch-test-bcast-hostile-{}-lossy", std::process::id());
    let opts = Options::new().broadcast_policy(Policy::Lossy);
    let _tx = Publisher::<f64>::create_with(&name, 16, &opts).unwrap();
    let mut rx = Subscriber::<f64>::open(&name).unwrap();
    let f = file(&name);
    // tail, claim (the subscriber is lapped), oldest
    for w in [0, 2, 3] {
        f.write_all_at(&HUGE.to_le_bytes(), publisher_word(w))
            .unwrap();
    }
    let mut v = Vec::new();
    let r = rx.try_recv_into(&mut v);
    assert!(r.is_err(), "received {v:?} from a damaged log");
}
