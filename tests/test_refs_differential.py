"""Transactions through aioreftable on one repository and ``git update-ref --stdin`` on its
twin: same outcome, same error text, same refs, reflogs and records."""

from __future__ import annotations

import random
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
    our_apply,
    reflog_dump,
    refs_verify,
    show_refs,
)

from aioreftable import open_ref_store

pytestmark = [pytest.mark.anyio, pytest.mark.git]


async def assert_same(git: Git, theirs: Path, ours: Path) -> None:
    assert show_refs(git, ours) == show_refs(git, theirs)
    assert reflog_dump(git, ours) == reflog_dump(git, theirs)
    assert await live_records(ours / ".git" / "reftable") == await live_records(
        theirs / ".git" / "reftable"
    )
    refs_verify(git, ours)


async def run_both(
    git: Git, theirs: Path, ours: Path, ops: list[Op], message: str = "msg"
) -> tuple[str | None, str | None]:
    expected = git_apply(git, theirs, ops, message)
    got = await apply_ours(ours, ops, message)
    return expected, got


def scenarios(ids: dict[str, str]) -> dict[str, list[list[Op]]]:
    c0, c1, c2, tag = ids["c0"], ids["c1"], ids["c2"], ids["tag"]
    null = "0" * len(c0)
    return {
        "create": [[Op("create", "refs/heads/x", c0)]],
        "create-exists": [[Op("create", "refs/heads/main", c0)]],
        "update-wrong-old": [[Op("update", "refs/heads/main", c0, c1)]],
        "update-missing-expected": [[Op("update", "refs/heads/nope", c0, c1)]],
        "update-expect-absent": [[Op("update", "refs/heads/main", c0, null)]],
        "noop-update": [[Op("update", "refs/heads/main", c2)]],
        "delete-missing": [[Op("delete", "refs/heads/nope")]],
        "delete-wrong-old": [[Op("delete", "refs/heads/main", old=c0)]],
        "delete-head-branch": [[Op("delete", "refs/heads/main", old=c2)]],
        "delete-via-head": [[Op("delete", "HEAD")]],
        "delete-head-no-deref": [[Op("delete", "HEAD", no_deref=True)]],
        "update-via-head": [[Op("update", "HEAD", c0, c2)]],
        "update-head-no-deref": [[Op("update", "HEAD", c0, no_deref=True)]],
        "head-twice": [[Op("update", "HEAD", c0), Op("update", "refs/heads/main", c1)]],
        "branch-and-head": [[Op("update", "refs/heads/main", c1), Op("update", "HEAD", c0)]],
        "duplicate": [[Op("update", "refs/heads/x", c0), Op("update", "refs/heads/x", c1)]],
        "df-existing": [[Op("create", "refs/heads/main/x", c0)]],
        "df-below": [[Op("create", "refs/heads/a/b", c0)], [Op("create", "refs/heads/a", c0)]],
        "df-same-tx": [[Op("create", "refs/heads/d", c0), Op("create", "refs/heads/d/e", c0)]],
        "df-delete-and-create": [
            [Op("create", "refs/heads/q", c0)],
            [Op("delete", "refs/heads/q"), Op("create", "refs/heads/q/r", c0)],
        ],
        "verify-ok": [[Op("verify", "refs/heads/main", old=c2)]],
        "verify-absent": [[Op("verify", "refs/heads/nope", old=None)]],
        "verify-absent-fails": [[Op("verify", "refs/heads/main", old=None)]],
        "verify-wrong": [[Op("verify", "refs/heads/main", old=c1), Op("create", "refs/x", c0)]],
        "annotated-tag": [[Op("create", "refs/tags/v2", tag)]],
        "tag-to-branch": [[Op("create", "refs/heads/t", tag)]],
        "nonexistent-object": [[Op("create", "refs/heads/t", "1" * len(c0))]],
        "symref-switch": [
            [Op("create", "refs/heads/other", c0)],
            [Op("symref", "HEAD", "refs/heads/other", no_deref=True)],
            [Op("update", "refs/heads/other", c1)],
        ],
        "symref-dangling": [[Op("symref", "HEAD", "refs/heads/unborn", no_deref=True)]],
        "symref-new": [[Op("symref", "refs/heads/s", "refs/heads/main", no_deref=True)]],
        "symref-df": [[Op("symref", "refs/heads", "refs/heads/main", no_deref=True)]],
        "symref-chain": [
            [Op("symref", "refs/heads/s", "refs/heads/main", no_deref=True)],
            [Op("update", "refs/heads/s", c0)],
            [Op("delete", "refs/heads/s")],
        ],
        "multi": [
            [
                Op("create", "refs/heads/m1", c0),
                Op("update", "refs/heads/main", c1, c2),
                Op("delete", "refs/tags/lw"),
                Op("create", "refs/notes/n", c1),
            ]
        ],
        "delete-recreate": [
            [Op("create", "refs/heads/r", c0)],
            [Op("update", "refs/heads/r", c1)],
            [Op("delete", "refs/heads/r")],
            [Op("create", "refs/heads/r", c2)],
        ],
    }


SCENARIOS = sorted(scenarios({"c0": "0", "c1": "1", "c2": "2", "tag": "t"}))


# sha1 on both event loops; one loop is enough for the sha256 matrix (not collected
# on trio, rather than skipped)
@pytest.mark.parametrize(
    ("fmt", "anyio_backend"), [("sha1", "asyncio"), ("sha1", "trio"), ("sha256", "asyncio")]
)
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_scenario_matches_git(
    git: Git, tmp_path: Path, scenario: str, fmt: str, anyio_backend: str
) -> None:
    theirs, ours = make_twins(git, tmp_path, fmt)
    steps = scenarios(object_ids(git, theirs))[scenario]
    for n, ops in enumerate(steps):
        expected, got = await run_both(git, theirs, ours, ops, f"step {n}  of\t{scenario}")
        assert got == expected, (n, ops)
    await assert_same(git, theirs, ours)


def random_ops(rng: random.Random, ids: dict[str, str]) -> list[Op]:
    names = [
        "refs/heads/main", "refs/heads/a", "refs/heads/a/b", "refs/heads/b",
        "refs/tags/t", "HEAD", "refs/heads/s", "ORIG_HEAD",
    ]  # fmt: skip
    commits = [ids["c0"], ids["c1"], ids["c2"]]
    null = "0" * len(ids["c0"])
    ops: list[Op] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["create", "update", "update", "delete", "verify", "symref"])
        name = rng.choice(names)
        old = rng.choice([None, None, rng.choice(commits), null])
        no_deref = rng.random() < 0.3
        if kind == "create":
            ops.append(Op("create", name, rng.choice([*commits, ids["tag"]])))
        elif kind == "update":
            ops.append(Op("update", name, rng.choice(commits), old, no_deref))
        elif kind == "delete":
            ops.append(Op("delete", name, None, None if old == null else old, no_deref))
        elif kind == "verify":
            ops.append(Op("verify", name, None, old, no_deref))
        else:
            target = rng.choice(["refs/heads/main", "refs/heads/b", "refs/heads/a"])
            ops.append(Op("symref", rng.choice(["HEAD", "refs/heads/s"]), target, None, True))
    return ops


@pytest.mark.parametrize("seed", range(12))
async def test_random_transactions_match_git(
    git: Git, tmp_path: Path, seed: int, anyio_backend: str
) -> None:
    fmt = "sha256" if seed % 4 == 3 else "sha1"
    theirs, ours = make_twins(git, tmp_path, fmt)
    ids = object_ids(git, theirs)
    rng = random.Random(seed * 7919 + (anyio_backend == "trio"))
    async with open_ref_store(ours, env=ENV) as store:
        for n in range(25):
            ops = random_ops(rng, ids)
            expected = git_apply(git, theirs, ops, f"random {n}")
            got = await our_apply(store, ops, f"random {n}")
            assert got == expected, (n, ops)
    await assert_same(git, theirs, ours)
