"""The codec's and the stack's test files once more on the pure-Python reference decoder
(``AIOREFTABLE_PURE_PYTHON=1``), in one subprocess: the main run uses the compiled one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.mark.timeout(900)
def test_codec_and_stack_tests_pass_on_the_pure_python_path() -> None:
    env = {**os.environ, "AIOREFTABLE_PURE_PYTHON": "1"}
    probe = "import aioreftable.lowlevel as l; print(l.ACCELERATED)"
    live = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert live.stdout.strip() == "False", live.stdout + live.stderr
    files = sorted(p.name for p in TESTS.glob("test_format_*.py"))
    files += sorted(p.name for p in TESTS.glob("test_stack_*.py"))
    assert len(files) > 15, files
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files]
    proc = subprocess.run(cmd, cwd=TESTS, env=env, capture_output=True, text=True, timeout=850)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
