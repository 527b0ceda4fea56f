"""`aioreftable refs` verify, list, exists, optimize, migrate (being written: no command yet)."""

from __future__ import annotations

from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Adds the command's parser and sets its ``run`` (not yet: being written)."""
