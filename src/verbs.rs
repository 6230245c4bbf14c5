//! The copies every queue's verbs share: into a slot (`send`) and out of one
//! (`recv_into`).

/// Copy `n` elements from `src` to `dst`, without a call to `memcpy` for the
/// one-element batches of tick-by-tick producers (the call costs more than the copy).
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`].
#[inline(always)]
pub(crate) unsafe fn copy_elems<T: Copy>(src: *const T, dst: *mut T, n: usize) {
    if n == 1 {
        // SAFETY: both valid and aligned for one element (caller), non-overlapping.
        unsafe { dst.write(src.read()) }
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }
    }
}

/// Replace the contents of `out` with `batch` (`recv_into`).
#[inline(always)]
pub(crate) fn fill<T: Copy>(out: &mut Vec<T>, batch: &[T]) {
    out.clear();
    match batch {
        [x] => out.push(*x),
        _ => out.extend_from_slice(batch),
    }
}
