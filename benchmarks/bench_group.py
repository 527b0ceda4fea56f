"""Group commit: transactions/s of many concurrent async writers in one process.

    python benchmarks/bench_group.py                 # 64 and 256 writers
    python benchmarks/bench_group.py --per-writer 20

Every writer commits one transaction at a time, each creating one ref of its own, with
fsync on and git's default lock timeout (100 ms), through ``open_ref_store`` on a bare
reftable repository: with group commit (the default) and without. Beside them, on the
same machine: sequential ``git update-ref`` processes (``core.fsync=reference``) and one
``git update-ref --stdin`` process committing one transaction per ref. Reports
transactions/s, p50/p99 commit latency, batches and failures. uvloop runs the asyncio
rows when it is installed. Needs git >= 2.45 (AIOREFTABLE_TEST_GIT or git on PATH).
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

from bench_stack import EMPTY_BLOB
from bench_stack import GIT_ENV as STACK_GIT_ENV
from bench_stack import git_repo as bare_repo

from aioreftable import LockError, TransactionError, open_ref_store

GIT_ENV = {
    **STACK_GIT_ENV,
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def find_git() -> str:
    for cand in (os.environ.get("AIOREFTABLE_TEST_GIT") or "git", "git"):
        out = subprocess.run([cand, "--version"], capture_output=True, text=True).stdout
        if out:
            major, minor = (int(x) for x in out.split()[2].split(".")[:2])
            if (major, minor) >= (2, 45):
                return cand
    raise SystemExit("needs git >= 2.45 (AIOREFTABLE_TEST_GIT)")


async def ours(repo: str, writers: int, per: int, group: bool) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    async with open_ref_store(repo, env=GIT_ENV, group_commit=group) as store:

        async def writer(w: int) -> None:
            nonlocal failures
            for i in range(per):
                start = time.perf_counter()
                try:
                    async with store.transaction(message="bench") as tx:
                        tx.create(f"refs/tags/w{w:03d}-{i:04d}", EMPTY_BLOB)
                except (LockError, TransactionError):
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for w in range(writers):
                tg.start_soon(writer, w)
        elapsed = time.perf_counter() - start
        stats = store.group_statistics
    return {
        "tx/s": len(latencies) / elapsed,
        "p50": quantile(latencies, 0.5),
        "p99": quantile(latencies, 0.99),
        "failed": failures,
        "batches": stats.batches if stats is not None else len(latencies),
    }


def git_sequential(git: str, root: str, n: int) -> dict[str, float]:
    repo = bare_repo(git, root)
    base = [git, "--git-dir", repo, "-c", "core.fsync=reference", "update-ref"]
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        subprocess.run([*base, f"refs/tags/g{i:06d}", EMPTY_BLOB], check=True, env=GIT_ENV)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {"tx/s": n / elapsed, "p50": quantile(latencies, 0.5),
            "p99": quantile(latencies, 0.99), "failed": 0, "batches": n}  # fmt: skip


def git_stdin(git: str, root: str, n: int) -> dict[str, float]:
    repo = bare_repo(git, root)
    lines = "".join(f"start\ncreate refs/tags/s{i:06d} {EMPTY_BLOB}\ncommit\n" for i in range(n))
    start = time.perf_counter()
    subprocess.run([git, "--git-dir", repo, "-c", "core.fsync=reference", "update-ref",
                    "--stdin"], input=lines.encode(), check=True, capture_output=True,
                   env=GIT_ENV)  # fmt: skip
    elapsed = time.perf_counter() - start
    return {"tx/s": n / elapsed, "p50": float("nan"), "p99": float("nan"), "failed": 0,
            "batches": n}  # fmt: skip


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--per-writer", type=int, default=10)
    parser.add_argument("--git", type=int, default=300, help="transactions of each git row")
    args = parser.parse_args()
    git = find_git()
    options: dict[str, object] = {}
    try:
        import uvloop  # noqa: F401

        options = {"use_uvloop": True}
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    version = subprocess.run([git, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {loop}, {version}")
    header = f"{'row':44} {'tx/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batches':>8} {'failed':>7}"
    print(header)
    with tempfile.TemporaryDirectory() as root:
        rows: list[tuple[str, dict[str, float]]] = []
        for writers in args.writers:
            for group in (True, False):
                repo = bare_repo(git, root)
                result = anyio.run(ours, repo, writers, args.per_writer, group,
                                   backend="asyncio", backend_options=options)  # fmt: skip
                label = f"ours, {writers} writers, group commit {'on' if group else 'off'}"
                rows.append((label, result))
                show(label, result)
        show("git update-ref, sequential processes", git_sequential(git, root, args.git))
        show("git update-ref --stdin, one tx per ref", git_stdin(git, root, args.git))


def show(label: str, r: dict[str, float]) -> None:
    print(f"{label:44} {r['tx/s']:8.0f} {r['p50'] * 1000:8.1f} {r['p99'] * 1000:8.1f} "
          f"{int(r['batches']):8d} {int(r['failed']):7d}")  # fmt: skip


if __name__ == "__main__":
    main()
