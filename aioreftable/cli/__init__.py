"""The `aioreftable` command line: argparse front end over the public API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "run"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aioreftable", description=__doc__)
    p.add_argument("-C", dest="directory", metavar="DIR", help="run as if started in DIR")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="a repository with concurrent writers, readers and compaction"
    )
    demo.add_argument("--dir", help="create the repository here and keep it")
    demo.add_argument("--refs", type=int, default=3000, help="number of refs (default 3000)")
    demo.add_argument("--writers", type=int, default=4, help="concurrent writers (default 4)")
    demo.add_argument("--steps", type=int, default=10, help="commits per writer (default 10)")
    demo.add_argument("--limit", type=int, default=20, help="print at most N refs (0 = all)")
    from ._show_ref import add_parser as add_show_ref

    add_show_ref(sub)
    dump = sub.add_parser("dump", help="print a table or a reftable/ directory")
    dump.add_argument("path", help="a .ref file, a reftable/ directory or a repository")
    dump.add_argument("--json", action="store_true", help="machine-readable output")
    dump.add_argument("--no-records", action="store_true", help="blocks only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.directory:
        import os

        os.chdir(args.directory)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(args)
    if args.command == "show-ref":
        from ._show_ref import run_show_ref

        return run_show_ref(args)
    if args.command == "dump":
        from ._dump import run_dump

        return run_dump(args)
    raise AssertionError(args.command)  # pragma: no cover


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except BrokenPipeError:
        code = 0
    sys.exit(code)
