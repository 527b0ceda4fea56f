"""tables.list.lock: git's backoff, timeouts, LockError, contention and cancellation."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stack_helpers import HoldingOS, add_ref, listed, oid, refs_of, stray_files, until

from aioreftable import (
    LockError,
    Stack,
    StackOptions,
    UsageError,
    init_repo,
    open_ref_store,
    open_stack,
)
from aioreftable._fs import OS
from aioreftable._refs import RefStore
from aioreftable._stack._lock import backoff_delays
from aioreftable._stack._turns import Turns
from aioreftable.lowlevel import RefRecord

pytestmark = pytest.mark.anyio


def test_backoff_is_gits_quadratic_jittered_capped() -> None:
    rng = random.Random(1)
    next_delay = backoff_delays(rng)
    delays = [next_delay() for _ in range(40)]
    squares = [min((n + 1) ** 2, 1000) for n in range(40)]
    for delay, m in zip(delays, squares, strict=True):
        assert 0.75 * m / 1000 <= delay <= 1.25 * m / 1000
    assert max(delays) <= 1.25
    # about 7 tries fit into git's default 100 ms
    assert sum(delays[:6]) < 0.1 < sum(delays[:8])


async def test_stale_lock_gives_lock_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "tables.list.lock").touch()
    async with open_stack(tmp_path, StackOptions(lock_timeout=0)) as stack:
        started = time.monotonic()
        with pytest.raises(LockError) as info:
            await add_ref(stack, b"refs/heads/a", oid(1))
        assert time.monotonic() - started < 0.05  # 0 = one try
        assert info.value.lock_path == str(tmp_path / "tables.list.lock")
        assert "tables.list.lock" in str(info.value) and info.value.waited < 0.01
    assert (tmp_path / "tables.list.lock").exists()  # never broken by us


async def test_default_timeout_waits_about_100ms(tmp_path: Path) -> None:
    (tmp_path / "tables.list.lock").touch()
    async with open_stack(tmp_path) as stack:
        started = time.monotonic()
        with pytest.raises(LockError) as info:
            await add_ref(stack, b"refs/heads/a", oid(1))
        elapsed = time.monotonic() - started
    assert 0.1 <= info.value.waited < 0.3 and elapsed >= 0.1


async def test_retry_acquires_a_lock_released_later(tmp_path: Path) -> None:
    lock = tmp_path / "tables.list.lock"
    lock.touch()

    async def release_later() -> None:
        await anyio.sleep(0.3)
        lock.unlink()

    async with open_stack(tmp_path, StackOptions(lock_timeout=5)) as stack:
        async with anyio.create_task_group() as tg:
            tg.start_soon(release_later)
            await add_ref(stack, b"refs/heads/a", oid(1))
        stats = stack.statistics()
        assert stats.lock_waits == 1 and stats.lock_wait_seconds >= 0.25
        assert refs_of(await stack.snapshot()) == {b"refs/heads/a": oid(1)}


@pytest.mark.parametrize("lock_timeout", [60.0, 0.0])
async def test_100_tasks_of_one_process_all_commit(tmp_path: Path, lock_timeout: float) -> None:
    """lock_timeout is for polling the lock *file* (0: one try); this process's own writers
    queue for their turn whatever it is."""
    async with open_stack(tmp_path, StackOptions(lock_timeout=lock_timeout)) as stack:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(add_ref, stack, b"refs/heads/t%03d" % i, oid(i))
        await stack.wait_idle()
        refs = refs_of(await stack.snapshot())
        assert stack.statistics().additions == 100
    assert refs == {b"refs/heads/t%03d" % i: oid(i) for i in range(100)}
    assert stray_files(tmp_path) == []


async def writers_behind(stack: Stack, n: int, hold: float, fs: HoldingOS) -> list[str]:
    """Start ``n`` one-ref writers while ``fs`` holds the list lock, keep holding for
    ``hold`` seconds (several default lock timeouts), then let go. Their outcomes."""
    outcomes: list[str] = []

    async def writer(i: int) -> None:
        try:
            await add_ref(stack, b"refs/heads/w%02d" % i, oid(i))
        except LockError as exc:
            outcomes.append(f"LockError after {exc.waited:.3f} s")
        else:
            outcomes.append("ok")

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(writer, i)
        await anyio.sleep(hold)
        assert outcomes == []  # all still queued behind the held lock
        fs.resume.set()
    return outcomes


async def test_writers_queue_behind_a_slow_commit_of_their_own_process(tmp_path: Path) -> None:
    fs = HoldingOS()
    async with open_stack(tmp_path, StackOptions(auto_compact=False), fs=fs) as stack:
        assert stack.options.lock_timeout == 0.1
        fs.hold("commit")
        async with anyio.create_task_group() as tg:
            tg.start_soon(add_ref, stack, b"refs/heads/first", oid("first"))
            await until(fs.paused)
            outcomes = await writers_behind(stack, 10, 0.4, fs)
        assert outcomes == ["ok"] * 10
        assert len(refs_of(await stack.snapshot())) == 11
    assert stray_files(tmp_path) == []


@pytest.mark.parametrize("background", [False, True], ids=["compact_all", "auto"])
async def test_writers_queue_behind_a_compaction_of_their_own_process(
    tmp_path: Path, background: bool
) -> None:
    fs = HoldingOS()
    options = StackOptions(auto_compact=background)
    async with open_stack(tmp_path, options, fs=fs) as stack:
        for i in range(3):
            await add_ref(stack, b"refs/heads/base%d" % i, oid(i))
        await stack.wait_idle()
        fs.hold("lock_tables")  # the compactor holds tables.list.lock while it locks tables
        async with anyio.create_task_group() as tg:
            if background:
                tg.start_soon(add_ref, stack, b"refs/heads/trigger", oid("t"))
            else:
                tg.start_soon(stack.compact_all)
            await until(fs.paused)
            outcomes = await writers_behind(stack, 10, 0.4, fs)
        await stack.wait_idle()
        assert outcomes == ["ok"] * 10
        assert stack.statistics().compactions >= 1
        assert len(refs_of(await stack.snapshot())) == 13 + background
    assert stray_files(tmp_path) == []


async def test_compaction_lets_writers_queued_behind_it_go_first(tmp_path: Path) -> None:
    fs = HoldingOS()
    async with open_stack(tmp_path, StackOptions(auto_compact=False), fs=fs) as stack:
        await add_ref(stack, b"refs/heads/base", oid("base"))
        fs.hold("commit")
        async with anyio.create_task_group() as tg:
            tg.start_soon(add_ref, stack, b"refs/heads/held", oid("held"))
            await until(fs.paused)
            tg.start_soon(stack.compact_all)  # queues first ...
            await anyio.sleep(0.05)
            for i in range(4):  # ... these writers queue behind it
                tg.start_soon(add_ref, stack, b"refs/heads/w%d" % i, oid(i))
            await anyio.sleep(0.05)
            fs.resume.set()
        # the writers went first, so the compaction merged their tables too
        assert len(listed(tmp_path)) == 1
        assert len(refs_of(await stack.snapshot())) == 6


async def test_a_stream_of_writers_does_not_starve_compaction(tmp_path: Path) -> None:
    done = anyio.Event()
    written = 0

    async def writer(i: int) -> None:
        nonlocal written
        n = 0
        while not done.is_set():
            await add_ref(stack, b"refs/heads/s%02d-%04d" % (i, n), oid(n))
            n += 1
            written += 1

    async with open_stack(tmp_path, StackOptions(auto_compact=False)) as stack:
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(writer, i)
            await anyio.sleep(0.05)
            before = written
            with anyio.fail_after(10):
                assert await stack.compact_all()
            done.set()
        assert stack.statistics().compactions == 1
        assert written > before  # the writers kept committing meanwhile
    assert stray_files(tmp_path) == []


# 64 tasks keep the queue 64 deep (the 64 x 10 takes too long for CI's fsyncs)
PER_TASK = 3


async def test_64_tasks_times_3_commits_at_the_default_timeout(tmp_path: Path) -> None:
    async def task(stack: Stack, t: int) -> None:
        for i in range(PER_TASK):
            await add_ref(stack, b"refs/heads/t%02d-%d" % (t, i), oid(str((t, i))))

    async with open_stack(tmp_path) as stack:
        assert stack.options.lock_timeout == 0.1
        async with anyio.create_task_group() as tg:
            for t in range(64):
                tg.start_soon(task, stack, t)
        await stack.wait_idle()
        assert len(refs_of(await stack.snapshot())) == 64 * PER_TASK
        assert stack.statistics().additions == 64 * PER_TASK
    assert stray_files(tmp_path) == []


async def test_64_tasks_times_3_ref_transactions_at_the_default_timeout(tmp_path: Path) -> None:
    await init_repo(tmp_path)

    async def task(store: RefStore, t: int) -> None:
        for i in range(PER_TASK):
            async with store.transaction("test") as tx:
                tx.create(f"refs/heads/t{t:02d}-{i}", oid(str((t, i))).hex())

    async with open_ref_store(tmp_path, object_database=False) as store:
        async with anyio.create_task_group() as tg:
            for t in range(64):
                tg.start_soon(task, store, t)
        names = {r.name async for r in store.iterate("refs/heads/")}
    assert names == {f"refs/heads/t{t:02d}-{i}" for t in range(64) for i in range(PER_TASK)}


async def test_two_stacks_on_one_directory_share_the_queue(tmp_path: Path) -> None:
    fs = HoldingOS()
    async with (
        open_stack(tmp_path, StackOptions(auto_compact=False), fs=fs) as one,
        open_stack(tmp_path, StackOptions(auto_compact=False)) as two,
    ):
        fs.hold("commit")
        async with anyio.create_task_group() as tg:
            tg.start_soon(add_ref, one, b"refs/heads/first", oid("first"))
            await until(fs.paused)
            outcomes = await writers_behind(two, 5, 0.4, fs)
        assert outcomes == ["ok"] * 5
        assert len(refs_of(await two.snapshot())) == 6


async def test_cancellation_while_holding_the_lock_leaves_nothing(tmp_path: Path) -> None:
    async with open_stack(tmp_path, StackOptions(auto_compact=False)) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        with anyio.move_on_after(0.05):
            async with stack.addition() as add:
                add.writer.add_ref(RefRecord.val1(b"refs/heads/b", add.update_index, oid(2)))
                await anyio.sleep(5)
        assert stray_files(tmp_path) == []
        await add_ref(stack, b"refs/heads/c", oid(3))
        assert set(refs_of(await stack.snapshot())) == {b"refs/heads/a", b"refs/heads/c"}
    assert len(listed(tmp_path)) == 2


async def test_cancellation_while_waiting_for_the_lock(tmp_path: Path) -> None:
    (tmp_path / "tables.list.lock").touch()
    async with open_stack(tmp_path, StackOptions(lock_timeout=None)) as stack:
        with anyio.move_on_after(0.2) as scope:
            await add_ref(stack, b"refs/heads/a", oid(1))
        assert scope.cancelled_caught
    assert stray_files(tmp_path) == ["tables.list.lock"]


async def test_cancellation_at_every_point_of_an_addition(tmp_path: Path) -> None:
    """Cancel after k checkpoints for growing k: never a stray file, never a torn stack."""
    committed = 0
    async with open_stack(tmp_path, StackOptions(auto_compact=False)) as stack:
        for k in range(40):
            with anyio.CancelScope() as scope:

                async def cancel_soon(scope: anyio.CancelScope = scope, k: int = k) -> None:
                    for _ in range(k):
                        await anyio.lowlevel.checkpoint()
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_soon)
                    await add_ref(stack, b"refs/heads/k%02d" % k, oid(k))
            assert stray_files(tmp_path) == []
            if not scope.cancelled_caught:
                committed += 1
        refs = refs_of(await stack.snapshot())
    assert committed >= 1 and len(refs) >= committed
    assert len(listed(tmp_path)) == len(refs)


async def test_a_commit_syncs_the_list_while_the_table_syncs(tmp_path: Path) -> None:
    """The list's fsync overlaps the table's (a shorter lock hold): here the table's
    directory fsync waits until the list is being written, which a commit that writes
    the list only after the table never reaches."""

    class Overlap(OS):
        def __init__(self) -> None:
            self.list_written = threading.Event()

        def write(self, fd: int, data: bytes) -> None:
            if data.endswith(b".ref\n"):  # the new tables.list, into the lock file
                self.list_written.set()
            super().write(fd, data)

        def fsync_dir(self, path: str) -> None:
            if not self.list_written.wait(5):
                raise AssertionError("the list was not written beside the table")
            super().fsync_dir(path)

    fs = Overlap()
    async with open_stack(tmp_path, StackOptions(auto_compact=False), fs=fs) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        assert refs_of(await stack.snapshot()) == {b"refs/heads/a": oid(1)}
    assert len(listed(tmp_path)) == 1 and stray_files(tmp_path) == []


async def test_a_nested_lock_in_one_task_is_a_usage_error_not_a_hang(tmp_path: Path) -> None:
    async with open_stack(tmp_path, StackOptions(auto_compact=False)) as stack:
        await add_ref(stack, b"refs/heads/a", oid(1))
        await add_ref(stack, b"refs/heads/b", oid(2))
        with anyio.fail_after(5):
            async with stack.addition() as add:
                add.writer.add_ref(RefRecord.val1(b"refs/heads/c", add.update_index, oid(3)))
                with pytest.raises(UsageError, match="already holds"):
                    await stack.compact_all()
                with pytest.raises(UsageError, match="already holds"):
                    await stack.wait_idle()  # the compaction it waits for needs our turn
        assert len(refs_of(await stack.snapshot())) == 3
    assert stray_files(tmp_path) == []


async def test_turns_order_writers_first_in_first_out_and_maintenance_yields_once() -> None:
    turns = Turns()
    order: list[str] = []

    async def take(label: str, writer: bool, hold: anyio.Event) -> None:
        await turns.acquire(writer=writer)
        order.append(label)
        await hold.wait()
        turns.release()

    holds = {k: anyio.Event() for k in ("h", "m1", "w1", "w2", "w3", "m2")}
    async with anyio.create_task_group() as tg:
        for label, writer in (("h", True), ("m1", False), ("w1", True), ("w2", True)):
            tg.start_soon(take, label, writer, holds[label])
            await anyio.wait_all_tasks_blocked()
        holds["h"].set()  # m1 reaches the head with w1, w2 behind it: they go first
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(take, "w3", True, holds["w3"])  # arrives after m1 yielded: behind it
        tg.start_soon(take, "m2", False, holds["m2"])
        await anyio.wait_all_tasks_blocked()
        for label in ("w1", "w2", "m1", "w3", "m2"):
            holds[label].set()
            await anyio.wait_all_tasks_blocked()
    assert order == ["h", "w1", "w2", "m1", "w3", "m2"]


async def test_a_compactions_commit_goes_ahead_of_queued_writers() -> None:
    """``first`` waiters (a merged compaction committing) queue ahead of writers and
    maintenance, in their own arrival order."""
    turns = Turns()
    order: list[str] = []

    async def take(label: str, writer: bool, first: bool, hold: anyio.Event) -> None:
        await turns.acquire(writer=writer, first=first)
        order.append(label)
        await hold.wait()
        turns.release()

    arrivals = [("h", True, False), ("w1", True, False), ("m", False, False),
                ("c1", True, True), ("w2", True, False), ("c2", True, True)]  # fmt: skip
    holds = {label: anyio.Event() for label, _, _ in arrivals}
    async with anyio.create_task_group() as tg:
        for label, writer, first in arrivals:
            tg.start_soon(take, label, writer, first, holds[label])
            await anyio.wait_all_tasks_blocked()
        for label in ("h", "c1", "c2", "w1", "w2", "m"):
            holds[label].set()
            await anyio.wait_all_tasks_blocked()
    assert order == ["h", "c1", "c2", "w1", "w2", "m"]


async def test_a_waiter_cancelled_as_its_turn_comes_passes_it_on() -> None:
    turns = Turns()
    await turns.acquire(writer=True)
    got: list[str] = []
    scopes: list[anyio.CancelScope] = []

    async def waiter(label: str) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await turns.acquire(writer=True)
            try:
                got.append(label)
                await anyio.lowlevel.checkpoint()
            finally:
                turns.release()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "first")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(waiter, "second")
            await anyio.wait_all_tasks_blocked()
            turns.release()  # the turn goes to "first" ...
            scopes[0].cancel()  # ... which is cancelled before it runs: with or without
            # the turn, it must end up with "second"
        await turns.acquire(writer=True)  # nothing leaked: the turn is free again
    assert got[-1] == "second"


async def test_two_tasks_locking_two_stacks_in_opposite_orders_do_not_deadlock(
    tmp_path: Path,
) -> None:
    """As a transaction touching the main and a worktree stack in different orders: the
    task whose wait would close the cycle gets LockError at once; the other commits."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    outcome: dict[str, str] = {}
    holding = {"a": anyio.Event(), "b": anyio.Event()}

    async def task(label: str, first: Stack, second: Stack, other: str) -> None:
        try:
            async with first.addition() as add:
                add.writer.add_ref(
                    RefRecord.val1(b"refs/heads/" + label.encode(), add.update_index, oid(1))
                )
                holding[label].set()
                await holding[other].wait()
                async with second.addition() as add2:
                    add2.writer.add_ref(
                        RefRecord.val1(b"refs/heads/" + label.encode(), add2.update_index, oid(2))
                    )
        except LockError as exc:
            outcome[label] = f"LockError {exc.lock_path}"
        else:
            outcome[label] = "ok"

    async with (
        open_stack(tmp_path / "one", StackOptions(auto_compact=False, lock_timeout=None)) as one,
        open_stack(tmp_path / "two", StackOptions(auto_compact=False, lock_timeout=None)) as two,
    ):
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(task, "a", one, two, "b")
                tg.start_soon(task, "b", two, one, "a")
    assert sorted(v.split()[0] for v in outcome.values()) == ["LockError", "ok"]
    assert stray_files(tmp_path / "one") == stray_files(tmp_path / "two") == []


# ops for the Turns state machine: a task arrives (writer or maintenance), the holder
# releases, or the i-th task still waiting is cancelled
TURN_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.booleans()),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
    ),
    max_size=30,
)


async def settle() -> None:
    """Let woken tasks run (a few scheduling rounds; wait_all_tasks_blocked is slow on
    asyncio, and the invariants hold whatever the timing)."""
    for _ in range(8):
        await anyio.lowlevel.checkpoint()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TURN_OPS)
async def test_turns_state_machine(ops: list[tuple[str, object]]) -> None:
    """Any interleaving of arrivals, releases and cancellations: at most one holder, every
    task not cancelled gets its turn, writers get theirs in arrival order."""
    turns = Turns()
    holders = 0
    granted: list[int] = []
    waiting: dict[int, anyio.CancelScope] = {}
    done: dict[int, anyio.Event] = {}
    writers: list[int] = []
    cancelled: set[int] = set()

    async def task(n: int, writer: bool) -> None:
        nonlocal holders
        with anyio.CancelScope() as scope:
            waiting[n] = scope
            await turns.acquire(writer=writer)
            del waiting[n]
            holders += 1
            assert holders == 1
            granted.append(n)
            try:
                with anyio.CancelScope(shield=True):
                    await done[n].wait()
            finally:
                holders -= 1
                turns.release()
        if scope.cancelled_caught:
            cancelled.add(n)
            waiting.pop(n, None)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for n, (op, arg) in enumerate(ops):
                if op == "arrive":
                    done[n] = anyio.Event()
                    if arg:
                        writers.append(n)
                    tg.start_soon(task, n, bool(arg))
                elif op == "release" and granted and not done[granted[-1]].is_set():
                    done[granted[-1]].set()
                elif op == "cancel" and waiting:
                    victim = sorted(waiting)[int(str(arg)) % len(waiting)]
                    waiting[victim].cancel()
                await settle()
            while len(granted) + len(cancelled) < len(done):  # let everyone through
                for event in done.values():
                    event.set()
                await settle()
            for event in done.values():
                event.set()
    assert sorted(granted + sorted(cancelled)) == sorted(done)
    order = [n for n in granted if n in writers]
    assert order == sorted(order)
    assert holders == 0
