//! The one mapping type: every `mmap` and `munmap` of the crate is here.
//!
//! A [`Mapping`] maps the start of a segment's file, shared, read-only (the header
//! probe, inspection) or read-write (an attached segment), and unmaps it on drop.
//! What lies in it is reached through [`Mapping::at`], which bounds-checks and
//! aligns a view of atomics ([`Atomics`]), or through [`Mapping::base`] for the
//! [`Region`](super::Region) that validates the header first.

use std::mem::{align_of, size_of};
use std::os::fd::AsFd;
use std::ptr::NonNull;

use rustix::mm::{MapFlags, ProtFlags};

use super::files::{io_error, Access, Name};
use super::Control;
use crate::error::Result;
use crate::layout::Identity;
use crate::sync::{AtomicU32, AtomicU64};

/// A shared mapping of the first `len` bytes of a file; unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory that stays valid until `drop`; this
// type only hands out its address and views of atomics, and every access through
// them is atomic or under the ownership protocol of the queue that uses it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map the first `len` bytes (`len > 0`) of `fd`, shared: readable, and also
    /// writable with [`Access::ReadWrite`]. `name` names the segment in an error.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the kernel refuses the mapping.
    pub(crate) fn new(fd: impl AsFd, len: usize, access: Access, name: &Name) -> Result<Mapping> {
        let prot = match access {
            Access::Read => ProtFlags::READ,
            Access::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        };
        // SAFETY: a fresh mapping at an address the kernel picks: no existing memory
        // is affected. The result is checked.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0) }
                .map_err(|e| io_error("mmap", name, e))?;
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).expect("mmap never returns null on success"),
            len,
        })
    }

    /// The start of the mapping (page aligned), valid for [`len`](Self::len) bytes
    /// while `self` lives.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The mapped length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The atomic (or block of atomics) of type `A` at `offset`.
    ///
    /// # Panics
    /// If `A` at `offset` does not lie inside the mapping or is misaligned (a bug
    /// of the caller, which checks offsets read from the segment first).
    pub(crate) fn at<A: Atomics>(&self, offset: usize) -> &A {
        assert!(
            offset
                .checked_add(size_of::<A>())
                .is_some_and(|end| end <= self.len),
            "{} bytes at {offset} past a mapping of {}",
            size_of::<A>(),
            self.len
        );
        assert!(offset % align_of::<A>() == 0, "misaligned offset {offset}");
        // SAFETY: in bounds and aligned (asserted above; the mapping is page
        // aligned); `A` is made of atomics only (`Atomics`), valid for any bits and
        // for changes by other processes while we hold the reference. On a
        // read-only mapping its users only load, which read-only pages allow.
        unsafe { self.ptr.add(offset).cast::<A>().as_ref() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: made by `new` with this length; no reference into it outlives
        // `self` (`at` borrows it; a Region that holds `base` owns the Mapping).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Types made of atomics only: any bits make a valid value, and another process
/// may change them while we hold a reference.
///
/// # Safety
/// Implementors must consist of atomics only.
pub(crate) unsafe trait Atomics {}
// SAFETY: an atomic.
unsafe impl Atomics for AtomicU32 {}
// SAFETY: an atomic.
unsafe impl Atomics for AtomicU64 {}
// SAFETY: every field of the identity block is an atomic (layout.rs).
unsafe impl Atomics for Identity {}
// SAFETY: atomics only, as `Control` requires.
unsafe impl<C: Control> Atomics for C {}
