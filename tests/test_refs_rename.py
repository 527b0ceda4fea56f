"""rename/copy against ``git branch -m/-M/-c`` on a twin: records (tombstones and update
indexes included), reflogs (HEAD's too), D/F conflicts, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Git
from refs_helpers import ENV, make_twins
from test_refs_reflog_ops import NO_COMPACT, assert_same, no_autocompact

from aioreftable import (
    NameConflictError,
    RefExistsError,
    RefMissingError,
    TransactionError,
    open_ref_store,
)

pytestmark = [pytest.mark.anyio, pytest.mark.git]
__all__ = ["no_autocompact"]  # the fixture, imported for its side effect


def twins(git: Git, tmp_path: Path) -> tuple[Path, Path]:
    theirs, ours = make_twins(git, tmp_path)
    for repo in (theirs, ours):
        git("branch", "side", "HEAD~1", cwd=repo)
        git("update-ref", "-m", "moved", "refs/heads/side", "HEAD~2", cwd=repo)
        git("branch", "a/b", "HEAD", cwd=repo)
    return theirs, ours


CASES = [
    ("-m", "main", "renamed"),  # HEAD's branch: HEAD's log gets the deletion, then HEAD moves
    ("-m", "side", "other"),
    ("-m", "side", "side/deeper"),  # D/F against the old name itself is fine
    ("-m", "a/b", "a"),
    ("-M", "side", "a/b"),  # onto an existing branch (its reflog stays underneath)
    ("-c", "side", "copy"),
    ("-c", "main", "copy"),  # copying HEAD's branch leaves HEAD alone
    ("-C", "main", "side"),
]


@pytest.mark.parametrize(("flag", "old", "new"), CASES)
async def test_like_git_branch(
    git: Git, tmp_path: Path, no_autocompact: None, flag: str, old: str, new: str
) -> None:
    theirs, ours = twins(git, tmp_path)
    git("branch", flag, old, new, cwd=theirs, env=NO_COMPACT)
    copy = flag in ("-c", "-C")
    force = flag in ("-M", "-C")
    old_ref, new_ref = f"refs/heads/{old}", f"refs/heads/{new}"
    message = f"Branch: {'copied' if copy else 'renamed'} {old_ref} to {new_ref}"
    async with open_ref_store(ours, env=ENV) as store:
        head = await store.read("HEAD")
        if copy:
            await store.copy(old_ref, new_ref, message, force=force)
        else:
            await store.rename(old_ref, new_ref, message, force=force)
            if head is not None and head.target == old_ref:  # what branch.c does next
                async with store.transaction(message=message) as tx:
                    tx.symref_update("HEAD", new_ref)
    await assert_same(git, theirs, ours)


@pytest.mark.parametrize("flag", ["-m", "-c"])
async def test_name_conflict_like_git(git: Git, tmp_path: Path, flag: str) -> None:
    theirs, ours = twins(git, tmp_path)
    proc = git.run("branch", flag, "side", "a", cwd=theirs, check=False)
    assert proc.returncode != 0
    before = (ours / ".git" / "reftable" / "tables.list").read_text()
    async with open_ref_store(ours, env=ENV) as store:
        op = store.copy if flag == "-c" else store.rename
        with pytest.raises(NameConflictError) as info:
            await op("refs/heads/side", "refs/heads/a", "msg", force=True)
        assert f"error: {info.value}\n" in proc.stderr.decode()
        with pytest.raises(NameConflictError) as info:
            await op("refs/heads/side", "refs/heads/a/b/c", "msg")
        assert str(info.value) == "'refs/heads/a/b' exists; cannot create 'refs/heads/a/b/c'"
    assert (ours / ".git" / "reftable" / "tables.list").read_text() == before


async def test_refusals(git: Git, tmp_path: Path) -> None:
    _, ours = twins(git, tmp_path)
    async with open_ref_store(ours, env=ENV) as store:
        async with store.transaction() as tx:
            tx.symref_update("refs/heads/sym", "refs/heads/main")
        with pytest.raises(TransactionError) as info:
            await store.rename("refs/heads/sym", "refs/heads/x", "m")
        assert str(info.value) == (
            "refname refs/heads/sym is a symbolic ref, copying it is not supported"
        )
        with pytest.raises(RefMissingError, match="refname refs/heads/nope not found"):
            await store.copy("refs/heads/nope", "refs/heads/x", "m")
        with pytest.raises(RefExistsError):
            await store.rename("refs/heads/side", "refs/heads/main", "m")
        with pytest.raises(TransactionError, match="invalid ref name"):
            await store.rename("refs/heads/side", "refs/heads/bad..name", "m")
        before = (ours / ".git" / "reftable" / "tables.list").read_text()
        await store.rename("refs/heads/side", "refs/heads/side", "m")  # same name: no-op
        assert (ours / ".git" / "reftable" / "tables.list").read_text() == before
        assert await store.read("refs/heads/x") is None
