//! The ringfire peer: its SPMC ring between two processes, lossless; and the
//! same ring from one producer to several consumer processes (broadcast).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use ::ringfire::header::RingHeader;
use ::ringfire::{FlowControl, FutexWait, RingConsumer, RingProducer, RingProducerBuilder};
use ::ringfire::{RingfireError, WaitStrategy};
use memmap2::MmapMut;

use super::broadcast::{self, Subscribers, BATCH};
use super::{on_big_stack, ring_elements, shm_path, Backoff, ShmPeer, Skipped};

/// The batch sizes compiled in: a ringfire record is a fixed-size `T`, here
/// `[f64; N]` with `N` a constant.
const SIZES: &str = "1, 16, 256, 1024, 4096, 65536";

/// Calls `$f::<N>($args)` for the `N` equal to `$batch`, or gives the error for
/// a size not compiled in.
macro_rules! by_size {
    ($batch:expr, $f:ident ( $($arg:expr),* )) => {
        match $batch {
            1 => $f::<1>($($arg),*),
            16 => $f::<16>($($arg),*),
            256 => $f::<256>($($arg),*),
            1024 => $f::<1024>($($arg),*),
            4096 => $f::<4096>($($arg),*),
            65536 => $f::<65536>($($arg),*),
            n => Err(format!(
                "ringfire records are fixed-size `[f64; N]` and only N = {SIZES} are built in, not {n}"
            )),
        }
    };
}

/// Slots in the ring for records of `n` elements: as many elements as
/// shmbatch's ring holds (4 to 16384 records; all powers of two, as ringfire
/// requires).
fn slots(n: usize) -> u64 {
    (ring_elements(n) / n).next_power_of_two() as u64
}

/// A record of `N` elements on the heap (512 KiB at most), all `1.0`.
fn record<const N: usize>() -> Box<[f64; N]> {
    vec![1.0; N]
        .into_boxed_slice()
        .try_into()
        .expect("N elements")
}

fn err(what: &str, e: RingfireError) -> String {
    format!("{what}: {e}")
}

/// ringfire 0.5.2 between two processes: a child creates an SPMC ring
/// (`RingProducer`, `FlowControl::LosslessBackpressure`, one reader slot) in
/// `/dev/shm` and pushes records; this process attaches a `RingConsumer` from
/// the oldest record before the first push, so that nothing is lost. A record
/// is one batch, `[f64; batch]` (a const generic: only the bench's sizes 1, 16,
/// 256, 1024, 4096 and 65536 are built in, any other is skipped); the ring
/// holds as many elements as shmbatch's (4 to 16384 records). `push(&record)`
/// copies the producer's local record in; `recv_batch` of one record copies it
/// out into a local record (`try_recv`/`recv_blocking` return it by value, which
/// at 4096 elements and more takes LLVM minutes to compile). The producer waits
/// for room with ringfire's own back-off (`wait_for_headroom`: spin, yield, 10 µs
/// sleeps), the consumer with its `FutexWait` (32 spins, then a futex sleep) on
/// the ring's header, as `recv_blocking` does. Every record carries its number
/// in element 0, checked on arrival: a lost or reordered record is an error.
/// Elements per second received, the clock started by the first record.
pub fn ringfire(exe: &Path, batch: usize, dur: Duration) -> Result<f64, Skipped> {
    on_big_stack(|| by_size!(batch, receive(exe, dur)))
}

fn receive<const N: usize>(exe: &Path, dur: Duration) -> Result<f64, Skipped> {
    let path = shm_path("ringfire");
    let mut peer = ShmPeer::new(path.clone());
    // The producer exits by itself once this reader has deregistered.
    peer.grace = Duration::from_secs(2);
    let child = peer.spawn(
        exe,
        &[
            "ringfire-send".into(),
            N.to_string(),
            path.to_string_lossy().into_owned(),
        ],
    )?;
    // The child says `ready` once the ring exists; it pushes nothing before this
    // process has registered as its reader.
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("read the producer's output: {e}"))?;
    if line.trim() != "ready" {
        return Err(peer
            .exited()
            .unwrap_or_else(|| format!("unexpected output from the producer: {line:?}")));
    }
    let mut rx = RingConsumer::<[f64; N]>::builder()
        .start_from_oldest()
        .attach(&path)
        .map_err(|e| err("attach", e))?;
    // The consumer keeps its header to itself: a second mapping of the same file
    // gives `FutexWait` the same futex word and counters.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    // SAFETY: the file is the ring `attach` has just validated, and it keeps its
    // size while mapped (its producer created it at full size and never resizes
    // it, and it is removed only after this mapping is dropped, at the end here).
    let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| format!("map the ring: {e}"))?;
    drop(file);
    // SAFETY: the ring starts with its `RingHeader` (`#[repr(C)]`, 128-byte
    // aligned: the mapping is page-aligned and longer than it, as `attach`
    // checked); the fields two processes share are atomics, and ringfire itself
    // takes `&RingHeader` of a mapping so.
    let header: &RingHeader = unsafe { &*map.as_ptr().cast::<RingHeader>() };
    let mut wait = FutexWait::default();
    let mut out = record::<N>();
    // One record into `out`, waiting as `recv_blocking` does, and every 64 waits
    // looking whether the producer is still there.
    let mut waits = 0u32;
    let mut next = 0u64;
    let mut take = |rx: &mut RingConsumer<[f64; N]>, peer: &mut ShmPeer| -> Result<(), Skipped> {
        while rx.recv_batch(std::slice::from_mut(&mut *out)) == 0 {
            waits = waits.wrapping_add(1);
            if waits.is_multiple_of(64) {
                if let Some(e) = peer.exited() {
                    return Err(e);
                }
            }
            wait.wait(header, rx.cursor());
        }
        wait.reset();
        if out[0] != next as f64 {
            return Err(format!("record {next} lost: got record {}", out[0]));
        }
        next += 1;
        Ok(())
    };
    // The first record starts the clock (the child's start-up is not measured).
    take(&mut rx, &mut peer)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            take(&mut rx, &mut peer)?;
            n += N as u64;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::hint::black_box(&out);
    drop(rx); // deregisters: the producer sees no reader and exits
    drop(map);
    drop(peer); // waits for it, removes the file if it has not
    Ok(rate)
}

/// The child end, `ringfire-send BATCH PATH`: creates the ring at `PATH`, says
/// `ready`, waits for the reader to register, then pushes records numbered in
/// element 0 until the reader has gone.
pub(super) fn send(batch: usize, path: &str) -> Result<(), String> {
    on_big_stack(|| by_size!(batch, produce(path)))
}

fn produce<const N: usize>(path: &str) -> Result<(), String> {
    let mut tx: RingProducer<[f64; N]> = RingProducerBuilder::new(slots(N))
        .flow_control(FlowControl::LosslessBackpressure)
        .max_readers(1)
        .build(path)
        .map_err(|e| err("create the ring", e))?;
    {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        writeln!(o, "ready")
            .and_then(|()| o.flush())
            .map_err(|e| format!("write ready: {e}"))?;
    }
    let registered =
        |tx: &RingProducer<[f64; N]>| tx.registry().is_some_and(|reg| reg.min_cursor().is_some());
    let since = Instant::now();
    let mut b = Backoff::default();
    while !registered(&tx) {
        if since.elapsed() > Duration::from_secs(10) {
            return Err("no reader registered within 10 s".into());
        }
        b.snooze();
    }
    let mut src = record::<N>();
    // Look for the reader about every 4096 elements.
    let every = (4096 / N).max(1) as u64;
    let mut k = 0u64;
    loop {
        src[0] = k as f64;
        tx.push(&src);
        k += 1;
        if k.is_multiple_of(every) && !registered(&tx) {
            return Ok(()); // dropping `tx` removes the file
        }
    }
}

/// ringfire 0.5.2 as a broadcast (see [`crate::broadcast`]): this process
/// creates the SPMC ring (`FlowControl::LosslessBackpressure`, `subs` reader
/// slots, records of [`BATCH`] `f64`, as many elements as shmbatch's ring: 64
/// records) and pushes records numbered in element 0; each of `subs` child
/// processes attaches a `RingConsumer` from the oldest record before the first
/// push and copies every record out with `recv_batch`, waiting with
/// `FutexWait` as in [`ringfire()`]. Every reader sees every record: ringfire's
/// ring is single-producer, multi-consumer with a cursor per reader, and
/// lossless flow control holds the producer back for the slowest. Elements per
/// second per reader.
pub fn ringfire_broadcast(exe: &Path, subs: usize, dur: Duration) -> Result<f64, Skipped> {
    let path = shm_path("ringfire-bcast");
    let mut readers = Subscribers::new(Some(path.clone()));
    let mut tx: RingProducer<[f64; BATCH]> = RingProducerBuilder::new(slots(BATCH))
        .flow_control(FlowControl::LosslessBackpressure)
        .max_readers(subs)
        .build(&path)
        .map_err(|e| err("create the ring", e))?;
    let args = ["ringfire-sub".into(), path.to_string_lossy().into_owned()];
    readers.spawn(exe, subs, &args)?;
    let mut src = record::<BATCH>();
    broadcast::publish(&mut readers, dur, |x, _: &mut Subscribers| {
        src[0] = x;
        // Waits for the slowest reader (ringfire's back-off, which also drops
        // the slots of readers whose process has gone).
        tx.push(&src);
        Ok::<(), String>(())
    })
}

/// The child end of [`ringfire_broadcast`], `ringfire-sub PATH`: attaches to
/// the ring at `PATH` from its oldest record and reads until the end mark.
pub(super) fn subscribe(path: &str) -> Result<(), String> {
    let mut rx = RingConsumer::<[f64; BATCH]>::builder()
        .start_from_oldest()
        .attach(path)
        .map_err(|e| err("attach", e))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: as in `receive`: the ring `attach` validated, at full size until
    // its producer (the parent, which waits for this process) drops it.
    let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| format!("map the ring: {e}"))?;
    drop(file);
    // SAFETY: as in `receive`.
    let header: &RingHeader = unsafe { &*map.as_ptr().cast::<RingHeader>() };
    let parent = std::os::unix::process::parent_id();
    let mut wait = FutexWait::default();
    let mut out = record::<BATCH>();
    let mut waits = 0u32;
    broadcast::subscribe(|| {
        while rx.recv_batch(std::slice::from_mut(&mut *out)) == 0 {
            waits = waits.wrapping_add(1);
            if waits.is_multiple_of(64) && std::os::unix::process::parent_id() != parent {
                return Err("the producer has gone".into());
            }
            wait.wait(header, rx.cursor());
        }
        wait.reset();
        Ok(out[0])
    })
}
