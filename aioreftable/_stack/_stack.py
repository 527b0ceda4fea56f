"""Stack and open_stack: open tables, reload on change, the list lock, the background group."""

from __future__ import annotations

import os
import random
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, final

import anyio

from .._errors import NotExistError, OutdatedError
from .._format._reader import TableReader
from .._fs import OS, TABLES_LIST, ListHandle, default_mode
from ._background import AutoCompactor
from ._lock import lock_with_backoff
from ._options import LogExpiry, StackOptions
from ._snapshot import Snapshot
from ._stats import Counters, StackStatistics
from ._turns import Turns, shared_turns

if TYPE_CHECKING:
    from ._addition import Addition

__all__ = ["Stack", "open_stack"]

T = TypeVar("T")


class Held:
    """The tables.list lock while held: its fd, and whether a commit consumed it."""

    __slots__ = ("committed", "fd", "key")

    def __init__(self, fd: int, key: tuple[int, int] | None):
        self.fd = fd
        self.key = key  # (st_dev, st_ino) of tables.list seen right after locking
        self.committed = False


@dataclass(slots=True)
class Loaded:
    """A tables.list generation read from disk with its tables, ready to be installed."""

    names: tuple[str, ...]
    readers: tuple[TableReader, ...]
    handle: ListHandle | None
    opened: list[TableReader]


@dataclass(slots=True)
class Missing:
    """A listed table did not exist while loading ``names``."""

    name: str
    names: list[str]


@final
class Stack:
    """An open reftable stack. Obtain one from :func:`open_stack`.

    Reads go through :meth:`snapshot`, which first checks (one ``stat``) whether another
    process replaced tables.list. Writes go through :meth:`addition`."""

    def __init__(self, path: str, options: StackOptions, fs: OS):
        self._dir = path
        self._list_path = os.path.join(path, TABLES_LIST)
        self._lock_path = self._list_path + ".lock"
        self._options = options
        self._fs = fs
        self._mode = options.file_mode
        self._limiter = anyio.CapacityLimiter(options.max_threads)
        self._turns = Turns(self._lock_path)  # replaced by the directory's shared queue
        self._state_mutex = anyio.Lock()  # serializes installing new generations
        self._stats = Counters()
        self._generation = 0
        self._snap = Snapshot((), (), options.write_options.hash, 0)
        self._handle: ListHandle | None = None
        self._readers: weakref.WeakSet[TableReader] = weakref.WeakSet()
        self._closed = False
        self._compactor = AutoCompactor(self)

    # -- public API ------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The stack directory (for a repository, ``.git/reftable``)."""
        return self._dir

    @property
    def options(self) -> StackOptions:
        return self._options

    async def snapshot(self) -> Snapshot:
        """The current generation, reloaded first if tables.list changed on disk.

        A read that starts after another process's commit finished sees that commit."""
        self._check_open()
        key = self._fs.list_key(self._list_path)  # inline: one stat, a few µs
        if self._uptodate(key):
            await anyio.lowlevel.checkpoint()
            return self._snap
        async with self._state_mutex:
            if not self._uptodate(self._fs.list_key(self._list_path)):
                await self._reload()
        return self._snap

    def addition(self, *, exact_log_message: bool = False) -> AbstractAsyncContextManager[Addition]:
        """``async with stack.addition() as add:`` lock tables.list and append one table.

        See :class:`~aioreftable.Addition`. Commits on a clean exit, rolls back otherwise.
        ``exact_log_message``: the writer stores log messages as given (no LF rules)."""
        from ._addition import open_addition

        self._check_open()
        return open_addition(self, exact_log_message=exact_log_message)

    async def compact_all(self, *, expiry: LogExpiry | None = None) -> bool:
        """Merge every table into one (git's pack-refs). A table locked by someone else
        fails the whole operation with LockError. Returns whether anything was done."""
        from ._compact import compact, select_all

        self._check_open()
        return await compact(self, select_all, best_effort=False, expiry=expiry, reload=True)

    async def compact_range(
        self, first: int, last: int, *, expiry: LogExpiry | None = None
    ) -> bool:
        """Merge tables ``first..last`` (inclusive, oldest = 0) of the current snapshot.

        Raises OutdatedError if tables.list changed since that snapshot (the indexes
        would be stale), LockError if any table is locked."""
        from ._compact import compact, select_range

        self._check_open()
        select = select_range(first, last, self._snap.generation)
        return await compact(self, select, best_effort=False, expiry=expiry, reload=False)

    async def auto_compact(self) -> bool:
        """Run git's geometric auto-compaction once, now (best effort: when some tables
        are locked by others, the newest run of >= 2 lockable tables is compacted)."""
        from ._compact import compact, select_auto

        self._check_open()
        select = select_auto(self._options.geometric_factor)
        return await compact(self, select, best_effort=True, expiry=None, reload=True)

    async def clean(self) -> list[str]:
        """Delete unlisted tables whose max update index is <= the stack's (git's
        ``reftable_stack_clean``; takes the list lock without waiting for other processes),
        and temp tables of aioreftable writers that died (unmodified for 60 s and not
        flock-ed by a live writer). Returns the names deleted."""
        from ._compact import clean

        self._check_open()
        return await clean(self)

    async def wait_idle(self) -> None:
        """Wait until background auto-compaction has nothing pending or running.
        UsageError inside an addition (the compaction would wait for that addition)."""
        self._turns.check_not_held()
        await self._compactor.wait_idle()

    def statistics(self) -> StackStatistics:
        s, snap = self._stats, self._snap
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
        return f"<Stack {self._dir!r} tables={len(self._snap)}>"

    # -- threads ---------------------------------------------------------------------------
    async def _hop(self, fn: Callable[..., T], *args: Any) -> T:
        """One unit of blocking work in a worker thread."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _hop_shielded(self, fn: Callable[..., T], *args: Any) -> T:
        """A unit whose effect must be recorded even if the caller is being cancelled."""
        with anyio.CancelScope(shield=True):
            result = await self._hop(fn, *args)
        return result

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError("the stack is closed")

    # -- reload ----------------------------------------------------------------------------
    def _uptodate(self, key: tuple[int, int] | None) -> bool:
        """git's ``stack_uptodate`` fast path: same (st_dev, st_ino) as the list we hold open.

        Without a cached key (no inode numbers, or nothing read yet) we reload, which
        compares names and reuses every open table, as git's slow path does."""
        if key is None:  # tables.list is missing: up to date only when we hold no tables
            return not self._snap.table_names
        handle = self._handle
        return handle is not None and handle.key == key

    async def _reload(self) -> None:
        """Re-read tables.list and open new tables, reusing open ones by name (the caller
        holds the state mutex). A listed table that vanished means a concurrent compaction:
        retry with git's growing jittered delay. The same list twice is NotExistError."""
        start = anyio.current_time()
        delay_ms = 0.0
        tries = 0
        while True:
            tries += 1
            known = dict(zip(self._snap.table_names, self._snap.readers, strict=True))
            result = await self._hop_shielded(self._load_once, known)
            if isinstance(result, Loaded):
                self._install(result)
                return
            after = await self._hop(self._fs.read_names, self._list_path)
            if after == result.names:
                raise NotExistError(
                    f"{os.path.join(self._dir, result.name)}: listed in tables.list but missing"
                )
            if tries >= 3 and anyio.current_time() - start >= self._options.reload_timeout:
                raise NotExistError(
                    f"{self._list_path}: tables kept vanishing for "
                    f"{self._options.reload_timeout:g} s while reloading"
                )
            delay_ms = delay_ms + delay_ms * random.random() + 1
            await anyio.sleep(delay_ms / 1000)

    def _load_once(self, known: dict[str, TableReader]) -> Loaded | Missing:
        """Read tables.list (kept open) and open the tables not already open (thread)."""
        names, handle = self._fs.read_tables_list(self._list_path)
        opened: list[TableReader] = []
        try:
            readers = []
            for name in names:
                reader = known.get(name)
                if reader is None:
                    try:
                        reader = self._fs.open_table(os.path.join(self._dir, name))
                    except FileNotFoundError:
                        self._discard(opened, handle)
                        return Missing(name, names)
                    opened.append(reader)
                readers.append(reader)
            loaded = Loaded(tuple(names), tuple(readers), handle, opened)
            self._check_snapshot(loaded)
        except BaseException:
            self._discard(opened, handle)
            raise
        return loaded

    def _check_snapshot(self, loaded: Loaded) -> None:
        Snapshot(loaded.names, loaded.readers, self._options.write_options.hash, 0)

    def _discard(self, opened: Sequence[TableReader], handle: ListHandle | None) -> None:
        for reader in opened:
            reader.close()
        if handle is not None:
            self._fs.close_quietly(handle.fd)

    def _install(self, loaded: Loaded | None) -> None:
        """Make ``loaded`` the current generation; its list handle replaces ours (the old
        descriptor is closed inline: closing a regular file does not block). None forgets
        the handle, so that the next read reloads."""
        old = self._handle
        new = None if loaded is None else loaded.handle
        if old is not None and (new is None or new.fd != old.fd):
            self._fs.close_quietly(old.fd)
        if loaded is None:
            self._handle = None
            return
        self._generation += 1
        self._snap = Snapshot(
            loaded.names, loaded.readers, self._options.write_options.hash, self._generation
        )
        self._handle = loaded.handle
        for reader in loaded.opened:
            self._readers.add(reader)
        self._stats.reloads += 1

    # -- the tables.list lock --------------------------------------------------------------
    @asynccontextmanager
    async def _locked_list(
        self, *, budget: float | None, reload: bool, writer: bool = True
    ) -> AsyncIterator[Held]:
        """Hold ``tables.list.lock``: first this process's turn (a fair queue, no timeout:
        see :class:`Turns`), then the O_EXCL file with git's backoff within ``budget``
        seconds of polling. ``writer=False`` marks maintenance, which lets queued writers go
        first. With ``reload`` the stack is brought up to date under the lock; otherwise an
        outdated stack raises OutdatedError."""
        started = anyio.current_time()
        turns = self._turns
        await turns.acquire(writer=writer)
        try:
            queued = anyio.current_time() - started
            tries = 0
            key: tuple[int, int] | None = None

            async def try_once() -> int | None:
                nonlocal tries, key
                tries += 1
                fd, key = await self._hop_shielded(self._try_lock)
                return fd

            fd, slept = await lock_with_backoff(try_once, self._lock_path, budget)
            held = Held(fd, key)
            try:
                if tries > 1 or queued > 0.001:
                    self._stats.lock_waits += 1
                    self._stats.lock_wait_seconds += queued + slept
                if not self._uptodate(held.key):
                    if not reload:
                        raise OutdatedError(f"{self._list_path} changed since the stack was read")
                    async with self._state_mutex:
                        if not self._uptodate(self._fs.list_key(self._list_path)):
                            await self._reload()
                yield held
            finally:
                if not held.committed:
                    with anyio.CancelScope(shield=True):
                        await self._hop(self._fs.release_lock, held.fd, self._lock_path)
        finally:
            turns.release()

    def _try_lock(self) -> tuple[int | None, tuple[int, int] | None]:
        """One O_EXCL try; on success also the (st_dev, st_ino) of tables.list (thread)."""
        fd = self._fs.try_create_lock(self._lock_path, self._mode)
        if fd is None:
            return None, None
        try:
            return fd, self._fs.list_key(self._list_path)
        except BaseException:
            self._fs.release_lock(fd, self._lock_path)
            raise

    # -- lifetime --------------------------------------------------------------------------
    async def _open(self, create: bool) -> None:
        if self._mode is None:
            self._mode = await self._hop(default_mode)
        if create:
            await self._hop(self._fs.ensure_dir, self._dir)
        key = await self._hop(self._fs.dir_key, self._dir)
        self._turns = shared_turns(key, self._lock_path)
        async with self._state_mutex:
            await self._reload()

    def _close(self) -> None:
        self._closed = True
        for reader in list(self._readers):
            reader.close()
        if self._handle is not None:
            self._fs.close_quietly(self._handle.fd)
            self._handle = None


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
    stack = Stack(os.fspath(path), options or StackOptions(), fs or OS())
    try:
        await stack._open(create)
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(stack._compactor.run)
            try:
                yield stack
            except BaseException as exc:  # re-raised below, outside the task group
                failure = exc
                tg.cancel_scope.cancel()
            else:
                stack._compactor.stop()
        if failure is not None:
            raise failure
    finally:
        stack._close()
