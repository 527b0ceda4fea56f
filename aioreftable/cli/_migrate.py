"""`aioreftable refs migrate`: git's refs migrate over ``aioreftable.migrate_refs``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from .. import NotARepositoryError, ReftableError, migrate_refs
from ._progress import progress

__all__ = ["add_parser", "run_migrate"]

USAGE_EXIT = 129
FATAL_EXIT = 128
NOT_A_REPOSITORY = "not a git repository (or any of the parent directories): .git"
ERROR_EXIT = 255  # git's cmd_refs_migrate returns error()'s -1: exit(-1)
_NO_VALUE = "\0no value"  # --ref-format given without one


def add_parser(sub: Any) -> None:
    """``migrate`` under ``refs`` (``_refs_cmd`` passes its subparsers)."""
    p = sub.add_parser(
        "migrate",
        usage="%(prog)s --ref-format=<format> [--no-reflog] [--dry-run]",
        help="migrate the refs to another ref storage format (git refs migrate)",
        description="Move every ref, symref and reflog to the files or the reftable "
        "format, as git refs migrate does: the new store is written into "
        "<git dir>/ref_migration.XXXXXX, then swapped in and the config updated.",
    )
    p.add_argument(
        "--ref-format",
        metavar="<format>",
        nargs="?",
        const=_NO_VALUE,
        help="specify the reference format to convert to",
    )
    p.add_argument("--dry-run", action="store_true", help="perform a non-destructive dry-run")
    p.add_argument("--no-dry-run", dest="dry_run", action="store_false", help=argparse.SUPPRESS)
    p.add_argument(
        "--no-reflog",
        dest="reflog",
        action="store_false",
        help="drop reflogs entirely during the migration",
    )
    p.add_argument("--reflog", dest="reflog", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (ours)")
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(run=run_migrate, reflog=True, migrate_parser=p)


def _shown(temp: Path, env: Mapping[str, str]) -> str:
    """The directory as git names it: under the git dir as git holds it (``GIT_DIR`` as
    given, ``.git`` from the work tree's top, ``.`` in a bare repository), else absolute."""
    given = env.get("GIT_DIR")
    if given:
        return f"{given}/{temp.name}"
    cwd = Path.cwd()
    git_dir = temp.parent
    for candidate in (cwd, *cwd.parents):
        if candidate / ".git" == git_dir:
            return f".git/{temp.name}"
        if candidate == git_dir:
            return f"./{temp.name}" if candidate == cwd else str(temp)
    return str(temp)


def _message(exc: BaseException) -> str:
    """git's error text: our message, or the OS's with the file named; then the notes
    (``migrated refs can be found at ...``) on their own lines."""
    if isinstance(exc, OSError):
        where = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
        reason = exc.strerror or str(exc)
        text = f"{': '.join(where)}: {reason}" if where else reason
    else:
        text = str(exc) or type(exc).__name__
    return "\n".join([text, *getattr(exc, "__notes__", ())])


def run_migrate(args: argparse.Namespace) -> int:
    """git refs migrate: usage errors exit 129, refusals and failures print ``error:`` and
    exit 255; a dry run prints where its result is."""
    if args.ref_format == _NO_VALUE:
        print("error: option `ref-format' requires a value", file=sys.stderr)
        args.migrate_parser.print_usage(sys.stderr)
        return USAGE_EXIT
    if args.rest:
        print("usage: too many arguments", file=sys.stderr)
        return USAGE_EXIT
    if args.ref_format is None:
        print("usage: missing --ref-format=<format>", file=sys.stderr)
        return USAGE_EXIT

    async def migrate() -> Path | None:
        with progress(None, "Migrating refs", args.quiet) as bar:
            return await migrate_refs(
                ".", to=args.ref_format, dry_run=args.dry_run, reflogs=args.reflog, progress=bar
            )

    try:
        temp = anyio.run(migrate)
    except NotARepositoryError:
        print(f"fatal: {NOT_A_REPOSITORY}", file=sys.stderr)
        return FATAL_EXIT
    except (ReftableError, OSError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return ERROR_EXIT
    if temp is not None:
        print(
            "Finished dry-run migration of refs, the result can be found at "
            f"'{_shown(temp, os.environ)}'"
        )
    return 0
