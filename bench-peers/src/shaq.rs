//! The shaq peer: its SPSC FIFO between two processes, and its broadcast queue
//! from one producer to several consumer processes.

use std::fs::{File, OpenOptions};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::{Duration, Instant};

use ::shaq::broadcast::{self as shaq_bcast, BroadcastConfig, ProducerId};
use ::shaq::error::WaitError;
use ::shaq::spsc::{minimum_file_size, Consumer, Producer};

use super::broadcast::{self, Subscribers, BATCH};
use super::{ring_elements, shm_path, Backoff, ShmPeer, Skipped};

/// How long one wait for data lasts before this process looks whether the
/// producer is still there.
const WAIT: Duration = Duration::from_millis(50);

/// shaq 4.3.0 (the newest that builds on stable: 4.4 and 5.x need an unstable
/// `usize::isolate_highest_one`) between two processes: this process creates an
/// SPSC queue of `f64` in a file in `/dev/shm` (`spsc::Consumer::create`), as
/// many elements as shmbatch's ring (the larger of 4 batches and 16384), and a
/// child joins it as the producer. A batch is `batch` consecutive `f64` items:
/// the child copies a local batch in through a `write_batch` (`try_write` per
/// element, published once when the batch is in, or when the queue is full
/// part-way, retrying the rest with the `Backoff`: shaq has no wait for room);
/// this process copies them out into a local batch from
/// `reserve_read_batch_timeout` (shaq's futex wait) as slices, `batch - filled`
/// at most at a time. Element 0 of every batch carries its number, checked when
/// the batch is complete: a lost or reordered batch is an error. Elements per
/// second received, the clock started by the first batch; the child, which
/// cannot tell that the consumer has gone, is then ended.
pub fn shaq(exe: &Path, batch: usize, dur: Duration) -> Result<f64, Skipped> {
    if batch == 0 {
        return Err("a batch of no elements".into());
    }
    let path = shm_path("shaq");
    let mut peer = ShmPeer::new(path.clone());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    // Page-rounded: the queue takes the largest power of two of items that fits.
    let size = minimum_file_size::<f64>(ring_elements(batch)).next_multiple_of(4096);
    // SAFETY: the file was just created by this process, which initialises it
    // once, here, as the only consumer; the one producer is the child, which
    // joins it after this returns with the same `T` (`f64`, valid for any bits,
    // no drop).
    let mut rx = unsafe { Consumer::<f64>::create(&file, size) }
        .map_err(|e| format!("create the queue: {e}"))?;
    drop(file); // the mapping stays
    peer.spawn(
        exe,
        &[
            "shaq-send".into(),
            batch.to_string(),
            path.to_string_lossy().into_owned(),
        ],
    )?;
    let mut out = vec![0.0f64; batch];
    let mut next = 0u64;
    // Receives one whole batch into `out` and checks its number.
    let mut take = |rx: &mut Consumer<f64>, peer: &mut ShmPeer| -> Result<(), Skipped> {
        let mut filled = 0;
        while filled < batch {
            let max = NonZeroUsize::new(batch - filled).expect("filled < batch");
            match rx.reserve_read_batch_timeout(max, WAIT) {
                Ok(r) => {
                    let (a, b) = r.as_slices();
                    out[filled..filled + a.len()].copy_from_slice(a);
                    filled += a.len();
                    out[filled..filled + b.len()].copy_from_slice(b);
                    filled += b.len();
                }
                Err(WaitError::Timeout) => {
                    if let Some(e) = peer.exited() {
                        return Err(e);
                    }
                }
            }
        }
        if out[0] != next as f64 {
            return Err(format!("batch {next} lost: got batch {}", out[0]));
        }
        next += 1;
        Ok(())
    };
    // The first batch starts the clock (the child's start-up is not measured).
    take(&mut rx, &mut peer)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            take(&mut rx, &mut peer)?;
            n += batch as u64;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::hint::black_box(&out);
    drop(rx);
    drop(peer); // ends the child, removes the file
    Ok(rate)
}

/// The child end, `shaq-send BATCH PATH`: joins the queue at `PATH` as its
/// producer and writes batches numbered in element 0 until it is ended (or this
/// process's parent has gone).
pub(super) fn send(batch: usize, path: &str) -> Result<(), String> {
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: the parent created and initialised the queue before starting this
    // process, as its only consumer; this process is its only producer, with the
    // same `T` (`f64`).
    let mut tx = unsafe { Producer::<f64>::join(&file) }.map_err(|e| format!("join: {e}"))?;
    drop(file);
    let parent = std::os::unix::process::parent_id();
    let mut src = vec![1.0f64; batch];
    let mut k = 0u64;
    loop {
        src[0] = k as f64;
        let (mut i, mut b, mut full) = (0, Backoff::default(), 0u32);
        while i < batch {
            {
                let mut w = tx.write_batch(); // published when dropped
                while i < batch && w.try_write(src[i]).is_ok() {
                    i += 1;
                }
            }
            if i < batch {
                full = full.wrapping_add(1);
                if full.is_multiple_of(1024) && std::os::unix::process::parent_id() != parent {
                    return Ok(()); // orphaned: nobody reads any more
                }
                b.snooze();
            }
        }
        k += 1;
    }
}

/// shaq 4.3.0's broadcast queue (`shaq::broadcast`, lossless: a producer
/// cannot overwrite a cell every consumer has not read) as a broadcast (see
/// [`crate::broadcast`]): this process creates it in a file in `/dev/shm`
/// (one producer lane of as many `f64` as shmbatch's ring, `subs` consumer
/// slots) and joins as its producer; each of `subs` child processes joins as a
/// consumer before the first write. A batch is [`BATCH`] consecutive `f64`
/// items, written with `try_write_slice` (all of it or none, retried with the
/// `Backoff` while the slowest consumer holds the room: shaq has no wait for
/// room) and read as in [`shaq()`], `reserve_read_batch_timeout` (shaq's futex
/// wait) copied out as slices until the batch is complete. Elements per second
/// per consumer.
pub fn shaq_broadcast(exe: &Path, subs: usize, dur: Duration) -> Result<f64, Skipped> {
    let path = shm_path("shaq-bcast");
    let mut consumers = Subscribers::new(Some(path.clone()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    let config = BroadcastConfig {
        capacity: ring_elements(BATCH),
        producer_slots: 1,
        consumer_slots: subs,
    };
    // SAFETY: the file was just created by this process, which initialises it
    // once, here; the consumers are the children, which join it after this
    // returns with the same `T` (`f64`, valid for any bits, no drop).
    let mut tx = unsafe { shaq_bcast::Producer::<f64>::create(&file, config, ProducerId::new(1)) }
        .map_err(|e| format!("create the queue: {e}"))?;
    drop(file); // the mapping stays
    let args = ["shaq-sub".into(), path.to_string_lossy().into_owned()];
    consumers.spawn(exe, subs, &args)?;
    let mut src = vec![1.0f64; BATCH];
    let mut full = 0u32;
    broadcast::publish(&mut consumers, dur, |x, consumers: &mut Subscribers| {
        src[0] = x;
        let mut b = Backoff::default();
        while !tx.try_write_slice(&src) {
            full = full.wrapping_add(1);
            // A consumer whose process died holds its cells for ever.
            if full.is_multiple_of(1024) {
                if let Some(e) = consumers.exited() {
                    return Err(e);
                }
            }
            b.snooze();
        }
        Ok(())
    })
}

/// The child end of [`shaq_broadcast`], `shaq-sub PATH`: joins the queue at
/// `PATH` as a consumer and reads until the end mark.
pub(super) fn subscribe(path: &str) -> Result<(), String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: the parent created and initialised the queue before starting this
    // process, with the same `T` (`f64`); this process owns the consumer slot
    // it is given.
    let mut rx =
        unsafe { shaq_bcast::Consumer::<f64>::join(&file) }.map_err(|e| format!("join: {e}"))?;
    drop(file);
    let parent = std::os::unix::process::parent_id();
    let mut out = vec![0.0f64; BATCH];
    broadcast::subscribe(|| {
        let mut filled = 0;
        while filled < BATCH {
            let max = NonZeroUsize::new(BATCH - filled).expect("filled < BATCH");
            match rx.reserve_read_batch_timeout(max, WAIT) {
                Ok(r) => {
                    let (a, b) = r.as_slices();
                    out[filled..filled + a.len()].copy_from_slice(a);
                    filled += a.len();
                    out[filled..filled + b.len()].copy_from_slice(b);
                    filled += b.len();
                }
                Err(WaitError::Timeout) => {
                    if std::os::unix::process::parent_id() != parent {
                        return Err("the producer has gone".into());
                    }
                }
            }
        }
        Ok(out[0])
    })
}
