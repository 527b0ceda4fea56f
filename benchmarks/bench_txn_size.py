"""Transaction size: ``git update-ref --stdin`` against ``aioreftable update-ref --stdin``
with n ``create`` lines in one transaction, whole process.

    python benchmarks/bench_txn_size.py                     # 1k, 10k, 100k creates
    python benchmarks/bench_txn_size.py --sizes 1000 10000 --runs 3
    python benchmarks/bench_txn_size.py --in-process        # also store.transaction()

Each run gets a fresh repository made by git (reftable, sha1, one commit) and feeds n
lines ``create refs/heads/d<k>/b<i> <commit>`` (100 directories, so the D/F check has
prefixes to look at) on stdin. Prints the median wall time and the mean CPU time
(user+sys of the child) per command and size, and checks that both sides end with the
same refs. ``--in-process`` also times the same transaction through ``open_ref_store``
in this interpreter (no start-up, no stdin parsing), split into queueing and commit.
Needs git >= 2.45 (AIOREFTABLE_TEST_GIT or git on PATH).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from bench_cli import ENV as BENCH_ENV  # git's fixed identity, no system/global config
from bench_cli import find_git

ENV = {**BENCH_ENV, "GIT_COMMITTER_DATE": "1700000000 +0000", "GIT_AUTHOR_DATE": "1700000000 +0000"}


def git(g: str, repo: Path, *args: str) -> str:
    return subprocess.run(
        [g, *args], cwd=repo, capture_output=True, text=True, env=ENV, check=True
    ).stdout


def make_repo(g: str, path: Path) -> str:
    git(g, path.parent, "init", "-q", "--ref-format=reftable", str(path))
    git(g, path, "commit", "-q", "--allow-empty", "-m", "root")
    return git(g, path, "rev-parse", "HEAD").strip()


def names(n: int) -> list[str]:
    return [f"refs/heads/d{i % 100}/b{i}" for i in range(n)]


def timed(cmd: list[str], repo: Path, stdin: bytes) -> tuple[float, float]:
    """(wall, cpu) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=repo, input=stdin, env=ENV, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


async def in_process(repo: Path, refnames: list[str], oid: str) -> tuple[float, float]:
    """(queueing, commit) seconds of one transaction through the library."""
    from aioreftable import open_ref_store

    async with open_ref_store(repo, object_database=False) as store:
        start = time.perf_counter()
        async with store.transaction("bench") as tx:
            for name in refnames:
                tx.create(name, oid)
            queued = time.perf_counter()
        done = time.perf_counter()
    return queued - start, done - queued


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--in-process", action="store_true")
    args = ap.parse_args()
    g = find_git()
    ours = shutil.which("aioreftable") or sys.exit("aioreftable is not on PATH")
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{git(g, Path('.'), '--version').strip()}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| creates | command | wall (median) | CPU (mean) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in args.sizes:
            refnames = names(n)
            results: dict[str, list[tuple[float, float]]] = {"git": [], "aioreftable": []}
            listings: dict[str, str] = {}
            for run in range(args.runs):
                for label, cmd in (("git", [g]), ("aioreftable", [ours])):
                    repo = root / f"{label}-{n}-{run}"
                    oid = make_repo(g, repo)
                    stdin = "".join(f"create {name} {oid}\n" for name in refnames).encode()
                    results[label].append(timed([*cmd, "update-ref", "--stdin"], repo, stdin))
                    listings[label] = git(g, repo, "for-each-ref", "--format=%(refname)")
            if listings["git"] != listings["aioreftable"]:
                sys.exit(f"{n}: the two sides end with different refs")
            for label, rows in results.items():
                wall = statistics.median(r[0] for r in rows)
                cpu = statistics.mean(r[1] for r in rows)
                print(f"| {n:,} | {label} update-ref --stdin | {wall:.2f} s | {cpu:.2f} s |")
            if args.in_process:
                repo = root / f"lib-{n}"
                oid = make_repo(g, repo)
                queue, commit = anyio.run(in_process, repo, refnames, oid)
                print(f"| {n:,} | store.transaction() in process | {queue + commit:.2f} s "
                      f"(queue {queue:.2f}, commit {commit:.2f}) | |")  # fmt: skip
            sys.stdout.flush()


if __name__ == "__main__":
    main()
