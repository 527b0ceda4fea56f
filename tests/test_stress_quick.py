"""The stress harness (python -m stress): the quick profile passes on this machine, the
verifier reports a loss when a ledger or a repository is doctored, and stress/ uses only
the public API."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # stress/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from stress.ledger import Op  # noqa: E402
from stress.verify import Findings, check_changes, check_counters  # noqa: E402

CHAIN = [f"{n + 1:040x}" for n in range(10)]  # the null id is no value
INDEX = {oid: k for k, oid in enumerate(CHAIN)}
C = "refs/heads/stress-counter-0"


def stress(*args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "stress", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_stress_imports_only_the_public_api() -> None:
    """stress/ is an application: it may import ``aioreftable`` and
    ``aioreftable.lowlevel``, never a private module (import-linter's root package is
    aioreftable, so it cannot see this top-level package; this test is its contract)."""
    offenders = []
    files = sorted((ROOT / "stress").rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "aioreftable" and any(p.startswith("_") for p in parts[1:]):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offenders == []


def test_the_public_api_check_can_fail(tmp_path: Path) -> None:
    """The same walk flags a private import (the check above is not vacuous)."""
    tree = ast.parse("from aioreftable._stack import open_stack\nimport aioreftable._fs\n")
    found = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        and any(
            p.startswith("_")
            for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])
            for p in a.name.split(".")[1:]
        )
    ]
    assert len(found) == 2


def test_list_names_every_profile_and_scenario() -> None:
    proc = stress("list")
    assert proc.returncode == 0, proc.stderr
    for name in (
        *("quick", "soak", "smoke", "killed-writers", "mixed-git", "stat-aba"),
        *("power-cut", "crash-sweep", "gc-daemon", "feed-consumers"),
    ):
        assert f"  {name} " in proc.stdout
    assert "not available" not in proc.stdout


def test_unknown_profile_is_a_fatal_message(tmp_path: Path) -> None:
    proc = stress("run", "--profile", "nope", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert proc.stderr == "fatal: no profile or scenario named 'nope'\n"


def test_missing_git_is_a_fatal_message(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIOREFTABLE_TEST_GIT": str(tmp_path / "nogit")}
    proc = subprocess.run(
        [sys.executable, "-m", "stress", "run", "--profile", "smoke", "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("fatal: ") and "nogit" in proc.stderr


def inc(worker: str, op_id: int, frm: int, status: str = "ack") -> Op:
    return Op(worker, op_id, "inc", {"c": C, "frm": frm}, status=status)


def steps(final: int) -> dict[str, list[tuple[str, str]]]:
    log = [("0" * 40, CHAIN[0])] + [(CHAIN[k], CHAIN[k + 1]) for k in range(final)]
    return {C: log}


def counters(ops: list[Op], final: int, reflog: dict[str, Any] | None = None) -> Findings:
    f = Findings()
    log = steps(final) if reflog is None else reflog
    check_counters(f, ops, {C: CHAIN[final]}, log, INDEX, [C], "r")
    return f


def test_counter_replay() -> None:
    exact = [inc("w0-i0", 1, 0), inc("g0-i0", 1, 1), inc("w1-i0", 1, 2)]
    assert counters(exact, 3).lost_acknowledged == 0 and not counters(exact, 3).violations
    # a lost update: two writers acknowledged the move from 1
    assert counters([*exact, inc("w2-i0", 1, 1)], 3).lost_acknowledged == 1
    # an acknowledged increment the counter does not hold
    assert counters(exact, 2, reflog=steps(2)).lost_acknowledged >= 1
    # an increment nobody acknowledged: explained only by an operation in doubt
    assert counters(exact[:2], 3).violations["unacknowledged_increment"] == 1
    assert not counters([*exact[:2], inc("w1-i0", 1, 2, "doubt")], 3).violations
    # the reflog lost an acknowledged entry
    log = steps(3)
    del log[C][2]
    f = counters(exact, 3, reflog=log)
    assert f.lost_acknowledged == 1 and f.violations["reflog_order"] == 1


def put(op_id: int, changes: list[list[str | None]], status: str = "ack", **kw: Any) -> Op:
    return Op("w0-i0", op_id, "set", {"u": changes, **kw}, status=status)


def test_private_replay() -> None:
    a, b = "refs/heads/stress-p/w0-i0/t0/r0", "refs/heads/stress-p/w0-i0/t0/r1"
    ops = [put(1, [[a, None, "1"]]), put(2, [[a, "1", "2"]]), put(3, [[a, "2", None]], "nack")]
    f = Findings()
    check_changes(f, ops, {a: "2"}, "r")
    assert f.lost_acknowledged == 0 and not f.violations
    f = Findings()
    check_changes(f, ops, {a: "1"}, "r")  # the acknowledged update is not visible
    assert f.lost_acknowledged == 1
    f = Findings()
    check_changes(f, ops, {}, "r")  # nor the ref
    assert f.lost_acknowledged == 1
    doubt = put(4, [[a, "2", "3"], [b, None, "4"]], "doubt", atomic=True)
    for values in ({a: "2"}, {a: "3", b: "4"}):
        f = Findings()
        check_changes(f, [*ops, doubt], values, "r")
        assert f.lost_acknowledged == 0 and not f.violations, values
    f = Findings()
    check_changes(f, [*ops, doubt], {a: "3"}, "r")  # half of an atomic transaction
    assert f.violations["torn_transaction"] == 1
    f = Findings()
    check_changes(f, ops, {a: "2", "refs/stress-m/w9-i0/t0/0000": "5"}, "r")
    assert f.violations["unexpected_ref"] == 1


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stress") / "quick"
    proc = stress("run", "--profile", "quick", "--out", str(out), timeout=290)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.git
@pytest.mark.timeout(330)
def test_quick_profile_loses_nothing(quick_run: Path) -> None:
    summary = json.loads((quick_run / "summary.json").read_text())
    assert summary["passed"] is True
    assert summary["lost_acknowledged"] == 0 and summary["corrupt_stacks"] == 0
    assert summary["violations"] == {}
    assert summary["kills"] >= 8  # one every 1.5-4 s for 60 s
    assert summary["acknowledged"] > 500 and summary["operations"] >= summary["acknowledged"]
    assert set(summary["latency"]["all"]) == {"p50_ms", "p95_ms", "p99_ms"}
    assert summary["throughput_per_s"] > 0
    counts = summary["checks"]["counters"]
    assert sum(c["acknowledged"] for c in counts.values()) > 50
    assert any(op.endswith("(git)") for op in summary["latency"])  # the git writers wrote
    for chart in ("throughput", "latency", "tables"):
        assert (quick_run / "charts" / f"{chart}.png").stat().st_size > 5000
    assert len(summary["timeline"]) >= 60
    assert any(row["tables"] for row in summary["timeline"])
    # the crash-point sweep ran beside the workers: every k of every case and fault
    sweep = summary["sweep"]
    assert summary["crash_points"] == sweep["crash_points"] >= 300
    assert sweep["lost_acknowledged"] == 0 and sweep["corrupt_stacks"] == 0
    assert sweep["violations"] == {}
    cases = ("addition", "compaction", "auto-compaction")
    assert {f"{c}/{f}" for c in cases for f in ("crash", "enospc", "eintr")} == set(sweep["points"])
    assert all(n >= 20 for n in sweep["points"].values())
    assert sweep["outcomes"]["error raised"] > 0 and sweep["outcomes"]["applied"] > 0
    assert sweep["slow_fsync"]["reads_meanwhile"] >= 5
    # change-feed consumers saw acknowledged increments (each once, in order)
    assert summary["feed"]["sessions"] > 0 and summary["feed"]["acknowledged_seen"] > 0
    # the gc daemon ran beside the writers, stopped at every pause and started again
    daemon = summary["gc_daemon"]
    assert daemon["incarnations"] >= 2 and daemon["events"].get("started", 0) >= 1


def doctored_copy(quick_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(quick_run, out, symlinks=True)
    run = json.loads((out / "run.json").read_text())
    run["repos"] = [str(out / "repos" / Path(r).name) for r in run["repos"]]
    (out / "run.json").write_text(json.dumps(run))
    return out


def ledger_records(out: Path) -> tuple[Path, list[dict[str, Any]]]:
    path = out / "ledgers" / "w0-i0.jsonl"
    lines = path.read_bytes().split(b"\n")
    return path, [json.loads(line) for line in lines if line.strip()]


@pytest.mark.git
@pytest.mark.timeout(330)
def test_verifier_reports_doctored_ledgers_and_repositories(
    quick_run: Path, tmp_path: Path
) -> None:
    out = doctored_copy(quick_run, tmp_path)
    proc = stress("verify", str(out))
    assert proc.returncode == 0, proc.stdout  # the untouched copy verifies
    path, records = ledger_records(out)
    acked = {r["id"] for r in records if r["k"] == "a"}
    inc = next(r for r in records if r["k"] == "i" and r["op"] == "inc" and r["id"] in acked)
    # the same increment acknowledged twice (a lost update), and a create nobody sees
    with path.open("a") as f:
        for rec in (
            {**inc, "id": 10**6},
            {"k": "a", "id": 10**6, "t": 0, "lat": 0},
            {
                "k": "i",
                "id": 10**6 + 1,
                "op": "set",
                "u": [["refs/heads/stress-p/x", None, "0" * 39 + "1"]],
            },
            {"k": "a", "id": 10**6 + 1, "t": 0, "lat": 0},
        ):
            f.write(json.dumps(rec) + "\n")
    proc = stress("verify", str(out))
    assert proc.returncode == 1, proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost_acknowledged"] == 2, summary["details"]
    assert summary["passed"] is False


@pytest.mark.git
@pytest.mark.timeout(330)
def test_verifier_reports_a_lost_write_in_the_repository(quick_run: Path, tmp_path: Path) -> None:
    out = doctored_copy(quick_run, tmp_path)
    run = json.loads((out / "run.json").read_text())
    repo = run["repos"][0]
    git = run["git"]
    refs = subprocess.run(
        [git, "for-each-ref", "--format=%(refname)", "refs/heads/stress-p/"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert refs
    # a ref a worker was told it wrote disappears behind the harness's back
    subprocess.run([git, "update-ref", "-d", refs[0]], cwd=repo, check=True)
    proc = stress("verify", str(out))
    assert proc.returncode == 1, proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost_acknowledged"] >= 1
    assert any(refs[0] in d for d in summary["details"])
