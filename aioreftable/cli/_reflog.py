"""`aioreftable reflog`: show, list, exists, delete, expire and drop as git prints them."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from .. import (
    DateError,
    ExpirePolicy,
    ReflogEntry,
    RefStore,
    WorktreeNotFoundError,
    check_refname_format,
    discover,
    open_ref_store,
)
from ..dates import (
    approxidate,
    now_for_dates,
    parse_expiry_date,
)
from ._reflog_options import (
    GitOptionError,
    HelpRequested,
    Option,
    Parsed,
    parse,
    print_usage,
)
from ._reflog_reach import Reachability
from ._reflog_show import (
    Fatal,
    Unsupported,
    parse_show_args,
    read_reflog,
)

__all__ = ["add_parser"]

USAGE_EXIT = 129
FATAL_EXIT = 128
ERROR_EXIT = 255  # a command returning git's error() (-1)
_DAY = 24 * 3600

_DRY_RUN = Option("dry-run", "do not actually prune any entries", short="n")
_REWRITE = Option(
    "rewrite", "rewrite the old SHA1 with the new SHA1 of the entry that now precedes it"
)
_UPDATEREF = Option("updateref", "update the reference to the value of the top reflog entry")
_VERBOSE = Option("verbose", "print extra information on screen")
DELETE_OPTIONS = (_DRY_RUN, _REWRITE, _UPDATEREF, _VERBOSE)
EXPIRE_OPTIONS = (
    *DELETE_OPTIONS,
    Option("expire", "prune entries older than the specified time", takes_value=True,
           argh="timestamp"),
    Option("expire-unreachable", "prune entries older than <time> that are not reachable "
           "from the current tip of the branch", takes_value=True, argh="timestamp"),
    Option("stale-fix", "prune any reflog entries that point to broken commits"),
    Option("all", "process the reflogs of all references"),
    Option("single-worktree", "limits processing to reflogs from the current worktree only"),
)  # fmt: skip
DROP_OPTIONS = (
    Option("all", "drop the reflogs of all references"),
    Option("single-worktree", "drop reflogs from the current worktree only"),
)
_OPTIONS: dict[str, tuple[Option, ...]] = {
    "show": (),
    "list": (),
    "exists": (),
    "delete": DELETE_OPTIONS,
    "expire": EXPIRE_OPTIONS,
    "drop": DROP_OPTIONS,
}


@dataclass(frozen=True)
class ExpireOptions:
    """How an expiry writes (git's --rewrite, --updateref, --dry-run)."""

    rewrite: bool = False
    update_ref: bool = False
    dry_run: bool = False

    def flags(self) -> dict[str, bool]:
        return {"rewrite": self.rewrite, "update_ref": self.update_ref, "dry_run": self.dry_run}


class _Usage(Exception):
    """git's usage_with_options (or usage(message)): stderr, exit 129."""

    def __init__(self, command: str, message: str | None = None):
        super().__init__(message)
        self.command = command
        self.message = message


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# -- which reflog a name means -------------------------------------------------------------
async def _dwim_log(store: RefStore, name: str) -> str | None:
    """git's repo_dwim_log: the reflog a name means (``RefStore.dwim_log``: the first rule's
    full name that resolves and has a reflog, or whose symref chain reaches one)."""
    return (await store.dwim_log(name)).ref


async def _reflog_names(store: RefStore) -> list[str]:
    """git's refs_for_each_reflog of this worktree: every name with a reflog (markers
    count), per-worktree names from this worktree's stack and the rest from the main one,
    in name order."""
    names: set[str] = set()
    async with AsyncExitStack() as scope:
        stacks: dict[str, Any] = {}
        for key in ("main", "current"):
            stack = await store.stack_for(key, scope)
            stacks.setdefault(str(id(stack)), (key, stack))
        for key, stack in stacks.values():
            snapshot = await stack.snapshot()

            def collect(snap: Any = snapshot) -> set[bytes]:
                return {log.refname for log in snap.iter_logs()}

            for raw in await anyio.to_thread.run_sync(collect):
                name = raw.decode("utf-8", "surrogateescape")
                if not check_refname_format(name, allow_onelevel=True):
                    continue
                if len(stacks) > 1 and store.route(name)[0] != key:
                    continue
                names.add(name)
    return sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))


# -- subcommands ---------------------------------------------------------------------------
async def _list(store: RefStore, parsed: Parsed) -> int:
    if parsed.args:
        _error(f"list does not accept arguments: '{parsed.args[0]}'")
        return ERROR_EXIT
    for name in await _reflog_names(store):
        sys.stdout.write(name + "\n")
    return 0


async def _exists(store: RefStore, parsed: Parsed) -> int:
    if not parsed.args:
        raise _Usage("exists")
    name = parsed.args[0]
    if not check_refname_format(name, allow_onelevel=True):
        raise Fatal(f"invalid ref format: {name}")
    try:
        return 0 if await store.reflog_exists(name) else 1
    except WorktreeNotFoundError:
        return 1


class Verbose:
    """git's should_expire_reflog_ent_verbose: ``keep``, ``prune`` or ``would prune`` and
    the entry's message, as stored (the library's entries decode it lossily, so the
    messages are read first, oldest first, and matched to the entries by position)."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        self.raw: list[ReflogEntry] = []
        self.seen = 0

    async def prepare(self, store: RefStore, name: str) -> None:
        self.raw = (await read_reflog(store, name))[::-1]
        self.seen = 0

    def __call__(self, entry: ReflogEntry, prune: bool) -> None:
        message = entry.message
        if self.seen < len(self.raw):
            raw = self.raw[self.seen]
            if (raw.old, raw.new, raw.time) == (entry.old, entry.new, entry.time):
                message = raw.message
        self.seen += 1
        verb = "keep" if not prune else ("would prune" if self.dry_run else "prune")
        sys.stdout.write(f"{verb} {message}")


_INDEX = re.compile(r"[ \t\n\v\f\r]*([+-]?)(\d+)\}")


async def _delete_one(store: RefStore, rev: str, options: ExpireOptions, verbose: bool) -> int:
    """git's reflog_delete for one ``ref@{spec}``."""
    at = rev.find("@{")
    if at < 0:
        _error(f"not a reflog: {rev}")
        return ERROR_EXIT
    name = await _dwim_log(store, rev[:at])
    if name is None:
        _error(f"no reflog for '{rev}'")
        return ERROR_EXIT
    spec = rev[at + 2 :]
    entries = await store.reflog(name, oldest_first=True)
    m = _INDEX.match(spec)  # git's strtoul followed by '}'
    if spec.startswith("}"):
        recno = len(entries)  # no digits: strtoul's 0
    elif m is not None and m.group(1) == "-":
        recno = -1  # strtoul wraps a negative number: no entry matches
    elif m is not None:
        recno = len(entries) - int(m.group(2))  # the recno-th oldest entry goes
    else:
        cutoff = approxidate(spec, now_for_dates())
        recno = sum(1 for e in entries if not cutoff or e.time < cutoff)
    seen = 0
    report = Verbose(options.dry_run) if verbose else None
    if report is not None:
        await report.prepare(store, name)

    def prune(entry: ReflogEntry) -> bool:
        nonlocal seen
        seen += 1
        verdict = recno > 0 and seen == recno
        if report is not None:
            report(entry, verdict)
        return verdict

    await store.expire_reflog(name, ExpirePolicy(should_prune=prune), **options.flags())
    return 0


async def _delete(store: RefStore, parsed: Parsed) -> int:
    options = ExpireOptions(
        rewrite=parsed.flag("rewrite"),
        update_ref=parsed.flag("updateref"),
        dry_run=parsed.flag("dry-run"),
    )
    if not parsed.args:
        _error("no reflog specified to delete")
        return ERROR_EXIT
    status = 0
    for rev in parsed.args:
        status |= await _delete_one(store, rev, options, parsed.flag("verbose"))
    return status


class _ExpirePlan:
    """``reflog expire``'s times: explicit ones, else git's defaults (90 and 30 days;
    gc.*reflogExpire* config is not read: see docs/cli.md); refs/stash never expires."""

    def __init__(self, parsed: Parsed):
        now = int(time.time())
        self.total = now - 90 * _DAY
        self.unreachable = now - 30 * _DAY
        self.explicit: set[str] = set()
        for option, value in parsed.order:
            if option not in ("expire", "expire-unreachable"):
                continue
            try:
                stamp = parse_expiry_date(value, now_for_dates())
            except DateError:
                raise Fatal(f"invalid timestamp '{value}' given to '--{option}'") from None
            if option == "expire":
                self.total = stamp
            else:
                self.unreachable = stamp
            self.explicit.add(option)

    def for_ref(self, name: str) -> tuple[int, int]:
        total, unreachable = self.total, self.unreachable
        if name == "refs/stash":
            if "expire" not in self.explicit:
                total = 0
            if "expire-unreachable" not in self.explicit:
                unreachable = 0
        return total, unreachable


def _is_head(name: str) -> bool:
    return name == "HEAD" or (
        name.endswith("/HEAD") and name.startswith(("worktrees/", "main-worktree/"))
        and name.count("/") == (2 if name.startswith("worktrees/") else 1)
    )  # fmt: skip


async def _expire_one(
    store: RefStore,
    name: str,
    plan: _ExpirePlan,
    options: ExpireOptions,
    report: Verbose | None,
    reach: Reachability,
) -> int:
    """refs_reflog_expire with git's should_expire_reflog_ent for one reflog."""
    if report is not None:
        await report.prepare(store, name)
    total, unreachable_before = plan.for_ref(name)
    mode = "always"
    if not unreachable_before or _is_head(name):
        mode = "head"
    else:
        ref = await store.read(name)
        tip = ref.oid if ref is not None and ref.target is None else None
        commit = (await reach.commits_of([tip]))[tip] if tip else None
        mode = "normal" if commit else "always"
        tips = [commit] if commit else []
    if unreachable_before <= total:
        mode = "always"
    if mode == "head":
        tips = await reach.tips_of_all_refs()
    if mode != "always":
        await reach.prepare(tips)

    async def decide(entry: ReflogEntry) -> bool:
        verdict = entry.time < total  # total is EXPIRE_ALL for now/all
        if not verdict and entry.time < unreachable_before:
            verdict = (
                mode == "always"
                or await reach.unreachable(entry.old)
                or await reach.unreachable(entry.new)
            )
        if report is not None:
            report(entry, verdict)
        return verdict

    await store.expire_reflog(name, ExpirePolicy(should_prune=decide), **options.flags())
    return 0


async def _expire(store: RefStore, parsed: Parsed) -> int:
    plan = _ExpirePlan(parsed)
    if parsed.flag("stale-fix"):
        raise Unsupported("reflog expire --stale-fix is not supported by aioreftable")
    dry_run = parsed.flag("dry-run")
    options = ExpireOptions(
        rewrite=parsed.flag("rewrite"), update_ref=parsed.flag("updateref"), dry_run=dry_run
    )
    verbose = parsed.flag("verbose")
    layout = await anyio.to_thread.run_sync(discover, ".")
    reach = Reachability(store, layout.common_dir)
    status = 0
    if parsed.flag("all"):
        await _refuse_other_worktrees(store, parsed)
        report = Verbose(dry_run) if verbose else None
        for name in await _reflog_names(store):
            status |= await _expire_one(store, name, plan, options, report, reach)
    for arg in parsed.args:
        found = await _dwim_log(store, arg)
        if found is None:
            _error(f"reflog could not be found: '{arg}'")
            status = ERROR_EXIT
            continue
        # git leaves dry_run unset for named refs: verbose says "prune" even with -n
        report = Verbose(False) if verbose else None
        status |= await _expire_one(store, found, plan, options, report, reach)
    return status


async def _refuse_other_worktrees(store: RefStore, parsed: Parsed) -> None:
    """``--all`` visits every worktree's reflogs in git; only this worktree's here."""
    if parsed.flag("single-worktree"):
        return
    layout = await anyio.to_thread.run_sync(discover, ".")
    worktrees = layout.common_dir / "worktrees"
    if await anyio.to_thread.run_sync(_has_entries, worktrees):
        raise Unsupported(
            "--all over linked worktrees is not supported by aioreftable: add --single-worktree"
        )


def _has_entries(path: Any) -> bool:
    try:
        return any(path.iterdir())
    except OSError:
        return False


async def _drop(store: RefStore, parsed: Parsed) -> int:
    if parsed.args and parsed.flag("all"):
        raise _Usage("drop", "references specified along with --all")
    status = 0
    if parsed.flag("all"):
        await _refuse_other_worktrees(store, parsed)
        for name in await _reflog_names(store):
            await store.delete_reflog(name)
        return 0
    for arg in parsed.args:
        found = await _dwim_log(store, arg)
        if found is None:
            _error(f"reflog could not be found: '{arg}'")
            status = ERROR_EXIT
            continue
        await store.delete_reflog(found)
    return status


async def _show(store: RefStore, parsed: Parsed) -> int:
    from ._reflog_show import show

    return await show(store, parse_show_args(parsed.args))


_RUN: dict[str, Callable[[RefStore, Parsed], Awaitable[int]]] = {
    "show": _show,
    "list": _list,
    "exists": _exists,
    "delete": _delete,
    "expire": _expire,
    "drop": _drop,
}


# -- the command -----------------------------------------------------------------------------
def _split_command(words: Sequence[str]) -> tuple[str, list[str]]:
    """git's OPT_SUBCOMMAND with PARSE_OPT_SUBCOMMAND_OPTIONAL: a known first word, else
    ``show`` with every word."""
    if words and words[0] in _RUN:
        return words[0], list(words[1:])
    if words and words[0] == "write":
        raise Unsupported("reflog write is not supported by aioreftable")
    return "", list(words)


def _parse(command: str, words: list[str]) -> Parsed:
    if command in ("", "show"):
        if "-h" in words[: words.index("--") if "--" in words else len(words)]:
            raise HelpRequested()
        return Parsed(args=words)
    return parse(words, _OPTIONS[command])


async def _main(command: str, parsed: Parsed) -> int:
    async with open_ref_store(".", verify_objects=False) as store:
        return await _RUN[command or "show"](store, parsed)


def run(args: argparse.Namespace) -> int:
    words: list[str] = list(args.words)
    command = ""
    try:
        command, rest = _split_command(words)
        parsed = _parse(command, rest)
        if command == "expire":
            _ExpirePlan(parsed)  # git's option callbacks die on a bad time while parsing
        return anyio.run(_main, command, parsed)
    except HelpRequested:
        print_usage(command, _OPTIONS.get(command, ()), to_stdout=True)
        return USAGE_EXIT
    except GitOptionError as e:
        _error(str(e))
        if e.usage:
            print_usage(command, _OPTIONS.get(command, ()), to_stdout=e.usage_to_stdout)
        return USAGE_EXIT
    except _Usage as e:
        if e.message is not None:
            print(f"usage: {e.message}", file=sys.stderr)
        else:
            print_usage(e.command, _OPTIONS.get(e.command, ()))
        return USAGE_EXIT
    except (Fatal, Unsupported) as e:
        print(f"fatal: {e}", file=sys.stderr)
        return FATAL_EXIT


def add_parser(sub: Any) -> None:
    """``reflog``: its words are parsed here, as git's parse-options would."""
    p = sub.add_parser(
        "reflog",
        help="show, list, delete, expire or drop reflog entries as git reflog does",
        add_help=False,
        prefix_chars="\x01",  # every word goes to the subcommand parser below
    )
    p.add_argument("words", nargs=argparse.REMAINDER)
    p.set_defaults(run=run)
