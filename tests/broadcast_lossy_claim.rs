//! Lossy broadcast: a reservation that was filled and then dropped or truncated
//! must not let the publisher's `claim` move back below the bytes it wrote.
//!
//! Found by the proptest model (`tests/model_broadcast.rs`) against an earlier
//! publisher that stored every claim's end, also one below the previous claim:
//! after a filled reservation was dropped or truncated, the next shorter claim
//! lowered `claim` under bytes the reservation wrote, and a subscriber whose
//! record lay in between passed the seqlock check on overwritten bytes. The
//! claim now only grows (`Pub::announce`, src/broadcast/writer.rs), and a lossy
//! reservation is staged and copied in only at commit.

use shmbatch::broadcast::{self, Policy, Start, TryRecvError};
use shmbatch::Options;

fn lossy() -> Options {
    Options::new().broadcast_policy(Policy::Lossy)
}

/// Capacity 9 of `u64`: a log of 128 bytes, batches of up to 6 elements; a record
/// is 16 bytes of header plus the elements rounded up to 16.
#[test]
fn dropped_filled_reservation_then_a_send_laps_the_subscriber() {
    let (mut tx, mut rx) = broadcast::channel_with::<u64>(9, &lossy()).unwrap();
    tx.send(&[1]).unwrap(); // batch 0 at 0..32
    tx.send(&[2]).unwrap(); // batch 1 at 32..64
    tx.send(&[]).unwrap(); // batch 2 at 64..80
                           // 64 bytes do not fit before the end (80 + 64 > 128): the record goes to
                           // offset 0, and its elements overwrite batch 0's element and batch 1's header.
    let mut r = tx.reserve(5).unwrap();
    r.copy_from_slice(&[99; 5]);
    drop(r); // nothing published; the bytes are written
    tx.send(&[]).unwrap(); // batch 3 at 80..96: a claim ending at 112 < 128 + 16
    let mut v = Vec::new();
    // Batches 0, 1, 2 were overwritten or lie before the oldest batch kept.
    let r = rx.try_recv_into(&mut v);
    assert_eq!(
        r,
        Err(TryRecvError::Lagged { missed: 3 }),
        "received {v:?} from an overwritten record"
    );
    assert_eq!(rx.try_recv_into(&mut v), Ok(0)); // batch 3
}

/// Capacity 24 of `u64`: a log of 224 bytes, batches of up to 12 elements.
#[test]
fn truncated_filled_reservation_then_a_send_laps_the_subscriber() {
    let (mut tx, _first) = broadcast::channel_with::<u64>(24, &lossy()).unwrap();
    tx.send(&[0; 8]).unwrap(); // batch 0 at 0..80
    let mut rx = tx.subscribe(Start::Next).unwrap(); // at 80
    tx.send(&[1; 12]).unwrap(); // batch 1 at 80..192
    tx.send(&[2; 2]).unwrap(); // batch 2 at 192..224
    tx.send(&[3; 2]).unwrap(); // batch 3 at 224..256 (offset 0)
                               // A record of 112 bytes at 256 (offset 32), its elements at 272..368, over
                               // batch 1's header (304 = offset 80); then truncated to nothing.
    let mut r = tx.reserve(12).unwrap();
    r.copy_from_slice(&[99; 12]);
    r.truncate(0);
    r.commit(); // batch 4 at 256..272
    tx.send(&[]).unwrap(); // batch 5 at 272..288: a claim ending at 304 = 80 + 224
    let mut v = Vec::new();
    // Batch 1 was overwritten; the oldest batch kept is batch 2 (at 192).
    let r = rx.try_recv_into(&mut v);
    assert_eq!(
        r,
        Err(TryRecvError::Lagged { missed: 1 }),
        "got {v:?} for an overwritten batch 1"
    );
    assert_eq!(rx.try_recv_into(&mut v), Ok(2));
    assert_eq!(v, [2, 2]);
}
