//! Rust errors as Python exceptions. The exception classes are defined in Python
//! (`shmbatch/_errors.py`) so that they can subclass `queue.Full`, `queue.Empty`
//! and the built-in `ValueError`; they are looked up once and raised from here
//! with the Rust message.

use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use shmbatch::{Error, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};

/// The exception classes of `shmbatch._errors`, looked up once.
#[derive(Clone, Copy)]
pub(crate) enum Class {
    Disconnected,
    Full,
    Empty,
    TypeMismatch,
    KindMismatch,
    Corrupted,
    TooLarge,
    Busy,
    AlreadyAttached,
    VersionMismatch,
}

impl Class {
    fn name(&self) -> &'static str {
        match self {
            Class::Disconnected => "Disconnected",
            Class::Full => "Full",
            Class::Empty => "Empty",
            Class::TypeMismatch => "TypeMismatch",
            Class::KindMismatch => "KindMismatch",
            Class::Corrupted => "Corrupted",
            Class::TooLarge => "TooLarge",
            Class::Busy => "Busy",
            Class::AlreadyAttached => "AlreadyAttached",
            Class::VersionMismatch => "VersionMismatch",
        }
    }

    fn cell(&self) -> &'static PyOnceLock<Py<PyType>> {
        static CELLS: [PyOnceLock<Py<PyType>>; 10] = [const { PyOnceLock::new() }; 10];
        // The variants are numbered 0.. in declaration order.
        &CELLS[*self as usize]
    }

    /// This exception with `msg`.
    pub(crate) fn err(self, msg: impl Into<String>) -> PyErr {
        let msg = msg.into();
        Python::attach(
            |py| match self.cell().import(py, "shmbatch._errors", self.name()) {
                Ok(ty) => PyErr::from_type(ty.clone(), msg),
                Err(e) => e,
            },
        )
    }
}

/// A `shmbatch::Error` as the Python exception its kind calls for.
pub(crate) fn from_error(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        Error::AlreadyExists { .. } => PyFileExistsError::new_err(msg),
        Error::TypeMismatch { .. } => Class::TypeMismatch.err(msg),
        Error::KindMismatch { .. } => Class::KindMismatch.err(msg),
        Error::VersionMismatch { .. } => Class::VersionMismatch.err(msg),
        Error::Corrupted(_) | Error::NotShmbatch { .. } => Class::Corrupted.err(msg),
        Error::AlreadyAttached { .. } | Error::TooManyAttached { .. } => {
            Class::AlreadyAttached.err(msg)
        }
        Error::NotReady { .. } => PyTimeoutError::new_err(msg),
        Error::InvalidName { .. } | Error::InvalidSize { .. } | Error::UnsupportedType { .. } => {
            PyValueError::new_err(msg)
        }
        Error::Io { ref source, .. } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, msg)),
            None => PyOSError::new_err(msg),
        },
        _ => PyOSError::new_err(msg),
    }
}

/// Why a queue operation did not complete: the union of the Rust error types of
/// the `try_`, `_deadline` and blocking verbs, as the binding reports them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QueueError {
    Full,
    Empty,
    Timeout,
    /// The Rust message: which side has gone.
    Disconnected(&'static str),
    TooLarge {
        len: usize,
        max: usize,
    },
    Corrupted(&'static str),
}

const RX_GONE: &str = "receiver disconnected";
const TX_GONE: &str = "sender disconnected and queue drained";

impl From<TrySendError> for QueueError {
    fn from(e: TrySendError) -> Self {
        match e {
            TrySendError::Full => QueueError::Full,
            TrySendError::Disconnected => QueueError::Disconnected(RX_GONE),
            TrySendError::TooLarge { len, max } => QueueError::TooLarge { len, max },
            TrySendError::Corrupted { reason } => QueueError::Corrupted(reason),
        }
    }
}

impl From<SendTimeoutError> for QueueError {
    fn from(e: SendTimeoutError) -> Self {
        match e {
            SendTimeoutError::Timeout => QueueError::Timeout,
            SendTimeoutError::Disconnected => QueueError::Disconnected(RX_GONE),
            SendTimeoutError::TooLarge { len, max } => QueueError::TooLarge { len, max },
            SendTimeoutError::Corrupted { reason } => QueueError::Corrupted(reason),
        }
    }
}

impl From<TryRecvError> for QueueError {
    fn from(e: TryRecvError) -> Self {
        match e {
            TryRecvError::Empty => QueueError::Empty,
            TryRecvError::Disconnected => QueueError::Disconnected(TX_GONE),
            TryRecvError::Corrupted { reason } => QueueError::Corrupted(reason),
        }
    }
}

impl From<RecvTimeoutError> for QueueError {
    fn from(e: RecvTimeoutError) -> Self {
        match e {
            RecvTimeoutError::Timeout => QueueError::Timeout,
            RecvTimeoutError::Disconnected => QueueError::Disconnected(TX_GONE),
            RecvTimeoutError::Corrupted { reason } => QueueError::Corrupted(reason),
        }
    }
}

impl From<QueueError> for PyErr {
    fn from(e: QueueError) -> PyErr {
        match e {
            QueueError::Full => Class::Full.err("queue is full"),
            QueueError::Empty => Class::Empty.err("queue is empty"),
            QueueError::Timeout => PyTimeoutError::new_err("timed out"),
            QueueError::Disconnected(msg) => Class::Disconnected.err(msg),
            QueueError::TooLarge { len, max } => Class::TooLarge.err(format!(
                "batch of {len} elements exceeds the maximum of {max}"
            )),
            QueueError::Corrupted(reason) => {
                Class::Corrupted.err(format!("queue is corrupted: {reason}"))
            }
        }
    }
}

/// `Result` conversion for `shmbatch::Result`.
pub(crate) trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(from_error)
    }
}
