"""The progress bar helper (cli/_progress.py): drawn on a terminal only, never with -q."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest
from conftest import Git
from migrate_helpers import build_source, migrate_parser

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


@pytest.mark.parametrize("quiet", [False, True])
def test_refs_migrate_draws_its_bar_on_a_terminal_only(
    git: Git, tmp_path: Path, quiet: bool
) -> None:
    """`refs migrate` on a terminal: a bar counting refs and reflog entries on stderr (git's
    stdout unchanged); none with -q."""
    repo = build_source(git, tmp_path / "repo")
    terminal, out = _Terminal(), io.StringIO()
    args = ["--ref-format=reftable", *(["-q"] if quiet else [])]
    old = os.getcwd()
    os.chdir(repo)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(terminal):
            parsed = migrate_parser().parse_args(["migrate", *args])
            code = parsed.run(parsed)
    finally:
        os.chdir(old)
    assert (code, out.getvalue()) == (0, "")
    assert git("config", "extensions.refstorage", cwd=repo) == "reftable\n"
    if quiet:
        assert terminal.getvalue() == ""
    else:
        assert "Migrating refs" in terminal.getvalue()
        assert re.search(r"(\d+)/\1", terminal.getvalue())  # done: n/n
