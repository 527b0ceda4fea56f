"""`aioreftable symbolic-ref`: read, set and delete symrefs like git symbolic-ref, via RefStore."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from .. import RefnameError, RefStore, ReftableError, check_refname_format, open_ref_store
from ._update_ref_stdin import reason
from ._usage import USAGE_EXIT

__all__ = ["add_parser", "run_symbolic_ref"]

FATAL_EXIT = 128


def add_parser(sub: Any) -> None:
    """Adds `symbolic-ref` to the subcommands (``sub``: argparse's subparsers action)."""
    p = sub.add_parser("symbolic-ref", help="read, modify and delete symbolic refs")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="suppress error message for non-symbolic (detached) refs")  # fmt: skip
    p.add_argument("-d", "--delete", action="store_true", help="delete symbolic ref")
    p.add_argument("--short", action="store_true", help="shorten ref output")
    p.add_argument("--recurse", dest="recurse", action="store_true", default=True,
                   help="recursively dereference (default)")  # fmt: skip
    p.add_argument("--no-recurse", dest="recurse", action="store_false",
                   help="show only the first target")  # fmt: skip
    p.add_argument("-m", dest="message", metavar="REASON", help="reason of the update")
    p.add_argument("names", nargs="*", metavar="NAME [REF]")
    p.set_defaults(run=run_symbolic_ref, parser=p)


def _die(message: str) -> int:
    print(f"fatal: {message}", file=sys.stderr)
    return FATAL_EXIT


def _usage(args: argparse.Namespace) -> int:
    args.parser.print_usage(sys.stderr)
    return USAGE_EXIT


def run_symbolic_ref(args: argparse.Namespace) -> int:
    if args.message is not None and not args.message:
        return _die("Refusing to perform update with empty message")
    names: list[str] = args.names
    if args.delete:
        if len(names) != 1:
            return _usage(args)
        return anyio.run(_delete, names[0])
    if len(names) == 1:
        return anyio.run(_show, args, names[0])
    if len(names) == 2:
        name, target = names
        if name == "HEAD" and not target.startswith("refs/"):
            return _die("Refusing to point HEAD outside of refs/")
        if not check_refname_format(target, allow_onelevel=True):
            return _die(f"Refusing to set '{name}' to invalid ref '{target}'")
        return anyio.run(_update, name, target, args.message)
    return _usage(args)


async def _resolve(store: RefStore, name: str, recurse: bool) -> tuple[str | None, bool]:
    """git's refs_resolve_ref_unsafe without RESOLVE_REF_READING (a missing ref ends the
    chain at its name): the name reached, None for a bad name or a chain too long; and
    whether ``name`` is a symref. ``recurse`` False: the first target only."""
    if not check_refname_format(name, allow_onelevel=True):
        return None, False
    try:
        ref = await store.read(name)
    except RefnameError:
        ref = None  # a name no backend holds: git reads nothing
    if ref is None or ref.target is None:
        return name, False
    if not recurse:
        return ref.target, True
    last, _ = await store.resolve_name(name)
    return last, True


async def _show(args: argparse.Namespace, name: str) -> int:
    async with open_ref_store(".", object_database=False) as store:
        target, is_symref = await _resolve(store, name, args.recurse)
        if target is None:
            return _die(f"No such ref: {name}")
        if not is_symref:
            if args.quiet:
                return 1
            return _die(f"ref {name} is not a symbolic ref")
        if args.short:
            target = await store.shorten(target, strict=False)
    print(target)
    return 0


async def _delete(name: str) -> int:
    async with open_ref_store(".") as store:
        target, is_symref = await _resolve(store, name, False)
        if target is None:
            return _die(f"No such ref: {name}")
        if not is_symref:
            return _die(f"Cannot delete {name}, not a symbolic ref")
        if name == "HEAD":
            return _die(f"deleting '{name}' is not allowed")
        try:
            async with store.transaction() as tx:
                tx.delete(name, no_deref=True)
        except ReftableError as e:
            print(f"error: {reason(e)}", file=sys.stderr)  # git's words for a lock
            return 1
    return 0


async def _update(name: str, target: str, message: str | None) -> int:
    async with open_ref_store(".") as store:
        try:
            async with store.transaction(message or "") as tx:
                tx.symref_update(name, target, no_deref=True)
        except ReftableError as e:
            print(f"error: {reason(e)}", file=sys.stderr)  # git's words for a lock
            return 1
    return 0
