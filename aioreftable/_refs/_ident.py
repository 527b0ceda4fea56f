"""Committer identity and dates for reflog entries, resolved the way git's ident.c does."""

from __future__ import annotations

import calendar
import email.utils
import os
import re
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio
import anyio.to_thread

from .. import _repo_io as repo_io
from .._errors import ReftableError
from ._config import RepoConfig

__all__ = [
    "Committer",
    "CommitterSource",
    "DateError",
    "Identity",
    "committer_identity",
    "parse_date",
    "resolve_committer",
    "strip_crud",
]


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
    """(login name, gecos full name) of the current user (git's xgetpwuid_self, copy_gecos)."""
    entry = repo_io.passwd_entry()
    if entry is None:
        return "unknown", "Unknown"
    login, gecos = entry[0], entry[1].split(",", 1)[0]
    if "&" in gecos:
        gecos = gecos.replace("&", login[:1].upper() + login[1:])
    return login, gecos


def _read_mailname() -> str | None:
    """git's add_mailname_host: the first line of /etc/mailname, None without one."""
    line = repo_io.read_first_line("/etc/mailname")
    if not line:
        return None
    return line.rstrip(b"\n").rstrip(b"\r").decode("utf-8", "surrogateescape")


def _domain() -> str:
    """git's mail host: /etc/mailname, else a dotted host name, else its canonical name
    (getaddrinfo), else ``<host>.(none)``."""
    mailname = _read_mailname()
    if mailname is not None:
        return mailname
    host = repo_io.host_name()
    if "." in host:
        return host
    canonical = repo_io.canonical_host_name(host)
    if canonical is not None and "." in canonical:
        return canonical
    return f"{host}.(none)"


def _now() -> float:
    return _time.time()


@dataclass(frozen=True, slots=True)
class Committer:
    """The committer of reflog entries as resolved once per store: name, email and the
    fixed date of GIT_COMMITTER_DATE (None: the time of each commit)."""

    name: bytes
    email: bytes
    date: tuple[int, int] | None = None

    def at(self, clock: Callable[[], float] | None = None) -> Identity:
        """The identity of one entry written now (or at GIT_COMMITTER_DATE)."""
        if self.date is not None:
            epoch, tz = self.date
        else:
            epoch = int((clock or _now)())
            tz = _local_tz(epoch)
        return Identity(self.name, self.email, epoch, tz)


def resolve_committer(
    env: Mapping[str, str] | None = None, config: RepoConfig | None = None
) -> Committer:
    """git's git_committer_info(0): GIT_COMMITTER_NAME/EMAIL (even when empty), then
    committer.* and user.* config, then EMAIL, then the passwd entry and mail host. Blocking
    (passwd, /etc/mailname, DNS), so the store runs it once, in a worker thread."""
    env = os.environ if env is None else env
    config = config or RepoConfig()
    entry: tuple[str, str] | None = None

    def passwd() -> tuple[str, str]:  # looked up at most once, and only when needed
        nonlocal entry
        entry = entry or _passwd()
        return entry

    # any name/email key in the config (even author.* or an empty value) turns off the
    # fallbacks, as git's ident_config_given does
    names = (config.committer_name, config.user_name, config.author_name)
    mails = (config.committer_email, config.user_email, config.author_email)
    name = env.get("GIT_COMMITTER_NAME")
    if name is None:
        name = config.committer_name or config.user_name
    if name is None:
        name = "" if any(n is not None for n in names) else passwd()[1].strip()
    mail = env.get("GIT_COMMITTER_EMAIL")
    if mail is None:
        mail = config.committer_email or config.user_email
    if mail is None:
        if any(m is not None for m in mails):
            mail = ""
        elif env.get("EMAIL"):
            mail = env["EMAIL"]
        else:
            mail = f"{passwd()[0]}@{_domain()}"
    name_b = strip_crud(name)
    if not name:  # git: an empty name becomes the login name
        name_b = strip_crud(passwd()[0])
    date = env.get("GIT_COMMITTER_DATE")
    return Committer(name_b, strip_crud(mail), parse_date(date) if date else None)


class CommitterSource:
    """A store's committer, resolved on first use in a worker thread and then kept (git
    reads the identity once per process; a store is our process)."""

    def __init__(self, env: Mapping[str, str], config: RepoConfig):
        self._env = env
        self._config = config
        self._committer: Committer | None = None
        self._lock = anyio.Lock()

    async def get(self) -> Committer:
        if self._committer is None:
            async with self._lock:
                if self._committer is None:
                    self._committer = await anyio.to_thread.run_sync(
                        resolve_committer, self._env, self._config
                    )
        return self._committer


def committer_identity(
    env: Mapping[str, str] | None = None,
    config: RepoConfig | None = None,
    clock: Callable[[], float] | None = None,
) -> Identity:
    """The committer of one reflog entry written now (blocking; see :func:`resolve_committer`)."""
    return resolve_committer(env, config).at(clock)
