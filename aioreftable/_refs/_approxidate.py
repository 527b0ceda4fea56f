"""git's date parsing for expiry times (date.c of git 2.55: parse_expiry_date, approxidate)."""

from __future__ import annotations

import contextlib
import os
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ._ident import DateError

__all__ = [
    "EXPIRE_ALL",
    "approxidate",
    "approxidate_careful",
    "now_for_dates",
    "parse_date_basic",
    "parse_expiry_date",
]

#: git's TIME_MAX for ``now``/``all``: every entry is older.
EXPIRE_ALL = 2**64 - 1
# 2099-12-31T23:59:59Z, the last second git's own arithmetic accepts
_TIMESTAMP_MAX = ((2100 - 1970) * 365 + 32) * 24 * 60 * 60 - 1

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip
_WEEKDAYS = ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays",
             "Saturdays")  # fmt: skip
# name, hours east of UTC, summer time (git adds the hour: "we like summer")
_ZONES = (
    ("IDLW", -12, 0), ("NT", -11, 0), ("CAT", -10, 0), ("HST", -10, 0), ("HDT", -10, 1),
    ("YST", -9, 0), ("YDT", -9, 1), ("PST", -8, 0), ("PDT", -8, 1), ("MST", -7, 0),
    ("MDT", -7, 1), ("CST", -6, 0), ("CDT", -6, 1), ("EST", -5, 0), ("EDT", -5, 1),
    ("AST", -3, 0), ("ADT", -3, 1), ("WAT", -1, 0), ("GMT", 0, 0), ("UTC", 0, 0),
    ("Z", 0, 0), ("WET", 0, 0), ("BST", 0, 1), ("CET", 1, 0), ("MET", 1, 0),
    ("MEWT", 1, 0), ("MEST", 1, 1), ("CEST", 1, 1), ("MESZ", 1, 1), ("FWT", 1, 0),
    ("FST", 1, 1), ("EET", 2, 0), ("EEST", 2, 1), ("WAST", 7, 0), ("WADT", 7, 1),
    ("CCT", 8, 0), ("JST", 9, 0), ("EAST", 10, 0), ("EADT", 10, 1), ("GST", 10, 0),
    ("NZT", 12, 0), ("NZST", 12, 0), ("NZDT", 12, 1), ("IDLE", 12, 0),
)  # fmt: skip
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            "ten")  # fmt: skip
_UNITS = (("seconds", 1), ("minutes", 60), ("hours", 3600), ("days", 86400),
          ("weeks", 7 * 86400))  # fmt: skip
_MDAYS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


@dataclass
class _Tm:
    """C's struct tm as date.c uses it: -1 marks a field not yet known."""

    year: int = -1  # years since 1900
    mon: int = -1  # 0..11
    mday: int = -1
    hour: int = -1
    min: int = -1
    sec: int = -1
    wday: int = 0
    isdst: int = -1

    @classmethod
    def local(cls, epoch: int) -> _Tm:
        t = _time.localtime(epoch)
        return cls(t.tm_year - 1900, t.tm_mon - 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                   (t.tm_wday + 1) % 7, t.tm_isdst)  # fmt: skip

    @classmethod
    def utc(cls, epoch: int) -> _Tm:
        t = _time.gmtime(epoch)
        return cls(t.tm_year - 1900, t.tm_mon - 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                   (t.tm_wday + 1) % 7, 0)  # fmt: skip

    def mktime(self) -> int:
        """C's mktime (local time, fields normalized); -1 when it cannot be represented."""
        fields = (self.year + 1900, self.mon + 1, self.mday, self.hour, self.min, self.sec,
                  (self.wday + 6) % 7, 1, self.isdst)  # fmt: skip
        try:
            return int(_time.mktime(fields))
        except (OverflowError, ValueError):
            return -1

    def to_time_t(self) -> int:
        """date.c's tm_to_time_t: UTC, no normalization, -1 outside 1970..2099."""
        year, month, day = self.year - 70, self.mon, self.mday
        if year < 0 or year > 129 or month < 0 or month > 11:
            return -1
        if month < 2 or (year + 2) % 4:
            day -= 1
        if self.hour < 0 or self.min < 0 or self.sec < 0:
            return -1
        days = year * 365 + (year + 1) // 4 + _MDAYS[month] + day
        return days * 86400 + self.hour * 3600 + self.min * 60 + self.sec


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _isalpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _at(s: str, i: int) -> str:
    """The character at ``i``, or "" past the end (C's terminating NUL)."""
    return s[i] if 0 <= i < len(s) else ""


def _number(s: str, i: int) -> tuple[int, int]:
    """strtoul at ``i`` (no sign, no spaces here): the value and the index after it."""
    j = i
    while _isdigit(_at(s, j)):
        j += 1
    return (int(s[i:j]) if j > i else 0), j


def _match_string(s: str, i: int, word: str) -> int:
    """date.c's match_string: how many characters of ``s[i:]`` match ``word`` (case
    folded) up to the first character that is not alphanumeric; 0 on a mismatch."""
    n = 0
    while i + n < len(s):
        c = s[i + n]
        w = word[n] if n < len(word) else ""
        if c == w or c.upper() == w.upper():
            n += 1
            continue
        if not c.isascii() or not c.isalnum():
            break
        return 0
    return n


def _set_date(year: int, month: int, day: int, now_tm: _Tm | None, now: int, tm: _Tm) -> int:
    if not (0 < month < 13 and 0 < day < 32):
        return -1
    r = replace(tm) if now_tm is not None else tm
    r.mon, r.mday = month - 1, day
    if year == -1:
        if now_tm is None:
            return 1
        r.year = now_tm.year
    elif 1970 <= year < 2100:
        r.year = year - 1900
    elif 70 < year < 100:
        r.year = year
    elif year < 38:
        r.year = year + 100
    else:
        return -1
    if now_tm is None:
        return 0
    specified = r.to_time_t()
    if specified != -1 and now + 10 * 86400 < specified:
        return -1  # not more than ten days into the future
    tm.mon, tm.mday = r.mon, r.mday
    if year != -1:
        tm.year = r.year
    return 0


def _set_time(hour: int, minute: int, second: int, tm: _Tm) -> int:
    if 0 <= hour <= 24 and 0 <= minute < 60 and 0 <= second <= 60:
        tm.hour, tm.min, tm.sec = hour, minute, second
        return 0
    return -1


def _date_known(tm: _Tm) -> bool:
    return tm.year != -1 and tm.mon != -1 and tm.mday != -1


def _multi_number(num: int, sep: str, s: str, start: int, end: int, tm: _Tm, now: int) -> int:
    """date.c's match_multi_number: ``num<sep>num2[<sep>num3]`` as a time or a date; the
    length matched from ``start``, 0 for none."""
    num2, end = _number(s, end + 1)
    num3 = -1
    if _at(s, end) == sep and _isdigit(_at(s, end + 1)):
        num3, end = _number(s, end + 1)
    if sep == ":":
        if _set_time(num, num2, max(num3, 0), tm) != 0:
            return 0
        if _at(s, end) == "." and _isdigit(_at(s, end + 1)) and _date_known(tm):
            _, end = _number(s, end + 1)  # a fraction of a second, dropped
        return end - start
    if not now:
        now = int(_time.time())
    refuse_future = _Tm.utc(now)
    if num > 70 and (
        _set_date(num, num2, num3, None, now, tm) == 0
        or _set_date(num, num3, num2, None, now, tm) == 0
    ):
        return end - start
    if sep != "." and _set_date(num3, num, num2, refuse_future, now, tm) == 0:
        return end - start
    if _set_date(num3, num2, num, refuse_future, now, tm) == 0:
        return end - start
    if sep == "." and _set_date(num3, num, num2, refuse_future, now, tm) == 0:
        return end - start
    return 0


def _nodate(tm: _Tm) -> bool:
    return all(v < 0 for v in (tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec))


class _Basic:
    """State of one parse_date_basic run."""

    def __init__(self) -> None:
        self.tm = _Tm()
        self.offset = -1  # minutes east of UTC, -1 unknown
        self.gmt = False

    def alpha(self, s: str, i: int) -> int:
        tm = self.tm
        for k, name in enumerate(_MONTHS):
            match = _match_string(s, i, name)
            if match >= 3:
                tm.mon = k
                return match
        for k, name in enumerate(_WEEKDAYS):
            match = _match_string(s, i, name)
            if match >= 3:
                tm.wday = k
                return match
        for name, hours, dst in _ZONES:
            match = _match_string(s, i, name)
            if match >= 3 or match == len(name):
                if self.offset == -1:
                    self.offset = 60 * (hours + dst)
                return match
        if _match_string(s, i, "PM") == 2:
            tm.hour = tm.hour % 12 + 12
            return 2
        if _match_string(s, i, "AM") == 2:
            tm.hour = tm.hour % 12
            return 2
        if s[i] == "T" and _isdigit(_at(s, i + 1)) and tm.hour == -1:
            tm.min = tm.sec = 0
            return 1
        n = 1
        while _isalpha(_at(s, i + n)):
            n += 1
        return n

    def digit(self, s: str, i: int) -> int:
        tm = self.tm
        num, end = _number(s, i)
        if num >= 100000000 and _nodate(tm):
            try:
                self.tm = _Tm.utc(num)
            except (OverflowError, OSError, ValueError):
                pass
            else:
                self.gmt = True
                return end - i
        if _at(s, end) in (":", ".", "/", "-") and _isdigit(_at(s, end + 1)):
            match = _multi_number(num, s[end], s, i, end, tm, 0)
            if match:
                return match
        n = end - i
        if n in (8, 6):
            a, b, c = num // 10000, num % 10000 // 100, num % 100
            if n == 8:
                _set_date(a, b, c, None, int(_time.time()), tm)
            elif _set_time(a, b, c, tm) == 0 and _at(s, end) == "." and _isdigit(_at(s, end + 1)):
                _, end = _number(s, end + 1)
            return end - i
        if tm.hour == -1 and tm.min == 0 and tm.sec == 0:  # maybe ISO 8601's HHMM or HH
            a, b = num, 0
            if n == 4:
                a, b = num // 100, num % 100
            if n in (4, 2) and not _nodate(tm) and _set_time(a, b, 0, tm) == 0:
                return n
            tm.min = tm.sec = -1
        if n == 4:
            if num <= 1400 and self.offset == -1:
                self.offset = num // 100 * 60 + num % 100
            elif 1900 < num < 2100:
                tm.year = num - 1900
            return n
        if n > 2:
            return n
        if 0 < num < 32 and tm.mday < 0:
            tm.mday = num
            return n
        if n == 2 and tm.year < 0:
            if num < 10 and tm.mday >= 0:
                tm.year = num + 100
                return n
            if num >= 70:
                tm.year = num
                return n
        if 0 < num < 13 and tm.mon < 0:
            tm.mon = num - 1
        return n

    def zone(self, s: str, i: int) -> int:
        hour, end = _number(s, i + 1)
        n = end - (i + 1)
        minute = 0
        if n == 4:
            hour, minute = hour // 100, hour % 100
        elif n != 2:
            minute = 99
        elif _at(s, end) == ":":
            minute, end = _number(s, end + 1)
            if end - (i + 1) != 5:
                minute = 99
        if minute < 60 and hour < 24:
            offset = hour * 60 + minute
            self.offset = -offset if s[i] == "-" else offset
        return end - i


def _object_header_date(s: str) -> int | None:
    """``<epoch> <+-hhmm>`` alone (after ``@``): the epoch."""
    stamp, end = _number(s, 0)
    if end == 0 or _at(s, end) != " " or _at(s, end + 1) not in ("+", "-"):
        return None
    start = end + 2
    digits = start
    if _at(s, digits) in ("+", "-"):
        return None
    _, digits = _number(s, start)
    if _at(s, digits) not in ("", "\n") or digits != start + 4:
        return None
    return stamp


def parse_date_basic(text: str) -> int | None:
    """date.c's parse_date_basic: the epoch of a date with its parts spelled out (ISO 8601,
    RFC 2822, ``@<epoch> <tz>``, an epoch of nine or more digits...); None if it is not one."""
    if text.startswith("@"):
        stamp = _object_header_date(text[1:])
        if stamp is not None:
            return stamp
    state = _Basic()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\n":
            break
        match = 0
        if _isalpha(c):
            match = state.alpha(text, i)
        elif _isdigit(c):
            match = state.digit(text, i)
        elif c in "+-" and _isdigit(_at(text, i + 1)):
            match = state.zone(text, i)
        i += match or 1
    tm = state.tm
    stamp = tm.to_time_t()
    if stamp == -1:
        return None
    offset = state.offset
    if offset == -1:
        probe = replace(tm, isdst=-1)
        local = probe.mktime()
        offset = (stamp - local) // 60 if stamp > local else -((local - stamp) // 60)
    if not state.gmt:
        if offset > 0 and offset * 60 > stamp:
            return None
        if offset < 0 and -offset * 60 > _TIMESTAMP_MAX - stamp:
            return None
        stamp -= offset * 60
    return stamp


class _Approx:
    """State of one approxidate_str run (relative dates, in local time)."""

    def __init__(self, now: int):
        self.now_epoch = now
        self.tm = _Tm.local(now)
        self.now = replace(self.tm)
        self.tm.year = self.tm.mon = self.tm.mday = -1
        self.num = 0
        self.touched = False

    def update(self, sec: int) -> int:
        """date.c's update_tm: fill unknown fields from now, go ``sec`` back."""
        tm, now = self.tm, self.now
        if tm.mday < 0:
            offset = tm.mday + 1
            if sec == 0 and offset < 0:
                sec = -offset * 86400  # -2 is yesterday, -3 the day before...
            tm.mday = now.mday
        if tm.mon < 0:
            tm.mon = now.mon
        if tm.year < 0:
            tm.year = now.year
            if tm.mon > now.mon:
                tm.year -= 1
        n = tm.mktime() - sec
        with contextlib.suppress(OverflowError, OSError, ValueError):
            self.tm = _Tm.local(n)
        return n

    def pending(self) -> None:
        number, self.num = self.num, 0
        if not number:
            return
        tm = self.tm
        if tm.mday < 0 and number < 32:
            tm.mday = number
        elif tm.mon < 0 and number < 13:
            tm.mon = number - 1
        elif tm.year < 0:
            if 1969 < number < 2100:
                tm.year = number - 1900
            elif 69 < number < 100:
                tm.year = number
            elif number < 38:
                tm.year = 100 + number

    def at_hour(self, hour: int) -> None:
        tm = self.tm
        if tm.mday < 0 and tm.hour < hour:
            tm.mday = -2  # yesterday's, resolved by update()
        tm.hour, tm.min, tm.sec = hour, 0, 0

    def meridiem(self, add: int) -> None:
        tm = self.tm
        hour, n = tm.hour, self.num
        self.num = 0
        if n:
            hour = n
            tm.min = tm.sec = 0
        tm.hour = hour % 12 + add

    def special(self, word: str) -> None:
        if word == "yesterday":
            self.num = 0
            self.tm.mday = -1
            self.update(86400)
        elif word in ("noon", "midnight", "tea"):
            self.pending()
            self.at_hour({"noon": 12, "midnight": 0, "tea": 17}[word])
        elif word == "PM":
            self.meridiem(12)
        elif word == "AM":
            self.meridiem(0)
        elif word == "never":
            self.tm = _Tm.local(0)
            self.num = 0
        elif word == "now":
            self.num = 0
            self.update(0)
        else:  # today
            tm, now = self.tm, self.now
            if (tm.hour, tm.min, tm.sec) == (now.hour, now.min, now.sec):
                self.at_hour(0)
            self.num = 0
            self.tm.mday = -1
            self.update(0)

    def alpha(self, s: str, i: int) -> int:
        end = i + 1
        while _isalpha(_at(s, end)):
            end += 1
        tm = self.tm
        for k, name in enumerate(_MONTHS):
            if _match_string(s, i, name) >= 3:
                tm.mon = k
                self.touched = True
                return end
        for word in ("yesterday", "noon", "midnight", "tea", "PM", "AM", "never", "now", "today"):
            if _match_string(s, i, word) == len(word):
                self.special(word)
                self.touched = True
                return end
        if not self.num:
            for k in range(1, 11):
                if _match_string(s, i, _NUMBERS[k]) == len(_NUMBERS[k]):
                    self.num = k
                    self.touched = True
                    return end
            if _match_string(s, i, "last") == 4:
                self.num = 1
                self.touched = True
            return end
        for unit, length in _UNITS:
            if _match_string(s, i, unit) >= len(unit) - 1:
                self.update(length * self.num)
                self.num = 0
                self.touched = True
                return end
        for k, name in enumerate(_WEEKDAYS):
            if _match_string(s, i, name) >= 3:
                n = self.num - 1
                self.num = 0
                diff = self.tm.wday - k
                if diff <= 0:
                    n += 1
                diff += 7 * n
                self.update(diff * 86400)
                self.touched = True
                return end
        if _match_string(s, i, "months") >= 5:
            self.update(0)
            n = self.tm.mon - self.num
            self.num = 0
            while n < 0:
                n += 12
                self.tm.year -= 1
            self.tm.mon = n
            self.touched = True
            return end
        if _match_string(s, i, "years") >= 4:
            self.update(0)
            self.tm.year -= self.num
            self.num = 0
            self.touched = True
        return end

    def digit(self, s: str, i: int) -> int:
        number, end = _number(s, i)
        if _at(s, end) in (":", ".", "/", "-") and _isdigit(_at(s, end + 1)):
            match = _multi_number(number, s[end], s, i, end, self.tm, self.now_epoch)
            if match:
                return i + match
        if s[i] != "0" or end - i <= 2:  # zero-padding only for small numbers
            self.num = _c_int(number)
        return end


def _c_int(value: int) -> int:
    """The value as C's 32-bit int keeps it."""
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def _approxidate_str(text: str, now: int) -> tuple[int, bool]:
    state = _Approx(now)
    i = 0
    while i < len(text):
        c = text[i]
        if _isdigit(c):
            state.pending()
            i = state.digit(text, i)
            state.touched = True
            continue
        if _isalpha(c):
            i = state.alpha(text, i)
            continue
        i += 1
    state.pending()
    return state.update(0), state.touched


def approxidate_careful(text: str, now: int) -> int:
    """git's approxidate_careful: a spelled-out date, else a relative one (``2.weeks.ago``,
    ``yesterday``, ``last friday``...) from ``now``; DateError when nothing was recognized."""
    stamp = parse_date_basic(text)
    if stamp is not None:
        return stamp
    stamp, touched = _approxidate_str(text, now)
    if not touched:
        raise DateError(f"invalid date format: {text}")
    return stamp


def approxidate(text: str, now: int) -> int:
    """git's approxidate: as :func:`approxidate_careful`, but what it does not recognize
    is ``now`` (``reflog delete ref@{<date>}`` reads its date so)."""
    stamp = parse_date_basic(text)
    if stamp is not None:
        return stamp
    return _approxidate_str(text, now)[0]


def parse_expiry_date(text: str, now: int) -> int:
    """git's parse_expiry_date: ``never``/``false`` are 0 (nothing expires), ``now``/``all``
    are :data:`EXPIRE_ALL`, anything else :func:`approxidate_careful`."""
    if text in ("never", "false"):
        return 0
    if text in ("all", "now"):
        return EXPIRE_ALL
    return approxidate_careful(text, now)


def now_for_dates(
    env: Mapping[str, str] | None = None, clock: Callable[[], float] | None = None
) -> int:
    """The "now" of relative dates: GIT_TEST_DATE_NOW when set (as git's get_time reads
    it, with atoi), else the clock."""
    env = os.environ if env is None else env
    fixed = env.get("GIT_TEST_DATE_NOW")
    if fixed is not None:
        return _atoi(fixed)
    return int((clock or _time.time)())


def _atoi(text: str) -> int:
    s = text.lstrip(" \t\n\r\f\v")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    value, _ = _number(s, 0)
    return _c_int(sign * value)
