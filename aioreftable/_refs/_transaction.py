"""Transaction: git's reftable_be_transaction_prepare/finish over one or more stacks."""

from __future__ import annotations

import enum
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar, final

import anyio

from .._errors import (
    ExpectedSymrefError,
    IncorrectOldValueError,
    InvalidNewValueError,
    InvalidObjectIdError,
    MissingObjectError,
    NameConflictError,
    RefExistsError,
    RefMissingError,
    RefnameError,
    TransactionError,
)
from .._format._records import LogRecord, RefRecord, RefValueType
from .._stack import Addition, Snapshot, Stack
from ._core import (
    NameSet,
    RefCore,
    RefView,
    StackKey,
    SymrefDepthError,
    decode_name,
    encode_name,
    value_record,
)
from ._ident import Committer, Identity
from ._peel import ObjectInfo
from ._refname import (
    NameRule,
    check_refname_format,
    is_pseudo_ref,
    reflog_message,
    require_refname,
)

__all__ = [
    "AllowFailure",
    "Commit",
    "RefusedName",
    "Transaction",
    "TwoPhase",
    "Update",
    "UpdateFlag",
    "UpdateQueue",
    "open_transaction",
]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class UpdateFlag(enum.IntFlag):
    """The flags of one queued update (git's ``REF_*`` update flags, same meanings)."""

    HAVE_NEW = 1 << 0  # a new value (id or symref target) is given
    HAVE_OLD = 1 << 1  # an expected old value is given
    NO_DEREF = 1 << 2  # update a symref itself, not its referent
    LOG_ONLY = 1 << 3  # write the reflog entry only (a symref's, or HEAD's via its referent)
    VIA_HEAD = 1 << 4  # derived from an update of HEAD (so HEAD's log is not added again)
    FORCE_CREATE_REFLOG = 1 << 5  # write a reflog even where core.logAllRefUpdates would not
    SKIP_OID_VERIFICATION = 1 << 6  # the new id need not be in the object database


_NONE = UpdateFlag(0)


@dataclass(eq=False, slots=True)
class Update:
    """One queued ref update (git's ``struct ref_update``); oids are raw bytes."""

    refname: str
    flags: UpdateFlag
    new_oid: bytes
    old_oid: bytes
    new_target: str | None
    old_target: str | None
    msg: bytes
    parent: Update | None = None
    is_symref: bool = False

    def original_refname(self) -> str:
        u = self
        while u.parent is not None:
            u = u.parent
        return u.refname

    def null_new(self) -> bool:
        return self.new_target is None and not any(self.new_oid)

    def expects_existing(self) -> bool:
        return bool(self.flags & UpdateFlag.HAVE_OLD) and (
            any(self.old_oid) or self.old_target is not None
        )


@dataclass(frozen=True, slots=True)
class RefusedName:
    """A call whose refname a queue that ``refuses_names`` (a batch) refused: that call is
    rejected and the others go on (git's update-ref --batch-updates)."""

    refname: str
    error: RefnameError


@dataclass(slots=True)
class StackWork:
    """One locked stack of a transaction: its addition and the updates queued for it."""

    stack: Stack
    context: AbstractAsyncContextManager[Addition]
    addition: Addition
    queued: list[tuple[Update, bytes]] = field(default_factory=list)


class _OutsideGroup(Exception):
    """A group's commit touched a stack the group does not hold (the transaction then
    commits on its own)."""

    def __init__(self, key: StackKey):
        super().__init__(f"outside the group's stack: {key}")
        self.key = key


@final
class BorrowedAddition(AbstractAsyncContextManager[Addition]):
    """An addition someone else holds and commits (a group commit's per-transaction
    slice): entering and leaving it does nothing."""

    def __init__(self, addition: Addition):
        self.addition = addition

    async def __aenter__(self) -> Addition:
        return self.addition

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class UpdateQueue:
    """Updates queued for one commit, their names checked as they come (git's
    ref_transaction_update); what a transaction and a batch share.

    A bad name raises RefnameError, unless the queue ``refuses_names`` (a batch): then the
    call is recorded as a :class:`RefusedName` in ``calls`` and the queue goes on."""

    def __init__(
        self,
        core: RefCore,
        message: str,
        create_reflog: bool,
        *,
        skip_object_check: bool = False,
        refuses_names: bool = False,
    ):
        self.core = core
        self._message = message
        self._tx_flags = UpdateFlag.FORCE_CREATE_REFLOG if create_reflog else _NONE
        self._tx_flags |= UpdateFlag.SKIP_OID_VERIFICATION if skip_object_check else _NONE
        self.refuses_names = refuses_names
        self.calls: list[Update | RefusedName] = []  # in call order
        self.closed = False

    @property
    def queued(self) -> list[Update]:
        """The updates queued so far, in call order."""
        return [call for call in self.calls if isinstance(call, Update)]

    # -- queueing --------------------------------------------------------------------------
    def _oid(self, value: str, what: str) -> bytes:
        hexsz = self.core.hash.hex_size
        if not isinstance(value, str) or len(value) != hexsz:
            raise InvalidObjectIdError(
                f"{what}: expected a {hexsz}-digit hex object id, got {value!r}"
            )
        if not _HEX_DIGITS.issuperset(value):  # bytes.fromhex would skip spaces
            raise InvalidObjectIdError(f"{what}: {value!r} is not a hex object id")
        return bytes.fromhex(value)

    def _add(
        self,
        refname: str,
        *,
        new: str | None = None,
        old: str | None = None,
        new_target: str | None = None,
        old_target: str | None = None,
        flags: UpdateFlag = _NONE,
        message: str | None = None,
    ) -> None:
        """git's ref_transaction_update: name checks here, everything else at commit."""
        if self.closed:
            raise TransactionError("the transaction is already closed", refname)
        null = self.core.hash.null_id
        new_oid = self._oid(new, refname) if new is not None else null
        old_oid = self._oid(old, refname) if old is not None else null
        # git's transaction_refname_valid: a name that gets a value must be well-formed, one
        # that is deleted, verified or made a symref safe; a symref's name must be both (git's
        # update-ref --stdin also refuses a malformed symref-update name: git ignores such refs)
        rule: NameRule = "safe"
        if new_target is not None:
            rule = "symref"
        elif new is not None and any(new_oid):
            rule = "format"
        try:
            _check_names(refname, rule, (new_target, old_target))
        except RefnameError as exc:
            if not self.refuses_names:
                raise
            self.calls.append(RefusedName(refname, exc))
            return
        if new is not None or new_target is not None:
            flags |= UpdateFlag.HAVE_NEW
        if old is not None or old_target is not None:
            flags |= UpdateFlag.HAVE_OLD
        msg = self._message if message is None else message
        block_size = self.core.config.block_size
        self.calls.append(
            Update(
                refname,
                flags | self._tx_flags,
                new_oid,
                old_oid,
                new_target,
                old_target,
                reflog_message(msg, block_size),  # git truncates to block_size / 2
            )
        )

    def create(
        self,
        refname: str,
        oid: str,
        *,
        message: str | None = None,
        skip_object_check: bool = False,
    ) -> None:
        """Create ``refname`` at ``oid``; fails with RefExistsError if it exists.
        ``skip_object_check``: do not require ``oid`` in the object database."""
        self._check_new(refname, oid)
        flags = UpdateFlag.SKIP_OID_VERIFICATION if skip_object_check else _NONE
        self._add(refname, new=oid, old=self.core.hash.null_hex, flags=flags, message=message)

    def update(
        self,
        refname: str,
        new: str,
        *,
        old: str | None = None,
        no_deref: bool = False,
        message: str | None = None,
        skip_object_check: bool = False,
    ) -> None:
        """Set ``refname`` to ``new`` (a null id deletes). ``old``: the expected current
        value (the null id: must not exist); None: no check. Through a symref unless
        ``no_deref``. ``skip_object_check``: do not require ``new`` in the object database."""
        flags = _no_deref(no_deref)
        flags |= UpdateFlag.SKIP_OID_VERIFICATION if skip_object_check else _NONE
        self._add(refname, new=new, old=old, flags=flags, message=message)

    def delete(
        self,
        refname: str,
        *,
        old: str | None = None,
        no_deref: bool = False,
        message: str | None = None,
    ) -> None:
        """Delete ``refname`` (and its reflog); deleting a missing ref is a no-op."""
        null = self.core.hash.null_hex
        if old is not None and old == null:
            raise ValueError(f"delete {refname}: old must not be the null id")
        self._add(refname, new=null, old=old, flags=_no_deref(no_deref), message=message)

    def verify(self, refname: str, expected: str | None, *, no_deref: bool = False) -> None:
        """Check that ``refname`` is at ``expected`` (None: does not exist) at commit."""
        self._add(
            refname,
            old=self.core.hash.null_hex if expected is None else expected,
            flags=_no_deref(no_deref),
            message="",
        )

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
        """Make ``refname`` a symref to ``target`` (like ``git symbolic-ref``: the symref
        itself is written unless ``no_deref=False``). ``old_target``/``old``: expected
        current target or value."""
        if old_target is not None and old is not None:
            raise ValueError("give old_target or old, not both")
        self._add(
            refname,
            new_target=target,
            old=old,
            old_target=old_target,
            flags=_no_deref(no_deref),
            message=message,
        )

    def symref_create(self, refname: str, target: str, *, message: str | None = None) -> None:
        """Create the symref ``refname`` -> ``target``; fails if ``refname`` exists."""
        null = self.core.hash.null_hex
        self._add(refname, new_target=target, old=null, flags=UpdateFlag.NO_DEREF, message=message)

    def symref_delete(
        self, refname: str, *, old_target: str | None = None, message: str | None = None
    ) -> None:
        """Delete the symref itself (never its referent)."""
        self._add(
            refname,
            new=self.core.hash.null_hex,
            old_target=old_target,
            flags=UpdateFlag.NO_DEREF,
            message=message,
        )

    def symref_verify(self, refname: str, target: str | None) -> None:
        """Check that ``refname`` is a symref to ``target`` (None: does not exist)."""
        if target is None:
            self._add(refname, old=self.core.hash.null_hex, flags=UpdateFlag.NO_DEREF, message="")
        else:
            self._add(refname, old_target=target, flags=UpdateFlag.NO_DEREF, message="")

    def _check_new(self, refname: str, oid: str) -> None:
        if oid == self.core.hash.null_hex:
            raise TransactionError(f"'{refname}' has neither a valid OID nor a target", refname)

    @property
    def refnames(self) -> list[str]:
        """The names queued so far, in order."""
        return [u.refname for u in self.queued]


def _no_deref(no_deref: bool) -> UpdateFlag:
    return UpdateFlag.NO_DEREF if no_deref else _NONE


def _check_names(refname: str, rule: NameRule, targets: tuple[str | None, str | None]) -> None:
    """The names of one update (RefnameError): its own by ``rule``, no pseudoref, and the
    symref targets (new and old) well-formed."""
    require_refname(refname, rule, message="refusing to update ref with bad name '{name}'")
    if is_pseudo_ref(refname):
        raise RefnameError(f"refusing to update pseudoref '{refname}'", refname)
    for target in targets:
        if target is not None and not check_refname_format(target, allow_onelevel=True):
            raise RefnameError(f"invalid ref format: {target}", refname, target)


@final
class Transaction(UpdateQueue):
    """Updates queued inside ``async with store.transaction() as tx:``; checked and written
    when the block exits cleanly, or checked (locks taken) by :meth:`prepare` and written
    when the block exits (see docs/refstore.md for the exact rules).

    ``update_index``: after a successful commit, the update index the transaction's
    records were written at (None before, and when it wrote nothing)."""

    def __init__(
        self,
        core: RefCore,
        message: str,
        create_reflog: bool,
        *,
        skip_object_check: bool = False,
        phases: TwoPhase | None = None,
    ):
        super().__init__(core, message, create_reflog, skip_object_check=skip_object_check)
        self._phases = TwoPhase(core, None) if phases is None else phases
        self.update_index: int | None = None

    async def prepare(self) -> None:
        """git's ref_transaction_prepare: lock every stack the updates touch and run every
        check now; raises what the commit would raise (the locks are then released). After
        it the block's clean exit only writes (git's ref_transaction_commit), and an
        exception or a cancellation in the block releases the locks (git's
        ref_transaction_abort). No update can be queued after it; a prepared transaction
        does not go through group commit (it holds its stacks' locks itself)."""
        self.closed = True
        await self._phases.prepare(self.queued)


R = TypeVar("R")

#: The declared extension point of :class:`Commit` (git's REF_TRANSACTION_ALLOW_FAILURE):
#: for an error that rejects one update (and what it derived) instead of failing the whole
#: commit, what the rejection is recorded as (a batch: git's reason); None for an error
#: that fails the commit.
AllowFailure = Callable[[TransactionError], R | None]


class Commit(Generic[R]):
    """One prepare + finish run (git's reftable_be_transaction_prepare and _finish).

    With ``allow_failure`` (a batch) an update whose checks fail with an error it accepts
    is rejected (``rejected``, by index in ``updates``: the error and what
    ``allow_failure`` made of it) and the others commit; the D/F checks then run after all
    other checks, as in git 2.51."""

    def __init__(
        self,
        core: RefCore,
        updates: list[Update],
        allow_failure: AllowFailure[R] | None = None,
        *,
        borrowed: Mapping[StackKey, StackWork] | None = None,
    ):
        self.core = core
        self.updates = list(updates)
        self.allow_failure = allow_failure
        self.borrowed = borrowed
        self.rejected: dict[int, tuple[TransactionError, R]] = {}
        self.root = {id(u): n for n, u in enumerate(updates)}  # derived -> its caller's
        self.members = [[u] for u in updates]  # by root: the update and what it derived
        self.deferred: list[tuple[str, int]] = []  # D/F checks of a batch
        self.affected = NameSet()  # the names it writes, sorted for the D/F check
        self.absent: set[str] = set()  # directories the D/F checks found to be no ref
        self.work: dict[StackKey, StackWork] = {}  # in order of first touch
        self.scope = AsyncExitStack()  # other worktrees' stacks
        self.objects: dict[str, ObjectInfo | None] = {}
        self.view = RefView(core, self.snapshot)  # reads under our locks where we hold them
        self.update_index: int | None = None  # of the first table written, once committed
        self._state = _Phase.NEW

    async def run(self) -> None:
        if not self.updates:
            return
        await self.execute(await self.gather())

    async def gather(self) -> Committer:
        """What needs no lock, off the event loop: the committer and the objects of the
        new values (``objects``)."""
        committer = await self.core.committer.get()
        await self._lookup_objects()
        return committer

    async def execute(self, committer: Committer) -> None:
        """Lock, check and write (after :meth:`gather`)."""
        await self.prepare()
        await self.commit(committer)

    async def prepare(self) -> None:
        """git's prepare: lock the stacks and run every check. On a failure (cancellation
        included) the locks taken are released and the error raised."""
        if self._state is not _Phase.NEW:
            raise TransactionError("the transaction is already prepared")
        self._state = _Phase.DONE
        await self.scope.__aenter__()
        try:
            await self._prepare()
        except BaseException as exc:
            await self._release(exc)
            raise
        self._state = _Phase.PREPARED

    async def commit(self, committer: Committer) -> None:
        """git's commit (after :meth:`prepare`): a table per locked stack, locks released."""
        if self._state is not _Phase.PREPARED:
            raise TransactionError("the transaction is not prepared")
        self._state = _Phase.DONE
        try:
            await self._finish(committer)  # it releases the locks it did not commit
        except BaseException as exc:
            await self.scope.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await self.scope.__aexit__(None, None, None)

    async def abort(self, exc: BaseException) -> None:
        """git's abort (after :meth:`prepare`): release every lock, write nothing."""
        if self._state is not _Phase.PREPARED:
            return
        self._state = _Phase.DONE
        await self._release(exc)

    async def _release(self, exc: BaseException) -> None:
        with anyio.CancelScope(shield=True):  # bounded: unlinks and closes
            try:
                await self._abort(list(self.work.values()), exc)
            except BaseException as inner:
                await self.scope.__aexit__(type(inner), inner, inner.__traceback__)
                raise
            await self.scope.__aexit__(type(exc), exc, exc.__traceback__)

    async def _lookup_objects(self) -> None:
        peeler = self.core.peeler
        if peeler is None:
            return
        oids = [
            u.new_oid.hex()
            for u in self.updates
            if u.flags & UpdateFlag.HAVE_NEW and u.new_target is None and any(u.new_oid)
        ]
        self.objects = await peeler.lookup(oids)

    # -- locking ---------------------------------------------------------------------------
    async def lock(self, key: StackKey) -> StackWork:
        """Lock ``key``'s stack (first touch) with a reload under the lock."""
        work = self.work.get(key)
        if work is not None:
            return work
        if self.borrowed is not None:  # a group's commit: only the stacks it holds
            if key not in self.borrowed:
                raise _OutsideGroup(key)
            work = self.work[key] = self.borrowed[key]
            return work
        stack = await self.core.stack_for(key, self.scope)  # WorktreeNotFoundError
        context = stack.addition()
        addition = await context.__aenter__()
        work = self.work[key] = StackWork(stack, context, addition)
        return work

    async def snapshot(self, key: StackKey) -> Snapshot:
        """The stack's state: under our lock if we hold it, else freshly reloaded."""
        work = self.work.get(key)
        if work is not None:
            return work.addition.snapshot
        return await (await self.core.stack_for(key, self.scope)).snapshot()

    async def resolve_oid(self, name: str, *, reading: bool) -> tuple[str | None, bytes]:
        """git's refs_resolve_ref_unsafe: (final name or None, oid). Without ``reading`` a
        missing ref resolves to its name with the null id."""
        null = self.core.hash.null_id
        try:
            last, ref = await self.view.resolve(name)
        except SymrefDepthError:
            return None, null
        if last is None or ref is None or ref.oid is None:  # a resolved ref has an id
            return (None if reading else last), null
        return last, bytes.fromhex(ref.oid)

    # -- prepare ---------------------------------------------------------------------------
    async def _prepare(self) -> None:
        core = self.core
        for u in self.updates:
            await self.lock(core.route(u.refname)[0])
        names = sorted(u.refname for u in self.updates)
        for a, b in itertools.pairwise(names):
            if a == b:  # a generic error in git: a batch fails as a whole too
                raise TransactionError(f"multiple updates for ref '{a}' not allowed", a)
        self.affected = NameSet(names)
        head_key, head_bare = core.route("HEAD")
        head = (await self.snapshot(head_key)).ref(encode_name(head_bare))
        head_referent = (
            decode_name(head.symref_target)
            if head is not None and head.value_type == RefValueType.SYMREF
            else None
        )
        i = 0
        while i < len(self.updates):
            u = self.updates[i]
            i += 1
            root = self.root[id(u)]
            if root in self.rejected:
                continue
            before = len(self.updates)
            try:
                await self._prepare_one(u, head_referent, root)
            except TransactionError as exc:
                self._adopt(before, root)
                self._reject_or_fail(root, exc)
            self._adopt(before, root)
        for refname, root in self.deferred:
            if root in self.rejected:
                continue
            try:
                await self.view.check_available(refname, self.affected, absent=self.absent)
            except NameConflictError as exc:
                self._reject_or_fail(root, exc)

    def _adopt(self, start: int, root: int) -> None:
        """Updates derived while preparing ``root`` belong to it."""
        for derived in self.updates[start:]:
            if id(derived) not in self.root:
                self.root[id(derived)] = root
                self.members[root].append(derived)

    def _reject_or_fail(self, root: int, exc: TransactionError) -> None:
        """Drop the update ``root`` and what it derived if ``allow_failure`` accepts
        ``exc`` (a batch goes on without them); else raise ``exc``: the commit fails."""
        reason = None if self.allow_failure is None else self.allow_failure(exc)
        if reason is None:
            raise exc
        self.rejected[root] = (exc, reason)  # its queued updates are skipped when written
        for u in self.members[root]:
            self.affected.discard(u.refname)

    def _check_object(self, u: Update) -> None:
        if not self.core.verify_objects or u.flags & (
            UpdateFlag.LOG_ONLY | UpdateFlag.SKIP_OID_VERIFICATION
        ):
            return
        if not u.flags & UpdateFlag.HAVE_NEW or u.new_target is not None or not any(u.new_oid):
            return
        hexid = u.new_oid.hex()
        info = self.objects.get(hexid)
        if info is None:
            raise MissingObjectError(
                f"trying to write ref '{u.refname}' with nonexistent object {hexid}", u.refname
            )
        is_branch = u.refname == "HEAD" or u.refname.startswith("refs/heads/")  # git's is_branch
        if info.type != "commit" and is_branch:
            raise InvalidNewValueError(
                f"trying to write non-commit object {hexid} to branch '{u.refname}'", u.refname
            )

    def _add_derived(self, refname: str, flags: UpdateFlag, u: Update, *, targets: bool) -> Update:
        null = self.core.hash.null_id
        new_target = u.new_target if targets else None
        old_target = u.old_target if targets else None
        new_oid = u.new_oid if flags & UpdateFlag.HAVE_NEW and new_target is None else null
        old_oid = u.old_oid if flags & UpdateFlag.HAVE_OLD and old_target is None else null
        derived = Update(refname, flags, new_oid, old_oid, new_target, old_target, u.msg)
        self.updates.append(derived)
        return derived

    async def _prepare_one(self, u: Update, head_referent: str | None, root: int) -> None:
        core = self.core
        affected = self.affected
        null = core.hash.null_id
        key, rewritten = core.route(u.refname)
        self._check_object(u)
        if (
            head_referent is not None
            and not u.flags & (UpdateFlag.LOG_ONLY | UpdateFlag.VIA_HEAD)
            and rewritten == head_referent
        ):
            if "HEAD" in affected:
                raise NameConflictError(
                    f"multiple updates for 'HEAD' (including one via its referent "
                    f"'{u.refname}') are not allowed",
                    "HEAD",
                    u.refname,
                )
            self._add_derived(
                "HEAD", u.flags | UpdateFlag.LOG_ONLY | UpdateFlag.NO_DEREF, u, targets=False
            )
            affected.add("HEAD")
        work = await self.lock(key)
        rec = work.addition.snapshot.ref(encode_name(rewritten))
        current = null
        if rec is None and not u.expects_existing():
            if self.allow_failure is None:
                await self.view.check_available(u.refname, affected, absent=self.absent)
            else:
                self.deferred.append((u.refname, root))
            if u.flags & UpdateFlag.HAVE_NEW and not u.null_new():
                work.queued.append((u, null))
            return
        if rec is None:
            name = u.original_refname()
            raise RefMissingError(
                f"cannot lock ref '{name}': unable to resolve reference '{u.refname}'",
                u.refname,
            )
        referent = ""
        if rec.value_type == RefValueType.SYMREF:
            u.is_symref = True
            referent = decode_name(rec.symref_target)
            resolved, current = await self.resolve_oid(u.refname, reading=False)
            if u.flags & UpdateFlag.NO_DEREF:
                if u.flags & UpdateFlag.HAVE_OLD and resolved is None:
                    raise TransactionError(
                        f"cannot lock ref '{u.refname}': error reading reference", u.refname
                    )
            else:
                flags = u.flags | (UpdateFlag.VIA_HEAD if rewritten == "HEAD" else _NONE)
                derived = self._add_derived(referent, flags, u, targets=True)
                derived.parent = u
                u.flags = (
                    u.flags | UpdateFlag.LOG_ONLY | UpdateFlag.NO_DEREF
                ) & ~UpdateFlag.HAVE_OLD
                if referent in affected:
                    raise NameConflictError(
                        f"multiple updates for '{referent}' (including one via symref "
                        f"'{u.refname}') are not allowed",
                        referent,
                        u.refname,
                    )
                affected.add(referent)
        else:
            current = rec.oid
        self._check_old(u, current, referent)
        if (
            u.is_symref
            or u.flags & UpdateFlag.LOG_ONLY
            or (u.flags & UpdateFlag.HAVE_NEW and current != u.new_oid)
        ):
            work.queued.append((u, current))

    def _check_old(self, u: Update, current: bytes, referent: str) -> None:
        name = u.original_refname()
        if u.old_target is not None:
            if not u.is_symref:
                raise ExpectedSymrefError(
                    f"cannot lock ref '{name}': expected symref with target "
                    f"'{u.old_target}': but is a regular ref",
                    name,
                )
            if referent != u.old_target:
                raise IncorrectOldValueError(
                    f"verifying symref target: '{name}': is at {referent} but expected "
                    f"{u.old_target}",
                    name,
                )
            return
        if not u.flags & UpdateFlag.HAVE_OLD or current == u.old_oid:
            return
        if not any(u.old_oid):
            raise RefExistsError(f"cannot lock ref '{name}': reference already exists", name)
        if not any(current):
            raise RefMissingError(
                f"cannot lock ref '{name}': reference is missing but expected {u.old_oid.hex()}",
                name,
            )
        raise IncorrectOldValueError(
            f"cannot lock ref '{name}': is at {current.hex()} but expected {u.old_oid.hex()}",
            name,
        )

    # -- finish ----------------------------------------------------------------------------
    async def _finish(self, committer: Committer) -> None:
        works = list(self.work.values())
        for n, work in enumerate(works):
            try:
                await self._write_table(work, committer.at())
            except BaseException as exc:
                await self._abort(works[n:], exc)
                raise
            written = work.addition.writer.record_count > 0
            await work.context.__aexit__(None, None, None)
            if written and self.update_index is None:
                self.update_index = work.addition.update_index

    async def _abort(self, works: list[StackWork], exc: BaseException) -> None:
        for work in reversed(works):
            try:
                await work.context.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseException as inner:
                if inner is not exc:
                    raise

    async def _should_write_log(self, refname: str) -> bool:
        if self.core.config.should_autocreate_reflog(refname):
            return True
        key, bare = self.core.route(refname)
        snap = await self.snapshot(key)
        return next(iter(snap.iter_logs(encode_name(bare))), None) is not None

    async def _write_table(self, work: StackWork, ident: Identity) -> None:
        """git's write_transaction_table for one locked stack."""
        add = work.addition
        ts = add.update_index
        refs: list[RefRecord] = []
        logs: list[LogRecord] = []
        queued = [q for q in work.queued if self.root.get(id(q[0])) not in self.rejected]
        for u, current in sorted(queued, key=lambda q: encode_name(q[0].refname)):
            name = encode_name(u.refname)
            if u.flags & UpdateFlag.HAVE_NEW and not u.is_symref and u.null_new():
                for log in add.snapshot.iter_logs(name):
                    logs.append(LogRecord.deletion(name, log.update_index))
            elif u.flags & UpdateFlag.HAVE_NEW and (
                u.flags & UpdateFlag.FORCE_CREATE_REFLOG or await self._should_write_log(u.refname)
            ):
                new = u.new_oid
                create = True
                if u.new_target is not None:
                    resolved, new = await self.resolve_oid(u.new_target, reading=True)
                    create = resolved is not None
                if create:
                    logs.append(
                        LogRecord(
                            name, ts, old_id=current, new_id=new, name=ident.name,
                            email=ident.email, time=ident.time, tz_offset=ident.tz,
                            message=u.msg,
                        )
                    )  # fmt: skip
            if u.flags & UpdateFlag.LOG_ONLY:
                continue
            if u.new_target is not None:
                refs.append(RefRecord.symref(name, ts, encode_name(u.new_target)))
            elif u.flags & UpdateFlag.HAVE_NEW and u.null_new():
                refs.append(RefRecord.deletion(name, ts))
            elif u.flags & UpdateFlag.HAVE_NEW:
                info = self.objects.get(u.new_oid.hex())
                refs.append(value_record(name, ts, u.new_oid, info))
        for ref in refs:
            add.writer.add_ref(ref)
        add.writer.add_logs(logs)


class _Phase(enum.Enum):
    NEW = "new"
    PREPARED = "prepared"  # locks held, checks passed
    DONE = "done"  # committed, aborted or failed


Submit = Callable[[list[Update]], Awaitable[int | None]]


@final
class TwoPhase:
    """How one :class:`Transaction` commits: prepared by ``tx.prepare()`` (its own
    :class:`Commit`, locks held), then committed or aborted when the block ends; else
    committed in one step through ``submit`` (group commit) or a :class:`Commit`."""

    def __init__(self, core: RefCore, submit: Submit | None):
        self.core = core
        self.submit = submit
        self.prepared: tuple[Commit[None], Committer] | None = None
        self.state = _Phase.NEW

    async def prepare(self, updates: list[Update]) -> None:
        if self.state is not _Phase.NEW:
            raise TransactionError("the transaction is already prepared")
        self.state = _Phase.DONE  # a failed prepare leaves nothing to commit
        commit: Commit[None] = Commit(self.core, updates)
        committer = await commit.gather()
        await commit.prepare()
        self.prepared = commit, committer
        self.state = _Phase.PREPARED

    async def abort(self, exc: BaseException) -> None:
        """The block raised: release what :meth:`prepare` holds."""
        self.state = _Phase.DONE
        if self.prepared is not None:
            await self.prepared[0].abort(exc)

    async def commit(self, updates: list[Update]) -> int | None:
        """The block ended cleanly: commit; the update index written at (None if none)."""
        state, self.state = self.state, _Phase.DONE
        if self.prepared is not None:
            commit, committer = self.prepared
            await commit.commit(committer)
            return commit.update_index
        if state is _Phase.DONE:  # prepare raised and the block went on
            return None
        if self.submit is not None:
            return await self.submit(updates)
        alone: Commit[None] = Commit(self.core, updates)
        await alone.run()
        return alone.update_index


@asynccontextmanager
async def open_transaction(
    core: RefCore,
    message: str,
    *,
    create_reflog: bool = False,
    skip_object_check: bool = False,
    submit: Submit | None = None,
) -> AsyncIterator[Transaction]:
    """A transaction whose updates commit on a clean exit: through ``submit`` (group
    commit) if given, else on their own; a prepared one commits what it holds."""
    phases = TwoPhase(core, submit)
    tx = Transaction(
        core, message, create_reflog, skip_object_check=skip_object_check, phases=phases
    )
    try:
        yield tx
    except BaseException as exc:
        tx.closed = True
        await phases.abort(exc)
        raise
    tx.closed = True
    tx.update_index = await phases.commit(tx.queued)
