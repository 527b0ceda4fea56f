"""tables.list.lock: git's backoff, timeouts, LockError, contention and cancellation."""

from __future__ import annotations

import random
import time
from pathlib import Path

import anyio
import pytest
from stack_helpers import add_ref, listed, oid, refs_of, stray_files

from aioreftable import LockError, Stack, StackOptions, open_stack
from aioreftable._stack._lock import backoff_delays
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


async def test_100_tasks_all_commit_with_a_generous_timeout(tmp_path: Path) -> None:
    async with open_stack(tmp_path, StackOptions(lock_timeout=60)) as stack:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(add_ref, stack, b"refs/heads/t%03d" % i, oid(i))
        await stack.wait_idle()
        refs = refs_of(await stack.snapshot())
        assert stack.statistics().additions == 100
    assert refs == {b"refs/heads/t%03d" % i: oid(i) for i in range(100)}
    assert stray_files(tmp_path) == []


async def test_zero_timeout_failures_are_lock_errors_only(tmp_path: Path) -> None:
    outcomes: list[str] = []

    async def writer(stack: Stack, i: int) -> None:
        try:
            await add_ref(stack, b"refs/heads/t%03d" % i, oid(i))
        except LockError:
            outcomes.append("locked")
        else:
            outcomes.append("ok")

    async with open_stack(tmp_path, StackOptions(lock_timeout=0)) as stack:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(writer, stack, i)
        await stack.wait_idle()
        refs = refs_of(await stack.snapshot())
    assert len(outcomes) == 100 and "locked" in outcomes
    assert len(refs) == outcomes.count("ok")
    assert stray_files(tmp_path) == []


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
