"""StackStatistics: the frozen counters returned by ``Stack.statistics()``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters", "StackStatistics"]


@dataclass(frozen=True, slots=True)
class StackStatistics:
    """A point-in-time view of one open stack (this process only).

    ``compactions_failed`` counts compactions that hit a held lock (git's ``failures``);
    ``compaction_errors`` counts other failures of background compaction, the last of which
    is ``last_compaction_error``."""

    tables: int
    bytes: int
    max_update_index: int
    reloads: int
    additions: int
    entries_written: int
    compactions_attempted: int
    compactions: int
    compactions_failed: int
    compactions_outdated: int
    compaction_errors: int
    lock_waits: int
    lock_wait_seconds: float
    last_compaction_error: BaseException | None


class Counters:
    """The mutable counters behind StackStatistics."""

    __slots__ = (
        "additions",
        "compaction_errors",
        "compactions",
        "compactions_attempted",
        "compactions_failed",
        "compactions_outdated",
        "entries_written",
        "last_compaction_error",
        "lock_wait_seconds",
        "lock_waits",
        "reloads",
    )

    def __init__(self) -> None:
        self.reloads = 0
        self.additions = 0
        self.entries_written = 0
        self.compactions_attempted = 0
        self.compactions = 0
        self.compactions_failed = 0
        self.compactions_outdated = 0
        self.compaction_errors = 0
        self.lock_waits = 0
        self.lock_wait_seconds = 0.0
        self.last_compaction_error: BaseException | None = None
