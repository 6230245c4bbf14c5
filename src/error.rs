//! Error types.
//!
//! Set-up operations (`create`, `open`, `remove`) return [`Error`], which carries the
//! facts a user needs to fix the problem. Hot-path operations return small `Copy`
//! enums, one per operation, in the style of `std::sync::mpsc` and `rtrb`: a full
//! queue is not an exceptional event and costs no allocation to report.

use std::fmt;
use std::io;

/// Which end of a queue a handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The producing end.
    Sender,
    /// The consuming end.
    Receiver,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        })
    }
}

/// What a segment holds, as recorded in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A single-producer single-consumer batch ring ([`crate::spsc`]).
    Spsc,
    /// A multi-producer multi-consumer slot queue ([`crate::mpmc`]).
    Mpmc,
    /// A shared array updated in place.
    Array,
}

impl Kind {
    pub(crate) const fn code(self) -> u32 {
        match self {
            Kind::Spsc => 1,
            Kind::Mpmc => 2,
            Kind::Array => 3,
        }
    }

    pub(crate) const fn from_code(code: u32) -> Option<Kind> {
        match code {
            1 => Some(Kind::Spsc),
            2 => Some(Kind::Mpmc),
            3 => Some(Kind::Array),
            _ => None,
        }
    }

    /// The lowercase name used in messages and by the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpmc => "mpmc",
            Kind::Array => "array",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

impl From<SendError> for SendTimeoutError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Disconnected => SendTimeoutError::Disconnected,
            SendError::TooLarge { len, max } => SendTimeoutError::TooLarge { len, max },
            SendError::Corrupted { reason } => SendTimeoutError::Corrupted { reason },
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

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Disconnected => RecvTimeoutError::Disconnected,
            RecvError::Corrupted { reason } => RecvTimeoutError::Corrupted { reason },
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
