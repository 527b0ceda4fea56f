"""`aioreftable show-ref`: git show-ref's output, errors and exit codes, read through RefStore."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import anyio.to_thread

from .. import (
    RefnameError,
    RefStore,
    SymrefDepthError,
    check_refname_format,
    open_ref_store,
    refname_is_safe,
)
from ._usage import GitArgumentParser, GitUsageError

MINIMUM_ABBREV = 4  # git's cache.h


def _matches(refname: str, patterns: list[str]) -> bool:
    """git's tail match: the pattern equals the name or its trailing '/'-separated part."""
    for pat in patterns:
        if len(pat) > len(refname) or not refname.endswith(pat):
            continue
        if len(pat) == len(refname) or refname[len(refname) - len(pat) - 1] == "/":
            return True
    return False


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


class ShowRef:
    """One show-ref run: prints like git's show_one, checking each object first."""

    def __init__(self, args: argparse.Namespace, store: RefStore):
        self.args = args
        self.store = store
        assert store.objects is not None  # opened with its object database
        self.objects = store.objects
        # git's parse_opt_abbrev_cb bounds an explicit length by the hash's hex size
        self.abbrev = min(getattr(args, "abbrev", 0), store.hash_algorithm.hex_size)
        self.out: list[str] = []

    async def show(self, shown: list[tuple[str, str, str | None]]) -> None:
        """git's show_one for each (refname, oid, peeled), in order: the lines of those
        before the first object the database lacks, then BadRef."""
        missing = set(await self.objects.missing(oid for _, oid, _ in shown))
        short: dict[str, str] = {}
        if self.abbrev and not self.args.quiet:
            ids = [oid for _, oid, _ in shown]
            if self.args.dereference:
                ids += [peeled for _, _, peeled in shown if peeled is not None]
            short = await self.objects.abbreviations(ids, self.abbrev)
        for refname, oid, peeled in shown:
            if oid in missing:
                raise BadRef(f"git show-ref: bad ref {refname} ({oid})")
            if self.args.quiet:
                continue
            shown_id = short.get(oid, oid)
            self.out.append(shown_id if self.args.hash else f"{shown_id} {refname}")
            if self.args.dereference and peeled is not None:
                self.out.append(f"{short.get(peeled, peeled)} {refname}^{{}}")
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

    async def peeled(self, name: str, oid: str) -> tuple[str, str, str | None]:
        """(name, oid, peeled) outside a listing: peeled by the object database (git's
        peel_object), only with --dereference."""
        return name, oid, await self.objects.peel(oid) if self.args.dereference else None

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
            if name.startswith("refs/") or refname_is_safe(name):
                oid = await self.resolve(name)
            if oid is None:
                if self.args.quiet:
                    return 1
                return _die(f"'{name}' - not a valid ref")
            await self.show([await self.peeled(name, oid)])
        return 0

    async def patterns(self, refs: list[str]) -> int:
        found = 0
        if self.args.head:
            head = await self.resolve("HEAD")
            if head is not None:
                found += 1
                await self.show([await self.peeled("HEAD", head)])
        prefixes = []
        if self.args.branches:
            prefixes.append("refs/heads/")
        if self.args.tags:
            prefixes.append("refs/tags/")
        shown: list[tuple[str, str, str | None]] = []  # checked and printed together
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
                shown.append((name, oid, None))
            else:
                found += 1
                shown.append((name, ref.oid, ref.peeled))
        await self.show(shown)
        return 0 if found else 1

    async def exclude_existing(self, pattern: str) -> int:
        """git show-ref --exclude-existing: the lines of stdin whose ref (the last word,
        without ``^{}``) does not exist here; with a pattern, only refs starting with it."""
        existing: set[bytes] = set()
        async for ref in self.store.iterate("refs/"):
            if ref.oid is not None or await self.resolve(ref.name) is not None:
                existing.add(os.fsencode(ref.name))  # a broken symref does not count
        prefix = os.fsencode(pattern)
        data = await anyio.to_thread.run_sync(sys.stdin.buffer.read)
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


async def _run(args: argparse.Namespace) -> int:
    async with open_ref_store(".", verify_objects=False) as store:  # objects: store.objects
        return await ShowRef(args, store).run()


def _die(message: str) -> int:
    print(f"fatal: {message}", file=sys.stderr)
    return 128


_NUMBER = re.compile(r"\s*[+-]?[0-9]+\Z")  # what strtol(arg, &end, 10) reads whole


def _abbrev_value(option: str, value: str) -> int:
    """git's parse_opt_abbrev_cb for an explicit value: 0 is the full id, else at least 4
    (and at most the hash's hex size: ShowRef bounds it once the repository is known)."""
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
    p.set_defaults(run=run_show_ref)


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
