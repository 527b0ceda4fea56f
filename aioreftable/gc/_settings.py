"""GcSettings: every knob of the gc daemon, its TOML file and duration parsing."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import UsageError

__all__ = ["GcSettings", "RepositoryPolicy", "load_settings", "parse_duration"]

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*\.?\s*([a-z]*)\s*")


def parse_duration(value: object, what: str) -> float | None:
    """Seconds from ``30``, ``"90d"``, ``"2.weeks"`` (git's spelling), ``"12h"``; ``"never"``
    or ``"off"`` is None. UsageError naming ``what`` for anything else."""
    if isinstance(value, bool):
        raise UsageError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("never", "off", "false", "none"):
            return None
        m = _DURATION.fullmatch(text)
        if m is None or (m[2] not in _UNITS and m[2] != ""):
            raise UsageError(f"{what}: cannot parse duration {value!r} (e.g. 30, '90d', '12h')")
        seconds = float(m[1]) * _UNITS.get(m[2], 1)
    else:
        raise UsageError(f"{what}: expected a duration, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"{what}: a duration must be >= 0, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class RepositoryPolicy:
    """Per-repository overrides: ``match`` is a glob on the git dir's path."""

    match: str
    reflog_expire: float | None = None
    full_compaction_interval: float | None = None
    enabled: bool = True

    def applies_to(self, git_dir: str) -> bool:
        return fnmatch.fnmatchcase(git_dir, self.match)


@dataclass(frozen=True, slots=True)
class GcSettings:
    """Settings of :func:`aioreftable.gc.serve_gc` and ``aioreftable gc --daemon``.

    Durations are seconds; None turns a schedule off. Reflog expiry is off unless
    ``reflog_expire`` is set (it deletes history)."""

    roots: tuple[str, ...] = ()
    watch: str = "auto"  # "auto" (inotify, polling if that fails), "inotify" or "poll"
    poll_interval: float = 2.0  # polling fallback: stat of every tables.list
    debounce: float = 0.2  # inotify: the longest a burst of changes is grouped
    sweep_interval: float = 60.0  # every stack re-checked (missed events, locks, schedules)
    rescan_interval: float = 60.0  # the roots walked again for new repositories
    max_depth: int = 8  # directories below a root searched for repositories
    concurrency: int = 4  # stacks worked on at the same time
    lock_timeout: float = 0.05  # seconds the daemon polls a lock held by another process
    retry_delay: float = 0.25  # after giving up a step: first delay, doubling up to the max
    max_retry_delay: float = 60.0
    max_tables: int = 32  # more tables than this: full compaction (0: never)
    tables_per_step: int = 256  # the most tables one compaction step locks and merges
    step_pause: float = 0.05  # between two compaction steps of one stack
    compaction_interval: float = 0.5  # a stack is compacted at most this often
    quiet_period: float = 0.3  # wait until tables.list has not changed for this long ...
    busy_tables: int = 16  # ... unless a stack being written has this many tables
    full_compaction_interval: float | None = None  # full compaction on a schedule
    clean: bool = True  # delete stale tables after compacting
    reflog_expire: float | None = None  # prune reflog entries older than this
    reflog_expire_interval: float = 86400.0  # how often a repository's reflogs are expired
    stale_lock_age: float = 600.0  # a lock older than this is reported as stale
    break_stale_locks: bool = False  # remove stale tables.list.lock nobody holds open
    shutdown_timeout: float = 5.0  # SIGTERM: finish or abandon the current steps within this
    metrics_port: int | None = None  # HTTP /metrics on 127.0.0.1
    metrics_file: str | None = None  # node_exporter textfile
    metrics_interval: float = 15.0  # how often the textfile is rewritten
    log_format: str = "text"  # or "json"
    policies: tuple[RepositoryPolicy, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.watch not in ("auto", "inotify", "poll"):
            raise UsageError(f"watch must be auto, inotify or poll, not {self.watch!r}")
        if self.log_format not in ("text", "json"):
            raise UsageError(f"log_format must be text or json, not {self.log_format!r}")
        if self.concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        if self.tables_per_step < 2:
            raise UsageError("tables_per_step must be at least 2")
        if self.max_depth < 0 or self.max_tables < 0:
            raise UsageError("max_depth and max_tables must be >= 0")
        for name in ("poll_interval", "sweep_interval", "rescan_interval", "metrics_interval"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be > 0")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise UsageError(f"metrics_port {self.metrics_port} is not a port")

    def policy_for(self, git_dir: str) -> RepositoryPolicy:
        """The last matching override, else the daemon-wide values."""
        found = RepositoryPolicy("*", self.reflog_expire, self.full_compaction_interval)
        for policy in self.policies:
            if policy.applies_to(git_dir):
                found = policy
        return found


_DURATIONS = {
    "poll_interval",
    "debounce",
    "sweep_interval",
    "rescan_interval",
    "lock_timeout",
    "retry_delay",
    "step_pause",
    "compaction_interval",
    "quiet_period",
    "max_retry_delay",
    "full_compaction_interval",
    "reflog_expire",
    "reflog_expire_interval",
    "stale_lock_age",
    "shutdown_timeout",
    "metrics_interval",
}
_OPTIONAL = {"full_compaction_interval", "reflog_expire", "metrics_port", "metrics_file"}


def _convert(key: str, value: Any, where: str) -> Any:
    if key in _DURATIONS:
        seconds = parse_duration(value, f"{where}{key}")
        if seconds is None and key not in _OPTIONAL:
            raise UsageError(f"{where}{key} cannot be off")
        return seconds
    if key == "roots":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{where}roots must be a list of paths")
        return tuple(value)
    return value


def settings_from_mapping(data: Mapping[str, Any], base: GcSettings | None = None) -> GcSettings:
    """Settings from a mapping (the TOML file's ``[gc]`` table or the top level)."""
    names = {f.name: f for f in dataclasses.fields(GcSettings)}
    values: dict[str, Any] = {}
    policies: list[RepositoryPolicy] = []
    for key, value in data.items():
        key = key.replace("-", "_")
        if key in ("repository", "repositories"):
            policies.extend(_policies(value))
            continue
        if key not in names or key == "policies":
            raise UsageError(f"unknown setting {key!r} in the configuration")
        values[key] = _convert(key, value, "")
        expected = names[key].type
        _check_type(key, values[key], str(expected))
    if policies:
        values["policies"] = tuple(policies)
    return dataclasses.replace(base or GcSettings(), **values)


def _check_type(key: str, value: Any, annotation: str) -> None:
    ok = True
    if annotation.startswith("int"):
        ok = (isinstance(value, int) and not isinstance(value, bool)) or value is None
    elif annotation == "bool":
        ok = isinstance(value, bool)
    elif annotation.startswith("str"):
        ok = isinstance(value, str) or (value is None and "None" in annotation)
    if not ok:
        raise UsageError(f"setting {key!r}: {value!r} is not a {annotation}")


def _policies(value: Any) -> list[RepositoryPolicy]:
    if not isinstance(value, list):
        raise UsageError("[[repository]] entries must be tables with a 'match' glob")
    out = []
    for i, item in enumerate(value):
        where = f"[[repository]] #{i + 1}: "
        if not isinstance(item, dict) or not isinstance(item.get("match"), str):
            raise UsageError(f"{where}needs a 'match' glob")
        kwargs: dict[str, Any] = {"match": item["match"]}
        for key, raw in item.items():
            key = key.replace("-", "_")
            if key == "match":
                continue
            if key in ("reflog_expire", "full_compaction_interval"):
                kwargs[key] = parse_duration(raw, where + key)
            elif key == "enabled" and isinstance(raw, bool):
                kwargs[key] = raw
            else:
                raise UsageError(f"{where}unknown or invalid setting {key!r}")
        out.append(RepositoryPolicy(**kwargs))
    return out


def load_settings(text: str, base: GcSettings | None = None) -> GcSettings:
    """Settings from TOML text: keys at the top level or in a ``[gc]`` table, per-repository
    overrides in ``[[repository]]`` tables (``match`` glob on the git dir)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"invalid TOML: {exc}") from None
    gc = data.pop("gc", None)
    if isinstance(gc, dict):
        data = {**gc, **data}
    return settings_from_mapping(data, base)
