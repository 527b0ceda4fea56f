"""gc daemon benchmark: start-up, idle CPU and RSS, compaction lag, writer safety.

    python benchmarks/bench_gc.py                      # 1,000 repositories
    python benchmarks/bench_gc.py --repos 10000 --writes 300
    python benchmarks/bench_gc.py --safety 200         # git update-ref loops with/without

Makes one bare reftable repository with git (one commit, empty template), copies it
``--repos`` times under one root, and runs ``aioreftable gc --daemon ROOT`` as a subprocess:

- start-up: spawn until the ``started`` log event (discovery, inotify watches in place);
  then the daemon's own ``first_pass_done`` (every stack looked at once);
- idle: CPU time (utime+stime from /proc) over ``--idle`` seconds and VmRSS after them;
- lag: a writer runs ``git update-ref`` with GIT_TEST_REFTABLE_AUTOCOMPACTION=false in a
  random repository every ``--interval`` seconds; a checker polls each written stack until
  git's geometric rule holds again; lag = that moment minus the end of the write (writes
  that leave the stack geometric are not counted); p50/p99/max;
- shutdown: SIGTERM until exit.

``--safety N``: ``--loops`` (3) concurrent loops of N ``git update-ref`` on a fresh repository at
git's default lock timeout (100 ms), without and with the daemon, ``--rounds`` times
alternating; failures and seconds of each run (without the daemon the stack grows to 3N
tables and every update-ref slows down, so the runs with it write at a higher rate).
``--deep``: the daemon's run continues on the repository the run without it left. Each
round also runs the loops with git's own inline auto-compaction (its default) for scale.
Needs git >= 2.45 (AIOREFTABLE_TEST_GIT or git on PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench_cli import (
    ENV,  # git's fixed identity and no system/global config
    find_git,
)

from aioreftable.lowlevel import TableReader, suggest_compaction_segment

ROOT = Path(__file__).resolve().parent.parent
NO_COMPACT = {**ENV, "GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}


def run(*args: str, cwd: Path | None = None, env: dict[str, str] = ENV, stdin: str = "") -> str:
    return subprocess.run(
        args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=True
    ).stdout


def make_tree(g: str, root: Path, count: int) -> str:
    """``count`` copies of one bare repository with one commit; returns its id."""
    template = root.parent / "template.git"
    run(g, "init", "-q", "--bare", "--template=", "--ref-format=reftable", "-b", "main",
        str(template))  # fmt: skip
    tree = run(g, "hash-object", "-t", "tree", "-w", "--stdin", cwd=template).strip()
    oid = run(g, "commit-tree", tree, "-m", "first", cwd=template).strip()
    run(g, "update-ref", "refs/heads/main", oid, cwd=template)
    root.mkdir()
    for i in range(count):
        shutil.copytree(template, root / f"r{i:05d}.git", symlinks=True)
    return oid


def geometric(stack: Path) -> bool:
    try:
        names = [n for n in (stack / "tables.list").read_text().split("\n") if n]
        sizes = []
        for name in names:
            with TableReader.from_path(stack / name) as reader:
                sizes.append(reader.size - (reader.header_size - 1))
    except (OSError, ValueError):
        return False
    return suggest_compaction_segment(sizes, 2) is None


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Daemon:
    def __init__(self, root: Path, log: Path, *args: str):
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "aioreftable", "gc", "--daemon", str(root),
                   "--log-format=json", *args]  # fmt: skip
        self.start = time.monotonic()
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=self._out, stderr=self._out)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                out.append(event)
        return out

    def wait_event(self, name: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not self.events(name):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit(f"no {name} event:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.01)
        return time.monotonic() - self.start

    def stop(self) -> float:
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self._out.close()
        return time.monotonic() - t


def lag_run(g: str, root: Path, oid: str, writes: int, interval: float) -> list[float]:
    repos = sorted(root.iterdir())
    pending: dict[Path, float] = {}
    lags: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def checker() -> None:
        while not (done.is_set() and not pending):
            with lock:
                items = list(pending.items())
            for repo, t0 in items:
                if geometric(repo / "reftable"):
                    with lock:
                        if pending.get(repo) == t0:
                            del pending[repo]
                            lags.append(time.monotonic() - t0)
            time.sleep(0.005)

    thread = threading.Thread(target=checker)
    thread.start()
    rng = random.Random(1)
    try:
        for i in range(writes):
            repo = rng.choice(repos)
            # a name no earlier run of a kept tree used (same value: no table written)
            run(g, "update-ref", f"refs/heads/w{os.getpid()}-{i}", oid, cwd=repo, env=NO_COMPACT)
            t0 = time.monotonic()
            if not geometric(repo / "reftable"):
                with lock:
                    pending.setdefault(repo, t0)
            time.sleep(interval)
    finally:
        done.set()
        thread.join(60)
    return lags


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def safety(g: str, tmp: Path, updates: int, rounds: int, deep: bool, loops: int) -> dict[str, Any]:
    """Three concurrent ``git update-ref`` loops on a fresh repository, without and with
    the daemon, ``rounds`` times alternating; failures and seconds of each. ``deep``: the
    run with the daemon uses the repository the run without it left (3N tables), so the
    daemon starts on a deep stack while the loops write."""
    root = tmp / "safety"
    oid = make_tree(g, root, 2 * rounds)
    repos = sorted(root.iterdir())

    def loop(repo: Path, prefix: str, env: dict[str, str]) -> int:
        failures = 0
        for i in range(updates):
            proc = subprocess.run([g, "update-ref", f"refs/heads/{prefix}{i}", oid], cwd=repo,
                                  env=env, capture_output=True)  # fmt: skip
            failures += proc.returncode != 0
        return failures

    def three(repo: Path, env: dict[str, str] = NO_COMPACT) -> tuple[int, float]:
        t = time.monotonic()
        with ThreadPoolExecutor(loops) as pool:
            prefixes = [f"l{n}-" for n in range(loops)]
            failures = sum(pool.map(loop, [repo] * loops, prefixes, [env] * loops))
        return failures, round(time.monotonic() - t, 1)

    out: dict[str, Any] = {"updates_per_run": loops * updates, "without": [], "with": []}
    out["inline"] = []
    for r in range(rounds):
        # git's own inline auto-compaction after every commit (its default), for scale
        inline = tmp / f"inline-{r}.git"
        shutil.copytree(repos[0].parent.parent / "template.git", inline, symlinks=True)
        out["inline"].append(three(inline, ENV))
        out["without"].append(three(repos[2 * r]))
        # the daemon watches only the repository of this run
        single = tmp / f"safety-{r}"
        single.mkdir()
        shutil.move(repos[2 * r + int(not deep)], single / "r.git")
        daemon = Daemon(single, tmp / f"safety-{r}.log")
        daemon.wait_event("started", 60)
        out["with"].append(three(single / "r.git"))
        daemon.stop()
        out.setdefault("compactions", []).append(len(daemon.events("compacted")))
        out.setdefault("give_ups", []).append(len(daemon.events("gave_up")))
    out["failures_without_daemon"] = sum(f for f, _ in out["without"])
    out["failures_with_daemon"] = sum(f for f, _ in out["with"])
    out["failures_with_git_inline_compaction"] = sum(f for f, _ in out["inline"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--repos", type=int, default=1000)
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    p.add_argument("--writes", type=int, default=200, help="writes of the lag run")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between writes")
    p.add_argument("--watch", default="auto", choices=("auto", "inotify", "poll"))
    p.add_argument("--safety", type=int, default=0, help="updates per loop (0: skip)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the --safety runs")
    p.add_argument("--deep", action="store_true", help="--safety: the daemon meets a deep stack")
    p.add_argument("--loops", type=int, default=3, help="--safety: concurrent update-ref loops")
    p.add_argument("--keep", help="build the tree in this directory and keep it")
    args = p.parse_args()
    g = find_git()
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="bench-gc-"))
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "load": os.getloadavg()[0],
        "repos": args.repos,
        "watch": args.watch,
    }
    try:
        if args.safety:
            results["safety"] = safety(g, tmp, args.safety, args.rounds, args.deep, args.loops)
            print(json.dumps(results, indent=2))
            return
        root = tmp / "root"
        t = time.monotonic()
        if root.is_dir():  # a tree kept by an earlier --keep run: reset every stack
            template = tmp / "template.git"
            oid = run(g, "rev-parse", "main", cwd=template).strip()
            for repo in root.iterdir():
                shutil.rmtree(repo / "reftable")
                shutil.copytree(template / "reftable", repo / "reftable")
            results["repos"] = len(list(root.iterdir()))
        else:
            oid = make_tree(g, root, args.repos)
        results["build_seconds"] = round(time.monotonic() - t, 1)
        daemon = Daemon(root, tmp / "daemon.log", f"--watch={args.watch}")
        results["startup_seconds"] = round(daemon.wait_event("started", 600), 2)
        daemon.wait_event("first_pass_done", 600)
        results["first_pass_seconds"] = daemon.events("first_pass_done")[0]["seconds"]
        time.sleep(1.0)
        pid = daemon.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle)
        idle_cpu = cpu_seconds(pid) - cpu0
        results["idle_cpu_percent"] = round(100 * idle_cpu / (time.monotonic() - t0), 2)
        results["idle_rss_mb"] = round(rss_mb(pid), 1)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        lags = lag_run(g, root, oid, args.writes, args.interval)
        results["lag_writes_counted"] = len(lags)
        results["lag_p50_ms"] = round(1000 * pct(lags, 0.50), 1)
        results["lag_p99_ms"] = round(1000 * pct(lags, 0.99), 1)
        results["lag_max_ms"] = round(1000 * max(lags, default=float("nan")), 1)
        results["busy_cpu_percent"] = round(
            100 * (cpu_seconds(pid) - cpu1) / (time.monotonic() - t1), 1
        )
        results["busy_rss_mb"] = round(rss_mb(pid), 1)
        results["compactions"] = len(daemon.events("compacted"))
        results["shutdown_seconds"] = round(daemon.stop(), 2)
        print(json.dumps(results, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
