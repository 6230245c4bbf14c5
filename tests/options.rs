//! `Options` in real shared memory: file mode, waiting on open, persistence,
//! reclaiming stale segments, open-or-create races, type tags and the SPSC batch
//! bound. Every test uses a unique name and leaves nothing in /dev/shm.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::{path, poke, unique, Cleanup};

use shmbatch::{mpmc, spsc, Error, Options, SharedArray, TrySendError};

// Offsets of the identity block (src/layout.rs, "The identity block").
const INIT: u64 = 16;
const CREATOR_PID: u64 = 20;

/// Generous for a loaded two-core machine; what matters is "not forever".
const SOON: Duration = Duration::from_secs(10);

fn mode_of(name: &str) -> u32 {
    std::fs::symlink_metadata(path(name))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// A pid that no process has now: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Make the segment `name` look left behind by a creator that died.
fn kill_creator(name: &str) {
    poke(name, CREATOR_PID, &dead_pid().to_ne_bytes());
}

#[test]
fn the_mode_is_applied_whatever_the_umask() {
    // Group and other write bits, which a umask of 022 would clear.
    let name = unique("mode");
    let _tx = spsc::Sender::<f64>::create_with(&name, 64, &Options::new().mode(0o660)).unwrap();
    assert_eq!(mode_of(&name), 0o660);

    let name = unique("mode");
    let _tx = mpmc::Sender::<f64>::create_with(&name, 4, 4, &Options::new().mode(0o622)).unwrap();
    assert_eq!(mode_of(&name), 0o622);

    let name = unique("mode");
    let _a = SharedArray::<f64>::create_with(&name, 4, &Options::new().mode(0o640)).unwrap();
    assert_eq!(mode_of(&name), 0o640);

    let name = unique("mode");
    let _rx = spsc::Receiver::<f64>::create(&name, 64).unwrap();
    assert_eq!(mode_of(&name), 0o600, "the default is owner only");

    let name = unique("mode");
    for bad in [0o4600, 0o1777, 0o10000] {
        match SharedArray::<f64>::create_with(&name, 4, &Options::new().mode(bad)) {
            Err(Error::InvalidSize {
                what: "mode",
                reason,
                ..
            }) => assert!(reason.contains(&format!("{bad:#o}")), "{reason}"),
            other => panic!("{bad:#o}: {other:?}"),
        }
    }
    assert!(!path(&name).exists());
}

#[test]
fn open_timeout_waits_for_a_segment_created_later() {
    let name = unique("later");
    let opener = {
        let name = name.clone();
        thread::spawn(move || {
            let opts = Options::new().open_timeout(SOON);
            let mut rx = spsc::Receiver::<f64>::open_with(&name, &opts).unwrap();
            let got = rx.recv_timeout(SOON).unwrap().to_vec();
            got
        })
    };
    let array = {
        let name = format!("{name}-array");
        thread::spawn(move || {
            let opts = Options::new().open_timeout(SOON);
            SharedArray::<u64>::open_with(&name, &opts)
                .unwrap()
                .snapshot()
        })
    };
    let queue = {
        let name = format!("{name}-mpmc");
        thread::spawn(move || {
            let opts = Options::new().open_timeout(SOON);
            let rx = mpmc::Receiver::<u32>::open_with(&name, &opts).unwrap();
            let got = rx.recv_timeout(SOON).unwrap().to_vec();
            got
        })
    };
    thread::sleep(Duration::from_millis(100));
    let mut tx = spsc::Sender::<f64>::create(&name, 64).unwrap();
    tx.send(&[1.0, 2.0, 3.0]).unwrap();
    let _a = SharedArray::<u64>::create_from(&format!("{name}-array"), &[7, 8]).unwrap();
    let mtx = mpmc::Sender::<u32>::create(&format!("{name}-mpmc"), 4, 4).unwrap();
    mtx.send(&[9]).unwrap();
    assert_eq!(opener.join().unwrap(), [1.0, 2.0, 3.0]);
    assert_eq!(array.join().unwrap(), [7, 8]);
    assert_eq!(queue.join().unwrap(), [9]);
}

#[test]
fn open_timeout_gives_up_with_not_found_when_nothing_is_created() {
    let name = unique("never");
    let t = Instant::now();
    let opts = Options::new().open_timeout(Duration::from_millis(200));
    match spsc::Sender::<f64>::open_with(&name, &opts) {
        Err(Error::NotFound { name: n }) => assert_eq!(n, name),
        other => panic!("{other:?}"),
    }
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < SOON, "{waited:?}");
    let zero = Options::new().open_timeout(Duration::ZERO);
    let t = Instant::now();
    assert!(matches!(
        mpmc::Receiver::<f64>::open_with(&name, &zero),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        SharedArray::<f64>::open_with(&name, &zero),
        Err(Error::NotFound { .. })
    ));
    assert!(t.elapsed() < SOON);
    assert!(!path(&name).exists());
}

#[test]
fn open_timeout_bounds_the_wait_for_a_header_being_written() {
    let name = unique("unpublished");
    let _c = Cleanup(name.clone());
    let tx = spsc::Sender::<f64>::create(&name, 64).unwrap();
    tx.persist();
    drop(tx);
    // What a creator that is still writing the header (this live process) shows.
    poke(&name, INIT, &0u32.to_ne_bytes());
    let t = Instant::now();
    let zero = Options::new().open_timeout(Duration::ZERO);
    assert!(matches!(
        spsc::Receiver::<f64>::open_with(&name, &zero),
        Err(Error::NotReady { .. })
    ));
    // Without the option `open` waits 2 s.
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let short = Options::new().open_timeout(Duration::from_millis(300));
    assert!(matches!(
        spsc::Receiver::<f64>::open_with(&name, &short),
        Err(Error::NotReady { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(300));

    // Published while an opener waits: it opens.
    let publisher = {
        let name = name.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            poke(&name, INIT, b"REDY");
        })
    };
    let long = Options::new().open_timeout(SOON);
    spsc::Receiver::<f64>::open_with(&name, &long).unwrap();
    publisher.join().unwrap();
}

#[test]
fn persist_keeps_the_segment_after_its_creator_drops() {
    let keep = Options::new().persist(true);
    let name = unique("persist");
    let _c = Cleanup(name.clone());
    let mut tx = spsc::Sender::<f64>::create_with(&name, 64, &keep).unwrap();
    tx.send(&[4.0]).unwrap();
    drop(tx);
    assert!(path(&name).exists());
    let mut rx = spsc::Receiver::<f64>::open(&name).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[4.0]);

    let name = unique("persist");
    let _c = Cleanup(name.clone());
    drop(mpmc::Receiver::<f64>::create_with(&name, 4, 4, &keep).unwrap());
    assert!(path(&name).exists());
    mpmc::Sender::<f64>::open(&name).unwrap();

    let name = unique("persist");
    let _c = Cleanup(name.clone());
    drop(SharedArray::<f64>::create_from_with(&name, &[5.0], &keep).unwrap());
    assert_eq!(SharedArray::<f64>::open(&name).unwrap().snapshot(), [5.0]);
    shmbatch::remove(&name).unwrap();

    // The default does not persist, and neither does `open_or_create` without it.
    let name = unique("persist");
    drop(SharedArray::<f64>::open_or_create(&name, 4, &Options::new()).unwrap());
    assert!(!path(&name).exists());
    drop(SharedArray::<f64>::open_or_create(&name, 4, &keep).unwrap());
    assert!(path(&name).exists());
    shmbatch::remove(&name).unwrap();
}

#[test]
fn reclaim_stale_replaces_a_segment_whose_creator_died() {
    let reclaim = Options::new().reclaim_stale(true);
    let me = std::process::id();

    let name = unique("stale");
    let _c = Cleanup(name.clone());
    let mut old = spsc::Sender::<f64>::create(&name, 64).unwrap();
    old.send(&[1.0]).unwrap();
    old.persist();
    drop(old);
    kill_creator(&name);
    assert!(shmbatch::inspect(&name).unwrap().is_stale());
    assert!(matches!(
        spsc::Sender::<f64>::create(&name, 64),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        spsc::Sender::<f64>::create_with(&name, 64, &Options::new().reclaim_stale(false)),
        Err(Error::AlreadyExists { .. })
    ));
    let mut tx = spsc::Sender::<f64>::create_with(&name, 64, &reclaim).unwrap();
    let info = shmbatch::inspect(&name).unwrap();
    assert_eq!((info.creator.pid, info.creator.alive), (me, true));
    let mut rx = spsc::Receiver::<f64>::open(&name).unwrap();
    tx.send(&[2.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[2.0], "a new queue, not the old one");
    drop((tx, rx));
    assert!(!path(&name).exists(), "the new creator owns it");

    let name = unique("stale");
    let _c = Cleanup(name.clone());
    mpmc::Sender::<f64>::create(&name, 4, 4).unwrap().persist();
    kill_creator(&name);
    let _tx = mpmc::Receiver::<f64>::create_with(&name, 8, 2, &reclaim).unwrap();
    assert_eq!(shmbatch::inspect(&name).unwrap().capacity, 8);

    let name = unique("stale");
    let _c = Cleanup(name.clone());
    SharedArray::<f64>::create_from(&name, &[1.0])
        .unwrap()
        .persist();
    kill_creator(&name);
    let a = SharedArray::<f64>::create_from_with(&name, &[2.0, 3.0], &reclaim).unwrap();
    assert_eq!(
        SharedArray::<f64>::open(&name).unwrap().snapshot(),
        [2.0, 3.0]
    );
    drop(a);

    // open_or_create reclaims too, rather than open what nobody uses.
    let name = unique("stale");
    let _c = Cleanup(name.clone());
    SharedArray::<f64>::create_from(&name, &[1.0])
        .unwrap()
        .persist();
    kill_creator(&name);
    let a = SharedArray::<f64>::open_or_create(&name, 3, &reclaim).unwrap();
    assert_eq!(a.snapshot(), [0.0; 3]);
}

#[test]
fn reclaim_stale_leaves_a_segment_in_use_alone() {
    let reclaim = Options::new().reclaim_stale(true);
    // Its creator lives.
    let name = unique("in-use");
    let mut tx = spsc::Sender::<f64>::create(&name, 64).unwrap();
    assert!(matches!(
        spsc::Receiver::<f64>::create_with(&name, 64, &reclaim),
        Err(Error::AlreadyExists { .. })
    ));
    let mut rx = spsc::Receiver::<f64>::open(&name).unwrap();
    tx.send(&[1.0]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), &[1.0]);
    drop(rx);

    // Its creator died but a live process is attached.
    let name = unique("in-use");
    let _c = Cleanup(name.clone());
    spsc::Sender::<f64>::create(&name, 64).unwrap().persist();
    kill_creator(&name);
    let _rx = spsc::Receiver::<f64>::open(&name).unwrap();
    assert!(!shmbatch::inspect(&name).unwrap().is_stale());
    assert!(matches!(
        spsc::Sender::<f64>::create_with(&name, 64, &reclaim),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(path(&name).exists());

    // A file that is not a shmbatch segment is nobody's to reclaim.
    let name = unique("in-use");
    let _c = Cleanup(name.clone());
    std::fs::write(path(&name), vec![0u8; 4096]).unwrap();
    assert!(matches!(
        SharedArray::<f64>::create_with(&name, 4, &reclaim),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(path(&name)).unwrap(), vec![0u8; 4096]);
}

/// Run `f(i)` on `n` threads that start together.
fn at_once<R: Send + 'static>(
    n: usize,
    f: impl Fn(usize, &Barrier) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let start = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (start, f) = (Arc::clone(&start), Arc::clone(&f));
            thread::spawn(move || {
                start.wait();
                f(i, &start)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn open_or_create_from_two_threads_at_once_shares_one_spsc_queue() {
    for round in 0..50u64 {
        let name = unique("race");
        let n = name.clone();
        // Both attach before either drops (the creator removes the segment).
        let got = at_once(2, move |i, barrier| {
            let opts = Options::new();
            if i == 0 {
                let mut tx = spsc::Sender::<u64>::open_or_create(&n, 64, &opts).unwrap();
                barrier.wait();
                tx.send(&[round, i as u64]).unwrap();
                barrier.wait();
                Vec::new()
            } else {
                let mut rx = spsc::Receiver::<u64>::open_or_create(&n, 64, &opts).unwrap();
                barrier.wait();
                let got = rx.recv_timeout(SOON).unwrap().to_vec();
                barrier.wait();
                got
            }
        });
        assert_eq!(got[1], [round, 0]);
        assert!(!path(&name).exists());
    }
}

#[test]
fn open_or_create_from_four_threads_at_once_shares_one_mpmc_queue() {
    for _ in 0..20 {
        let name = unique("race");
        let n = name.clone();
        let got = at_once(4, move |i, barrier| {
            let opts = Options::new();
            let mut out = Vec::new();
            if i % 2 == 0 {
                let tx = mpmc::Sender::<u64>::open_or_create(&n, 8, 4, &opts).unwrap();
                barrier.wait();
                for k in 0..10 {
                    tx.send(&[i as u64 * 100 + k]).unwrap();
                }
                barrier.wait();
            } else {
                let rx = mpmc::Receiver::<u64>::open_or_create(&n, 8, 4, &opts).unwrap();
                barrier.wait();
                while out.len() < 10 {
                    out.extend_from_slice(&rx.recv_timeout(SOON).unwrap());
                }
                barrier.wait();
            }
            out
        });
        let mut all: Vec<u64> = got.into_iter().flatten().collect();
        all.sort_unstable();
        let mut want: Vec<u64> = (0..10).chain(200..210).collect();
        want.sort_unstable();
        assert_eq!(all, want);
        assert!(!path(&name).exists());
    }
}

#[test]
fn open_or_create_from_three_threads_at_once_shares_one_array() {
    for _ in 0..20 {
        let name = unique("race");
        let n = name.clone();
        let sums = at_once(3, move |_, barrier| {
            let a = SharedArray::<u64>::open_or_create(&n, 2, &Options::new()).unwrap();
            barrier.wait();
            for _ in 0..100 {
                a.fetch_add(1, 1).unwrap();
            }
            barrier.wait();
            a.load(1).unwrap()
        });
        assert_eq!(sums, [300; 3]);
        assert!(!path(&name).exists());
    }
}

#[test]
fn open_or_create_opens_an_existing_segment_as_it_is() {
    let name = unique("existing");
    let a = SharedArray::<f64>::create_from(&name, &[1.0, 2.0]).unwrap();
    let b = SharedArray::<f64>::open_or_create(&name, 100, &Options::new()).unwrap();
    assert_eq!(b.len(), 2);
    drop(b);
    assert!(path(&name).exists(), "the opener does not own it");
    assert!(matches!(
        SharedArray::<u64>::open_or_create(&name, 2, &Options::new()),
        Err(Error::TypeMismatch { .. })
    ));
    drop(a);
    assert!(!path(&name).exists());
}

mod tick {
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Tick {
        pub price: f64,
        pub size: f64,
    }
}
use tick::Tick;

#[test]
fn a_tag_set_in_options_is_recorded_and_compared() {
    let v1 = Options::new().tag("tick/v1");
    let name = unique("tag");
    let _tx = spsc::Sender::<Tick>::create_with(&name, 64, &v1).unwrap();
    assert_eq!(shmbatch::inspect(&name).unwrap().tag, "tick/v1");
    drop(spsc::Receiver::<Tick>::open_with(&name, &v1).unwrap());
    // An untagged opener trusts size and alignment.
    drop(spsc::Receiver::<Tick>::open(&name).unwrap());
    match spsc::Receiver::<Tick>::open_with(&name, &Options::new().tag("tick/v2")) {
        Err(Error::TypeMismatch {
            found, expected, ..
        }) => assert_eq!((found.as_str(), expected.as_str()), ("tick/v1", "tick/v2")),
        other => panic!("{other:?}"),
    }
    // Tags tell apart types that size and alignment cannot.
    let name = unique("tag");
    let _a =
        SharedArray::<[f64; 2]>::create_with(&name, 4, &Options::new().tag("(2,)<f8")).unwrap();
    assert!(SharedArray::<[u64; 2]>::open(&name).is_ok());
    assert!(matches!(
        SharedArray::<[u64; 2]>::open_with(&name, &Options::new().tag("(2,)<u8")),
        Err(Error::TypeMismatch { .. })
    ));
    // A tag replaces the built-in one: an `f64` opener's "<f8" no longer matches.
    let name = unique("tag");
    let _q = mpmc::Sender::<f64>::create_with(&name, 4, 4, &Options::new().tag("kelvin")).unwrap();
    assert!(matches!(
        mpmc::Receiver::<f64>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    mpmc::Receiver::<f64>::open_with(&name, &Options::new().tag("kelvin")).unwrap();

    let name = unique("tag");
    let long = "x".repeat(shmbatch::layout::TAG_MAX + 1);
    for bad in ["", "é", "a\nb", long.as_str()] {
        let opts = Options::new().tag(bad);
        assert!(
            matches!(
                spsc::Sender::<Tick>::create_with(&name, 64, &opts),
                Err(Error::UnsupportedType { .. })
            ),
            "{bad:?}"
        );
        assert!(matches!(
            SharedArray::<Tick>::open_with(&name, &opts),
            Err(Error::UnsupportedType { .. })
        ));
    }
    assert!(!path(&name).exists());
}

#[test]
fn max_batch_bounds_what_an_spsc_sender_accepts() {
    let name = unique("batch");
    let mut tx =
        spsc::Sender::<f64>::create_with(&name, 64, &Options::new().max_batch(10)).unwrap();
    let rx = spsc::Receiver::<f64>::open(&name).unwrap();
    assert_eq!((tx.max_batch(), rx.max_batch()), (10, 10));
    tx.send(&[1.0; 10]).unwrap();
    assert_eq!(
        tx.try_send(&[1.0; 11]).unwrap_err(),
        TrySendError::TooLarge { len: 11, max: 10 }
    );
    assert!(matches!(
        tx.try_reserve(11),
        Err(TrySendError::TooLarge { len: 11, max: 10 })
    ));
    drop((tx, rx));

    // The default is the most the capacity allows, and no more is accepted.
    let name = unique("batch");
    let most = spsc::Sender::<f64>::create(&name, 64).unwrap().max_batch();
    assert!(most >= 32);
    let same = spsc::Receiver::<f64>::create_with(&name, 64, &Options::new().max_batch(most));
    assert_eq!(same.unwrap().max_batch(), most);
    for bad in [0, most + 1, usize::MAX] {
        match spsc::Sender::<f64>::create_with(&name, 64, &Options::new().max_batch(bad)) {
            Err(Error::InvalidSize {
                what: "max_batch",
                reason,
                ..
            }) => assert!(reason.contains(&format!("1..={most}")), "{reason}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(!path(&name).exists());

    // MPMC takes max_batch as an argument.
    let name = unique("batch");
    let q = mpmc::Sender::<f64>::create_with(&name, 4, 4, &Options::new().max_batch(2)).unwrap();
    assert_eq!(q.max_batch(), 4);
}
