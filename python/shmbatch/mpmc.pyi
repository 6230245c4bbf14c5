"""Stubs of shmbatch.mpmc."""

from ._queue_types import Receiver as Receiver
from ._queue_types import Sender as Sender
from ._queue_types import View as View
