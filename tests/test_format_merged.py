"""MergedTable semantics: newest wins, tombstones, log interleaving, linear skipping."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from aioreftable import FormatError
from aioreftable.lowlevel import (
    LogRecord,
    MergedTable,
    RefRecord,
    TableReader,
    TableWriter,
    WriteOptions,
)

A, B, C = b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20
Z = bytes(20)


def table(
    lo: int,
    hi: int,
    refs: Iterable[RefRecord] = (),
    logs: Iterable[LogRecord] = (),
    **opts: Any,  # WriteOptions fields
) -> TableReader:
    w = TableWriter(WriteOptions(**opts))
    w.set_limits(lo, hi)
    w.add_refs(refs)
    w.add_logs(logs)
    return TableReader.from_bytes(w.finish())


def log(name: bytes, ui: int, new: bytes, msg: bytes = b"m") -> LogRecord:
    return LogRecord(name, ui, old_id=Z, new_id=new, name=b"n", email=b"e", time=ui, message=msg)


def test_newest_table_wins_and_tombstones_hide() -> None:
    t1 = table(1, 1, [RefRecord.val1(b"refs/heads/a", 1, A), RefRecord.val1(b"refs/heads/b", 1, A)])
    t2 = table(
        2, 2, [RefRecord.val1(b"refs/heads/a", 2, B), RefRecord.deletion(b"refs/heads/b", 2)]
    )
    m = MergedTable([t1, t2])
    assert m.ref(b"refs/heads/a") == RefRecord.val1(b"refs/heads/a", 2, B)
    assert m.ref(b"refs/heads/b") is None
    assert m.ref(b"refs/heads/b", include_deletions=True) == RefRecord.deletion(b"refs/heads/b", 2)
    assert [r.refname for r in m.iter_refs()] == [b"refs/heads/a"]
    assert [r.refname for r in m.iter_refs(include_deletions=True)] == [
        b"refs/heads/a",
        b"refs/heads/b",
    ]
    assert (m.min_update_index, m.max_update_index) == (1, 2)
    assert [r.refname for r in m.refs_for(A)] == []  # shadowed by newer values
    assert [r.refname for r in m.refs_for(B)] == [b"refs/heads/a"]


def test_git_unit_test_merged_logs() -> None:
    # tables [a@2, a@1], [a@3], [a@2 deletion] -> a@3, a@2(deletion), a@1
    t1 = table(1, 2, logs=[log(b"a", 2, A), log(b"a", 1, A)])
    t2 = table(3, 3, logs=[log(b"a", 3, B)])
    t3 = table(4, 4, logs=[LogRecord.deletion(b"a", 2)])
    m = MergedTable([t1, t2, t3])
    got = [(r.update_index, r.is_deletion) for r in m.iter_logs(b"a", include_deletions=True)]
    assert got == [(3, False), (2, True), (1, False)]
    assert [r.update_index for r in m.iter_logs(b"a")] == [3, 1]
    assert [r.update_index for r in m.iter_logs()] == [3, 1]


def test_newer_log_entry_replaces_older_with_same_key() -> None:
    t1 = table(1, 1, logs=[log(b"HEAD", 1, A, b"old")])
    t2 = table(2, 2, logs=[log(b"HEAD", 1, C, b"rewritten")])
    (entry,) = MergedTable([t1, t2]).iter_logs(b"HEAD")
    assert (entry.new_id, entry.message) == (C, b"rewritten\n")


class CountingReader:
    """Wraps a reader and counts the records its iterators hand out."""

    def __init__(self, reader: TableReader):
        self.reader = reader
        self.hash = reader.hash
        self.min_update_index = reader.min_update_index
        self.max_update_index = reader.max_update_index
        self.pulled = 0

    def _count(self, it: Iterator[RefRecord]) -> Iterator[RefRecord]:
        for rec in it:
            self.pulled += 1
            yield rec

    def seek_refs(self, start: bytes = b"") -> Iterator[RefRecord]:
        return self._count(self.reader.seek_refs(start))


@pytest.mark.parametrize("n", [1000, 4000])
def test_skipping_tombstones_is_linear(n: int) -> None:
    names = [b"refs/heads/branch-%06d" % i for i in range(n)]
    base = table(1, 1, [RefRecord.val1(name, 1, A) for name in names])
    tomb = table(2, 2, [RefRecord.deletion(name, 2) for name in names[:-1]])
    readers = [CountingReader(base), CountingReader(tomb)]
    m = MergedTable(readers)  # type: ignore[arg-type]
    assert [r.refname for r in m.iter_refs(b"refs/heads/")] == [names[-1]]
    assert sum(r.pulled for r in readers) == 2 * n - 1  # every record once, nothing more


def test_mixed_hashes_are_refused() -> None:
    t1 = table(1, 1, [RefRecord.val1(b"refs/a", 1, A)])
    t2 = table(2, 2, [RefRecord.val1(b"refs/a", 2, bytes(32))], hash="sha256")
    with pytest.raises(FormatError):
        MergedTable([t1, t2])
    with pytest.raises(FormatError):
        MergedTable([t1], hash_name="sha256")


def test_empty_merged_table() -> None:
    m = MergedTable([])
    assert m.ref(b"HEAD") is None
    assert list(m.iter_refs()) == [] and list(m.iter_logs()) == []


def test_lowlevel_import_is_light() -> None:
    code = (
        "import sys, aioreftable.lowlevel as l; "
        "bad = [m for m in ('anyio', 'trio', 'asyncio', 'aioreftable._stack') "
        "if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
