"""Reflog expiry by policy: off unless configured; what the daemon prunes equals what
``git reflog expire`` prunes on a twin; per-repository overrides from the TOML file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import Git
from gc_helpers import NO_COMPACT, ROOT, make_repo
from refs_helpers import reflog_dump, refs_verify, show_refs

OLD = {"GIT_COMMITTER_DATE": "1112354055 +0200", **NO_COMPACT}  # 2005
NEW = {"GIT_COMMITTER_DATE": "1780000000 +0000", **NO_COMPACT}  # 2026


def _history(git: Git, repo: Path) -> None:
    """Reflogs with entries from 2005 and from 2026: HEAD (through main), a branch with
    both, one with old entries only, one with new entries only."""
    oid = make_repo(git, repo)
    tree = git("rev-parse", "HEAD^{tree}", cwd=repo).strip()
    second = git("commit-tree", tree, "-p", oid, "-m", "second", cwd=repo).strip()
    for n, (env, value) in enumerate([(OLD, second), (OLD, oid), (NEW, second), (NEW, oid)]):
        git("update-ref", "-m", f"mixed {n}", "refs/heads/mixed", value, cwd=repo, env=env)
    for n, value in enumerate([second, oid]):
        git("update-ref", "-m", f"old {n}", "refs/heads/old", value, cwd=repo, env=OLD)
        git("update-ref", "-m", f"new {n}", "refs/heads/new", value, cwd=repo, env=NEW)
    git("update-ref", "-m", "main moves", "refs/heads/main", second, cwd=repo, env=NEW)


def _gc(*args: str) -> list[dict[str, object]]:
    command = [sys.executable, "-m", "aioreftable", "gc", "--log-format=json", *args]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stderr.splitlines()]


def test_reflog_expiry_matches_git_reflog_expire_on_a_twin(tmp_path: Path, git: Git) -> None:
    root = tmp_path / "root"
    root.mkdir()
    repo, twin, kept = root / "r", tmp_path / "twin", root / "kept"
    _history(git, repo)
    shutil.copytree(repo, twin, symlinks=True)
    shutil.copytree(repo, kept, symlinks=True)
    before = reflog_dump(git, repo)
    assert len(before["refs/heads/mixed"].splitlines()) == 4

    assert not [e for e in _gc(str(root)) if e["event"] == "reflog_expired"]  # off by default
    assert reflog_dump(git, repo) == before

    # any cutoff between 2005 and 2026 prunes the same entries
    git("reflog", "expire", "--expire=2017-01-01", "--expire-unreachable=2017-01-01", "--all",
        cwd=twin, env=NO_COMPACT)  # fmt: skip
    config = tmp_path / "gc.toml"
    config.write_text(
        f'[gc]\nroots = ["{root}"]\n\n[[repository]]\nmatch = "{repo}/*"\nreflog_expire = "3650d"\n'
    )
    events = _gc("--config", str(config))
    expired = [e for e in events if e["event"] == "reflog_expired"]
    assert [e["stack"] for e in expired] == [str(repo / ".git" / "reftable")]

    after = reflog_dump(git, repo)
    assert after == reflog_dump(git, twin)
    assert after != before
    pruned = sum(len(v.splitlines()) for v in before.values()) - sum(
        len(v.splitlines()) for v in after.values()
    )
    assert expired[0]["entries"] == pruned > 0
    assert reflog_dump(git, kept) == before  # the override matched only one repository
    assert show_refs(git, repo) == show_refs(git, twin)
    refs_verify(git, repo)
