//! Waiting: spin briefly, then yield, then sleep on a futex word in the segment.
//!
//! ## The sleep/wake protocol
//! Each condition a side may wait for ("not empty", "not full") has a 32-bit futex
//! word in the segment, 1 while someone may be asleep on it.
//!
//! ```text
//! waiter                                  waker
//! flag.swap(1, SeqCst)         (W1)       index.store(new, Release)  (K1, publishes)
//! heavy barrier (asymmetric)   (WB)       barrier                    (KB)
//! if ready()                   (W2)       if flag.load() != 0        (K2)
//!     return                                  && flag.swap(0) != 0
//! futex_wait(flag, 1, slice)   (W3)           futex_wake(flag)
//! ```
//!
//! This is Dekker's pattern: the waiter stores W1 and loads W2, the waker stores K1
//! and loads K2, and no wake-up is lost as long as at least one of them sees the
//! other's store. That needs a store-load barrier on each side. The waker runs on
//! every publish and the waiter only when it is about to sleep, so the barriers
//! can be balanced two ways, the segment's [`WakeProtocol`]:
//!
//! - **Asymmetric** (Linux `membarrier(2)`): every process that uses shmbatch
//!   registers with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` when its first
//!   handle attaches. The waker's KB is then only a compiler fence, and the
//!   waiter's WB is `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, which runs a full memory
//!   barrier on every CPU that is running a thread of a registered process.
//!   Either that barrier lands on the waker's CPU after K1 was executed (K1 is
//!   then drained to memory and W2 sees it), or before it (then K2 executes after
//!   the barrier, and W1, which was globally visible before WB started, is what K2
//!   sees). This is the technique of liburcu and of folly's
//!   `asymmetricHeavyBarrier`; it is not expressible in Rust's memory model, which
//!   is why loom and miri builds only run the symmetric one.
//! - **Symmetric**: KB is `fence(SeqCst)`, W1 is a `SeqCst` swap, and there is no
//!   WB. If W2 (a `SeqCst` load) follows the waker's fence in the `SeqCst` total
//!   order S, it sees K1, which is sequenced before the fence. Otherwise W1, which
//!   precedes W2 in S, precedes the fence too, and K2, sequenced after the fence,
//!   sees W1 or a later store (a waker's swap to 0, whose futex wake then finds us
//!   or makes our futex call return at once). It costs one full fence per publish.
//!
//! The protocol is the segment's, in its header, not the process's: every handle
//! of a segment follows it, whatever its process would choose for segments of its
//! own. A process that could not register for `membarrier` fences in asymmetric
//! segments too (always correct for a waker). If WB fails (a system-call filter),
//! a lost wake-up would be found by the waiter's next look: the waiter then sleeps
//! at most [`SHORT_SLICE`] at a time. Creators choose by measured cost
//! ([`calibration`]): on bare metal a heavy barrier costs about a microsecond and
//! the asymmetric protocol saves a fence per publish; under virtualization it
//! costs tens of microseconds and makes waiters convoy, and the symmetric one wins.
//!
//! ## Waiting
//! Before a waiter sleeps it spins and yields for a time ([`WaitPolicy`]):
//! by default as long as a sleep and wake costs on this machine, measured once
//! per process ([`Calibration::spin`]).
//!
//! All sleeps are bounded by [`SLICE`] anyway so that a waiter notices a peer that
//! died without waking it (the queues check liveness between slices).

use std::time::{Duration, Instant};

use crate::sync::{self, AtomicU32, Ordering};

mod calibrate;
mod policy;

pub use calibrate::{asymmetric_wake, calibration, Calibration};
pub(crate) use policy::Backoff;
pub use policy::{SpinThenYield, WaitPolicy};

/// Longest single futex sleep; between slices a waiter re-checks its peers.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

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

/// Measure this process's waiting costs (once; module `calibrate`) and register
/// for `membarrier(2)`: called when a queue handle attaches, before it can
/// publish anything.
pub(crate) fn init() {
    calibration();
}

/// How the wakers and the sleepers of one segment make sure that no wake-up is
/// lost (the module docs of `wait`): decided by the segment's creator, recorded
/// in its header (bit 0 of `flags`), and followed by every process that opens it.
///
/// By default a creator takes the one its process measured to be cheaper on the
/// machine ([`calibration`]); [`Options::wake_protocol`](crate::Options::wake_protocol)
/// sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WakeProtocol {
    /// Publishing costs no fence; a waiter about to sleep runs
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which interrupts every CPU
    /// running a thread of a process that uses shmbatch. Cheap on bare metal
    /// (about 1 µs on AMD EPYC), expensive under virtualization (14 µs on a
    /// 2-vCPU KVM guest while the peer runs).
    Asymmetric,
    /// Every publish ends with a full fence (a few ns, a stall until the store
    /// leaves the store buffer); a waiter about to sleep pays nothing more.
    Symmetric,
}

/// Bit 0 of the header's `flags`: the segment's wakers follow the asymmetric
/// protocol.
pub(crate) const FLAG_ASYMMETRIC_WAKE: u32 = 1;

impl WakeProtocol {
    pub(crate) fn flags(self) -> u32 {
        match self {
            WakeProtocol::Asymmetric => FLAG_ASYMMETRIC_WAKE,
            WakeProtocol::Symmetric => 0,
        }
    }

    pub(crate) fn from_flags(flags: u32) -> WakeProtocol {
        if flags & FLAG_ASYMMETRIC_WAKE != 0 {
            WakeProtocol::Asymmetric
        } else {
            WakeProtocol::Symmetric
        }
    }

    /// The protocol a segment created now gets, unless its options set one.
    pub(crate) fn default_for_new() -> WakeProtocol {
        calibration().protocol
    }
}

/// One handle's side of its segment's [`WakeProtocol`]: what its publishes
/// (`wake`) and its sleeps (`sleep`) do. Process-local, copied into each handle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wake {
    protocol: WakeProtocol,
    /// KB is a compiler fence only: the segment is asymmetric and this process is
    /// registered, so every waiter's heavy barrier reaches our CPUs.
    light: bool,
}

impl Wake {
    pub(crate) fn new(protocol: WakeProtocol) -> Wake {
        Wake {
            protocol,
            light: protocol == WakeProtocol::Asymmetric && calibration().registered,
        }
    }

    /// KB of the module docs: the barrier between a waker's publishing store
    /// (K1) and its load of the sleep flag (K2).
    #[inline(always)]
    fn barrier(&self) {
        if self.light {
            // The waiter's membarrier supplies the hardware barrier; we only stop
            // the compiler from moving K2 above K1.
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        } else {
            sync::fence(Ordering::SeqCst);
        }
    }

    /// Sleep on `flag` unless `ready()` already holds; see the module docs.
    /// `ready` must load what the wakers publish with `SeqCst` (the symmetric
    /// protocol needs it).
    pub(crate) fn sleep(&self, flag: &AtomicU32, ready: impl FnOnce() -> bool, max: Duration) {
        // W1: announce the sleeper. Pairs with K2 in `wake`.
        flag.swap(1, Ordering::SeqCst);
        // WB, in asymmetric segments only: in symmetric ones every waker fences.
        let max = if self.protocol == WakeProtocol::Symmetric || heavy_barrier() {
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

    /// Wake everyone asleep on `flag`. Call right after publishing with a
    /// Release store (K1): this is KB and K2 of the module docs.
    #[inline]
    pub(crate) fn wake(&self, flag: &AtomicU32) {
        self.barrier();
        // K2: pairs with W1 in `sleep` (through the barriers).
        // The swap only decides who makes the system call; the kernel re-checks
        // the word under its lock, so Relaxed is enough.
        if flag.load(Ordering::Relaxed) != 0 && flag.swap(0, Ordering::Relaxed) != 0 {
            futex_wake(flag);
        }
    }
}

/// WB: a full barrier on every CPU running a registered process. `false` if the
/// kernel refused it.
#[cfg(not(any(loom, miri)))]
fn heavy_barrier() -> bool {
    use rustix::thread::{membarrier, MembarrierCommand};
    membarrier(MembarrierCommand::GlobalExpedited).is_ok()
}

// Loom and miri cannot model membarrier: there `light` is always false (nothing is
// registered), every waker fences, and the symmetric argument covers both
// protocols.
#[cfg(any(loom, miri))]
fn heavy_barrier() -> bool {
    true
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
    /// How this handle waits.
    fn policy(&self) -> WaitPolicy;
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
    let mut backoff = Backoff::new(op.policy());
    loop {
        if backoff.is_slow() && deadline.passed() {
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
    policy: WaitPolicy,
    deadline: Deadline,
    mut attempt: impl FnMut(&mut S) -> Result<Option<R>, E>,
    mut sleep: impl FnMut(&mut S, Duration) -> Result<(), E>,
) -> Result<Option<R>, E> {
    let mut backoff = Backoff::new(policy);
    loop {
        if let Some(r) = attempt(s)? {
            return Ok(Some(r));
        }
        if backoff.is_slow() && deadline.passed() {
            return Ok(None);
        }
        if !backoff.snooze() {
            sleep(s, deadline.slice())?;
        }
    }
}
