"""The hash algorithm as a value: its sizes and ids, and that reader, writer and merged view
take every one of them from it (a SHA-256 table carries version 2 and git's format id)."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import pytest
from conftest import DATA
from hypothesis import given
from hypothesis import strategies as st

from aioreftable import FormatError, UsageError
from aioreftable._format._layout import HASH_SIZES, footer_size, header_size
from aioreftable.lowlevel import (
    SHA1,
    SHA256,
    HashAlgorithm,
    LogRecord,
    MergedTable,
    RefRecord,
    RefValueType,
    TableReader,
    TableWriter,
    WriteOptions,
)

KNOWN_IDS = {SHA1.format_id, SHA256.format_id}


# -- the value object ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algo", "name", "size", "format_id", "version"),
    [(SHA1, "sha1", 20, b"sha1", 1), (SHA256, "sha256", 32, b"s256", 2)],
)
def test_sizes_ids_and_null_ids(
    algo: HashAlgorithm, name: str, size: int, format_id: bytes, version: int
) -> None:
    assert (algo.name, algo.size, algo.hex_size) == (name, size, 2 * size)
    assert algo.format_id == int.from_bytes(format_id, "big")  # git's 4 ASCII bytes
    assert algo.table_version == version
    assert algo.null_id == b"\0" * size and len(algo.null_id) == size
    assert algo.null_hex == "0" * (2 * size) and bytes.fromhex(algo.null_hex) == algo.null_id
    assert HASH_SIZES[name] == size  # the deprecated table agrees
    assert HashAlgorithm.by_name(name) is algo
    assert HashAlgorithm.by_format_id(algo.format_id) is algo


def test_algorithms_are_immutable_values() -> None:
    assert SHA1 != SHA256 and len({SHA1, SHA256, HashAlgorithm.by_name("sha1")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        SHA1.size = 32  # type: ignore[misc]


@pytest.mark.parametrize("name", ["SHA1", "sha-1", "md5", "", "sha256 ", "s256"])
def test_unknown_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        HashAlgorithm.by_name(name)


@given(st.text(max_size=12).filter(lambda s: s not in ("sha1", "sha256")))
def test_no_other_name_is_a_hash(name: str) -> None:
    with pytest.raises(ValueError):
        HashAlgorithm.by_name(name)


@given(st.integers(0, 2**32 - 1).filter(lambda i: i not in KNOWN_IDS))
def test_no_other_format_id_is_a_hash(format_id: int) -> None:
    assert HashAlgorithm.by_format_id(format_id) is None


def test_write_options_name_the_algorithm() -> None:
    for algo in (SHA1, SHA256):
        opts = WriteOptions(hash=algo.name)
        assert opts.algorithm is algo
        assert (opts.hash_size, opts.version) == (algo.size, algo.table_version)
    assert WriteOptions().algorithm is SHA1
    with pytest.raises(UsageError, match="'sha1' or 'sha256'"):
        WriteOptions(hash="md5")  # type: ignore[arg-type]


# -- tables: the header carries the hash -----------------------------------------------------


def _table(algo: HashAlgorithm) -> bytes:
    one, two = b"\x11" * algo.size, b"\x22" * algo.size
    w = TableWriter(WriteOptions(hash=algo.name))
    w.set_limits(1, 2)
    w.add_ref(RefRecord.symref(b"HEAD", 1, b"refs/heads/main"))
    w.add_ref(RefRecord.val1(b"refs/heads/main", 2, one))
    w.add_ref(RefRecord.deletion(b"refs/heads/old", 2))
    w.add_ref(RefRecord.val2(b"refs/tags/v1", 1, two, one))
    w.add_log(
        LogRecord(b"refs/heads/main", 2, old_id=algo.null_id, new_id=one, name=b"C O Mitter",
                  email=b"committer@example.com", time=1112354055, tz_offset=200, message=b"m")
    )  # fmt: skip
    return w.finish()


_TABLE_256 = _table(SHA256)


@pytest.mark.parametrize("algo", [SHA1, SHA256])
def test_round_trip_header_names_the_hash(algo: HashAlgorithm) -> None:
    data = _table(algo)
    version = data[4]
    assert version == algo.table_version
    hsize = header_size(version)
    if algo is SHA256:
        assert hsize == 28 and data[24:28] == b"s256"
    else:
        assert hsize == 24 and data[24] == ord("r")  # the first block follows the 24 bytes
    footer = data[-footer_size(version) :]
    assert footer[:hsize] == data[:hsize]  # the footer repeats the header, hash id included
    r = TableReader.from_bytes(data)
    assert r.hash is algo and (r.hash_name, r.hash_size) == (algo.name, algo.size)
    assert r.version == version and r.header_size == hsize
    refs = list(r.seek_refs())
    assert [x.refname for x in refs] == [b"HEAD", b"refs/heads/main", b"refs/heads/old",
                                         b"refs/tags/v1"]  # fmt: skip
    assert refs[1].oid == b"\x11" * algo.size
    assert refs[3].object_ids == (b"\x22" * algo.size, b"\x11" * algo.size)
    (log,) = r.seek_logs()
    assert (log.old_id, log.new_id) == (algo.null_id, b"\x11" * algo.size)
    assert [b.refname for b in r.refs_for(b"\x11" * algo.size)] == [
        b"refs/heads/main",
        b"refs/tags/v1",
    ]


@pytest.mark.parametrize(
    ("ours", "gits"),
    [(SHA256, "git_503refs_sha256_v2.ref"), (SHA1, "git_503refs_sha1_bs4096.ref")],
)
def test_header_hash_fields_equal_gits(ours: HashAlgorithm, gits: str) -> None:
    git_data = (DATA / gits).read_bytes()
    data = _table(ours)
    hsize = header_size(ours.table_version)
    # magic and version as git writes them; for version 2 also the hash id (bytes 24..27)
    assert data[:5] == git_data[:5]
    if ours.table_version == 2:
        assert data[24:hsize] == git_data[24:hsize]
    reader = TableReader.from_bytes(git_data)
    assert reader.hash is ours and reader.version == ours.table_version


def _with_hash_id(data: bytes, hash_id: int) -> bytes:
    """A version 2 table whose header and footer name ``hash_id`` (the CRC made right)."""
    out = bytearray(data)
    fsize = footer_size(2)
    foot = len(out) - fsize
    for at in (24, foot + 24):
        struct.pack_into(">I", out, at, hash_id)
    crc = zlib.crc32(bytes(out[foot : len(out) - 4])) & 0xFFFFFFFF
    struct.pack_into(">I", out, len(out) - 4, crc)
    return bytes(out)


def test_the_format_id_alone_decides_the_hash() -> None:
    # a SHA-256 table relabelled as SHA-1 reads with 20-byte ids: the header is the truth
    data = _with_hash_id(_TABLE_256, SHA1.format_id)
    r = TableReader.from_bytes(data)
    assert r.hash is SHA1 and r.version == 2
    assert _with_hash_id(data, SHA256.format_id) == _TABLE_256


@given(st.integers(0, 2**32 - 1).filter(lambda i: i not in KNOWN_IDS))
def test_unknown_format_id_is_a_format_error(hash_id: int) -> None:
    data = _with_hash_id(_TABLE_256, hash_id)
    with pytest.raises(FormatError, match="unknown hash id") as err:
        TableReader.from_bytes(data, name="t.ref")
    assert err.value.offset == 24 and err.value.path == "t.ref"


@pytest.mark.parametrize("algo", [SHA1, SHA256])
def test_ids_of_the_other_size_are_refused(algo: HashAlgorithm) -> None:
    other = SHA256 if algo is SHA1 else SHA1
    w = TableWriter(WriteOptions(hash=algo.name))
    w.set_limits(1, 1)
    with pytest.raises(ValueError, match=f"must be {algo.size} bytes"):
        w.add_ref(RefRecord.val1(b"refs/a", 1, other.null_id))
    with pytest.raises(ValueError, match=f"must be {algo.size} bytes"):
        w.add_ref(RefRecord.val2(b"refs/b", 1, algo.null_id, other.null_id))
    with pytest.raises(ValueError, match=f"must be {algo.size} bytes"):  # VAL2 needs both
        w.add_ref(RefRecord(b"refs/c", 1, RefValueType.VAL2, algo.null_id))
    with pytest.raises(ValueError, match=f"must be {algo.size} bytes"):
        w.add_log(LogRecord(b"refs/a", 1, old_id=other.null_id, new_id=algo.null_id))
    assert w.record_count == 0


# -- the merged view -------------------------------------------------------------------------


def test_merged_table_takes_the_hash_of_its_tables() -> None:
    t1 = TableReader.from_bytes(_table(SHA1))
    t256 = TableReader.from_bytes(_table(SHA256))
    for reader, algo in ((t1, SHA1), (t256, SHA256)):
        m = MergedTable([reader])
        assert m.hash is algo and (m.hash_name, m.hash_size) == (algo.name, algo.size)
        assert MergedTable([reader], hash=algo).hash is algo
        assert MergedTable([reader], hash_name=algo.name).hash is algo
    assert MergedTable([]).hash is SHA1
    assert MergedTable([], hash=SHA256).hash_size == 32
    assert MergedTable([], hash_name="sha256").hash is SHA256
    with pytest.raises(FormatError, match=r"mix hash functions: \['sha1', 'sha256'\]"):
        MergedTable([t1, t256])
    with pytest.raises(FormatError, match="mix hash functions"):
        MergedTable([t1], hash=SHA256)
    with pytest.raises(FormatError, match="mix hash functions"):
        MergedTable([], hash=SHA1, hash_name="sha256")
    with pytest.raises(UsageError, match="unknown hash algorithm 'md5'"):
        MergedTable([], hash_name="md5")
