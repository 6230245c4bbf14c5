"""Multi-producer multi-consumer queues of batches: any number of senders and
receivers, in any processes. Each batch goes to one receiver.

``capacity`` is the number of slots; each slot holds one batch of up to
``max_batch`` elements (256 unless given).
"""

from ._queues import make

__all__ = ["Sender", "Receiver"]

Sender, Receiver = make("mpmc", "``capacity`` slots of up to ``max_batch`` elements (default 256)")
