"""Single-producer single-consumer queues of batches: one sender, one receiver.

Batches of any length up to ``max_batch`` go in a byte ring; each arrives whole,
in order, as one contiguous array. ``capacity`` is in elements.
"""

from ._queues import make

__all__ = ["Sender", "Receiver"]

Sender, Receiver = make("spsc", "a ring of ``capacity`` elements")
