"""`aioreftable reflog [show]`: git's reflog walk (git log -g --oneline) over RefStore reads."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio.to_thread

from .. import (
    ObjectName,
    ReflogEntry,
    RefnameError,
    RefStore,
    WorktreeNotFoundError,
    check_refname_format,
)
from ..dates import approxidate, now_for_dates
from ._reflog_dates import DateModeError, DateModeUnsupported, parse_date_mode, show_date

__all__ = ["ShowOptions", "Unsupported", "parse_show_args", "show"]

DEFAULT_ABBREV = 7  # git's FALLBACK_DEFAULT_ABBREV: its "auto" length below 16384 objects
_AMBIGUOUS = (
    "ambiguous argument '{}': unknown revision or path not in the working tree.\n"
    "Use '--' to separate paths from revisions, like this:\n"
    "'git <command> [<revision>...] -- [<file>...]'"
)
# log options git accepts that this command does not implement (refused, not ignored)
_KNOWN_LOG_OPTIONS = re.compile(
    r"--(?:decorate|no-decorate|abbrev|no-abbrev|abbrev-commit|no-abbrev-commit|color|"
    r"no-color|graph|reverse|all|branches|tags|remotes|glob|since|until|after|before|author|"
    r"committer|grep|walk-reflogs|patch|stat|name-only|name-status|merges|no-merges|"
    r"first-parent|skip|mailmap|use-mailmap|no-mailmap|parents|children|"
    r"boundary|source|pretty|format|encoding|notes|no-notes|show-signature|follow|"
    r"left-right|cherry-pick|topo-order|date-order|author-date-order|log-size|raw)(?:=.*)?$"
    r"|-[pgsS]$|-[GL].*"
)


class Unsupported(Exception):
    """A form git accepts that aioreftable does not implement: ``fatal: <message>``, 128."""


class Fatal(Exception):
    """git's die() with this message (exit 128)."""


@dataclass
class ShowOptions:
    """``reflog show``'s arguments: the ref (None: HEAD), how many entries (-1: all) and
    the format (None: git's oneline; else (text, terminator after each entry))."""

    ref: str | None = None
    max_count: int = -1
    format: tuple[str, bool] | None = None
    paths: tuple[str, ...] = ()
    unrecognized: str | None = None  # git dies on it after the revisions are checked
    date: str | None = None  # --date's mode (git's date_mode_explicit), None: not given


def _date_mode(value: str) -> str:
    try:
        return parse_date_mode(value)
    except DateModeError:
        raise Fatal(f"unknown date format {value}") from None
    except DateModeUnsupported:
        raise Unsupported(f"--date={value} is not supported by aioreftable") from None


def _integer(text: str, option: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise Fatal(f"'{text}': not an integer" if option == "-n" else f"{option}: bad number")
    return int(text)


_BUILTIN_FORMATS = ("oneline", "short", "medium", "full", "fuller", "reference", "email",
                    "raw", "mboxrd")  # fmt: skip


def _pretty(value: str) -> tuple[str, bool] | None:
    """git's get_commit_format for the forms supported here (None: oneline)."""
    for prefix, terminated in (("format:", False), ("tformat:", True)):
        if value.startswith(prefix):
            return value[len(prefix) :], terminated
    if "%" in value:
        return value, True  # a bare format is a tformat
    builtin = [name for name in _BUILTIN_FORMATS if value and name.startswith(value)]
    if not builtin:
        raise Fatal(f"invalid --pretty format: {value}")
    if builtin[0] == "oneline":
        return None
    raise Unsupported(
        f"--pretty={builtin[0]} is not supported by aioreftable (it needs commit parsing)"
    )


def parse_show_args(argv: Sequence[str]) -> ShowOptions:
    """The revision and log options ``reflog show`` supports (git's setup_revisions for
    them); others git knows are refused as unsupported, unknown ones as git does."""
    opts = ShowOptions()
    refs: list[str] = []
    paths: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        arg = argv[i]
        if arg == "--":
            paths.extend(argv[i + 1 :])
            break
        if arg == "-n" or arg == "--max-count":
            if i + 1 >= len(argv):
                raise Fatal(f"{arg} requires an argument")
            opts.max_count = _integer(argv[i + 1], "-n")
            next(it, None)
        elif arg.startswith("--max-count="):
            opts.max_count = _integer(arg[len("--max-count=") :], "-n")
        elif re.fullmatch(r"-n.+", arg):
            opts.max_count = _integer(arg[2:], "-n")
        elif re.fullmatch(r"-\d+", arg):
            opts.max_count = int(arg[1:])
        elif arg == "--oneline":
            opts.format = None
        elif arg == "--date" or arg.startswith("--date="):
            if arg == "--date":
                if i + 1 >= len(argv):
                    raise Fatal("--date requires an argument")
                value = argv[i + 1]
                next(it, None)
            else:
                value = arg[len("--date=") :]
            opts.date = _date_mode(value)
        elif arg == "--relative-date":
            opts.date = "relative"
        elif arg.startswith("--format="):
            opts.format = _pretty(arg[len("--format=") :])
        elif arg.startswith("--pretty="):
            opts.format = _pretty(arg[len("--pretty=") :])
        elif arg.startswith("-") and arg != "-":
            if _KNOWN_LOG_OPTIONS.match(arg):
                raise Unsupported(f"reflog show: option '{arg}' is not supported by aioreftable")
            if opts.unrecognized is None:
                opts.unrecognized = arg
        else:
            refs.append(arg)
    if len(refs) > 1:
        raise Unsupported("reflog show: more than one ref is not supported by aioreftable")
    opts.ref = refs[0] if refs else None
    opts.paths = tuple(paths)
    return opts


@dataclass(frozen=True)
class Selector:
    """``@{<n>}`` (``index``) or ``@{<date>}`` (``at``: git's approxidate of the text
    after the brace, closing brace included, as git reads it)."""

    index: int | None = None
    at: int | None = None


def _split(spec: str) -> tuple[str, Selector | None]:
    """``name@{...}`` -> (name, selector); ``name`` -> (name, None)."""
    at = spec.find("@{")
    if at < 0:
        return spec, None
    text = spec[at + 2 :]
    if re.fullmatch(r"\d+\}", text):
        return spec[:at], Selector(index=int(text[:-1]))
    if re.match(r"(?i)-|(?:u|upstream|push)\}", text):
        raise Unsupported(
            f"reflog show: the selector '@{{{text}' is not supported by aioreftable "
            "(only @{<n>} and @{<date>})"
        )
    return spec[:at], Selector(at=approxidate(text, now_for_dates()))


def rfc2822(epoch: int, tz: int) -> str:
    """git's show_date(..., DATE_RFC2822)."""
    return show_date(epoch, tz, "rfc", 0)


def _read_ref_at(
    name: str, typed: str, entries: list[ReflogEntry], sel: Selector, tip: str | None
) -> int | None:
    """git's read_ref_at for ``name@{...}`` (entries newest first): the entry it selects,
    its dies and its warnings (gaps; a date before the reflog: None)."""
    if not entries:
        raise Fatal(f"log for {name} is empty")
    null = "0" * len(entries[0].old)
    previous_old: str | None = None
    for k, entry in enumerate(entries):
        hit = k == sel.index if sel.at is None else entry.time <= sel.at
        if hit:
            when = rfc2822(entry.time, entry.tz)
            if previous_old is not None and previous_old != null:
                if previous_old != entry.new:
                    print(f"warning: log for ref {name} has gap after {when}", file=sys.stderr)
            elif sel.at is not None and entry.time == sel.at:
                pass
            elif tip is not None and entry.new != tip:
                print(f"warning: log for ref {name} unexpectedly ended on {when}", file=sys.stderr)
            return k
        previous_old = entry.old
    if sel.at is None:
        raise Fatal(f"log for '{typed}' only has {len(entries)} entries")
    oldest = entries[-1]
    when = rfc2822(oldest.time, oldest.tz)
    print(f"warning: log for '{typed}' only goes back to {when}", file=sys.stderr)
    return None


async def _missing_revision(store: RefStore, spec: str, warnings: str, *, given: bool) -> None:
    """What git says when the revision names no object: a missing default (HEAD), or a
    given name that is neither a revision nor a file (git's verify_filename); git's
    warnings of the name's lookup (``warnings``), printed once per lookup."""
    if not given:
        raise await _diagnose_missing_default(store)
    if await anyio.to_thread.run_sync(os.path.lexists, spec):
        sys.stderr.write(warnings)
        if await store.resolve("HEAD") is None:  # a path: the default revision is used
            raise await _diagnose_missing_default(store)
        raise _paths_unsupported()
    sys.stderr.write(warnings * 2)  # git resolves the name twice before it dies
    raise Fatal(_AMBIGUOUS.format(spec))


async def final_name(store: RefStore, name: str) -> str:
    """The name a chain of symrefs reaches (git's refs_resolve_ref_unsafe name); ``name``
    itself when it is no symref or the chain is broken."""
    last, _ = await store.resolve_name(name)
    return name if last is None else last


async def read_reflog(store: RefStore, name: str) -> list[ReflogEntry]:
    """``store.reflog(name)`` with names, emails and messages decoded losslessly (bytes
    that are not UTF-8 are written back as git prints them); newest first."""
    async with AsyncExitStack() as scope:
        snapshot, bare = await store.snapshot_for(name, scope)
        raw = bare.encode("utf-8", "surrogateescape")
        logs = list(snapshot.iter_logs(raw))
    null = store.hash_algorithm.null_id

    def text(b: bytes) -> str:
        return b.decode("utf-8", "surrogateescape")

    return [
        ReflogEntry(
            log.old_id.hex(),
            log.new_id.hex(),
            text(log.name),
            text(log.email),
            log.time,
            log.tz_offset,
            text(log.message),
        )
        for log in logs
        if log.old_id != null or log.new_id != null  # git's existence marker
    ]


async def _own_reflog(store: RefStore, name: str) -> list[ReflogEntry]:
    """The reflog of exactly ``name``; [] for a name no stack can hold."""
    if not check_refname_format(name, allow_onelevel=True):
        return []
    try:
        return await read_reflog(store, name)
    except (RefnameError, WorktreeNotFoundError):
        return []


async def _complete_reflog(store: RefStore, ref: str) -> list[ReflogEntry]:
    """git's read_complete_reflog: the reflog of ``ref``, else of the name it resolves
    to, else of ``refs/<ref>``, else of ``refs/heads/<ref>``."""
    entries = await _own_reflog(store, ref)
    if not entries and check_refname_format(ref, allow_onelevel=True):
        try:
            last, oid = await store.resolve_name(ref)
        except (RefnameError, WorktreeNotFoundError):
            last, oid = None, None
        if last is not None and oid is not None and last != ref:
            entries = await _own_reflog(store, last)
    for full in (f"refs/{ref}", f"refs/heads/{ref}"):
        if entries:
            break
        entries = await _own_reflog(store, full)
    return entries


async def walk_reflog(store: RefStore, branch: str) -> tuple[str, list[ReflogEntry]]:
    """git's add_reflog_for_walk: the name the walk prints and its reflog (the complete
    reflog of ``branch``, else of the one name git's dwim_log finds for it)."""
    entries = await _complete_reflog(store, branch)
    if not entries:
        found = await store.dwim_log(branch)
        if len(found.matches) == 1 and found.ref is not None:
            branch = found.ref
            entries = await _complete_reflog(store, branch)
    return branch, entries


def _messages(found: ObjectName) -> str:
    """git's warnings and errors of an object name's lookup, as git prints them."""
    return "".join(m.render() for m in found.messages)


def _current_branch(name: str) -> str:
    """How git names HEAD's branch in its messages about ``@{N}``."""
    return name.removeprefix("refs/heads/") if name.startswith("refs/heads/") else "HEAD"


async def _walk_name(store: RefStore, typed_base: str) -> str:
    """The reflog a walk of ``typed_base`` reads (git: an empty name is HEAD's branch)."""
    if typed_base:
        return typed_base
    return await final_name(store, "HEAD")


async def _diagnose_missing_default(store: RefStore) -> Fatal:
    """git's diagnose_missing_default: no revision given and HEAD names no commit."""
    head = await store.read("HEAD")
    if head is None or head.target is None:
        return Fatal("your current branch appears to be broken")
    branch = head.target.removeprefix("refs/heads/")
    return Fatal(f"your current branch '{branch}' does not have any commits yet")


def _paths_unsupported() -> Unsupported:
    return Unsupported(
        "reflog show: a path (after '--', or a file) is not supported by aioreftable"
    )


async def show(store: RefStore, opts: ShowOptions) -> int:
    """git's cmd_log_reflog: the entries whose new id is a commit, newest first."""
    spec = opts.ref or "HEAD"
    typed, sel = _split(spec)
    if typed == "@":  # git's interpret_branch_name: "@" is HEAD
        typed = "HEAD"
    name = await _walk_name(store, typed)
    if not check_refname_format(name, allow_onelevel=True):
        raise Unsupported(
            f"reflog show: the revision expression '{spec}' is not supported by aioreftable "
            "(only ref names)"
        )
    try:
        if sel is None:  # git's get_oid: the dwim rules, with their warnings
            found = await store.get_oid(name)
            tip, warnings = found.oid, _messages(found)
            if tip is None:
                await _missing_revision(store, spec, warnings, given=opts.ref is not None)
            sys.stderr.write(warnings)
        else:  # git's get_oid_basic for name@{...}: the reflog dwim_log finds
            logs = await store.dwim_log(name)
            if logs.ref is None:
                raise Fatal(_AMBIGUOUS.format(spec))
            if logs.ambiguous:
                sys.stderr.write(f"warning: refname '{typed or name}' is ambiguous.\n")
            tip = logs.oid
            checked = await read_reflog(store, logs.ref)
            _read_ref_at(logs.ref, typed or _current_branch(name), checked, sel, tip)
        name, entries = await walk_reflog(store, name)
    except WorktreeNotFoundError:  # git: a ref that does not exist
        raise Fatal(_AMBIGUOUS.format(spec)) from None
    objects = store.objects
    assert objects is not None
    if sel is None and tip is not None and await objects.object_type(tip) != "commit":
        entries = []  # git walks the reflog of a name that is a commit only
    if opts.unrecognized is not None:
        raise Fatal(f"unrecognized argument: {opts.unrecognized}")
    if opts.paths:
        raise _paths_unsupported()
    if not entries:
        return 0
    first = 0  # newest first: where the walk starts (git's recno)
    if sel is not None and sel.index is not None:
        first = sel.index
    elif sel is not None and sel.at is not None:
        older = [k for k, e in enumerate(entries) if e.time <= sel.at]
        if not older:
            return 0
        first = older[0]
    by_date = (sel is not None and sel.at is not None) or (sel is None and opts.date is not None)
    now = now_for_dates()
    oldest_first = entries[::-1]
    start = len(entries) - first - 1
    null = store.hash_algorithm.null_id.hex()
    wanted = sorted({e.new for e in oldest_first[: start + 1] if e.new != null})
    kinds = await objects.lookup(wanted)
    picked: list[tuple[int, ReflogEntry]] = []
    for i in range(start, -1, -1):
        if opts.max_count >= 0 and len(picked) >= opts.max_count:
            break
        entry = oldest_first[i]
        info = kinds.get(entry.new)
        if info is not None and info.type == "commit":
            picked.append((len(entries) - 1 - i, entry))
    short = await objects.abbreviations({e.new for _, e in picked}, DEFAULT_ABBREV)
    short_name = await store.shorten(name)  # %gd: git's shorten_unambiguous_ref, loose
    out = sys.stdout
    for k, (n, entry) in enumerate(picked):
        when = show_date(entry.time, entry.tz, opts.date or "default", now) if by_date else n
        selector = f"{name}@{{{when}}}"
        if opts.format is None:
            message = entry.message if entry.message.endswith("\n") else entry.message + "\n"
            out.write(f"{short[entry.new]} {selector}: {message}")
            continue
        text, terminated = opts.format
        short_selector = f"{short_name}@{{{when}}}"
        line = expand(text, entry, selector, short_selector, short[entry.new])
        out.write(line + ("\n" if terminated or k + 1 < len(picked) else ""))
    return 0


_PLACEHOLDER = re.compile(r"%(%|n|x[0-9a-fA-F]{2}|H|h|gD|gd|gs|gn|ge|g[NEt]|.)", re.S)


def expand(text: str, entry: ReflogEntry, selector: str, short_selector: str, short: str) -> str:
    """git's format_commit_message for the placeholders a reflog entry answers without
    parsing its commit; others are refused (Unsupported), unknown ones kept as git does."""

    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "%":
            return "%"
        if key == "n":
            return "\n"
        if key.startswith("x") and len(key) == 3:
            return chr(int(key[1:], 16))
        if key == "H":
            return entry.new
        if key == "h":
            return short
        if key == "gD":
            return selector
        if key == "gd":
            return short_selector
        if key == "gs":
            return entry.message[:-1] if entry.message else ""
        if key == "gn":
            return entry.name
        if key == "ge":
            return entry.email
        if key in ("gN", "gE"):
            raise Unsupported(f"%{key} (mailmap) is not supported by aioreftable")
        if key in "sbBTtPpaAcCdDefNGmw<>+- ":
            raise Unsupported(
                f"the placeholder %{key} is not supported by aioreftable (it needs commit parsing)"
            )
        return m.group(0)

    return _PLACEHOLDER.sub(one, text)
