"""The `demo` and `dump` subcommands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DATA, Git
from format_helpers import manifest

from aioreftable.cli import main


def test_demo_repository_is_what_git_sees(
    git: Git, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "demo"
    args = ["demo", "--dir", str(repo), "--refs", "300", "--writers", "3", "--steps", "4"]
    assert main([*args, "--limit", "0"]) == 0
    out = capsys.readouterr().out
    refs_part = out.split("\n\n", 1)[0]
    # the demo prints its refs exactly as `git show-ref -d --head` does
    assert refs_part + "\n" == git("show-ref", "-d", "--head", cwd=repo)
    assert "^{}" in refs_part  # annotated tags were peeled through the object database
    assert git("refs", "verify", cwd=repo) == ""
    assert git("fsck", "--strict", cwd=repo).strip() == ""
    # every compare-and-swap step landed once: 1 creation + 3 writers x 4 steps
    assert len(git("reflog", "show", "main", cwd=repo).splitlines()) == 13
    assert len(git("reflog", "show", "HEAD", cwd=repo).splitlines()) == 13
    m = re.search(r"(\d+) commits, (\d+) compare-and-swap retries, (\d+) lost races", out)
    assert m and int(m.group(1)) == 1 + 12 + (4 * 3 - int(m.group(3)))
    assert int(m.group(3)) == 4 * 2  # each of 4 claimed names is won once, lost twice
    assert re.search(r"stack:\s+\d+ tables, \d+ bytes, \d+ additions, \d+ compactions", out)
    assert main(args) == 128  # refuses a non-empty directory, like git clone
    assert "already exists and is not an empty directory" in capsys.readouterr().err


def test_demo_in_a_temporary_directory() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "demo", "--refs", "40", "--writers", "2",
         "--steps", "2", "--limit", "5"],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    assert re.search(r"^[0-9a-f]{40} HEAD$", proc.stdout, re.M)
    assert "reflog of refs/heads/main (5 entries" in proc.stdout
    assert "... " in proc.stdout and "more refs" in proc.stdout


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


def test_dump_sha256_stack_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bare stack directory does not say its hash: dump reads it through the stack as
    SHA-1, then as SHA-256; a stack mixing the two is refused, naming the hashes."""
    name = "git_503refs_sha256_v2.ref"
    (tmp_path / name).write_bytes((DATA / name).read_bytes())
    (tmp_path / "tables.list").write_text(name + "\n")
    assert main(["dump", "--json", "--no-records", str(tmp_path)]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert (info["path"], info["hash"], info["version"]) == (str(tmp_path / name), "sha256", 2)
    other = "git_head_symref.ref"
    (tmp_path / other).write_bytes((DATA / other).read_bytes())
    (tmp_path / "tables.list").write_text(f"{other}\n{name}\n")
    assert main(["dump", str(tmp_path)]) == 128
    err = capsys.readouterr().err
    assert err.startswith("fatal: ") and "sha1" in err and "sha256" in err


def test_dump_reports_corruption(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ref"
    data = bytearray((DATA / "git_single_ref.ref").read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert main(["dump", str(bad)]) == 128
    err = capsys.readouterr().err
    assert err.startswith(f"fatal: {bad}: ") and "CRC" in err


def test_dump_linked_worktree(
    git: Git, git_repo: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a linked worktree dump shows the main stack's tables, then the worktree's own."""
    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "wt-branch", str(wt), cwd=repo)
    git("update-ref", "refs/bisect/bad", "HEAD", cwd=wt)
    main_stack = repo / ".git" / "reftable"
    wt_stack = repo / ".git" / "worktrees" / "wt" / "reftable"
    want = [main_stack / n for n in (main_stack / "tables.list").read_text().split()]
    want += [wt_stack / n for n in (wt_stack / "tables.list").read_text().split()]
    assert main(["dump", "--json", "--no-records", str(wt)]) == 0
    assert [info["path"] for info in json.loads(capsys.readouterr().out)] == list(map(str, want))
    assert main(["dump", str(wt)]) == 0
    out = capsys.readouterr().out
    assert "refname='refs/bisect/bad'" in out and "refname='refs/heads/wt-branch'" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import aioreftable
    from aioreftable.lowlevel import ACCELERATED

    decoder = "compiled" if ACCELERATED else "pure Python"
    expected = f"aioreftable version {aioreftable.__version__}\nblock decoder: {decoder}\n"
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == expected
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "--version"], capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout) == (0, expected)
    pure = subprocess.run(
        [sys.executable, "-m", "aioreftable", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "AIOREFTABLE_PURE_PYTHON": "1"},
    )
    assert pure.stdout.endswith("block decoder: pure Python\n")
