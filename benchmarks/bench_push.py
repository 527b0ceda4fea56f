"""``git push`` over HTTP: 100 branches as 100 concurrent pushes, reftable against files.

    python benchmarks/bench_push.py                  # 100 pushes, 3 runs per backend
    python benchmarks/bench_push.py --pushes 50 --runs 5

Starts ``examples/git_http_server.py`` on 127.0.0.1 (servers for the whole run) and,
per run and variant, a fresh bare repository holding ``main``: ``reftable`` (git init
--ref-format=reftable: served through aioreftable.dulwich, one ref-store batch per push,
concurrent pushes sharing tables through group commit), ``reftable-solo`` (the same on a
second server started with ``--no-group-commit``) and ``files`` (served through dulwich's
own ``DiskRefsContainer``, the same receive path otherwise). One client
repository has the branches (one commit each on ``main``); all pushes
(``git push URL bN:refs/heads/bN``) start at once, each in its own thread. Measured: the
wall time until the last push has finished, pushes per second, and each push's own time
(p50, max). Every push must succeed and the server must then hold exactly the pushed
refs (``git for-each-ref``), else the run fails. The variants alternate; the table shows
the median run of each, with the server's CPU time (user+sys, from /proc) during that run.
The files repository gets ``logs/refs/heads`` beforehand: dulwich's reflog writer creates
it racily, and concurrent first pushes then fail (FileExistsError). Needs git >= 2.45 with
git-remote-http (AIOREFTABLE_TEST_GIT or git on PATH; scripts/ensure-git.sh).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dulwich
from _proc import cpu_seconds, listening_url
from bench_cli import ENV as BENCH_ENV

SERVER = Path(__file__).resolve().parent.parent / "examples" / "git_http_server.py"
GIT = os.environ.get("AIOREFTABLE_TEST_GIT") or shutil.which("git") or "git"
ENV = {
    **BENCH_ENV,  # git's fixed identity, no system/global config
    "GIT_AUTHOR_DATE": "1112354055 +0200",
    "GIT_COMMITTER_DATE": "1112354055 +0200",
    "GIT_TERMINAL_PROMPT": "0",
}
# variant -> (ref format of the server repository, server options, label)
VARIANTS = {
    "reftable": ("reftable", (), "reftable (aioreftable.dulwich, group commit)"),
    "reftable-solo": ("reftable", ("--no-group-commit",), "reftable, no group commit"),
    "files": ("files", (), "files (DiskRefsContainer)"),
}


def git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        [GIT, *args], cwd=cwd, env=ENV, input=stdin, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def make_client(path: Path, pushes: int) -> dict[str, str]:
    """A client repository with ``main`` and branches b000.. (one commit each on main),
    made by one ``git fast-import``; the branch -> commit id map."""
    git("init", "-q", "-b", "main", str(path))
    lines = ["commit refs/heads/main", "mark :1", "committer C <c@example.com> 1 +0000"]
    lines += ["data 5", "base", "M 644 inline base.txt", "data 5", "base", ""]
    for i in range(pushes):
        body = f"branch {i}"
        lines += [f"commit refs/heads/b{i:03}", "committer C <c@example.com> 1 +0000"]
        lines += [f"data {len(body)}", body, "from :1"]
        lines += [f"M 644 inline b{i:03}.txt", f"data {len(body)}", body, ""]
    git("fast-import", "--quiet", cwd=path, stdin=("\n".join(lines) + "\n").encode())
    out = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/", cwd=path)
    return dict(line.split(" ") for line in out.splitlines())


class Server:
    """examples/git_http_server.py on 127.0.0.1, a free port."""

    def __init__(self, root: Path, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--root", str(root), "--port", "0", *options],
            stdout=subprocess.PIPE,
        )
        self.base = listening_url(self.proc, "server", rb"http://\S+/")

    def cpu(self) -> float:
        """The server's CPU time so far (user+sys, seconds)."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class Run:
    backend: str
    wall: float
    each: list[float]
    server_cpu: float


def one_push(client: Path, url: str, branch: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [GIT, "push", "-q", url, f"{branch}:{branch}"],
        cwd=client,
        env=ENV,
        capture_output=True,
        check=False,
    )
    error = "" if proc.returncode == 0 else proc.stderr.decode(errors="replace")
    return time.perf_counter() - start, error


def run(
    server: Server, root: Path, client: Path, want: dict[str, str], backend: str, n: int
) -> Run:
    name = f"{backend}-{n}.git"
    repo = root / name
    ref_format = VARIANTS[backend][0]
    git("init", "-q", "--bare", f"--ref-format={ref_format}", "-b", "main", str(repo))
    git("push", "-q", str(repo), "main", cwd=client)
    if ref_format == "files":
        # dulwich 1.2.21's reflog writer makes missing directories with a racy
        # exists-then-mkdir: concurrent first pushes fail with FileExistsError on
        # logs/refs/heads (the receive path reports it as git's rejection). Not timed here.
        (repo / "logs" / "refs" / "heads").mkdir(parents=True, exist_ok=True)
    branches = sorted(b for b in want if b != "refs/heads/main")
    url = server.base + name
    cpu = server.cpu()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(branches)) as pool:
        results = list(pool.map(lambda b: one_push(client, url, b), branches))
    wall = time.perf_counter() - start
    cpu = server.cpu() - cpu
    errors = [e for _, e in results if e]
    if errors:
        raise SystemExit(f"{len(errors)} pushes to {backend} failed, e.g.:\n{errors[0]}")
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo)
    if dict(line.split(" ") for line in out.splitlines()) != want:
        raise SystemExit(f"the {backend} repository does not hold what was pushed")
    return Run(backend, wall, [t for t, _ in results], cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=100, help="branches = concurrent pushes")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant")
    args = parser.parse_args()
    git_version = git("--version").strip()
    with tempfile.TemporaryDirectory(prefix="bench_push.") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        client = Path(tmp) / "client"
        want = make_client(client, args.pushes)
        servers: dict[str, Server] = {}
        runs: list[Run] = []
        try:
            for variant, (_, options, _) in VARIANTS.items():
                servers[variant] = Server(root, *options)
            order = list(VARIANTS)
            for n in range(args.runs):
                for backend in order if n % 2 == 0 else order[::-1]:
                    r = run(servers[backend], root, client, want, backend, n)
                    print(
                        f"run {n + 1} {backend:13} {r.wall:6.2f} s"
                        f" (server CPU {r.server_cpu:.2f} s)",
                        file=sys.stderr,
                    )
                    runs.append(r)
        finally:
            for server in servers.values():
                server.stop()
    print(f"# {args.pushes} concurrent git push over HTTP, {args.runs} runs per variant (median)")
    print(
        f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {git_version}, dulwich {'.'.join(map(str, dulwich.__version__))}"
    )
    print(
        "| server repository | wall (s) | pushes/s | push p50 (s) | push max (s)"
        " | server CPU (s) | runs (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for backend, (_, _, label) in VARIANTS.items():
        mine = sorted((r for r in runs if r.backend == backend), key=lambda r: r.wall)
        mid = mine[len(mine) // 2]
        walls = ", ".join(f"{r.wall:.2f}" for r in mine)
        print(
            f"| {label} | {mid.wall:.2f} | {args.pushes / mid.wall:.1f} |"
            f" {statistics.median(mid.each):.2f} | {max(mid.each):.2f} | {mid.server_cpu:.2f} |"
            f" {walls} |"
        )


if __name__ == "__main__":
    main()
