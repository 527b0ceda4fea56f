"""Sharing the lock with git: how often a ``git update-ref`` loop fails beside our writers.

    python benchmarks/bench_fair.py              # 200 git updates per row
    python benchmarks/bench_fair.py --updates 500

A loop of ``git update-ref`` processes (git's default ``reftable.lockTimeout``, 100 ms)
updates its own refs while, on the same bare repository, either another such git loop
runs, or one process of ours with 64 async writers commits as fast as it can (group
commit on, then off). Reports the git loop's failures ("cannot lock references") and,
for our rows, our transactions/s while the git loop ran. Needs git >= 2.45.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_group import GIT_ENV, find_git
from bench_stack import EMPTY_BLOB
from bench_stack import git_repo as bare_repo

from aioreftable import LockError, TransactionError, open_ref_store


async def git_loop(git: str, repo: str, label: str, n: int) -> int:
    """``n`` sequential updates; the number that failed."""
    failed = 0
    for i in range(n):
        proc = await anyio.run_process(
            [git, "--git-dir", repo, "update-ref", f"refs/tags/{label}{i:05d}", EMPTY_BLOB],
            check=False,
            env=GIT_ENV,
        )
        failed += proc.returncode != 0
    return failed


async def beside_git(git: str, repo: str, n: int) -> tuple[int, float]:
    results: list[int] = []

    async def loop(label: str) -> None:
        results.append(await git_loop(git, repo, label, n))

    async with anyio.create_task_group() as tg:
        tg.start_soon(loop, "a")
        tg.start_soon(loop, "b")
    return results[0] + results[1], float("nan")


async def beside_ours(git: str, repo: str, n: int, group: bool) -> tuple[int, float]:
    committed = 0
    async with open_ref_store(repo, env=GIT_ENV, group_commit=group) as store:
        done = anyio.Event()

        async def writer(w: int) -> None:
            nonlocal committed
            i = 0
            while not done.is_set():
                try:
                    async with store.transaction(message="bench") as tx:
                        tx.create(f"refs/tags/o{w:03d}-{i:06d}", EMPTY_BLOB)
                    committed += 1
                except (LockError, TransactionError):
                    pass
                i += 1

        failed = 0
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(64):
                tg.start_soon(writer, w)
            failed = await git_loop(git, repo, "g", n)
            done.set()
        rate = committed / (time.perf_counter() - start)
    return failed, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    git = find_git()
    version = subprocess.run([git, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {version}")
    print(f"{'beside the git loop':40} {'git failed':>12} {'our tx/s':>9}")
    with tempfile.TemporaryDirectory() as root:
        failed, _ = anyio.run(beside_git, git, bare_repo(git, root), args.updates)
        print(f"{'another git update-ref loop':40} {failed:5d} of {2 * args.updates:<5d}")
        for group in (True, False):
            failed, rate = anyio.run(beside_ours, git, bare_repo(git, root), args.updates, group)
            label = f"64 writers of ours, group commit {'on' if group else 'off'}"
            print(f"{label:40} {failed:5d} of {args.updates:<5d} {rate:9.0f}")


if __name__ == "__main__":
    main()
