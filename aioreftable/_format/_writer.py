"""TableWriter: records in, the bytes of one reftable file out (git's writer.c, byte for byte)."""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import (
    EmptyTableError,
    EntryTooBigError,
    KeyOrderError,
    LimitsError,
    UpdateIndexError,
    UsageError,
)
from ._binary import put_varint
from ._block import BlockWriter, shared_prefix
from ._layout import (
    BLOCK_TYPE_INDEX,
    BLOCK_TYPE_LOG,
    BLOCK_TYPE_OBJ,
    BLOCK_TYPE_REF,
    FORMAT_ID_SHA1,
    FORMAT_ID_SHA256,
    HASH_ALGORITHMS,
    HASH_SIZES,
    MAGIC,
    MAX_BLOCK_SIZE,
    MAX_RESTART_INTERVAL,
    HashAlgorithm,
    HashName,
    footer_size,
    header_size,
)
from ._records import (
    LogRecord,
    LogValueType,
    RefRecord,
    encode_log_value,
    encode_ref_value,
    log_key,
)

# FORMAT_ID_*, HASH_SIZES, HashName, footer_size and header_size stay importable from here
# for compatibility; they live in ``_layout`` (HASH_SIZES is deprecated: use HashAlgorithm).
__all__ = [
    "FORMAT_ID_SHA1",
    "FORMAT_ID_SHA256",
    "HASH_SIZES",
    "HashName",
    "TableWriter",
    "WriteOptions",
    "footer_size",
    "header_size",
    "normalize_log_message",
]


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """Writer options, named after git's ``reftable_write_options`` and config keys."""

    block_size: int = 4096
    restart_interval: int = 16
    index_objects: bool = True
    unpadded: bool = False
    exact_log_message: bool = False
    hash: HashName = "sha1"

    def __post_init__(self) -> None:
        if not 0 < self.block_size <= MAX_BLOCK_SIZE:
            raise UsageError(f"block_size must be in 1..{MAX_BLOCK_SIZE}, got {self.block_size}")
        if not 0 < self.restart_interval <= MAX_RESTART_INTERVAL:
            limit, got = MAX_RESTART_INTERVAL, self.restart_interval
            raise UsageError(f"restart_interval must be in 1..{limit}, got {got}")
        if self.hash not in HASH_ALGORITHMS:
            raise UsageError(f"hash must be 'sha1' or 'sha256', got {self.hash!r}")

    @property
    def algorithm(self) -> HashAlgorithm:
        """The hash named by ``hash``: sizes, format id and the table version to write."""
        return HASH_ALGORITHMS[self.hash]

    @property
    def hash_size(self) -> int:
        return self.algorithm.size

    @property
    def version(self) -> int:
        return self.algorithm.table_version


def normalize_log_message(message: bytes) -> bytes:
    """git's writer rule: drop trailing LFs, refuse inner LFs, end with exactly one LF."""
    stripped = message.rstrip(b"\n")
    if b"\n" in stripped:
        raise UsageError("reflog messages must be a single line")
    return stripped + b"\n"


class _SectionStats:
    __slots__ = ("blocks", "index_blocks", "index_offset", "max_index_level", "offset")

    def __init__(self) -> None:
        self.blocks = 0
        self.offset = 0
        self.index_offset = 0
        self.index_blocks = 0
        self.max_index_level = 0


class TableWriter:
    """Builds one table in memory. Call ``set_limits`` first, then refs (sorted), then logs
    (sorted by refname, newest first), then ``finish()``."""

    def __init__(self, options: WriteOptions | None = None):
        self.options = opts = options or WriteOptions()
        self._algorithm = opts.algorithm
        self._hash_size = self._algorithm.size
        self._version = self._algorithm.table_version
        self._header_size = header_size(self._version)
        self.min_update_index = 0
        self.max_update_index = 0
        self._out = bytearray()
        self._pending = 0
        self._index: list[tuple[bytes, int]] = []
        self._obj: dict[bytes, list[int]] = {}
        self._object_id_len = 0
        self._stats = {t: _SectionStats() for t in BLOCK_TYPE_REF_LOG_OBJ_INDEX}
        self._last_ref = b""
        self._last_log = b""
        self._records = 0
        self._logs_started = False
        self._finished = False
        self._bw: BlockWriter | None = None
        self._reinit(BLOCK_TYPE_REF)

    # -- public API --------------------------------------------------------------------
    def set_limits(self, min_update_index: int, max_update_index: int) -> None:
        """Set the update-index range; only before the first record (git 017bd89239)."""
        self._check_open()
        if self._records:
            raise LimitsError("set_limits() must be called before adding records")
        if not 0 <= min_update_index <= max_update_index < 1 << 64:
            raise LimitsError(f"invalid limits {min_update_index}..{max_update_index}")
        self.min_update_index = min_update_index
        self.max_update_index = max_update_index

    def add_ref(self, rec: RefRecord) -> None:
        self._check_open()
        if self._logs_started:
            raise KeyOrderError("refs must be added before logs")
        if not self.min_update_index <= rec.update_index <= self.max_update_index:
            raise UpdateIndexError(
                f"ref {rec.refname!r}: update index {rec.update_index} outside "
                f"{self.min_update_index}..{self.max_update_index}"
            )
        if not rec.refname:
            raise UsageError("refname must not be empty")
        if rec.refname <= self._last_ref:
            raise KeyOrderError(f"ref {rec.refname!r} is not after {self._last_ref!r}")
        value = encode_ref_value(rec, self.min_update_index, self._hash_size)
        self._add_record(BLOCK_TYPE_REF, rec.refname, int(rec.value_type), value)
        self._last_ref = rec.refname
        self._records += 1
        if self.options.index_objects:
            for oid in rec.object_ids:
                self._index_object(oid)

    def add_log(self, rec: LogRecord) -> None:
        self._check_open()
        if rec.value_type != LogValueType.DELETION:
            if rec.update_index > self.max_update_index:
                raise UpdateIndexError(
                    f"log {rec.refname!r}: update index {rec.update_index} above "
                    f"{self.max_update_index}"
                )
            if not self.options.exact_log_message:
                msg = normalize_log_message(rec.message)
                if msg != rec.message:
                    rec = LogRecord(
                        rec.refname, rec.update_index, rec.value_type, rec.old_id, rec.new_id,
                        rec.name, rec.email, rec.time, rec.tz_offset, msg,
                    )  # fmt: skip
        if not rec.refname:
            raise UsageError("refname must not be empty")
        key = log_key(rec.refname, rec.update_index)
        if key <= self._last_log:
            raise KeyOrderError(
                f"log {rec.refname!r}@{rec.update_index} is not after the previous log record"
            )
        value = encode_log_value(rec, self._hash_size)
        if not self._logs_started:
            self._finish_public_section()
            self._next_drop_padding()
            self._logs_started = True
        self._add_record(BLOCK_TYPE_LOG, key, int(rec.value_type), value)
        self._last_log = key
        self._records += 1

    def add_refs(self, records: Iterable[RefRecord]) -> None:
        """Add refs in any order (sorted by name here, as git's add_refs does)."""
        for rec in sorted(records, key=lambda r: r.refname):
            self.add_ref(rec)

    def add_logs(self, records: Iterable[LogRecord]) -> None:
        """Add logs in any order (sorted by key here, as git's add_logs does)."""
        for rec in sorted(records, key=lambda r: r.key):
            self.add_log(rec)

    @property
    def record_count(self) -> int:
        return self._records

    def finish(self, *, allow_empty: bool = False) -> bytes:
        """Write the remaining sections and the footer; returns the whole file.

        With no records this raises EmptyTableError, unless ``allow_empty`` (then git's
        92/100-byte empty table is returned).
        """
        self._check_open()
        self._finish_public_section()
        self._finished = True
        empty = self._next == 0
        if empty and not allow_empty:
            raise EmptyTableError("the table has no records")
        self._pending = 0
        header = self._header()
        if empty:
            self._out += header
        ref, obj, log = (self._stats[t] for t in (BLOCK_TYPE_REF, BLOCK_TYPE_OBJ, BLOCK_TYPE_LOG))
        footer = header + struct.pack(
            ">QQQQQ",
            ref.index_offset,
            (obj.offset << 5) | self._object_id_len,
            obj.index_offset,
            log.offset,
            log.index_offset,
        )
        footer += struct.pack(">I", zlib.crc32(footer) & 0xFFFFFFFF)
        self._out += footer
        return bytes(self._out)

    # -- internals ---------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._finished:
            raise UsageError("the writer is already finished")

    @property
    def _next(self) -> int:
        return len(self._out) + self._pending

    def _next_drop_padding(self) -> None:
        self._pending = 0

    def _header(self) -> bytes:
        opts = self.options
        head = MAGIC + bytes((self._version,)) + opts.block_size.to_bytes(3, "big")
        head += struct.pack(">QQ", self.min_update_index, self.max_update_index)
        if self._version >= 2:  # version 1 is SHA-1 only and has no room for the hash id
            head += struct.pack(">I", self._algorithm.format_id)
        return head

    def _reinit(self, typ: int) -> BlockWriter:
        """Start a block of type ``typ`` at the current position; returns its writer."""
        header_off = self._header_size if self._next == 0 else 0
        self._bw = bw = BlockWriter(
            typ, self.options.block_size, header_off, self.options.restart_interval
        )
        return bw

    def _add_record(self, typ: int, key: bytes, val_type: int, value: bytes) -> None:
        bw = self._bw
        if bw is None:
            bw = self._reinit(typ)
        if bw.add(key, val_type, value):
            return
        self._flush_block()
        bw = self._reinit(typ)
        if not bw.add(key, val_type, value):
            raise EntryTooBigError(
                f"a record of {len(key) + len(value)} bytes (key {key[:64]!r}) does not fit "
                f"into an empty block of {self.options.block_size} bytes"
            )

    def _flush_block(self) -> None:
        bw = self._bw
        if bw is None or bw.entries == 0:
            return
        raw = bw.finish()
        typ = bw.typ
        padding = 0
        if not self.options.unpadded and typ != BLOCK_TYPE_LOG:
            padding = self.options.block_size - len(raw)
        stats = self._stats[typ]
        if stats.blocks == 0 and self._next > 0:
            stats.offset = self._next
        stats.blocks += 1
        offset = self._next
        if offset == 0:
            raw[: self._header_size] = self._header()
        if self._pending:
            self._out += bytes(self._pending)
        self._pending = padding
        self._out += raw
        self._index.append((bw.last_key, offset))
        self._bw = None

    def _finish_section(self, typ: int) -> None:
        """Flush the section's last block (of type ``typ``) and write its index levels."""
        threshold = 1 if self.options.unpadded else 3
        index_stats = self._stats[BLOCK_TYPE_INDEX]
        before = index_stats.blocks
        self._flush_block()
        index_start = 0
        level = 0
        while len(self._index) > threshold:
            level += 1
            index_start = self._next
            self._reinit(BLOCK_TYPE_INDEX)
            entries, self._index = self._index, []
            for last_key, offset in entries:
                self._add_record(BLOCK_TYPE_INDEX, last_key, 0, put_varint(offset))
            self._flush_block()
            if len(self._index) >= len(entries):
                # one index record per block: another level would be as long (git loops)
                raise EntryTooBigError(
                    f"index records for keys of up to {max(len(k) for k, _ in entries)} bytes "
                    f"do not fit two to a block of {self.options.block_size} bytes"
                )
        self._index = []
        stats = self._stats[typ]
        stats.index_blocks = index_stats.blocks - before
        stats.index_offset = index_start
        stats.max_index_level = level

    def _finish_public_section(self) -> None:
        bw = self._bw
        if bw is None:
            return
        typ = bw.typ
        self._finish_section(typ)
        if (
            typ == BLOCK_TYPE_REF
            and self.options.index_objects
            and self._stats[BLOCK_TYPE_REF].index_blocks > 0
        ):
            self._dump_object_index()
        self._obj = {}
        self._bw = None

    def _index_object(self, oid: bytes) -> None:
        offsets = self._obj.setdefault(oid, [])
        off = self._next
        if not offsets or offsets[-1] != off:
            offsets.append(off)

    def _dump_object_index(self) -> None:
        ids = sorted(self._obj)
        longest = 1  # obj_id_len is at least 2 (git b4007fcc6f)
        for a, b in itertools.pairwise(ids):
            longest = max(longest, shared_prefix(a, b))
        self._object_id_len = id_len = longest + 1
        bw = self._reinit(BLOCK_TYPE_OBJ)
        for oid in ids:
            offsets = self._obj[oid]
            key = oid[:id_len]
            vt, value = _obj_value(offsets)
            if bw.add(key, vt, value):
                continue
            self._flush_block()
            bw = self._reinit(BLOCK_TYPE_OBJ)
            if bw.add(key, vt, value):
                continue
            vt, value = _obj_value([])
            if not bw.add(key, vt, value):
                raise EntryTooBigError(f"object index key does not fit a block of {bw.block_size}")
        self._finish_section(BLOCK_TYPE_OBJ)


BLOCK_TYPE_REF_LOG_OBJ_INDEX = (BLOCK_TYPE_REF, BLOCK_TYPE_LOG, BLOCK_TYPE_OBJ, BLOCK_TYPE_INDEX)


def _obj_value(offsets: list[int]) -> tuple[int, bytes]:
    count = len(offsets)
    parts = []
    if count == 0 or count >= 8:
        parts.append(put_varint(count))
    if count:
        parts.append(put_varint(offsets[0]))
        parts.extend(put_varint(b - a) for a, b in itertools.pairwise(offsets))
    return (count if 0 < count < 8 else 0), b"".join(parts)
