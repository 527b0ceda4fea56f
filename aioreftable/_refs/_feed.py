"""The change feed: every ref update committed to a stack, by any process, in update-index order.

A feed keeps the snapshot of the last state it delivered (its tables stay open even when a
compaction deletes their files) and, when ``tables.list`` changes, reads only the tables
whose update indexes are newer. Within those tables the records are delivered ordered by
update index; each change's old value is the ref's value in the state before it.

When a compaction merged tables the feed had not read yet, the intermediate values of a
ref inside them are gone from the ref records: the feed then delivers one change per ref,
from the value in the last state it saw to the newest, carrying the newest update index
(and that update's reflog message, if it has one).

A reflog expiry is no change: it writes the kept entries again at their old update indexes
(below its table's own), which the feed never delivers again, and with ``update_ref`` a ref
record that is a change only when it moves the ref.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, final

import anyio
from watchfiles import Change, awatch

from .._errors import ReftableError
from .._format._layout import HashAlgorithm
from .._format._merged import MergedTable
from .._format._reader import TableReader
from .._format._records import RefRecord, RefValueType
from .._stack import Snapshot, Stack
from ._core import decode_name, encode_name

__all__ = ["ChangeFeed", "ChangeFeedGapError", "RefChange"]

# Read the new tables in a worker thread when they hold more than this many bytes.
_INLINE_BYTES = 64 * 1024
# How long one wait for inotify lasts before the feed checks tables.list anyway (a safety
# net for changes made between a reload and the start of the watch; also bounds how long
# a cancelled consumer waits for the watch thread).
_WATCH_TIMEOUT_MS = 250


class ChangeFeedGapError(ReftableError):
    """``since`` names an update index the stack can no longer resume after: a compaction
    merged the tables around it, or the stack's oldest table starts later."""

    def __init__(self, message: str, *, since: int, table: str | None, covers: tuple[int, int]):
        super().__init__(message)
        self.since = since
        self.table = table
        self.covers = covers


@dataclass(frozen=True, slots=True)
class RefChange:
    """One committed ref update, as git's reference-transaction hook shows it.

    ``old`` and ``new`` are hex object ids, the null id for a missing ref, or
    ``ref:<target>`` for a symbolic ref; ``message`` is the update's reflog message
    (None when the update wrote no reflog entry)."""

    refname: str
    old: str
    new: str
    update_index: int
    message: str | None = None


class _State(Protocol):
    def ref(self, refname: bytes, *, include_deletions: bool = False) -> RefRecord | None: ...


def _show(rec: RefRecord | None, algo: HashAlgorithm) -> str:
    if rec is None or rec.value_type == RefValueType.DELETION:
        return algo.null_hex
    if rec.value_type == RefValueType.SYMREF:
        return "ref:" + decode_name(rec.symref_target)
    return rec.oid.hex()


def _message(table: TableReader, rec: RefRecord) -> str | None:
    log = table.log(rec.refname, rec.update_index)
    if log is None or log.is_deletion:
        return None
    return _text(log.message)


def _text(message: bytes) -> str:
    text = message.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\n") else text


def _raw(rec: RefRecord | None, algo: HashAlgorithm) -> bytes | None:
    """The object id a reflog entry would show for this value (None: a symref)."""
    if rec is None or rec.is_deletion:
        return algo.null_id
    return None if rec.value_type == RefValueType.SYMREF else rec.oid


def _logged_steps(
    table: TableReader, rec: RefRecord, after: int, old: RefRecord | None, algo: HashAlgorithm
) -> list[RefChange] | None:
    """Every update of ``rec``'s ref in ``table`` after ``after``, from its reflog entries
    (which survive compaction), when they chain from ``old`` to ``rec`` exactly; else None."""
    start, final = _raw(old, algo), _raw(rec, algo)
    if start is None or final is None:
        return None
    logs = []
    for log in table.iter_logs(rec.refname):  # newest first
        if log.update_index <= after:
            break
        if log.update_index <= rec.update_index:
            logs.append(log)
    if not logs or logs[0].update_index != rec.update_index:
        return None
    steps, at = [], start
    name = decode_name(rec.refname)
    for log in reversed(logs):
        if log.is_deletion or log.old_id != at:
            return None
        steps.append(
            RefChange(name, at.hex(), log.new_id.hex(), log.update_index, _text(log.message))
        )
        at = log.new_id
    return steps if at == final else None


def changes_between(
    before: _State,
    tables: Sequence[TableReader],
    after: int,
    prefix: bytes,
    algo: HashAlgorithm,
    floor: int,
) -> list[RefChange]:
    """The changes recorded in ``tables`` (oldest first) with update indexes above
    ``after``, given ``before``, the state at ``after``; changes at or below ``floor``
    only advance the state (they are not returned).

    Reflog entries written without a ref record (HEAD's, when its branch moves) are
    changes too, with the ids of the entry. A table that merged several updates of one
    ref holds only the newest record; the
    ref's reflog entries then give every step when they chain exactly, else the change
    is delivered once, from the old state to the newest value. ChangeFeedGapError when
    such a merged change spans ``floor`` (its value at ``floor`` is unknown)."""
    out: list[RefChange] = []
    seen: dict[bytes, RefRecord | None] = {}
    for table in tables:
        if table.max_update_index <= after:
            continue
        low = max(after, table.min_update_index - 1)  # the state ``before`` the table
        batch: list[RefChange] = []
        recorded: set[bytes] = set()  # refs with a record in this table after ``after``
        for rec in table.iter_refs(prefix):
            if rec.update_index <= after:
                continue
            recorded.add(rec.refname)
            old = seen[rec.refname] if rec.refname in seen else before.ref(rec.refname)
            new = None if rec.is_deletion else rec
            seen[rec.refname] = new
            if (old is None and new is None) or _expiry_rewrite(table, rec, old, algo):
                continue
            steps = None
            if table.min_update_index < rec.update_index:  # merged: look for every step
                steps = _logged_steps(table, rec, low, old, algo)
            if steps is None:
                if low < floor < rec.update_index:
                    raise _gap(floor, table, "its reflog does not hold every update of "
                               + decode_name(rec.refname))  # fmt: skip
                steps = [
                    RefChange(
                        decode_name(rec.refname),
                        _show(old, algo),
                        _show(new, algo),
                        rec.update_index,
                        _message(table, rec),
                    )
                ]
            batch.extend(step for step in steps if step.update_index > floor)
        batch.extend(_log_only(table, prefix, after, floor, algo, recorded))
        batch.sort(key=lambda c: (c.update_index, c.refname))
        out.extend(batch)
    return out


def _expiry_rewrite(
    table: TableReader, rec: RefRecord, old: RefRecord | None, algo: HashAlgorithm
) -> bool:
    """Whether ``rec`` is the ref record a reflog expiry with ``update_ref`` wrote, setting
    the ref to the value it had: it changes nothing, has no reflog entry of its own, and
    its table holds the ref's rewritten entries at older update indexes (a transaction
    logs its update of a ref that has a reflog at the update's own index)."""
    if _show(old, algo) != _show(rec, algo) or table.log(rec.refname, rec.update_index):
        return False
    return any(log.update_index < rec.update_index for log in table.iter_logs(rec.refname))


def _log_only(
    table: TableReader,
    prefix: bytes,
    after: int,
    floor: int,
    algo: HashAlgorithm,
    recorded: set[bytes],
) -> list[RefChange]:
    """Updates that wrote only a reflog entry (git's REF_LOG_ONLY: HEAD's entry when the
    branch it points to moves), for refs without a ref record in ``table`` after ``after``
    (``recorded``: those with one, as the caller's pass over the records found them).

    An entry below the table's first update index is no update: a reflog expiry wrote it
    again (with its old index, git's ``reftable_be_reflog_expire``); the table that first
    wrote it is older than this one, or merged with it into one record."""
    out = []
    low = max(after, floor, table.min_update_index - 1)
    for log in table.seek_logs(prefix):
        if not log.refname.startswith(prefix):
            break
        if log.update_index <= low or log.is_deletion:
            continue
        if log.refname in recorded or (log.old_id == log.new_id == algo.null_id):
            continue
        out.append(
            RefChange(
                decode_name(log.refname),
                log.old_id.hex(),
                log.new_id.hex(),
                log.update_index,
                _text(log.message),
            )
        )
    return out


def _gap(since: int, table: TableReader, why: str) -> ChangeFeedGapError:
    lo, hi = table.min_update_index, table.max_update_index
    name = os.path.basename(table.name or "(unnamed)")
    return ChangeFeedGapError(
        f"cannot resume after update index {since}: table {name} merged updates "
        f"{lo}..{hi} and {why} (resume from {lo - 1} to receive that table's updates "
        f"again, or from {hi})",
        since=since,
        table=name,
        covers=(lo, hi),
    )


def resume_point(snap: Snapshot, since: int) -> tuple[_State, int, int]:
    """The state to replay from for a feed resuming after ``since``: that state, its
    update index and how many of ``snap``'s tables it spans. When a compaction merged
    the tables around ``since``, the state is the one before the merged table (the
    changes up to ``since`` are then replayed without being delivered)."""
    readers = snap.readers
    count = 0
    while count < len(readers) and readers[count].max_update_index <= since:
        count += 1
    first = readers[0].min_update_index if readers else since + 1
    if since < first - 1:
        raise ChangeFeedGapError(
            f"cannot resume after update index {since}: the stack's oldest update is {first}",
            since=since,
            table=snap.table_names[0],
            covers=(first, readers[-1].max_update_index),
        )
    at = since
    if count < len(readers) and readers[count].min_update_index <= since:
        at = readers[count].min_update_index - 1
    return MergedTable(readers[:count], hash=snap.hash), at, count


@dataclass(slots=True)
class _Position:
    """Where a feed stands: the snapshot it read last (holding its tables open), the state
    its next changes start from, and that state's update index."""

    snap: Snapshot
    state: _State
    at: int


@final
class ChangeFeed:
    """``async for change in feed``: the ref changes of one stack, waiting for new ones.

    Use it as an async context manager (or call :meth:`aclose`) to stop watching at once;
    a feed that is only iterated stops watching when it is garbage collected."""

    def __init__(
        self,
        stack: Stack,
        algo: HashAlgorithm,
        *,
        prefix: str = "",
        since: int | None = None,
        poll_interval: float | None = None,
    ):
        if since is not None and since < 0:
            raise ValueError(f"since must be an update index >= 0, got {since}")
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval}")
        self._stack = stack
        self._algo = algo
        self._prefix = encode_name(prefix)
        self._since = since
        self._poll = poll_interval
        self._pos: _Position | None = None
        self._floor = 0  # changes at or below it advance the state but are not delivered
        self._pending: deque[RefChange] = deque()
        self._watch: AsyncGenerator[set[tuple[Change, str]], None] | None = None
        self._waiting = False  # a task is inside the watch (aclose must not close it then)
        self._stop = anyio.Event()  # ends the watch thread's wait
        self._closed = False

    @property
    def update_index(self) -> int | None:
        """The update index the feed has read up to (None before the first read); every
        change up to it has been delivered once the queue is drained. Pass it as
        ``since`` to resume later."""
        return None if self._pos is None else self._pos.at

    async def __aenter__(self) -> ChangeFeed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop watching (idempotent, from any task); iteration then ends."""
        self._closed = True
        self._stop.set()
        if not self._waiting:
            await self._close_watch()

    async def _close_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.aclose()

    def __aiter__(self) -> ChangeFeed:
        return self

    async def start(self) -> int:
        """Fix the feed's starting point now instead of at the first iteration (a no-op
        once started); the update index it delivers changes after."""
        if self._pos is None:
            self._pos = await self._start()
        return self._floor

    async def __anext__(self) -> RefChange:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            if self._pos is None:
                self._pos = await self._start()
            elif not await self._advance(self._pos):
                await self._wait()
        return self._pending.popleft()

    async def _start(self) -> _Position:
        snap = await self._stack.snapshot()
        if self._since is None or self._since >= snap.max_update_index:
            self._floor = snap.max_update_index if self._since is None else self._since
            return _Position(snap, snap, snap.max_update_index)
        state, at, count = resume_point(snap, self._since)
        self._floor = self._since
        pos = _Position(snap, state, at)
        await self._take(pos, snap, snap.readers[count:])
        return pos

    async def _advance(self, pos: _Position) -> bool:
        """Reload; queue the changes of any newer tables. False when nothing changed."""
        snap = await self._stack.snapshot()
        if snap.generation == pos.snap.generation:
            return False
        if snap.max_update_index <= pos.at:  # a compaction only: let go of the old tables
            pos.snap = pos.state = snap
            return False
        await self._take(pos, snap, snap.readers)
        return True

    async def _take(self, pos: _Position, snap: Snapshot, tables: Sequence[TableReader]) -> None:
        fresh = [t for t in tables if t.max_update_index > pos.at]
        args = (pos.state, fresh, pos.at, self._prefix, self._algo, self._floor)
        if sum(t.file_size for t in fresh) > _INLINE_BYTES:
            changes = await anyio.to_thread.run_sync(changes_between, *args)
        else:
            changes = changes_between(*args)
        self._pending.extend(changes)
        pos.snap, pos.state, pos.at = snap, snap, snap.max_update_index

    async def _wait(self) -> None:
        """Until ``tables.list`` may have changed: an inotify event (or the watch's
        timeout), else the poll interval."""
        if self._poll is None:
            if self._watch is None:
                self._watch = awatch(
                    self._stack.path,
                    watch_filter=_is_tables_list,
                    debounce=50,
                    step=1,
                    rust_timeout=_WATCH_TIMEOUT_MS,
                    yield_on_timeout=True,
                    recursive=False,
                    stop_event=self._stop,
                )
            self._waiting = True
            try:
                await self._watch.__anext__()
                return
            except (OSError, RuntimeError):
                # no inotify here (or out of watches): poll from now on
                self._watch = None
                self._poll = _WATCH_TIMEOUT_MS / 1000
            except StopAsyncIteration:  # stopped by aclose (or its directory went away)
                self._watch = None
                return
            finally:
                self._waiting = False
                if self._closed:
                    await self._close_watch()
        await anyio.sleep(self._poll if self._poll is not None else _WATCH_TIMEOUT_MS / 1000)


def _is_tables_list(_change: Change, path: str) -> bool:
    return os.path.basename(path) == "tables.list"
