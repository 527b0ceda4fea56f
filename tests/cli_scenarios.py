"""Scenario repositories for the CLI's differential tests (built once per session by git,
with fixed identities and dates) and ``run_both``: our command and git's on one repository.

Use: ``from cli_scenarios import SCENARIOS, run_both, scenarios`` (``scenarios`` is the
session fixture; ``scenarios[name]`` builds that repository on first use and returns the
directory to run in). Scenarios are read-only: a test that writes copies one first
(``scenarios.copy(name, dest)``), or builds its twins with ``scenarios.build(name, dest)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from conftest import GIT_ENV, Git
from gitdiff_helpers import BASE_TIME, fast_import_commits

from aioreftable.cli import main

__all__ = ["SCENARIOS", "Outcome", "Scenarios", "run_both", "run_git", "run_ours", "scenarios"]

Outcome = tuple[bytes, bytes, int]  # stdout, stderr, exit status
Builder = Callable[[Git, Path], Path]

NO_COMPACTION = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}


def _init(git: Git, path: Path, fmt: str = "sha1", *extra: str) -> None:
    git("init", "-q", "--ref-format=reftable", f"--object-format={fmt}", "-b", "main",
        *extra, str(path))  # fmt: skip


def _stdin(git: Git, repo: Path, lines: Sequence[str | bytes], env: dict[str, str]) -> None:
    """One ``git update-ref --stdin`` transaction: one table."""
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    git.run("update-ref", "-m", "batch", "--stdin", cwd=repo, input=data, env=env)


def _tag(git: Git, repo: Path, name: str, target: str, message: str, when: int) -> None:
    """An annotated tag with a fixed tagger date (``when`` seconds after BASE_TIME)."""
    env = {**NO_COMPACTION, "GIT_COMMITTER_DATE": f"{BASE_TIME + when} +0100"}
    git("tag", "-a", "-m", message, name, target, cwd=repo, env=env)


def _rich(git: Git, path: Path, fmt: str) -> Path:
    """Every kind of ref, in a stack of several tables (auto-compaction off), with a
    linked worktree next to it (``<path>.wt``), tombstones and a non-UTF-8 name."""
    env = NO_COMPACTION
    _init(git, path, fmt)
    git("config", "core.logAllRefUpdates", "true", cwd=path)
    commits = fast_import_commits(git, path, 12)
    tree = git("rev-parse", f"{commits[0]}^{{tree}}", cwd=path).strip()
    blob = git.run("hash-object", "-w", "--stdin", cwd=path, input=b"a blob\n").stdout
    _stdin(git, path, [
        f"create refs/heads/feature/a {commits[3]}",
        f"create refs/heads/feature/b {commits[4]}",
        f"create refs/heads/deep/path/x {commits[5]}",
        f"create refs/heads/feature/deep/path/x {commits[6]}",
        f"create refs/heads/a-b {commits[7]}",
        f"create refs/heads/a.b {commits[8]}",
        f"create refs/heads/a/b {commits[9]}",
        f"create refs/heads/v1.10 {commits[1]}",
        f"create refs/heads/v1.9 {commits[2]}",
        f"create refs/heads/v1.9-rc1 {commits[2]}",
        f"create refs/remotes/origin/main {commits[-1]}",
        f"create refs/remotes/origin/topic {commits[2]}",
        f"create refs/notes/commits {commits[0]}",
        f"create refs/pull/1/head {commits[1]}",
        f"create refs/tags/lw {commits[1]}",
        f"create refs/tags/tree {tree}",
        f"create refs/tags/blob {blob.decode().strip()}",
        b"create refs/heads/caf\xe9 " + commits[2].encode(),
        f"create refs/heads/gone {commits[3]}",
        f"create refs/stash-like/x {commits[4]}",
    ], env)  # fmt: skip
    _tag(git, path, "v1.0", commits[5], "release one\n\nwith a body\n", 100)
    _tag(git, path, "v2.0", commits[-1], "release two", 200)
    _tag(git, path, "v2.0-nested", "refs/tags/v2.0", "tag of a tag", 300)
    _tag(git, path, "v2.0-nested2", "refs/tags/v2.0-nested", "tag of a tag of a tag", 400)
    _tag(git, path, "tree-tag", tree, "tag of a tree", 500)
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main", cwd=path, env=env)
    git("symbolic-ref", "refs/heads/dangling", "refs/heads/does-not-exist", cwd=path, env=env)
    git("symbolic-ref", "refs/heads/alias", "refs/heads/feature/a", cwd=path, env=env)
    git("symbolic-ref", "refs/heads/alias2", "refs/heads/alias", cwd=path, env=env)
    git("update-ref", "-d", "refs/heads/gone", cwd=path, env=env)  # a tombstone
    git("update-ref", "ORIG_HEAD", commits[-2], cwd=path, env=env)
    git("update-ref", "refs/bisect/bad", commits[3], cwd=path, env=env)
    git("worktree", "add", "-q", "-b", "wt-branch", f"{path}.wt", commits[4], cwd=path, env=env)
    git("update-ref", "refs/worktree/wt-only", commits[6], cwd=f"{path}.wt", env=env)
    git("update-ref", "refs/bisect/good", commits[1], cwd=f"{path}.wt", env=env)
    git("checkout", "-q", "--detach", commits[7], cwd=f"{path}.wt", env=env)
    return path


def rich_sha1(git: Git, path: Path) -> Path:
    return _rich(git, path, "sha1")


def rich_sha256(git: Git, path: Path) -> Path:
    return _rich(git, path, "sha256")


def worktree_sha1(git: Git, path: Path) -> Path:
    """The linked worktree of a rich sha1 repository (detached HEAD, its own refs)."""
    _rich(git, path, "sha1")
    return Path(f"{path}.wt")


def empty_sha1(git: Git, path: Path) -> Path:
    """A fresh repository: an unborn HEAD and no refs."""
    _init(git, path)
    return path


def bare_sha256(git: Git, path: Path) -> Path:
    """A bare sha256 repository with a few refs and a HEAD pointing at an unborn branch."""
    _init(git, path, "sha256", "--bare")
    commits = fast_import_commits(git, path, 3)
    _stdin(git, path, [f"create refs/heads/b{i} {c}" for i, c in enumerate(commits)], {})
    git("symbolic-ref", "HEAD", "refs/heads/unborn", cwd=path)
    return path


def tombstones_sha1(git: Git, path: Path) -> Path:
    """Many tables: refs created, updated, deleted and re-created across them (no
    compaction), so the live view needs the whole stack."""
    env = NO_COMPACTION
    _init(git, path)
    commits = fast_import_commits(git, path, 6)
    for round_ in range(6):
        lines = [f"update refs/heads/r/{i:02d} {commits[(i + round_) % 6]}" for i in range(20)]
        _stdin(git, path, lines, env)
        _stdin(git, path, [f"delete refs/heads/r/{i:02d}" for i in range(round_, 20, 4)], env)
    git("update-ref", "-d", "refs/heads/main", cwd=path, env=env)
    git("update-ref", "refs/heads/main", commits[-1], cwd=path, env=env)
    return path


def many_sha1(git: Git, path: Path) -> Path:
    """10 000 refs (branches, lightweight and annotated tags) in three tables."""
    _init(git, path)
    commits = fast_import_commits(git, path, 50, tags=20)
    _stdin(git, path, [f"create refs/heads/b/{i:05d} {commits[i % 50]}" for i in range(6000)], {})
    _stdin(git, path, [f"create refs/tags/t/{i:05d} {commits[i % 50]}" for i in range(3979)], {})
    git("symbolic-ref", "refs/heads/sym", "refs/heads/b/00042", cwd=path)
    return path


SCENARIOS: dict[str, Builder] = {
    "rich-sha1": rich_sha1,
    "rich-sha256": rich_sha256,
    "worktree-sha1": worktree_sha1,
    "empty-sha1": empty_sha1,
    "bare-sha256": bare_sha256,
    "tombstones-sha1": tombstones_sha1,
    "many-sha1": many_sha1,
}
SMALL = [name for name in SCENARIOS if name != "many-sha1"]


class Scenarios:
    """The session's scenario repositories, each built on first use."""

    def __init__(self, git: Git, root: Path):
        self.git = git
        self.root = root
        self._built: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._built:
            self._built[name] = self.build(name, self.root / name)
        return self._built[name]

    def build(self, name: str, dest: Path) -> Path:
        """A fresh copy built by git at ``dest`` (same object ids: the dates are fixed)."""
        return SCENARIOS[name](self.git, dest)

    def copy(self, name: str, dest: Path) -> Path:
        """A copy of a built scenario without worktrees (its links would point back)."""
        src = self[name]
        shutil.copytree(src, dest, symlinks=True)
        return dest


@pytest.fixture(scope="session")
def scenarios(git: Git, tmp_path_factory: pytest.TempPathFactory) -> Scenarios:
    return Scenarios(git, tmp_path_factory.mktemp("scenarios"))


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stream() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape", newline="\n")


def _argv_text(argv: Sequence[str | bytes]) -> list[str]:
    return [os.fsdecode(a) for a in argv]


def run_ours(
    repo: Path,
    argv: Sequence[str | bytes],
    env: dict[str, str] | None = None,
    stdin: bytes = b"",
) -> Outcome:
    """``aioreftable -C repo argv`` in this process, with git's fixed environment."""
    out, err = _stream(), _stream()
    cwd = os.getcwd()
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors="surrogateescape")
    try:
        with (
            _environment({**GIT_ENV, **(env or {})}),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = main(["-C", str(repo), *_argv_text(argv)])
    finally:
        sys.stdin = old_stdin
        os.chdir(cwd)
    out.flush()
    err.flush()
    return out.buffer.getvalue(), err.buffer.getvalue(), code  # type: ignore[attr-defined]


def run_ours_process(repo: Path, argv: Sequence[str | bytes]) -> Outcome:
    """The same through the entry point, in a new interpreter (``python -m aioreftable``)."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "-C", str(repo), *argv],
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=300,
    )
    return proc.stdout, proc.stderr, proc.returncode


def run_git(
    git: Git, repo: Path, argv: Sequence[str | bytes], env: dict[str, str] | None = None
) -> Outcome:
    proc = git.run("-C", str(repo), *_argv_text(argv), check=False, env=env)
    return proc.stdout, proc.stderr, proc.returncode


def run_both(git: Git, repo: Path, argv: Sequence[str | bytes]) -> tuple[Outcome, Outcome]:
    """(ours, git's) for one read-only command line on one repository."""
    return run_ours(repo, argv), run_git(git, repo, argv)
