"""Integer codecs of the reftable format: git's offset varint and big-endian fixed widths."""

from __future__ import annotations

from .._errors import FormatError

__all__ = ["MAX_U64", "common_prefix", "get_varint", "put_varint"]

MAX_U64 = (1 << 64) - 1
_OVERFLOW_GUARD = 1 << 57  # a value this large cannot take one more 7-bit group


def put_varint(value: int) -> bytes:
    """Encode ``value`` (0 <= value < 2**64) as git's offset varint (not LEB128)."""
    if value < 0x80:
        if value < 0:
            raise ValueError("varint must not be negative")
        return bytes((value,))
    if value > MAX_U64:
        raise ValueError("varint exceeds 64 bits")
    out = bytearray((value & 0x7F,))
    value >>= 7
    while value:
        value -= 1
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.reverse()
    return bytes(out)


def get_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode one varint at ``data[pos:end]``; returns ``(value, new_pos)``.

    Raises FormatError (offset relative to ``data``) when the varint runs past ``end`` or
    overflows 64 bits.
    """
    if pos >= end:
        raise FormatError("varint runs past the end of its buffer", offset=pos)
    c = data[pos]
    pos += 1
    value = c & 0x7F
    while c & 0x80:
        value += 1
        if value >= _OVERFLOW_GUARD:
            raise FormatError("varint overflows 64 bits", offset=pos)
        if pos >= end:
            raise FormatError("varint runs past the end of its buffer", offset=pos)
        c = data[pos]
        pos += 1
        value = (value << 7) | (c & 0x7F)
    return value, pos


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo
