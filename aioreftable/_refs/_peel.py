"""The object database: existence, type, peeling (git's peel_object) and unique abbreviations."""

from __future__ import annotations

import inspect
import io
import mmap
import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple, Protocol, TypeVar, final

import anyio

from .. import _repo_io as repo_io
from .._errors import InvalidObjectIdError
from .._format._layout import SHA1, HashAlgorithm
from ._packindex import extend_abbrev, index_neighbours, index_prefix, index_search

__all__ = [
    "ObjectDatabase",
    "ObjectInfo",
    "PeelFunction",
    "Peeler",
    "function_peeler",
    "tag_target",
]

#: A caller-supplied peeler: hex id -> the fully peeled hex id if the object is an annotated
#: tag, else None. It may be a plain function or a coroutine function.
PeelFunction = Callable[[str], "str | Awaitable[str | None] | None"]

_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_MAX_TAG_DEPTH = 64  # a bound on chains of tags (git follows them without one)
_MAX_OBJECT_DIRS = 64  # a bound on alternates of alternates (git refuses cycles and depth > 5)
_HEX = frozenset("0123456789abcdef")
_T = TypeVar("_T")


def _is_object_id(text: str, algorithm: HashAlgorithm) -> bool:
    """Lowercase hex of the hash's size (git's get_oid_hex for a full id)."""
    return len(text) == algorithm.hex_size and set(text) <= _HEX


class ObjectInfo(NamedTuple):
    """What a ref write needs to know about its new value."""

    type: str | None  # "commit", "tree", "blob", "tag"; None: unknown (caller's peeler)
    peeled: str | None  # the fully peeled id for a tag that peels, else None


class Peeler(Protocol):
    """Looks up the objects a transaction writes; None means the object does not exist."""

    verifies: bool  # whether a missing object is really known to be missing

    async def lookup(self, oids: Iterable[str]) -> dict[str, ObjectInfo | None]: ...


def tag_target(raw: bytes) -> tuple[str, str] | None:
    """The ``object`` and ``type`` header lines of a tag object's body (the first of each,
    before the blank line); None when one is missing."""
    obj = kind = None
    for line in raw.split(b"\n"):
        if not line:
            break
        if line.startswith(b"object ") and obj is None:
            obj = line[7:].decode("ascii", "replace").strip()
        elif line.startswith(b"type ") and kind is None:
            kind = line[5:].decode("ascii", "replace").strip()
    if obj is None or kind is None:
        return None
    return obj, kind


class _Objects:
    """The blocking side of :class:`ObjectDatabase` (every method runs in a worker thread,
    one call at a time): the object directories and pack indexes read through the
    repository seam, and dulwich's store (loose objects and packs, SHA-1 and SHA-256) for
    contents.

    Both are read on first use and again after a miss, at most once per call (git's
    reprepare_packed_git), so objects written or repacked meanwhile are found."""

    def __init__(self, common_dir: str, algorithm: HashAlgorithm):
        self.common_dir = common_dir
        self.objects_dir = os.path.join(common_dir, "objects")
        self.algorithm = algorithm
        self.lock = threading.Lock()
        self.dirs: list[str] | None = None
        self.indexes: list[mmap.mmap] | None = None
        self.store: Any = None
        self.reread = False  # whether this call has reread everything already

    def begin(self) -> None:
        """A new call (under ``lock``): it may reread once."""
        self.reread = False

    # -- what is on disk ---------------------------------------------------------------------
    def prepare(self) -> tuple[list[str], list[mmap.mmap]]:
        """The object directories (alternates included) and their pack indexes."""
        if self.dirs is None:
            self.dirs = repo_io.object_directories(self.objects_dir, _MAX_OBJECT_DIRS)
        if self.indexes is None:
            self.indexes = repo_io.map_pack_indexes(self.dirs)
        return self.dirs, self.indexes

    def dulwich(self) -> Any:
        """dulwich's store of the object directory (``core.*`` settings from the config)."""
        if self.store is None:
            from dulwich.config import ConfigFile
            from dulwich.object_store import DiskObjectStore

            data = repo_io.read_optional(os.path.join(self.common_dir, "config"))
            config = ConfigFile() if data is None else ConfigFile.from_file(io.BytesIO(data))
            self.store = DiskObjectStore.from_config(self.objects_dir, config)
        return self.store

    def forget(self) -> None:
        """Close and forget what was read (before a reread, or on close)."""
        store, self.store = self.store, None
        if store is not None:
            store.close()
        for index in self.indexes or ():
            index.close()
        self.dirs = self.indexes = None

    def reprepare(self) -> bool:
        """After a miss: forget what was read so that it is read again, unless this call
        did so already (then False: the miss stands)."""
        if self.reread:
            return False
        self.forget()
        self.reread = True
        return True

    # -- existence (git's has_object: neither parses the object) ----------------------------
    def listed(self, hexid: str) -> bool:
        """A loose file or a pack index entry for ``hexid`` (git parses neither)."""
        dirs, indexes = self.prepare()
        for d in dirs:
            if repo_io.is_file(os.path.join(d, hexid[:2], hexid[2:])):
                return True
        raw = bytes.fromhex(hexid)
        return any((index_search(index, raw) or (0, 0, False))[2] for index in indexes)

    def has(self, hexid: str) -> bool:
        if self.listed(hexid):
            return True
        if self.reprepare() and self.listed(hexid):
            return True
        return hexid.encode("ascii") in self.dulwich()  # what the fast path misses

    # -- contents ----------------------------------------------------------------------------
    def raw(self, hexid: str) -> tuple[int, bytes] | None:
        """(type number, body) of an object; None when it does not exist or cannot be
        parsed (git's parse_object fails for both: a ref update calls either nonexistent)."""
        from dulwich.errors import FileFormatException

        while True:
            try:
                type_num, body = self.dulwich().get_raw(hexid.encode("ascii"))
            except (KeyError, ValueError):
                if self.reprepare():
                    continue  # a fresh store sees packs written meanwhile
                return None
            except FileFormatException:
                return None
            return int(type_num), bytes(body)

    def info(self, hexid: str) -> ObjectInfo | None:
        """git's peel_object: a tag peels through its chain of tags to the first object that
        is not a tag; a tag whose chain cannot be followed peels to nothing."""
        found = self.raw(hexid)
        if found is None:
            return None
        kind = _TYPES.get(found[0])
        if kind != "tag":
            return ObjectInfo(kind, None)
        body = found[1]
        for _ in range(_MAX_TAG_DEPTH):
            target = tag_target(body)
            if target is None:
                return ObjectInfo(kind, None)
            obj, target_kind = target
            if target_kind != "tag":
                return ObjectInfo(kind, obj)
            inner = self.raw(obj) if _is_object_id(obj, self.algorithm) else None
            if inner is None or _TYPES.get(inner[0]) != "tag":
                return ObjectInfo(kind, None)
            body = inner[1]
        return ObjectInfo(kind, None)

    def object_type(self, hexid: str) -> str | None:
        found = self.raw(hexid)
        return None if found is None else _TYPES.get(found[0])

    # -- abbreviations -----------------------------------------------------------------------
    def scan_prefix(self, prefix: str) -> set[str]:
        """The ids starting with ``prefix`` (lowercase hex, at least one digit): the loose
        files of every object directory and the names of every pack index."""
        dirs, indexes = self.prepare()
        hexsz = self.algorithm.hex_size
        fanouts = [prefix[:2]] if len(prefix) >= 2 else [prefix + c for c in sorted(_HEX)]
        found: set[str] = set()
        for d in dirs:
            for fanout in fanouts:
                for name in repo_io.list_names(os.path.join(d, fanout)):
                    oid = fanout + name
                    if len(oid) == hexsz and oid.startswith(prefix) and set(name) <= _HEX:
                        found.add(oid)
        for index in indexes:
            found.update(index_prefix(index, prefix, self.algorithm.size))
        return found

    def with_prefix(self, prefix: str) -> list[str]:
        """git's get_short_oid candidates: every object whose id starts with ``prefix``,
        sorted; the files are read again once when none is found (git's reprepare)."""
        found = self.scan_prefix(prefix)
        if not found and self.reprepare():
            found = self.scan_prefix(prefix)
        return sorted(found)

    def abbreviate(self, hexid: str, length: int) -> str:
        """git's repo_find_unique_abbrev: at least ``length`` digits, and one more than the
        longest prefix shared with any other object (the pack index neighbours, then the
        loose objects that share the prefix found so far)."""
        if length >= len(hexid):
            return hexid
        dirs, indexes = self.prepare()
        raw = bytes.fromhex(hexid)
        cur = length
        for index in indexes:
            for neighbour in index_neighbours(index, raw):
                cur = extend_abbrev(hexid, neighbour.hex(), 0, cur)
        start = cur
        prefix = hexid[:cur]
        for d in dirs:
            for name in repo_io.list_names(os.path.join(d, hexid[:2])):
                loose = hexid[:2] + name
                if len(loose) == len(hexid) and loose.startswith(prefix):
                    cur = extend_abbrev(hexid, loose, start, cur)
        return hexid[:cur]


@final
class ObjectDatabase:
    """A repository's object database, as the ref layer reads it: git's loose objects and
    packs in ``objects/`` and its alternates (contents read with dulwich, SHA-1 and
    SHA-256).

    ``RefStore.objects`` is the store's own (closed with the store). Constructing one does
    no I/O; files are opened on first use, each call runs in a worker thread, and
    :meth:`aclose` releases them (a later call opens them again). Ids are lowercase hex of
    the repository's hash (``hash_algorithm``); another id raises InvalidObjectIdError."""

    verifies = True  # a Peeler that knows when an object is missing

    def __init__(
        self, common_dir: str | os.PathLike[str], hash_algorithm: HashAlgorithm = SHA1
    ) -> None:
        self.hash_algorithm = hash_algorithm
        self._objects = _Objects(os.fspath(common_dir), hash_algorithm)

    def _check(self, oids: Iterable[str]) -> list[str]:
        """The distinct ids, in order; InvalidObjectIdError for a malformed one."""
        wanted = list(dict.fromkeys(oids))
        for oid in wanted:
            if not isinstance(oid, str) or not _is_object_id(oid, self.hash_algorithm):
                raise InvalidObjectIdError(f"not a {self.hash_algorithm.name} object id: {oid!r}")
        return wanted

    async def _run(self, fn: Callable[[], _T]) -> _T:
        """``fn`` in a worker thread, alone with the files."""
        objects = self._objects

        def locked() -> _T:
            with objects.lock:
                objects.begin()
                return fn()

        return await anyio.to_thread.run_sync(locked)

    async def contains(self, oid: str) -> bool:
        """git's has_object: whether the object exists (a loose file or a pack index entry
        is enough; nothing is parsed)."""
        return not await self.missing([oid])

    async def missing(self, oids: Iterable[str]) -> list[str]:
        """The ids of ``oids`` that are not in the database, in order, duplicates once
        (:meth:`contains` for many ids in one worker-thread call)."""
        wanted = self._check(oids)
        has = self._objects.has
        return await self._run(lambda: [oid for oid in wanted if not has(oid)])

    async def object_type(self, oid: str) -> str | None:
        """``"commit"``, ``"tree"``, ``"blob"`` or ``"tag"``; None when it does not exist
        (or cannot be parsed: git's parse_object)."""
        (wanted,) = self._check([oid])
        return await self._run(lambda: self._objects.object_type(wanted))

    async def peel(self, oid: str) -> str | None:
        """git's peel_object: for an annotated tag, the first object down its chain of tags
        that is not a tag; None for any other object, a missing one, or a broken chain."""
        info = (await self.lookup([oid]))[oid]
        return None if info is None else info.peeled

    async def lookup(self, oids: Iterable[str]) -> dict[str, ObjectInfo | None]:
        """Type and peeled id (:class:`ObjectInfo`) of each object, None for a missing one;
        what a transaction asks about its new values."""
        wanted = self._check(oids)
        if not wanted:
            return {}
        info = self._objects.info
        return await self._run(lambda: {oid: info(oid) for oid in wanted})

    async def abbreviate(self, oid: str, min_length: int) -> str:
        """git's repo_find_unique_abbrev: the shortest prefix of at least ``min_length``
        digits that no other object in the database shares (the whole id when
        ``min_length`` reaches the hash's hex size)."""
        return (await self.abbreviations([oid], min_length))[oid]

    async def abbreviations(self, oids: Iterable[str], min_length: int) -> dict[str, str]:
        """:meth:`abbreviate` for many ids in one worker-thread call."""
        wanted = self._check(oids)
        shorten = self._objects.abbreviate
        return await self._run(lambda: {oid: shorten(oid, min_length) for oid in wanted})

    async def expand_prefix(self, prefix: str) -> list[str]:
        """Every object id that starts with the hex digits ``prefix`` (either case; 1 to
        the hash's hex size digits), sorted: git's unique-prefix lookup (get_short_oid)
        over the loose objects and pack indexes of the repository and its alternates.
        One id: the prefix names it; more: it is ambiguous; none: no such object.
        InvalidObjectIdError for an empty, too long or non-hex prefix."""
        wanted = self._check_prefix(prefix)
        return await self._run(lambda: self._objects.with_prefix(wanted))

    async def raw_objects(self, oids: Iterable[str]) -> dict[str, tuple[str, bytes] | None]:
        """Type name and body of each object (None for a missing or unparsable one): what a
        caller needs to describe objects as git does (a commit's date and subject)."""
        wanted = self._check(oids)
        raw = self._objects.raw

        def read() -> dict[str, tuple[str, bytes] | None]:
            out: dict[str, tuple[str, bytes] | None] = {}
            for oid in wanted:
                found = raw(oid)
                kind = None if found is None else _TYPES.get(found[0])
                out[oid] = None if found is None or kind is None else (kind, found[1])
            return out

        return await self._run(read)

    def _check_prefix(self, prefix: str) -> str:
        text = prefix.lower() if isinstance(prefix, str) else ""
        if not 1 <= len(text) <= self.hash_algorithm.hex_size or not set(text) <= _HEX:
            raise InvalidObjectIdError(
                f"not a prefix of a {self.hash_algorithm.name} object id: {prefix!r}"
            )
        return text

    def close(self) -> None:
        """Close the pack files and index maps (blocking: run it in a thread)."""
        with self._objects.lock:
            self._objects.forget()

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread, shielded from cancellation."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)

    def __repr__(self) -> str:
        return f"<ObjectDatabase {self._objects.objects_dir!r} {self.hash_algorithm.name}>"


class _FunctionPeeler:
    verifies = False

    def __init__(self, fn: PeelFunction):
        self._fn = fn

    async def lookup(self, oids: Iterable[str]) -> dict[str, ObjectInfo | None]:
        out: dict[str, ObjectInfo | None] = {}
        for oid in dict.fromkeys(oids):
            result = self._fn(oid)
            if inspect.isawaitable(result):
                result = await result
            peeled = None if result is None else str(result).lower()
            out[oid] = ObjectInfo("tag" if peeled else None, peeled)
        return out


def function_peeler(fn: PeelFunction) -> Peeler:
    """Wrap a caller's peel function (sync or async) as a Peeler that never verifies."""
    return _FunctionPeeler(fn)
