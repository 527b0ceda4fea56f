"""Watching tables.list: inotify through watchfiles in a worker thread, or stat polling."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import anyio
import anyio.from_thread
import anyio.to_thread
import watchfiles

from ._discovery import LIST, list_keys

__all__ = ["poll_keys", "watch_lists"]

_POLL_BATCH = 2000  # tables.list stats per unit of work in a worker thread


def _is_list(change: watchfiles.Change, path: str) -> bool:
    return os.path.basename(path) == LIST


def _watch_thread(
    dirs: Sequence[str],
    stop: threading.Event,
    debounce_ms: int,
    deliver: Callable[[set[str]], None],
    started: Callable[[], None],
) -> None:
    existing = [d for d in dirs if os.path.isdir(d)]
    watcher = watchfiles.watch(
        *existing,
        watch_filter=_is_list,
        debounce=max(debounce_ms, 1),
        step=min(50, max(debounce_ms, 1)),
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=True,
        raise_interrupt=False,
        recursive=False,
        ignore_permission_denied=True,
        force_polling=False,
    )
    first = True
    for changes in watcher:
        if stop.is_set():
            return
        try:
            if first:
                anyio.from_thread.run_sync(started)
                first = False
            if changes:
                anyio.from_thread.run_sync(deliver, {os.path.dirname(p) for _, p in changes})
        except RuntimeError:  # the event loop is gone: the watch was abandoned
            return


async def watch_lists(
    dirs: Sequence[str],
    debounce: float,
    deliver: Callable[[set[str]], None],
    started: Callable[[], None],
) -> None:
    """Call ``deliver`` with the stack directories whose tables.list changed, until
    cancelled. ``started`` runs once the watches are in place (after the first timeout
    of the watcher, at most half a second after it starts). Raises what watchfiles raises when
    inotify is unavailable (the caller falls back to polling)."""
    stop = threading.Event()
    try:
        await anyio.to_thread.run_sync(
            _watch_thread,
            list(dirs),
            stop,
            int(debounce * 1000),
            deliver,
            started,
            abandon_on_cancel=True,
        )
    finally:
        stop.set()  # the abandoned thread ends within one step of the watcher


async def poll_keys(dirs: Sequence[str]) -> list[int]:
    """The tables.list fingerprints of ``dirs``, in worker-thread batches."""
    keys: list[int] = []
    for i in range(0, len(dirs), _POLL_BATCH):
        keys += await anyio.to_thread.run_sync(list_keys, dirs[i : i + _POLL_BATCH])
    return keys
