"""Plain helpers for the stack tests: ids, one-ref additions, seams that pause (the
fault-injecting one is stress/faults.py, re-exported here), and a worker entry point
for the multi-process tests (``python stack_helpers.py ...``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aioreftable._fs import OS, TempTable
from aioreftable.lowlevel import SHA1, HashAlgorithm, LogRecord, RefRecord

# The fault-injecting seam lives in the harness (stress/faults.py, public API only), a
# top-level package of the checkout: found from here whether pytest imports this module
# or a multi-process test runs it as a script.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from stress.faults import Crash as Crash  # noqa: E402
from stress.faults import FaultyOS as FaultyOS  # noqa: E402


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
