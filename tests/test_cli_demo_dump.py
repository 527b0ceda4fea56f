"""The `demo` and `dump` subcommands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA
from format_helpers import manifest

from aioreftable.cli import main


def test_demo_prints_every_ref_and_statistics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--refs", "800"]) == 0
    out = capsys.readouterr().out
    ref_lines = [line for line in out.splitlines() if re.fullmatch(r"[0-9a-f]{40} refs/\S+", line)]
    assert len(ref_lines) == 801  # 800 random names + refs/heads/main
    names = [line.split(" ", 1)[1] for line in ref_lines]
    assert names == sorted(names, key=str.encode)
    assert "refs/heads/main" in names
    assert "HEAD:       -> refs/heads/main" in out
    m = re.search(r"refs:\s+(\d+) records in (\d+) blocks, index (\d+) blocks", out)
    assert m and int(m.group(1)) == 802 and int(m.group(2)) > 1
    assert re.search(r"logs:\s+\d+ records", out)
    assert re.search(r"bytes/ref:\s+\d+\.\d", out)


def test_demo_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--refs", "300", "--limit", "7"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^[0-9a-f]{40} ", out, re.M)) == 7
    assert "... 294 more refs" in out


def test_demo_as_console_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "demo", "--refs", "50"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "refs/heads/main" in proc.stdout


@pytest.mark.parametrize("name", ["git_503refs_bs256_multilevel.ref", "git_ref_and_log.ref"])
def test_dump_json_matches_manifest(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", "--json", str(DATA / name)]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    m = manifest()[name]
    assert info["size"] == m["size"] and info["log_position"] == m["log_position"]
    letter = {"ref": "r", "log": "g", "obj": "o", "index": "i"}
    got = [(b["offset"], letter[b["type"]], b["block_len"], b["records"]) for b in info["blocks"]]
    want = [(b["offset"], b["type"], b["block_len"], b["records"]) for b in m["blocks"]]
    assert got == want


def test_dump_stack_directory_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = tmp_path / "reftable"
    stack.mkdir()
    for name in ("git_head_symref.ref", "git_tombstones.ref"):
        (stack / name).write_bytes((DATA / name).read_bytes())
    (stack / "tables.list").write_text("git_head_symref.ref\ngit_tombstones.ref\n")
    assert main(["dump", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("table ") == 2
    assert "target='refs/heads/main'" in out
    assert "refname='refs/heads/nolog' update_index=5 type='deletion'" in out


def test_dump_reports_corruption(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ref"
    data = bytearray((DATA / "git_single_ref.ref").read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert main(["dump", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.ref" in err and "CRC" in err
