"""The `aioreftable` command line: argparse front end over the public API."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence

from .. import FormatError, ReftableError
from ._commands import COMMANDS
from ._usage import USAGE_EXIT, GitArgumentParser, GitUsageError, HelpShown

__all__ = ["main", "run"]

FATAL_EXIT = 128  # git's exit status for die()


def _parser() -> GitArgumentParser:
    p = GitArgumentParser(prog="aioreftable", description=__doc__)
    p.add_argument(
        "-C",
        dest="directories",
        metavar="DIR",
        action="append",
        default=[],
        help="run as if started in DIR (repeatable, each relative to the one before)",
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return p


def _command_args(argv: Sequence[str]) -> tuple[str | None, Sequence[str]]:
    """The subcommand and the arguments after it (top-level options skipped)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-C":
            i += 2
            continue
        if not arg.startswith("-"):
            return arg, argv[i + 1 :]
        i += 1
    return None, ()


def _describe(exc: BaseException) -> str:
    """One line for the user: the file (and offset) for format and OS errors."""
    if isinstance(exc, OSError):
        where = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
        reason = exc.strerror or str(exc)
        return f"{': '.join(where)}: {reason}" if where else reason
    if isinstance(exc, FormatError):
        return str(exc)
    return str(exc) or type(exc).__name__


def _user_error(exc: BaseException) -> BaseException | None:
    """The first of our errors or an OS error in ``exc`` (also inside task-group groups)."""
    if isinstance(exc, (ReftableError, OSError)):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _user_error(inner)
            if found is not None:
                return found
    return None


def _dispatch(args: argparse.Namespace) -> int:
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


def _fatal(message: str) -> int:
    print(f"fatal: {message}", file=sys.stderr)
    return FATAL_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns git's exit status (0, 1, 2, 128 fatal, 129 usage).

    Every error aioreftable raises on purpose and every OS error becomes one ``fatal:``
    line here, in one place, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _bytes_through()
    parser = _parser()
    try:
        command, rest = _command_args(argv)
        values: dict[str, object] = {}
        if command == "show-ref":
            from ._show_ref import preparse

            options, values = preparse(rest)
            argv = [*argv[: len(argv) - len(rest)], *options]
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported with the usage of the command they were given to
            parser.innermost(args).error(f"unrecognized arguments: {' '.join(extra)}")
        vars(args).update(values)
        if args.version:
            from .. import __version__
            from ..lowlevel import ACCELERATED

            print(f"aioreftable version {__version__}")
            print(f"block decoder: {'compiled' if ACCELERATED else 'pure Python'}")
            return 0
        if args.command is None:
            parser.error("a command is required")
    except HelpShown:
        return USAGE_EXIT
    except GitUsageError as e:
        print(f"error: {e}", file=sys.stderr)
        if e.usage:
            (e.parser or parser).print_usage(sys.stderr)
        return USAGE_EXIT
    for directory in args.directories:
        if not directory:
            continue  # git ignores -C ""
        try:
            os.chdir(directory)
        except OSError as e:
            return _fatal(f"cannot change to '{directory}': {e.strerror}")
    try:
        return _dispatch(args)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        return 130
    except BaseException as e:
        found = _user_error(e)
        if found is None:
            raise
        if isinstance(found, BrokenPipeError):
            return _quiet_broken_pipe()
        return _fatal(_describe(found))


def _bytes_through() -> None:
    """Ref names are bytes (decoded with surrogateescape): write them back unchanged, as
    git does, instead of failing on a name that is not UTF-8."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")


def _quiet_broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly, also at interpreter exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
