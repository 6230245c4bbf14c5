//! Waiting: spin briefly, then yield, then sleep on a futex word in the segment.
//!
//! ## The sleep/wake protocol
//! Each condition a side may wait for ("not empty", "not full") has a 32-bit futex
//! word in the segment, 1 while someone may be asleep on it.
//!
//! ```text
//! waiter                                  waker
//! flag.swap(1, SeqCst)         (W1)       index.store(new, Release)  (K1, publishes)
//! heavy_barrier()              (WB)       light_barrier()            (KB)
//! if ready()                   (W2)       if flag.load() != 0        (K2)
//!     return                                  && flag.swap(0) != 0
//! futex_wait(flag, 1, slice)   (W3)           futex_wake(flag)
//! ```
//!
//! This is Dekker's pattern: the waiter stores W1 and loads W2, the waker stores K1
//! and loads K2, and no wake-up is lost as long as at least one of them sees the
//! other's store. That needs a store-load barrier on each side. The waker runs on
//! every publish, so its barrier is the one that must be cheap, and the waiter only
//! runs when it is about to sleep (after spinning and yielding for some
//! microseconds), so it can afford an expensive one. Hence two modes:
//!
//! - **Asymmetric** (Linux `membarrier(2)`, the default where the kernel has it):
//!   every process that uses shmbatch registers with
//!   `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` when its first handle attaches. The
//!   waker's KB is then only a compiler fence, and the waiter's WB is
//!   `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (~1 µs), which runs a full memory barrier on
//!   every CPU that is running a thread of a registered process. Either that barrier
//!   lands on the waker's CPU after K1 was executed (K1 is then drained to memory and
//!   W2 sees it), or before it (then K2 executes after the barrier, and W1, which was
//!   globally visible before WB started, is what K2 sees). This is the technique
//!   of liburcu and of folly's `asymmetricHeavyBarrier`; it is not expressible in
//!   Rust's memory model, which is why loom and miri builds use the next mode.
//! - **Symmetric** (no usable `membarrier`, and always under loom and miri): KB is
//!   `fence(SeqCst)` and W1 is a `SeqCst` swap; with W2's `SeqCst` loads after W1
//!   and K2's load after the fence, the fence rules of the `SeqCst` total order give
//!   the same guarantee (W2 must be `SeqCst`: the rule that makes it see K1 needs a
//!   `SeqCst` read after the fence in that order). It costs one full fence per publish.
//!
//! A waker's mode is that of its own process, and waiters always issue WB when they
//! can, so processes in either mode interoperate. If WB fails in a process whose
//! peers run the asymmetric mode (possible only when their system-call filters
//! differ), a lost wake-up would be found by the waiter's next look:
//! the waiter then sleeps at most [`SHORT_SLICE`] at a time.
//!
//! All sleeps are bounded by [`SLICE`] anyway so that a waiter notices a peer that
//! died without waking it (the queues check liveness between slices).

use std::time::{Duration, Instant};

use crate::sync::{self, AtomicU32, Ordering};

/// Longest single futex sleep; between slices a waiter re-checks its peers.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// Polls at the shortest interval (one CPU pause) before backing off: a peer
/// that is about to answer does so within a few cache-line transfers, and a
/// waiter already pausing longer between looks notices it late
/// (`docs/benchmarks.md`, "The waiting back-off").
const QUICK_POLLS: u32 = 16;
/// Then the interval doubles up to 2^SPIN_STEPS pauses (about 2 µs of spinning
/// in all on current x86): a waiter that keeps polling the line a fast peer is
/// writing steals it on every look, so backing off lets the peer get ahead
/// (`docs/benchmarks.md`).
const SPIN_STEPS: u32 = 6;
/// Then the waiter yields this many times before it sleeps, so that on a busy
/// machine it gives its core to the peer it waits for before paying for a futex
/// sleep and wake.
const YIELD_STEPS: u32 = 10;

/// Spin, then yield; tells the caller when it is time to sleep.
///
/// [`QUICK_POLLS`] looks one CPU pause apart, then [`SPIN_STEPS`] looks at a
/// doubling interval, then [`YIELD_STEPS`] yields. Why each number has its value,
/// and the measurements that chose them, are in `docs/benchmarks.md` ("The
/// waiting back-off").
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    /// Number of `snooze` calls that wait before it says to sleep.
    pub(crate) const STEPS: u32 = QUICK_POLLS + SPIN_STEPS + YIELD_STEPS;

    /// Wait a little. Returns `false` once spinning and yielding are exhausted and
    /// the caller should sleep instead.
    #[inline]
    pub(crate) fn snooze(&mut self) -> bool {
        if self.step < QUICK_POLLS {
            sync::spin_loop();
        } else if self.step < QUICK_POLLS + SPIN_STEPS {
            // Under loom a pause is a yield to its scheduler: one per step keeps the
            // models small.
            let pauses = if cfg!(loom) {
                1
            } else {
                2u32 << (self.step - QUICK_POLLS)
            };
            for _ in 0..pauses {
                sync::spin_loop();
            }
        } else if self.step < Self::STEPS {
            sync::yield_now();
        } else {
            return false;
        }
        self.step += 1;
        true
    }

    /// Whether the next `snooze` only yields or sleeps (time to look at the clock).
    pub(crate) fn is_yielding(&self) -> bool {
        self.step >= QUICK_POLLS + SPIN_STEPS
    }
}

/// [`Backoff`] for spinning loops outside the library, which have no futex to
/// sleep on: once its steps are exhausted, every `snooze` yields. Exported as
/// `shmbatch::__bench::Backoff` for the workspace's bench code (`bench-peers/`,
/// the CLI's limit measurements), so that they poll exactly as shmbatch does. Not
/// part of the stable API.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct SpinThenYield(Backoff);

impl SpinThenYield {
    /// Wait a little: a [`Backoff`] step, or a yield once those are exhausted.
    #[inline]
    pub fn snooze(&mut self) {
        if !self.0.snooze() {
            sync::yield_now();
        }
    }
}

/// A point in time after which a timed operation gives up; `None` waits forever.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    pub(crate) fn never() -> Self {
        Deadline(None)
    }

    pub(crate) fn after(timeout: Duration) -> Self {
        Deadline(Instant::now().checked_add(timeout))
    }

    pub(crate) fn at(instant: Instant) -> Self {
        Deadline(Some(instant))
    }

    /// Time left, `None` if unbounded, `Some(ZERO)` once passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn passed(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// The length of the next sleep: at most [`SLICE`], at most the time left.
    pub(crate) fn slice(&self) -> Duration {
        self.remaining().map_or(SLICE, |r| r.min(SLICE))
    }
}

/// Longest single sleep of a waiter whose heavy barrier failed (module docs).
pub(crate) const SHORT_SLICE: Duration = Duration::from_millis(1);

/// Choose this process's wake mode (module docs); called when a handle attaches.
/// Cheap after the first call.
pub(crate) fn init() {
    mode::init();
}

/// Whether this process wakes its peers in the asymmetric mode: publishing costs
/// no fence, and a peer about to sleep pays a `membarrier(2)` instead.
///
/// Decided when the first queue handle of the process attaches (`false` before).
/// Set the environment variable `SHMBATCH_SYMMETRIC_WAKE=1` to use a full fence per
/// publish instead (for kernels or sandboxes without `membarrier`, or to compare).
pub fn asymmetric_wake() -> bool {
    mode::light()
}

/// KB of the module docs: the barrier between a waker's publishing store (K1) and
/// its load of the sleep flag (K2).
#[inline(always)]
pub(crate) fn light_barrier() {
    if mode::light() {
        // The waiter's membarrier supplies the hardware barrier; we only stop the
        // compiler from moving K2 above K1.
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    } else {
        sync::fence(Ordering::SeqCst);
    }
}

/// Sleep on `flag` unless `ready()` already holds; see the module docs. `ready`
/// must load what the wakers publish with `SeqCst` (module docs: the symmetric mode
/// needs it).
pub(crate) fn sleep(flag: &AtomicU32, ready: impl FnOnce() -> bool, max: Duration) {
    // W1: announce the sleeper. Pairs with K2 in `wake`.
    flag.swap(1, Ordering::SeqCst);
    // WB.
    let max = if mode::heavy_barrier() {
        max
    } else {
        max.min(SHORT_SLICE)
    };
    // W2.
    if ready() {
        return;
    }
    futex_wait(flag, 1, max);
}

/// Wake everyone asleep on `flag`. Call right after publishing with a Release
/// store (K1): this is KB and K2 of the module docs.
#[inline]
pub(crate) fn wake(flag: &AtomicU32) {
    light_barrier();
    // K2: pairs with W1 in `sleep` (through the barriers).
    // The swap only decides who makes the system call; the kernel re-checks the
    // word under its lock, so Relaxed is enough.
    if flag.load(Ordering::Relaxed) != 0 && flag.swap(0, Ordering::Relaxed) != 0 {
        futex_wake(flag);
    }
}

#[cfg(not(any(loom, miri)))]
mod mode {
    use std::sync::atomic::{AtomicU8, Ordering};

    use rustix::thread::{membarrier, MembarrierCommand};

    const UNKNOWN: u8 = 0;
    const SYMMETRIC: u8 = 1;
    const ASYMMETRIC: u8 = 2;

    /// This process's mode: process-local state, so a std atomic. Relaxed is
    /// enough: it only ever changes once, from UNKNOWN, in `init`, which runs before
    /// the handle that calls it can publish anything, in the same thread.
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    pub(super) fn init() {
        if MODE.load(Ordering::Relaxed) != UNKNOWN {
            return;
        }
        let disabled = std::env::var_os("SHMBATCH_SYMMETRIC_WAKE").is_some_and(|v| v != "0");
        // Registration must precede our first light publish, so that every waiter's
        // GLOBAL_EXPEDITED barrier reaches our CPUs from then on. Registering twice
        // (two threads racing here) is harmless.
        let mode = if !disabled && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok() {
            ASYMMETRIC
        } else {
            SYMMETRIC
        };
        // A racing thread may have stored the other answer only if registration
        // failed for it and succeeded for us (e.g. a transient ENOMEM): keep the
        // safe one.
        let _ = MODE.compare_exchange(UNKNOWN, mode, Ordering::Relaxed, Ordering::Relaxed);
    }

    #[inline(always)]
    pub(super) fn light() -> bool {
        MODE.load(Ordering::Relaxed) == ASYMMETRIC
    }

    /// WB: a full barrier on every CPU running a registered process. `false` if
    /// the kernel refused it.
    pub(super) fn heavy_barrier() -> bool {
        membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    }
}

// Loom and miri cannot model membarrier: the symmetric mode only.
#[cfg(any(loom, miri))]
mod mode {
    pub(super) fn init() {}
    #[inline(always)]
    pub(super) fn light() -> bool {
        false
    }
    pub(super) fn heavy_barrier() -> bool {
        true
    }
}

/// Wake everyone asleep on `flag` whatever its state (used on detach).
pub(crate) fn wake_always(flag: &AtomicU32) {
    // SeqCst after the caller's SeqCst detach store: a sleeper whose W1 comes after
    // this store in the SeqCst order sees the detach in W2; one whose W1 comes
    // before it finds 0 (or is woken) in W3.
    flag.store(0, Ordering::SeqCst);
    futex_wake(flag);
}

/// Sleep while `flag` holds `expected`, at most `max` (shared futex; returns early on
/// a wake, a signal or a changed value).
#[cfg(not(any(loom, miri)))]
pub(crate) fn futex_wait(flag: &AtomicU32, expected: u32, max: Duration) {
    use rustix::thread::futex;
    let ts = futex::Timespec {
        tv_sec: max.as_secs() as _,
        tv_nsec: max.subsec_nanos() as _,
    };
    // Not FUTEX_PRIVATE: the word lives in memory shared between processes.
    // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "look again".
    let _ = futex::wait(flag, futex::Flags::empty(), expected, Some(&ts));
}

/// Wake everyone asleep on `flag` (shared futex).
#[cfg(not(any(loom, miri)))]
pub(crate) fn futex_wake(flag: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(flag, futex::Flags::empty(), i32::MAX as u32);
}

// Loom cannot see system calls and miri does not emulate shared futexes: there the
// sleep is a yield (bounded waits still terminate through their callers' loops).
#[cfg(any(loom, miri))]
pub(crate) fn futex_wait(_flag: &AtomicU32, _expected: u32, _max: Duration) {
    sync::yield_now();
}

#[cfg(any(loom, miri))]
pub(crate) fn futex_wake(_flag: &AtomicU32) {}

/// Failed polls between two looks at the peers' liveness outside sleep (which are
/// also at least [`SLICE`] apart).
const LIVENESS_EVERY: u32 = 1024;

/// When a handle that finds its queue full (empty) should look at its peers'
/// liveness, a system call per attached peer, and recover what the dead hold: at
/// most every [`SLICE`]; outside sleep only every [`LIVENESS_EVERY`] failed polls,
/// so that a spinning `try_` loop rarely reads the clock; and at once after
/// [`ask`](Self::ask) (a sleeper hands its turn to the next attempt, recoveries
/// chain, tests ask).
///
/// Process-local bookkeeping of one handle, shared by the threads that use it:
/// plain `std` atomics (never in the segment, never modelled by loom), Relaxed,
/// since the worst a race does is one check more or fewer.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// Failed polls since creation (wrapping).
    idle: std::sync::atomic::AtomicU32,
    /// When the last check was due: nanoseconds since `epoch`.
    last: std::sync::atomic::AtomicU64,
    epoch: Instant,
    /// Set by `ask` for the next `due`.
    next: std::sync::atomic::AtomicBool,
}

impl Liveness {
    pub(crate) fn new() -> Liveness {
        Liveness {
            idle: Default::default(),
            last: Default::default(),
            epoch: Instant::now(),
            next: Default::default(),
        }
    }

    /// Make the next `due` say yes.
    pub(crate) fn ask(&self) {
        self.next.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Count a failed poll and say whether to check the peers now.
    #[inline]
    pub(crate) fn due(&self, sleeping: bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.next.load(Relaxed) && self.next.swap(false, Relaxed) {
            return true;
        }
        // A load and a store, not an RMW: a count that races loses a poll or two,
        // and a failed poll stays free of locked instructions.
        let idle = self.idle.load(Relaxed).wrapping_add(1);
        self.idle.store(idle, Relaxed);
        if !sleeping && idle % LIVENESS_EVERY != 0 {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.last.load(Relaxed);
        if now.saturating_sub(last) < SLICE.as_nanos() as u64 {
            return false;
        }
        // One of the threads racing here wins the check.
        self.last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    }
}

/// One operation of a queue that may have to wait, as the blocking core sees it:
/// the per-kind part of every blocking, timed and deadline call (`send`,
/// `send_timeout`, `send_deadline`, `reserve`..., `recv`...). Each kind implements
/// it on a small per-call value (the handle, the batch length, what the last
/// attempt saw), and [`until`] turns it into the waiting call.
pub(crate) trait Wait {
    /// What the operation gives when it succeeds: a claimed slot, a taken batch.
    type Ready;
    /// The error of one attempt: `TrySendError`, `TryRecvError`, ...
    type Error: AttemptError;
    /// Try once, without waiting. `Full`/`Empty` (see [`AttemptError::not_now`])
    /// means: wait for the other side, then try again.
    fn attempt(&mut self) -> Result<Self::Ready, Self::Error>;
    /// Sleep at most `slice`, unless what the last attempt saw has changed (the
    /// W side of the protocol in the module docs). It may find damage too.
    fn sleep(&mut self, slice: Duration) -> Result<(), Self::Error>;
}

/// The error of one attempt, as the blocking core needs it.
pub(crate) trait AttemptError: Sized {
    /// The error of the waiting call: `SendTimeoutError`, `RecvTimeoutError`, ...
    type Waiting;
    /// Whether the attempt only found the queue not ready (`Full`, `Empty`).
    fn not_now(&self) -> bool;
    /// The waiting call's error for this one (not called when `not_now`).
    fn waiting(self) -> Self::Waiting;
    /// The waiting call's `Timeout`.
    fn timeout() -> Self::Waiting;
}

/// Attempt `op` until it succeeds, fails, or `deadline` passes, backing off
/// between attempts: spin, yield, then sleep (`Wait::sleep`) a slice at a time.
#[inline]
pub(crate) fn until<W: Wait>(
    op: &mut W,
    deadline: Deadline,
) -> Result<W::Ready, <W::Error as AttemptError>::Waiting> {
    match op.attempt() {
        Ok(r) => Ok(r),
        Err(e) if e.not_now() => until_slow(op, deadline),
        Err(e) => Err(e.waiting()),
    }
}

/// The waiting half of [`until`], out of line so that the fast path stays small.
#[inline(never)]
fn until_slow<W: Wait>(
    op: &mut W,
    deadline: Deadline,
) -> Result<W::Ready, <W::Error as AttemptError>::Waiting> {
    let mut backoff = Backoff::default();
    loop {
        if backoff.is_yielding() && deadline.passed() {
            return Err(W::Error::timeout());
        }
        if !backoff.snooze() {
            op.sleep(deadline.slice()).map_err(AttemptError::waiting)?;
        }
        match op.attempt() {
            Ok(r) => return Ok(r),
            Err(e) if e.not_now() => {}
            Err(e) => return Err(e.waiting()),
        }
    }
}

/// Retry `attempt` until it yields a value, fails, or `deadline` passes (`Ok(None)`),
/// backing off between tries and calling `sleep` with the next sleep length once
/// spinning and yielding are exhausted (`sleep` may fail too). For waits that are
/// not a queue operation (the array's lock).
pub(crate) fn block<S, R, E>(
    s: &mut S,
    deadline: Deadline,
    mut attempt: impl FnMut(&mut S) -> Result<Option<R>, E>,
    mut sleep: impl FnMut(&mut S, Duration) -> Result<(), E>,
) -> Result<Option<R>, E> {
    let mut backoff = Backoff::default();
    loop {
        if let Some(r) = attempt(s)? {
            return Ok(Some(r));
        }
        if backoff.is_yielding() && deadline.passed() {
            return Ok(None);
        }
        if !backoff.snooze() {
            sleep(s, deadline.slice())?;
        }
    }
}
