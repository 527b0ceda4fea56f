"""Helpers shared by the codec tests: manifest access and re-encoding a table."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

from conftest import DATA

from aioreftable import FormatError
from aioreftable._format._block import Block
from aioreftable._format._records import BLOCK_TYPE_LOG, BLOCK_TYPE_OBJ
from aioreftable._format._writer import HashName
from aioreftable.lowlevel import (
    LogRecord,
    LogValueType,
    MergedTable,
    RefRecord,
    TableReader,
    TableWriter,
    WriteOptions,
    get_varint,
    put_varint,
)


@cache
def manifest() -> dict[str, Any]:
    return dict(json.loads((DATA / "manifest.json").read_text()))


def hash_name_of(reader: TableReader) -> HashName:
    """The reader's hash name as the writer's option type."""
    return reader.hash.name


def options_for(name: str, reader: TableReader) -> WriteOptions:
    wo = manifest()[name]["writer_options"]
    return WriteOptions(
        block_size=wo["block_size"],
        restart_interval=wo["restart_interval"],
        index_objects=not wo["skip_index_objects"],
        hash=hash_name_of(reader),
    )


def reencode(reader: TableReader, options: WriteOptions) -> bytes:
    """Write ``reader``'s records again (tombstones included) with ``options``."""
    writer = TableWriter(options)
    writer.set_limits(reader.min_update_index, reader.max_update_index)
    for ref in reader.seek_refs():
        writer.add_ref(ref)
    for log in reader.seek_logs():
        writer.add_log(log)
    return writer.finish(allow_empty=True)


def inflated_blocks(reader: TableReader) -> list[tuple[int, int, bytes]]:
    """(offset, type, uncompressed bytes) of every block: compares log blocks independently
    of the zlib build."""
    return [(b.offset, b.typ, bytes(b.data)) for b in reader.blocks()]


# -- mutation harness: damaged tables that still open, and every read path over them --------

_RESTART_SHIFTS = (-3, -1, 1, 2, 3)


@dataclass(frozen=True)
class Probes:
    """What to ask a (damaged) table: the names, log keys and ids of the undamaged one."""

    refnames: tuple[bytes, ...]
    log_keys: tuple[tuple[bytes, int], ...]
    oids: tuple[bytes, ...]

    @classmethod
    def of(cls, reader: TableReader) -> Probes:
        refs = list(reader.seek_refs())
        logs = list(reader.seek_logs())
        oids = {v for r in refs for v in (r.value, r.target_value) if v is not None}
        return cls(
            tuple(r.refname for r in refs),
            tuple((lg.refname, lg.update_index) for lg in logs),
            tuple(sorted(oids)),
        )

    def sample(self, rng: random.Random, k: int) -> Probes:
        def pick(seq: tuple[Any, ...]) -> tuple[Any, ...]:
            if len(seq) <= k:
                return seq
            return (seq[0], seq[-1], *rng.sample(seq, k - 2))

        return Probes(pick(self.refnames), pick(self.log_keys), pick(self.oids))


def _drain(scan: Callable[[bytes], Iterable[object]], key: bytes) -> list[object]:
    """Run a scan to its end (a generator reads nothing until iterated)."""
    return list(scan(key))


def read_everything(reader: TableReader, probes: Probes) -> list[FormatError]:
    """Run every public read of ``reader`` (each on its own); the FormatErrors they raised.
    Any other exception propagates: reads may only fail with FormatError."""
    missing = (b"", b"\x00", b"HEAD", b"refs/heads/zzzz", b"\xff\xff")
    ops: list[Callable[[], object]] = [
        reader.stats,
        reader.ref_range,
        lambda: list(reader.blocks()),
        lambda: list(reader.seek_refs()),
        lambda: list(reader.seek_logs()),
        lambda: list(reader.iter_logs()),
    ]
    names = {*probes.refnames, *(n for n, _ in probes.log_keys), *missing}
    prefixes = {n[:k] for n in probes.refnames[:50] for k in (1, 5, 11)}
    for name in sorted(names):
        ops.append(partial(reader.ref, name))
        ops.append(partial(_drain, reader.iter_logs, name))
        ops.append(partial(_drain, reader.seek_refs, name))
    for prefix in sorted(prefixes):
        ops.append(partial(_drain, reader.iter_refs, prefix))
    for name, idx in probes.log_keys:
        ops.append(partial(reader.log, name, idx))
        ops.append(partial(reader.log, name, idx + 1))
    hs = reader.hash_size
    for oid in (*probes.oids, b"\0" * hs, b"\xff" * hs):
        ops.append(partial(_drain, reader.refs_for, oid))
    merged = MergedTable([reader])
    ops.append(lambda: list(merged.iter_refs()))
    ops.append(lambda: list(merged.iter_logs()))
    for name in probes.refnames[:20]:
        ops.append(partial(merged.ref, name))
    errors = []
    for op in ops:
        try:
            op()
        except FormatError as e:
            errors.append(e)
    return errors


def footer_field(data: bytes | bytearray, field: int) -> int:
    """File offset of footer position ``field`` (0 ref index .. 4 log index)."""
    hsize, fsize = (24, 68) if data[4] == 1 else (28, 72)
    return len(data) - fsize + hsize + 8 * field


def refooter(data: bytearray, field: int, value: int) -> None:
    """Set footer position ``field`` and recompute the footer's CRC."""
    struct.pack_into(">Q", data, footer_field(data, field), value)
    crc_at = footer_field(data, 5)
    foot = crc_at - 40 - (24 if data[4] == 1 else 28)
    struct.pack_into(">I", data, crc_at, zlib.crc32(bytes(data[foot:crc_at])) & 0xFFFFFFFF)


def _crc(data: bytearray, version: int) -> None:
    fsize = 68 if version == 1 else 72
    hsize = 24 if version == 1 else 28
    foot = len(data) - fsize
    data[foot + hsize + 40 : foot + fsize] = struct.pack(
        ">I", zlib.crc32(bytes(data[foot : foot + hsize + 40])) & 0xFFFFFFFF
    )


def _record_positions(blk: Block) -> list[tuple[int, int, int]]:
    """(record start, value type, value start) of every record of a block."""
    out = []
    pos, prev = blk.first_pos, b""
    while pos < blk.restart_off:
        key, vt, vpos = blk._key_at(pos, prev)
        out.append((pos, vt, vpos))
        pos, prev = blk._skip_value(key, vt, vpos), key
    return out


class Mutator:
    """Damages a valid table in ways that keep it openable: byte edits in block data,
    footer and header fields with the footer CRC recomputed, restart offsets and counts,
    block lengths and types, index and object record offsets, and edits inside log blocks
    (inflated, damaged, deflated again)."""

    KINDS = (
        "byte", "byte", "footer", "footer", "footer", "header", "restart", "restart",
        "restart_count", "block_len", "block_type", "entry_offset", "entry_offset", "log",
    )  # fmt: skip

    def __init__(self, data: bytes):
        self.data = data
        r = TableReader.from_bytes(data)
        self.version = r.version
        self.hsize = r.header_size
        self.size = r.size
        self.blocks = list(r.blocks())
        self.offsets = [b.offset for b in self.blocks]
        self.positions = {b.offset: _record_positions(b) for b in self.blocks}

    def mutants(self, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
        made = 0
        while made < n:
            kind = rng.choice(self.KINDS)
            out = bytearray(self.data)
            if getattr(self, "_" + kind)(rng, out) is False:
                continue
            if rng.random() < 0.15:  # sometimes two at once
                kind2 = rng.choice(self.KINDS)
                if getattr(self, "_" + kind2)(rng, out) is not False:
                    kind += "+" + kind2
            _crc(out, self.version)
            made += 1
            yield kind, bytes(out)

    def _value(self, rng: random.Random, current: int) -> int:
        choices = [0, 1, current + 1, current - 1, current + 4096, rng.randrange(self.size + 8)]
        if self.offsets:
            choices += [rng.choice(self.offsets)] * 3
        return max(0, rng.choice(choices))

    def _byte(self, rng: random.Random, out: bytearray) -> bool:
        if self.size <= self.hsize:
            return False
        at = rng.randrange(self.hsize, self.size)
        out[at] = rng.randrange(256) if rng.random() < 0.5 else out[at] ^ (1 << rng.randrange(8))
        return True

    def _footer(self, rng: random.Random, out: bytearray) -> bool:
        fsize = 68 if self.version == 1 else 72
        at = len(out) - fsize + self.hsize + 8 * rng.randrange(5)
        (cur,) = struct.unpack_from(">Q", out, at)
        if at == len(out) - fsize + self.hsize + 8 and rng.random() < 0.5:  # obj_id_len
            new = (cur & ~31) | rng.randrange(32)
        elif at == len(out) - fsize + self.hsize + 8:
            new = self._value(rng, cur >> 5) << 5 | (cur & 31)
        else:
            new = self._value(rng, cur)
        struct.pack_into(">Q", out, at, new & ((1 << 64) - 1))
        return True

    def _header(self, rng: random.Random, out: bytearray) -> bool:
        fsize = 68 if self.version == 1 else 72
        foot = len(out) - fsize
        if rng.random() < 0.5:
            (bs,) = struct.unpack(">I", b"\0" + bytes(out[5:8]))
            new = rng.choice([0, 1, 64, 256, bs // 2, bs + 1, bs * 2, 1 << 23])
            for base in (0, foot):
                out[base + 5 : base + 8] = (new & 0xFFFFFF).to_bytes(3, "big")
        else:
            at = rng.choice((8, 16))
            (cur,) = struct.unpack_from(">Q", out, at)
            new = max(0, cur + rng.choice((-2, -1, 1, 2, 1 << 40)))
            for base in (0, foot):
                struct.pack_into(">Q", out, base + at, new & ((1 << 64) - 1))
        return True

    def _plain_block(self, rng: random.Random, typs: str = "rio") -> Block | None:
        cands = [b for b in self.blocks if chr(b.typ) in typs]
        return rng.choice(cands) if cands else None

    def _restart(self, rng: random.Random, out: bytearray) -> bool:
        blk = self._plain_block(rng)
        if blk is None or not blk.restart_count:
            return False
        at = blk.offset + blk.restart_off + 3 * rng.randrange(blk.restart_count)
        cur = int.from_bytes(out[at : at + 3], "big")
        recs = [p for p, _, _ in self.positions[blk.offset]]
        new = rng.choice(
            [0, cur + rng.choice(_RESTART_SHIFTS), rng.choice(recs), blk.restart_off, 0xFFFFFF]
        )
        out[at : at + 3] = (max(0, new) & 0xFFFFFF).to_bytes(3, "big")
        return True

    def _restart_count(self, rng: random.Random, out: bytearray) -> bool:
        blk = self._plain_block(rng)
        if blk is None:
            return False
        at = blk.offset + len(blk.data) - 2
        new = max(0, blk.restart_count + rng.choice((-2, -1, 1, 2)))
        out[at : at + 2] = (new & 0xFFFF).to_bytes(2, "big")
        return True

    def _block_len(self, rng: random.Random, out: bytearray) -> bool:
        if not self.blocks:
            return False
        blk = rng.choice(self.blocks)
        at = blk.offset + blk.header_off + 1
        cur = int.from_bytes(out[at : at + 3], "big")
        new = max(0, cur + rng.choice((-7, -3, -1, 1, 3, 7, 4096, -cur)))
        out[at : at + 3] = (new & 0xFFFFFF).to_bytes(3, "big")
        return True

    def _block_type(self, rng: random.Random, out: bytearray) -> bool:
        if not self.blocks:
            return False
        blk = rng.choice(self.blocks)
        out[blk.offset + blk.header_off] = ord(rng.choice("rgoi"))
        return True

    def _entry_offset(self, rng: random.Random, out: bytearray) -> bool:
        """Point an index or obj record's (first) block offset elsewhere, same varint size."""
        blk = self._plain_block(rng, "io")
        if blk is None:
            return False
        _, vt, vpos = rng.choice(self.positions[blk.offset])
        pos = vpos
        if blk.typ == BLOCK_TYPE_OBJ and not vt:  # cnt comes as a varint first
            cnt, pos = get_varint(blk.data, vpos, blk.restart_off)
            if not cnt:
                return False  # cnt 0: no offsets
        cur, end = get_varint(blk.data, pos, blk.restart_off)
        width = end - pos
        for _ in range(20):
            new = self._value(rng, cur)
            enc = put_varint(new)
            if len(enc) == width and new != cur:
                out[blk.offset + pos : blk.offset + end] = enc
                return True
        return False

    def _log(self, rng: random.Random, out: bytearray) -> bool:
        """Damage the inflated bytes of a log block (a record byte, a restart offset or the
        restart count) and deflate it again in place; later offsets shift if its size does."""
        logs = [b for b in self.blocks if b.typ == BLOCK_TYPE_LOG]
        if not logs or len(out) != len(self.data):
            return False
        blk = rng.choice(logs)
        body = bytearray(blk.data)
        where = rng.random()
        if where < 0.4 and blk.restart_count:
            at = blk.restart_off + 3 * rng.randrange(blk.restart_count)
            cur = int.from_bytes(body[at : at + 3], "big")
            body[at : at + 3] = (max(0, cur + rng.choice(_RESTART_SHIFTS)) & 0xFFFFFF).to_bytes(
                3, "big"
            )
        elif where < 0.5:
            body[-2:] = ((blk.restart_count + rng.choice((-1, 1))) & 0xFFFF).to_bytes(2, "big")
        else:
            at = rng.randrange(blk.first_pos, len(body))
            body[at] = rng.randrange(256)
        start = blk.offset + blk.header_off + 4
        packed = zlib.compress(bytes(body[blk.header_off + 4 :]), 9)
        out[start : blk.offset + blk.on_disk_size] = packed
        return True


def _generated_table(opts: WriteOptions, nrefs: int, nlogs: int, name_len: int) -> bytes:
    hs = opts.hash_size
    w = TableWriter(opts)
    w.set_limits(1, 3)
    names = sorted(b"refs/heads/%s%05d" % (b"n" * name_len, i) for i in range(nrefs))
    for i, name in enumerate(names):
        oid = (i * 7919 + 1).to_bytes(4, "big") * (hs // 4)
        if i % 11 == 3:
            w.add_ref(RefRecord.symref(name, 1 + i % 3, b"refs/heads/main"))
        elif i % 7 == 2:
            w.add_ref(RefRecord.val2(name, 1 + i % 3, oid, oid[::-1]))
        elif i % 13 == 5:
            w.add_ref(RefRecord.deletion(name, 1 + i % 3))
        else:
            w.add_ref(RefRecord.val1(name, 1 + i % 3, oid))
    for i, name in enumerate(names[:nlogs]):
        for ui in (3, 2, 1):
            old, new = bytes([i % 256]) * hs, bytes([ui]) * hs
            msg = b"update %d" % ui
            rec = LogRecord(name, ui, LogValueType.UPDATE, old, new, b"A U", b"a@b", 1, 60, msg)
            w.add_log(rec)
    return w.finish()


@cache
def mutation_tables() -> dict[str, bytes]:
    """Valid tables to damage: every git fixture and our own tables with a multi-level ref
    index, an object index with its own index, a log index, SHA-256 and unpadded blocks."""
    tables = {p.name: p.read_bytes() for p in sorted(DATA.glob("*.ref"))}
    gen = {
        "py_multilevel_bs256": (WriteOptions(block_size=256), 300, 60, 100),
        "py_objindex_bs200_r2": (WriteOptions(block_size=200, restart_interval=2), 400, 0, 0),
        "py_sha256_unpadded": (WriteOptions(hash="sha256", unpadded=True), 120, 120, 5),
        "py_logindex_bs512": (WriteOptions(block_size=512, restart_interval=3), 80, 80, 10),
    }
    for name, args in gen.items():
        tables[name] = _generated_table(*args)
    return tables


class _Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Turn a hang (an endless loop over damaged data) into an exception, where possible."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def alarm(signum: int, frame: object) -> None:
        raise _Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class MutationReport:
    tried: int = 0
    open_failing: int = 0
    read_failing: int = 0
    verify_missed: int = 0
    crashed: int = 0  # a read or the check raised something other than FormatError
    unlocated: int = 0  # a read's FormatError or a finding names no file or no offset
    misses: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"tried {self.tried}, fail to open {self.open_failing}, opened but a read fails "
            f"{self.read_failing}, of those missed by the check {self.verify_missed}; "
            f"other exceptions {self.crashed}; errors or findings without file or offset "
            f"{self.unlocated}"
        )


def run_mutations(
    check: Callable[[TableReader], list[Any]],
    per_table: int,
    seed: int,
    sample: int | None = 25,
    tables: dict[str, bytes] | None = None,
) -> MutationReport:
    """Damage every table (default: ``mutation_tables()``) ``per_table`` times; for each mutant
    that opens, run every read, and count reads failing while ``check`` finds nothing
    located (a finding with an offset)."""
    report = MutationReport()
    for tname, data in (mutation_tables() if tables is None else tables).items():
        rng = random.Random(f"{seed}:{tname}")
        probes = Probes.of(TableReader.from_bytes(data))
        for kind, mutant in Mutator(data).mutants(rng, per_table):
            report.tried += 1
            try:
                reader = TableReader.from_bytes(mutant, "t.ref")
            except FormatError:
                report.open_failing += 1
                continue
            p = probes if sample is None else probes.sample(rng, sample)
            try:
                with time_limit(5.0):
                    errors = read_everything(reader, p)
                    findings = check(TableReader.from_bytes(mutant, "t.ref"))
            except Exception as e:
                report.crashed += 1
                report.misses.append(f"{tname} [{kind}]: {type(e).__name__}: {e}")
                continue
            bare = [e for e in errors if e.path != "t.ref" or e.offset is None]
            bare += [f for f in findings if f.path != "t.ref" or f.offset is None]
            if bare:
                report.unlocated += 1
                report.misses.append(f"{tname} [{kind}]: unlocated: {bare[0]!r}")
            if errors:
                report.read_failing += 1
                if not any(f.offset is not None for f in findings):
                    report.verify_missed += 1
                    report.misses.append(f"{tname} [{kind}]: {errors[0]} / {findings}")
    return report
