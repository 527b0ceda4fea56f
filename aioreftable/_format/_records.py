"""Record types (ref, log, obj, index): their keys and value encodings."""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from .._errors import FormatError
from ._binary import MAX_U64, get_varint, put_varint
from ._layout import BLOCK_TYPE_INDEX, BLOCK_TYPE_LOG, BLOCK_TYPE_OBJ, BLOCK_TYPE_REF

__all__ = [
    "BLOCK_TYPE_INDEX",
    "BLOCK_TYPE_LOG",
    "BLOCK_TYPE_OBJ",
    "BLOCK_TYPE_REF",
    "IndexRecord",
    "LogRecord",
    "LogValueType",
    "ObjRecord",
    "RefRecord",
    "RefValueType",
    "decode_log_value",
    "decode_ref_value",
    "encode_log_value",
    "encode_ref_value",
    "log_key",
    "split_log_key",
]


_BE16 = struct.Struct(">h")
_BE64 = struct.Struct(">Q")


class RefValueType(enum.IntEnum):
    """Value type of a ref record (the 3 low bits of its type byte)."""

    DELETION = 0
    VAL1 = 1
    VAL2 = 2
    SYMREF = 3


class LogValueType(enum.IntEnum):
    """Value type of a log record."""

    DELETION = 0
    UPDATE = 1


class RefRecord(NamedTuple):
    """One ref record; ``update_index`` is absolute (the table's min is already added back).

    Records are immutable named tuples (cheap to create in bulk scans).
    """

    refname: bytes
    update_index: int
    value_type: RefValueType
    value: bytes | None = None
    target_value: bytes | None = None
    target: bytes | None = None

    @classmethod
    def val1(cls, refname: bytes, update_index: int, oid: bytes) -> RefRecord:
        return cls(refname, update_index, RefValueType.VAL1, oid)

    @classmethod
    def val2(cls, refname: bytes, update_index: int, oid: bytes, peeled: bytes) -> RefRecord:
        return cls(refname, update_index, RefValueType.VAL2, oid, peeled)

    @classmethod
    def symref(cls, refname: bytes, update_index: int, target: bytes) -> RefRecord:
        return cls(refname, update_index, RefValueType.SYMREF, target=target)

    @classmethod
    def deletion(cls, refname: bytes, update_index: int) -> RefRecord:
        return cls(refname, update_index, RefValueType.DELETION)

    @property
    def is_deletion(self) -> bool:
        return self.value_type == RefValueType.DELETION

    @property
    def oid(self) -> bytes:
        """The object id of a VAL1 or VAL2 record; ValueError for a symref or a deletion."""
        if self.value is None or self.value_type not in (RefValueType.VAL1, RefValueType.VAL2):
            raise ValueError(f"{self.refname!r} holds no object id ({self.value_type.name})")
        return self.value

    @property
    def peeled(self) -> bytes | None:
        """The peeled id of a VAL2 record, None for any other."""
        return self.target_value if self.value_type == RefValueType.VAL2 else None

    @property
    def symref_target(self) -> bytes:
        """The target name of a SYMREF record; ValueError for any other."""
        if self.target is None or self.value_type != RefValueType.SYMREF:
            raise ValueError(f"{self.refname!r} is not a symbolic ref ({self.value_type.name})")
        return self.target

    @property
    def object_ids(self) -> tuple[bytes, ...]:
        """Every object id the record names: none, the value, or the value and the peeled id."""
        if self.value_type == RefValueType.VAL1 and self.value is not None:
            return (self.value,)
        if self.value_type == RefValueType.VAL2 and self.value is not None:
            return (self.value,) if self.target_value is None else (self.value, self.target_value)
        return ()


class LogRecord(NamedTuple):
    """One reflog record. Deletions (tombstones) carry only refname and update_index."""

    refname: bytes
    update_index: int
    value_type: LogValueType = LogValueType.UPDATE
    old_id: bytes = b""
    new_id: bytes = b""
    name: bytes = b""
    email: bytes = b""
    time: int = 0
    tz_offset: int = 0
    message: bytes = b""

    @classmethod
    def deletion(cls, refname: bytes, update_index: int) -> LogRecord:
        return cls(refname, update_index, LogValueType.DELETION)

    @property
    def is_deletion(self) -> bool:
        return self.value_type == LogValueType.DELETION

    @property
    def key(self) -> bytes:
        return log_key(self.refname, self.update_index)


class ObjRecord(NamedTuple):
    """An object-id prefix and the offsets of the ref blocks that mention it (empty: scan all)."""

    prefix: bytes
    offsets: tuple[int, ...] = ()
    cnt: int = 0  # positions listed; 0 with no offsets means "scan all refs"


class IndexRecord(NamedTuple):
    """The last key of an indexed block and that block's file offset."""

    last_key: bytes
    offset: int


def log_key(refname: bytes, update_index: int) -> bytes:
    """The sort key of a log record: refname, NUL, be64 of the reversed update index."""
    return refname + b"\0" + _BE64.pack(MAX_U64 - update_index)


def split_log_key(key: bytes, offset: int | None = None) -> tuple[bytes, int]:
    """Inverse of log_key; FormatError for keys git would reject."""
    if len(key) <= 9 or key[-9] != 0:
        raise FormatError("malformed log record key", offset=offset)
    return key[:-9], MAX_U64 - _BE64.unpack_from(key, len(key) - 8)[0]


def encode_ref_value(rec: RefRecord, min_update_index: int, hash_size: int) -> bytes:
    """Value bytes of a ref record (after its key)."""
    delta = put_varint(rec.update_index - min_update_index)
    vt = rec.value_type
    if vt == RefValueType.VAL1:
        return delta + _checked_id(rec.value, hash_size)
    if vt == RefValueType.VAL2:
        return delta + _checked_id(rec.value, hash_size) + _checked_id(rec.target_value, hash_size)
    if vt == RefValueType.SYMREF:
        target = rec.target or b""
        return delta + put_varint(len(target)) + target
    return delta


def decode_ref_value(
    refname: bytes,
    vt: int,
    data: bytes | memoryview,
    pos: int,
    end: int,
    min_update_index: int,
    hash_size: int,
) -> tuple[RefRecord, int]:
    """Decode a ref value at ``data[pos:end]``; returns the record and the position after it."""
    delta, pos = get_varint(data, pos, end)
    ui = delta + min_update_index
    if vt == 1:
        stop = pos + hash_size
        if stop > end:
            raise FormatError("ref record value is truncated", offset=pos)
        return RefRecord(refname, ui, RefValueType.VAL1, bytes(data[pos:stop])), stop
    if vt == 2:
        mid = pos + hash_size
        stop = mid + hash_size
        if stop > end:
            raise FormatError("ref record value is truncated", offset=pos)
        rec = RefRecord(refname, ui, RefValueType.VAL2, bytes(data[pos:mid]), bytes(data[mid:stop]))
        return rec, stop
    if vt == 3:
        n, pos = get_varint(data, pos, end)
        stop = pos + n
        if stop > end:
            raise FormatError("symref target is truncated", offset=pos)
        return RefRecord(refname, ui, RefValueType.SYMREF, target=bytes(data[pos:stop])), stop
    if vt == 0:
        return RefRecord(refname, ui, RefValueType.DELETION), pos
    raise FormatError(f"invalid ref value type {vt}", offset=pos)


def encode_log_value(rec: LogRecord, hash_size: int) -> bytes:
    """Value bytes of a log record (after its key)."""
    if rec.value_type == LogValueType.DELETION:
        return b""
    _checked_id(rec.old_id, hash_size)
    _checked_id(rec.new_id, hash_size)
    if not -0x8000 <= rec.tz_offset <= 0x7FFF:
        raise ValueError(f"tz_offset {rec.tz_offset} does not fit a signed 16-bit field")
    return b"".join(
        (
            rec.old_id,
            rec.new_id,
            put_varint(len(rec.name)),
            rec.name,
            put_varint(len(rec.email)),
            rec.email,
            put_varint(rec.time),
            _BE16.pack(rec.tz_offset),
            put_varint(len(rec.message)),
            rec.message,
        )
    )


def decode_log_value(
    key: bytes, vt: int, data: bytes | memoryview, pos: int, end: int, hash_size: int
) -> tuple[LogRecord, int]:
    """Decode a log value at ``data[pos:end]``; returns the record and the position after it."""
    refname, ui = split_log_key(key, pos)
    if vt == 0:
        return LogRecord(refname, ui, LogValueType.DELETION), pos
    if vt != 1:
        raise FormatError(f"invalid log value type {vt}", offset=pos)
    mid = pos + hash_size
    p = mid + hash_size
    if p > end:
        raise FormatError("log record ids are truncated", offset=pos)
    old_id = bytes(data[pos:mid])
    new_id = bytes(data[mid:p])
    n, p = get_varint(data, p, end)
    if p + n > end:
        raise FormatError("log record name is truncated", offset=p)
    name = bytes(data[p : p + n])
    n, p = get_varint(data, p + n, end)
    if p + n > end:
        raise FormatError("log record email is truncated", offset=p)
    email = bytes(data[p : p + n])
    time, p = get_varint(data, p + n, end)
    if p + 2 > end:
        raise FormatError("log record time zone is truncated", offset=p)
    (tz,) = _BE16.unpack_from(data, p)
    n, p = get_varint(data, p + 2, end)
    if p + n > end:
        raise FormatError("log record message is truncated", offset=p)
    message = bytes(data[p : p + n])
    rec = LogRecord(
        refname, ui, LogValueType.UPDATE, old_id, new_id, name, email, time, tz, message
    )
    return rec, p + n


def _checked_id(oid: bytes | None, hash_size: int) -> bytes:
    """``oid`` itself, once it is known to be an id of ``hash_size`` bytes (else ValueError)."""
    if oid is None or len(oid) != hash_size:
        raise ValueError(f"object id must be {hash_size} bytes, got {oid!r}")
    return oid
