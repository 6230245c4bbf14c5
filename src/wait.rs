//! Waiting: spin briefly, then yield, then sleep on a futex word in the segment.
//!
//! ## The sleep/wake protocol
//! Each condition a side may wait for ("not empty", "not full") has a 32-bit futex
//! word in the segment, 1 while someone may be asleep on it.
//!
//! ```text
//! waiter                                  waker
//! flag.swap(1, SeqCst)         (W1)       index.swap(new, SeqCst)    (K1, publishes)
//! if ready() (SeqCst loads)    (W2)       if flag.load(SeqCst) != 0  (K2)
//!     return                                  && flag.swap(0) != 0
//! futex_wait(flag, 1, slice)   (W3)           futex_wake(flag)
//! ```
//!
//! All four accesses W1, W2, K1, K2 are `SeqCst`, so they fall in one total order.
//! If W2 does not see K1, W2 precedes K1, hence W1 precedes K2 and the waker sees
//! the flag and wakes the waiter (or clears the flag first, which makes W3 return
//! at once because the futex word is no longer 1). So no wake-up is lost, and the
//! waker makes a system call only when the flag is set: the fast path costs one
//! `xchg` and one load of a line that is written only when someone goes to sleep.
//!
//! Sleeps are bounded by [`SLICE`] so that a waiter notices a peer that died
//! without waking it (the queue checks liveness between slices).

use std::time::{Duration, Instant};

use crate::sync::{self, AtomicU32, Ordering};

/// Longest single futex sleep; between slices a waiter re-checks its peers.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

const SPIN_STEPS: u32 = 6;
const YIELD_STEPS: u32 = 10;

/// Spin, then yield; tells the caller when it is time to sleep.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    step: u32,
}

impl Backoff {
    /// Wait a little. Returns `false` once spinning and yielding are exhausted and
    /// the caller should sleep instead.
    #[inline]
    pub(crate) fn snooze(&mut self) -> bool {
        if self.step < SPIN_STEPS {
            for _ in 0..1u32 << self.step {
                sync::spin_loop();
            }
        } else if self.step < SPIN_STEPS + YIELD_STEPS {
            sync::yield_now();
        } else {
            return false;
        }
        self.step += 1;
        true
    }

    /// Whether the next `snooze` only yields or sleeps (time to look at the clock).
    pub(crate) fn is_yielding(&self) -> bool {
        self.step >= SPIN_STEPS
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

/// Sleep on `flag` unless `ready()` already holds; see the module docs.
/// `ready` must read the awaited index with `SeqCst`.
pub(crate) fn sleep(flag: &AtomicU32, ready: impl FnOnce() -> bool, max: Duration) {
    // W1: announce the sleeper. Pairs with K2 in `wake`.
    flag.swap(1, Ordering::SeqCst);
    // W2.
    if ready() {
        return;
    }
    futex_wait(flag, 1, max);
}

/// Wake everyone asleep on `flag`. Call after publishing an index with `SeqCst`.
#[inline]
pub(crate) fn wake(flag: &AtomicU32) {
    // K2: pairs with W1 in `sleep`.
    if flag.load(Ordering::SeqCst) != 0 && flag.swap(0, Ordering::SeqCst) != 0 {
        futex_wake(flag);
    }
}

/// Wake everyone asleep on `flag` whatever its state (used on detach).
pub(crate) fn wake_always(flag: &AtomicU32) {
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

/// Retry `attempt` until it yields a value, fails, or `deadline` passes (`Ok(None)`),
/// backing off between tries and calling `sleep` with the next sleep length once
/// spinning and yielding are exhausted.
pub(crate) fn block<S, R, E>(
    s: &mut S,
    deadline: Deadline,
    mut attempt: impl FnMut(&mut S) -> Result<Option<R>, E>,
    mut sleep: impl FnMut(&mut S, Duration),
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
            sleep(s, deadline.slice());
        }
    }
}
