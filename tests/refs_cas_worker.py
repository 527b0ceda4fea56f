"""Worker for the CAS counter test: ``python refs_cas_worker.py (ours|git) REPO IDS N BACKEND``.

Increments the counters named in IDS (a JSON file: counter names and the commit chain)
N times with compare-and-swap and retries; prints the number of acknowledged increments
per counter as JSON. The counter's value is the position of its commit in the chain."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import anyio

from aioreftable import LockError, TransactionError, open_ref_store


def git_increment(git: str, repo: str, counter: str, chain: list[str]) -> bool:
    cur = subprocess.run(
        [git, "rev-parse", "-q", "--verify", counter], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    new = chain[chain.index(cur) + 1]
    proc = subprocess.run(
        [git, "update-ref", "-m", "git cas", counter, new, cur], cwd=repo, capture_output=True
    )
    return proc.returncode == 0


async def ours(repo: str, counters: list[str], chain: list[str], n: int) -> dict[str, int]:
    acked = dict.fromkeys(counters, 0)
    async with open_ref_store(repo) as store:
        for i in range(n):
            counter = counters[i % len(counters)]
            while True:
                cur = await store.resolve(counter)
                assert cur is not None
                new = chain[chain.index(cur) + 1]
                try:
                    async with store.transaction(message="ours cas") as tx:
                        tx.update(counter, new, old=cur)
                except (TransactionError, LockError):
                    await anyio.sleep(random.random() / 100)
                    continue
                acked[counter] += 1
                break
    return acked


def main() -> None:
    mode, repo, ids_path, n_text, backend = sys.argv[1:6]
    with open(ids_path) as f:
        ids = json.load(f)
    counters, chain, n = ids["counters"], ids["chain"], int(n_text)
    if mode == "ours":
        acked = anyio.run(ours, repo, counters, chain, n, backend=backend)
    else:
        git = os.environ["AIOREFTABLE_TEST_GIT"]
        acked = dict.fromkeys(counters, 0)
        for i in range(n):
            counter = counters[i % len(counters)]
            while not git_increment(git, repo, counter, chain):
                time.sleep(random.random() / 100)
            acked[counter] += 1
    print(json.dumps(acked))


if __name__ == "__main__":
    main()
