"""Several OS processes append, compact and read one stack: nothing lost, nothing torn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from stack_helpers import oid, refs_of, stray_files

from aioreftable import StackOptions, open_stack

pytestmark = pytest.mark.anyio

HELPER = str(Path(__file__).with_name("stack_helpers.py"))


async def run_workers(directory: Path, roles: list[tuple[str, str, int]], backend: str) -> None:
    async def one(role: str, ident: str, count: int) -> None:
        cmd = [sys.executable, HELPER, role, str(directory), ident, str(count), backend]
        result = await anyio.run_process(cmd, check=False)
        assert result.returncode == 0, f"{role} {ident}: {result.stderr.decode()[-2000:]}"

    async with anyio.create_task_group() as tg:
        for role, ident, count in roles:
            tg.start_soon(one, role, ident, count)


async def test_processes_append_compact_and_read(tmp_path: Path, anyio_backend: str) -> None:
    writers, per_writer = 3, 25
    roles = [("writer", f"w{i}", per_writer) for i in range(writers)]
    roles += [("compactor", "c0", 15), ("reader", "r0", 60), ("reader", "r1", 60)]
    await run_workers(tmp_path, roles, anyio_backend)
    async with open_stack(tmp_path, StackOptions(auto_compact=False)) as stack:
        refs = refs_of(await stack.snapshot())
        expected = {
            f"refs/heads/w{w}-{i}".encode() for w in range(writers) for i in range(per_writer)
        }
        assert set(refs) == expected
        assert all(value == oid(name.decode()) for name, value in refs.items())
        snap = await stack.snapshot()
        assert [r.max_update_index for r in snap.readers] == sorted(
            r.max_update_index for r in snap.readers
        )
        assert snap.max_update_index == writers * per_writer
    assert stray_files(tmp_path) == []


def test_worker_reports_torn_reads(tmp_path: Path) -> None:
    """The reader role really checks: a wrong value makes the worker fail."""
    import anyio as _anyio

    from aioreftable.lowlevel import RefRecord

    async def plant() -> None:
        async with open_stack(tmp_path) as stack, stack.addition() as add:
            add.writer.add_ref(RefRecord.val1(b"refs/heads/x-0", add.update_index, oid("wrong")))

    _anyio.run(plant)
    cmd = [sys.executable, HELPER, "reader", str(tmp_path), "r", "1"]
    result = subprocess.run(cmd, capture_output=True, check=False)
    assert result.returncode != 0 and b"torn read" in result.stderr
