"""`aioreftable refs migrate` (being written): `_refs_cmd` calls add_parser with its subparsers."""

from __future__ import annotations

from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Adds the command's parser and sets its ``run`` (not yet: being written)."""
