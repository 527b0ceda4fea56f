"""Compaction (git's ``stack_compact_range``, best effort, auto) and ``clean``."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.from_thread

from .._errors import EmptyTableError, LockError, OutdatedError, ReftableError, UsageError
from .._format._compaction import suggest_compaction_segment
from .._format._merged import MergedTable
from .._format._reader import TableReader
from .._format._records import RefValueType
from .._format._tables_list import format_table_name
from .._format._writer import TableWriter, WriteOptions
from .._fs import OS, TEMP_GRACE, TempTable
from ._core import Held, Loaded, StackCore
from ._lock import lock_error
from ._options import LogExpiry
from ._snapshot import Snapshot

__all__ = ["clean", "compact", "select_all", "select_auto", "select_range", "write_compacted"]

Selector = Callable[[Snapshot], "tuple[int, int] | None"]
_CANCEL_CHECK_EVERY = 512  # records between cancellation checks in the merge thread


def select_all(snap: Snapshot) -> tuple[int, int] | None:
    return (0, len(snap) - 1) if len(snap) else None


def select_auto(factor: int) -> Selector:
    """git's geometric rule over the stack's effective sizes; inclusive (first, last)."""

    def select(snap: Snapshot) -> tuple[int, int] | None:
        segment = suggest_compaction_segment(snap.effective_sizes, factor)
        return None if segment is None else (segment[0], segment[1] - 1)

    return select


def select_range(first: int, last: int, generation: int) -> Selector:
    def select(snap: Snapshot) -> tuple[int, int] | None:
        if snap.generation != generation:
            raise OutdatedError("tables.list changed since the range was chosen")
        if first < 0 or last >= len(snap):
            raise UsageError(f"range {first}..{last} is outside the stack of {len(snap)} tables")
        return first, last

    return select


@dataclass(slots=True)
class Merged:
    temp: TempTable | None  # None: every record cancelled out (an empty result)
    entries: int


def write_compacted(
    fs: OS,
    directory: str,
    readers: Sequence[TableReader],
    drop_tombstones: bool,
    expiry: LogExpiry | None,
    options: WriteOptions,
    mode: int | None,
    check_cancelled: Callable[[], None],
) -> Merged:
    """Merge ``readers`` (oldest first) into a temp table (thread; cancellable between
    records). Tombstones are dropped only when nothing lies below the range."""
    writer = TableWriter(dataclasses.replace(options, exact_log_message=True))
    lo, hi = readers[0].min_update_index, readers[-1].max_update_index
    writer.set_limits(lo, hi)
    merged = MergedTable(readers)
    entries = 0
    for ref in merged.seek_refs(include_deletions=True):
        if drop_tombstones and ref.value_type == RefValueType.DELETION:
            continue
        writer.add_ref(ref)
        entries += 1
        if entries % _CANCEL_CHECK_EVERY == 0:
            check_cancelled()
    for log in merged.seek_logs(include_deletions=True):
        if drop_tombstones and log.is_deletion:
            continue
        if expiry is not None:
            if expiry.min_update_index > 0 and log.update_index < expiry.min_update_index:
                continue
            if expiry.time > 0 and log.time < expiry.time:
                continue
        writer.add_log(log)
        entries += 1
        if entries % _CANCEL_CHECK_EVERY == 0:
            check_cancelled()
    try:
        data = writer.finish()
    except EmptyTableError:
        return Merged(None, entries)
    check_cancelled()
    return Merged(fs.write_temp_table(directory, format_table_name(lo, hi), data, mode), entries)


async def compact(
    core: StackCore,
    select: Selector,
    *,
    best_effort: bool,
    expiry: LogExpiry | None,
    reload: bool,
) -> bool:
    """Compact the range ``select`` picks under the list lock. Returns False for a no-op.

    Order (git's): lock list; lock tables newest to oldest without waiting; release the
    list lock; merge in a thread; re-lock the list; find the compacted names in the
    current list (others may have appended or compacted meanwhile); rename the new table
    in; commit the list; unlink the old tables; only then release their locks."""
    fs, stats = core.fs, core.stats
    timeout = core.options.lock_timeout
    table_locks: list[str] = []
    temp: TempTable | None = None
    attempted = False
    try:
        async with core.locked_list(budget=timeout, reload=reload, writer=False):
            snap = core.current
            chosen = select(snap)
            if chosen is None:
                return False
            first, last = chosen
            if first > last or (first == last and expiry is None):
                return False
            stats.compactions_attempted += 1
            attempted = True
            newest_first = [
                core.table_path(snap.table_names[i]) for i in range(last, first - 1, -1)
            ]
            table_locks, complete = await core.hop_shielded(fs.lock_tables, newest_first, core.mode)
            if not complete:
                if best_effort and len(table_locks) >= 2:
                    first = last - len(table_locks) + 1  # git f234df07f6: the locked suffix
                else:
                    raise lock_error(newest_first[len(table_locks)] + ".lock", 0.0)
        # tables.list.lock is released: others may append or compact other ranges now
        window = snap.table_names[first : last + 1]
        merged = await core.hop(
            write_compacted,
            fs,
            core.directory,
            snap.readers[first : last + 1],
            first == 0,
            expiry,
            core.options.write_options,
            core.mode,
            anyio.from_thread.check_cancelled,
        )
        temp = merged.temp
        stats.entries_written += merged.entries
        lo = snap.readers[first].min_update_index
        hi = snap.readers[last].max_update_index
        # the merged table is ready and its tables are locked: committing it takes a moment,
        # so it goes ahead of queued writers (each wait behind them lets more tables pile up
        # above the ones it replaces, and keeps their locks from git's compaction)
        async with core.locked_list(budget=timeout, reload=True, first=True) as held:
            with anyio.CancelScope(shield=True):
                async with core.state_mutex:
                    loaded, late_error = await core.hop(_commit, core, held, window, temp, lo, hi)
                    temp = None  # renamed (or already deleted by _commit on failure)
                    core.install(loaded)
        stats.compactions += 1
        if late_error is not None:
            raise late_error
        return True
    except LockError:
        if not attempted:
            stats.compactions_attempted += 1
        stats.compactions_failed += 1
        raise
    finally:
        if temp is not None or table_locks:
            with anyio.CancelScope(shield=True):
                await core.hop(_release, fs, temp, table_locks)


def _release(fs: OS, temp: TempTable | None, table_locks: Sequence[str]) -> None:
    if temp is not None:
        fs.drop_temp(temp, unlink=True)
    fs.release_locks(table_locks)


def _commit(
    core: StackCore,
    held: Held,
    window: Sequence[str],
    temp: TempTable | None,
    lo: int,
    hi: int,
) -> tuple[Loaded, OSError | None]:
    """Under the re-taken list lock (thread): splice the new table in place of exactly the
    compacted names in the list as it is now, commit, and unlink the old tables."""
    fs, directory = core.fs, core.directory
    snap = core.current  # reloaded under the lock by locked_list
    names = list(snap.table_names)
    try:
        at = names.index(window[0])
    except ValueError:
        at = -1
    if at < 0 or tuple(names[at : at + len(window)]) != tuple(window):
        # git: "should never happen because we hold the table locks"
        raise OutdatedError("the compacted tables are no longer in tables.list")
    known = dict(zip(snap.table_names, snap.readers, strict=True))
    new_names = names[:at]
    final: str | None = None
    if temp is not None:
        name = format_table_name(lo, hi) + ".ref"
        final = os.path.join(directory, name)
        try:
            fs.rename(temp.path, final)
        except BaseException:
            fs.drop_temp(temp, unlink=True)
            raise
        fs.drop_temp(temp, unlink=False)
        new_names.append(name)
    new_names += names[at + len(window) :]
    opened: list[TableReader] = []
    try:
        if final is not None:
            fs.fsync_dir(directory)
            opened.append(fs.open_table(final))
            known[new_names[at]] = opened[-1]
        readers = tuple(known[n] for n in new_names)
        handle = fs.commit_tables_list(held.fd, core.lock_path, core.list_path, new_names)
    except BaseException:
        for reader in opened:
            reader.close()
        if final is not None:
            fs.unlink_quietly(final)
        raise
    held.committed = True
    late_error: OSError | None = None
    try:
        fs.fsync_dir(directory)
    except OSError as exc:
        late_error = exc
    # git unlinks the old tables before releasing their locks; failures are ignored
    # (readers may still map them; on POSIX that is harmless).
    for name in window:
        fs.unlink_quietly(os.path.join(directory, name))
    return core.retire(Loaded(tuple(new_names), readers, handle, opened)), late_error


async def clean(core: StackCore) -> list[str]:
    """git's ``reftable_stack_clean``: under the list lock (no waiting for other
    processes), delete ``.ref`` files that are not listed and whose max update index is <=
    the stack's; also our own temp tables whose writer died (``OS.remove_abandoned_temps``).
    Locks, git's temp files and files that do not parse as tables are never touched."""
    async with core.locked_list(budget=0, reload=True, writer=False):
        snap = core.current
        return await core.hop(
            _clean, core.fs, core.directory, set(snap.table_names), snap.max_update_index
        )


def _clean(fs: OS, directory: str, listed: set[str], max_update_index: int) -> list[str]:
    removed = fs.remove_abandoned_temps(directory, time.time(), TEMP_GRACE)
    for name in fs.table_files(directory):
        if name in listed:
            continue
        path = os.path.join(directory, name)
        try:
            reader = fs.open_table(path)
        except (OSError, ReftableError, ValueError):
            continue
        try:
            newer = reader.max_update_index > max_update_index
        finally:
            reader.close()
        if not newer and fs.unlink_quietly(path):
            removed.append(name)
    return removed
