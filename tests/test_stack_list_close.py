"""The replaced tables.list descriptor is closed in the worker thread that replaced it
(the last close of a renamed-over file frees its inode: milliseconds), never on the loop."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from stack_helpers import add_ref, oid

from aioreftable import StackOptions, open_stack
from aioreftable._fs import OS

pytestmark = pytest.mark.anyio

NO_AUTO = StackOptions(auto_compact=False)


class RecordingOS(OS):
    """Records the thread of every descriptor close."""

    def __init__(self) -> None:
        super().__init__()
        self.closes: list[int] = []  # thread idents

    def close(self, fd: int) -> None:
        self.closes.append(threading.get_ident())
        super().close(fd)


def list_descriptors(directory: Path) -> int:
    """How many of this process's descriptors are open on a tables.list of ``directory``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory / "tables.list")):
            count += 1
    return count


async def test_replaced_list_descriptors_close_off_the_loop(tmp_path: Path) -> None:
    loop_thread = threading.get_ident()
    fs = RecordingOS()
    async with open_stack(tmp_path, NO_AUTO, create=True, fs=fs) as stack:
        async with open_stack(tmp_path, NO_AUTO) as other:
            for i in range(5):  # additions: the new list replaces ours
                await add_ref(stack, b"refs/heads/a%d" % i, oid(i))
            for i in range(3):  # another writer: our reads reload
                await add_ref(other, b"refs/heads/b%d" % i, oid(i))
                snap = await stack.snapshot()
                assert snap.ref(b"refs/heads/b%d" % i) is not None
            assert await stack.compact_all()  # a compaction's list replaces ours
            await add_ref(other, b"refs/heads/c", oid(9))
            async with stack.addition() as add:  # a reload under the lock (writes nothing)
                assert add.snapshot.ref(b"refs/heads/c") is not None
        assert len(fs.closes) >= 5 + 3 + 1 + 1
        assert loop_thread not in fs.closes
        assert list_descriptors(tmp_path) == 1  # ours, still open: no leak
    assert list_descriptors(tmp_path) == 0
