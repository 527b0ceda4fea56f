"""The supervisor: creates the repositories, starts P aioreftable workers and G git
writers, SIGKILLs and restarts them (``--kill``), samples the stacks, stops everyone.

Abandoned-lock policy. After each kill every other worker is paused *outside* the
library (its tasks finished or cancelled, its ref store closed, so its background
compaction finished too; a git writer between two commands). While everyone is paused no
live process of the run holds a lock, so every lock file in a stack was left by a killed
process: it is proven abandoned, recorded, and removed. Temporary files and unlisted tables
are recorded and left to ``clean()`` (they block nobody). The same holds at the end of the
run, when every worker has exited. Locks are never removed while any worker runs."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from .profiles import Profile
from .repos import create_repo, find_git, git_version, remove_abandoned_locks, scan

ROOT = Path(__file__).resolve().parent.parent
REPLY_TIMEOUT = 30.0  # a pause takes under a second; a git writer finishes one command
STALL_SECONDS = 4.0


class HungWorker(Exception):
    pass


@dataclass
class Proc:
    kind: str  # "w" (aioreftable) or "g" (git writer)
    number: int
    backend: str
    incarnation: int = 0
    process: Process | None = None
    reader: BufferedByteReceiveStream | None = None
    done: bool = False
    log: Any = None

    @property
    def name(self) -> str:
        return f"{self.kind}{self.number}-i{self.incarnation}"

    def command(self, run_dir: Path) -> list[str]:
        if self.kind == "w":
            module, extra = "stress.worker", [self.backend]
        else:
            module, extra = "stress.gitworker", []
        args = [str(run_dir), str(self.number), str(self.incarnation), *extra]
        return [sys.executable, "-m", module, *args]

    async def start(self, run_dir: Path, env: dict[str, str]) -> None:
        self.done = False
        # the supervisor's own files: small, local, opened between runs of the loop
        self.log = open(run_dir / "logs" / f"{self.name}.log", "wb")  # noqa: SIM115, ASYNC230
        self.process = await anyio.open_process(
            self.command(run_dir),
            stdin=-1,
            stdout=-1,
            stderr=self.log,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.reader = BufferedByteReceiveStream(self.process.stdout)
        await self.expect("ready")

    async def send(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        await self.process.stdin.send((line + "\n").encode())

    async def line(self, waiting_for: str) -> str:
        assert self.reader is not None
        try:
            return (await self.reader.receive_until(b"\n", 1000)).decode()
        except (anyio.EndOfStream, anyio.IncompleteRead):
            raise HungWorker(f"{self.name} exited before saying {waiting_for}") from None

    async def expect(self, word: str) -> None:
        """Wait for ``word`` (REPLY_TIMEOUT); a ``done`` on the way is remembered."""
        with anyio.fail_after(REPLY_TIMEOUT):
            while True:
                line = await self.line(word)
                if line == "done":
                    self.done = True
                elif line == word:
                    return

    async def wait_done(self) -> None:
        """Wait, without a time limit, until the worker met its quota."""
        while not self.done:
            if await self.line("done") == "done":
                self.done = True

    def dump_stacks(self) -> None:
        """SIGUSR1: the worker's faulthandler writes every thread's stack to its log."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGUSR1)

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def reap(self) -> None:
        if self.process is None:
            return
        with anyio.CancelScope(shield=True):
            await self.process.wait()
            await self.process.aclose()
        self.process = None
        self.log.close()


@dataclass
class DaemonProc(Proc):
    """``aioreftable gc --daemon`` over the run's repositories, beside the writers. It speaks
    no protocol: a pause stops it with SIGTERM (its steps finish or are abandoned cleanly
    within its shutdown timeout, so it holds no lock while the others are paused), a
    resume starts a new incarnation; ``--kill`` SIGKILLs it like any worker."""

    run_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def command(self, run_dir: Path) -> list[str]:
        return [
            *(sys.executable, "-m", "aioreftable", "gc", "--daemon", str(run_dir / "repos")),
            *("--log-format", "json", "--shutdown-timeout", "2", "--max-tables", "12"),
        ]

    async def start(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir, self.env = run_dir, env
        self.log = open(run_dir / "logs" / f"{self.name}.log", "wb")  # noqa: SIM115, ASYNC230
        self.process = await anyio.open_process(
            self.command(run_dir),
            stdin=-1,
            stdout=self.log,
            stderr=self.log,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )

    async def send(self, line: str) -> None:
        if line in ("pause", "stop") and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
        elif line == "resume" and self.process is None and self.run_dir is not None:
            self.incarnation += 1
            await self.start(self.run_dir, self.env)

    def dump_stacks(self) -> None:
        pass  # SIGUSR1 would end it: the daemon installs no handler

    async def expect(self, word: str) -> None:
        if word in ("paused", "stopped"):
            with anyio.fail_after(REPLY_TIMEOUT):
                await self.reap()


@dataclass
class Run:
    profile: Profile
    out: Path
    procs: list[Proc] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    stacks: list[Path] = field(default_factory=list)
    started: float = 0.0
    kills: int = 0
    stalls: int = 0
    quiescing: bool = False
    seen_files: dict[int, set[str]] = field(default_factory=dict)
    events: Any = None  # kills.jsonl
    samples: Any = None  # timeline.jsonl
    diary: Any = None  # supervisor.log
    env: dict[str, str] = field(default_factory=dict)

    def record(self, stream: Any, rec: dict[str, Any]) -> None:
        stream.write(json.dumps(rec) + "\n")
        stream.flush()

    async def sample(self) -> None:
        """Tables per stack every half second (the number of lines of tables.list); a
        ``tables.list.lock`` that stays (same inode) for STALL_SECONDS is a stall: every
        worker is asked for its stacks (SIGUSR1, into its log) and the stall recorded."""
        seen: dict[int, tuple[int, float, bool]] = {}
        while True:
            for number, stack in enumerate(self.stacks):
                text = await anyio.Path(stack / "tables.list").read_text()
                now = time.time()
                rec = {"t": round(now, 3), "repo": number, "tables": len(text.split())}
                self.record(self.samples, rec)
                try:
                    inode = (await anyio.Path(stack / "tables.list.lock").stat()).st_ino
                except FileNotFoundError:
                    seen.pop(number, None)
                    continue
                first, since, reported = seen.get(number, (inode, now, False))
                if first != inode:
                    first, since, reported = inode, now, False
                if self.quiescing:  # a killed writer's lock, removed once all are paused
                    since = now
                if now - since >= STALL_SECONDS and not reported:
                    reported = True
                    self.stalls += 1
                    self.log(f"stall: repo{number} tables.list.lock held {now - since:.1f} s")
                    self.record(self.events, {"t": now, "when": "stall", "repo": number})
                    for p in self.procs:
                        p.dump_stacks()
                seen[number] = (first, since, reported)
            await anyio.sleep(0.5)

    def log(self, message: str) -> None:
        self.record(self.diary, {"t": round(time.time(), 3), "msg": message})

    async def talk(self, p: Proc, command: str, reply: str) -> None:
        """Send a command and wait for its reply; a worker that does not answer (hung or
        crashed) is recorded, killed and started again (a finding of the run)."""
        try:
            await p.send(command)
            await p.expect(reply)
        except (
            HungWorker,
            TimeoutError,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ) as exc:
            self.log(f"{p.name} did not answer {command}: {type(exc).__name__} {exc}")
            self.record(
                self.events,
                {"t": time.time(), "when": command, "hung": p.name, "error": repr(exc)},
            )
            p.dump_stacks()
            await anyio.sleep(0.5)
            p.kill()
            await p.reap()
            if command != "stop":
                p.incarnation += 1
                await p.start(self.out, self.env)
                if command == "pause":  # it must be paused like the others
                    await self.talk(p, "pause", "paused")

    async def everyone(self, procs: list[Proc], command: str, reply: str) -> None:
        async with anyio.create_task_group() as tg:
            for p in procs:
                tg.start_soon(self.talk, p, command, reply)

    def sweep(self, when: str, victim: str) -> dict[str, Any]:
        """Record the leftovers of every stack (those not seen by the previous sweep: what
        this kill left) and remove the proven-abandoned locks."""
        rec: dict[str, Any] = {"t": round(time.time(), 3), "when": when, "victim": victim}
        for number, stack in enumerate(self.stacks):
            found = scan(stack)
            before = self.seen_files.get(number, set())
            kinds = {
                "tables.list.lock": found.list_lock,
                "table_locks": found.table_locks,
                "our_temp_files": found.our_temps,
                "git_temp_files": found.git_temps,
                "unlisted_tables": found.unlisted_tables,
            }
            if when == "end of run":  # everything there is
                before = set()
            counts = {kind: len(set(names) - before) for kind, names in kinds.items()}
            counts["locks_removed"] = remove_abandoned_locks(stack, found)
            self.seen_files[number] = {n for names in kinds.values() for n in names}
            rec[f"repo{number}"] = counts
        return rec

    async def kill_one(self) -> None:
        profile = self.profile
        eligible = [p for p in self.procs if p.kind == "w" or profile.kill_git]
        victim = self.rng.choice(eligible)
        self.log(f"kill {victim.name}")
        self.quiescing = True
        victim.kill()
        self.kills += 1
        await victim.reap()
        others = [p for p in self.procs if p is not victim]
        await self.everyone(others, "pause", "paused")
        self.log("all paused")
        self.record(self.events, self.sweep("after kill", victim.name))
        victim.incarnation += 1
        await victim.start(self.out, self.env)
        self.log(f"{victim.name} started")
        await self.everyone(others, "resume", "ready")
        self.quiescing = False
        self.log("all resumed")

    async def main_loop(self) -> None:
        deadline = self.started + self.profile.duration
        if self.profile.ops_per_worker:  # until every worker met its quota (or the deadline)
            with anyio.move_on_after(deadline - time.time()):
                async with anyio.create_task_group() as tg:
                    for p in self.procs:
                        if not isinstance(p, DaemonProc):  # it never has a quota
                            tg.start_soon(p.wait_done)
            return
        next_kill = self.next_kill_time()
        workers = [p for p in self.procs if not isinstance(p, DaemonProc)]
        while time.time() < deadline and not all(p.done for p in workers):
            await anyio.sleep(0.1)
            if self.profile.kill and time.time() >= next_kill and time.time() < deadline:
                await self.kill_one()
                next_kill = self.next_kill_time()

    def next_kill_time(self) -> float:
        low, high = self.profile.kill_interval
        return time.time() + self.rng.uniform(low, high)

    async def stop_all(self) -> None:
        await self.everyone(self.procs, "stop", "stopped")
        for p in self.procs:
            p.kill()  # nothing is left running, whatever happened
            await p.reap()


SWEEP_TIMEOUT = 600.0


async def start_sweep(profile: Profile, out: Path, env: dict[str, str]) -> Process | None:
    """The crash-point sweep (stress/sweep.py) in its own process beside the workers: its
    own repositories under ``out/sweep``, its numbers in ``out/sweep/sweep.json``."""
    if not profile.sweep:
        return None
    log = out / "logs" / "sweep.log"
    command = [sys.executable, "-m", "stress.sweep", str(out / "sweep"), profile.sweep]
    with open(log, "wb") as stream:  # noqa: ASYNC230 - the child keeps its own descriptor
        return await anyio.open_process(command, stdout=stream, stderr=stream, cwd=ROOT, env=env)


async def finish_sweep(sweep: Process, r: Run) -> None:
    with anyio.move_on_after(SWEEP_TIMEOUT) as scope:
        await sweep.wait()
    if scope.cancelled_caught:
        r.log("the sweep did not finish in time: killed")
        sweep.kill()
    await sweep.aclose()
    r.log(f"sweep exited {sweep.returncode}")


def prepare(profile: Profile, out: Path) -> tuple[dict[str, Any], list[Path]]:
    """Create the output directory, the repositories and run.json."""
    git = find_git()
    version = git_version(git)
    if version < (2, 45):
        raise RuntimeError(f"{git} is git {version}, the harness needs >= 2.45")
    out.mkdir(parents=True, exist_ok=False)
    for sub in ("repos", "ledgers", "logs"):
        (out / sub).mkdir()
    repos = []
    chain: list[str] = []
    for number in range(profile.repos):
        repo = out / "repos" / f"r{number}"
        chain = create_repo(git, repo, profile)
        repos.append(repo)
    (out / "chain.txt").write_text("\n".join(chain) + "\n")
    run = {
        "profile": json.loads(profile.to_json()),
        "git": git,
        "git_version": ".".join(map(str, version)),
        "repos": [str(r.resolve()) for r in repos],
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2))
    return run, [r / ".git" / "reftable" for r in repos]


async def supervise(profile: Profile, out: Path) -> dict[str, Any]:
    """Run the workers for the profile's duration; returns what the report needs."""
    run, stacks = await anyio.to_thread.run_sync(prepare, profile, out)
    r = Run(profile, out, rng=random.Random(profile.seed), stacks=stacks)
    from .repos import git_env

    r.env = git_env()
    r.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), r.env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    backends = ["asyncio", "trio"] if profile.backend == "mixed" else [profile.backend]
    r.procs = [Proc("w", n, backends[n % len(backends)]) for n in range(profile.processes)]
    r.procs += [Proc("g", n, "sync") for n in range(profile.git_writers)]
    if profile.gc_daemon:
        r.procs.append(DaemonProc("d", 0, "gc"))
    with (
        open(out / "kills.jsonl", "w") as events,  # noqa: ASYNC230
        open(out / "timeline.jsonl", "w") as samples,  # noqa: ASYNC230
        open(out / "supervisor.log", "w") as diary,  # noqa: ASYNC230
    ):
        r.events, r.samples, r.diary = events, samples, diary
        async with anyio.create_task_group() as tg:
            for p in r.procs:
                tg.start_soon(p.start, out, r.env)
        r.started = time.time()
        sweep = await start_sweep(profile, out, r.env)
        async with anyio.create_task_group() as tg:
            tg.start_soon(r.sample)
            try:
                if r.procs:
                    await r.main_loop()
            finally:
                ended = time.time()
                await r.stop_all()
                tg.cancel_scope.cancel()
        if sweep is not None:
            await finish_sweep(sweep, r)
            if not r.procs:  # the sweep was the run
                ended = time.time()
        final = r.sweep("end of run", "")
        r.record(events, final)
    times = {"started": r.started, "ended": ended, "kills": r.kills, "stalls": r.stalls}
    (out / "times.json").write_text(json.dumps(times))
    return run
