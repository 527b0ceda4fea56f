"""git's geometric auto-compaction heuristic, as a pure function of effective table sizes."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["suggest_compaction_segment"]


def suggest_compaction_segment(sizes: Sequence[int], factor: int = 2) -> tuple[int, int] | None:
    """The range ``(start, end)`` (end exclusive) of tables to compact, or None.

    ``sizes`` are effective sizes bottom (oldest) first; git uses file size minus 91 (v1)
    or 99 (v2). Mirrors git's ``suggest_compaction_segment`` (a949ebd342).
    """
    if factor <= 0:
        factor = 2
    n = len(sizes)
    if n < 2:
        return None
    # Step A: the topmost table that is too big for the one below it ends the segment.
    i = n - 1
    while i > 0 and sizes[i - 1] >= factor * sizes[i]:
        i -= 1
    if i == 0:
        return None
    end = i + 1
    start = i
    total = sizes[i]
    # Step B: grow downwards while a table is smaller than factor x the sum above it.
    j = i
    while j > 0:
        prev = total
        total += sizes[j - 1]
        if sizes[j - 1] < factor * prev:
            start = j - 1
        j -= 1
    return start, end
