"""Reading through the ref store: read, resolve, iterate, pseudorefs, reflogs git wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Git
from refs_helpers import ENV, make_twins, object_ids

import aioreftable
from aioreftable import (
    IncorrectOldValueError,
    LockError,
    NameConflictError,
    RefExistsError,
    RefnameError,
    TransactionError,
    open_ref_store,
)
from aioreftable._refs import SymrefDepthError

pytestmark = [pytest.mark.anyio, pytest.mark.git]


@pytest.fixture
def repo(git: Git, tmp_path: Path) -> Path:
    return make_twins(git, tmp_path)[1]


async def test_read_and_resolve(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        head = await store.read("HEAD")
        assert head == aioreftable.Ref("HEAD", None, "refs/heads/main")
        assert await store.resolve("HEAD") == ids["c2"]
        tag = await store.read("refs/tags/v1")
        assert tag is not None and tag.oid == ids["tag"] and tag.peeled == ids["c1"]
        assert await store.read("refs/heads/nope") is None
        assert await store.resolve("refs/heads/nope") is None


async def test_resolve_loops_and_depth(git: Git, repo: Path) -> None:
    git("symbolic-ref", "refs/heads/l1", "refs/heads/l2", cwd=repo)
    git("symbolic-ref", "refs/heads/l2", "refs/heads/l1", cwd=repo)
    for n in range(5):
        git("symbolic-ref", f"refs/heads/d{n}", f"refs/heads/d{n + 1}", cwd=repo)
    git("symbolic-ref", "refs/heads/dangling", "refs/heads/unborn", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(SymrefDepthError):
            await store.resolve("refs/heads/l1")
        git("update-ref", "refs/heads/d5", "HEAD", cwd=repo)
        with pytest.raises(SymrefDepthError):  # d0 -> ... -> d5: 6 reads, git allows 5
            await store.resolve("refs/heads/d0")
        assert await store.resolve("refs/heads/d1") == object_ids(git, repo)["c2"]
        assert await store.resolve("refs/heads/dangling") is None
    assert git.run("rev-parse", "-q", "--verify", "refs/heads/d0", cwd=repo, check=False).returncode


async def test_iterate_matches_for_each_ref(git: Git, repo: Path) -> None:
    git("update-ref", "ORIG_HEAD", "HEAD~1", cwd=repo)
    git("update-ref", "refs/heads/zz/top", "HEAD", cwd=repo)
    git("symbolic-ref", "refs/heads/sym", "refs/heads/main", cwd=repo)
    fmt = "--format=%(refname) %(objectname) %(symref)"
    for root in (False, True):
        args = ["for-each-ref", fmt] + (["--include-root-refs"] if root else [])
        expected = git(*args, cwd=repo).splitlines()
        got = []
        async with open_ref_store(repo, env=ENV) as store:
            async for ref in store.iterate(include_root_refs=root):
                oid = await store.resolve(ref.name) if ref.target else ref.oid
                got.append(f"{ref.name} {oid} {ref.target or ''}")
        assert got == expected
    async with open_ref_store(repo, env=ENV) as store:
        names = [r.name async for r in store.iterate("refs/heads/")]
    assert names == ["refs/heads/main", "refs/heads/sym", "refs/heads/zz/top"]


async def test_pseudorefs_come_from_files(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    git_dir = repo / ".git"
    (git_dir / "FETCH_HEAD").write_text(f"{ids['c1']}\t\tbranch 'main' of ../x\n{ids['c0']}\n")
    (git_dir / "MERGE_HEAD").write_text(f"{ids['c0']}\n")
    async with open_ref_store(repo, env=ENV) as store:
        assert (await store.read("FETCH_HEAD")) == aioreftable.Ref("FETCH_HEAD", ids["c1"])
        assert await store.resolve("MERGE_HEAD") == ids["c0"]
        assert git("rev-parse", "FETCH_HEAD", cwd=repo).strip() == ids["c1"]
        names = [r.name async for r in store.iterate(include_root_refs=True)]
        assert "FETCH_HEAD" not in names and "MERGE_HEAD" not in names
        for name in ("FETCH_HEAD", "MERGE_HEAD"):
            with pytest.raises(RefnameError, match="refusing to update pseudoref"):
                async with store.transaction() as tx:
                    tx.update(name, ids["c2"])
        (git_dir / "MERGE_HEAD").unlink()
        assert await store.read("MERGE_HEAD") is None
    assert (git_dir / "FETCH_HEAD").read_text().startswith(ids["c1"])


async def test_git_written_reflogs(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    env = {"GIT_COMMITTER_NAME": "Zoë Q", "GIT_COMMITTER_EMAIL": "zq@example.org"}
    env["GIT_COMMITTER_DATE"] = "1700000000 -0830"
    git.run(
        "update-ref", "-m", "  spaced \t  out  ", "refs/heads/main", "HEAD~1", cwd=repo, env=env
    )
    async with open_ref_store(repo, env=ENV) as store:
        entries = await store.reflog("refs/heads/main")
        oldest = await store.reflog("refs/heads/main", oldest_first=True)
        assert await store.reflog("refs/heads/none") == []
    newest = entries[0]
    assert (newest.old, newest.new) == (ids["c2"], ids["c1"])
    assert (newest.name, newest.email, newest.time, newest.tz) == (
        "Zoë Q",
        "zq@example.org",
        1700000000,
        -830,
    )
    assert newest.message == "spaced out\n"
    assert oldest == entries[::-1]
    shown = git("reflog", "show", "--format=%gs", "refs/heads/main", cwd=repo).splitlines()
    assert shown == [e.message.rstrip("\n") for e in entries]


async def test_existence_markers_are_hidden(git: Git, repo: Path) -> None:
    git("reflog", "expire", "--expire=all", "refs/heads/main", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        assert await store.reflog("refs/heads/main") == []
        assert await store.reflog_exists("refs/heads/main")


async def test_our_reflogs_and_message_rules(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    long = "x" * 3000
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction(message="  a\n\n b\tc  ") as tx:
            tx.update("refs/heads/main", ids["c0"])
        async with store.transaction(message=long) as tx:
            tx.update("refs/heads/main", ids["c1"])
        async with store.transaction() as tx:
            tx.create("refs/tags/nolog", ids["c1"])  # tags get no reflog by default
        entries = await store.reflog("refs/heads/main")
        assert [e.message for e in entries[:2]] == ["x" * 2048 + "\n", "a b c\n"]
        assert await store.reflog("HEAD") != [] and (await store.reflog("HEAD"))[0].new == ids["c1"]
        assert await store.reflog("refs/tags/nolog") == []
    assert git("reflog", "show", "--format=%gs", "-1", "HEAD", cwd=repo).strip() == "x" * 2048


async def test_log_all_ref_updates(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    git("config", "core.logAllRefUpdates", "always", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction() as tx:
            tx.create("refs/tags/logged", ids["c1"])
        assert len(await store.reflog("refs/tags/logged")) == 1
    git("config", "core.logAllRefUpdates", "false", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction() as tx:
            tx.create("refs/heads/unlogged", ids["c1"])
            tx.update("refs/tags/logged", ids["c0"])  # an existing reflog keeps growing
        assert await store.reflog("refs/heads/unlogged") == []
        assert len(await store.reflog("refs/tags/logged")) == 2


async def test_errors_and_aborts(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(RefnameError) as info:
            async with store.transaction() as tx:
                tx.delete("../../my-private-file")
        assert info.value.refnames == ("../../my-private-file",)
        with pytest.raises(RefnameError):
            async with store.transaction() as tx:
                tx.update("refs/heads/bad..name", ids["c0"])
        with pytest.raises(RefExistsError) as exists:
            async with store.transaction() as tx:
                tx.create("refs/heads/new", ids["c0"])
                tx.create("refs/heads/main", ids["c0"])
        assert exists.value.refnames == ("refs/heads/main",)
        assert await store.read("refs/heads/new") is None  # nothing of it was written
        with pytest.raises(NameConflictError, match="'refs/heads/main' exists"):
            async with store.transaction() as tx:
                tx.create("refs/heads/main/forbidden", ids["c0"])
        with pytest.raises(IncorrectOldValueError):
            async with store.transaction() as tx:
                tx.update("refs/heads/main", ids["c0"], old=ids["c1"])
        with pytest.raises(KeyError):  # a body exception aborts and comes out unwrapped
            async with store.transaction() as tx:
                tx.create("refs/heads/new", ids["c0"])
                raise KeyError("boom")
        assert await store.read("refs/heads/new") is None
        assert issubclass(RefExistsError, TransactionError)


async def test_lock_timeout(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    git("config", "reftable.lockTimeout", "50", cwd=repo)
    lock = repo / ".git" / "reftable" / "tables.list.lock"
    lock.write_text("")
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(LockError):
            async with store.transaction() as tx:
                tx.update("refs/heads/main", ids["c0"])
        assert not issubclass(LockError, TransactionError)
    lock.unlink()


async def test_bare_and_git_dir_paths(git: Git, tmp_path: Path) -> None:
    git("init", "-q", "--bare", "--ref-format=reftable", "-b", "main", str(tmp_path / "b.git"))
    work = make_twins(git, tmp_path)[1]
    for path in (tmp_path / "b.git", work / ".git", work):
        async with open_ref_store(path, env=ENV) as store:
            head = await store.read("HEAD")
            assert head is not None and head.target == "refs/heads/main"


async def test_peel_function_without_object_database(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    seen: list[str] = []

    async def peel(oid: str) -> str | None:
        seen.append(oid)
        return ids["c1"] if oid == ids["tag"] else None

    async with open_ref_store(repo, env=ENV, peel=peel) as store:
        async with store.transaction() as tx:
            tx.create("refs/tags/v9", ids["tag"])
            tx.create("refs/tags/plain", ids["c0"])
            tx.create("refs/heads/unknown", "ab" * 20)  # a peel function cannot verify
        tag, plain = await store.read("refs/tags/v9"), await store.read("refs/tags/plain")
        assert tag is not None and tag.peeled == ids["c1"]
        assert plain is not None and plain.peeled is None
        async with store.transaction() as tx:
            tx.delete("refs/heads/unknown")
    assert sorted(seen) == sorted([ids["tag"], ids["c0"], "ab" * 20])
    async with open_ref_store(repo, env=ENV, object_database=False) as store:
        async with store.transaction() as tx:
            tx.create("refs/tags/v10", ids["tag"])
        tag = await store.read("refs/tags/v10")
        assert tag is not None and tag.peeled is None
    assert "refs/tags/v9^{}" in git("show-ref", "-d", cwd=repo)
