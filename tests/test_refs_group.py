"""Group commit: concurrent transactions of one process share a lock and a table, each
with its own checks (in submission order), update index and reflog entries."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from conftest import Git
from gitdiff_helpers import fast_import_commits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from refs_helpers import ENV, live_records, refs_verify
from test_refs_reflog_ops import no_autocompact

from aioreftable import (
    GroupCommit,
    IncorrectOldValueError,
    NameConflictError,
    RefExistsError,
    RefStore,
    TransactionError,
    open_ref_store,
)

pytestmark = [pytest.mark.anyio, pytest.mark.git]
__all__ = ["no_autocompact"]  # the fixture, imported for its side effect


def repo_with_chain(git: Git, git_repo: Callable[..., Path], length: int) -> tuple[Path, list[str]]:
    repo = git_repo()
    chain = fast_import_commits(git, repo, length, branch="refs/heads/chain")
    git("update-ref", "-d", "refs/heads/chain", cwd=repo)
    return repo, chain


@contextmanager
def lock_held(repo: Path) -> Iterator[Callable[[], None]]:
    """tables.list.lock taken as another process would; call the result to release it."""
    path = repo / ".git" / "reftable" / "tables.list.lock"
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))

    def release() -> None:
        path.unlink(missing_ok=True)

    try:
        yield release
    finally:
        release()


async def test_concurrent_writers_share_tables(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, chain = repo_with_chain(git, git_repo, 6)
    async with open_ref_store(repo, env=ENV) as store:

        async def writer(n: int) -> None:
            for step in range(5):
                async with store.transaction(message=f"w{n} s{step}") as tx:
                    tx.update(
                        f"refs/heads/w{n}", chain[step + 1], old=chain[step] if step else None
                    )

        async with anyio.create_task_group() as tg:
            for n in range(64):
                tg.start_soon(writer, n)
        stats = store.group_statistics
        assert stats is not None
        assert stats.transactions == 320 and stats.rejected == 0
        assert stats.batches < 320 and stats.largest > 1
    refs_verify(git, repo)
    _, logs = await live_records(repo / ".git" / "reftable")
    mine = [log for log in logs if log.refname.startswith(b"refs/heads/w")]
    assert len(mine) == 320
    assert len({log.update_index for log in mine}) == 320  # one update index each
    for n in (0, 17, 63):
        shown = git("reflog", "show", "--format=%H %gs", f"refs/heads/w{n}", cwd=repo)
        assert shown.splitlines() == [f"{chain[s + 1]} w{n} s{s}" for s in reversed(range(5))]


async def test_cas_counters_count_exactly(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, chain = repo_with_chain(git, git_repo, 641)
    git("update-ref", "refs/heads/counter", chain[0], cwd=repo)
    retries = 0
    async with open_ref_store(repo, env=ENV) as store:

        async def incrementer() -> None:
            nonlocal retries
            for _ in range(20):
                while True:
                    current = await store.resolve("refs/heads/counter")
                    assert current is not None
                    new = chain[chain.index(current) + 1]
                    try:
                        async with store.transaction(message=f"to {new}") as tx:
                            tx.update("refs/heads/counter", new, old=current)
                        break
                    except IncorrectOldValueError:
                        retries += 1

        async with anyio.create_task_group() as tg:
            for _ in range(32):
                tg.start_soon(incrementer)
    assert git("rev-parse", "refs/heads/counter", cwd=repo).strip() == chain[640]
    shown = git("reflog", "show", "--format=%H %gs", "refs/heads/counter", cwd=repo).splitlines()
    assert shown[:640] == [f"{chain[n]} to {chain[n]}" for n in range(640, 0, -1)]
    assert retries > 0  # the tasks did collide
    refs_verify(git, repo)


async def test_a_batch_checks_in_submission_order(
    git: Git, git_repo: Callable[..., Path], no_autocompact: None
) -> None:
    repo, (c0, c1) = repo_with_chain(git, git_repo, 2)
    git("config", "reftable.lockTimeout", "20000", cwd=repo)
    git("update-ref", "refs/heads/y", c0, cwd=repo)
    outcome: dict[str, str] = {}

    async def tx(store: RefStore, label: str, build: Callable[..., None]) -> None:
        try:
            async with store.transaction(message=label) as t:
                build(t)
            outcome[label] = "ok"
        except TransactionError as exc:
            outcome[label] = type(exc).__name__

    async with open_ref_store(repo, env=ENV) as store:
        with lock_held(repo) as release:
            async with anyio.create_task_group() as tg:
                tg.start_soon(tx, store, "lead", lambda t: t.create("refs/heads/lead", c0))
                await anyio.sleep(0.3)  # the leader sealed its batch and waits for the lock
                steps: list[tuple[str, Callable[..., None]]] = [
                    ("x1", lambda t: t.create("refs/heads/x", c0)),
                    ("x2", lambda t: t.create("refs/heads/x", c1)),  # same ref: next batch
                    ("y-stale", lambda t: t.update("refs/heads/y", c1, old=c1)),
                    ("d", lambda t: t.create("refs/heads/d", c0)),
                    ("d/e", lambda t: t.create("refs/heads/d/e", c0)),  # D/F with "d" before it
                ]
                for label, build in steps:
                    tg.start_soon(tx, store, label, build)
                    await anyio.sleep(0.05)  # queued in this order
                release()
        stats = store.group_statistics
        assert stats is not None
        assert (stats.batches, stats.transactions, stats.rejected, stats.deferred) == (3, 3, 3, 1)
    assert outcome == {
        "lead": "ok",
        "x1": "ok",
        "x2": RefExistsError.__name__,  # after x1, as if it had run alone after it
        "y-stale": IncorrectOldValueError.__name__,
        "d": "ok",
        "d/e": NameConflictError.__name__,
    }
    refs, logs = await live_records(repo / ".git" / "reftable")
    index = {log.message.decode().strip(): log.update_index for log in logs}
    assert index["d"] == index["x1"] + 1 == index["lead"] + 2  # one each, in order
    assert not {"x2", "y-stale", "d/e"} & set(index)  # rejected: no trace
    tables = (repo / ".git" / "reftable" / "tables.list").read_text().split()
    span = f"0x{index['x1']:012x}-0x{index['d']:012x}-"
    assert [t for t in tables if t.startswith(span)], tables  # x1 and d: one table
    assert {r.refname for r in refs} >= {b"refs/heads/x", b"refs/heads/d", b"refs/heads/lead"}
    assert b"refs/heads/d/e" not in {r.refname for r in refs}
    refs_verify(git, repo)


async def test_cancelled_before_sealing_leaves_no_trace(
    git: Git, git_repo: Callable[..., Path], no_autocompact: None
) -> None:
    repo, (c0, _) = repo_with_chain(git, git_repo, 2)
    git("config", "reftable.lockTimeout", "20000", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        done: list[str] = []

        async def create(name: str, scope: anyio.CancelScope | None = None) -> None:
            async with store.transaction(message=name) as tx:
                tx.create(f"refs/heads/{name}", c0)
            done.append(name)

        with lock_held(repo) as release:
            async with anyio.create_task_group() as tg:
                tg.start_soon(create, "sealed")
                await anyio.sleep(0.3)
                waiting = anyio.CancelScope()

                async def queued() -> None:
                    with waiting:
                        await create("queued")

                tg.start_soon(queued)
                await anyio.sleep(0.3)
                waiting.cancel()  # still queued: withdrawn
                await anyio.sleep(0.1)
                release()
        assert done == ["sealed"]
        assert await store.read("refs/heads/queued") is None
        assert await store.read("refs/heads/sealed") is not None
        assert not await store.reflog_exists("refs/heads/queued")

        # cancelled after sealing: the batch still commits it
        with lock_held(repo) as release:
            async with anyio.create_task_group() as tg:
                sealed = anyio.CancelScope()

                async def leader() -> None:
                    with sealed:
                        await create("late")

                tg.start_soon(leader)
                await anyio.sleep(0.3)
                sealed.cancel()
                await anyio.sleep(0.1)
                release()
        assert sealed.cancelled_caught
        assert await store.read("refs/heads/late") is not None
    assert "late" not in done  # the caller saw the cancellation
    refs_verify(git, repo)


async def test_two_stacks_commit_alone(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, (c0, c1) = repo_with_chain(git, git_repo, 2)
    git("update-ref", "refs/heads/main", c0, cwd=repo)
    git("worktree", "add", "-q", "--detach", str(repo.parent / "wt"), c0, cwd=repo)
    wt = repo.parent / "wt"
    async with open_ref_store(wt, env=ENV) as store:
        async with store.transaction(message="both") as tx:
            tx.update("HEAD", c1, no_deref=True)  # the worktree's own stack
            tx.create("refs/heads/shared", c1)  # the main stack
        async with store.transaction(message="one") as tx:
            tx.create("refs/heads/other", c0)
        stats = store.group_statistics
        assert stats is not None and stats.alone == 1 and stats.transactions == 1
    assert git("rev-parse", "HEAD", cwd=wt).strip() == c1
    assert git("rev-parse", "refs/heads/shared", cwd=repo).strip() == c1
    refs_verify(git, repo)


async def test_without_group_commit(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, (c0, _) = repo_with_chain(git, git_repo, 2)
    async with open_ref_store(repo, env=ENV, group_commit=False) as store:
        assert store.group_statistics is None
        async with anyio.create_task_group() as tg:
            for n in range(8):

                async def create(n: int = n) -> None:
                    async with store.transaction() as tx:
                        tx.create(f"refs/heads/n{n}", c0)

                tg.start_soon(create)
    assert len(git("for-each-ref", "refs/heads/n*", cwd=repo).splitlines()) == 8
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(max_batch=0)
    with pytest.raises(ValueError, match="delay"):
        GroupCommit(delay=-1)


async def test_knobs_bound_the_batches(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, (c0, _) = repo_with_chain(git, git_repo, 2)
    async with open_ref_store(
        repo, env=ENV, group_commit=GroupCommit(max_batch=4, delay=0.05)
    ) as s:
        async with anyio.create_task_group() as tg:
            for n in range(32):

                async def create(n: int = n) -> None:
                    async with s.transaction() as tx:
                        tx.create(f"refs/heads/k{n}", c0)

                tg.start_soon(create)
        stats = s.group_statistics
        assert stats is not None and stats.largest <= 4 and stats.transactions == 32
        assert stats.batches >= 8


NAMES = ["refs/heads/a", "refs/heads/b", "refs/heads/c"]
_EXAMPLES = itertools.count()  # one repository per example


@st.composite
def transactions(draw: st.DrawFn) -> list[list[tuple[str, int, int | None]]]:
    """Transactions of 1-2 updates: (ref, new value, expected old value or None)."""
    out = []
    for _ in range(draw(st.integers(2, 12))):
        names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
        out.append(
            [(n, draw(st.integers(1, 4)), draw(st.none() | st.integers(0, 4))) for n in names]
        )
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=transactions(), seed=st.integers(0, 2**16))
async def test_interleavings_equal_a_serial_order(
    git: Git,
    git_repo: Callable[..., Path],
    plan: list[list[tuple[str, int, int | None]]],
    seed: int,
) -> None:
    """Concurrent transactions (value 0 = the ref is missing): the accepted ones, replayed
    in update-index order on a dict, pass their checks and give the final state; the
    rejected ones leave no trace."""
    repo = git_repo(f"r{next(_EXAMPLES)}")
    chain = fast_import_commits(git, repo, 5, branch="refs/heads/chain")
    git("update-ref", "-d", "refs/heads/chain", cwd=repo)
    rng = random.Random(seed)
    accepted: set[int] = set()
    async with open_ref_store(repo, env=ENV) as store:

        async def run(k: int, updates: list[tuple[str, int, int | None]]) -> None:
            await anyio.sleep(rng.random() / 200)
            try:
                async with store.transaction(message=f"tx{k}") as tx:
                    for ref, new, old in updates:
                        expect = None if old is None else (chain[old] if old else "0" * 40)
                        tx.update(ref, chain[new], old=expect)
            except TransactionError:
                return
            accepted.add(k)

        async with anyio.create_task_group() as tg:
            for k, updates in enumerate(plan):
                tg.start_soon(run, k, updates)
        final = {n: await store.resolve(n) for n in NAMES}
    _, logs = await live_records(repo / ".git" / "reftable")
    order: dict[int, int] = {}
    for log in logs:
        k = int(log.message.decode().strip()[2:])
        assert k in accepted  # a rejected transaction wrote nothing
        order[k] = log.update_index
    model: dict[str, int] = {}
    for k in sorted(order, key=order.__getitem__):  # a transaction that changed nothing
        for ref, _, old in plan[k]:  # wrote nothing: it has no place in the order
            assert old is None or model.get(ref, 0) == old, (k, plan[k], model)
        for ref, new, _ in plan[k]:
            model[ref] = new
    assert final == {n: (chain[model[n]] if n in model else None) for n in NAMES}
    refs_verify(git, repo)


@pytest.mark.parametrize("kills", [6])
def test_a_killed_writer_loses_only_unacknowledged_transactions(
    git: Git, git_repo: Callable[..., Path], kills: int
) -> None:
    """SIGKILL a process whose 16 tasks commit through group commit, at random moments
    (mid-batch included): every name it printed after its commit returned is there."""
    repo, (c0, _) = repo_with_chain(git, git_repo, 2)
    worker = Path(__file__).with_name("group_worker.py")
    acked: list[str] = []
    rng = random.Random(7)
    for _ in range(kills):
        lock = repo / ".git" / "reftable" / "tables.list.lock"
        lock.unlink(missing_ok=True)  # a stale lock of the previous kill (no one holds it)
        proc = subprocess.Popen(
            [sys.executable, str(worker), str(repo), c0, "16"],
            stdout=subprocess.PIPE,
            env={**ENV, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # started: its first commit returned
        time.sleep(rng.random())
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        out = first + out
        names = out.decode().split()
        if out and not out.endswith(b"\n"):
            names = names[:-1]  # a line cut by the kill was not acknowledged
        assert names, "the worker committed nothing before the kill"
        acked.extend(names)
    present = set(git("for-each-ref", "--format=%(refname)", "refs/heads/", cwd=repo).split())
    assert not set(acked) - present
    proc2 = git.run("refs", "verify", cwd=repo, check=False)
    assert proc2.returncode == 0, proc2.stderr
