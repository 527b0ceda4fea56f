"""The refs service (examples/refs_service.py) under many concurrent HTTP clients.

    python benchmarks/bench_service.py                      # 64 and 256 clients
    python benchmarks/bench_service.py --clients 64 --per-client 20 --max-seconds 30

Starts the service on 127.0.0.1 (a subprocess, uvicorn, with group commit and with
``--no-group-commit``) and runs N concurrent httpx clients on loopback, each with its own
connection, each doing ``--per-client`` compare-and-swap updates of a ref of its own
(``refs/tags/c<n>``: created, then moved between two blobs, each request waiting for the
previous answer) on a fresh bare reftable repository. Bounded: every client stops starting
requests after ``--max-seconds``. Reports updates/s (answers 200 over the wall time of the
run), p50/p99 request latency, failed requests, the CPU time the service and this client
process spent per update, and the tables left. A row of GETs of one ref under the same
concurrency shows what HTTP alone costs. uvloop runs the clients when it is installed
(uvicorn picks it for the service too). ``--profile PREFIX`` runs the service under
cProfile (``python -m pstats PREFIX-group-on.prof``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import cpu_seconds, listening_url
from bench_group import find_git, quantile
from bench_stack import EMPTY_BLOB
from bench_stack import GIT_ENV as STACK_GIT_ENV
from bench_stack import git_repo as bare_repo

SERVICE = Path(__file__).resolve().parent.parent / "examples" / "refs_service.py"
GIT_ENV = {**STACK_GIT_ENV, "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "b@example.com"}


class Service:
    """The example service as a subprocess on a free port (stopped with SIGTERM)."""

    def __init__(self, root: str, *args: str, profile: str | None = None):
        python = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else [])]
        self.proc = subprocess.Popen(
            [*python, str(SERVICE), "--root", root, "--port", "0", *args],
            stdout=subprocess.PIPE,
            env=GIT_ENV,
        )
        self.url = listening_url(self.proc, "service", rb"\S+")

    def cpu(self) -> float:
        """Seconds of CPU the service has used (user + system)."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class Result:
    ok: int = 0
    failed: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    tables: int | None = None  # left in the stack after the run (None: not counted)


Request = Callable[[httpx.AsyncClient, int, int], Awaitable[bool]]


async def load(
    svc: Service, clients: int, per: int, max_seconds: float, request: Request
) -> Result:
    """``clients`` clients, each with one connection, each ``per`` requests in turn."""
    result = Result()
    pool = [
        httpx.AsyncClient(base_url=svc.url, timeout=60, limits=httpx.Limits(max_connections=1))
        for _ in range(clients)
    ]
    try:
        start = time.perf_counter()
        deadline = start + max_seconds

        async def client(n: int) -> None:
            for i in range(per):
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                if await request(pool[n], n, i):
                    result.latencies.append(time.perf_counter() - t0)
                    result.ok += 1
                else:
                    result.failed += 1

        cpu0, server0 = time.process_time(), svc.cpu()
        async with anyio.create_task_group() as tg:
            for n in range(clients):
                tg.start_soon(client, n)
        result.wall = time.perf_counter() - start
        result.client_cpu = time.process_time() - cpu0
        result.server_cpu = svc.cpu() - server0
    finally:
        for c in pool:
            await c.aclose()
    return result


def updates(repo: str, blobs: tuple[str, str]) -> Request:
    async def request(client: httpx.AsyncClient, n: int, i: int) -> bool:
        old = None if i == 0 else blobs[(i - 1) % 2]
        update = {"ref": f"refs/tags/c{n:04d}", "new": blobs[i % 2], "old": old}
        r = await client.post(f"/repos/{repo}/refs", json={"updates": [update]})
        return r.status_code == 200

    return request


def reads(repo: str) -> Request:
    async def request(client: httpx.AsyncClient, n: int, i: int) -> bool:
        r = await client.get(f"/repos/{repo}/refs", params={"prefix": f"refs/tags/c{n:04d}"})
        return r.status_code == 200

    return request


def make_repo(git: str, root: str) -> tuple[str, tuple[str, str]]:
    """A bare reftable repository under ``root`` with two blobs; its name and their ids."""
    path = bare_repo(git, root)
    other = subprocess.run(
        [git, "--git-dir", path, "hash-object", "-w", "--stdin"],
        input=b"x\n", check=True, capture_output=True, env=GIT_ENV,
    ).stdout.decode().strip()  # fmt: skip
    return os.path.basename(path), (EMPTY_BLOB, other)


def tables(root: str, repo: str) -> int:
    return len(Path(root, repo, "reftable", "tables.list").read_text().split())


def show(label: str, r: Result) -> None:
    rate = r.ok / r.wall if r.wall else 0.0
    per = max(r.ok, 1)
    print(
        f"{label:40} {rate:9.0f} {quantile(r.latencies, 0.5) * 1000:8.1f} "
        f"{quantile(r.latencies, 0.99) * 1000:8.1f} {r.failed:7d} "
        f"{r.server_cpu / per * 1000:9.2f} {r.client_cpu / per * 1000:9.2f} "
        f"{'-' if r.tables is None else r.tables:>7}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound of each row")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="run the service under cProfile, writing PREFIX-group-{on,off}.prof",
    )
    args = parser.parse_args()
    git = find_git()
    options: dict[str, object] = {}
    loop = "asyncio"
    try:
        import uvloop  # noqa: F401

        options, loop = {"use_uvloop": True}, "uvloop"
    except ImportError:
        pass
    version = subprocess.run([git, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, clients on {loop}, {version}")
    print(
        f"{'row':40} {'updates/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} "
        f"{'srv ms/op':>9} {'cli ms/op':>9} {'tables':>7}"
    )

    def run(svc: Service, clients: int, request: Request) -> Result:
        return anyio.run(
            load, svc, clients, args.per_client, args.max_seconds, request,
            backend="asyncio", backend_options=options,
        )  # fmt: skip

    with tempfile.TemporaryDirectory() as root:
        for group in (True, False):
            mode = "on" if group else "off"
            profile = f"{args.profile}-group-{mode}.prof" if args.profile else None
            svc = Service(root, *([] if group else ["--no-group-commit"]), profile=profile)
            try:
                for clients in args.clients:
                    repo, blobs = make_repo(git, root)
                    if group:  # HTTP alone: reads of one ref each
                        run(svc, clients, reads(repo))  # opens the store, warms up
                        show(f"GET one ref, {clients} clients", run(svc, clients, reads(repo)))
                    else:
                        run(svc, 1, reads(repo))  # opens the store
                    result = run(svc, clients, updates(repo, blobs))
                    result.tables = tables(root, repo)
                    show(f"POST, {clients} clients, group {mode}", result)
            finally:
                svc.stop()


if __name__ == "__main__":
    main()
