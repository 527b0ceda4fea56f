"""Run profiles and named scenarios: how many processes, which workloads, for how long."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# Workloads of an aioreftable worker task, by name (see stress/workloads.py).
WORKLOADS = (
    "counter",  # CAS increment of a shared counter ref, retried on IncorrectOldValueError
    "private",  # create/update/delete of a ref only this task writes
    "multi",  # one transaction over 2-3 private refs (all or nothing)
    "batch",  # a batch with planted rejections (wrong old value, create of an existing ref)
    "symref",  # flip a private symref between two counters
    "expire",  # reflog expiry: a counter's (prunes nothing) or a private ref's (prunes all)
    "compact_auto",  # optimize(auto=True): git's geometric heuristic, then clean
    "compact_full",  # pack_refs(): everything into one table (LockError allowed)
    "reader",  # iterate refs/, check the snapshot's invariants
    "mass",  # create then delete 200 private refs in one transaction each (tombstones)
    "worktree",  # one transaction over a linked worktree's stack and the main stack
    "feed",  # a change-feed consumer of the counters for 1-3 s: every change once, in order
)

# Operations of a git writer process (real git commands).
GIT_WORKLOADS = (
    "counter",  # git rev-parse + git update-ref NEW OLD (CAS), retried on a conflict
    "private",  # git update-ref of the writer's own refs (create/update/delete)
    "pack_refs",  # git pack-refs (git pack-refs --auto half of the time)
    "expire",  # git reflog expire --expire=now on the writer's own refs
)


@dataclass
class Profile:
    """Everything a run needs; written to ``run.json`` and passed to every worker."""

    name: str
    description: str
    processes: int = 2
    tasks: int = 4
    git_writers: int = 0
    duration: float = 20.0  # seconds; the run also ends when every worker met its quota
    ops_per_worker: int = 0  # acknowledged operations per worker process (0: no quota)
    repos: int = 1
    backend: str = "mixed"  # asyncio, trio, or mixed (workers alternate)
    uvloop: bool = True  # asyncio workers use uvloop when it is installed
    counters: int = 3
    private_names: int = 6  # private refs per task
    chain_length: int = 20000  # commits available as counter values
    lock_timeout_ms: int = 10000  # reftable.lockTimeout of the repositories
    weights: dict[str, int] = field(default_factory=dict)
    git_weights: dict[str, int] = field(default_factory=dict)
    kill: bool = False
    kill_interval: tuple[float, float] = (1.0, 3.0)  # seconds between kills, uniform
    kill_git: bool = True  # git writer processes may be killed too
    preload_refs: int = 0  # refs created before the run (one table; makes compaction long)
    stale_table_lock: bool = False  # plant a crashed compactor's <table>.ref.lock first
    worktree: bool = False  # a linked worktree per repository; odd workers open the store there
    pause_grace: float = 0.5  # seconds in-flight operations get before a pause cancels them
    git_autocompact: bool = True  # False: git writers leave compaction to others (the daemon)
    gc_daemon: bool = False  # `aioreftable gc --daemon` beside the writers (killed with --kill)
    # violation kinds reported under summary.json's known_issues instead of failing the run:
    # library bugs found by the harness and reported, until they are fixed
    known_issues: list[str] = field(default_factory=list)
    sweep: str = ""  # faults of the crash-point sweep run beside the workers: crash,enospc,eintr
    seed: int = 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        data = dict(data)
        data["kill_interval"] = tuple(data["kill_interval"])
        return cls(**data)

    def weight_list(self) -> tuple[list[str], list[int]]:
        names = [w for w in WORKLOADS if self.weights.get(w, 0) > 0]
        return names, [self.weights[w] for w in names]

    def git_weight_list(self) -> tuple[list[str], list[int]]:
        names = [w for w in GIT_WORKLOADS if self.git_weights.get(w, 0) > 0]
        return names, [self.git_weights[w] for w in names]

    def check(self) -> None:
        """Refuse a profile that cannot run (ValueError with the reason)."""
        unknown = set(self.weights) - set(WORKLOADS)
        unknown |= {f"git:{w}" for w in set(self.git_weights) - set(GIT_WORKLOADS)}
        if unknown:
            raise ValueError(f"unknown workloads: {', '.join(sorted(unknown))}")
        if self.processes < 0 or self.git_writers < 0:
            raise ValueError("worker counts cannot be negative")
        if self.processes + self.git_writers < 1 and not self.sweep:
            raise ValueError("a run needs at least one worker process or the sweep")
        if set(filter(None, self.sweep.split(","))) - {"crash", "enospc", "eintr"}:
            raise ValueError(f"unknown sweep faults {self.sweep!r} (crash, enospc, eintr)")
        if self.tasks < 1 or self.repos < 1 or self.counters < 1 or self.private_names < 4:
            raise ValueError("tasks, repos and counters must be >= 1, private_names >= 4")
        if self.processes and not self.weight_list()[0]:
            raise ValueError("aioreftable workers need at least one workload with a weight")
        if self.git_writers and not self.git_weight_list()[0]:
            raise ValueError("git writers need at least one git workload with a weight")
        if self.backend not in ("asyncio", "trio", "mixed"):
            raise ValueError(f"unknown backend {self.backend!r}")
        if self.ops_per_worker and self.kill:
            raise ValueError("a run with an operation quota cannot kill workers")
        if self.duration <= 0:
            raise ValueError("duration must be positive")


MIX = {
    "counter": 30,
    "private": 20,
    "multi": 8,
    "batch": 6,
    "symref": 4,
    "expire": 3,
    "compact_auto": 3,
    "compact_full": 1,
    "reader": 15,
    "mass": 1,
    "feed": 2,
}
GIT_MIX = {"counter": 6, "private": 3, "pack_refs": 1, "expire": 1}


def _p(name: str, description: str, **kw: Any) -> Profile:
    kw.setdefault("weights", dict(MIX))
    kw.setdefault("git_weights", dict(GIT_MIX))
    return Profile(name=name, description=description, **kw)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        _p(
            "smoke",
            "10 s, 2 processes x 4 tasks + 1 git writer, every workload, no kills",
            duration=10,
            git_writers=1,
            lock_timeout_ms=5000,
        ),
        _p(
            "quick",
            "CI: 60 s, 4 processes x 8 tasks + 2 git writers, every workload, SIGKILLs, "
            "the gc daemon, change-feed consumers, and beside them the crash-point sweep "
            "(crash + power cut, ENOSPC, EINTR)",
            sweep="crash,enospc,eintr",
            gc_daemon=True,
            processes=4,
            tasks=8,
            git_writers=2,
            duration=60,
            kill=True,
            kill_interval=(1.5, 4.0),
            lock_timeout_ms=3000,
        ),
        _p(
            "soak",
            "users: 30 min, 6 processes x 8 tasks + 2 git writers + the gc daemon on 2 "
            "repositories, SIGKILLs, the crash-point sweep",
            sweep="crash,enospc,eintr",
            gc_daemon=True,
            processes=6,
            tasks=8,
            git_writers=2,
            repos=2,
            duration=1800,
            kill=True,
            kill_interval=(0.5, 2.0),
            lock_timeout_ms=3000,
            chain_length=200000,
        ),
        _p(
            "counters-exact",
            "6 aioreftable + 2 git writer processes x 500 CAS increments each, exact counters",
            processes=6,
            tasks=4,
            git_writers=2,
            duration=1800,
            ops_per_worker=500,
            counters=2,
            weights={"counter": 1},
            git_weights={"counter": 1},
            lock_timeout_ms=20000,
        ),
    ]
}

SCENARIOS: dict[str, Profile] = {
    p.name: p
    for p in [
        _p(
            "appenders-timeout",
            "N concurrent appenders (6 processes x 8 tasks) with a 10 s lock timeout: "
            "no LockError expected, nothing lost",
            processes=6,
            tasks=8,
            duration=15,
            weights={"private": 10, "counter": 3, "multi": 2},
        ),
        _p(
            "appenders-no-timeout",
            "N concurrent appenders with reftable.lockTimeout=0: LockErrors are expected "
            "(counted under failures), nothing acknowledged may be lost",
            processes=6,
            tasks=8,
            duration=15,
            lock_timeout_ms=0,
            weights={"private": 10, "counter": 3, "multi": 2},
        ),
        _p(
            "appends-during-compaction",
            "appends while full compactions merge a 20,000-ref stack (long compactions)",
            processes=4,
            tasks=6,
            duration=20,
            preload_refs=20000,
            weights={"private": 10, "counter": 4, "compact_full": 2, "reader": 2},
        ),
        _p(
            "disjoint-compactions",
            "many concurrent auto-compactions (disjoint ranges, best effort) among appenders",
            processes=4,
            tasks=6,
            duration=15,
            weights={"private": 6, "compact_auto": 6, "counter": 2},
        ),
        _p(
            "stale-table-lock",
            "a crashed compactor's <table>.ref.lock on the bottom table: auto-compaction works "
            "around it, pack_refs gets LockError, the harness reports and removes it at the end",
            processes=3,
            tasks=6,
            duration=15,
            stale_table_lock=True,
            weights={"private": 8, "compact_auto": 4, "compact_full": 1, "counter": 2},
        ),
        _p(
            "readers-vs-compaction",
            "readers iterate every ref while others delete refs and compact tables away",
            processes=4,
            tasks=6,
            duration=15,
            preload_refs=3000,
            weights={
                "reader": 10,
                "private": 6,
                "compact_full": 2,
                "compact_auto": 2,
                "counter": 2,
            },
        ),
        _p(
            "stat-aba",
            "the stat/inode ABA: churn (create, delete) and full compactions that bring the "
            "stack back to the same size, while other processes check read-your-writes and "
            "counters that never go backwards",
            processes=4,
            tasks=4,
            duration=15,
            weights={"private": 8, "compact_full": 4, "counter": 4, "reader": 4},
        ),
        _p(
            "killed-writers",
            "SIGKILL writers (ours and git) mid-commit and mid-compaction; locks and temp files "
            "left are reported, abandoned locks removed under the stated policy",
            processes=3,
            tasks=6,
            git_writers=1,
            duration=30,
            kill=True,
            kill_interval=(0.5, 1.5),
            lock_timeout_ms=3000,
            weights={"counter": 5, "private": 5, "multi": 2, "compact_auto": 2, "compact_full": 1},
        ),
        _p(
            "mass-delete-recreate",
            "tombstone-heavy stacks: 200 refs created then deleted in one transaction, again "
            "and again (the case git 2.56 made fast)",
            processes=3,
            tasks=4,
            duration=15,
            weights={"mass": 6, "reader": 2, "counter": 2, "compact_auto": 1},
        ),
        _p(
            "reflog-expiry-racing",
            "reflog expiry of the counters' reflogs (pruning nothing) racing CAS increments: "
            "every acknowledged increment must stay in the reflog, in order",
            processes=4,
            tasks=6,
            git_writers=1,
            duration=15,
            weights={"counter": 6, "expire": 4},
            git_weights={"counter": 3, "expire": 1},
        ),
        _p(
            "pack-refs-racing",
            "git pack-refs and our pack_refs/optimize (which clean) racing writers",
            processes=3,
            tasks=6,
            git_writers=2,
            duration=15,
            weights={"private": 6, "counter": 3, "compact_full": 2, "compact_auto": 2},
            git_weights={"pack_refs": 3, "private": 2, "counter": 2},
        ),
        _p(
            "worktree-transactions",
            "transactions over a linked worktree's stack (refs/worktree/) and the main stack "
            "(refs/heads/) from the worktree, beside writers in the main worktree",
            processes=4,
            tasks=4,
            duration=15,
            worktree=True,
            weights={"worktree": 6, "private": 3, "multi": 2, "counter": 2, "reader": 2},
        ),
        _p(
            "gc-daemon",
            "the gc daemon (aioreftable gc --daemon) compacting beside our writers and git "
            "writers that do not compact, SIGKILLed and restarted with the others",
            processes=2,
            tasks=4,
            git_writers=3,
            git_autocompact=False,
            gc_daemon=True,
            duration=30,
            kill=True,
            kill_interval=(2.0, 5.0),
            lock_timeout_ms=3000,
            # few writes of ours (each auto-compacts): git's tables are the daemon's work
            weights={"counter": 2, "private": 1, "reader": 2, "feed": 2},
            git_weights={"counter": 4, "private": 4},
        ),
        _p(
            "feed-consumers",
            "change-feed consumers of the counters (every change once, in order, across "
            "compactions) while writers increment them and compact",
            processes=3,
            tasks=6,
            git_writers=1,
            duration=20,
            weights={"feed": 4, "counter": 8, "compact_auto": 2, "compact_full": 1},
            git_weights={"counter": 4, "pack_refs": 1},
        ),
        _p(
            "crash-sweep",
            "the deterministic crash-point sweep alone: at every syscall k of a ref "
            "transaction, a full compaction and an auto-compaction after a transaction, "
            "crash + power cut, ENOSPC, EINTR; reopen, verify, git refs verify; slow fsync",
            processes=0,
            git_writers=0,
            sweep="crash,enospc,eintr",
        ),
        _p(
            "power-cut",
            "a power cut emulated in the seam at every syscall k of a transaction, a "
            "compaction and an auto-compaction (unsynced data and directory entries dropped)",
            processes=0,
            git_writers=0,
            sweep="crash",
        ),
        _p(
            "mixed-git",
            "mixed git and aioreftable writers incrementing the same counters on one repository",
            processes=3,
            tasks=4,
            git_writers=3,
            duration=15,
            weights={"counter": 6, "private": 2, "reader": 2},
            git_weights={"counter": 6, "private": 2},
        ),
    ]
}

# Scenarios of issue 15 that need a hook the public API does not offer (see docs/stress.md).
NOT_AVAILABLE: dict[str, str] = {}


def find(name: str) -> Profile:
    """The profile or scenario called ``name`` (KeyError if none)."""
    if name in PROFILES:
        return copy.deepcopy(PROFILES[name])
    if name in SCENARIOS:
        return copy.deepcopy(SCENARIOS[name])
    raise KeyError(name)
