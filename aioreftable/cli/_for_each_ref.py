"""`aioreftable for-each-ref`: git for-each-ref's filters, sorting and formats over RefStore."""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from .. import RefStore, ReftableError, SymrefDepthError, open_ref_store
from ..wildmatch import WM_CASEFOLD, WM_PATHNAME, wildmatch
from ._ref_format import (
    AtomError,
    Formatter,
    Item,
    MissingObject,
    ObjectSource,
    Registry,
    SortKey,
    compile_format,
    parse_sort_key,
    versioncmp,
)
from ._usage import USAGE_EXIT

__all__ = ["add_parser", "run_for_each_ref"]

FATAL_EXIT = 128
DEFAULT_FORMAT = "%(objectname) %(objecttype)\t%(refname)"
DEFAULT_ABBREV = 7  # git's FALLBACK_DEFAULT_ABBREV (small repositories)
_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}


def add_parser(sub: Any) -> None:
    """Adds `for-each-ref` to the subcommands (``sub``: argparse's subparsers action)."""
    p = sub.add_parser("for-each-ref", help="output information on each ref")
    for flags, style in ((("-s", "--shell"), "shell"), (("-p", "--perl"), "perl"),
                         (("--python",), "python"), (("--tcl",), "tcl")):  # fmt: skip
        p.add_argument(*flags, dest="quote_styles", action="append_const", const=style,
                       help=f"quote placeholders suitably for {style}")  # fmt: skip
    p.add_argument("--omit-empty", action="store_true", help="no newline after empty output")
    p.add_argument("--count", metavar="N", help="show only N matched refs")
    p.add_argument("--format", metavar="FORMAT", help="format to use for the output")
    p.add_argument("--start-after", metavar="MARKER", help="start after the marker")
    p.add_argument("--exclude", metavar="PATTERN", action="append", default=[],
                   help="exclude refs which match pattern")  # fmt: skip
    p.add_argument("--sort", metavar="KEY", action="append", default=[], help="sort key")
    p.add_argument("--no-sort", dest="sort", action="append_const", const=None,
                   help="forget the sort keys given so far")  # fmt: skip
    p.add_argument("--points-at", metavar="OBJECT", action="append", default=[],
                   help="print only refs which point at the given object")  # fmt: skip
    for name in ("--merged", "--no-merged", "--contains", "--no-contains"):
        p.add_argument(name, nargs="?", const="HEAD", dest=name[2:].replace("-", "_"),
                       help="not supported by aioreftable")  # fmt: skip
    p.add_argument("--color", nargs="?", const="always", metavar="WHEN",
                   help="respect format colors (always, auto, never)")  # fmt: skip
    p.add_argument("--no-color", dest="color", action="store_const", const="never",
                   help="no colors")  # fmt: skip
    p.add_argument("--ignore-case", action="store_true", help="case insensitive")
    p.add_argument("--stdin", action="store_true", help="read reference patterns from stdin")
    p.add_argument("--include-root-refs", action="store_true", help="also HEAD and root refs")
    p.add_argument("patterns", nargs="*", metavar="PATTERN")
    p.set_defaults(run=run_for_each_ref, parser=p)


def _die(message: str) -> int:
    sys.stdout.flush()
    print(f"fatal: {message}", file=sys.stderr)
    return FATAL_EXIT


def _count(text: str | None) -> int | None:
    """--count's value; None after printing git's error."""
    if text is None:
        return 0
    if not re.fullmatch(r"[ \t\n\v\f\r]*[+-]?[0-9]+", text):
        print("error: option `count' expects an integer value with an optional k/m/g suffix",
              file=sys.stderr)  # fmt: skip
        return None
    return int(text)


def run_for_each_ref(args: argparse.Namespace) -> int:
    for name in ("merged", "no_merged", "contains", "no_contains"):
        if getattr(args, name) is not None:
            option = "--" + name.replace("_", "-")
            return _die(f"{option} is not supported by aioreftable for-each-ref")
    count = _count(args.count)
    if count is None:
        return USAGE_EXIT
    when = "auto" if args.color is None else args.color.lower()
    if when not in ("always", "auto", "never"):
        print("error: option `color' expects \"always\", \"auto\", or \"never\"",
              file=sys.stderr)  # fmt: skip
        return USAGE_EXIT
    if count < 0:
        print(f"error: invalid --count argument: `{count}'", file=sys.stderr)
        args.parser.print_usage(sys.stderr)
        return USAGE_EXIT
    styles = args.quote_styles or []
    if len(set(styles)) > 1:
        print("error: more than one quoting style?", file=sys.stderr)
        args.parser.print_usage(sys.stderr)
        return USAGE_EXIT
    quote = styles[0] if styles else ""
    registry = Registry()
    try:
        fmt = DEFAULT_FORMAT if args.format is None else args.format
        parts = compile_format(fmt, registry, quote)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        args.parser.print_usage(sys.stderr)
        return USAGE_EXIT
    except AtomError as e:
        return _die_atom(e)
    sort_texts = ["refname"]  # git's default key stays, below those given
    for text in args.sort:
        if text is None:
            sort_texts = []
        else:
            sort_texts.append(text)
    if args.start_after is not None and len(sort_texts) > 1:
        return _die("cannot use --start-after with custom sort options")
    try:
        keys = [parse_sort_key(text, registry) for text in reversed(sort_texts)]
    except AtomError as e:
        return _die_atom(e)
    patterns: list[str] = list(args.patterns)
    if args.stdin:
        if patterns:
            return _die("unknown arguments supplied with --stdin")
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else b""
        patterns = [
            os.fsdecode(line[:-1] if line.endswith(b"\r") else line)
            for line in data.split(b"\n")[: -1 if data.endswith(b"\n") else None]
        ]
    if args.start_after is not None and patterns:
        return _die("cannot use --start-after with patterns")
    run = _Run(args, registry, parts, keys, patterns, count, quote)
    run.color = when == "always" or (when == "auto" and _terminal())
    return anyio.run(run.main)


def _match_as_path(patterns: list[bytes], name: bytes, icase: bool) -> bool:
    """git's match_name_as_path: a path prefix (up to '/') or a wildmatch."""
    for p in patterns:
        if (
            len(p) <= len(name)
            and name.startswith(p)
            and (len(p) == len(name) or name[len(p)] == 0x2F or p.endswith(b"/"))
        ):
            return True
        if wildmatch(p, name, WM_PATHNAME | (WM_CASEFOLD if icase else 0)):
            return True
    return False


class _Run:
    """One for-each-ref run: list, filter, sort and format."""

    def __init__(
        self,
        args: argparse.Namespace,
        registry: Registry,
        parts: list[bytes | int],
        keys: list[SortKey],
        patterns: list[str],
        count: int,
        quote: str,
    ):
        self.args = args
        self.registry = registry
        self.parts = parts
        self.keys = keys
        self.patterns = [os.fsencode(p) for p in patterns]
        self.excludes = [os.fsencode(p) for p in args.exclude]
        self.count = count
        self.quote = quote
        self.points_at: set[str] = set()
        self.color = False

    async def main(self) -> int:
        async with open_ref_store(".", verify_objects=False) as store:
            return await self.run(store)

    async def run(self, store: RefStore) -> int:
        resolved: dict[str, str | None] = {}

        async def resolve(name: str) -> str | None:
            if name not in resolved:
                try:
                    resolved[name] = await store.resolve(name)
                except (SymrefDepthError, ReftableError):
                    resolved[name] = None
            return resolved[name]

        points_at: set[str] = set()
        for name in self.args.points_at:
            found = await store.get_oid(name)  # git's repo_get_oid (parse_opt_object_name)
            for message in found.messages:
                sys.stderr.write(message.render())
            if found.oid is None:
                print(f"error: malformed object name '{name}'", file=sys.stderr)
                return USAGE_EXIT
            points_at.add(found.oid)
        template = self.simple_template()
        if template is not None:
            return await self.run_simple(store, resolve, template)
        prefix = self.scan_prefix()
        listing = [ref async for ref in store.iterate(prefix, include_root_refs=True)]
        items: list[Item] = []
        for ref in listing:
            if not self.args.include_root_refs and not ref.name.startswith("refs/"):
                continue
            oid = ref.oid if ref.target is None else await resolve(ref.name)
            if oid is None:
                continue  # a dangling symref: git's iterator skips it quietly
            target = None
            if ref.target is not None:
                final = await resolved_name(store, ref.name)
                target = b"" if final is None else _encode(final)
            items.append(Item(_encode(ref.name), oid, target, ref.peeled))
        assert store.objects is not None
        objects = store.objects
        items = self.filter(items)
        self.points_at = points_at
        head = await self.head_name(store)
        short_names: dict[bytes, bytes] = {}
        if any(
            a.option == "short" and a.base in ("refname", "symref") for a in self.registry.atoms
        ):
            wanted = {item.name for item in items} | {i.symref for i in items if i.symref}
            for full in wanted:  # strict: git's core.warnAmbiguousRefs, on by default
                short = await store.shorten(_decode(full), strict=True)
                short_names[full] = _encode(short)
        abbrevs: dict[tuple[str, int], str] = {}
        lengths = {
            (DEFAULT_ABBREV if a.option == "short" else a.number)
            for a in self.registry.atoms
            if a.base == "objectname" and not a.deref and a.option in ("short", "length")
        }
        for length in lengths:
            shorts = await objects.abbreviations([item.oid for item in items], length)
            abbrevs.update({(oid, length): short for oid, short in shorts.items()})
        reader = _Reader(store)

        def abbreviate(oid: str, length: int) -> str:
            key = (oid, length)
            if key not in abbrevs:
                abbrevs[key] = anyio.from_thread.run(objects.abbreviate, oid, length)
            return abbrevs[key]

        def shorten(name: bytes) -> bytes:
            return short_names.get(name, name)

        source = ObjectSource(reader.read, abbreviate, shorten, head, DEFAULT_ABBREV)
        try:
            out, error = await anyio.to_thread.run_sync(self.render, items, source)
        finally:
            await anyio.to_thread.run_sync(reader.close)
        _write(out)
        if error is not None:
            return _die(error)
        return 0

    def simple_template(self) -> str | None:
        """A str.format template when every atom is ``%(refname)`` or ``%(objectname)`` and
        nothing filters, quotes or sorts beyond the listing's order (the common case, kept
        fast for big repositories: no per-ref objects); None otherwise."""
        args = self.args
        if (
            self.quote
            or args.omit_empty
            or args.ignore_case
            or self.excludes
            or args.points_at
            or args.start_after is not None
            or not (not self.keys or self._by_refname_only())
        ):
            return None
        pieces: list[str] = []
        for part in self.parts:
            if isinstance(part, bytes):
                text = part.decode("utf-8", "surrogateescape")
                pieces.append(text.replace("{", "{{").replace("}", "}}"))
                continue
            atom = self.registry.atoms[part]
            if atom.deref or atom.base not in ("refname", "objectname"):
                return None
            if atom.option not in ("normal", "full"):
                return None
            pieces.append("{0}" if atom.base == "refname" else "{1}")
        return "".join(pieces) + "\n"

    async def run_simple(
        self,
        store: RefStore,
        resolve: Callable[[str], Any],
        template: str,
    ) -> int:
        """The listing's refs straight to their lines (see simple_template)."""
        fmt = template.format
        lines: list[str] = []
        append = lines.append
        left = self.count or -1
        patterns = self.patterns
        prefix = self.scan_prefix()
        scan = store.scan(prefix, include_root_refs=self.args.include_root_refs)
        async with aclosing(scan) as chunks:
            async for refs in chunks:
                if patterns:
                    refs = [r for r in refs if _match_as_path(patterns, _encode(r.name), False)]
                if left > len(refs) or left < 0:
                    direct = [fmt(r.name, r.oid) for r in refs if r.target is None]
                    if len(direct) == len(refs):  # no symrefs: the common case
                        lines += direct
                        left -= len(refs)
                        continue
                for ref in refs:
                    oid = ref.oid
                    if ref.target is not None:
                        oid = await resolve(ref.name)
                        if oid is None:
                            continue  # dangling: skipped, as by git's iterator
                    append(fmt(ref.name, oid))
                    left -= 1
                    if not left:
                        break
                if not left:
                    break
        _write("".join(lines).encode("utf-8", "surrogateescape"))
        return 0

    def scan_prefix(self) -> str:
        """What every listed name starts with: the common start of the patterns' literal
        parts (up to a glob character), as git iterates only the patterns' prefixes;
        "" without patterns or with --ignore-case."""
        if not self.patterns or self.args.ignore_case:
            return ""
        starts = []
        for pattern in self.patterns:
            cut = len(pattern)
            for special in b"*?[\\":
                at = pattern.find(bytes([special]))
                if at >= 0:
                    cut = min(cut, at)
            starts.append(pattern[:cut])
        common = starts[0]
        for start in starts[1:]:
            size = 0
            while size < min(len(common), len(start)) and common[size] == start[size]:
                size += 1
            common = common[:size]
        try:
            return common.decode("utf-8")
        except UnicodeDecodeError:
            return ""

    def filter(self, items: list[Item]) -> list[Item]:
        icase = self.args.ignore_case
        if self.args.start_after is not None:
            marker = os.fsencode(self.args.start_after) + b"\x01"
            items = [item for item in items if item.name >= marker]
        if self.patterns:
            items = [i for i in items if _match_as_path(self.patterns, i.name, icase)]
        if self.excludes:
            items = [i for i in items if not _match_as_path(self.excludes, i.name, icase)]
        return items

    async def head_name(self, store: RefStore) -> bytes | None:
        """The ref HEAD resolves to (git's refs_resolve_refdup for %(HEAD)), None when it
        does not resolve."""
        if not any(a.base == "HEAD" for a in self.registry.atoms):
            return None
        name = await resolved_name(store, "HEAD")
        return None if name is None else _encode(name)

    def render(self, items: list[Item], source: ObjectSource) -> tuple[bytes, str | None]:
        """Sort and format (a worker thread: objects are read here); the output and the
        error that stopped it."""
        formatter = Formatter(self.registry, self.parts, source, self.quote, self.color)
        if self.points_at:
            try:
                items = [i for i in items if _points_at(self.points_at, i, source.read)]
            except MissingObject as e:
                return b"", str(e)
        try:
            if self.keys and not self._by_refname_only():
                items = self.sort(items, formatter)
        except MissingObject as e:
            return b"", str(e)
        if self.count:
            items = items[: self.count]
        lines: list[bytes] = []
        omit = self.args.omit_empty
        for item in items:
            try:
                line = formatter.format(item)
            except MissingObject as e:
                return b"".join(lines), str(e)
            if line or not omit:
                lines.append(line + b"\n")
        return b"".join(lines), None

    def _by_refname_only(self) -> bool:
        if len(self.keys) != 1:
            return False
        key = self.keys[0]
        atom = self.registry.atoms[key.atom]
        icase = self.args.ignore_case
        return atom.name == "refname" and not key.reverse and not key.version and not icase

    def sort(self, items: list[Item], formatter: Formatter) -> list[Item]:
        registry = self.registry
        icase = self.args.ignore_case

        def compare_key(key: SortKey, a: Item, b: Item) -> int:
            atom = registry.atoms[key.atom]
            va, vb = formatter.values(a)[key.atom], formatter.values(b)[key.atom]
            if key.version:
                cmp = versioncmp(_cstr(va[0]), _cstr(vb[0]))
            elif not atom.numeric:
                sa, sb = (va[0].lower(), vb[0].lower()) if icase else (va[0], vb[0])
                if atom.base != "raw":  # git's %(raw) is compared with its length
                    sa, sb = _cstr(sa), _cstr(sb)
                cmp = (sa > sb) - (sa < sb)
            else:
                cmp = (va[1] > vb[1]) - (va[1] < vb[1])
            return -cmp if key.reverse else cmp

        def compare(a: Item, b: Item) -> int:
            for key in self.keys:
                cmp = compare_key(key, a, b)
                if cmp:
                    return cmp
            na, nb = (a.name.lower(), b.name.lower()) if icase else (a.name, b.name)
            return (na > nb) - (na < nb)

        return sorted(items, key=functools.cmp_to_key(compare))


async def resolved_name(store: RefStore, name: str) -> str | None:
    """The last name of ``name``'s chain of symrefs (git's refs_resolve_refdup for
    reading), None when the chain ends at nothing or is too deep."""
    last, oid = await store.resolve_name(name)
    return last if oid is not None else None


def _points_at(
    wanted: set[str], item: Item, read: Callable[[str], tuple[str, bytes] | None]
) -> bool:
    """git's match_points_at: the ref's object, or an object down its chain of tags."""
    if item.oid in wanted:
        return True
    oid = item.oid
    for _ in range(64):
        obj = read(oid)
        if obj is None:
            raise MissingObject(f"malformed object at '{os.fsdecode(item.name)}'")
        if obj[0] != "tag":
            return False
        target = _tag_object(obj[1])
        if target is None:
            raise MissingObject(f"malformed object at '{os.fsdecode(item.name)}'")
        if target in wanted:
            return True
        oid = target
    return False


def _tag_object(body: bytes) -> str | None:
    if not body.startswith(b"object "):
        return None
    end = body.find(b"\n")
    return body[7:end].decode("ascii", "replace") if end > 0 else None


def _die_atom(e: AtomError) -> int:
    if e.error is not None:
        print(f"error: {e.error}", file=sys.stderr)
    return _die(str(e))


def _terminal() -> bool:
    """git's check_auto_color for stdout: a terminal that is not dumb."""
    try:
        tty = os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return tty and os.environ.get("TERM", "dumb") != "dumb"


def _encode(name: str) -> bytes:
    """A ref name's bytes (names are decoded with surrogateescape)."""
    return name.encode("utf-8", "surrogateescape")


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _cstr(value: bytes) -> bytes:
    """What strcmp sees of a value: up to its first NUL."""
    return value.split(b"\0", 1)[0]


class _Reader:
    """Object contents through dulwich's store (blocking: called in a worker thread)."""

    def __init__(self, store: RefStore):
        self.objects_dir = os.path.join(store.layout.common_dir, "objects")
        self.hash_name = store.hash_algorithm.name
        self.store: Any = None
        self.cache: dict[str, tuple[str, bytes] | None] = {}

    def read(self, oid: str) -> tuple[str, bytes] | None:
        if oid in self.cache:
            return self.cache[oid]
        if self.store is None:
            from dulwich.object_format import get_object_format
            from dulwich.object_store import DiskObjectStore

            fmt = get_object_format(self.hash_name)
            self.store = DiskObjectStore(self.objects_dir, object_format=fmt)
        try:
            type_num, body = self.store.get_raw(oid.encode("ascii"))
            found: tuple[str, bytes] | None = (_TYPES[int(type_num)], bytes(body))
        except (KeyError, ValueError):
            found = None
        self.cache[oid] = found
        return found

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _write(data: bytes) -> None:
    if not data:
        return
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        out.flush()
        buffer.write(data)
        buffer.flush()
    else:
        out.write(data.decode("utf-8", "surrogateescape"))
