"""Stale locks: reported when older than the threshold; ``--break-stale-locks`` removes a
``tables.list.lock`` only when no process holds it open (checked in /proc), never a table
lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import Git
from gc_helpers import NO_COMPACT, ROOT, listed, make_repo, parse_metrics

from aioreftable.gc._locks import break_stale_lock, holders

OLD = time.time() - 3600


def _old_file(path: Path) -> None:
    path.write_bytes(b"")
    os.utime(path, (OLD, OLD))


def _gc(root: Path, *args: str) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "aioreftable", "gc", str(root), "--log-format=json", *args]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stderr.splitlines()]


def test_stale_locks_are_reported_and_broken_only_when_abandoned(tmp_path: Path, git: Git) -> None:
    root = tmp_path / "root"
    root.mkdir()
    oid = make_repo(git, root / "a.git", bare=True, refs=3)
    make_repo(git, root / "b.git", bare=True, refs=3)
    a, b = root / "a.git" / "reftable", root / "b.git" / "reftable"
    abandoned, table_lock, held = (
        a / "tables.list.lock",
        a / (listed(a)[0] + ".lock"),
        b / "tables.list.lock",
    )
    _old_file(abandoned)
    _old_file(table_lock)
    fd = os.open(held, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # a live writer that hangs
    os.utime(held, (OLD, OLD))
    try:
        events = _gc(root, "--stale-lock-age=60", f"--metrics-file={tmp_path / 'm.prom'}")
        reported = {e["path"]: e["kind"] for e in events if e["event"] == "stale_lock"}
        assert reported == {str(abandoned): "list", str(table_lock): "table", str(held): "list"}
        assert abandoned.exists() and table_lock.exists() and held.exists()
        assert {e["reason"] for e in events if e["event"] == "gave_up"} == {"lock"}
        metrics = parse_metrics((tmp_path / "m.prom").read_text())
        assert metrics["aioreftable_gc_stale_locks"] == 3
        assert metrics["aioreftable_gc_compaction_giveups_total{reason=lock}"] == 2
        assert git.run(
            "update-ref", "refs/heads/x", oid, cwd=root / "a.git", check=False
        ).returncode

        young = _gc(root, "--stale-lock-age=7200", "--break-stale-locks")  # not old enough
        assert not [e for e in young if e["event"].startswith("stale_lock")]
        assert abandoned.exists()

        events = _gc(root, "--stale-lock-age=60", "--break-stale-locks")
        outcomes = {e["path"]: e["outcome"] for e in events if "outcome" in e}
        assert outcomes == {str(abandoned): "removed", str(held): "held"}
        assert not abandoned.exists() and table_lock.exists() and held.exists()
        assert [e["event"] for e in events if "outcome" in e].count("stale_lock_broken") == 1
    finally:
        os.close(fd)
        held.unlink()
    git("update-ref", "refs/heads/x", oid, cwd=root / "a.git", env=NO_COMPACT)  # writable again


def test_break_stale_lock_outcomes(tmp_path: Path) -> None:
    lock = tmp_path / "tables.list.lock"
    assert break_stale_lock(str(lock), time.time(), 60) == "gone"
    lock.write_bytes(b"")
    assert break_stale_lock(str(lock), time.time(), 60) == "young"
    assert holders(str(lock)) is False
    with open(lock, "rb"):
        assert holders(str(lock)) is True  # this very process holds it
        assert break_stale_lock(str(lock), time.time() + 120, 60) == "held"
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; f = open(sys.argv[1]); print(1, flush=True); "
         "time.sleep(60)", str(lock)], stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"1"
        assert holders(str(lock)) is True
        assert break_stale_lock(str(lock), time.time() + 120, 60) == "held"
    finally:
        child.kill()
        child.communicate()
    assert holders(str(lock), proc=str(tmp_path / "no-proc")) is None  # cannot prove
    assert break_stale_lock(str(lock), time.time() + 120, 60, proc=str(tmp_path)) == "unprovable"
    assert break_stale_lock(str(lock), time.time() + 120, 60) == "removed"
    assert not lock.exists()
