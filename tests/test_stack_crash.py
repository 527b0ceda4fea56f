"""Crash safety: fail or "crash" (with loss of unsynced data) at every syscall of an
addition and of a compaction; the stack stays readable with exactly what was acknowledged."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from stack_helpers import Crash, FaultyOS, add_ref, listed, oid, refs_of, stray_files

from aioreftable import LockError, Stack, StackOptions, init_repo, open_ref_store, open_stack

pytestmark = pytest.mark.anyio

NO_AUTO = StackOptions(auto_compact=False)
ZERO = StackOptions(auto_compact=False, lock_timeout=0)
A, B, C, D = (b"refs/heads/" + n for n in (b"a", b"b", b"c", b"d"))


async def acked(stack: Stack) -> None:
    for i, name in enumerate((A, B)):
        await add_ref(stack, name, oid(i))


async def add_c(stack: Stack) -> None:
    await add_ref(stack, C, oid("c"))


async def compact(stack: Stack) -> None:
    await stack.compact_all()


async def count_syscalls(tmp_path: Path, op: Callable[[Stack], Awaitable[None]]) -> int:
    fs = FaultyOS()
    async with open_stack(tmp_path / "count", NO_AUTO, create=True, fs=fs) as stack:
        await acked(stack)
        fs.arm(None)
        await op(stack)
        return fs.count


async def recover_and_write(d: Path, allowed: set[bytes], required: set[bytes]) -> None:
    """Reopen with the plain OS: readable, the right refs; a left lock is a clear LockError
    and, once removed by hand, the next writer succeeds."""
    async with open_stack(d, ZERO, create=True) as stack:
        refs = set(refs_of(await stack.snapshot()))
        assert required <= refs <= allowed, (refs, os.listdir(d))
        leftover = [n for n in os.listdir(d) if n.endswith(".lock")]
        names = listed(d)
        blocking = [n for n in leftover if n == "tables.list.lock" or n[:-5] in names]
        if blocking:
            with pytest.raises(LockError) as info:
                await stack.compact_all()
                await add_ref(stack, D, oid("d"))
            assert info.value.lock_path is not None
            assert os.path.basename(info.value.lock_path) in blocking
        for name in leftover:  # an operator removes them once no process runs
            os.unlink(d / name)
        await add_ref(stack, D, oid("d"))
        await stack.compact_all()
        assert set(refs_of(await stack.snapshot())) == refs | {D}
    async with open_stack(d, NO_AUTO, create=True) as stack:
        assert set(refs_of(await stack.snapshot())) == refs | {D}


@pytest.mark.parametrize("op_name", ["addition", "addition, list first", "compaction"])
async def test_failure_at_every_syscall(tmp_path: Path, op_name: str) -> None:
    op = compact if op_name == "compaction" else add_c
    total = await count_syscalls(tmp_path, op)
    assert total >= 10
    for k in range(1, total + 1):
        d = tmp_path / f"fail{k}"
        fs = FaultyOS()
        fs.second_first = op_name == "addition, list first"  # the other overlap order
        async with open_stack(d, NO_AUTO, create=True, fs=fs) as stack:
            await acked(stack)
            fs.arm(k, "fail")
            try:
                await op(stack)
            except OSError as exc:
                assert "injected" in str(exc) or exc.errno is not None
            fs.disarm()
            failed = fs.failed_call
            assert failed is not None
            if failed[0] == "unlink" and failed[1].endswith(".lock"):
                # a lock that could not be removed stays, and blocks clearly
                assert stray_files(d) == [failed[1]], (k, fs.calls)
                if failed[1] == "tables.list.lock" or failed[1][: -len(".lock")] in listed(d):
                    with pytest.raises(LockError) as info:
                        await stack.compact_all()
                        await add_ref(stack, D, oid("d"))
                    assert info.value.lock_path == str(d / failed[1])
                # else: the lock of a table already compacted away blocks nothing
                os.unlink(d / failed[1])
            assert stray_files(d) == [], (k, fs.calls)
            await add_ref(stack, D, oid("d"))  # the same stack keeps working
            refs = set(refs_of(await stack.snapshot()))
            assert {A, B, D} <= refs <= {A, B, C, D}, (k, fs.calls)
        async with open_stack(d, NO_AUTO, create=True) as again:
            assert set(refs_of(await again.snapshot())) == refs


@pytest.mark.parametrize("op_name", ["addition", "addition, list first", "compaction"])
async def test_crash_at_every_syscall(tmp_path: Path, op_name: str) -> None:
    op = compact if op_name == "compaction" else add_c
    total = await count_syscalls(tmp_path, op)
    for k in range(1, total + 1):
        d = tmp_path / f"crash{k}"
        fs = FaultyOS()
        fs.second_first = op_name == "addition, list first"  # the other overlap order
        with pytest.raises(Crash):
            async with open_stack(d, NO_AUTO, create=True, fs=fs) as stack:
                await acked(stack)
                fs.arm(k, "crash")
                await op(stack)
        fs.power_loss()
        allowed = {A, B, C} if op is add_c else {A, B}
        await recover_and_write(d, allowed, {A, B})


async def test_unsynced_directory_would_lose_an_acknowledged_addition(tmp_path: Path) -> None:
    """The model has teeth: without the directory fsync, a power cut right after the
    addition returned would lose it. Our additions survive because we fsync it."""

    class NoDirSync(FaultyOS):
        def fsync_dir(self, path: str) -> None:
            self._tick("fsync_dir", path)

    fs = NoDirSync()
    async with open_stack(tmp_path, NO_AUTO, fs=fs) as stack:
        await acked(stack)
    fs.power_loss()
    async with open_stack(tmp_path, NO_AUTO) as stack:
        assert refs_of(await stack.snapshot()) == {}

    fs2 = FaultyOS()
    d = tmp_path / "synced"
    async with open_stack(d, NO_AUTO, create=True, fs=fs2) as stack:
        await acked(stack)
    fs2.power_loss()
    async with open_stack(d, NO_AUTO, create=True) as stack:
        assert set(refs_of(await stack.snapshot())) == {A, B}


# -- leftovers of killed processes (issue 10.9) ----------------------------------------------
WRITER = """
import os, signal, sys
from aioreftable._fs import OS
temp = OS().write_temp_table(sys.argv[1], "0x000000000009-0x000000000009-00000000", b"x", None)
print(os.path.basename(temp.path), flush=True)
if sys.argv[2] == "die":
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind runs
sys.stdin.read()  # alive, holding the temp table open, until stdin closes
"""


async def temp_of_a_process(directory: Path, fate: str) -> tuple[str, Process]:
    """A process that writes a temp table and then dies (SIGKILL) or stays alive."""
    proc = await anyio.open_process([sys.executable, "-c", WRITER, str(directory), fate])
    assert proc.stdout is not None
    out = b""
    while not out.endswith(b"\n"):
        out += await proc.stdout.receive()
    if fate == "die":
        await proc.aclose()  # waits, and closes the pipes
        assert proc.returncode == -signal.SIGKILL
    return out.decode().strip(), proc


def age(path: Path) -> None:
    old = time.time() - 3600
    os.utime(path, (old, old))


async def test_clean_removes_the_temp_tables_of_killed_writers_only(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await acked(stack)
        dead, _ = await temp_of_a_process(tmp_path, "die")
        alive, proc = await temp_of_a_process(tmp_path, "live")
        (tmp_path / "0x1-0x1-00000001.temp.Ab3xYz").touch()  # git's: never ours to judge
        for name in (dead, alive, "0x1-0x1-00000001.temp.Ab3xYz"):
            age(tmp_path / name)
        young, _ = await temp_of_a_process(tmp_path, "die")  # dead, but just written
        assert await stack.clean() == [dead]
        assert stray_files(tmp_path) == sorted([alive, young, "0x1-0x1-00000001.temp.Ab3xYz"])
        assert proc.stdin is not None
        await proc.stdin.aclose()
        await proc.aclose()
        assert proc.returncode == 0
        age(tmp_path / young)
        assert sorted(await stack.clean()) == sorted([alive, young])
        assert stray_files(tmp_path) == ["0x1-0x1-00000001.temp.Ab3xYz"]
        assert set(refs_of(await stack.snapshot())) == {A, B}


async def test_verify_reports_temp_tables_and_pack_refs_removes_ours(tmp_path: Path) -> None:
    await init_repo(tmp_path)
    d = tmp_path / ".git" / "reftable"
    dead, _ = await temp_of_a_process(d, "die")
    age(d / dead)
    (d / "0x1-0x1-00000001.temp.Ab3xYz").touch()
    async with open_ref_store(tmp_path, object_database=False) as store:
        found = [(f.code, f.path) for f in await store.verify()]
        assert found == [
            ("reftableTempFile", dead),
            ("reftableTempFile", "0x1-0x1-00000001.temp.Ab3xYz"),
        ]
        await store.pack_refs()
        found = [(f.code, f.path) for f in await store.verify()]
        assert found == [("reftableTempFile", "0x1-0x1-00000001.temp.Ab3xYz")]
