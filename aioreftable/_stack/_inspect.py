"""A stack directory read as it is, for checking: no lock, every table on its own (sync)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .._errors import ReftableError
from .._format._reader import TableReader
from .._format._tables_list import TABLES_LIST
from .._fs import OS

__all__ = ["Inspection", "inspect_stack"]


@dataclass(slots=True)
class Inspection:
    """What one stack directory holds. Close it to close the tables it opened.

    ``names`` is tables.list in order; ``tables`` the listed tables that opened and
    ``failures`` the error of each that did not; ``files`` every entry of the directory,
    sorted (empty if it cannot be listed); ``unlisted`` the max update index of each
    ``*.ref`` file tables.list does not name (None if it does not open as a table)."""

    names: list[str]
    tables: dict[str, TableReader] = field(default_factory=dict)
    failures: dict[str, OSError | ReftableError | ValueError] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    unlisted: dict[str, int | None] = field(default_factory=dict)

    def close(self) -> None:
        for reader in self.tables.values():
            reader.close()


def inspect_stack(directory: str, fs: OS | None = None) -> Inspection:
    """Read the stack in ``directory`` through the OS seam, in the caller's thread (a worker
    thread for async callers). A missing tables.list is an empty stack; any other failure
    to read it (a directory, a FIFO, a bad name) raises, naming it. Tables are opened one by
    one and a failure is recorded, not raised; nothing is locked or written."""
    fs = fs or OS()
    names = fs.read_names(os.path.join(directory, TABLES_LIST))
    found = Inspection(names)
    try:
        for name in names:
            try:
                found.tables[name] = fs.open_table(os.path.join(directory, name))
            except (OSError, ReftableError, ValueError) as e:
                found.failures[name] = e
        try:
            found.files = sorted(fs.listdir(directory))
        except OSError:
            found.files = []
        listed = set(names)
        for name in found.files:
            if name.endswith(".ref") and name not in listed:
                found.unlisted[name] = _top(fs, os.path.join(directory, name))
    except BaseException:
        found.close()
        raise
    return found


def _top(fs: OS, path: str) -> int | None:
    try:
        with fs.open_table(path) as reader:
            return reader.max_update_index
    except (OSError, ReftableError, ValueError):
        return None
