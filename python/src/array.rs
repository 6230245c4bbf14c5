//! `shmbatch.SharedArray`: `shmbatch::SharedArray` of any supported dtype and any
//! shape, with `with a.write() as arr:` for locked updates.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyIndexError, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::BoundObject;

use shmbatch::{Options, Recovered, SharedArray as RsArray, WriteGuard};

use crate::dtype::{dispatch, DType, Elem};
use crate::errors::{Class, OrRaise, QueueError};
use crate::queue::IntoNumpy;
use crate::slot::fork_generation;
use crate::wait::{blocking, deadline};
use crate::write::Write;

/// A `SharedArray<T>` whatever `T` is.
pub(crate) trait ArrayOps: Send + Sync {
    fn shape(&self) -> Vec<usize>;
    fn len(&self) -> usize;
    fn persist(&self);
    /// A consistent copy, waiting at most until `until`; `Err`: the lock holder.
    fn snapshot(&self, until: Instant) -> Result<Box<dyn IntoNumpy>, u32>;
    /// The lock, with the handle kept alive by the guard. `None`: try once.
    fn lock(self: Arc<Self>, until: Option<Instant>) -> Result<Box<dyn ArrayGuard>, u32>;
    /// Element 0 in the mapping.
    fn raw(&self) -> *mut u8;
    fn keep_mapped(&self) -> Option<shmbatch::Mapped>;
    fn load(&self, py: Python<'_>, i: usize) -> PyResult<Py<PyAny>>;
    fn store(&self, i: usize, v: &Bound<'_, PyAny>) -> PyResult<()>;
    fn swap(&self, py: Python<'_>, i: usize, v: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>>;
    fn fetch_add(&self, py: Python<'_>, i: usize, v: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>>;
    fn compare_exchange(
        &self,
        py: Python<'_>,
        i: usize,
        current: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<(bool, Py<PyAny>)>;
}

/// The lock held, with a working copy, whatever the element type.
pub(crate) trait ArrayGuard: Send + Sync {
    fn recovered(&self) -> Option<Recovered>;
    /// The working copy as a new numpy array of `shape`.
    fn to_numpy(&self, py: Python<'_>, shape: &[usize]) -> PyResult<Py<PyAny>>;
    /// Replace the working copy with the contents of `arr`.
    fn copy_from_numpy(&mut self, arr: &Bound<'_, PyAny>) -> PyResult<()>;
    fn commit(self: Box<Self>) -> Option<Recovered>;
}

/// A `WriteGuard` that keeps its array alive.
struct OwnedGuard<T: Elem> {
    /// Declared first: dropped (the lock released) before `_array`.
    guard: Option<WriteGuard<'static, T>>,
    _array: Arc<RsArray<T>>,
}

impl<T: Elem> ArrayGuard for OwnedGuard<T> {
    fn recovered(&self) -> Option<Recovered> {
        self.guard.as_ref().and_then(WriteGuard::recovered)
    }
    fn to_numpy(&self, py: Python<'_>, shape: &[usize]) -> PyResult<Py<PyAny>> {
        let work: &[T] = self.guard.as_deref().unwrap_or(&[]);
        Ok(PyArray1::from_slice(py, work)
            .reshape(shape)?
            .into_any()
            .unbind())
    }
    fn copy_from_numpy(&mut self, arr: &Bound<'_, PyAny>) -> PyResult<()> {
        let arr = arr.cast::<PyArrayDyn<T>>()?.readonly();
        let work: &mut [T] = self.guard.as_deref_mut().unwrap_or(&mut []);
        if arr.len() != work.len() {
            return Err(PyValueError::new_err("the write array changed its size"));
        }
        match arr.as_slice() {
            Ok(s) => work.copy_from_slice(s),
            Err(_) => work
                .iter_mut()
                .zip(arr.as_array().iter())
                .for_each(|(w, v)| *w = *v),
        }
        Ok(())
    }
    fn commit(mut self: Box<Self>) -> Option<Recovered> {
        self.guard.take().and_then(WriteGuard::commit)
    }
}

/// A Python number for an element.
fn to_py<T: Elem>(py: Python<'_>, v: T) -> PyResult<Py<PyAny>> {
    Ok(v.into_pyobject(py).map_err(Into::into)?.into_any().unbind())
}

/// An element from a Python number (`TypeError`/`OverflowError` otherwise).
fn from_py<T: Elem>(v: &Bound<'_, PyAny>) -> PyResult<T> {
    v.extract().map_err(Into::into)
}

fn index(len: usize, i: isize) -> PyResult<usize> {
    let j = if i < 0 { i + len as isize } else { i };
    usize::try_from(j)
        .ok()
        .filter(|&j| j < len)
        .ok_or_else(|| PyIndexError::new_err(format!("index {i} out of range for {len} elements")))
}

impl<T: Elem> ArrayOps for RsArray<T> {
    fn shape(&self) -> Vec<usize> {
        RsArray::shape(self).to_vec()
    }
    fn len(&self) -> usize {
        RsArray::len(self)
    }
    fn persist(&self) {
        RsArray::persist(self)
    }
    fn snapshot(&self, until: Instant) -> Result<Box<dyn IntoNumpy>, u32> {
        let timeout = until.saturating_duration_since(Instant::now());
        match self.snapshot_timeout(timeout) {
            Ok(v) => Ok(Box::new(v)),
            Err(e) => Err(e.pid),
        }
    }
    fn lock(self: Arc<Self>, until: Option<Instant>) -> Result<Box<dyn ArrayGuard>, u32> {
        let g = match until {
            None => self.try_lock().map_err(|e| e.pid)?,
            Some(d) => self.lock_deadline(d).map_err(|e| e.pid)?,
        };
        // SAFETY: the guard borrows `*self`, which the `Arc` stored next to it keeps
        // alive and in place; `OwnedGuard` drops the guard before the `Arc`, and
        // never lends the guard's lifetime out.
        let g: WriteGuard<'static, T> = unsafe { std::mem::transmute(g) };
        Ok(Box::new(OwnedGuard {
            guard: Some(g),
            _array: self,
        }))
    }
    fn raw(&self) -> *mut u8 {
        self.as_ptr().cast()
    }
    fn keep_mapped(&self) -> Option<shmbatch::Mapped> {
        RsArray::keep_mapped(self)
    }
    fn load(&self, py: Python<'_>, i: usize) -> PyResult<Py<PyAny>> {
        let v = T::atomics(self)?.load(i).expect("index checked");
        to_py(py, v)
    }
    fn store(&self, i: usize, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let v: T = from_py(v)?;
        T::atomics(self)?.store(i, v).expect("index checked");
        Ok(())
    }
    fn swap(&self, py: Python<'_>, i: usize, v: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let v: T = from_py(v)?;
        let old = T::atomics(self)?.swap(i, v).expect("index checked");
        to_py(py, old)
    }
    fn fetch_add(&self, py: Python<'_>, i: usize, v: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let v: T = from_py(v)?;
        let old = T::atomics(self)?.fetch_add(i, v).expect("index checked");
        to_py(py, old)
    }
    fn compare_exchange(
        &self,
        py: Python<'_>,
        i: usize,
        current: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<(bool, Py<PyAny>)> {
        let (c, n): (T, T) = (from_py(current)?, from_py(new)?);
        let r = T::atomics(self)?
            .compare_exchange(i, c, n)
            .expect("index checked");
        let (ok, v) = match r {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        };
        Ok((ok, to_py(py, v)?))
    }
}

/// How to make or find the array.
#[derive(Clone)]
enum How {
    Create {
        shape: Vec<usize>,
        persist: bool,
        mode: u32,
    },
    Open {
        timeout: Option<f64>,
    },
}

fn make<T: Elem>(
    name: &str,
    how: &How,
    init: Option<&Bound<'_, PyAny>>,
) -> PyResult<Arc<dyn ArrayOps>> {
    let a = match how {
        How::Create {
            shape,
            persist,
            mode,
        } => {
            let len = shape.iter().product();
            let opts = Options::new().shape(shape).persist(*persist).mode(*mode);
            match init {
                Some(values) => {
                    let values = values.cast::<PyArrayDyn<T>>()?.readonly();
                    let values = values.as_array();
                    let flat: Vec<T> = values.iter().copied().collect();
                    RsArray::<T>::create_from_with(name, &flat, &opts).or_raise()?
                }
                None => RsArray::<T>::create_with(name, len, &opts).or_raise()?,
            }
        }
        How::Open { timeout } => {
            let mut opts = Options::new();
            if let Some(t) = timeout {
                opts = opts.open_timeout(crate::wait::seconds(*t));
            }
            RsArray::<T>::open_with(name, &opts).or_raise()?
        }
    };
    Ok(Arc::new(a))
}

/// Open the array `name` (`how` is `Open`), needing no Python object.
fn open_array<T: Elem>(name: &str, how: &How) -> PyResult<Arc<dyn ArrayOps>> {
    make::<T>(name, how, None)
}

/// The segment's own dtype, for an `open` without one; waits up to `timeout`
/// seconds for the segment to appear.
/// The GIL is released while waiting.
pub(crate) fn segment_dtype(
    py: Python<'_>,
    name: &str,
    kind: shmbatch::Kind,
    timeout: Option<f64>,
) -> PyResult<DType> {
    let end = deadline(timeout)?.unwrap_or_else(Instant::now);
    let info = py
        .detach(|| loop {
            match shmbatch::inspect(name) {
                Err(e) if e.is_not_found() && Instant::now() < end => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                other => break other,
            }
        })
        .or_raise()?;
    if info.kind != kind {
        return Err(
            Class::KindMismatch.err(format!("segment {name:?} holds {}, not {kind}", info.kind))
        );
    }
    DType::from_tag(&info.tag).ok_or_else(|| {
        Class::TypeMismatch.err(format!(
            "segment {name:?} holds elements tagged {:?} ({} bytes), which Python cannot \
             open: pass a dtype of that size to open it anyway",
            info.tag, info.elem_size
        ))
    })
}

/// An array of numbers in a named shared-memory segment, shared by processes.
#[pyclass(module = "shmbatch._shmbatch", subclass, name = "SharedArray")]
pub struct PyArrayHandle {
    /// The handle and the fork generation it belongs to.
    cur: Mutex<Option<(u64, Arc<dyn ArrayOps>)>>,
    name: String,
    dtype: DType,
    shape: Vec<usize>,
}

impl PyArrayHandle {
    /// The handle, opened again by name if it was inherited through fork.
    fn get(&self) -> PyResult<Arc<dyn ArrayOps>> {
        let mut cur = self.cur.lock().unwrap_or_else(|p| p.into_inner());
        let gen = fork_generation();
        match cur.as_mut() {
            None => Err(PyValueError::new_err("the array is closed")),
            Some((g, a)) if *g == gen => Ok(Arc::clone(a)),
            Some(slot) => {
                let fresh = dispatch!(
                    self.dtype,
                    make(&self.name, &How::Open { timeout: None }, None)
                )?;
                let old = std::mem::replace(slot, (gen, fresh));
                // The parent's handle: dropping it here would remove the segment
                // if the parent created it.
                std::mem::forget(old);
                Ok(Arc::clone(&slot.1))
            }
        }
    }
}

#[pymethods]
impl PyArrayHandle {
    /// Internal: use `SharedArray.create`, `create_from` or `open`.
    #[new]
    #[pyo3(signature = (how, name, shape=None, dtype=None, values=None, persist=false, mode=0o600, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        how: &str,
        name: &str,
        shape: Option<Vec<usize>>,
        dtype: Option<&Bound<'_, PyAny>>,
        values: Option<&Bound<'_, PyAny>>,
        persist: bool,
        mode: u32,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let (how, dtype, values) = match how {
            "create" => {
                let shape = shape.ok_or_else(|| PyTypeError::new_err("create needs a shape"))?;
                let dtype = match dtype {
                    Some(d) => DType::parse(d)?,
                    None => DType::F8,
                };
                (
                    How::Create {
                        shape,
                        persist,
                        mode,
                    },
                    dtype,
                    None,
                )
            }
            "create_from" => {
                let values =
                    values.ok_or_else(|| PyTypeError::new_err("create_from needs values"))?;
                let arr = values
                    .cast::<PyUntypedArray>()
                    .map_err(|_| PyTypeError::new_err("create_from takes a numpy array"))?;
                let dtype = DType::parse(&arr.dtype().into_any())?;
                let shape = arr.shape().to_vec();
                (
                    How::Create {
                        shape,
                        persist,
                        mode,
                    },
                    dtype,
                    Some(values),
                )
            }
            "open" => {
                deadline(timeout)?; // a negative or NaN timeout is refused here
                let dtype = match dtype {
                    Some(d) => DType::parse(d)?,
                    None => segment_dtype(py, name, shmbatch::Kind::Array, timeout)?,
                };
                (How::Open { timeout }, dtype, None)
            }
            other => return Err(PyValueError::new_err(format!("unknown way {other:?}"))),
        };
        let a = match (&how, values) {
            // Opening may wait for the segment: without the GIL.
            (How::Open { .. }, _) => py.detach(|| dispatch!(dtype, open_array(name, &how)))?,
            (_, values) => dispatch!(dtype, make(name, &how, values))?,
        };
        Ok(PyArrayHandle {
            shape: a.shape(),
            name: name.to_owned(),
            dtype,
            cur: Mutex::new(Some((fork_generation(), a))),
        })
    }

    /// The segment name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The element type, a `numpy.dtype`.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.dtype.numpy(py)
    }

    /// The dimensions, a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.shape)
    }

    /// Number of elements.
    #[getter]
    fn size(&self) -> usize {
        self.shape.iter().product()
    }

    /// Length of the first dimension, as for a numpy array.
    fn __len__(&self) -> usize {
        self.shape[0]
    }

    /// Keep the segment after this handle is closed (creator only).
    fn persist(&self) -> PyResult<()> {
        self.get()?.persist();
        Ok(())
    }

    /// A consistent copy (never part of a write), a new numpy array.
    #[pyo3(signature = (timeout=None))]
    fn snapshot(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let a = self.get()?;
        let until = deadline(timeout)?;
        let flat = blocking(py, until, |slice_end| {
            a.snapshot(slice_end).map_err(|_| QueueError::Timeout)
        })
        .map_err(|e| {
            if e.is_instance_of::<PyTimeoutError>(py) {
                PyTimeoutError::new_err("timed out waiting for the array's lock")
            } else {
                e
            }
        })?;
        let flat = flat.into_numpy(py);
        Ok(flat
            .bind(py)
            .call_method1("reshape", (PyTuple::new(py, &self.shape)?,))?
            .unbind())
    }

    /// `with a.write() as arr:` — the cross-process lock, held for the block; `arr`
    /// is a working copy whose changes are published when the block ends cleanly.
    #[pyo3(signature = (timeout=None))]
    fn write(slf: Bound<'_, Self>, timeout: Option<f64>) -> PyResult<Write> {
        Ok(Write {
            array: slf.borrow().get()?,
            shape: slf.borrow().shape.clone(),
            timeout,
            state: Mutex::new(None),
            recovered: Mutex::new(None),
        })
    }

    /// Element `i` of the flattened array (an atomic load).
    fn load(&self, py: Python<'_>, i: isize) -> PyResult<Py<PyAny>> {
        let a = self.get()?;
        a.load(py, index(a.len(), i)?)
    }

    /// Set element `i` (an atomic store).
    fn store(&self, i: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let a = self.get()?;
        a.store(index(a.len(), i)?, value)
    }

    /// Set element `i` and return the previous value, atomically.
    fn swap(&self, py: Python<'_>, i: isize, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let a = self.get()?;
        a.swap(py, index(a.len(), i)?, value)
    }

    /// Add `value` to element `i` atomically; returns the previous value.
    fn fetch_add(&self, py: Python<'_>, i: isize, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let a = self.get()?;
        a.fetch_add(py, index(a.len(), i)?, value)
    }

    /// Set element `i` to `new` if it equals `current` bitwise. Returns
    /// `(swapped, previous)`.
    fn compare_exchange(
        &self,
        py: Python<'_>,
        i: isize,
        current: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<(bool, Py<PyAny>)> {
        let a = self.get()?;
        a.compare_exchange(py, index(a.len(), i)?, current, new)
    }

    /// The array in shared memory as a writable numpy array, with no
    /// synchronisation: for code that brings its own.
    ///
    /// The array keeps the memory mapped: it stays valid after `close` (which
    /// still removes the segment's name, for its creator).
    fn unsafe_view(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let a = self.get()?;
        let (ptr, len) = (a.raw(), a.len());
        let keep = Bound::new(
            py,
            Mapping {
                _keep: a.keep_mapped(),
            },
        )?
        .into_any();
        let view = dispatch!(self.dtype, borrowed_array(ptr, len, keep))?;
        Ok(view
            .call_method1("reshape", (PyTuple::new(py, &self.shape)?,))?
            .unbind())
    }

    /// Close the handle: the creator's removes the segment unless persisted.
    fn close(&self) {
        let old = self.cur.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((gen, a)) = old {
            if gen != fork_generation() {
                std::mem::forget(a);
            }
        }
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.cur.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        format!(
            "SharedArray(name={:?}, shape={:?}, dtype={:?})",
            self.name,
            self.shape,
            self.dtype.tag()
        )
    }

    /// Tag of the element type (`"<f8"`), for pickling.
    #[getter]
    fn _tag(&self) -> &'static str {
        self.dtype.tag()
    }
}

impl Drop for PyArrayHandle {
    fn drop(&mut self) {
        self.close();
    }
}

/// Clear the numpy `WRITEABLE` flag of `arr` (a numpy array).
pub(crate) fn make_read_only(arr: &Bound<'_, PyAny>) -> PyResult<()> {
    let arr = arr.cast::<PyUntypedArray>()?;
    // SAFETY: `arr` is a numpy array (checked); clearing a flag bit under the GIL
    // is what `ndarray.setflags(write=False)` does.
    unsafe {
        (*numpy::npyffi::_PyArray_GET_ITEM_DATA(arr.as_array_ptr())).flags &=
            !numpy::npyffi::NPY_ARRAY_WRITEABLE;
    }
    Ok(())
}

/// The base object of a numpy array over shared memory (`unsafe_view`, the
/// arrays of released views): keeps the memory mapped.
#[pyclass(module = "shmbatch._shmbatch", frozen)]
pub struct Mapping {
    _keep: Option<shmbatch::Mapped>,
}

/// A numpy array of `len` elements of `T` at `ptr`, kept alive by `owner`.
pub(crate) fn borrowed_array<'py, T: Elem>(
    ptr: *mut u8,
    len: usize,
    owner: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `ptr` is `len` aligned elements of `T` in memory that `owner` keeps
    // mapped (a handle or a view that holds one); numpy reads and writes it as
    // plain memory, which other processes change too: Pod, so any bytes are valid.
    let view =
        unsafe { numpy::ndarray::ArrayView1::from_shape_ptr(len, ptr.cast::<T>() as *const T) };
    // SAFETY: as above; numpy keeps a reference to `owner` as the array's base.
    Ok(unsafe { PyArray1::borrow_from_array(&view, owner) }.into_any())
}
