"""The deterministic crash-point sweep: for every k over the syscalls of a ref transaction,
a full compaction and an auto-compaction after a transaction, crash at k (then a power cut)
or fail with ENOSPC or EINTR at k; reopen and verify. ``python -m stress.sweep OUT [FAULTS]``.

Each crash point runs on a fresh copy of a template repository (made with git) in its
own event loop, asyncio and trio alternating, through ``open_ref_store(fs=FaultyOS())``.
After the fault: the stack opens with the plain seam; every write acknowledged before the
fault is there; the faulted transaction is all or nothing (both refs and the reflog entry)
or, once acknowledged, all; our ``verify()`` finds no error; ``git refs verify`` is clean;
the locks the fault left (a dead process's, so proven abandoned) are removed and the
repository takes a new transaction and a full compaction. A failed syscall (ENOSPC,
EINTR) must come out as that OSError, unwrapped, or be absorbed (a cleanup step, the
background compaction), and the same store must go on working."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from aioreftable import LockError, RefStore, open_ref_store

from .faults import Crash, FaultyOS, eintr, enospc
from .profiles import Profile
from .repos import create_repo, find_git, git_env, run_git

CASES = ("addition", "compaction", "auto-compaction")
FAULTS = ("crash", "enospc", "eintr")
A, B, C = (f"refs/heads/sweep/{n}" for n in "abc")
PRELOAD = 300  # refs in the bottom table: a one-ref table beside it triggers no compaction
MAX_DETAILS = 50


@dataclass
class Result:
    """What the sweep found (summary.json's ``sweep``)."""

    crash_points: int = 0
    points: dict[str, int] = field(default_factory=dict)  # "case/fault" -> k tried
    lost_acknowledged: int = 0
    corrupt_stacks: int = 0
    violations: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    leftovers: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    slow_fsync: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    slow_points: list[str] = field(default_factory=list)  # a crash point over 1 s

    def note(self, kind: str, detail: str) -> None:
        if kind == "lost":
            self.lost_acknowledged += 1
        elif kind == "corrupt":
            self.corrupt_stacks += 1
        else:
            self.violations[kind] += 1
        if len(self.details) < MAX_DETAILS:
            self.details.append(f"{kind}: {detail}")

    def to_json(self) -> dict[str, Any]:
        return {
            "crash_points": self.crash_points,
            "points": self.points,
            "lost_acknowledged": self.lost_acknowledged,
            "corrupt_stacks": self.corrupt_stacks,
            "violations": dict(self.violations),
            "outcomes": dict(sorted(self.outcomes.items())),
            "leftovers": dict(self.leftovers),
            "slow_fsync": self.slow_fsync,
            "seconds": round(self.seconds, 1),
            "slow_points": self.slow_points[:20],
            "details": self.details,
        }


@dataclass
class Template:
    """A repository prepared for one case, and the states before and after its operation."""

    path: Path
    chain: list[str]
    before: dict[str, str]  # the sweep refs acknowledged before the fault
    after: dict[str, str]  # ... and once the operation under test is done


def prepare(git: str, root: Path, case: str) -> Template:
    """The template of ``case``, written by git: PRELOAD refs packed into one table, then
    (compaction and auto-compaction) three one-ref tables git leaves uncompacted."""
    profile = Profile(name="sweep", description="", counters=1, chain_length=8, lock_timeout_ms=0)
    repo = root / f"template-{case}"
    chain = create_repo(git, repo, profile)
    stdin = "".join(f"create refs/preload/{n:04d} {chain[n % 8]}\n" for n in range(PRELOAD))
    run_git(git, repo, "update-ref", "--stdin", data=stdin.encode())
    run_git(git, repo, "update-ref", "-m", "sweep", A, chain[1])
    run_git(git, repo, "pack-refs")
    before = {A: chain[1]}
    if case != "addition":
        env = {**git_env(), "GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
        for name, value in ((B, chain[2]), (A, chain[3])):
            subprocess.run(
                [git, "update-ref", "-m", "sweep", name, value], cwd=repo, env=env, check=True
            )
            before[name] = value
    after = dict(before)
    if case != "compaction":  # the transaction under test: update A, create C
        after.update({A: chain[5], C: chain[6]})
    return Template(repo, chain, before, after)


async def operate(store: RefStore, t: Template, case: str) -> bool:
    """The operation under test; True once the transaction was acknowledged."""
    if case == "compaction":
        await store.pack_refs()
        return True
    async with store.transaction(message="sweep: under test") as tx:
        tx.update(A, t.after[A], old=t.before[A])
        tx.create(C, t.after[C])
    return True


async def sweep_refs(store: RefStore) -> dict[str, str]:
    """A, B and C (not the refs written after the fault to show the store works)."""
    return {
        r.name: r.oid
        async for r in store.iterate("refs/heads/sweep/")
        if r.oid and r.name in (A, B, C)
    }


def tables(repo: Path) -> int:
    return len((repo / ".git" / "reftable" / "tables.list").read_text().split())


async def count(t: Template, case: str, work: Path) -> int:
    """The syscalls of the operation, unfaulted. ValueError when the case is not what it
    claims (a transaction that compacts, an auto-compaction that does not)."""
    d = work / "count"
    shutil.copytree(t.path, d, symlinks=True)
    before = tables(d)
    fs = FaultyOS()
    async with open_ref_store(d, fs=fs) as store:
        fs.arm(None)
        await operate(store, t, case)
    n, after = fs.count, tables(d)
    shutil.rmtree(d)
    expected = {"addition": after == before + 1, "compaction": after == 1}
    if not expected.get(case, after < before + 1):
        raise ValueError(f"{case}: {before} tables before, {after} after")
    return n


def git_verify(git: str, repo: Path) -> str:
    """``git refs verify``: its complaint, or "" when clean."""
    proc = subprocess.run(
        [git, "refs", "verify"], cwd=repo, capture_output=True, text=True, env=git_env()
    )
    if proc.returncode != 0 or "error" in proc.stderr:
        return f"exit {proc.returncode}: {proc.stderr.strip()[:300]}"
    return ""


def remove_locks(repo: Path) -> list[str]:
    """The fault's process is gone (this one never touches the copy again), so every lock
    in the stack is proven abandoned: the harness's policy removes it."""
    stack = repo / ".git" / "reftable"
    found = sorted(n for n in os.listdir(stack) if n.endswith(".lock"))
    for name in found:
        (stack / name).unlink()
    return found


async def check(
    res: Result, git: str, t: Template, d: Path, label: str, acked: bool, case: str
) -> None:
    """Reopen with the plain seam and check everything the sweep promises."""
    try:
        async with open_ref_store(d) as store:
            refs = await sweep_refs(store)
            log = [e.new for e in await store.reflog(A)]
            findings = [str(f) for f in await store.verify() if f.severity == "error"]
    except Exception as exc:  # a stack that does not open is corrupt
        res.note("corrupt", f"{label}: reopen: {type(exc).__name__}: {exc}")
        return
    if findings:
        res.note("corrupt", f"{label}: verify(): {findings[:3]}")
    complaint = await anyio.to_thread.run_sync(git_verify, git, d)
    if complaint:
        res.note("corrupt", f"{label}: git refs verify: {complaint}")
    for name, value in t.before.items():  # acknowledged before the fault, not changed by it
        if t.after[name] == value and refs.get(name) != value:
            res.note("lost", f"{label}: {name} is {refs.get(name)}, acknowledged {value}")
    if refs == t.after and t.after != t.before:
        res.outcomes["applied"] += 1
        if t.after[A] not in log:
            res.note("torn_transaction", f"{label}: applied without its reflog entry")
    elif refs == t.before:
        res.outcomes["not applied" if t.after != t.before else "intact"] += 1
        if acked and t.after != t.before:
            res.note("lost", f"{label}: the acknowledged transaction is not there: {refs}")
        if t.after != t.before and t.after[A] in log:
            res.note("torn_transaction", f"{label}: a reflog entry without its update")
    else:
        res.note("torn_transaction", f"{label}: {refs} is neither {t.before} nor {t.after}")
    for name in remove_locks(d):
        res.leftovers[name if name == "tables.list.lock" else "table lock"] += 1
    async with open_ref_store(d) as store:  # usable again
        async with store.transaction(message="sweep: after") as tx:
            tx.create(B + "-after", t.chain[7])
        await store.pack_refs()
        if await store.resolve(B + "-after") != t.chain[7]:
            res.note("unusable", f"{label}: the write after recovery is not there")


async def crash_point(
    res: Result,
    git: str,
    t: Template,
    case: str,
    k: int,
    d: Path,
    seam: Callable[[], FaultyOS] = FaultyOS,
) -> None:
    fs = seam()
    acked = False
    label = f"{case} crash@{k}"
    try:
        async with open_ref_store(d, fs=fs) as store:
            fs.arm(k, "crash")
            acked = await operate(store, t, case)
    except Crash:
        pass
    except BaseExceptionGroup as group:  # the background compaction crashed
        if group.subgroup(Crash) is None:
            raise
    if fs.failed_call is None:
        res.note("not_reached", f"{label}: only {fs.count} syscalls")
    fs.power_loss()
    await check(res, git, t, d, f"{label} ({fs.failed_call})", acked, case)


async def fail_point(
    res: Result, git: str, t: Template, case: str, k: int, d: Path, error: OSError
) -> None:
    fs = FaultyOS()
    acked = False
    label = f"{case} {errno.errorcode[error.errno or 0]}@{k}"

    def judge(exc: OSError) -> None:
        res.outcomes["error raised"] += 1
        if type(exc) is not type(error) or exc.errno != error.errno:  # EINTR: InterruptedError
            res.note("wrapped_error", f"{label}: {type(exc).__name__}: {exc}")

    same_store_checked = False
    try:
        async with open_ref_store(d, fs=fs) as store:
            fs.arm(k, "fail", error=error)
            try:
                acked = await operate(store, t, case)
            except OSError as exc:
                judge(exc)
            if fs.failed_call is not None:  # the fault hit the operation itself
                fs.disarm()
                await same_store(res, store, t, d, label)
                same_store_checked = True
            # else it hits the background compaction, which the store's exit waits for
    except OSError as exc:
        judge(exc)
    fs.disarm()
    if fs.failed_call is None:
        res.note("not_reached", f"{label}: only {fs.count} syscalls")
    elif not same_store_checked:
        res.outcomes["error absorbed" if acked else "error raised at close"] += 1
        async with open_ref_store(d, fs=fs) as store:
            await same_store(res, store, t, d, label)
    elif acked:
        res.outcomes["error absorbed"] += 1
    await check(res, git, t, d, f"{label} ({fs.failed_call})", acked, case)


async def same_store(res: Result, store: RefStore, t: Template, d: Path, label: str) -> None:
    """The store that met the error goes on: a lock it could not delete blocks clearly
    (LockError), and once removed the next transaction commits."""
    try:
        async with store.transaction(message="sweep: same store") as tx:
            tx.create(C + "-same", t.chain[4])
    except LockError:
        res.outcomes["LockError, then removed"] += 1
        remove_locks(d)
        async with store.transaction(message="sweep: same store") as tx:
            tx.create(C + "-same", t.chain[4])
    if await store.resolve(C + "-same") != t.chain[4]:
        res.note("unusable", f"{label}: the same store lost its next write")


def one(fn: Callable[..., Any], *args: Any, backend: str) -> None:
    anyio.run(partial(fn, *args), backend=backend)


async def slow_fsync(res: Result, git: str, t: Template, d: Path) -> None:
    """A disk whose fsyncs take 0.15 s each: the commit waits for them in a worker thread,
    reads of the same store go on meanwhile, and the commit is acknowledged and there."""
    fs = FaultyOS()
    fs.fsync_delay = 0.15
    reads = 0
    async with open_ref_store(d, fs=fs) as store:
        done = anyio.Event()

        async def reader() -> None:
            nonlocal reads
            while not done.is_set():
                await store.resolve(A)
                reads += 1
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            start = time.monotonic()
            await operate(store, t, "addition")
            took = time.monotonic() - start
            done.set()
    res.slow_fsync = {"fsync_delay_s": 0.15, "commit_s": round(took, 3), "reads_meanwhile": reads}
    if took < 0.3 or reads < 5:
        res.note("slow_fsync", f"commit took {took:.3f} s, {reads} reads meanwhile")
    await check(res, git, t, d, "slow fsync", True, "addition")


def run_sweep(out: Path, faults: tuple[str, ...] = FAULTS) -> Result:
    """The whole sweep in ``out`` (created); also writes ``out/sweep.json``."""
    started = time.monotonic()
    git = find_git()
    out.mkdir(parents=True)
    # the library logs the injected errors its background compaction absorbs: to a file
    handler = logging.FileHandler(out / "sweep.log")
    logging.getLogger("aioreftable").addHandler(handler)
    logging.getLogger("aioreftable").propagate = False
    res = Result()
    for case in CASES:
        t = prepare(git, out, case)
        total = 0
        for backend in ("asyncio", "trio"):  # the same syscalls on both
            n: list[int] = []
            anyio.run(count_into, t, case, out, n, backend=backend)
            if total and n[0] != total:
                res.note("nondeterministic", f"{case}: {total} syscalls, then {n[0]}")
            total = n[0]
        for fault in faults:
            for k in range(1, total + 1):
                d = out / f"{case}-{fault}-{k}"
                began = time.monotonic()
                shutil.copytree(t.path, d, symlinks=True)
                backend = ("asyncio", "trio")[k % 2]
                if fault == "crash":
                    one(crash_point, res, git, t, case, k, d, backend=backend)
                else:
                    error = enospc() if fault == "enospc" else eintr()
                    one(fail_point, res, git, t, case, k, d, error, backend=backend)
                shutil.rmtree(d)
                res.crash_points += 1
                took = time.monotonic() - began
                if took > 1.0:
                    res.slow_points.append(f"{case}/{fault}@{k} ({backend}): {took:.1f} s")
            res.points[f"{case}/{fault}"] = total
        if case == "addition":
            d = out / "slow-fsync"
            shutil.copytree(t.path, d, symlinks=True)
            one(slow_fsync, res, git, t, d, backend="trio")
    res.seconds = time.monotonic() - started
    (out / "sweep.json").write_text(json.dumps(res.to_json(), indent=2) + "\n")
    return res


async def count_into(t: Template, case: str, work: Path, into: list[int]) -> None:
    into.append(await count(t, case, work))


def main() -> None:
    out = Path(sys.argv[1])
    faults = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else FAULTS
    res = run_sweep(out, faults)
    print(json.dumps({k: v for k, v in res.to_json().items() if k != "details"}))
    sys.exit(1 if res.lost_acknowledged or res.corrupt_stacks or res.violations else 0)


if __name__ == "__main__":
    main()
