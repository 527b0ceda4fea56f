"""`aioreftable watch [PREFIX]`: print each committed ref update as git's
reference-transaction hook shows it, ``<old> <new> <refname>``, until interrupted."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from .. import open_ref_store

__all__ = ["add_parser", "run_watch"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "watch",
        help="print ref updates as they are committed (by any process), until interrupted",
        description=__doc__,
    )
    p.add_argument("prefix", nargs="?", default="", help="only refs whose name starts so")
    p.add_argument(
        "--since",
        type=int,
        metavar="N",
        help="first replay the updates after update index N (if the stack still has them)",
    )
    p.add_argument(
        "--poll",
        type=float,
        metavar="SECONDS",
        help="check tables.list every SECONDS instead of waiting on inotify",
    )
    p.add_argument(
        "--update-index",
        action="store_true",
        help="end each line with the update's index (to resume with --since)",
    )
    p.set_defaults(run=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    if args.poll is not None and not args.poll > 0:
        raise SystemExit(_usage("--poll needs a positive number of seconds"))
    if args.since is not None and args.since < 0:
        raise SystemExit(_usage("--since needs an update index >= 0"))
    anyio.run(_watch, args)
    return 0


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 129


async def _watch(args: argparse.Namespace) -> None:
    out = sys.stdout
    async with (
        open_ref_store(".", object_database=False) as store,
        store.watch(args.prefix, since=args.since, poll_interval=args.poll) as feed,
    ):
        async for change in feed:
            line = f"{change.old} {change.new} {change.refname}"
            if args.update_index:
                line += f" {change.update_index}"
            out.write(line + "\n")
            out.flush()
