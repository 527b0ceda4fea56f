"""Command line: ``python -m stress list``, ``run --profile NAME --out DIR``, ``verify DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio

from . import profiles, report
from .supervisor import supervise


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stress", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the profiles and named scenarios")
    run = sub.add_parser("run", help="run a profile or scenario, verify, report")
    run.add_argument("--profile", required=True, help="a name from `python -m stress list`")
    run.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    run.add_argument("--duration", type=float, help="seconds")
    run.add_argument("--processes", type=int, help="aioreftable worker processes (P)")
    run.add_argument("--tasks", type=int, help="async tasks per worker process (T)")
    run.add_argument("--git-writers", type=int, help="git writer processes (G)")
    run.add_argument("--repos", type=int, help="repositories")
    run.add_argument("--ops-per-worker", type=int, help="acknowledged operations per worker")
    run.add_argument("--backend", choices=["asyncio", "trio", "mixed"])
    run.add_argument("--kill", action=argparse.BooleanOptionalAction, default=None)
    run.add_argument("--kill-interval", type=float, nargs=2, metavar=("MIN", "MAX"))
    run.add_argument("--lock-timeout-ms", type=int)
    run.add_argument("--seed", type=int)
    run.add_argument(
        "--weights", help='workload weights as JSON, e.g. \'{"counter": 5, "reader": 1}\''
    )
    verify = sub.add_parser("verify", help="verify and report an existing run directory again")
    verify.add_argument("out", type=Path)
    return p


def list_profiles() -> None:
    print("profiles:")
    for p in profiles.PROFILES.values():
        print(f"  {p.name:26} {p.description}")
    print("scenarios:")
    for p in profiles.SCENARIOS.values():
        print(f"  {p.name:26} {p.description}")
    if profiles.NOT_AVAILABLE:
        print("not available:")
        for name, why in profiles.NOT_AVAILABLE.items():
            print(f"  {name:26} {why}")


def configure(args: argparse.Namespace) -> profiles.Profile:
    profile = profiles.find(args.profile)
    for key in (
        "duration",
        "processes",
        "tasks",
        "git_writers",
        "repos",
        "ops_per_worker",
        "backend",
        "kill",
        "lock_timeout_ms",
        "seed",
    ):
        value = getattr(args, key)
        if value is not None:
            setattr(profile, key, value)
    if args.kill_interval is not None:
        profile.kill_interval = (args.kill_interval[0], args.kill_interval[1])
    if args.weights is not None:
        profile.weights = {str(k): int(v) for k, v in json.loads(args.weights).items()}
    profile.check()
    return profile


def print_summary(summary: dict[str, object], out: Path) -> None:
    keys = (
        "operations",
        "acknowledged",
        "lost_acknowledged",
        "corrupt_stacks",
        "kills",
        "violations",
        "failures",
        "throughput_per_s",
    )
    for key in keys:
        print(f"{key}: {summary[key]}")
    if summary.get("known_issues"):
        print(f"known issues (reported, not failing): {summary['known_issues']}")
    if "sweep" in summary:
        sweep = summary["sweep"]
        print(f"sweep: {sweep['crash_points']} fault points {sweep['points']}")  # type: ignore[index]
    print(f"latency: {summary['latency']['all']}")  # type: ignore[index]
    print(f"{'PASSED' if summary['passed'] else 'FAILED'}: {out / 'summary.json'}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        list_profiles()
        return 0
    if args.command == "run":
        try:
            profile = configure(args)
        except KeyError:
            print(f"fatal: no profile or scenario named {args.profile!r}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"fatal: {exc}", file=sys.stderr)
            return 2
        if args.out.exists():
            print(f"fatal: {args.out} exists", file=sys.stderr)
            return 2
        try:
            anyio.run(supervise, profile, args.out)
        except (RuntimeError, FileNotFoundError) as exc:  # no git, or git refused the setup
            print(f"fatal: {exc}", file=sys.stderr)
            return 2
        out = args.out
    else:
        out = args.out
        if not (out / "run.json").exists():
            print(f"fatal: {out} holds no run (run.json missing)", file=sys.stderr)
            return 2
    summary, status = anyio.run(report.build, out)
    print_summary(summary, out)
    return status


if __name__ == "__main__":
    sys.exit(main())
