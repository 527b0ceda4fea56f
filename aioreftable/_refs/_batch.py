"""Batch updates: git's ``update-ref --stdin --batch-updates`` (per-update rejections)."""

from __future__ import annotations

import enum
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import final

from .._errors import (
    IncorrectOldValueError,
    InvalidNewValueError,
    NameConflictError,
    RefExistsError,
    RefMissingError,
    RefnameError,
    TransactionError,
)
from .._format._records import RefValueType
from .._stack import Snapshot
from ._core import RefCore, decode_name, encode_name
from ._transaction import HAVE_NEW, HAVE_OLD, Transaction, Update, _Commit

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
    if isinstance(exc, IncorrectOldValueError):
        if "expected symref with target" in str(exc):
            return RejectReason.EXPECTED_SYMREF
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


@final
class Batch:
    """Updates queued inside ``async with core.batch() as b:``: the methods of
    :class:`Transaction`; ``results`` (one per call, in order) after the block."""

    def __init__(self, core: RefCore, message: str, create_reflog: bool):
        self._tx = Transaction(core, message, create_reflog)
        self._calls: list[tuple[str, Update | None, BatchResult | None]] = []
        self.results: list[BatchResult] = []

    def _queue(self, refname: str, fn: Callable[[], None]) -> None:
        before = len(self._tx._updates)
        try:
            fn()
        except RefnameError as exc:
            index = len(self._calls)
            reason = RejectReason.INVALID_NAME
            result = BatchResult(index, refname, "(null)", "(null)", reason, str(exc))
            self._calls.append((refname, None, result))
            return
        assert len(self._tx._updates) == before + 1
        self._calls.append((refname, self._tx._updates[-1], None))

    def create(self, refname: str, oid: str, *, message: str | None = None) -> None:
        self._queue(refname, lambda: self._tx.create(refname, oid, message=message))

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
            lambda: self._tx.update(refname, new, old=old, no_deref=no_deref, message=message),
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
            refname, lambda: self._tx.delete(refname, old=old, no_deref=no_deref, message=message)
        )

    def verify(self, refname: str, expected: str | None, *, no_deref: bool = False) -> None:
        self._queue(refname, lambda: self._tx.verify(refname, expected, no_deref=no_deref))

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
            lambda: self._tx.symref_update(
                refname, target, old_target=old_target, old=old, no_deref=no_deref,
                message=message,
            ),
        )  # fmt: skip

    def symref_create(self, refname: str, target: str, *, message: str | None = None) -> None:
        self._queue(refname, lambda: self._tx.symref_create(refname, target, message=message))

    def symref_delete(
        self, refname: str, *, old_target: str | None = None, message: str | None = None
    ) -> None:
        self._queue(
            refname,
            lambda: self._tx.symref_delete(refname, old_target=old_target, message=message),
        )

    def symref_verify(self, refname: str, target: str | None) -> None:
        self._queue(refname, lambda: self._tx.symref_verify(refname, target))

    @property
    def rejected(self) -> list[BatchResult]:
        """The rejected updates (after the block)."""
        return [r for r in self.results if not r.ok]

    async def _commit(self) -> None:
        self._tx._closed = True
        updates = [u for _, u, _ in self._calls if u is not None]
        commit = _BatchCommit(self._tx._core, updates)
        await commit.run()
        index_of = {id(u): n for n, u in enumerate(updates)}
        for n, (refname, u, result) in enumerate(self._calls):
            if u is None:
                assert result is not None
                self.results.append(result)
                continue
            new, old = _printed(u, True), _printed(u, False)
            rejection = commit.rejected.get(index_of[id(u)])
            if rejection is None:
                self.results.append(BatchResult(n, refname, new, old))
            else:
                self.results.append(BatchResult(n, refname, new, old, *rejection))


class _BatchCommit(_Commit):
    """prepare with git's REF_TRANSACTION_ALLOW_FAILURE: a rejected update (and what it
    derived) is dropped; name-conflict checks run after all other checks, like git 2.51."""

    def __init__(self, core: RefCore, updates: list[Update]):
        super().__init__(core, updates)
        self.root = {id(u): n for n, u in enumerate(updates)}
        self.rejected: dict[int, tuple[RejectReason, str]] = {}
        self.deferred: list[tuple[str, int]] = []
        self._current = -1
        self._affected: set[str] = set()

    async def _prepare(self) -> None:
        core = self.core
        for u in self.updates:
            await self.lock(core.route(u.refname)[0])
        names = sorted(u.refname for u in self.updates)
        for a, b in itertools.pairwise(names):
            if a == b:  # a generic error in git: the whole batch fails
                raise TransactionError(f"multiple updates for ref '{a}' not allowed", a)
        self._affected = affected = set(names)
        head_key, head_bare = core.route("HEAD")
        head_referent = _symref_target(await self.snapshot(head_key), encode_name(head_bare))
        i = 0
        while i < len(self.updates):
            u = self.updates[i]
            i += 1
            root = self.root[id(u)]
            if root in self.rejected:
                continue
            before = len(self.updates)
            self._current = root
            try:
                await self._prepare_one(u, head_referent, affected)
            except TransactionError as exc:
                reason = classify(exc)
                if reason is None:
                    raise
                self._adopt(before, root)
                self._reject(root, reason, str(exc))
            self._adopt(before, root)
        for refname, root in self.deferred:
            if root in self.rejected:
                continue
            try:
                await super()._check_available(refname, affected)
            except NameConflictError as exc:
                self._reject(root, RejectReason.NAME_CONFLICT, str(exc))

    async def _check_available(self, refname: str, extras: set[str]) -> None:
        self.deferred.append((refname, self._current))

    def _adopt(self, start: int, root: int) -> None:
        """Updates derived while preparing ``root`` belong to it."""
        for derived in self.updates[start:]:
            self.root.setdefault(id(derived), root)

    def _reject(self, root: int, reason: RejectReason, error: str) -> None:
        self.rejected[root] = (reason, error)
        for u in self.updates:
            if self.root.get(id(u)) == root:
                self._affected.discard(u.refname)
        for work in self.work.values():
            work.queued = [q for q in work.queued if self.root.get(id(q[0])) != root]


def _symref_target(snap: Snapshot, name: bytes) -> str | None:
    rec = snap.ref(name)
    if rec is None or rec.value_type != RefValueType.SYMREF:
        return None
    return decode_name(rec.target or b"")


@asynccontextmanager
async def open_batch(
    core: RefCore, message: str, *, create_reflog: bool = False
) -> AsyncIterator[Batch]:
    batch = Batch(core, message, create_reflog)
    try:
        yield batch
    except BaseException:
        batch._tx._closed = True
        raise
    await batch._commit()
