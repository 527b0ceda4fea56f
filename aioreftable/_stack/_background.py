"""AutoCompactor: git's auto-compaction after each commit, run as a background task."""

from __future__ import annotations

import logging

import anyio

from .._errors import LockError, OutdatedError
from ._compact import compact, select_auto
from ._core import StackCore

__all__ = ["AutoCompactor"]

log = logging.getLogger("aioreftable.stack")

_FIRST_BACKOFF = 0.05  # seconds
_MAX_BACKOFF = 30.0


class AutoCompactor:
    """Runs one geometric auto-compaction after commits, coalescing bursts of requests.

    Lock and outdated errors are counted and ignored, as git ignores them. Any other
    error is logged, counted and kept as ``last_compaction_error``; compaction is then
    skipped for a growing delay and retried on a later commit."""

    def __init__(self, core: StackCore):
        self._core = core
        self._pending = False
        self._stopping = False
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._retry_at = 0.0
        self._backoff = 0.0

    def request(self) -> None:
        """Ask for a compaction pass after a committed addition."""
        if not self._core.options.auto_compact or self._stopping:
            return
        self._pending = True
        if self._idle.is_set():
            self._idle = anyio.Event()
        self._wake.set()

    def stop(self) -> None:
        """Finish pending work, then return from :meth:`run`."""
        self._stopping = True
        self._wake.set()

    async def wait_idle(self) -> None:
        while True:
            idle = self._idle
            if idle.is_set():
                return
            await idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._pending:
                self._pending = False
                await self._attempt()
            self._idle.set()
            if self._stopping:
                return

    async def _attempt(self) -> None:
        core = self._core
        stats = core.stats
        now = anyio.current_time()
        if now < self._retry_at:
            return
        try:
            select = select_auto(core.options.geometric_factor)
            await compact(core, select, best_effort=True, expiry=None, reload=True)
        except LockError:
            pass  # counted as compactions_failed by compact(); benign, as in git
        except OutdatedError:
            stats.compactions_outdated += 1
        except Exception as exc:
            stats.compaction_errors += 1
            stats.last_compaction_error = exc
            self._backoff = min(max(self._backoff * 2, _FIRST_BACKOFF), _MAX_BACKOFF)
            self._retry_at = now + self._backoff
            log.warning(
                "auto-compaction of %s failed; reads and writes continue, compaction is "
                "retried on a commit after %.2f s",
                core.directory,
                self._backoff,
                exc_info=exc,
            )
        else:
            self._backoff = 0.0
            self._retry_at = 0.0
