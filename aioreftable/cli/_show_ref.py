"""`aioreftable show-ref`: git show-ref's output, errors and exit codes, read through our stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

from .. import (
    NotARepositoryError,
    Snapshot,
    StackOptions,
    UnsupportedRepositoryError,
    discover,
    open_stack,
)
from ..lowlevel import RefRecord, RefValueType, WriteOptions

SYMREF_MAXDEPTH = 5  # git's refs.h


def _is_per_worktree(name: bytes) -> bool:
    """Root refs and refs/{worktree,bisect,rewritten}/ live in a worktree's own stack."""
    if name.startswith((b"refs/worktree/", b"refs/bisect/", b"refs/rewritten/")):
        return True
    return bool(name) and all(c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-" for c in name)


class RefView:
    """Reads across the main stack and (in a linked worktree) the worktree's own stack."""

    def __init__(self, main: Snapshot, worktree: Snapshot | None):
        self.main = main
        self.worktree = worktree

    def raw(self, name: bytes) -> RefRecord | None:
        if self.worktree is not None and _is_per_worktree(name):
            return self.worktree.ref(name)
        return self.main.ref(name)

    def resolve(self, name: bytes) -> RefRecord | None:
        """Follow symrefs like git's refs_resolve_ref_unsafe; None if dangling or too deep."""
        for _ in range(SYMREF_MAXDEPTH + 1):
            rec = self.raw(name)
            if rec is None:
                return None
            if rec.value_type != RefValueType.SYMREF:
                return rec
            name = rec.target or b""
        return None

    def refs(self) -> Iterator[bytes]:
        """Every ref under refs/ in sorted order (both stacks merged)."""
        names = {r.refname for r in self.main.iter_refs(b"refs/")}
        if self.worktree is not None:
            names = {n for n in names if not _is_per_worktree(n)}
            names.update(r.refname for r in self.worktree.iter_refs(b"refs/"))
        yield from sorted(names)


def _matches(refname: str, patterns: list[str]) -> bool:
    """git's tail match: the pattern equals the name or its trailing '/'-separated part."""
    for pat in patterns:
        if len(pat) > len(refname) or not refname.endswith(pat):
            continue
        if len(pat) == len(refname) or refname[len(refname) - len(pat) - 1] == "/":
            return True
    return False


class BadRef(Exception):
    """git show-ref dies when a ref names an object the repository does not have."""


class Objects:
    """Object existence through dulwich's object store (loose, packs, alternates), opened on
    first use. Where dulwich cannot read the object database (e.g. a hash it does not
    support) the check is skipped rather than reporting every ref as bad."""

    def __init__(self, objects_dir: Path):
        self._dir = objects_dir
        self._store: object | None = None
        self._usable = True

    def has(self, hexid: str) -> bool:
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


def _show(args: argparse.Namespace, refname: str, rec: RefRecord, objects: Objects) -> None:
    if not objects.has(rec.value.hex()):  # type: ignore[union-attr]
        raise BadRef(f"git show-ref: bad ref {refname} ({rec.value.hex()})")  # type: ignore[union-attr]
    if args.quiet:
        return
    hexid = rec.value.hex()  # type: ignore[union-attr]
    print(hexid if args.hash else f"{hexid} {refname}")
    if args.dereference and rec.value_type == RefValueType.VAL2:
        print(f"{rec.target_value.hex()} {refname}^{{}}")  # type: ignore[union-attr]


def _refname_is_safe(name: str) -> bool:
    """git's refname_is_safe: refs/ names without '..' tricks, or an all-caps root ref."""
    if name.startswith("refs/"):
        parts = name[5:].split("/")
        return all(p not in ("", ".", "..") for p in parts)
    return bool(name) and all(c.isupper() or c == "_" for c in name)


async def _run(args: argparse.Namespace) -> int:
    layout = discover(".")
    # read-only: no auto-compaction, and a missing stack is not created
    write = WriteOptions(hash="sha256" if layout.object_format == "sha256" else "sha1")
    options = StackOptions(auto_compact=False, write_options=write)
    async with AsyncExitStack() as stacks:
        main = await stacks.enter_async_context(
            open_stack(layout.main_stack, options, create=False)
        )
        worktree = None
        if layout.worktree_stack is not None:
            wt = await stacks.enter_async_context(
                open_stack(layout.worktree_stack, options, create=False)
            )
            worktree = await wt.snapshot()
        objects = Objects(layout.common_dir / "objects")
        view = RefView(await main.snapshot(), worktree)
        try:
            return _dispatch(args, view, objects)
        except BadRef as e:
            return _die(str(e))


def _dispatch(args: argparse.Namespace, view: RefView, objects: Objects) -> int:
    refs = list(args.patterns)
    if args.exists:
        if not refs:
            return _die("--exists requires a reference")
        if len(refs) > 1:
            return _die("--exists requires exactly one reference")
        if view.raw(refs[0].encode()) is None:
            print("error: reference does not exist", file=sys.stderr)
            return 2
        return 0
    if args.verify:
        if not refs:
            return _die("--verify requires a reference")
        for name in refs:
            rec = None
            if name.startswith("refs/") or _refname_is_safe(name):
                rec = view.resolve(name.encode())
            if rec is None:
                if args.quiet:
                    return 1
                return _die(f"'{name}' - not a valid ref")
            _show(args, name, rec, objects)
        return 0
    found = 0
    if args.head:
        head = view.resolve(b"HEAD")
        if head is not None:
            found += 1
            _show(args, "HEAD", head, objects)
    prefixes = []
    if args.branches:
        prefixes.append("refs/heads/")
    if args.tags:
        prefixes.append("refs/tags/")
    for raw_name in view.refs():
        name = raw_name.decode("utf-8", errors="surrogateescape")
        if prefixes and not name.startswith(tuple(prefixes)):
            continue
        if refs and not _matches(name, refs):
            continue
        rec = view.resolve(raw_name)
        if rec is None:
            continue  # dangling symref: git's iterator skips broken refs
        found += 1
        _show(args, name, rec, objects)
    return 0 if found else 1


def _die(message: str) -> int:
    print(f"fatal: {message}", file=sys.stderr)
    return 128


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    try:
        return anyio.run(_run, args)
    except (NotARepositoryError, UnsupportedRepositoryError) as e:
        return _die(str(e))
