"""The progress bar helper (cli/_progress.py): drawn on a terminal only, never with -q."""

from __future__ import annotations

import io

from aioreftable.cli._progress import progress, shown


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with progress(10, "Migrating refs", stream=stream) as bar:
        bar.advance(4)
        bar.advance()
    assert bar.done == 5
    assert not bar.visible
    assert stream.getvalue() == ""


def test_no_bar_with_quiet_even_on_a_terminal() -> None:
    stream = _Terminal()
    with progress(3, "Migrating refs", quiet=True, stream=stream) as bar:
        bar.advance(3)
    assert not bar.visible
    assert stream.getvalue() == ""
    assert not shown(True, stream)


def test_bar_on_a_terminal_shows_label_and_count() -> None:
    stream = _Terminal()
    with progress(7, "Migrating refs", stream=stream) as bar:
        bar.advance(2)
        bar.advance(5)
    assert bar.visible
    text = stream.getvalue()
    assert "Migrating refs" in text
    assert "7/7" in text


def test_unknown_total_then_known() -> None:
    stream = _Terminal()
    with progress(None, "Reading refs", stream=stream) as bar:
        bar.total(4)
        bar.advance(4)
    assert "4/4" in stream.getvalue()


def test_a_closed_stream_draws_nothing() -> None:
    stream = io.StringIO()
    stream.close()
    assert not shown(False, stream)
