"""`aioreftable pack-refs` (git's, also `refs optimize`) and our `compact`: stack compaction."""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from typing import Any

import anyio

from .. import (
    DecompressionError,
    FormatError,
    LockError,
    NotExistError,
    OutdatedError,
    RefStore,
    ReftableError,
    open_ref_store,
)
from ..lowlevel import suggest_compaction_segment
from ._progress import progress
from ._usage import USAGE_EXIT, GitArgumentParser

__all__ = ["PACK_REFS_OPTIONS", "add_options", "add_parser", "planned_compaction", "run_pack_refs"]

#: git's PACK_REFS_OPTS: the options of pack-refs and of refs optimize.
PACK_REFS_OPTIONS = "[--all] [--no-prune] [--auto] [--include <pattern>] [--exclude <pattern>]"

# git's reftable error codes as the exit status of a command that returns them (exit(-n)),
# for the errors that stop the stack from opening; git prints nothing then.
_SILENT_EXIT = ((FormatError, 256 - 3), (NotExistError, 256 - 4))
# git's reftable_error_str of the errors a compaction meets (the first class that matches)
_GIT_REASONS: tuple[tuple[type[ReftableError], str], ...] = (
    (LockError, "data is locked"),
    (DecompressionError, "zlib failure"),
    (FormatError, "corrupt reftable file"),
    (NotExistError, "file does not exist"),
    (OutdatedError, "data concurrently modified"),
)
_LOCKED_CLEAN_EXIT = 256 - 5  # REFTABLE_LOCK_ERROR from reftable_stack_clean, no message
_ERROR_EXIT = 255  # git's error() returned from the command: exit(-1)


def add_options(p: GitArgumentParser) -> None:
    """git's pack_refs_core options. On reftable only ``--auto`` changes anything: the
    others select loose refs of the files backend and are accepted for scripts."""
    p.add_argument("--all", action="store_true", help="pack everything (no effect on reftable)")
    p.add_argument("--no-all", dest="all", action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--prune", action="store_true", default=True, help=argparse.SUPPRESS)
    p.add_argument("--no-prune", dest="prune", action="store_false", help="(no effect on reftable)")
    p.add_argument("--auto", action="store_true", help="compact only as git's heuristic asks")
    p.add_argument("--no-auto", dest="auto", action="store_false", help=argparse.SUPPRESS)
    for name in ("include", "exclude"):
        p.add_argument(
            f"--{name}",
            action="append",
            default=[],
            metavar="<pattern>",
            help=f"references to {name} (no effect on reftable)",
        )
        p.add_argument(f"--no-{name}", dest=name, action="store_const", const=[],
                       help=argparse.SUPPRESS)  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (ours)")
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pack-refs",
        help="compact the reftable stack (git pack-refs)",
        usage=f"%(prog)s {PACK_REFS_OPTIONS}",
    )
    add_options(p)
    p.set_defaults(run=run_pack_refs, usage_parser=p)
    c = sub.add_parser(
        "compact",
        help="compact the reftable stack and say what was done (ours)",
        description="Compact this worktree's stack into one table, or with --auto as git's "
        "geometric heuristic asks; then delete stale tables. Prints the tables before and "
        "after (nothing with -q).",
    )
    c.add_argument("--auto", action="store_true", help="only what git's heuristic asks for")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    c.set_defaults(run=run_compact)


# -- shared ----------------------------------------------------------------------------------
async def planned_compaction(store: RefStore, *, auto: bool) -> tuple[int, int] | None:
    """The tables (start, end exclusive) git's optimize would compact in this worktree's
    stack now: all of them, or git's geometric rule (lowlevel.suggest_compaction_segment)
    with the stack's factor; None when it would not compact."""
    async with AsyncExitStack() as scope:
        stack = await store.stack_for("current", scope)
        snap = await stack.snapshot()
        if not auto:
            return (0, len(snap)) if len(snap) > 1 else None
        return suggest_compaction_segment(snap.effective_sizes, stack.options.geometric_factor)


async def _table_count(store: RefStore) -> tuple[int, int]:
    """(tables, bytes) of this worktree's stack."""
    async with AsyncExitStack() as scope:
        snap = await (await store.stack_for("current", scope)).snapshot()
        return len(snap), sum(snap.file_sizes)


# -- pack-refs / refs optimize -----------------------------------------------------------------
async def _optimize(auto: bool, quiet: bool) -> int:
    try:
        async with open_ref_store(".", object_database=False) as store:
            with progress(None, "Compacting references", quiet):
                try:
                    await store.optimize(auto=auto)
                except LockError:
                    if await planned_compaction(store, auto=auto) is None:
                        return _LOCKED_CLEAN_EXIT  # git only failed to lock for its clean
                    return _compaction_failed(LockError)
                except (FormatError, NotExistError, OutdatedError) as e:
                    return _compaction_failed(type(e))
    except ReftableError as e:
        for kind, status in _SILENT_EXIT:
            if isinstance(e, kind):
                return status  # git's refs->err: the stack did not open
        raise
    return 0


def _compaction_failed(kind: type[ReftableError]) -> int:
    reason = next(text for cls, text in _GIT_REASONS if issubclass(kind, cls))
    print(f"error: unable to compact stack: {reason}", file=sys.stderr)
    return _ERROR_EXIT


def run_pack_refs(args: argparse.Namespace) -> int:
    """git pack-refs / refs optimize: prints nothing on success, git's error and status
    otherwise."""
    if args.rest:  # git: usage_with_options, no error line
        args.usage_parser.print_help(sys.stderr)
        return USAGE_EXIT
    return anyio.run(_optimize, args.auto, args.quiet)


# -- compact (ours) --------------------------------------------------------------------------
async def _compact(auto: bool, quiet: bool) -> int:
    async with open_ref_store(".", object_database=False) as store:
        before = await _table_count(store)
        with progress(None, "Compacting tables", quiet):
            done = await store.optimize(auto=auto)
        after = await _table_count(store)
    if not quiet:
        if done:
            print(f"compacted: {_tables(*before)} -> {_tables(*after)}")
        else:
            print(f"nothing to compact: {_tables(*after)}")
    return 0


def _tables(count: int, size: int) -> str:
    return f"{count} table{'' if count == 1 else 's'} ({size} bytes)"


def run_compact(args: argparse.Namespace) -> int:
    """Our compact: LockError and other errors become one ``fatal:`` line (exit 128)."""
    return anyio.run(_compact, args.auto, args.quiet)
