"""The report of a run: verification, ``summary.json`` and the PNG charts; the exit status
(1 when anything acknowledged was lost, a stack is corrupt or a guarantee was broken)."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .ledger import LedgerData, read_all
from .verify import Findings, verify_run

MAX_KILL_LINES = 100


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def latency(values: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(percentile(values, q) * 1000, 3) for q in (50, 95, 99)}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def reader_counts(data: LedgerData) -> int:
    """Reader operations: the last (cumulative) statistics record of each ledger file; a
    killed worker's last second of reads is not counted."""
    per_file: dict[str, int] = {}
    for rec in data.stats:
        per_file[str(rec.get("file"))] = int(rec.get("counts", {}).get("reader", 0))
    return sum(per_file.values())


def summarize(out: Path, run: dict[str, Any], data: LedgerData, f: Findings) -> dict[str, Any]:
    times = json.loads((out / "times.json").read_text())
    events = read_jsonl(out / "kills.jsonl")
    samples = read_jsonl(out / "timeline.jsonl")
    started, ended = times["started"], times["ended"]
    duration = max(ended - started, 1e-9)
    acked = [op for op in data.ops if op.status == "ack"]
    failures: Counter[str] = Counter(str(rec.get("e")) for rec in data.failures)
    for ev in events:
        if "hung" in ev:
            failures["worker_hung_or_crashed"] += 1
            f.violation("worker_hung_or_crashed", str(ev))
    by_kind: dict[str, list[float]] = defaultdict(list)
    for op in acked:
        kind = op.op + ("(git)" if op.worker.startswith("g") else "")
        by_kind[kind].append(op.latency)
    reads = reader_counts(data)
    statuses = Counter(op.status for op in data.ops)
    kill_events = [ev for ev in events if ev.get("when") == "after kill"]
    leftovers: Counter[str] = Counter()
    kills_leaving: Counter[str] = Counter()
    for ev in kill_events:
        for key, value in ev.items():
            if key.startswith("repo"):
                for what, count in value.items():
                    leftovers[what] += count
                    if count and what != "locks_removed":
                        kills_leaving[what] += 1
    end = next((ev for ev in events if ev.get("when") == "end of run"), {})
    seconds = math.ceil(duration)
    timeline = []
    per_second: dict[int, list[float]] = defaultdict(list)
    for op in acked:
        per_second[int(op.t - started)].append(op.latency)
    tables: dict[int, dict[str, int]] = defaultdict(dict)
    for s in samples:
        tables[int(s["t"] - started)][str(s["repo"])] = s["tables"]
    for sec in range(seconds + 1):
        lat = per_second.get(sec, [])
        timeline.append(
            {
                "second": sec,
                "acknowledged": len(lat),
                "p50_ms": round(percentile(lat, 50) * 1000, 3) if lat else None,
                "p99_ms": round(percentile(lat, 99) * 1000, 3) if lat else None,
                "tables": tables.get(sec, {}),
            }
        )
    summary: dict[str, Any] = {
        "profile": run["profile"]["name"],
        "duration_s": round(duration, 2),
        "operations": len(data.ops) + reads,
        "acknowledged": len(acked),
        "reads": reads,
        "lost_acknowledged": f.lost_acknowledged,
        "corrupt_stacks": f.corrupt_stacks,
        "kills": times["kills"],
        "violations": dict(f.violations),
        "failures": dict(sorted(failures.items())),
        "outcomes": {
            "acknowledged": statuses["ack"],
            "not_applied": statuses["nack"],
            "unknown": statuses["unknown"],
            "in_doubt_killed": statuses["doubt"],
        },
        "latency": {"all": latency([op.latency for op in acked])}
        | {k: latency(v) for k, v in sorted(by_kind.items())},
        "throughput_per_s": round(len(acked) / duration, 1),
        "leftovers_after_kills": dict(leftovers),
        "kills_leaving": dict(kills_leaving),
        "leftovers_at_end": {k: v for k, v in end.items() if k.startswith("repo")},
        "checks": f.checks,
        "feed": f.checks.get("feed", {}),
        "details": f.details,
        "ledger_torn_lines": data.torn_lines,
        "timeline": timeline,
        "git_version": run["git_version"],
        "python": run["python"],
        "cpus": run["cpus"],
    }
    return summary


def charts(out: Path, summary: dict[str, Any], kill_times: list[float]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = out / "charts"
    directory.mkdir(exist_ok=True)
    timeline = summary["timeline"]
    seconds = [row["second"] for row in timeline]
    made = []

    def finish(ax: Any, fig: Any, name: str, ylabel: str) -> None:
        if len(kill_times) <= MAX_KILL_LINES:
            for t in kill_times:
                ax.axvline(t, color="red", alpha=0.25, linewidth=0.8)
            ax.set_xlabel("seconds (red lines: SIGKILLs)")
        else:  # too many to draw: say how many
            ax.set_xlabel(f"seconds ({len(kill_times)} SIGKILLs)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{summary['profile']}: {ylabel}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(directory / name, dpi=100)
        plt.close(fig)
        made.append(str(directory / name))

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(seconds, [row["acknowledged"] for row in timeline], label="acknowledged/s")
    finish(ax, fig, "throughput.png", "acknowledged operations per second")

    fig, ax = plt.subplots(figsize=(9, 4))

    def ms(key: str) -> list[float]:  # a second without acknowledgements is a gap
        return [math.nan if row[key] is None else row[key] for row in timeline]

    ax.plot(seconds, ms("p50_ms"), label="p50")
    ax.plot(seconds, ms("p99_ms"), label="p99")
    ax.set_yscale("symlog")
    ax.legend()
    finish(ax, fig, "latency.png", "latency of acknowledged operations (ms)")

    fig, ax = plt.subplots(figsize=(9, 4))
    repos = sorted({r for row in timeline for r in row["tables"]}, key=int)
    for repo in repos:
        rows = [row for row in timeline if repo in row["tables"]]
        ax.plot(
            [r["second"] for r in rows], [r["tables"][repo] for r in rows], label=f"repo {repo}"
        )
    if repos:
        ax.legend()
    finish(ax, fig, "tables.png", "tables in the stack")
    return made


def daemon_report(out: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The gc daemon's incarnations, kills, and its log events by name (JSON lines)."""
    logs = sorted((out / "logs").glob("d0-i*.log"))
    counts: Counter[str] = Counter()
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            try:
                counts[str(json.loads(line).get("event"))] += 1
            except (ValueError, AttributeError):
                counts["(not json)"] += 1
    kills = sum(1 for ev in events if str(ev.get("victim", "")).startswith("d"))
    return {"incarnations": len(logs), "kills": kills, "events": dict(sorted(counts.items()))}


def add_sweep(out: Path, run: dict[str, Any], summary: dict[str, Any]) -> None:
    """The crash-point sweep's numbers (``sweep/sweep.json``) join the run's: its points,
    and its losses, corrupt stacks and violations counted with the workers'."""
    if not run["profile"].get("sweep"):
        return
    path = out / "sweep" / "sweep.json"
    if not path.exists():
        summary["violations"]["sweep_did_not_finish"] = 1
        return
    sweep = json.loads(path.read_text())
    summary["sweep"] = sweep
    summary["crash_points"] = sweep["crash_points"]
    summary["lost_acknowledged"] += sweep["lost_acknowledged"]
    summary["corrupt_stacks"] += sweep["corrupt_stacks"]
    for kind, n in sweep["violations"].items():
        summary["violations"][f"sweep:{kind}"] = n


async def build(out: Path) -> tuple[dict[str, Any], int]:
    """Verify the run in ``out``, write summary.json and the charts; (summary, status)."""
    run = json.loads((out / "run.json").read_text())
    chain = (out / "chain.txt").read_text().split()
    data = read_all(out / "ledgers")
    findings = await verify_run(run, chain, data)
    summary = summarize(out, run, data, findings)
    times = json.loads((out / "times.json").read_text())
    kill_times = [
        ev["t"] - times["started"]
        for ev in read_jsonl(out / "kills.jsonl")
        if ev.get("when") == "after kill"
    ]
    summary["charts"] = charts(out, summary, kill_times)
    add_sweep(out, run, summary)
    known = set(run["profile"].get("known_issues", []))
    summary["known_issues"] = {
        k: summary["violations"].pop(k) for k in sorted(known) if k in summary["violations"]
    }
    if run["profile"].get("gc_daemon"):
        summary["gc_daemon"] = daemon_report(out, read_jsonl(out / "kills.jsonl"))
    bad = summary["lost_acknowledged"] or summary["corrupt_stacks"] or summary["violations"]
    summary["passed"] = not bad
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, 1 if bad else 0
