"""Type stubs of shmbatch (see the module docstring)."""

from types import TracebackType
from typing import Any, Optional, Tuple, Type, Union

import numpy as np
import numpy.typing as npt

from . import mpmc as mpmc
from . import spsc as spsc
from ._errors import (
    AlreadyAttached as AlreadyAttached,
    Busy as Busy,
    Corrupted as Corrupted,
    Disconnected as Disconnected,
    Empty as Empty,
    Full as Full,
    KindMismatch as KindMismatch,
    RecoveredWarning as RecoveredWarning,
    ShmbatchError as ShmbatchError,
    TooLarge as TooLarge,
    TypeMismatch as TypeMismatch,
    VersionMismatch as VersionMismatch,
)

DTypeLike = Union[str, np.dtype, type]
MAX_NAME_LEN: int

def remove(name: str) -> None:
    """Remove the segment ``name`` (whoever created it)."""

def inspect(name: str) -> dict:
    """What the header of segment ``name`` says: kind, dtype tag, sizes, shape, creator."""

class Recovered:
    """What a writer that died holding the lock left."""

    pid: int
    partial: bool

class Write:
    """The context of :meth:`SharedArray.write`."""

    def __enter__(self) -> np.ndarray: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @property
    def recovered(self) -> Optional[Recovered]:
        """``None``, or what a writer that died holding the lock left."""

class SharedArray:
    """A numpy array of numbers in a named shared-memory segment."""

    @classmethod
    def create(
        cls,
        name: str,
        shape: Union[int, Tuple[int, ...]],
        dtype: DTypeLike = "f8",
        *,
        persist: bool = False,
        mode: int = 0o600,
    ) -> "SharedArray":
        """Create segment ``name`` holding a zeroed array of ``shape`` and ``dtype``."""
    @classmethod
    def create_from(
        cls, name: str, values: npt.NDArray[Any], *, persist: bool = False, mode: int = 0o600
    ) -> "SharedArray":
        """Create segment ``name`` holding a copy of ``values`` (its shape and dtype)."""
    @classmethod
    def open(
        cls, name: str, dtype: Optional[DTypeLike] = None, *, timeout: Optional[float] = None
    ) -> "SharedArray":
        """Open array segment ``name``; ``TypeMismatch`` if ``dtype`` is given and differs."""
    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def __len__(self) -> int: ...
    def write(self, timeout: Optional[float] = None) -> Write:
        """``with a.write() as arr:``: the lock held, ``arr`` a working copy published at a clean exit."""
    def snapshot(self, timeout: Optional[float] = None) -> np.ndarray:
        """A consistent copy, never part of a write."""
    def load(self, i: int) -> Any:
        """Element ``i`` of the flattened array, atomically."""
    def store(self, i: int, value: Any) -> None:
        """Set element ``i`` atomically."""
    def swap(self, i: int, value: Any) -> Any:
        """Set element ``i``, returning the previous value, atomically."""
    def fetch_add(self, i: int, value: Any) -> Any:
        """Add to element ``i`` atomically, returning the previous value."""
    def compare_exchange(self, i: int, current: Any, new: Any) -> Tuple[bool, Any]:
        """Set element ``i`` to ``new`` if it equals ``current``: ``(swapped, previous)``."""
    def unsafe_view(self) -> np.ndarray:
        """The shared memory as a writable array, unsynchronised."""
    def persist(self) -> None:
        """Keep the segment after the creator's handle closes."""
    def close(self) -> None:
        """Close the handle; the creator's removes the segment unless persisted."""
    def __enter__(self) -> "SharedArray": ...
    def __exit__(self, *exc: Any) -> None: ...
