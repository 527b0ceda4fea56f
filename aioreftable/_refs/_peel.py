"""Object lookups for ref writes: the object's type and its fully peeled id (git's peel_object)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple, Protocol

import anyio

__all__ = ["ObjectDatabase", "ObjectInfo", "PeelFunction", "Peeler", "function_peeler"]

#: A caller-supplied peeler: hex id -> the fully peeled hex id if the object is an annotated
#: tag, else None. It may be a plain function or a coroutine function.
PeelFunction = Callable[[str], "str | Awaitable[str | None] | None"]

_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_MAX_TAG_DEPTH = 64


class ObjectInfo(NamedTuple):
    """What a ref write needs to know about its new value."""

    type: str | None  # "commit", "tree", "blob", "tag"; None: unknown (caller's peeler)
    peeled: str | None  # the fully peeled id for a tag that peels, else None


class Peeler(Protocol):
    """Looks up the objects a transaction writes; None means the object does not exist."""

    verifies: bool  # whether a missing object is really known to be missing

    async def lookup(self, oids: Iterable[str]) -> dict[str, ObjectInfo | None]: ...


def _tag_target(raw: bytes) -> tuple[str, str] | None:
    """The ``object`` and ``type`` header lines of a tag object's body."""
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


class ObjectDatabase:
    """dulwich's object store (loose objects and packs, SHA-1 and SHA-256) of a repository."""

    verifies = True

    def __init__(self, common_dir: str | os.PathLike[str]):
        self._common = os.fspath(common_dir)
        self._store: Any = None

    def _open(self) -> Any:
        from dulwich.config import ConfigFile
        from dulwich.object_store import DiskObjectStore

        config_path = os.path.join(self._common, "config")
        config = ConfigFile.from_path(config_path) if os.path.exists(config_path) else ConfigFile()
        return DiskObjectStore.from_config(os.path.join(self._common, "objects"), config)

    def close(self) -> None:
        """Close the pack files dulwich keeps open (thread: it closes file descriptors)."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def _raw(self, oid: str) -> tuple[int, bytes] | None:
        for attempt in range(2):
            if self._store is None or attempt:
                self.close()
                self._store = self._open()  # a fresh store sees packs written meanwhile
            try:
                type_num, raw = self._store.get_raw(oid.encode("ascii"))
            except (KeyError, ValueError):
                continue
            return int(type_num), bytes(raw)
        return None

    def info(self, oid: str) -> ObjectInfo | None:
        """git's peel_object: a tag peels through its chain of tags; a tag whose chain
        cannot be followed peels to nothing (written as a plain ref)."""
        found = self._raw(oid)
        if found is None:
            return None
        kind = _TYPES.get(found[0])
        if kind != "tag":
            return ObjectInfo(kind, None)
        raw = found[1]
        for _ in range(_MAX_TAG_DEPTH):
            target = _tag_target(raw)
            if target is None:
                return ObjectInfo(kind, None)
            obj, target_kind = target
            if target_kind != "tag":
                return ObjectInfo(kind, obj)
            inner = self._raw(obj)
            if inner is None or inner[0] != 4:
                return ObjectInfo(kind, None)
            raw = inner[1]
        return ObjectInfo(kind, None)

    def lookup_sync(self, oids: Iterable[str]) -> dict[str, ObjectInfo | None]:
        return {oid: self.info(oid) for oid in oids}

    async def lookup(self, oids: Iterable[str]) -> dict[str, ObjectInfo | None]:
        wanted = list(dict.fromkeys(oids))
        if not wanted:
            return {}
        return await anyio.to_thread.run_sync(self.lookup_sync, wanted)


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
