//! The Python queue classes: one native `Sender` and one `Receiver` for both
//! kinds (the `shmbatch.spsc` and `shmbatch.mpmc` modules subclass them with
//! their constructors), and `View`, the in-place context of `reserve` and
//! `recv_view`.

use std::sync::Arc;

use numpy::{PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use shmbatch::{mpmc, spsc, Kind, Options};

use crate::array::segment_dtype;
use crate::dtype::{dispatch, DType, Elem};
use crate::errors::{Class, OrRaise, QueueError};
use crate::queue::{Info, RxOps, Src, TxOps};
use crate::slot::{Reopen, Slot};
use crate::view::View;
use crate::wait::{blocking, deadline, SameThread};

/// Default largest batch of an MPMC queue created from Python, in elements.
const MPMC_DEFAULT_MAX_BATCH: usize = 256;

/// How a handle is made: what `__new__` was asked.
#[derive(Clone)]
struct Spec {
    kind: Kind,
    name: String,
    create: bool,
    capacity: usize,
    max_batch: Option<usize>,
    persist: bool,
    mode: u32,
    timeout: Option<f64>,
}

impl Spec {
    #[allow(clippy::too_many_arguments)]
    fn parse(
        kind: &str,
        how: &str,
        name: &str,
        capacity: Option<usize>,
        max_batch: Option<usize>,
        persist: bool,
        mode: u32,
        timeout: Option<f64>,
    ) -> PyResult<Spec> {
        let kind = match kind {
            "spsc" => Kind::Spsc,
            "mpmc" => Kind::Mpmc,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown queue kind {other:?}"
                )))
            }
        };
        let create = match how {
            "create" => true,
            "open" => false,
            other => return Err(PyValueError::new_err(format!("unknown way {other:?}"))),
        };
        let capacity = match (create, capacity) {
            (true, None) => return Err(PyTypeError::new_err("create needs a capacity")),
            (_, c) => c.unwrap_or(0),
        };
        if let Some(t) = timeout {
            deadline(Some(t))?;
        }
        Ok(Spec {
            kind,
            name: name.to_owned(),
            create,
            capacity,
            max_batch,
            persist,
            mode,
            timeout,
        })
    }

    fn options(&self) -> Options {
        let mut o = Options::new().persist(self.persist).mode(self.mode);
        if let Some(t) = self.timeout {
            o = o.open_timeout(crate::wait::seconds(t));
        }
        if let (Kind::Spsc, Some(m)) = (self.kind, self.max_batch) {
            o = o.max_batch(m);
        }
        o
    }

    /// The dtype asked for, or the segment's own when opening without one.
    fn dtype(&self, py: Python<'_>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<DType> {
        match dtype {
            Some(d) => DType::parse(d),
            None if self.create => Ok(DType::F8),
            None => segment_dtype(py, &self.name, self.kind, self.timeout),
        }
    }

    /// The same segment, opened (after a fork).
    fn reopened(&self) -> Spec {
        Spec {
            create: false,
            timeout: None,
            ..self.clone()
        }
    }
}

fn make_tx<T: Elem>(s: &Spec) -> shmbatch::Result<Box<dyn TxOps>> {
    let o = s.options();
    Ok(match (s.kind, s.create) {
        (Kind::Spsc, true) => Box::new(spsc::Sender::<T>::create_with(&s.name, s.capacity, &o)?),
        (Kind::Spsc, false) => Box::new(spsc::Sender::<T>::open_with(&s.name, &o)?),
        (_, true) => Box::new(mpmc::Sender::<T>::create_with(
            &s.name,
            s.capacity,
            s.max_batch.unwrap_or(MPMC_DEFAULT_MAX_BATCH),
            &o,
        )?),
        (_, false) => Box::new(mpmc::Sender::<T>::open_with(&s.name, &o)?),
    })
}

fn make_rx<T: Elem>(s: &Spec) -> shmbatch::Result<Box<dyn RxOps>> {
    let o = s.options();
    Ok(match (s.kind, s.create) {
        (Kind::Spsc, true) => Box::new(spsc::Receiver::<T>::create_with(&s.name, s.capacity, &o)?),
        (Kind::Spsc, false) => Box::new(spsc::Receiver::<T>::open_with(&s.name, &o)?),
        (_, true) => Box::new(mpmc::Receiver::<T>::create_with(
            &s.name,
            s.capacity,
            s.max_batch.unwrap_or(MPMC_DEFAULT_MAX_BATCH),
            &o,
        )?),
        (_, false) => Box::new(mpmc::Receiver::<T>::open_with(&s.name, &o)?),
    })
}

/// A batch to send as a [`Src`]: a 1-d numpy array of `dtype` (another sequence
/// is converted first; an array of another dtype is refused, never cast).
fn source<'py>(obj: &Bound<'py, PyAny>, dtype: DType) -> PyResult<(Bound<'py, PyAny>, Src)> {
    let py = obj.py();
    let arr = match obj.cast::<PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => py
            .import("numpy")?
            .call_method1("asarray", (obj, dtype.tag()))?
            .cast_into::<PyUntypedArray>()?,
    };
    // The common case in C calls only: a 1-d array of the queue's dtype.
    if let Some(src) = dispatch!(dtype, typed_source(&arr)) {
        return Ok((arr.into_any(), src));
    }
    if arr.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "a batch is a 1-d array, not {}-d (flatten it with .ravel())",
            arr.ndim()
        )));
    }
    let shown: String = arr.dtype().str()?.extract()?;
    Err(Class::TypeMismatch.err(format!(
        "batch of dtype {shown} sent to a queue of {}: convert it with .astype({:?})",
        dtype.tag(),
        dtype.tag()
    )))
}

/// `arr` as a [`Src`] if it is a 1-d array of `T`.
fn typed_source<T: Elem>(arr: &Bound<'_, PyUntypedArray>) -> Option<Src> {
    let a = arr.cast::<numpy::PyArray1<T>>().ok()?;
    Some(Src {
        ptr: a.data() as *const u8,
        len: a.len(),
        stride: a.strides()[0],
    })
}

fn info_dict<'py>(py: Python<'py>, i: Info, kind: Kind) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", i.name)?;
    d.set_item("dtype", i.dtype.tag())?;
    d.set_item("capacity", i.capacity)?;
    d.set_item("max_batch", i.max_batch)?;
    d.set_item("kind", kind.as_str())?;
    Ok(d)
}

/// The sending end of a queue (`shmbatch.spsc.Sender`, `shmbatch.mpmc.Sender`).
#[pyclass(module = "shmbatch._shmbatch", subclass, name = "Sender")]
pub struct PySender {
    slot: Arc<Slot<dyn TxOps>>,
    spec: Spec,
    dtype: DType,
}

#[pymethods]
impl PySender {
    /// Internal: use `create` or `open` of `shmbatch.spsc.Sender` or
    /// `shmbatch.mpmc.Sender`.
    #[new]
    #[pyo3(signature = (kind, how, name, capacity=None, dtype=None, max_batch=None, persist=false, mode=0o600, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        kind: &str,
        how: &str,
        name: &str,
        capacity: Option<usize>,
        dtype: Option<&Bound<'_, PyAny>>,
        max_batch: Option<usize>,
        persist: bool,
        mode: u32,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let spec = Spec::parse(kind, how, name, capacity, max_batch, persist, mode, timeout)?;
        let dtype = spec.dtype(py, dtype)?;
        // Opening may wait for the segment: without the GIL.
        let handle = py.detach(|| dispatch!(dtype, make_tx(&spec))).or_raise()?;
        let again = spec.reopened();
        let reopen: Reopen<dyn TxOps> = Box::new(move || dispatch!(dtype, make_tx(&again)));
        Ok(PySender {
            slot: Slot::new(handle, reopen),
            spec,
            dtype,
        })
    }

    /// Send a copy of `batch` (a 1-d array of the queue's dtype, contiguous or
    /// not), waiting for room at most `timeout` seconds (`None`: as long as it
    /// takes). The GIL is released while waiting.
    #[pyo3(signature = (batch, timeout=None))]
    fn send(&self, py: Python<'_>, batch: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let (_keep, src) = source(batch, self.dtype)?;
        let until = deadline(timeout)?;
        let mut tx = self.slot.enter()?;
        match tx.send(src, None) {
            Err(QueueError::Full) => {}
            other => return other.map_err(Into::into),
        }
        let src = SameThread(src);
        let tx = &mut *tx;
        blocking(py, until, |end| tx.send(src.0, Some(end)))
    }

    /// Send a copy of `batch` if there is room now; `shmbatch.Full` otherwise.
    fn try_send(&self, batch: &Bound<'_, PyAny>) -> PyResult<()> {
        let (_keep, src) = source(batch, self.dtype)?;
        self.slot.enter()?.send(src, None).map_err(Into::into)
    }

    /// `with tx.reserve(n) as buf:` — room for `n` elements in the ring, as a
    /// writable array; a clean exit publishes it, an exception publishes nothing.
    #[pyo3(signature = (n, timeout=None))]
    fn reserve(slf: Bound<'_, Self>, n: usize, timeout: Option<f64>) -> PyResult<View> {
        let py = slf.py();
        let this = slf.borrow();
        let until = deadline(timeout)?;
        let lease = this.slot.lease()?;
        // SAFETY: the reference stays inside this function and in the `View`,
        // which drops what it borrowed before the lease (`View::finish`).
        let tx: &'static mut dyn TxOps = unsafe { lease.handle() };
        let ptr = SameThread(tx as *mut dyn TxOps);
        let mapped = tx.keep_mapped();
        let lent = match tx.reserve(n, None) {
            Ok(l) => l,
            Err(QueueError::Full) => {
                let got = blocking(py, until, |end| {
                    // SAFETY: as above; each attempt reborrows the leased handle.
                    let tx = unsafe { &mut *ptr.0 };
                    tx.reserve(n, Some(end)).map(SameThread)
                })?;
                got.0
            }
            Err(e) => return Err(e.into()),
        };
        View::new(lent, Box::new(lease), mapped, this.dtype, true)
    }

    /// `reserve` if there is room now; `shmbatch.Full` otherwise.
    fn try_reserve(slf: Bound<'_, Self>, n: usize) -> PyResult<View> {
        let this = slf.borrow();
        let lease = this.slot.lease()?;
        // SAFETY: as in `reserve`.
        let tx: &'static mut dyn TxOps = unsafe { lease.handle() };
        let mapped = tx.keep_mapped();
        let lent = tx.reserve(n, None)?;
        View::new(lent, Box::new(lease), mapped, this.dtype, true)
    }

    /// Batches waiting in the queue (SPSC: elements' worth of ring in use counts
    /// as the Rust `len` does; see the docs).
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.slot.enter()?.len())
    }

    /// Whether a batch of the largest size would not fit now.
    fn is_full(&self) -> PyResult<bool> {
        Ok(self.slot.enter()?.is_full())
    }

    /// Whether the receiving side attached once and has gone.
    fn is_disconnected(&self) -> PyResult<bool> {
        Ok(self.slot.enter()?.is_disconnected())
    }

    /// Keep the segment after its creator closes it.
    fn persist(&self) -> PyResult<()> {
        self.slot.enter()?.persist();
        Ok(())
    }

    /// Detach now; the creator's handle removes the segment unless persisted.
    fn close(&self) -> PyResult<()> {
        self.slot.close()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.slot.is_closed()
    }

    /// Name, dtype, capacity, largest batch and kind, as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        info_dict(py, self.slot.enter()?.info(), self.spec.kind)
    }

    /// The segment name.
    #[getter]
    fn name(&self) -> &str {
        &self.spec.name
    }

    /// The element type, a `numpy.dtype`.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.dtype.numpy(py)
    }

    /// Largest batch, in elements.
    #[getter]
    fn max_batch(&self) -> PyResult<usize> {
        Ok(self.slot.enter()?.info().max_batch)
    }

    /// Capacity: elements (SPSC) or slots (MPMC), as created.
    #[getter]
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.slot.enter()?.info().capacity)
    }

    #[getter]
    fn _tag(&self) -> &'static str {
        self.dtype.tag()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.slot.close()
    }

    fn __repr__(&self) -> String {
        format!(
            "{}.Sender(name={:?}, dtype={:?})",
            self.spec.kind.as_str(),
            self.spec.name,
            self.dtype.tag()
        )
    }
}

/// The receiving end of a queue (`shmbatch.spsc.Receiver`, `shmbatch.mpmc.Receiver`).
#[pyclass(module = "shmbatch._shmbatch", subclass, name = "Receiver")]
pub struct PyReceiver {
    slot: Arc<Slot<dyn RxOps>>,
    spec: Spec,
    dtype: DType,
}

#[pymethods]
impl PyReceiver {
    /// Internal: use `create` or `open` of `shmbatch.spsc.Receiver` or
    /// `shmbatch.mpmc.Receiver`.
    #[new]
    #[pyo3(signature = (kind, how, name, capacity=None, dtype=None, max_batch=None, persist=false, mode=0o600, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        kind: &str,
        how: &str,
        name: &str,
        capacity: Option<usize>,
        dtype: Option<&Bound<'_, PyAny>>,
        max_batch: Option<usize>,
        persist: bool,
        mode: u32,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let spec = Spec::parse(kind, how, name, capacity, max_batch, persist, mode, timeout)?;
        let dtype = spec.dtype(py, dtype)?;
        // Opening may wait for the segment: without the GIL.
        let handle = py.detach(|| dispatch!(dtype, make_rx(&spec))).or_raise()?;
        let again = spec.reopened();
        let reopen: Reopen<dyn RxOps> = Box::new(move || dispatch!(dtype, make_rx(&again)));
        Ok(PyReceiver {
            slot: Slot::new(handle, reopen),
            spec,
            dtype,
        })
    }

    /// The next batch as a new numpy array, waiting at most `timeout` seconds
    /// (`None`: as long as it takes; the GIL is released while waiting).
    /// `shmbatch.Disconnected` once the senders have gone and the queue is drained;
    /// `TimeoutError` when the timeout passes.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let until = deadline(timeout)?;
        let mut rx = self.slot.enter()?;
        let p = SameThread(&mut *rx as *mut dyn RxOps);
        // SAFETY: `rx` holds the handle (its `busy` flag) for this call; the batch
        // borrowed through `p` is copied out and released before `rx` drops.
        let batch = match unsafe { &mut *p.0 }.recv_view(None) {
            Ok(b) => b,
            Err(QueueError::Empty) => {
                blocking(py, until, |end| {
                    // SAFETY: as above; each attempt reborrows the same handle.
                    unsafe { &mut *p.0 }.recv_view(Some(end)).map(SameThread)
                })?
                .0
            }
            Err(e) => return Err(e.into()),
        };
        // One copy, ring to a new numpy array, with the GIL held; then release.
        let out = batch.copy_out(py);
        batch.finish();
        drop(rx);
        Ok(out)
    }

    /// The next batch if one is waiting, else `None`.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut rx = self.slot.enter()?;
        let got = match rx.recv_view(None) {
            Ok(b) => {
                let out = b.copy_out(py);
                b.finish();
                Ok(Some(out))
            }
            Err(QueueError::Empty) => Ok(None),
            Err(e) => Err(e.into()),
        };
        got
    }

    /// `with rx.recv_view() as batch:` — the next batch where it lies in the ring,
    /// zero copy, released when the block ends. After that the array is made
    /// read-only and its contents may change (the sender reuses the space).
    #[pyo3(signature = (timeout=None))]
    fn recv_view(slf: Bound<'_, Self>, timeout: Option<f64>) -> PyResult<View> {
        let py = slf.py();
        let this = slf.borrow();
        let until = deadline(timeout)?;
        let lease = this.slot.lease()?;
        // SAFETY: the reference stays inside this function and in the `View`,
        // which drops what it borrowed before the lease (`View::finish`).
        let rx: &'static mut dyn RxOps = unsafe { lease.handle() };
        let ptr = SameThread(rx as *mut dyn RxOps);
        let mapped = rx.keep_mapped();
        let lent = match rx.recv_view(None) {
            Ok(l) => l,
            Err(QueueError::Empty) => {
                let got = blocking(py, until, |end| {
                    // SAFETY: as above; each attempt reborrows the leased handle.
                    let rx = unsafe { &mut *ptr.0 };
                    rx.recv_view(Some(end)).map(SameThread)
                })?;
                got.0
            }
            Err(e) => return Err(e.into()),
        };
        View::new(lent, Box::new(lease), mapped, this.dtype, false)
    }

    /// `recv_view` if a batch is waiting, else `None`.
    fn try_recv_view(slf: Bound<'_, Self>) -> PyResult<Option<View>> {
        let this = slf.borrow();
        let lease = this.slot.lease()?;
        // SAFETY: as in `recv_view`.
        let rx: &'static mut dyn RxOps = unsafe { lease.handle() };
        let mapped = rx.keep_mapped();
        match rx.recv_view(None) {
            Ok(lent) => View::new(lent, Box::new(lease), mapped, this.dtype, false).map(Some),
            Err(QueueError::Empty) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// `for batch in rx:` — `recv` until `Disconnected`.
    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.recv(py, None) {
            Ok(v) => Ok(v),
            Err(e)
                if e.is_instance(py, &py.import("shmbatch._errors")?.getattr("Disconnected")?) =>
            {
                Err(PyStopIteration::new_err(()))
            }
            Err(e) => Err(e),
        }
    }

    /// Batches waiting.
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.slot.enter()?.len())
    }

    /// Whether the senders attached once, have gone, and the queue is drained.
    fn is_disconnected(&self) -> PyResult<bool> {
        Ok(self.slot.enter()?.is_disconnected())
    }

    /// Keep the segment after its creator closes it.
    fn persist(&self) -> PyResult<()> {
        self.slot.enter()?.persist();
        Ok(())
    }

    /// Detach now; the creator's handle removes the segment unless persisted.
    fn close(&self) -> PyResult<()> {
        self.slot.close()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.slot.is_closed()
    }

    /// Name, dtype, capacity, largest batch and kind, as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        info_dict(py, self.slot.enter()?.info(), self.spec.kind)
    }

    /// The segment name.
    #[getter]
    fn name(&self) -> &str {
        &self.spec.name
    }

    /// The element type, a `numpy.dtype`.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.dtype.numpy(py)
    }

    /// Largest batch, in elements.
    #[getter]
    fn max_batch(&self) -> PyResult<usize> {
        Ok(self.slot.enter()?.info().max_batch)
    }

    /// Capacity: elements (SPSC) or slots (MPMC), as created.
    #[getter]
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.slot.enter()?.info().capacity)
    }

    #[getter]
    fn _tag(&self) -> &'static str {
        self.dtype.tag()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.slot.close()
    }

    fn __repr__(&self) -> String {
        format!(
            "{}.Receiver(name={:?}, dtype={:?})",
            self.spec.kind.as_str(),
            self.spec.name,
            self.dtype.tag()
        )
    }
}
