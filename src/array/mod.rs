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
//! let w = b.write(|xs| xs.iter_mut().for_each(|x| *x += 10.0));
//! assert!(w.recovered.is_none()); // Some if a writer had died holding the lock
//! b.fetch_add(0, 0.5)?;
//!
//! assert_eq!(a.snapshot(), [11.5, 12.0, 13.0, 14.0, 15.0]);
//! assert_eq!(a.read(|xs| xs.iter().sum::<f64>()), 65.5);
//! # Ok(()) }
//! ```
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
//! The ordering argument (sync point by sync point, both ends of each pairing)
//! is in the source, with the lock and the seqlock it is about
//! (`src/array/lock.rs`). The loom models in `tests/loom_array.rs` check the lock
//! and the seqlock with the data held in loom atomics.
//!
//! [`layout::ARRAY_DATA_OFFSET`]: crate::layout::ARRAY_DATA_OFFSET

use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{LockBusy, LockTimeout, Result};
use crate::layout::{Shape, TypeInfo, ARRAY_DATA_OFFSET};
use crate::options::Options;
use crate::segment::{Create, Region};
use crate::wait::Deadline;

mod elements;
mod guard;
mod lock;

pub use elements::AtomicElement;
pub use guard::WriteGuard;
pub(crate) use lock::{stats, ArrayControl};

use lock::{check, geometry, Core, Held, Words};

// Named by the docs' links only.
#[cfg(doc)]
use crate::{error::IndexOutOfBounds, layout::MAX_SEGMENT_LEN, Error};

/// What the next writer learns when an earlier lock holder died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a dead writer's lock was taken over; the data may be partial"]
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
#[must_use = "it says whether a dead writer's lock was taken over (`recovered`)"]
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
    #[must_use]
    pub fn may_be_partial(&self) -> bool {
        self.recovered.is_some_and(|r| r.partial)
    }
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
    /// The region, its data words, the lock and the seqlock.
    core: Core,
    len: usize,
    /// The dimensions the header records, or `[len]`.
    shape: Shape,
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

// SAFETY: the raw pointer in `core`'s words points into its region, which the
// handle owns and which is Send + Sync; every access through it is atomic. Values
// of T cross threads by copy, hence the bounds on T.
unsafe impl<T: Pod + Send> Send for SharedArray<T> {}
// SAFETY: as above; all methods take &self and synchronise through atomics.
unsafe impl<T: Pod + Send + Sync> Sync for SharedArray<T> {}

impl<T: Pod> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArray")
            .field("name", &self.name())
            .field("type", &core::any::type_name::<T>())
            .field("len", &self.len)
            .finish_non_exhaustive()
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
    /// `reclaim_stale`, the type `tag` and the `shape` apply.
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
        let mut a = opts.open(|init_wait| Self::open_region(name, &ty, init_wait))?;
        a.set_wait_policy(opts.policy());
        Ok(a)
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
        let mut g = geometry(&ty, len)?;
        if let Some(dims) = opts.array_shape() {
            g.shape = Shape::new(dims, len)?;
        }
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
            Ok(Self::from_parts(region, words, len, g.shape))
        };
        let mut a = if or_open {
            opts.open_or_create(name, make, |init_wait| {
                Self::open_region(name, &ty, init_wait)
            })
        } else {
            opts.create(name, make)
        }?;
        a.set_wait_policy(opts.policy());
        Ok(a)
    }

    /// Open the array segment `name` of `ty`, waiting for its header until
    /// `init_wait`.
    fn open_region(name: &str, ty: &TypeInfo, init_wait: Deadline) -> Result<Self> {
        let region = Region::open_shm::<ArrayControl>(name, ty, init_wait, |g| check(g).map(drop))?;
        let len = check(region.geometry())?;
        let shape = region.geometry().shape;
        Ok(Self::from_parts(region, None, len, shape))
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
        Ok(Self::from_parts(region, None, len, Shape::FLAT))
    }

    /// A heap array (see [`heap`](Self::heap)) holding a copy of `values`.
    ///
    /// # Errors
    /// As [`heap`](Self::heap).
    pub fn heap_from(values: &[T]) -> Result<Self> {
        let a = Self::heap(values.len())?;
        a.core.words().store_all(bytemuck::cast_slice(values));
        Ok(a)
    }

    fn from_parts(region: Region, words: Option<Words>, len: usize, shape: Shape) -> Self {
        let core = Core::new(region, words);
        debug_assert!(len * size_of::<T>() <= 8 * core.words().len());
        let shape = if shape == Shape::FLAT {
            Shape::new(&[len], len).expect("a length of at least 1 is a shape")
        } else {
            shape
        };
        SharedArray {
            core,
            len,
            shape,
            scratch: Mutex::new(Scratch::default()),
            reads: Mutex::new(Vec::new()),
            _t: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The dimensions its creator recorded ([`Options::shape`]), in C order; a flat
    /// array has one, its length. Their product is [`len`](Self::len).
    pub fn shape(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Always `false`: an array holds at least one element.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The segment name, without the leading `/` (`None` for a heap array).
    pub fn name(&self) -> Option<&str> {
        self.core.region().name()
    }

    /// A token that keeps this segment mapped in this process after the handle
    /// drops (`None` for a heap queue): for bindings whose in-place views may
    /// outlive the handle. See [`Mapped`](crate::Mapped).
    pub fn keep_mapped(&self) -> Option<crate::Mapped> {
        self.core.region().keep_mapped()
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
        self.core.region().persist();
    }

    /// Whether the array may hold a partial write: a holder died while publishing,
    /// and no writer has completed a write since. A hint for readers; writers are
    /// told through [`WriteOutcome::recovered`].
    #[must_use]
    pub fn is_partial(&self) -> bool {
        self.core.is_partial()
    }

    // ---- writes ----

    fn write_locked<R>(&self, held: Held<'_>, f: impl FnOnce(&mut [T]) -> R) -> WriteOutcome<R> {
        let mut guard = WriteGuard::new(self, held);
        // A panic here drops the guard: the lock is released, nothing published.
        let value = f(&mut guard);
        let recovered = guard.commit();
        WriteOutcome { value, recovered }
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
        self.write_locked(self.acquire_forever(), f)
    }

    /// [`write`](Self::write) if the lock is free now (or its holder is dead).
    ///
    /// # Errors
    /// [`LockBusy`] with the holder's pid.
    pub fn try_write<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<WriteOutcome<R>, LockBusy> {
        Ok(self.write_locked(self.try_acquire()?, f))
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
        Ok(self.write_locked(self.acquire_until(Deadline::after(timeout))?, f))
    }

    /// Take the lock and a working copy of the array, waiting as long as it takes
    /// (a dead holder is recovered): [`write`](Self::write) for code that cannot
    /// put its update in a closure. See [`WriteGuard`].
    ///
    /// Taking the lock again while this thread holds the guard deadlocks, as with
    /// any non-reentrant lock.
    pub fn lock(&self) -> WriteGuard<'_, T> {
        WriteGuard::new(self, self.acquire_forever())
    }

    /// [`lock`](Self::lock) if the lock is free now (or its holder is dead).
    ///
    /// # Errors
    /// [`LockBusy`] with the holder's pid.
    pub fn try_lock(&self) -> Result<WriteGuard<'_, T>, LockBusy> {
        Ok(WriteGuard::new(self, self.try_acquire()?))
    }

    /// [`lock`](Self::lock), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeout`] with the holder's pid.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<WriteGuard<'_, T>, LockTimeout> {
        self.lock_deadline(Instant::now() + timeout)
    }

    /// [`lock`](Self::lock), waiting until `deadline`.
    ///
    /// # Errors
    /// [`LockTimeout`] with the holder's pid.
    pub fn lock_deadline(&self, deadline: Instant) -> Result<WriteGuard<'_, T>, LockTimeout> {
        Ok(WriteGuard::new(
            self,
            self.acquire_until(Deadline::at(deadline))?,
        ))
    }

    fn acquire_forever(&self) -> Held<'_> {
        match self.core.acquire(Deadline::never(), false) {
            Ok(held) => held,
            Err(_) => unreachable!("acquire without a deadline does not time out"),
        }
    }

    fn try_acquire(&self) -> Result<Held<'_>, LockBusy> {
        self.core
            .acquire(Deadline::never(), true)
            .map_err(|pid| LockBusy { pid })
    }

    fn acquire_until(&self, deadline: Deadline) -> Result<Held<'_>, LockTimeout> {
        self.core
            .acquire(deadline, false)
            .map_err(|pid| LockTimeout { pid })
    }

    // ---- reads ----

    fn snapshot_until(&self, deadline: Deadline) -> Result<Vec<T>, LockTimeout> {
        let mut out = Vec::new();
        self.core.read_into(&mut out, self.len, deadline)?;
        Ok(out)
    }

    /// A consistent copy of the array: never part of a `write`. Waits (without
    /// limit) only if a write is being published over and over, or a writer died
    /// while publishing and its lock must be recovered.
    #[must_use]
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
        match self.core.read_into(out, self.len, Deadline::never()) {
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
        self.core.read_into(buf, self.len, deadline)?;
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
        self.core.region().data().as_ptr().cast()
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
