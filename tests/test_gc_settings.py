"""GcSettings: durations, the TOML file, flags over the file, and the command's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Git
from gc_helpers import ROOT, make_repo

from aioreftable import UsageError
from aioreftable.cli import main
from aioreftable.gc import GcSettings, load_settings, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), (1.5, 1.5), ("90d", 90 * 86400.0), ("2.weeks", 14 * 86400.0), ("12h", 43200.0),
     ("5 min", 300.0), ("0", 0.0), ("never", None), ("off", None)],
)  # fmt: skip
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1", "1 fortnight", True, [1]])
def test_parse_duration_refuses(text: object) -> None:
    with pytest.raises(UsageError, match=r"^x: "):
        parse_duration(text, "x")


def test_load_settings_reads_gc_table_and_overrides() -> None:
    settings = load_settings(
        """
        [gc]
        roots = ["/srv/git", "/srv/mirrors"]
        watch = "poll"
        poll-interval = "5s"
        concurrency = 8
        max_tables = 16
        reflog_expire = "90d"
        full_compaction_interval = "1d"
        break_stale_locks = true
        metrics_port = 9419

        [[repository]]
        match = "/srv/mirrors/*"
        reflog_expire = "never"

        [[repository]]
        match = "/srv/git/secret.git"
        enabled = false
        """
    )
    assert settings.roots == ("/srv/git", "/srv/mirrors")
    assert (settings.watch, settings.poll_interval, settings.concurrency) == ("poll", 5.0, 8)
    assert (settings.max_tables, settings.metrics_port, settings.break_stale_locks) == (
        16,
        9419,
        True,
    )
    assert settings.policy_for("/srv/git/a.git").reflog_expire == 90 * 86400
    assert settings.policy_for("/srv/git/a.git").full_compaction_interval == 86400
    assert settings.policy_for("/srv/mirrors/m.git").reflog_expire is None
    assert settings.policy_for("/srv/git/secret.git").enabled is False
    assert GcSettings().reflog_expire is None  # expiry deletes history: off by default


@pytest.mark.parametrize(
    ("text", "message"),
    [("frobnicate = 1", "unknown setting 'frobnicate'"), ("concurrency = 0", "concurrency"),
     ("watch = 'fanotify'", "watch must be"), ("concurrency = 'many'", "is not a int"),
     ("poll_interval = 'never'", "cannot be off"), ("[[repository]]\nreflog_expire = 1", "match"),
     ("roots = [", "invalid TOML")],
)  # fmt: skip
def test_load_settings_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_settings(text)


def test_command_line_flags_override_the_file(
    tmp_path: Path, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    make_repo(git, tmp_path / "r.git", bare=True)
    config = tmp_path / "gc.toml"
    config.write_text('roots = ["/nonexistent/a"]\nlog_format = "json"\nwatch = "inotify"\n')
    assert main(["gc", "--config", str(config), "--watch=poll", str(tmp_path)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    started = next(e for e in events if e["event"] == "started")
    assert started["roots"] == [str(tmp_path)]  # the command line's ROOT, not the file's
    assert started["watch"] == "poll" and started["stacks"] == 1


def test_command_errors_are_fatal_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("roots = [")
    assert main(["gc", "--config", str(bad)]) == 128
    assert capsys.readouterr().err.startswith("fatal: invalid TOML")
    assert main(["gc"]) == 128
    assert "no ROOT given" in capsys.readouterr().err
    assert main(["gc", "--config", str(tmp_path / "missing.toml")]) == 128
    assert "missing.toml" in capsys.readouterr().err
    assert main(["gc", "--poll-interval=soon", str(tmp_path)]) == 129
    assert "cannot parse duration" in capsys.readouterr().err


def test_one_pass_over_an_empty_root_exits_zero(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "aioreftable", "gc", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "started" in proc.stderr and "stopped" in proc.stderr


def test_a_disabled_repository_is_not_touched(tmp_path: Path, git: Git) -> None:
    for name in ("on.git", "off.git"):
        make_repo(git, tmp_path / name, bare=True, refs=6)
    off = (tmp_path / "off.git" / "reftable" / "tables.list").read_text()
    config = tmp_path / "gc.toml"
    config.write_text(
        f'roots = ["{tmp_path}"]\n[[repository]]\nmatch = "*/off.git"\nenabled = false\n'
    )
    proc = subprocess.run([sys.executable, "-m", "aioreftable", "gc", "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "off.git" / "reftable" / "tables.list").read_text() == off
    assert len((tmp_path / "on.git" / "reftable" / "tables.list").read_text().split()) == 1
