"""`aioreftable update-ref REF NEW [OLD]` and `-d` against git update-ref on twins (and the
helpers test_cli_update_ref_stdin.py shares: our CLI in this process and git on a twin with
the same stdin; refs, reflogs and `git refs verify` compared afterwards)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import GIT_ENV, Git
from refs_helpers import live_records, make_twins, object_ids

from aioreftable.cli import main

Result = tuple[int, str, str]


class _Stdin:
    """A stand-in for sys.stdin whose ``buffer`` holds the session's bytes."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


def ours(cwd: Path, args: tuple[str, ...], data: bytes = b"") -> Result:
    """Our CLI in this process (one interpreter start per session would dominate)."""
    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_stdin = os.getcwd(), sys.stdin
    os.chdir(cwd)
    sys.stdin = _Stdin(data)  # type: ignore[assignment,unused-ignore]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["update-ref", *args])
    finally:
        os.chdir(old_cwd)
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def theirs(git: Git, cwd: Path, args: tuple[str, ...], data: bytes = b"") -> Result:
    proc = git.run("update-ref", *args, cwd=cwd, input=data, check=False)
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", "surrogateescape"),
        proc.stderr.decode("utf-8", "surrogateescape"),
    )


def state(
    git: Git, repo: Path, verifier: Git | None = None
) -> tuple[str, dict[str, str], int, str]:
    """What a write leaves: every ref (symrefs named), every reflog, `git refs verify` (of
    ``verifier``: git 2.47 checks nothing on reftable, 2.55 does)."""

    def text(*args: str) -> str:
        proc = git.run(*args, cwd=repo, check=False)
        return proc.stdout.decode("utf-8", "surrogateescape")

    refs = text(
        "for-each-ref", "--include-root-refs", "--format=%(refname) %(objectname) %(symref)"
    )
    fmt = "--format=%gd %H %gn <%ge> %gs"
    logs = {n: text("reflog", "show", fmt, n, "--") for n in text("reflog", "list").split()}
    verify = (verifier or git).run("refs", "verify", "--strict", cwd=repo, check=False)
    return refs, logs, verify.returncode, verify.stderr.decode()


class Twins:
    """Two repositories with the same commits; ``step`` runs one update-ref on both."""

    def __init__(
        self,
        git: Git,
        tmp_path: Path,
        fmt: str = "sha1",
        oracle: Git | None = None,
        verifier: Git | None = None,
        *,
        repos: tuple[Path, Path] | None = None,
    ):
        """Twins made by make_twins (with a dangling symref), or ``repos`` built alike."""
        self.git = git
        self.oracle = oracle or git  # the git whose answers ours must equal
        self.verifier = verifier or self.oracle  # the git that runs `refs verify`
        if repos is None:
            self.theirs, self.ours = make_twins(git, tmp_path, fmt)
            for repo in (self.theirs, self.ours):
                git("symbolic-ref", "refs/heads/dangling", "refs/heads/nowhere", cwd=repo)
            self.ids = object_ids(git, self.theirs)
        else:
            self.theirs, self.ours = repos
            commits = git("rev-list", "--all", "--reverse", cwd=self.theirs).split()
            self.ids = {f"c{n}": commits[n] for n in range(3)}
        self.ids["null"] = "0" * len(self.ids["c0"])
        self.ids["missing"] = "1" * len(self.ids["c0"])
        self.ids["blob"] = self.blob()
        self.ids["C0"] = self.ids["c0"].upper()

    def blob(self) -> str:
        oid = ""
        for repo in (self.theirs, self.ours):
            oid = self.git.run(
                "hash-object", "-w", "--stdin", cwd=repo, input=b"blob\n"
            ).stdout.decode()
        return oid.strip()

    def fill(self, template: str) -> bytes:
        return template.format(**self.ids).encode("utf-8", "surrogateescape")

    def step(self, args: tuple[str, ...], template: str = "") -> tuple[Result, Result]:
        data = self.fill(template)
        args = tuple(self.fill(arg).decode("utf-8", "surrogateescape") for arg in args)
        want = theirs(self.oracle, self.theirs, args, data)
        got = ours(self.ours, args, data)
        return want, got

    def check(self, args: tuple[str, ...], template: str = "") -> Result:
        """One step on both twins: the same output and exit status, the same records."""
        want, got = self.step(args, template)
        assert got == want, (args, template)
        assert self.records(self.ours) == self.records(self.theirs), (args, template)
        return got

    @staticmethod
    def records(repo: Path) -> tuple[list[Any], list[Any]]:
        """Every live ref and log record of the main stack (update indexes, dates,
        messages included)."""
        stack = repo / ".git" / "reftable"
        return anyio.run(live_records, stack if stack.is_dir() else repo / "reftable")

    def check_state(self) -> None:
        """git's view of both twins: refs, every reflog, `git refs verify` (clean)."""
        theirs = state(self.git, self.theirs, self.verifier)
        assert state(self.git, self.ours, self.verifier) == theirs
        assert theirs[2:] == (0, "")


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Our CLI reads the committer and dates from os.environ, as git does."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    yield


# (arguments, expected exit status): run in this order on both twins
CLASSIC: list[tuple[tuple[str, ...], int]] = [
    (("refs/heads/a", "{c0}"), 0),
    (("-m", "move a", "refs/heads/a", "{c1}", "{c0}"), 0),
    (("refs/heads/a", "{c2}", "{c0}"), 128),  # wrong old value
    (("refs/heads/b", "{c1}", ""), 0),  # "" : must not exist
    (("refs/heads/b", "{c2}", ""), 128),
    (("refs/heads/c", "HEAD"), 0),  # a name resolved through the store
    (("refs/heads/d", "refs/heads/a"), 0),
    (("refs/tags/t", "refs/tags/v1"), 0),  # the tag object, not its commit
    (("refs/heads/e", "{tag}"), 128),  # non-commit on a branch
    (("refs/heads/e", "{missing}"), 128),  # nonexistent object
    (("refs/heads/e", "nope"), 128),  # not a valid SHA1
    (("refs/heads/e", "{c0}", "nope"), 128),  # not a valid old SHA1
    (("refs/heads/e", "refs/heads/dangling"), 128),  # warns: dangling symref
    (("refs/heads/a/x", "{c0}"), 128),  # D/F conflict
    (("bad..name", "{c0}"), 128),  # refusing to update ref with bad name
    (("HEAD", "{c1}"), 0),  # through HEAD to main, HEAD's reflog too
    (("--no-deref", "HEAD", "{c2}"), 0),  # detaches HEAD
    (("--create-reflog", "refs/tags/logged", "{c0}"), 0),
    (("-m", "", "refs/heads/a", "{c0}"), 128),  # empty message
    (("-d", "refs/heads/b"), 0),
    (("-d", "refs/heads/c", "{c0}"), 1),  # wrong old value: error, status 1
    (("-d", "refs/heads/c", ""), 0),  # "" means no check for -d
    (("-d", "refs/heads/nothing"), 0),
    (("-d", "refs/heads/d", "{null}"), 0),
    (("-d", "refs/heads/dangling"), 0),  # deletes through the symref: nothing there
    (("-d", "--no-deref", "refs/heads/dangling"), 0),
    (("-d", "foo"), 1),  # a one-level name that is not safe to delete
    (("refs/heads/z", "{null}"), 0),  # a null new value deletes (nothing here)
    (("refs/heads/a", "{null}", "{c1}"), 0),  # deletes a, checked
    (("-m", "bye", "-d", "refs/heads/main"), 0),  # HEAD is detached: main goes alone
    (("--no-deref", "-m", "back", "HEAD", "{c0}"), 0),
    (("-m", "gone", "-d", "HEAD"), 0),  # a detached HEAD itself
    (("-m", "again", "HEAD", "{c1}"), 0),
    (("-d",), 129),
    (("-d", "a", "b", "c"), 129),
    (("refs/heads/a",), 129),
    (("a", "b", "c", "d"), 129),
    (("-z", "refs/heads/a", "{c0}"), 129),
    (("--stdin", "refs/heads/a"), 129),
    (("--stdin", "-d"), 129),
    (("--bogus",), 129),
    (("--batch-updates", "refs/heads/a", "{c0}"), 128),
]


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_update_ref_matches_git(
    git: Git, git_new: Git, git_env: None, tmp_path: Path, fmt: str
) -> None:
    """Every form and refusal of the command line, one after the other on twins: the same
    stdout, stderr and status (usage texts are git 2.55's: compared there), refs and
    reflogs. git 2.47 for what it has; its usage text lacks --batch-updates."""
    twins = Twins(git, tmp_path, fmt, verifier=git_new)
    for template, code in CLASSIC:
        args = tuple(twins.fill(a).decode() for a in template)
        if code == 129 or "--batch-updates" in args:
            got = ours(twins.ours, args)
            assert got[0] == code and got[1] == "", args
            assert got[2].rstrip("\n").endswith("batch reference updates") or code != 129
            continue
        got = twins.check(args)
        assert got[0] == code, (args, got)
    twins.check_state()


def test_update_ref_usage_is_git_255s(git_new: Git, tmp_path: Path) -> None:
    """Usage errors and -h print git 2.55's text (the one with --batch-updates)."""
    repo = tmp_path / "repo"
    git_new("init", "-q", "--ref-format=reftable", str(repo))
    for args in [
        ("-h",),
        ("-d",),
        ("a", "b", "c", "d"),
        ("-z", "a", "b"),
        ("--stdin", "x"),
        ("--bogus",),
        ("--batch-updates", "a", "b"),
        ("-m", "", "a", "b"),
    ]:
        assert ours(repo, args) == theirs(git_new, repo, args), args
