//! The array's algorithm over a [`Region`]: the cross-process lock word and its
//! futex, the sequence counter that makes reads consistent (a seqlock), and the
//! data region as 8-byte atomic words. Pure logic: the memory may come from a
//! segment or from the heap (loom, miri). Both ends of every Release/Acquire pair
//! of the lock and the seqlock are in this file; the element operations
//! (`elements.rs`) pair only with each other.
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
//!   after sleeping a whole slice without a wake-up, see the [module docs of
//!   `array`](super), "A process dies") replaces it with a CAS. The new holder reads
//!   the sequence with an RMW (the dead holder never released, so only an RMW is
//!   sure to read its last store); an odd value means it died while publishing: it
//!   stores the next even value and sets the sticky `partial` flag, which the next
//!   writer is told about.
//!
//! - Sleeping: a waiter sets the futex word to 1 and then loads the lock word; the
//!   unlocking holder stores 0 to the lock word and then loads the futex word; all
//!   four `SeqCst`. In their single total order one of the two loads sees the
//!   other side's store: the holder wakes the sleeper, or the sleeper sees the lock
//!   free (or held by a later holder, whose unlock then sees the 1) and does not
//!   sleep. The holder clears the futex word before waking, so a sleeper whose
//!   futex call comes late returns at once.
//!
//! # Waiting
//! The lock waits through [`wait::block`], not the queues' [`wait::until`]: taking
//! the lock is not a queue operation (an attempt has no error but "held", and a
//! timeout must report the holder's pid, which `AttemptError::timeout` has no value
//! to take it from), so the closure form fits it with no adapter types.
//!
//! The loom models in `tests/loom_array.rs` check the lock and the seqlock with the
//! data held in loom atomics.

use std::convert::Infallible;
use std::mem::size_of;
#[cfg(not(loom))]
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{Error, LockTimeout, Result};
use crate::layout::{Geometry, Kind, Padded, TypeInfo, ARRAY_DATA_OFFSET, MAX_SEGMENT_LEN};
use crate::segment::{Control, ProcId, Region};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use crate::wait::{self, Backoff, Deadline, WaitPolicy};

use super::Recovered;

/// Most optimistic read attempts (each followed by a back-off step) before a
/// reader falls back to reading under the lock. It falls back sooner when its
/// [`Backoff`] says to sleep (the adaptive policy's spin budget: a reader under a
/// stream of writes keeps trying for some microseconds first); the cap bounds a
/// busy-spinning reader, whose back-off never says so.
#[cfg(not(loom))]
const OPTIMISTIC_TRIES: u32 = 4096;
#[cfg(loom)]
const OPTIMISTIC_TRIES: u32 = 2;

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
    /// CAS from 0, or from the exact word of a holder found dead (`array` module
    /// docs, "A process dies"); released by its holder with a `SeqCst` store of 0
    /// (a Release store, and the first half of the wake handshake). Any bits decode
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

/// The geometry of an array of `len` elements of `ty`.
pub(super) fn geometry(ty: &TypeInfo, len: usize) -> Result<Geometry> {
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
pub(super) fn check(g: &Geometry) -> Result<usize> {
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

/// The data region as 8-byte atomic words.
///
/// Outside loom these are views of the region's memory. Loom atomics cannot be laid
/// over raw memory, so under loom the words are loom atomics owned here instead
/// (only heap arrays exist under loom, so nobody else needs to see the memory).
pub(super) struct Words {
    #[cfg(not(loom))]
    base: NonNull<u64>,
    #[cfg(loom)]
    cells: Box<[AtomicU64]>,
    /// Number of words: `data_len / 8`.
    len: usize,
}

// SAFETY: `base` points into the data region of the `Region` that owns these
// words' memory (shared memory or a heap block), which is Send + Sync and
// outlives them (`over`); every access through it is an atomic operation, so
// sharing or moving the view between threads races on nothing.
unsafe impl Send for Words {}
// SAFETY: as for Send.
unsafe impl Sync for Words {}

impl Words {
    /// The words of `region`'s data region. The result must not outlive `region`.
    pub(super) fn over(region: &Region) -> Words {
        let len = region.geometry().data_len / 8;
        Words {
            #[cfg(not(loom))]
            base: region.data().cast(),
            #[cfg(loom)]
            cells: (0..len).map(|_| AtomicU64::new(0)).collect(),
            len,
        }
    }

    /// Number of words.
    #[inline(always)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Word `w`; `w < self.len`.
    #[inline(always)]
    pub(super) fn at(&self, w: usize) -> &AtomicU64 {
        debug_assert!(w < self.len, "word {w} of {}", self.len);
        #[cfg(not(loom))]
        {
            // SAFETY: w < len = data_len / 8 (every caller derives w from an index
            // checked against the array length, or iterates below len), so the word
            // lies inside the data region; the region is LINE-aligned, so the word is
            // 8-aligned; the region outlives `self` (Core holds both); and this
            // crate accesses the data region only through these atomics (the raw
            // view is `unsafe` and documents that it must not race them).
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
    pub(super) fn store_all(&self, bytes: &[u8]) {
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

/// One array region and the protocol over it: what every `SharedArray` runs,
/// whatever its element type.
pub(super) struct Core {
    words: Words,
    region: Region,
    /// Our lock word value: `ProcId::me().pack()`, never 0.
    me: u64,
    /// How the handle waits for the lock.
    pub(super) policy: WaitPolicy,
}

impl Core {
    /// The core of `region`, whose data words are `words` if given (made by
    /// `Words::over` while the region was created), else viewed afresh.
    pub(super) fn new(region: Region, words: Option<Words>) -> Core {
        let words = words.unwrap_or_else(|| Words::over(&region));
        // Our lock word must not read as free (pid 0 is nobody).
        debug_assert_ne!(ProcId::me(), ProcId::NOBODY);
        Core {
            words,
            region,
            me: ProcId::me().pack(),
            policy: WaitPolicy::default(),
        }
    }

    /// The data words.
    #[inline]
    pub(super) fn words(&self) -> &Words {
        &self.words
    }

    /// The region.
    #[inline]
    pub(super) fn region(&self) -> &Region {
        &self.region
    }

    #[inline]
    fn ctl(&self) -> &ArrayControl {
        self.region.control::<ArrayControl>()
    }

    /// Whether a holder died while publishing and no writer has completed a write
    /// since.
    pub(super) fn is_partial(&self) -> bool {
        // Relaxed: a hint, nothing is read on the strength of it.
        self.ctl().lock.partial.load(Ordering::Relaxed) != 0
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
            // CAS below, from exactly `cur`, recovers it (`array` module docs, "A
            // process dies"). No Release store of it will ever come: see `held`
            // for how the new holder reads the dead one's last sequence value.
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
    pub(super) fn acquire(&self, deadline: Deadline, try_once: bool) -> Result<Held<'_>, u32> {
        let mut st = Acquiring {
            check_owner: try_once,
            ..Acquiring::default()
        };
        let got = if try_once {
            self.try_acquire(&mut st)
        } else {
            let r = wait::block(
                &mut st,
                self.policy,
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
            // Readers stop retrying; pairs with their Acquire load of seq in
            // `read_bytes`.
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
            core: self,
            seq: s,
            recovered: (dead != 0 || partial).then_some(Recovered { pid: dead, partial }),
        }
    }

    // ---- reads ----

    /// Replace the contents of `buf` with a consistent copy of the array's `len`
    /// elements of `T` (`len * size_of::<T>()` at most the data region).
    pub(super) fn read_into<T: Pod>(
        &self,
        buf: &mut Vec<T>,
        len: usize,
        deadline: Deadline,
    ) -> Result<(), LockTimeout> {
        let n = len * size_of::<T>();
        assert!(
            n <= 8 * self.words.len,
            "{len} elements past the data region"
        );
        buf.clear();
        buf.reserve(len);
        // SAFETY: `buf` has room for len elements = n bytes, n <= 8 * words.len.
        unsafe { self.read_bytes(buf.as_mut_ptr().cast(), n, deadline)? };
        // SAFETY: read_bytes wrote all n bytes; any bytes are a valid T (Pod).
        unsafe { buf.set_len(len) };
        Ok(())
    }

    /// Copy a consistent state of the first `n` bytes of the array to `dst`.
    ///
    /// # Safety
    /// `dst` must be valid for `n` bytes of writes, and `n <= 8 * words().len()`.
    unsafe fn read_bytes(
        &self,
        dst: *mut u8,
        n: usize,
        deadline: Deadline,
    ) -> Result<(), LockTimeout> {
        let seq = &self.ctl().seq;
        let mut backoff = Backoff::new(self.policy);
        for _ in 0..OPTIMISTIC_TRIES {
            // Sync point "publish" (reader, first load): Acquire pairs with the
            // writer's Release store of the even value in `Held::publish` (or in
            // `held`, closing a dead writer's publication).
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                // SAFETY: dst valid for n bytes, n <= 8 * words.len (caller).
                unsafe { self.words.load_to(dst, n) };
                // Sync point "publish" (reader, check): pairs with the writer's
                // Release fence after its odd store.
                fence(Ordering::Acquire);
                if seq.load(Ordering::Relaxed) == s1 {
                    return Ok(());
                }
            }
            if !backoff.snooze() {
                break;
            }
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

/// The lock, held. Dropping it releases the lock; [`publish`](Self::publish)
/// completes a write and then releases it.
#[must_use = "dropping the guard releases the lock at once"]
pub(super) struct Held<'a> {
    core: &'a Core,
    /// The (even) sequence value when we took the lock.
    seq: u64,
    recovered: Option<Recovered>,
}

impl Held<'_> {
    /// What the writer is to be told about a dead earlier holder.
    pub(super) fn recovered(&self) -> Option<Recovered> {
        self.recovered
    }

    /// Replace the contents of `orig` with every data word (Relaxed), and those of
    /// `work` with the array's `len` elements of `T` taken from them. The lock
    /// orders us after every earlier writer; element atomics may still land, and
    /// [`publish`](Self::publish) keeps those on words the write does not change.
    pub(super) fn copy_in<T: Pod>(&self, orig: &mut Vec<u64>, work: &mut Vec<T>, len: usize) {
        let words = &self.core.words;
        let n = len * size_of::<T>();
        assert!(n <= 8 * words.len, "{len} elements past the data region");
        orig.clear();
        orig.extend((0..words.len).map(|w| words.at(w).load(Ordering::Relaxed)));
        work.clear();
        work.reserve(len);
        // SAFETY: `work` has capacity for len elements = n bytes; orig holds
        // words.len * 8 >= n bytes; the buffers do not overlap. After the copy all n
        // bytes are initialised, and any bytes are a valid T (Pod).
        unsafe {
            std::ptr::copy_nonoverlapping(
                orig.as_ptr().cast::<u8>(),
                work.as_mut_ptr().cast::<u8>(),
                n,
            );
            work.set_len(len);
        }
    }

    /// Complete a write: store the words of `new` that differ from `orig` (as
    /// filled by [`copy_in`](Self::copy_in)) inside an odd sequence window, clear
    /// the recovery notes, and release the lock. Returns the notice the writer is
    /// told. Nothing changed: no store at all, readers are not disturbed.
    pub(super) fn publish(self, orig: &[u64], new: &[u8]) -> Option<Recovered> {
        let ctl = self.core.ctl();
        let seq = &ctl.seq;
        let words = &self.core.words;
        let mut open = false;
        let mut put = |w: usize, v: u64| {
            if v == orig[w] {
                return;
            }
            if !open {
                open = true;
                // Sync point "publish" (open): readers that see any store below
                // see this odd value on their second seq load (fence pairing below).
                seq.store(self.seq.wrapping_add(1), Ordering::Relaxed);
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
            seq.store(self.seq.wrapping_add(2), Ordering::Release);
        }
        let recovered = self.recovered;
        if recovered.is_some() {
            // Told: clear the notes (we still hold the lock).
            ctl.lock.dead.store(0, Ordering::Relaxed);
            ctl.lock.partial.store(0, Ordering::Relaxed);
        }
        // `self` drops here: the lock is released.
        recovered
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let line = &self.core.ctl().lock;
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
