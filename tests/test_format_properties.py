"""Hypothesis: random tables round-trip; corrupted tables raise only FormatError."""

from __future__ import annotations

import contextlib
from typing import Any

from conftest import DATA
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aioreftable import EntryTooBigError, FormatError
from aioreftable.lowlevel import (
    LogRecord,
    LogValueType,
    MergedTable,
    RefRecord,
    RefValueType,
    TableReader,
    TableWriter,
    WriteOptions,
)

COMPONENTS = st.sampled_from(
    [b"refs", b"heads", b"tags", b"main", b"a", b"ab", b"b", b"feature", b"x" * 40,
     "\u00e9t\u00e9".encode(), b"\xff", b"pull", b"0", b"1"]
)  # fmt: skip
REFNAMES = st.lists(COMPONENTS, min_size=1, max_size=6).map(b"/".join)


def options() -> st.SearchStrategy[WriteOptions]:
    return st.builds(
        WriteOptions,
        block_size=st.sampled_from([200, 256, 512, 1000, 4096]),
        restart_interval=st.integers(1, 20),
        index_objects=st.booleans(),
        unpadded=st.booleans(),
        hash=st.sampled_from(["sha1", "sha256"]),
    )


@st.composite
def tables(
    draw: Any, max_refs: int = 60
) -> tuple[WriteOptions, list[RefRecord], list[LogRecord], int, int]:
    opts = draw(options())
    hs = opts.hash_size
    oids = draw(st.lists(st.binary(min_size=hs, max_size=hs), min_size=1, max_size=8))
    lo = draw(st.integers(0, 2**40))
    hi = lo + draw(st.integers(0, 5))
    names = draw(st.lists(REFNAMES, max_size=max_refs, unique=True))
    refs = []
    for name in sorted(names):
        ui = draw(st.integers(lo, hi))
        kind = draw(st.sampled_from(list(RefValueType)))
        if kind == RefValueType.VAL1:
            refs.append(RefRecord.val1(name, ui, draw(st.sampled_from(oids))))
        elif kind == RefValueType.VAL2:
            refs.append(
                RefRecord.val2(name, ui, draw(st.sampled_from(oids)), draw(st.sampled_from(oids)))
            )
        elif kind == RefValueType.SYMREF:
            refs.append(RefRecord.symref(name, ui, draw(REFNAMES)))
        else:
            refs.append(RefRecord.deletion(name, ui))
    log_keys = draw(
        st.lists(st.tuples(REFNAMES, st.integers(0, hi)), max_size=max_refs, unique=True)
    )
    logs = []
    for name, ui in log_keys:
        if draw(st.integers(0, 5)) == 0:
            logs.append(LogRecord.deletion(name, ui))
            continue
        logs.append(
            LogRecord(
                name,
                ui,
                LogValueType.UPDATE,
                draw(st.sampled_from(oids)),
                draw(st.sampled_from(oids)),
                draw(st.binary(max_size=20)),
                draw(st.binary(max_size=30)),
                draw(st.integers(0, 2**40)),
                draw(st.integers(-1200, 1400)),
                draw(st.binary(max_size=40).map(lambda m: m.replace(b"\n", b" ") + b"\n")),
            )
        )
    logs.sort(key=lambda r: r.key)
    return opts, refs, logs, lo, hi


def write(
    opts: WriteOptions, refs: list[RefRecord], logs: list[LogRecord], lo: int, hi: int
) -> bytes:
    w = TableWriter(opts)
    w.set_limits(lo, hi)
    try:
        for r in refs:
            w.add_ref(r)
        for entry in logs:
            w.add_log(entry)
        return w.finish(allow_empty=True)
    except EntryTooBigError:  # a record, or two index records, do not fit a block
        assume(False)
        raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.lists(REFNAMES, max_size=5))
def test_roundtrip(table: Any, probes: list[bytes]) -> None:
    opts, refs, logs, lo, hi = table
    data = write(opts, refs, logs, lo, hi)
    r = TableReader.from_bytes(data)
    assert (r.min_update_index, r.max_update_index, r.hash_name) == (lo, hi, opts.hash)
    assert list(r.seek_refs()) == refs
    assert list(r.seek_logs()) == logs
    by_name = {x.refname: x for x in refs}
    for name in [*by_name, *probes]:
        assert r.ref(name) == by_name.get(name)
        prefix = name[: len(name) // 2]
        assert list(r.iter_refs(prefix)) == [x for x in refs if x.refname.startswith(prefix)]
        assert list(r.iter_logs(name)) == [x for x in logs if x.refname == name]
    for entry in logs:
        assert r.log(entry.refname, entry.update_index) == entry
    for oid in {x.value for x in refs if x.value} | {
        x.target_value for x in refs if x.target_value
    }:
        want = [x for x in refs if x.value_type in (RefValueType.VAL1, RefValueType.VAL2)
                and oid in (x.value, x.target_value)]  # fmt: skip
        assert list(r.refs_for(oid)) == want


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tables(max_refs=25), min_size=1, max_size=4), st.booleans())
def test_merged_table_matches_dict_model(stack: Any, include_deletions: bool) -> None:
    hash_name = stack[0][0].hash
    readers = []
    model_refs: dict[bytes, RefRecord] = {}
    model_logs: dict[bytes, LogRecord] = {}
    for opts, refs, logs, lo, hi in stack:
        opts = WriteOptions(opts.block_size, opts.restart_interval, opts.index_objects,
                            opts.unpadded, hash=hash_name)  # fmt: skip
        if opts.hash_size != len(next((x.value for x in refs if x.value), b"\0" * opts.hash_size)):
            continue
        if any(len(x.old_id) not in (0, opts.hash_size) for x in logs):
            continue
        readers.append(TableReader.from_bytes(write(opts, refs, logs, lo, hi)))
        model_refs.update((x.refname, x) for x in refs)
        model_logs.update((x.key, x) for x in logs)
    merged = MergedTable(readers)
    live = sorted(
        (x for x in model_refs.values() if include_deletions or not x.is_deletion),
        key=lambda x: x.refname,
    )
    assert list(merged.seek_refs(include_deletions=include_deletions)) == live
    for name, rec in model_refs.items():
        assert merged.ref(name) == (None if rec.is_deletion else rec)
    all_logs = sorted(
        (x for x in model_logs.values() if include_deletions or not x.is_deletion),
        key=lambda x: x.key,
    )
    assert list(merged.seek_logs(include_deletions=include_deletions)) == all_logs
    for name in {x.refname for x in model_logs.values()}:
        assert list(merged.iter_logs(name, include_deletions=include_deletions)) == [
            x for x in all_logs if x.refname == name
        ]


def exercise(data: bytes) -> None:
    """Every read entry point on a possibly corrupt table."""
    r = TableReader.from_bytes(data)
    refs = list(r.seek_refs())
    list(r.seek_logs())
    for rec in refs[:5]:
        r.ref(rec.refname)
        if rec.value:
            list(r.refs_for(rec.value))
    r.ref(b"refs/heads/zzz")
    list(r.iter_logs(b"refs/heads/a"))
    list(r.refs_for(b"\x01" * r.hash_size))
    r.stats()
    r.ref_range()
    list(r.blocks())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_refs=30), st.data())
def test_corruption_raises_only_format_error(table: Any, data: Any) -> None:
    good = write(*table)
    mutated = bytearray(good)
    how = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(mutated) - 1))
            mutated[at] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        del mutated[data.draw(st.integers(0, len(mutated) - 1)) :]
    else:
        at = data.draw(st.integers(0, len(mutated)))
        mutated[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    try:
        exercise(bytes(mutated))
    except FormatError as e:
        assert e.offset is None or 0 <= e.offset <= len(mutated) + 16


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_refs=30), st.data())
def test_corruption_behind_a_valid_footer_raises_only_format_error(table: Any, data: Any) -> None:
    """Mutate the block area only, so that the footer (and its CRC) still validates and the
    reader has to catch the damage in the blocks themselves."""
    good = write(*table)
    r = TableReader.from_bytes(good)
    body_end = r.size
    assume(body_end > r.header_size)
    mutated = bytearray(good)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(r.header_size, body_end - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        exercise(bytes(mutated))


FIXTURES = sorted(p.name for p in DATA.glob("*.ref"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.data())
def test_corrupted_git_fixtures_raise_only_format_error(name: str, data: Any) -> None:
    """git-written tables with multi-level indexes, obj and log sections, damaged anywhere."""
    good = (DATA / name).read_bytes()
    mutated = bytearray(good)
    if data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(mutated) - 1))
            mutated[at] = data.draw(st.integers(0, 255))
    else:
        del mutated[data.draw(st.integers(0, len(mutated) - 1)) :]
    try:
        exercise(bytes(mutated))
    except FormatError as e:
        assert e.offset is None or 0 <= e.offset <= len(good)
