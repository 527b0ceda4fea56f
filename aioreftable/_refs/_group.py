"""Group commit: the transactions one process commits at once to one stack share one lock
and one table, each with its own checks, update index and reflog entries.

While a batch holds ``tables.list.lock`` and writes, the next one gathers. The first
transaction to arrive while no batch runs leads: it seals the batch (every transaction
waiting, up to ``max_batch``), runs it and hands the lead to the next waiter. Under the
lock the batch reloads the stack and runs each transaction's prepare (git's protocol,
unchanged) against the state the transactions before it leave, in submission order: a
transaction that fails its checks is rejected alone; each one accepted is written as a
table in memory that the next one reads through; at the end their records form one
table, one update index per transaction.
"""

from __future__ import annotations

import copy
import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import final

import anyio
import anyio.lowlevel

from .._format._reader import TableReader
from .._format._records import LogRecord, RefRecord
from .._format._writer import TableWriter, WriteOptions
from .._stack import Addition, Snapshot, Stack
from ._core import RefCore, StackKey
from ._ident import Committer
from ._peel import ObjectInfo
from ._transaction import BorrowedAddition, Commit, StackWork, Update, _OutsideGroup

__all__ = ["GroupCommit", "GroupCommitter", "GroupStatistics"]


@dataclass(frozen=True, slots=True)
class GroupCommit:
    """Settings of group commit (``open_ref_store(..., group_commit=GroupCommit(...))``).

    ``max_batch``: most transactions in one table; ``delay``: seconds the leader waits
    for more transactions before sealing (0: gather only what queued while the previous
    batch was writing)."""

    max_batch: int = 256
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not self.delay >= 0:
            raise ValueError(f"delay must be >= 0 seconds, got {self.delay}")


@dataclass(slots=True)
class GroupStatistics:
    """Counters of one store's group commit (this process only)."""

    batches: int = 0  # tables written (or attempted) by batches
    transactions: int = 0  # transactions committed through batches
    rejected: int = 0  # transactions a batch rejected (their own checks failed)
    deferred: int = 0  # times a transaction waited for the next batch (a ref in common)
    replanned: int = 0  # batches planned again under the lock (the stack had changed)
    alone: int = 0  # transactions committed on their own (several stacks)
    largest: int = 0  # most transactions in one batch


class _State(enum.Enum):
    QUEUED = "queued"  # waiting; cancelling withdraws it
    SEALED = "sealed"  # in the running batch: it commits or fails with it
    DONE = "done"


@dataclass(eq=False, slots=True)
class _Pending:
    """One transaction waiting for (or inside) a batch."""

    updates: list[Update]
    committer: Committer
    objects: dict[str, ObjectInfo | None]
    wake: anyio.Event = field(default_factory=anyio.Event)
    state: _State = _State.QUEUED
    lead: bool = False  # woken to lead the next batch
    alone: bool = False  # woken to commit on its own
    error: BaseException | None = None
    update_index: int | None = None  # once committed: its own index in the batch's table

    def finish(self, error: BaseException | None, update_index: int | None = None) -> None:
        self.state, self.error, self.update_index = _State.DONE, error, update_index
        self.wake.set()


@final
class GroupCommitter:
    """The batches of one store: one queue per stack (main, or this worktree's)."""

    def __init__(self, core: RefCore, settings: GroupCommit):
        self.core = core
        self.settings = settings
        self.stats = GroupStatistics()
        self._queues: dict[StackKey, _Queue] = {}

    async def commit(self, updates: list[Update]) -> int | None:
        """Commit one transaction's updates; returns once its table is durable, with the
        update index its records were written at (None if it wrote nothing)."""
        if not updates:
            return None
        keys = {self.core.route(u.refname)[0] for u in updates}
        key = keys.pop() if len(keys) == 1 else None
        if key not in ("main", "current"):  # several stacks, or another worktree's
            self.stats.alone += 1
            alone: Commit[None] = Commit(self.core, updates)
            await alone.run()
            return alone.update_index
        probe: Commit[None] = Commit(self.core, updates)
        committer = await probe.gather()  # identity and objects: before any lock
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(self, key)
        return await queue.submit(_Pending(updates, committer, probe.objects))


@final
class _Queue:
    """Transactions for one stack: who waits, who leads, and the batch run."""

    def __init__(self, group: GroupCommitter, key: StackKey):
        self.group = group
        self.key = key
        self.waiting: deque[_Pending] = deque()
        self.leading = False

    async def submit(self, p: _Pending) -> int | None:
        self.waiting.append(p)
        if self.leading:
            try:
                await p.wake.wait()  # set once: to lead, to commit alone, or when done
            except anyio.get_cancelled_exc_class():
                await self._withdraw(p)
                raise
        else:
            self.leading = p.lead = True
        if p.lead and p.state is _State.QUEUED:
            await self._lead(p)
            await anyio.lowlevel.checkpoint_if_cancelled()  # cancelled while sealed
        if p.alone:
            return await self._alone(p)
        if p.error is not None:
            raise p.error
        return p.update_index

    async def _withdraw(self, p: _Pending) -> None:
        """A waiter was cancelled: if its batch is sealed, wait for the batch (the
        transaction commits or fails with it); if not, withdraw it without trace."""
        while p.state is _State.SEALED:
            with anyio.CancelScope(shield=True):
                await p.wake.wait()
        if p.state is _State.QUEUED:
            if p in self.waiting:
                self.waiting.remove(p)
            if p.lead:
                self._hand_off()

    async def _alone(self, p: _Pending) -> int | None:
        self.group.stats.alone += 1
        commit: Commit[None] = Commit(self.group.core, _copies(p.updates))
        commit.objects = p.objects
        await commit.execute(p.committer)
        return commit.update_index

    async def _lead(self, p: _Pending) -> None:
        try:
            if self.group.settings.delay:
                await anyio.sleep(self.group.settings.delay)  # cancelled: p is withdrawn
            batch = self._seal()
        except BaseException:
            if p.state is _State.QUEUED:
                self.waiting.remove(p)
            self._hand_off()
            raise
        try:
            with anyio.CancelScope(shield=True):  # sealed: the batch runs to its end
                await self._run(batch)
        finally:
            self._hand_off()

    def _seal(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self.waiting and len(batch) < self.group.settings.max_batch:
            p = self.waiting.popleft()
            p.state = _State.SEALED
            batch.append(p)
        return batch

    def _hand_off(self) -> None:
        """The next waiter leads (it seals what gathered meanwhile), or nobody does."""
        if self.waiting:
            nxt = self.waiting[0]
            nxt.lead = True
            nxt.wake.set()
        else:
            self.leading = False

    async def _run(self, batch: list[_Pending]) -> None:
        """Plan the batch against the stack as it is, then lock: if nobody committed
        meanwhile (the same max update index: a compaction alone changes no ref, no
        reflog entry a plan reads), write the planned table (the lock is held only for the
        I/O, so git's writers get their turns); else plan again under the lock (git's
        protocol)."""
        group = self.group
        stack = group.core.main if self.key == "main" else group.core.own_stack
        group.stats.batches += 1
        plan = await self._plan(stack, await stack.snapshot(), batch)
        try:
            async with stack.addition(exact_log_message=True) as add:
                if add.snapshot.max_update_index != plan.base.max_update_index:
                    group.stats.replanned += 1
                    plan = await self._plan(stack, add.snapshot, batch)
                if plan.tables:
                    add.writer.set_limits(add.update_index, plan.last_index)
                    _copy_records(add.writer, plan.tables)
        except BaseException as exc:
            for p in batch:
                if p not in plan.later and p not in plan.alone:
                    p.finish(exc)
            raise
        finally:
            for p in plan.alone:  # out of the batch: it commits on its own
                p.alone = True
                p.state = _State.QUEUED
                p.wake.set()
            for p in reversed(plan.later):  # first in line for the next batch, in order
                p.state = _State.QUEUED
                self.waiting.appendleft(p)
        for p, error in plan.rejected:
            p.finish(error)
        for p in plan.accepted:
            p.finish(None, plan.indexes.get(id(p)))
        group.stats.transactions += len(plan.accepted)
        group.stats.rejected += len(plan.rejected)
        group.stats.deferred += len(plan.later)
        group.stats.largest = max(group.stats.largest, len(plan.accepted))

    async def _plan(self, stack: Stack, base: Snapshot, batch: list[_Pending]) -> _Plan:
        """Each transaction against the state the ones before it leave (no side effect:
        the plan holds the outcomes and the accepted transactions' tables)."""
        plan = _Plan(base, base.next_update_index - 1)
        snap, index = base, base.next_update_index
        taken: set[str] = set()
        tables = _Pile(base, stack.options.write_options)
        for p in batch:
            if any(u.refname in taken for u in p.updates):
                plan.later.append(p)  # a ref in common: the next batch
                continue
            writer = TableWriter(stack.options.write_options)
            writer.set_limits(index, index)
            mine = Addition(snap, index, writer)
            work = StackWork(stack, BorrowedAddition(mine), mine)
            commit: Commit[None] = Commit(
                self.group.core, _copies(p.updates), borrowed={self.key: work}
            )
            commit.objects = p.objects
            try:
                await commit.execute(p.committer)
            except _OutsideGroup:
                plan.alone.append(p)
                continue
            except Exception as exc:  # this transaction's own failure
                plan.rejected.append((p, exc))
                continue
            if not taken.isdisjoint(commit.affected):  # a ref in common through a symref or HEAD
                plan.later.append(p)
                continue
            taken.update(commit.affected)
            plan.accepted.append(p)
            if writer.record_count:
                plan.indexes[id(p)] = index
                snap = tables.push(writer)
                plan.last_index = index
                index += 1
        plan.tables = tables.tables
        return plan


@dataclass(eq=False, slots=True)
class _Plan:
    """A batch's outcome against one state (``base``), before it is written."""

    base: Snapshot
    last_index: int  # the last accepted transaction's update index
    accepted: list[_Pending] = field(default_factory=list)
    rejected: list[tuple[_Pending, Exception]] = field(default_factory=list)
    later: list[_Pending] = field(default_factory=list)  # wait for the next batch
    alone: list[_Pending] = field(default_factory=list)  # touch another stack
    tables: list[TableReader] = field(default_factory=list)
    indexes: dict[int, int] = field(default_factory=dict)  # id(accepted) -> its index


def _copies(updates: Sequence[Update]) -> list[Update]:
    """Fresh updates for one attempt (prepare marks the ones it is given)."""
    return [copy.copy(u) for u in updates]


@final
class _Pile:
    """The accepted transactions' tables in memory, on top of the locked stack's state.

    Kept geometric as git keeps a stack (a table is merged into the one below it while
    it is at least half that one's size), so a batch of n transactions reads through
    O(log n) tables and writes O(n log n) records in all."""

    def __init__(self, base: Snapshot, options: WriteOptions):
        self.base = base
        self.options = replace(options, exact_log_message=True)  # already normalized
        self.tables: list[TableReader] = []
        self.counts: list[int] = []

    def push(self, writer: TableWriter) -> Snapshot:
        """Add one transaction's table; the state with it on top."""
        count = writer.record_count
        self.tables.append(TableReader.from_bytes(writer.finish(), name="(batch)"))
        self.counts.append(count)
        while len(self.tables) > 1 and 2 * self.counts[-1] >= self.counts[-2]:
            newer, older = self.tables.pop(), self.tables.pop()
            self.counts[-2:] = [self.counts[-2] + self.counts[-1]]
            merged = TableWriter(self.options)
            merged.set_limits(older.min_update_index, newer.max_update_index)
            _copy_records(merged, (older, newer))
            self.tables.append(TableReader.from_bytes(merged.finish(), name="(batch)"))
        base = self.base
        return Snapshot(
            (*base.table_names, *(t.name or "(batch)" for t in self.tables)),
            (*base.readers, *self.tables),
            base.hash,
            base.generation,
        )


def _copy_records(writer: TableWriter, tables: Sequence[TableReader]) -> None:
    """The records of the transactions' tables (distinct refs, distinct log keys)."""
    refs: list[RefRecord] = []
    logs: list[LogRecord] = []
    for table in tables:
        refs.extend(table.iter_refs())
        logs.extend(table.iter_logs())
    writer.add_refs(refs)
    writer.add_logs(logs)
