//! Error types.
//!
//! Set-up operations (`create`, `open`, `remove`) return [`Error`], which carries the
//! facts a user needs to fix the problem. Hot-path operations return small `Copy`
//! enums, one per operation, in the style of `std::sync::mpsc` and `rtrb`: a full
//! queue is not an exceptional event and costs no allocation to report.
//!
//! As in crossbeam-channel, each error has a predicate for each of its variants
//! (`is_full`, `is_empty`, `is_disconnected`, `is_timeout`, `is_too_large`,
//! `is_corrupted`), a blocking call's error converts into the non-blocking and timed
//! errors of the same operation ([`SendError`] into [`TrySendError`] and
//! [`SendTimeoutError`], [`RecvError`] into [`TryRecvError`] and
//! [`RecvTimeoutError`]), and [`Error`] converts into [`std::io::Error`] (see
//! [`Error::io_kind`]).

use std::io;

use crate::layout::{Kind, Role};

/// Errors from setting up, opening or removing a segment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The segment name is not acceptable.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size, capacity or length argument is out of range.
    #[error("invalid {what} {value}: {reason}")]
    InvalidSize {
        /// Which argument (`"capacity"`, `"max_batch"`, ...).
        what: &'static str,
        /// The value given.
        value: usize,
        /// The accepted range.
        reason: String,
    },
    /// The element type cannot be stored in a segment.
    #[error("unsupported element type {type_name}: {reason}")]
    UnsupportedType {
        /// `core::any::type_name` of the type.
        type_name: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// No segment of that name exists.
    #[error("no shared segment named {name:?}")]
    NotFound {
        /// The segment name.
        name: String,
    },
    /// A segment of that name already exists.
    #[error("a shared segment named {name:?} already exists (remove it with shmbatch::remove)")]
    AlreadyExists {
        /// The segment name.
        name: String,
    },
    /// The segment was made by another layout version of this crate.
    #[error("segment layout version {found}, this build reads version {expected}")]
    VersionMismatch {
        /// The version in the header.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// The segment holds another kind of object.
    #[error("segment holds a {found} object, expected {expected}")]
    KindMismatch {
        /// The kind in the header.
        found: Kind,
        /// The kind the caller asked for.
        expected: Kind,
    },
    /// The creator stored another element type: another size or alignment, or
    /// another type tag where both sides have one (see [`crate::layout`], "Element
    /// types").
    #[error(
        "element type mismatch: segment holds {} (size {found_size}, align {found_align}), \
         caller asked for {} (size {expected_size}, align {expected_align})",
        crate::layout::show_tag(.found),
        crate::layout::show_tag(.expected)
    )]
    TypeMismatch {
        /// Type tag recorded by the creator (`"<f8"`, ...; empty if untagged).
        found: String,
        /// Its size in bytes.
        found_size: usize,
        /// Its alignment.
        found_align: usize,
        /// Type tag of the opener's type (empty if untagged).
        expected: String,
        /// Its size in bytes.
        expected_size: usize,
        /// Its alignment.
        expected_align: usize,
    },
    /// Another live process already holds this end of a single-producer or
    /// single-consumer queue.
    #[error("the {role} end of {name:?} is already attached by live process {pid}")]
    AlreadyAttached {
        /// The segment name.
        name: String,
        /// Which end.
        role: Role,
        /// The process holding it.
        pid: u32,
    },
    /// A many-to-many segment already tracks as many attached handles as it can
    /// (handles cloned within a process share one attachment).
    #[error("segment {name:?} already has {max} attached handles, the most it can track")]
    TooManyAttached {
        /// The segment name (`"<heap>"` for an in-process channel).
        name: String,
        /// The size of the segment's attachment table.
        max: usize,
    },
    /// The creator has not finished initialising the header in time.
    #[error("segment {name:?} was not initialised by its creator within {waited_ms} ms")]
    NotReady {
        /// The segment name.
        name: String,
        /// How long `open` waited.
        waited_ms: u64,
    },
    /// The file under this name is not a shmbatch segment: it has no shmbatch header
    /// (empty, too short, zero-filled, someone else's), or it is not a regular file.
    /// Reported at once, without waiting for a creator.
    #[error("{name:?} is not a shmbatch segment: {reason}")]
    NotShmbatch {
        /// The segment name.
        name: String,
        /// What the file is instead (`"no shmbatch magic"`, `"is a symbolic link"`, ...).
        reason: String,
    },
    /// The segment's header (past its shmbatch magic) or control block is not valid:
    /// it is damaged or hostile. The reason holds printable text only.
    #[error("segment is corrupted: {0}")]
    Corrupted(String),
    /// An operating-system call failed.
    #[error("{op} failed for {name:?}: {source}")]
    Io {
        /// The call (`"shm_open"`, `"mmap"`, ...).
        op: &'static str,
        /// The segment name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn corrupted(reason: impl Into<String>) -> Error {
        Error::Corrupted(reason.into())
    }

    /// Whether no segment of that name exists ([`Error::NotFound`]): the case where
    /// a caller may create the segment instead of opening it.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether the name is taken ([`Error::AlreadyExists`]).
    #[must_use]
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    /// Whether the segment's header or control block is damaged
    /// ([`Error::Corrupted`]). A file that is no shmbatch segment at all is
    /// [`Error::NotShmbatch`], not this.
    #[must_use]
    pub fn is_corrupted(&self) -> bool {
        matches!(self, Error::Corrupted(_))
    }

    /// Whether `open` gave up waiting for the creator to finish the header
    /// ([`Error::NotReady`]): the one set-up error that a later retry may not see.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::NotReady { .. })
    }

    /// The [`io::ErrorKind`] that the conversion into [`io::Error`] gives this error:
    ///
    /// | variant | kind |
    /// |---|---|
    /// | `NotFound` | `NotFound` |
    /// | `AlreadyExists` | `AlreadyExists` |
    /// | `InvalidName`, `InvalidSize`, `UnsupportedType` | `InvalidInput` |
    /// | `NotReady` | `TimedOut` |
    /// | `VersionMismatch`, `KindMismatch`, `TypeMismatch`, `NotShmbatch`, `Corrupted` | `InvalidData` |
    /// | `AlreadyAttached`, `TooManyAttached` | `Other` |
    /// | `Io` | the kind of the OS error (`PermissionDenied`, ...) |
    ///
    /// `AlreadyAttached` and `TooManyAttached` would be `ResourceBusy`, which needs
    /// Rust 1.83 (this crate builds with 1.80).
    #[must_use]
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Error::InvalidName { .. }
            | Error::InvalidSize { .. }
            | Error::UnsupportedType { .. } => io::ErrorKind::InvalidInput,
            Error::NotReady { .. } => io::ErrorKind::TimedOut,
            Error::VersionMismatch { .. }
            | Error::KindMismatch { .. }
            | Error::TypeMismatch { .. }
            | Error::NotShmbatch { .. }
            | Error::Corrupted(_) => io::ErrorKind::InvalidData,
            Error::AlreadyAttached { .. } | Error::TooManyAttached { .. } => io::ErrorKind::Other,
            Error::Io { source, .. } => source.kind(),
        }
    }
}

/// An [`Error`] as an [`io::Error`] of kind [`Error::io_kind`], which keeps the
/// original error: `get_ref`, `into_inner` and `source` give it back (and, for
/// [`Error::Io`], the OS error behind it), and the message is the same.
///
/// So `?` works in functions that return [`io::Result`]:
/// ```
/// use std::io;
///
/// fn open_prices(name: &str) -> io::Result<shmbatch::spsc::Receiver<f64>> {
///     Ok(shmbatch::spsc::Receiver::open(name)?)
/// }
///
/// let e = open_prices("doc-io-no-such-segment").unwrap_err();
/// assert_eq!(e.kind(), io::ErrorKind::NotFound);
/// let inner = e.get_ref().unwrap().downcast_ref::<shmbatch::Error>().unwrap();
/// assert!(inner.is_not_found());
/// ```
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
}

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! hot_errors {
    ($(
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident $({ $($field:ident : $fty:ty),* })? => $msg:literal ),* $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
        pub enum $name {
            $( $(#[$vmeta])* #[error($msg)] $variant $({ $( #[allow(missing_docs)] $field: $fty ),* })? ),*
        }
    )*};
}

hot_errors! {
    /// Error of `try_send` and `try_reserve`.
    TrySendError {
        /// The queue has no room for the batch now.
        Full => "queue is full",
        /// The receiving side attached once and has gone.
        Disconnected => "receiver disconnected",
        /// The batch is longer than the queue's maximum batch length.
        TooLarge { len: usize, max: usize } => "batch of {len} elements exceeds the maximum of {max}",
        /// The shared state is corrupted (a hostile or broken peer).
        Corrupted { reason: &'static str } => "queue is corrupted: {reason}",
    }
    /// Error of the blocking `send` and `reserve`.
    SendError {
        /// The receiving side attached once and has gone.
        Disconnected => "receiver disconnected",
        /// The batch is longer than the queue's maximum batch length.
        TooLarge { len: usize, max: usize } => "batch of {len} elements exceeds the maximum of {max}",
        /// The shared state is corrupted (a hostile or broken peer).
        Corrupted { reason: &'static str } => "queue is corrupted: {reason}",
    }
    /// Error of `send_timeout` and `reserve_timeout`.
    SendTimeoutError {
        /// No room appeared before the timeout.
        Timeout => "timed out waiting for room in the queue",
        /// The receiving side attached once and has gone.
        Disconnected => "receiver disconnected",
        /// The batch is longer than the queue's maximum batch length.
        TooLarge { len: usize, max: usize } => "batch of {len} elements exceeds the maximum of {max}",
        /// The shared state is corrupted (a hostile or broken peer).
        Corrupted { reason: &'static str } => "queue is corrupted: {reason}",
    }
    /// Error of `try_recv` and `try_recv_into`.
    TryRecvError {
        /// Nothing to receive now.
        Empty => "queue is empty",
        /// Every sender attached once, has gone, and everything they sent was received.
        Disconnected => "sender disconnected and queue drained",
        /// The shared state is corrupted (a hostile or broken peer).
        Corrupted { reason: &'static str } => "queue is corrupted: {reason}",
    }
    /// Error of the blocking `recv` and `recv_into`.
    RecvError {
        /// Every sender attached once, has gone, and everything they sent was received.
        Disconnected => "sender disconnected and queue drained",
        /// The shared state is corrupted (a hostile or broken peer).
        Corrupted { reason: &'static str } => "queue is corrupted: {reason}",
    }
    /// Error of `recv_timeout` and `recv_into_timeout`.
    RecvTimeoutError {
        /// Nothing arrived before the timeout.
        Timeout => "timed out waiting for a batch",
        /// Every sender attached once, has gone, and everything they sent was received.
        Disconnected => "sender disconnected and queue drained",
        /// The shared state is corrupted (a hostile or broken peer).
        Corrupted { reason: &'static str } => "queue is corrupted: {reason}",
    }
}

impl TrySendError {
    pub(crate) fn into_blocking(self) -> Option<SendError> {
        match self {
            TrySendError::Full => None,
            TrySendError::Disconnected => Some(SendError::Disconnected),
            TrySendError::TooLarge { len, max } => Some(SendError::TooLarge { len, max }),
            TrySendError::Corrupted { reason } => Some(SendError::Corrupted { reason }),
        }
    }
}

impl SendTimeoutError {
    /// The error of the same call made without a deadline, where `Timeout` cannot
    /// happen.
    pub(crate) fn without_deadline(self) -> SendError {
        match self {
            SendTimeoutError::Disconnected => SendError::Disconnected,
            SendTimeoutError::TooLarge { len, max } => SendError::TooLarge { len, max },
            SendTimeoutError::Corrupted { reason } => SendError::Corrupted { reason },
            SendTimeoutError::Timeout => unreachable!("no deadline, no timeout"),
        }
    }
}

impl TryRecvError {
    pub(crate) fn into_blocking(self) -> Option<RecvError> {
        match self {
            TryRecvError::Empty => None,
            TryRecvError::Disconnected => Some(RecvError::Disconnected),
            TryRecvError::Corrupted { reason } => Some(RecvError::Corrupted { reason }),
        }
    }
}

impl RecvTimeoutError {
    /// The error of the same call made without a deadline, where `Timeout` cannot
    /// happen.
    pub(crate) fn without_deadline(self) -> RecvError {
        match self {
            RecvTimeoutError::Disconnected => RecvError::Disconnected,
            RecvTimeoutError::Corrupted { reason } => RecvError::Corrupted { reason },
            RecvTimeoutError::Timeout => unreachable!("no deadline, no timeout"),
        }
    }
}

impl crate::wait::AttemptError for TrySendError {
    type Waiting = SendTimeoutError;
    fn not_now(&self) -> bool {
        matches!(self, TrySendError::Full)
    }
    fn waiting(self) -> SendTimeoutError {
        self.into_blocking()
            .map_or(SendTimeoutError::Timeout, Into::into)
    }
    fn timeout() -> SendTimeoutError {
        SendTimeoutError::Timeout
    }
}

impl crate::wait::AttemptError for TryRecvError {
    type Waiting = RecvTimeoutError;
    fn not_now(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
    fn waiting(self) -> RecvTimeoutError {
        self.into_blocking()
            .map_or(RecvTimeoutError::Timeout, Into::into)
    }
    fn timeout() -> RecvTimeoutError {
        RecvTimeoutError::Timeout
    }
}

// Helpers in the style of crossbeam-channel: one predicate per variant a caller
// tells apart, on every error that has the variant.

impl TrySendError {
    /// Whether the queue had no room for the batch ([`TrySendError::Full`]).
    #[must_use]
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full)
    }

    /// Whether the receiving side has gone ([`TrySendError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected)
    }

    /// Whether the batch was longer than the queue allows ([`TrySendError::TooLarge`]).
    #[must_use]
    pub fn is_too_large(&self) -> bool {
        matches!(self, TrySendError::TooLarge { .. })
    }

    /// Whether the shared state was damaged ([`TrySendError::Corrupted`]).
    #[must_use]
    pub fn is_corrupted(&self) -> bool {
        matches!(self, TrySendError::Corrupted { .. })
    }
}

impl SendError {
    /// Whether the receiving side has gone ([`SendError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendError::Disconnected)
    }

    /// Whether the batch was longer than the queue allows ([`SendError::TooLarge`]).
    #[must_use]
    pub fn is_too_large(&self) -> bool {
        matches!(self, SendError::TooLarge { .. })
    }

    /// Whether the shared state was damaged ([`SendError::Corrupted`]).
    #[must_use]
    pub fn is_corrupted(&self) -> bool {
        matches!(self, SendError::Corrupted { .. })
    }
}

impl SendTimeoutError {
    /// Whether no room appeared before the timeout ([`SendTimeoutError::Timeout`]).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout)
    }

    /// Whether the receiving side has gone ([`SendTimeoutError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected)
    }

    /// Whether the batch was longer than the queue allows
    /// ([`SendTimeoutError::TooLarge`]).
    #[must_use]
    pub fn is_too_large(&self) -> bool {
        matches!(self, SendTimeoutError::TooLarge { .. })
    }

    /// Whether the shared state was damaged ([`SendTimeoutError::Corrupted`]).
    #[must_use]
    pub fn is_corrupted(&self) -> bool {
        matches!(self, SendTimeoutError::Corrupted { .. })
    }
}

impl TryRecvError {
    /// Whether there was nothing to receive ([`TryRecvError::Empty`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether every sender has gone and the queue is drained
    /// ([`TryRecvError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }

    /// Whether the shared state was damaged ([`TryRecvError::Corrupted`]).
    #[must_use]
    pub fn is_corrupted(&self) -> bool {
        matches!(self, TryRecvError::Corrupted { .. })
    }
}

impl RecvError {
    /// Whether every sender has gone and the queue is drained
    /// ([`RecvError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvError::Disconnected)
    }

    /// Whether the shared state was damaged ([`RecvError::Corrupted`]).
    #[must_use]
    pub fn is_corrupted(&self) -> bool {
        matches!(self, RecvError::Corrupted { .. })
    }
}

impl RecvTimeoutError {
    /// Whether nothing arrived before the timeout ([`RecvTimeoutError::Timeout`]).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// Whether every sender has gone and the queue is drained
    /// ([`RecvTimeoutError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }

    /// Whether the shared state was damaged ([`RecvTimeoutError::Corrupted`]).
    #[must_use]
    pub fn is_corrupted(&self) -> bool {
        matches!(self, RecvTimeoutError::Corrupted { .. })
    }
}

// Conversions where every variant of one error is a variant of the other, so that `?`
// moves an error from a blocking call into a function returning the wider one. The
// other direction (and `TrySendError` into `SendTimeoutError`) would have to invent
// or drop a variant, so there is none.

/// Every blocking-send error is a timed-send error of the same variant.
impl From<SendError> for SendTimeoutError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Disconnected => SendTimeoutError::Disconnected,
            SendError::TooLarge { len, max } => SendTimeoutError::TooLarge { len, max },
            SendError::Corrupted { reason } => SendTimeoutError::Corrupted { reason },
        }
    }
}

/// Every blocking-send error is a non-blocking-send error of the same variant.
impl From<SendError> for TrySendError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Disconnected => TrySendError::Disconnected,
            SendError::TooLarge { len, max } => TrySendError::TooLarge { len, max },
            SendError::Corrupted { reason } => TrySendError::Corrupted { reason },
        }
    }
}

/// Every blocking-receive error is a timed-receive error of the same variant.
impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Corrupted { reason } => RecvTimeoutError::Corrupted { reason },
        }
    }
}

/// Every blocking-receive error is a non-blocking-receive error of the same variant.
impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => TryRecvError::Disconnected,
            RecvError::Corrupted { reason } => TryRecvError::Corrupted { reason },
        }
    }
}

/// An element index past the end of a [`SharedArray`](crate::SharedArray), from its
/// element operations (`load`, `store`, `fetch_add`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("index {index} is out of bounds for an array of {len} elements")]
pub struct IndexOutOfBounds {
    /// The index given.
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

/// Error of [`SharedArray::try_write`](crate::SharedArray::try_write): another
/// writer holds the array's lock now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("the array is locked by process {pid}")]
pub struct LockBusy {
    /// The process id recorded in the lock word (a hint: pids are reused).
    pub pid: u32,
}

/// Error of the `_timeout` operations of a [`SharedArray`](crate::SharedArray): the
/// lock did not come free in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("timed out waiting for the array lock, held by process {pid}")]
pub struct LockTimeout {
    /// The process id last seen in the lock word (0 if the lock looked free).
    pub pid: u32,
}

#[cfg(test)]
mod tests;
