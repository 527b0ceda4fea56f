"""git-written fixtures: decode to exactly what manifest.json says, re-encode byte for byte."""

from __future__ import annotations

import pytest
from conftest import DATA
from format_helpers import inflated_blocks, manifest, options_for, reencode

from aioreftable.lowlevel import LogRecord, LogValueType, RefRecord, RefValueType, TableReader

NAMES = sorted(manifest())


@pytest.mark.parametrize("name", NAMES)
def test_header_and_footer_match_manifest(name: str) -> None:
    m = manifest()[name]
    r = TableReader.from_path(DATA / name)
    assert r.file_size == m["size"]
    assert r.version == m["version"]
    assert r.hash_size == r.hash.size == m["hash_size"]
    assert r.hash.table_version == r.version  # git writes version 2 exactly for SHA-256
    assert r.block_size == m["block_size"]
    assert r.min_update_index == m["min_update_index"]
    assert r.max_update_index == m["max_update_index"]
    assert r.ref_index_position == m["ref_index_position"]
    assert r.obj_position == m["obj_position"]
    assert r.obj_id_len == m["obj_id_len"]
    assert r.obj_index_position == m["obj_index_position"]
    assert r.log_position == m["log_position"]
    assert r.log_index_position == m["log_index_position"]
    assert (r.has_refs, r.has_logs, r.has_objs) == (
        m["refs_present"],
        m["logs_present"],
        m["obj_present"],
    )


@pytest.mark.parametrize("name", NAMES)
def test_blocks_match_manifest(name: str) -> None:
    r = TableReader.from_path(DATA / name)
    got = []
    for blk in r.blocks():
        restarts = [
            int.from_bytes(blk.data[blk.restart_off + 3 * i : blk.restart_off + 3 * i + 3])
            for i in range(blk.restart_count)
        ]
        got.append(
            {
                "offset": blk.offset,
                "type": chr(blk.typ),
                "block_len": len(blk.data),
                "on_disk_size": blk.on_disk_size,
                "restart_offsets": restarts,
                "records": blk.record_count(),
            }
        )
    want = [
        {
            k: b[k]
            for k in ("offset", "type", "block_len", "on_disk_size", "restart_offsets", "records")
        }
        for b in manifest()[name]["blocks"]
    ]
    assert got == want


def _ref_as_manifest(rec: RefRecord) -> dict[str, object]:
    value: object
    if rec.value_type == RefValueType.VAL1:
        value = rec.oid.hex()
    elif rec.value_type == RefValueType.VAL2:
        value = [oid.hex() for oid in rec.object_ids]
    elif rec.value_type == RefValueType.SYMREF:
        value = rec.symref_target.decode()
    else:
        value = None
    return {
        "name": rec.refname.decode(),
        "update_index": rec.update_index,
        "type": int(rec.value_type),
        "value": value,
    }


def _log_as_manifest(rec: LogRecord) -> dict[str, object]:
    out: dict[str, object] = {
        "name": rec.refname.decode(),
        "update_index": rec.update_index,
        "type": int(rec.value_type),
    }
    if rec.value_type == LogValueType.UPDATE:
        out.update(
            old=rec.old_id.hex(),
            new=rec.new_id.hex(),
            pname=rec.name.decode(),
            email=rec.email.decode(),
            time=rec.time,
            tz=rec.tz_offset,
            message=rec.message.decode(),
        )
    return out


SMALL = [n for n in NAMES if any("record_list" in b for b in manifest()[n]["blocks"])]


@pytest.mark.parametrize("name", SMALL)
def test_records_match_manifest(name: str) -> None:
    r = TableReader.from_path(DATA / name)
    for blk_m, blk in zip(manifest()[name]["blocks"], r.blocks(), strict=True):
        conv = _ref_as_manifest if blk_m["type"] == "r" else _log_as_manifest
        got = [conv(rec) for rec in blk.records()]
        want = [
            {k: v for k, v in rec.items() if k in got[0] or k == "value"}
            for rec in blk_m["record_list"]
        ]
        # the manifest writes log tombstones without data fields; compare field by field
        for g, w in zip(got, blk_m["record_list"], strict=True):
            for key, value in g.items():
                assert w.get(key, value) == value, (key, g, w)
        assert len(got) == len(want)


@pytest.mark.parametrize("name", NAMES)
def test_reencoding_reproduces_git_bytes(name: str) -> None:
    data = (DATA / name).read_bytes()
    r = TableReader.from_bytes(data)
    out = reencode(r, options_for(name, r))
    # Uncompressed content must match exactly; with stock zlib the raw bytes match too.
    assert inflated_blocks(TableReader.from_bytes(out)) == inflated_blocks(r)
    assert out == data


def test_fixture_record_counts() -> None:
    r = TableReader.from_path(DATA / "git_503refs_sha1_bs4096.ref")
    assert sum(1 for _ in r.seek_refs()) == 503
    assert sum(1 for _ in r.seek_logs()) == 406
    stats = r.stats()
    assert stats.refs.records == 503 and stats.logs.records == 406
    assert stats.refs.index_blocks >= 1 and stats.logs.index_blocks >= 1
    multi = TableReader.from_path(DATA / "git_503refs_bs256_multilevel.ref").stats()
    assert multi.logs.index_levels == 2
    assert multi.refs.index_blocks == 2


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("git_503")])
def test_every_ref_and_log_is_found_by_lookup(name: str) -> None:
    r = TableReader.from_path(DATA / name)
    refs = list(r.seek_refs())
    for rec in refs:
        assert r.ref(rec.refname) == rec
        if rec.value is not None:
            assert rec in list(r.refs_for(rec.value))
    assert r.ref(b"refs/heads/does-not-exist") is None
    assert r.ref(b"\xff") is None
    assert r.ref(b"A") is None
    logs = list(r.seek_logs())
    for log in logs[::7]:
        assert r.log(log.refname, log.update_index) == log
        assert log in list(r.iter_logs(log.refname))
    names = {log.refname for log in logs}
    for refname in names:
        per_ref = list(r.iter_logs(refname))
        assert [x.update_index for x in per_ref] == sorted(
            (x.update_index for x in per_ref), reverse=True
        )


@pytest.mark.parametrize("name", NAMES)
def test_ref_range_is_first_and_last_refname(name: str) -> None:
    r = TableReader.from_path(DATA / name)
    names = [rec.refname for rec in r.seek_refs()]
    assert r.ref_range() == ((names[0], names[-1]) if names else None)
