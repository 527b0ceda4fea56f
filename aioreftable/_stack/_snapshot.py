"""Snapshot: an immutable merged view of one tables.list generation, with sync reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import final

from .._format._layout import HashAlgorithm, HashName, footer_size, header_size
from .._format._merged import MergedTable
from .._format._reader import TableReader
from .._format._records import LogRecord, RefRecord

__all__ = ["Snapshot", "effective_size"]


def effective_size(reader: TableReader, version: int) -> int:
    """git's size for the compaction heuristic: file size - footer - (header - 1), that is
    file size - 91 for v1 and - 99 for v2 (an empty table counts 1)."""
    return reader.file_size - footer_size(version) - (header_size(version) - 1)


@final
class Snapshot:
    """The tables of one tables.list generation, oldest first, merged newest-wins.

    Reads are synchronous and never touch the disk layout again: the snapshot holds its
    tables (and iterators hold them too), so a concurrent compaction that deletes the
    files does not disturb it. Tombstones are hidden unless asked for."""

    __slots__ = ("_merged", "_names", "_readers", "_version", "generation")

    def __init__(
        self,
        names: Sequence[str],
        readers: Sequence[TableReader],
        hash: HashAlgorithm,
        generation: int,
    ):
        self._names = tuple(names)
        self._readers = tuple(readers)
        self._merged = MergedTable(self._readers, hash=hash)
        self._version = hash.table_version  # the stack's, as git sizes its tables
        self.generation = generation

    # -- shape -----------------------------------------------------------------------------
    @property
    def table_names(self) -> tuple[str, ...]:
        """Names of the tables, oldest (index 0) first, as in tables.list."""
        return self._names

    @property
    def readers(self) -> tuple[TableReader, ...]:
        return self._readers

    @property
    def hash(self) -> HashAlgorithm:
        """The stack's hash (every table uses it)."""
        return self._merged.hash

    @property
    def hash_name(self) -> HashName:
        return self._merged.hash.name

    def __len__(self) -> int:
        return len(self._names)

    @property
    def max_update_index(self) -> int:
        """The top table's max update index (0 for an empty stack)."""
        return self._readers[-1].max_update_index if self._readers else 0

    @property
    def next_update_index(self) -> int:
        return self.max_update_index + 1

    @property
    def file_sizes(self) -> tuple[int, ...]:
        return tuple(r.file_size for r in self._readers)

    @property
    def effective_sizes(self) -> tuple[int, ...]:
        """Sizes as git's compaction heuristic sees them."""
        return tuple(effective_size(r, self._version) for r in self._readers)

    # -- reads -----------------------------------------------------------------------------
    def ref(self, refname: bytes, *, include_deletions: bool = False) -> RefRecord | None:
        """The current record of ``refname``, or None if it does not exist."""
        return self._merged.ref(refname, include_deletions=include_deletions)

    def iter_refs(
        self, prefix: bytes = b"", *, include_deletions: bool = False
    ) -> Iterator[RefRecord]:
        """Refs whose names start with ``prefix``, sorted by name."""
        return self._merged.iter_refs(prefix, include_deletions=include_deletions)

    def seek_refs(
        self, start: bytes = b"", *, include_deletions: bool = False
    ) -> Iterator[RefRecord]:
        """Refs with names >= ``start``, sorted by name."""
        return self._merged.seek_refs(start, include_deletions=include_deletions)

    def iter_logs(
        self, refname: bytes | None = None, *, include_deletions: bool = False
    ) -> Iterator[LogRecord]:
        """Log records of ``refname`` newest first, or of every ref (by name) if None."""
        return self._merged.iter_logs(refname, include_deletions=include_deletions)

    def refs_for(self, oid: bytes) -> Iterator[RefRecord]:
        """Live refs whose value or peeled value is ``oid``, sorted by name."""
        return self._merged.refs_for(oid)

    def __repr__(self) -> str:
        return f"<Snapshot generation={self.generation} tables={len(self._names)}>"
