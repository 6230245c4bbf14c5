//! The one module that names an atomic type.
//!
//! Every algorithm in the crate imports its atomics from here, so that building with
//! `RUSTFLAGS="--cfg loom"` swaps in [loom]'s model-checked atomics without touching
//! the algorithms. Under loom, atomics are larger than their std counterparts and can
//! only live in ordinary Rust objects, which is why loom models use heap regions only
//! and the layout's size assertions are `cfg(not(loom))`.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Shared ownership that loom can see: when handles sharing state drop in different
/// threads, the last drop happens after the others (std's `Arc` orders them with
/// its own atomics, which loom does not model).
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

/// View the 8-byte word at `ptr`, in plain (shared or heap) memory, as an atomic.
///
/// Loom atomics cannot be laid over raw memory, so this exists outside loom only;
/// under loom the array keeps its data words in loom atomics of its own.
///
/// # Safety
/// `ptr` must be non-null, 8-byte aligned and valid for reads and writes for `'a`,
/// and for `'a` this process must access the word only through atomics.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) unsafe fn atomic_u64_at<'a>(ptr: *mut u64) -> &'a AtomicU64 {
    // SAFETY: forwarded to the caller (see `# Safety`).
    unsafe { AtomicU64::from_ptr(ptr) }
}

/// Hint to the CPU (or to loom's scheduler) that we are busy-waiting.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Give the rest of this time slice to another thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Shadow cells that let loom check the non-atomic accesses to a data region.
///
/// The payload of a region is plain memory that loom cannot see. Under loom every
/// access to a range of it is reported here, one [`loom::cell::UnsafeCell`] per 8-byte
/// word, so loom's vector clocks flag any access that is not ordered by the queue's
/// Release/Acquire pairs with the other side's access to the same words. Outside
/// loom this type is empty and every method compiles to nothing.
#[derive(Debug)]
pub(crate) struct Shadow {
    #[cfg(loom)]
    cells: Vec<loom::cell::UnsafeCell<()>>,
}

impl Shadow {
    pub(crate) fn new(_bytes: usize) -> Self {
        Shadow {
            #[cfg(loom)]
            cells: (0.._bytes.div_ceil(8))
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
        }
    }

    /// Record a read of `len` bytes at byte offset `off`.
    #[inline(always)]
    pub(crate) fn read(&self, _off: usize, _len: usize) {
        #[cfg(loom)]
        for c in &self.cells[_off / 8..(_off + _len).div_ceil(8)] {
            c.with(|_| ());
        }
    }

    /// Record a write of `len` bytes at byte offset `off`.
    #[inline(always)]
    pub(crate) fn write(&self, _off: usize, _len: usize) {
        #[cfg(loom)]
        for c in &self.cells[_off / 8..(_off + _len).div_ceil(8)] {
            c.with_mut(|_| ());
        }
    }
}
