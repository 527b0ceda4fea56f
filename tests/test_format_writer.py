"""Writer rules that git's byte layout depends on, and the writer's error contract."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import pytest
from conftest import DATA

from aioreftable import (
    EmptyTableError,
    EntryTooBigError,
    KeyOrderError,
    LimitsError,
    UpdateIndexError,
    UsageError,
)
from aioreftable._format._block import Block
from aioreftable.lowlevel import (
    LogRecord,
    RefRecord,
    TableReader,
    TableWriter,
    WriteOptions,
)

OID = bytes(range(20))
ZERO = bytes(20)


def one_table(
    refs: Iterable[RefRecord] = (),
    logs: Iterable[LogRecord] = (),
    lo: int = 1,
    hi: int = 1,
    **opts: Any,  # WriteOptions fields
) -> bytes:
    w = TableWriter(WriteOptions(**opts))
    w.set_limits(lo, hi)
    for r in refs:
        w.add_ref(r)
    for entry in logs:
        w.add_log(entry)
    return w.finish(allow_empty=True)


def restarts(blk: Block) -> list[int]:
    return [
        int.from_bytes(blk.data[blk.restart_off + 3 * i : blk.restart_off + 3 * i + 3])
        for i in range(blk.restart_count)
    ]


def test_single_ref_table_is_git_example_e2() -> None:
    data = one_table([RefRecord.val1(b"refs/heads/main", 1, OID)])
    assert len(data) == 139
    assert data[24:28] == bytes.fromhex("72000047")
    assert data[-4:] == bytes.fromhex("b6bff78a")


def test_empty_table_is_92_or_100_bytes() -> None:
    v1 = one_table()
    assert v1 == (DATA / "py_empty_v1.ref").read_bytes()
    v2 = one_table(hash="sha256")
    assert len(v2) == 100
    assert v2[-4:] == bytes.fromhex("4258be0d")
    w = TableWriter()
    w.set_limits(1, 1)
    with pytest.raises(EmptyTableError):
        w.finish()


def test_natural_restarts_and_first_restart_offset() -> None:
    data = one_table(
        [
            RefRecord.symref(b"HEAD", 1, b"refs/heads/main"),
            RefRecord.val1(b"refs/heads/main", 1, OID),
        ]
    )
    (blk,) = TableReader.from_bytes(data).blocks()
    assert restarts(blk) == [28, 51]  # 'HEAD' then a key sharing no prefix with it
    v2 = TableReader.from_bytes(
        one_table([RefRecord.val1(b"refs/heads/main", 1, bytes(32))], hash="sha256")
    )
    assert restarts(next(v2.blocks())) == [32]


@pytest.mark.parametrize("interval", [1, 3, 16])
def test_restart_every_interval_records(interval: int) -> None:
    refs = [RefRecord.val1(b"refs/heads/b%03d" % i, 1, OID) for i in range(40)]
    r = TableReader.from_bytes(one_table(refs, restart_interval=interval))
    (blk,) = r.blocks()
    assert blk.restart_count == -(-40 // interval)
    assert list(r.seek_refs()) == refs


def test_git_unit_test_block_layout_for_500_refs() -> None:
    # u-reftable-table.c block_iterator: 500 refs, update index 0, all-zero ids
    w = TableWriter()
    w.set_limits(0, 0)
    for i in range(500):
        w.add_ref(RefRecord.val1(b"refs/heads/branch-%03d" % i, 0, ZERO))
    r = TableReader.from_bytes(w.finish())
    layout = [(chr(b.typ), b.record_count(), b.restart_count) for b in r.blocks()]
    assert layout == [
        ("r", 158, 10),
        ("r", 159, 10),
        ("r", 159, 10),
        ("r", 24, 2),
        ("i", 4, 1),
        ("o", 1, 1),
    ]
    assert r.obj_id_len == 2


def test_padding_rules() -> None:
    refs = [RefRecord.val1(b"refs/heads/branch-%04d" % i, 1, OID) for i in range(400)]
    logs = [
        LogRecord(b"refs/heads/branch-%04d" % i, 1, old_id=ZERO, new_id=OID, name=b"n",
                  email=b"e", time=1, message=b"m")
        for i in range(50)
    ]  # fmt: skip
    data = one_table(refs, logs, block_size=512)
    r = TableReader.from_bytes(data)
    blocks = list(r.blocks())
    ref_blocks = [b for b in blocks if chr(b.typ) == "r"]
    assert all(b.offset % 512 == 0 for b in ref_blocks)  # refs aligned
    first_log = next(b for b in blocks if chr(b.typ) == "g")
    before = blocks[blocks.index(first_log) - 1]
    assert first_log.offset == before.offset + len(before.data)  # padding before logs dropped
    last = blocks[-1]
    footer_at = len(data) - 68
    assert last.offset + last.on_disk_size == footer_at  # no padding before the footer
    unpadded = one_table(refs, logs, block_size=512, unpadded=True)
    ur = TableReader.from_bytes(unpadded)
    assert ur.block_size == 512  # git keeps the block size in the header
    assert all(b.on_disk_size == len(b.data) or chr(b.typ) == "g" for b in ur.blocks())
    assert list(ur.seek_refs()) == list(r.seek_refs())
    assert list(ur.seek_logs()) == list(r.seek_logs())
    assert len(unpadded) < len(data)


def test_log_blocks_are_deflated_at_level_9() -> None:
    logs = [
        LogRecord(b"HEAD", i, old_id=ZERO, new_id=OID, name=b"C O Mitter",
                  email=b"c@example.com", time=1112354055, tz_offset=200, message=b"msg %d" % i)
        for i in range(20, 0, -1)
    ]  # fmt: skip
    data = one_table(logs=logs, lo=1, hi=20)
    r = TableReader.from_bytes(data)
    (blk,) = r.blocks()
    assert blk.offset == 0 and blk.header_off == 24  # log-only file: block 0 is a log block
    assert r.log_position == 0  # git records no log position in a log-only file
    body = blk.data[28:]
    assert data[28 : 28 + blk.on_disk_size - 28] == zlib.compress(bytes(body), 9)


def test_message_normalization_and_exact_messages() -> None:
    def stored(message: bytes, exact: bool = False) -> bytes:
        data = one_table(
            logs=[LogRecord(b"HEAD", 1, old_id=ZERO, new_id=OID, message=message)],
            exact_log_message=exact,
        )
        (rec,) = TableReader.from_bytes(data).seek_logs()
        return rec.message

    assert stored(b"") == b"\n"
    assert stored(b"one") == b"one\n"
    assert stored(b"a\n\n\n") == b"a\n"
    with pytest.raises(UsageError):
        stored(b"two\nlines")
    assert stored(b"", exact=True) == b""
    assert stored(b"two\nlines", exact=True) == b"two\nlines"


def test_existence_marker_round_trips_exactly() -> None:
    marker = LogRecord(b"refs/heads/x", 3, old_id=ZERO, new_id=ZERO)
    data = one_table(logs=[marker], lo=3, hi=3, exact_log_message=True)
    assert list(TableReader.from_bytes(data).seek_logs()) == [marker]


def test_tz_offset_is_signed_hhmm() -> None:
    rec = LogRecord(b"HEAD", 1, old_id=ZERO, new_id=OID, tz_offset=-830, message=b"x\n")
    (got,) = TableReader.from_bytes(one_table(logs=[rec])).seek_logs()
    assert got.tz_offset == -830


def test_order_and_limit_errors() -> None:
    w = TableWriter()
    w.set_limits(5, 6)
    with pytest.raises(UpdateIndexError):
        w.add_ref(RefRecord.val1(b"refs/a", 4, OID))
    with pytest.raises(UpdateIndexError):
        w.add_ref(RefRecord.val1(b"refs/a", 7, OID))
    w.add_ref(RefRecord.val1(b"refs/b", 5, OID))
    with pytest.raises(KeyOrderError):
        w.add_ref(RefRecord.val1(b"refs/b", 5, OID))  # duplicate
    with pytest.raises(KeyOrderError):
        w.add_ref(RefRecord.val1(b"refs/a", 5, OID))  # unsorted
    with pytest.raises(LimitsError):
        w.set_limits(1, 9)  # after the first record
    # logs: no lower bound (old entries keep their index), upper bound enforced
    w.add_log(LogRecord(b"refs/b", 2, old_id=ZERO, new_id=OID, message=b"old"))
    with pytest.raises(UpdateIndexError):
        w.add_log(LogRecord(b"refs/c", 7, old_id=ZERO, new_id=OID))
    with pytest.raises(KeyOrderError):
        w.add_log(LogRecord(b"refs/b", 3, old_id=ZERO, new_id=OID))  # newer must come first
    with pytest.raises(KeyOrderError):
        w.add_ref(RefRecord.val1(b"refs/z", 5, OID))  # refs after logs
    w.add_log(LogRecord.deletion(b"refs/b", 1))  # deletions are unchecked (like git)
    data = w.finish()
    assert [x.update_index for x in TableReader.from_bytes(data).seek_logs()] == [2, 1]
    with pytest.raises(UsageError):
        w.finish()
    assert issubclass(KeyOrderError, UsageError) and issubclass(UpdateIndexError, UsageError)


def test_bad_options_and_ids() -> None:
    with pytest.raises(UsageError):
        WriteOptions(block_size=1 << 24)
    with pytest.raises(UsageError):
        WriteOptions(restart_interval=65536)
    w = TableWriter()
    w.set_limits(1, 1)
    with pytest.raises(ValueError):
        w.add_ref(RefRecord.val1(b"refs/a", 1, b"short"))
    with pytest.raises(UsageError):
        w.add_ref(RefRecord.val1(b"", 1, OID))


def test_entry_too_big() -> None:
    # git's log_overflow unit test: a 255-byte message with block_size 256
    w = TableWriter(WriteOptions(block_size=256))
    w.set_limits(1, 1)
    with pytest.raises(EntryTooBigError):
        w.add_log(LogRecord(b"refs/heads/x", 1, old_id=ZERO, new_id=OID, message=b"x" * 255))
    w = TableWriter(WriteOptions(block_size=100))
    w.set_limits(1, 1)
    with pytest.raises(EntryTooBigError):
        w.add_ref(RefRecord.val1(b"refs/heads/" + b"n" * 100, 1, OID))


@pytest.mark.parametrize(("differ_at", "expected_len"), [(0, 2), (15, 16)])
def test_obj_id_len(differ_at: int, expected_len: int) -> None:
    w = TableWriter(WriteOptions(block_size=256))
    w.set_limits(1, 1)
    for i in range(64):
        oid = bytearray(20)
        oid[differ_at] = i
        w.add_ref(RefRecord.val1(b"refs/heads/branch-%03d" % i, 1, bytes(oid)))
    r = TableReader.from_bytes(w.finish())
    assert r.obj_id_len == expected_len
    oid = bytearray(20)
    oid[differ_at] = 9
    assert [x.refname for x in r.refs_for(bytes(oid))] == [b"refs/heads/branch-009"]


def test_obj_record_with_many_positions_and_overflow() -> None:
    # every ref points at one id: its obj record lists every ref block (cnt_large) ...
    w = TableWriter(WriteOptions(block_size=256))
    w.set_limits(1, 1)
    refs = [RefRecord.val1(b"refs/heads/branch-%04d" % i, 1, OID) for i in range(300)]
    for ref in refs:
        w.add_ref(ref)
    r = TableReader.from_bytes(w.finish())
    assert list(r.refs_for(OID)) == refs
    assert list(r.refs_for(bytes(20))) == []
    # ... and when the offsets do not fit a block, git writes cnt 0: readers scan
    w = TableWriter(WriteOptions(block_size=64, unpadded=True))
    w.set_limits(1, 1)
    refs = [RefRecord.val1(b"r/%03d" % i, 1, OID) for i in range(200)]
    for ref in refs:
        w.add_ref(ref)
    r = TableReader.from_bytes(w.finish())
    assert r.has_objs
    objs = [rec for b in r.blocks() if chr(b.typ) == "o" for rec in b.records()]
    assert [(o.cnt, o.offsets) for o in objs] == [(0, ())]
    assert list(r.refs_for(OID)) == refs


def test_val2_is_indexed_by_both_ids() -> None:
    tag, peeled = b"\x01" * 20, b"\x02" * 20
    w = TableWriter(WriteOptions(block_size=128))
    w.set_limits(1, 1)
    refs = [RefRecord.val1(b"refs/heads/%03d" % i, 1, b"\x03" * 20) for i in range(30)]
    refs.append(RefRecord.val2(b"refs/tags/v1", 1, tag, peeled))
    for ref in refs:
        w.add_ref(ref)
    r = TableReader.from_bytes(w.finish())
    assert r.has_objs
    assert [x.refname for x in r.refs_for(tag)] == [b"refs/tags/v1"]
    assert [x.refname for x in r.refs_for(peeled)] == [b"refs/tags/v1"]


def test_multi_level_index() -> None:
    # git's write_multi_level_index: block size 100, 200 refs -> 2 index levels
    w = TableWriter(WriteOptions(block_size=100))
    w.set_limits(1, 1)
    refs = [RefRecord.val1(b"refs/heads/%03d" % i, 1, OID) for i in range(200)]
    for ref in refs:
        w.add_ref(ref)
    r = TableReader.from_bytes(w.finish())
    assert r.stats().refs.index_levels == 2
    for ref in refs:
        assert r.ref(ref.refname) == ref
    assert list(r.iter_refs(b"refs/heads/1")) == refs[100:200]
