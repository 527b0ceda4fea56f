"""Schedule: an entry per watched stack, the work queue, short deferrals and retries."""

from __future__ import annotations

import heapq
import math
import time

import anyio

from ._discovery import StackRef

__all__ = ["Entry", "Schedule"]


class Entry:
    """What the daemon keeps per watched stack: a reference and a few numbers."""

    __slots__ = (
        "again",
        "delay",
        "key",
        "last_compaction",
        "last_expire",
        "last_full",
        "queued",
        "ref",
        "retry_at",
        "running",
        "stale",
        "tables",
    )

    def __init__(self, ref: StackRef, now: float):
        self.ref = ref
        self.key = 0  # tables.list fingerprint when last found to need nothing (0: unknown)
        self.tables: int | None = None
        self.queued = self.running = self.again = False
        self.retry_at = 0.0  # monotonic time before which events do not queue it
        self.delay = 0.0
        self.last_full = now
        self.last_expire = 0.0
        self.last_compaction = 0.0  # monotonic time of the last pass that compacted
        self.stale = 0  # stale locks seen in its directory


class Schedule:
    """Which stacks wait for a pass, which are being worked on (never one twice at once),
    and which come back later: after a short deferral (a writer at work) or a retry delay
    that doubles after each give-up or failure."""

    def __init__(self, retry_delay: float, max_retry_delay: float):
        self.entries: dict[str, Entry] = {}
        self.busy = 0  # stacks being worked on
        self.queued = 0  # stacks waiting for a worker
        self.deferred: set[str] = set()  # stacks to be looked at after a short wait
        self.stopping = False
        self._retry_delay, self._max_retry_delay = retry_delay, max_retry_delay
        self._send, self._receive = anyio.create_memory_object_stream[str](math.inf)
        self._idle_waiters: list[anyio.Event] = []
        self._retries: list[tuple[float, str]] = []
        self._retry_wake = anyio.Event()

    def close(self) -> None:
        self._send.close()
        self._receive.close()

    def pending(self) -> bool:
        """Whether a stack is queued, being worked on, or deferred for a moment; stacks
        waiting after a give-up do not count."""
        return self.busy > 0 or self.queued > 0 or bool(self.deferred)

    async def wait_idle(self) -> None:
        """Until a worker finds nothing being worked on."""
        event = anyio.Event()
        self._idle_waiters.append(event)
        await event.wait()

    def _wake_idle(self) -> None:
        if not self.busy:
            for event in self._idle_waiters:
                event.set()
            self._idle_waiters.clear()

    def enqueue(self, path: str) -> None:
        """Queue the stack unless it is queued, waiting for a retry, or unknown; one being
        worked on is queued again when its pass ends."""
        entry = self.entries.get(path)
        if entry is None or self.stopping:
            return
        if entry.running:
            entry.again = True
        elif not entry.queued and entry.retry_at <= time.monotonic():
            entry.queued = True
            self.queued += 1
            self._send.send_nowait(path)

    async def take(self) -> Entry:
        """The next stack to work on, marked running (a worker's loop)."""
        while True:
            path = await self._receive.receive()
            self.queued -= 1
            entry = self.entries.get(path)
            if entry is None or not entry.queued or self.stopping:
                if entry is not None:
                    entry.queued = False
                self._wake_idle()
                continue
            entry.queued = False
            entry.running = True
            self.busy += 1
            return entry

    def finish(self, entry: Entry) -> None:
        entry.running = False
        self.busy -= 1
        self._wake_idle()
        if entry.again:
            entry.again = False
            self.enqueue(entry.ref.stack_dir)

    def defer(self, entry: Entry, delay: float) -> None:
        """Look at the stack again in ``delay`` seconds (it counts as pending)."""
        self._retry_at(entry, delay)
        self.deferred.add(entry.ref.stack_dir)

    def retry_later(self, entry: Entry) -> float:
        """After a give-up or a failure: a growing delay (not pending). Returns it."""
        entry.delay = min(self._max_retry_delay, max(self._retry_delay, entry.delay * 2))
        self._retry_at(entry, entry.delay)
        self.deferred.discard(entry.ref.stack_dir)
        return entry.delay

    def _retry_at(self, entry: Entry, delay: float) -> None:
        entry.retry_at = time.monotonic() + delay
        entry.key = 0
        heapq.heappush(self._retries, (entry.retry_at, entry.ref.stack_dir))
        self._retry_wake.set()

    def drop(self, path: str) -> Entry:
        """Forget a stack that is gone (its retries are ignored when due)."""
        self.deferred.discard(path)
        return self.entries.pop(path)

    async def retry_loop(self) -> None:
        while True:
            now = time.monotonic()
            while self._retries and self._retries[0][0] <= now:
                at, path = heapq.heappop(self._retries)
                entry = self.entries.get(path)
                if entry is not None and entry.retry_at == at:
                    entry.retry_at = 0.0
                    self.enqueue(path)
                    self.deferred.discard(path)
            wait = self._retries[0][0] - now if self._retries else math.inf
            self._retry_wake = anyio.Event()
            with anyio.move_on_after(wait):
                await self._retry_wake.wait()
