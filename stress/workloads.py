"""The operations of an aioreftable worker task, each one call of the public API, with its
ledger records; the checks readers make on every snapshot."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from aioreftable import (
    ExpirePolicy,
    IncorrectOldValueError,
    LockError,
    RefExistsError,
    RefMissingError,
    RefStore,
    ReftableError,
    TransactionError,
)

from .ledger import Ledger
from .profiles import Profile
from .repos import COUNTER_PREFIX

MASS_SIZE = 200
ALL = 2**63 - 1  # git's --expire=all


class Violation(Exception):
    """A broken guarantee seen by a worker (kind is the failure type in the summary)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Worker:
    """What the tasks of one worker process share."""

    profile: Profile
    wid: int
    incarnation: int
    chain: list[str]
    index: dict[str, int]
    counters: list[str]
    ledger: Ledger
    store: RefStore | None = None
    running: bool = True
    acked: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    in_worktree: bool = False

    @property
    def tag(self) -> str:
        return f"w{self.wid}-i{self.incarnation}"

    def quota_reached(self) -> bool:
        quota = self.profile.ops_per_worker
        return quota > 0 and self.acked >= quota

    def fail(self, kind: str, detail: str = "") -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.ledger.failure(kind, detail)


@dataclass
class Task:
    """One task's private refs (only it writes them) and what it has seen."""

    tid: int
    rng: random.Random
    prefix: str  # refs/heads/stress-p/<tag>/t<tid>/
    mass_prefix: str  # refs/stress-m/<tag>/t<tid>/
    symref: str  # refs/stress-s/<tag>/t<tid>
    wt_prefix: str  # refs/worktree/stress/<tag>/t<tid>/ (in a linked worktree's stack)
    values: dict[str, str] = field(default_factory=dict)  # private name -> its oid
    symref_target: str | None = None
    seen: dict[str, int] = field(default_factory=dict)  # counter -> lowest allowed index
    resync: bool = False  # an outcome was unknown: read the private refs back first
    mass_round: int = 0

    def names(self, profile: Profile) -> list[str]:
        return [f"{self.prefix}r{n}" for n in range(profile.private_names)]

    def wt_names(self) -> list[str]:
        return [f"{self.wt_prefix}r{n}" for n in range(4)] if self.wt_prefix else []


def new_task(w: Worker, tid: int) -> Task:
    tag = w.tag
    rng = random.Random(f"{w.profile.seed}-{w.wid}-{w.incarnation}-{tid}")
    return Task(
        tid,
        rng,
        prefix=f"refs/heads/stress-p/{tag}/t{tid}/",
        mass_prefix=f"refs/stress-m/{tag}/t{tid}/",
        symref=f"refs/stress-s/{tag}/t{tid}",
        wt_prefix=f"refs/worktree/stress/{tag}/t{tid}/" if w.in_worktree else "",
    )


def store_of(w: Worker) -> RefStore:
    assert w.store is not None
    return w.store


async def resync(w: Worker, t: Task) -> None:
    """After an unknown outcome, the private refs are what the repository says (only this
    task writes them, so the answer is exact)."""
    store = store_of(w)
    t.values = {}
    for name in t.names(w.profile) + t.wt_names():
        oid = await store.resolve(name)
        if oid is not None:
            t.values[name] = oid
    ref = await store.read(t.symref)
    t.symref_target = ref.target if ref is not None else None
    t.resync = False


class Outcome:
    """Records the answer to one intent: ``async with Outcome(w, t, op_id, op):`` acks on a
    clean exit; typed errors that guarantee nothing was written become nacks; anything
    else (cancellation included) leaves the outcome unknown."""

    def __init__(self, w: Worker, t: Task, op_id: int, op: str, *, private: bool = True):
        self.w, self.t, self.op_id, self.op, self.private = w, t, op_id, op, private
        self.start = time.monotonic()
        self.acked = False

    async def __aenter__(self) -> Outcome:
        return self

    async def __aexit__(self, typ: type[BaseException] | None, exc: Any, tb: Any) -> bool:
        w = self.w
        if typ is None:
            w.ledger.ack(self.op_id, time.monotonic() - self.start)
            w.acked += 1
            self.acked = True
            return False
        name = typ.__name__
        if issubclass(typ, LockError):
            w.ledger.nack(self.op_id, name)
            w.fail(f"{name}({self.op})")
            await anyio.sleep(self.t.rng.random() / 50)
            return True
        if self.private and issubclass(
            typ, (IncorrectOldValueError, RefExistsError, RefMissingError)
        ):
            # only this task writes these refs: a failed old-value check means a write of
            # ours was lost or another writer touched a private ref
            w.ledger.nack(self.op_id, name)
            w.fail("violation:private_conflict", f"{self.op}: {exc}")
            self.t.resync = True
            return True
        if issubclass(typ, TransactionError):
            w.ledger.nack(self.op_id, name)
            w.fail(name, str(exc))
            return True
        w.ledger.unknown(self.op_id, name)
        self.t.resync = True
        if issubclass(typ, (ReftableError, OSError)):
            w.fail(name, str(exc))
            return True
        return False  # cancellation and bugs propagate


def pick_oid(w: Worker, t: Task, avoid: str | None = None) -> str:
    while True:
        oid = w.chain[t.rng.randrange(len(w.chain))]
        if oid != avoid:
            return oid


def plan_change(w: Worker, t: Task, name: str) -> tuple[str | None, str | None]:
    """(old, new) for one private ref: create when absent, else update or delete."""
    old = t.values.get(name)
    if old is None:
        return None, pick_oid(w, t)
    if t.rng.random() < 0.3:
        return old, None
    return old, pick_oid(w, t, avoid=old)


def queue_change(tx: Any, name: str, old: str | None, new: str | None) -> None:
    if old is None:
        assert new is not None
        tx.create(name, new)
    elif new is None:
        tx.delete(name, old=old)
    else:
        tx.update(name, new, old=old)


def apply_changes(t: Task, changes: list[list[str | None]]) -> None:
    for name, _old, new in changes:
        assert name is not None
        if new is None:
            t.values.pop(name, None)
        else:
            t.values[name] = new


async def op_counter(w: Worker, t: Task) -> None:
    """CAS increment of a shared counter; a conflict is retried with the new value."""
    store = store_of(w)
    counter = t.rng.choice(w.counters)
    start = time.monotonic()
    while w.running:
        cur = await store.resolve(counter)
        k = w.index.get(cur or "")
        if k is None:
            raise Violation("counter_value_unknown", f"{counter} = {cur}")
        if k + 1 >= len(w.chain):
            w.fail("chain_exhausted")
            await anyio.sleep(0.1)
            return
        op_id = w.ledger.intent("inc", c=counter, frm=k)
        try:
            async with store.transaction(message=f"stress {w.tag} inc {k + 1}") as tx:
                tx.update(counter, w.chain[k + 1], old=w.chain[k])
        except IncorrectOldValueError:
            w.ledger.nack(op_id, "IncorrectOldValueError")
            w.fail("cas_conflict")
            continue
        except LockError as exc:
            w.ledger.nack(op_id, "LockError")
            w.fail("LockError(counter)", str(exc))
            await anyio.sleep(t.rng.random() / 50)
            continue
        except BaseException as exc:
            w.ledger.unknown(op_id, type(exc).__name__)
            raise
        w.ledger.ack(op_id, time.monotonic() - start)
        w.acked += 1
        t.seen[counter] = max(t.seen.get(counter, 0), k + 1)
        return


async def op_private(w: Worker, t: Task) -> None:
    name = t.rng.choice(t.names(w.profile))
    old, new = plan_change(w, t, name)
    changes: list[list[str | None]] = [[name, old, new]]
    op_id = w.ledger.intent("set", u=changes)
    async with Outcome(w, t, op_id, "private"):
        async with store_of(w).transaction(message=f"stress {w.tag} private") as tx:
            queue_change(tx, name, old, new)
        apply_changes(t, changes)
    if t.rng.random() < 0.25:  # read your own write
        got = await store_of(w).resolve(name)
        if got != t.values.get(name) and not t.resync:
            raise Violation("read_your_writes", f"{name}: {got} != {t.values.get(name)}")


async def op_multi(w: Worker, t: Task) -> None:
    names = t.rng.sample(t.names(w.profile), t.rng.randint(2, 3))
    changes: list[list[str | None]] = [[n, *plan_change(w, t, n)] for n in names]
    op_id = w.ledger.intent("set", u=changes, atomic=True)
    async with Outcome(w, t, op_id, "multi"):
        async with store_of(w).transaction(message=f"stress {w.tag} multi") as tx:
            for name, old, new in changes:
                assert name is not None
                queue_change(tx, name, old, new)
        apply_changes(t, changes)


async def op_worktree(w: Worker, t: Task) -> None:
    """One transaction over this worktree's stack and the main one (committed stack by
    stack, so not atomic across them, as in git): a worker in the main worktree does a
    multi-ref transaction instead."""
    if not t.wt_prefix:
        await op_multi(w, t)
        return
    names = [t.rng.choice(t.wt_names()), t.rng.choice(t.names(w.profile))]
    changes: list[list[str | None]] = [[n, *plan_change(w, t, n)] for n in names]
    op_id = w.ledger.intent("set", u=changes)
    async with Outcome(w, t, op_id, "worktree"):
        async with store_of(w).transaction(message=f"stress {w.tag} worktree") as tx:
            for name, old, new in changes:
                assert name is not None
                queue_change(tx, name, old, new)
        apply_changes(t, changes)


async def op_batch(w: Worker, t: Task) -> None:
    """A batch of good updates and planted bad ones: exactly the bad ones are rejected."""
    names = t.rng.sample(t.names(w.profile), 4)
    good = [[n, *plan_change(w, t, n)] for n in names[:2]]
    bad_names = names[2:]
    op_id = w.ledger.intent("set", u=good, bad=bad_names)
    async with Outcome(w, t, op_id, "batch"):
        async with store_of(w).batch(message=f"stress {w.tag} batch") as b:
            for name, old, new in good:
                assert name is not None
                queue_change(b, name, old, new)
            for name in bad_names:
                cur = t.values.get(name)
                if cur is None:  # expects a value it does not have
                    b.update(name, pick_oid(w, t), old=pick_oid(w, t))
                else:  # create of an existing ref
                    b.create(name, pick_oid(w, t, avoid=cur))
        verdicts = [r.ok for r in b.results]
        if verdicts != [True, True, False, False]:
            t.resync = True
            raise Violation("batch_mismatch", f"applied {verdicts}, planned [T, T, F, F]")
        apply_changes(t, good)


async def op_symref(w: Worker, t: Task) -> None:
    target = t.rng.choice([c for c in w.counters if c != t.symref_target] or w.counters)
    op_id = w.ledger.intent("set", u=[[t.symref, None, "ref:" + target]], sym=True)
    async with Outcome(w, t, op_id, "symref"):
        async with store_of(w).transaction(message=f"stress {w.tag} symref") as tx:
            tx.symref_update(t.symref, target)
        t.symref_target = target


async def op_expire(w: Worker, t: Task) -> None:
    store = store_of(w)
    if t.rng.random() < 0.5:  # a counter's reflog, pruning nothing (it must keep every entry)
        counter = t.rng.choice(w.counters)
        op_id = w.ledger.intent("expire", c=counter)
        async with Outcome(w, t, op_id, "expire", private=False):
            await store.expire_reflog(counter, ExpirePolicy(expire=0))
        return
    name = t.rng.choice(t.names(w.profile))
    op_id = w.ledger.intent("expire", name=name)
    async with Outcome(w, t, op_id, "expire"):
        await store.expire_reflog(name, ExpirePolicy(expire=ALL))


async def op_compact(w: Worker, t: Task, full: bool) -> None:
    op_id = w.ledger.intent("compact", full=full)
    async with Outcome(w, t, op_id, "compact", private=False):
        if full:
            await store_of(w).pack_refs()
        else:
            await store_of(w).optimize(auto=True)


async def op_mass(w: Worker, t: Task) -> None:
    # new names every round: a round whose outcome is unknown (cancelled) may have left
    # its refs, which are the ledger's to judge, not this round's to trip over
    t.mass_round += 1
    names = [f"{t.mass_prefix}{t.mass_round}/{n:04d}" for n in range(MASS_SIZE)]
    oid = pick_oid(w, t)
    created: list[list[str | None]] = [[n, None, oid] for n in names]
    op_id = w.ledger.intent("set", u=created, atomic=True)
    store = store_of(w)
    out = Outcome(w, t, op_id, "mass")
    async with out, store.transaction(message=f"stress {w.tag} mass create") as tx:
        for name in names:
            tx.create(name, oid)
    if not out.acked:
        return
    deleted: list[list[str | None]] = [[n, oid, None] for n in names]
    op_id = w.ledger.intent("set", u=deleted, atomic=True)
    async with (
        Outcome(w, t, op_id, "mass"),
        store.transaction(message=f"stress {w.tag} mass delete") as tx,
    ):
        for name in names:
            tx.delete(name, old=oid)


async def op_reader(w: Worker, t: Task) -> None:
    """Iterate refs/ and check the snapshot: sorted, unique, no tombstone, only known
    values, counters never behind what this task saw, its own refs as it wrote them."""
    previous = ""
    own: dict[str, str] = {}
    async for ref in store_of(w).iterate("refs/"):
        name = ref.name
        if name <= previous:
            raise Violation("snapshot_order", f"{name!r} after {previous!r}")
        previous = name
        if ref.oid is None and ref.target is None:
            raise Violation("tombstone_visible", name)
        if ref.oid is not None and ref.oid not in w.index:
            raise Violation("unknown_value", f"{name} = {ref.oid}")
        if name in w.counters and ref.oid is not None:
            k = w.index[ref.oid]
            if k < t.seen.get(name, 0):
                raise Violation("counter_went_back", f"{name}: {k} < {t.seen[name]}")
            t.seen[name] = k
        mine = name.startswith(t.prefix) or bool(t.wt_prefix and name.startswith(t.wt_prefix))
        if mine and ref.oid is not None:
            own[name] = ref.oid
    if not t.resync and own != t.values:
        raise Violation("read_your_writes", f"{t.prefix}: {own} != {t.values}")


FEED_SECONDS = (1.0, 3.0)


async def op_feed(w: Worker, t: Task) -> None:
    """A change-feed consumer of the counters for 1-3 s: each change of a counter is the
    next step of its chain from the value this consumer saw last (so every increment,
    acknowledged ones included, exactly once and in order; counters keep reflogs, so the
    feed promises every step across compactions too), update indexes never go back. The
    session (first and last value per counter) goes to the ledger for the verifier."""
    seen: dict[str, list[int]] = {}  # counter -> [first value, last value]
    changes = 0
    last_index = 0
    try:
        with anyio.move_on_after(t.rng.uniform(*FEED_SECONDS)):
            async with store_of(w).watch(COUNTER_PREFIX) as feed:
                async for change in feed:
                    if change.refname not in w.counters:
                        continue
                    changes += 1
                    old, new = w.index.get(change.old), w.index.get(change.new)
                    if old is None or new is None:
                        raise Violation("feed_value_unknown", f"{change}")
                    if change.update_index < last_index:
                        raise Violation("feed_order", f"{change} after index {last_index}")
                    last_index = change.update_index
                    span = seen.setdefault(change.refname, [old, old])
                    if old != span[1]:
                        kind = "feed_gap" if old > span[1] else "feed_duplicate"
                        raise Violation(kind, f"{change.refname}: {old} -> {new}, saw {span[1]}")
                    if new != old + 1:
                        raise Violation("feed_skip", f"{change.refname}: {old} -> {new}")
                    span[1] = new
                    if not w.running:
                        break
    finally:
        if seen:
            w.ledger.write({"k": "w", "t": round(time.time(), 3), "c": seen, "n": changes})


async def run_op(w: Worker, t: Task, kind: str) -> None:
    if t.resync:
        await resync(w, t)
    if kind == "counter":
        await op_counter(w, t)
    elif kind == "private":
        await op_private(w, t)
    elif kind == "multi":
        await op_multi(w, t)
    elif kind == "batch":
        await op_batch(w, t)
    elif kind == "symref":
        await op_symref(w, t)
    elif kind == "expire":
        await op_expire(w, t)
    elif kind in ("compact_auto", "compact_full"):
        await op_compact(w, t, kind == "compact_full")
    elif kind == "mass":
        await op_mass(w, t)
    elif kind == "worktree":
        await op_worktree(w, t)
    elif kind == "reader":
        await op_reader(w, t)
    elif kind == "feed":
        await op_feed(w, t)
    else:
        raise ValueError(kind)
