"""The ref store's object database (dulwich) is closed with the store: no open pack files."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import pytest
from conftest import Git

import aioreftable

pytestmark = [pytest.mark.anyio, pytest.mark.git]


def _open_packs() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith((".pack", ".idx")):
            found.add(target)
    return found


async def test_store_exit_closes_the_pack_files(git: Git, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(repo))
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    git("tag", "-a", "-m", "tag", "v1", cwd=repo)
    git("gc", "-q", cwd=repo)  # objects now live in a pack only
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    before = _open_packs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with aioreftable.open_ref_store(repo) as store:
            async with store.transaction(message="x") as tx:
                tx.create("refs/heads/x", head)  # looked up in the pack
                tx.create("refs/tags/v1-copy", git("rev-parse", "v1", cwd=repo).strip())
            assert _open_packs() - before != set()  # dulwich did open the pack
            (tag,) = [r async for r in store.iterate("refs/tags/v1-copy")]
            peeled = tag.peeled
            assert peeled == head
        assert _open_packs() - before == set()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
