"""Addition: one locked append of a table to the stack (git's ``reftable_addition``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import final

import anyio

from .._errors import ReftableError, UsageError
from .._format._tables_list import format_table_name
from .._format._writer import TableWriter
from ._core import Held, Loaded, StackCore
from ._snapshot import Snapshot

__all__ = ["Addition", "open_addition"]


@final
class Addition:
    """A pending append, valid inside ``async with stack.addition() as add:``.

    ``tables.list.lock`` is held for its whole life. ``snapshot`` is the stack as it is
    on disk under the lock (check expected old values there), ``update_index`` is the
    next update index, and ``writer`` is a TableWriter whose limits are already set to
    ``(update_index, update_index)``; it may be given wider limits before the first
    record, as long as the minimum stays >= ``update_index``. Adding no records adds no
    table."""

    __slots__ = ("snapshot", "update_index", "writer")

    def __init__(self, snapshot: Snapshot, update_index: int, writer: TableWriter):
        self.snapshot = snapshot
        self.update_index = update_index
        self.writer = writer

    def __repr__(self) -> str:
        return f"<Addition update_index={self.update_index} records={self.writer.record_count}>"


@asynccontextmanager
async def open_addition(
    core: StackCore, committed: Callable[[], None], *, exact_log_message: bool = False
) -> AsyncIterator[Addition]:
    """Lock the list, yield the Addition, then commit its table (if it has records) and
    call ``committed`` (the background compactor's request)."""
    options = core.options.write_options
    if exact_log_message:
        options = replace(options, exact_log_message=True)
    async with core.locked_list(budget=core.options.lock_timeout, reload=True) as held:
        snap = core.current
        update_index = snap.next_update_index
        writer = TableWriter(options)
        writer.set_limits(update_index, update_index)
        yield Addition(snap, update_index, writer)
        if writer.record_count == 0:
            return  # git: an empty addition writes nothing and leaves tables.list alone
        if writer.min_update_index < update_index:
            raise UsageError(
                f"the table's min update index {writer.min_update_index} is below the next "
                f"update index {update_index}"
            )
        with anyio.CancelScope(shield=True):
            async with core.state_mutex:
                loaded, late_error = await core.hop(_commit, core, held, writer)
                core.install(loaded)
    core.stats.additions += 1
    committed()
    if late_error is not None:
        # Committed and visible, but the directory fsync failed: durability is unknown.
        raise late_error


def _commit(
    core: StackCore, held: Held, writer: TableWriter
) -> tuple[Loaded | None, OSError | None]:
    """Build the table, write+fsync+rename it, commit the new list, fsync the directory
    and open the new table (one thread hop, under the list lock and the state mutex).

    Returns the new generation (None if the new table could not be opened: the next read
    reloads) and an error of the final directory fsync, which comes after the commit."""
    fs, directory = core.fs, core.directory
    snap = core.current
    data = writer.finish()
    lo, hi = writer.min_update_index, writer.max_update_index
    name = format_table_name(lo, hi) + ".ref"
    path = core.table_path(name)
    names = (*snap.table_names, name)

    def table() -> None:
        fs.install_table(directory, format_table_name(lo, hi), name, data, core.mode)
        # The table's directory entry must be durable before a list that names it is.
        fs.fsync_dir(directory)

    try:
        # The table and the list in the lock file are independent until the rename:
        # their fsyncs overlap, which shortens the time tables.list.lock is held.
        fs.concurrently(table, lambda: fs.write_tables_list(held.fd, names))
        handle = fs.install_tables_list(held.fd, core.lock_path, core.list_path)
    except BaseException:
        fs.unlink_quietly(path)
        raise
    held.committed = True  # the lock file is tables.list now: never unlink it
    late_error: OSError | None = None
    try:
        fs.fsync_dir(directory)
    except OSError as exc:
        late_error = exc
    try:
        reader = fs.open_table(path)
    except (OSError, ReftableError):
        fs.close_quietly(handle.fd)
        return None, late_error
    return core.retire(Loaded(names, (*snap.readers, reader), handle, [reader])), late_error
