"""shmbatch: zero-copy batch queues and locked shared arrays between processes.

- :class:`SharedArray`: a numpy array in a named shared-memory segment, with a
  cross-process lock (``with a.write() as arr:``), consistent snapshots and atomic
  element operations.
- :mod:`shmbatch.spsc` and :mod:`shmbatch.mpmc`: queues of batches (1-d numpy
  arrays), copying or zero-copy both ways.

Segments are named files in ``/dev/shm``, created and opened by Rust, Python or C
peers alike. The creator's handle removes its segment when it is closed or
collected, unless ``persist=True``; Python's resource tracker never sees them.
Handles pickle by name: a child process (``spawn`` or ``fork``) opens the segment
again.
"""

from . import _shmbatch
from . import _errors
from ._errors import *  # noqa: F401,F403  (the exception classes; their list is _errors.__all__)

__all__ = ["SharedArray", "spsc", "mpmc", "remove", "inspect", "MAX_NAME_LEN"] + _errors.__all__

remove = _shmbatch.remove
inspect = _shmbatch.inspect
MAX_NAME_LEN = _shmbatch.MAX_NAME_LEN


def _reopen(cls_path, name, tag):
    """Unpickle a handle: open the segment ``name`` again, by name."""
    import importlib

    module, _, cls = cls_path.rpartition(".")
    return getattr(importlib.import_module(module), cls).open(name, tag)


class SharedArray(_shmbatch.SharedArray):
    """A numpy array of numbers in a named shared-memory segment.

    Create it with :meth:`create` or :meth:`create_from`, open it elsewhere with
    :meth:`open`. Writes take a cross-process lock and publish all at once::

        with a.write() as arr:   # arr: a working copy, the lock held
            arr += 10            # readers see all of it or none of it

    :meth:`snapshot` returns a consistent copy; :meth:`fetch_add`, :meth:`load`,
    :meth:`store`, :meth:`swap` and :meth:`compare_exchange` are atomic on one
    element (of the flattened array; 4- and 8-byte dtypes); :meth:`unsafe_view`
    is the raw array in shared memory, unsynchronised.
    """

    __slots__ = ()

    @classmethod
    def create(cls, name, shape, dtype="f8", *, persist=False, mode=0o600):
        """Create segment ``name`` holding a zeroed array of ``shape`` (an int or a
        tuple) and ``dtype`` (``f8``, ``f4``, ``i8``, ``u8``, ``i4``, ``u4``,
        ``i2``, ``u2``, ``i1``, ``u1``). ``FileExistsError`` if it exists."""
        if isinstance(shape, int):
            shape = (shape,)
        return cls("create", name, tuple(shape), dtype, None, persist, mode)

    @classmethod
    def create_from(cls, name, values, *, persist=False, mode=0o600):
        """Create segment ``name`` holding a copy of the numpy array ``values``
        (its shape and dtype)."""
        return cls("create_from", name, None, None, values, persist, mode)

    @classmethod
    def open(cls, name, dtype=None, *, timeout=None):
        """Open the array segment ``name``. With ``dtype``, a segment of another
        element type raises :class:`TypeMismatch`; without, the segment's own is
        used. ``timeout``: seconds to wait for the segment to appear."""
        return cls("open", name, None, dtype, None, False, 0o600, timeout)

    def __reduce__(self):
        return (_reopen, ("shmbatch.SharedArray", self.name, self._tag))


from . import mpmc, spsc  # noqa: E402  (they import SharedArray's module)
