"""The ref core: routing, stack access, raw reads, the one resolve and the one D/F check."""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableSet,
    Set,
)
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, final

import anyio

from .. import _repo_io as repo_io
from .._errors import NameConflictError, ReftableError, WorktreeNotFoundError
from .._format._layout import HashAlgorithm
from .._format._records import LogRecord, RefRecord, RefValueType
from .._repo import RepositoryLayout
from .._stack import OS, Addition, Snapshot, Stack, open_stack
from ._config import RepoConfig
from ._ident import CommitterSource
from ._peel import ObjectInfo, Peeler
from ._refname import (
    check_refname_format,
    is_pseudo_ref,
    is_root_ref_syntax,
    is_worktree_id,
    parse_worktree_ref,
    require_refname,
)

__all__ = [
    "SYMREF_MAXDEPTH",
    "Ref",
    "RefCore",
    "RefView",
    "ReflogEntry",
    "StackKey",
    "SymrefDepthError",
    "WorktreeKey",
    "decode_name",
    "Held",
    "NameSet",
    "encode_name",
    "is_root_ref",
    "merge_worktree",
    "parse_loose_ref",
    "ref_from_record",
    "value_record",
]

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


# -- value types -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WorktreeKey:
    """Another linked worktree's stack: its id, one validated path component (so a key
    can never name a directory outside ``<common dir>/worktrees/``)."""

    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not is_worktree_id(self.id):
            raise ValueError(f"not a worktree id: {self.id!r}")


#: Which stack a ref lives in: the main worktree's ("main"), this worktree's own ("current":
#: routed to only from a linked worktree; the main worktree's own stack is "main"), or
#: another linked worktree's.
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


# -- names and records -------------------------------------------------------------------------
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
    """The value of a live record (ValueError for a deletion)."""
    if rec.value_type == RefValueType.SYMREF:
        return Ref(name, None, decode_name(rec.symref_target))
    peeled = rec.peeled
    return Ref(name, rec.oid.hex(), None, None if peeled is None else peeled.hex())


def value_record(name: bytes, ts: int, oid: bytes, info: ObjectInfo | None) -> RefRecord:
    """The record of a direct ref at ``oid``: VAL2 with the fully peeled id when the
    object peels (an annotated tag, git's peel_object), else VAL1."""
    if info is not None and info.peeled is not None:
        return RefRecord.val2(name, ts, oid, bytes.fromhex(info.peeled))
    return RefRecord.val1(name, ts, oid)


def parse_loose_ref(
    content: bytes, algorithm: HashAlgorithm
) -> tuple[str | None, str | None] | None:
    """git's parse_loose_ref_contents: (oid, None) or (None, target); None if broken."""
    hexsz = algorithm.hex_size
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
    return parse_worktree_ref(decode_name(name)).kind != "shared"


def merge_worktree(
    worktree: Iterator[RefRecord], common: Iterator[RefRecord]
) -> Iterator[RefRecord]:
    """Merge a linked worktree's refs over the common ones, by name (worktree wins)."""
    cm = next(common, None)
    for wt in worktree:
        while cm is not None and cm.refname < wt.refname:
            if not _skip_per_worktree(cm.refname):
                yield cm
            cm = next(common, None)
        if cm is not None and cm.refname == wt.refname:
            cm = next(common, None)
        yield wt
    if cm is not None:
        for rec in itertools.chain((cm,), common):
            if not _skip_per_worktree(rec.refname):
                yield rec


# -- the core ----------------------------------------------------------------------------------
@final
class RefCore:
    """What every ref operation needs of one repository seen from one worktree: its
    layout and config, the hash, the committer, the object peeler and its stacks.

    ``worktree`` is the linked worktree's own stack: given exactly when ``layout`` is a
    linked worktree's (ValueError otherwise)."""

    def __init__(
        self,
        layout: RepositoryLayout,
        config: RepoConfig,
        env: Mapping[str, str],
        main: Stack,
        worktree: Stack | None,
        peeler: Peeler | None,
        verify_objects: bool,
        *,
        fs: OS | None = None,
    ):
        if (worktree is None) != (layout.worktree_stack is None):
            raise ValueError("a worktree stack goes with a linked worktree's layout, and only then")
        self.layout = layout
        self.config = config
        self.env = env
        self.committer = CommitterSource(env, config)  # resolved on first write
        self.main = main
        self.worktree = worktree
        self.fs = fs  # the OS seam of the stacks it opens (None: the real one)
        self.peeler = peeler
        self.verify_objects = verify_objects and peeler is not None and peeler.verifies
        self.hash = HashAlgorithm.by_name(config.object_format)
        self.hash_name = self.hash.name  # the hash's parts under their older names
        self.hexsz = self.hash.hex_size
        self.null_oid = self.hash.null_hex
        self.wt_id = layout.git_dir.name if layout.is_linked_worktree else None
        # this worktree's stack ("current"): the linked worktree's, else the main one
        self.own_stack: Stack = main if worktree is None else worktree
        self.own_stack_dir: Path = layout.worktree_stack or layout.main_stack

    # -- routing -----------------------------------------------------------------------------
    def route(self, name: str) -> tuple[StackKey, str]:
        """git's backend_for: which stack ``name`` lives in, and its name there.

        The one gate every name passes: RefnameError unless git could read ``name`` at all
        (``refname_is_readable``: NUL bytes, ``..``, empty components are refused), so
        the worktree id of ``worktrees/<id>/...`` is a valid path component."""
        require_refname(name)
        parsed = parse_worktree_ref(name)
        if parsed.kind == "other":
            if parsed.worktree == self.wt_id:
                return "current", parsed.bare
            return WorktreeKey(parsed.worktree), parsed.bare
        if parsed.kind == "current" and self.worktree is not None:
            return "current", parsed.bare
        return "main", parsed.bare

    def worktree_stack_dir(self, key: StackKey) -> Path:
        if key == "main":
            return self.layout.main_stack
        if key == "current":
            return self.own_stack_dir
        return self.layout.common_dir / "worktrees" / key.id / "reftable"

    async def stack_for(self, key: StackKey, scope: AsyncExitStack) -> Stack:
        """The open stack for ``key``; other worktrees' stacks are opened into ``scope``."""
        if key == "main":
            return self.main
        if key == "current":
            return self.own_stack
        path = self.worktree_stack_dir(key)
        try:
            return await scope.enter_async_context(
                open_stack(path, self.config.stack_options(), create=False, fs=self.fs)
            )
        except FileNotFoundError as e:
            if e.filename is None or os.fspath(e.filename) != os.fspath(path):
                raise
            raise WorktreeNotFoundError(
                f"no worktree '{key.id}' (no directory {path})", worktree=key.id
            ) from e

    # -- reads -------------------------------------------------------------------------------
    def view(
        self, scope: AsyncExitStack, held: Mapping[StackKey, Snapshot] | None = None
    ) -> RefView:
        """A view of the snapshots in ``held`` (the stacks a writer holds locked) and of
        every other stack freshly reloaded (other worktrees' stacks open into ``scope``)."""

        async def snapshot(key: StackKey) -> Snapshot:
            if held is not None and key in held:
                return held[key]
            return await (await self.stack_for(key, scope)).snapshot()

        return RefView(self, snapshot)

    @asynccontextmanager
    async def locked(self, name: str, *, exact_log_message: bool = False) -> AsyncIterator[Held]:
        """Route ``name``, lock its stack and append one table to it (committed on a clean
        exit): what an operation on one ref's stack starts with."""
        key, bare = self.route(name)
        async with AsyncExitStack() as scope:
            stack = await self.stack_for(key, scope)
            async with stack.addition(exact_log_message=exact_log_message) as add:
                yield Held(self, key, bare, add, scope)

    async def read_special(self, name: str) -> Ref | None:
        """A pseudoref (FETCH_HEAD, MERGE_HEAD): a loose file in the git dir, read through
        the repository seam in a worker thread (a missing file or a directory: None)."""
        path = self.layout.git_dir / name
        try:
            content = await anyio.to_thread.run_sync(repo_io.read_optional, path)
        except IsADirectoryError:
            return None
        if content is None:
            return None
        parsed = parse_loose_ref(content, self.hash)
        if parsed is None:
            return None
        return Ref(name, parsed[0], parsed[1])


Snapshots = Callable[[StackKey], Awaitable[Snapshot]]


@dataclass(frozen=True, slots=True)
class Held:
    """One ref's stack, locked for an addition (see :meth:`RefCore.locked`)."""

    core: RefCore
    key: StackKey
    bare: str  # the name in that stack
    addition: Addition
    scope: AsyncExitStack  # other worktrees' stacks opened meanwhile

    @property
    def raw(self) -> bytes:
        return encode_name(self.bare)

    def view(self) -> RefView:
        """Reads under this lock for its stack, fresh for the others."""
        return self.core.view(self.scope, held={self.key: self.addition.snapshot})


@final
class RefView:
    """Reads through one source of snapshots per stack: freshly reloaded ones, or the
    ones a writer holds under its locks. Owns git's resolve loop and availability check."""

    def __init__(self, core: RefCore, snapshot: Snapshots):
        self.core = core
        self.snapshot = snapshot

    async def read(self, name: str) -> Ref | None:
        """git's refs_read_raw_ref: pseudorefs from files, everything else routed."""
        if is_pseudo_ref(name):
            return await self.core.read_special(name)
        key, bare = self.core.route(name)
        rec = (await self.snapshot(key)).ref(encode_name(bare))
        return None if rec is None else ref_from_record(name, rec)

    async def resolve(self, name: str) -> tuple[str | None, Ref | None]:
        """git's refs_resolve_ref_unsafe: follow symrefs at most SYMREF_MAXDEPTH times.

        (last name, its direct ref); (last name, None) when that name does not exist;
        (None, None) when a name on the way is malformed. SymrefDepthError past the depth."""
        for _ in range(SYMREF_MAXDEPTH):
            if not check_refname_format(name, allow_onelevel=True):
                return None, None
            ref = await self.read(name)
            if ref is None:
                return name, None
            if ref.target is None:
                return name, ref
            name = ref.target
        raise SymrefDepthError(f"symref chain too deep or looping at {name!r}")

    async def records(self, prefix: str) -> Iterator[RefRecord]:
        """The ref records of this worktree whose names start with ``prefix``, sorted
        (a linked worktree's own refs merged over the common ones)."""
        raw = encode_name(prefix)
        records: Iterator[RefRecord] = iter((await self.snapshot("main")).iter_refs(raw))
        if self.core.worktree is not None:
            own = (await self.snapshot("current")).iter_refs(raw)
            records = merge_worktree(iter(own), records)
        return records

    async def check_available(
        self,
        refname: str,
        extras: Set[str] = frozenset(),
        skip: Set[str] = frozenset(),
        *,
        absent: set[str] | None = None,
    ) -> None:
        """git's refs_verify_refname_available: no ref (but those in ``skip``) is a prefix
        directory of ``refname`` nor lives under ``refname/``, and neither is a name in
        ``extras`` (the other names of the same transaction). NameConflictError if one is.

        O(depth + log n) per call when ``extras`` is a :class:`NameSet` (a transaction's
        names); any other set is indexed once per call. ``absent``: the directories
        already found to be no ref by earlier calls of the same transaction (git's
        ``dirnames`` strset), which are not read again; the ones found now are added."""
        parts = refname.split("/")
        for n in range(1, len(parts)):
            dirname = "/".join(parts[:n])
            if dirname not in skip and (absent is None or dirname not in absent):
                if await self.read(dirname) is not None:
                    raise NameConflictError(
                        f"'{dirname}' exists; cannot create '{refname}'", dirname, refname
                    )
                if absent is not None:
                    absent.add(dirname)
            if dirname in extras:
                raise NameConflictError(
                    f"cannot process '{refname}' and '{dirname}' at the same time",
                    refname,
                    dirname,
                )
        below = refname + "/"
        for rec in await self.records(below):
            name = decode_name(rec.refname)
            if name.startswith("refs/") and name not in skip:
                raise NameConflictError(
                    f"'{name}' exists; cannot create '{refname}'", name, refname
                )
        index = extras if isinstance(extras, NameSet) else NameSet(extras)
        inside = index.first_with_prefix(below)
        if inside is not None:
            raise NameConflictError(
                f"cannot process '{refname}' and '{inside}' at the same time",
                refname,
                inside,
            )


@final
class NameSet(MutableSet[str]):
    """A set of ref names also kept sorted (git's sorted string list): membership in O(1),
    the first name under a prefix in O(log n) (git's iterator seek), so the D/F check of a
    transaction of n names costs O(n log n), not O(n²). Iterates in sorted order."""

    def __init__(self, names: Iterable[str] = ()):
        self._members = set(names)
        self._sorted = sorted(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._sorted)

    def __len__(self) -> int:
        return len(self._members)

    def add(self, value: str) -> None:
        if value not in self._members:
            self._members.add(value)
            bisect.insort(self._sorted, value)

    def discard(self, value: str) -> None:
        if value in self._members:
            self._members.remove(value)
            del self._sorted[bisect.bisect_left(self._sorted, value)]

    def first_with_prefix(self, prefix: str) -> str | None:
        """The smallest name that starts with ``prefix`` (None if none does)."""
        i = bisect.bisect_left(self._sorted, prefix)
        if i < len(self._sorted) and self._sorted[i].startswith(prefix):
            return self._sorted[i]
        return None

    def __repr__(self) -> str:
        return f"NameSet({self._sorted!r})"
