"""ListWatch: reload="watch", an inotify watch on tables.list instead of a stat per read."""

from __future__ import annotations

import os
from typing import final

import anyio
from watchfiles import Change, awatch

from ._core import StackCore

__all__ = ["ListWatch"]

# The watch thread wakes at least this often (so that stopping it never waits longer).
_WAKE_MS = 250


@final
class ListWatch:
    """Marks the stack as maybe changed on every change of tables.list, and at least
    every ``max_staleness`` seconds; on any failure of the watch (no inotify, out of
    watches) the stack falls back to a ``stat`` per read."""

    def __init__(self, core: StackCore):
        self._core = core
        self._stop = anyio.Event()

    def stop(self) -> None:
        """End the watch at its next wake-up (at most 250 ms)."""
        self._stop.set()

    async def run(self) -> None:
        core = self._core
        staleness = core.options.max_staleness
        last = anyio.current_time()
        try:
            async for changes in awatch(
                core.directory,
                watch_filter=_is_tables_list,
                debounce=50,
                step=1,
                rust_timeout=min(_WAKE_MS, int(staleness * 1000)),
                yield_on_timeout=True,
                recursive=False,
                stop_event=self._stop,
            ):
                now = anyio.current_time()
                if changes or now - last >= staleness:
                    core.mark_maybe_changed()
                    last = now
        except (OSError, RuntimeError):
            pass  # no inotify here: a stat per read, as git does
        finally:
            core.mark_maybe_changed(watching=False)


def _is_tables_list(_change: Change, path: str) -> bool:
    return os.path.basename(path) == "tables.list"
