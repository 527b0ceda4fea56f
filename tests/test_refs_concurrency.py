"""Concurrency: OS processes of ours and ``git update-ref`` CAS-increment shared counters on
one live repository; every acknowledged increment is counted, none is lost."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import Git
from refs_helpers import ENV, refs_verify

from aioreftable import open_ref_store

pytestmark = [pytest.mark.anyio, pytest.mark.git]

WORKER = Path(__file__).parent / "refs_cas_worker.py"
COUNTERS = ["refs/heads/counter-a", "refs/counters/b"]


def commit_chain(git: Git, repo: Path, length: int) -> list[str]:
    tree = git("write-tree", cwd=repo).strip()
    chain: list[str] = []
    for n in range(length):
        args = ["commit-tree", tree, "-m", f"c{n}"] + (["-p", chain[-1]] if chain else [])
        chain.append(git(*args, cwd=repo).strip())
    return chain


async def test_cas_counters_with_git_processes(
    git: Git, git_repo: Callable[..., Path], tmp_path: Path, anyio_backend: str
) -> None:
    repo = git_repo()
    git("config", "reftable.lockTimeout", "20000", cwd=repo)
    per_worker = 10
    ours_procs, git_procs = 3, 2
    chain = commit_chain(git, repo, (ours_procs + git_procs) * per_worker + 1)
    for counter in COUNTERS:
        git("update-ref", counter, chain[0], cwd=repo)
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps({"counters": COUNTERS, "chain": chain}))
    env = {**ENV, "AIOREFTABLE_TEST_GIT": git.path, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 (start only; waited for in a thread)
            [
                sys.executable,
                str(WORKER),
                mode,
                str(repo),
                str(ids),
                str(per_worker),
                anyio_backend,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for mode in ["ours"] * ours_procs + ["git"] * git_procs
    ]
    totals = dict.fromkeys(COUNTERS, 0)
    for proc in procs:
        out, err = await anyio.to_thread.run_sync(proc.communicate, None, 300)
        assert proc.returncode == 0, err.decode()
        for name, count in json.loads(out).items():
            totals[name] += count
    assert sum(totals.values()) == (ours_procs + git_procs) * per_worker
    async with open_ref_store(repo, env=ENV) as store:
        for counter in COUNTERS:
            value = await store.resolve(counter)
            assert value is not None and chain.index(value) == totals[counter]
            entries = await store.reflog(counter) if counter.startswith("refs/heads/") else []
            if entries:  # the reflog chains every acknowledged increment
                assert len(entries) == totals[counter] + 1
                assert all(a.old == b.new for a, b in itertools.pairwise(entries))
    refs_verify(git, repo)
