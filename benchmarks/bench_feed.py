"""Change-feed latency: from a committed ref update to its delivery by ``store.watch()``.

    python benchmarks/bench_feed.py              # 300 of our commits, 100 git commits per mode
    python benchmarks/bench_feed.py --ours 1000 --git 300

One process watches ``refs/heads/`` of a fresh reftable repository while updates arrive
one at a time (the next starts after the previous was delivered, so each latency is
measured alone):

- ours: a transaction in another task of the same process; latency from the end of its
  ``async with`` (the table is durable) to the waiting consumer receiving the change;
- git: ``git update-ref`` as another process; latency from the process's exit to the
  waiting consumer receiving the change;

(0 when the change arrived before the writer had returned);

for inotify (the default) and for polling every 10 ms, on asyncio, trio and uvloop
(when installed). Needs git >= 2.45 (AIOREFTABLE_TEST_GIT or git on PATH).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioreftable import ChangeFeed, RefStore, open_ref_store

ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
}


def find_git() -> str:
    for cand in (os.environ.get("AIOREFTABLE_TEST_GIT"), shutil.which("git")):
        if cand:
            return cand
    raise SystemExit("needs git >= 2.45 (AIOREFTABLE_TEST_GIT)")


def make_repo(git: str, root: Path) -> tuple[Path, str]:
    repo = root / "repo"
    subprocess.run([git, "init", "-q", "--ref-format=reftable", "-b", "main", str(repo)],
                   env=ENV, check=True)  # fmt: skip
    subprocess.run([git, "commit", "-q", "--allow-empty", "-m", "c"], cwd=repo, env=ENV,
                   check=True)  # fmt: skip
    head = subprocess.run([git, "rev-parse", "HEAD"], cwd=repo, env=ENV, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    return repo, head


async def measure(
    git: str, repo: Path, oid: str, ours: int, theirs: int, poll: float | None
) -> tuple[list[float], list[float]]:
    async with (
        open_ref_store(repo, env=ENV) as store,
        store.watch("refs/heads/", poll_interval=poll) as feed,
    ):
        await feed.start()
        mine = [await _one_ours(store, feed, oid, n) for n in range(ours)]
        gits = [await _one_git(git, repo, feed, oid, n) for n in range(theirs)]
    return mine, gits


async def _one_ours(store: RefStore, feed: ChangeFeed, oid: str, n: int) -> float:
    async def commit() -> None:
        async with store.transaction(message="bench") as tx:
            tx.create(f"refs/heads/ours-{n}", oid)

    return await _delivery(feed, f"refs/heads/ours-{n}", commit)


async def _one_git(git: str, repo: Path, feed: ChangeFeed, oid: str, n: int) -> float:
    name = f"refs/heads/git-{n}"

    async def commit() -> None:
        await anyio.run_process([git, "update-ref", name, oid], cwd=repo, env=ENV)

    return await _delivery(feed, name, commit)


async def _delivery(feed: ChangeFeed, name: str, commit: Callable[[], Awaitable[None]]) -> float:
    """Seconds from the end of ``commit()`` to the delivery of ``name``'s change, with the
    consumer already waiting in another task (0 when it came before ``commit`` returned)."""
    delivered: list[float] = []

    async def wait() -> None:
        change = await feed.__anext__()
        assert change.refname == name, change
        delivered.append(time.perf_counter())

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.sleep(0.005)  # the consumer is waiting (inotify or its poll)
        await commit()
        done = time.perf_counter()
    return max(0.0, delivered[0] - done)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ours", type=int, default=300)
    parser.add_argument("--git", type=int, default=100)
    args = parser.parse_args()
    git = find_git()
    backends: list[tuple[str, str, dict[str, object]]] = [
        ("asyncio", "asyncio", {}),
        ("trio", "trio", {}),
    ]
    try:
        import uvloop  # noqa: F401

        backends.append(("uvloop", "asyncio", {"use_uvloop": True}))
    except ImportError:
        print("(uvloop not installed: no uvloop rows)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, git {git}")
    print(f"{'loop':8} {'wake':9} {'writer':7} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, backend, options in backends:
        for wake, poll in (("inotify", None), ("poll 10ms", 0.01)):
            with tempfile.TemporaryDirectory() as tmp:
                repo, oid = make_repo(git, Path(tmp))
                mine, gits = anyio.run(
                    measure, git, repo, oid, args.ours, args.git, poll,
                    backend=backend, backend_options=options,
                )  # fmt: skip
            for writer, values in (("ours", mine), ("git", gits)):
                print(
                    f"{label:8} {wake:9} {writer:7} {len(values):5d} {pct(values, 0.5):8.2f} "
                    f"{pct(values, 0.99):8.2f} {max(values) * 1000:8.2f}"
                )
            print(f"{'':8} {'':9} mean ours {statistics.mean(mine) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
