"""Plain helpers for the stack tests: ids, one-ref additions, a fault-injecting OS seam,
and a worker entry point for the multi-process tests (``python stack_helpers.py ...``)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aioreftable._format._reader import TableReader
from aioreftable._fs import OS, TempTable
from aioreftable.lowlevel import SHA1, HashAlgorithm, LogRecord, RefRecord


def oid(n: int | str, algorithm: HashAlgorithm = SHA1) -> bytes:
    """A deterministic object id for ``n``."""
    return hashlib.sha256(str(n).encode()).digest()[: algorithm.size]


async def add_ref(stack: Any, name: bytes, value: bytes, *, log: bool = False) -> int:
    """Commit one VAL1 ref (and optionally a reflog entry) in its own addition."""
    async with stack.addition() as add:
        ui = add.update_index
        add.writer.add_ref(RefRecord.val1(name, ui, value))
        if log:
            add.writer.add_log(
                LogRecord(name, ui, old_id=bytes(len(value)), new_id=value, name=b"T",
                          email=b"t@example.com", time=1_700_000_000 + ui, message=b"msg")
            )  # fmt: skip
        return int(ui)


def refs_of(snapshot: Any) -> dict[bytes, bytes]:
    return {r.refname: r.value for r in snapshot.iter_refs(b"")}


def stray_files(directory: str | os.PathLike[str]) -> list[str]:
    """Lock and temp files left in a stack directory."""
    return sorted(n for n in os.listdir(directory) if n.endswith(".lock") or ".temp." in n)


def listed_bytes(directory: str | os.PathLike[str]) -> int:
    """The total size of the tables in tables.list."""
    return sum(os.path.getsize(os.path.join(directory, n)) for n in listed(directory))


def listed(directory: str | os.PathLike[str]) -> list[str]:
    path = os.path.join(directory, "tables.list")
    if not os.path.exists(path):
        return []
    return [n for n in Path(path).read_text().split("\n") if n]


T = TypeVar("T")


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
    directory fsync."""

    def __init__(self) -> None:
        self.armed = False
        self.fail_at: int | None = None
        self.mode = "fail"
        self.error: OSError = OSError(errno.ENOSPC, "No space left on device (injected)")
        self.only: set[str] | None = None
        self.count = 0
        self.calls: list[str] = []
        self.failed_call: tuple[str, str] | None = None
        self.dead = False
        self._fd_path: dict[int, str] = {}
        self._dirty: dict[str, bytes] = {}  # path -> content at its last fsync
        self._journal = _Journal()
        self.second_first = False  # the order of OS.concurrently's two halves

    def arm(
        self, fail_at: int | None, mode: str = "fail", only: Iterable[str] | None = None
    ) -> None:
        self.armed, self.fail_at, self.mode = True, fail_at, mode
        self.only = set(only) if only is not None else None
        self.count = 0
        self.calls = []

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


# -- worker processes ------------------------------------------------------------------------
async def _worker(role: str, directory: str, ident: str, count: int) -> None:
    import anyio

    from aioreftable import LockError, StackOptions, open_stack

    options = StackOptions(lock_timeout=60.0)
    async with open_stack(directory, options) as stack:
        if role == "writer":
            for i in range(count):
                name = f"refs/heads/{ident}-{i}".encode()
                await add_ref(stack, name, oid(name.decode()))
        elif role == "compactor":
            for _ in range(count):
                with contextlib.suppress(LockError):
                    await stack.compact_all()
                await anyio.sleep(0.01)
        elif role == "reader":
            seen = 0
            for _ in range(count):
                snap = await stack.snapshot()
                refs = list(snap.iter_refs(b"refs/heads/"))
                names = [r.refname for r in refs]
                assert names == sorted(names), "torn read: refs out of order"
                for r in refs:
                    assert r.value == oid(r.refname.decode()), f"torn read: {r.refname!r}"
                assert len(refs) >= seen, f"went backwards: {len(refs)} < {seen}"
                seen = len(refs)
                await anyio.sleep(0.005)
        await stack.wait_idle()


def main(argv: list[str]) -> None:
    import anyio

    role, directory, ident, count = argv[0], argv[1], argv[2], int(argv[3])
    backend = argv[4] if len(argv) > 4 else "asyncio"
    anyio.run(_worker, role, directory, ident, count, backend=backend)


if __name__ == "__main__":
    main(sys.argv[1:])


class PausingOS(OS):
    """Holds the next compaction of two or more update indexes (once per arming) after its
    temp table is written, with the table locks held; tests release it with ``resume``.
    Additions (one update index each) pass through unpaused."""

    def __init__(self) -> None:
        self.armed = False
        self.paused = threading.Event()
        self.resume = threading.Event()

    def write_temp_table(
        self, directory: str, prefix: str, data: bytes, mode: int | None
    ) -> TempTable:
        temp = super().write_temp_table(directory, prefix, data, mode)
        lo, hi = (int(part, 16) for part in prefix.split("-")[:2])
        if self.armed and lo < hi:
            self.armed = False
            self.paused.set()
            self.resume.wait(30)
        return temp


class HoldingOS(OS):
    """Holds the next call of one unit of work open until ``resume`` is set: ``"commit"``
    (``install_tables_list``, inside tables.list.lock) or ``"lock_tables"`` (a compaction
    locking its tables, also inside tables.list.lock). Arm it with :meth:`hold`."""

    def __init__(self) -> None:
        self.unit: str | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()

    def hold(self, unit: str) -> None:
        self.paused.clear()
        self.resume.clear()
        self.unit = unit

    def _maybe_pause(self, unit: str) -> None:
        if self.unit == unit:
            self.unit = None
            self.paused.set()
            self.resume.wait(30)

    def install_tables_list(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_pause("commit")
        return super().install_tables_list(*args, **kwargs)

    def lock_tables(self, *args: Any, **kwargs: Any) -> Any:
        self._maybe_pause("lock_tables")
        return super().lock_tables(*args, **kwargs)


async def until(event: threading.Event) -> None:
    """Wait (in a worker thread, at most 10 s) until a threading.Event is set."""
    import anyio.to_thread

    assert await anyio.to_thread.run_sync(event.wait, 10.0), "the seam never paused"


@contextlib.contextmanager
def unblock_after(fifo: str | os.PathLike[str], seconds: float = 5.0) -> Iterator[None]:
    """Guard against a regression hanging the suite: after ``seconds`` open the FIFO for
    writing, which ends a blocked open() for reading (the test then fails, not hangs)."""
    done = threading.Event()

    def guard() -> None:
        if not done.wait(seconds):
            fd = os.open(fifo, os.O_WRONLY)
            os.close(fd)

    thread = threading.Thread(target=guard, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
