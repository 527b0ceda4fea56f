"""Stack benchmark: commit rate, reload-check cost, and a stack after many single commits.

    python benchmarks/bench_stack.py                  # default sizes (a few minutes)
    python benchmarks/bench_stack.py --many 100000    # the issue's 100,000-commit run
    python benchmarks/bench_stack.py --hold 500       # only: tables.list.lock hold time

Measures, on this machine, in one run:

1. commits/s of single-ref additions, every one fsynced (table, list, directory):
   one writer; 64 concurrent tasks in one process; 4 processes; against git on the same
   machine: sequential ``git update-ref`` processes (default ``core.fsync``, which does not
   fsync refs, and ``core.fsync=reference``), and one ``git update-ref --stdin`` process
   committing one transaction per ref;
2. the cost of the up-to-date check every read does (``await stack.snapshot()`` when
   nothing changed) next to a bare ``os.stat``;
3. after ``--many`` single-ref commits with background auto-compaction: the table count and
   the lookup latency, against the same refs fully compacted;
4. with ``--hold N`` instead: how long each of N single-ref commits holds tables.list.lock
   (p50, p99) and the median of each step inside it.

Needs git >= 2.45 for the git rows (AIOREFTABLE_TEST_GIT or git on PATH).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar, TypeVarTuple

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioreftable import Snapshot, Stack, StackOptions, open_stack
from aioreftable._fs import OS, TempTable
from aioreftable.lowlevel import RefRecord

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

OID = bytes.fromhex("1" * 40)
GENEROUS = StackOptions(lock_timeout=600.0)


def find_git() -> str | None:
    for cand in (os.environ.get("AIOREFTABLE_TEST_GIT"), shutil.which("git")):
        if cand:
            out = subprocess.run([cand, "--version"], capture_output=True, text=True).stdout
            parts = out.split()[2].split(".") if out else ["0", "0"]
            if (int(parts[0]), int(parts[1])) >= (2, 45):
                return cand
    return None


async def commit(stack: Stack, name: bytes) -> None:
    async with stack.addition() as add:
        add.writer.add_ref(RefRecord.val1(name, add.update_index, OID))


async def one_writer(d: str, n: int) -> float:
    async with open_stack(d, GENEROUS, create=True) as stack:
        start = time.perf_counter()
        for i in range(n):
            await commit(stack, b"refs/heads/w%06d" % i)
        elapsed = time.perf_counter() - start
        await stack.wait_idle()
    return n / elapsed


async def many_tasks(d: str, n: int, tasks: int) -> float:
    async with open_stack(d, GENEROUS, create=True) as stack:

        async def worker(t: int) -> None:
            for i in range(t, n, tasks):
                await commit(stack, b"refs/heads/t%06d" % i)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for t in range(tasks):
                tg.start_soon(worker, t)
        elapsed = time.perf_counter() - start
        await stack.wait_idle()
    return n / elapsed


async def _worker_main(d: str, ident: str, n: int) -> None:
    async with open_stack(d, GENEROUS, create=True) as stack:
        for i in range(n):
            await commit(stack, f"refs/heads/{ident}-{i:06d}".encode())
        await stack.wait_idle()


def processes(d: str, n: int, procs: int) -> float:
    start = time.perf_counter()
    running = [
        subprocess.Popen([sys.executable, __file__, "--worker", d, f"p{p}", str(n // procs)])
        for p in range(procs)
    ]
    for proc in running:
        if proc.wait() != 0:
            raise SystemExit("worker failed")
    return (n // procs * procs) / (time.perf_counter() - start)


class TimingOS(OS):
    """The OS seam, timestamping where tables.list.lock is taken and given up."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []
        self.holds: list[list[tuple[str, float]]] = []

    def _mark(self, what: str) -> None:
        self.marks.append((what, time.perf_counter()))

    def try_create_lock(self, path: str, mode: int | None) -> int | None:
        fd = super().try_create_lock(path, mode)
        if fd is not None and path.endswith("tables.list.lock"):
            self.marks = [("locked", time.perf_counter())]
        return fd

    def write_temp_table(
        self, directory: str, prefix: str, data: bytes, mode: int | None
    ) -> TempTable:
        self._mark("table built, hops")
        temp = super().write_temp_table(directory, prefix, data, mode)
        self._mark("temp table written+fsynced")
        return temp

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        self._mark("directory fsync")

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        self._mark("fsync")

    def rename(self, src: str, dst: str) -> None:
        super().rename(src, dst)
        self._mark("rename")
        if dst.endswith("tables.list"):
            self.holds.append(self.marks)
            self.marks = []

    def release_lock(self, fd: int | None, path: str) -> None:
        super().release_lock(fd, path)
        self.marks = []


async def lock_hold(d: str, n: int) -> tuple[list[float], dict[str, float]]:
    """Hold time of tables.list.lock per single-ref commit (one writer, no compaction),
    and the median time of each step inside it."""
    fs = TimingOS()
    async with open_stack(d, StackOptions(auto_compact=False), create=True, fs=fs) as stack:
        for i in range(n):
            await commit(stack, b"refs/heads/h%06d" % i)
    holds = [h[-1][1] - h[0][1] for h in fs.holds]
    steps: dict[str, list[float]] = {}
    for h in fs.holds:
        for (_, t0), (what, t1) in itertools.pairwise(h):
            steps.setdefault(what, []).append(t1 - t0)
    return holds, {k: statistics.median(v) for k, v in steps.items()}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


GIT_ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
# git refuses ids of missing objects, and non-commits under refs/heads: tags get a blob
EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def git_repo(git: str, root: str) -> str:
    """A bare reftable repository that contains the empty blob."""
    repo = tempfile.mkdtemp(dir=root)
    subprocess.run([git, "init", "-q", "--ref-format=reftable", "--bare", repo],
                   check=True, env=GIT_ENV)  # fmt: skip
    subprocess.run([git, "--git-dir", repo, "hash-object", "-w", "--stdin"], input=b"",
                   check=True, capture_output=True, env=GIT_ENV)  # fmt: skip
    return repo


def git_sequential(git: str, root: str, n: int, fsync: bool) -> float:
    repo = git_repo(git, root)
    cfg = ["-c", "core.fsync=reference"] if fsync else []
    base = [git, "--git-dir", repo, *cfg, "update-ref"]
    start = time.perf_counter()
    for i in range(n):
        subprocess.run([*base, f"refs/tags/g{i:06d}", EMPTY_BLOB], check=True, env=GIT_ENV)
    return n / (time.perf_counter() - start)


def git_stdin(git: str, root: str, n: int, fsync: bool) -> float:
    repo = git_repo(git, root)
    cfg = ["-c", "core.fsync=reference"] if fsync else []
    script = "".join(
        f"start\nupdate refs/tags/s{i:06d} {EMPTY_BLOB}\nprepare\ncommit\n" for i in range(n)
    )
    start = time.perf_counter()
    subprocess.run(
        [git, "--git-dir", repo, *cfg, "update-ref", "--stdin"],
        input=script.encode(), check=True, env=GIT_ENV, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return n / (time.perf_counter() - start)


async def reload_check_cost(d: str, reads: int) -> tuple[float, float]:
    async with open_stack(d, GENEROUS, create=True) as stack:
        await commit(stack, b"refs/heads/x")
        start = time.perf_counter()
        for _ in range(reads):
            await stack.snapshot()
        per_read = (time.perf_counter() - start) / reads
    path = os.path.join(d, "tables.list")
    start = time.perf_counter()
    for _ in range(reads):
        os.stat(path)
    return per_read, (time.perf_counter() - start) / reads


async def many_commits(d: str, n: int, lookups: int) -> dict[str, float]:
    rng = random.Random(7)
    names = [b"refs/heads/m%07d" % i for i in range(n)]
    async with open_stack(d, GENEROUS, create=True) as stack:
        start = time.perf_counter()
        for name in names:
            await commit(stack, name)
        await stack.wait_idle()
        elapsed = time.perf_counter() - start
        snap = await stack.snapshot()
        tables = len(snap)
        sample = [rng.choice(names) for _ in range(lookups)]
        lookup = _lookup_us(snap, sample)
        await stack.compact_all()
        packed = _lookup_us(await stack.snapshot(), sample)
        stats = stack.statistics()
    return {
        "commits_per_s": n / elapsed,
        "tables": tables,
        "lookup_us": lookup,
        "compacted_lookup_us": packed,
        "compactions": stats.compactions,
        "entries_written": stats.entries_written,
    }


def _lookup_us(snap: Snapshot, sample: list[bytes]) -> float:
    timings = []
    for name in sample:
        t0 = time.perf_counter()
        assert snap.ref(name) is not None
        timings.append(time.perf_counter() - t0)
    return statistics.median(timings) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--git-commits", type=int, default=300)
    parser.add_argument("--many", type=int, default=10000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--worker", nargs=3, metavar=("DIR", "IDENT", "N"))
    parser.add_argument("--hold", type=int, metavar="N", help="only measure the lock hold time")
    args = parser.parse_args()
    if args.worker:
        d, ident, n = args.worker
        anyio.run(_worker_main, d, ident, int(n), backend=args.backend)
        return

    def run(fn: Callable[[*Ts], Awaitable[T]], *a: *Ts) -> T:
        return anyio.run(fn, *a, backend=args.backend)

    base = os.environ.get("BENCH_DIR")  # default: the system temp dir
    if args.hold:
        with tempfile.TemporaryDirectory(dir=base) as root:
            holds, steps = run(lock_hold, f"{root}/h", args.hold)
        p50, p99 = quantile(holds, 0.5) * 1e3, quantile(holds, 0.99) * 1e3
        print(f"tables.list.lock held per commit ({args.hold} commits): "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")  # fmt: skip
        for what, median in steps.items():
            print(f"  ... until {what}: median {median * 1e3:.3f} ms")
        return
    git = find_git()
    print(f"# bench_stack on {os.uname().sysname} {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}, backend {args.backend}, git {git}")  # fmt: skip
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(dir=base) as root:
        rows.append(("aioreftable, 1 writer", run(one_writer, f"{root}/a", args.commits)))
        rows.append(("aioreftable, 64 tasks, 1 process",
                     run(many_tasks, f"{root}/b", args.commits, 64)))  # fmt: skip
        rows.append(("aioreftable, 4 processes", processes(f"{root}/c", args.commits, 4)))
        if git:
            for fsync in (False, True):
                label = "core.fsync=reference" if fsync else "default core.fsync"
                rows.append((f"git update-ref, one process per ref ({label})",
                             git_sequential(git, root, args.git_commits, fsync)))  # fmt: skip
                rows.append((f"git update-ref --stdin, one txn per ref ({label})",
                             git_stdin(git, root, args.commits, fsync)))  # fmt: skip
        print("\n| writer | commits/s |\n|---|---|")
        for label, rate in rows:
            print(f"| {label} | {rate:,.0f} |")
        per_read, bare = run(reload_check_cost, f"{root}/r", 20000)
        print(f"\nup-to-date check per read: {per_read * 1e6:.1f} µs "
              f"(bare os.stat {bare * 1e6:.1f} µs)")  # fmt: skip
        many = run(many_commits, f"{root}/m", args.many, args.lookups)
        print(f"\n{args.many} single-ref commits with auto-compaction: {many}")


if __name__ == "__main__":
    main()
