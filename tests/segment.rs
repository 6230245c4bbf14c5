//! Named segments in real shared memory: naming, ownership, attachment rules, and
//! segments that are damaged or hostile. Every test uses a unique name and leaves
//! nothing in /dev/shm.

use std::fs::OpenOptions;
use std::time::Duration;

mod common;
use common::{path, peek_u64, poke, proc_stat, spsc_owner, unique, wait_for_zombie, Cleanup};

use shmbatch::spsc::{Receiver, Sender};
use shmbatch::{Error, Kind, RecvTimeoutError, Role, TryRecvError, TrySendError};

/// A persisted segment with no attached handles, to be damaged by the test.
fn persisted(tag: &str) -> (String, Cleanup) {
    let name = unique(tag);
    let tx = Sender::<f64>::create(&name, 1024).unwrap();
    tx.persist();
    drop(tx);
    (name.clone(), Cleanup(name))
}

// Offsets of the documented wire format (src/layout.rs).
const VERSION: u64 = 8;
const KIND: u64 = 12;
const INIT: u64 = 16;
const ELEM_SIZE: u64 = 24;
const CAPACITY: u64 = 40;
const MAX_BATCH: u64 = 48;
const DATA_OFFSET: u64 = 64;
const DATA_LEN: u64 = 72;
const SEGMENT_LEN: u64 = 80;
const TAIL: u64 = 256;
/// The batch counts (src/spsc/ring.rs, `SpscControl`): after tail and after head.
const SENT: u64 = TAIL + 8;
const HEAD: u64 = TAIL + 128;
const RECEIVED: u64 = HEAD + 8;
const SPSC_DATA: u64 = 640;
/// The owner words (src/spsc/ring.rs, `Peers`): producer, then consumer.
const PRODUCER: u64 = TAIL + 2 * 128;
const CONSUMER: u64 = PRODUCER + 8;
const ATTACHED: u64 = 1;

#[test]
fn create_then_open_by_name_both_ways() {
    let name = unique("both");
    let mut tx = Sender::<f64>::create(&name, 256).unwrap();
    let mut rx = Receiver::<f64>::open(&format!("/{name}")).unwrap();
    assert_eq!(tx.name(), Some(name.as_str()));
    assert_eq!(rx.name(), Some(name.as_str()));
    tx.send(&[1.0, 2.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[1.0, 2.0]);
    drop((tx, rx));
    assert!(!path(&name).exists(), "creator unlinks on drop");

    let name = unique("both");
    let mut rx = Receiver::<f64>::create(&name, 256).unwrap();
    let mut tx = Sender::<f64>::open(&name).unwrap();
    tx.send(&[3.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[3.0]);
    drop(rx);
    assert!(!path(&name).exists());
    assert_eq!(tx.try_send(&[1.0]).unwrap_err(), TrySendError::Disconnected);
}

#[test]
fn bad_names_are_rejected() {
    for bad in ["", "/", "a/b", "with\0nul", ".", ".."] {
        assert!(
            matches!(
                Sender::<f64>::create(bad, 8),
                Err(Error::InvalidName { .. })
            ),
            "{bad:?}"
        );
        assert!(matches!(
            Receiver::<f64>::open(bad),
            Err(Error::InvalidName { .. })
        ));
    }
    let long = "x".repeat(shmbatch::MAX_NAME_LEN + 1);
    let e = Sender::<f64>::create(&long, 8).unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
}

#[test]
fn zero_and_absurd_capacity_are_rejected_without_creating() {
    let name = unique("cap");
    assert!(matches!(
        Sender::<f64>::create(&name, 0),
        Err(Error::InvalidSize {
            what: "capacity",
            value: 0,
            ..
        })
    ));
    assert!(matches!(
        Sender::<f64>::create(&name, usize::MAX / 2),
        Err(Error::InvalidSize { .. })
    ));
    assert!(!path(&name).exists());
}

#[test]
fn opening_a_missing_segment_is_not_found() {
    let name = unique("missing");
    match Receiver::<f64>::open(&name) {
        Err(Error::NotFound { name: n }) => assert_eq!(n, name),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        shmbatch::remove(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn creating_an_existing_name_is_already_exists() {
    let name = unique("exists");
    let _tx = Sender::<f64>::create(&name, 8).unwrap();
    assert!(matches!(
        Receiver::<f64>::create(&name, 8),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn opener_sees_type_mismatch() {
    let name = unique("type");
    let _tx = Sender::<f64>::create(&name, 64).unwrap();
    match Receiver::<u64>::open(&name) {
        Err(Error::TypeMismatch {
            found, expected, ..
        }) => {
            // numpy's dtype strings (src/layout.rs, "Element types").
            assert_eq!(found, shmbatch::layout::dtype_of::<f64>().unwrap());
            assert_eq!(expected, shmbatch::layout::dtype_of::<u64>().unwrap());
        }
        other => panic!("{other:?}"),
    }
    match Receiver::<f32>::open(&name) {
        Err(e @ Error::TypeMismatch { .. }) => {
            assert!(
                e.to_string().contains("f8") && e.to_string().contains("f4"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn second_sender_or_receiver_is_refused() {
    let name = unique("attach");
    let tx = Sender::<f64>::create(&name, 64).unwrap();
    match Sender::<f64>::open(&name) {
        Err(Error::AlreadyAttached {
            role: Role::Sender,
            pid,
            ..
        }) => {
            assert_eq!(pid, std::process::id())
        }
        other => panic!("{other:?}"),
    }
    let rx = Receiver::<f64>::open(&name).unwrap();
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::AlreadyAttached {
            role: Role::Receiver,
            ..
        })
    ));
    // After the receiver leaves, a new one may attach and the queue resumes.
    drop(rx);
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    let mut tx = tx;
    tx.send(&[5.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[5.0]);
}

#[test]
fn waiting_before_the_peer_ever_attached_is_not_disconnected() {
    let name = unique("never");
    let mut rx = Receiver::<f64>::create(&name, 64).unwrap();
    assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(shmbatch::RecvTimeoutError::Timeout)
    ));
    assert!(!rx.is_disconnected());
}

#[test]
fn persist_keeps_the_segment_and_remove_deletes_it() {
    let name = unique("persist");
    let mut tx = Sender::<f64>::create(&name, 64).unwrap();
    tx.send(&[42.0]).unwrap();
    tx.persist();
    drop(tx);
    assert!(path(&name).exists());
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[42.0]);
    shmbatch::remove(&name).unwrap();
    assert!(!path(&name).exists());
}

#[test]
fn version_mismatch_is_reported() {
    let (name, _c) = persisted("version");
    poke(&name, VERSION, &7u32.to_le_bytes());
    match Receiver::<f64>::open(&name) {
        Err(Error::VersionMismatch { found: 7, expected }) => {
            assert_eq!(expected, shmbatch::layout::LAYOUT_VERSION)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_kind_is_reported() {
    let (name, _c) = persisted("kind");
    poke(&name, KIND, &3u32.to_le_bytes());
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::KindMismatch {
            found: Kind::Array,
            expected: Kind::Spsc
        })
    ));
    poke(&name, KIND, &99u32.to_le_bytes());
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::Corrupted(_))
    ));
}

#[test]
fn garbage_headers_are_corrupted() {
    let cases: &[(u64, &[u8], &str)] = &[
        (INIT, &0xdead_beefu32.to_le_bytes(), "init"),
        (CAPACITY, &u64::MAX.to_le_bytes(), "ring length"),
        (CAPACITY, &24u64.to_le_bytes(), "ring length"),
        (MAX_BATCH, &u64::MAX.to_le_bytes(), "maximum batch"),
        (DATA_OFFSET, &8u64.to_le_bytes(), "data offset"),
        (DATA_OFFSET, &(1u64 << 50).to_le_bytes(), "data offset"),
        (DATA_LEN, &(1u64 << 39).to_le_bytes(), "data region"),
        (SEGMENT_LEN, &(1u64 << 39).to_le_bytes(), "segment has only"),
    ];
    for &(off, bytes, what) in cases {
        let (name, _c) = persisted("garbage");
        poke(&name, off, bytes);
        match Receiver::<f64>::open(&name) {
            Err(Error::Corrupted(reason)) => assert!(reason.contains(what), "{what}: {reason}"),
            other => panic!("{what}: {other:?}"),
        }
        assert!(matches!(
            Sender::<f64>::open(&name),
            Err(Error::Corrupted(_))
        ));
    }
    // Another element size: a type mismatch, whatever the opener asks for.
    let (name, _c) = persisted("garbage");
    poke(&name, ELEM_SIZE, &4u32.to_le_bytes());
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
}

#[test]
fn truncated_or_foreign_files_are_errors_not_crashes() {
    // A file too short to hold a header, and a foreign file full of bytes.
    let name = unique("short");
    let _c = Cleanup(name.clone());
    std::fs::write(path(&name), [0u8; 100]).unwrap();
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::NotShmbatch { .. })
    ));
    std::fs::write(path(&name), vec![0xA5u8; 8192]).unwrap();
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::NotShmbatch { .. })
    ));
    // A header that declares more than the file holds.
    let (name, _c2) = persisted("shrunk");
    let f = OpenOptions::new().write(true).open(path(&name)).unwrap();
    f.set_len(SPSC_DATA + 64).unwrap();
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::Corrupted(_))
    ));
}

/// Poll `try_recv` until it reports something other than `Empty` (the cheap path
/// checks the producer's position only every few milliseconds), at most 2 s.
fn try_recv_until_not_empty(rx: &mut Receiver<f64>) -> Result<Vec<f64>, TryRecvError> {
    let start = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) if start.elapsed() < Duration::from_secs(2) => {}
            other => return other.map(|b| b.to_vec()),
        }
    }
}

fn header(value: u64) -> [u8; 8] {
    value.to_le_bytes()
}

#[test]
fn hostile_positions_and_lengths_while_running_are_corrupted() {
    // A tail far ahead of head, seen by the slow paths (before sleeping, and the
    // periodic check of the polling path).
    let name = unique("hostile");
    let mut rx = Receiver::<f64>::create(&name, 64).unwrap();
    poke(&name, TAIL, &(1u64 << 40).to_le_bytes());
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(2)),
        Err(shmbatch::RecvTimeoutError::Corrupted { .. })
    ));
    assert!(matches!(
        try_recv_until_not_empty(&mut rx),
        Err(TryRecvError::Corrupted { .. })
    ));
    drop(rx);

    // A tail that claims a batch where nothing is published: a consumer that
    // trusted it would never sleep.
    let name = unique("hostile");
    let mut rx = Receiver::<f64>::create(&name, 64).unwrap();
    poke(&name, TAIL, &16u64.to_le_bytes());
    match rx.recv_timeout(Duration::from_secs(2)) {
        Err(shmbatch::RecvTimeoutError::Corrupted { reason }) => {
            assert!(reason.contains("ahead of the published"), "{reason}")
        }
        other => panic!("{:?}", other.map(|b| b.len())),
    }
    drop(rx);

    // A published record whose length is absurd (headers hold len + 1).
    let name = unique("hostile");
    let mut rx = Receiver::<f64>::create(&name, 64).unwrap();
    poke(&name, SPSC_DATA, &header(1_000_000));
    match rx.try_recv() {
        Err(TryRecvError::Corrupted { reason }) => assert!(reason.contains("length"), "{reason}"),
        other => panic!("{:?}", other.map(|b| b.len())),
    }
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(10)),
        Err(shmbatch::RecvTimeoutError::Corrupted { .. })
    ));
    drop(rx);

    // A wrap marker at offset 0 (there is nothing to skip to).
    let name = unique("hostile");
    let mut rx = Receiver::<f64>::create(&name, 64).unwrap();
    poke(&name, SPSC_DATA, &header(u64::MAX));
    match rx.try_recv() {
        Err(TryRecvError::Corrupted { reason }) => assert!(reason.contains("wrap"), "{reason}"),
        other => panic!("{:?}", other.map(|b| b.len())),
    }
    drop(rx);

    // A valid length whose record would run past the end of the ring.
    let name = unique("hostile");
    let mut rx = Receiver::<f64>::create(&name, 64).unwrap();
    let mut tx = Sender::<f64>::open(&name).unwrap();
    let ring = shmbatch::inspect(&name).unwrap().data_len as u64;
    let mut at = 0;
    while at + 200 < ring {
        tx.send(&[1.0]).unwrap();
        assert_eq!(&*rx.recv().unwrap(), &[1.0]);
        at += 16;
    }
    let len = (ring - at) / 8; // one element too many with its header
    assert!(len as usize <= rx.max_batch());
    poke(&name, SPSC_DATA + at, &header(len + 1));
    match rx.try_recv() {
        Err(TryRecvError::Corrupted { reason }) => assert!(reason.contains("end"), "{reason}"),
        other => panic!("{:?}", other.map(|b| b.len())),
    }
    drop((tx, rx));

    // A head that runs past the tail, seen by the sender when the ring is full.
    let name = unique("hostile");
    let mut tx = Sender::<f64>::create(&name, 16).unwrap();
    while tx.try_send(&[1.0]).is_ok() {}
    poke(&name, TAIL + 128, &(1u64 << 41).to_le_bytes());
    assert!(matches!(
        tx.try_send(&[1.0]),
        Err(TrySendError::Corrupted { .. })
    ));
}

#[test]
fn a_new_sender_continues_after_records_its_dead_predecessor_did_not_count() {
    // A sender that died between publishing a batch and storing its tail: the
    // consumer will read that batch, so the next sender must not write over it.
    let (name, _c) = persisted("lost-tail");
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    let mut tx = Sender::<f64>::open(&name).unwrap();
    tx.send(&[1.0]).unwrap();
    tx.send(&[2.0, 3.0]).unwrap();
    drop(tx);
    poke(&name, TAIL, &16u64.to_le_bytes()); // the second tail store was lost
    let mut tx = Sender::<f64>::open(&name).unwrap();
    tx.send(&[4.0]).unwrap();
    for want in [&[1.0][..], &[2.0, 3.0], &[4.0]] {
        assert_eq!(&*rx.recv_timeout(Duration::from_secs(2)).unwrap(), want);
    }
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    drop(tx);

    // The consumer may release a batch before its producer stores tail: a sender
    // that died right there leaves tail behind head, which is no damage.
    let recv = |rx: &mut Receiver<f64>| rx.recv_timeout(Duration::from_secs(2)).unwrap().to_vec();
    let mut tx = Sender::<f64>::open(&name).unwrap();
    tx.send(&[5.0]).unwrap();
    assert_eq!(recv(&mut rx), [5.0]);
    drop(tx);
    poke(&name, TAIL, &56u64.to_le_bytes()); // head is 72
    assert!(rx.is_empty());
    assert_eq!(shmbatch::inspect(&name).unwrap().fill.unwrap().used, 0);
    let mut tx = Sender::<f64>::open(&name).unwrap();
    tx.send(&[6.0]).unwrap();
    assert_eq!(recv(&mut rx), [6.0]);
    drop(tx);
    poke(&name, TAIL, &72u64.to_le_bytes()); // head is 88
    drop(rx);
    let rx = Receiver::<f64>::open(&name).unwrap();
    assert!(rx.is_empty());

    // Damage after the tail is refused at attach.
    poke(&name, TAIL, &0u64.to_le_bytes());
    poke(&name, TAIL + 128, &0u64.to_le_bytes());
    drop(rx);
    poke(&name, SPSC_DATA, &header(1 << 40));
    assert!(matches!(
        Sender::<f64>::open(&name),
        Err(Error::Corrupted(_))
    ));
}

#[test]
fn a_dead_peer_is_detected() {
    // Fake a receiver that attached from a process that no longer exists.
    let name = unique("dead");
    let mut tx = Sender::<f64>::create(&name, 16).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let word = spsc_owner(dead_pid, 0, ATTACHED);
    poke(&name, CONSUMER, &word.to_le_bytes());
    assert!(tx.is_disconnected());
    assert_eq!(tx.try_send(&[1.0]).unwrap_err(), TrySendError::Disconnected);
    // Its place can be taken.
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    tx.send(&[2.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[2.0]);
}

#[test]
fn positions_near_overflow_are_corrupted_at_open() {
    let (name, _c) = persisted("overflow");
    let near = (u64::MAX - 64).to_le_bytes();
    poke(&name, TAIL, &near);
    poke(&name, TAIL + 128, &near);
    assert!(matches!(
        Sender::<f64>::open(&name),
        Err(Error::Corrupted(_))
    ));
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::Corrupted(_))
    ));
}

// More offsets of the wire format (src/layout.rs).
const CREATOR_PID: u64 = 20;
const ELEM_ALIGN: u64 = 28;
const TAG_LEN: u64 = 32;
const TAG: u64 = 128;

/// A pid that no process has now: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn assert_printable(text: &str) {
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

#[test]
fn foreign_files_are_not_shmbatch_at_once() {
    let hello: Vec<u8> = b"hello, not a segment\n".repeat(400);
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("zero-256", vec![0; 256], "no shmbatch magic"),
        ("zero-4096", vec![0; 4096], "no shmbatch magic"),
        ("empty", Vec::new(), "empty"),
        (
            "short",
            vec![0xA5; 100],
            "only 100 bytes, shorter than the 256-byte header",
        ),
        ("foreign", hello, "no shmbatch magic"),
        ("a5", vec![0xA5; 8192], "no shmbatch magic"),
    ];
    for (tag, bytes, why) in cases {
        let name = unique(tag);
        let _c = Cleanup(name.clone());
        std::fs::write(path(&name), &bytes).unwrap();
        let start = std::time::Instant::now();
        let e = Receiver::<f64>::open(&name).unwrap_err();
        // Generous for a loaded machine: it used to wait 2 s.
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{tag}: {:?}",
            start.elapsed()
        );
        match &e {
            Error::NotShmbatch { name: n, reason } => {
                assert_eq!(n, &name);
                assert!(reason.contains(why), "{tag}: {reason}");
            }
            other => panic!("{tag}: {other:?}"),
        }
        assert!(
            e.to_string().contains(&name) && e.to_string().contains(why),
            "{e}"
        );
        assert!(matches!(
            shmbatch::SharedArray::<f64>::open(&name),
            Err(Error::NotShmbatch { .. })
        ));
        assert!(matches!(
            shmbatch::inspect(&name),
            Err(Error::NotShmbatch { .. })
        ));
        assert!(
            !shmbatch::list().iter().any(|l| l.name == name),
            "{tag}: a foreign file is not listed"
        );
    }
}

#[test]
fn garbage_after_the_magic_is_corrupted_in_printable_words() {
    let cases: &[(&str, u64, &[u8])] = &[
        ("zero size", ELEM_SIZE, &0u32.to_le_bytes()),
        ("align 3", ELEM_ALIGN, &3u32.to_le_bytes()),
        ("align 256", ELEM_ALIGN, &256u32.to_le_bytes()),
        ("align 0", ELEM_ALIGN, &0u32.to_le_bytes()),
        ("tag length 65", TAG_LEN, &65u32.to_le_bytes()),
        ("tag length 200", TAG_LEN, &200u32.to_le_bytes()),
        ("tag not ASCII", TAG, b"\xff\xfe\xfd"),
        ("escape in tag", TAG, b"\x1b[2J"),
        ("bell in tag", TAG, b"f\x07\x08"),
        ("NUL in tag", TAG, b"\0\0\0"),
    ];
    for &(what, off, bytes) in cases {
        let (name, _c) = persisted("after-magic");
        poke(&name, off, bytes);
        // Whatever type the opener asks for: damage is not another type.
        for e in [
            Receiver::<f64>::open(&name).unwrap_err(),
            Receiver::<u32>::open(&name).unwrap_err(),
            shmbatch::inspect(&name).unwrap_err(),
        ] {
            match &e {
                Error::Corrupted(reason) => assert_printable(reason),
                other => panic!("{what}: {other:?}"),
            }
            assert_printable(&e.to_string());
        }
    }
}

#[test]
fn an_unpublished_header_is_waited_for_only_while_its_creator_lives() {
    let (name, _c) = persisted("unpublished");
    poke(&name, INIT, &0u32.to_le_bytes());
    poke(&name, CREATOR_PID, &dead_pid().to_le_bytes());
    let start = std::time::Instant::now();
    match Receiver::<f64>::open(&name) {
        Err(Error::Corrupted(reason)) => assert!(reason.contains("never published"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    // A live creator may still be writing it: open waits, then gives up.
    poke(&name, CREATOR_PID, &std::process::id().to_le_bytes());
    assert!(matches!(
        Receiver::<f64>::open(&name),
        Err(Error::NotReady { .. })
    ));
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[test]
fn links_and_special_files_are_refused() {
    let (target, _c) = persisted("link-target");
    let link = unique("link");
    let _l = Cleanup(link.clone());
    std::os::unix::fs::symlink(path(&target), path(&link)).unwrap();
    for e in [
        Receiver::<f64>::open(&link).unwrap_err(),
        shmbatch::inspect(&link).unwrap_err(),
        shmbatch::remove(&link).unwrap_err(),
    ] {
        match e {
            Error::NotShmbatch { reason, .. } => assert_eq!(reason, "is a symbolic link"),
            other => panic!("{other:?}"),
        }
    }
    assert!(!shmbatch::list().iter().any(|l| l.name == link));
    // remove_any removes the link itself, not its target.
    shmbatch::remove_any(&link).unwrap();
    assert!(path(&link).symlink_metadata().is_err());
    assert!(Receiver::<f64>::open(&target).is_ok());

    let fifo = unique("fifo");
    let _f = Cleanup(fifo.clone());
    let made = std::process::Command::new("mkfifo")
        .arg(path(&fifo))
        .status()
        .is_ok_and(|s| s.success());
    if made {
        match Receiver::<f64>::open(&fifo) {
            Err(Error::NotShmbatch { reason, .. }) => {
                assert!(reason.contains("regular"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            shmbatch::inspect(&fifo),
            Err(Error::NotShmbatch { .. })
        ));
    }
    let dir = unique("dir");
    std::fs::create_dir(path(&dir)).unwrap();
    let opened = Receiver::<f64>::open(&dir);
    let inspected = shmbatch::inspect(&dir);
    std::fs::remove_dir(path(&dir)).unwrap();
    assert!(
        matches!(opened, Err(Error::NotShmbatch { .. })),
        "{opened:?}"
    );
    assert!(matches!(inspected, Err(Error::NotShmbatch { .. })));
}

#[test]
fn remove_refuses_a_foreign_file_and_remove_any_removes_it() {
    let name = unique("foreign-rm");
    let _c = Cleanup(name.clone());
    std::fs::write(path(&name), vec![0u8; 4096]).unwrap();
    match shmbatch::remove(&name) {
        Err(Error::NotShmbatch { reason, .. }) => assert_eq!(reason, "no shmbatch magic"),
        other => panic!("{other:?}"),
    }
    assert!(path(&name).exists());
    shmbatch::remove_any(&name).unwrap();
    assert!(!path(&name).exists());
    assert!(matches!(
        shmbatch::remove_any(&name),
        Err(Error::NotFound { .. })
    ));
    // A damaged segment is still shmbatch's, and `remove` removes it.
    let (name, _c) = persisted("damaged-rm");
    poke(&name, INIT, &0xdead_beefu32.to_le_bytes());
    shmbatch::remove(&name).unwrap();
    assert!(!path(&name).exists());
}

#[test]
fn names_of_segments_being_created_are_reserved() {
    let name = format!(".shmbatch-tmp-1-2-3-{}", unique("reserved"));
    assert!(matches!(
        Sender::<f64>::create(&name, 64),
        Err(Error::InvalidName { .. })
    ));
    assert!(!path(&name).exists());
}

#[test]
fn a_half_made_segment_is_listed_and_removed_once_its_creator_is_dead() {
    let for_name = unique("half");
    let dead = format!(".shmbatch-tmp-{}-0-0-{for_name}", dead_pid());
    let me = format!(
        ".shmbatch-tmp-{}-{}-0-{for_name}",
        std::process::id(),
        my_start()
    );
    let _c = (Cleanup(dead.clone()), Cleanup(me.clone()));
    std::fs::write(path(&dead), vec![0u8; 4096]).unwrap();
    std::fs::write(path(&me), vec![0u8; 4096]).unwrap();
    let listed = shmbatch::list();
    let find = |n: &str| listed.iter().find(|l| l.name == n).expect(n);
    for (n, stale) in [(&dead, true), (&me, false)] {
        let l = find(n);
        let h = l.half_made.as_ref().unwrap();
        assert_eq!(h.for_name, for_name);
        assert_eq!(l.is_stale(), stale, "{l:?}");
        assert!(matches!(l.info, Err(Error::NotShmbatch { .. })), "{l:?}");
    }
    assert!(!find(&me).remove_if_stale().unwrap());
    assert!(path(&me).exists(), "a live creator's temporary is kept");
    assert!(find(&dead).remove_if_stale().unwrap());
    assert!(!path(&dead).exists());
}

/// This process's start time as `/proc/self/stat` gives it (field 22, low 32 bits).
fn my_start() -> u32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let start: u64 = rest
        .split_ascii_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    start as u32
}

/// Environment variable that makes [`child_creates_segments_until_killed`] run.
const CREATE_CHILD: &str = "SHMBATCH_TEST_CREATE_CHILD";
/// Elements of the arrays it creates: 64 MiB of f64.
const CHILD_LEN: usize = 8 << 20;
/// What the child prints once it starts creating.
const CHILD_READY: &str = "SHMBATCH-CHILD-READY";

/// The child of [`a_killed_creator_leaves_nothing_or_a_complete_segment`]: creates,
/// holds for 10 ms and drops 64 MiB arrays under one name until it is killed (or
/// for 10 s). Does nothing unless [`CREATE_CHILD`] names the segment.
#[test]
fn child_creates_segments_until_killed() {
    let Ok(name) = std::env::var(CREATE_CHILD) else {
        return;
    };
    println!("{CHILD_READY}");
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let a = shmbatch::SharedArray::<f64>::create(&name, CHILD_LEN).unwrap();
        // Held a while, so that a kill also lands while a complete one exists.
        std::thread::sleep(Duration::from_millis(10));
        drop(a);
    }
}

#[test]
fn a_killed_creator_leaves_nothing_or_a_complete_segment() {
    use std::io::BufRead;
    const TRIALS: u64 = 8;
    let (mut absent, mut complete, mut temporaries) = (0, 0, 0);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for trial in 0..TRIALS {
        let name = unique("killed");
        let _c = Cleanup(name.clone());
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "child_creates_segments_until_killed",
                "--exact",
                "--nocapture",
            ])
            .env(CREATE_CHILD, &name)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains(CHILD_READY) {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
        }
        // Somewhere in the first few creates (each takes some 10-50 ms).
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_micros(5_000 + (seed >> 33) % 200_000));
        child.kill().unwrap();
        child.wait().unwrap();

        match shmbatch::SharedArray::<f64>::open(&name) {
            Ok(a) => {
                assert_eq!(a.len(), CHILD_LEN, "trial {trial}");
                complete += 1;
            }
            Err(Error::NotFound { .. }) => absent += 1,
            Err(e) => panic!("trial {trial}: a killed creator left {e:?}"),
        }
        // What is left is stale, and the stale sweep of `shmbatch rm --stale`
        // removes it: the segment, and a temporary if the kill came mid-create.
        for l in shmbatch::list() {
            let ours = l.name == name || l.half_made.as_ref().is_some_and(|h| h.for_name == name);
            if !ours {
                continue;
            }
            assert!(l.is_stale(), "trial {trial}: {l:?}");
            assert!(l.remove_if_stale().unwrap(), "trial {trial}: {l:?}");
            temporaries += usize::from(l.half_made.is_some());
        }
        assert!(!path(&name).exists());
        let left: Vec<String> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(&name))
            .collect();
        assert!(left.is_empty(), "trial {trial}: left {left:?}");
    }
    println!("{TRIALS} kills: {absent} absent, {complete} complete, {temporaries} temporaries");
}

/// Live processes to forge owner words for: ourselves, and pid 1 where its
/// `/proc` entry is readable; with their start times.
fn live_processes() -> Vec<(u32, u32)> {
    [std::process::id(), 1]
        .into_iter()
        .filter_map(|pid| proc_stat(pid).map(|(_, start)| (pid, start)))
        .collect()
}

#[test]
fn a_live_pid_with_another_start_time_does_not_hold_an_end() {
    let procs = live_processes();
    assert!(procs.iter().any(|&(pid, _)| pid == std::process::id()));
    for (pid, start) in procs {
        let name = unique("reused");
        let _c = Cleanup(name.clone());
        let mut tx = Sender::<f64>::create(&name, 16).unwrap();
        tx.persist(); // the sender is dropped and reopened below
                      // A receiver that attached from a dead process whose pid now names a live
                      // one (another start time).
        let forged = spsc_owner(pid, start.wrapping_add(1), ATTACHED);
        poke(&name, CONSUMER, &forged.to_le_bytes());
        assert!(tx.is_disconnected(), "pid {pid}");
        assert_eq!(tx.try_send(&[1.0]).unwrap_err(), TrySendError::Disconnected);
        // Its place can be taken, and the queue works.
        poke(&name, CONSUMER, &forged.to_le_bytes());
        let mut rx = Receiver::<f64>::open(&name).unwrap();
        tx.send(&[2.0]).unwrap();
        assert_eq!(&*rx.recv().unwrap(), &[2.0]);
        drop(rx);
        // The same pid with its real start time is alive: refused.
        poke(
            &name,
            CONSUMER,
            &spsc_owner(pid, start, ATTACHED).to_le_bytes(),
        );
        match Receiver::<f64>::open(&name) {
            Err(Error::AlreadyAttached {
                role: Role::Receiver,
                pid: p,
                ..
            }) => assert_eq!(p, pid),
            other => panic!("pid {pid}: {other:?}"),
        }
        assert!(!tx.is_disconnected());
        // Same for a sender slot.
        poke(&name, CONSUMER, &0u64.to_le_bytes());
        drop(tx);
        let rx = Receiver::<f64>::open(&name).unwrap();
        poke(
            &name,
            PRODUCER,
            &spsc_owner(pid, start, ATTACHED).to_le_bytes(),
        );
        assert!(matches!(
            Sender::<f64>::open(&name),
            Err(Error::AlreadyAttached {
                role: Role::Sender,
                ..
            })
        ));
        poke(&name, PRODUCER, &forged.to_le_bytes());
        let tx = Sender::<f64>::open(&name).unwrap();
        drop((tx, rx));
    }
}

#[test]
fn a_blocked_receiver_sees_a_reused_pid_sender_as_disconnected() {
    let (pid, start) = live_processes()[0];
    let name = unique("reused-block");
    let mut rx = Receiver::<f64>::create(&name, 16).unwrap();
    let forged = spsc_owner(pid, start.wrapping_add(1), ATTACHED);
    poke(&name, PRODUCER, &forged.to_le_bytes());
    let t = std::time::Instant::now();
    match rx.recv_timeout(Duration::from_secs(10)) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => panic!("expected Disconnected, got {:?}", other.map(|b| b.len())),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // With the real start time the sender is alive: a bounded wait times out.
    poke(
        &name,
        PRODUCER,
        &spsc_owner(pid, start, ATTACHED).to_le_bytes(),
    );
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(RecvTimeoutError::Timeout)
    ));
}

#[test]
fn a_zombie_peer_is_dead() {
    let name = unique("zombie");
    let tx = Sender::<f64>::create(&name, 16).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    let (_, start) = proc_stat(pid).expect("the child exists until reaped");
    wait_for_zombie(pid);
    // The zombie's own identity, exactly.
    assert_eq!(proc_stat(pid).map(|(_, s)| s), Some(start));
    poke(
        &name,
        CONSUMER,
        &spsc_owner(pid, start, ATTACHED).to_le_bytes(),
    );
    assert!(tx.is_disconnected());
    assert!(Receiver::<f64>::open(&name).is_ok());
    child.wait().unwrap();
}

#[test]
fn capacity_is_recorded_as_given_and_the_ring_as_data_len() {
    let name = unique("capacity");
    let tx = Sender::<f64>::create(&name, 4096).unwrap();
    let rx = Receiver::<f64>::open(&name).unwrap();
    assert_eq!((tx.capacity(), rx.capacity()), (4096, 4096));
    assert_eq!(peek_u64(&name, CAPACITY), 4096);
    let info = shmbatch::inspect(&name).unwrap();
    assert_eq!(info.capacity, 4096);
    // Two records of 2048 elements with their 8-byte headers.
    assert_eq!(info.data_len, 2 * (8 + 2048 * 8));
    assert_eq!(info.max_batch, 2048);
    assert_eq!(info.fill.unwrap().total, info.data_len as u64);
}

#[test]
fn hostile_counts_are_clamped() {
    let name = unique("counts");
    let mut tx = Sender::<f64>::create(&name, 16).unwrap();
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    tx.send(&[1.0]).unwrap();
    poke(&name, SENT, &(1u64 << 40).to_le_bytes());
    let most = shmbatch::inspect(&name).unwrap().data_len / 8 - 1;
    assert_eq!(rx.len(), most);
    poke(&name, RECEIVED, &(1u64 << 40).to_le_bytes());
    assert_eq!(tx.len(), 0, "more received than sent reads as none");
    // Counts are reports: the ring itself is unaffected.
    assert_eq!(&*rx.recv().unwrap(), &[1.0]);
    assert!(rx.is_empty() && tx.is_empty());
}

#[test]
fn counts_are_recounted_when_a_side_attaches_again() {
    // A receiver killed between its head and received stores: one batch released
    // but not counted.
    let (name, _c) = persisted("recount");
    let mut tx = Sender::<f64>::open(&name).unwrap();
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    for i in 0..4 {
        tx.send(&[i as f64]).unwrap();
    }
    drop(rx.recv().unwrap());
    drop(rx.recv().unwrap());
    drop(rx);
    poke(&name, RECEIVED, &1u64.to_le_bytes());
    assert_eq!(tx.len(), 3, "the lost count");
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    assert_eq!((tx.len(), rx.len()), (2, 2));
    assert_eq!(peek_u64(&name, RECEIVED), 2);

    // A sender killed between its tail and sent stores.
    drop(tx);
    poke(&name, SENT, &3u64.to_le_bytes());
    assert_eq!(rx.len(), 1, "the lost count");
    let mut tx = Sender::<f64>::open(&name).unwrap();
    assert_eq!((tx.len(), rx.len()), (2, 2));
    assert_eq!(peek_u64(&name, SENT), 4);

    // A sender killed between a record's header and its tail store: both lost.
    tx.send(&[4.0]).unwrap();
    drop(tx);
    poke(&name, TAIL, &(4 * 16u64).to_le_bytes());
    poke(&name, SENT, &4u64.to_le_bytes());
    let tx = Sender::<f64>::open(&name).unwrap();
    assert_eq!((tx.len(), rx.len()), (3, 3));
    for want in 2..5 {
        assert_eq!(&*rx.recv().unwrap(), &[want as f64]);
    }
    assert_eq!((tx.len(), rx.len()), (0, 0));
}

#[test]
fn iterators_stop_at_damage_and_say_so() {
    let name = unique("iter-damage");
    let mut tx = Sender::<f64>::create(&name, 64).unwrap();
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    tx.send(&[1.0]).unwrap();
    poke(&name, SPSC_DATA, &header(1_000_000));
    let mut it = rx.iter();
    assert_eq!(it.next(), None);
    assert!(it.error().unwrap().is_corrupted(), "{:?}", it.error());
    let mut it = rx.try_iter();
    assert_eq!(it.next(), None);
    assert!(it.error().unwrap().is_corrupted(), "{:?}", it.error());
}

#[test]
fn a_mapped_token_keeps_the_memory_but_not_the_name_or_the_attachment() {
    let name = unique("mapped");
    let _c = Cleanup(name.clone());
    let mut tx = Sender::<f64>::create(&name, 64).unwrap();
    let mut rx = Receiver::<f64>::open(&name).unwrap();
    tx.send(&[1.5, 2.5]).unwrap();
    let batch = rx.recv().unwrap();
    let (ptr, len) = (batch.as_ptr(), batch.len());
    drop(batch);
    let keep = rx.keep_mapped().expect("a named segment");
    assert!(format!("{keep:?}").contains("len"));
    drop(rx);
    // The receiver detached: the sender sees it gone at once.
    assert!(matches!(
        tx.try_send(&[3.0]),
        Err(TrySendError::Disconnected)
    ));
    drop(tx);
    // The creator dropped: the name is gone, the memory is still mapped here.
    assert!(!path(&name).exists());
    // SAFETY: `keep` keeps the mapping alive; nothing else writes it any more.
    let after = unsafe { std::slice::from_raw_parts(ptr, len) };
    assert_eq!(after, [1.5, 2.5]);
    drop(keep);
    let (h, _r) = shmbatch::spsc::channel::<f64>(8).unwrap();
    assert!(h.keep_mapped().is_none());
}
