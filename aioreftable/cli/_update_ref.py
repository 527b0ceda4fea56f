"""`aioreftable update-ref`: git update-ref's command line (one ref, or the --stdin protocol)."""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any, BinaryIO

import anyio

from .. import RefStore, ReftableError, open_ref_store
from ._update_ref_stdin import Die, ObjectNames, StdinSession, die_text, reason, report

__all__ = ["add_parser"]

USAGE_EXIT = 129

# git 2.55's usage_with_options text (parse-options' layout of update-ref's options)
USAGE = """\
usage: git update-ref [<options>] -d <refname> [<old-oid>]
   or: git update-ref [<options>]    <refname> <new-oid> [<old-oid>]
   or: git update-ref [<options>] --stdin [-z] [--batch-updates]

    -m <reason>           reason of the update
    -d                    delete the reference
    --no-deref            update <refname> not the one it points to
    --deref               opposite of --no-deref
    -z                    stdin has NUL-terminated arguments
    --[no-]stdin          read updates from stdin
    --[no-]create-reflog  create a reflog
    -0, --[no-]batch-updates
                          batch reference updates

"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "update-ref",
        help="update, create, delete or verify refs like git update-ref (also --stdin)",
        add_help=True,
    )
    # git's usage text for -h (stdout) and for usage errors (stderr)
    setattr(p, "format_usage", lambda: USAGE)  # noqa: B010
    setattr(p, "format_help", lambda: USAGE)  # noqa: B010
    p.add_argument("-m", dest="message", metavar="REASON", default=None)
    p.add_argument("-d", dest="delete", action="store_true")
    p.add_argument("--no-deref", dest="no_deref", action="store_true")
    p.add_argument("--deref", dest="no_deref", action="store_false")
    p.add_argument("-z", dest="nul", action="store_true")
    p.add_argument("--stdin", dest="stdin", action="store_true")
    p.add_argument("--no-stdin", dest="stdin", action="store_false")
    p.add_argument("--create-reflog", dest="create_reflog", action="store_true")
    p.add_argument("--no-create-reflog", dest="create_reflog", action="store_false")
    p.add_argument("-0", "--batch-updates", dest="batch", action="store_true")
    p.add_argument("--no-batch-updates", dest="batch", action="store_false")
    p.add_argument("args", nargs="*", metavar="ARG")
    p.set_defaults(run=run_update_ref)


def run_update_ref(args: argparse.Namespace) -> int:
    return anyio.run(_run, args)


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _usage() -> int:
    sys.stderr.write(USAGE)
    return USAGE_EXIT


def _stdin() -> BinaryIO:
    """stdin's bytes (none when the process has no stdin, as git reads a closed one)."""
    stream: Any = sys.stdin
    if stream is None:
        return io.BytesIO()
    raw: BinaryIO = stream.buffer if hasattr(stream, "buffer") else stream
    return raw


async def _run(args: argparse.Namespace) -> int:
    async with open_ref_store(".") as store:
        try:
            return await _update_ref(store, args)
        except Die as exc:
            _err(die_text(exc.message))
            return 128


async def _update_ref(store: RefStore, args: argparse.Namespace) -> int:
    """git's cmd_update_ref after option parsing, in its order of checks."""
    if args.message is not None and not args.message:
        raise Die(b"Refusing to perform update with empty message.")
    message = args.message or ""
    if args.stdin:
        if args.delete or args.args:
            return _usage()
        session = StdinSession(
            store,
            nul=args.nul,
            batch=args.batch,
            message=message,
            create_reflog=args.create_reflog,
            no_deref=args.no_deref,
            out=_out,
            err=_err,
        )
        await session.run(_stdin())
        return 0
    if args.batch:
        raise Die(b"--batch-updates can only be used with --stdin")
    if args.nul:
        return _usage()
    names = ObjectNames(store, _err)
    positional: list[str] = args.args
    if args.delete:
        if not 1 <= len(positional) <= 2:
            return _usage()
        refname, new, oldval = positional[0], None, positional[1:2]
    else:
        if not 2 <= len(positional) <= 3:
            return _usage()
        refname, value, oldval = positional[0], positional[1], positional[2:3]
        new = await names.get(_encode(value))
        if new is None:
            raise Die(_encode(f"{value}: not a valid SHA1"))
    old: str | None = None
    if oldval:
        if not oldval[0]:
            old = names.null  # the ref must not exist (a delete: no check)
        else:
            old = await names.get(_encode(oldval[0]))
            if old is None:
                raise Die(_encode(f"{oldval[0]}: not a valid old SHA1"))
    if new is None:
        return await _delete(store, refname, None if old == names.null else old, args, message)
    try:
        async with store.transaction(message, create_reflog=args.create_reflog) as tx:
            tx.update(refname, new, old=old, no_deref=args.no_deref)
    except ReftableError as exc:
        raise Die(_encode(f"update_ref failed for ref '{refname}': {reason(exc)}")) from None
    return 0


async def _delete(
    store: RefStore, refname: str, old: str | None, args: argparse.Namespace, message: str
) -> int:
    """git's refs_delete_ref: an error is reported, not fatal (exit status 1)."""
    try:
        async with store.transaction(message) as tx:
            tx.delete(refname, old=old, no_deref=args.no_deref)
    except ReftableError as exc:
        _err(report("error: ", reason(exc)))
        return 1
    return 0


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
