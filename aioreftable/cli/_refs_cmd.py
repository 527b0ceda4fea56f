"""`aioreftable refs`: git's verify, list, exists, optimize (and migrate, from `_migrate`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from typing import Any, NoReturn

import anyio

from .. import (
    DecompressionError,
    FormatError,
    NotExistError,
    RefnameError,
    RefStore,
    VerifyFinding,
    discover,
    open_ref_store,
)
from . import _for_each_ref, _migrate, _pack_refs
from ._progress import progress
from ._usage import USAGE_EXIT, GitArgumentParser, GitUsageError

__all__ = ["add_parser", "git_lines", "run_exists", "run_verify"]

FATAL_EXIT = 128
ERROR_EXIT = 255  # git's commands return -1 for their errors: exit(-1)

#: git's fsck message types that are FSCK_INFO: reported as warnings, never made errors by
#: --strict (the others the library reports as warnings are FSCK_WARN).
INFO_CODES = frozenset({"symrefTargetIsNotARef"})
BROKEN_STACK = "badReftableStack"  # git's plain error() for a stack that does not open
TABLE_NAME = "badReftableTableName"
BAD_TABLE = "badReftableTable"  # ours: a table that does not decode


# git's usage lines of the subcommands, after "git refs <name> "
_USAGE_TAILS = {
    "migrate": "--ref-format=<format> [--no-reflog] [--dry-run]",
    "verify": "[--strict] [--verbose]",
    "list": "[<for-each-ref options>] [<pattern>...]",
    "exists": "<ref>",
    "optimize": _pack_refs.PACK_REFS_OPTIONS,
}


class _RefsParser(GitArgumentParser):
    """git's OPT_SUBCOMMAND wording for a missing or unknown subcommand."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument SUBCOMMAND: invalid choice: "):
            word = message.split("'")[1]
            raise GitUsageError(f"unknown subcommand: `{word}'", self)
        super().error(message)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("refs", help="verify, list, check and optimize references (git refs)")
    p.__class__ = _RefsParser  # argparse builds every subparser with the action's one class
    refs = p.add_subparsers(dest="refs_command", metavar="SUBCOMMAND")
    _migrate.add_parser(refs)

    v = refs.add_parser(
        "verify",
        usage="%(prog)s [--strict] [--verbose]",
        help="check the reftable stacks of every worktree (git refs verify)",
        description="git's checks, printed as git prints them; with --deep also "
        "aioreftable's own (every block, checksums, key order, indexes, update indexes, "
        "stale or unlisted tables, lock and temp files, ref names), each line prefixed "
        "'aioreftable: '.",
    )
    v.add_argument("--strict", action="store_true", help="enable strict checking")
    v.add_argument("--no-strict", dest="strict", action="store_false", help=argparse.SUPPRESS)
    v.add_argument("--verbose", action="store_true", help="be verbose")
    v.add_argument("--no-verbose", dest="verbose", action="store_false", help=argparse.SUPPRESS)
    v.add_argument("--deep", action="store_true", help="also our own checks (ours)")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar (ours)")
    v.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    v.set_defaults(run=run_verify)

    _add_list(refs)

    e = refs.add_parser(
        "exists", usage="%(prog)s <ref>", help="check whether a reference exists (git refs exists)"
    )
    e.add_argument("refs", nargs="*", metavar="<ref>")
    e.set_defaults(run=run_exists)

    o = refs.add_parser(
        "optimize",
        usage=f"%(prog)s {_pack_refs.PACK_REFS_OPTIONS}",
        help="compact the reftable stack (git refs optimize)",
    )
    _pack_refs.add_options(o)
    o.set_defaults(run=_pack_refs.run_pack_refs, usage_parser=o)

    p.set_defaults(run=_need_subcommand, usage_parser=p)
    p.usage = "\n   or: ".join(
        f"%(prog)s {name} {_USAGE_TAILS.get(name, '...')}" for name in refs.choices
    )


class _AsList:
    """`_for_each_ref.add_parser` adding its parser as `refs list` (git's cmd_refs_list is
    for_each_ref_core with another usage): the options and run stay for-each-ref's."""

    def __init__(self, refs: Any):
        self.refs = refs

    def add_parser(self, name: str, **kwargs: Any) -> GitArgumentParser:
        kwargs["help"] = "list references (git refs list: for-each-ref's options)"
        parser: GitArgumentParser = self.refs.add_parser("list", **kwargs)
        return parser


def _add_list(refs: Any) -> None:
    _for_each_ref.add_parser(_AsList(refs))


def _need_subcommand(args: argparse.Namespace) -> int:
    print("error: need a subcommand", file=sys.stderr)
    args.usage_parser.print_usage(sys.stderr)
    return USAGE_EXIT


# -- exists ----------------------------------------------------------------------------------
async def _exists(name: str) -> int:
    try:
        async with open_ref_store(".", object_database=False) as store:
            try:
                found = await store.read(name)
            except RefnameError:  # git's raw read does not find such names (ENOENT)
                found = None
    except (FormatError, NotExistError):
        # git's store did not open: its read fails with that error and no errno set
        print("error: failed to look up reference: Success", file=sys.stderr)
        return 1
    if found is None:
        print("error: reference does not exist", file=sys.stderr)
        return 2
    return 0


def run_exists(args: argparse.Namespace) -> int:
    """git refs exists: 0 if the ref exists (a dangling symref does), 2 if not."""
    if len(args.refs) != 1:
        print("fatal: 'git refs exists' requires a reference", file=sys.stderr)
        return FATAL_EXIT
    return anyio.run(_exists, args.refs[0])


# -- verify ----------------------------------------------------------------------------------
def _severity(finding: VerifyFinding, strict: bool) -> str:
    if strict and finding.severity == "warning" and finding.code not in INFO_CODES:
        return "error"
    return finding.severity


def _stack_of(finding: VerifyFinding) -> str | None:
    """The worktree id of a git finding's stack (None: the main stack)."""
    if finding.code == BROKEN_STACK:
        parts = finding.path.split("/")
        return parts[1] if parts[0] == "worktrees" and len(parts) > 1 else None
    if finding.path.startswith("worktrees/"):
        return finding.path.split("/")[1]
    return None


def _is_git(finding: VerifyFinding) -> bool:
    """Whether git 2.55 prints this finding (a broken main stack: git crashes instead)."""
    return finding.from_git or finding.code == BROKEN_STACK


def git_lines(
    findings: Sequence[VerifyFinding],
    *,
    strict: bool = False,
    main_tables: Sequence[str] | None = None,
) -> Iterator[tuple[str, bool]]:
    """git's ``refs verify`` stderr lines for the findings (the library gives them stack by
    stack, in git's order) and whether each is an error.

    ``main_tables`` (with --verbose): the main stack's table names, for git's "Checking
    ..." lines, each table's findings after its line. Linked worktrees get their
    "Checking references consistency" line only when they have findings (the public API
    does not list worktrees)."""
    git = [f for f in findings if _is_git(f)]
    if main_tables is None:
        for f in git:
            yield _git_line(f, strict)
        return
    header = ("Checking references consistency", False)
    yield header
    for name in main_tables:
        yield f"Checking table: {name}", False
        for f in git:
            if f.code == TABLE_NAME and f.path == name:
                yield _git_line(f, strict)
    current: str | None = None  # the stack of the last line: None is main
    pending = False  # a header was printed for a worktree not yet named by a finding
    for f in git:
        if f.code == TABLE_NAME:
            if f.path in main_tables:
                continue
            if not pending:  # a worktree's table: its stack is named by what follows
                yield header
                pending = True
            yield _git_line(f, strict)
            continue
        wid = _stack_of(f)
        if wid != current:
            current = wid
            if not pending:
                yield header
        pending = False
        yield _git_line(f, strict)


def _git_line(f: VerifyFinding, strict: bool) -> tuple[str, bool]:
    if f.code == BROKEN_STACK:
        return f"error: {f.message}", True
    severity = _severity(f, strict)
    return f"{severity}: {f.path}: {f.code}: {f.message}", severity == "error"


async def _main_tables(store: RefStore) -> Sequence[str]:
    async with AsyncExitStack() as scope:
        snap = await (await store.stack_for("main", scope)).snapshot()
        return snap.table_names


async def _refs_read(store: RefStore) -> bool:
    """Whether every ref decodes: git's verify reads them all and dies on a ref block that
    does not decode (git 2.55: SIGABRT or SIGSEGV), where it is silent on a log block."""
    try:
        async for _ in store.iterate(include_root_refs=True):
            pass
    except DecompressionError:  # a log block (ref blocks are never compressed)
        return True
    except FormatError:
        return False
    return True


async def _verify(args: argparse.Namespace) -> int:
    # every worktree's stacks are checked wherever verify runs: open the store of the main
    # worktree, so that a linked worktree whose own stack is broken is reported as git does
    layout = await anyio.to_thread.run_sync(discover, ".")
    try:
        async with open_ref_store(layout.common_dir, object_database=False) as store:
            with progress(None, "Checking references", args.quiet):
                findings = await store.verify()
            tables = await _main_tables(store) if args.verbose else None
            git_dies = any(f.code == BAD_TABLE for f in findings) and not await _refs_read(store)
    except (FormatError, NotExistError) as e:  # git 2.55 crashes (SIGSEGV) here
        print("error: reftable stack for worktree 'main' is broken", file=sys.stderr)
        print(f"aioreftable: error: {e}", file=sys.stderr)
        return ERROR_EXIT
    failed = False
    for line, is_error in git_lines(findings, strict=args.strict, main_tables=tables):
        print(line, file=sys.stderr)
        failed |= is_error
    main_broken = any(f.code == BROKEN_STACK and _stack_of(f) is None for f in findings)
    if args.deep or main_broken or git_dies:  # git crashes on these: say why
        for f in findings:
            if _is_git(f):
                continue
            severity = _severity(f, args.strict)
            print(f"aioreftable: {severity}: {f.path}: {f.code}: {f.message}", file=sys.stderr)
            failed |= severity == "error"
    return ERROR_EXIT if failed else 0


def run_verify(args: argparse.Namespace) -> int:
    """git refs verify: git's lines on stderr, 255 if any is an error."""
    if args.rest:
        print("usage: 'git refs verify' takes no arguments", file=sys.stderr)
        return USAGE_EXIT
    return anyio.run(_verify, args)
