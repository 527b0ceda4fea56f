"""MergedTable: the k-way merge of a stack's tables, newest winning per key."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from .._errors import FormatError, UsageError
from ._layout import SHA1, HashAlgorithm, HashName
from ._reader import TableReader
from ._records import LogRecord, RefRecord, RefValueType, log_key

__all__ = ["MergedTable", "merge_iterators"]

T = TypeVar("T")


def merge_iterators(iterators: Sequence[Iterator[T]], key: Callable[[T], bytes]) -> Iterator[T]:
    """Merge sorted iterators; ``iterators[i]`` with higher ``i`` is newer and shadows equal
    keys of older ones. Every record is popped once: linear in the total number of records."""
    if len(iterators) == 1:  # nothing to merge: no heap, no key calls
        yield from iterators[0]
        return
    heap: list[tuple[bytes, int, T, Iterator[T]]] = []
    for i, it in enumerate(iterators):
        for rec in it:
            heap.append((key(rec), -i, rec, it))
            break
    heapq.heapify(heap)
    while heap:
        k, neg, rec, it = heap[0]
        nxt = next(it, None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (key(nxt), neg, nxt, it))
        while heap and heap[0][0] == k:  # shadowed by the newer record just taken
            _, sneg, _, sit = heap[0]
            snxt = next(sit, None)
            if snxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (key(snxt), sneg, snxt, sit))
        yield rec


def _live_refs(records: Iterator[RefRecord]) -> Iterator[RefRecord]:
    deletion = RefValueType.DELETION
    for rec in records:
        if rec[2] != deletion:  # value_type
            yield rec


def _ref_key(rec: RefRecord) -> bytes:
    return rec.refname


def _log_key(rec: LogRecord) -> bytes:
    return rec.key


class MergedTable:
    """A read-only merged view of ``readers`` (oldest first, like tables.list).

    Every table must use one hash, also ``hash`` (or ``hash_name``) when given: the stack's
    (FormatError otherwise). With neither and no tables the hash is SHA-1.
    """

    def __init__(
        self,
        readers: Sequence[TableReader],
        *,
        hash_name: str | None = None,
        hash: HashAlgorithm | None = None,
    ):
        self.readers = tuple(readers)
        algorithms = {r.hash for r in self.readers}
        if hash is not None:
            algorithms.add(hash)
        if hash_name is not None:
            try:
                algorithms.add(HashAlgorithm.by_name(hash_name))
            except ValueError as e:
                raise UsageError(str(e)) from None
        if len(algorithms) > 1:
            names = sorted(a.name for a in algorithms)
            raise FormatError(f"tables of a stack mix hash functions: {names}")
        self.hash: HashAlgorithm = algorithms.pop() if algorithms else SHA1

    @property
    def hash_name(self) -> HashName:
        """The hash's name (``hash.name``)."""
        return self.hash.name

    @property
    def hash_size(self) -> int:
        """Bytes of a raw object id (``hash.size``)."""
        return self.hash.size

    @property
    def min_update_index(self) -> int:
        return min((r.min_update_index for r in self.readers), default=0)

    @property
    def max_update_index(self) -> int:
        return max((r.max_update_index for r in self.readers), default=0)

    def ref(self, refname: bytes, *, include_deletions: bool = False) -> RefRecord | None:
        """The newest record of ``refname``; a tombstone reads as None unless asked for."""
        for reader in reversed(self.readers):
            key_range = reader.ref_range()
            if key_range is None or not key_range[0] <= refname <= key_range[1]:
                continue  # cheaper than a seek: the name cannot be in this table
            rec = reader.ref(refname)
            if rec is not None:
                if rec.value_type == RefValueType.DELETION and not include_deletions:
                    return None
                return rec
        return None

    def seek_refs(
        self, start: bytes = b"", *, include_deletions: bool = False
    ) -> Iterator[RefRecord]:
        merged = merge_iterators([r.seek_refs(start) for r in self.readers], _ref_key)
        if include_deletions:
            return merged
        return _live_refs(merged)

    def iter_refs(
        self, prefix: bytes = b"", *, include_deletions: bool = False
    ) -> Iterator[RefRecord]:
        """Live refs (and tombstones if asked) whose names start with ``prefix``, sorted."""
        deletion = RefValueType.DELETION
        for rec in self.seek_refs(prefix, include_deletions=True):
            if not rec[0].startswith(prefix):  # refname
                return
            if include_deletions or rec[2] != deletion:  # value_type
                yield rec

    def seek_logs(
        self, start: bytes = b"", *, include_deletions: bool = False
    ) -> Iterator[LogRecord]:
        merged = merge_iterators([r.seek_logs(start) for r in self.readers], _log_key)
        if include_deletions:
            return merged
        return (r for r in merged if not r.is_deletion)

    def iter_logs(
        self, refname: bytes | None = None, *, include_deletions: bool = False
    ) -> Iterator[LogRecord]:
        """Log records of one ref newest first, or of all refs by refname."""
        if refname is None:
            yield from self.seek_logs(include_deletions=include_deletions)
            return
        start = log_key(refname, (1 << 64) - 1)
        for rec in self.seek_logs(start, include_deletions=True):
            if rec.refname != refname:
                return
            if include_deletions or not rec.is_deletion:
                yield rec

    def refs_for(self, oid: bytes) -> Iterator[RefRecord]:
        """Live refs pointing at ``oid`` (directly or peeled), sorted by name."""
        names: set[bytes] = set()
        for reader in self.readers:
            names.update(rec.refname for rec in reader.refs_for(oid))
        for name in sorted(names):
            rec = self.ref(name)
            if rec is not None and (
                rec.value == oid
                or (rec.value_type == RefValueType.VAL2 and rec.target_value == oid)
            ):
                yield rec

    def records(self) -> Iterator[Any]:  # pragma: no cover - convenience for debugging
        yield from self.seek_refs(include_deletions=True)
        yield from self.seek_logs(include_deletions=True)
