"""``open_ref_store(fs=...)``: every stack the store opens goes through the given OS seam
(``aioreftable.OS``), so a subclass can inject faults (the stress harness's sweep does)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import aioreftable

pytestmark = pytest.mark.anyio


class CountingOS(aioreftable.OS):
    """Counts fsyncs; fails the ``fail_at``-th one with ENOSPC when set."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fsyncs: list[int] = []
        self.fail_at = fail_at

    def fsync(self, fd: int) -> None:
        self.fsyncs.append(fd)
        if len(self.fsyncs) == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        super().fsync(fd)


async def test_a_commit_goes_through_the_given_seam(tmp_path: Path) -> None:
    await aioreftable.init_repo(tmp_path / "r")
    fs = CountingOS()
    async with aioreftable.open_ref_store(tmp_path / "r", object_database=False, fs=fs) as store:
        async with store.transaction(message="x") as tx:
            tx.create("refs/heads/a", "1" * 40)
        assert len(fs.fsyncs) >= 2  # the new table and tables.list (git fsyncs both)
    async with aioreftable.open_ref_store(tmp_path / "r", object_database=False) as store:
        assert await store.resolve("refs/heads/a") == "1" * 40


async def test_an_injected_enospc_comes_out_unwrapped_and_leaves_nothing(tmp_path: Path) -> None:
    await aioreftable.init_repo(tmp_path / "r")
    fs = CountingOS(fail_at=1)
    async with aioreftable.open_ref_store(tmp_path / "r", object_database=False, fs=fs) as store:
        with pytest.raises(OSError) as caught:
            async with store.transaction(message="x") as tx:
                tx.create("refs/heads/a", "1" * 40)
        assert caught.value.errno == errno.ENOSPC
        assert type(caught.value) is OSError
        assert await store.resolve("refs/heads/a") is None
    reftable = tmp_path / "r" / ".git" / "reftable"
    leftovers = [n for n in os.listdir(reftable) if n.endswith(".lock") or ".temp." in n]
    assert leftovers == []


async def test_a_linked_worktrees_stack_uses_the_seam_too(tmp_path: Path) -> None:
    await aioreftable.init_repo(tmp_path / "r")
    gitdir = tmp_path / "r" / ".git"
    wt = gitdir / "worktrees" / "w"
    (wt / "reftable").mkdir(parents=True)
    (wt / "reftable" / "tables.list").write_text("")
    (wt / "commondir").write_text("../..\n")
    (wt / "gitdir").write_text(str(tmp_path / "w" / ".git") + "\n")
    (wt / "HEAD").write_text("ref: refs/heads/.invalid\n")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / ".git").write_text(f"gitdir: {wt}\n")
    fs = CountingOS()
    async with aioreftable.open_ref_store(tmp_path / "r", object_database=False, fs=fs) as store:
        async with store.transaction(message="x") as tx:
            tx.create("worktrees/w/refs/bisect/good", "2" * 40)
        # only the worktree's stack was written (as git does, under the full name)
        assert len(fs.fsyncs) >= 2
    assert (wt / "reftable" / "tables.list").read_text().strip()
    assert (gitdir / "reftable" / "tables.list").read_text().count("\n") == 1  # init's table
