"""`aioreftable pack-refs`, `refs optimize` and `compact` against git's pack-refs and refs
optimize on twin repositories: same output and status, same refs, reflogs and verify after."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from cli_scenarios import (
    NO_COMPACTION,
    Scenarios,
    run_git,
    run_ours,
    run_ours_process,
    scenarios,
)
from conftest import Git
from refs_helpers import show_refs

from aioreftable.lowlevel import TableReader

__all__ = ["scenarios"]  # the session fixture

STACK_NAMES = re.compile(r"^0x[0-9a-f]{12}-0x[0-9a-f]{12}-[0-9a-f]{8}\.ref$")


def stack_dir(repo: Path) -> Path:
    return repo / ".git" / "reftable"


def listed(repo: Path) -> list[str]:
    return (stack_dir(repo) / "tables.list").read_text().splitlines()


def ranges(repo: Path) -> list[str]:
    """The tables' update-index ranges (their names without the random suffix)."""
    return [name.rsplit("-", 1)[0] for name in listed(repo)]


def twins(scenarios: Scenarios, tmp_path: Path, name: str = "tombstones-sha1") -> list[Path]:
    return [scenarios.build(name, tmp_path / side) for side in ("theirs", "ours")]


def state(git: Git, git_new: Git, repo: Path) -> tuple[Any, ...]:
    """What git sees: refs (for-each-ref, show-ref), every reflog, `git refs verify` (2.55
    checks reftable), the tables' update-index ranges."""
    refs = run_git(git, repo, ["for-each-ref", "--format=%(refname) %(objectname) %(symref)"])
    shown = run_git(git, repo, ["show-ref", "--head", "-d"])
    names = run_git(git, repo, ["reflog", "list"])[0].splitlines()
    fmt = "--format=%gd %H %gn <%ge> %gt %gs"
    logs = [run_git(git, repo, ["reflog", "show", fmt, os.fsdecode(n), "--"]) for n in names]
    return refs, shown, names, logs, run_git(git_new, repo, ["refs", "verify"]), ranges(repo)


@pytest.mark.parametrize("name", ["tombstones-sha1", "rich-sha256"])
def test_pack_refs_matches_git(
    git: Git, git_new: Git, scenarios: Scenarios, tmp_path: Path, name: str
) -> None:
    theirs, ours = twins(scenarios, tmp_path, name)
    assert len(listed(ours)) > 10
    before = state(git, git_new, ours)
    assert state(git, git_new, theirs) == before
    for args in (["pack-refs"], ["pack-refs", "--all", "--no-prune", "--include", "refs/x/*"]):
        assert run_ours(ours, args) == run_git(git, theirs, args) == (b"", b"", 0)
        after = state(git, git_new, ours)
        assert after == state(git, git_new, theirs)
        assert len(after[-1]) == 1 and after[:-1] == before[:-1]
        assert all(STACK_NAMES.match(name) for name in os.listdir(stack_dir(ours))
                   if name != "tables.list")  # fmt: skip


@pytest.mark.parametrize("command", [["pack-refs", "--auto"], ["refs", "optimize", "--auto"]])
def test_auto_follows_gits_heuristic(
    git: Git, git_new: Git, scenarios: Scenarios, tmp_path: Path, command: list[str]
) -> None:
    """A geometric stack stays; small tables on top of a big one are merged, as git does."""
    theirs, ours = twins(scenarios, tmp_path)
    main = git("rev-parse", "main", cwd=ours).strip()
    many = "".join(f"create refs/many/{n:04d} {main}\n" for n in range(300))
    for repo in (theirs, ours):
        git("update-ref", "--stdin", cwd=repo, input=many)
        run_git(git, repo, ["pack-refs"])
        for n in range(3):
            git("branch", f"extra-{n}", "main", cwd=repo, env=NO_COMPACTION)
    assert len(listed(ours)) == 4
    assert run_ours(ours, command) == run_git(git_new, theirs, command) == (b"", b"", 0)
    assert ranges(ours) == ranges(theirs) and len(listed(ours)) == 2
    assert run_ours(ours, command) == run_git(git_new, theirs, command) == (b"", b"", 0)
    assert ranges(ours) == ranges(theirs) and len(listed(ours)) == 2  # geometric now
    assert state(git, git_new, ours) == state(git, git_new, theirs)


@pytest.mark.parametrize(
    ("lock", "tables", "auto"),
    [
        ("tables.list.lock", 2, False),  # the compaction fails: git's error, 255
        ("tables.list.lock", 1, False),  # nothing to compact, git's clean fails: 251
        ("tables.list.lock", 2, True),  # the heuristic asks nothing, clean fails: 251
        ("table", 2, False),  # a table is locked: the compaction fails
        ("table", 2, True),  # nothing to do, clean works: 0
    ],
)
def test_locked_stack_like_git(
    git: Git, scenarios: Scenarios, tmp_path: Path, lock: str, tables: int, auto: bool
) -> None:
    theirs, ours = twins(scenarios, tmp_path, "empty-sha1")
    for repo in (theirs, ours):
        git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
        if tables == 2:
            for n in range(2):
                git("branch", f"b{n}", cwd=repo, env=NO_COMPACTION)
            git("pack-refs", cwd=repo)
            git("branch", "small", cwd=repo, env=NO_COMPACTION)
        assert len(listed(repo)) == tables
        name = lock if lock.endswith(".lock") else listed(repo)[0] + ".lock"
        (stack_dir(repo) / name).touch()
    args = ["pack-refs", "--auto"] if auto else ["pack-refs"]
    want = run_git(git, theirs, args)
    assert run_ours(ours, args) == want
    assert want[2] in (0, 251, 255)
    assert ranges(ours) == ranges(theirs)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_broken_stack_exit_status_like_git(
    git: Git, git_new: Git, scenarios: Scenarios, tmp_path: Path, damage: str
) -> None:
    """git returns the reftable error of a stack that does not open, silently: 253 for a
    corrupt table, 252 for a listed table that is missing."""
    theirs, ours = twins(scenarios, tmp_path, "tombstones-sha1")
    for repo in (theirs, ours):
        d = stack_dir(repo)
        if damage == "corrupt":
            with open(d / listed(repo)[0], "r+b") as f:
                f.write(b"XXXX")
        else:
            with open(d / "tables.list", "a") as f:
                f.write("0x000000000099-0x000000000099-12345678.ref\n")
    for args, g in ((["pack-refs"], git), (["refs", "optimize", "--auto"], git_new)):
        want = run_git(g, theirs, args)
        assert want == (b"", b"", 253 if damage == "corrupt" else 252)
        assert run_ours(ours, args) == want


@pytest.mark.parametrize(
    "args",
    [
        ["pack-refs", "extra"],
        ["pack-refs", "--bogus"],
        ["refs", "optimize", "extra"],
        ["refs", "optimize", "--bogus"],
    ],
)
def test_usage_errors_like_git(git_new: Git, scenarios: Scenarios, args: list[str]) -> None:
    """Status 129 and git's first line (the usage text itself is ours)."""
    repo = scenarios["empty-sha1"]
    out, err, code = run_ours(repo, args)
    want_out, want_err, want_code = run_git(git_new, repo, args)
    assert (out, code) == (want_out, want_code) == (b"", 129)
    assert err.splitlines()[0].replace(b"aioreftable", b"git") == want_err.splitlines()[0]


def test_worktree_packs_its_own_stack(git: Git, scenarios: Scenarios, tmp_path: Path) -> None:
    """In a linked worktree pack-refs compacts the worktree's stack, as git does."""
    theirs, ours = twins(scenarios, tmp_path, "rich-sha1")
    wt_stacks = []
    for repo in (theirs, ours):
        wt = Path(f"{repo}.wt")
        for n in range(2):
            git("update-ref", f"refs/bisect/b{n}", "HEAD", cwd=wt, env=NO_COMPACTION)
        wt_stacks.append(repo / ".git" / "worktrees" / wt.name / "reftable")
    main_before = ranges(ours)
    assert run_ours(Path(f"{ours}.wt"), ["pack-refs"]) == run_git(
        git, Path(f"{theirs}.wt"), ["pack-refs"]
    )
    lists = [(d / "tables.list").read_text().splitlines() for d in wt_stacks]
    assert len(lists[0]) == len(lists[1]) == 1
    assert ranges(ours) == main_before == ranges(theirs)
    shown = ["show-ref", "-d", "--head"]
    assert run_git(git, Path(f"{ours}.wt"), shown) == run_git(git, Path(f"{theirs}.wt"), shown)


def test_compact_reports_what_it_did(git: Git, scenarios: Scenarios, tmp_path: Path) -> None:
    repo = scenarios.copy("tombstones-sha1", tmp_path / "repo")
    d = stack_dir(repo)
    count = len(listed(repo))
    size = sum((d / n).stat().st_size for n in listed(repo))
    out, err, code = run_ours(repo, ["compact"])
    after = listed(repo)
    new_size = (d / after[0]).stat().st_size
    assert (err, code, len(after)) == (b"", 0, 1)
    assert out == (
        f"compacted: {count} tables ({size} bytes) -> 1 table ({new_size} bytes)\n".encode()
    )
    assert run_ours(repo, ["compact"]) == (
        f"nothing to compact: 1 table ({new_size} bytes)\n".encode(),
        b"",
        0,
    )
    git("branch", "one-more", "main", cwd=repo, env=NO_COMPACTION)
    assert run_ours(repo, ["compact", "--auto", "-q"]) == (b"", b"", 0)
    assert len(listed(repo)) == 2  # a small table over a big one: geometric, left alone
    assert run_ours(repo, ["compact", "-q"]) == (b"", b"", 0)
    assert len(listed(repo)) == 1
    (d / "tables.list.lock").touch()
    out, err, code = run_ours(repo, ["compact"])
    assert (out, code) == (b"", 128)
    assert err.startswith(b"fatal: unable to lock ") and b"tables.list.lock" in err


def test_entry_point(git: Git, scenarios: Scenarios, tmp_path: Path) -> None:
    theirs, ours = twins(scenarios, tmp_path, "tombstones-sha1")
    assert run_ours_process(ours, ["pack-refs"]) == run_git(git, theirs, ["pack-refs"])
    assert ranges(ours) == ranges(theirs)
    assert show_refs(git, ours) == show_refs(git, theirs)


def test_damaged_table_fails_the_compaction_like_git(
    git: Git, git_new: Git, scenarios: Scenarios, tmp_path: Path
) -> None:
    """A log block that does not inflate: the stack opens, the compaction fails."""
    repos = [scenarios.build("empty-sha1", tmp_path / name) for name in ("a", "b", "c")]
    for repo in repos:
        git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo, env=NO_COMPACTION)
        git("branch", "b1", cwd=repo, env=NO_COMPACTION)
        path = stack_dir(repo) / listed(repo)[1]
        with TableReader.from_path(path) as reader:
            (offset,) = [b.offset for b in reader.blocks() if b.typ == ord("g")]
        data = bytearray(path.read_bytes())
        data[offset + 12] ^= 0xFF
        path.write_bytes(bytes(data))
    want = (b"", b"error: unable to compact stack: zlib failure\n", 255)
    assert run_git(git, repos[0], ["pack-refs"]) == want
    assert run_git(git_new, repos[1], ["refs", "optimize"]) == want
    assert run_ours(repos[2], ["pack-refs"]) == want
    assert ranges(repos[2]) == ranges(repos[0]) == ranges(repos[1])
