"""Block sources: random access to a table's bytes, from memory or an mmap'ed file."""

from __future__ import annotations

import contextlib
import mmap
import os
from typing import Protocol, runtime_checkable

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
    """A table file mapped whole. Our descriptor is closed right after mapping (as git does),
    but before Python 3.13 ``mmap`` keeps a duplicate of it until the map is closed, so each
    mapped table holds one descriptor; the OS seam reads small tables instead of mapping.

    This is pure file access, not the OS seam: mapping does not block on the event loop
    in practice, and page faults happen inside sync read methods, as in git.
    """

    __slots__ = ("_map", "_size")

    def __init__(self, path: str | os.PathLike[str]):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
            self._map: mmap.mmap | None = (
                mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else None
            )
        finally:
            os.close(fd)
        self._size = size

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
