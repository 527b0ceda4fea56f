"""Progress bars of long commands: rich on stderr, shown only on a terminal and not with -q."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as RichProgress,
)

__all__ = ["Progress", "progress", "shown"]


def shown(quiet: bool, stream: TextIO | None = None) -> bool:
    """Whether a bar is drawn: as git, only when stderr is a terminal and not -q."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: no bar
        return False


class Progress:
    """The bar of one running step: ``advance(n)`` counts ``n`` more items done.

    When no bar is shown it only counts (``done``), so callers never test for a terminal."""

    def __init__(self, bar: RichProgress | None, task: TaskID | None) -> None:
        self._bar = bar
        self._task = task
        self.done = 0

    @property
    def visible(self) -> bool:
        """Whether a bar is being drawn."""
        return self._bar is not None

    def advance(self, n: int = 1) -> None:
        """``n`` more items are done."""
        self.done += n
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def total(self, total: int | None) -> None:
        """The number of items once it is known (``None``: unknown, a pulsing bar)."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total)


@contextmanager
def progress(
    total: int | None, label: str, quiet: bool = False, *, stream: TextIO | None = None
) -> Iterator[Progress]:
    """A bar labelled ``label`` over ``total`` items (``None``: unknown) on ``stream``
    (stderr by default), drawn only on a terminal and when not ``quiet``; the last state
    stays on screen, as git's ``..., done.`` line does."""
    stream = sys.stderr if stream is None else stream
    if not shown(quiet, stream):
        yield Progress(None, None)
        return
    console = Console(file=stream, force_terminal=True)
    bar = RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield Progress(bar, task)
        if total is not None:
            bar.update(task, completed=total)
