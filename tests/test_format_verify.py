"""Deep table checks: clean on git's tables, findings (never exceptions) on damaged ones."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioreftable import FormatError
from aioreftable._format._verify import check_table, iter_findings
from aioreftable.lowlevel import RefRecord, TableReader, TableWriter, WriteOptions

OID = b"\x11" * 20


def table(names: list[bytes], **opts: Any) -> bytes:
    w = TableWriter(WriteOptions(**opts))
    w.set_limits(1, 1)
    for name in names:
        w.add_ref(RefRecord.val1(name, 1, OID))
    return w.finish()


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.ref")))
def test_git_tables_are_clean(name: str) -> None:
    assert check_table(TableReader.from_path(DATA / name)) == []


def test_keys_out_of_order_are_found() -> None:
    data = bytearray(table([b"refs/heads/a", b"refs/heads/b", b"refs/heads/c"], restart_interval=1))
    at = data.index(b"refs/heads/b") + len(b"refs/heads/")
    data[at] = ord("Z")  # now a, Z, c
    findings = check_table(TableReader.from_bytes(bytes(data)))
    assert any("out of order" in f.message for f in findings), findings


def test_bad_index_entry_is_found() -> None:
    names = [b"refs/heads/%04d" % i for i in range(200)]
    good = table(names, block_size=256)
    r = TableReader.from_bytes(good)
    assert r.ref_index_position and check_table(r) == []
    data = bytearray(good)
    top = r.ref_index_position
    # the first index record of the (single-level) index: prefix 0, suffix/type, key, offset
    blk = next(b for b in r.blocks() if b.offset == top)
    rec = next(blk.records())
    key_end = top + bytes(blk.data).index(rec.last_key) + len(rec.last_key)
    data[key_end] = 0x07  # a varint offset that is no block
    findings = check_table(TableReader.from_bytes(bytes(data)))
    assert any("index entry" in f.message for f in findings), findings


def test_update_index_overlap_between_tables() -> None:
    w1 = TableWriter()
    w1.set_limits(1, 5)
    w1.add_ref(RefRecord.val1(b"refs/heads/a", 3, OID))
    w2 = TableWriter()
    w2.set_limits(5, 6)
    w2.add_ref(RefRecord.val1(b"refs/heads/b", 6, OID))
    readers = [TableReader.from_bytes(w1.finish(), "t1"), TableReader.from_bytes(w2.finish(), "t2")]
    findings = list(iter_findings(readers))
    assert [f.path for f in findings] == ["t2"] and "overlap" in findings[0].message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(p.name for p in DATA.glob("git_503*.ref"))), st.data())
def test_damage_gives_findings_not_exceptions(name: str, data: Any) -> None:
    raw = bytearray((DATA / name).read_bytes())
    v1 = raw[4] == 1
    start, end = (24, len(raw) - 68) if v1 else (28, len(raw) - 72)  # header, footer valid
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(start, end - 1))] = data.draw(st.integers(0, 255))
    try:
        reader = TableReader.from_bytes(bytes(raw))
    except FormatError as exc:  # damage that opening already sees (e.g. the first block type)
        assert exc.offset is not None
        return
    findings = check_table(reader)
    assert all(f.message for f in findings)
