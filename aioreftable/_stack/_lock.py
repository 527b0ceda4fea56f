"""git's lock-file retry loop (lockfile.c ``lock_file_timeout``) without blocking the loop."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio

from .._errors import LockError

__all__ = ["BACKOFF_MAX_MULTIPLIER", "backoff_delays", "lock_with_backoff", "lock_error"]

BACKOFF_MAX_MULTIPLIER = 1000
_INITIAL_BACKOFF = 0.001  # seconds


def backoff_delays(rng: random.Random | None = None) -> Callable[[], float]:
    """git's sleeps between tries: ``m x 1 ms x U(0.75, 1.25)`` for m = 1, 4, 9, 16, ...
    capped at 1000 (so a single sleep never exceeds about 1.25 s)."""
    draw = (rng or random).uniform
    state = {"m": 1, "n": 1}

    def next_delay() -> float:
        m = state["m"]
        delay = m * _INITIAL_BACKOFF * draw(0.75, 1.25)
        n = state["n"]
        m += 2 * n + 1  # (n+1)^2 = n^2 + 2n + 1
        if m > BACKOFF_MAX_MULTIPLIER:
            m = BACKOFF_MAX_MULTIPLIER
        else:
            state["n"] = n + 1
        state["m"] = m
        return delay

    return next_delay


def lock_error(lock_path: str, waited: float) -> LockError:
    return LockError(
        f"unable to lock {lock_path}: it exists (waited {waited * 1000:.0f} ms). Another git or "
        "aioreftable process holds it; if none is running, a crashed writer left it behind "
        "and it may be removed by hand",
        lock_path=lock_path,
        waited=waited,
    )


async def lock_with_backoff(
    try_once: Callable[[], Awaitable[int | None]],
    lock_path: str,
    budget: float | None,
) -> tuple[int, float]:
    """Call ``try_once`` (an O_EXCL create returning an fd, or None when the file exists)
    until it succeeds, sleeping git's backoff in between.

    As in git, the budget is the accumulated sleep: stop once it reaches ``budget``;
    0 means one try, None means forever. Only this polling counts: the caller starts it
    when it has this process's turn, so only another process can hold the file. Returns
    the fd and the seconds slept; raises LockError when the budget is spent."""
    next_delay = backoff_delays()
    slept = 0.0
    while True:
        fd = await try_once()
        if fd is not None:
            return fd, slept
        if budget is not None and (budget <= 0 or slept >= budget):
            raise lock_error(lock_path, slept)
        delay = next_delay()
        await anyio.sleep(delay)
        slept += delay
