//! Lock-free operations on single elements: each element of an [`AtomicElement`]
//! type lies inside one aligned 8-byte word of the data region, and every
//! operation is one atomic on that word (or a compare-and-swap loop on it). They
//! take no part in the lock or the seqlock (`lock.rs`): their `Release` stores and
//! `AcqRel` read-modify-writes pair with the `Acquire` loads and read-modify-writes
//! of other element operations, all in this file.

use std::mem::size_of;

use bytemuck::Pod;

use crate::error::IndexOutOfBounds;
use crate::sync::{AtomicU64, Ordering};

use super::lock::Words;
use super::SharedArray;

mod sealed {
    pub trait Sealed {}
}

/// Element types of a [`SharedArray`](super::SharedArray) that support lock-free
/// element operations: `f64`, `f32`, `i64`, `u64`, `i32`, `u32`.
///
/// Each element of these types lies inside one aligned 8-byte word of the data
/// region; operations on 4-byte elements are compare-and-swap loops on their word.
/// Comparison (in `compare_exchange`) is bitwise: a NaN equals the same NaN, and
/// `0.0` differs from `-0.0`. Integer addition wraps.
///
/// The trait is sealed. (The `atomic` crate's `Atomic<T>` was the first candidate;
/// it falls back to a process-local spinlock for some types, which would not be
/// atomic across processes, and it cannot run under loom.)
pub trait AtomicElement: Pod + sealed::Sealed {
    /// `a + b` (wrapping for integers).
    #[doc(hidden)]
    fn add(a: Self, b: Self) -> Self;
    /// Whether addition is the 8-byte word's wrapping addition (`i64`, `u64`).
    #[doc(hidden)]
    const WORD_ADD: bool;
}

macro_rules! atomic_elements {
    ($($t:ty => $word_add:expr, |$a:ident, $b:ident| $add:expr;)*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicElement for $t {
            #[inline(always)]
            fn add($a: Self, $b: Self) -> Self {
                $add
            }
            const WORD_ADD: bool = $word_add;
        }
        const _: () = assert!(size_of::<$t>() == 4 || size_of::<$t>() == 8);
    )*};
}

atomic_elements! {
    f64 => false, |a, b| a + b;
    f32 => false, |a, b| a + b;
    i64 => true, |a, b| a.wrapping_add(b);
    u64 => true, |a, b| a.wrapping_add(b);
    i32 => false, |a, b| a.wrapping_add(b);
    u32 => false, |a, b| a.wrapping_add(b);
}

/// Element `i` of an array of `len` elements of `T` over `words`: the word that
/// holds it and the element's byte offset in that word.
#[inline(always)]
pub(super) fn slot<T: AtomicElement>(
    words: &Words,
    len: usize,
    i: usize,
) -> Result<Element<'_, T>, IndexOutOfBounds> {
    if i >= len {
        return Err(IndexOutOfBounds { index: i, len });
    }
    let byte = i * size_of::<T>();
    // byte + size <= len * size <= 8 * words.len, and size divides 8, so the
    // element lies inside word byte / 8 < words.len.
    debug_assert!(len * size_of::<T>() <= 8 * words.len());
    Ok(Element {
        word: words.at(byte / 8),
        off: byte % 8,
        _t: std::marker::PhantomData,
    })
}

/// One element: its word, and its byte offset in the word (0 for 8-byte types).
pub(super) struct Element<'a, T> {
    word: &'a AtomicU64,
    off: usize,
    _t: std::marker::PhantomData<fn(T) -> T>,
}

impl<T: AtomicElement> Element<'_, T> {
    #[inline(always)]
    fn get(word: u64, off: usize) -> T {
        bytemuck::pod_read_unaligned(&word.to_ne_bytes()[off..off + size_of::<T>()])
    }

    #[inline(always)]
    fn put(word: u64, off: usize, v: T) -> u64 {
        let mut b = word.to_ne_bytes();
        b[off..off + size_of::<T>()].copy_from_slice(bytemuck::bytes_of(&v));
        u64::from_ne_bytes(b)
    }

    #[inline(always)]
    fn same(a: T, b: T) -> bool {
        bytemuck::bytes_of(&a) == bytemuck::bytes_of(&b)
    }

    /// CAS loop replacing the element by `f(old)`; returns old.
    #[inline(always)]
    fn update(&self, mut f: impl FnMut(T) -> T) -> T {
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            let old = Self::get(cur, self.off);
            let new = Self::put(cur, self.off, f(old));
            // AcqRel: pairs with the Acquire loads and RMWs of other element
            // operations on this word.
            match self
                .word
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return old,
                Err(now) => cur = now,
            }
        }
    }

    /// The value (`Acquire`: pairs with the `Release` store or the `AcqRel` RMW
    /// that wrote it).
    #[inline(always)]
    pub(super) fn load(&self) -> T {
        Self::get(self.word.load(Ordering::Acquire), self.off)
    }

    /// Set it to `v` (`Release`: pairs with `load`'s Acquire).
    #[inline(always)]
    pub(super) fn store(&self, v: T) {
        if size_of::<T>() == 8 {
            self.word.store(Self::put(0, 0, v), Ordering::Release);
        } else {
            self.update(|_| v);
        }
    }

    /// Set it to `v`, returning the previous value (`AcqRel`).
    #[inline(always)]
    pub(super) fn swap(&self, v: T) -> T {
        if size_of::<T>() == 8 {
            Self::get(self.word.swap(Self::put(0, 0, v), Ordering::AcqRel), 0)
        } else {
            self.update(|_| v)
        }
    }

    /// Add `v`, returning the previous value (`AcqRel`).
    #[inline(always)]
    pub(super) fn fetch_add(&self, v: T) -> T {
        if T::WORD_ADD {
            Self::get(self.word.fetch_add(Self::put(0, 0, v), Ordering::AcqRel), 0)
        } else {
            self.update(|old| T::add(old, v))
        }
    }

    /// Set it to `new` if it is bitwise `current` (`AcqRel` on success, `Acquire`
    /// on failure): `Ok(previous)` or `Err(actual)`.
    #[inline(always)]
    pub(super) fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        if size_of::<T>() == 8 {
            return self
                .word
                .compare_exchange(
                    Self::put(0, 0, current),
                    Self::put(0, 0, new),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map(|w| Self::get(w, 0))
                .map_err(|w| Self::get(w, 0));
        }
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let old = Self::get(cur, self.off);
            if !Self::same(old, current) {
                return Err(old);
            }
            // A failure caused by a neighbour in the same word is retried.
            match self.word.compare_exchange_weak(
                cur,
                Self::put(cur, self.off, new),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(old),
                Err(now) => cur = now,
            }
        }
    }
}

// ---- the public element operations of `SharedArray` ----

impl<T: AtomicElement> SharedArray<T> {
    /// Element `i`, or [`IndexOutOfBounds`].
    #[inline(always)]
    fn element(&self, i: usize) -> Result<Element<'_, T>, IndexOutOfBounds> {
        slot(self.core.words(), self.len, i)
    }

    /// Element `i` (an `Acquire` load).
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn load(&self, i: usize) -> Result<T, IndexOutOfBounds> {
        Ok(self.element(i)?.load())
    }

    /// Set element `i` to `v` (a `Release` store).
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn store(&self, i: usize, v: T) -> Result<(), IndexOutOfBounds> {
        self.element(i)?.store(v);
        Ok(())
    }

    /// Set element `i` to `v` and return the previous value (`AcqRel`).
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn swap(&self, i: usize, v: T) -> Result<T, IndexOutOfBounds> {
        Ok(self.element(i)?.swap(v))
    }

    /// Add `v` to element `i` atomically and return the previous value (`AcqRel`).
    /// Floats use a compare-and-swap loop; 8-byte integers one atomic add; integer
    /// addition wraps.
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn fetch_add(&self, i: usize, v: T) -> Result<T, IndexOutOfBounds> {
        Ok(self.element(i)?.fetch_add(v))
    }

    /// Set element `i` to `new` if it is bitwise equal to `current` (`AcqRel` on
    /// success, `Acquire` on failure). The inner result is `Ok(previous)` if the
    /// value was replaced, `Err(actual)` if not, as for std's atomics.
    ///
    /// # Errors
    /// [`IndexOutOfBounds`] if `i >= len()`.
    #[inline]
    pub fn compare_exchange(
        &self,
        i: usize,
        current: T,
        new: T,
    ) -> Result<Result<T, T>, IndexOutOfBounds> {
        Ok(self.element(i)?.compare_exchange(current, new))
    }
}
