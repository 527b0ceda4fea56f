"""Linked worktrees: routing of per-worktree refs to worktrees/<id>/reftable, compared with
git on a twin (transactions run from the main worktree and from the linked one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Git
from refs_helpers import (
    ENV,
    Op,
    apply_ours,
    git_apply,
    live_records,
    make_twins,
    object_ids,
    reflog_dump,
    show_refs,
)

from aioreftable import open_ref_store

pytestmark = [pytest.mark.anyio, pytest.mark.git]


def twins_with_worktree(git: Git, tmp_path: Path, fmt: str) -> list[tuple[Path, Path]]:
    out = []
    for repo in make_twins(git, tmp_path, fmt):
        wt = tmp_path / f"{repo.name}-wts" / "wt"
        git("worktree", "add", "-q", str(wt), cwd=repo)
        git("update-ref", "refs/bisect/main-only", "HEAD", cwd=repo)
        out.append((repo, wt))
    return out


def scenario_ops(ids: dict[str, str]) -> dict[str, list[tuple[str, list[Op]]]]:
    c0, c1 = ids["c0"], ids["c1"]
    return {
        "head-in-worktree": [("wt", [Op("update", "HEAD", c0)])],
        "branch-of-worktree-head": [("wt", [Op("update", "refs/heads/wt", c1)])],
        "per-worktree-ref": [("wt", [Op("create", "refs/bisect/bad", c0)])],
        "two-stacks": [
            ("wt", [Op("create", "refs/bisect/x", c0), Op("create", "refs/heads/y", c1)])
        ],
        "main-worktree-head": [("wt", [Op("update", "main-worktree/HEAD", c0)])],
        "other-worktree-from-main": [
            ("main", [Op("create", "worktrees/wt/refs/bisect/z", c0)]),
            ("main", [Op("update", "worktrees/wt/HEAD", c1)]),
        ],
        "root-ref-in-worktree": [("wt", [Op("create", "ORIG_HEAD", c1)])],
        "delete-worktree-branch": [("main", [Op("delete", "refs/heads/wt")])],
        "symref-in-worktree": [
            ("wt", [Op("symref", "HEAD", "refs/heads/main", no_deref=True)]),
            ("wt", [Op("update", "refs/heads/main", c0)]),
        ],
    }


SCENARIOS = sorted(scenario_ops({"c0": "0", "c1": "1"}))


def dump(git: Git, repo: Path, wt: Path) -> tuple[str, str, dict[str, str], dict[str, str]]:
    return show_refs(git, repo), show_refs(git, wt), reflog_dump(git, repo), reflog_dump(git, wt)


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_worktree_routing_matches_git(
    git: Git, tmp_path: Path, scenario: str, anyio_backend: str
) -> None:
    fmt = "sha256" if scenario == "two-stacks" else "sha1"
    (theirs, theirs_wt), (ours, ours_wt) = twins_with_worktree(git, tmp_path, fmt)
    for where, ops in scenario_ops(object_ids(git, theirs))[scenario]:
        expected = git_apply(git, theirs_wt if where == "wt" else theirs, ops, scenario)
        got = await apply_ours(ours_wt if where == "wt" else ours, ops, scenario)
        assert got == expected
    assert dump(git, ours, ours_wt) == dump(git, theirs, theirs_wt)
    for sub in ("reftable", "worktrees/wt/reftable"):
        assert await live_records(ours / ".git" / sub) == await live_records(
            theirs / ".git" / sub
        ), sub


async def test_worktree_reads_merge_both_stacks(git: Git, tmp_path: Path) -> None:
    (_, _), (ours, wt) = twins_with_worktree(git, tmp_path, "sha1")
    git("update-ref", "refs/bisect/wt-only", "HEAD~1", cwd=wt)
    ids = object_ids(git, ours)
    async with open_ref_store(wt, env=ENV) as store:
        head = await store.read("HEAD")
        assert head is not None and head.target == "refs/heads/wt"
        names = [r.name async for r in store.iterate()]
        assert "refs/bisect/wt-only" in names and "refs/bisect/main-only" not in names
        assert "refs/heads/main" in names
        main_head = await store.read("main-worktree/HEAD")
        assert main_head is not None and main_head.target == "refs/heads/main"
        assert await store.resolve("refs/bisect/wt-only") == ids["c1"]
    async with open_ref_store(ours, env=ENV) as store:
        names = [r.name async for r in store.iterate()]
        assert "refs/bisect/main-only" in names and "refs/bisect/wt-only" not in names
        wt_ref = await store.read("worktrees/wt/refs/bisect/wt-only")
        assert wt_ref is not None and wt_ref.oid == ids["c1"]
        wt_head = await store.read("worktrees/wt/HEAD")
        assert wt_head is not None and wt_head.target == "refs/heads/wt"
    expected = git("for-each-ref", "--format=%(refname)", cwd=wt).split()
    async with open_ref_store(wt, env=ENV) as store:
        assert [r.name async for r in store.iterate()] == expected
