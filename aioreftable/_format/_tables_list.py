"""The tables.list format and table file names (git's ``format_name``), without I/O."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from .._errors import FormatError

__all__ = [
    "NAME_MAX",
    "TABLES_LIST",
    "format_table_name",
    "parse_tables_list",
    "render_tables_list",
]

TABLES_LIST = "tables.list"
NAME_MAX = 255  # bytes in one file name on every common file system


def format_table_name(min_update_index: int, max_update_index: int) -> str:
    """git's ``format_name``: ``0x%012x-0x%012x-%08x`` with a fresh 32-bit random part."""
    return f"0x{min_update_index:012x}-0x{max_update_index:012x}-{secrets.randbits(32):08x}"


def parse_tables_list(data: bytes, path: str | None = None) -> list[str]:
    """git's rules: LF after every line (including the last), empty lines skipped.

    Beyond git, a list is refused (FormatError naming it and the line's offset) before any
    table is opened when a name is not a plain file name of at most 255 ASCII characters,
    or when it appears twice. Other names are opened as git opens them: git reads a stack
    whose names break its own pattern and ``git refs verify`` only warns about them
    (t0614), so the pattern is a warning of ``RefStore.verify()``, not a refusal here."""
    if data and not data.endswith(b"\n"):
        raise FormatError("tables.list does not end in a newline", path=path, offset=len(data))
    names: list[str] = []
    seen: set[str] = set()
    offset = 0
    for line in data.split(b"\n"):
        at, offset = offset, offset + len(line) + 1
        if not line:
            continue
        if not line.isascii() or b"/" in line or b"\0" in line or line in (b".", b".."):
            raise FormatError(f"table name {line!r} is not a file name", path=path, offset=at)
        if len(line) > NAME_MAX:
            why = f"table name of {len(line)} characters (at most {NAME_MAX})"
            raise FormatError(why, path=path, offset=at)
        name = line.decode("ascii")
        if name in seen:
            raise FormatError(f"lists table {name} twice", path=path, offset=at)
        seen.add(name)
        names.append(name)
    return names


def render_tables_list(names: Iterable[str]) -> bytes:
    """The bytes of a tables.list naming ``names`` (oldest first), LF after each."""
    return b"".join(name.encode("ascii") + b"\n" for name in names)
