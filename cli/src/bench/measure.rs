//! The measurements: shmbatch between processes, and this machine's limits.
//!
//! The other end of every cross-process measurement is this executable again,
//! started as `shmbatch bench-peer <what> ...`; [`child`] runs it.

use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmbatch::{mpmc, spsc, SharedArray};
use shmbatch_bench_peers::Backoff;

use crate::Result;

/// A unique segment name for one measurement.
pub(super) fn seg(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("shmbatch-bench-{}-{n}-{tag}", std::process::id())
}

fn spawn(args: &[&str]) -> Result<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .arg("bench-peer")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?)
}

fn child_output(c: Child) -> Result<String> {
    let out = c.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("bench peer failed: {}", out.status).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Ring capacity in elements for batches of `batch`.
pub(super) fn ring_for(batch: usize) -> usize {
    (4 * batch).max(16384)
}

/// SPSC between two processes: elements per second received. `zero_copy` uses
/// `reserve`/`commit` and in-place `recv`; otherwise `send` and `recv_into`.
pub(crate) fn spsc_throughput(batch: usize, zero_copy: bool, dur: Duration) -> Result<f64> {
    let name = seg("spsc");
    let mut rx = spsc::Receiver::<f64>::create(&name, ring_for(batch))?;
    let child = spawn(&[
        "spsc-send",
        &name,
        &batch.to_string(),
        if zero_copy { "zc" } else { "copy" },
    ])?;
    let mut out = Vec::with_capacity(batch);
    let mut n = 0u64;
    let mut sink = 0.0;
    // The first batch starts the clock (the child's start-up is not measured).
    rx.recv_into(&mut out)?;
    let start = Instant::now();
    while start.elapsed() < dur {
        for _ in 0..32 {
            if zero_copy {
                let b = rx.recv()?;
                sink += b[0] + b[b.len() - 1];
                n += b.len() as u64;
            } else {
                n += rx.recv_into(&mut out)? as u64;
            }
        }
    }
    let t = start.elapsed();
    std::hint::black_box(sink);
    drop(rx); // the sender gets Disconnected and exits
    child_output(child)?;
    Ok(n as f64 / t.as_secs_f64())
}

/// Latency percentiles of a round trip, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// The mean round trip (what a request/response loop gets per second).
    pub mean: f64,
    pub samples: u64,
}

impl Latency {
    pub(super) fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            samples: h.len(),
        }
    }
}

pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Ping-pong of one `f64` over two SPSC segments between two processes.
pub(crate) fn spsc_pingpong(dur: Duration) -> Result<Latency> {
    let (a, b) = (seg("ping"), seg("pong"));
    let mut tx = spsc::Sender::<f64>::create(&a, 1024)?;
    let mut rx = spsc::Receiver::<f64>::create(&b, 1024)?;
    let child = spawn(&["spsc-pong", &a, &b])?;
    let mut h = histogram();
    let mut x = 0.0;
    let warm = Instant::now();
    while warm.elapsed() < dur / 10 {
        tx.send(&[x])?;
        x = rx.recv()?[0] + 1.0;
    }
    let start = Instant::now();
    while start.elapsed() < dur {
        let t = Instant::now();
        tx.send(&[x])?;
        x = rx.recv()?[0] + 1.0;
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    drop(tx);
    drop(rx);
    child_output(child)?;
    Ok(Latency::of(&h))
}

/// MPMC between processes: `producers` sender processes, `consumers` receivers
/// (this process and `consumers - 1` more); batches of one `f64`. Elements per
/// second received in total.
pub(crate) fn mpmc_throughput(producers: usize, consumers: usize, dur: Duration) -> Result<f64> {
    let name = seg("mpmc");
    let rx = mpmc::Receiver::<f64>::create(&name, 4096, 1)?;
    let ms = dur.as_millis().to_string();
    let mut others = Vec::new();
    for _ in 1..consumers {
        others.push(spawn(&["mpmc-recv", &name, &ms])?);
    }
    let mut senders = Vec::new();
    for _ in 0..producers {
        senders.push(spawn(&["mpmc-send", &name])?);
    }
    let mut rate = mpmc_drain(&rx, dur)?;
    drop(rx);
    for c in others {
        rate += child_output(c)?.parse::<f64>()?;
    }
    for c in senders {
        child_output(c)?;
    }
    Ok(rate)
}

/// Receive from an MPMC queue for `dur` (the first batch starts the clock):
/// elements per second.
fn mpmc_drain(rx: &mpmc::Receiver<f64>, dur: Duration) -> Result<f64> {
    let mut out = Vec::new();
    rx.recv_into(&mut out)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            n += rx.recv_into(&mut out)? as u64;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// SharedArray: this process and one more update one element for `dur`, under the
/// lock (`locked`) or with `fetch_add`. Updates per second, both together.
pub(crate) fn array_rate(locked: bool, dur: Duration) -> Result<f64> {
    let name = seg("array");
    let a = SharedArray::<f64>::create(&name, 1024)?;
    let mode = if locked { "lock" } else { "add" };
    let child = spawn(&["array", &name, mode, &dur.as_millis().to_string()])?;
    let rate = array_loop(&a, locked, dur);
    let other: f64 = child_output(child)?.parse()?;
    Ok(rate + other)
}

fn array_loop(a: &SharedArray<f64>, locked: bool, dur: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..256 {
            if locked {
                let _ = a.write(|xs| xs[0] += 1.0);
            } else {
                let _ = a.fetch_add(0, 1.0);
            }
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Single-core `memcpy` of `batch` `f64` from one buffer to another, elements per
/// second. Both buffers stay cache-resident, as a ring of the same size would.
pub(crate) fn memcpy(batch: usize, dur: Duration) -> f64 {
    let src = vec![1.0f64; batch];
    let mut dst = vec![0.0f64; batch];
    let start = Instant::now();
    let mut n = 0u64;
    let reps = (65536 / batch).max(1);
    while start.elapsed() < dur {
        for _ in 0..reps {
            std::hint::black_box(&mut dst).copy_from_slice(std::hint::black_box(&src));
        }
        n += (reps * batch) as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// A bare shared mapping for the limits (no shmbatch code involved): the atomic
/// ping-pong and the cross-core handoff.
struct Bare {
    ptr: NonNull<u8>,
    len: usize,
}

/// Length of the ping-pong's mapping; also where the handoff's data starts.
const BARE_LEN: usize = 4096;
/// Offset of the second word (a line of its own, away from the first).
const PONG: usize = 128;
/// Offset of the handoff's stop word.
const STOP: usize = 256;

impl Bare {
    fn map(fd: &OwnedFd, len: usize) -> Result<Bare> {
        // SAFETY: a fresh shared mapping at an address the kernel picks.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )
        }?;
        Ok(Bare {
            ptr: NonNull::new(p.cast()).expect("mmap never returns null"),
            len,
        })
    }

    fn create(name: &str, len: usize) -> Result<Bare> {
        let fd = rustix::shm::open(
            name,
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
            rustix::fs::Mode::from_raw_mode(0o600),
        )?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        Bare::map(&fd, len)
    }

    /// Open and map the whole of `name`, as long as its creator made it.
    fn open(name: &str) -> Result<Bare> {
        let fd = rustix::shm::open(name, rustix::shm::OFlags::RDWR, rustix::fs::Mode::empty())?;
        let len = usize::try_from(rustix::fs::fstat(&fd)?.st_size)?;
        if len < BARE_LEN {
            return Err(format!("bench mapping {name} is too short ({len} bytes)").into());
        }
        Bare::map(&fd, len)
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset + 8 <= self.len && offset.is_multiple_of(8));
        // SAFETY: in bounds of the mapping (asserted), 8-aligned (page-aligned
        // base), and shared memory holds no Rust invariants besides those of the
        // atomic, which is valid for any bits.
        unsafe { self.ptr.add(offset).cast::<AtomicU64>().as_ref() }
    }

    /// A raw pointer to `len` bytes at `offset`, for copies in and out of the
    /// mapping (never a reference: the peer process writes the same bytes at
    /// other times).
    fn bytes(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(offset <= self.len && len <= self.len - offset);
        // SAFETY: offset is in bounds of the mapping (asserted).
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        // SAFETY: mapped by `map` with self.len; no reference outlives self.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Wait until `w` holds something other than `old`, backing off as shmbatch does.
fn wait_change(w: &AtomicU64, old: u64) -> u64 {
    let mut b = Backoff::default();
    loop {
        // Pairs with the peer's Release store.
        let v = w.load(Ordering::Acquire);
        if v != old {
            return v;
        }
        b.snooze();
    }
}

/// Geometry of a cross-core handoff of batches of `batch` `f64`: bytes per batch
/// and the number of batch buffers, filling the same ring size as shmbatch's.
fn handoff_geometry(batch: usize) -> (usize, u64) {
    let bytes = batch * 8;
    (bytes, (ring_for(batch) * 8 / bytes) as u64)
}

/// The cross-core handoff: this process and a child share a bare mapping of
/// `ring_for(batch)` `f64` cut into fixed buffers of one batch. The child copies a
/// batch into the next buffer and publishes a counter (Release); this process
/// waits for the counter (Acquire), copies the batch out and publishes its own
/// counter, which frees the buffer. Each side re-reads the other's counter only
/// when it has caught up with its last copy of it. No queue logic at all: no
/// length words, wrap, validation, futex or liveness. This is the most any
/// cross-process queue with a copy in and a copy out can do on this machine at
/// this batch size: every byte moves from one core's cache to the other's.
pub(crate) fn handoff(batch: usize, dur: Duration) -> Result<f64> {
    let (bytes, bufs) = handoff_geometry(batch);
    let name = format!("/{}", seg("handoff"));
    let bare = Bare::create(&name, BARE_LEN + ring_for(batch) * 8)?;
    let child = spawn(&["handoff-send", &name, &batch.to_string()]);
    let (written, read, stop) = (bare.word(0), bare.word(PONG), bare.word(STOP));
    let run = || -> Result<f64> {
        let mut child = child?;
        let mut b = Backoff::default();
        // Pairs with the child's first Release store of `written`.
        while written.load(Ordering::Acquire) == 0 {
            if let Some(status) = child.try_wait()? {
                return Err(format!("handoff peer exited early: {status}").into());
            }
            b.snooze();
        }
        let mut out = vec![0.0f64; batch];
        let (mut i, mut seen) = (0u64, 0u64);
        let mut take = |i: &mut u64| {
            if *i == seen {
                seen = wait_change(written, seen);
            }
            let src = bare.bytes(BARE_LEN + (*i % bufs) as usize * bytes, bytes);
            // SAFETY: buffer i is written and published (i < seen, read with
            // Acquire above: pairs with the child's Release store of `written`)
            // and the child does not touch it again until `read` passes i; `out`
            // holds exactly `bytes` bytes and is not shared.
            unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr().cast(), bytes) };
            *i += 1;
            // Pairs with the child's Acquire load of `read`: frees buffer i - 1.
            read.store(*i, Ordering::Release);
        };
        take(&mut i); // the first batch starts the clock
        let start = Instant::now();
        while start.elapsed() < dur {
            for _ in 0..32 {
                take(&mut i);
            }
        }
        let t = start.elapsed();
        std::hint::black_box(&out);
        stop.store(1, Ordering::Release);
        child_output(child)?;
        Ok((i - 1) as f64 * batch as f64 / t.as_secs_f64())
    };
    let r = run();
    let _ = rustix::shm::unlink(name.as_str());
    r
}

/// The child end of [`handoff`].
fn handoff_send(name: &str, batch: usize) -> Result {
    let bare = Bare::open(name)?;
    let (bytes, bufs) = handoff_geometry(batch);
    if bare.len < BARE_LEN + bufs as usize * bytes {
        return Err("handoff mapping too short".into());
    }
    let src: Vec<f64> = (0..batch).map(|i| i as f64).collect();
    let (written, read, stop) = (bare.word(0), bare.word(PONG), bare.word(STOP));
    let (mut i, mut freed) = (0u64, 0u64);
    loop {
        if i - freed == bufs {
            let mut b = Backoff::default();
            loop {
                // Pairs with the parent's Release store of `read`.
                freed = read.load(Ordering::Acquire);
                if i - freed < bufs || stop.load(Ordering::Acquire) != 0 {
                    break;
                }
                b.snooze();
            }
            if i - freed == bufs {
                return Ok(());
            }
        }
        let dst = bare.bytes(BARE_LEN + (i % bufs) as usize * bytes, bytes);
        // SAFETY: buffer i is free (i - freed < bufs: the parent has copied out
        // batch i - bufs, Acquire above) and the parent does not read it until
        // `written` passes i; `src` holds exactly `bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr().cast(), dst, bytes) };
        i += 1;
        // Pairs with the parent's Acquire load of `written` in wait_change.
        written.store(i, Ordering::Release);
    }
}

/// The round trip of a bare atomic ping-pong between two processes over a shared
/// mapping: the floor for any shared-memory queue's round trip.
pub(crate) fn bare_pingpong(dur: Duration) -> Result<Latency> {
    let name = format!("/{}", seg("bare"));
    let bare = Bare::create(&name, BARE_LEN)?;
    let child = spawn(&["bare-pong", &name]);
    let (ping, pong) = (bare.word(0), bare.word(PONG));
    let mut h = histogram();
    let run = || -> Result<()> {
        let mut child = child?;
        let mut i = 1u64;
        let round = |i: u64| {
            // Pairs with the child's Acquire load in wait_change.
            ping.store(i, Ordering::Release);
            wait_change(pong, i - 1);
        };
        let warm = Instant::now();
        while warm.elapsed() < dur / 10 {
            round(i);
            i += 1;
        }
        let start = Instant::now();
        while start.elapsed() < dur {
            let t = Instant::now();
            round(i);
            h.saturating_record(t.elapsed().as_nanos() as u64);
            i += 1;
        }
        ping.store(u64::MAX, Ordering::Release);
        child.wait()?;
        Ok(())
    };
    let r = run();
    let _ = rustix::shm::unlink(name.as_str());
    r?;
    Ok(Latency::of(&h))
}

/// The other end of a measurement (`shmbatch bench-peer ...`).
pub(crate) fn child(args: &[String]) -> Result {
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match a(0) {
        "spsc-send" => {
            let mut tx = spsc::Sender::<f64>::open(a(1))?;
            let batch: usize = a(2).parse()?;
            let src: Vec<f64> = (0..batch).map(|i| i as f64).collect();
            if a(3) == "zc" {
                let mut x = 0.0;
                while let Ok(mut r) = tx.reserve(batch) {
                    r.fill(x);
                    r.commit();
                    x += 1.0;
                }
            } else {
                while tx.send(&src).is_ok() {}
            }
        }
        "spsc-pong" => {
            let mut rx = spsc::Receiver::<f64>::open(a(1))?;
            let mut tx = spsc::Sender::<f64>::open(a(2))?;
            while let Ok(b) = rx.recv() {
                let x = b[0];
                drop(b);
                if tx.send(&[x]).is_err() {
                    break;
                }
            }
        }
        "mpmc-send" => {
            let tx = mpmc::Sender::<f64>::open(a(1))?;
            let mut x = 0.0;
            while tx.send(&[x]).is_ok() {
                x += 1.0;
            }
        }
        "mpmc-recv" => {
            let rx = mpmc::Receiver::<f64>::open(a(1))?;
            let dur = Duration::from_millis(a(2).parse()?);
            println!("{}", mpmc_drain(&rx, dur)?);
        }
        "array" => {
            let arr = SharedArray::<f64>::open(a(1))?;
            let dur = Duration::from_millis(a(3).parse()?);
            println!("{}", array_loop(&arr, a(2) == "lock", dur));
        }
        "handoff-send" => handoff_send(a(1), a(2).parse()?)?,
        "bare-pong" => {
            let bare = Bare::open(a(1))?;
            let (ping, pong) = (bare.word(0), bare.word(PONG));
            let mut last = 0;
            loop {
                last = wait_change(ping, last);
                if last == u64::MAX {
                    break;
                }
                // Pairs with the parent's Acquire load in wait_change.
                pong.store(last, Ordering::Release);
            }
        }
        _ => {
            if let Some(r) = super::broadcast::child(args) {
                return r;
            }
            if !shmbatch_bench_peers::child(args) {
                return Err(format!("unknown bench peer {:?}", a(0)).into());
            }
        }
    }
    Ok(())
}
