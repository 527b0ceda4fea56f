"""ReftableRefsContainer: dulwich's RefsContainer on a RefStore, one transaction per update."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dulwich.errors import RefFormatError
from dulwich.objects import ObjectID
from dulwich.refs import SYMREF, Ref, RefsContainer, SymrefLoop

from .. import (
    Batch,
    IncorrectOldValueError,
    InvalidObjectIdError,
    RefExistsError,
    ReflogEntry,
    RefMissingError,
    RefnameError,
    RefStore,
    Transaction,
    TransactionError,
)
from .. import Ref as StoredRef
from ._loop import StoreLoop

__all__ = ["CAS_FAILURES", "RefUpdate", "ReftableRefsContainer"]

#: The errors of a failed compare-and-swap (the expected old value did not hold under the
#: lock): ``set_if_equals``, ``add_if_new`` and ``remove_if_equals`` return False for them.
CAS_FAILURES = (IncorrectOldValueError, RefExistsError, RefMissingError)

_SYMREF_MAXDEPTH = 5  # git's (and dulwich's follow)


def _name(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _message(message: bytes | None) -> str:
    return "" if message is None else message.decode("utf-8", "surrogateescape")


def _raw(ref: StoredRef) -> bytes:
    """A ref's value as dulwich's read_loose_ref returns it."""
    if ref.target is not None:
        return SYMREF + _bytes(ref.target)
    assert ref.oid is not None
    return ref.oid.encode("ascii")


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One update of :meth:`ReftableRefsContainer.update_refs`: set ``name`` to ``new``
    (None or the null id: delete) if it is at ``old`` (the null id: must not exist;
    None: no check). Symrefs are not followed (the receive-pack rule)."""

    name: Ref
    old: ObjectID | None
    new: ObjectID | None


class ReftableRefsContainer(RefsContainer):
    """dulwich's refs container on aioreftable's ref store (git's reftable backend).

    Every write is one transaction of the store: its expected old value is checked under
    the stack's lock, so ``set_if_equals`` and friends are true compare-and-swaps across
    threads and processes (git included). Reflog entries are written by the store as git
    writes them: the message dulwich passes, and the committer identity git would use
    (GIT_COMMITTER_* and the repository's config, read once when the store opens);
    dulwich's ``committer``/``timestamp``/``timezone`` arguments are not used.

    Synchronous, callable from any thread except one running an event loop (RuntimeError
    there: the call would block that loop). ``ReftableRefsContainer(path)`` opens the
    store on a private :class:`StoreLoop`; ``loop=`` shares one. :meth:`close` (or
    ``with``) closes what it opened."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        loop: StoreLoop | None = None,
        **store_options: object,
    ) -> None:
        super().__init__(logger=None)
        self._own_loop = loop is None
        self._loop = StoreLoop() if loop is None else loop
        try:
            self._store = self._loop.open_store(path, **store_options)
        except BaseException:
            if self._own_loop:
                self._loop.close()
            raise
        self.store: RefStore = self._store  #: the async store (use it on the loop only)
        self._null = self._store.null_oid
        self._closed = False

    # -- lifetime --------------------------------------------------------------------------
    @property
    def loop(self) -> StoreLoop:
        return self._loop

    def close(self) -> None:
        """Close the store (and the loop if this container started it); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._own_loop:
            self._loop.close()
        elif not self._loop.closed:
            self._loop.close_store(self._store)

    def __enter__(self) -> ReftableRefsContainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._store.layout.git_dir)!r})"

    # -- reads -----------------------------------------------------------------------------
    def _is_null(self, oid: bytes | None) -> bool:
        return oid is not None and len(oid) in (40, 64) and not oid.strip(b"0")

    async def _all(self, prefix: str) -> dict[str, StoredRef]:
        """refs/* under ``prefix`` plus HEAD (dulwich's allkeys; no other root ref), read
        in one pass."""
        return {
            ref.name: ref
            async for ref in self._store.iterate(prefix, include_root_refs=not prefix)
            if ref.name == "HEAD" or ref.name.startswith("refs/")
        }

    async def _read(self, name: str) -> StoredRef | None:
        """The ref as stored; None also for a name no ref can have: dulwich looks up any
        name it is given (``repo[name]``, ``name in refs``) and expects "not found"."""
        try:
            return await self._store.read(name)
        except RefnameError:
            return None

    async def _follow(self, name: str) -> tuple[list[str], str | None]:
        chain = [name]
        ref = await self._read(name)
        while ref is not None and ref.target is not None:
            if len(chain) > _SYMREF_MAXDEPTH:
                raise SymrefLoop(_bytes(chain[0]), len(chain))
            chain.append(ref.target)
            ref = await self._read(ref.target)
        return chain, None if ref is None else ref.oid

    async def _resolved(self, prefix: str) -> dict[str, str]:
        refs = await self._all(prefix)
        out: dict[str, str] = {}
        for name, ref in refs.items():
            if ref.oid is not None:
                out[name] = ref.oid
                continue
            try:
                _, oid = await self._follow(name)
            except SymrefLoop:
                continue
            if oid is not None:
                out[name] = oid
        return out

    def allkeys(self) -> set[Ref]:
        return {Ref(_bytes(n)) for n in self._loop.call(self._all, "")}

    def subkeys(self, base: Ref) -> set[Ref]:
        prefix = _name(base).rstrip("/") + "/"
        names = self._loop.call(self._all, prefix)
        return {Ref(_bytes(n[len(prefix) :])) for n in names if n.startswith(prefix)}

    def as_dict(self, base: Ref | None = None) -> dict[Ref, ObjectID]:
        """Every ref (under ``base``, stripped) resolved to its id; symrefs that lead
        nowhere are left out (dulwich's rule), all read in one call."""
        prefix = "" if base is None else _name(base).rstrip("/") + "/"
        resolved = self._loop.call(self._resolved, prefix)
        if prefix and prefix != "/":
            return {
                Ref(_bytes(n[len(prefix) :])): ObjectID(v.encode("ascii"))
                for n, v in resolved.items()
                if n.startswith(prefix)
            }
        return {Ref(_bytes(n)): ObjectID(v.encode("ascii")) for n, v in resolved.items()}

    def get_symrefs(self) -> dict[Ref, Ref]:
        refs = self._loop.call(self._all, "")
        return {
            Ref(_bytes(n)): Ref(_bytes(r.target)) for n, r in refs.items() if r.target is not None
        }

    def get_packed_refs(self) -> dict[Ref, ObjectID]:
        """A reftable repository has no packed-refs file: always empty."""
        return {}

    def read_loose_ref(self, name: Ref) -> bytes | None:
        """The ref as stored (``ref: <target>`` for a symref, else its id), or None."""
        ref = self._loop.call(self._read, _name(name))
        return None if ref is None else _raw(ref)

    def read_ref(self, refname: Ref) -> bytes | None:
        return self.read_loose_ref(refname)

    def follow(self, name: Ref) -> tuple[list[Ref], ObjectID | None]:
        chain, oid = self._loop.call(self._follow, _name(name))
        return [Ref(_bytes(n)) for n in chain], (
            None if oid is None else ObjectID(oid.encode("ascii"))
        )

    def get_peeled(self, name: Ref) -> ObjectID | None:
        """The peeled id git stored with an annotated tag's ref (reftable's second value);
        None when the table has none (dulwich then peels through the object store)."""
        ref = self._loop.call(self._read, _name(name))
        if ref is None or ref.peeled is None:
            return None
        return ObjectID(ref.peeled.encode("ascii"))

    def read_reflog(self, name: Ref) -> list[ReflogEntry]:
        """The reflog of ``name``, oldest first (git's existence markers hidden)."""
        return self._loop.call(self._reflog, _name(name))

    async def _reflog(self, name: str) -> list[ReflogEntry]:
        return await self._store.reflog(name, oldest_first=True)

    # -- writes ----------------------------------------------------------------------------
    def _old(self, old: bytes | None) -> str | None:
        if old is None:
            return None
        return self._null if self._is_null(old) else old.decode("ascii")

    def _queue(self, tx: Transaction | Batch, u: RefUpdate, *, deref: bool = False) -> None:
        """Queue one update; a new value goes through symrefs with ``deref``, a deletion
        never does (dulwich's remove_if_equals)."""
        name = _name(u.name)
        old = self._old(u.old)
        if u.new is not None and not self._is_null(u.new):
            tx.update(name, u.new.decode("ascii"), old=old, no_deref=not deref)
        elif old == self._null:  # delete what must not exist: only the check remains
            tx.verify(name, None, no_deref=True)
        else:
            tx.delete(name, old=old, no_deref=True)

    async def _transact(
        self, message: str, updates: list[RefUpdate], deref: bool, check: bool
    ) -> bool:
        """One transaction of ``updates``; with ``check`` False when an expected value did
        not hold (nothing written)."""
        try:
            async with self._store.transaction(message) as tx:
                for u in updates:
                    self._queue(tx, u, deref=deref)
        except CAS_FAILURES:
            if not check:
                raise
            return False
        return True

    def set_if_equals(
        self,
        name: Ref,
        old_ref: ObjectID | None,
        new_ref: ObjectID,
        committer: bytes | None = None,
        timestamp: int | None = None,
        timezone: int | None = None,
        message: bytes | None = None,
    ) -> bool:
        """Set ``name`` (through symrefs) to ``new_ref`` if it is at ``old_ref`` (the null
        id: must not exist; None: unconditionally), checked under the lock; False if not."""
        self._check_refname(name)
        self._check_value(new_ref)
        if new_ref.startswith(SYMREF):
            self.set_symbolic_ref(name, Ref(new_ref[len(SYMREF) :]), message=message)
            return True
        update = RefUpdate(name, old_ref, new_ref)
        return self._loop.call(self._transact, _message(message), [update], True, True)

    def add_if_new(
        self,
        name: Ref,
        ref: ObjectID,
        committer: bytes | None = None,
        timestamp: int | None = None,
        timezone: int | None = None,
        message: bytes | None = None,
    ) -> bool:
        """Create ``name`` (the last ref of its symref chain) at ``ref`` unless it exists;
        False if it does."""
        self._check_refname(name)
        self._check_value(ref)
        update = RefUpdate(name, ObjectID(self._null.encode("ascii")), ref)
        return self._loop.call(self._transact, _message(message), [update], True, True)

    def remove_if_equals(
        self,
        name: Ref,
        old_ref: ObjectID | None,
        committer: bytes | None = None,
        timestamp: int | None = None,
        timezone: int | None = None,
        message: bytes | None = None,
    ) -> bool:
        """Delete ``name`` itself (symrefs are not followed) if it is at ``old_ref``
        (None: unconditionally; the null id: only check that it does not exist); False
        if it is not."""
        self._check_refname(name)
        update = RefUpdate(name, old_ref, None)
        return self._loop.call(self._transact, _message(message), [update], False, True)

    def set_symbolic_ref(
        self,
        name: Ref,
        other: Ref,
        committer: bytes | None = None,
        timestamp: int | None = None,
        timezone: int | None = None,
        message: bytes | None = None,
    ) -> None:
        """Make ``name`` itself a symref to ``other`` (git symbolic-ref)."""
        self._check_refname(name)
        self._check_refname(other)
        self._loop.call(self._symref, _name(name), _name(other), _message(message))

    async def _symref(self, name: str, target: str, message: str) -> None:
        async with self._store.transaction(message) as tx:
            tx.symref_update(name, target)

    def update_refs(
        self,
        updates: Sequence[RefUpdate],
        *,
        message: bytes | None = None,
        atomic: bool = True,
    ) -> dict[Ref, str | None]:
        """Apply ``updates`` in one table: with ``atomic`` all or none (one transaction: a
        failed check rejects them all), else each on its own checks (a batch: the others
        still commit; a single update is a transaction, which group commit may batch with
        other threads' updates). ``{name: None if applied, else why not}``. Names are
        checked like dulwich's (RefFormatError)."""
        for u in updates:
            self._check_refname(u.name)
        return self._loop.call(self._update_refs, list(updates), _message(message), atomic)

    async def _update_refs(
        self, updates: list[RefUpdate], message: str, atomic: bool
    ) -> dict[Ref, str | None]:
        if atomic or len(updates) == 1:  # a transaction: group commit may share its table
            try:
                await self._transact(message, updates, False, False)
            except TransactionError as exc:
                failed = {_bytes(n) for n in exc.refnames}
                return {
                    u.name: str(exc) if u.name in failed else "atomic transaction failed"
                    for u in updates
                }
            return {u.name: None for u in updates}
        async with self._store.batch(message) as batch:
            for u in updates:
                self._queue(batch, u)
        return {
            u.name: None if r.ok else (r.error or r.rejected_line())
            for u, r in zip(updates, batch.results, strict=True)
        }

    def import_refs(
        self,
        base: Ref,
        other: Mapping[Ref, ObjectID | None],
        committer: bytes | None = None,
        timestamp: bytes | None = None,
        timezone: bytes | None = None,
        message: bytes | None = None,
        prune: bool = False,
    ) -> None:
        """Set ``base/<name>`` for each of ``other`` (None deletes), and with ``prune``
        delete the other refs under ``base``: one transaction."""
        base = Ref(base.rstrip(b"/"))
        to_delete = set(self.subkeys(base)) if prune else set()
        updates: list[RefUpdate] = []
        for name, value in other.items():
            to_delete.discard(name)
            full = Ref(base + b"/" + name)
            if value is None:
                to_delete.add(name)
            else:
                self._check_refname(full)
                updates.append(RefUpdate(full, None, value))
        updates += [RefUpdate(Ref(base + b"/" + n), None, None) for n in sorted(to_delete)]
        if updates:
            self._loop.call(self._transact, _message(message), updates, True, False)

    def add_packed_refs(self, new_refs: Mapping[Ref, ObjectID | None]) -> None:
        """There is no packed-refs file: the refs are written (None deletes) in one
        transaction, as git's ``refs migrate`` would store them."""
        updates = [RefUpdate(n, None, v) for n, v in new_refs.items()]
        for u in updates:
            self._check_refname(u.name)
        if updates:
            self._loop.call(self._transact, "", updates, True, False)

    def pack_refs(self, all: bool = False) -> None:
        """``git pack-refs``: compact the stack into one table (``all`` makes no
        difference on reftable)."""
        self._loop.call(self._store.pack_refs)

    def _check_value(self, value: bytes) -> None:
        """dulwich's rule for a value to set: an object id of the repository's hash or a
        ``ref: <target>``; otherwise InvalidObjectIdError, a ValueError as dulwich raises."""
        if value.startswith(SYMREF):
            return
        hexsz = len(self._null)
        if len(value) != hexsz or value.strip(b"0123456789abcdef"):
            raise InvalidObjectIdError(
                f"expected a {hexsz}-digit hex object id or a symref, got {value!r}"
            )

    def _check_refname(self, name: Ref) -> None:
        if not isinstance(name, bytes):
            raise RefFormatError(name)
        super()._check_refname(name)
