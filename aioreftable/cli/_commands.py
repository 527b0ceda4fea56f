"""The subcommands of the CLI: each module adds its parser and sets ``run`` on it."""

from __future__ import annotations

from types import ModuleType

from . import (
    _demo,
    _dump,
    _for_each_ref,
    _gc,
    _init,
    _pack_refs,
    _reflog,
    _refs_cmd,
    _show_ref,
    _stats,
    _symbolic_ref,
    _update_ref,
    _watch,
)

__all__ = ["COMMANDS"]

# Each module has ``add_parser(subparsers)``, which adds its command(s) and sets the
# parser's default ``run`` to the function that runs it (``run(args) -> exit status``).
# The order is the order of ``aioreftable -h``.
COMMANDS: tuple[ModuleType, ...] = (
    _init,
    _for_each_ref,
    _show_ref,
    _update_ref,
    _symbolic_ref,
    _reflog,
    _pack_refs,
    _refs_cmd,
    _stats,
    _watch,
    _gc,
    _dump,
    _demo,
)
