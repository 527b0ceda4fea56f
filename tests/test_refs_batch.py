"""Batch updates. git 2.47 has no ``--batch-updates`` (2.51), so each scenario is checked
against git like this: the accepted updates in one ``update-ref --stdin`` give the same
refs, reflogs and records (one table), and every rejected update, added to them, makes git
fail with the error text our result carries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Git
from refs_helpers import ENV, make_twins, object_ids
from test_refs_reflog_ops import NO_COMPACT, assert_same, no_autocompact, tables

from aioreftable import Batch, RejectReason, TransactionError, open_ref_store
from aioreftable.lowlevel import SHA1

pytestmark = [pytest.mark.anyio, pytest.mark.git]
__all__ = ["no_autocompact"]


@dataclass(frozen=True)
class Cmd:
    """One update as an ``update-ref --stdin`` line, and the reason we expect it to fail."""

    line: str
    reason: RejectReason | None = None

    def apply(self, b: Batch) -> None:
        """The same update through a Batch."""
        *options, command = self.line.split("\n")
        no_deref = "option no-deref" in options
        kind, name, *args = command.split(" ")
        arg: list[str | None] = [*args, None, None, None]
        if kind == "create":
            b.create(name, args[0])
        elif kind == "update":
            b.update(name, args[0], old=arg[1], no_deref=no_deref)
        elif kind == "delete":
            b.delete(name, old=arg[0], no_deref=no_deref)
        elif kind == "verify":
            b.verify(name, arg[0], no_deref=no_deref)
        elif kind == "symref-create":
            b.symref_create(name, args[0])
        elif kind == "symref-update":
            b.symref_update(name, args[0], old_target=arg[2])  # "<target> ref <old-target>"
        elif kind == "symref-verify":
            b.symref_verify(name, arg[0])
        else:
            raise AssertionError(kind)


def scenarios(ids: dict[str, str]) -> dict[str, list[Cmd]]:
    c0, c1, c2, tree = ids["c0"], ids["c1"], ids["c2"], ids["tree"]
    null = "0" * len(c0)
    missing = "1" * len(c0)
    R = RejectReason
    return {
        "mixed": [
            Cmd(f"create refs/heads/x {c0}"),
            Cmd(f"create refs/heads/main {c0}", R.CREATE_EXISTS),
            Cmd(f"update refs/heads/side {c2} {c0}", R.INCORRECT_OLD_VALUE),
            Cmd(f"update refs/heads/nope {c0} {c1}", R.NONEXISTENT_REF),
            Cmd(f"update refs/heads/y {c1}"),
            Cmd(f"create refs/heads/main/sub {c0}", R.NAME_CONFLICT),
            Cmd(f"delete refs/tags/lw {c1}", R.INCORRECT_OLD_VALUE),
            Cmd(f"update refs/tags/new {c2} {null}"),
        ],
        "via-head-rejected": [
            Cmd(f"update HEAD {c1} {c0}", R.INCORRECT_OLD_VALUE),
            Cmd(f"update refs/heads/side {c2}"),
        ],
        "head-branch-rejected": [
            Cmd(f"update refs/heads/main {c1} {null}", R.CREATE_EXISTS),
            Cmd("delete refs/heads/side"),
        ],
        "df-in-batch": [
            Cmd(f"create refs/heads/q {c0}", R.NAME_CONFLICT),
            Cmd(f"create refs/heads/q/r {c1}"),
            Cmd(f"create refs/heads/side/s {c1}", R.NAME_CONFLICT),
        ],
        "symrefs": [
            Cmd(
                "option no-deref\nsymref-verify refs/heads/side refs/heads/main", R.EXPECTED_SYMREF
            ),
            Cmd("symref-create refs/heads/sym refs/heads/main"),
            Cmd("symref-update HEAD refs/heads/side ref refs/heads/other", R.INCORRECT_OLD_VALUE),
        ],
        "objects": [
            Cmd(f"update refs/heads/m {missing}", R.INVALID_NEW_VALUE),
            Cmd(f"update refs/heads/t {tree}", R.INVALID_NEW_VALUE),
            Cmd(f"update refs/tags/t {tree}"),
        ],
        "all-rejected": [Cmd(f"create refs/heads/main {c0}", R.CREATE_EXISTS)],
    }


def stdin(cmds: list[Cmd]) -> str:
    return "".join(c.line + "\n" for c in cmds)


def update_ref(git: Git, repo: Path, cmds: list[Cmd]) -> Any:
    return git.run(
        "update-ref", "-m", "batch", "--stdin", cwd=repo, input=stdin(cmds), check=False,
        env=NO_COMPACT,
    )  # fmt: skip


@pytest.mark.parametrize("name", list(scenarios({k: "0" * 40 for k in ("c0", "c1", "c2", "tree")})))
async def test_batch_against_git(git: Git, tmp_path: Path, no_autocompact: None, name: str) -> None:
    theirs, ours = make_twins(git, tmp_path)
    for repo in (theirs, ours):
        git("branch", "side", "HEAD~1", cwd=repo)
    cmds = scenarios(object_ids(git, theirs))[name]
    before = len(tables(ours))
    async with open_ref_store(ours, env=ENV) as store, store.batch(message="batch") as batch:
        for cmd in cmds:
            cmd.apply(batch)
    results = batch.results
    assert [r.index for r in results] == list(range(len(cmds)))
    assert [r.reason for r in results] == [c.reason for c in cmds]
    accepted = [c for c in cmds if c.reason is None]
    for cmd, result in zip(cmds, results, strict=True):
        if cmd.reason is None:
            continue
        in_order = [c for c in cmds if c.reason is None or c is cmd]
        proc = update_ref(git, theirs, in_order)
        assert proc.returncode != 0, cmd.line
        assert proc.stderr.decode().strip() == f"fatal: {result.error}"
        assert result.rejected_line().startswith(f"rejected {result.refname} ")
        assert result.rejected_line().endswith(f" {cmd.reason.value}")
    if accepted:
        assert update_ref(git, theirs, accepted).returncode == 0
    assert len(tables(ours)) == before + (1 if accepted else 0)
    await assert_same(git, theirs, ours)


async def test_rejected_line_format(git: Git, tmp_path: Path) -> None:
    """git's print_rejected_refs: refname, new, old (ids when given, else the target or
    "(null)"), the reason text."""
    _, ours = make_twins(git, tmp_path)
    ids = object_ids(git, ours)
    c0, c1, null = ids["c0"], ids["c1"], SHA1.null_hex
    async with open_ref_store(ours, env=ENV) as store, store.batch() as batch:
        batch.create("refs/heads/main", c0)
        batch.update("refs/heads/nope", c1, old=c0)
        batch.verify("refs/tags/lw", c1)
        batch.symref_verify("refs/tags/v1", "refs/heads/main")
        batch.update("refs/heads/bad..name", c0)
        batch.create("refs/heads/fine", c1)
    lines = [r.rejected_line() for r in batch.rejected]
    assert lines == [
        f"rejected refs/heads/main {c0} {null} reference already exists",
        f"rejected refs/heads/nope {c1} {c0} reference does not exist",
        f"rejected refs/tags/lw (null) {c1} incorrect old value provided",
        f"rejected refs/tags/v1 (null) {null} expected symref but found regular ref",
        "rejected refs/heads/bad..name (null) (null) invalid refname",
    ]
    assert batch.results[-1].ok
    assert batch.results[4].error == "refusing to update ref with bad name 'refs/heads/bad..name'"
    async with open_ref_store(ours, env=ENV) as store:
        assert (await store.resolve("refs/heads/fine")) == c1


async def test_generic_errors_fail_the_batch(git: Git, tmp_path: Path) -> None:
    _, ours = make_twins(git, tmp_path)
    ids = object_ids(git, ours)
    before = tables(ours)
    async with open_ref_store(ours, env=ENV) as store:
        with pytest.raises(TransactionError, match="multiple updates for ref 'refs/heads/x'"):
            async with store.batch() as batch:
                batch.create("refs/heads/x", ids["c0"])
                batch.update("refs/heads/x", ids["c1"])
        with pytest.raises(RuntimeError):
            async with store.batch() as batch:
                batch.create("refs/heads/y", ids["c0"])
                raise RuntimeError("dropped")
    assert tables(ours) == before
