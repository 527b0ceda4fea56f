"""A short coverage-guided fuzz (atheris) of the compiled decoder against the pure-Python one.

``scripts/fuzz_codec.py`` damages the block area of git-written tables and demands that both
decoders return equal records and equal ``FormatError``s; here it runs for a bounded time
on every CI run. The long, sanitized runs are ``scripts/sanitize.sh`` (docs/benchmarks.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aioreftable.lowlevel

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 10

atheris_missing = sys.version_info >= (3, 13)  # no atheris wheels there (the test extra)


@pytest.mark.skipif(atheris_missing, reason="atheris has no build for this Python")
@pytest.mark.skipif(not aioreftable.lowlevel.ACCELERATED, reason="the pure-Python run")
def test_a_bounded_fuzz_finds_no_difference_and_no_crash(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIOREFTABLE_PURE_PYTHON"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "fuzz_codec.py"),
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert not list(tmp_path.glob("crash-*")), log[-4000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    assert runs is not None and int(runs.group(1)) >= 20, log[-2000:]
    done = re.search(r"DONE\s+cov: (\d+)", log)
    # guided: the corpus grew past the empty seed by what the inputs reached
    assert done is not None and int(done.group(1)) > 100, log[-2000:]
