"""Writer inputs that cannot make a table end in EntryTooBigError, never in a loop."""

from __future__ import annotations

import pytest

from aioreftable import EntryTooBigError
from aioreftable.lowlevel import LogRecord, RefRecord, TableReader, TableWriter, WriteOptions


def _names(n: int, length: int) -> list[bytes]:
    # no shared prefix: index records cannot be prefix-compressed against each other
    return sorted(bytes([97 + i]) + b"/" + b"x" * length for i in range(n))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("unpadded", [False, True])
def test_index_records_one_to_a_block_raise_instead_of_looping(unpadded: bool) -> None:
    """Each ref fills a block and each index record does too: every index level would be
    as long as the one below it. git's writer loops (and grows) forever here."""
    w = TableWriter(WriteOptions(block_size=200, unpadded=unpadded))
    w.set_limits(1, 1)
    for name in _names(5, 130):
        w.add_ref(RefRecord.val1(name, 1, b"\x01" * 20))
    with pytest.raises(EntryTooBigError, match="do not fit two to a block of 200 bytes"):
        w.finish()


@pytest.mark.timeout(20)
def test_log_index_records_one_to_a_block_raise_instead_of_looping() -> None:
    w = TableWriter(WriteOptions(block_size=200))
    w.set_limits(1, 1)
    for name in _names(5, 100):
        w.add_log(LogRecord(name, 1, old_id=b"\x00" * 20, new_id=b"\x01" * 20, name=b"T",
                            email=b"t@x", time=1, message=b"m\n"))  # fmt: skip
    with pytest.raises(EntryTooBigError):
        w.finish()


def test_index_of_long_keys_that_shrinks_still_writes() -> None:
    """Keys just short enough for two index records a block: levels shrink, table reads."""
    names = _names(8, 60)
    w = TableWriter(WriteOptions(block_size=200))
    w.set_limits(1, 1)
    for name in names:
        w.add_ref(RefRecord.val1(name, 1, b"\x01" * 20))
    reader = TableReader.from_bytes(w.finish())
    assert [r.refname for r in reader.iter_refs(b"")] == names
    for name in names:
        assert reader.ref(name) is not None
