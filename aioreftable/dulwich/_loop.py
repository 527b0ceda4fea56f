"""StoreLoop: a background thread running an event loop that owns ref stores; sync calls in."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import sniffio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .. import RefStore, open_ref_store

T = TypeVar("T")


def running_loop_library() -> str | None:
    """The event loop running in this thread ("asyncio", "trio", ...), or None.

    A worker thread of ``anyio.to_thread``/``asyncio.to_thread``/``trio.to_thread`` has
    none; a coroutine, a task or an asyncio callback does."""
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        pass
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


class StoreLoop:
    """A background thread running an asyncio event loop (an anyio blocking portal) that
    owns the ref stores opened through it; :meth:`call` runs one coroutine function there
    and waits for it, from any thread but an event loop's.

    Thread-safe; :meth:`close` closes the stores it opened, then stops the thread."""

    def __init__(self) -> None:
        refuse_in_event_loop("StoreLoop()")
        self._portal_cm = start_blocking_portal("asyncio")
        self._portal: BlockingPortal = self._portal_cm.__enter__()
        self._stores: dict[int, AbstractContextManager[RefStore]] = {}  # id(store) -> its cm
        self._lock = threading.Lock()
        self._closed = False

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
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> StoreLoop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
