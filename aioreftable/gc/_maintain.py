"""One pass over one stack: reflog expiry, geometric or full compaction, cleaning (public API
only: open_ref_store for the repository's config and reflogs, open_stack for the stack)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio.to_thread

from .. import (
    ExpirePolicy,
    LockError,
    OutdatedError,
    RefStore,
    ReftableError,
    Snapshot,
    open_ref_store,
    open_stack,
)
from ..lowlevel import suggest_compaction_segment

__all__ = ["Pass", "Plan", "run_pass"]

_MAX_AUTO_ROUNDS = 4  # auto-compaction rounds per pass (best effort can leave work behind)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a pass may do; the stack's state decides what it does."""

    stack_dir: str
    git_dir: str
    lock_timeout: float
    max_tables: int
    full: bool  # the full-compaction schedule is due
    reflog_cutoff: int | None  # prune reflog entries older than this (epoch seconds)
    clean: bool  # delete stale tables after a compaction or when leftovers were seen
    leftovers: bool  # the directory holds unlisted tables or our temp files
    env: Mapping[str, str]


@dataclass(slots=True)
class Pass:
    """What a pass did (for logs and metrics)."""

    tables_before: int = 0
    tables_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    kind: str | None = None  # "auto" or "full" when it compacted
    compactions: int = 0
    seconds: float = 0.0
    gave_up: str | None = None  # "lock" or "outdated": a step given up for a writer
    expired_entries: int = 0
    expired_refs: int = 0
    cleaned: list[str] = field(default_factory=list)
    lock_waits: int = 0
    lock_wait_seconds: float = 0.0


def _expirable(snap: Snapshot, cutoff: int, null: bytes) -> list[str]:
    """Names with a live reflog entry older than ``cutoff`` (blocking reads: a thread)."""
    names: list[str] = []
    last: bytes | None = None
    for log in snap.iter_logs():
        if log.refname == last or log.is_deletion:
            continue
        if log.time < cutoff and (log.old_id != null or log.new_id != null):
            last = log.refname
            names.append(log.refname.decode("utf-8", "surrogateescape"))
    return names


async def _expire(store: RefStore, plan: Plan, snap: Snapshot, done: Pass) -> None:
    assert plan.reflog_cutoff is not None
    null = bytes(store.hexsz // 2)
    names = await anyio.to_thread.run_sync(_expirable, snap, plan.reflog_cutoff, null)
    policy = ExpirePolicy(expire=plan.reflog_cutoff)
    for name in names:
        try:
            key, _ = store.route(name)
        except ReftableError:
            continue
        if str(store.worktree_stack_dir(key)) != plan.stack_dir:
            continue  # a name this stack holds but git routes elsewhere: not ours to expire
        pruned = await store.expire_reflog(name, policy)
        if pruned:
            done.expired_refs += 1
            done.expired_entries += len(pruned)


async def run_pass(plan: Plan) -> Pass:
    """Open the repository (config) and the stack, and do what the plan and the stack's
    state call for. A step that would make a writer wait is given up (``Pass.gave_up``);
    other errors propagate."""
    done = Pass()
    async with open_ref_store(plan.git_dir, env=plan.env, object_database=False) as store:
        options = dataclasses.replace(
            store.config.stack_options(), lock_timeout=plan.lock_timeout, auto_compact=False
        )
        async with open_stack(plan.stack_dir, options) as stack:
            snap = await stack.snapshot()
            done.tables_before = len(snap)
            done.bytes_before = sum(snap.file_sizes)
            try:
                if plan.reflog_cutoff is not None:
                    await _expire(store, plan, snap, done)
                    snap = await stack.snapshot()
                start = time.monotonic()
                if len(snap) >= 2 and (plan.full or 0 < plan.max_tables < len(snap)):
                    if await stack.compact_all():
                        done.kind, done.compactions = "full", 1
                else:
                    for _ in range(_MAX_AUTO_ROUNDS):
                        sizes = snap.effective_sizes
                        if suggest_compaction_segment(sizes, options.geometric_factor) is None:
                            break
                        if not await stack.auto_compact():
                            break
                        done.kind = "auto"
                        done.compactions += 1
                        snap = await stack.snapshot()
                done.seconds = time.monotonic() - start
                if plan.clean and (done.compactions or plan.leftovers):
                    done.cleaned = await stack.clean()
            except LockError:
                done.gave_up = "lock"
            except OutdatedError:
                done.gave_up = "outdated"
            stats = stack.statistics()
            done.tables_after, done.bytes_after = stats.tables, stats.bytes
            done.lock_waits, done.lock_wait_seconds = stats.lock_waits, stats.lock_wait_seconds
    return done
