"""StackCore: the internal interface of an open stack (paths, seam, threads, lock, install)."""

from __future__ import annotations

import os
import random
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, final

import anyio
import anyio.lowlevel

from .._errors import NotExistError, OutdatedError
from .._format._reader import TableReader
from .._format._tables_list import TABLES_LIST
from .._fs import OS, ListHandle, default_mode
from ._lock import lock_with_backoff
from ._options import StackOptions
from ._snapshot import Snapshot
from ._stats import Counters
from ._turns import Turns, shared_turns

__all__ = ["Held", "Loaded", "StackCore"]

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
    retired: bool = False  # the list descriptor it replaces is closed already (thread)


@dataclass(slots=True)
class Missing:
    """A listed table did not exist while loading ``names``."""

    name: str
    names: list[str]


@final
class StackCore:
    """What additions, compactions and the background compactor may use of an open stack.

    ``Stack`` (the public facade) owns one and hands it to them; nothing here knows
    ``Stack``. The parts:

    - paths: ``directory``, ``list_path``, ``lock_path``, :meth:`table_path`;
    - the OS seam ``fs``, the file ``mode`` of new files, and :meth:`hop` /
      :meth:`hop_shielded`, which run one unit of blocking work in a worker thread;
    - the list lock :meth:`locked_list` (this process's turn, then the lock file);
    - the current generation ``current``, replaced only by :meth:`install` while
      ``state_mutex`` is held, and :meth:`refresh`, which reloads it when tables.list
      changed;
    - the counters ``stats``."""

    def __init__(self, path: str, options: StackOptions, fs: OS):
        self.directory = path
        self.list_path = os.path.join(path, TABLES_LIST)
        self.lock_path = self.list_path + ".lock"
        self.options = options
        self.fs = fs
        self.mode = options.file_mode  # resolved from the umask by open() when None
        self.state_mutex = anyio.Lock()  # serializes installing new generations
        self.stats = Counters()
        self._limiter = anyio.CapacityLimiter(options.max_threads)
        self._turns = Turns(self.lock_path)  # replaced by the directory's shared queue
        self._generation = 0
        self._snap = Snapshot((), (), options.write_options.algorithm, 0)
        self._handle: ListHandle | None = None
        self._readers: weakref.WeakSet[TableReader] = weakref.WeakSet()
        self._closed = False
        # reload="watch": False while the watch vouches that tables.list has not changed
        # since the last stat; any report of the watch (or none running) makes it True.
        self._maybe_changed = True
        self._watching = False  # the watch runs (set and cleared by it)

    def mark_maybe_changed(self, *, watching: bool = True) -> None:
        """The watch reports a change of tables.list (or its periodic wake-up; with
        ``watching=False``, its end): the next read checks with ``stat`` again."""
        self._watching = watching
        self._maybe_changed = True

    # -- paths and threads -----------------------------------------------------------------
    def table_path(self, name: str) -> str:
        """The path of table (or table-like file) ``name`` in the stack directory."""
        return os.path.join(self.directory, name)

    async def hop(self, fn: Callable[..., T], *args: Any) -> T:
        """One unit of blocking work in a worker thread."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def hop_shielded(self, fn: Callable[..., T], *args: Any) -> T:
        """A unit whose effect must be recorded even if the caller is being cancelled."""
        with anyio.CancelScope(shield=True):
            result = await self.hop(fn, *args)
        return result

    def check_open(self) -> None:
        """ClosedResourceError once the stack is closed."""
        if self._closed:
            raise anyio.ClosedResourceError("the stack is closed")

    def check_not_locking(self) -> None:
        """UsageError if the current task holds the list lock (it would wait for itself)."""
        self._turns.check_not_held()

    # -- the current generation ------------------------------------------------------------
    @property
    def current(self) -> Snapshot:
        """The installed generation, as last read (no reload)."""
        return self._snap

    async def refresh(self) -> Snapshot:
        """The current generation, reloaded first if tables.list changed on disk."""
        if not self._maybe_changed:  # reload="watch" and the watch saw no change
            await anyio.lowlevel.checkpoint()
            return self._snap
        if self.options.reload == "watch" and self._watching:
            self._maybe_changed = False  # before the stat: a report from now on counts
        key = self.fs.list_key(self.list_path)  # inline: one stat, a few µs
        if self._uptodate(key):
            await anyio.lowlevel.checkpoint()
            return self._snap
        async with self.state_mutex:
            if not self._uptodate(self.fs.list_key(self.list_path)):
                await self._reload()
        return self._snap

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
            result = await self.hop_shielded(self._load_once, known)
            if isinstance(result, Loaded):
                self.install(result)
                return
            after = await self.hop(self.fs.read_names, self.list_path)
            if after == result.names:
                raise NotExistError(
                    f"{self.table_path(result.name)}: listed in tables.list but missing"
                )
            if tries >= 3 and anyio.current_time() - start >= self.options.reload_timeout:
                raise NotExistError(
                    f"{self.list_path}: tables kept vanishing for "
                    f"{self.options.reload_timeout:g} s while reloading"
                )
            delay_ms = delay_ms + delay_ms * random.random() + 1
            await anyio.sleep(delay_ms / 1000)

    def _load_once(self, known: dict[str, TableReader]) -> Loaded | Missing:
        """Read tables.list (kept open) and open the tables not already open (thread)."""
        names, handle = self.fs.read_tables_list(self.list_path)
        opened: list[TableReader] = []
        try:
            readers = []
            for name in names:
                reader = known.get(name)
                if reader is None:
                    try:
                        reader = self.fs.open_table(self.table_path(name))
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
        return self.retire(loaded)

    def _check_snapshot(self, loaded: Loaded) -> None:
        Snapshot(loaded.names, loaded.readers, self.options.write_options.algorithm, 0)

    def _discard(self, opened: Sequence[TableReader], handle: ListHandle | None) -> None:
        for reader in opened:
            reader.close()
        if handle is not None:
            self.fs.close_quietly(handle.fd)

    def retire(self, loaded: Loaded) -> Loaded:
        """In the worker thread that made ``loaded``, as the last step of its unit of work
        (the caller holds ``state_mutex``): close the list descriptor that ``loaded`` will
        replace. The last close of a renamed-over tables.list frees its inode, which is
        not cheap (p50 0.36 ms, p99 5 ms, max 15 ms measured), so it must not run on the
        event loop; :meth:`install` then leaves that descriptor alone."""
        old = self._handle
        if old is not None and (loaded.handle is None or loaded.handle.fd != old.fd):
            self.fs.close_quietly(old.fd)
        loaded.retired = True
        return loaded

    def install(self, loaded: Loaded | None) -> None:
        """Make ``loaded`` the current generation (the caller holds ``state_mutex``); its
        list handle replaces ours (closed in the worker thread by :meth:`retire`; closed
        here only if the thread could not: a committed list whose new table did not open).
        None forgets the handle, so that the next read reloads."""
        old = self._handle
        new = None if loaded is None else loaded.handle
        retired = loaded is not None and loaded.retired
        if old is not None and not retired and (new is None or new.fd != old.fd):
            self.fs.close_quietly(old.fd)
        if loaded is None:
            self._handle = None
            return
        self._generation += 1
        self._snap = Snapshot(
            loaded.names, loaded.readers, self.options.write_options.algorithm, self._generation
        )
        self._handle = loaded.handle
        for reader in loaded.opened:
            self._readers.add(reader)
        self.stats.reloads += 1

    # -- the tables.list lock --------------------------------------------------------------
    @asynccontextmanager
    async def locked_list(
        self, *, budget: float | None, reload: bool, writer: bool = True, first: bool = False
    ) -> AsyncIterator[Held]:
        """Hold ``tables.list.lock``: first this process's turn (a fair queue, no timeout:
        see :class:`Turns`), then the O_EXCL file with git's backoff within ``budget``
        seconds of polling. ``writer=False`` marks maintenance, which lets queued writers go
        first; ``first`` jumps the queue (a compaction's commit). With ``reload`` the stack
        is brought up to date under the lock; otherwise an outdated stack raises
        OutdatedError."""
        started = anyio.current_time()
        turns = self._turns
        await turns.acquire(writer=writer, first=first)
        try:
            queued = anyio.current_time() - started
            tries = 0
            key: tuple[int, int] | None = None

            async def try_once() -> int | None:
                nonlocal tries, key
                tries += 1
                fd, key = await self.hop_shielded(self._try_lock)
                return fd

            fd, slept = await lock_with_backoff(try_once, self.lock_path, budget)
            held = Held(fd, key)
            try:
                if tries > 1 or queued > 0.001:
                    self.stats.lock_waits += 1
                    self.stats.lock_wait_seconds += queued + slept
                if not self._uptodate(held.key):
                    if not reload:
                        raise OutdatedError(f"{self.list_path} changed since the stack was read")
                    async with self.state_mutex:
                        if not self._uptodate(self.fs.list_key(self.list_path)):
                            await self._reload()
                yield held
            finally:
                if not held.committed:
                    with anyio.CancelScope(shield=True):
                        await self.hop(self.fs.release_lock, held.fd, self.lock_path)
        finally:
            turns.release()

    def _try_lock(self) -> tuple[int | None, tuple[int, int] | None]:
        """One O_EXCL try; on success also the (st_dev, st_ino) of tables.list (thread)."""
        fd = self.fs.try_create_lock(self.lock_path, self.mode)
        if fd is None:
            return None, None
        try:
            return fd, self.fs.list_key(self.list_path)
        except BaseException:
            self.fs.release_lock(fd, self.lock_path)
            raise

    # -- lifetime --------------------------------------------------------------------------
    async def open(self, create: bool) -> None:
        """Resolve the file mode, create the directory if asked, join the directory's
        lock queue and read the first generation."""
        if self.mode is None:
            self.mode = await self.hop(default_mode)
        if create:
            await self.hop(self.fs.ensure_dir, self.directory)
        key = await self.hop(self.fs.dir_key, self.directory)
        self._turns = shared_turns(key, self.lock_path)
        async with self.state_mutex:
            await self._reload()

    def close(self) -> None:
        """Close every table this stack opened and the list handle; later use is refused."""
        self._closed = True
        for reader in list(self._readers):
            reader.close()
        if self._handle is not None:
            self.fs.close_quietly(self._handle.fd)
            self._handle = None
