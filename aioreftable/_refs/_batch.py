"""Batch updates: git's ``update-ref --stdin --batch-updates`` (per-update rejections)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import final

from .._errors import (
    ExpectedSymrefError,
    IncorrectOldValueError,
    InvalidNewValueError,
    NameConflictError,
    RefExistsError,
    RefMissingError,
    RefnameError,
    TransactionError,
)
from ._core import RefCore
from ._transaction import HAVE_NEW, HAVE_OLD, Commit, Update, UpdateQueue

__all__ = ["Batch", "BatchResult", "RejectReason", "open_batch"]


class RejectReason(enum.Enum):
    """Why an update was rejected: git's ``ref_transaction_error`` kinds (the value is
    git's ``ref_transaction_error_msg``), plus INVALID_NAME (git dies on those instead)."""

    NAME_CONFLICT = "refname conflict"
    CREATE_EXISTS = "reference already exists"
    NONEXISTENT_REF = "reference does not exist"
    INCORRECT_OLD_VALUE = "incorrect old value provided"
    INVALID_NEW_VALUE = "invalid new value provided"
    EXPECTED_SYMREF = "expected symref but found regular ref"
    INVALID_NAME = "invalid refname"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of the ``index``-th update of a batch; ``reason`` is None if applied
    (or a no-op), else ``error`` is git's message for it."""

    index: int
    refname: str
    new: str | None
    old: str | None
    reason: RejectReason | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def rejected_line(self) -> str:
        """git's ``rejected <refname> <new> <old> <reason>`` line (without LF)."""
        assert self.reason is not None
        return f"rejected {self.refname} {self.new} {self.old} {self.reason.value}"


def classify(exc: TransactionError) -> RejectReason | None:
    """The rejection kind of a prepare error; None for errors that fail the whole batch."""
    if isinstance(exc, RefnameError):
        return RejectReason.INVALID_NAME
    if isinstance(exc, NameConflictError):
        return RejectReason.NAME_CONFLICT
    if isinstance(exc, RefExistsError):
        return RejectReason.CREATE_EXISTS
    if isinstance(exc, RefMissingError):
        return RejectReason.NONEXISTENT_REF
    if isinstance(exc, ExpectedSymrefError):
        return RejectReason.EXPECTED_SYMREF
    if isinstance(exc, IncorrectOldValueError):
        return RejectReason.INCORRECT_OLD_VALUE
    if isinstance(exc, InvalidNewValueError):  # missing object, non-commit on a branch
        return RejectReason.INVALID_NEW_VALUE
    return None


def _printed(u: Update, new: bool) -> str:
    """What git's print_rejected_refs shows: the id if HAVE_NEW/OLD, else the target."""
    if u.flags & (HAVE_NEW if new else HAVE_OLD):
        return (u.new_oid if new else u.old_oid).hex()
    target = u.new_target if new else u.old_target
    return "(null)" if target is None else target


class BatchCalls:
    """The calls of one batch, in order: the update each queued, or its rejection by name
    check; ``commit`` runs the queued ones through :class:`Commit` allowing failures."""

    def __init__(self, core: RefCore, message: str, create_reflog: bool):
        self.core = core
        self.updates = UpdateQueue(core, message, create_reflog)
        self.calls: list[tuple[str, Update | None, BatchResult | None]] = []

    def add(self, refname: str, fn: Callable[[UpdateQueue], None]) -> None:
        queue = self.updates
        before = len(queue.queued)
        try:
            fn(queue)
        except RefnameError as exc:
            index = len(self.calls)
            reason = RejectReason.INVALID_NAME
            result = BatchResult(index, refname, "(null)", "(null)", reason, str(exc))
            self.calls.append((refname, None, result))
            return
        assert len(queue.queued) == before + 1
        self.calls.append((refname, queue.queued[-1], None))

    async def commit(self) -> list[BatchResult]:
        self.updates.closed = True
        updates = [u for _, u, _ in self.calls if u is not None]
        commit = Commit(self.core, updates, allow_failure=lambda e: classify(e) is not None)
        await commit.run()
        index_of = {id(u): n for n, u in enumerate(updates)}
        results: list[BatchResult] = []
        for n, (refname, u, result) in enumerate(self.calls):
            if u is None:
                assert result is not None
                results.append(result)
                continue
            new, old = _printed(u, True), _printed(u, False)
            exc = commit.rejected.get(index_of[id(u)])
            if exc is None:
                results.append(BatchResult(n, refname, new, old))
                continue
            reason = classify(exc)
            assert reason is not None
            results.append(BatchResult(n, refname, new, old, reason, str(exc)))
        return results


@final
class Batch:
    """Updates queued inside ``async with store.batch() as b:``: the methods of
    :class:`Transaction`; ``results`` (one per call, in order) after the block."""

    def __init__(self, calls: BatchCalls):
        self._calls = calls
        self.results: list[BatchResult] = []

    def _queue(self, refname: str, fn: Callable[[UpdateQueue], None]) -> None:
        self._calls.add(refname, fn)

    def create(self, refname: str, oid: str, *, message: str | None = None) -> None:
        self._queue(refname, lambda q: q.create(refname, oid, message=message))

    def update(
        self,
        refname: str,
        new: str,
        *,
        old: str | None = None,
        no_deref: bool = False,
        message: str | None = None,
    ) -> None:
        self._queue(
            refname,
            lambda q: q.update(refname, new, old=old, no_deref=no_deref, message=message),
        )

    def delete(
        self,
        refname: str,
        *,
        old: str | None = None,
        no_deref: bool = False,
        message: str | None = None,
    ) -> None:
        self._queue(
            refname, lambda q: q.delete(refname, old=old, no_deref=no_deref, message=message)
        )

    def verify(self, refname: str, expected: str | None, *, no_deref: bool = False) -> None:
        self._queue(refname, lambda q: q.verify(refname, expected, no_deref=no_deref))

    def symref_update(
        self,
        refname: str,
        target: str,
        *,
        old_target: str | None = None,
        old: str | None = None,
        no_deref: bool = True,
        message: str | None = None,
    ) -> None:
        self._queue(
            refname,
            lambda q: q.symref_update(
                refname, target, old_target=old_target, old=old, no_deref=no_deref,
                message=message,
            ),
        )  # fmt: skip

    def symref_create(self, refname: str, target: str, *, message: str | None = None) -> None:
        self._queue(refname, lambda q: q.symref_create(refname, target, message=message))

    def symref_delete(
        self, refname: str, *, old_target: str | None = None, message: str | None = None
    ) -> None:
        self._queue(
            refname,
            lambda q: q.symref_delete(refname, old_target=old_target, message=message),
        )

    def symref_verify(self, refname: str, target: str | None) -> None:
        self._queue(refname, lambda q: q.symref_verify(refname, target))

    @property
    def rejected(self) -> list[BatchResult]:
        """The rejected updates (after the block)."""
        return [r for r in self.results if not r.ok]


@asynccontextmanager
async def open_batch(
    core: RefCore, message: str, *, create_reflog: bool = False
) -> AsyncIterator[Batch]:
    calls = BatchCalls(core, message, create_reflog)
    batch = Batch(calls)
    try:
        yield batch
    finally:
        calls.updates.closed = True
    batch.results.extend(await calls.commit())
