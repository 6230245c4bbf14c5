//! A fixed-length array of `T` in a named segment, updated in place by many
//! processes: the `numpy`-over-`SharedMemory` use case, with synchronisation.
//!
//! # Behaviour
//! - **Writes** ([`SharedArray::write`]) are exclusive across processes: a lock word in
//!   the segment admits one writer at a time; the others spin, yield, then sleep on
//!   a futex next to it. [`try_write`](SharedArray::try_write) fails at once with
//!   [`LockBusy`]; [`write_timeout`](SharedArray::write_timeout) gives up with
//!   [`LockTimeout`].
//! - **A writer that dies** (crash, `SIGKILL`) while holding the lock is detected by
//!   the next process that wants the lock: it finds the holder dead (see "A process
//!   dies" below), takes the lock over, and the next writer is told through
//!   [`WriteOutcome::recovered`]. The notice says whether the data **may be partial** ([`Recovered::partial`]): a
//!   writer works on a private copy and publishes only the words it changed at the
//!   end, so a writer that dies anywhere but in those last stores left the array
//!   exactly as it was, and `partial` is `false`. A closure that panics publishes
//!   nothing either.
//! - **Reads** ([`SharedArray::read`], [`snapshot`](SharedArray::snapshot)) never see
//!   half of a write: they copy the array optimistically and check a sequence counter
//!   (a seqlock), retrying if a write was published meanwhile; after a few torn tries
//!   they read under the lock, so readers make progress against any stream of writes
//!   and recover a dead writer like writers do. Readers do not wait for a writer's
//!   closure, only for the moment it publishes.
//! - **Element operations** ([`load`](SharedArray::load), [`store`](SharedArray::store),
//!   [`fetch_add`](SharedArray::fetch_add), [`compare_exchange`](SharedArray::compare_exchange),
//!   [`swap`](SharedArray::swap)) are lock-free atomics for the
//!   [`AtomicElement`] types (`f64`, `f32`, `i64`, `u64`, `i32`, `u32`), usable from
//!   any number of processes at once. They do not take the lock: an element that a
//!   concurrent `write` also changes keeps one of the two updates (the write publishes
//!   only the words its closure changed, so elements it did not touch keep every
//!   atomic update). A snapshot is consistent with respect to `write`s; element
//!   operations that land during it are each seen whole but not as a group.
//! - **Out of range**: element operations return [`IndexOutOfBounds`], never panic.
//! - **Raw access** for code that brings its own synchronisation:
//!   [`as_ptr`](SharedArray::as_ptr) and the `unsafe`
//!   [`as_slice_unchecked`](SharedArray::as_slice_unchecked) /
//!   [`as_mut_slice_unchecked`](SharedArray::as_mut_slice_unchecked).
//!
//! # Layout, and Python
//! ```text
//! offset 0    identity header (see crate::layout), kind "array", element type,
//!             capacity = number of elements
//! offset 256  lock word: u64, 0 when free, else the holder's pid (bits 0..22)
//!             and start time (bits 22..54)
//! offset 264  futex word: u32, 1 while someone may sleep on the lock
//! offset 268  recovery notes: u32 pid of a dead holder not yet reported,
//!             u32 "data may be partial"
//! offset 384  sequence counter: u64, odd while a write is being published
//! offset 512  element 0, then element i at 512 + i * size_of::<T>(), native endian
//! ```
//! The data offset is [`SharedArray::DATA_OFFSET`] (= [`layout::ARRAY_DATA_OFFSET`],
//! 512) for every element type and is part of the layout version. So a Python process
//! sees the same array with no bindings:
//!
//! ```python
//! from multiprocessing import shared_memory, resource_tracker
//! import numpy as np
//! shm = shared_memory.SharedMemory(name="grid")         # the Rust name, no "/"
//! resource_tracker.unregister(shm._name, "shared_memory")  # Python < 3.13: do not
//!                                                          # unlink it at exit
//! a = np.ndarray((5,), dtype="<f8", buffer=shm.buf, offset=512)
//! a += 10                                                # visible to Rust at once
//! del a; shm.close()
//! ```
//! ([`SharedArray::dtype`] gives the dtype string; on Python 3.13 and later pass
//! `track=False` instead of calling `unregister`.) Python does not take the lock:
//! coordinate such writes yourself, as with the raw view.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmbatch::SharedArray;
//! # let name = format!("doc-array-{}", std::process::id());
//! let a = SharedArray::<f64>::create_from(&name, &[1.0, 2.0, 3.0, 4.0, 5.0])?;
//!
//! // Another process:
//! let b = SharedArray::<f64>::open(&name)?;
//! b.write(|xs| xs.iter_mut().for_each(|x| *x += 10.0));
//! b.fetch_add(0, 0.5)?;
//!
//! assert_eq!(a.snapshot(), [11.5, 12.0, 13.0, 14.0, 15.0]);
//! assert_eq!(a.read(|xs| xs.iter().sum::<f64>()), 65.5);
//! # Ok(()) }
//! ```
//!
//! # Ordering argument
//! Every access to the data region is an aligned 8-byte atomic (the region is
//! padded to a whole number of words), so no access is a data race, whatever the
//! interleaving; what remains is to show that reads are consistent.
//!
//! - Sync point "lock": the unlocking holder's `SeqCst` (so Release) store of 0 to
//!   the lock word pairs with the next holder's `Acquire` CAS, so a writer's
//!   copy-in sees every word published by earlier writers.
//! - Sync point "publish": a writer holding the lock with even sequence `s` stores
//!   `s + 1` (Relaxed), issues a `Release` fence, stores its changed words (Relaxed),
//!   then stores `s + 2` with `Release`. A reader loads the sequence with `Acquire`
//!   (`s1`, retry if odd), loads the words (Relaxed), issues an `Acquire` fence and
//!   loads the sequence again (`s2`). If any word load read a value from a write
//!   published after `s1`, that store follows the writer's `Release` fence, so the
//!   fences synchronise and the writer's store of the odd value happens-before the
//!   load of `s2`: `s2 != s1` and the reader retries. If `s2 == s1`, no such value was
//!   read, and the `Acquire` load of `s1` made every write up to `s1` visible: the
//!   copy is exactly the state after the write that stored `s1`.
//! - Recovery: the lock word names its holder; a waiter that finds it dead (checked
//!   after sleeping a whole slice without a wake-up, see "A process dies") replaces
//!   it with a CAS. The new holder reads the sequence with an RMW (the dead
//!   holder never released, so only an RMW is sure to read its last store); an odd
//!   value means it died while publishing: it stores the next even value and sets
//!   the sticky `partial` flag, which the next writer is told about.
//!
//! - Sleeping: a waiter sets the futex word to 1 and then loads the lock word; the
//!   unlocking holder stores 0 to the lock word and then loads the futex word; all
//!   four `SeqCst`. In their single total order one of the two loads sees the
//!   other side's store: the holder wakes the sleeper, or the sleeper sees the lock
//!   free (or held by a later holder, whose unlock then sees the 1) and does not
//!   sleep. The holder clears the futex word before waking, so a sleeper whose
//!   futex call comes late returns at once.
//!
//! # A process dies
//! The lock word is the holder's identity as the kernel knows it: its pid and its
//! start time (field 22 of `/proc/PID/stat`, clock ticks since boot, kept to 32
//! bits), written by the very CAS that takes the lock. A waiter that has slept a
//! whole slice without a wake-up asks whether that process still runs: it must
//! exist, must not be a zombie (dead, not yet reaped by its parent), and must have
//! the recorded start time. If not, the waiter takes the lock over with a CAS from
//! exactly the word it judged. So:
//! - **A reused pid does not keep a dead holder's lock**: the process that now has
//!   the pid has another start time.
//! - **A live holder's lock is never taken.** The word names the holder from the
//!   instant it holds the lock (there is no window between taking the lock and
//!   recording who took it), and a live holder passes the check: its pid exists,
//!   it is not a zombie, and `/proc` reports the start time it recorded itself.
//!   The takeover CAS succeeds only if the word still holds the very identity that
//!   was found dead; a dead process never writes again, and no other process
//!   writes that identity (a process with the same pid has another start time), so
//!   the word cannot have passed to a live holder and back to that value in
//!   between. Where `/proc` cannot be read the check falls back to the pid alone,
//!   which errs on "alive" (a dead holder whose pid was reused then blocks until
//!   that process exits); a holder that could not read its own start time records
//!   0, which others also check by pid alone.
//! - The one confusion left is the same pid reused with a start time exactly a
//!   multiple of 2^32 ticks (~497 days at 100 Hz) later.
//! - Pids are those of the caller's pid namespace: processes that share an array
//!   must share a pid namespace (a holder in another one looks dead, and its lock
//!   would be taken).
//!
//! A word written by a hostile peer decodes to some identity (bits 54..64 are
//! ignored when judging, not when comparing): at worst the lock is taken from, or
//! left with, a process that does not hold it, which a peer that can write the
//! segment can do anyway.
//!
//! The loom models in `tests/loom_array.rs` check the lock and the seqlock with the
//! data held in loom atomics.
//!
//! [`layout::ARRAY_DATA_OFFSET`]: crate::layout::ARRAY_DATA_OFFSET

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
#[cfg(not(loom))]
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{Error, IndexOutOfBounds, Kind, LockBusy, LockTimeout, Result};
use crate::layout::{Geometry, Padded, TypeInfo, ARRAY_DATA_OFFSET, MAX_SEGMENT_LEN};
use crate::options::Options;
use crate::segment::{Control, Create, ProcId, Region};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Backoff, Deadline};

/// Optimistic read attempts (each followed by a back-off step) before a reader
/// falls back to reading under the lock: the whole spin-then-yield budget of
/// [`Backoff`] (16 quick looks, 6 doubling spins, 10 yields), so that a reader
/// under a stream of writes keeps trying for some microseconds first.
#[cfg(not(loom))]
const OPTIMISTIC_TRIES: u32 = Backoff::STEPS;
#[cfg(loom)]
const OPTIMISTIC_TRIES: u32 = 2;
const _: () = assert!(OPTIMISTIC_TRIES <= Backoff::STEPS);

/// The array control block at [`CONTROL_OFFSET`](crate::layout::CONTROL_OFFSET): two
/// lines.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ArrayControl {
    /// The lock and the recovery notes, written by lock holders and waiters.
    lock: Padded<LockLine>,
    /// Sequence counter, written only by the lock holder (Relaxed odd store,
    /// Release even store), read by everyone (Acquire / after an Acquire fence).
    /// Even when no write is being published. Any value a peer writes is harmless:
    /// readers only compare it.
    seq: Padded<AtomicU64>,
}

#[repr(C)]
#[derive(Default)]
struct LockLine {
    /// The lock: 0 when free, else the holder's `ProcId::pack()`: pid in bits
    /// 0..22, start time in bits 22..54, bits 54..64 zero. Taken with an `Acquire`
    /// CAS from 0, or from the exact word of a holder found dead (module docs, "A
    /// process dies"); released by its holder with a `SeqCst` store of 0 (a
    /// Release store, and the first half of the wake handshake). Any bits decode
    /// to some `ProcId`; a word that is not 0 is never free.
    owner: AtomicU64,
    /// Futex word: 1 while someone may sleep on the lock, else 0. Set by sleepers
    /// (`SeqCst` swap), read and cleared by the releasing holder (`SeqCst`), which
    /// then wakes every sleeper. Any value is harmless (at worst a wake-up).
    waiters: AtomicU32,
    /// Pid of a dead holder whose lock was taken over and not yet reported to a
    /// writer, or 0. Written by lock holders only (Relaxed; the lock orders it).
    dead: AtomicU32,
    /// 1 while the data may hold an interrupted publication, until a writer has
    /// been told and completed a write; else 0. Lock holders only (Relaxed).
    partial: AtomicU32,
}

#[cfg(not(loom))]
const _: () = {
    use crate::layout::{ARRAY_LOCK_OFFSET, ARRAY_SEQ_OFFSET, CONTROL_OFFSET, LINE};
    use std::mem::offset_of;
    assert!(size_of::<ArrayControl>() == 2 * LINE);
    assert!(CONTROL_OFFSET + offset_of!(ArrayControl, lock) == ARRAY_LOCK_OFFSET);
    assert!(offset_of!(LockLine, owner) == 0);
    assert!(CONTROL_OFFSET + offset_of!(ArrayControl, seq) == ARRAY_SEQ_OFFSET);
    assert!(
        (CONTROL_OFFSET + size_of::<ArrayControl>()).next_multiple_of(LINE) == ARRAY_DATA_OFFSET
    );
    assert!(ARRAY_DATA_OFFSET % LINE == 0);
};

// SAFETY: all-zero is the valid initial state (lock free, sequence 0, nothing to
// report), and the block holds atomics only.
unsafe impl Control for ArrayControl {
    const KIND: Kind = Kind::Array;
}

/// The data region as 8-byte atomic words.
///
/// Outside loom these are views of the region's memory. Loom atomics cannot be laid
/// over raw memory, so under loom the words are loom atomics owned here instead
/// (only heap arrays exist under loom, so nobody else needs to see the memory).
struct Words {
    #[cfg(not(loom))]
    base: NonNull<u64>,
    #[cfg(loom)]
    cells: Box<[AtomicU64]>,
    /// Number of words: `data_len / 8`.
    len: usize,
}

impl Words {
    /// The words of `region`'s data region. The result must not outlive `region`.
    fn over(region: &Region) -> Words {
        let len = region.geometry().data_len / 8;
        Words {
            #[cfg(not(loom))]
            base: region.data().cast(),
            #[cfg(loom)]
            cells: (0..len).map(|_| AtomicU64::new(0)).collect(),
            len,
        }
    }

    /// Word `w`; `w < self.len`.
    #[inline(always)]
    fn at(&self, w: usize) -> &AtomicU64 {
        debug_assert!(w < self.len, "word {w} of {}", self.len);
        #[cfg(not(loom))]
        {
            // SAFETY: w < len = data_len / 8 (every caller derives w from an index
            // checked against the array length, or iterates below len), so the word
            // lies inside the data region; the region is LINE-aligned, so the word is
            // 8-aligned; the region outlives `self` (SharedArray holds both); and
            // this crate accesses the data region only through these atomics (the
            // raw view is `unsafe` and documents that it must not race them).
            unsafe { crate::sync::atomic_u64_at(self.base.as_ptr().add(w)) }
        }
        #[cfg(loom)]
        {
            &self.cells[w]
        }
    }

    /// Copy the first `n` bytes of the region to `dst`, one Relaxed load per word.
    ///
    /// # Safety
    /// `dst` must be valid for `n` bytes of writes, and `n <= 8 * self.len`.
    #[inline]
    unsafe fn load_to(&self, dst: *mut u8, n: usize) {
        debug_assert!(n <= 8 * self.len);
        let full = n / 8;
        for w in 0..full {
            let v = self.at(w).load(Ordering::Relaxed);
            // SAFETY: 8 * w + 8 <= n bytes of dst (caller); unaligned write.
            unsafe { dst.add(8 * w).cast::<u64>().write_unaligned(v) };
        }
        let rem = n % 8;
        if rem != 0 {
            // full < len because n <= 8 * len and n is not a multiple of 8.
            let b = self.at(full).load(Ordering::Relaxed).to_ne_bytes();
            // SAFETY: bytes 8 * full .. n of dst are valid (caller), rem < 8.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst.add(8 * full), rem) };
        }
    }

    /// Store `bytes` at the start of the region (Relaxed; padding bytes of the last
    /// word keep their value). Used only before the array is shared: by
    /// `create_from` before the header is published, and by `heap_from`.
    fn store_all(&self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= 8 * self.len);
        let mut chunks = bytes.chunks_exact(8);
        for (w, c) in chunks.by_ref().enumerate() {
            self.at(w)
                .store(bytemuck::pod_read_unaligned(c), Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let w = bytes.len() / 8;
            let mut b = self.at(w).load(Ordering::Relaxed).to_ne_bytes();
            b[..rest.len()].copy_from_slice(rest);
            self.at(w).store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
    }
}

/// What the next writer learns when an earlier lock holder died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Recovered {
    /// Pid of the holder that died, when known (0 if the lock was found released
    /// with a publication left half done, which only a broken peer does).
    pub pid: u32,
    /// Whether the data may be partial: the holder died while publishing its write,
    /// so some words may hold its new values and others the old ones. `false`
    /// means it died before publishing anything, and the array is as it was.
    pub partial: bool,
}

/// Result of a [`SharedArray::write`]: the closure's value, and a notice if the
/// lock was taken over from a dead holder since the last completed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteOutcome<R> {
    /// What the closure returned.
    pub value: R,
    /// `Some` if an earlier holder died holding the lock (see [`Recovered`]). The
    /// closure ran on the array as the dead holder left it. Reported once: the
    /// notice is cleared when this write completes.
    pub recovered: Option<Recovered>,
}

impl<R> WriteOutcome<R> {
    /// The closure's value.
    pub fn into_value(self) -> R {
        self.value
    }

    /// Whether an earlier holder died and the data may be partial.
    pub fn may_be_partial(&self) -> bool {
        self.recovered.is_some_and(|r| r.partial)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Element types of a [`SharedArray`] that support lock-free element operations:
/// `f64`, `f32`, `i64`, `u64`, `i32`, `u32`.
///
/// Each element of these types lies inside one aligned 8-byte word of the data
/// region; operations on 4-byte elements are compare-and-swap loops on their word.
/// Comparison (in `compare_exchange`) is bitwise: a NaN equals the same NaN, and
/// `0.0` differs from `-0.0`. Integer addition wraps.
///
/// The trait is sealed. (The `atomic` crate's `Atomic<T>` was the first candidate;
/// it falls back to a process-local spinlock for some types, which would not be
/// atomic across processes, and it cannot run under loom.)
pub trait AtomicElement: Pod + sealed::Sealed {
    /// `a + b` (wrapping for integers).
    #[doc(hidden)]
    fn add(a: Self, b: Self) -> Self;
    /// Whether addition is the 8-byte word's wrapping addition (`i64`, `u64`).
    #[doc(hidden)]
    const WORD_ADD: bool;
}

macro_rules! atomic_elements {
    ($($t:ty => $word_add:expr, |$a:ident, $b:ident| $add:expr;)*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicElement for $t {
            #[inline(always)]
            fn add($a: Self, $b: Self) -> Self {
                $add
            }
            const WORD_ADD: bool = $word_add;
        }
        const _: () = assert!(size_of::<$t>() == 4 || size_of::<$t>() == 8);
    )*};
}

atomic_elements! {
    f64 => false, |a, b| a + b;
    f32 => false, |a, b| a + b;
    i64 => true, |a, b| a.wrapping_add(b);
    u64 => true, |a, b| a.wrapping_add(b);
    i32 => false, |a, b| a.wrapping_add(b);
    u32 => false, |a, b| a.wrapping_add(b);
}

/// A fixed-length array of `T` in shared memory; see the [module docs](crate::array).
///
/// All methods take `&self`: share one handle between threads (it is `Sync`), or
/// open the segment once per process. The creator removes the segment when its
/// handle drops, unless [`persist`](Self::persist) is called; processes that still
/// have it open keep using it.
///
/// Memory: `write` works on a private copy, and a handle keeps its buffers for the
/// next call, so after use a handle holds up to three copies of the array
/// (`write`'s copy-in and working copy, `read`'s copy).
pub struct SharedArray<T: Pod = f64> {
    words: Words,
    region: Region,
    len: usize,
    /// Our lock word value: `ProcId::me().pack()`, never 0.
    me: u64,
    /// Buffers reused by `write` (copy-in and working copy) and `read`, so that
    /// large arrays do not pay for an allocation and its page faults on every call.
    /// Taken with `try_lock`; a thread that finds one busy uses fresh buffers.
    scratch: Mutex<Scratch<T>>,
    reads: Mutex<Vec<T>>,
    _t: PhantomData<fn(T) -> T>,
}

/// `write`'s buffers: the words as copied in, and the closure's working copy.
struct Scratch<T> {
    orig: Vec<u64>,
    work: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            orig: Vec::new(),
            work: Vec::new(),
        }
    }
}

/// Lock `m` if nobody holds it (a poisoned buffer is fine: it is overwritten).
fn try_take<B>(m: &Mutex<B>) -> Option<MutexGuard<'_, B>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

// SAFETY: the raw pointer in `words` points into `region`, which the handle owns and
// which is Send + Sync; every access through it is atomic. Values of T cross threads
// by copy, hence the bounds on T.
unsafe impl<T: Pod + Send> Send for SharedArray<T> {}
// SAFETY: as above; all methods take &self and synchronise through atomics.
unsafe impl<T: Pod + Send + Sync> Sync for SharedArray<T> {}

impl<T: Pod> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArray")
            .field("name", &self.region.name())
            .field("type", &core::any::type_name::<T>())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// The geometry of an array of `len` elements of `ty`.
fn geometry(ty: &TypeInfo, len: usize) -> Result<Geometry> {
    if len == 0 {
        return Err(Error::InvalidSize {
            what: "len",
            value: 0,
            reason: "an array holds at least 1 element".into(),
        });
    }
    let data_len = len
        .checked_mul(ty.size)
        .and_then(|b| b.checked_next_multiple_of(8))
        .filter(|&b| b <= MAX_SEGMENT_LEN - ARRAY_DATA_OFFSET)
        .ok_or_else(|| Error::InvalidSize {
            what: "len",
            value: len,
            reason: format!("the array would exceed {MAX_SEGMENT_LEN} bytes"),
        })?;
    let g = Geometry::new(
        Kind::Array,
        ty,
        size_of::<ArrayControl>(),
        data_len,
        len as u64,
        0,
        0,
    )?;
    debug_assert_eq!(g.data_offset, ARRAY_DATA_OFFSET);
    Ok(g)
}

/// Check the array-specific fields of a validated header; returns the length.
fn check(g: &Geometry) -> Result<usize> {
    let len = usize::try_from(g.capacity)
        .ok()
        .filter(|&l| l > 0)
        .ok_or_else(|| Error::corrupted("array length is zero or out of range"))?;
    let want = len
        .checked_mul(g.elem_size)
        .and_then(|b| b.checked_next_multiple_of(8))
        .ok_or_else(|| Error::corrupted("array length is out of range"))?;
    if want != g.data_len {
        return Err(Error::corrupted(format!(
            "array of {len} elements of {} bytes needs {want} data bytes, the header \
             declares {}",
            g.elem_size, g.data_len
        )));
    }
    if g.data_offset != ARRAY_DATA_OFFSET {
        return Err(Error::corrupted(format!(
            "array data offset is {}, not {ARRAY_DATA_OFFSET}",
            g.data_offset
        )));
    }
    if g.max_batch != 0 || g.stride != 0 {
        return Err(Error::corrupted("array header has queue fields set"));
    }
    Ok(len)
}

/// How the lock was obtained.
#[derive(Debug, Clone, Copy)]
enum Got {
    Free,
    /// Taken over from this dead holder.
    Stolen(u32),
}

/// State of one lock acquisition.
#[derive(Debug, Default)]
struct Acquiring {
    /// Check the holder's liveness on the next attempt.
    check_owner: bool,
    /// Holder seen last (for error reports).
    holder: u32,
}

/// The lock, held. Dropping it releases the lock.
struct Held<'a> {
    ctl: &'a ArrayControl,
    /// The (even) sequence value when we took the lock.
    seq: u64,
    recovered: Option<Recovered>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let line = &self.ctl.lock;
        // Sync point "lock" (release side): pairs with the Acquire CAS in
        // `try_acquire` of the next holder, so our copy-in and publication happen
        // before its copy-in. SeqCst: W1 of the wake handshake, paired with the
        // sleeper's SeqCst load of `owner` in `sleep_on_lock`.
        line.owner.store(0, Ordering::SeqCst);
        // W2: pairs with the sleeper's SeqCst swap of `waiters`; either we see its
        // 1 here, or it sees our 0 (or a later holder, who wakes it) and does not
        // sleep. Cleared before the wake so a sleeper's futex check fails at once.
        if line.waiters.load(Ordering::SeqCst) != 0 && line.waiters.swap(0, Ordering::SeqCst) != 0 {
            wait::futex_wake(&line.waiters);
        }
    }
}

impl<T: Pod> SharedArray<T> {
    /// Offset of element 0 from the start of the segment, for every element type:
    /// [`layout::ARRAY_DATA_OFFSET`](crate::layout::ARRAY_DATA_OFFSET) (512).
    pub const DATA_OFFSET: usize = ARRAY_DATA_OFFSET;

    /// Create the segment `name` holding `len` zeroed elements.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidSize`] (zero length, or an array above
    /// [`MAX_SEGMENT_LEN`]), [`Error::UnsupportedType`], [`Error::AlreadyExists`],
    /// [`Error::Io`].
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::create_with(name, len, &Options::default())
    }

    /// [`create`](Self::create) with [`Options`]: the file mode, `persist`,
    /// `reclaim_stale` and the type `tag` apply.
    ///
    /// # Errors
    /// As [`create`](Self::create); [`Error::InvalidSize`] also for a `mode` with
    /// bits outside `0o777`, [`Error::UnsupportedType`] for an invalid `tag`; with
    /// `reclaim_stale`, [`Error::AlreadyExists`] only if the segment there is not
    /// stale.
    pub fn create_with(name: &str, len: usize, opts: &Options) -> Result<Self> {
        Self::create_filled(name, len, None, opts, false)
    }

    /// Create the segment `name` holding a copy of `values`. Openers never see the
    /// array before it is filled.
    ///
    /// # Errors
    /// As [`create`](Self::create); an empty `values` is [`Error::InvalidSize`].
    pub fn create_from(name: &str, values: &[T]) -> Result<Self> {
        Self::create_from_with(name, values, &Options::default())
    }

    /// [`create_from`](Self::create_from) with [`Options`], as
    /// [`create_with`](Self::create_with).
    ///
    /// # Errors
    /// As [`create_with`](Self::create_with); an empty `values` is
    /// [`Error::InvalidSize`].
    pub fn create_from_with(name: &str, values: &[T], opts: &Options) -> Result<Self> {
        Self::create_filled(name, values.len(), Some(values), opts, false)
    }

    /// Open the existing array segment `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::KindMismatch`] (not an array),
    /// [`Error::TypeMismatch`] (created with another element type),
    /// [`Error::VersionMismatch`], [`Error::Corrupted`] (garbage header, a segment
    /// shorter than its declared length, a length that does not match the data
    /// region), [`Error::NotReady`], [`Error::InvalidName`], [`Error::Io`].
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &Options::default())
    }

    /// [`open`](Self::open) with [`Options`]: `open_timeout` and the type `tag`
    /// apply.
    ///
    /// # Errors
    /// As [`open`](Self::open): with an `open_timeout`, [`Error::NotFound`] once it
    /// has passed without the segment appearing and [`Error::NotReady`] once it has
    /// passed with its header unpublished; [`Error::UnsupportedType`] for an
    /// invalid `tag`.
    pub fn open_with(name: &str, opts: &Options) -> Result<Self> {
        let ty = opts.type_info::<T>()?;
        opts.open(|init_wait| Self::open_region(name, &ty, init_wait))
    }

    /// Open the array segment `name` if it exists, else create it holding `len`
    /// zeroed elements. Race-free: when several processes (or threads) do this at
    /// once, one creates the segment and the others open it. Whoever creates it
    /// owns it (removes it when dropping, unless `persist`); an existing array keeps
    /// its length. Every option applies, as in [`create_with`](Self::create_with)
    /// and [`open_with`](Self::open_with) (`open_timeout` bounds only the wait for a
    /// header being written: a missing segment is created).
    ///
    /// # Errors
    /// Those of [`create_with`](Self::create_with) but `AlreadyExists`, and those of
    /// [`open_with`](Self::open_with); [`Error::NotFound`] only if the segment kept
    /// vanishing between a failed create and the open, 16 times over.
    pub fn open_or_create(name: &str, len: usize, opts: &Options) -> Result<Self> {
        Self::create_filled(name, len, None, opts, true)
    }

    /// Create the segment (or with `or_open`, open it if it exists) with `len`
    /// elements, a copy of `values` if given, else zeroed.
    fn create_filled(
        name: &str,
        len: usize,
        values: Option<&[T]>,
        opts: &Options,
        or_open: bool,
    ) -> Result<Self> {
        let ty = opts.type_info::<T>()?;
        let g = geometry(&ty, len)?;
        let make = |how: &Create| {
            let mut words = None;
            let region = Region::create_shm::<ArrayControl>(name, g, &ty, how, |r| {
                let w = Words::over(r);
                if let Some(values) = values {
                    // Before publication: the header's Release store carries these.
                    w.store_all(bytemuck::cast_slice(values));
                }
                words = Some(w);
            })?;
            Ok(Self::from_parts(region, words, len))
        };
        if or_open {
            opts.open_or_create(name, make, |init_wait| {
                Self::open_region(name, &ty, init_wait)
            })
        } else {
            opts.create(name, make)
        }
    }

    /// Open the array segment `name` of `ty`, waiting for its header until
    /// `init_wait`.
    fn open_region(name: &str, ty: &TypeInfo, init_wait: Deadline) -> Result<Self> {
        let region = Region::open_shm::<ArrayControl>(name, ty, init_wait, |g| check(g).map(drop))?;
        let len = check(region.geometry())?;
        Ok(Self::from_parts(region, None, len))
    }

    /// An array of `len` zeroed elements on the heap, for threads of one process.
    ///
    /// It runs exactly the code of a shared array (this is what the loom models and
    /// miri use); share it with `Arc` or scoped threads.
    ///
    /// # Errors
    /// [`Error::InvalidSize`], [`Error::UnsupportedType`].
    pub fn heap(len: usize) -> Result<Self> {
        let ty = TypeInfo::of::<T>()?;
        let g = geometry(&ty, len)?;
        let region = Region::heap::<ArrayControl>(g, &ty, |_| {});
        Ok(Self::from_parts(region, None, len))
    }

    /// A heap array (see [`heap`](Self::heap)) holding a copy of `values`.
    ///
    /// # Errors
    /// As [`heap`](Self::heap).
    pub fn heap_from(values: &[T]) -> Result<Self> {
        let a = Self::heap(values.len())?;
        a.words.store_all(bytemuck::cast_slice(values));
        Ok(a)
    }

    fn from_parts(region: Region, words: Option<Words>, len: usize) -> Self {
        let words = words.unwrap_or_else(|| Words::over(&region));
        debug_assert!(len * size_of::<T>() <= 8 * words.len);
        // Our lock word must not read as free (pid 0 is nobody).
        debug_assert_ne!(ProcId::me(), ProcId::NOBODY);
        SharedArray {
            words,
            region,
            len,
            me: ProcId::me().pack(),
            scratch: Mutex::new(Scratch::default()),
            reads: Mutex::new(Vec::new()),
            _t: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an array holds at least one element.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The segment name, without the leading `/` (`None` for a heap array).
    pub fn name(&self) -> Option<&str> {
        self.region.name()
    }

    /// Offset of element 0 in the segment: [`Self::DATA_OFFSET`].
    pub fn data_offset(&self) -> usize {
        ARRAY_DATA_OFFSET
    }

    /// The numpy dtype string of `T` (`"<f8"` for `f64` on a little-endian machine),
    /// or `None` for a type numpy has no scalar for (a struct: describe it yourself).
    /// It is the type tag the segment records unless its creator set another
    /// ([`layout::dtype_of`](crate::layout::dtype_of), [`Options::tag`]).
    pub fn dtype(&self) -> Option<&'static str> {
        crate::layout::dtype_of::<T>()
    }

    /// Keep the segment when the creating handle drops (no effect on an opener).
    pub fn persist(&self) {
        self.region.persist();
    }

    /// Whether the array may hold a partial write: a holder died while publishing,
    /// and no writer has completed a write since. A hint for readers; writers are
    /// told through [`WriteOutcome::recovered`].
    pub fn is_partial(&self) -> bool {
        // Relaxed: a hint, nothing is read on the strength of it.
        self.ctl().lock.partial.load(Ordering::Relaxed) != 0
    }

    #[inline]
    fn ctl(&self) -> &ArrayControl {
        self.region.control::<ArrayControl>()
    }

    #[inline]
    fn bytes(&self) -> usize {
        self.len * size_of::<T>()
    }

    // ---- the lock ----

    /// One attempt at the lock.
    #[inline]
    fn try_acquire(&self, st: &mut Acquiring) -> Option<Got> {
        let owner = &self.ctl().lock.owner;
        // Relaxed: a guess that the CAS below validates (and acquires).
        let cur = owner.load(Ordering::Relaxed);
        let got = if cur == 0 {
            Got::Free
        } else {
            let holder = ProcId::unpack(cur);
            st.holder = holder.pid;
            if !std::mem::take(&mut st.check_owner) || holder.alive() {
                return None;
            }
            // The process that `cur` names died holding the lock; whoever wins the
            // CAS below, from exactly `cur`, recovers it (module docs, "A process
            // dies"). No Release store of it will ever come: see `held` for how
            // the new holder reads the dead one's last sequence value.
            Got::Stolen(holder.pid)
        };
        // Sync point "lock" (acquire side): pairs with the SeqCst (Release) store
        // of 0 in `Held::drop` of the previous holder.
        owner
            .compare_exchange(cur, self.me, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| got)
    }

    /// Sleep on the lock word until a wake-up or `slice` passes.
    fn sleep_on_lock(&self, st: &mut Acquiring, slice: Duration) {
        let line = &self.ctl().lock;
        // Announce the sleeper, then look at the lock: the wake handshake with
        // `Held::drop`. The SeqCst swap pairs with the holder's SeqCst load of
        // `waiters` (its W2), the SeqCst load with its SeqCst store of `owner`
        // (W1): in their single total order, either the holder sees our 1 and
        // wakes us (the futex call also returns at once if `waiters` is no longer
        // 1), or we see the lock free (or a later holder, whose unlock sees our 1).
        line.waiters.swap(1, Ordering::SeqCst);
        let cur = line.owner.load(Ordering::SeqCst);
        if cur == 0 {
            return;
        }
        st.holder = ProcId::unpack(cur).pid;
        let start = Instant::now();
        wait::futex_wait(&line.waiters, 1, slice);
        // A whole slice without a wake-up: time to ask whether the holder lives.
        st.check_owner = start.elapsed() >= slice;
    }

    /// Take the lock. `try_once`: a single attempt (with a liveness check).
    /// Err: the holder's pid.
    fn acquire(&self, deadline: Deadline, try_once: bool) -> Result<Held<'_>, u32> {
        let mut st = Acquiring {
            check_owner: try_once,
            ..Acquiring::default()
        };
        let got = if try_once {
            self.try_acquire(&mut st)
        } else {
            let r = wait::block(
                &mut st,
                deadline,
                |st| Ok::<_, Infallible>(self.try_acquire(st)),
                |st, slice| {
                    self.sleep_on_lock(st, slice);
                    Ok(())
                },
            );
            match r {
                Ok(got) => got,
                Err(never) => match never {},
            }
        };
        match got {
            Some(got) => Ok(self.held(got)),
            None => Err(st.holder),
        }
    }

    /// Bookkeeping right after taking the lock: close an interrupted publication
    /// and collect what the next writer must be told.
    fn held(&self, got: Got) -> Held<'_> {
        let ctl = self.ctl();
        let line = &ctl.lock;
        let s = match got {
            // The previous holder's seq stores happen-before its unlock, which our
            // Acquire CAS read.
            Got::Free => ctl.seq.load(Ordering::Relaxed),
            Got::Stolen(pid) => {
                line.dead.store(pid, Ordering::Relaxed);
                // The dead holder never released: an RMW reads the last value in
                // seq's modification order, whatever it stored last; Acquire pairs
                // with its Release store of an even value, if it got that far.
                ctl.seq.fetch_add(0, Ordering::Acquire)
            }
        };
        let torn = s & 1 == 1;
        let s = if torn {
            // It died (or a broken peer unlocked) in the middle of publishing.
            line.partial.store(1, Ordering::Relaxed);
            let even = s.wrapping_add(1);
            // Readers stop retrying; pairs with their Acquire load of seq.
            ctl.seq.store(even, Ordering::Release);
            even
        } else {
            s
        };
        // Relaxed: written under the lock we hold (by us, or by an earlier holder
        // whose unlock our Acquire CAS read).
        let dead = line.dead.load(Ordering::Relaxed);
        let partial = torn || line.partial.load(Ordering::Relaxed) != 0;
        Held {
            ctl,
            seq: s,
            recovered: (dead != 0 || partial).then_some(Recovered { pid: dead, partial }),
        }
    }

    // ---- writes ----

    fn write_locked<R>(&self, held: Held<'_>, f: impl FnOnce(&mut [T]) -> R) -> WriteOutcome<R> {
        let n = self.bytes();
        let words = &self.words;
        // Copy-in. The lock orders us after every earlier writer; element atomics
        // may still land, and the diff below keeps those on words we do not change.
        let mut guard = try_take(&self.scratch);
        let mut fresh = Scratch::default();
        let Scratch { orig, work } = guard.as_deref_mut().unwrap_or(&mut fresh);
        orig.clear();
        orig.extend((0..words.len).map(|w| words.at(w).load(Ordering::Relaxed)));
        work.clear();
        work.reserve(self.len);
        // SAFETY: `work` has capacity for len elements = n bytes; orig holds
        // words.len * 8 >= n bytes; the buffers do not overlap. After the copy all n
        // bytes are initialised, and any bytes are a valid T (Pod).
        unsafe {
            std::ptr::copy_nonoverlapping(
                orig.as_ptr().cast::<u8>(),
                work.as_mut_ptr().cast::<u8>(),
                n,
            );
            work.set_len(self.len);
        }
        // A panic here unwinds through `held` (unlock) and publishes nothing.
        let value = f(work);
        self.publish(&held, orig, bytemuck::cast_slice(work));
        let recovered = held.recovered;
        if recovered.is_some() {
            // Told: clear the notes (we still hold the lock).
            held.ctl.lock.dead.store(0, Ordering::Relaxed);
            held.ctl.lock.partial.store(0, Ordering::Relaxed);
        }
        drop(held);
        WriteOutcome { value, recovered }
    }

    /// Store the words of `new` that differ from `orig`, inside an odd sequence
    /// window. Nothing changed: no store at all, readers are not disturbed.
    fn publish(&self, held: &Held<'_>, orig: &[u64], new: &[u8]) {
        let seq = &held.ctl.seq;
        let words = &self.words;
        let mut open = false;
        let mut put = |w: usize, v: u64| {
            if v == orig[w] {
                return;
            }
            if !open {
                open = true;
                // Sync point "publish" (open): readers that see any store below
                // see this odd value on their second seq load (fence pairing below).
                seq.store(held.seq.wrapping_add(1), Ordering::Relaxed);
                // Pairs with the reader's Acquire fence in `read_bytes`.
                fence(Ordering::Release);
            }
            words.at(w).store(v, Ordering::Relaxed);
        };
        let mut chunks = new.chunks_exact(8);
        for (w, c) in chunks.by_ref().enumerate() {
            put(w, bytemuck::pod_read_unaligned(c));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let w = new.len() / 8;
            let mut b = orig[w].to_ne_bytes();
            b[..rest.len()].copy_from_slice(rest);
            put(w, u64::from_ne_bytes(b));
        }
        if open {
            // Sync point "publish" (close): Release pairs with the reader's Acquire
            // load of seq in `read_bytes`: the words above are visible to a reader
            // that reads this value.
            seq.store(held.seq.wrapping_add(2), Ordering::Release);
        }
    }

    /// Update the array in place under the cross-process lock, waiting for it as
    /// long as it takes (a dead holder is recovered; see the module docs).
    ///
    /// `f` works on a private copy of the array; when it returns, the elements it
    /// changed are published at once, so readers see all of them or none. If `f`
    /// panics, nothing is published and the lock is released.
    ///
    /// Calling `write` (or `write_timeout`) on the same array from inside `f`
    /// deadlocks, as with any non-reentrant lock; `try_write` returns [`LockBusy`].
    pub fn write<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> WriteOutcome<R> {
        match self.acquire(Deadline::never(), false) {
            Ok(held) => self.write_locked(held, f),
            Err(_) => unreachable!("acquire without a deadline does not time out"),
        }
    }

    /// [`write`](Self::write) if the lock is free now (or its holder is dead).
    ///
    /// # Errors
    /// [`LockBusy`] with the holder's pid.
    pub fn try_write<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<WriteOutcome<R>, LockBusy> {
        match self.acquire(Deadline::never(), true) {
            Ok(held) => Ok(self.write_locked(held, f)),
            Err(pid) => Err(LockBusy { pid }),
        }
    }

    /// [`write`](Self::write), waiting at most `timeout` for the lock.
    ///
    /// # Errors
    /// [`LockTimeout`] with the holder's pid.
    pub fn write_timeout<R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> Result<WriteOutcome<R>, LockTimeout> {
        match self.acquire(Deadline::after(timeout), false) {
            Ok(held) => Ok(self.write_locked(held, f)),
            Err(pid) => Err(LockTimeout { pid }),
        }
    }

    // ---- reads ----

    /// Copy a consistent state of the array to `dst` (`self.bytes()` bytes).
    ///
    /// # Safety
    /// `dst` must be valid for `self.bytes()` bytes of writes.
    unsafe fn read_bytes(&self, dst: *mut u8, deadline: Deadline) -> Result<(), LockTimeout> {
        let n = self.bytes();
        let seq = &self.ctl().seq;
        let mut backoff = Backoff::default();
        for _ in 0..OPTIMISTIC_TRIES {
            // Sync point "publish" (reader, first load): Acquire pairs with the
            // writer's Release store of the even value in `publish`.
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                // SAFETY: dst valid for n bytes (caller); n <= 8 * words.len.
                unsafe { self.words.load_to(dst, n) };
                // Sync point "publish" (reader, check): pairs with the writer's
                // Release fence after its odd store.
                fence(Ordering::Acquire);
                if seq.load(Ordering::Relaxed) == s1 {
                    return Ok(());
                }
            }
            // Within its budget (OPTIMISTIC_TRIES <= Backoff::STEPS), so it waits.
            backoff.snooze();
        }
        // Writes kept landing (or a writer died while publishing): read under the
        // lock, which also recovers a dead holder.
        let held = self
            .acquire(deadline, false)
            .map_err(|pid| LockTimeout { pid })?;
        // SAFETY: as above. Under the lock no write is being published.
        unsafe { self.words.load_to(dst, n) };
        drop(held);
        Ok(())
    }

    /// Replace the contents of `buf` with a consistent copy of the array.
    fn read_into(&self, buf: &mut Vec<T>, deadline: Deadline) -> Result<(), LockTimeout> {
        buf.clear();
        buf.reserve(self.len);
        // SAFETY: `buf` has room for len elements = bytes() bytes.
        unsafe { self.read_bytes(buf.as_mut_ptr().cast(), deadline)? };
        // SAFETY: read_bytes wrote all bytes() bytes; any bytes are a valid T (Pod).
        unsafe { buf.set_len(self.len) };
        Ok(())
    }

    fn snapshot_until(&self, deadline: Deadline) -> Result<Vec<T>, LockTimeout> {
        let mut out = Vec::new();
        self.read_into(&mut out, deadline)?;
        Ok(out)
    }

    /// A consistent copy of the array: never part of a `write`. Waits (without
    /// limit) only if a write is being published over and over, or a writer died
    /// while publishing and its lock must be recovered.
    pub fn snapshot(&self) -> Vec<T> {
        match self.snapshot_until(Deadline::never()) {
            Ok(v) => v,
            Err(_) => unreachable!("no deadline"),
        }
    }

    /// [`snapshot`](Self::snapshot), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeout`] if it had to fall back to the lock and did not get it in time.
    pub fn snapshot_timeout(&self, timeout: Duration) -> Result<Vec<T>, LockTimeout> {
        self.snapshot_until(Deadline::after(timeout))
    }

    /// Like [`snapshot`](Self::snapshot), into `out` (its contents are replaced):
    /// no allocation once `out` has room.
    pub fn snapshot_into(&self, out: &mut Vec<T>) {
        match self.read_into(out, Deadline::never()) {
            Ok(()) => {}
            Err(_) => unreachable!("no deadline"),
        }
    }

    /// Run `f` on a consistent copy of the array (see [`snapshot`](Self::snapshot)).
    pub fn read<R>(&self, f: impl FnOnce(&[T]) -> R) -> R {
        match self.read_until(Deadline::never(), f) {
            Ok(r) => r,
            Err(_) => unreachable!("no deadline"),
        }
    }

    fn read_until<R>(
        &self,
        deadline: Deadline,
        f: impl FnOnce(&[T]) -> R,
    ) -> Result<R, LockTimeout> {
        let mut guard = try_take(&self.reads);
        let mut fresh = Vec::new();
        let buf = guard.as_deref_mut().unwrap_or(&mut fresh);
        self.read_into(buf, deadline)?;
        Ok(f(buf))
    }

    /// [`read`](Self::read), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`snapshot_timeout`](Self::snapshot_timeout).
    pub fn read_timeout<R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&[T]) -> R,
    ) -> Result<R, LockTimeout> {
        self.read_until(Deadline::after(timeout), f)
    }

    // ---- raw access ----

    /// Pointer to element 0, in the shared mapping, aligned for `T`; the array has
    /// [`len`](Self::len) elements. Valid while this handle lives.
    ///
    /// Obtaining it is safe; using it is not: any access must be synchronised by
    /// the caller with every other access in this and other processes (the lock and
    /// the element operations of this type use atomics; a plain access racing them
    /// in this process is a data race). Under loom the data lives elsewhere, and this
    /// memory is unused.
    pub fn as_ptr(&self) -> *mut T {
        self.region.data().as_ptr().cast()
    }

    /// The array as a slice, with no synchronisation.
    ///
    /// # Safety
    /// For the life of the slice, nothing in this process may write the array
    /// (through `write`, element operations or the raw views), and the caller
    /// accepts whatever other processes write meanwhile (values may change under
    /// the slice; any bytes are a valid `T`, so this is about consistency, not about
    /// memory safety across processes).
    pub unsafe fn as_slice_unchecked(&self) -> &[T] {
        // SAFETY: len elements lie in the data region (geometry), aligned (LINE);
        // the caller rules out writes in this process.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The array as a mutable slice, with no synchronisation: the escape hatch for
    /// code that brings its own (for example an external lock, or one writer phase
    /// and one reader phase).
    ///
    /// # Safety
    /// For the life of the slice, nothing else in this process may access the array
    /// (no other slice, `read`, `write`, `snapshot` or element operation on any
    /// handle to this segment), and the caller synchronises with other processes.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice_unchecked(&self) -> &mut [T] {
        // SAFETY: as in `as_slice_unchecked`; the caller guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len) }
    }
}

impl<T: AtomicElement> SharedArray<T> {
    /// The word holding element `i` and the element's byte offset in it.
    #[inline(always)]
    fn slot(&self, i: usize) -> Result<(&AtomicU64, usize), IndexOutOfBounds> {
        if i >= self.len {
            return Err(IndexOutOfBounds {
                index: i,
                len: self.len,
            });
        }
        let byte = i * size_of::<T>();
        // byte + size <= len * size <= 8 * words.len, and size divides 8, so the
        // element lies inside word byte / 8 < words.len.
        Ok((self.words.at(byte / 8), byte % 8))
    }

    #[inline(always)]
    fn get(word: u64, off: usize) -> T {
        bytemuck::pod_read_unaligned(&word.to_ne_bytes()[off..off + size_of::<T>()])
    }

    #[inline(always)]
    fn put(word: u64, off: usize, v: T) -> u64 {
        let mut b = word.to_ne_bytes();
        b[off..off + size_of::<T>()].copy_from_slice(bytemuck::bytes_of(&v));
        u64::from_ne_bytes(b)
    }

    #[inline(always)]
    fn same(a: T, b: T) -> bool {
        bytemuck::bytes_of(&a) == bytemuck::bytes_of(&b)
    }

    /// CAS loop replacing element `off` of `word` by `f(old)`; returns old.
    #[inline(always)]
    fn update(word: &AtomicU64, off: usize, mut f: impl FnMut(T) -> T) -> T {
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            let old = Self::get(cur, off);
            let new = Self::put(cur, off, f(old));
            match word.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return old,
                Err(now) => cur = now,
            }
        }
    }

    /// Element `i` (an `Acquire` load).
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn load(&self, i: usize) -> Result<T, IndexOutOfBounds> {
        let (word, off) = self.slot(i)?;
        Ok(Self::get(word.load(Ordering::Acquire), off))
    }

    /// Set element `i` to `v` (a `Release` store).
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn store(&self, i: usize, v: T) -> Result<(), IndexOutOfBounds> {
        let (word, off) = self.slot(i)?;
        if size_of::<T>() == 8 {
            word.store(Self::put(0, 0, v), Ordering::Release);
        } else {
            Self::update(word, off, |_| v);
        }
        Ok(())
    }

    /// Set element `i` to `v` and return the previous value (`AcqRel`).
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn swap(&self, i: usize, v: T) -> Result<T, IndexOutOfBounds> {
        let (word, off) = self.slot(i)?;
        if size_of::<T>() == 8 {
            Ok(Self::get(
                word.swap(Self::put(0, 0, v), Ordering::AcqRel),
                0,
            ))
        } else {
            Ok(Self::update(word, off, |_| v))
        }
    }

    /// Add `v` to element `i` atomically and return the previous value (`AcqRel`).
    /// Floats use a compare-and-swap loop; 8-byte integers one atomic add; integer
    /// addition wraps.
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn fetch_add(&self, i: usize, v: T) -> Result<T, IndexOutOfBounds> {
        let (word, off) = self.slot(i)?;
        if T::WORD_ADD {
            Ok(Self::get(
                word.fetch_add(Self::put(0, 0, v), Ordering::AcqRel),
                0,
            ))
        } else {
            Ok(Self::update(word, off, |old| T::add(old, v)))
        }
    }

    /// Set element `i` to `new` if it is bitwise equal to `current` (`AcqRel` on
    /// success, `Acquire` on failure). The inner result is `Ok(previous)` if the
    /// value was replaced, `Err(actual)` if not, as for std's atomics.
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn compare_exchange(
        &self,
        i: usize,
        current: T,
        new: T,
    ) -> Result<Result<T, T>, IndexOutOfBounds> {
        let (word, off) = self.slot(i)?;
        if size_of::<T>() == 8 {
            return Ok(word
                .compare_exchange(
                    Self::put(0, 0, current),
                    Self::put(0, 0, new),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map(|w| Self::get(w, 0))
                .map_err(|w| Self::get(w, 0)));
        }
        let mut cur = word.load(Ordering::Acquire);
        loop {
            let old = Self::get(cur, off);
            if !Self::same(old, current) {
                return Ok(Err(old));
            }
            // A failure caused by a neighbour in the same word is retried.
            match word.compare_exchange_weak(
                cur,
                Self::put(cur, off, new),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Ok(old)),
                Err(now) => cur = now,
            }
        }
    }
}

/// A snapshot of an array control block, for inspection (`shmbatch::inspect`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArrayStats {
    /// The lock holder, if the lock is held (the lock word is not 0).
    pub holder: Option<ProcId>,
    /// The sequence counter: odd while a write is being published.
    pub seq: u64,
}

/// Read a control block without taking part in its protocol (Relaxed loads only:
/// the values are a report, never used to form a pointer or to take the lock).
pub(crate) fn stats(ctl: &ArrayControl) -> ArrayStats {
    let owner = ctl.lock.owner.load(Ordering::Relaxed);
    ArrayStats {
        holder: (owner != 0).then(|| ProcId::unpack(owner)),
        seq: ctl.seq.load(Ordering::Relaxed),
    }
}
