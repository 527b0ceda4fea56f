"""The layering of DEVELOPERS.md, enforced by import-linter (contracts in pyproject.toml), and
the static checks CI runs through the suite: mypy --strict, ruff check and ruff format."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import Git

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout and "3 kept" in proc.stdout


def venv_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``name`` from this interpreter's environment (the test extra installs it); a
    missing tool fails the test instead of falling back to another version on PATH."""
    exe = Path(sys.executable).parent / name
    assert exe.is_file(), f"{name} is not installed next to {sys.executable}: pip install '.[test]'"
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_mypy_strict_covers_the_package_tests_benchmarks_and_examples() -> None:
    """``mypy`` alone checks what pyproject's ``[tool.mypy] files`` lists, strictly: every
    module (and stub) of the package, the tests, the benchmarks, the stress harness and the
    examples."""
    proc = venv_tool("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"^Success: no issues found in (\d+) source files$", proc.stdout, re.M)
    assert found, proc.stdout
    dirs = ("aioreftable", "tests", "benchmarks", "stress", "examples")
    sources = [p for d in dirs for glob in ("*.py", "*.pyi") for p in (ROOT / d).rglob(glob)]
    assert int(found[1]) == len(sources)


def test_ruff_check_passes() -> None:
    proc = venv_tool("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    proc = venv_tool("ruff", "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && pytest"
    assert f"       {command}\n" in readme
    marker = "# README test command (keep identical to README.md)\n"
    assert marker + command + "\n" in ci


def test_readme_library_example_runs(tmp_path: Path, git: Git) -> None:
    """The example leaves a repository git calls healthy: fsck --strict, log and reflog."""
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    repo = tmp_path / "repo"
    head, entries = proc.stdout.split()
    assert head == git("rev-parse", "HEAD", cwd=repo).strip()
    assert entries == "1"
    git("fsck", "--strict", "--no-dangling", cwd=repo)
    assert git("log", "--format=%s", cwd=repo) == "first commit\n"
    assert git("reflog", "--format=%gs", cwd=repo) == "commit (initial): first commit\n"
    assert (repo / ".git" / "reftable" / "tables.list").read_text().endswith(".ref\n")
