"""git's wildmatch (wildmatch.c) with WM_PATHNAME, as a compiled regular expression."""

from __future__ import annotations

import functools
import re

__all__ = ["wildmatch"]

# POSIX classes inside brackets, as git's wildmatch knows them (ASCII, C locale).
_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9a-fA-F",
}


class _Abort(Exception):
    """A malformed pattern: git's wildmatch matches nothing with it."""


def _bracket(p: str, i: int) -> tuple[str, int]:
    """The class of the bracket expression starting after '[' at ``i``; never '/'."""
    negate = i < len(p) and p[i] in "!^"
    if negate:
        i += 1
    parts: list[str] = []
    first = True
    while True:
        if i >= len(p):
            raise _Abort
        c = p[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "\\":
            i += 1
            if i >= len(p):
                raise _Abort
            c = p[i]
        elif c == "[" and p.startswith("[:", i):
            end = p.find(":]", i + 2)
            if end < 0:
                parts.append(re.escape("["))
                i += 1
                continue
            name = p[i + 2 : end]
            if name not in _CLASSES:
                raise _Abort
            parts.append(_CLASSES[name])
            i = end + 2
            continue
        if i + 2 < len(p) and p[i + 1] == "-" and p[i + 2] != "]":
            hi = p[i + 2]
            j = i + 3
            if hi == "\\":
                if i + 3 >= len(p):
                    raise _Abort
                hi = p[i + 3]
                j = i + 4
            if hi >= c:
                parts.append(f"{re.escape(c)}-{re.escape(hi)}")
            i = j
            continue
        parts.append(re.escape(c))
        i += 1
    body = "".join(parts) or "\\x00-\\x00"
    if negate:
        return f"(?!/)[^{body}]", i
    return f"(?!/)[{body}]", i


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, casefold: bool) -> re.Pattern[str] | None:
    p = pattern
    out: list[str] = []
    i = 0
    try:
        while i < len(p):
            c = p[i]
            if c == "\\":
                if i + 1 >= len(p):
                    raise _Abort
                out.append(re.escape(p[i + 1]))
                i += 2
            elif c == "?":
                out.append("[^/]")
                i += 1
            elif c == "*":
                j = i
                while j < len(p) and p[j] == "*":
                    j += 1
                double = j - i >= 2
                at_start = i == 0 or p[i - 1] == "/"
                at_end = j == len(p) or p[j] == "/" or p.startswith("\\/", j)
                if double and at_start and at_end:
                    if j < len(p) and p[j] == "/":
                        out.append("(?:.*/)?")  # **/ matches no directory or any
                        j += 1
                    elif j < len(p):
                        out.append(".*")
                    else:
                        out.append(".*")
                else:
                    out.append("[^/]*")
                i = j
            elif c == "[":
                cls, i = _bracket(p, i + 1)
                out.append(cls)
            else:
                out.append(re.escape(c))
                i += 1
    except _Abort:
        return None
    flags = re.DOTALL | (re.IGNORECASE if casefold else 0)
    return re.compile("".join(out), flags)


def wildmatch(pattern: str, text: str, *, casefold: bool = False) -> bool:
    """Whether ``text`` matches ``pattern`` as git's wildmatch(WM_PATHNAME) decides:
    ``*`` and ``?`` and brackets never match '/', ``**`` between slashes does."""
    compiled = _compile(pattern, casefold)
    return compiled is not None and compiled.fullmatch(text) is not None
