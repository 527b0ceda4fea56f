"""Committer identity and dates for reflog entries, resolved the way git's ident.c does."""

from __future__ import annotations

import calendar
import email.utils
import os
import re
import socket
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .._errors import ReftableError
from ._config import RepoConfig

__all__ = ["DateError", "Identity", "committer_identity", "parse_date", "strip_crud"]


class DateError(ReftableError):
    """GIT_COMMITTER_DATE is not in a form git accepts."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A reflog identity: name and email without angle brackets, epoch seconds, HHMM tz."""

    name: bytes
    email: bytes
    time: int
    tz: int


def _crud(c: int) -> bool:
    return c <= 32 or c in b",:;<>\"\\'"


def strip_crud(value: str) -> bytes:
    """git's strbuf_addstr_without_crud: trim 'crud' at both ends, drop LF, '<' and '>'."""
    raw = value.encode("utf-8", "surrogateescape")
    start, end = 0, len(raw)
    while start < end and _crud(raw[start]):
        start += 1
    while end > start and _crud(raw[end - 1]):
        end -= 1
    return bytes(c for c in raw[start:end] if c not in b"\n<>")


def _hhmm(offset_seconds: int) -> int:
    sign = -1 if offset_seconds < 0 else 1
    minutes = abs(offset_seconds) // 60
    return sign * (minutes // 60 * 100 + minutes % 60)


def _local_tz(epoch: int) -> int:
    local = _time.localtime(epoch)
    return _hhmm(local.tm_gmtoff or 0)


_RAW = re.compile(r"@?(\d+)\s+([+-])(\d\d)(\d\d)")
_EPOCH = re.compile(r"@?(\d{9,})")
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?"
    r"\s*(Z|[+-]\d\d:?\d\d)?"
)


def parse_date(text: str) -> tuple[int, int]:
    """(epoch seconds, HHMM tz) from the forms git accepts for GIT_COMMITTER_DATE: git's
    internal ``[@]<epoch> <+-HHMM>``, a bare epoch, ISO 8601 and RFC 2822."""
    s = text.strip()
    m = _RAW.fullmatch(s)
    if m:
        sign = -1 if m.group(2) == "-" else 1
        return int(m.group(1)), sign * (int(m.group(3)) * 100 + int(m.group(4)))
    m = _EPOCH.fullmatch(s)
    if m:
        epoch = int(m.group(1))
        return epoch, _local_tz(epoch)
    m = _ISO.fullmatch(s)
    if m:
        y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
        sec = int(m.group(6) or 0)
        zone = m.group(7)
        wall = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
        if zone is None:
            local = _time.mktime((y, mo, d, h, mi, sec, 0, 0, -1))
            return int(local), _local_tz(int(local))
        if zone == "Z":
            return wall, 0
        digits = zone[1:].replace(":", "")
        off = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        off = -off if zone[0] == "-" else off
        return wall - off, _hhmm(off)
    parsed = email.utils.parsedate_tz(s)
    if parsed is not None:
        zone_off = parsed[9]
        wall = calendar.timegm((*parsed[:6], 0, 0, 0))
        if zone_off is None:
            return wall, 0
        return wall - zone_off, _hhmm(zone_off)
    raise DateError(f"invalid date format: {text}")


def _passwd() -> tuple[str, str]:
    """(login name, gecos full name) of the current user."""
    try:
        import pwd

        pw = pwd.getpwuid(os.getuid())
        gecos = pw.pw_gecos.split(",", 1)[0]
        if "&" in gecos:
            gecos = gecos.replace("&", pw.pw_name[:1].upper() + pw.pw_name[1:])
        return pw.pw_name, gecos
    except (ImportError, KeyError):
        return "unknown", ""


def _domain() -> str:
    """git's add_mailname_host / add_domainname."""
    try:
        with open("/etc/mailname", encoding="utf-8", errors="replace") as f:
            line = f.readline().strip()
            if line:
                return line
    except OSError:
        pass
    host = socket.gethostname()
    if "." in host:
        return host
    try:
        for info in socket.getaddrinfo(host, None, flags=socket.AI_CANONNAME):
            if info[3] and "." in info[3]:
                return info[3]
    except OSError:
        pass
    return f"{host}.(none)"


def committer_identity(
    env: Mapping[str, str] | None = None,
    config: RepoConfig | None = None,
    clock: Callable[[], float] = _time.time,
) -> Identity:
    """The committer of a reflog entry: GIT_COMMITTER_* first, then committer.* and user.*
    config, then EMAIL, then git's fallback (passwd name, user@host)."""
    env = os.environ if env is None else env
    config = config or RepoConfig()
    login, gecos = _passwd()
    name = env.get("GIT_COMMITTER_NAME") or config.committer_name or config.user_name
    if name is None:
        name = gecos.strip()
    mail = env.get("GIT_COMMITTER_EMAIL") or config.committer_email or config.user_email
    if mail is None:
        mail = env.get("EMAIL") or f"{login}@{_domain()}"
    name_b = strip_crud(name) or strip_crud(login)
    date = env.get("GIT_COMMITTER_DATE")
    if date:
        epoch, tz = parse_date(date)
    else:
        epoch = int(clock())
        tz = _local_tz(epoch)
    return Identity(name_b, strip_crud(mail.strip()), epoch, tz)
