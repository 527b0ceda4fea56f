"""The suite once more on the pure-Python reference decoder (``AIOREFTABLE_PURE_PYTHON=1``),
in one subprocess: the main run uses the compiled one. Every test file runs there but those
named in ``NOT_ON_THE_PURE_PATH``, each for a stated reason (none of them reads a table
through a code path the others do not)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

NOT_ON_THE_PURE_PATH = {
    "test_accel_pure_suite.py": "this file",
    "test_accel_differential.py": "runs both decoders side by side itself",
    "test_accel_fuzz.py": "fuzzes the compiled decoder against the pure one itself",
    "test_architecture.py": "static checks of the source (mypy, ruff, import-linter)",
    "test_architecture_cycles.py": "static: the import graph",
    "test_architecture_private.py": "static: private attribute reads",
    "test_architecture_public_only.py": "static: private imports of applications",
    "test_architecture_repo_io.py": "static: where the I/O calls are",
    "test_docs_site.py": "builds the docs site",
    "test_stress_quick.py": "minutes of multi-process load; its workers use the public API "
    "the refs and stack tests cover on this path",
}


def test_the_exclusions_name_existing_files() -> None:
    assert set(NOT_ON_THE_PURE_PATH) <= {p.name for p in TESTS.glob("test_*.py")}


@pytest.mark.timeout(1500)
def test_the_suite_passes_on_the_pure_python_path() -> None:
    env = {**os.environ, "AIOREFTABLE_PURE_PYTHON": "1"}
    probe = "import aioreftable.lowlevel as l; print(l.ACCELERATED)"
    live = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert live.stdout.strip() == "False", live.stdout + live.stderr
    files = sorted(p.name for p in TESTS.glob("test_*.py") if p.name not in NOT_ON_THE_PURE_PATH)
    assert len(files) > 60, files
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    proc = subprocess.run(cmd, cwd=TESTS, env=env, capture_output=True, text=True, timeout=1450)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
