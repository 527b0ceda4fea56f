"""`aioreftable watch`: the lines git's reference-transaction hook prints for the same
updates (when git passes the old values), byte for byte; its refusals."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GIT_ENV, Git

from aioreftable.lowlevel import TableReader

pytestmark = pytest.mark.git

Z = "0" * 40
NO_COMPACT = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
HOOK = '#!/bin/sh\nif [ "$1" = committed ]; then cat >> "$HOOKLOG"; fi\n'


def top_update_index(repo: Path) -> int:
    stack = repo / ".git" / "reftable"
    last = (stack / "tables.list").read_text().split()[-1]
    with TableReader.from_path(stack / last) as reader:
        return reader.max_update_index


def watch(repo: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aioreftable", "-C", str(repo), "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **GIT_ENV},
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.communicate(timeout=10)  # closes the pipes


def read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float = 30) -> list[str]:
    """``count`` lines of ``proc``'s stdout, each as soon as it is written (flushed)."""
    assert proc.stdout is not None
    lines: list[str] = []
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(lines) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {lines} after {timeout} s"
            if sel.select(left):
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"watch ended after {lines}: {proc.stderr.read()!r}"  # type: ignore[union-attr]
                buffer += chunk
                *done, buffer = buffer.split(b"\n")
                lines.extend(line.decode() for line in done)
    return lines


def test_watch_prints_what_the_hook_sees(git: Git, git_repo: Callable[..., Path]) -> None:
    repo = git_repo()
    for n in range(2):
        git("commit", "-q", "--allow-empty", "-m", f"c{n}", cwd=repo)
    c0, c1 = (git("rev-parse", f"HEAD~{1 - n}", cwd=repo).strip() for n in range(2))
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "reference-transaction").write_text(HOOK)
    (hooks / "reference-transaction").chmod(0o755)
    log = repo.parent / "hook.log"
    env = {**NO_COMPACT, "HOOKLOG": str(log)}
    proc = watch(repo, "--since", str(top_update_index(repo)))
    try:
        git("update-ref", "refs/heads/a", c0, Z, cwd=repo, env=env)
        git("update-ref", "refs/heads/a", c1, c0, cwd=repo, env=env)
        git("update-ref", "refs/tags/t", c0, Z, cwd=repo, env=env)
        stdin = (
            f"start\ncreate refs/heads/b {c0}\nupdate refs/heads/c {c1} {Z}\n"
            "symref-create refs/heads/s refs/heads/a\ncommit\n"
        )
        git("update-ref", "--stdin", cwd=repo, env=env, input=stdin)
        git("update-ref", "-d", "refs/heads/a", c1, cwd=repo, env=env)
        git("update-ref", "refs/tags/t", c1, c0, cwd=repo, env=env)
        expected = log.read_text().splitlines()
        assert len(expected) == 8
        assert read_lines(proc, len(expected)) == expected
    finally:
        stop(proc)


def test_watch_filters_by_prefix_and_shows_update_indexes(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=repo)
    c0 = git("rev-parse", "HEAD", cwd=repo).strip()
    start = top_update_index(repo)
    proc = watch(repo, "refs/tags/", "--since", str(start), "--update-index", "--poll", "0.05")
    try:
        git("update-ref", "refs/heads/x", c0, cwd=repo, env=NO_COMPACT)
        git("update-ref", "refs/tags/y", c0, cwd=repo, env=NO_COMPACT)
        assert read_lines(proc, 1) == [f"{Z} {c0} refs/tags/y {start + 2}"]
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["watch", "--poll", "0"], 129, "error: --poll needs a positive number of seconds"),
        (["watch", "--since", "-1"], 129, "error: --since needs an update index >= 0"),
    ],
)
def test_watch_refusals(
    git: Git, git_repo: Callable[..., Path], args: list[str], status: int, message: str
) -> None:
    repo = git_repo()
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "-C", str(repo), *args],
        capture_output=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr.decode().strip(), proc.stdout) == (status, message, b"")


def test_watch_outside_a_repository(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "-C", str(tmp_path), "watch"],
        capture_output=True,
        timeout=60,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
    )
    assert proc.returncode == 128
    assert proc.stderr.decode().startswith("fatal: not a git repository"), proc.stderr
    assert b"Traceback" not in proc.stderr
