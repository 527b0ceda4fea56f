"""StoreLoop: a background thread running an event loop that owns ref stores; sync calls in."""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from .. import RefStore, open_ref_store

T = TypeVar("T")


def running_loop_library() -> str | None:
    """The event loop running in this thread ("asyncio", "trio", ...), or None.

    A worker thread of ``anyio.to_thread``/``asyncio.to_thread``/``trio.to_thread`` has
    none; a coroutine, a task or an asyncio callback does. (Without sniffio: anyio no
    longer installs it, and trio, the one loop that needs it, is looked at only if imported.)"""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    try:
        asyncio.get_running_loop()  # an asyncio callback outside any task
    except RuntimeError:
        return None
    return "asyncio"


def refuse_in_event_loop(what: str) -> None:
    """RuntimeError when called from a thread that runs an event loop: a sync call there
    would block every task of that loop until the ref store answered."""
    library = running_loop_library()
    if library is not None:
        raise RuntimeError(
            f"{what} is synchronous and was called from a running {library} event loop, "
            "which it would block; call it from a worker thread (anyio.to_thread.run_sync, "
            "asyncio.to_thread, trio.to_thread.run_sync) or use aioreftable's async API"
        )


def _run_portal(started: Future[BlockingPortal]) -> None:
    """The loop thread: a blocking portal until it is stopped."""

    async def serve() -> None:
        async with BlockingPortal() as portal:
            started.set_result(portal)
            await portal.sleep_until_stopped()

    try:
        anyio.run(serve, backend="asyncio")
    except BaseException as exc:  # reported to the constructor, if it still waits
        if not started.done():
            started.set_exception(exc)


class StoreLoop:
    """A background thread running an asyncio event loop (an anyio blocking portal) that
    owns the ref stores opened through it; :meth:`call` runs one coroutine function there
    and waits for it, from any thread but an event loop's.

    Thread-safe; :meth:`close` closes the stores it opened, then stops the thread. A loop
    still open when the interpreter exits is closed by an ``atexit`` hook."""

    def __init__(self) -> None:
        refuse_in_event_loop("StoreLoop()")
        started: Future[BlockingPortal] = Future()
        # a daemon thread of our own: a loop nobody closed neither keeps the interpreter
        # from exiting nor is called into while it shuts down (_close_at_exit closes it
        # before that, while the thread still runs)
        self._thread = threading.Thread(
            target=_run_portal, args=(started,), name="aioreftable.dulwich", daemon=True
        )
        self._thread.start()
        self._portal = started.result()
        self._stores: dict[int, AbstractContextManager[RefStore]] = {}  # id(store) -> its cm
        self._lock = threading.Lock()
        self._closed = False
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the loop's thread; its result or exception."""
        refuse_in_event_loop("aioreftable.dulwich")
        if self._closed:
            raise ValueError("the store loop is closed")
        return self._portal.call(fn, *args)

    def open_store(self, path: str | os.PathLike[str], **options: Any) -> RefStore:
        """``open_ref_store(path, **options)`` entered on the loop; closed by :meth:`close`
        (or earlier by :meth:`close_store`)."""
        refuse_in_event_loop("aioreftable.dulwich")
        with self._lock:
            if self._closed:
                raise ValueError("the store loop is closed")
            cm = self._portal.wrap_async_context_manager(open_ref_store(path, **options))
            store = cm.__enter__()
            self._stores[id(store)] = cm
        return store

    def close_store(self, store: RefStore) -> None:
        """Close one store opened by :meth:`open_store` (nothing if already closed)."""
        refuse_in_event_loop("aioreftable.dulwich")
        with self._lock:
            cm = self._stores.pop(id(store), None)
        if cm is None:
            return
        cm.__exit__(None, None, None)

    def close(self) -> None:
        """Close every store opened here, newest first, then stop the thread (idempotent)."""
        refuse_in_event_loop("aioreftable.dulwich")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stores, self._stores = list(self._stores.values()), {}
        try:
            for cm in reversed(stores):
                cm.__exit__(None, None, None)
        finally:
            self._portal.call(self._portal.stop)
            self._thread.join()
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def __enter__(self) -> StoreLoop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_LIVE: set[StoreLoop] = set()  # open loops (kept alive until closed)
_LIVE_LOCK = threading.Lock()


@atexit.register
def _close_at_exit() -> None:
    """Close the loops nobody closed, while their threads still run (after ``atexit`` the
    interpreter freezes daemon threads: a call into one would never return)."""
    with _LIVE_LOCK:
        loops = list(_LIVE)
    errors: list[BaseException] = []
    for loop in loops:  # each one, even when another fails to close
        try:
            loop.close()
        except Exception as exc:  # reported below, after the others are closed
            errors.append(exc)
    if errors:
        raise errors[0]
