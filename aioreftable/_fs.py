"""The blocking OS seam of the stack: every syscall the stack makes, one whole unit of work
per public method. Never imports anyio; the async layer calls each unit in one thread hop.

The primitives (``open``, ``write``, ``fsync``, ``rename``, ...) are methods too, so a test can
subclass :class:`OS` and fail or "crash" at any single syscall.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from ._format._blocksource import BytesSource, MmapSource
from ._format._reader import TableReader
from ._format._tables_list import (  # the format lives in the codec; re-exported here
    TABLES_LIST,
    format_table_name,
    parse_tables_list,
    render_tables_list,
)
from ._mapfile import check_regular, map_descriptor

__all__ = [
    "OS",
    "ListHandle",
    "TEMP_GRACE",
    "TEMP_NAME",
    "TempTable",
    "TABLES_LIST",
    "default_mode",
    "format_table_name",
    "parse_tables_list",
    "render_tables_list",
]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block open(); no-op for files
# Python's mmap keeps a duplicate of the descriptor unless told not to (3.13+).


# Our temp tables: git's "<prefix>.temp." then a mark mkstemp's XXXXXX can never produce.
TEMP_MARK = ".temp.aioreftable-"
TEMP_GRACE = 60.0  # seconds a temp table must be unmodified before clean() may judge it
TEMP_NAME = re.compile(r"[0-9a-zA-Z-]{1,80}\.temp\.aioreftable-[0-9a-f]{8}")
READ_TABLES_BELOW = 1 << 16  # bytes: smaller tables are read, not mapped (no descriptor kept)


@dataclass(slots=True)
class TempTable:
    """A temp table written and still open (holding its flock) until renamed or dropped;
    ``fd`` is -1 once dropped."""

    path: str
    fd: int


@dataclass(frozen=True, slots=True)
class ListHandle:
    """The open descriptor of the tables.list instance last read, and its (st_dev, st_ino).

    Keeping it open pins the inode, so its number cannot be recycled for a newer list
    (git 4f36b8597c). ``key`` is None where the OS reports no inode numbers."""

    fd: int
    key: tuple[int, int] | None


class OS:
    """All blocking file operations of a stack. Methods are thread-safe; no state."""

    # -- primitives: one syscall each, overridable by fault-injecting subclasses ----------
    def open(self, path: str, flags: int, mode: int = 0o666) -> int:
        return os.open(path, flags | _O_CLOEXEC, mode)

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def read_fd(self, fd: int) -> bytes:
        size = os.fstat(fd).st_size
        chunks: list[bytes] = []
        offset = 0
        while True:
            chunk = os.pread(fd, max(size - offset, 65536), offset)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            offset += len(chunk)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def open_table(self, path: str) -> TableReader:
        """Open a whole table: only a regular file (see :meth:`open_regular`). A table
        under 64 KiB (most of a geometric stack) is read into memory; a larger one is
        mapped, as git does. The descriptor is closed at once, but before Python 3.13 a
        mapping keeps a duplicate of it until the table is closed."""
        fd, size = self.open_regular(path)
        source: BytesSource | MmapSource
        try:
            if size < READ_TABLES_BELOW:
                source = _ReadTable(self.read_fd(fd))
            else:
                source = MmapSource.from_map(map_descriptor(fd, size), size)
        finally:
            self.close(fd)
        try:
            return TableReader(source, name=path)
        except BaseException:
            source.close()
            raise

    def open_regular(self, path: str) -> tuple[int, int]:
        """Open a file of the stack for reading without blocking, whatever it is; return
        the descriptor and size of a regular file. A directory is IsADirectoryError, any
        other kind of file (a FIFO, a device) FormatError, both naming ``path``."""
        fd = self.open(path, os.O_RDONLY | _O_NONBLOCK)
        try:
            st = self.fstat(fd)
            check_regular(st.st_mode, path)
        except BaseException:
            self.close_quietly(fd)
            raise
        return fd, st.st_size

    # -- units of work ---------------------------------------------------------------------
    def unlink_quietly(self, path: str) -> bool:
        """Remove a file, ignoring every OS error (git ignores unlink failures)."""
        try:
            self.unlink(path)
        except OSError:
            return False
        return True

    def close_quietly(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            self.close(fd)

    def try_create_lock(self, path: str, mode: int | None) -> int | None:
        """Create ``path`` with O_CREAT|O_EXCL (symlinks not followed) and return its fd;
        None if it already exists. ``mode`` (git's default_permissions) is applied by chmod."""
        try:
            fd = self.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o666)
        except FileExistsError:
            return None
        if mode is not None:
            try:
                self.chmod(path, mode)
            except BaseException:
                self.close_quietly(fd)
                self.unlink_quietly(path)
                raise
        return fd

    def release_lock(self, fd: int | None, path: str) -> None:
        """Roll a lock back: close its descriptor and delete the file. A lock that cannot
        be deleted is an error: it would block every writer, so it must not go unnoticed."""
        if fd is not None:
            self.close_quietly(fd)
        with contextlib.suppress(FileNotFoundError):
            self.unlink(path)

    def release_locks(self, paths: Sequence[str]) -> None:
        """Release several locks; every one is tried, the first failure is raised."""
        error: OSError | None = None
        for path in paths:
            try:
                self.release_lock(None, path)
            except OSError as exc:
                error = error or exc
        if error is not None:
            raise error

    def lock_tables(self, paths: Sequence[str], mode: int | None) -> tuple[list[str], bool]:
        """Lock tables in the given order (newest first) with ``<table>.lock``, no waiting.

        Stops at the first lock held by someone else. Returns the lock paths taken and
        whether every table was locked. Each lock's fd is closed at once (git does this so
        that large ranges do not exhaust descriptors)."""
        taken: list[str] = []
        try:
            for table_path in paths:
                lock_path = table_path + ".lock"
                fd = self.try_create_lock(lock_path, mode)
                if fd is None:
                    return taken, False
                taken.append(lock_path)
                self.close(fd)
        except BaseException:
            for lock_path in taken:
                self.unlink_quietly(lock_path)
            raise
        return taken, True

    def write_temp_table(
        self, directory: str, prefix: str, data: bytes, mode: int | None
    ) -> TempTable:
        """Write a table to ``<prefix>.temp.aioreftable-XXXXXXXX`` (created 0600 like
        mkstemp), fsync it and chmod it to ``mode``. The file stays open and flock-ed
        until :meth:`drop_temp` (after its rename, or instead of it): that is how
        :meth:`remove_abandoned_temps` tells a live writer's file from a dead one's."""
        while True:
            path = os.path.join(directory, f"{prefix}{TEMP_MARK}{secrets.token_hex(4)}")
            try:
                fd = self.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            break
        try:
            self.flock(fd, blocking=True)  # our new file: nobody else holds it (or no flock)
            self.write(fd, data)
            self.fsync(fd)
            if mode is not None:
                self.chmod(path, mode)
        except BaseException:
            self.unlink_quietly(path)
            self.close_quietly(fd)
            raise
        return TempTable(path, fd)

    def drop_temp(self, temp: TempTable, *, unlink: bool) -> None:
        """Release a temp table: unlink it (unless it was renamed), then close it (which
        drops the flock). Only the first call does anything."""
        fd, temp.fd = temp.fd, -1
        if fd < 0:
            return
        if unlink:
            self.unlink_quietly(temp.path)
        self.close_quietly(fd)

    def install_table(
        self, directory: str, prefix: str, name: str, data: bytes, mode: int | None
    ) -> str:
        """Write a table via a temp file and rename it to ``name``; returns the final path."""
        temp = self.write_temp_table(directory, prefix, data, mode)
        final = os.path.join(directory, name)
        try:
            self.rename(temp.path, final)
        except BaseException:
            self.drop_temp(temp, unlink=True)
            raise
        self.drop_temp(temp, unlink=False)
        return final

    def flock(self, fd: int, *, blocking: bool) -> bool:
        """An exclusive flock on ``fd``; False if another open file holds one (only when
        not ``blocking``) or if the OS or file system cannot lock (no flock, ENOLCK):
        then nothing is proven, and a writer goes on without the lock."""
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError:
            return False
        return True

    def remove_abandoned_temps(self, directory: str, now: float, grace: float) -> list[str]:
        """Delete the temp tables of aioreftable writers that died: names ending in
        ``.temp.aioreftable-`` + 8 hex digits, regular files, not modified for ``grace``
        seconds before ``now``, whose flock nobody holds (a live writer holds it from
        creation to rename; the kernel drops it when the process dies). Without flock
        nothing is proven and nothing is deleted. Returns the names deleted."""
        if fcntl is None:
            return []
        removed = []
        for name in sorted(self.listdir(directory)):
            if not TEMP_NAME.fullmatch(name):
                continue
            path = os.path.join(directory, name)
            try:
                fd = self.open(path, os.O_RDONLY | _O_NONBLOCK | _O_NOFOLLOW)
            except OSError:
                continue  # gone meanwhile, or a symlink
            try:
                st = self.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < grace:
                    continue
                if self.flock(fd, blocking=False) and self.unlink_quietly(path):
                    removed.append(name)
            finally:
                self.close_quietly(fd)
        return removed

    def commit_tables_list(
        self, lock_fd: int, lock_path: str, list_path: str, names: Sequence[str]
    ) -> ListHandle:
        """Write the complete list into the lock file, fsync it and rename it over
        tables.list. The lock fd stays open and becomes the handle of the new list.

        The rename is the last step: if this raises, tables.list is unchanged."""
        self.write_tables_list(lock_fd, names)
        return self.install_tables_list(lock_fd, lock_path, list_path)

    def write_tables_list(self, lock_fd: int, names: Sequence[str]) -> None:
        """The first half of a commit: the complete list into the lock file, fsynced."""
        self.write(lock_fd, render_tables_list(names))
        self.fsync(lock_fd)

    def install_tables_list(self, lock_fd: int, lock_path: str, list_path: str) -> ListHandle:
        """The second half: rename the written lock file over tables.list (the commit)."""
        handle = ListHandle(lock_fd, stat_key(self.fstat(lock_fd)))
        self.rename(lock_path, list_path)
        return handle

    def concurrently(self, first: Callable[[], T], second: Callable[[], None]) -> T:
        """Run two independent units at the same time (``second`` in a helper thread), so
        that their fsyncs overlap on the disk; both have finished when this returns. The
        error of ``first``, else of ``second``, is raised."""
        future = _helpers().submit(second)
        try:
            result = first()
        finally:
            # wait even if first() failed: second must not outlive its caller's cleanup
            error = future.exception()
        if error is not None:
            raise error
        return result

    def read_tables_list(self, list_path: str) -> tuple[list[str], ListHandle | None]:
        """Read tables.list and keep it open. A missing file is an empty stack (no handle)."""
        try:
            fd, _ = self.open_regular(list_path)
        except FileNotFoundError:
            return [], None
        try:
            key = stat_key(self.fstat(fd))
            names = parse_tables_list(self.read_fd(fd), list_path)
        except BaseException:
            self.close_quietly(fd)
            raise
        return names, ListHandle(fd, key)

    def read_names(self, list_path: str) -> list[str]:
        """Read tables.list without keeping it open."""
        names, handle = self.read_tables_list(list_path)
        if handle is not None:
            self.close_quietly(handle.fd)
        return names

    def list_key(self, list_path: str) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the tables.list path; None if it is missing."""
        try:
            return stat_key(self.stat(list_path))
        except FileNotFoundError:
            return None

    def open_tables(self, directory: str, names: Sequence[str]) -> list[TableReader]:
        """Open (mmap) the named tables. A vanished table raises FileNotFoundError; the
        tables opened so far are closed again."""
        readers: list[TableReader] = []
        try:
            for name in names:
                readers.append(self.open_table(os.path.join(directory, name)))
        except BaseException:
            for reader in readers:
                reader.close()
            raise
        return readers

    def ensure_dir(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def dir_key(self, path: str) -> tuple[int, int] | None:
        """(st_dev, st_ino) of the stack directory. A missing directory raises
        FileNotFoundError, anything else NotADirectoryError, both naming ``path``."""
        st = self.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return stat_key(st)

    def table_files(self, directory: str) -> list[str]:
        """Names in the stack directory that end in ``.ref`` (candidates for cleaning)."""
        return sorted(n for n in self.listdir(directory) if n.endswith(".ref"))


class _ReadTable(BytesSource):
    """A small table read into memory; like a mapping, unusable once closed."""

    __slots__ = ("_open",)

    def __init__(self, data: bytes):
        super().__init__(data)
        self._open = True

    def read(self, offset: int, length: int) -> bytes:
        if not self._open:
            raise ValueError("read from a closed table")
        return super().read(offset, length)

    def close(self) -> None:
        self._open = False
        self._data = b""


T = TypeVar("T")
_HELPERS: list[ThreadPoolExecutor] = []
_HELPERS_LOCK = threading.Lock()


def _helpers() -> ThreadPoolExecutor:
    """The process's pool for the second half of :meth:`OS.concurrently` (created lazily;
    its jobs never wait on anything, so a bounded pool cannot deadlock)."""
    with _HELPERS_LOCK:
        if not _HELPERS:
            _HELPERS.append(ThreadPoolExecutor(8, thread_name_prefix="aioreftable-fsync"))
        return _HELPERS[0]


def stat_key(st: os.stat_result) -> tuple[int, int] | None:
    if not st.st_dev and not st.st_ino:
        return None
    return (st.st_dev, st.st_ino)


def default_mode() -> int:
    """git's default permissions without core.sharedRepository: ``0666 & ~umask``.

    Linux reports the umask in /proc; elsewhere it can only be read by setting it, which is
    why the stack calls this once when it opens, not per file."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
