"""Batch updates: git's ``update-ref --stdin --batch-updates`` (per-update rejections)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
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
from ._ident import Committer
from ._transaction import Commit, RefusedName, Update, UpdateFlag, UpdateQueue

__all__ = ["Batch", "BatchResult", "BatchRun", "RejectReason", "open_batch"]


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
        """git's ``rejected <refname> <new> <old> <reason>`` line (without LF); ValueError
        for an update that was not rejected."""
        if self.reason is None:
            raise ValueError(f"update {self.index} ({self.refname}) was not rejected")
        return f"rejected {self.refname} {self.new} {self.old} {self.reason.value}"


#: git's rejection reason of each error type a batch rejects one update for; the first type
#: an error is an instance of wins (a subclass stands before its base).
REASONS: tuple[tuple[type[TransactionError], RejectReason], ...] = (
    (RefnameError, RejectReason.INVALID_NAME),
    (NameConflictError, RejectReason.NAME_CONFLICT),
    (RefExistsError, RejectReason.CREATE_EXISTS),
    (RefMissingError, RejectReason.NONEXISTENT_REF),
    (ExpectedSymrefError, RejectReason.EXPECTED_SYMREF),
    (IncorrectOldValueError, RejectReason.INCORRECT_OLD_VALUE),
    (InvalidNewValueError, RejectReason.INVALID_NEW_VALUE),  # missing object, non-commit
)


def classify(exc: TransactionError) -> RejectReason | None:
    """The rejection kind of a prepare error; None for errors that fail the whole batch."""
    return next((reason for kind, reason in REASONS if isinstance(exc, kind)), None)


def _printed(u: Update, new: bool) -> str:
    """What git's print_rejected_refs shows: the id if HAVE_NEW/OLD, else the target."""
    if u.flags & (UpdateFlag.HAVE_NEW if new else UpdateFlag.HAVE_OLD):
        return (u.new_oid if new else u.old_oid).hex()
    target = u.new_target if new else u.old_target
    return "(null)" if target is None else target


@final
class Batch(UpdateQueue):
    """Updates queued inside ``async with store.batch() as b:``: the methods of
    :class:`Transaction` (a queue that refuses bad names per call instead of failing);
    ``results`` (one per call, in order) after the block."""

    def __init__(
        self, core: RefCore, message: str, create_reflog: bool, run: BatchRun | None = None
    ):
        super().__init__(core, message, create_reflog, refuses_names=True)
        self.results: list[BatchResult] = []
        self._run = BatchRun(core) if run is None else run

    async def prepare(self) -> None:
        """As :meth:`Transaction.prepare`: lock and check now (an update's own failure
        rejects it, as at the end of the block), write when the block exits cleanly,
        release the locks on an exception or a cancellation. ``results`` still come
        after the block."""
        self.closed = True
        await self._run.prepare(self.queued)

    @property
    def rejected(self) -> list[BatchResult]:
        """The rejected updates (after the block)."""
        return [r for r in self.results if not r.ok]


@final
class BatchRun:
    """How one :class:`Batch` commits: prepared by ``batch.prepare()`` and committed or
    aborted when the block ends, else committed in one step when it ends."""

    def __init__(self, core: RefCore):
        self.core = core
        self.prepared: tuple[Commit[RejectReason], Committer] | None = None
        self.failed = False  # prepare raised: nothing to commit

    async def prepare(self, updates: list[Update]) -> None:
        if self.prepared is not None or self.failed:
            raise TransactionError("the transaction is already prepared")
        self.failed = True
        commit = Commit(self.core, updates, allow_failure=classify)
        committer = await commit.gather()
        await commit.prepare()
        self.prepared, self.failed = (commit, committer), False

    async def abort(self, exc: BaseException) -> None:
        if self.prepared is not None:
            await self.prepared[0].abort(exc)

    async def commit(self, updates: list[Update]) -> Commit[RejectReason] | None:
        """The commit that ran (None after a failed prepare: nothing ran)."""
        if self.prepared is not None:
            commit, committer = self.prepared
            await commit.commit(committer)
            return commit
        if self.failed:
            return None
        commit = Commit(self.core, updates, allow_failure=classify)
        await commit.run()
        return commit


def batch_results(batch: Batch, commit: Commit[RejectReason]) -> list[BatchResult]:
    """One result per call of ``batch``, in order, after ``commit`` ran its updates
    (allowing the failures ``classify`` knows)."""
    index_of = {id(u): n for n, u in enumerate(commit.updates)}
    results: list[BatchResult] = []
    for n, call in enumerate(batch.calls):
        if isinstance(call, RefusedName):
            reason = RejectReason.INVALID_NAME
            error = str(call.error)
            results.append(BatchResult(n, call.refname, "(null)", "(null)", reason, error))
            continue
        new, old = _printed(call, True), _printed(call, False)
        rejection = commit.rejected.get(index_of[id(call)])
        if rejection is None:
            results.append(BatchResult(n, call.refname, new, old))
            continue
        exc, reason = rejection
        results.append(BatchResult(n, call.refname, new, old, reason, str(exc)))
    return results


@asynccontextmanager
async def open_batch(
    core: RefCore, message: str, *, create_reflog: bool = False
) -> AsyncIterator[Batch]:
    run = BatchRun(core)
    batch = Batch(core, message, create_reflog, run)
    try:
        yield batch
    except BaseException as exc:
        batch.closed = True
        await run.abort(exc)
        raise
    batch.closed = True
    commit = await run.commit(batch.queued)
    if commit is not None:
        batch.results.extend(batch_results(batch, commit))
