"""for-each-ref's --format and --sort atoms (git's ref-filter.c): parsing, values, quoting."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Atom",
    "AtomError",
    "Formatter",
    "Item",
    "ObjectSource",
    "UNSUPPORTED_ATOMS",
    "compile_format",
    "parse_sort_key",
    "versioncmp",
]

# Every atom git knows (ref-filter.c valid_atom), so that a typo gets git's message.
_KNOWN = frozenset({
    "refname", "objecttype", "objectsize", "objectname", "deltabase", "tree", "parent",
    "numparent", "object", "type", "tag", "author", "authorname", "authoremail", "authordate",
    "committer", "committername", "committeremail", "committerdate", "tagger", "taggername",
    "taggeremail", "taggerdate", "creator", "creatordate", "describe", "subject", "body",
    "trailers", "contents", "signature", "raw", "upstream", "push", "symref", "flag", "HEAD",
    "color", "worktreepath", "align", "end", "if", "then", "else", "rest", "ahead-behind",
    "is-base",
})  # fmt: skip
#: Atoms git has that this command does not compute (a fatal error names them).
UNSUPPORTED_ATOMS = frozenset({
    "deltabase", "describe", "trailers", "signature", "upstream", "push",
    "worktreepath", "ahead-behind", "is-base",
})  # fmt: skip
_LAYOUT = frozenset({"align", "if", "then", "else", "end"})  # the formatting stack's atoms
_OBJECT_ATOMS = frozenset({
    "tree", "parent", "numparent", "object", "type", "tag", "author", "authorname",
    "authoremail", "authordate", "committer", "committername", "committeremail",
    "committerdate", "tagger", "taggername", "taggeremail", "taggerdate", "creator",
    "creatordate", "subject", "body", "contents", "raw",
})  # fmt: skip
_NUMERIC = frozenset({"objectsize", "numparent"})
_DATES = frozenset({"authordate", "committerdate", "taggerdate", "creatordate"})
_DATE_TYPES = (
    ("relative", None),
    ("iso8601-strict", "iso-strict"),
    ("iso-strict", "iso-strict"),
    ("iso8601", "iso"),
    ("iso", "iso"),
    ("rfc2822", "rfc"),
    ("rfc", "rfc"),
    ("short", "short"),
    ("default", "default"),
    ("human", None),
    ("raw", "raw"),
    ("unix", "unix"),
    ("format", None),
)
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SIGNATURE_STARTS = (
    b"-----BEGIN PGP SIGNATURE-----",
    b"-----BEGIN PGP MESSAGE-----",
    b"-----BEGIN SSH SIGNATURE-----",
    b"-----BEGIN SIGNED MESSAGE-----",
)
MINIMUM_ABBREV = 4


class AtomError(Exception):
    """A format or sort key git dies on (``fatal: <message>``), after ``error: <error>``
    when git's parser printed one first."""

    def __init__(self, message: str, error: str | None = None):
        super().__init__(message)
        self.error = error


@dataclass
class Atom:
    """One distinct ``%(name)`` of the format and the sort keys (git's used_atom)."""

    name: str  # as written, '*' included
    base: str  # the atom without '*' and arguments
    arg: str | None
    deref: bool
    numeric: bool = False
    option: str = ""  # the parsed argument (per atom kind)
    number: int = 0  # lstrip/rstrip count, abbreviation length, lines
    date_mode: str = "default"
    date_error: str | None = None  # git dies on a bad date format when it shows a date
    text: str = ""  # %(if:equals=...) and %(if:notequals=...)
    codes: bytes = b""  # %(color:...)


def _bad_arg(atom: Atom) -> AtomError:
    return AtomError(f"unrecognized %({atom.base}) argument: {atom.arg}")


_C_INT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")


def _strtol_i(text: str) -> int | None:
    """git's strtol_i: a whole decimal int (leading space and sign allowed), else None."""
    if not _C_INT.fullmatch(text):
        return None
    value = int(text.strip(" \t\n\v\f\r"))
    return value if -(2**31) <= value < 2**31 else None


def _parse_align(atom: Atom) -> None:
    """git's align_atom_parser: ``<width>[,<position>]`` or ``width=``/``position=``."""
    if atom.arg is None:
        raise AtomError("expected format: %(align:<width>,<position>)")
    width: int | None = None
    position = "left"
    for param in atom.arg.split(","):
        if param.startswith("position="):
            value = param[len("position=") :]
            if value not in ("left", "middle", "right"):
                raise AtomError(f"unrecognized position:{value}")
            position = value
        elif param.startswith("width="):
            value = param[len("width=") :]
            if not _is_uint(value):
                raise AtomError(f"unrecognized width:{value}")
            width = int(value)
        elif _is_uint(param):
            width = int(param)
        elif param in ("left", "middle", "right"):
            position = param
        else:
            raise AtomError(f"unrecognized %(align) argument: {param}")
    if width is None or width == 0xFFFFFFFF:
        raise AtomError("positive width expected with the %(align) atom")
    atom.number = width
    atom.option = position


def _is_uint(text: str) -> bool:
    """git's strtoul_ui: digits (after optional space) that fit an unsigned int."""
    stripped = text.lstrip(" \t\n\v\f\r")
    return stripped.isdigit() and stripped.isascii() and int(stripped) <= 0xFFFFFFFF


_COLOR_NAMES = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
_ATTRS = {"bold": (1, 22), "dim": (2, 22), "italic": (3, 23), "ul": (4, 24),
          "blink": (5, 25), "reverse": (7, 27), "strike": (9, 29)}  # fmt: skip
GIT_COLOR_RESET = b"\033[m"


def _parse_color_word(word: str) -> str | None:
    """git's parse_color: the SGR code of one color word without its background
    offset (as a format with {} for the 30/38 base), "" for normal, None if not one."""
    low = word.lower()
    if low == "normal":
        return ""
    if len(word) in (4, 7) and word[0] == "#":
        step = 2 if len(word) == 7 else 1
        digits = word[1:]
        rgb = []
        for i in range(3):
            pair = digits[i * step : i * step + step]
            hi, lo = pair[0], pair[-1]
            if hi not in "0123456789abcdefABCDEF" or lo not in "0123456789abcdefABCDEF":
                break
            rgb.append(int(hi + lo, 16))
        else:
            return "rgb:" + ";".join(map(str, rgb))
    if low == "default":
        return "ansi:39"
    offset, name = 30, low
    if name.startswith("bright"):
        offset, name = 90, name[6:]
    if name in _COLOR_NAMES:
        return f"ansi:{offset + _COLOR_NAMES.index(name)}"
    if re.fullmatch(r"[+-]?[0-9]+", word):
        value = int(word)
        if value == -1:
            return ""
        if 0 <= value < 8:
            return f"ansi:{30 + value}"
        if 8 <= value < 16:
            return f"ansi:{90 + value - 8}"
        if 16 <= value < 256:
            return f"256:{value}"
    return None


def _color_sgr(code: str, background: bool) -> str:
    kind, _, value = code.partition(":")
    offset = 10 if background else 0
    if kind == "ansi":
        return str(int(value) + offset)
    if kind == "256":
        return f"{38 + offset};5;{value}"
    return f"{38 + offset};2;{value}"


def color_codes(value: str) -> bytes | None:
    """git's color_parse: ``[reset] [fg [bg]] [attr]...`` as an ANSI sequence (b"" for
    nothing), None when git refuses the value."""
    words = value.split()
    reset = False
    attrs = 0
    colors: list[str] = []
    for word in words:
        if word.lower() == "reset":
            reset = True
            continue
        code = _parse_color_word(word)
        if code is not None:
            if len(colors) == 2:
                return None
            colors.append(code)
            continue
        name, negate = word, False
        if name.startswith("no"):
            name, negate = name[2:], True
            if name.startswith("-"):
                name = name[1:]
        if name not in _ATTRS:
            return None
        attrs |= 1 << _ATTRS[name][1 if negate else 0]
    set_colors = [(c, i == 1) for i, c in enumerate(colors) if c]
    if not (reset or attrs or set_colors):
        return b""
    parts = [str(i) for i in range(32) if attrs & (1 << i)]
    parts += [_color_sgr(code, bg) for code, bg in set_colors]
    return ("\033[" + (";" if reset and parts else "") + ";".join(parts) + "m").encode()


def _parse_args(atom: Atom) -> None:
    base, arg = atom.base, atom.arg
    if base == "raw":
        if arg is not None and arg != "size":
            raise _bad_arg(atom)
        atom.option = arg or ""
        atom.numeric = arg == "size"
    elif base == "color":
        if arg is None:
            raise AtomError("expected format: %(color:<color>)")
        codes = color_codes(arg)
        if codes is None:
            raise AtomError(f"unrecognized color: %(color:{arg})", f"invalid color value: {arg}")
        atom.codes = codes
    elif base == "align":
        _parse_align(atom)
    elif base == "if":
        if arg is None:
            atom.option = ""
        elif arg.startswith("equals="):
            atom.option, atom.text = "equals", arg[len("equals=") :]
        elif arg.startswith("notequals="):
            atom.option, atom.text = "notequals", arg[len("notequals=") :]
        else:
            raise _bad_arg(atom)
    elif base in ("refname", "symref"):
        if arg is None:
            atom.option = "normal"
        elif arg == "short":
            atom.option = "short"
        elif arg.startswith(("lstrip=", "strip=", "rstrip=")):
            key, value = arg.split("=", 1)
            number = _strtol_i(value)
            if number is None:
                shown = "lstrip" if key == "strip" else key
                raise AtomError(f"Integer value expected refname:{shown}={value}")
            atom.option = "rstrip" if key == "rstrip" else "lstrip"
            atom.number = number
        else:
            raise _bad_arg(atom)
    elif base in ("objectname", "tree", "parent"):
        if arg is None:
            atom.option = "full"
        elif arg == "short":
            atom.option = "short"
        elif arg.startswith("short="):
            value = arg[len("short=") :]
            if not value.isdigit() or int(value) == 0:
                raise AtomError(f"positive value expected '{value}' in %({atom.name})")
            atom.option = "length"
            atom.number = max(int(value), MINIMUM_ABBREV)
        else:
            raise _bad_arg(atom)
    elif base == "objecttype":
        if arg is not None:
            raise AtomError("%(objecttype) does not take arguments")
    elif base == "objectsize":
        if arg == "disk":
            raise AtomError("%(objectsize:disk) is not supported by aioreftable")
        if arg is not None:
            raise _bad_arg(atom)
    elif base == "HEAD":
        if arg is not None:
            raise AtomError("%(HEAD) does not take arguments")
    elif base in ("authorname", "committername", "taggername"):
        if arg is not None:
            if arg == "mailmap":
                raise AtomError(f"%({base}:mailmap) is not supported by aioreftable")
            raise _bad_arg(atom)
    elif base in ("authoremail", "committeremail", "taggeremail"):
        _parse_email(atom)
    elif base in _DATES:
        try:
            atom.date_mode = _date_mode(arg) if arg is not None else "default"
        except AtomError as e:
            atom.date_error = str(e)
    elif base == "subject":
        if arg == "sanitize":
            raise AtomError("%(subject:sanitize) is not supported by aioreftable")
        if arg is not None:
            raise _bad_arg(atom)
        atom.option = "subject"
    elif base == "body":
        if arg is not None:
            raise AtomError("%(body) does not take arguments")
        atom.option = "body-dep"
    elif base == "contents":
        _parse_contents(atom)


def _parse_email(atom: Atom) -> None:
    arg = atom.arg
    options: set[str] = set()
    while True:
        rest = arg or ""
        for word in ("trim", "localpart", "mailmap"):
            if rest.startswith(word):
                options.add(word)
                rest = rest[len(word) :]
                break
        else:
            if arg:
                raise AtomError(f"unrecognized %({atom.base}) argument: {arg}")
        if not rest:
            break
        if rest[0] != ",":
            raise AtomError(f"unrecognized %({atom.base}) argument: {arg}")
        arg = rest[1:]
    if "mailmap" in options:
        raise AtomError(f"%({atom.base}:mailmap) is not supported by aioreftable")
    atom.option = "localpart" if "localpart" in options else "trim" if "trim" in options else ""


def _parse_contents(atom: Atom) -> None:
    arg = atom.arg
    if arg is None:
        atom.option = "bare"
    elif arg in ("body", "subject", "signature"):
        atom.option = arg
    elif arg == "size":
        atom.option = "size"
        atom.numeric = True
    elif arg.startswith("lines="):
        value = arg[len("lines=") :]
        if not value.isdigit():
            raise AtomError(f"positive value expected contents:lines={value}")
        atom.option = "lines"
        atom.number = int(value)
    elif arg == "trailers" or arg.startswith("trailers:"):
        raise AtomError("%(contents:trailers) is not supported by aioreftable")
    else:
        raise _bad_arg(atom)


def _date_mode(arg: str) -> str:
    """git's parse_date_format, for the modes computed here."""
    if arg.startswith("auto:"):
        arg = "default"  # not a terminal: git uses the default
    if arg == "local":
        arg = "default-local"
    for prefix, mode in _DATE_TYPES:
        if arg.startswith(prefix):
            rest = arg[len(prefix) :]
            if mode is None or rest.startswith("-local"):
                raise AtomError(f"date format {arg} is not supported by aioreftable")
            if rest:
                raise AtomError(f"unknown date format {arg}")
            return mode
    raise AtomError(f"unknown date format {arg}")


class Registry:
    """The distinct atoms of one run, by name as written (git's used_atom array)."""

    def __init__(self) -> None:
        self.atoms: list[Atom] = []
        self._by_name: dict[str, int] = {}

    def parse(self, text: str) -> int:
        """The index of the atom ``text`` (between ``%(`` and ``)``), or AtomError."""
        found = self._by_name.get(text)
        if found is not None:
            return found
        deref = text.startswith("*")
        body = text[1:] if deref else text
        if not body:
            raise AtomError(f"malformed field name: {text}")
        base, colon, arg = body.partition(":")
        if base not in _KNOWN:
            raise AtomError(f"unknown field name: {text}")
        if base in UNSUPPORTED_ATOMS:
            raise AtomError(f"%({base}) is not supported by aioreftable")
        if base == "rest":
            if colon and arg:
                raise AtomError("%(rest) does not take arguments")
            raise AtomError(f"this command reject atom %({text})")
        atom = Atom(text, base, (arg or None) if colon else None, deref)
        atom.numeric = base in _NUMERIC or (base in _DATES and not colon)
        _parse_args(atom)
        self._by_name[text] = len(self.atoms)
        self.atoms.append(atom)
        return len(self.atoms) - 1

    @property
    def needs_objects(self) -> bool:
        return any(
            a.base in _OBJECT_ATOMS or a.base in ("objecttype", "objectsize") or a.deref
            for a in self.atoms
        )

    @property
    def needs_deref(self) -> bool:
        return any(a.deref for a in self.atoms)


def _literal(text: str) -> bytes:
    """git's append_literal: ``%%`` is '%', ``%xx`` a byte in hex."""
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # %
            if raw[i + 1 : i + 2] == b"%":
                i += 1
            elif _is_hex(raw[i + 1 : i + 3]):
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
                continue
        out.append(raw[i])
        i += 1
    return bytes(out)


def _is_hex(two: bytes) -> bool:
    return len(two) == 2 and all(b in b"0123456789abcdefABCDEF" for b in two)


def compile_format(fmt: str, registry: Registry, quote: str = "") -> list[bytes | int]:
    """The format as literals (bytes) and atom indexes; AtomError for a bad atom, and
    ValueError('malformed format string ...') for a '%(' without ')' (git's usage error)."""
    parts: list[bytes | int] = []
    pos = 0
    while pos < len(fmt):
        start = _find_next(fmt, pos)
        if start < 0:
            break
        end = fmt.find(")", start)
        if end < 0:
            raise ValueError(f"malformed format string {fmt[start:]}")
        if start > pos:
            parts.append(_literal(fmt[pos:start]))
        index = registry.parse(fmt[start + 2 : end])
        atom = registry.atoms[index]
        if atom.base == "raw" and not atom.option and quote in ("python", "shell", "tcl"):
            raise AtomError(f"--format={atom.name} cannot be used with --python, --shell, --tcl")
        parts.append(index)
        pos = end + 1
    if pos < len(fmt):
        parts.append(_literal(fmt[pos:]))
    return parts


def _find_next(fmt: str, pos: int) -> int:
    while pos < len(fmt):
        if fmt[pos] == "%":
            if fmt[pos + 1 : pos + 2] == "(":
                return pos
            if fmt[pos + 1 : pos + 2] == "%":
                pos += 1
        pos += 1
    return -1


@dataclass(frozen=True)
class SortKey:
    atom: int
    reverse: bool
    version: bool


def parse_sort_key(text: str, registry: Registry) -> SortKey:
    """git's parse_sorting_atom: ``-`` reverses, ``version:``/``v:`` sorts as versions."""
    reverse = text.startswith("-")
    if reverse:
        text = text[1:]
    version = False
    for prefix in ("version:", "v:"):
        if text.startswith(prefix):
            version = True
            text = text[len(prefix) :]
            break
    return SortKey(registry.parse(text), reverse, version)


# -- values ------------------------------------------------------------------------------


@dataclass
class Item:
    """One listed ref: its name (bytes), resolved id, symref target, peeled id."""

    name: bytes
    oid: str
    symref: bytes | None
    peeled: str | None
    values: list[tuple[bytes, int]] | None = field(default=None)


class ObjectSource:
    """What the values need from outside: objects, abbreviations, short names, HEAD."""

    def __init__(
        self,
        read: Callable[[str], tuple[str, bytes] | None],
        abbreviate: Callable[[str, int], str],
        shorten: Callable[[bytes], bytes],
        head: bytes | None,
        default_abbrev: int,
    ):
        self.read = read
        self.abbreviate = abbreviate
        self.shorten = shorten
        self.head = head
        self.default_abbrev = default_abbrev


def _strip_components(name: bytes, count: int, left: bool) -> bytes:
    if count < 0:
        count = name.count(b"/") + count + 1
    if left:
        rest = name
        while count > 0:
            slash = rest.find(b"/")
            if slash < 0:
                return b""
            rest = rest[slash + 1 :]
            count -= 1
        return rest
    end = len(name)
    while count > 0:
        if end == 0:
            return b""
        slash = name.rfind(b"/", 0, end)
        if slash < 0:
            return b""
        end = slash
        count -= 1
    return name[:end]


def _show_ref(atom: Atom, name: bytes, source: ObjectSource) -> bytes:
    if atom.option == "short":
        return source.shorten(name)
    if atom.option == "lstrip":
        return _strip_components(name, atom.number, True)
    if atom.option == "rstrip":
        return _strip_components(name, atom.number, False)
    return name


def _oid_text(atom: Atom, oid: str, source: ObjectSource) -> bytes:
    if atom.option == "short":
        return source.abbreviate(oid, source.default_abbrev).encode()
    if atom.option == "length":
        return source.abbreviate(oid, atom.number).encode()
    return oid.encode()


def _header_lines(body: bytes) -> list[bytes]:
    end = body.find(b"\n\n")
    head = body if end < 0 else body[: end + 1]
    return head.split(b"\n")


def _header(body: bytes, key: bytes) -> bytes | None:
    for line in _header_lines(body):
        if line.startswith(key + b" "):
            return line[len(key) + 1 :]
        if not line:
            break
    return None


def _tz_minutes(tz: int) -> int:
    sign = -1 if tz < 0 else 1
    tz = abs(tz)
    return sign * ((tz // 100) * 60 + tz % 100)


def _show_date(stamp: int, tz: int, mode: str) -> bytes:
    """git's show_date for the modes computed here (the object's own time zone)."""
    if mode == "unix":
        return str(stamp).encode()
    if mode == "raw":
        return f"{stamp} {tz:+05d}".encode()
    try:
        tm = time.gmtime(stamp + _tz_minutes(tz) * 60)
    except (OverflowError, OSError, ValueError):
        tm = time.gmtime(0)
        tz = 0
    ymd = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
    hms = f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    wday = _WEEKDAYS[(tm.tm_wday + 1) % 7]
    month = _MONTHS[tm.tm_mon - 1]
    if mode == "short":
        return ymd.encode()
    if mode == "iso":
        return f"{ymd} {hms} {tz:+05d}".encode()
    if mode == "iso-strict":
        if tz == 0:
            return f"{ymd}T{hms}Z".encode()
        sign = "+" if tz >= 0 else "-"
        return f"{ymd}T{hms}{sign}{abs(tz) // 100:02d}:{abs(tz) % 100:02d}".encode()
    if mode == "rfc":
        return f"{wday}, {tm.tm_mday} {month} {tm.tm_year} {hms} {tz:+05d}".encode()
    return f"{wday} {month} {tm.tm_mday} {hms} {tm.tm_year} {tz:+05d}".encode()


def _parse_c_long(text: bytes) -> tuple[int, bytes] | None:
    """strtoul-like: leading spaces, optional sign, digits; the number and the rest."""
    s = text.lstrip(b" \t\n\v\f\r")
    i = 0
    if s[:1] in (b"+", b"-"):
        i = 1
    j = i
    while j < len(s) and s[j : j + 1].isdigit():
        j += 1
    if j == i:
        return None
    return int(s[:j]), s[j:]


def _date_value(line: bytes, atom: Atom) -> tuple[bytes, int]:
    if atom.date_error is not None:
        raise MissingObject(atom.date_error)
    mode = atom.date_mode
    at = line.find(b"> ")
    if at < 0:
        return b"", 0
    parsed = _parse_c_long(line[at + 2 :])
    if parsed is None:
        return b"", 0
    stamp, rest = parsed
    zone = _parse_c_long(rest)
    tz = zone[0] if zone is not None else 0
    return _show_date(stamp, tz, mode), stamp


def _copy_name(line: bytes) -> bytes:
    at = line.find(b" <")
    return b"" if at < 0 else line[:at]


def _copy_email(line: bytes, option: str) -> bytes:
    start = line.find(b"<")
    if start < 0:
        return b""
    email = line[start + 1 :] if option else line[start:]
    if option == "localpart":
        end = email.find(b"@")
        if end < 0:
            end = email.find(b">")
    elif option == "trim":
        end = email.find(b">")
    else:
        end = email.find(b">")
        if end >= 0:
            end += 1
    return b"" if end < 0 else email[:end]


def _signature_start(message: bytes) -> int:
    """git's parse_signed_buffer: where the last signature block starts."""
    pos, match = 0, len(message)
    while pos < len(message):
        if message.startswith(_SIGNATURE_STARTS, pos):
            match = pos
        eol = message.find(b"\n", pos)
        pos = len(message) if eol < 0 else eol + 1
    return match


def _message_parts(body: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """git's find_subpos: (subject, body with signature, body without, signature,
    message from the subject on)."""
    body = body.split(b"\0", 1)[0]  # git reads the object as a C string
    pos = 0
    while pos < len(body) and body[pos : pos + 1] != b"\n":
        eol = body.find(b"\n", pos)
        pos = len(body) if eol < 0 else eol + 1
    while body[pos : pos + 1] == b"\n":
        pos += 1
    msg = body[pos:]
    sig_at = _signature_start(msg)
    for sep in (b"\n\n", b"\r\n\r\n"):
        eol = msg.find(sep)
        if eol >= 0:
            eol = min(eol, sig_at)
            break
    else:
        eol = sig_at
    sub = msg[:eol].rstrip(b"\r\n")
    rest = eol
    while msg[rest : rest + 1] in (b"\n", b"\r"):
        rest += 1
    return sub, msg[rest:], msg[rest:sig_at], msg[sig_at:], msg


def _copy_subject(sub: bytes) -> bytes:
    return sub.replace(b"\r\n", b"\n").replace(b"\n", b" ")


def _append_lines(text: bytes, lines: int) -> bytes:
    out: list[bytes] = []
    pos = 0
    for _ in range(lines):
        if pos >= len(text):
            break
        eol = text.find(b"\n", pos)
        if eol < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:eol])
        pos = eol + 1
    return b"\n    ".join(out)


def _object_value(atom: Atom, kind: str, body: bytes, source: ObjectSource) -> tuple[bytes, int]:
    """The value of an atom that parses a commit or tag (git's grab_values), else empty."""
    base = atom.base
    if base == "raw":
        if atom.option == "size":
            return str(len(body)).encode(), len(body)
        return body, 0
    if base in ("subject", "body", "contents"):
        if kind not in ("commit", "tag"):
            return b"", 0
        sub, body_all, body_nonsig, sig, msg = _message_parts(body)
        opt = atom.option
        if opt == "subject":
            return _copy_subject(sub), 0
        if opt == "body-dep":
            return body_all, 0
        if opt == "body":
            return body_nonsig, 0
        if opt == "signature":
            return sig, 0
        if opt == "size":
            return str(len(msg)).encode(), len(msg)
        if opt == "lines":
            return _append_lines(msg[: len(msg) - len(sig)], atom.number), 0
        return msg, 0
    if kind == "tag":
        if base == "tag":
            return _header(body, b"tag") or b"", 0
        if base == "type":
            return _header(body, b"type") or b"", 0
        if base == "object":
            value = _header(body, b"object")
            return (b"" if value is None else value), 0
    if kind == "commit":
        if base == "tree":
            value = _header(body, b"tree")
            return (b"" if value is None else _oid_text(atom, value.decode(), source)), 0
        if base in ("parent", "numparent"):
            parents = [line[7:] for line in _header_lines(body) if line.startswith(b"parent ")]
            if base == "numparent":
                return str(len(parents)).encode(), len(parents)
            return b" ".join(_oid_text(atom, p.decode(), source) for p in parents), 0
    for who in (b"author", b"committer", b"tagger"):
        word = who.decode()
        if not base.startswith(word):
            continue
        line = _header(body, who) if kind in ("commit", "tag") else None
        if line is None:
            return b"", 0
        suffix = base[len(word) :]
        if suffix == "":
            return line, 0
        if suffix == "name":
            return _copy_name(line), 0
        if suffix == "email":
            return _copy_email(line, atom.option), 0
        if suffix == "date":
            return _date_value(line, atom)
    if base in ("creator", "creatordate"):
        who = b"tagger" if kind == "tag" else b"committer"
        line = _header(body, who) if kind in ("commit", "tag") else None
        if line is None:
            return b"", 0
        if base == "creator":
            return line, 0
        return _date_value(line, atom)
    return b"", 0


class MissingObject(Exception):
    """What git dies on while it computes a value (``missing object <id> for <ref>``)."""


class Formatter:
    """Computes the atoms' values of items (once each) and formats them."""

    def __init__(
        self,
        registry: Registry,
        parts: list[bytes | int],
        source: ObjectSource,
        quote: str,
        color: bool = False,
    ):
        self.registry = registry
        self.parts = parts
        self.source = source
        self.quote = _QUOTES[quote]
        self.color = color
        self.layout = any(isinstance(p, int) and registry.atoms[p].base in _LAYOUT for p in parts)
        # git's need_color_reset_at_eol: the last %(color:...) of the format decides
        colors = [registry.atoms[p] for p in parts if isinstance(p, int)]
        colors = [a for a in colors if a.base == "color" and not a.deref]
        self.reset_at_eol = color and bool(colors) and colors[-1].arg != "reset"

    def values(self, item: Item) -> list[tuple[bytes, int]]:
        if item.values is None:
            item.values = self._compute(item)
        return item.values

    def _compute(self, item: Item) -> list[tuple[bytes, int]]:
        atoms = self.registry.atoms
        out: list[tuple[bytes, int]] = [(b"", 0)] * len(atoms)
        obj: tuple[str, bytes] | None = None
        deref: tuple[str, bytes] | None = None
        deref_oid: str | None = None
        need_obj = any(
            a.base in _OBJECT_ATOMS or a.base in ("objecttype", "objectsize") or a.deref
            for a in atoms
        )
        if need_obj:
            obj = self.source.read(item.oid)
            if obj is None:
                raise MissingObject(f"missing object {item.oid} for {_text(item.name)}")
            if obj[0] == "tag" and self.registry.needs_deref:
                deref_oid = item.peeled or _peel(obj, self.source)
                if deref_oid is not None:
                    deref = self.source.read(deref_oid)
                    if deref is None:
                        raise MissingObject(f"missing object {deref_oid} for {_text(item.name)}")
        for i, atom in enumerate(atoms):
            base = atom.base
            if atom.deref:
                if base == "refname":
                    out[i] = (item.name + b"^{}", 0)
                    continue
                if deref is None or deref_oid is None:
                    continue
                target: tuple[str, bytes] | None = deref
                target_oid = deref_oid
            else:
                target, target_oid = obj, item.oid
            if base == "refname":
                out[i] = (_show_ref(atom, item.name, self.source), 0)
            elif base == "color":
                out[i] = (atom.codes if self.color else b"", 0)
            elif base == "symref":
                if not atom.deref:
                    name = item.symref or b""
                    out[i] = (_show_ref(atom, name, self.source) if name else b"", 0)
            elif base == "objectname":
                out[i] = (_oid_text(atom, target_oid, self.source), 0)
            elif base == "HEAD":
                out[i] = (b"*" if self.source.head == item.name else b" ", 0)
            elif base == "flag":
                out[i] = (b"symref" if item.symref is not None else b"", 0)
            elif target is None:
                continue
            elif base == "objecttype":
                out[i] = (target[0].encode(), 0)
            elif base == "objectsize":
                out[i] = (str(len(target[1])).encode(), len(target[1]))
            else:
                out[i] = _object_value(atom, target[0], target[1], self.source)
        return out

    def format(self, item: Item) -> bytes:
        values = self.values(item)
        quote = self.quote
        if not self.layout:
            line = b"".join(
                part if isinstance(part, bytes) else quote(values[part][0]) for part in self.parts
            )
        else:
            line = _Layout(quote).run(self.parts, self.registry.atoms, values)
        return line + quote(GIT_COLOR_RESET) if self.reset_at_eol else line


@dataclass
class _Frame:
    """One element of git's formatting stack: its output and what %(end) does with it."""

    out: bytearray = field(default_factory=bytearray)
    kind: str = ""  # "", "align", "if"
    atom: Atom | None = None
    cond: _Condition | None = None


@dataclass
class _Condition:
    """An %(if)'s state, shared by its %(then) and %(else) frames."""

    atom: Atom
    then_seen: bool = False
    else_seen: bool = False
    satisfied: bool = False


class _Layout:
    """git's format_ref_array_item with the stack atoms: %(align), %(if), %(then),
    %(else), %(end); values are quoted only outside them (the outermost block is quoted
    whole at its %(end))."""

    def __init__(self, quote: Callable[[bytes], bytes]):
        self.quote = quote
        self.stack = [_Frame()]

    def run(
        self, parts: list[bytes | int], atoms: list[Atom], values: list[tuple[bytes, int]]
    ) -> bytes:
        for part in parts:
            if isinstance(part, bytes):
                self.stack[-1].out += part
                continue
            atom = atoms[part]
            handler = getattr(self, f"_{atom.base}", None)
            if handler is not None and not atom.deref:
                handler(atom)
            elif len(self.stack) == 1:
                self.stack[-1].out += self.quote(values[part][0])
            else:
                self.stack[-1].out += values[part][0]
        if len(self.stack) > 1:
            raise MissingObject("format: %(end) atom missing")
        return bytes(self.stack[0].out)

    def _align(self, atom: Atom) -> None:
        self.stack.append(_Frame(kind="align", atom=atom))

    def _if(self, atom: Atom) -> None:
        self.stack.append(_Frame(kind="if", cond=_Condition(atom)))

    def _then(self, atom: Atom) -> None:
        cur = self.stack[-1]
        cond = cur.cond if cur.kind == "if" else None
        if cond is None:
            raise MissingObject("format: %(then) atom used without a %(if) atom")
        if cond.then_seen:
            raise MissingObject("format: %(then) atom used more than once")
        if cond.else_seen:
            raise MissingObject("format: %(then) atom used after %(else)")
        cond.then_seen = True
        text = bytes(cur.out)
        if cond.atom.option == "equals":
            cond.satisfied = text == cond.atom.text.encode("utf-8", "surrogateescape")
        elif cond.atom.option == "notequals":
            cond.satisfied = text != cond.atom.text.encode("utf-8", "surrogateescape")
        else:
            cond.satisfied = bool(text.strip(b" \t\n\v\f\r"))
        cur.out.clear()

    def _else(self, atom: Atom) -> None:
        prev = self.stack[-1]
        cond = prev.cond if prev.kind == "if" else None
        if cond is None:
            raise MissingObject("format: %(else) atom used without a %(if) atom")
        if not cond.then_seen:
            raise MissingObject("format: %(else) atom used without a %(then) atom")
        if cond.else_seen:
            raise MissingObject("format: %(else) atom used more than once")
        cond.else_seen = True
        self.stack.append(_Frame(kind="if", cond=cond))

    def _end(self, atom: Atom) -> None:
        cur = self.stack[-1]
        if not cur.kind:
            raise MissingObject("format: %(end) atom used without corresponding atom")
        if cur.kind == "align":
            assert cur.atom is not None
            cur.out[:] = _utf8_align(bytes(cur.out), cur.atom.option, cur.atom.number)
        else:
            cond = cur.cond
            assert cond is not None
            if not cond.then_seen:
                raise MissingObject("format: %(if) atom used without a %(then) atom")
            if cond.else_seen:
                prev = self.stack[-2]
                if not cond.satisfied:
                    prev.out[:] = cur.out
                self.stack.pop()
                cur = self.stack[-1]
            elif not cond.satisfied:
                cur.out.clear()
        if len(self.stack) == 2:
            cur.out[:] = self.quote(bytes(cur.out))
        self.stack.pop()
        self.stack[-1].out += cur.out


def _utf8_width(text: bytes) -> int:
    """git's utf8_strnwidth: display columns; the byte count if it is not UTF-8."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return len(text)
    width = 0
    for ch in decoded:
        code = ord(ch)
        if code == 0 or code < 32 or 0x7F <= code < 0xA0:
            continue
        if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _utf8_align(text: bytes, position: str, width: int) -> bytes:
    """git's strbuf_utf8_align (the text up to its first NUL)."""
    text = _cstr(text)
    shown = _utf8_width(text)
    if shown >= width:
        return text
    pad = width - shown
    if position == "left":
        return text + b" " * pad
    if position == "right":
        return b" " * pad + text
    left = pad // 2
    return b" " * left + text + b" " * (pad - left)


def _peel(obj: tuple[str, bytes], source: ObjectSource) -> str | None:
    """git's peel_object: follow tags to the first object that is not a tag."""
    for _ in range(64):
        target = _header(obj[1], b"object")
        if target is None:
            return None
        found = source.read(target.decode())
        if found is None:
            return None
        if found[0] != "tag":
            return target.decode()
        obj = found
    return None


def _text(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _cstr(value: bytes) -> bytes:
    return value.split(b"\0", 1)[0]


def _quote_none(value: bytes) -> bytes:
    return value


def _quote_shell(value: bytes) -> bytes:
    value = _cstr(value)
    return b"'" + value.replace(b"'", b"'\\''").replace(b"!", b"'\\!'") + b"'"


def _quote_perl(value: bytes) -> bytes:
    """git's perl_quote_buf_with_len: NUL-safe (only %(raw) can hold a NUL)."""
    return b"'" + value.replace(b"\\", b"\\\\").replace(b"'", b"\\'") + b"'"


def _quote_python(value: bytes) -> bytes:
    value = _cstr(value).replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\n", b"\\n")
    return b"'" + value + b"'"


_TCL = {ord(c): "\\" + c for c in '[]{}$\\"'} | {
    ord("\f"): "\\f",
    ord("\r"): "\\r",
    ord("\n"): "\\n",
    ord("\t"): "\\t",
    ord("\v"): "\\v",
}


def _quote_tcl(value: bytes) -> bytes:
    text = _cstr(value).decode("latin-1").translate(_TCL)
    return b'"' + text.encode("latin-1") + b'"'


_QUOTES: dict[str, Callable[[bytes], bytes]] = {
    "": _quote_none,
    "shell": _quote_shell,
    "perl": _quote_perl,
    "python": _quote_python,
    "tcl": _quote_tcl,
}


# -- sorting -----------------------------------------------------------------------------

_S_N, _S_I, _S_F, _S_Z = 0, 3, 6, 9
_CMP, _LEN = 2, 3
_NEXT = (_S_N, _S_I, _S_Z, _S_N, _S_I, _S_I, _S_N, _S_F, _S_F, _S_N, _S_F, _S_Z)
_RESULT = (
    _CMP, _CMP, _CMP, _CMP, _LEN, _CMP, _CMP, _CMP, _CMP,
    _CMP, -1, -1, +1, _LEN, _LEN, +1, _LEN, _LEN,
    _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP,
    _CMP, +1, +1, -1, _CMP, _CMP, -1, _CMP, _CMP,
)  # fmt: skip


def _cls(c: int) -> int:
    return (c == 0x30) + (0x30 <= c <= 0x39)


def versioncmp(a: bytes, b: bytes) -> int:
    """git's versioncmp (glibc's strverscmp; no versionsort.suffix)."""
    if a == b:
        return 0
    a0, b0 = a + b"\0", b + b"\0"
    i = 0
    c1, c2 = a0[0], b0[0]
    state = _S_N + _cls(c1)
    while c1 == c2:
        if c1 == 0:
            return 0
        state = _NEXT[state]
        i += 1
        c1, c2 = a0[i], b0[i]
        state += _cls(c1)
    diff = c1 - c2
    result = _RESULT[state * 3 + _cls(c2)]
    if result == _CMP:
        return diff
    if result == _LEN:
        p1 = p2 = i + 1
        while 0x30 <= a0[p1] <= 0x39:
            p1 += 1
            if not 0x30 <= b0[p2] <= 0x39:
                return 1
            p2 += 1
        return -1 if 0x30 <= b0[p2] <= 0x39 else diff
    return result
