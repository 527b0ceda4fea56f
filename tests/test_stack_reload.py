"""Reload: noticing other writers by (st_dev, st_ino), vanishing tables, live iterators."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import anyio
import pytest
from stack_helpers import add_ref, listed, oid, refs_of, unblock_after

from aioreftable import (
    FormatError,
    NotExistError,
    StackOptions,
    init_repo,
    open_ref_store,
    open_stack,
)
from aioreftable._format._reader import TableReader
from aioreftable._fs import OS

pytestmark = pytest.mark.anyio

NO_AUTO = StackOptions(auto_compact=False)


async def test_other_writer_is_seen_on_next_read(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as a, open_stack(tmp_path, NO_AUTO) as b:
        assert (await a.snapshot()).ref(b"refs/heads/x") is None
        await add_ref(b, b"refs/heads/x", oid(1))
        got = (await a.snapshot()).ref(b"refs/heads/x")
        assert got is not None and got.value == oid(1)


async def test_unchanged_list_costs_no_reload(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/x", oid(1))
        before = stack.statistics().reloads
        first = await stack.snapshot()
        for _ in range(20):
            assert await stack.snapshot() is first
        assert stack.statistics().reloads == before


def descriptors_on(path: Path) -> int:
    """How many descriptors of this process refer to the file at ``path`` now."""
    want = os.stat(path)
    count = 0
    for entry in os.listdir("/dev/fd"):
        try:
            st = os.fstat(int(entry))
        except OSError:
            continue
        count += (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino)
    return count


async def test_the_read_list_is_kept_open(tmp_path: Path) -> None:
    """A reload keeps the tables.list it read open (its inode is the up-to-date key)."""
    list_path = tmp_path / "tables.list"
    async with open_stack(tmp_path, NO_AUTO) as a, open_stack(tmp_path, NO_AUTO) as b:
        await add_ref(b, b"refs/heads/x", oid(1))
        before = await anyio.to_thread.run_sync(descriptors_on, list_path)
        await a.snapshot()
        assert await anyio.to_thread.run_sync(descriptors_on, list_path) == before + 1


async def test_append_then_compact_back_is_seen(tmp_path: Path) -> None:
    """git 4f36b8597c: B appends and compacts so size and maybe inode number repeat."""
    async with open_stack(tmp_path, NO_AUTO) as a, open_stack(tmp_path, NO_AUTO) as b:
        await add_ref(b, b"refs/heads/a", oid(1))
        await add_ref(b, b"refs/heads/b", oid(2))
        await b.compact_all()
        assert len(await a.snapshot()) == 1
        await add_ref(b, b"refs/heads/c", oid(3))
        await b.compact_all()
        assert refs_of(await a.snapshot()) == {
            b"refs/heads/a": oid(1), b"refs/heads/b": oid(2), b"refs/heads/c": oid(3)
        }  # fmt: skip


async def test_missing_list_after_tables_is_an_empty_stack(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/x", oid(1))
        os.unlink(tmp_path / "tables.list")
        assert len(await stack.snapshot()) == 0


async def test_iterator_survives_compaction_that_deletes_its_tables(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as a, open_stack(tmp_path, NO_AUTO) as b:
        for i in range(10):
            await add_ref(b, b"refs/heads/b%d" % i, oid(i))
        snap = await a.snapshot()
        it = snap.iter_refs(b"refs/heads/")
        head = [next(it).refname for _ in range(2)]
        await b.compact_all()
        assert not set(snap.table_names) & set(os.listdir(tmp_path))
        fresh = await a.snapshot()  # reload drops a's references to the old tables
        assert len(fresh) == 1
        rest = [r.refname for r in it]
        assert head + rest == [b"refs/heads/b%d" % i for i in range(10)]
        assert snap.ref(b"refs/heads/b7") is not None  # the old snapshot still reads


class VanishingOS(OS):
    """The first time a table is opened, a "concurrent compaction" replaces it: the file is
    renamed to a new name, tables.list is rewritten, and the open fails as in the race."""

    def __init__(self, times: int = 1) -> None:
        self.times = times
        self.opens = 0

    def open_table(self, path: str) -> TableReader:
        self.opens += 1
        if self.times:
            self.times -= 1
            directory, name = os.path.split(path)
            new = f"{name.rsplit('-', 1)[0]}-{self.opens:08x}.ref"  # a fresh random part
            shutil.copy(path, os.path.join(directory, new))
            names = [new if n == name else n for n in listed(directory)]
            tmp = os.path.join(directory, "tables.list.new")
            Path(tmp).write_text("".join(n + "\n" for n in names))
            os.rename(tmp, os.path.join(directory, "tables.list"))
            os.unlink(path)
        return super().open_table(path)


async def test_vanished_table_means_retry(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as writer:
        await add_ref(writer, b"refs/heads/x", oid(1))
    fs = VanishingOS(times=2)
    async with open_stack(tmp_path, NO_AUTO, fs=fs) as stack:
        assert refs_of(await stack.snapshot()) == {b"refs/heads/x": oid(1)}
        assert fs.opens == 3


async def test_same_list_twice_is_not_exist_and_keeps_old_state(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack, open_stack(tmp_path, NO_AUTO) as other:
        await add_ref(stack, b"refs/heads/x", oid(1))
        old = await stack.snapshot()
        await add_ref(other, b"refs/heads/y", oid(2))
        os.unlink(tmp_path / listed(tmp_path)[-1])  # now the list names a missing table
        with pytest.raises(NotExistError):
            await stack.snapshot()
        assert old.ref(b"refs/heads/x") is not None  # the old generation is intact
        names = listed(tmp_path)[:-1]
        (tmp_path / "tables.list.lock").write_text("".join(n + "\n" for n in names))
        os.rename(tmp_path / "tables.list.lock", tmp_path / "tables.list")
        assert refs_of(await stack.snapshot()) == {b"refs/heads/x": oid(1)}


async def test_endless_vanishing_is_an_error_not_success(tmp_path: Path) -> None:
    """git reports success when its 3 s deadline expires in the retry path; we raise."""
    async with open_stack(tmp_path, NO_AUTO) as writer:
        await add_ref(writer, b"refs/heads/x", oid(1))
    fs = VanishingOS(times=10**6)
    with pytest.raises(NotExistError, match="kept vanishing"):
        async with open_stack(tmp_path, StackOptions(reload_timeout=0.2), fs=fs):
            pass
    assert fs.opens >= 3


# -- hostile tables.list (issue 10.6) ------------------------------------------------------
async def test_a_fifo_named_in_the_list_is_refused_not_waited_for(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as writer:
        await add_ref(writer, b"refs/heads/x", oid(1))
    fifo = "0x000000000002-0x000000000002-0badf00d.ref"
    os.mkfifo(tmp_path / fifo)
    (tmp_path / "tables.list").write_text("".join(f"{n}\n" for n in [*listed(tmp_path), fifo]))
    with unblock_after(tmp_path / fifo), pytest.raises(FormatError, match="regular") as info:
        async with open_stack(tmp_path):
            pass
    assert info.value.path == str(tmp_path / fifo)


async def test_a_list_of_100000_duplicates_opens_no_table(tmp_path: Path) -> None:
    class Counting(OS):
        opened = 0

        def open_table(self, path: str) -> TableReader:
            Counting.opened += 1
            return super().open_table(path)

    async with open_stack(tmp_path, NO_AUTO) as writer:
        await add_ref(writer, b"refs/heads/x", oid(1))
    (name,) = listed(tmp_path)
    (tmp_path / "tables.list").write_text(f"{name}\n" * 100_000)
    with pytest.raises(FormatError, match="twice") as info:
        async with open_stack(tmp_path, fs=Counting()):
            pass
    assert info.value.path == str(tmp_path / "tables.list") and Counting.opened == 0


async def test_verify_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    """An unlisted FIFO named like a table, then a FIFO as tables.list: verify() reports,
    it does not hang (the ref store's verify reads through the OS seam)."""
    await init_repo(tmp_path)
    d = tmp_path / ".git" / "reftable"
    fifo = d / "0x000000000009-0x000000000009-0badf00d.ref"
    os.mkfifo(fifo)
    async with open_ref_store(tmp_path, object_database=False) as store:
        started = time.monotonic()
        with unblock_after(fifo):
            assert [f.code for f in await store.verify()] == []
        assert time.monotonic() - started < 4  # did not wait for the guard
        os.unlink(fifo)
        os.rename(d / "tables.list", d / "tables.list.bak")
        os.mkfifo(d / "tables.list")
        with unblock_after(d / "tables.list"):
            found = await store.verify()
        assert "badReftableStack" in [f.code for f in found]
        assert any("not a regular file" in f.message for f in found)
        os.unlink(d / "tables.list")
        os.rename(d / "tables.list.bak", d / "tables.list")
