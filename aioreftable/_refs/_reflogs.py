"""Reflog maintenance: create, delete, delete one entry, expire (git's reftable reflog ops)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .._format._records import LogRecord, RefRecord, RefValueType
from .._format._writer import normalize_log_message
from ._core import RefCore, ReflogEntry, value_record
from ._refname import require_refname

__all__ = [
    "ExpireOptions",
    "ExpirePolicy",
    "PruneFunction",
    "create_reflog",
    "delete_reflog",
    "delete_reflog_entry",
    "expire_reflog",
]

#: git's should_prune hook: called per entry, oldest first; true prunes it (may be async).
PruneFunction = Callable[[ReflogEntry], "bool | Awaitable[bool]"]
#: Decides which of a reflog's live entries (oldest first) to prune.
_Decide = Callable[[Sequence[ReflogEntry]], Awaitable[list[bool]]]


@dataclass(frozen=True, slots=True)
class ExpirePolicy:
    """Which entries ``expire_reflog`` prunes: those older than ``expire`` (epoch seconds,
    git's ``--expire``; 0 prunes none by time) and those ``should_prune`` accepts."""

    expire: int = 0
    should_prune: PruneFunction | None = None

    async def prunes(self, entry: ReflogEntry) -> bool:
        """git's should_expire_reflog_ent without the object-graph rules."""
        if entry.time < self.expire:
            return True
        if self.should_prune is None:
            return False
        verdict = self.should_prune(entry)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)


@dataclass(frozen=True, slots=True)
class ExpireOptions:
    """How an expiry writes (git's ``reflog expire``/``delete`` options): ``rewrite`` sets
    each kept entry's old id to the new id of the kept entry before it, ``update_ref`` sets
    the ref to the newest kept entry's new id, ``dry_run`` writes nothing."""

    rewrite: bool = False
    update_ref: bool = False
    dry_run: bool = False


_PLAIN = ExpireOptions()  # the default: no rewrite, no update, write


def _marker(name: bytes, update_index: int, null: bytes) -> LogRecord:
    """git's reflog existence marker: null to null, empty identity and message, time 0."""
    return LogRecord(name, update_index, old_id=null, new_id=null)


async def create_reflog(core: RefCore, name: str) -> bool:
    """git's create_reflog: an existence marker unless ``name`` has a reflog; True if
    one was written."""
    require_refname(name, "format")
    null = core.hash.null_id
    async with core.locked(name, exact_log_message=True) as held:
        add, raw = held.addition, held.raw
        if next(iter(add.snapshot.iter_logs(raw)), None) is not None:
            return False
        add.writer.add_log(_marker(raw, add.update_index, null))
    return True


async def delete_reflog(core: RefCore, name: str) -> int:
    """git's delete_reflog: a tombstone for every live log record (markers included) in
    one table; returns how many."""
    async with core.locked(name) as held:
        add, raw = held.addition, held.raw
        tombstones = [
            LogRecord.deletion(raw, log.update_index) for log in add.snapshot.iter_logs(raw)
        ]
        add.writer.add_logs(tombstones)
    return len(tombstones)


async def expire_reflog(
    core: RefCore, name: str, policy: ExpirePolicy, options: ExpireOptions = _PLAIN
) -> list[ReflogEntry]:
    """git's reflog_expire with ``policy``; returns the pruned entries, newest first."""

    async def decide(entries: Sequence[ReflogEntry]) -> list[bool]:
        return [await policy.prunes(entry) for entry in entries]

    return await _expire(core, name, decide, options)


async def delete_reflog_entry(
    core: RefCore, name: str, n: int, options: ExpireOptions = _PLAIN
) -> list[ReflogEntry]:
    """``git reflog delete [--rewrite] [--updateref] [--dry-run] name@{n}`` (n = 0 is the
    newest entry); returns the pruned entry ([] if n is out of range)."""
    if n < 0:
        raise ValueError(f"reflog entry {n} out of range")

    async def decide(entries: Sequence[ReflogEntry]) -> list[bool]:
        target = len(entries) - 1 - n  # entries are oldest first
        return [i == target for i in range(len(entries))]

    return await _expire(core, name, decide, options)


async def _expire(
    core: RefCore, name: str, decide: _Decide, options: ExpireOptions
) -> list[ReflogEntry]:
    """reftable_be_reflog_expire: lock, read, decide oldest to newest, write one table."""
    null = core.hash.null_id
    async with core.locked(name, exact_log_message=True) as held:
        add, raw = held.addition, held.raw
        snap = add.snapshot
        logs = list(snap.iter_logs(raw))
        if not logs:
            return []  # no reflog (git's commands refuse; the backend would add a marker)
        ref = snap.ref(raw)
        current = null
        if ref is not None and ref.value_type in (RefValueType.VAL1, RefValueType.VAL2):
            current = ref.oid
        live = [log for log in reversed(logs) if log.old_id != null or log.new_id != null]
        entries = [ReflogEntry.from_record(log) for log in live]
        verdicts = await decide(entries)
        records: list[LogRecord] = []
        pruned: list[ReflogEntry] = []
        last: bytes | None = None
        for log, entry, prune in zip(live, entries, verdicts, strict=True):
            if prune:
                records.append(LogRecord.deletion(raw, log.update_index))
                pruned.append(entry)
                continue
            kept = log._replace(message=normalize_log_message(log.message))
            if options.rewrite and last is not None:
                kept = kept._replace(old_id=last)
            records.append(kept)
            last = log.new_id
        if not options.dry_run:
            ts = add.update_index
            if options.update_ref and last is not None and any(current) and any(last):
                add.writer.add_ref(await _ref_record(core, raw, ts, last))
            if len(pruned) == len(live):
                records.append(_marker(raw, ts, null))
            add.writer.add_logs(records)
    pruned.reverse()
    return pruned


async def _ref_record(core: RefCore, raw: bytes, ts: int, oid: bytes) -> RefRecord:
    """The ref at ``oid``, peeled if it is an annotated tag (``value_record``)."""
    info = None
    if core.peeler is not None:
        info = (await core.peeler.lookup([oid.hex()])).get(oid.hex())
    return value_record(raw, ts, oid, info)
