//! The errors of a subscriber. The publisher's are the queues' send errors
//! ([`crate::TrySendError`] and the rest), where `Disconnected` never occurs: a
//! publisher with no subscribers goes on publishing into the log.

use super::reader::Miss;

/// Error of `try_recv` and `try_recv_into`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing new to receive now.
    #[error("no new batch")]
    Empty,
    /// Lossy: the publisher overwrote `missed` batches before this subscriber read
    /// them; the next call returns the oldest batch the log still holds.
    #[error("lagged behind the publisher: {missed} batches lost")]
    Lagged {
        /// Batches lost, exactly.
        missed: u64,
    },
    /// Lossless: this subscriber held the publisher back longer than the
    /// eviction timeout and was dropped. Every later call says so too; subscribe
    /// again to go on.
    #[error("evicted for holding the publisher back")]
    Evicted,
    /// The publisher has gone and every batch it published was received.
    #[error("publisher disconnected and log drained")]
    Disconnected,
    /// The shared state is corrupted (a hostile or broken peer).
    #[error("broadcast log is corrupted: {reason}")]
    Corrupted {
        #[allow(missing_docs)]
        reason: &'static str,
    },
}

/// Error of the blocking `recv` and `recv_into`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// As [`TryRecvError::Lagged`].
    #[error("lagged behind the publisher: {missed} batches lost")]
    Lagged {
        /// Batches lost, exactly.
        missed: u64,
    },
    /// As [`TryRecvError::Evicted`].
    #[error("evicted for holding the publisher back")]
    Evicted,
    /// As [`TryRecvError::Disconnected`].
    #[error("publisher disconnected and log drained")]
    Disconnected,
    /// As [`TryRecvError::Corrupted`].
    #[error("broadcast log is corrupted: {reason}")]
    Corrupted {
        #[allow(missing_docs)]
        reason: &'static str,
    },
}

/// Error of `recv_timeout`, `recv_deadline` and their `_into` forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the timeout.
    #[error("timed out waiting for a batch")]
    Timeout,
    /// As [`TryRecvError::Lagged`].
    #[error("lagged behind the publisher: {missed} batches lost")]
    Lagged {
        /// Batches lost, exactly.
        missed: u64,
    },
    /// As [`TryRecvError::Evicted`].
    #[error("evicted for holding the publisher back")]
    Evicted,
    /// As [`TryRecvError::Disconnected`].
    #[error("publisher disconnected and log drained")]
    Disconnected,
    /// As [`TryRecvError::Corrupted`].
    #[error("broadcast log is corrupted: {reason}")]
    Corrupted {
        #[allow(missing_docs)]
        reason: &'static str,
    },
}

impl TryRecvError {
    pub(super) fn of(m: Miss) -> TryRecvError {
        match m {
            Miss::Empty => TryRecvError::Empty,
            Miss::Lagged(missed) => TryRecvError::Lagged { missed },
            Miss::Evicted => TryRecvError::Evicted,
            Miss::Corrupted(reason) => TryRecvError::Corrupted { reason },
        }
    }

    /// Whether nothing new was there ([`TryRecvError::Empty`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether batches were lost ([`TryRecvError::Lagged`]).
    #[must_use]
    pub fn is_lagged(&self) -> bool {
        matches!(self, TryRecvError::Lagged { .. })
    }

    /// Whether the publisher has gone ([`TryRecvError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl RecvTimeoutError {
    /// The error of the same call made without a deadline.
    pub(super) fn without_deadline(self) -> RecvError {
        match self {
            RecvTimeoutError::Lagged { missed } => RecvError::Lagged { missed },
            RecvTimeoutError::Evicted => RecvError::Evicted,
            RecvTimeoutError::Disconnected => RecvError::Disconnected,
            RecvTimeoutError::Corrupted { reason } => RecvError::Corrupted { reason },
            RecvTimeoutError::Timeout => unreachable!("no deadline, no timeout"),
        }
    }

    /// Whether the timeout passed ([`RecvTimeoutError::Timeout`]).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
}

impl RecvError {
    /// Whether batches were lost ([`RecvError::Lagged`]).
    #[must_use]
    pub fn is_lagged(&self) -> bool {
        matches!(self, RecvError::Lagged { .. })
    }

    /// Whether the publisher has gone ([`RecvError::Disconnected`]).
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvError::Disconnected)
    }
}

impl crate::wait::AttemptError for TryRecvError {
    type Waiting = RecvTimeoutError;
    fn not_now(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
    fn waiting(self) -> RecvTimeoutError {
        match self {
            TryRecvError::Empty => RecvTimeoutError::Timeout,
            TryRecvError::Lagged { missed } => RecvTimeoutError::Lagged { missed },
            TryRecvError::Evicted => RecvTimeoutError::Evicted,
            TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            TryRecvError::Corrupted { reason } => RecvTimeoutError::Corrupted { reason },
        }
    }
    fn timeout() -> RecvTimeoutError {
        RecvTimeoutError::Timeout
    }
}
