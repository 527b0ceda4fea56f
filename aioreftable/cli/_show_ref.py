"""`aioreftable show-ref`: git show-ref's output, errors and exit codes, read through RefStore."""

from __future__ import annotations

import argparse
import mmap
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from .. import RefnameError, RefStore, SymrefDepthError, open_ref_store
from ._usage import GitArgumentParser, GitUsageError

# git show-ref options that take a value or work on stdin, which aioreftable does not offer.
_UNSUPPORTED = ("--hash=", "--abbrev", "--no-abbrev", "--exclude-existing")


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
        self._store: object | None = None
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

    def _dulwich(self, hexid: str) -> bool:
        if not self._usable:
            return True
        from dulwich.errors import FileFormatException

        try:
            if self._store is None:
                from dulwich.config import ConfigFile
                from dulwich.object_store import DiskObjectStore

                config_path = self._dir.parent / "config"
                config = ConfigFile.from_path(str(config_path))
                self._store = DiskObjectStore.from_config(str(self._dir), config)
            return hexid.encode() in self._store  # type: ignore[operator]
        except (OSError, ValueError, NotImplementedError, FileFormatException):
            self._usable = False
            return True


class ShowRef:
    """One show-ref run: prints like git's show_one, checking each object first."""

    def __init__(self, args: argparse.Namespace, store: RefStore):
        self.args = args
        self.store = store
        self.objects = Objects(store.layout.common_dir / "objects")
        self.out: list[str] = []

    def show(self, refname: str, oid: str, peeled: str | None) -> None:
        if not self.objects.has(oid):
            raise BadRef(f"git show-ref: bad ref {refname} ({oid})")
        if self.args.quiet:
            return
        self.out.append(oid if self.args.hash else f"{oid} {refname}")
        if self.args.dereference and peeled is not None:
            self.out.append(f"{peeled} {refname}^{{}}")
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

    async def peel(self, oid: str) -> str | None:
        """git's peel_object (used outside ref iteration): the tag's target, else None."""
        if not self.args.dereference or self.store.peeler is None:
            return None
        info = (await self.store.peeler.lookup([oid])).get(oid)
        return None if info is None else info.peeled

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
            self.show(name, oid, await self.peel(oid))
        return 0

    async def patterns(self, refs: list[str]) -> int:
        found = 0
        if self.args.head:
            head = await self.resolve("HEAD")
            if head is not None:
                found += 1
                self.show("HEAD", head, await self.peel(head))
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

    async def run(self) -> int:
        refs = list(self.args.patterns)
        try:
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


async def _run(args: argparse.Namespace) -> int:
    async with open_ref_store(".", verify_objects=False) as store:
        return await ShowRef(args, store).run()


def _die(message: str) -> int:
    print(f"fatal: {message}", file=sys.stderr)
    return 128


def check_unsupported(argv: Sequence[str]) -> None:
    """Refuse git show-ref options we do not implement, git-style (before argparse sees
    them: ``--hash=8`` must not be read as ``--hash`` plus a pattern)."""
    for arg in argv:
        if arg == "--":
            return
        option = arg.split("=", 1)[0]
        if arg.startswith(_UNSUPPORTED) or (arg.startswith("-s") and arg[2:].isdigit()):
            raise GitUsageError(f"option `{option.lstrip('-')}' is not supported by aioreftable")


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
    if args.verify and args.exists:
        return _die("options '--verify' and '--exists' cannot be used together")
    return anyio.run(_run, args)
