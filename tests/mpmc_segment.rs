//! The MPMC queue in real shared memory: naming, attachment, and segments that are
//! damaged or hostile. Every test uses a unique name and leaves nothing in /dev/shm.

use std::time::Duration;

mod common;
use common::{path, peek_u64, poke, unique, Cleanup};

use shmbatch::mpmc::{Receiver, Sender};
use shmbatch::{spsc, Error, Kind, RecvTimeoutError, TryRecvError, TrySendError};

// Offsets of the documented wire format (src/layout/mod.rs, src/mpmc/wire.rs, src/peers.rs).
const VERSION: u64 = 8;
const CAPACITY: u64 = 40;
const MAX_BATCH: u64 = 48;
const STRIDE: u64 = 56;
const DATA_LEN: u64 = 72;
const TAIL: u64 = 256;
const HEAD: u64 = 256 + 128;
const SENDERS: u64 = 256 + 3 * 128;
const RECEIVERS: u64 = SENDERS + 8;
const ENTRIES: u64 = 256 + 4 * 128;
const DATA: u64 = 256 + 8 * 128;
const SLOT_LEN: u64 = 8;

/// An attachment-table entry (src/peers.rs): `ProcId::pack() << 10 | generation <<
/// 2 | role code`, where `ProcId::pack()` is `start_time << 22 | pid`.
fn entry(pid: u64, start: u64, role: u64) -> u64 {
    (start << 22 | pid) << 10 | 1 << 2 | role
}

/// The start time of process `pid` (field 22 of /proc/PID/stat), low 32 bits.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let start: u64 = rest.split_whitespace().nth(19).unwrap().parse().unwrap();
    start & u64::from(u32::MAX)
}

/// Slots of 4 f64 take 64 bytes each: header 32, payload 32.
const STRIDE_4: u64 = 64;

/// A persisted segment of 4 slots of 4 f64 with no attached handles, to be damaged.
fn persisted(tag: &str) -> (String, Cleanup) {
    let name = unique(tag);
    let tx = Sender::<f64>::create(&name, 4, 4).unwrap();
    tx.persist();
    drop(tx);
    (name.clone(), Cleanup(name))
}

fn corrupted<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Corrupted(why)) => why,
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn many_handles_open_one_queue_by_name() {
    let name = unique("open");
    let tx = Sender::<f64>::create(&name, 8, 4).unwrap();
    let tx2 = Sender::<f64>::open(&format!("/{name}")).unwrap();
    let rx = Receiver::<f64>::open(&name).unwrap();
    let rx2 = Receiver::<f64>::open(&name).unwrap();
    assert_eq!(tx2.name(), Some(name.as_str()));
    assert_eq!((rx.capacity(), rx.max_batch()), (8, 4));
    tx.send(&[1.0]).unwrap();
    tx2.send(&[2.0, 3.0]).unwrap();
    assert_eq!(&*rx2.recv().unwrap(), &[1.0]);
    assert_eq!(&*rx.recv().unwrap(), &[2.0, 3.0]);
    drop(tx2);
    drop(tx);
    assert!(!path(&name).exists(), "the creator unlinks on drop");
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    assert_eq!(rx2.try_recv().unwrap_err(), TryRecvError::Disconnected);
}

#[test]
fn receivers_wait_for_the_first_sender() {
    let name = unique("first");
    let _c = Cleanup(name.clone());
    let rx = Receiver::<f64>::create(&name, 2, 2).unwrap();
    // No sender has attached yet: empty, not disconnected.
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert!(!rx.is_disconnected());
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(5)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    let tx = Sender::<f64>::open(&name).unwrap();
    tx.send(&[5.0]).unwrap();
    drop(tx);
    assert_eq!(&*rx.recv().unwrap(), &[5.0]);
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);
    // A new sender resumes the queue.
    let tx = Sender::<f64>::open(&name).unwrap();
    tx.send(&[6.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[6.0]);
}

#[test]
fn senders_wait_for_the_first_receiver() {
    let name = unique("firstrx");
    let _c = Cleanup(name.clone());
    let tx = Sender::<f64>::create(&name, 1, 1).unwrap();
    tx.try_send(&[1.0]).unwrap();
    assert_eq!(tx.try_send(&[2.0]).unwrap_err(), TrySendError::Full);
    assert!(!tx.is_disconnected());
    let rx = Receiver::<f64>::open(&name).unwrap();
    drop(rx);
    assert_eq!(tx.try_send(&[2.0]).unwrap_err(), TrySendError::Disconnected);
}

#[test]
fn opener_sees_kind_and_type_mismatch() {
    let name = unique("kind");
    let _tx = spsc::Sender::<f64>::create(&name, 64).unwrap();
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::KindMismatch {
            found: Kind::Spsc,
            expected: Kind::Mpmc
        })
    ));
    let name = unique("kind");
    let _tx = Sender::<f64>::create(&name, 4, 4).unwrap();
    assert!(matches!(
        spsc::Receiver::<f64>::open(&name),
        Err(Error::KindMismatch {
            found: Kind::Mpmc,
            expected: Kind::Spsc
        })
    ));
    assert!(matches!(
        Receiver::<u64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Sender::<f32>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
}

#[test]
fn zero_and_absurd_sizes_are_rejected_without_creating() {
    let name = unique("size");
    for (slots, max) in [(0, 4), (4, 0), (usize::MAX, 1), (1, usize::MAX / 8)] {
        assert!(
            matches!(
                Sender::<f64>::create(&name, slots, max),
                Err(Error::InvalidSize { .. })
            ),
            "{slots} x {max}"
        );
    }
    assert!(!path(&name).exists());
}

#[test]
fn another_version_is_refused() {
    let (name, _c) = persisted("version");
    poke(&name, VERSION, &7u32.to_le_bytes());
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::VersionMismatch {
            found: 7,
            expected: shmbatch::layout::LAYOUT_VERSION
        })
    ));
}

#[test]
fn damaged_geometry_is_refused_on_open() {
    let cases: [(u64, u64); 8] = [
        (CAPACITY, 0),
        (CAPACITY, 5),
        (CAPACITY, u64::MAX),
        (MAX_BATCH, 0),
        (MAX_BATCH, 13),
        (MAX_BATCH, u64::MAX / 2),
        (STRIDE, 256),
        (DATA_LEN, 3 * STRIDE_4),
    ];
    for (off, value) in cases {
        let (name, _c) = persisted("geom");
        poke(&name, off, &value.to_le_bytes());
        let why = corrupted(Receiver::<f64>::open(&name));
        assert!(!why.is_empty(), "{off}={value}");
    }
}

#[test]
fn positions_outside_the_slots_are_corruption() {
    let (name, _c) = persisted("pos");
    let tx = Sender::<f64>::open(&name).unwrap();
    let rx = Receiver::<f64>::open(&name).unwrap();
    // 4 slots: one lap is 8 positions, so index 5 names no slot.
    poke(&name, TAIL, &5u64.to_le_bytes());
    assert!(matches!(
        tx.try_send(&[1.0]),
        Err(TrySendError::Corrupted { .. })
    ));
    poke(&name, HEAD, &7u64.to_le_bytes());
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Corrupted { .. })));
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(RecvTimeoutError::Corrupted { .. })
    ));
}

#[test]
fn inconsistent_stamps_are_corruption_not_a_hang() {
    let (name, _c) = persisted("stamp");
    let tx = Sender::<f64>::open(&name).unwrap();
    let rx = Receiver::<f64>::open(&name).unwrap();
    // Slot 0's stamp says "lap 5": neither free, full, nor a stale position.
    poke(&name, DATA, &(5u64 * 8).to_le_bytes());
    assert!(matches!(
        tx.try_send(&[1.0]),
        Err(TrySendError::Corrupted { .. })
    ));
    assert!(matches!(
        tx.send_timeout(&[1.0], Duration::from_secs(5)),
        Err(shmbatch::SendTimeoutError::Corrupted { .. })
    ));
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Corrupted { .. })));
}

#[test]
fn an_overlong_length_is_corruption_and_frees_the_slot() {
    let (name, _c) = persisted("len");
    let tx = Sender::<f64>::open(&name).unwrap();
    let rx = Receiver::<f64>::open(&name).unwrap();
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0]).unwrap();
    poke(&name, DATA + SLOT_LEN, &5u64.to_le_bytes());
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Corrupted { .. })));
    // The damaged batch is dropped; the queue goes on.
    assert_eq!(&*rx.try_recv().unwrap(), &[2.0]);
    for i in 0..10 {
        tx.send(&[i as f64]).unwrap();
        assert_eq!(&*rx.recv().unwrap(), &[i as f64]);
    }
}

#[test]
fn the_claim_word_records_the_claimer() {
    let (name, _c) = persisted("claim");
    let tx = Sender::<f64>::open(&name).unwrap();
    let r = tx.reserve(1).unwrap();
    let me = u64::from(std::process::id());
    // Claimed, entry e, generation, write side, position 0 (src/mpmc/wire.rs, "claim
    // word"); entry e of the table names this process as a sender.
    let claim = peek_u64(&name, DATA + 16);
    assert_eq!(claim >> 63, 1);
    assert_eq!(claim & (1 << 48), 0, "a sender's claim");
    assert_eq!(claim & ((1 << 48) - 1), 0, "position 0");
    let e = (claim >> 57) & 63;
    let word = peek_u64(&name, ENTRIES + 8 * e);
    assert_eq!((word >> 10) & ((1 << 22) - 1), me);
    assert_eq!(word & 3, 1, "a sender's entry");
    assert_eq!(
        (claim >> 49) & 0xff,
        (word >> 2) & 0xff,
        "the same generation"
    );
    r.commit();
}

#[test]
fn a_dead_attached_process_counts_as_gone() {
    // A pid that is certainly dead: a child we have already reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = u64::from(child.id());
    child.wait().unwrap();

    let name = unique("dead");
    let _c = Cleanup(name.clone());
    let rx = Receiver::<f64>::create(&name, 2, 1).unwrap();
    // Forge an attached sender in a process that died without detaching.
    poke(&name, ENTRIES + 8 * 63, &entry(dead, 0, 1).to_le_bytes());
    poke(&name, SENDERS, &(1u64 << 63 | 1).to_le_bytes());
    assert!(rx.is_disconnected());
    assert_eq!(peek_u64(&name, SENDERS), 1 << 63, "the count was reaped");
    assert_eq!(
        peek_u64(&name, ENTRIES + 8 * 63) & 3,
        0,
        "the entry was freed"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap_err(),
        RecvTimeoutError::Disconnected
    );
    // And a dead receiver, found by a blocked sender.
    let name = unique("dead");
    let _c = Cleanup(name.clone());
    let tx = Sender::<f64>::create(&name, 1, 1).unwrap();
    poke(&name, ENTRIES + 8 * 10, &entry(dead, 0, 2).to_le_bytes());
    poke(&name, RECEIVERS, &(1u64 << 63 | 1).to_le_bytes());
    tx.send(&[1.0]).unwrap();
    assert_eq!(
        tx.send_timeout(&[2.0], Duration::from_secs(10))
            .unwrap_err(),
        shmbatch::SendTimeoutError::Disconnected
    );
}

#[test]
fn a_reused_pid_does_not_keep_a_dead_peer_alive() {
    // Our parent is alive; an entry naming its pid with another start time is a
    // process that died and whose pid the kernel gave to the parent.
    let parent = std::os::unix::process::parent_id();
    let start = start_time(parent);
    let name = unique("reused");
    let _c = Cleanup(name.clone());
    let rx = Receiver::<f64>::create(&name, 2, 1).unwrap();
    poke(&name, SENDERS, &(1u64 << 63 | 1).to_le_bytes());
    poke(
        &name,
        ENTRIES + 8 * 63,
        &entry(u64::from(parent), start, 1).to_le_bytes(),
    );
    assert!(
        !rx.is_disconnected(),
        "the same pid and start time is alive"
    );
    let other = (start + 1) & u64::from(u32::MAX);
    poke(
        &name,
        ENTRIES + 8 * 63,
        &entry(u64::from(parent), other, 1).to_le_bytes(),
    );
    assert!(rx.is_disconnected(), "another start time is a dead process");
    assert_eq!(peek_u64(&name, SENDERS), 1 << 63, "the count was reaped");
}

#[test]
fn hostile_peer_words_never_panic() {
    let (name, _c) = persisted("words");
    let tx = Sender::<f64>::open(&name).unwrap();
    let rx = Receiver::<f64>::open(&name).unwrap();
    // The last two are attached handles whose pid is negative as a pid_t (a fuzz
    // find: the liveness check must call them dead, not panic or signal a group).
    for v in [
        0u64,
        1,
        u64::MAX,
        1 << 63,
        u32::MAX as u64,
        (u32::MAX as u64) << 32 | 1,
        1 << 63 | 2,
    ] {
        poke(&name, SENDERS, &v.to_le_bytes());
        poke(&name, RECEIVERS, &v.to_le_bytes());
        poke(&name, ENTRIES, &v.to_le_bytes());
        let _ = tx.try_send(&[1.0]);
        let _ = rx.try_recv().map(|b| b.len());
        let _ = tx.is_disconnected();
        let _ = rx.is_disconnected();
    }
}

#[test]
fn the_attachment_table_has_a_limit() {
    let name = unique("table");
    let _c = Cleanup(name.clone());
    let tx = Sender::<f64>::create(&name, 1, 1).unwrap();
    let clones: Vec<_> = (0..100).map(|_| tx.clone()).collect();
    let mut rxs = Vec::new();
    let e = loop {
        match Receiver::<f64>::open(&name) {
            Ok(rx) => rxs.push(rx),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, Error::TooManyAttached { max: 64, .. }), "{e}");
    assert_eq!(rxs.len(), 63, "clones share the creator's entry");
    rxs.pop();
    let _rx = Receiver::<f64>::open(&name).unwrap();
    drop(clones);
}

/// A small in-test fuzzer: random damage to the control block and the slots of a
/// live queue; every operation must return (an error is fine), never panic or hang.
#[test]
fn random_damage_never_panics_or_hangs() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..40 {
        let (name, _c) = persisted("fuzz");
        let tx = Sender::<f64>::open(&name).unwrap();
        let rx = Receiver::<f64>::open(&name).unwrap();
        for _ in 0..30 {
            let off = match rand() % 3 {
                0 => TAIL + 8 * (rand() % 48),
                1 => DATA + 8 * (rand() % (4 * STRIDE_4 / 8)),
                _ => [TAIL, HEAD, DATA, DATA + SLOT_LEN][(rand() % 4) as usize],
            };
            let v = match rand() % 4 {
                0 => rand(),
                1 => rand() % 16,
                2 => peek_u64(&name, off).wrapping_add(1),
                _ => u64::MAX,
            };
            poke(&name, off, &v.to_le_bytes());
            let _ = tx.try_send(&[1.0, 2.0]);
            let _ = tx.try_reserve(3).map(|r| r.commit());
            let _ = rx.try_recv().map(|b| b.len());
            let _ = tx.send_timeout(&[3.0], Duration::from_millis(1));
            let _ = rx.recv_timeout(Duration::from_millis(1)).map(|b| b.len());
        }
    }
}
