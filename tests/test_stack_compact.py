"""Compaction: git's heuristic, ranges, best effort, splicing, expiry, clean, background."""

from __future__ import annotations

import errno
import logging
import math
import os
import tempfile
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stack_helpers import PausingOS, add_ref, listed, oid, refs_of, stray_files

from aioreftable import LockError, LogExpiry, OutdatedError, Stack, StackOptions, open_stack
from aioreftable._fs import OS, TempTable
from aioreftable.lowlevel import LogRecord, RefRecord, TableReader, suggest_compaction_segment

pytestmark = pytest.mark.anyio

NO_AUTO = StackOptions(auto_compact=False)


# -- the heuristic (digest §4.1) ----------------------------------------------------------
@pytest.mark.parametrize(
    ("sizes", "factor", "expected"),
    [
        ([512, 64, 17, 16, 9, 9, 9, 16, 2, 16], 2, (1, 10)),  # git's unit test
        ([64, 32, 16, 8, 4, 3, 1], 2, (0, 6)),
        ([128, 32, 16, 8, 4, 3, 1], 2, (1, 6)),
        ([100, 10, 60, 5, 4], 2, (0, 5)),  # start jumps past a table that was fine
        ([258, 122], 2, None),  # verified trace: stays two tables
        ([258, 122, 122], 2, (0, 3)),  # ... and the next one merges all three
        ([64, 32, 16, 8, 4, 2, 1], 2, None),  # already geometric
        ([5], 2, None),
        ([], 2, None),
        ([1, 1], 2, (0, 2)),
        ([10, 3], 5, (0, 2)),  # geometric for factor 2, not for 5
        ([10, 3], 2, None),
    ],
)
def test_suggest_compaction_segment(
    sizes: list[int], factor: int, expected: tuple[int, int] | None
) -> None:
    assert suggest_compaction_segment(sizes, factor) == expected


def violations(sizes: tuple[int, ...], factor: int = 2) -> list[int]:
    return [i for i in range(1, len(sizes)) if sizes[i - 1] < factor * sizes[i]]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 40), min_size=1, max_size=25))
async def test_auto_compaction_keeps_the_stack_geometric(batches: list[int]) -> None:
    with tempfile.TemporaryDirectory() as d:
        async with open_stack(d) as stack:
            n = 0
            for size in batches:
                async with stack.addition() as add:
                    for j in range(size):
                        name = b"refs/heads/r%06d" % (n + j)
                        add.writer.add_ref(RefRecord.val1(name, add.update_index, oid(n + j)))
                n += size
                await stack.wait_idle()
                snap = await stack.snapshot()
                assert violations(snap.effective_sizes) == [], snap.effective_sizes
            assert len(refs_of(await stack.snapshot())) == n


async def test_equal_additions_leave_logarithmically_many_tables(tmp_path: Path) -> None:
    n = 64
    async with open_stack(tmp_path) as stack:
        for i in range(n):
            await add_ref(stack, b"refs/heads/r%04d" % i, oid(i))
            await stack.wait_idle()
            tables = len(await stack.snapshot())
            assert tables <= math.ceil(math.log2(i + 1)) + 1
        s = stack.statistics()
        assert s.entries_written < n * math.log2(n)  # git's unit test bound
        assert len(refs_of(await stack.snapshot())) == n


# -- explicit ranges -----------------------------------------------------------------------
async def test_range_keeps_tombstones_unless_it_starts_at_the_bottom(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        await add_ref(stack, b"refs/heads/b", oid(2))
        async with stack.addition() as add:
            add.writer.add_ref(RefRecord.deletion(b"refs/heads/a", add.update_index))
        await stack.snapshot()
        assert await stack.compact_range(1, 2)
        snap = await stack.snapshot()
        assert len(snap) == 2 and snap.ref(b"refs/heads/a") is None
        top = snap.readers[1]
        assert [r.refname for r in top.iter_refs(b"")] == [b"refs/heads/a", b"refs/heads/b"]
        assert await stack.compact_all()
        snap = await stack.snapshot()
        assert [r.refname for r in snap.readers[0].iter_refs(b"")] == [b"refs/heads/b"]
        assert (snap.readers[0].min_update_index, snap.readers[0].max_update_index) == (1, 3)


async def test_single_table_range_is_a_no_op_without_expiry(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        assert not await stack.compact_range(0, 0)
        assert not await stack.compact_all()
        assert stack.statistics().compactions_attempted == 0


async def test_stale_range_is_outdated(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as a, open_stack(tmp_path, NO_AUTO) as b:
        await add_ref(a, b"refs/heads/a", oid(1))
        await add_ref(a, b"refs/heads/b", oid(2))
        await add_ref(b, b"refs/heads/c", oid(3))
        with pytest.raises(OutdatedError):
            await a.compact_range(0, 1)
        assert stray_files(tmp_path) == []


async def test_compacting_everything_away_leaves_an_empty_list(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        async with stack.addition() as add:
            add.writer.add_ref(RefRecord.deletion(b"refs/heads/a", add.update_index))
        assert await stack.compact_all()
        snap = await stack.snapshot()
        assert len(snap) == 0 and snap.next_update_index == 1
    assert listed(tmp_path) == [] and (tmp_path / "tables.list").read_bytes() == b""


async def test_log_expiry(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        for i in range(1, 5):
            async with stack.addition() as add:
                ui = add.update_index
                add.writer.add_ref(RefRecord.val1(b"refs/heads/a", ui, oid(i)))
                log = LogRecord(b"refs/heads/a", ui, new_id=oid(i), old_id=oid(i - 1),
                                time=100 * i, message=b"m")  # fmt: skip
                add.writer.add_log(log)
        assert await stack.compact_all(expiry=LogExpiry(time=250))
        snap = await stack.snapshot()
        assert [r.update_index for r in snap.iter_logs(b"refs/heads/a")] == [4, 3]
        assert await stack.compact_range(0, 0, expiry=LogExpiry(min_update_index=4))
        snap = await stack.snapshot()
        assert [r.update_index for r in snap.iter_logs(b"refs/heads/a")] == [4]
        ref = snap.ref(b"refs/heads/a")
        assert ref is not None and ref.value == oid(4)


# -- locks: best effort and failures --------------------------------------------------------
async def equal_tables(stack: Stack, n: int) -> None:
    for i in range(n):
        await add_ref(stack, b"refs/heads/r%d" % i, oid(i))


async def test_best_effort_compacts_the_locked_suffix(tmp_path: Path) -> None:
    """git's unit test auto_compaction_with_locked_tables: 5 tables, #2 locked."""
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await equal_tables(stack, 5)
        names = listed(tmp_path)
        (tmp_path / (names[2] + ".lock")).touch()
        assert await stack.auto_compact()
        assert len(await stack.snapshot()) == 4
        assert listed(tmp_path)[:3] == names[:3]
        assert stack.statistics().compactions_failed == 0
        with pytest.raises(LockError) as info:
            await stack.compact_all()
        assert info.value.lock_path == str(tmp_path / (names[2] + ".lock"))
        assert stack.statistics().compactions_failed == 1
        assert len(refs_of(await stack.snapshot())) == 5
    assert stray_files(tmp_path) == [names[2] + ".lock"]


async def test_new_tables_compact_among_themselves_when_old_ones_are_locked(
    tmp_path: Path,
) -> None:
    async with open_stack(tmp_path) as stack:
        await equal_tables(stack, 3)
        await stack.wait_idle()
        old = listed(tmp_path)
        for name in old:
            (tmp_path / (name + ".lock")).touch()
        for i in range(10, 16):
            await add_ref(stack, b"refs/heads/n%d" % i, oid(i))
            await stack.wait_idle()
        names = listed(tmp_path)
        assert names[: len(old)] == old and len(names) < len(old) + 6
        assert len(refs_of(await stack.snapshot())) == 9


async def test_auto_compaction_lock_errors_are_counted_not_raised(tmp_path: Path) -> None:
    """t0610 "fails gracefully": every table locked after each write; writes succeed."""
    async with open_stack(tmp_path) as stack:
        for i in range(6):
            await add_ref(stack, b"refs/heads/r%d" % i, oid(i))
            await stack.wait_idle()
            for name in listed(tmp_path):
                (tmp_path / (name + ".lock")).touch(exist_ok=True)
        s = stack.statistics()
        assert s.tables == 6 and s.compactions_failed >= 4 and s.compaction_errors == 0


class FullDuringCompaction(OS):
    """ENOSPC when a compaction writes its table (additions have min == max)."""

    def __init__(self) -> None:
        self.full = True

    def write_temp_table(
        self, directory: str, prefix: str, data: bytes, mode: int | None
    ) -> TempTable:
        lo, hi = prefix.split("-")[:2]
        if self.full and lo != hi:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write_temp_table(directory, prefix, data, mode)


async def test_other_background_errors_are_logged_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fs = FullDuringCompaction()
    with caplog.at_level(logging.WARNING, logger="aioreftable.stack"):
        async with open_stack(tmp_path, fs=fs) as stack:
            for i in range(4):
                await add_ref(stack, b"refs/heads/r%d" % i, oid(i))
                await stack.wait_idle()
            s = stack.statistics()
            assert s.compaction_errors >= 1 and s.tables == 4
            assert isinstance(s.last_compaction_error, OSError)
            refs = refs_of(await stack.snapshot())
            assert refs.keys() == {b"refs/heads/r%d" % i for i in range(4)}
            fs.full = False
            # a commit after the backoff retries (it doubled with each failure, up to 4 of
            # them: a fixed sleep was too short on a loaded machine); commits before it do not
            extra = 4
            with anyio.fail_after(20):
                while True:
                    await add_ref(stack, b"refs/heads/r%d" % extra, oid(extra))
                    await stack.wait_idle()
                    if stack.statistics().tables < extra + 1:
                        break
                    extra += 1
                    await anyio.sleep(0.05)
            assert stack.statistics().compaction_errors == s.compaction_errors
    assert "auto-compaction" in caplog.text and "No space left" in caplog.text
    assert stray_files(tmp_path) == []


# -- concurrency inside compaction ------------------------------------------------------------
async def test_appends_during_compaction_are_spliced_not_lost(tmp_path: Path) -> None:
    """git ed1ad6b44d: the compactor must not write back its stale list."""
    fs = PausingOS()
    async with open_stack(tmp_path, NO_AUTO, fs=fs) as a, open_stack(tmp_path, NO_AUTO) as b:
        await equal_tables(a, 4)
        fs.armed = True
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.compact_all)
            await anyio.to_thread.run_sync(fs.paused.wait)
            await add_ref(b, b"refs/heads/during1", oid(10))
            await add_ref(b, b"refs/heads/during2", oid(11))
            # a newer process compacts its own tables above the locked ones (f234df07f6)
            await b.snapshot()
            assert await b.compact_range(4, 5)
            fs.resume.set()
        snap = await a.snapshot()
        assert len(snap) == 2
        assert set(refs_of(snap)) == {b"refs/heads/r%d" % i for i in range(4)} | {
            b"refs/heads/during1", b"refs/heads/during2"}  # fmt: skip
        assert [(r.min_update_index, r.max_update_index) for r in snap.readers] == [(1, 4), (5, 6)]
    assert stray_files(tmp_path) == []


async def test_cancelled_compaction_leaves_nothing_behind(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        for t in range(3):
            async with stack.addition() as add:
                add.writer.add_refs(big_batch(t, add.update_index, 3000))
        for delay in (0.0, 0.001, 0.005, 0.02, 0.05):
            with anyio.move_on_after(delay):
                await stack.compact_all()
            assert stray_files(tmp_path) == []
        snap = await stack.snapshot()
        assert len(list(snap.iter_refs(b"refs/heads/"))) == 9000


async def test_clean_exit_lets_pending_compaction_finish(tmp_path: Path) -> None:
    async with open_stack(tmp_path) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        await add_ref(stack, b"refs/heads/b", oid(2))
    assert len(listed(tmp_path)) == 1 and stray_files(tmp_path) == []


async def test_cancelled_context_abandons_background_compaction(tmp_path: Path) -> None:
    """Cancelling the scope around ``open_stack`` while its background compaction is held
    mid-merge (table locks taken, temp table written) abandons that compaction: nothing is
    committed by it and no lock or temp file is left."""
    fs = PausingOS()
    fs.armed = True
    with anyio.CancelScope() as scope:
        try:
            async with open_stack(tmp_path, fs=fs) as stack:
                for t in range(2):
                    async with stack.addition() as add:
                        add.writer.add_refs(big_batch(t, add.update_index, 2000))
                # the second commit asked for an auto-compaction of both tables: wait until
                # it holds their locks and has written its temp table, then cancel under it
                assert await anyio.to_thread.run_sync(fs.paused.wait, 30)
                assert [n for n in os.listdir(tmp_path) if n.endswith(".ref.lock")] != []
                assert [n for n in os.listdir(tmp_path) if ".temp." in n] != []
                scope.cancel()
                fs.resume.set()
                await anyio.sleep_forever()
        finally:
            fs.resume.set()  # never leave the worker thread waiting when an assert failed
    assert scope.cancelled_caught
    assert stack.statistics().compactions == 0
    assert stray_files(tmp_path) == []
    assert len(listed(tmp_path)) == 2  # the compaction was abandoned, not committed
    async with open_stack(tmp_path, NO_AUTO) as stack:
        assert len(list((await stack.snapshot()).iter_refs(b""))) == 4000


def big_batch(t: int, update_index: int, n: int) -> list[RefRecord]:
    return [RefRecord.val1(b"refs/heads/t%d/%05d" % (t, i), update_index, oid(i)) for i in range(n)]


# -- clean ---------------------------------------------------------------------------------
async def test_clean_follows_gits_rules(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await equal_tables(stack, 3)
        names = listed(tmp_path)
        old_copy = "0x000000000001-0x000000000001-deadbeef.ref"
        (tmp_path / old_copy).write_bytes((tmp_path / names[0]).read_bytes())
        await stack.compact_all()
        w = _table(9, 9)
        (tmp_path / "0x000000000009-0x000000000009-00000009.ref").write_bytes(w)  # newer
        (tmp_path / "garbage.ref").write_bytes(b"")
        (tmp_path / "x.ref.lock").touch()
        (tmp_path / "0x1-0x1-1.temp.abcdef").write_bytes(w)
        (tmp_path / "unrelated").touch()
        removed = await stack.clean()
        assert removed == [old_copy]
        left = set(os.listdir(tmp_path))
        assert {"garbage.ref", "x.ref.lock", "0x1-0x1-1.temp.abcdef", "unrelated"} <= left
        assert "0x000000000009-0x000000000009-00000009.ref" in left
        (tmp_path / "tables.list.lock").touch()
        with pytest.raises(LockError):
            await stack.clean()


def _table(lo: int, hi: int) -> bytes:
    from aioreftable.lowlevel import TableWriter

    w = TableWriter()
    w.set_limits(lo, hi)
    w.add_ref(RefRecord.val1(b"refs/heads/x", lo, oid(lo)))
    return w.finish()


async def test_compacted_table_is_readable_by_the_codec(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await equal_tables(stack, 3)
        await stack.compact_all()
    with TableReader.from_path(tmp_path / listed(tmp_path)[0]) as reader:
        names = [r.refname for r in reader.iter_refs(b"")]
    assert names == [b"refs/heads/r%d" % i for i in range(3)]
