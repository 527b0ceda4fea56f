"""The subcommands of the CLI: each module adds its parser and sets ``run`` on it."""

from __future__ import annotations

from types import ModuleType

from . import _demo, _dump, _gc, _show_ref, _watch

__all__ = ["COMMANDS"]

# Each module has ``add_parser(subparsers)``, which adds its command(s) and sets the
# parser's default ``run`` to the function that runs it (``run(args) -> exit status``).
# The order is the order of ``aioreftable -h``.
COMMANDS: tuple[ModuleType, ...] = (
    _demo,
    _dump,
    _show_ref,
    _watch,
    _gc,
)
