"""Block sources: random access to a table's bytes, from memory or a mapped file."""

from __future__ import annotations

import contextlib
import mmap
import os
from typing import Protocol, runtime_checkable

from .._mapfile import map_path

__all__ = ["BlockSource", "BytesSource", "MmapSource"]


@runtime_checkable
class BlockSource(Protocol):
    """Random read access to one table file."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer at the end of the source)."""
        ...

    def close(self) -> None: ...


class BytesSource:
    """A table held in memory."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes | bytearray | memoryview):
        self._data = bytes(data)

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]

    def close(self) -> None:
        pass


class MmapSource:
    """A table file mapped whole. The codec does not open files: ``MmapSource(path)`` asks
    the OS seam (:mod:`aioreftable._mapfile`) to open, map and close the file, and
    :meth:`from_map` takes a map someone else made. Before Python 3.13 ``mmap`` keeps a
    duplicate of the descriptor until the map is closed, so each mapped table holds one
    descriptor; the stack's seam reads small tables instead of mapping them.

    Page faults happen inside the sync read methods, as in git.
    """

    __slots__ = ("_map", "_size")

    def __init__(self, path: str | os.PathLike[str]):
        self._map, self._size = map_path(path)

    @classmethod
    def from_map(cls, mapped: mmap.mmap | None, size: int) -> MmapSource:
        """A source over a read-only map of ``size`` bytes (None for an empty file); the
        source owns the map and closes it."""
        return _AdoptedMap(mapped, size)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        m = self._map
        if m is None:
            if self._size:
                raise ValueError("read from a closed MmapSource")
            return b""
        return m[offset : offset + length]

    def close(self) -> None:
        m, self._map = self._map, None
        if m is not None:
            with contextlib.suppress(BufferError):  # a view still exports it; GC unmaps
                m.close()


class _AdoptedMap(MmapSource):
    """An :class:`MmapSource` over a map that someone else made (``MmapSource.from_map``)."""

    __slots__ = ()

    def __init__(self, mapped: mmap.mmap | None, size: int):
        self._map, self._size = mapped, size
