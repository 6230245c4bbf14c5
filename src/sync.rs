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
///
/// Loom atomics cannot be laid over raw memory either, so under loom the shadow also
/// holds one loom atomic per 8-byte word of the region, which [`region_word`]
/// returns in place of the word itself (only heap regions exist under loom, so no
/// other process needs to see the real memory).
#[derive(Debug)]
pub(crate) struct Shadow {
    #[cfg(loom)]
    cells: Vec<loom::cell::UnsafeCell<()>>,
    #[cfg(loom)]
    words: Vec<AtomicU64>,
}

impl Shadow {
    pub(crate) fn new(_bytes: usize) -> Self {
        Shadow {
            #[cfg(loom)]
            cells: (0.._bytes.div_ceil(8))
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
            #[cfg(loom)]
            words: (0.._bytes.div_ceil(8)).map(|_| AtomicU64::new(0)).collect(),
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

/// The 8-byte word at byte offset `off` of a data region starting at `base`, as an
/// atomic: for words of the region that are sometimes atomics (the SPSC record
/// headers) and sometimes plain payload.
///
/// # Safety
/// `base + off` must be 8-byte aligned and valid for reads and writes for as long
/// as the returned reference (tied to the region's shadow) lives, and
/// every non-atomic access to the word, in any process, must be ordered with the
/// atomic accesses by happens-before (the queue's own sync points), as Rust's
/// memory model requires for memory accessed both ways.
#[inline(always)]
pub(crate) unsafe fn region_word(_shadow: &Shadow, base: *mut u8, off: usize) -> &AtomicU64 {
    #[cfg(loom)]
    {
        let _ = base;
        &_shadow.words[off / 8]
    }
    #[cfg(not(loom))]
    // SAFETY: aligned and valid while the reference lives (caller); mixed accesses
    // are ordered (caller).
    unsafe {
        AtomicU64::from_ptr(base.add(off).cast::<u64>())
    }
}
