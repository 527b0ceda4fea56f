"""Typed errors for bad values (issue 9, item 4): a malformed object id is an
InvalidObjectIdError (still a ValueError), a new value the object database lacks a
MissingObjectError, a non-commit for a branch an InvalidNewValueError; nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Git
from refs_helpers import ENV

import aioreftable
from aioreftable import (
    InvalidNewValueError,
    InvalidObjectIdError,
    MissingObjectError,
    ReftableError,
    RejectReason,
    TransactionError,
    WorktreeNotFoundError,
    open_ref_store,
)

pytestmark = [pytest.mark.anyio, pytest.mark.git]

MALFORMED_IDS = [
    "",
    "abc",
    "0" * 39,
    "0" * 41,
    "g" * 40,
    " " * 40,  # bytes.fromhex skips spaces: an empty id, refused only by a later check
    "aa " * 13 + "a",
    "0x" + "0" * 38,
    "+" + "1" * 39,
    "\u0661" * 40,  # ARABIC-INDIC DIGIT ONE
]

QUEUE: list[tuple[str, Callable[[Any, str, str], None]]] = [
    ("create", lambda t, bad, c: t.create("refs/heads/new", bad)),
    ("update-new", lambda t, bad, c: t.update("refs/heads/main", bad)),
    ("update-old", lambda t, bad, c: t.update("refs/heads/main", c, old=bad)),
    ("delete-old", lambda t, bad, c: t.delete("refs/heads/main", old=bad)),
    ("verify", lambda t, bad, c: t.verify("refs/heads/main", bad)),
    ("symref-old", lambda t, bad, c: t.symref_update("HEAD", "refs/heads/main", old=bad)),
]


@pytest.fixture
def repo(git: Git, tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(path))
    git("commit", "-q", "--allow-empty", "-m", "c0", cwd=path)
    return path


def tables(repo: Path) -> bytes:
    return (repo / ".git" / "reftable" / "tables.list").read_bytes()


@pytest.mark.parametrize("queue", [q for _, q in QUEUE], ids=[i for i, _ in QUEUE])
async def test_malformed_object_id_is_typed(
    git: Git, repo: Path, queue: Callable[[Any, str, str], None]
) -> None:
    commit = git("rev-parse", "HEAD", cwd=repo).strip()
    before = tables(repo)
    async with open_ref_store(repo, env=ENV) as store:
        for bad in MALFORMED_IDS:
            with pytest.raises(InvalidObjectIdError) as info:
                async with store.transaction() as tx:
                    queue(tx, bad, commit)
            assert isinstance(info.value, ValueError) and isinstance(info.value, ReftableError)
            with pytest.raises(ValueError):  # callers that catch ValueError keep working
                async with store.batch() as b:
                    queue(b, bad, commit)
        assert (await store.read("refs/heads/main")) is not None
    assert tables(repo) == before


async def test_missing_object_is_a_missing_object_error(git: Git, repo: Path) -> None:
    before = tables(repo)
    missing = "deadbeef" * 5
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(MissingObjectError, match="nonexistent object") as info:
            async with store.transaction() as tx:
                tx.update("refs/heads/main", missing)
        assert isinstance(info.value, InvalidNewValueError)
        assert isinstance(info.value, TransactionError)
        assert info.value.refnames == ("refs/heads/main",)
        async with store.batch() as b:
            b.create("refs/tags/t", missing)
        assert [r.reason for r in b.results] == [RejectReason.INVALID_NEW_VALUE]
    assert tables(repo) == before


async def test_non_commit_for_a_branch_is_an_invalid_new_value(git: Git, repo: Path) -> None:
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    before = tables(repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(InvalidNewValueError, match="non-commit") as info:
            async with store.transaction() as tx:
                tx.update("refs/heads/main", tree)
        assert not isinstance(info.value, MissingObjectError)
        async with store.batch() as b:
            b.update("refs/heads/main", tree)
        assert [r.reason for r in b.results] == [RejectReason.INVALID_NEW_VALUE]
    assert tables(repo) == before


def test_new_error_classes_are_exported() -> None:
    for cls in (
        InvalidNewValueError,
        InvalidObjectIdError,
        MissingObjectError,
        WorktreeNotFoundError,
    ):
        assert cls.__name__ in aioreftable.__all__
        assert getattr(aioreftable, cls.__name__) is cls
        assert cls.__module__ == "aioreftable._errors"
