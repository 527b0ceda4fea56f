"""Turns: this process's fair queue for tables.list.lock, writers ahead of maintenance."""

from __future__ import annotations

import weakref
from collections import deque
from typing import Final

import anyio
import anyio.lowlevel

from .._errors import LockError, UsageError

__all__ = ["Turns", "shared_turns"]


class _Waiter:
    __slots__ = ("first", "granted", "task", "wake", "writer", "yielded")

    def __init__(self, writer: bool, task: int, first: bool = False):
        self.writer = writer
        self.first = first
        self.task = task
        # a maintenance waiter lets the writers queued behind it go first, once
        self.yielded = False
        self.granted = False
        self.wake = anyio.Event()


class Turns:
    """Who of this process's tasks may try tables.list.lock next.

    First come, first served, with one exception: a maintenance task (compaction, clean)
    that reaches the head of the queue while writers wait behind it lets exactly those
    writers go first, once; writers arriving later queue behind it, so it cannot starve.
    A turn is handed directly to the next waiter on release, so a task that releases and
    re-enters queues behind everyone already waiting. Waiting here is not part of any
    lock timeout: the timeout only counts polling of the lock *file*, which only another
    process can hold while we have the turn."""

    def __init__(self, lock_path: str = "tables.list.lock") -> None:
        self.lock_path = lock_path
        self._held = False
        self._owner: int | None = None  # the task id holding the turn
        self._queue: deque[_Waiter] = deque()

    @property
    def owner(self) -> int | None:
        """The id of the task holding the turn, if any."""
        return self._owner

    def check_not_held(self) -> None:
        """UsageError if the current task holds the turn (it would wait for itself)."""
        if self._held and self._owner == anyio.get_current_task().id:
            raise UsageError("this task already holds tables.list.lock (a nested addition?)")

    async def acquire(self, *, writer: bool, first: bool = False) -> None:
        """Wait for this task's turn. A task that already holds the turn (for example,
        compacting inside an addition) gets UsageError instead of waiting for itself.

        ``first`` queues ahead of every waiter but earlier ``first`` ones: for the short
        commit of a compaction that has merged its tables and holds their locks."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        task = anyio.get_current_task().id
        if not self._held:
            self._held = True
            self._owner = task
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return
        self.check_not_held()
        if self._would_deadlock(task):
            raise LockError(
                f"unable to lock {self.lock_path}: another task of this process holds it "
                "and waits for a lock this task holds (they were taken in opposite orders)",
                lock_path=self.lock_path,
            )
        waiter = _Waiter(writer, task, first)
        if first:
            at = 0
            while at < len(self._queue) and self._queue[at].first:
                at += 1
            self._queue.insert(at, waiter)
        else:
            self._queue.append(waiter)
        _WAITING[task] = self
        try:
            await waiter.wake.wait()
        except BaseException:
            if waiter.granted:
                self.release()  # the turn arrived as we were cancelled: pass it on
            else:
                self._queue.remove(waiter)
            raise
        finally:
            del _WAITING[task]

    def _would_deadlock(self, task: int) -> bool:
        """Whether waiting here closes a cycle: the holder waits (perhaps through other
        holders) for a turn that ``task`` holds. The task whose wait would close a cycle
        is refused, so a cycle never forms."""
        owner = self._owner
        seen: set[int] = set()
        while owner is not None and owner not in seen:
            seen.add(owner)
            waiting_on = _WAITING.get(owner)
            if waiting_on is None:
                return False
            owner = waiting_on.owner
            if owner == task:
                return True
        return False

    def release(self) -> None:
        waiter = self._next()
        if waiter is None:
            self._held = False
            self._owner = None
            return
        self._owner = waiter.task
        waiter.granted = True
        waiter.wake.set()

    def _next(self) -> _Waiter | None:
        queue = self._queue
        if not queue:
            return None
        head = queue[0]
        if not head.writer and not head.yielded:
            head.yielded = True
            behind = [i for i, w in enumerate(queue) if w.writer]
            if behind:
                queue.remove(head)
                queue.insert(behind[-1], head)  # right after the last writer waiting now
        return queue.popleft()


_WAITING: Final[dict[int, Turns]] = {}  # task id -> the Turns it waits for

_SHARED: Final[weakref.WeakValueDictionary[tuple[object, ...], Turns]] = (
    weakref.WeakValueDictionary()
)


def shared_turns(directory_key: tuple[int, int] | None, lock_path: str) -> Turns:
    """One Turns per stack directory (st_dev, st_ino) and event loop, so that two stacks
    opened on the same directory in one process queue together instead of timing out on
    each other's lock file. Without a key (no inode numbers) the stack gets its own."""
    if directory_key is None:
        return Turns(lock_path)
    key = (_loop_key(), *directory_key)
    turns = _SHARED.get(key)
    if turns is None:
        turns = Turns(lock_path)
        _SHARED[key] = turns
    return turns


def _loop_key() -> object:
    """The running event loop: a stack (holding its Turns) is closed with its loop."""
    return anyio.lowlevel.current_token()
