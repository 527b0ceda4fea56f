"""CLI benchmark: ``git for-each-ref`` against ``aioreftable for-each-ref``, whole process.

    python benchmarks/bench_for_each_ref.py                   # 1,000,000 refs
    python benchmarks/bench_for_each_ref.py --refs 100000 --runs 5

Makes a reftable repository with git (sha1; one commit, ``--refs`` branches
``refs/heads/b/NNNNNNN`` at it, written by one ``git update-ref --stdin``: one table), checks
that both commands print the same bytes, then times each as a whole process (interpreter
start, imports, the scan, the object check, output to /dev/null) with the issue's format
``%(objectname) %(refname)``, plus git's default format (which reads each object's type).

Uses hyperfine (``apt-get install -y hyperfine``) when on PATH, else a loop of subprocess
runs (bench_cli's timers); prints median, mean, min wall time and mean CPU (user+sys).
Needs git >= 2.45 (AIOREFTABLE_TEST_GIT or git on PATH).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_cli import ENV, ROOT, Timings, find_git, git, loop, machine

FORMAT = "--format=%(objectname) %(refname)"


def make_repo(g: str, path: Path, refs: int) -> Path:
    git(g, path.parent, "init", "-q", "--ref-format=reftable", "-b", "main", str(path))
    git(g, path, "commit", "-q", "--allow-empty", "-m", "root")
    head = git(g, path, "rev-parse", "HEAD").strip()
    stdin = "".join(f"create refs/heads/b/{i:07d} {head}\n" for i in range(refs))
    git(g, path, "update-ref", "--stdin", stdin=stdin)
    return path


def hyperfine(commands: dict[str, list[str]], cwd: Path, runs: int, env: dict[str, str]) -> Timings:
    """bench_cli's hyperfine run, with each command quoted for hyperfine's word splitting."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json",
                out.name, "--style", "none"]  # fmt: skip
        for name, cmd in commands.items():
            args += ["-n", name, shlex.join(cmd)]
        subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
        data = json.loads(Path(out.name).read_text())
    return {r["command"]: (r["times"], r["user"] + r["system"]) for r in data["results"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refs", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-hyperfine", action="store_true", help="time with a subprocess loop")
    opts = ap.parse_args()
    g = find_git()
    use_hyperfine = shutil.which("hyperfine") is not None and not opts.no_hyperfine
    print(f"machine: {machine()}")
    print(f"{subprocess.run([g, '--version'], capture_output=True, text=True).stdout.strip()}; "
          f"timer: {'hyperfine -N' if use_hyperfine else 'subprocess loop'}, "
          f"{opts.runs} runs after 3 warm-ups")  # fmt: skip
    print()
    print(f"| {opts.refs} refs | median | mean | min | CPU (user+sys) | CPU vs git |")
    print("|---|---:|---:|---:|---:|---:|")
    ours = [sys.executable, "-m", "aioreftable"]
    with tempfile.TemporaryDirectory(prefix="bench-fer-") as tmp:
        env = {**ENV, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        repo = make_repo(g, Path(tmp) / "repo", opts.refs)
        for args in ([FORMAT], []):
            want = subprocess.run([g, "for-each-ref", *args], cwd=repo, capture_output=True,
                                  env=env, check=True).stdout  # fmt: skip
            got = subprocess.run([*ours, "for-each-ref", *args], cwd=repo, capture_output=True,
                                 env=env, check=True).stdout  # fmt: skip
            assert got == want, f"aioreftable for-each-ref {args} differs from git's"
        commands = {
            "git for-each-ref %(objectname) %(refname)": [g, "for-each-ref", FORMAT],
            "aioreftable for-each-ref %(objectname) %(refname)": [*ours, "for-each-ref", FORMAT],
            "git for-each-ref (default format)": [g, "for-each-ref"],
            "aioreftable for-each-ref (default format)": [*ours, "for-each-ref"],
        }
        timer = hyperfine if use_hyperfine else loop
        results = timer(commands, repo, opts.runs, env)
        base: dict[bool, float] = {}
        for name, (times, cpu) in results.items():
            default = "default" in name
            if name.startswith("git"):
                base[default] = cpu
            ratio = cpu / base[default] if base.get(default) else float("nan")
            print(f"| `{name}` | {statistics.median(times):.2f} s | "
                  f"{statistics.fmean(times):.2f} s | {min(times):.2f} s | {cpu:.2f} s | "
                  f"{ratio:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
