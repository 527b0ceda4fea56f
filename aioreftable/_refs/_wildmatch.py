"""git's wildmatch (``*``, ``**``, ``?``, ``[...]`` classes, ``\\`` escapes) over bytes."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["WM_CASEFOLD", "WM_PATHNAME", "wildmatch"]

WM_CASEFOLD = 1
WM_PATHNAME = 2

_MATCH = 0
_NOMATCH = 1
_ABORT_ALL = -1
_ABORT_TO_STARSTAR = -2

_SLASH = ord("/")
_GLOB_SPECIAL = frozenset(b"*?[\\")


def _is_upper(c: int) -> bool:
    return 65 <= c <= 90


def _is_lower(c: int) -> bool:
    return 97 <= c <= 122


def _is_alpha(c: int) -> bool:
    return _is_upper(c) or _is_lower(c)


def _is_digit(c: int) -> bool:
    return 48 <= c <= 57


def _lower(c: int) -> int:
    return c + 32 if _is_upper(c) else c


# The [:name:] classes, ASCII only, as git's sane ctype (and the C locale) define them.
_CLASSES: dict[bytes, Callable[[int], bool]] = {
    b"alnum": lambda c: _is_alpha(c) or _is_digit(c),
    b"alpha": _is_alpha,
    b"blank": lambda c: c in (32, 9),
    b"cntrl": lambda c: c < 32 or c == 127,
    b"digit": _is_digit,
    b"graph": lambda c: 33 <= c <= 126,
    b"lower": _is_lower,
    b"print": lambda c: 32 <= c <= 126,
    b"punct": lambda c: 33 <= c <= 126 and not (_is_alpha(c) or _is_digit(c)),
    b"space": lambda c: c in (32, 9, 10, 13),  # git's isspace: no \v, \f
    b"upper": _is_upper,
    b"xdigit": lambda c: _is_digit(c) or 97 <= c <= 102 or 65 <= c <= 70,
}


def _class(p: bytes, i: int, t_ch: int, flags: int) -> tuple[int, int]:
    """The bracket expression starting after ``[`` at ``p[i]``: (_MATCH, _NOMATCH or
    _ABORT_ALL, index of its ``]``)."""

    def at(k: int) -> int:
        return p[k] if k < len(p) else 0

    p_ch = at(i)
    if p_ch == ord("^"):
        p_ch = ord("!")
    negated = p_ch == ord("!")
    if negated:
        i += 1
        p_ch = at(i)
    prev_ch = 0
    matched = False
    while True:
        if not p_ch:
            return _ABORT_ALL, i
        if p_ch == ord("\\"):
            i += 1
            p_ch = at(i)
            if not p_ch:
                return _ABORT_ALL, i
            if t_ch == p_ch:
                matched = True
        elif p_ch == ord("-") and prev_ch and at(i + 1) and at(i + 1) != ord("]"):
            i += 1
            p_ch = at(i)
            if p_ch == ord("\\"):
                i += 1
                p_ch = at(i)
                if not p_ch:
                    return _ABORT_ALL, i
            folded = bool(flags & WM_CASEFOLD) and _is_lower(t_ch)
            if prev_ch <= t_ch <= p_ch or (folded and prev_ch <= t_ch - 32 <= p_ch):
                matched = True
            p_ch = 0
        elif p_ch == ord("[") and at(i + 1) == ord(":"):
            start = i + 2
            j = start
            while at(j) and at(j) != ord("]"):
                j += 1
            if not at(j):
                return _ABORT_ALL, j
            if j - start - 1 < 0 or p[j - 1] != ord(":"):
                i = start - 2  # no ":]": a plain '['
                p_ch = ord("[")
                if t_ch == p_ch:
                    matched = True
            else:
                i = j
                test = _CLASSES.get(p[start : j - 1])
                if test is None:
                    return _ABORT_ALL, i
                if test(t_ch) or (
                    flags & WM_CASEFOLD and p[start : j - 1] == b"upper" and _is_lower(t_ch)
                ):
                    matched = True
                p_ch = 0
        elif t_ch == p_ch:
            matched = True
        prev_ch, i = p_ch, i + 1
        p_ch = at(i)
        if p_ch == ord("]"):
            break
    if matched == negated or (flags & WM_PATHNAME and t_ch == _SLASH):
        return _NOMATCH, i
    return _MATCH, i


def _dowild(p: bytes, pi: int, text: bytes, ti: int, flags: int) -> int:
    def pat(k: int) -> int:
        return p[k] if k < len(p) else 0

    def txt(k: int) -> int:
        return text[k] if k < len(text) else 0

    fold = bool(flags & WM_CASEFOLD)
    pathname = bool(flags & WM_PATHNAME)
    while pat(pi):
        p_ch = pat(pi)
        t_ch = txt(ti)
        if t_ch == 0 and p_ch != ord("*"):
            return _ABORT_ALL
        if fold:
            t_ch, p_ch = _lower(t_ch), _lower(p_ch)
        if p_ch == ord("\\") or p_ch not in b"?*[":
            if p_ch == ord("\\"):
                pi += 1
                p_ch = pat(pi)
            if t_ch != p_ch:
                return _NOMATCH
        elif p_ch == ord("?"):
            if pathname and t_ch == _SLASH:
                return _NOMATCH
        elif p_ch == ord("["):
            result, pi = _class(p, pi + 1, t_ch, flags)
            if result != _MATCH:
                return result
        else:  # '*'
            pi += 1
            if pat(pi) == ord("*"):
                prev = pi
                while pat(pi) == ord("*"):
                    pi += 1
                if not pathname:
                    match_slash = True
                elif (prev < 2 or p[prev - 2] == _SLASH) and (
                    pat(pi) in (0, _SLASH) or (pat(pi) == ord("\\") and pat(pi + 1) == _SLASH)
                ):
                    if pat(pi) == _SLASH and _dowild(p, pi + 1, text, ti, flags) == _MATCH:
                        return _MATCH
                    match_slash = True
                else:
                    match_slash = False
            else:
                match_slash = not pathname
            if not pat(pi):
                if not match_slash and _SLASH in text[ti:]:
                    return _ABORT_TO_STARSTAR
                return _MATCH
            if not match_slash and pat(pi) == _SLASH:
                slash = text.find(b"/", ti)
                if slash < 0:
                    return _ABORT_ALL
                ti = slash  # the slash itself is matched by the loop
                pi += 1
                ti += 1
                continue
            while True:
                if t_ch == 0:
                    break
                if pat(pi) not in _GLOB_SPECIAL:
                    want = _lower(pat(pi)) if fold else pat(pi)
                    while txt(ti) and (match_slash or txt(ti) != _SLASH):
                        t_ch = _lower(txt(ti)) if fold else txt(ti)
                        if t_ch == want:
                            break
                        ti += 1
                    else:
                        t_ch = txt(ti)
                    if t_ch != want:
                        return _ABORT_ALL if match_slash else _ABORT_TO_STARSTAR
                matched = _dowild(p, pi, text, ti, flags)
                if matched != _NOMATCH:
                    if not match_slash or matched != _ABORT_TO_STARSTAR:
                        return matched
                elif not match_slash and t_ch == _SLASH:
                    return _ABORT_TO_STARSTAR
                ti += 1
                t_ch = txt(ti)
            return _ABORT_ALL
        pi += 1
        ti += 1
    return _NOMATCH if txt(ti) else _MATCH


def wildmatch(pattern: bytes, text: bytes, flags: int = 0) -> bool:
    """Whether ``text`` matches ``pattern`` as git's ``wildmatch()`` decides (``WM_PATHNAME``:
    ``*``, ``?`` and classes do not match ``/``, ``**/`` spans directories; ``WM_CASEFOLD``)."""
    return _dowild(pattern, 0, text, 0, flags) == _MATCH
