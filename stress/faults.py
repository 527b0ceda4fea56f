"""The fault-injecting OS seam (a subclass of the public ``aioreftable.OS``): fail or
"crash" at the k-th primitive, drop unsynced writes (a power cut), slow fsync, EINTR, ENOSPC.

Used by the crash-point sweep (``stress/sweep.py``) and by the test suite's crash tests
(``tests/stack_helpers.py`` imports it from here: one model of a crash in one place)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aioreftable import OS
from aioreftable.lowlevel import TableReader

T = TypeVar("T")


def enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device (injected)")


def eintr() -> OSError:
    return OSError(errno.EINTR, "Interrupted system call (injected)")


class Crash(BaseException):
    """A simulated power cut: nothing after it runs (not even cleanup)."""


@dataclass
class _Journal:
    """Directory operations since the last directory fsync, to undo on power loss."""

    ops: list[tuple[Any, ...]] = field(default_factory=list)


class FaultyOS(OS):
    """The OS seam with a fault at the ``fail_at``-th primitive after :meth:`arm`.

    ``mode="fail"`` raises ``error`` there (and carries on normally afterwards);
    ``mode="crash"`` raises :class:`Crash` there and at every later call (but ``close``),
    and :meth:`power_loss` then drops what was not made durable: file data written since
    its last fsync, and directory entries created, renamed or removed since the last
    directory fsync. ``fsync_delay`` (seconds) makes every fsync slow (a busy disk).

    The model assumes one process: the journal and the unsynced contents are those this
    seam saw, so a power cut undoes exactly the writes of the store it was given to."""

    def __init__(self) -> None:
        self.armed = False
        self.fail_at: int | None = None
        self.mode = "fail"
        self.error: OSError = enospc()
        self.only: set[str] | None = None
        self.count = 0
        self.calls: list[str] = []
        self.failed_call: tuple[str, str] | None = None
        self.dead = False
        self.fsync_delay = 0.0
        self._fd_path: dict[int, str] = {}
        self._dirty: dict[str, bytes] = {}  # path -> content at its last fsync
        self._journal = _Journal()
        self.second_first = False  # the order of OS.concurrently's two halves

    def arm(
        self,
        fail_at: int | None,
        mode: str = "fail",
        only: Iterable[str] | None = None,
        error: OSError | None = None,
    ) -> None:
        self.armed, self.fail_at, self.mode = True, fail_at, mode
        self.only = set(only) if only is not None else None
        if error is not None:
            self.error = error
        self.count = 0
        self.calls = []
        self.failed_call = None

    def disarm(self) -> None:
        self.armed = False

    def _tick(self, op: str, detail: str = "") -> None:
        if self.dead:
            raise Crash(f"{op} after the crash")
        if not self.armed or (self.only is not None and op not in self.only):
            return
        self.count += 1
        self.calls.append(f"{op} {os.path.basename(detail)}")
        if self.count == self.fail_at:
            self.failed_call = (op, os.path.basename(detail))
            if self.mode == "crash":
                self.dead = True
                raise Crash(f"crash at {op} {detail}")
            raise OSError(self.error.errno, self.error.strerror)

    # -- primitives --------------------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0o666) -> int:
        self._tick("open", path)
        existed = os.path.exists(path)
        fd = super().open(path, flags, mode)
        self._fd_path[fd] = path
        if flags & os.O_CREAT and not existed:
            self._journal.ops.append(("create", path))
            self._dirty.setdefault(path, b"")
        return fd

    def write(self, fd: int, data: bytes) -> None:
        self._tick("write", self._fd_path.get(fd, ""))
        path = self._fd_path.get(fd)
        if path is not None and path not in self._dirty:
            self._dirty[path] = Path(path).read_bytes()
        super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._tick("fsync", self._fd_path.get(fd, ""))
        if self.fsync_delay:
            time.sleep(self.fsync_delay)  # in the seam's worker thread, like a real fsync
        super().fsync(fd)
        self._dirty.pop(self._fd_path.get(fd, ""), None)

    def close(self, fd: int) -> None:
        path = self._fd_path.pop(fd, "")
        if self.dead:
            super().close(fd)
            return
        super().close(fd)
        self._tick("close", path)

    def rename(self, src: str, dst: str) -> None:
        self._tick("rename", dst)
        old = Path(dst).read_bytes() if os.path.exists(dst) else None
        super().rename(src, dst)
        self._journal.ops.append(("rename", src, dst, old))
        for fd, path in self._fd_path.items():
            if path == src:
                self._fd_path[fd] = dst
        if src in self._dirty:
            self._dirty[dst] = self._dirty.pop(src)

    def unlink(self, path: str) -> None:
        self._tick("unlink", path)
        content = Path(path).read_bytes() if os.path.isfile(path) else None
        super().unlink(path)
        self._journal.ops.append(("unlink", path, content))
        self._dirty.pop(path, None)

    def chmod(self, path: str, mode: int) -> None:
        self._tick("chmod", path)
        super().chmod(path, mode)

    def fstat(self, fd: int) -> os.stat_result:
        self._tick("fstat", self._fd_path.get(fd, ""))
        return super().fstat(fd)

    def stat(self, path: str) -> os.stat_result:
        self._tick("stat", path)
        return super().stat(path)

    def read_fd(self, fd: int) -> bytes:
        self._tick("read", self._fd_path.get(fd, ""))
        return super().read_fd(fd)

    def listdir(self, path: str) -> list[str]:
        self._tick("listdir", path)
        return super().listdir(path)

    def fsync_dir(self, path: str) -> None:
        self._tick("fsync_dir", path)
        if self.fsync_delay:
            time.sleep(self.fsync_delay)
        super().fsync_dir(path)
        self._journal.ops.clear()

    def open_table(self, path: str) -> TableReader:
        self._tick("open_table", path)
        return super().open_table(path)

    def concurrently(self, first: Callable[[], T], second: Callable[[], None]) -> T:
        """Sequentially (``second`` first when ``second_first``), so that the k-th syscall
        is the same in every run; errors as the real one reports them. A crash stops all."""
        outcome: dict[str, Any] = {}
        for label, fn in sorted((("first", first), ("second", second)), reverse=self.second_first):
            try:
                outcome[label] = fn()
            except Crash:
                raise
            except BaseException as exc:
                outcome[label + " error"] = exc
        for key in ("first error", "second error"):
            if key in outcome:
                raise outcome[key]
        return outcome["first"]  # type: ignore[no-any-return]

    # -- the aftermath -----------------------------------------------------------------
    def power_loss(self) -> None:
        """Undo what a power cut would lose (call after a Crash)."""
        for path, content in self._dirty.items():
            if os.path.exists(path):
                Path(path).write_bytes(content)
        self._dirty.clear()
        for op in reversed(self._journal.ops):
            if op[0] == "create":
                if os.path.exists(op[1]):
                    os.unlink(op[1])
            elif op[0] == "rename":
                _, src, dst, old = op
                if os.path.exists(dst):
                    os.rename(dst, src)
                if old is not None:
                    Path(dst).write_bytes(old)
            elif op[0] == "unlink":
                _, path, content = op
                if content is not None:
                    Path(path).write_bytes(content)
        self._journal.ops.clear()
