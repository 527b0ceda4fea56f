"""serve_gc in-process on asyncio and trio: repositories written by git and by our writers
with auto-compaction off become geometric again, on inotify and on the polling fallback."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import anyio
import pytest
import watchfiles
from conftest import Git
from gc_helpers import NO_COMPACT, is_geometric, leftovers, listed, make_repo, scrape
from refs_helpers import reflog_dump, refs_verify, show_refs

from aioreftable import StackOptions, open_stack
from aioreftable.gc import GcDaemon, GcSettings, serve_gc
from aioreftable.lowlevel import LogRecord, RefRecord

pytestmark = pytest.mark.anyio


async def _our_writes(stack_dir: Path, oid: str, count: int) -> None:
    """``count`` one-ref additions by our writer, auto-compaction off."""
    value = bytes.fromhex(oid)
    async with open_stack(stack_dir, StackOptions(auto_compact=False)) as stack:
        for i in range(count):
            async with stack.addition() as add:
                name = f"refs/heads/ours{i}".encode()
                ui = add.update_index
                add.writer.add_ref(RefRecord.val1(name, ui, value))
                add.writer.add_log(
                    LogRecord(name, ui, old_id=bytes(20), new_id=value, name=b"W",
                              email=b"w@example.com", time=1_700_000_000 + i, message=b"ours\n")
                )  # fmt: skip


async def _until(predicate: object) -> None:
    assert callable(predicate)
    while not predicate():  # noqa: ASYNC110 (the files change in other processes)
        await anyio.sleep(0.05)


@pytest.mark.parametrize("watch", ["inotify", "poll"])
async def test_serve_gc_keeps_stacks_geometric(tmp_path: Path, git: Git, watch: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    bare, work = root / "a.git", root / "w"
    oid = make_repo(git, bare, bare=True, refs=12)
    make_repo(git, work, refs=6)
    git("worktree", "add", "-q", "-b", "side", str(root / "wt"), cwd=work, env=NO_COMPACT)
    git("update-ref", "refs/bisect/x", oid, cwd=root / "wt", env=NO_COMPACT)
    git("init", "-q", "--ref-format=files", str(root / "files"))
    stacks = [bare / "reftable", work / ".git" / "reftable", work / ".git/worktrees/wt/reftable"]
    assert not is_geometric(stacks[0]) and not is_geometric(stacks[1])

    repos = (bare, work, root / "wt")
    initial = {r: (show_refs(git, r), reflog_dump(git, r)) for r in repos}
    settings = GcSettings(
        roots=(str(root),), watch=watch, poll_interval=0.1, debounce=0.05, metrics_port=0
    )
    async with anyio.create_task_group() as tg:
        daemon: GcDaemon = await tg.start(serve_gc, settings)
        assert sorted(daemon.stacks) == sorted(map(str, stacks))
        assert daemon.watch_mode == watch
        await daemon.wait_settled()
        assert all(is_geometric(s) for s in stacks)
        assert {r: (show_refs(git, r), reflog_dump(git, r)) for r in repos} == initial

        await _our_writes(bare / "reftable", oid, 10)  # the daemon reacts to the changes
        for i in range(8):
            git("update-ref", f"refs/tags/t{i}", oid, cwd=work, env=NO_COMPACT)
        written = {r: (show_refs(git, r), reflog_dump(git, r)) for r in repos}
        with anyio.fail_after(15):
            await _until(lambda: all(is_geometric(s) for s in stacks))
        await daemon.wait_settled()
        assert daemon.metrics_port is not None
        samples = await anyio.to_thread.run_sync(scrape, daemon.metrics_port)
        daemon.stop()

    assert samples["aioreftable_gc_compactions_total{kind=auto}"] >= 4
    assert samples["aioreftable_gc_stacks_watched"] == 3
    assert samples["aioreftable_gc_repositories_watched"] == 2
    assert samples["aioreftable_gc_files_backend_repositories"] == 1
    assert samples["aioreftable_gc_stack_tables_gcount"] == 3
    assert all(name.startswith("aioreftable_") for name in samples)
    assert {r: (show_refs(git, r), reflog_dump(git, r)) for r in repos} == written
    for s in stacks:
        assert leftovers(s) == []
    for r in repos:
        refs_verify(git, r)
    ours = git("for-each-ref", "--format=%(refname)", "refs/heads/ours*", cwd=bare).split()
    assert len(ours) == 10


async def test_repositories_that_appear_later_are_watched(tmp_path: Path, git: Git) -> None:
    root = tmp_path / "root"
    root.mkdir()
    make_repo(git, root / "first.git", bare=True, refs=2)
    settings = GcSettings(roots=(str(root),), rescan_interval=0.1, debounce=0.05)
    async with anyio.create_task_group() as tg:
        daemon: GcDaemon = await tg.start(serve_gc, settings)
        assert daemon.stacks == [str(root / "first.git" / "reftable")]
        oid = make_repo(git, root / "later.git", bare=True, refs=5)
        later = root / "later.git" / "reftable"
        with anyio.fail_after(15):
            await _until(lambda: str(later) in daemon.stacks and is_geometric(later))
        await _our_writes(later, oid, 6)  # watched now: the change is seen
        with anyio.fail_after(15):
            await _until(lambda: is_geometric(later))
        await anyio.to_thread.run_sync(shutil.rmtree, root / "first.git")
        with anyio.fail_after(15):
            await _until(lambda: daemon.stacks == [str(later)])
        registry = daemon.metrics.registry
        assert registry.get_sample_value("aioreftable_gc_stacks_watched") == 1
        daemon.stop()


async def test_full_compaction_on_a_schedule(tmp_path: Path, git: Git) -> None:
    """A geometric stack of two tables is left alone until the schedule is due."""
    oid = make_repo(git, tmp_path / "r.git", bare=True)
    stack = tmp_path / "r.git" / "reftable"
    await _our_writes(stack, oid, 20)
    async with open_stack(stack, StackOptions(auto_compact=False)) as s:
        await s.compact_all()
        async with s.addition() as add:
            add.writer.add_ref(RefRecord.val1(b"refs/tags/x", add.update_index, bytes.fromhex(oid)))
    assert is_geometric(stack) and len(listed(stack)) == 2
    settings = GcSettings(roots=(str(tmp_path),), full_compaction_interval=1.0, sweep_interval=0.1)
    async with anyio.create_task_group() as tg:
        daemon: GcDaemon = await tg.start(serve_gc, settings)
        await daemon.wait_settled()
        assert len(listed(stack)) == 2  # geometric: nothing to do yet
        with anyio.fail_after(15):
            await _until(lambda: len(listed(stack)) == 1)
        await daemon.wait_settled()
        full = daemon.metrics.registry.get_sample_value(
            "aioreftable_gc_compactions_total", {"kind": "full"}
        )
        daemon.stop()
    assert full == 1
    assert leftovers(stack) == []
    refs_verify(git, tmp_path / "r.git")


async def test_polling_fallback_when_inotify_fails(
    tmp_path: Path, git: Git, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_inotify(*args: object, **kwargs: object) -> None:
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watchfiles, "watch", no_inotify)  # _watch looks it up per call
    oid = make_repo(git, tmp_path / "r.git", bare=True)
    stack = tmp_path / "r.git" / "reftable"
    settings = GcSettings(roots=(str(tmp_path),), poll_interval=0.1)
    with caplog.at_level(logging.INFO, logger="aioreftable.gc"):
        async with anyio.create_task_group() as tg:
            daemon: GcDaemon = await tg.start(serve_gc, settings)
            assert daemon.watch_mode == "poll"
            await daemon.wait_settled()
            await _our_writes(stack, oid, 8)
            with anyio.fail_after(15):
                await _until(lambda: is_geometric(stack))
            daemon.stop()
    assert [r.getMessage() for r in caplog.records].count("inotify_unavailable") == 1
    polled = daemon.metrics.registry.get_sample_value(
        "aioreftable_gc_list_changes_total", {"source": "poll"}
    )
    assert polled is not None and polled >= 1
