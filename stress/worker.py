"""An aioreftable worker process: T tasks running weighted workloads against one repository,
controlled by the supervisor through stdin (pause, resume, stop) and stdout (ready, paused,
done, stopped). ``python -m stress.worker RUN_DIR WID INCARNATION BACKEND``."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from aioreftable import open_ref_store

from .ledger import Ledger
from .profiles import Profile
from .repos import counter_names, worktree_of
from .workloads import Task, Violation, Worker, new_task, run_op

STATS_SECONDS = 1.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Control:
    """Commands from the supervisor; ``wake`` is set by a command or by the last task."""

    def __init__(self) -> None:
        self.command = ""
        self.wake = anyio.Event()
        self.commanded = anyio.Event()
        self.resume = anyio.Event()
        self.tasks_done = anyio.Event()
        self.active = 0

    async def read_commands(self) -> None:
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            command = line.strip() or "stop"  # EOF: the supervisor is gone
            if command == "resume":
                self.resume.set()
                continue
            self.command = command
            self.commanded.set()
            self.wake.set()
            self.resume.set()
            if command == "stop":
                return


async def task_loop(w: Worker, t: Task, control: Control) -> None:
    kinds, weights = w.profile.weight_list()
    try:
        while w.running and not w.quota_reached():
            kind = t.rng.choices(kinds, weights)[0]
            w.counts[kind] = w.counts.get(kind, 0) + 1
            try:
                await run_op(w, t, kind)
            except Violation as exc:
                w.fail("violation:" + exc.kind, exc.detail)
                t.resync = True
    finally:
        control.active -= 1
        if control.active == 0:
            control.tasks_done.set()
            control.wake.set()


async def run_tasks(
    w: Worker, tasks: list[Task], control: Control, store_scope: anyio.CancelScope
) -> None:
    """Run every task until a command arrives (then give in-flight operations
    ``pause_grace`` seconds and cancel the rest, the store's background compaction
    included) or all of them met the quota."""
    control.tasks_done = anyio.Event()
    control.active = len(tasks)
    w.running = True
    async with anyio.create_task_group() as tg:
        for t in tasks:
            tg.start_soon(task_loop, w, t, control)
        await control.wake.wait()
        w.running = False
        with anyio.move_on_after(w.profile.pause_grace):
            await control.tasks_done.wait()
        if control.command:
            store_scope.cancel()


async def write_stats(w: Worker) -> None:
    while True:
        await anyio.sleep(STATS_SECONDS)
        stats: dict[str, Any] = {"k": "s", "t": round(time.time(), 3), "counts": dict(w.counts)}
        stats["failures"] = dict(w.failures)
        if w.store is not None:
            s = w.store.statistics()
            stats["tables"] = s.tables
            stats["compactions"] = s.compactions
        w.ledger.write(stats)


async def main_async(run_dir: Path, wid: int, incarnation: int) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    profile = Profile.from_dict(run["profile"])
    chain = (run_dir / "chain.txt").read_text().split()
    repo = run["repos"][wid % len(run["repos"])]
    in_worktree = profile.worktree and wid % 2 == 1
    if in_worktree:
        repo = str(worktree_of(Path(repo)))
    ledger = Ledger(run_dir / "ledgers" / f"w{wid}-i{incarnation}.jsonl")
    w = Worker(
        profile,
        wid,
        incarnation,
        chain,
        {oid: k for k, oid in enumerate(chain)},
        counter_names(profile),
        ledger,
        in_worktree=in_worktree,
    )
    tasks = [new_task(w, tid) for tid in range(profile.tasks)]
    control = Control()
    async with anyio.create_task_group() as outer:
        outer.start_soon(ledger.run_fsync)
        outer.start_soon(control.read_commands)
        outer.start_soon(write_stats, w)
        while control.command != "stop":
            control.wake = anyio.Event()
            control.commanded = anyio.Event()
            control.command = ""
            with anyio.CancelScope() as store_scope:
                async with open_ref_store(repo) as store:
                    w.store = store
                    say("ready")
                    await run_tasks(w, tasks, control, store_scope)
                    if not control.command:  # every task met its quota
                        say("done")
                        await control.commanded.wait()
            w.store = None
            if control.command == "pause":
                control.resume = anyio.Event()
                say("paused")
                await control.resume.wait()
        outer.cancel_scope.cancel()
    w.ledger.write(
        {
            "k": "s",
            "t": round(time.time(), 3),
            "counts": w.counts,
            "final": True,
            "failures": w.failures,
        }
    )
    ledger.close()
    say("stopped")


def main() -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    run_dir, wid, incarnation, backend = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4],
    )
    options: dict[str, Any] = {}
    if backend == "asyncio":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            pass
        else:
            options["use_uvloop"] = json.loads((Path(run_dir) / "run.json").read_text())["profile"][
                "uvloop"
            ]
    anyio.run(main_async, Path(run_dir), wid, incarnation, backend=backend, backend_options=options)
    sys.stdout.flush()
    os._exit(0)  # the stdin reader thread may still be blocked in readline


if __name__ == "__main__":
    main()
