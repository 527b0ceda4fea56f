"""`aioreftable symbolic-ref` against `git symbolic-ref`: reads on the scenario repositories,
writes on twins (same output, then the same refs, reflogs and `git refs verify`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_scenarios import Outcome, Scenarios, run_both, run_git, run_ours, scenarios
from conftest import Git

__all__ = ["scenarios"]

SR = "symbolic-ref"
READS: list[list[str]] = [
    ["HEAD"],
    ["--short", "HEAD"],
    ["-q", "HEAD"],
    ["--no-recurse", "HEAD"],
    ["refs/heads/alias"],
    ["refs/heads/alias2"],
    ["--no-recurse", "refs/heads/alias2"],
    ["--recurse", "--short", "refs/heads/alias2"],
    ["--short", "refs/remotes/origin/HEAD"],
    ["refs/heads/dangling"],
    ["--short", "refs/heads/dangling"],
    ["refs/heads/main"],
    ["-q", "refs/heads/main"],
    ["refs/heads/nope"],
    ["-q", "refs/heads/nope"],
    ["refs/heads/a..b"],
    ["ORIG_HEAD"],
    ["main"],
    ["-m", "", "HEAD", "refs/heads/main"],
    ["HEAD", "main"],
    ["HEAD", "refs/heads/bad..name"],
    ["refs/heads/x", "bad..name"],
]
USAGE: list[list[str]] = [[], ["a", "b", "c"], ["-d"], ["-d", "a", "b"], ["--bogus", "HEAD"]]
WRITES: list[list[str]] = [
    ["HEAD", "refs/heads/feature/a"],
    ["-m", "switch to v1.9", "HEAD", "refs/heads/v1.9"],
    ["HEAD", "refs/heads/unborn"],
    ["refs/heads/newsym", "refs/heads/main"],
    ["-m", "retarget", "refs/heads/alias", "refs/heads/nowhere"],
    ["refs/heads/main", "refs/heads/feature/b"],
    ["ORIG_HEAD", "refs/heads/main"],
    ["refs/heads/feature", "refs/heads/main"],
    ["refs/heads/feature/a/b", "refs/heads/main"],
    ["-d", "refs/heads/alias"],
    ["-d", "refs/heads/alias2"],
    ["-d", "refs/remotes/origin/HEAD"],
    ["-d", "-q", "refs/heads/dangling"],
    ["-d", "HEAD"],
    ["-d", "refs/heads/main"],
    ["-d", "refs/heads/nope"],
]


def _same(ours: Outcome, theirs: Outcome, argv: list[str]) -> None:
    if ours[2] == theirs[2] == 129:  # usage: git's text names git, ours aioreftable
        assert ours[0] == theirs[0] == b"", argv
        return
    assert ours == theirs, argv


@pytest.mark.parametrize("name", ["rich-sha1", "rich-sha256", "worktree-sha1", "bare-sha256",
                                  "empty-sha1"])  # fmt: skip
def test_symbolic_ref_reads_match_git(git: Git, scenarios: Scenarios, name: str) -> None:
    repo = scenarios[name]
    for argv in READS + USAGE:
        ours, theirs = run_both(git, repo, [SR, *argv])
        _same(ours, theirs, argv)


def _state(git: Git, repo: Path) -> dict[str, bytes]:
    """What git sees: every ref with its symref and id, the reflogs, refs verify."""
    fmt = "--format=%(refname) %(symref) %(objectname)"
    log = "--format=%gD %H %gn %ge %gs"
    return {
        "refs": git.run("for-each-ref", "--include-root-refs", fmt, cwd=repo).stdout,
        "reflogs": git.run("reflog", "list", cwd=repo).stdout,
        "entries": git.run("log", "-g", log, "--date=raw", "--all", cwd=repo).stdout,
        "verify": git.run("refs", "verify", cwd=repo, check=False).stderr,
        "head": git.run("symbolic-ref", "HEAD", cwd=repo, check=False).stdout,
    }


@pytest.mark.parametrize("argv", WRITES, ids=" ".join)
def test_symbolic_ref_writes_match_git(
    git: Git, scenarios: Scenarios, tmp_path: Path, argv: list[str]
) -> None:
    ours_repo = scenarios.copy("rich-sha1", tmp_path / "ours")
    git_repo = scenarios.copy("rich-sha1", tmp_path / "git")
    ours = run_ours(ours_repo, [SR, *argv])
    theirs = run_git(git, git_repo, [SR, *argv])
    _same(ours, theirs, argv)
    assert _state(git, ours_repo) == _state(git, git_repo)


def test_symbolic_ref_refuses_a_bad_name_git_writes(git: Git, scenarios: Scenarios) -> None:
    """A known difference: git's symref update checks only that the name is safe, so it
    writes refs/heads/a..b; the library refuses a name git's check_refname_format refuses."""
    repo = scenarios["rich-sha1"]
    assert run_ours(repo, [SR, "refs/heads/a..b", "refs/heads/main"]) == (
        b"",
        b"error: refusing to update ref with bad name 'refs/heads/a..b'\n",
        1,
    )
    assert b"a..b" not in git.run("for-each-ref", cwd=repo).stdout


def test_symbolic_ref_sequence_on_a_fresh_repository(git: Git, tmp_path: Path) -> None:
    """Several writes one after the other (each its own table and reflog entry)."""
    steps = [
        ["HEAD", "refs/heads/one"],
        ["-m", "two", "HEAD", "refs/heads/two"],
        ["refs/heads/link", "refs/heads/two"],
        ["--short", "HEAD"],
        ["-d", "refs/heads/link"],
        ["refs/heads/link"],
    ]
    repos = []
    for side in ("ours", "git"):
        path = tmp_path / side
        git("init", "-q", "--ref-format=reftable", "-b", "main", str(path))
        git("commit", "-q", "--allow-empty", "-m", "x", cwd=path)
        git("branch", "one", cwd=path)
        git("branch", "two", cwd=path)
        repos.append(path)
    for argv in steps:
        _same(run_ours(repos[0], [SR, *argv]), run_git(git, repos[1], [SR, *argv]), argv)
    assert _state(git, repos[0]) == _state(git, repos[1])


def test_symbolic_ref_with_the_stack_locked_like_git(git: Git, tmp_path: Path) -> None:
    """A tables.list.lock held by someone else (or left by a crash): git's one line."""
    outcomes = []
    for side in ("ours", "git"):
        repo = tmp_path / side
        git("init", "-q", "--ref-format=reftable", "-b", "main", str(repo))
        git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
        git("symbolic-ref", "refs/heads/link", "refs/heads/main", cwd=repo)
        (repo / ".git" / "reftable" / "tables.list.lock").touch()
        run = run_ours if side == "ours" else lambda r, a: run_git(git, r, a)
        outcomes.append(
            [
                run(repo, [SR, *args])
                for args in (
                    ["-m", "x", "refs/heads/new", "refs/heads/main"],
                    ["-d", "refs/heads/link"],
                )
            ]
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == (b"", b"error: cannot lock references\n", 1)
