"""Opening a stack, additions, snapshots, permissions and the open_stack context."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import pytest
from stack_helpers import add_ref, listed, listed_bytes, oid, refs_of, stray_files

from aioreftable import (
    FormatError,
    LimitsError,
    NotExistError,
    StackOptions,
    UsageError,
    open_stack,
)
from aioreftable.lowlevel import SHA256, LogRecord, RefRecord, TableReader, WriteOptions

pytestmark = pytest.mark.anyio

NO_AUTO = StackOptions(auto_compact=False)


async def test_empty_stack_has_no_files(tmp_path: Path) -> None:
    async with open_stack(tmp_path / "rt", create=True) as stack:
        snap = await stack.snapshot()
        assert len(snap) == 0 and snap.max_update_index == 0 and snap.next_update_index == 1
        assert snap.ref(b"HEAD") is None and list(snap.iter_refs()) == []
    assert os.listdir(tmp_path / "rt") == []


async def test_a_missing_directory_is_not_created_by_default(tmp_path: Path) -> None:
    missing = tmp_path / "reftabel"
    with pytest.raises(FileNotFoundError) as info:
        async with open_stack(missing):
            pass
    assert info.value.filename == str(missing) and not missing.exists()
    (tmp_path / "file").touch()
    with pytest.raises(NotADirectoryError) as not_dir:
        async with open_stack(tmp_path / "file"):
            pass
    assert not_dir.value.filename == str(tmp_path / "file")
    async with open_stack(tmp_path / "a" / "b", create=True) as stack:
        await add_ref(stack, b"refs/heads/main", oid(1))
    assert listed(tmp_path / "a" / "b")


async def test_addition_appends_a_git_named_table(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        async with stack.addition() as add:
            assert add.update_index == 1
            add.writer.add_ref(RefRecord.val1(b"refs/heads/main", 1, oid(1)))
        async with stack.addition() as add:
            assert add.update_index == 2
            assert add.snapshot.ref(b"refs/heads/main") is not None
            add.writer.add_ref(RefRecord.val1(b"refs/heads/next", 2, oid(2)))
        snap = await stack.snapshot()
        assert refs_of(snap) == {b"refs/heads/main": oid(1), b"refs/heads/next": oid(2)}
    names = listed(tmp_path)
    assert len(names) == 2 and snap.table_names == tuple(names)
    assert names[0].startswith("0x000000000001-0x000000000001-")
    assert names[1].startswith("0x000000000002-0x000000000002-") and names[1].endswith(".ref")
    assert (tmp_path / "tables.list").read_bytes().endswith(b".ref\n")
    assert stray_files(tmp_path) == []


async def test_snapshot_reads(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        async with stack.addition() as add:
            ui = add.update_index
            add.writer.add_refs(
                [
                    RefRecord.val1(b"refs/heads/a", ui, oid("a")),
                    RefRecord.val1(b"refs/tags/t", ui, oid("t")),
                    RefRecord.symref(b"HEAD", ui, b"refs/heads/a"),
                ]
            )
            add.writer.add_log(LogRecord(b"refs/heads/a", ui, new_id=oid("a"), old_id=bytes(20),
                                         message=b"create"))  # fmt: skip
        async with stack.addition() as add:
            add.writer.add_ref(RefRecord.deletion(b"refs/tags/t", add.update_index))
        snap = await stack.snapshot()
        assert [r.refname for r in snap.iter_refs(b"refs/")] == [b"refs/heads/a"]
        assert snap.ref(b"refs/tags/t") is None
        assert snap.ref(b"refs/tags/t", include_deletions=True) is not None
        head = snap.ref(b"HEAD")
        assert head is not None and head.target == b"refs/heads/a"
        assert [r.message for r in snap.iter_logs(b"refs/heads/a")] == [b"create\n"]
        assert [r.refname for r in snap.refs_for(oid("a"))] == [b"refs/heads/a"]


async def test_empty_addition_adds_nothing(tmp_path: Path) -> None:
    async with open_stack(tmp_path) as stack:
        async with stack.addition():
            pass
        assert stack.statistics().additions == 0
    assert os.listdir(tmp_path) == []


async def test_exception_rolls_back_and_propagates_unchanged(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/keep", oid(1))
        with pytest.raises(Boom):
            async with stack.addition() as add:
                add.writer.add_ref(RefRecord.val1(b"refs/heads/lost", add.update_index, oid(2)))
                raise Boom
        assert refs_of(await stack.snapshot()) == {b"refs/heads/keep": oid(1)}
    assert stray_files(tmp_path) == [] and len(listed(tmp_path)) == 1


async def test_body_exception_is_not_wrapped_in_a_group(tmp_path: Path) -> None:
    with pytest.raises(KeyError) as info:
        async with open_stack(tmp_path) as stack:
            await add_ref(stack, b"refs/heads/a", oid(1))
            await add_ref(stack, b"refs/heads/b", oid(2))  # a compaction is pending now
            raise KeyError("mine")
    assert type(info.value) is KeyError and info.value.args == ("mine",)
    assert stray_files(tmp_path) == []


async def test_cancelling_the_body_cancels_cleanly(tmp_path: Path) -> None:
    with anyio.move_on_after(0.05) as scope:
        async with open_stack(tmp_path) as stack:
            await add_ref(stack, b"refs/heads/a", oid(1))
            await anyio.sleep(10)
    assert scope.cancelled_caught
    assert stray_files(tmp_path) == []


async def test_update_index_below_next_is_refused(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        with pytest.raises(UsageError, match="below the next update index"):
            async with stack.addition() as add:
                add.writer.set_limits(1, 2)
                add.writer.add_ref(RefRecord.val1(b"refs/heads/b", 2, oid(2)))
        with pytest.raises(LimitsError):
            async with stack.addition() as add:
                add.writer.add_ref(RefRecord.val1(b"refs/heads/b", 2, oid(2)))
                add.writer.set_limits(2, 3)
    assert stray_files(tmp_path) == [] and len(listed(tmp_path)) == 1


async def test_wider_limits_for_many_update_indexes(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        async with stack.addition() as add:
            add.writer.set_limits(1, 3)
            for i in (3, 2, 1):  # log keys sort newest first
                add.writer.add_log(LogRecord(b"refs/heads/a", i, new_id=oid(i), old_id=bytes(20)))
        async with stack.addition() as add:
            assert add.update_index == 4


async def test_files_get_the_requested_mode(tmp_path: Path) -> None:
    async with open_stack(tmp_path, StackOptions(file_mode=0o664, auto_compact=False)) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        await add_ref(stack, b"refs/heads/b", oid(1))
        await stack.compact_all()
    for name in ["tables.list", *listed(tmp_path)]:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o664, name


async def test_default_mode_is_0666_minus_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        async with open_stack(tmp_path, NO_AUTO) as stack:
            await add_ref(stack, b"refs/heads/a", oid(1))
    finally:
        os.umask(old)
    for name in ["tables.list", *listed(tmp_path)]:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


async def test_list_without_final_newline_is_a_format_error(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
    data = (tmp_path / "tables.list").read_bytes()
    (tmp_path / "tables.list").write_bytes(data.rstrip(b"\n"))
    with pytest.raises(FormatError, match="newline"):
        async with open_stack(tmp_path):
            pass


async def test_garbage_list_is_not_exist(tmp_path: Path) -> None:
    """As git (t0610): a name that is no table is looked up, and is missing."""
    (tmp_path / "tables.list").write_bytes(b"garbage\n")
    with pytest.raises(NotExistError, match="garbage"):
        async with open_stack(tmp_path):
            pass


async def test_a_300_character_name_is_a_format_error_naming_the_list(tmp_path: Path) -> None:
    (tmp_path / "tables.list").write_text("0x1-0x1-" + "f" * 288 + ".ref\n")
    with pytest.raises(FormatError, match="300 characters") as info:
        async with open_stack(tmp_path):
            pass
    assert info.value.path == str(tmp_path / "tables.list") and info.value.offset == 0


async def test_hash_mismatch_is_a_format_error(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
    with pytest.raises(FormatError, match="hash"):
        async with open_stack(tmp_path, StackOptions(write_options=WriteOptions(hash="sha256"))):
            pass


async def test_sha256_stack(tmp_path: Path) -> None:
    opts = StackOptions(write_options=WriteOptions(hash="sha256"), auto_compact=False)
    async with open_stack(tmp_path, opts) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1, SHA256))
        snap = await stack.snapshot()
        assert snap.hash_name == "sha256" and snap.effective_sizes[0] == snap.file_sizes[0] - 99
        assert snap.hash is SHA256
    reader = TableReader.from_path(tmp_path / listed(tmp_path)[0])
    assert reader.version == 2 and reader.hash is SHA256
    reader.close()


async def test_closed_stack_refuses_use(tmp_path: Path) -> None:
    async with open_stack(tmp_path) as stack:
        pass
    with pytest.raises(anyio.ClosedResourceError):
        await stack.snapshot()


async def test_tables_are_closed_on_exit(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        snap = await stack.snapshot()
        it = snap.iter_refs()
    with pytest.raises(ValueError):
        list(it)  # the context closed (unmapped) every table


async def test_options_are_validated() -> None:
    with pytest.raises(UsageError):
        StackOptions(lock_timeout=-1)
    with pytest.raises(UsageError):
        StackOptions(geometric_factor=256)


async def test_statistics(tmp_path: Path) -> None:
    async with open_stack(tmp_path, NO_AUTO) as stack:
        for i in range(3):
            await add_ref(stack, b"refs/heads/%d" % i, oid(i))
        s = stack.statistics()
        assert (s.tables, s.additions, s.max_update_index) == (3, 3, 3)
        assert s.bytes == listed_bytes(tmp_path)
        await stack.compact_all()
        s = stack.statistics()
        assert (s.tables, s.compactions_attempted, s.compactions, s.entries_written) == (1, 1, 1, 3)
