"""`aioreftable show-ref`: git show-ref's output, errors and exit codes, read through RefStore."""

from __future__ import annotations

import argparse
import mmap
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from .. import RefnameError, RefStore, SymrefDepthError, check_refname_format, open_ref_store
from ._usage import GitArgumentParser, GitUsageError

MINIMUM_ABBREV = 4  # git's cache.h
_TAG = 4  # the object type number of a tag
_MAX_TAG_CHAIN = 64


def _matches(refname: str, patterns: list[str]) -> bool:
    """git's tail match: the pattern equals the name or its trailing '/'-separated part."""
    for pat in patterns:
        if len(pat) > len(refname) or not refname.endswith(pat):
            continue
        if len(pat) == len(refname) or refname[len(refname) - len(pat) - 1] == "/":
            return True
    return False


def _refname_is_safe(name: str) -> bool:
    """git's refname_is_safe: refs/ names without '..' tricks, or an all-caps root ref."""
    if name.startswith("refs/"):
        parts = name[5:].split("/")
        return all(p not in ("", ".", "..") for p in parts)
    return bool(name) and all(c.isupper() or c == "_" for c in name)


_C_SPACE = frozenset(b" \t\n\v\f\r")  # C's isspace
_FGETS_SIZE = 1024  # git reads stdin with fgets into a buffer of this size


def _fgets_lines(data: bytes) -> Iterator[bytes]:
    """stdin as git's fgets loop sees it: pieces of at most 1023 bytes ending at a
    newline, each cut at its first NUL (strlen), without the newline."""
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos, pos + _FGETS_SIZE - 1)
        end = pos + _FGETS_SIZE - 1 if end < 0 else end + 1
        piece = data[pos:end]
        pos = end
        piece = piece.split(b"\0", 1)[0]
        yield piece[:-1] if piece.endswith(b"\n") else piece


class BadRef(Exception):
    """git show-ref dies when a ref names an object the repository does not have."""


_IDX_MAGIC = b"\377tOc"
_MAX_OBJECT_DIRS = 64  # a bound on alternates of alternates (git refuses cycles and depth > 5)


def _pack_index_has(data: bytes | mmap.mmap, raw: bytes) -> bool | None:
    """Is ``raw`` among the names of a version 2 pack index? None: not a v2 index."""
    if data[:4] != _IDX_MAGIC or data[4:8] != b"\0\0\0\2" or len(data) < 1032:
        return None
    first = raw[0]
    lo = int.from_bytes(data[8 + 4 * (first - 1) : 8 + 4 * first], "big") if first else 0
    hi = int.from_bytes(data[8 + 4 * first : 12 + 4 * first], "big")
    size = len(raw)
    base = 1032
    while lo < hi:
        mid = (lo + hi) // 2
        name = data[base + mid * size : base + (mid + 1) * size]
        if name == raw:
            return True
        if name < raw:
            lo = mid + 1
        else:
            hi = mid
    return False


def _pack_index_neighbours(data: bytes | mmap.mmap, raw: bytes) -> list[bytes]:
    """The names next to ``raw``'s place in a v2 pack index (itself excluded): git's
    find_abbrev_len_for_pack looks at these two only."""
    if data[:4] != _IDX_MAGIC or data[4:8] != b"\0\0\0\2" or len(data) < 1032:
        return []
    size = len(raw)
    count = int.from_bytes(data[1028:1032], "big")
    first = raw[0]
    lo = int.from_bytes(data[8 + 4 * (first - 1) : 8 + 4 * first], "big") if first else 0
    hi = int.from_bytes(data[8 + 4 * first : 12 + 4 * first], "big")
    while lo < hi:  # lo becomes the insertion point
        mid = (lo + hi) // 2
        if data[1032 + mid * size : 1032 + (mid + 1) * size] < raw:
            lo = mid + 1
        else:
            hi = mid
    found = lo < count and data[1032 + lo * size : 1032 + (lo + 1) * size] == raw
    after = lo + 1 if found else lo
    picks = [i for i in (after, lo - 1) if 0 <= i < count]
    return [bytes(data[1032 + i * size : 1032 + (i + 1) * size]) for i in picks]


def _extend(hexid: str, other: str, start: int, cur: int) -> int:
    """git's extend_abbrev_len: one digit past the prefix ``other`` shares with ``hexid``
    (compared from ``start``); prefixes of 32 digits or more do not count (GIT_MAX_RAWSZ)."""
    i = start
    while i < len(hexid) and hexid[i] == other[i]:
        i += 1
    return i + 1 if i < 32 and i >= cur else cur


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
        self._indexes: list[mmap.mmap | bytes] | None = None
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
                    line = line.strip()
                    if line and not line.startswith("#"):
                        alt = os.path.normpath(os.path.join(d, line))
                        if alt not in dirs:
                            dirs.append(alt)
            self._dirs = dirs
        return self._dirs

    def _pack_indexes(self) -> list[mmap.mmap | bytes]:
        if self._indexes is None:
            self._indexes = []
            for d in self._object_dirs():
                try:
                    names = sorted(os.listdir(os.path.join(d, "pack")))
                except OSError:
                    continue
                for name in names:
                    if not name.endswith(".idx"):
                        continue
                    try:
                        with open(os.path.join(d, "pack", name), "rb") as f:
                            self._indexes.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
                    except (OSError, ValueError):
                        continue
        return self._indexes

    def _fast(self, hexid: str) -> bool:
        dirs = self._object_dirs()
        for d in dirs:
            if os.path.isfile(os.path.join(d, hexid[:2], hexid[2:])):
                return True
        raw = bytes.fromhex(hexid)
        return any(_pack_index_has(idx, raw) for idx in self._pack_indexes())

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
        self._indexes = None  # the maps close when collected


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


class ShowRef:
    """One show-ref run: prints like git's show_one, checking each object first."""

    def __init__(self, args: argparse.Namespace, store: RefStore):
        self.args = args
        self.store = store
        self.objects = Objects(store.layout.common_dir / "objects")
        self.abbrev: int = getattr(args, "abbrev", 0)
        self.out: list[str] = []

    def show(self, refname: str, oid: str, peeled: str | None) -> None:
        if not self.objects.has(oid):
            raise BadRef(f"git show-ref: bad ref {refname} ({oid})")
        if self.args.quiet:
            return
        shown = self.objects.abbrev(oid, self.abbrev) if self.abbrev else oid
        self.out.append(shown if self.args.hash else f"{shown} {refname}")
        if self.args.dereference and peeled is not None:
            shown = self.objects.abbrev(peeled, self.abbrev) if self.abbrev else peeled
            self.out.append(f"{shown} {refname}^{{}}")
        if len(self.out) >= 1024:
            self.flush()

    def flush(self) -> None:
        if self.out:
            sys.stdout.write("\n".join(self.out) + "\n")
            self.out.clear()

    async def resolve(self, name: str) -> str | None:
        """git's refs_resolve_ref_unsafe for reading: None if missing, dangling or too deep."""
        try:
            return await self.store.resolve(name)
        except SymrefDepthError:
            return None

    def peel(self, oid: str) -> str | None:
        """git's peel_object (used outside ref iteration): the tag's target, else None."""
        return self.objects.peel(oid) if self.args.dereference else None

    async def exists(self, refs: list[str]) -> int:
        if not refs:
            return _die("--exists requires a reference")
        if len(refs) > 1:
            return _die("--exists requires exactly one reference")
        try:
            found = await self.store.read(refs[0])
        except RefnameError:  # git's raw read finds no such ref (ENOENT) for these
            found = None
        if found is None:
            print("error: reference does not exist", file=sys.stderr)
            return 2
        return 0

    async def verify(self, refs: list[str]) -> int:
        if not refs:
            return _die("--verify requires a reference")
        for name in refs:
            oid = None
            if name.startswith("refs/") or _refname_is_safe(name):
                oid = await self.resolve(name)
            if oid is None:
                if self.args.quiet:
                    return 1
                return _die(f"'{name}' - not a valid ref")
            self.show(name, oid, self.peel(oid))
        return 0

    async def patterns(self, refs: list[str]) -> int:
        found = 0
        if self.args.head:
            head = await self.resolve("HEAD")
            if head is not None:
                found += 1
                self.show("HEAD", head, self.peel(head))
        prefixes = []
        if self.args.branches:
            prefixes.append("refs/heads/")
        if self.args.tags:
            prefixes.append("refs/tags/")
        async for ref in self.store.iterate("refs/"):
            name = ref.name
            if prefixes and not name.startswith(tuple(prefixes)):
                continue
            if refs and not _matches(name, refs):
                continue
            if ref.oid is None:
                # a symref: git's iterator resolves it and skips it when broken; its peel
                # comes from the symref's own record, which has none
                oid = await self.resolve(name)
                if oid is None:
                    continue
                found += 1
                self.show(name, oid, None)
            else:
                found += 1
                self.show(name, ref.oid, ref.peeled)
        return 0 if found else 1

    async def exclude_existing(self, pattern: str) -> int:
        """git show-ref --exclude-existing: the lines of stdin whose ref (the last word,
        without ``^{}``) does not exist here; with a pattern, only refs starting with it."""
        existing: set[bytes] = set()
        async for ref in self.store.iterate("refs/"):
            if ref.oid is not None or await self.resolve(ref.name) is not None:
                existing.add(os.fsencode(ref.name))  # a broken symref does not count
        prefix = os.fsencode(pattern)
        data = sys.stdin.buffer.read()
        for line in _fgets_lines(data):
            if line.endswith(b"^{}"):
                line = line[:-3]
            start = len(line)
            while start > 0 and line[start - 1] not in _C_SPACE:
                start -= 1
            name = line[start:]
            if not name.startswith(prefix):
                continue
            if not check_refname_format(name):
                print(f"warning: ref '{os.fsdecode(name)}' ignored", file=sys.stderr)
                continue
            if name not in existing:
                self.out.append(os.fsdecode(line))
        return 0

    async def run(self) -> int:
        refs = list(self.args.patterns)
        try:
            if self.args.exclude_existing is not None:
                return await self.exclude_existing(self.args.exclude_existing)
            if self.args.exists:
                return await self.exists(refs)
            if self.args.verify:
                return await self.verify(refs)
            return await self.patterns(refs)
        except BadRef as e:
            self.flush()
            return _die(str(e))
        finally:
            self.flush()
            self.objects.close()


async def _run(args: argparse.Namespace) -> int:
    # objects are read by the CLI's own Objects (closed at the end), not the store's
    async with open_ref_store(".", object_database=False, verify_objects=False) as store:
        return await ShowRef(args, store).run()


def _die(message: str) -> int:
    print(f"fatal: {message}", file=sys.stderr)
    return 128


_NUMBER = re.compile(r"\s*[+-]?[0-9]+\Z")  # what strtol(arg, &end, 10) reads whole


def _abbrev_value(option: str, value: str) -> int:
    """git's parse_opt_abbrev_cb for an explicit value: 0 is the full id, else 4..hexsz
    (clamped to the hash size when printing)."""
    if not _NUMBER.match(value):
        raise GitUsageError(f"option `{option}' expects a numerical value", usage=False)
    n = int(value)
    return MINIMUM_ABBREV if n and n < MINIMUM_ABBREV else n


def preparse(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Take git show-ref's optional-value options out of the arguments before argparse
    (which would read ``-s 8`` like ``-s8``): returns the rest and the values to add to
    the parsed arguments: ``abbrev`` (0: full ids) and ``exclude_existing`` (None, or the
    pattern, "" for none). ``--abbrev`` without a value (core.abbrev) is refused,
    git-style."""
    rest: list[str] = []
    abbrev = 0
    exclude: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        name, eq, value = arg.partition("=")
        if name == "--hash" and eq:
            rest.append("--hash")
            abbrev = _abbrev_value("hash", value)
        elif arg.startswith("-s") and len(arg) > 2 and not arg.startswith("--"):
            rest.append("-s")
            abbrev = _abbrev_value("hash", arg[2:])
        elif name == "--abbrev" and eq:
            abbrev = _abbrev_value("abbrev", value)
        elif arg == "--no-abbrev":
            abbrev = 0
        elif arg == "--abbrev":
            raise GitUsageError(
                "option `abbrev' without a value (core.abbrev) is not supported by aioreftable"
            )
        elif name == "--exclude-existing":
            exclude = value
        else:
            rest.append(arg)
    return rest, {"abbrev": abbrev, "exclude_existing": exclude}


def add_parser(sub: argparse._SubParsersAction[GitArgumentParser]) -> None:
    p = sub.add_parser("show-ref", help="list references like git show-ref")
    p.add_argument("--head", action="store_true", help="show the HEAD reference too")
    p.add_argument("-d", "--dereference", action="store_true", help="also show peeled tags")
    p.add_argument("-s", "--hash", action="store_true", help="only show the object ids")
    p.add_argument("--verify", action="store_true", help="stricter reference checking")
    p.add_argument("--exists", action="store_true", help="check whether a reference exists")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print (with --verify)")
    p.add_argument("--branches", "--heads", action="store_true", help="only branches")
    p.add_argument("--tags", action="store_true", help="only tags")
    p.add_argument("patterns", nargs="*", metavar="PATTERN")


def run_show_ref(args: argparse.Namespace) -> int:
    chosen = [
        option
        for option, given in (
            ("--exclude-existing", args.exclude_existing is not None),
            ("--verify", args.verify),
            ("--exists", args.exists),
        )
        if given
    ]
    if len(chosen) == 2:
        return _die(f"options '{chosen[0]}' and '{chosen[1]}' cannot be used together")
    if len(chosen) == 3:
        return _die("options '--exclude-existing', '--verify', and '--exists' cannot be "
                    "used together")  # fmt: skip
    return anyio.run(_run, args)
