"""The queue classes of one kind, written once for ``spsc`` and ``mpmc``."""

from . import _shmbatch


def _reopen(cls_path, name, tag):
    from . import _reopen as reopen

    return reopen(cls_path, name, tag)


def make(kind, doc_capacity):
    """The ``Sender`` and ``Receiver`` classes of queue ``kind``."""
    create_doc = (
        f"Create queue ``name`` of ``dtype`` elements: {doc_capacity}. ``max_batch``: "
        "the largest batch, in elements. ``persist=True`` keeps the segment after this "
        "handle closes; ``mode``: its file permissions. ``FileExistsError`` if it exists."
    )

    class Sender(_shmbatch.Sender):
        __slots__ = ()
        __module__ = "shmbatch." + kind
        __doc__ = f"""The sending end of a {kind.upper()} queue of batches (1-d numpy arrays).

        ``send(batch)`` copies a batch into the ring once; ``with tx.reserve(n) as buf:``
        fills it in place. Blocking calls release the GIL and return to Python for
        Ctrl-C; ``timeout`` is in seconds (``TimeoutError``).
        """

        @classmethod
        def create(cls, name, capacity, dtype="f8", *, max_batch=None, persist=False, mode=0o600):
            return cls(kind, "create", name, capacity, dtype, max_batch, persist, mode)

        create.__func__.__doc__ = create_doc

        @classmethod
        def open(cls, name, dtype=None, *, timeout=None):
            """Open queue ``name`` as a sender. With ``dtype``, a queue of another
            element type raises :class:`shmbatch.TypeMismatch`; without, the queue's
            own is used. ``timeout``: seconds to wait for it to appear."""
            return cls(kind, "open", name, None, dtype, None, False, 0o600, timeout)

        def __reduce__(self):
            return (_reopen, (f"shmbatch.{kind}.Sender", self.name, self._tag))

    class Receiver(_shmbatch.Receiver):
        __slots__ = ()
        __module__ = "shmbatch." + kind
        __doc__ = f"""The receiving end of a {kind.upper()} queue of batches.

        ``recv()`` returns each batch as a new numpy array; ``with rx.recv_view() as
        batch:`` lends it in place, zero copy. ``for batch in rx:`` receives until the
        senders have gone. Blocking calls release the GIL and return to Python for
        Ctrl-C; ``timeout`` is in seconds (``TimeoutError``).
        """

        @classmethod
        def create(cls, name, capacity, dtype="f8", *, max_batch=None, persist=False, mode=0o600):
            return cls(kind, "create", name, capacity, dtype, max_batch, persist, mode)

        create.__func__.__doc__ = create_doc

        @classmethod
        def open(cls, name, dtype=None, *, timeout=None):
            """Open queue ``name`` as a receiver (see ``Sender.open``)."""
            return cls(kind, "open", name, None, dtype, None, False, 0o600, timeout)

        def __reduce__(self):
            return (_reopen, (f"shmbatch.{kind}.Receiver", self.name, self._tag))

    Sender.__qualname__ = Sender.__name__ = "Sender"
    Receiver.__qualname__ = Receiver.__name__ = "Receiver"
    return Sender, Receiver
