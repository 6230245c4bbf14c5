"""The exceptions shmbatch raises. Each carries the Rust library's message."""

import queue

__all__ = [
    "ShmbatchError",
    "Disconnected",
    "Full",
    "Empty",
    "TypeMismatch",
    "KindMismatch",
    "VersionMismatch",
    "Corrupted",
    "TooLarge",
    "Busy",
    "AlreadyAttached",
    "RecoveredWarning",
]


class ShmbatchError(Exception):
    """Base class of shmbatch's own exceptions."""


class Disconnected(ShmbatchError):
    """The other side of the queue has gone (for a receiver: and the queue is drained)."""


class Full(ShmbatchError, queue.Full):
    """No room in the queue now (``try_send``, ``try_reserve``)."""


class Empty(ShmbatchError, queue.Empty):
    """Nothing to receive now."""


class TypeMismatch(ShmbatchError, ValueError):
    """The segment holds another element type than asked for, or a batch has another dtype."""


class KindMismatch(ShmbatchError, ValueError):
    """The segment is another kind (an SPSC queue opened as an array, ...)."""


class VersionMismatch(ShmbatchError, ValueError):
    """The segment was made by an incompatible version of shmbatch."""


class Corrupted(ShmbatchError):
    """The segment's header or shared state is damaged (or it is not a shmbatch segment)."""


class TooLarge(ShmbatchError, ValueError):
    """A batch longer than the queue's largest batch."""


class Busy(ShmbatchError, RuntimeError):
    """The handle is in use by another thread or by an open view, or a lock is held."""


class AlreadyAttached(ShmbatchError):
    """An SPSC end that another live process already holds, or too many MPMC peers."""


class RecoveredWarning(RuntimeWarning):
    """A writer died holding a ``SharedArray``'s lock; this writer took it over."""
