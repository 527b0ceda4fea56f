"""RefStore: git's reftable ref backend on the stacks of one repository (reads, routing)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    aclosing,
    asynccontextmanager,
)
from functools import partial
from pathlib import Path
from typing import Literal, final

import anyio

from .. import _repo_io as repo_io
from .._errors import WorktreeNotFoundError
from .._format._layout import HashAlgorithm
from .._repo import RepositoryLayout, discover
from .._stack import OS, Snapshot, Stack, StackOptions, StackStatistics, open_stack
from . import _dwim, _maintenance, _objectname, _reflogs, _rename, _scan
from ._batch import Batch, open_batch
from ._config import RepoConfig, load_store_config
from ._core import (
    Ref,
    RefCore,
    ReflogEntry,
    StackKey,
    SymrefDepthError,
    WorktreeKey,
    encode_name,
    is_root_ref,
)
from ._dwim import DwimResult
from ._feed import ChangeFeed
from ._group import GroupCommit, GroupCommitter, GroupStatistics
from ._maintenance import VerifyFinding
from ._objectname import ObjectName
from ._peel import ObjectDatabase, Peeler, PeelFunction, function_peeler
from ._reflogs import ExpireOptions, ExpirePolicy
from ._transaction import Transaction, open_transaction

__all__ = [
    "Ref",
    "RefStore",
    "ReflogEntry",
    "SymrefDepthError",
    "WorktreeKey",
    "is_root_ref",
    "open_ref_store",
    "read_head_ref",
]


@final
class RefStore:
    """The refs of one repository, as git's reftable backend sees them from one worktree.

    Obtain one from :func:`open_ref_store`. Reads reload the stacks when another process
    committed; writes go through :meth:`transaction`. The rules live in the core
    (``_core.py``) and the operation modules; this class composes them."""

    def __init__(
        self,
        core: RefCore,
        objects: ObjectDatabase | None = None,
        group: GroupCommitter | None = None,
    ):
        self._core = core
        self._group = group
        self._main = core.main  # the main stack (statistics; tests wait for its compactions)
        self.layout = core.layout
        self.config = core.config
        self.env = core.env
        self.committer = core.committer
        self.peeler = core.peeler
        self.verify_objects = core.verify_objects
        #: The repository's object database (None when opened with object_database=False).
        self.objects = objects
        #: The repository's hash (extensions.objectFormat): sizes, null id, name.
        self.hash_algorithm: HashAlgorithm = core.hash
        self.hash_name = core.hash_name  # the hash's parts under their older names
        self.hexsz = core.hexsz
        self.null_oid = core.null_oid

    # -- routing (_core.py) ----------------------------------------------------------------
    def route(self, name: str) -> tuple[StackKey, str]:
        """git's backend_for: which stack ``name`` lives in, and its name there
        (RefnameError unless git could read ``name`` at all)."""
        return self._core.route(name)

    def worktree_stack_dir(self, key: StackKey) -> Path:
        return self._core.worktree_stack_dir(key)

    async def stack_for(self, key: StackKey, scope: AsyncExitStack) -> Stack:
        """The open stack for ``key``; other worktrees' stacks are opened into ``scope``."""
        return await self._core.stack_for(key, scope)

    # -- reads -----------------------------------------------------------------------------
    async def read(self, name: str) -> Ref | None:
        """The ref ``name`` as stored (a symref is not followed), or None."""
        async with AsyncExitStack() as scope:
            return await self._core.view(scope).read(name)

    async def resolve(self, name: str) -> str | None:
        """Follow symrefs like git (at most 5 levels); None for a missing or dangling ref.

        A longer chain or a loop raises :class:`SymrefDepthError`."""
        async with AsyncExitStack() as scope:
            _, ref = await self._core.view(scope).resolve(name)
        return None if ref is None else ref.oid

    async def resolve_name(self, name: str) -> tuple[str | None, str | None]:
        """:meth:`resolve` that also returns the name it reached: (the last name of the
        symref chain, its id). ``(name, None)`` when that name does not exist (a dangling
        symref: the missing target's name); ``(None, None)`` for a malformed name on the
        way or a chain past git's depth (git's refs_resolve_ref_unsafe, reading)."""
        last, oid, _ = await _dwim.resolve_name(self._core, name)
        return last, oid

    # -- short names (_dwim.py, _objectname.py) ---------------------------------------------
    @staticmethod
    def expand_name(short: str) -> list[str]:
        """git's rev-parse rules: the full names ``short`` may stand for, in precedence
        order (``short``, ``refs/<short>``, ``refs/tags/``, ``refs/heads/``,
        ``refs/remotes/``, ``refs/remotes/<short>/HEAD``; ``@`` is HEAD). No I/O."""
        return _dwim.expand_name(short)

    async def dwim_ref(self, short: str, *, warn_ambiguous: bool = True) -> DwimResult:
        """git's repo_dwim_ref: which full names of :meth:`expand_name` resolve (``.ref``:
        the first match's resolved name, as ``git rev-parse --symbolic-full-name``;
        ``.ambiguous``: more than one, git's ``refname '<short>' is ambiguous``), with git's
        ``ignoring dangling symref`` warnings. ``warn_ambiguous`` is git's
        core.warnAmbiguousRefs (default on): off, the first match ends the search."""
        return await _dwim.dwim_ref(self._core, short, warn_ambiguous=warn_ambiguous)

    async def dwim_log(self, short: str, *, warn_ambiguous: bool = True) -> DwimResult:
        """git's repo_dwim_log: the full names of ``short`` that resolve and have a reflog,
        or whose symref chain reaches a name with one (``.ref`` is the name whose reflog
        to read: ``git reflog show <short>``)."""
        return await _dwim.dwim_log(self._core, short, warn_ambiguous=warn_ambiguous)

    async def shorten(self, name: str, *, strict: bool = False) -> str:
        """git's refs_shorten_unambiguous_ref: the shortest name the rules expand back to
        ``name`` that no rule of higher precedence reads as another existing ref
        (``strict``: no other rule at all, as ``%(refname:short)`` with
        core.warnAmbiguousRefs); ``name`` itself when none is."""
        return await _dwim.shorten(self._core, name, strict=strict)

    async def get_oid(self, name: str, *, warn_ambiguous: bool = True) -> ObjectName:
        """git's repo_get_oid for names without revision syntax: a full id of the
        repository's hash (either case), a ref by :meth:`dwim_ref` (``@`` is HEAD), or a
        unique abbreviated id (4 digits or more) of the object database. The
        :class:`ObjectName` carries git's warnings and, for an ambiguous abbreviation, its
        ``short object ID ... is ambiguous`` error and candidates; ``oid`` None when the
        name stands for nothing (``x~1``, ``x^{}``, ``x@{1}`` included)."""
        return await _objectname.get_oid(
            self._core, self.objects, name, warn_ambiguous=warn_ambiguous
        )

    async def iterate(
        self, prefix: str = "", *, include_root_refs: bool = False
    ) -> AsyncGenerator[Ref, None]:
        """Refs whose names start with ``prefix``, sorted; only ``refs/*`` unless
        ``include_root_refs`` (then also HEAD, ORIG_HEAD, ...). Symrefs are not followed.
        Decoded a list at a time in worker threads (:meth:`scan`)."""
        async with aclosing(self.scan(prefix, include_root_refs=include_root_refs)) as lists:
            async for refs in lists:
                for ref in refs:
                    yield ref

    def scan(
        self, prefix: str = "", *, include_root_refs: bool = False
    ) -> AsyncGenerator[list[Ref], None]:
        """:meth:`iterate` in lists of a few thousand refs (the last may be shorter; none
        is empty), decoded in worker threads: the same refs in the same order, for callers
        that handle many refs at once (``async for refs in store.scan("refs/heads/"):``)."""
        return _scan.scan_refs(self._core, prefix, include_root_refs)

    async def snapshot_for(self, name: str, scope: AsyncExitStack) -> tuple[Snapshot, str]:
        key, bare = self._core.route(name)
        return await (await self._core.stack_for(key, scope)).snapshot(), bare

    async def reflog(self, name: str, *, oldest_first: bool = False) -> list[ReflogEntry]:
        """The reflog of ``name``, newest first (``oldest_first`` reverses); [] if none.
        git's existence markers (null to null entries) are hidden."""
        null = self.hash_algorithm.null_id
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

    # -- writes (_transaction.py, _batch.py) -----------------------------------------------
    def transaction(
        self, message: str = "", *, create_reflog: bool = False, skip_object_check: bool = False
    ) -> AbstractAsyncContextManager[Transaction]:
        """``async with store.transaction(message="...") as tx:`` queue updates; they are
        checked and committed on a clean exit and dropped on an exception.
        ``skip_object_check``: new ids need not exist (git's REF_SKIP_OID_VERIFICATION)."""
        return open_transaction(
            self._core,
            message,
            create_reflog=create_reflog,
            skip_object_check=skip_object_check,
            submit=None if self._group is None else self._group.commit,
        )

    def batch(
        self, message: str = "", *, create_reflog: bool = False
    ) -> AbstractAsyncContextManager[Batch]:
        """``async with store.batch() as b:`` like a transaction, but an update that fails
        its checks is rejected (``b.results``) while the others commit in one table."""
        return open_batch(self._core, message, create_reflog=create_reflog)

    # -- the change feed (_feed.py) ---------------------------------------------------------
    def watch(
        self, prefix: str = "", *, since: int | None = None, poll_interval: float | None = None
    ) -> ChangeFeed:
        """``async for change in store.watch("refs/heads/"):`` one :class:`RefChange` per
        ref update committed to the main stack by any process (git included), in
        update-index order, waiting for new ones (inotify, else polling every
        ``poll_interval`` seconds). ``since=None`` starts at the state current when
        iteration begins (or at :meth:`ChangeFeed.start`); ``since=N`` resumes after
        update index N (ChangeFeedGapError when that state is gone). Per-worktree refs of
        a linked worktree live in its own stack and are not part of this feed."""
        return ChangeFeed(
            self._core.main,
            self._core.hash,
            prefix=prefix,
            since=since,
            poll_interval=poll_interval,
        )

    @property
    def group_statistics(self) -> GroupStatistics | None:
        """Counters of group commit (None when the store was opened without it)."""
        return None if self._group is None else self._group.stats

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
        return await _maintenance.optimize(self._core, auto=auto)

    async def verify(self) -> list[VerifyFinding]:
        """``git refs verify`` for every worktree's stack plus deep table checks; [] if
        sound. Never raises for a corrupt table or tables.list: they become findings."""
        return await _maintenance.verify(self._core)

    # -- reflogs, rename/copy (_reflogs.py, _rename.py) ------------------------------------
    async def create_reflog(self, name: str) -> bool:
        """git's create_reflog: an existence marker if ``name`` has no reflog yet; True if
        one was written."""
        return await _reflogs.create_reflog(self._core, name)

    async def delete_reflog(self, name: str) -> int:
        """Delete the reflog of ``name`` (a tombstone per record); how many records."""
        return await _reflogs.delete_reflog(self._core, name)

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
        options = ExpireOptions(rewrite, update_ref, dry_run)
        return await _reflogs.delete_reflog_entry(self._core, name, n, options)

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
        options = ExpireOptions(rewrite, update_ref, dry_run)
        return await _reflogs.expire_reflog(self._core, name, policy, options)

    async def rename(self, old: str, new: str, message: str, *, force: bool = False) -> None:
        """git's rename_ref: move ``old`` (value and reflog) to ``new`` in one table."""
        await _rename.rename_ref(self._core, old, new, message, force=force)

    async def copy(self, old: str, new: str, message: str, *, force: bool = False) -> None:
        """git's copy_ref: ``new`` gets ``old``'s value and a copy of its reflog."""
        await _rename.copy_ref(self._core, old, new, message, force=force)

    def __repr__(self) -> str:
        return f"<RefStore {str(self.layout.git_dir)!r}>"


async def _open_stacks(
    scope: AsyncExitStack, layout: RepositoryLayout, options: StackOptions, fs: OS | None = None
) -> tuple[Stack, Stack | None]:
    """The main stack and, in a linked worktree, the worktree's own, opened into ``scope``."""
    main = await scope.enter_async_context(
        open_stack(layout.main_stack, options, create=False, fs=fs)
    )
    worktree = None
    if layout.worktree_stack is not None:
        worktree = await scope.enter_async_context(
            open_stack(layout.worktree_stack, options, create=False, fs=fs)
        )
    return main, worktree


async def read_head_ref(layout: RepositoryLayout, env: Mapping[str, str]) -> str | None:
    """The ref HEAD is a symref to, as git's refs_resolve_ref_unsafe(HEAD, 0) names it for
    config's ``onbranch:`` (the last name of the chain, which may not exist); None when
    HEAD is not a symref or its chain is malformed, too deep or leads nowhere.

    It runs before the config is known: the stacks are opened with default options and
    HEAD is resolved by the one resolve loop (``RefView.resolve``)."""
    config = RepoConfig(object_format=layout.object_format)
    async with AsyncExitStack() as scope:
        main, worktree = await _open_stacks(scope, layout, config.stack_options())
        core = RefCore(layout, config, env, main, worktree, None, False)
        try:
            name, _ = await core.view(scope).resolve("HEAD")
        except (SymrefDepthError, WorktreeNotFoundError):
            return None
    return None if name == "HEAD" else name


@asynccontextmanager
async def open_ref_store(
    path: str | os.PathLike[str] = ".",
    *,
    env: Mapping[str, str] | None = None,
    peel: PeelFunction | None = None,
    object_database: bool = True,
    verify_objects: bool = True,
    group_commit: bool | GroupCommit = True,
    reload: Literal["stat", "watch"] = "stat",
    fs: OS | None = None,
) -> AsyncIterator[RefStore]:
    """Open the refs of the repository at ``path`` (a work tree, a ``.git`` dir, a linked
    worktree or a bare repository).

    ``env`` replaces ``os.environ`` for discovery (GIT_DIR) and the committer identity
    (GIT_COMMITTER_NAME/EMAIL/DATE). The repository's object database is ``store.objects``
    unless ``object_database`` is False (it is closed with the store). Annotated tags are
    peeled with ``peel`` if given, else with that database; ``verify_objects`` refuses new
    values that are not in the database, as git does.

    ``group_commit`` (on by default; a :class:`GroupCommit` sets its knobs): transactions
    committed at once by tasks of this process share one lock and one table, each with
    its own checks, update index and reflog entries (docs/refstore.md).

    ``reload="watch"`` (opt-in): an inotify watch on each stack's tables.list replaces the
    ``stat`` every read does, at the price of bounded staleness (``StackOptions.reload``;
    docs/concurrency.md).

    ``fs`` replaces the OS seam of every stack the store opens (an :class:`OS` subclass
    that injects faults: the stress harness's crash-point sweep)."""
    env = os.environ if env is None else env
    layout = await anyio.to_thread.run_sync(discover, path, env)
    config = await load_store_config(layout, env, path, partial(read_head_ref, layout, env))
    database: ObjectDatabase | None = None
    if object_database:
        database = ObjectDatabase(layout.common_dir, config.hash_algorithm)
    peeler: Peeler | None = None
    if peel is not None:
        peeler = function_peeler(peel)
    elif database is not None and await anyio.to_thread.run_sync(
        repo_io.is_dir, layout.common_dir / "objects"
    ):
        peeler = database
    async with AsyncExitStack() as scope:
        if database is not None:
            scope.push_async_callback(database.aclose)
        options = dataclasses.replace(config.stack_options(), reload=reload)
        main, worktree = await _open_stacks(scope, layout, options, fs)
        core = RefCore(layout, config, env, main, worktree, peeler, verify_objects, fs=fs)
        settings = GroupCommit() if group_commit is True else group_commit or None
        group = None if settings is None else GroupCommitter(core, settings)
        yield RefStore(core, database, group)
