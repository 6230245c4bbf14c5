//! The queue handles behind one object-safe interface, so that the Python classes
//! are written once for SPSC and MPMC and for every dtype: [`TxOps`] for senders,
//! [`RxOps`] for receivers, [`Lent`] for what they lend in place (a reservation, a
//! received batch).

use std::time::Instant;

use numpy::PyArray1;
use pyo3::prelude::*;

use shmbatch::{mpmc, spsc};

use crate::dtype::{DType, Elem};
use crate::errors::QueueError;

/// Elements to send: `len` elements of the queue's type starting at `ptr`,
/// `stride` bytes apart (a numpy array, contiguous or not). The caller keeps the
/// array alive and borrowed for the call.
#[derive(Clone, Copy)]
pub(crate) struct Src {
    pub ptr: *const u8,
    pub len: usize,
    pub stride: isize,
}

impl Src {
    /// Copy the elements into `dst` (`len` elements of `T`), once.
    fn copy_into<T: Elem>(&self, dst: &mut [T]) {
        debug_assert_eq!(dst.len(), self.len);
        if self.stride == std::mem::size_of::<T>() as isize {
            // SAFETY: a contiguous source of len elements (the caller's array);
            // `dst` is another buffer (the ring) of the same byte length; bytes
            // are copied, so the source's alignment does not matter.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.ptr,
                    dst.as_mut_ptr().cast::<u8>(),
                    std::mem::size_of_val(dst),
                );
            }
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                // SAFETY: element i of the caller's strided array lies at
                // ptr + i * stride; read_unaligned because numpy arrays may be
                // unaligned.
                *d = unsafe {
                    self.ptr
                        .offset(i as isize * self.stride)
                        .cast::<T>()
                        .read_unaligned()
                };
            }
        }
    }
}

/// Something lent in place by a handle: room in the ring or a received batch.
pub(crate) trait Lent: Send + Sync {
    /// The first element.
    fn ptr(&self) -> *mut u8;
    /// Number of elements.
    fn len(&self) -> usize;
    /// A copy of the elements as a new numpy array.
    fn copy_out(&self, py: Python<'_>) -> Py<PyAny>;
    /// Finish: commit a reservation, release a batch.
    fn finish(self: Box<Self>);
}

fn copy_out<T: Elem>(py: Python<'_>, xs: &[T]) -> Py<PyAny> {
    PyArray1::from_slice(py, xs).into_any().unbind()
}

/// A received batch as a new numpy array.
pub(crate) trait IntoNumpy: Send {
    fn into_numpy(self: Box<Self>, py: Python<'_>) -> Py<PyAny>;
}

impl<T: Elem> IntoNumpy for Vec<T> {
    fn into_numpy(self: Box<Self>, py: Python<'_>) -> Py<PyAny> {
        // Zero copy: numpy takes over the Vec's buffer.
        PyArray1::from_vec(py, *self).into_any().unbind()
    }
}

/// What Python shows about a queue handle.
pub(crate) struct Info {
    pub dtype: DType,
    pub name: Option<String>,
    pub capacity: usize,
    pub max_batch: usize,
}

/// A queue's sending end, whatever its kind and type. `deadline`: `None` tries
/// once, `Some` waits until then.
pub(crate) trait TxOps: Send {
    fn info(&self) -> Info;
    fn len(&self) -> usize;
    fn is_full(&self) -> bool;
    fn is_disconnected(&self) -> bool;
    fn persist(&self);
    fn keep_mapped(&self) -> Option<shmbatch::Mapped>;
    fn send(&mut self, src: Src, deadline: Option<Instant>) -> Result<(), QueueError>;
    fn reserve(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Box<dyn Lent + '_>, QueueError>;
}

/// A queue's receiving end, whatever its kind and type.
pub(crate) trait RxOps: Send {
    fn info(&self) -> Info;
    fn len(&self) -> usize;
    fn is_disconnected(&self) -> bool;
    fn persist(&self);
    fn keep_mapped(&self) -> Option<shmbatch::Mapped>;
    fn recv_view(&mut self, deadline: Option<Instant>) -> Result<Box<dyn Lent + '_>, QueueError>;
}

fn dtype_of<T: Elem>() -> DType {
    DType::from_tag(shmbatch::layout::dtype_of::<T>().unwrap_or(""))
        .expect("an Elem type has a dtype")
}

// ---- SPSC and MPMC ----

/// The trait impls for the handles and guards of queue module `$kind`: `spsc` and
/// `mpmc` have the same verbs under the same names, so one text serves both.
macro_rules! queue_ops {
    ($kind:ident) => {
        impl<T: Elem> Lent for $kind::Reservation<'_, T> {
            fn ptr(&self) -> *mut u8 {
                self.as_ptr() as *mut u8
            }
            fn len(&self) -> usize {
                <[T]>::len(self)
            }
            fn copy_out(&self, py: Python<'_>) -> Py<PyAny> {
                copy_out(py, self)
            }
            fn finish(self: Box<Self>) {
                (*self).commit();
            }
        }

        impl<T: Elem> Lent for $kind::Batch<'_, T> {
            fn ptr(&self) -> *mut u8 {
                self.as_ptr() as *mut u8
            }
            fn len(&self) -> usize {
                <[T]>::len(self)
            }
            fn copy_out(&self, py: Python<'_>) -> Py<PyAny> {
                copy_out(py, self)
            }
            fn finish(self: Box<Self>) {}
        }

        impl<T: Elem> TxOps for $kind::Sender<T> {
            fn info(&self) -> Info {
                Info {
                    dtype: dtype_of::<T>(),
                    name: self.name().map(str::to_owned),
                    capacity: self.capacity(),
                    max_batch: self.max_batch(),
                }
            }
            fn len(&self) -> usize {
                $kind::Sender::len(self)
            }
            fn is_full(&self) -> bool {
                $kind::Sender::is_full(self)
            }
            fn is_disconnected(&self) -> bool {
                $kind::Sender::is_disconnected(self)
            }
            fn persist(&self) {
                $kind::Sender::persist(self)
            }
            fn keep_mapped(&self) -> Option<shmbatch::Mapped> {
                $kind::Sender::keep_mapped(self)
            }
            fn send(&mut self, src: Src, deadline: Option<Instant>) -> Result<(), QueueError> {
                let mut r = match deadline {
                    None => self.try_reserve(src.len)?,
                    Some(d) => self.reserve_deadline(src.len, d)?,
                };
                src.copy_into(&mut r);
                r.commit();
                Ok(())
            }
            fn reserve(
                &mut self,
                len: usize,
                deadline: Option<Instant>,
            ) -> Result<Box<dyn Lent + '_>, QueueError> {
                Ok(Box::new(match deadline {
                    None => self.try_reserve(len)?,
                    Some(d) => self.reserve_deadline(len, d)?,
                }))
            }
        }

        impl<T: Elem> RxOps for $kind::Receiver<T> {
            fn info(&self) -> Info {
                Info {
                    dtype: dtype_of::<T>(),
                    name: self.name().map(str::to_owned),
                    capacity: self.capacity(),
                    max_batch: self.max_batch(),
                }
            }
            fn len(&self) -> usize {
                $kind::Receiver::len(self)
            }
            fn is_disconnected(&self) -> bool {
                $kind::Receiver::is_disconnected(self)
            }
            fn persist(&self) {
                $kind::Receiver::persist(self)
            }
            fn keep_mapped(&self) -> Option<shmbatch::Mapped> {
                $kind::Receiver::keep_mapped(self)
            }
            fn recv_view(
                &mut self,
                deadline: Option<Instant>,
            ) -> Result<Box<dyn Lent + '_>, QueueError> {
                Ok(Box::new(match deadline {
                    None => self.try_recv()?,
                    Some(d) => self.recv_deadline(d)?,
                }))
            }
        }
    };
}

queue_ops!(spsc);
queue_ops!(mpmc);
