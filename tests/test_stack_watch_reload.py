"""reload="watch": an inotify watch on tables.list replaces the stat every read does; a
commit of another process is still seen within a bound; without inotify, a stat per read."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import Git
from refs_helpers import ENV
from stack_helpers import add_ref, oid

from aioreftable import StackOptions, UsageError, open_ref_store, open_stack
from aioreftable._fs import OS
from aioreftable._stack import _watch

pytestmark = pytest.mark.anyio

WATCH = StackOptions(auto_compact=False, reload="watch", max_staleness=0.5)


class CountingOS(OS):
    """The OS seam, counting the stats of tables.list that reads do."""

    def __init__(self) -> None:
        self.stats = 0

    def list_key(self, path: str) -> tuple[int, int] | None:
        self.stats += 1
        return super().list_key(path)


async def seen_within(stack: object, name: bytes, seconds: float) -> float:
    """Seconds until a read of ``stack`` shows ``name`` (reading in a tight loop)."""
    start = time.monotonic()
    with anyio.fail_after(seconds):
        while (await stack.snapshot()).ref(name) is None:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await anyio.sleep(0.001)
    return time.monotonic() - start


async def test_reads_skip_the_stat_and_still_see_other_writers(tmp_path: Path) -> None:
    fs = CountingOS()
    async with (
        open_stack(tmp_path, WATCH, create=True, fs=fs) as watched,
        open_stack(tmp_path, StackOptions(auto_compact=False)) as other,
    ):
        await add_ref(other, b"refs/heads/a", oid(1))
        await seen_within(watched, b"refs/heads/a", 5)
        await anyio.sleep(0.4)  # the watch is up: it reports at least every 250 ms
        await watched.snapshot()
        before = fs.stats
        start = time.monotonic()
        for _ in range(2000):
            await watched.snapshot()
        elapsed = time.monotonic() - start
        # at most one stat per wake-up of the watch (every max_staleness), not per read
        assert fs.stats - before <= 2 + int(elapsed / 0.5) * 2, (fs.stats - before, elapsed)
        await add_ref(other, b"refs/heads/b", oid(2))
        assert await seen_within(watched, b"refs/heads/b", 2) < 1.0


async def test_without_inotify_every_read_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_inotify(*args: object, **kwargs: object) -> object:
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(_watch, "awatch", no_inotify)
    fs = CountingOS()
    async with (
        open_stack(tmp_path, WATCH, create=True, fs=fs) as watched,
        open_stack(tmp_path, StackOptions(auto_compact=False)) as other,
    ):
        await anyio.sleep(0.05)
        before = fs.stats
        for _ in range(50):
            await watched.snapshot()
        assert fs.stats - before == 50
        await add_ref(other, b"refs/heads/a", oid(1))
        assert (await watched.snapshot()).ref(b"refs/heads/a") is not None


async def test_closing_a_watched_stack_is_prompt(tmp_path: Path) -> None:
    start = time.monotonic()
    async with open_stack(tmp_path, WATCH, create=True) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        await anyio.sleep(0.1)
    assert time.monotonic() - start < 1.5


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="reload"):
        StackOptions(reload="inotify")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="max_staleness"):
        StackOptions(max_staleness=0)


@pytest.mark.git
async def test_a_store_with_reload_watch_sees_git(git: Git, git_repo: Callable[..., Path]) -> None:
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    async with open_ref_store(repo, env=ENV, reload="watch") as store:
        assert await store.resolve("refs/heads/main") == head
        await anyio.to_thread.run_sync(lambda: git("branch", "side", cwd=repo))
        with anyio.fail_after(5):
            while await store.read("refs/heads/side") is None:  # noqa: ASYNC110
                await anyio.sleep(0.005)
