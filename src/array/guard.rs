//! [`WriteGuard`]: the array's lock held across calls, for code that cannot put
//! its update inside a closure (an event loop, a foreign-language binding's
//! `with` block). [`SharedArray::write`] is this guard around a closure.

use std::fmt;
use std::mem;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;

use super::lock::Held;
use super::{try_take, Recovered, Scratch, SharedArray};
use crate::wait::WaitPolicy;

/// The cross-process lock of a [`SharedArray`], held, with a private working copy
/// of the array: from [`SharedArray::lock`] and its `try_`/`_timeout`/`_deadline`
/// variants.
///
/// Derefs to the working copy (`&mut [T]`), which starts as the array's contents.
/// [`commit`](Self::commit) publishes the elements that changed, all at once, and
/// releases the lock; dropping the guard without committing releases the lock and
/// publishes nothing, exactly as a `write` closure that panics. Readers never see
/// the working copy, only what a commit publishes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = shmbatch::SharedArray::<f64>::heap_from(&[1.0, 2.0, 3.0])?;
/// let mut g = a.lock();
/// assert!(g.recovered().is_none()); // Some if a holder had died
/// g[0] += 10.0;
/// g.commit();
/// assert_eq!(a.snapshot(), [11.0, 2.0, 3.0]);
///
/// let mut g = a.lock();
/// g[1] = -1.0;
/// drop(g); // not committed: nothing published
/// assert_eq!(a.snapshot(), [11.0, 2.0, 3.0]);
/// # Ok(()) }
/// ```
#[must_use = "a write guard publishes nothing unless it is committed"]
pub struct WriteGuard<'a, T: Pod = f64> {
    array: &'a SharedArray<T>,
    /// `None` only inside `commit`, after the lock was handed to `publish`.
    held: Option<Held<'a>>,
    /// The array's reusable buffers, taken out of it for the guard's life (fresh
    /// ones if another guard of this handle has them).
    scratch: Scratch<T>,
}

impl<'a, T: Pod> WriteGuard<'a, T> {
    /// Fill the working copy from the array under `held`.
    pub(super) fn new(array: &'a SharedArray<T>, held: Held<'a>) -> Self {
        let mut scratch = try_take(&array.scratch)
            .map(|mut s| mem::take(&mut *s))
            .unwrap_or_default();
        held.copy_in(&mut scratch.orig, &mut scratch.work, array.len);
        WriteGuard {
            array,
            held: Some(held),
            scratch,
        }
    }

    /// `Some` if an earlier holder died holding the lock (see [`Recovered`]): the
    /// working copy is the array as that holder left it. The notice is cleared when
    /// this guard commits, so the next writer is not told again.
    pub fn recovered(&self) -> Option<Recovered> {
        self.held.as_ref().and_then(Held::recovered)
    }

    /// Publish the elements of the working copy that differ from the array as it
    /// was when the lock was taken (readers see all of them or none), then release
    /// the lock. Returns the notice of [`recovered`](Self::recovered).
    pub fn commit(mut self) -> Option<Recovered> {
        let held = self.held.take()?;
        let Scratch { orig, work } = &self.scratch;
        held.publish(orig, bytemuck::cast_slice(work))
    }
}

impl<T: Pod> Deref for WriteGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.scratch.work
    }
}

impl<T: Pod> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.scratch.work
    }
}

impl<T: Pod> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // Uncommitted: release the lock (`Held`'s drop) and publish nothing.
        self.held = None;
        if let Some(mut s) = try_take(&self.array.scratch) {
            *s = mem::take(&mut self.scratch);
        }
    }
}

impl<T: Pod> fmt::Debug for WriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard")
            .field("len", &self.scratch.work.len())
            .field("recovered", &self.recovered())
            .finish_non_exhaustive()
    }
}

/// How a handle waits for the lock.
impl<T: Pod> SharedArray<T> {
    /// How this handle waits for the lock (and retries a read that a write
    /// overlapped): [`WaitPolicy`], what [`Options::wait_policy`](crate::Options::wait_policy) set,
    /// [`WaitPolicy::Adaptive`] by default.
    #[must_use]
    pub fn wait_policy(&self) -> WaitPolicy {
        self.core.policy
    }

    /// Change how this handle waits, from the next call on.
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.core.policy = policy;
    }
}
