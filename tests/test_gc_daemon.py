"""``aioreftable gc --daemon`` as a real subprocess: a tree of repositories written by git and
by our writers without auto-compaction while it runs, writers at default lock timeouts,
SIGTERM in the middle of a compaction, metrics over HTTP and in a textfile."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Git
from gc_helpers import (
    NO_COMPACT,
    ROOT,
    Daemon,
    is_geometric,
    leftovers,
    listed,
    make_repo,
    parse_metrics,
    scrape,
    wait_for,
)
from refs_helpers import reflog_dump, refs_verify, show_refs

from aioreftable import StackOptions, open_stack
from aioreftable.lowlevel import LogRecord, RefRecord

OUR_WRITER = """
import sys, anyio
from aioreftable import LockError, StackOptions, open_stack
from aioreftable.lowlevel import LogRecord, RefRecord

async def main(stack_dir, oid, count, prefix):
    value, failures = bytes.fromhex(oid), 0
    async with open_stack(stack_dir, StackOptions(auto_compact=False)) as stack:
        for i in range(count):
            name = f"{prefix}{i}".encode()
            try:
                async with stack.addition() as add:
                    ui = add.update_index
                    add.writer.add_ref(RefRecord.val1(name, ui, value))
                    add.writer.add_log(LogRecord(name, ui, old_id=bytes(20), new_id=value,
                        name=b"W", email=b"w@example.com", time=1700000000, message=b"w\\n"))
            except LockError:
                failures += 1
    print(failures)

anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
"""


def _git_loop(git: Git, repo: Path, oid: str, prefix: str, count: int) -> int:
    """``git update-ref`` in a loop at git's default lock timeout; the failures."""
    failures = 0
    for i in range(count):
        proc = git.run("update-ref", f"{prefix}{i}", oid, cwd=repo, env=NO_COMPACT, check=False)
        failures += proc.returncode != 0
    return failures


def _our_loop(stack_dir: Path, oid: str, prefix: str, count: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", OUR_WRITER, str(stack_dir), oid, str(count), prefix]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _compactions(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("aioreftable_gc_compactions_total"))


def _hammer(git: Git, root: Path, oid: str, tag: str, count: int) -> int:
    """Two git loops and one of ours on three repositories at once; total failures."""
    ours = _our_loop(root / "b.git" / "reftable", oid, f"refs/heads/ours-{tag}-", count)
    with ThreadPoolExecutor(2) as pool:
        loops = [
            pool.submit(_git_loop, git, root / "a.git", oid, f"refs/heads/{tag}-", count),
            pool.submit(_git_loop, git, root / "w", oid, f"refs/tags/{tag}-", count),
        ]
        failures = sum(f.result() for f in loops)
    out, _ = ours.communicate(timeout=120)
    assert ours.returncode == 0
    return failures + int(out)


def test_daemon_keeps_a_tree_geometric_beside_writers(tmp_path: Path, git: Git) -> None:
    root = tmp_path / "root"
    root.mkdir()
    oid = make_repo(git, root / "a.git", bare=True, refs=6)
    make_repo(git, root / "b.git", bare=True, refs=3)
    make_repo(git, root / "w", refs=4)
    git("worktree", "add", "-q", "-b", "side", str(root / "wt"), cwd=root / "w", env=NO_COMPACT)
    git("init", "-q", "--ref-format=files", str(root / "files"))
    repos = [root / "a.git", root / "b.git", root / "w", root / "wt"]
    stacks = [root / "a.git/reftable", root / "b.git/reftable", root / "w/.git/reftable"]
    stacks.append(root / "w/.git/worktrees/wt/reftable")

    without = _hammer(git, root, oid, "before", 40)  # writers alone, no daemon
    metrics_file = tmp_path / "gc.prom"
    daemon = Daemon(tmp_path / "daemon.log", [root], "--metrics-port=0",
                    f"--metrics-file={metrics_file}")  # fmt: skip
    try:
        port = daemon.wait_event("metrics_listening")["port"]
        daemon.wait_event("started")
        with_daemon = _hammer(git, root, oid, "during", 40)
        written = {r: (show_refs(git, r), reflog_dump(git, r)) for r in repos}
        assert wait_for(lambda: all(is_geometric(s) for s in stacks), 20), [
            len(listed(s)) for s in stacks
        ]

        def settled() -> bool:  # the counters equal the compactions the log reports
            samples = scrape(port)
            logged: int = sum(e["compactions"] for e in daemon.events("compacted"))
            return bool(logged == _compactions(samples) > 0)

        assert wait_for(settled, 10, step=0.2)
        samples = scrape(port)
    finally:
        status, elapsed = daemon.stop()
    assert status == 0 and elapsed < 5, (status, elapsed)
    assert with_daemon <= without == 0, (with_daemon, without, daemon.log.read_text()[-4000:])
    assert {r: (show_refs(git, r), reflog_dump(git, r)) for r in repos} == written
    for r in repos:
        refs_verify(git, r)
    for s in stacks:
        assert leftovers(s) == []
    assert len(git("for-each-ref", "refs/heads/during-*", cwd=root / "a.git").splitlines()) == 40
    assert len(git("for-each-ref", "refs/heads/ours-*", cwd=root / "b.git").splitlines()) == 80

    assert [e["git_dir"] for e in daemon.events("files_backend_ignored")] == [
        str(root / "files" / ".git")
    ]
    assert samples["aioreftable_gc_stacks_watched"] == 4
    assert samples["aioreftable_gc_repositories_watched"] == 3
    assert all(name.startswith("aioreftable_") for name in samples)
    # the whole run: the textfile is written once more at shutdown, after the last pass
    compacted = daemon.events("compacted")
    final = parse_metrics(metrics_file.read_text())
    assert final["aioreftable_gc_compaction_reclaimed_bytes_total"] == sum(
        max(0, e["bytes_before"] - e["bytes_after"]) for e in compacted
    )
    assert _compactions(final) == sum(e["compactions"] for e in compacted)
    assert final["aioreftable_gc_stack_tables_gcount"] == 4
    assert daemon.events("stopped")


async def _big_stack(stack_dir: Path, oid: str, tables: int, refs: int) -> None:
    value = bytes.fromhex(oid)
    async with open_stack(stack_dir, StackOptions(auto_compact=False)) as stack:
        for t in range(tables):
            async with stack.addition() as add:
                ui = add.update_index
                for i in range(refs):
                    add.writer.add_ref(RefRecord.val1(b"refs/tags/t%d-%06d" % (t, i), ui, value))
                add.writer.add_log(LogRecord(b"refs/tags/t%d-000000" % t, ui, old_id=bytes(20),
                                             new_id=value, name=b"W", email=b"w@example.com",
                                             time=1700000000, message=b"big\n"))  # fmt: skip


@pytest.mark.parametrize("shutdown_timeout", [5.0, 1.6])
def test_sigterm_in_the_middle_of_a_compaction(
    tmp_path: Path, git: Git, shutdown_timeout: float
) -> None:
    """With the default bound (5 s) the running compaction (0.5 s here) finishes; with
    1.6 s (0.1 s of grace) it is abandoned. Either way: exit status 0 within the bound, no
    lock or temporary file, and the next start resumes."""
    root = tmp_path / "root"
    root.mkdir()
    repo = root / "big.git"
    oid = make_repo(git, repo, bare=True)
    stack = repo / "reftable"
    anyio.run(_big_stack, stack, oid, 6, 15_000)
    before = show_refs(git, repo)
    tables = listed(stack)

    daemon = Daemon(tmp_path / "daemon.log", [root], f"--shutdown-timeout={shutdown_timeout}")
    try:
        # the compactor holds its table locks while it merges
        assert wait_for(lambda: any(n.endswith(".ref.lock") for n in leftovers(stack)), 30, 0.002)
        status, elapsed = daemon.stop()
    finally:
        daemon.stop()
    assert status == 0 and elapsed < shutdown_timeout, (status, elapsed)
    assert daemon.events("stopping")[0]["running"] == 1
    assert daemon.events("stopped")
    assert leftovers(stack) == []
    if shutdown_timeout == 5.0:
        assert len(daemon.events("compacted")) == 1
        assert len(listed(stack)) == 1
    else:
        assert daemon.events("compacted") == []  # abandoned
        assert listed(stack) == tables
    assert show_refs(git, repo) == before
    refs_verify(git, repo)

    proc = subprocess.run([sys.executable, "-m", "aioreftable", "gc", str(root)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(listed(stack)) == 1 and leftovers(stack) == []
    assert show_refs(git, repo) == before
    refs_verify(git, repo)


def test_a_deep_stack_is_compacted_in_bounded_steps(tmp_path: Path, git: Git) -> None:
    """A segment longer than --tables-per-step is merged in runs of at most that many
    tables (each step locks only those); the result is what git's rule asks for."""
    repo = tmp_path / "d.git"
    make_repo(git, repo, bare=True, refs=40)
    stack = repo / "reftable"
    before = show_refs(git, repo)
    assert len(listed(stack)) == 42  # init, main, 40 branches

    def one_pass(*args: str) -> list[dict[str, Any]]:
        command = [sys.executable, "-m", "aioreftable", "gc", str(tmp_path), "--log-format=json"]
        proc = subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return [e for e in map(json.loads, proc.stderr.splitlines()) if e["event"] == "compacted"]

    (auto,) = one_pass("--tables-per-step=8", "--max-tables=0")
    assert auto["kind"] == "auto" and auto["compactions"] >= 42 // 8
    assert is_geometric(stack) and 1 < len(listed(stack)) < 8
    assert show_refs(git, repo) == before and leftovers(stack) == []
    for i in range(10):
        git("update-ref", f"refs/tags/t{i}", "main", cwd=repo, env=NO_COMPACT)
    (full,) = one_pass("--tables-per-step=4", "--max-tables=6")
    assert full["kind"] == "full" and full["compactions"] >= 3
    assert len(listed(stack)) == 1 and leftovers(stack) == []
    assert len(show_refs(git, repo).splitlines()) == len(before.splitlines()) + 10
    refs_verify(git, repo)


async def _two_tables(stack_dir: Path, oid: str, sizes: tuple[int, ...]) -> None:
    value = bytes.fromhex(oid)
    async with open_stack(stack_dir, StackOptions(auto_compact=False)) as stack:
        for t, refs in enumerate(sizes):
            async with stack.addition() as add:
                for i in range(refs):
                    name = b"refs/tags/s%d-%03d" % (t, i)
                    add.writer.add_ref(RefRecord.val1(name, add.update_index, value))


def test_the_repository_geometric_factor_is_used(tmp_path: Path, git: Git) -> None:
    """reftable.geometricFactor from the repository's config decides, as for git: a table
    three times the size of the one above it is enough for 2, not for 5."""
    for name in ("two.git", "five.git"):
        oid = make_repo(git, tmp_path / name, bare=True)
        anyio.run(_two_tables, tmp_path / name / "reftable", oid, (60, 20))
    git("config", "reftable.geometricFactor", "5", cwd=tmp_path / "five.git")
    proc = subprocess.run([sys.executable, "-m", "aioreftable", "gc", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    two, five = tmp_path / "two.git" / "reftable", tmp_path / "five.git" / "reftable"
    assert len(listed(two)) == 2 and is_geometric(two, 2) and not is_geometric(two, 5)
    assert len(listed(five)) == 1


def test_daemon_exits_promptly_when_idle(tmp_path: Path, git: Git) -> None:
    """SIGINT as well as SIGTERM; an idle daemon costs no CPU to speak of."""
    make_repo(git, tmp_path / "r.git", bare=True, refs=3)
    daemon = Daemon(tmp_path / "daemon.log", [tmp_path])
    try:
        daemon.wait_event("compacted")
        time.sleep(1.0)
        with open(f"/proc/{daemon.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[11]) + int(fields[12])
        time.sleep(2.0)
        with open(f"/proc/{daemon.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        idle_ticks = int(fields[11]) + int(fields[12]) - start_ticks
    finally:
        status, elapsed = daemon.stop(__import__("signal").SIGINT)
    assert status == 0 and elapsed < 5
    assert idle_ticks <= 10  # at most 0.1 s of CPU in 2 s idle (clock ticks of 10 ms)
