"""RefRecord's typed accessors: what each of the four value types holds, and ValueError for
what it does not (built records and records decoded from a table agree)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioreftable.lowlevel import (
    SHA1,
    SHA256,
    HashAlgorithm,
    RefRecord,
    RefValueType,
    TableReader,
    TableWriter,
    WriteOptions,
)

OID, PEELED = b"\x01" * 20, b"\x02" * 20
NAME = b"refs/tags/v1"


def test_val1() -> None:
    rec = RefRecord.val1(NAME, 1, OID)
    assert rec.oid == OID
    assert rec.peeled is None
    assert rec.object_ids == (OID,)
    with pytest.raises(ValueError, match=r"is not a symbolic ref \(VAL1\)"):
        _ = rec.symref_target


def test_val2() -> None:
    rec = RefRecord.val2(NAME, 1, OID, PEELED)
    assert rec.oid == OID
    assert rec.peeled == PEELED
    assert rec.object_ids == (OID, PEELED)
    with pytest.raises(ValueError, match=r"is not a symbolic ref \(VAL2\)"):
        _ = rec.symref_target


def test_symref() -> None:
    rec = RefRecord.symref(b"HEAD", 1, b"refs/heads/main")
    assert rec.symref_target == b"refs/heads/main"
    assert rec.peeled is None
    assert rec.object_ids == ()
    with pytest.raises(ValueError, match=r"b'HEAD' holds no object id \(SYMREF\)"):
        _ = rec.oid


def test_deletion() -> None:
    rec = RefRecord.deletion(NAME, 1)
    assert rec.is_deletion
    assert rec.peeled is None
    assert rec.object_ids == ()
    with pytest.raises(ValueError, match=r"holds no object id \(DELETION\)"):
        _ = rec.oid
    with pytest.raises(ValueError, match=r"is not a symbolic ref \(DELETION\)"):
        _ = rec.symref_target


def test_fields_of_another_type_do_not_leak_through() -> None:
    # records built field by field: an accessor answers by value type, not by which field is set
    odd_symref = RefRecord(NAME, 1, RefValueType.SYMREF, OID, PEELED, b"refs/x")
    assert odd_symref.object_ids == () and odd_symref.peeled is None
    with pytest.raises(ValueError):
        _ = odd_symref.oid
    odd_val1 = RefRecord(NAME, 1, RefValueType.VAL1, OID, PEELED, b"refs/x")
    assert odd_val1.peeled is None and odd_val1.object_ids == (OID,)
    with pytest.raises(ValueError):
        _ = odd_val1.symref_target
    missing = RefRecord(NAME, 1, RefValueType.VAL1)
    with pytest.raises(ValueError):
        _ = missing.oid
    assert missing.object_ids == ()


ACCESSORS: dict[str, Callable[[RefRecord], object]] = {
    "oid": lambda r: r.oid,
    "peeled": lambda r: r.peeled,
    "symref_target": lambda r: r.symref_target,
    "object_ids": lambda r: r.object_ids,
}


def _answers(rec: RefRecord) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, get in ACCESSORS.items():
        try:
            out[name] = get(rec)
        except ValueError:
            out[name] = ValueError
    return out


@st.composite
def records(draw: st.DrawFn, algo: HashAlgorithm) -> RefRecord:
    ids = st.binary(min_size=algo.size, max_size=algo.size)
    name = b"refs/heads/" + draw(
        st.binary(min_size=1, max_size=20).filter(lambda b: b"\0" not in b)
    )
    kind = draw(st.sampled_from(list(RefValueType)))
    if kind == RefValueType.VAL1:
        return RefRecord.val1(name, 1, draw(ids))
    if kind == RefValueType.VAL2:
        return RefRecord.val2(name, 1, draw(ids), draw(ids))
    if kind == RefValueType.SYMREF:
        return RefRecord.symref(name, 1, draw(st.binary(max_size=40)))
    return RefRecord.deletion(name, 1)


@pytest.mark.parametrize("algo", [SHA1, SHA256])
def test_decoded_records_answer_as_built_ones(algo: HashAlgorithm) -> None:
    @given(st.lists(records(algo), min_size=1, max_size=20, unique_by=lambda r: r.refname))
    def check(recs: list[RefRecord]) -> None:
        w = TableWriter(WriteOptions(hash=algo.name, block_size=256))
        w.set_limits(1, 1)
        w.add_refs(recs)
        r = TableReader.from_bytes(w.finish())
        by_name = {rec.refname: rec for rec in recs}
        decoded = list(r.seek_refs())
        assert len(decoded) == len(recs)
        for rec in decoded:
            built = by_name[rec.refname]
            assert _answers(rec) == _answers(built)
            for oid in rec.object_ids:  # the object index finds every id an accessor names
                assert rec in list(r.refs_for(oid))

    check()
