"""The change feed: updates by git (another process) and by us arrive once, in update-index
order, with git's old/new values; resume with ``since``; compaction loses nothing that is
still in the data; inotify and polling."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import Git
from refs_helpers import ENV
from test_refs_reflog_ops import NO_COMPACT, no_autocompact  # noqa: F401 (a fixture)

from aioreftable import (
    ChangeFeed,
    ChangeFeedGapError,
    ExpirePolicy,
    LockError,
    RefChange,
    Snapshot,
    StackOptions,
    open_ref_store,
    open_stack,
)
from aioreftable._refs._feed import changes_between
from aioreftable.lowlevel import SHA1, SHA256, WriteOptions

pytestmark = [pytest.mark.anyio, pytest.mark.git]

Z = SHA1.null_hex


def repo_with_commits(
    git: Git, git_repo: Callable[..., Path], fmt: str = "sha1"
) -> tuple[Path, list[str]]:
    repo = git_repo(object_format=fmt)
    for n in range(3):
        git("commit", "-q", "--allow-empty", "-m", f"c{n}", cwd=repo)
    ids = [git("rev-parse", f"HEAD~{2 - n}", cwd=repo).strip() for n in range(3)]
    return repo, ids


def stack_options(fmt: str = "sha1", auto_compact: bool = True) -> StackOptions:
    return StackOptions(
        write_options=WriteOptions(hash="sha256" if fmt == "sha256" else "sha1"),
        auto_compact=auto_compact,
    )


async def run_git(git: Git, *args: str, repo: Path, compact: bool = True) -> None:
    env = None if compact else NO_COMPACT
    await anyio.to_thread.run_sync(lambda: git(*args, cwd=repo, env=env))


async def take(feed: ChangeFeed, count: int) -> list[RefChange]:
    out: list[RefChange] = []
    with anyio.fail_after(20):
        async for change in feed:
            out.append(change)
            if len(out) == count:
                break
    return out


async def test_git_and_our_updates_arrive_once_in_order(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    repo, (c0, c1, c2) = repo_with_commits(git, git_repo)
    async with (
        open_ref_store(repo, env=ENV) as store,
        store.watch(prefix="refs/heads/") as feed,
    ):
        start = await feed.start()
        assert start == store.statistics().max_update_index
        await run_git(git, "update-ref", "-m", "git made a", "refs/heads/a", c0, repo=repo)
        async with store.transaction(message="we moved a") as tx:
            tx.update("refs/heads/a", c1, old=c0)
            tx.create("refs/heads/b", c2)
        await run_git(git, "tag", "t", c0, repo=repo)  # outside the prefix
        await run_git(git, "symbolic-ref", "refs/heads/s", "refs/heads/b", repo=repo)
        await run_git(git, "update-ref", "-d", "refs/heads/a", repo=repo)
        got = await take(feed, 5)
    assert got == [
        RefChange("refs/heads/a", Z, c0, start + 1, "git made a"),
        RefChange("refs/heads/a", c0, c1, start + 2, "we moved a"),
        RefChange("refs/heads/b", Z, c2, start + 2, "we moved a"),
        RefChange("refs/heads/s", Z, "ref:refs/heads/b", start + 4, ""),
        RefChange("refs/heads/a", c1, Z, start + 5, None),
    ]


async def test_head_flip_and_sha256(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, (c0, _, c2) = repo_with_commits(git, git_repo, "sha256")
    path = repo / ".git" / "reftable"
    async with (
        open_stack(path, stack_options("sha256"), create=False) as st,
        ChangeFeed(st, SHA256, poll_interval=0.02) as feed,
    ):
        start = await feed.start()
        await run_git(git, "branch", "side", c0, repo=repo)
        await run_git(git, "symbolic-ref", "HEAD", "refs/heads/side", repo=repo)
        got = await take(feed, 2)
    assert [(c.refname, c.old, c.new) for c in got] == [
        ("refs/heads/side", SHA256.null_hex, c0),
        ("HEAD", "ref:refs/heads/main", "ref:refs/heads/side"),
    ]
    assert c2 not in {c.new for c in got}
    assert [c.update_index for c in got] == [start + 1, start + 2]


async def test_resume_after_an_update_index_and_the_gap_error(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    """Branches have reflogs (they survive compaction: resuming stays exact); tags have
    none, so once a compaction merged the tables around the resume point, it is an error."""
    repo, ids = repo_with_commits(git, git_repo)
    for n in range(6):
        for kind in ("heads", "tags"):
            await run_git(git, "update-ref", "-m", f"m{n}", f"refs/{kind}/r{n}", ids[n % 3],
                          repo=repo, compact=False)  # fmt: skip
    path = repo / ".git" / "reftable"
    async with open_stack(path, stack_options(auto_compact=False), create=False) as stack:
        top = (await stack.snapshot()).max_update_index
        since = top - 8  # after refs/heads/r1 and refs/tags/r1
        expect = [
            RefChange(f"refs/{kind}/r{n}", Z, ids[n % 3], since + 1 + 2 * (n - 2) + k, msg)
            for n in range(2, 6)
            for k, (kind, msg) in enumerate((("heads", f"m{n}"), ("tags", None)))
        ]
        async with ChangeFeed(stack, SHA1, prefix="refs/", since=since) as feed:
            assert await take(feed, 8) == expect
        assert feed.update_index == top

        await run_git(git, "pack-refs", repo=repo)  # one table holds updates 1..top now
        assert len(await stack.snapshot()) == 1
        async with ChangeFeed(stack, SHA1, prefix="refs/heads/", since=since) as feed:
            assert await take(feed, 4) == [c for c in expect if "heads" in c.refname]
        with pytest.raises(ChangeFeedGapError) as info:
            await take(ChangeFeed(stack, SHA1, prefix="refs/tags/", since=since), 1)
        assert info.value.since == since and info.value.covers == (1, top)
        assert "refs/tags/r2" in str(info.value) and "merged updates 1.." in str(info.value)
        # from 0 the whole current state arrives (tags once each, branches step by step)
        async with ChangeFeed(stack, SHA1, prefix="refs/tags/", since=0) as feed:
            got = await take(feed, 6)
        assert sorted(c.refname for c in got) == [f"refs/tags/r{n}" for n in range(6)]
        assert all(c.old == Z for c in got)


async def test_a_compaction_between_reads(git: Git, git_repo: Callable[..., Path]) -> None:
    """Tables merged before the feed read them: a ref with a reflog still arrives step by
    step; one without (a tag), or whose reflog went with a deletion, arrives once, from
    the value the feed last saw to the newest."""
    repo, (c0, c1, c2) = repo_with_commits(git, git_repo)
    path = repo / ".git" / "reftable"

    async def update(*args: str) -> None:
        await run_git(git, "update-ref", *args, repo=repo, compact=False)

    async with open_stack(path, stack_options(auto_compact=False), create=False) as stack:
        await update("refs/heads/x", c0)
        await update("refs/tags/t", c0)
        before: Snapshot = await stack.snapshot()
        at = before.max_update_index
        for oid in (c1, c2):
            await update("-m", f"to {oid[:7]}", "refs/heads/x", oid)
            await update("refs/tags/t", oid)
        await update("-d", "refs/heads/x")  # the reflog goes with the branch
        await update("-m", "again", "refs/heads/x", c1)
        await update("-m", "new", "refs/heads/y", c0)
        await update("-m", "y1", "refs/heads/y", c1)
        await stack.compact_all()
        after = await stack.snapshot()
        assert len(after) == 1
        got = changes_between(before, after.readers, at, b"refs/", SHA1, at)
        assert got == [
            RefChange("refs/tags/t", c0, c2, at + 4, None),
            RefChange("refs/heads/x", c0, c1, at + 6, "again"),
            RefChange("refs/heads/y", Z, c0, at + 7, "new"),
            RefChange("refs/heads/y", c0, c1, at + 8, "y1"),
        ]
        # a resume point inside the merged table: exact for y, unknown for t and x
        with pytest.raises(ChangeFeedGapError, match=r"refs/(tags/t|heads/x)"):
            changes_between(before, after.readers, at, b"refs/", SHA1, at + 1)
        assert changes_between(before, after.readers, at, b"refs/heads/y", SHA1, at + 7) == [
            RefChange("refs/heads/y", c0, c1, at + 8, "y1")
        ]


async def test_watching_through_compactions_loses_nothing(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    """Writers (git and us) and compactions while a feed runs: per ref, each change starts
    where the previous one ended, nothing arrives twice, and the last values are the
    stack's."""
    repo, ids = repo_with_commits(git, git_repo)
    names = [f"refs/heads/w{n}" for n in range(4)]
    async with (
        open_stack(repo / ".git" / "reftable", stack_options(), create=False) as stack,
        open_ref_store(repo, env=ENV) as store,
    ):
        feed = ChangeFeed(stack, SHA1, prefix="refs/heads/w")
        start = await feed.start()
        got: list[RefChange] = []

        async def consume() -> None:
            async for change in feed:
                got.append(change)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for step in range(24):
                name, oid = names[step % 4], ids[step % 3]
                if step % 3 == 0:
                    await run_git(git, "update-ref", name, oid, repo=repo)
                else:
                    async with store.transaction(message=f"step {step}") as tx:
                        tx.update(name, oid)
                if step % 7 == 6:
                    with contextlib.suppress(LockError):  # git may be compacting too
                        await stack.compact_all()
            final = await stack.snapshot()
            with anyio.fail_after(20):
                while not got or got[-1].update_index < final.max_update_index:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            await feed.aclose()
            tg.cancel_scope.cancel()
        expected = {n: (final.ref(n.encode()) or pytest.fail(n)).oid.hex() for n in names}
    # branches keep reflogs, so even updates merged by a compaction arrive one by one
    assert [c.update_index for c in got] == list(range(start + 1, start + 25))
    last: dict[str, str] = {}
    for change in got:
        assert change.old == last.get(change.refname, Z), change
        last[change.refname] = change.new
    assert last == expected


@pytest.mark.parametrize("poll_interval", [None, 0.02])
async def test_a_waiting_feed_wakes_fast_and_stops_at_once(
    git: Git, git_repo: Callable[..., Path], poll_interval: float | None
) -> None:
    repo, (c0, _, _) = repo_with_commits(git, git_repo)
    async with open_stack(repo / ".git" / "reftable", stack_options(), create=False) as stack:
        feed = ChangeFeed(stack, SHA1, poll_interval=poll_interval)
        arrived: list[float] = []

        async def consume() -> None:
            async for _ in feed:
                arrived.append(time.monotonic())

        async with anyio.create_task_group() as tg:
            await feed.start()
            tg.start_soon(consume)
            await anyio.sleep(0.3)  # the feed is waiting (on inotify or its poll)
            sent = time.monotonic()
            await run_git(git, "update-ref", "refs/heads/z", c0, repo=repo)
            with anyio.fail_after(10):
                while not arrived:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            assert arrived[0] - sent < 5  # bounded; latency is measured in benchmarks/
            cancelled = time.monotonic()
            tg.cancel_scope.cancel()
        assert time.monotonic() - cancelled < 2
        await feed.aclose()
        assert [p.name for p in (repo / ".git" / "reftable").iterdir() if ".lock" in p.name] == []


async def test_bad_arguments(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, (c0, _, _) = repo_with_commits(git, git_repo)
    async with open_stack(repo / ".git" / "reftable", stack_options(), create=False) as stack:
        with pytest.raises(ValueError, match="since"):
            ChangeFeed(stack, SHA1, since=-1)
        with pytest.raises(ValueError, match="poll_interval"):
            ChangeFeed(stack, SHA1, poll_interval=0)
        # a resume point in the future: nothing until the stack gets there
        top = (await stack.snapshot()).max_update_index
        async with ChangeFeed(stack, SHA1, since=top + 1, poll_interval=0.02) as feed:
            async with open_ref_store(repo, env=ENV) as store:
                for name in ("refs/heads/f1", "refs/heads/f2"):
                    async with store.transaction() as tx:
                        tx.create(name, c0)
            got = await take(feed, 1)
        assert [(c.refname, c.update_index) for c in got] == [("refs/heads/f2", top + 2)]


async def take_until(feed: ChangeFeed, sentinel: str) -> list[RefChange]:
    """Every change up to and including the first of ``sentinel`` (a ref written last, so
    that nothing the feed delivers before it can be missed or hidden)."""
    out: list[RefChange] = []
    with anyio.fail_after(20):
        async for change in feed:
            out.append(change)
            if change.refname == sentinel:
                break
    return out


@pytest.mark.usefixtures("no_autocompact")
@pytest.mark.parametrize("read_between", [False, True])
async def test_a_reflog_expiry_is_no_change(
    git: Git, git_repo: Callable[..., Path], read_between: bool
) -> None:
    """An expiry rewrites a reflog in a new table: the kept entries again, at their old
    update indexes (git does the same). No ref transaction committed them, so the feed
    delivers none of them, whether it read their first table before the expiry or reads
    both at once; the no-op ref record of ``update_ref`` is no change either (one that
    moves the ref back is)."""
    repo, (c0, c1, c2) = repo_with_commits(git, git_repo)
    async with (
        open_ref_store(repo, env=ENV) as store,
        store.watch(prefix="refs/heads/") as feed,
    ):
        start = await feed.start()
        got: list[RefChange] = []
        for n, oid in enumerate((c0, c1)):
            async with store.transaction(message=f"x{n}") as tx:
                tx.update("refs/heads/x", oid)
        async with store.transaction(message="y") as tx:
            tx.create("refs/heads/y", c0)
        if read_between:
            got += await take_until(feed, "refs/heads/y")
        tables = len(await store._main.snapshot())
        assert await store.expire_reflog("refs/heads/x", ExpirePolicy(expire=0)) == []
        none = ExpirePolicy(expire=0)
        assert await store.expire_reflog("refs/heads/x", none, rewrite=True, update_ref=True) == []
        assert len(await store.expire_reflog("refs/heads/y", ExpirePolicy(expire=2**63 - 1))) == 1
        assert len(await store._main.snapshot()) == tables + 3  # git writes these tables too
        async with store.transaction(message="x2") as tx:
            tx.update("refs/heads/x", c2, old=c1)
        # pruning the newest entry with update_ref moves the ref back: that is delivered
        assert len(await store.delete_reflog_entry("refs/heads/x", 0, update_ref=True)) == 1
        async with store.transaction() as tx:
            tx.create("refs/heads/zz", c0)
        got += await take_until(feed, "refs/heads/zz")
    assert got == [
        RefChange("refs/heads/x", Z, c0, start + 1, "x0"),
        RefChange("refs/heads/x", c0, c1, start + 2, "x1"),
        RefChange("refs/heads/y", Z, c0, start + 3, "y"),
        RefChange("refs/heads/x", c1, c2, start + 7, "x2"),
        RefChange("refs/heads/x", c2, c1, start + 8, None),
        RefChange("refs/heads/zz", Z, c0, start + 9, ""),
    ]


async def test_git_reflog_expire_beside_the_feed(git: Git, git_repo: Callable[..., Path]) -> None:
    """git's ``reflog expire`` (which prunes nothing here: every entry is kept) rewrites
    the reflogs of a branch and of HEAD, whose entries of a commit are log-only; git's
    reference-transaction hook shows nothing for it, and neither does the feed."""
    repo, (c0, c1, c2) = repo_with_commits(git, git_repo)
    async with open_ref_store(repo, env=ENV) as store, store.watch() as feed:
        start = await feed.start()
        await run_git(git, "update-ref", "-m", "x0", "refs/heads/x", c0, repo=repo, compact=False)
        await run_git(git, "commit", "-q", "--allow-empty", "-m", "c3", repo=repo, compact=False)
        c3 = git("rev-parse", "HEAD", cwd=repo).strip()
        never = ("--expire=never", "--expire-unreachable=never")
        await run_git(git, "reflog", "expire", *never, "--all", repo=repo, compact=False)
        await run_git(git, "reflog", "expire", *never, "--updateref", "--rewrite",
                      "refs/heads/x", repo=repo, compact=False)  # fmt: skip
        await run_git(git, "update-ref", "-m", "x1", "refs/heads/x", c1, repo=repo, compact=False)
        await run_git(git, "update-ref", "refs/heads/zz", c0, repo=repo, compact=False)
        got = await take_until(feed, "refs/heads/zz")
        top = (await store._main.snapshot()).max_update_index
    commit = "commit: c3"
    assert got == [
        RefChange("refs/heads/x", Z, c0, start + 1, "x0"),
        RefChange("HEAD", c2, c3, start + 2, commit),
        RefChange("refs/heads/main", c2, c3, start + 2, commit),
        RefChange("refs/heads/x", c0, c1, top - 1, "x1"),
        RefChange("refs/heads/zz", Z, c0, top, ""),
    ]


@pytest.mark.usefixtures("no_autocompact")
async def test_an_expiry_merged_with_later_tables(git: Git, git_repo: Callable[..., Path]) -> None:
    """A compaction of the expiry's table with later ones (not with the tables that first
    wrote the entries) keeps the rewritten entries below the merged table's first update
    index: they are not delivered again."""
    repo, (c0, c1, _) = repo_with_commits(git, git_repo)
    async with (
        open_ref_store(repo, env=ENV) as store,
        store.watch(prefix="refs/heads/") as feed,
    ):
        start = await feed.start()
        for n, oid in enumerate((c0, c1)):
            async with store.transaction(message=f"x{n}") as tx:
                tx.update("refs/heads/x", oid)
        await store.expire_reflog("refs/heads/x", ExpirePolicy(expire=0))
        async with store.transaction(message="y") as tx:
            tx.create("refs/heads/y", c0)
        snap = await store._main.snapshot()
        assert await store._main.compact_range(len(snap) - 2, len(snap) - 1)
        merged = (await store._main.snapshot()).readers[-1]
        assert (merged.min_update_index, merged.max_update_index) == (start + 3, start + 4)
        assert {log.update_index for log in merged.iter_logs(b"refs/heads/x")} == {
            start + 1,
            start + 2,
        }
        async with store.transaction() as tx:
            tx.create("refs/heads/zz", c0)
        got = await take_until(feed, "refs/heads/zz")
    assert got == [
        RefChange("refs/heads/x", Z, c0, start + 1, "x0"),
        RefChange("refs/heads/x", c0, c1, start + 2, "x1"),
        RefChange("refs/heads/y", Z, c0, start + 4, "y"),
        RefChange("refs/heads/zz", Z, c0, start + 5, ""),
    ]
