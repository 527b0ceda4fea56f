"""git's files ref backend as bytes, no I/O: packed-refs, loose refs and reflog lines, read
and written as refs/files-backend.c and refs/packed-backend.c do."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from .._format._layout import HashAlgorithm
from ._core import decode_name, encode_name

__all__ = [
    "PACKED_HEADER",
    "LogLine",
    "PackedRef",
    "format_loose",
    "format_packed_refs",
    "format_reflog_line",
    "parse_packed_refs",
    "parse_reflog",
]

#: The header git writes (packed-backend.c's PACKED_REFS_HEADER, trailing space included).
PACKED_HEADER = b"# pack-refs with: peeled fully-peeled sorted \n"


class PackedRef(NamedTuple):
    """One packed-refs entry: its name, id and peeled id (None: not peelable, or unknown
    when the file is not ``fully-peeled``)."""

    name: str
    oid: bytes
    peeled: bytes | None


class LogLine(NamedTuple):
    """One reflog line: ids, the committer's name and email, time, zone (git's decimal
    ``hhmm`` as an int) and message (without its LF)."""

    old_id: bytes
    new_id: bytes
    name: bytes
    email: bytes
    time: int
    tz: int
    message: bytes


def _hex_id(text: bytes, hexsz: int) -> bytes | None:
    if len(text) != hexsz:
        return None
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def parse_packed_refs(data: bytes, algorithm: HashAlgorithm) -> tuple[list[PackedRef], bool]:
    """The entries of packed-refs, in file order, and whether its peeled values are known
    for every entry (the ``fully-peeled`` trait; else ``peeled`` None means unknown).
    Malformed lines are skipped (git dies on them; ``verify`` reports them)."""
    hexsz = algorithm.hex_size
    fully = False
    out: list[PackedRef] = []
    lines = data.split(b"\n")
    if lines and lines[0].startswith(b"# pack-refs with:"):
        fully = b"fully-peeled" in lines[0][len(b"# pack-refs with:") :].split()
        lines = lines[1:]
    for line in lines:
        if line.startswith(b"^"):
            peeled = _hex_id(line[1:], hexsz)
            if out and peeled is not None:
                out[-1] = out[-1]._replace(peeled=peeled)
            continue
        oid = _hex_id(line[:hexsz], hexsz)
        if oid is None or line[hexsz : hexsz + 1] != b" " or len(line) <= hexsz + 1:
            continue
        out.append(PackedRef(decode_name(line[hexsz + 1 :]), oid, None))
    return out, fully


def format_packed_refs(entries: Iterable[PackedRef]) -> bytes:
    """packed-refs as git writes it: the header, then ``<id> <name>`` lines sorted by name
    (bytes), each followed by ``^<peeled>`` when the ref peels."""
    parts = [PACKED_HEADER]
    for e in sorted(entries, key=lambda e: encode_name(e.name)):
        parts.append(b"%s %s\n" % (e.oid.hex().encode(), encode_name(e.name)))
        if e.peeled is not None:
            parts.append(b"^%s\n" % e.peeled.hex().encode())
    return b"".join(parts)


def format_loose(oid: bytes | None = None, target: str | None = None) -> bytes:
    """A loose ref file: ``<id>\\n``, or ``ref: <target>\\n`` for a symref."""
    if target is not None:
        return b"ref: %s\n" % encode_name(target)
    assert oid is not None
    return oid.hex().encode() + b"\n"


_LINE_CACHE: dict[int, re.Pattern[bytes]] = {}


def _line_pattern(hexsz: int) -> re.Pattern[bytes]:
    """git's show_one_reflog_ent as one expression: ``<old> <new> <name> <<email>> <time>
    <tz>[\\t<msg>]`` (the name is what precedes ``<``, its trailing spaces dropped)."""
    found = _LINE_CACHE.get(hexsz)
    if found is None:
        found = _LINE_CACHE[hexsz] = re.compile(
            rb"^([0-9a-fA-F]{%d}) ([0-9a-fA-F]{%d}) ([^<\n]*)<([^>\n]*)> ?(\d+) ([+-]\d{4})"
            rb"(?:\t([^\n]*))?$" % (hexsz, hexsz),
            re.M,
        )
    return found


def parse_reflog(data: bytes, algorithm: HashAlgorithm) -> list[LogLine]:
    """A reflog file's entries, oldest first; lines git cannot parse are skipped, as git's
    reflog iteration skips them."""
    fromhex = bytes.fromhex
    return [
        LogLine(
            fromhex(old.decode()), fromhex(new.decode()), name.rstrip(b" "), email,
            int(time), int(tz), message or b"",
        )
        for old, new, name, email, time, tz, message in _line_pattern(
            algorithm.hex_size
        ).findall(data)
    ]  # fmt: skip


def format_reflog_line(entry: LogLine) -> bytes:
    """git's log_ref_write_fd: ``<old> <new> <name> <<email>> <time> <tz>``, then a TAB
    and the message when there is one, then LF."""
    sign = b"-" if entry.tz < 0 else b"+"
    head = b"%s %s %s <%s> %d %s%04d" % (
        entry.old_id.hex().encode(),
        entry.new_id.hex().encode(),
        entry.name,
        entry.email,
        entry.time,
        sign,
        abs(entry.tz),
    )
    if entry.message:
        return head + b"\t" + entry.message + b"\n"
    return head + b"\n"
