"""Reflog maintenance against git on a twin: create/delete (git checkout -l --orphan and
back), ``git reflog delete [--rewrite] [--updateref] REF@{n}``, ``git reflog expire``, the
existence marker, predicates, dry runs and physical removal by compaction."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from conftest import Git
from refs_helpers import ENV, make_twins, object_ids, reflog_dump, refs_verify, show_refs

from aioreftable import ExpirePolicy, ReflogEntry, StackOptions, open_ref_store, open_stack
from aioreftable._format._writer import HashName
from aioreftable._refs import RepoConfig
from aioreftable.lowlevel import LogRecord, WriteOptions

pytestmark = [pytest.mark.anyio, pytest.mark.git]

BASE = 1112354055
NO_COMPACT = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
TIME_MAX = 2**63 - 1  # git's "all" / "now" for --expire


@pytest.fixture
def no_autocompact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our stores do not auto-compact (git runs with GIT_TEST_REFTABLE_AUTOCOMPACTION=false),
    so that tombstones stay visible on both twins."""
    original = RepoConfig.stack_options

    def stack_options(self: RepoConfig) -> StackOptions:
        return dataclasses.replace(original(self), auto_compact=False)

    monkeypatch.setattr(RepoConfig, "stack_options", stack_options)


async def all_records(repo: Path, *, deletions: bool = True) -> tuple[list[Any], list[Any]]:
    """Every ref and log record of the main stack, tombstones included."""
    config = (repo / ".git" / "config").read_text()
    fmt: HashName = "sha256" if "sha256" in config else "sha1"
    options = StackOptions(write_options=WriteOptions(hash=fmt))
    async with open_stack(repo / ".git" / "reftable", options, create=False) as stack:
        snap = await stack.snapshot()
        return (
            list(snap.iter_refs(b"", include_deletions=deletions)),
            list(snap.iter_logs(include_deletions=deletions)),
        )


def tables(repo: Path) -> list[str]:
    return (repo / ".git" / "reftable" / "tables.list").read_text().split()


def table_bytes(repo: Path) -> list[bytes]:
    """The stack's tables, byte for byte (their names hold a random suffix)."""
    return [(repo / ".git" / "reftable" / name).read_bytes() for name in tables(repo)]


async def assert_same(git: Git, theirs: Path, ours: Path) -> None:
    assert show_refs(git, ours) == show_refs(git, theirs)
    assert reflog_dump(git, ours) == reflog_dump(git, theirs)
    assert await all_records(ours) == await all_records(theirs)
    assert [t.rsplit("-", 1)[0] for t in tables(ours)] == [
        t.rsplit("-", 1)[0] for t in tables(theirs)
    ]
    refs_verify(git, ours)


def history(git: Git, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Twins whose main (and HEAD) reflog has 3 commits plus 4 updates at distinct times."""
    theirs, ours = make_twins(git, tmp_path)
    ids = object_ids(git, theirs)
    steps = [ids["c0"], ids["c1"], ids["c0"], ids["c2"]]
    for repo in (theirs, ours):
        for k, oid in enumerate(steps, 1):
            env = {"GIT_COMMITTER_DATE": f"{BASE + 100 * k} +0200"}
            git("update-ref", "-m", f"step {k}", "refs/heads/main", oid, cwd=repo, env=env)
    return theirs, ours, ids


DELETE_CASES = [
    ("refs/heads/main", 0, False, False),
    ("refs/heads/main", 1, True, False),
    ("refs/heads/main", 1, True, True),
    ("refs/heads/main", 0, False, True),
    ("refs/heads/main", 3, True, True),
    ("refs/heads/main", 6, True, True),  # the oldest entry
    ("refs/heads/main", 9, False, False),  # out of range: git still rewrites every entry
    ("HEAD", 1, True, True),  # a symref: --updateref does not touch it
]


@pytest.mark.parametrize(("name", "n", "rewrite", "updateref"), DELETE_CASES)
async def test_delete_entry_like_git(
    git: Git,
    tmp_path: Path,
    no_autocompact: None,
    name: str,
    n: int,
    rewrite: bool,
    updateref: bool,
) -> None:
    theirs, ours, _ = history(git, tmp_path)
    flags = ["--rewrite"] * rewrite + ["--updateref"] * updateref
    git("reflog", "delete", *flags, f"{name}@{{{n}}}", cwd=theirs, env=NO_COMPACT)
    async with open_ref_store(ours, env=ENV) as store:
        before = await store.reflog(name)
        pruned = await store.delete_reflog_entry(name, n, rewrite=rewrite, update_ref=updateref)
    assert pruned == ([before[n]] if n < len(before) else [])
    await assert_same(git, theirs, ours)


EXPIRE_CASES = [
    (BASE + 150, False, False),
    (BASE + 150, True, False),
    (BASE + 250, True, True),
    (BASE + 1, False, True),  # prunes the three commits only
    (TIME_MAX, False, False),  # everything: an existence marker stays
    (TIME_MAX, True, True),
    (0, False, False),  # nothing pruned: git still writes a table of every entry again
    (0, True, True),  # ... and the ref record, unchanged
]


@pytest.mark.parametrize(("expire", "rewrite", "updateref"), EXPIRE_CASES)
async def test_expire_like_git(
    git: Git, tmp_path: Path, no_autocompact: None, expire: int, rewrite: bool, updateref: bool
) -> None:
    theirs, ours, _ = history(git, tmp_path)
    arg = {TIME_MAX: "all", 0: "never"}.get(expire, f"@{expire}")
    flags = ["--rewrite"] * rewrite + ["--updateref"] * updateref
    count = len(tables(theirs))
    git(
        "reflog", "expire", f"--expire={arg}", "--expire-unreachable=never", *flags,
        "refs/heads/main", "HEAD", cwd=theirs, env=NO_COMPACT,
    )  # fmt: skip
    assert len(tables(theirs)) == count + 2  # a table per ref, even when nothing is pruned
    async with open_ref_store(ours, env=ENV) as store:
        policy = ExpirePolicy(expire=expire)
        for name in ("refs/heads/main", "HEAD"):
            before = await store.reflog(name)
            pruned = await store.expire_reflog(name, policy, rewrite=rewrite, update_ref=updateref)
            assert pruned == [e for e in before if e.time < expire]
        assert await store.reflog_exists("refs/heads/main")
    await assert_same(git, theirs, ours)
    assert table_bytes(ours) == table_bytes(theirs)
    if expire == TIME_MAX:
        assert git.run("reflog", "exists", "refs/heads/main", cwd=ours).returncode == 0
        assert git("reflog", "show", "refs/heads/main", cwd=ours) == ""


async def test_dry_run_writes_nothing(git: Git, tmp_path: Path, no_autocompact: None) -> None:
    theirs, ours, _ = history(git, tmp_path)
    out = git(
        "reflog", "expire", "--dry-run", "--verbose", f"--expire=@{BASE + 250}",
        "--expire-unreachable=never", "refs/heads/main", cwd=theirs, env=NO_COMPACT,
    )  # fmt: skip
    git("reflog", "delete", "--dry-run", "refs/heads/main@{2}", cwd=theirs, env=NO_COMPACT)
    async with open_ref_store(ours, env=ENV) as store:
        policy = ExpirePolicy(expire=BASE + 250)
        pruned = await store.expire_reflog("refs/heads/main", policy, dry_run=True)
        said = [
            line.removeprefix("prune ") for line in out.splitlines() if line.startswith("prune")
        ]
        assert [e.message.rstrip("\n") for e in reversed(pruned)] == said  # git: oldest first
        assert len(said) == 5
        assert len(await store.delete_reflog_entry("refs/heads/main", 2, dry_run=True)) == 1
    await assert_same(git, theirs, ours)


async def test_predicate_prunes_like_reflog_delete(
    git: Git, tmp_path: Path, no_autocompact: None
) -> None:
    """A predicate pruning entries 1 and 3 writes one table; git needs two deletes (newest
    index first), whose tombstones and rewritten old ids end up the same."""
    theirs, ours, _ = history(git, tmp_path)
    git("reflog", "delete", "--rewrite", "refs/heads/main@{3}", cwd=theirs, env=NO_COMPACT)
    git("reflog", "delete", "--rewrite", "refs/heads/main@{1}", cwd=theirs, env=NO_COMPACT)
    seen: list[ReflogEntry] = []

    async def should_prune(entry: ReflogEntry) -> bool:  # an async hook
        seen.append(entry)
        return entry.message in ("step 1\n", "step 3\n")

    async with open_ref_store(ours, env=ENV) as store:
        before = await store.reflog("refs/heads/main", oldest_first=True)
        pruned = await store.expire_reflog(
            "refs/heads/main", ExpirePolicy(should_prune=should_prune), rewrite=True
        )
        assert seen == before  # called oldest first, with every live entry
        assert [e.message for e in pruned] == ["step 3\n", "step 1\n"]
    assert reflog_dump(git, ours) == reflog_dump(git, theirs)
    ours_refs, ours_logs = await all_records(ours)
    theirs_refs, theirs_logs = await all_records(theirs)
    assert ours_refs == theirs_refs
    live = [log for log in ours_logs if not log.is_deletion]
    assert live == [log for log in theirs_logs if not log.is_deletion]
    dead = [(log.refname, log.update_index) for log in ours_logs if log.is_deletion]
    assert dead == [(log.refname, log.update_index) for log in theirs_logs if log.is_deletion]
    refs_verify(git, ours)


async def test_create_and_delete_reflog_like_checkout_orphan(
    git: Git, tmp_path: Path, no_autocompact: None
) -> None:
    """``checkout -l --orphan foo`` (logAllRefUpdates=false) calls create_reflog; switching
    back deletes the reflog of the unborn branch."""
    theirs, ours = make_twins(git, tmp_path)
    git("config", "core.logAllRefUpdates", "false", cwd=theirs)
    git("config", "core.logAllRefUpdates", "false", cwd=ours)
    git("checkout", "-q", "-l", "--orphan", "foo", cwd=theirs, env=NO_COMPACT)
    async with open_ref_store(ours, env=ENV) as store:
        assert await store.create_reflog("refs/heads/foo")
        async with store.transaction(message="checkout: moving from main to foo") as tx:
            tx.symref_update("HEAD", "refs/heads/foo")
    await assert_same(git, theirs, ours)
    assert git.run("reflog", "exists", "refs/heads/foo", cwd=ours).returncode == 0
    _, logs = await all_records(ours)
    marker = next(log for log in logs if log.refname == b"refs/heads/foo")
    null = bytes(20)
    assert marker == LogRecord(marker.refname, marker.update_index, old_id=null, new_id=null)
    git("checkout", "-q", "main", cwd=theirs, env=NO_COMPACT)
    async with open_ref_store(ours, env=ENV) as store:
        assert not await store.create_reflog("refs/heads/foo")  # exists: nothing written
        async with store.transaction(message="checkout: moving from foo to main") as tx:
            tx.symref_update("HEAD", "refs/heads/main")
        assert await store.delete_reflog("refs/heads/foo") == 1
        assert not await store.reflog_exists("refs/heads/foo")
    await assert_same(git, theirs, ours)
    assert git.run("reflog", "exists", "refs/heads/foo", cwd=ours, check=False).returncode == 1


async def test_delete_reflog_tombstones_every_entry(
    git: Git, tmp_path: Path, no_autocompact: None
) -> None:
    _, ours, _ = history(git, tmp_path)
    async with open_ref_store(ours, env=ENV) as store:
        before = len(tables(ours))
        _, logs = await all_records(ours)
        indexes = [log.update_index for log in logs if log.refname == b"refs/heads/main"]
        assert await store.delete_reflog("refs/heads/main") == len(indexes) == 7
        assert len(tables(ours)) == before + 1
        assert await store.reflog("refs/heads/main") == []
        assert await store.read("refs/heads/main") is not None  # the ref stays
        assert await store.delete_reflog("refs/heads/main") == 0  # nothing left: no table
        assert len(tables(ours)) == before + 1
    _, logs = await all_records(ours)
    dead = [log.update_index for log in logs if log.refname == b"refs/heads/main"]
    assert dead == indexes and all(log.is_deletion for log in logs if log.refname.endswith(b"main"))
    assert git("reflog", "show", "refs/heads/main", cwd=ours) == ""
    refs_verify(git, ours)


async def test_compaction_drops_tombstones(git: Git, tmp_path: Path, no_autocompact: None) -> None:
    """Expired entries stay in the stack as tombstones until a compaction from the bottom;
    git pack-refs on the twin gives the same single table."""
    theirs, ours, _ = history(git, tmp_path)
    git(
        "reflog", "expire", f"--expire=@{BASE + 250}", "--expire-unreachable=never",
        "refs/heads/main", cwd=theirs, env=NO_COMPACT,
    )  # fmt: skip
    async with open_ref_store(ours, env=ENV) as store:
        await store.expire_reflog("refs/heads/main", ExpirePolicy(expire=BASE + 250))
    _, logs = await all_records(ours)
    assert sum(log.is_deletion for log in logs) == 5
    git("pack-refs", cwd=theirs)
    async with open_ref_store(ours, env=ENV) as store:
        await store._main.compact_all()
    assert len(tables(ours)) == 1
    _, logs = await all_records(ours)
    assert not any(log.is_deletion for log in logs)
    assert await all_records(ours) == await all_records(theirs)
    assert reflog_dump(git, ours) == reflog_dump(git, theirs)
    refs_verify(git, ours)


async def test_missing_reflog_and_bad_names(git: Git, tmp_path: Path) -> None:
    _, ours = make_twins(git, tmp_path)
    async with open_ref_store(ours, env=ENV) as store:
        before = tables(ours)
        assert await store.expire_reflog("refs/heads/nope", ExpirePolicy(expire=TIME_MAX)) == []
        assert await store.delete_reflog_entry("refs/heads/nope", 0) == []
        assert tables(ours) == before
        with pytest.raises(ValueError):
            await store.delete_reflog_entry("refs/heads/main", -1)
        from aioreftable import RefnameError

        with pytest.raises(RefnameError):
            await store.create_reflog("refs/heads/a..b")
