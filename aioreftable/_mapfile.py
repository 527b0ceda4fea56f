"""The OS seam's file mapping: open a file read-only and map it whole (no anyio, no codec).

It sits below the codec so that the codec's path conveniences (``TableReader.from_path``,
``MmapSource(path)``) go through the seam instead of opening files themselves; the stack's
seam (``_fs``) maps the descriptors it has checked with :func:`map_descriptor`.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import sys

from ._errors import FormatError

__all__ = ["check_regular", "map_descriptor", "map_path"]

# Python 3.13 can map without keeping a duplicate of the descriptor open.
_NO_FD: dict[str, bool] = {"trackfd": False} if sys.version_info >= (3, 13) else {}
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO's open would wait for a writer
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def map_descriptor(fd: int, size: int) -> mmap.mmap | None:
    """Map ``size`` bytes of an open descriptor read-only; None for an empty file (which
    cannot be mapped). The caller still owns and closes ``fd``."""
    return mmap.mmap(fd, size, access=mmap.ACCESS_READ, **_NO_FD) if size else None


def check_regular(mode: int, path: str | os.PathLike[str]) -> None:
    """The one rule for what may be read as a table: a regular file. A directory is
    IsADirectoryError, any other kind of file (a FIFO, a device) FormatError, both naming
    ``path`` (the stack's seam applies it to the descriptors it opens, too)."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    if not stat.S_ISREG(mode):
        raise FormatError("not a regular file", path=os.fspath(path))


def map_path(path: str | os.PathLike[str]) -> tuple[mmap.mmap | None, int]:
    """Open ``path`` read-only, map it whole and close the descriptor (as git does):
    the map (None when empty) and the file's size. OS errors pass through unwrapped.
    The open never blocks (a FIFO's would wait for a writer); what is not a regular file
    is refused by :func:`check_regular`."""
    fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
        check_regular(st.st_mode, path)
        return map_descriptor(fd, st.st_size), st.st_size
    finally:
        os.close(fd)
