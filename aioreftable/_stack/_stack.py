"""Stack and open_stack: the public facade over a StackCore and its background compactor."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import final

import anyio

from .._fs import OS
from ._addition import Addition, open_addition
from ._background import AutoCompactor
from ._compact import clean, compact, select_all, select_auto, select_range
from ._core import StackCore
from ._options import LogExpiry, StackOptions
from ._snapshot import Snapshot
from ._stats import StackStatistics
from ._watch import ListWatch

__all__ = ["Stack", "open_stack"]


@final
class Stack:
    """An open reftable stack. Obtain one from :func:`open_stack`.

    Reads go through :meth:`snapshot`, which first checks (one ``stat``) whether another
    process replaced tables.list. Writes go through :meth:`addition`."""

    def __init__(self, core: StackCore, compactor: AutoCompactor):
        self._core = core
        self._compactor = compactor

    # -- public API ------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The stack directory (for a repository, ``.git/reftable``)."""
        return self._core.directory

    @property
    def options(self) -> StackOptions:
        return self._core.options

    async def snapshot(self) -> Snapshot:
        """The current generation, reloaded first if tables.list changed on disk.

        A read that starts after another process's commit finished sees that commit."""
        self._core.check_open()
        return await self._core.refresh()

    def addition(self, *, exact_log_message: bool = False) -> AbstractAsyncContextManager[Addition]:
        """``async with stack.addition() as add:`` lock tables.list and append one table.

        See :class:`~aioreftable.Addition`. Commits on a clean exit, rolls back otherwise.
        ``exact_log_message``: the writer stores log messages as given (no LF rules)."""
        self._core.check_open()
        return open_addition(
            self._core, self._compactor.request, exact_log_message=exact_log_message
        )

    async def compact_all(self, *, expiry: LogExpiry | None = None) -> bool:
        """Merge every table into one (git's pack-refs). A table locked by someone else
        fails the whole operation with LockError. Returns whether anything was done."""
        self._core.check_open()
        return await compact(self._core, select_all, best_effort=False, expiry=expiry, reload=True)

    async def compact_range(
        self, first: int, last: int, *, expiry: LogExpiry | None = None
    ) -> bool:
        """Merge tables ``first..last`` (inclusive, oldest = 0) of the current snapshot.

        Raises OutdatedError if tables.list changed since that snapshot (the indexes
        would be stale), LockError if any table is locked."""
        core = self._core
        core.check_open()
        select = select_range(first, last, core.current.generation)
        return await compact(core, select, best_effort=False, expiry=expiry, reload=False)

    async def auto_compact(self) -> bool:
        """Run git's geometric auto-compaction once, now (best effort: when some tables
        are locked by others, the newest run of >= 2 lockable tables is compacted)."""
        core = self._core
        core.check_open()
        select = select_auto(core.options.geometric_factor)
        return await compact(core, select, best_effort=True, expiry=None, reload=True)

    async def clean(self) -> list[str]:
        """Delete unlisted tables whose max update index is <= the stack's (git's
        ``reftable_stack_clean``; takes the list lock without waiting for other processes),
        and temp tables of aioreftable writers that died (unmodified for 60 s and not
        flock-ed by a live writer). Returns the names deleted."""
        self._core.check_open()
        return await clean(self._core)

    async def wait_idle(self) -> None:
        """Wait until background auto-compaction has nothing pending or running.
        UsageError inside an addition (the compaction would wait for that addition)."""
        self._core.check_not_locking()
        await self._compactor.wait_idle()

    def statistics(self) -> StackStatistics:
        s, snap = self._core.stats, self._core.current
        return StackStatistics(
            tables=len(snap),
            bytes=sum(snap.file_sizes),
            max_update_index=snap.max_update_index,
            reloads=s.reloads,
            additions=s.additions,
            entries_written=s.entries_written,
            compactions_attempted=s.compactions_attempted,
            compactions=s.compactions,
            compactions_failed=s.compactions_failed,
            compactions_outdated=s.compactions_outdated,
            compaction_errors=s.compaction_errors,
            lock_waits=s.lock_waits,
            lock_wait_seconds=s.lock_wait_seconds,
            last_compaction_error=s.last_compaction_error,
        )

    def __repr__(self) -> str:
        return f"<Stack {self._core.directory!r} tables={len(self._core.current)}>"


@asynccontextmanager
async def open_stack(
    path: str | os.PathLike[str],
    options: StackOptions | None = None,
    *,
    create: bool = False,
    fs: OS | None = None,
) -> AsyncIterator[Stack]:
    """Open the reftable stack in directory ``path`` (for a repository: ``.git/reftable``).

    The directory must exist (FileNotFoundError naming it otherwise, NotADirectoryError if
    it is something else); ``create=True`` creates it and its parents first.

    The context owns a task group for background auto-compaction and closes every table
    on exit. An exception raised in the body propagates unchanged. On a clean exit a
    pending auto-compaction finishes first; on cancellation or error it is abandoned
    (its locks and temporary files are removed). ``fs`` replaces the OS seam (tests)."""
    core = StackCore(os.fspath(path), options or StackOptions(), fs or OS())
    compactor = AutoCompactor(core)
    watch = ListWatch(core) if core.options.reload == "watch" else None
    try:
        await core.open(create)
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(compactor.run)
            if watch is not None:
                tg.start_soon(watch.run)
            try:
                yield Stack(core, compactor)
            except BaseException as exc:  # re-raised below, outside the task group
                failure = exc
                tg.cancel_scope.cancel()
            else:
                compactor.stop()
            finally:
                if watch is not None:
                    watch.stop()
        if failure is not None:
            raise failure
    finally:
        core.close()
