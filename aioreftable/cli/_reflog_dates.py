"""git's show_date (date.c) for reflog selectors: the --date modes reflog show supports."""

from __future__ import annotations

import time

__all__ = ["DATE_MODES", "parse_date_mode", "show_date"]

_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: git's names of the modes supported here (prefixes as parse_date_type reads them)
DATE_MODES = ("relative", "iso8601-strict", "iso-strict", "iso8601", "iso", "rfc2822", "rfc",
              "short", "default", "human", "raw", "unix")  # fmt: skip
_CANONICAL = {"iso8601-strict": "iso-strict", "iso8601": "iso", "rfc2822": "rfc"}


class DateModeError(Exception):
    """git's ``unknown date format``."""


class DateModeUnsupported(Exception):
    """A mode git has that this module does not implement."""


def parse_date_mode(text: str) -> str:
    """git's parse_date_format (not on a terminal: ``auto:X`` is ``default``): the mode's
    name, ``-local`` appended when given."""
    if text.startswith("auto:"):
        text = "default"
    if text == "local":
        text = "default-local"
    if text.startswith("format"):
        raise DateModeUnsupported(text)
    for name in DATE_MODES:
        if text.startswith(name):
            rest = text[len(name) :]
            if rest not in ("", "-local"):
                raise DateModeError(text)
            return _CANONICAL.get(name, name) + rest
    raise DateModeError(text)


def _tz_minutes(tz: int) -> int:
    minutes = abs(tz) // 100 * 60 + abs(tz) % 100
    return -minutes if tz < 0 else minutes


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def show_date_relative(epoch: int, now: int) -> str:
    """git's show_date_relative (English)."""
    if now < epoch:
        return "in the future"
    diff = now - epoch
    if diff < 90:
        return _plural(diff, "second") + " ago"
    diff = (diff + 30) // 60
    if diff < 90:
        return _plural(diff, "minute") + " ago"
    diff = (diff + 30) // 60
    if diff < 36:
        return _plural(diff, "hour") + " ago"
    diff = (diff + 12) // 24
    if diff < 14:
        return _plural(diff, "day") + " ago"
    if diff < 70:
        return _plural((diff + 3) // 7, "week") + " ago"
    if diff < 365:
        return _plural((diff + 15) // 30, "month") + " ago"
    if diff < 1825:
        total = (diff * 12 * 2 + 365) // (365 * 2)
        years, months = divmod(total, 12)
        if months:
            return f"{_plural(years, 'year')}, {_plural(months, 'month')} ago"
        return _plural(years, "year") + " ago"
    return _plural((diff + 183) // 365, "year") + " ago"


def _local_tz(epoch: int) -> int:
    """git's local_tzoffset: the local zone at ``epoch`` as HHMM."""
    offset = (time.localtime(epoch).tm_gmtoff or 0) // 60
    sign = -1 if offset < 0 else 1
    return sign * (abs(offset) // 60 * 100 + abs(offset) % 60)


def show_date(epoch: int, tz: int, mode: str, now: int) -> str:
    """git's show_date for ``mode`` (one of parse_date_mode's results); ``tz`` is HHMM."""
    local = mode.endswith("-local")
    mode = mode.removesuffix("-local")
    if mode == "unix":
        return str(epoch)
    if local:
        tz = _local_tz(epoch)
    if mode == "raw":
        return f"{epoch} {tz:+05d}"
    if mode == "relative":
        return show_date_relative(epoch, now)
    try:
        t = time.gmtime(epoch + _tz_minutes(tz) * 60)
    except (OverflowError, OSError, ValueError):
        t, tz = time.gmtime(0), 0
    date = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    wday, month = _WEEKDAYS[(t.tm_wday + 1) % 7], _MONTHS[t.tm_mon - 1]
    if mode == "short":
        return date
    if mode == "iso":
        return f"{date} {clock} {tz:+05d}"
    if mode == "iso-strict":
        if tz == 0:
            return f"{date}T{clock}Z"
        return f"{date}T{clock}{'+' if tz >= 0 else '-'}{abs(tz) // 100:02d}:{abs(tz) % 100:02d}"
    if mode == "rfc":
        return f"{wday}, {t.tm_mday} {month} {t.tm_year} {clock} {tz:+05d}"
    return _normal(epoch, t, tz, local, now if mode == "human" else None)


def _normal(epoch: int, t: time.struct_time, tz: int, local: bool, now: int | None) -> str:
    """git's show_date_normal; ``now`` only for ``human`` (parts hidden near now)."""
    hide_tz = local
    hide_year = hide_date = hide_wday = hide_time = hide_seconds = False
    if now is not None:
        human = time.localtime(now)
        hide_tz = local or tz == _local_tz(now)
        hide_year = t.tm_year == human.tm_year
        if hide_year and t.tm_mon == human.tm_mon:
            if t.tm_mday > human.tm_mday:
                pass  # a future date: think time zones
            elif t.tm_mday == human.tm_mday:
                hide_date = hide_wday = True
            elif t.tm_mday + 5 > human.tm_mday:
                hide_date = True  # just the weekday a few days ago
        if hide_wday:
            return show_date_relative(epoch, now)
        hide_seconds = True
        hide_tz = hide_tz or not hide_date
        hide_wday = hide_time = not hide_year
    out = ""
    if not hide_wday:
        out += f"{_WEEKDAYS[(t.tm_wday + 1) % 7]} "
    if not hide_date:
        out += f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday} "
    if not hide_time:
        out += f"{t.tm_hour:02d}:{t.tm_min:02d}"
        if not hide_seconds:
            out += f":{t.tm_sec:02d}"
    else:
        out = out.rstrip()
    if not hide_year:
        out += f" {t.tm_year}"
    if not hide_tz:
        out += f" {tz:+05d}"
    return out
