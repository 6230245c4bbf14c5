//! Where a Python object keeps its Rust handle: one user at a time, handles that
//! follow a `fork`, and leases that outlive a call (the in-place views).
//!
//! A queue handle's verbs take `&mut self`, and a view lends part of the ring for
//! as long as a Python `with` block runs, so the handle lives in a [`Slot`] with a
//! `busy` flag instead of a `Mutex`: a call or a view takes the flag, and a second
//! user (another thread, or a call while a view is open) gets `shmbatch.Busy` at
//! once rather than waiting on a lock whose holder may be waiting for it.
//!
//! After `fork` the child holds copies of the parent's handles, whose attachments
//! name the parent. The first use in the child forgets that copy (dropping it would
//! detach the parent's end) and opens the segment again by name, as a process of
//! its own ([`fork_generation`]).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::Class;

/// Incremented in every child process right after `fork` (a `pthread_atfork`
/// handler: one atomic add, async-signal-safe).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// How many times this process's ancestry forked since the module was loaded: a
/// handle made in another generation was inherited from a parent.
pub(crate) fn fork_generation() -> u64 {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: registering a handler that does one atomic add; no prepare or
        // parent handler. A failure (ENOMEM) leaves handles fork-unaware, which
        // is what they were before: not a memory-safety matter.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Opens the segment again, by name, in a forked child.
pub(crate) type Reopen<H> = Box<dyn Fn() -> shmbatch::Result<Box<H>> + Send + Sync>;

/// A Rust handle shared by a Python object and the views it lent.
pub(crate) struct Slot<H: ?Sized> {
    /// Set while a call or a view uses `handle`.
    busy: AtomicBool,
    /// `None` once closed (or when a re-open after fork failed).
    handle: UnsafeCell<Option<Box<H>>>,
    /// The fork generation `handle` belongs to.
    generation: AtomicU64,
    /// Serialises the re-open after a fork.
    reopening: Mutex<()>,
    reopen: Reopen<H>,
}

// SAFETY: `handle` is only reached through `Access` and `Lease`, which exist only
// while this thread holds `busy` (taken with an Acquire CAS, released with a
// Release store), so at most one thread uses it at a time, as with a Mutex; the
// handle is Send.
unsafe impl<H: ?Sized + Send> Sync for Slot<H> {}

impl<H: ?Sized + Send> Slot<H> {
    pub(crate) fn new(handle: Box<H>, reopen: Reopen<H>) -> Arc<Self> {
        Arc::new(Slot {
            busy: AtomicBool::new(false),
            handle: UnsafeCell::new(Some(handle)),
            generation: AtomicU64::new(fork_generation()),
            reopening: Mutex::new(()),
            reopen,
        })
    }

    /// Take `busy`, after re-opening an inherited handle.
    fn take(&self) -> Result<(), Taken> {
        let now = fork_generation();
        if self.generation.load(Ordering::Acquire) != now {
            let _one = self.reopening.lock().unwrap_or_else(|p| p.into_inner());
            if self.generation.load(Ordering::Acquire) != now {
                // The forking thread is the only one the child started with, and
                // it is here: whoever held `busy` in the parent is not in this
                // process. Another child thread waits on `reopening`.
                self.busy.store(true, Ordering::Relaxed);
                // SAFETY: we hold `busy` (set just above) and the re-open lock.
                let slot = unsafe { &mut *self.handle.get() };
                if let Some(old) = slot.take() {
                    // Its attachment is the parent's: dropping it would detach it.
                    std::mem::forget(old);
                    match (self.reopen)() {
                        Ok(h) => *slot = Some(h),
                        Err(e) => {
                            // Left closed: later calls say so.
                            self.generation.store(now, Ordering::Release);
                            self.busy.store(false, Ordering::Release);
                            return Err(Taken::Reopen(e));
                        }
                    }
                }
                self.generation.store(now, Ordering::Release);
                self.busy.store(false, Ordering::Release);
            }
        }
        // Acquire pairs with the Release store of the previous user's release:
        // its accesses to the handle happen before ours.
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(Taken::Busy);
        }
        // SAFETY: we hold `busy`.
        if unsafe { (*self.handle.get()).is_none() } {
            self.busy.store(false, Ordering::Release);
            return Err(Taken::Closed);
        }
        Ok(())
    }

    /// The handle, for one call.
    pub(crate) fn enter(&self) -> PyResult<Access<'_, H>> {
        self.take().map_err(Taken::into_py)?;
        Ok(Access { slot: self })
    }

    /// The handle, for as long as the lease lives (a view).
    pub(crate) fn lease(self: &Arc<Self>) -> PyResult<Lease<H>> {
        self.take().map_err(Taken::into_py)?;
        Ok(Lease {
            slot: Arc::clone(self),
            released: false,
            generation: fork_generation(),
        })
    }

    /// Drop the handle now (the creator's removes the segment unless persisted).
    /// Arrays that views lent keep the memory mapped (`Mapped`), not the handle.
    pub(crate) fn close(&self) -> PyResult<()> {
        match self.take() {
            Ok(()) => {}
            // Closing twice is fine.
            Err(Taken::Closed) => return Ok(()),
            Err(e) => return Err(e.into_py()),
        }
        // SAFETY: we hold `busy`.
        let handle = unsafe { (*self.handle.get()).take() };
        self.give_back();
        drop(handle);
        Ok(())
    }

    /// Whether the handle was closed.
    pub(crate) fn is_closed(&self) -> bool {
        match self.take() {
            Ok(()) => {
                self.give_back();
                false
            }
            Err(e) => matches!(e, Taken::Closed),
        }
    }
}

impl<H: ?Sized> Slot<H> {
    fn give_back(&self) {
        self.busy.store(false, Ordering::Release);
    }
}

impl<H: ?Sized> Drop for Slot<H> {
    fn drop(&mut self) {
        if self.generation.load(Ordering::Relaxed) != FORK_GENERATION.load(Ordering::Relaxed) {
            // Inherited through fork and never used here: not ours to detach.
            if let Some(h) = self.handle.get_mut().take() {
                std::mem::forget(h);
            }
        }
    }
}

/// Why a [`Slot`]'s handle could not be taken.
enum Taken {
    Busy,
    Closed,
    Reopen(shmbatch::Error),
}

impl Taken {
    fn into_py(self) -> PyErr {
        match self {
            Taken::Busy => Class::Busy.err(
                "this handle is in use by another thread or by an open view: one \
                 user at a time (close the view first, or open a handle per thread)",
            ),
            Taken::Closed => PyValueError::new_err("the handle is closed"),
            Taken::Reopen(e) => crate::errors::from_error(e),
        }
    }
}

/// The handle of a [`Slot`], for one call.
pub(crate) struct Access<'a, H: ?Sized> {
    slot: &'a Slot<H>,
}

impl<H: ?Sized> std::ops::Deref for Access<'_, H> {
    type Target = H;
    fn deref(&self) -> &H {
        // SAFETY: we hold `busy`, and `take` checked the handle is there.
        unsafe {
            (*self.slot.handle.get())
                .as_deref()
                .expect("checked by take")
        }
    }
}

impl<H: ?Sized> std::ops::DerefMut for Access<'_, H> {
    fn deref_mut(&mut self) -> &mut H {
        // SAFETY: as in `deref`; `busy` makes the access unique.
        unsafe {
            (*self.slot.handle.get())
                .as_deref_mut()
                .expect("checked by take")
        }
    }
}

impl<H: ?Sized> Drop for Access<'_, H> {
    fn drop(&mut self) {
        self.slot.busy.store(false, Ordering::Release);
    }
}

/// The handle of a [`Slot`] for as long as a view lives: it keeps the handle (and
/// so its mapping) alive, and the handle busy until [`release`](Self::release).
pub(crate) struct Lease<H: ?Sized> {
    slot: Arc<Slot<H>>,
    /// Whether `busy` was given back already.
    released: bool,
    generation: u64,
}

impl<H: ?Sized> Lease<H> {
    /// The handle, with the lease's lifetime erased.
    ///
    /// # Safety
    /// The reference must not be used after [`release`](Self::release) or the
    /// lease's drop, and nothing borrowed from it may outlive them either.
    pub(crate) unsafe fn handle(&self) -> &'static mut H {
        assert!(!self.released, "a released lease lends nothing");
        let slot = &self.slot;
        // SAFETY: we hold `busy` (so the access is unique), `take` checked the
        // handle is there, and the Arc keeps the slot alive; the caller bounds
        // the use.
        unsafe {
            (*slot.handle.get())
                .as_deref_mut()
                .map(|h| &mut *(h as *mut H))
                .expect("checked by take")
        }
    }

    /// Whether this lease was taken in this process (not inherited through fork).
    pub(crate) fn is_ours(&self) -> bool {
        self.generation == fork_generation()
    }

    /// Give the handle back to other users (the lease still keeps it alive).
    pub(crate) fn release(&mut self) {
        if !std::mem::replace(&mut self.released, true) && self.is_ours() {
            self.slot.give_back();
        }
    }
}

impl<H: ?Sized> Drop for Lease<H> {
    fn drop(&mut self) {
        self.release();
    }
}
