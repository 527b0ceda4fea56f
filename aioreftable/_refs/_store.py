"""RefStore: git's reftable ref backend on the stacks of one repository (reads, routing)."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, final

import anyio

from .._errors import ReftableError, WorktreeNotFoundError
from .._format._records import LogRecord, RefRecord, RefValueType
from .._repo import RepositoryLayout, discover
from .._stack import Snapshot, Stack, StackStatistics, open_stack
from ._config import RepoConfig, load_store_config
from ._ident import CommitterSource
from ._peel import ObjectDatabase, Peeler, PeelFunction, function_peeler
from ._refname import (
    check_refname_format,
    is_pseudo_ref,
    is_root_ref_syntax,
    is_worktree_id,
    parse_worktree_ref,
    require_refname,
)

if TYPE_CHECKING:
    from ._batch import Batch
    from ._maintenance import VerifyFinding
    from ._reflogs import ExpirePolicy
    from ._transaction import Transaction

__all__ = ["Ref", "RefStore", "ReflogEntry", "SymrefDepthError", "is_root_ref", "open_ref_store"]

SYMREF_MAXDEPTH = 5  # git's SYMREF_MAXDEPTH
_IRREGULAR_ROOT_REFS = frozenset(
    {
        "HEAD",
        "AUTO_MERGE",
        "BISECT_EXPECTED_REV",
        "NOTES_MERGE_PARTIAL",
        "NOTES_MERGE_REF",
        "MERGE_AUTOSTASH",
    }
)


@dataclass(frozen=True, slots=True)
class WorktreeKey:
    """Another linked worktree's stack: its id, one validated path component (so a key
    can never name a directory outside ``<common dir>/worktrees/``)."""

    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not is_worktree_id(self.id):
            raise ValueError(f"not a worktree id: {self.id!r}")


# Which stack a ref lives in: the main worktree's, this (linked) worktree's, or another's.
StackKey = Literal["main", "current"] | WorktreeKey


class SymrefDepthError(ReftableError):
    """A chain of symrefs is longer than git's limit (5), or loops."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A ref as stored: ``oid`` for a direct ref, ``target`` for a symref, ``peeled`` for an
    annotated tag (its fully peeled id)."""

    name: str
    oid: str | None
    target: str | None = None
    peeled: str | None = None

    @property
    def is_symref(self) -> bool:
        return self.target is not None


@dataclass(frozen=True, slots=True)
class ReflogEntry:
    """One reflog entry as git stores it (``message`` keeps its final LF)."""

    old: str
    new: str
    name: str
    email: str
    time: int
    tz: int
    message: str

    @classmethod
    def from_record(cls, log: LogRecord) -> ReflogEntry:
        """The entry of a (non-deletion) log record."""
        return cls(
            log.old_id.hex(),
            log.new_id.hex(),
            log.name.decode("utf-8", "replace"),
            log.email.decode("utf-8", "replace"),
            log.time,
            log.tz_offset,
            log.message.decode("utf-8", "replace"),
        )


def is_root_ref(name: str) -> bool:
    """git's is_root_ref: root-ref syntax, not a pseudoref, and ``*_HEAD`` or a known name."""
    if not name or not is_root_ref_syntax(name) or is_pseudo_ref(name):
        return False
    return name.endswith("_HEAD") or name in _IRREGULAR_ROOT_REFS


def encode_name(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def decode_name(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def ref_from_record(name: str, rec: RefRecord) -> Ref:
    if rec.value_type == RefValueType.SYMREF:
        return Ref(name, None, decode_name(rec.target or b""))
    assert rec.value is not None
    peeled = None
    if rec.value_type == RefValueType.VAL2 and rec.target_value is not None:
        peeled = rec.target_value.hex()
    return Ref(name, rec.value.hex(), None, peeled)


def parse_loose_ref(content: bytes, hexsz: int) -> tuple[str | None, str | None] | None:
    """git's parse_loose_ref_contents: (oid, None) or (None, target); None if broken."""
    if content.startswith(b"ref:"):
        target = content[4:].lstrip(b" \t\n\r").rstrip(b" \t\n\r")
        return None, decode_name(target)
    head = content[:hexsz]
    try:
        if len(head) != hexsz or head != head.lower():
            raise ValueError
        bytes.fromhex(head.decode("ascii"))
    except ValueError:
        return None
    rest = content[hexsz : hexsz + 1]
    if rest and rest not in b" \t\n\r\v\f":
        return None
    return head.decode("ascii"), None


def _skip_per_worktree(name: bytes) -> bool:
    """git's ref_iterator_select: per-worktree refs of the main stack belong to the main
    worktree, so a linked worktree's iteration hides them."""
    return parse_worktree_ref(decode_name(name))[0] != "shared"


def merge_worktree(
    worktree: Iterator[RefRecord], common: Iterator[RefRecord]
) -> Iterator[RefRecord]:
    """Merge a linked worktree's refs over the common ones, by name (worktree wins)."""
    wt = next(worktree, None)
    cm = next(common, None)
    while wt is not None or cm is not None:
        if cm is None or (wt is not None and wt.refname <= cm.refname):
            assert wt is not None
            if cm is not None and wt.refname == cm.refname:
                cm = next(common, None)
            yield wt
            wt = next(worktree, None)
            continue
        if not _skip_per_worktree(cm.refname):
            yield cm
        cm = next(common, None)


@final
class RefStore:
    """The refs of one repository, as git's reftable backend sees them from one worktree.

    Obtain one from :func:`open_ref_store`. Reads reload the stacks when another process
    committed; writes go through :meth:`transaction`."""

    def __init__(
        self,
        layout: RepositoryLayout,
        config: RepoConfig,
        env: Mapping[str, str],
        main: Stack,
        worktree: Stack | None,
        peeler: Peeler | None,
        verify_objects: bool,
    ):
        self.layout = layout
        self.config = config
        self.env = env
        self.committer = CommitterSource(env, config)  # resolved on first write
        self._main = main
        self._worktree = worktree
        self.peeler = peeler
        self.verify_objects = verify_objects and peeler is not None and peeler.verifies
        self.hash_name = "sha256" if config.object_format == "sha256" else "sha1"
        self.hexsz = 64 if self.hash_name == "sha256" else 40
        self.null_oid = "0" * self.hexsz
        self._wt_id = layout.git_dir.name if layout.is_linked_worktree else None

    # -- routing ---------------------------------------------------------------------------
    def route(self, name: str) -> tuple[StackKey, str]:
        """git's backend_for: which stack ``name`` lives in, and its name there.

        The one gate every name passes: RefnameError unless git could read ``name`` at all
        (:func:`refname_is_readable`: NUL bytes, ``..``, empty components are refused), so
        the worktree id of ``worktrees/<id>/...`` is a valid path component."""
        require_refname(name)
        kind, wid, bare = parse_worktree_ref(name)
        if kind == "other":
            assert wid is not None
            if wid == self._wt_id:
                return "current", bare
            return WorktreeKey(wid), bare
        if kind == "current" and self._worktree is not None:
            return "current", bare
        return "main", bare

    def worktree_stack_dir(self, key: StackKey) -> Path:
        if key == "main":
            return self.layout.main_stack
        if key == "current":
            assert self.layout.worktree_stack is not None
            return self.layout.worktree_stack
        return self.layout.common_dir / "worktrees" / key.id / "reftable"

    async def stack_for(self, key: StackKey, scope: AsyncExitStack) -> Stack:
        """The open stack for ``key``; other worktrees' stacks are opened into ``scope``."""
        if key == "main":
            return self._main
        if key == "current":
            assert self._worktree is not None
            return self._worktree
        path = self.worktree_stack_dir(key)
        try:
            return await scope.enter_async_context(
                open_stack(path, self.config.stack_options(), create=False)
            )
        except FileNotFoundError as e:
            if e.filename is None or os.fspath(e.filename) != os.fspath(path):
                raise
            raise WorktreeNotFoundError(
                f"no worktree '{key.id}' (no directory {path})", worktree=key.id
            ) from e

    # -- reads -----------------------------------------------------------------------------
    async def read(self, name: str) -> Ref | None:
        """The ref ``name`` as stored (a symref is not followed), or None."""
        if is_pseudo_ref(name):
            return await self._read_special(name)
        key, bare = self.route(name)
        async with AsyncExitStack() as scope:
            snap = await (await self.stack_for(key, scope)).snapshot()
            rec = snap.ref(encode_name(bare))
        return None if rec is None else ref_from_record(name, rec)

    async def _read_special(self, name: str) -> Ref | None:
        path = self.layout.git_dir / name
        try:
            content = await anyio.Path(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        parsed = parse_loose_ref(content, self.hexsz)
        if parsed is None:
            return None
        return Ref(name, parsed[0], parsed[1])

    async def resolve(self, name: str) -> str | None:
        """Follow symrefs like git (at most 5 levels); None for a missing or dangling ref.

        A longer chain or a loop raises :class:`SymrefDepthError`."""
        for _ in range(SYMREF_MAXDEPTH):
            if not check_refname_format(name, allow_onelevel=True):
                return None
            ref = await self.read(name)
            if ref is None:
                return None
            if ref.target is None:
                return ref.oid
            name = ref.target
        raise SymrefDepthError(f"symref chain too deep or looping at {name!r}")

    async def iterate(
        self, prefix: str = "", *, include_root_refs: bool = False
    ) -> AsyncGenerator[Ref, None]:
        """Refs whose names start with ``prefix``, sorted; only ``refs/*`` unless
        ``include_root_refs`` (then also HEAD, ORIG_HEAD, ...). Symrefs are not followed."""
        raw = encode_name(prefix)
        main = await self._main.snapshot()
        records: Iterator[RefRecord] = main.iter_refs(raw)
        if self._worktree is not None:
            wt = await self._worktree.snapshot()
            records = merge_worktree(wt.iter_refs(raw), records)
        count = 0
        for rec in records:
            name = decode_name(rec.refname)
            if not name.startswith("refs/") and not (include_root_refs and is_root_ref(name)):
                continue
            yield ref_from_record(name, rec)
            count += 1
            if count % 512 == 0:
                await anyio.lowlevel.checkpoint()

    async def snapshot_for(self, name: str, scope: AsyncExitStack) -> tuple[Snapshot, str]:
        key, bare = self.route(name)
        return await (await self.stack_for(key, scope)).snapshot(), bare

    async def reflog(self, name: str, *, oldest_first: bool = False) -> list[ReflogEntry]:
        """The reflog of ``name``, newest first (``oldest_first`` reverses); [] if none.
        git's existence markers (null to null entries) are hidden."""
        null = bytes(self.hexsz // 2)
        out: list[ReflogEntry] = []
        async with AsyncExitStack() as scope:
            snap, bare = await self.snapshot_for(name, scope)
            for log in snap.iter_logs(encode_name(bare)):
                if log.old_id == null and log.new_id == null:
                    continue
                out.append(ReflogEntry.from_record(log))
        if oldest_first:
            out.reverse()
        return out

    async def reflog_exists(self, name: str) -> bool:
        """Whether ``name`` has a reflog (an existence marker counts)."""
        async with AsyncExitStack() as scope:
            snap, bare = await self.snapshot_for(name, scope)
            return next(iter(snap.iter_logs(encode_name(bare))), None) is not None

    # -- writes ----------------------------------------------------------------------------
    def transaction(
        self, message: str = "", *, create_reflog: bool = False, skip_object_check: bool = False
    ) -> AbstractAsyncContextManager[Transaction]:
        """``async with store.transaction(message="...") as tx:`` queue updates; they are
        checked and committed on a clean exit and dropped on an exception.
        ``skip_object_check``: new ids need not exist (git's REF_SKIP_OID_VERIFICATION)."""
        from ._transaction import open_transaction

        return open_transaction(
            self, message, create_reflog=create_reflog, skip_object_check=skip_object_check
        )

    def statistics(self) -> StackStatistics:
        """Counters of the main stack (tables, bytes, additions, compactions, ...)."""
        return self._main.statistics()

    # -- maintenance (_maintenance.py) -----------------------------------------------------
    async def pack_refs(self) -> bool:
        """``git pack-refs``: compact this worktree's stack into one table, then delete
        stale tables. LockError if a table or tables.list is locked. Whether it compacted."""
        return await self.optimize(auto=False)

    async def optimize(self, *, auto: bool = True) -> bool:
        """``git refs optimize [--auto]``: with ``auto`` only git's geometric heuristic, else
        compact everything; then delete stale tables. Whether a compaction ran."""
        from ._maintenance import optimize

        return await optimize(self, auto=auto)

    async def verify(self) -> list[VerifyFinding]:
        """``git refs verify`` for every worktree's stack plus deep table checks; [] if
        sound. Never raises for a corrupt table or tables.list: they become findings."""
        from ._maintenance import verify

        return await verify(self)

    # -- reflogs, rename/copy, batches (_reflogs.py, _rename.py, _batch.py) ----------------
    async def create_reflog(self, name: str) -> bool:
        """git's create_reflog: an existence marker if ``name`` has no reflog yet; True if
        one was written."""
        from ._reflogs import create_reflog

        return await create_reflog(self, name)

    async def delete_reflog(self, name: str) -> int:
        """Delete the reflog of ``name`` (a tombstone per record); how many records."""
        from ._reflogs import delete_reflog

        return await delete_reflog(self, name)

    async def delete_reflog_entry(
        self,
        name: str,
        n: int,
        *,
        rewrite: bool = False,
        update_ref: bool = False,
        dry_run: bool = False,
    ) -> list[ReflogEntry]:
        """``git reflog delete [--rewrite] [--updateref] [-n] name@{n}``; the pruned entry."""
        from ._reflogs import delete_reflog_entry

        return await delete_reflog_entry(
            self, name, n, rewrite=rewrite, update_ref=update_ref, dry_run=dry_run
        )

    async def expire_reflog(
        self,
        name: str,
        policy: ExpirePolicy,
        *,
        rewrite: bool = False,
        update_ref: bool = False,
        dry_run: bool = False,
    ) -> list[ReflogEntry]:
        """``git reflog expire`` for one ref with ``policy``; the pruned entries, newest
        first."""
        from ._reflogs import expire_reflog

        return await expire_reflog(
            self, name, policy, rewrite=rewrite, update_ref=update_ref, dry_run=dry_run
        )

    async def rename(self, old: str, new: str, message: str, *, force: bool = False) -> None:
        """git's rename_ref: move ``old`` (value and reflog) to ``new`` in one table."""
        from ._rename import rename_ref

        await rename_ref(self, old, new, message, force=force)

    async def copy(self, old: str, new: str, message: str, *, force: bool = False) -> None:
        """git's copy_ref: ``new`` gets ``old``'s value and a copy of its reflog."""
        from ._rename import copy_ref

        await copy_ref(self, old, new, message, force=force)

    def batch(
        self, message: str = "", *, create_reflog: bool = False
    ) -> AbstractAsyncContextManager[Batch]:
        """``async with store.batch() as b:`` like a transaction, but an update that fails
        its checks is rejected (``b.results``) while the others commit in one table."""
        from ._batch import open_batch

        return open_batch(self, message, create_reflog=create_reflog)

    def __repr__(self) -> str:
        return f"<RefStore {str(self.layout.git_dir)!r}>"


async def _close_database(database: ObjectDatabase) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(database.close)


@asynccontextmanager
async def open_ref_store(
    path: str | os.PathLike[str] = ".",
    *,
    env: Mapping[str, str] | None = None,
    peel: PeelFunction | None = None,
    object_database: bool = True,
    verify_objects: bool = True,
) -> AsyncIterator[RefStore]:
    """Open the refs of the repository at ``path`` (a work tree, a ``.git`` dir, a linked
    worktree or a bare repository).

    ``env`` replaces ``os.environ`` for discovery (GIT_DIR) and the committer identity
    (GIT_COMMITTER_NAME/EMAIL/DATE). Annotated tags are peeled with ``peel`` if given, else
    with the repository's object database (dulwich) unless ``object_database`` is False;
    ``verify_objects`` refuses new values that are not in that database, as git does."""
    env = os.environ if env is None else env
    layout = await anyio.to_thread.run_sync(discover, path, env)
    config = await load_store_config(layout, env, path)
    peeler: Peeler | None = None
    database: ObjectDatabase | None = None
    if peel is not None:
        peeler = function_peeler(peel)
    elif object_database and await anyio.to_thread.run_sync(
        os.path.isdir, layout.common_dir / "objects"
    ):
        peeler = database = ObjectDatabase(layout.common_dir)
    options = config.stack_options()
    async with AsyncExitStack() as scope:
        if database is not None:
            scope.push_async_callback(_close_database, database)
        main = await scope.enter_async_context(open_stack(layout.main_stack, options, create=False))
        worktree = None
        if layout.worktree_stack is not None:
            worktree = await scope.enter_async_context(
                open_stack(layout.worktree_stack, options, create=False)
            )
        yield RefStore(layout, config, env, main, worktree, peeler, verify_objects)
