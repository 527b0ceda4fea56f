"""StackOptions and LogExpiry: the knobs of a stack, named after git's config keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .._errors import UsageError
from .._format._writer import WriteOptions

__all__ = ["LogExpiry", "StackOptions"]


@dataclass(frozen=True, slots=True)
class StackOptions:
    """Options of :func:`aioreftable.open_stack`.

    ``lock_timeout`` is in seconds of polling a lock file held by another process: 0 means
    one try, None means wait forever (git's ``reftable.lockTimeout`` is in milliseconds
    with -1 for forever; the ref store converts). Waiting behind this process's own writers
    and compactions is not counted: they queue fairly, without a timeout.
    ``file_mode`` is the permission of new tables and tables.list (git's
    ``core.sharedRepository``); None means ``0666 & ~umask``. ``write_options`` carry the
    table format (hash, block size, restart interval, object index).

    ``reload`` says how a read learns that another process committed: ``"stat"`` (git's
    way, exact: one ``stat`` of tables.list per read) or ``"watch"`` (opt-in: an inotify
    watch marks the stack changed and reads skip the ``stat`` until it does; a read may
    then miss a commit for the time inotify takes to report it, and at most
    ``max_staleness`` seconds if a report is lost, since the watch wakes that often and a
    read after a wake-up checks with ``stat``). Where inotify is missing, ``"watch"``
    reads as ``"stat"``."""

    lock_timeout: float | None = 0.1
    auto_compact: bool = True
    geometric_factor: int = 2
    file_mode: int | None = None
    write_options: WriteOptions = field(default_factory=WriteOptions)
    reload_timeout: float = 3.0
    max_threads: int = 4
    reload: Literal["stat", "watch"] = "stat"
    max_staleness: float = 1.0

    def __post_init__(self) -> None:
        if self.lock_timeout is not None and self.lock_timeout < 0:
            raise UsageError("lock_timeout must be >= 0 seconds, or None to wait forever")
        if not 1 <= self.geometric_factor <= 255:
            raise UsageError("geometric_factor must be between 1 and 255 (git's uint8)")
        if self.file_mode is not None and not 0 <= self.file_mode <= 0o7777:
            raise UsageError(f"file_mode {self.file_mode:#o} is not a permission mode")
        if self.max_threads < 1:
            raise UsageError("max_threads must be at least 1")
        if self.reload not in ("stat", "watch"):
            raise UsageError(f"reload must be 'stat' or 'watch', not {self.reload!r}")
        if not self.max_staleness > 0:
            raise UsageError("max_staleness must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class LogExpiry:
    """Drop log records during compaction: older than ``time`` (seconds since the epoch),
    or with an update index below ``min_update_index``; 0 disables either rule (git's
    ``reftable_log_expiry_config``)."""

    time: int = 0
    min_update_index: int = 0
