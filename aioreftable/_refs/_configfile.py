"""git's config file syntax (config.c's parser): one file's bytes to its entries in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator

__all__ = ["parse_config"]

_BOM = b"\xef\xbb\xbf"


class _Source:
    """One file's bytes read as git's get_next_char does: CRLF is LF, the end of the data
    reads as LF (setting ``eof``), ``linenr`` counts both."""

    __slots__ = ("data", "eof", "linenr", "pos")

    def __init__(self, data: bytes):
        self.data = data.replace(b"\r\n", b"\n")
        self.pos = 0
        self.linenr = 1
        self.eof = False

    def next(self) -> int:
        if self.pos < len(self.data):
            c = self.data[self.pos]
            self.pos += 1
        else:
            self.eof = True
            c = 10
        if c == 10:
            self.linenr += 1
        return c


_SPACE_BYTES = frozenset(b" \t\n\r")  # git's isspace


def _iskeychar(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 45


def _tolower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def _parse_value(src: _Source) -> bytes | None:
    """git's parse_value: quotes, escapes, comments, whitespace trimmed outside quotes;
    None where git's parser stops."""
    quote = comment = False
    trim_len = 0
    value = bytearray()
    while True:
        c = src.next()
        if c == 10:
            if quote:
                src.linenr -= 1
                return None
            if trim_len:
                del value[trim_len:]
            return bytes(value)
        if comment:
            continue
        if c in _SPACE_BYTES and not quote:
            if not trim_len:
                trim_len = len(value)
            if value:
                value.append(c)
            continue
        if not quote and c in b"#;":
            comment = True
            continue
        trim_len = 0
        if c == 92:  # backslash
            c = src.next()
            if c == 10:
                continue
            escaped = {116: 9, 98: 8, 110: 10, 92: 92, 34: 34}.get(c)
            if escaped is None:
                return None
            value.append(escaped)
            continue
        if c == 34:
            quote = not quote
            continue
        value.append(c)


def _section_header(src: _Source) -> bytearray | None:
    """git's get_base_var/get_extended_base_var, after the ``[``: ``section`` lowercased,
    ``.subsection`` as written in ``[section "subsection"]``; None where git stops."""
    name = bytearray()
    while True:
        c = src.next()
        if src.eof:
            return None
        if c == 93:  # ]
            return name
        if c in _SPACE_BYTES:
            break
        if not _iskeychar(c) and c != 46:
            return None
        name.append(_tolower(c))
    while c in _SPACE_BYTES:
        if c == 10:
            src.linenr -= 1
            return None
        c = src.next()
    if c != 34:
        return None
    name.append(46)
    while True:
        c = src.next()
        if c == 92:
            c = src.next()
        elif c == 34:
            break
        if c == 10:
            src.linenr -= 1
            return None
        name.append(c)
    if src.next() != 93:
        return None
    return name


def parse_config(
    data: bytes, name: str, error: Callable[[str], Exception]
) -> Iterator[tuple[str, str | None, int]]:
    """The ``(key, value, line)`` of a config file in order, as git's parser yields them: the
    key as ``section[.subsection].name`` (section and name lowercased), a key without ``=``
    with the value None. Where git dies, raises ``error("bad config line N in file NAME")``
    (once the entries before it are yielded, as git has handed them on)."""
    src = _Source(data)
    var = bytearray()
    baselen = 0
    comment = False
    bom: int | None = 0
    while True:
        c = src.next()
        if bom is not None and bom < 3:
            if c == _BOM[bom]:
                bom += 1
                continue
            if bom:
                break  # a partial byte order mark
            bom = None
        if c == 10:
            if src.eof:
                return
            comment = False
            continue
        if comment or c in _SPACE_BYTES:
            continue
        if c in b"#;":
            comment = True
            continue
        if c == 91:  # [
            header = _section_header(src)
            if not header:
                break
            var = header + b"."
            baselen = len(var)
            continue
        if not (65 <= c <= 90 or 97 <= c <= 122):
            break
        del var[baselen:]
        var.append(_tolower(c))
        while True:
            c = src.next()
            if src.eof or not _iskeychar(c):
                break
            var.append(_tolower(c))
        while c in (32, 9):
            c = src.next()
        value = None
        if c != 10:
            raw = _parse_value(src) if c == 61 else None  # =
            if raw is None:
                break
            value = raw.decode("utf-8", "surrogateescape")
        yield var.decode("utf-8", "surrogateescape"), value, src.linenr - 1
    raise error(f"bad config line {src.linenr} in file {name}")
