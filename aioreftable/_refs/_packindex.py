"""git's pack index (version 2) as has_object, find_unique_abbrev and get_short_oid read it:
names only, no I/O."""

from __future__ import annotations

import mmap

__all__ = ["extend_abbrev", "index_neighbours", "index_prefix", "index_search"]

_IDX_MAGIC = b"\377tOc"
_IDX_NAMES = 8 + 256 * 4  # a v2 index: magic, version, fan-out table, then the sorted names
_MAX_SHARED = 32  # git's extend_abbrev_len counts shared prefixes shorter than GIT_MAX_RAWSZ

Index = bytes | mmap.mmap


def index_search(data: Index, raw: bytes) -> tuple[int, int, bool] | None:
    """Where ``raw`` is or would be among the sorted names of a version 2 pack index:
    (position, number of names, found). None for anything but a v2 index."""
    if len(data) < _IDX_NAMES or data[:4] != _IDX_MAGIC or data[4:8] != b"\0\0\0\2":
        return None
    size = len(raw)
    count = int.from_bytes(data[_IDX_NAMES - 4 : _IDX_NAMES], "big")
    first = raw[0]
    lo = int.from_bytes(data[4 + 4 * first : 8 + 4 * first], "big") if first else 0
    hi = int.from_bytes(data[8 + 4 * first : 12 + 4 * first], "big")
    while lo < hi:
        mid = (lo + hi) // 2
        if data[_IDX_NAMES + mid * size : _IDX_NAMES + (mid + 1) * size] < raw:
            lo = mid + 1
        else:
            hi = mid
    found = lo < count and data[_IDX_NAMES + lo * size : _IDX_NAMES + (lo + 1) * size] == raw
    return lo, count, found


def index_neighbours(data: Index, raw: bytes) -> list[bytes]:
    """The names next to ``raw``'s place in a v2 pack index (itself excluded): git's
    find_abbrev_len_for_pack looks at these two only."""
    where = index_search(data, raw)
    if where is None:
        return []
    pos, count, found = where
    size = len(raw)
    picks = [i for i in (pos + 1 if found else pos, pos - 1) if 0 <= i < count]
    return [bytes(data[_IDX_NAMES + i * size : _IDX_NAMES + (i + 1) * size]) for i in picks]


def index_prefix(data: Index, prefix: str, size: int) -> list[str]:
    """The names of a v2 pack index that start with the hex digits ``prefix`` (lowercase,
    any length up to ``2 * size``), in order: git's find_short_packed_object walks them
    from the first name not below the prefix."""
    low = bytes.fromhex((prefix + "0" * (2 * size - len(prefix)))[: 2 * size])
    where = index_search(data, low)
    if where is None:
        return []
    pos, count, _ = where
    out: list[str] = []
    while pos < count:
        name = bytes(data[_IDX_NAMES + pos * size : _IDX_NAMES + (pos + 1) * size]).hex()
        if not name.startswith(prefix):
            break
        out.append(name)
        pos += 1
    return out


def extend_abbrev(hexid: str, other: str, start: int, cur: int) -> int:
    """git's extend_abbrev_len: one digit past the prefix ``other`` shares with ``hexid``
    (compared from ``start``), if that is longer than ``cur``."""
    i = start
    while i < len(hexid) and hexid[i] == other[i]:
        i += 1
    return i + 1 if i < _MAX_SHARED and i >= cur else cur
