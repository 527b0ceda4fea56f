"""One pass over one stack: reflog expiry, geometric or full compaction, cleaning (public API
only: open_ref_store for the repository's config and reflogs, open_stack for the stack)."""

from __future__ import annotations

import contextlib
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
    Stack,
    open_ref_store,
    open_stack,
)
from ..lowlevel import suggest_compaction_segment

__all__ = ["Pass", "Plan", "run_pass"]

_MAX_STEPS = 32  # compaction steps per pass (the daemon queues the stack again for more)
_OUTDATED_RETRIES = 2  # a range that writers outdated (each try holds the list lock): choose again


@dataclass(frozen=True, slots=True)
class Plan:
    """What a pass may do; the stack's state decides what it does."""

    stack_dir: str
    git_dir: str
    lock_timeout: float
    max_tables: int
    tables_per_step: int  # the most tables one compaction step locks and merges
    step_pause: float  # seconds between two compaction steps of one pass
    full: bool  # the full-compaction schedule is due
    reflog_cutoff: int | None  # prune reflog entries older than this (epoch seconds)
    clean: bool  # delete stale tables when leftovers were seen
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
    more: bool = False  # the pass stopped after _MAX_STEPS: work is left
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


def _choose(snap: Snapshot, factor: int, per_step: int, full: bool) -> tuple[int, int] | None:
    """The next step: (first, last) tables to merge, (0, -1) for git's whole rule at
    once (auto_compact, or compact_all when ``full``), None when nothing is left to do."""
    n = len(snap)
    if n < 2:
        return None
    segment = suggest_compaction_segment(snap.effective_sizes, factor)
    if full and n <= per_step:
        return 0, -1
    if segment is None:
        if not full:
            return None
        segment = (0, n)
    start, end = segment
    if end - start <= per_step and not full:
        return 0, -1
    # a deep stack: a bounded run from the bottom of git's segment, so that no step holds
    # tables.list.lock while it locks or unlinks hundreds of tables
    return start, min(end, start + per_step) - 1


async def _compact(stack: Stack, plan: Plan, factor: int, done: Pass) -> None:
    """Geometric compaction (git's rule), or full compaction when the schedule is due or
    the stack has more than ``max_tables`` tables, in steps of at most
    ``tables_per_step`` tables."""
    full = plan.full or 0 < plan.max_tables < len(await stack.snapshot())
    outdated = 0
    for _ in range(_MAX_STEPS):
        snap = await stack.snapshot()
        step = _choose(snap, factor, plan.tables_per_step, full)
        if step is None:
            return
        first, last = step
        try:
            if last >= 0:
                did = await stack.compact_range(first, last)
            elif full:
                did = await stack.compact_all()
            else:
                did = await stack.auto_compact()
        except OutdatedError:
            outdated += 1
            if outdated > _OUTDATED_RETRIES:
                raise
            continue
        if not did:
            return
        done.kind = "full" if full else "auto"
        done.compactions += 1
        if full and last < 0:
            return
        # writers get the lock between our steps (each step takes it twice)
        await anyio.sleep(plan.step_pause)
    done.more = True


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
                await _compact(stack, plan, options.geometric_factor, done)
                done.seconds = time.monotonic() - start
                # compaction unlinks what it replaced; clean() (one more hold of the list
                # lock, with a directory scan under it) only when leftovers were seen
                if plan.clean and plan.leftovers:
                    # clean never waits for a writer; a later pass cleans
                    with contextlib.suppress(LockError):
                        done.cleaned = await stack.clean()
            except LockError:
                done.gave_up = "lock"
            except OutdatedError:
                done.gave_up = "outdated"
            stats = stack.statistics()
            done.tables_after, done.bytes_after = stats.tables, stats.bytes
            done.lock_waits, done.lock_wait_seconds = stats.lock_waits, stats.lock_wait_seconds
    return done
