"""The object database as git show-ref reads it: existence, unique abbreviations, peeling."""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path
from typing import Any

__all__ = ["Objects"]

_TAG = 4  # the object type number of a tag
_MAX_TAG_CHAIN = 64
_IDX_MAGIC = b"\377tOc"
_MAX_OBJECT_DIRS = 64  # a bound on alternates of alternates (git refuses cycles and depth > 5)


_IDX_NAMES = 8 + 256 * 4  # a v2 index: magic, version, fan-out table, then the names


def _pack_index_search(data: bytes | mmap.mmap, raw: bytes) -> tuple[int, int, bool] | None:
    """Where ``raw`` is or would be among the sorted names of a version 2 pack index:
    (position, number of names, found). None for anything but a v2 index."""
    if len(data) < _IDX_NAMES or data[:4] != _IDX_MAGIC or data[4:8] != b"\0\0\0\2":
        return None
    size = len(raw)
    count = int.from_bytes(data[_IDX_NAMES - 4 : _IDX_NAMES], "big")
    first = raw[0]
    lo = int.from_bytes(data[4 + 4 * first : 8 + 4 * first], "big") if first else 0
    hi = int.from_bytes(data[8 + 4 * first : 12 + 4 * first], "big")
    while lo < hi:
        mid = (lo + hi) // 2
        if data[_IDX_NAMES + mid * size : _IDX_NAMES + (mid + 1) * size] < raw:
            lo = mid + 1
        else:
            hi = mid
    found = lo < count and data[_IDX_NAMES + lo * size : _IDX_NAMES + (lo + 1) * size] == raw
    return lo, count, found


def _pack_index_neighbours(data: bytes | mmap.mmap, raw: bytes) -> list[bytes]:
    """The names next to ``raw``'s place in a v2 pack index (itself excluded): git's
    find_abbrev_len_for_pack looks at these two only."""
    where = _pack_index_search(data, raw)
    if where is None:
        return []
    pos, count, found = where
    size = len(raw)
    picks = [i for i in (pos + 1 if found else pos, pos - 1) if 0 <= i < count]
    return [bytes(data[_IDX_NAMES + i * size : _IDX_NAMES + (i + 1) * size]) for i in picks]


def _extend(hexid: str, other: str, start: int, cur: int) -> int:
    """git's extend_abbrev_len: one digit past the prefix ``other`` shares with ``hexid``
    (compared from ``start``); prefixes of 32 digits or more do not count (GIT_MAX_RAWSZ)."""
    i = start
    while i < len(hexid) and hexid[i] == other[i]:
        i += 1
    return i + 1 if i < 32 and i >= cur else cur


def _map_regular(path: str) -> mmap.mmap | None:
    """A read-only map of a regular, non-empty file; None for anything else (opening
    without blocking: a FIFO is skipped, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return None
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


class Objects:
    """git's has_object: is the object in the database (loose file, packs, alternates)?

    Each distinct id is checked once. A loose object counts when its file exists and a
    packed one when a pack index lists it (git parses neither). What that fast path does
    not find goes to dulwich's object store, opened on first use, so that a missing object
    is only reported when dulwich agrees. Where dulwich cannot read the database (e.g. a
    hash it does not support) the check is skipped rather than reporting every ref as bad."""

    def __init__(self, objects_dir: Path):
        self._dir = objects_dir
        self._dirs: list[str] | None = None
        self._indexes: list[mmap.mmap] | None = None
        self._store: Any = None
        self._usable = True
        self._known: dict[str, bool] = {}

    def has(self, hexid: str) -> bool:
        found = self._known.get(hexid)
        if found is None:
            found = self._known[hexid] = self._fast(hexid) or self._dulwich(hexid)
        return found

    def _object_dirs(self) -> list[str]:
        """This object directory and its alternates (recursively, like git)."""
        if self._dirs is None:
            dirs = [str(self._dir)]
            for d in dirs:  # grows while we walk it; git reads alternates recursively too
                if len(dirs) >= _MAX_OBJECT_DIRS:
                    break
                try:
                    with open(os.path.join(d, "info", "alternates"), "rb") as f:
                        lines = f.read().decode("utf-8", "surrogateescape").splitlines()
                except OSError:
                    continue
                for line in lines:
                    entry = line.strip()
                    if entry and not entry.startswith("#"):
                        alt = os.path.normpath(os.path.join(d, entry))
                        if alt not in dirs:
                            dirs.append(alt)
            self._dirs = dirs
        return self._dirs

    def _pack_indexes(self) -> list[mmap.mmap]:
        if self._indexes is None:
            self._indexes = []
            for d in self._object_dirs():
                try:
                    names = sorted(os.listdir(os.path.join(d, "pack")))
                except OSError:
                    continue
                for name in names:
                    if name.endswith(".idx"):
                        index = _map_regular(os.path.join(d, "pack", name))
                        if index is not None:
                            self._indexes.append(index)
        return self._indexes

    def _fast(self, hexid: str) -> bool:
        dirs = self._object_dirs()
        for d in dirs:
            if os.path.isfile(os.path.join(d, hexid[:2], hexid[2:])):
                return True
        raw = bytes.fromhex(hexid)
        for idx in self._pack_indexes():
            where = _pack_index_search(idx, raw)
            if where is not None and where[2]:
                return True
        return False

    def abbrev(self, hexid: str, length: int) -> str:
        """git's repo_find_unique_abbrev: at least ``length`` digits, and one more than the
        longest prefix shared with any other object (the pack index neighbours, then the
        loose objects that share the prefix found so far)."""
        if length >= len(hexid):
            return hexid
        raw = bytes.fromhex(hexid)
        cur = length
        for idx in self._pack_indexes():
            for neighbour in _pack_index_neighbours(idx, raw):
                cur = _extend(hexid, neighbour.hex(), 0, cur)
        start = cur
        prefix = hexid[:cur]
        for d in self._object_dirs():
            try:
                names = os.listdir(os.path.join(d, hexid[:2]))
            except OSError:
                continue
            for name in names:
                loose = hexid[:2] + name
                if len(loose) == len(hexid) and loose.startswith(prefix):
                    cur = _extend(hexid, loose, start, cur)
        return hexid[:cur]

    def _dulwich_store(self) -> Any:
        """dulwich's store of this object directory, opened on first use (None if dulwich
        cannot read it; then existence checks pass and nothing peels)."""
        if self._store is None and self._usable:
            from dulwich.config import ConfigFile
            from dulwich.object_store import DiskObjectStore

            try:
                config = ConfigFile.from_path(str(self._dir.parent / "config"))
                self._store = DiskObjectStore.from_config(str(self._dir), config)
            except (OSError, ValueError, NotImplementedError, KeyError):
                self._usable = False
        return self._store

    def _dulwich(self, hexid: str) -> bool:
        from dulwich.errors import FileFormatException

        store = self._dulwich_store()
        if store is None:
            return True
        try:
            return hexid.encode() in store
        except (OSError, ValueError, NotImplementedError, FileFormatException):
            self._usable = False
            return True

    def _raw(self, hexid: str) -> tuple[int, bytes] | None:
        from dulwich.errors import FileFormatException

        store = self._dulwich_store()
        if store is None:
            return None
        try:
            type_num, raw = store.get_raw(hexid.encode())
        except (KeyError, OSError, ValueError, NotImplementedError, FileFormatException):
            return None
        return int(type_num), bytes(raw)

    def peel(self, hexid: str) -> str | None:
        """git's peel_object: for an annotated tag, the first object down its chain of tags
        that is not a tag; None for any other object, or when the chain breaks."""
        found = self._raw(hexid)
        for _ in range(_MAX_TAG_CHAIN):
            if found is None or found[0] != _TAG:
                return None
            target = _tag_target(found[1])
            if target is None:
                return None
            if target[1] != "tag":
                return target[0]
            found = self._raw(target[0])
        return None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        for index in self._indexes or ():
            index.close()
        self._indexes = None


def _tag_target(raw: bytes) -> tuple[str, str] | None:
    """The ``object`` and ``type`` header lines of a tag object."""
    obj = kind = None
    for line in raw.split(b"\n"):
        if not line:
            break
        if line.startswith(b"object ") and obj is None:
            obj = line[7:].decode("ascii", "replace").strip()
        elif line.startswith(b"type ") and kind is None:
            kind = line[5:].decode("ascii", "replace").strip()
    return None if obj is None or kind is None else (obj, kind)
