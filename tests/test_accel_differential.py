"""The compiled block decoder against the pure-Python reference: every read of every fixture,
of git-written tables, of hypothesis-generated tables and of damaged and truncated tables
gives the same records (same classes, equal ``repr``) and the same errors (type, message,
file, offset) on both paths.

Both paths run in this process: ``on_path("pure")`` switches ``_block``'s decoder off.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pytest
from conftest import Git
from format_helpers import Mutator, Probes, mutation_tables, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_format_properties import tables, write

from aioreftable import FormatError
from aioreftable._format import _accel, _block
from aioreftable._format._binary import common_prefix
from aioreftable._refs import _scan
from aioreftable._refs._core import Ref
from aioreftable.lowlevel import (
    ACCELERATED,
    MergedTable,
    RefRecord,
    TableReader,
    TableWriter,
    WriteOptions,
    check_table,
)

Path_ = Literal["accel", "pure"]


@contextmanager
def on_path(which: Path_) -> Iterator[None]:
    saved = _block._speedups, _scan._speedups
    _block._speedups = _accel.speedups if which == "accel" else None
    _scan._speedups = saved[1] if which == "accel" else None  # records to Refs
    try:
        yield
    finally:
        _block._speedups, _scan._speedups = saved


def _shape(value: Any) -> Any:
    """What a read returned, comparable across paths: classes and reprs of records."""
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return [_shape(v) for v in value]
    if isinstance(value, _block.Block):
        return ("Block", value.offset, value.typ, value.on_disk_size)
    return (type(value).__qualname__, repr(value))


def _error(e: FormatError) -> tuple[str, str, str | None, int | None]:
    return (type(e).__qualname__, str(e), e.path, e.offset)


def _drain(scan: Callable[[bytes], Iterable[object]], key: bytes) -> list[object]:
    return list(scan(key))


def _chunks(reader: TableReader, prefix: bytes) -> list[RefRecord]:
    """ref_chunks flattened, checked against iter_refs on the same path."""
    chunks = list(reader.ref_chunks(prefix))
    assert all(chunks), "an empty list"
    flat = [rec for chunk in chunks for rec in chunk]
    assert flat == list(reader.iter_refs(prefix))
    return flat


def _refs_of(reader: TableReader, include_root_refs: bool) -> list[Ref]:
    return _scan.refs_of(list(reader.seek_refs()), include_root_refs)


def _ops(reader: TableReader, probes: Probes) -> list[tuple[str, Callable[[], Any]]]:
    """Every public read (as format_helpers.read_everything), each seek repeated so blocks
    turn hot, and the deep check."""
    ops: list[tuple[str, Callable[[], Any]]] = [
        ("stats", reader.stats),
        ("ref_range", reader.ref_range),
        ("blocks", lambda: list(reader.blocks())),
        ("seek_refs", lambda: list(reader.seek_refs())),
        ("seek_logs", lambda: list(reader.seek_logs())),
    ]
    missing = (b"", b"\x00", b"HEAD", b"refs/heads/zzzz", b"\xff\xff")
    names = sorted({*probes.refnames, *(n for n, _ in probes.log_keys), *missing})
    for _ in range(2):  # the second round seeks hot blocks
        for name in names:
            ops.append((f"ref {name!r}", partial(reader.ref, name)))
            ops.append((f"seek_refs {name!r}", partial(_drain, reader.seek_refs, name)))
            ops.append((f"iter_logs {name!r}", partial(_drain, reader.iter_logs, name)))
    for name in probes.refnames[:50]:
        for k in (1, 5, 11):
            ops.append((f"iter_refs {name[:k]!r}", partial(_drain, reader.iter_refs, name[:k])))
        ops.append((f"ref_chunks {name[:5]!r}", partial(_chunks, reader, name[:5])))
    ops.append(("ref_chunks", partial(_chunks, reader, b"")))
    for root in (False, True):  # RefStore.iterate's Refs (the compiled converter's)
        ops.append((f"refs_of {root}", partial(_refs_of, reader, root)))
    for name, idx in probes.log_keys:
        ops.append((f"log {name!r} {idx}", partial(reader.log, name, idx)))
    hs = reader.hash_size
    for oid in (*probes.oids, b"\0" * hs, b"\xff" * hs):
        ops.append((f"refs_for {oid.hex()}", partial(_drain, reader.refs_for, oid)))
    merged = MergedTable([reader])
    ops.append(("merged iter_refs", lambda: list(merged.iter_refs())))
    for name in probes.refnames[:20]:
        ops.append((f"merged ref {name!r}", partial(merged.ref, name)))
    ops.append(("check_table", lambda: [(f.path, f.offset, f.message) for f in check_table(
        TableReader.from_bytes(reader.source.read(0, reader.file_size), "t.ref"))]))  # fmt: skip
    return ops


def outcomes(data: bytes, probes: Probes, which: Path_) -> list[tuple[str, Any]]:
    """Open ``data`` and run every read on one path; each read's records or error."""
    with on_path(which):
        try:
            reader = TableReader.from_bytes(data, "t.ref")
        except FormatError as e:
            return [("open", _error(e))]
        out: list[tuple[str, Any]] = []
        for label, op in _ops(reader, probes):
            try:
                out.append((label, _shape(op())))
            except FormatError as e:
                out.append((label, _error(e)))
        return out


def assert_same(data: bytes, probes: Probes, what: str) -> list[tuple[str, Any]]:
    with time_limit(20.0):
        accel = outcomes(data, probes, "accel")
        pure = outcomes(data, probes, "pure")
    for (label, a), (_, p) in zip(accel, pure, strict=True):
        assert a == p, f"{what}: {label}: compiled {a!r} != reference {p!r}"
    return accel


def test_the_compiled_decoder_is_live() -> None:
    """The rest of this file compares two paths only if the module is built (CI builds it
    with ``pip install -e '.[test]'``; ``hatch_build.py``); ``AIOREFTABLE_PURE_PYTHON=1``
    turns it off on purpose."""
    forced = os.environ.get(_accel.PURE_PYTHON_ENV, "") not in ("", "0")
    assert (_accel.speedups is not None) == ACCELERATED
    if not forced:
        assert ACCELERATED, "the compiled decoder is not built: pip install -e '.[test]'"


@pytest.mark.parametrize("name", sorted(mutation_tables()))
def test_every_fixture_reads_the_same_on_both_paths(name: str) -> None:
    data = mutation_tables()[name]
    probes = Probes.of(TableReader.from_bytes(data))
    found = assert_same(data, probes, name)
    assert not any(isinstance(v, tuple) and v[0].endswith("Error") for _, v in found), name


@pytest.mark.parametrize("name", sorted(mutation_tables()))
def test_damaged_tables_fail_the_same_on_both_paths(name: str) -> None:
    """The mutation harness's damage (restart tables, block lengths and types, footer
    fields, log blocks, bytes anywhere) plus bytes changed inside ref records, where the
    compiled decoder works."""
    data = mutation_tables()[name]
    good = TableReader.from_bytes(data)
    probes = Probes.of(good)
    rng = random.Random(f"differential:{name}")
    failing = 0
    for kind, mutant in Mutator(data).mutants(rng, 6):
        found = assert_same(mutant, probes.sample(rng, 6), f"{name} [{kind}]")
        failing += any(isinstance(v, tuple) and len(v) == 4 for _, v in found)
    ref_blocks = [b for b in good.blocks() if b.typ == ord("r")]
    for i in range(10):
        out = bytearray(data)
        if ref_blocks:
            blk = rng.choice(ref_blocks)
            for _ in range(rng.choice((1, 1, 2, 3))):
                at = blk.offset + rng.randrange(blk.first_pos, len(blk.data))
                out[at] = rng.randrange(256) if i % 2 else out[at] ^ (1 << rng.randrange(8))
        found = assert_same(bytes(out), probes.sample(rng, 6), f"{name} [ref record byte]")
        failing += any(isinstance(v, tuple) and len(v) == 4 for _, v in found)
    assert failing, f"{name}: no damage reached a read"


@pytest.mark.parametrize("name", sorted(mutation_tables())[::3])
def test_truncated_tables_fail_the_same_on_both_paths(name: str) -> None:
    """Cut anywhere (open fails), or cut and given back a footer (the positions and blocks
    then run past the data)."""
    data = mutation_tables()[name]
    probes = Probes.of(TableReader.from_bytes(data)).sample(random.Random(1), 6)
    fsize = 68 if data[4] == 1 else 72
    rng = random.Random(name)
    for cut in sorted(rng.sample(range(len(data) - 1), 8)):
        assert_same(data[:cut], probes, f"{name} cut at {cut}")
        if cut > fsize + 30:
            assert_same(data[:cut] + data[-fsize:], probes, f"{name} cut at {cut} + footer")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_refs=40), st.data())
def test_generated_tables_read_the_same_on_both_paths(table: Any, data: Any) -> None:
    good = write(*table)
    probes = Probes.of(TableReader.from_bytes(good))
    assert_same(good, probes, "generated")
    reader = TableReader.from_bytes(good)
    body = reader.size
    if body > reader.header_size:
        mutated = bytearray(good)
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(reader.header_size, body - 1))
            mutated[at] = data.draw(st.integers(0, 255))
        assert_same(bytes(mutated), probes, "generated, damaged")


def test_update_index_past_64_bits_is_decoded_by_the_reference() -> None:
    """The compiled decoder stops where min_update_index + delta leaves 64 bits (a C integer
    would overflow); the reference decodes that record (a Python int), so both agree."""
    w = TableWriter(WriteOptions(block_size=256))
    w.set_limits(0, 1 << 40)
    for i in range(40):
        w.add_ref(RefRecord.val1(b"refs/heads/b%03d" % i, (1 << 40) - i % 2, bytes(20)))
    data = bytearray(w.finish())
    fsize, hsize = 68, 24
    foot = len(data) - fsize
    for base in (0, foot):  # min_update_index near 2**64, in the header and the footer
        struct.pack_into(">Q", data, base + 8, (1 << 64) - 2)
    crc = zlib.crc32(bytes(data[foot : foot + hsize + 40]))
    struct.pack_into(">I", data, foot + hsize + 40, crc)
    reader = TableReader.from_bytes(bytes(data))
    assert_same(bytes(data), Probes.of(reader), "update index past 64 bits")
    assert all(r.update_index >= 1 << 64 for r in reader.seek_refs())


def test_git_written_tables_read_the_same_on_both_paths(git: Git, tmp_path: Path) -> None:
    """Tables a live git writes: small blocks, restart interval 1 and the default, symrefs,
    annotated tags (val2), deletions, reflogs, an object index."""
    repo = tmp_path / "repo"
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(repo))
    git("config", "core.logAllRefUpdates", "always", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "c0", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "c1", cwd=repo)
    ids = git("rev-parse", "HEAD", "HEAD~1", cwd=repo).split()
    lines = [f"create refs/heads/topic/b{i:04d}-{'x' * (i % 40)} {ids[i % 2]}\n"
             for i in range(600)]  # fmt: skip
    git("update-ref", "--stdin", cwd=repo, input="".join(lines))
    git("tag", "-a", "-m", "annotated", "v1", cwd=repo)
    git("symbolic-ref", "refs/heads/alias", "refs/heads/main", cwd=repo)
    git("pack-refs", "--all", cwd=repo)
    for i in range(0, 600, 7):
        git("update-ref", "-d", f"refs/heads/topic/b{i:04d}-{'x' * (i % 40)}", cwd=repo)
    tables_seen = 0
    for key, value in (("blockSize", "256"), ("restartInterval", "1")):
        git("config", f"reftable.{key}", value, cwd=repo)
    git("pack-refs", "--all", cwd=repo)
    git("update-ref", "refs/heads/late", ids[0], cwd=repo)
    for table in sorted((repo / ".git" / "reftable").glob("*.ref")):
        data = table.read_bytes()
        probes = Probes.of(TableReader.from_bytes(data))
        assert_same(data, probes, table.name)
        tables_seen += 1
    assert tables_seen >= 2


@given(st.binary(max_size=40), st.binary(max_size=40), st.integers(0, 40))
def test_common_prefix_is_the_same_on_both_paths(a: bytes, b: bytes, shared: int) -> None:
    """The writer's prefix compression (both paths write byte-identical tables)."""
    b = a[:shared] + b
    want = common_prefix(a, b)
    assert want == (_accel.speedups.common_prefix(a, b) if _accel.speedups else want)
    with on_path("pure"):
        assert _block.shared_prefix(a, b) == want
    with on_path("accel"):
        assert _block.shared_prefix(a, b) == want
