"""git's date parsing for expiry times and reflog selectors (``2.weeks.ago``, ISO, ``@epoch``).

The rules are git 2.55's ``date.c`` (``parse_expiry_date``, ``approxidate``); the reflog
commands of the CLI and ``RefStore.expire_reflog``'s callers read their times with them."""

from __future__ import annotations

from ._refs._approxidate import (
    EXPIRE_ALL,
    approxidate,
    approxidate_careful,
    now_for_dates,
    parse_date_basic,
    parse_expiry_date,
)

__all__ = [
    "EXPIRE_ALL",
    "approxidate",
    "approxidate_careful",
    "now_for_dates",
    "parse_date_basic",
    "parse_expiry_date",
]
