"""Blocks: prefix-compressed records with a restart table; the writer and the parsed view."""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from .._errors import DecompressionError, FormatError, UsageError
from . import _accel
from ._binary import common_prefix, get_varint, put_varint
from ._layout import (
    BLOCK_TYPE_INDEX,
    BLOCK_TYPE_LOG,
    BLOCK_TYPE_REF,
    BLOCK_TYPES,
    MAX_RESTARTS,
)
from ._records import (
    IndexRecord,
    ObjRecord,
    RefRecord,
    RefValueType,
    decode_log_value,
    decode_ref_value,
)

__all__ = [
    "BLOCK_TYPES",
    "MAX_RESTARTS",
    "Block",
    "BlockWriter",
    "inflate_log_block",
    "shared_prefix",
]

HOT_AFTER = 4  # seeks into one cached block before all its keys are decoded
_ALL = 1 << 62  # ref_records: no limit
_BLOCK_COST = 256  # bytes of a Block object and its small fields, for the cache's budget
_KEY_COST = 120  # a decoded key in a list (bytes object, pointer) with its position

# The compiled decoder (aioreftable/_format/_speedups.c), or None: the pure-Python code of
# this module is the reference, and the compiled one takes over only the hot loops of ref
# blocks (records, seek, the hot index). Where it cannot decode a record it stops and the
# reference goes on from that record, so errors are always the reference's own.
_speedups = _accel.speedups


def shared_prefix(a: bytes, b: bytes) -> int:
    """``_binary.common_prefix``, compiled where the decoder is."""
    if _speedups is not None:
        return _speedups.common_prefix(a, b)
    return common_prefix(a, b)


class BlockWriter:
    """Accumulates records of one block; ``finish()`` returns its bytes (deflated for logs).

    Block 0 starts with ``header_off`` placeholder bytes where the table writer puts the file
    header; restart offsets then count from the start of the file, as git's do.
    """

    __slots__ = (
        "_buf",
        "block_size",
        "entries",
        "header_off",
        "last_key",
        "restart_interval",
        "restarts",
        "typ",
    )

    def __init__(self, typ: int, block_size: int, header_off: int, restart_interval: int):
        self.typ = typ
        self.block_size = block_size
        self.header_off = header_off
        self.restart_interval = restart_interval
        self._buf = bytearray(header_off)
        self._buf += bytes((typ, 0, 0, 0))
        self.restarts: list[int] = []
        self.entries = 0
        self.last_key = b""

    def add(self, key: bytes, val_type: int, value: bytes) -> bool:
        """Append a record; False when it does not fit (the block is then unchanged)."""
        if not key:
            raise UsageError("records must have a non-empty key")
        last = self.last_key if self.entries % self.restart_interval else b""
        prefix = shared_prefix(last, key) if last else 0
        is_restart = prefix == 0
        encoded = b"".join(
            (put_varint(prefix), put_varint(((len(key) - prefix) << 3) | val_type), key[prefix:])
        )
        encoded += value
        nrestarts = len(self.restarts)
        if nrestarts >= MAX_RESTARTS:
            is_restart = False
        if is_restart:
            nrestarts += 1
        if 2 + 3 * nrestarts + len(encoded) > self.block_size - len(self._buf):
            return False
        if is_restart:
            self.restarts.append(len(self._buf))
        self._buf += encoded
        self.last_key = key
        self.entries += 1
        return True

    def finish(self) -> bytearray:
        """Append the restart table and length; deflate log blocks. Returns the block bytes."""
        buf = self._buf
        for r in self.restarts:
            buf += r.to_bytes(3, "big")
        buf += len(self.restarts).to_bytes(2, "big")
        start = self.header_off + 4
        buf[self.header_off + 1 : start] = len(buf).to_bytes(3, "big")
        if self.typ == BLOCK_TYPE_LOG:
            buf[start:] = zlib.compress(bytes(buf[start:]), 9)
        return buf


def inflate_log_block(
    read: Callable[[int, int], bytes], start: int, end: int, expected: int
) -> tuple[bytes, int]:
    """Inflate the zlib stream at ``start`` (file offsets, stream may run up to ``end``).

    Returns the inflated bytes (exactly ``expected`` of them) and the number of compressed
    bytes consumed.
    """
    d = zlib.decompressobj()
    out = bytearray()
    pos = start
    try:
        while not d.eof:
            if pos >= end:
                raise DecompressionError("log block's zlib stream is truncated", offset=start)
            chunk = read(pos, min(4096, end - pos))
            if not chunk:
                raise DecompressionError("log block's zlib stream is truncated", offset=start)
            pos += len(chunk)
            out += d.decompress(chunk, expected + 1 - len(out))
            if d.unconsumed_tail or len(out) > expected:
                raise FormatError(
                    f"log block inflates to more than its block_len says ({expected})",
                    offset=start,
                )
    except zlib.error as e:
        raise DecompressionError(f"log block's zlib stream is corrupt: {e}", offset=start) from e
    if len(out) != expected:
        raise FormatError(
            f"log block inflates to {len(out)} bytes, block_len says {expected}", offset=start
        )
    return bytes(out), pos - len(d.unused_data) - start


class Block:
    """A parsed block: ``data[0]`` is the block's first byte in the file (the file header for
    block 0), so restart offsets index ``data`` directly. Log blocks hold their inflated bytes.

    Offsets in FormatErrors raised here are file offsets (for log blocks: the block's offset).
    """

    __slots__ = (
        "_entries",
        "_hot",
        "_index",
        "_restart_keys",
        "_seeks",
        "data",
        "first_pos",
        "hash_size",
        "header_off",
        "min_update_index",
        "nbytes",
        "offset",
        "on_disk_size",
        "restart_count",
        "restart_off",
        "typ",
    )

    def __init__(
        self,
        typ: int,
        data: bytes,
        offset: int,
        header_off: int,
        on_disk_size: int,
        hash_size: int,
        min_update_index: int,
    ):
        self.typ = typ
        self.data = data
        self.offset = offset
        self.header_off = header_off
        self.on_disk_size = on_disk_size
        self.hash_size = hash_size
        self.min_update_index = min_update_index
        self.first_pos = header_off + 4
        block_len = len(data)
        if block_len < header_off + 6:
            raise FormatError(f"block_len {block_len} is too small", offset=offset)
        count = int.from_bytes(data[block_len - 2 :], "big")
        restart_off = block_len - 2 - 3 * count
        if restart_off < self.first_pos:
            raise FormatError(f"restart count {count} does not fit the block", offset=offset)
        self.restart_count = count
        self.restart_off = restart_off
        self._restart_keys: list[bytes] | None = None
        self._index: tuple[list[bytes], list[int]] | None = None
        self._entries: tuple[list[bytes], list[int]] | None = None
        self._hot: bytes | None = None  # the compiled decoder's packed _entries
        self._seeks = 0
        # bytes this block holds, roughly: its data and the decoded keys it keeps (grows
        # when it turns hot; the block cache's budget counts this)
        self.nbytes = _BLOCK_COST + block_len

    # -- low level ---------------------------------------------------------------------
    def _err(self, reason: str, pos: int) -> FormatError:
        if self.typ == BLOCK_TYPE_LOG:
            return FormatError(f"{reason} (inflated byte {pos})", offset=self.offset)
        return FormatError(reason, offset=self.offset + pos)

    def _key_at(self, pos: int, prev: bytes) -> tuple[bytes, int, int]:
        """Decode the key of the record at ``pos``; returns (key, val_type, value_pos)."""
        data = self.data
        end = self.restart_off
        start = pos
        prefix = data[pos] if pos < end else 0x80
        b1 = data[pos + 1] if pos + 2 < end else 0x80
        if prefix < 0x80 and b1 < 0x80:  # the common shapes: 1- or 2-byte varints
            suffix_vt = b1
            pos += 2
        elif prefix < 0x80 and pos + 3 < end and data[pos + 2] < 0x80:
            suffix_vt = (((b1 & 0x7F) + 1) << 7) | data[pos + 2]
            pos += 3
        else:
            try:
                prefix, pos = get_varint(data, pos, end)
                suffix_vt, pos = get_varint(data, pos, end)
            except FormatError as e:
                raise self._err(e.reason, start) from None
        stop = pos + (suffix_vt >> 3)
        if prefix > len(prev):
            raise self._err("record key prefix is longer than the previous key", start)
        if stop > end:
            raise self._err("record key runs past the restart table", start)
        key = prev[:prefix] + data[pos:stop] if prefix else data[pos:stop]
        if not key:
            raise self._err("record has an empty key", start)
        return key, suffix_vt & 7, stop

    def _skip_value(self, key: bytes, vt: int, pos: int) -> int:
        """Position after the value at ``pos`` (ref values without building a record)."""
        if self.typ != BLOCK_TYPE_REF:
            return int(self._value_at(key, vt, pos)[1])
        data = self.data
        end = self.restart_off
        if pos < end and data[pos] < 0x80:
            pos += 1
        else:
            try:
                pos = get_varint(data, pos, end)[1]
            except FormatError as e:
                raise self._err(e.reason, pos) from None
        if vt == 1:
            pos += self.hash_size
        elif vt == 2:
            pos += 2 * self.hash_size
        elif vt == 3:
            try:
                n, pos = get_varint(data, pos, end)
            except FormatError as e:
                raise self._err(e.reason, pos) from None
            pos += n
        elif vt != 0:
            raise self._err(f"invalid ref value type {vt}", pos)
        if pos > end:
            raise self._err("ref record value is truncated", pos)
        return pos

    def _value_at(self, key: bytes, vt: int, pos: int) -> tuple[Any, int]:
        end = self.restart_off
        data = self.data
        typ = self.typ
        try:
            if typ == BLOCK_TYPE_REF:
                return decode_ref_value(
                    key, vt, data, pos, end, self.min_update_index, self.hash_size
                )
            if typ == BLOCK_TYPE_LOG:
                return decode_log_value(key, vt, data, pos, end, self.hash_size)
            if typ == BLOCK_TYPE_INDEX:
                off, pos = get_varint(data, pos, end)
                return IndexRecord(key, off), pos
            # obj
            if vt:
                count = vt
            else:
                count, pos = get_varint(data, pos, end)
            offsets = []
            if count:
                first, pos = get_varint(data, pos, end)
                offsets.append(first)
                for _ in range(count - 1):
                    delta, pos = get_varint(data, pos, end)
                    first += delta
                    offsets.append(first)
            return ObjRecord(key, tuple(offsets), count), pos
        except FormatError as e:
            raise self._err(e.reason, e.offset if e.offset is not None else pos) from None

    # -- restarts and seeking ----------------------------------------------------------
    def _restart_key(self, i: int) -> bytes:
        at = self.restart_off + 3 * i
        r = int.from_bytes(self.data[at : at + 3])
        if not self.first_pos <= r < self.restart_off:
            raise self._err(f"restart offset {r} lies outside the records", at)
        if self.data[r] != 0:
            raise self._err("restart record has a non-zero prefix length", r)
        return self._key_at(r, b"")[0]

    def restart_keys(self) -> list[bytes]:
        keys = self._restart_keys
        if keys is None:
            keys = self._restart_keys = [self._restart_key(i) for i in range(self.restart_count)]
            self.nbytes += _KEY_COST * len(keys)
        return keys

    def _restart_pos(self, i: int) -> int:
        at = self.restart_off + 3 * i
        return int.from_bytes(self.data[at : at + 3])

    def restart_offsets(self) -> list[int]:
        """The restart table as stored (offsets into ``data``, unchecked)."""
        return [self._restart_pos(i) for i in range(self.restart_count)]

    def keys_and_positions(self) -> tuple[list[bytes], list[int]]:
        """Every key and record position (plus the end position), decoding keys only."""
        return self._decode_keys()

    def first_key(self) -> bytes:
        if self.first_pos >= self.restart_off:
            raise self._err("block has no records", self.first_pos)
        return self._key_at(self.first_pos, b"")[0]

    def seek(self, want: bytes) -> tuple[int, bytes]:
        """Position of the first record with key >= ``want``, with the key before it.

        Cold blocks: a binary search over the restart points (decoding only the restart
        keys it visits), then a key-only scan of at most one restart interval. A block
        sought ``HOT_AFTER`` times gets every key decoded once, and later seeks bisect.
        """
        hot = self._hot
        if hot is not None and _speedups is not None:
            return _speedups.hot_seek(hot, want)
        entries = self._entries
        if entries is not None:  # hot block: every key is decoded already
            keys, positions = entries
            i = bisect.bisect_left(keys, want)
            return positions[i], keys[i - 1] if i else b""
        self._seeks += 1
        fast = self.typ == BLOCK_TYPE_REF
        if self._seeks >= HOT_AFTER:
            if fast and _speedups is not None:
                args = (self.data, self.first_pos, self.restart_off, self.hash_size)
                self._hot = _speedups.hot_index(*args)
                if self._hot is not None:
                    self.nbytes += len(self._hot)
                    return self.seek(want)
            self._entries = self._decode_keys()
            self.nbytes += _KEY_COST * len(self._entries[0])
            return self.seek(want)
        if fast and _speedups is not None:
            found = _speedups.seek(
                self.data, self.first_pos, self.restart_off, self.restart_count, self.hash_size,
                want,
            )  # fmt: skip
            if found is not None:
                return found
        # first restart whose key is > want
        lo, hi = 0, self.restart_count
        cached = self._restart_keys
        while lo < hi:
            mid = (lo + hi) // 2
            key = cached[mid] if cached is not None else self._restart_key(mid)
            if key > want:
                hi = mid
            else:
                lo = mid + 1
        if lo == 0:
            return self.first_pos, b""
        pos = self._restart_pos(lo - 1)
        prev = b""
        data = self.data
        end = self.restart_off
        key_at = self._key_at
        skip = self._skip_value
        value_len = (0, self.hash_size, 2 * self.hash_size)
        while pos < end:
            p = data[pos]
            if fast and p < 0x80 and pos + 3 < end and p <= len(prev):
                # inline key decode and value skip for common ref records (see _ref_records)
                svt = data[pos + 1]
                at = pos + 2
                if svt >= 0x80 and data[at] < 0x80:
                    svt = (((svt & 0x7F) + 1) << 7) | data[at]
                    at += 1
                stop = at + (svt >> 3)
                vt = svt & 7
                if data[at - 1] < 0x80 and stop < end and vt < 3 and data[stop] < 0x80:
                    key = prev[:p] + data[at:stop]
                    if key:
                        if key >= want:
                            return pos, prev
                        nxt = stop + 1 + value_len[vt]
                        if nxt <= end:
                            pos, prev = nxt, key
                            continue
            key, vt, vpos = key_at(pos, prev)
            if key >= want:
                return pos, prev
            pos, prev = skip(key, vt, vpos), key
        return pos, prev

    def _decode_keys(self) -> tuple[list[bytes], list[int]]:
        """Every key and record position, plus the end position as a sentinel."""
        keys: list[bytes] = []
        positions: list[int] = []
        pos = self.first_pos
        end = self.restart_off
        prev = b""
        while pos < end:
            key, vt, vpos = self._key_at(pos, prev)
            keys.append(key)
            positions.append(pos)
            pos, prev = self._skip_value(key, vt, vpos), key
        positions.append(pos)
        return keys, positions

    def index_entries(self) -> tuple[list[bytes], list[int]]:
        """All (last_key, offset) pairs of an index block, decoded once and cached."""
        cached = self._index
        if cached is None:
            keys: list[bytes] = []
            offsets: list[int] = []
            for rec in self.records():
                keys.append(rec.last_key)
                offsets.append(rec.offset)
            cached = self._index = (keys, offsets)
            self.nbytes += _KEY_COST * len(keys)
        return cached

    def records(self, pos: int | None = None, prev: bytes = b"") -> Iterator[Any]:
        """Decode records from ``pos`` (default: the first) to the end of the block.

        Errors come when the iteration reaches the damaged record, after every record
        before it."""
        if pos is None:
            pos = self.first_pos
        if self.typ != BLOCK_TYPE_REF:
            return self._records(pos, prev)
        if _speedups is None:
            return self._ref_records(pos, prev)
        args = (self.data, pos, self.restart_off, prev, self.hash_size, self.min_update_index)
        it = _speedups.ref_iter(*args)
        return itertools.chain(it, self._ref_tail(it))

    def _ref_tail(self, it: _accel.RefIter) -> Iterator[RefRecord]:
        """Where the compiled iterator stopped before the end, the reference decodes on
        (the record it stopped at is damaged, and this raises its error)."""
        if it.pos < self.restart_off:
            yield from self._ref_records(it.pos, it.prev)

    def ref_chunk(
        self, pos: int | None = None, prev: bytes = b"", prefix: bytes = b""
    ) -> tuple[list[RefRecord], Iterator[RefRecord] | None]:
        """records() of a ref block for scans: a list of what the compiled decoder decodes
        at once, then an iterator over the rest (None at the end of the block), which the
        reference decodes (and raises at a damaged record). The list holds only names
        that start with ``prefix``: the rest begins at the first other one."""
        if pos is None:
            pos = self.first_pos
        if _speedups is None:
            return [], self._ref_records(pos, prev)
        end = self.restart_off
        args = (self.data, pos, end, prev, self.hash_size, self.min_update_index, _ALL, prefix)
        recs, pos, prev = _speedups.ref_records(*args)
        return recs, (None if pos >= end else self._ref_records(pos, prev))

    def record_at(self, pos: int, prev: bytes) -> Any:
        """The record at ``pos`` (< ``restart_off``) that follows the key ``prev``."""
        if self.typ == BLOCK_TYPE_REF and _speedups is not None:
            args = (self.data, pos, self.restart_off, prev, self.hash_size)
            recs = _speedups.ref_records(*args, self.min_update_index, 1)[0]
            if recs:
                return recs[0]
        return next(iter(self.records(pos, prev)))

    def _records(self, pos: int, prev: bytes) -> Iterator[Any]:
        end = self.restart_off
        key_at = self._key_at
        value_at = self._value_at
        while pos < end:
            key, vt, vpos = key_at(pos, prev)
            rec, pos = value_at(key, vt, vpos)
            prev = key
            yield rec

    def _ref_records(self, pos: int, prev: bytes) -> Iterator[RefRecord]:
        """records() for ref blocks: the common shapes (one-byte varints, val1/val2/
        deletion) decoded inline; anything else, including every error, takes the general
        path from the record's start. This loop is the scan hot spot."""
        data = self.data
        end = self.restart_off
        hs = self.hash_size
        mui = self.min_update_index
        new = tuple.__new__
        val1, val2, deletion = RefValueType.VAL1, RefValueType.VAL2, RefValueType.DELETION
        while pos < end:
            p = data[pos]
            if p < 0x80 and pos + 3 < end and p <= len(prev):
                svt = data[pos + 1]
                at = pos + 2
                if svt >= 0x80 and data[at] < 0x80:  # two-byte suffix length
                    svt = (((svt & 0x7F) + 1) << 7) | data[at]
                    at += 1
                stop = at + (svt >> 3)
                if data[at - 1] < 0x80 and stop < end:
                    key = prev[:p] + data[at:stop]
                    d = data[stop]
                    vt = svt & 7
                    if key and d < 0x80:
                        v = stop + 1
                        if vt == 1 and v + hs <= end:
                            nxt = v + hs
                            yield new(RefRecord, (key, d + mui, val1, data[v:nxt], None, None))
                            pos, prev = nxt, key
                            continue
                        if vt == 2 and v + 2 * hs <= end:
                            mid = v + hs
                            nxt = mid + hs
                            rec = (key, d + mui, val2, data[v:mid], data[mid:nxt], None)
                            yield new(RefRecord, rec)
                            pos, prev = nxt, key
                            continue
                        if vt == 0:
                            yield new(RefRecord, (key, d + mui, deletion, None, None, None))
                            pos, prev = v, key
                            continue
            key, vt, vpos = self._key_at(pos, prev)
            rec, pos = self._value_at(key, vt, vpos)
            prev = key
            yield rec

    def record_count(self) -> int:
        return sum(1 for _ in self.records())
