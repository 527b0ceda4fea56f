"""A hypothesis state machine: random transactions (with D/F-conflicting names), renames
and copies, reflog expiries and compactions against a dict model; after each step our
reads, git's for-each-ref and our verify() must agree with the model. Runs on asyncio (one
anyio.run per rule)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from conftest import Git
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from refs_helpers import ENV, make_twins, object_ids

from aioreftable import ExpirePolicy, ReftableError, TransactionError, open_ref_store

pytestmark = [pytest.mark.git]

NAMES = [
    "refs/heads/main",
    "refs/heads/a",
    "refs/heads/a/b",
    "refs/heads/a/b/c",
    "refs/heads/d",
    "refs/heads/d/e",
    "refs/tags/t",
    "refs/tags/t/u",
    "refs/notes/n",
]
OPS = st.tuples(
    st.sampled_from(["create", "update", "delete"]), st.sampled_from(NAMES), st.integers(0, 2)
)


def predict(model: dict[str, str], ops: list[tuple[str, str, str]]) -> dict[str, str] | None:
    """git's outcome of one transaction (None: it fails): duplicate names, create over an
    existing ref, and the D/F rules for every name that does not exist yet."""
    names = [name for _, name, _ in ops]
    if len(set(names)) != len(names):
        return None
    for kind, name, _ in ops:
        if kind == "create" and name in model:
            return None
        if name in model:
            continue
        parts = name.split("/")
        prefixes = {"/".join(parts[:n]) for n in range(1, len(parts))}
        if prefixes & (set(model) | set(names)):
            return None
        if any(other.startswith(name + "/") for other in [*model, *names]):
            return None
    out = dict(model)
    for kind, name, oid in ops:
        if kind == "delete":
            out.pop(name, None)
        else:
            out[name] = oid
    return out


def predict_rename(
    model: dict[str, str], old: str, new: str, *, copy: bool
) -> dict[str, str] | None:
    """git's rename_ref/copy_ref: the old ref must exist, the new one must not, and the new
    name must be available (a rename may replace its own old name's D/F blocker)."""
    if old not in model:
        return None
    if old == new:
        return dict(model)
    if new in model:
        return None
    others = set(model) - (set() if copy else {old})
    parts = new.split("/")
    if {"/".join(parts[:n]) for n in range(1, len(parts))} & others:
        return None
    if any(name.startswith(new + "/") for name in others):
        return None
    out = dict(model)
    out[new] = model[old]
    if not copy:
        del out[old]
    return out


class RefStoreMachine(RuleBasedStateMachine):
    git: ClassVar[Git]

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="aioreftable-model-"))
        self.repo = make_twins(self.git, self.tmp)[1]
        ids = object_ids(self.git, self.repo)
        self.oids = [ids["c0"], ids["c1"], ids["c2"]]
        self.model: dict[str, str] = {
            "refs/heads/main": ids["c2"],
            "refs/tags/lw": ids["c0"],
            "refs/tags/v1": ids["tag"],
        }

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _run(self, fn: Any) -> Any:
        async def main() -> Any:
            async with open_ref_store(self.repo, env=ENV) as store:
                return await fn(store)

        return anyio.run(main)

    @rule(ops=st.lists(OPS, min_size=1, max_size=3))
    def transaction(self, ops: list[tuple[str, str, int]]) -> None:
        concrete = [(kind, name, self.oids[n]) for kind, name, n in ops]
        expected = predict(self.model, concrete)

        async def apply(store: Any) -> bool:
            try:
                async with store.transaction(message="model") as tx:
                    for kind, name, oid in concrete:
                        if kind == "create":
                            tx.create(name, oid)
                        elif kind == "update":
                            tx.update(name, oid)
                        else:
                            tx.delete(name)
            except TransactionError:
                return False
            return True

        ok = self._run(apply)
        assert ok == (expected is not None), (concrete, self.model)
        if expected is not None:
            self.model = expected

    @rule(old=st.sampled_from(NAMES), new=st.sampled_from(NAMES), copy=st.booleans())
    def rename(self, old: str, new: str, copy: bool) -> None:
        expected = predict_rename(self.model, old, new, copy=copy)

        async def move(store: Any) -> bool:
            try:
                if copy:
                    await store.copy(old, new, f"Branch: copied {old} to {new}")
                else:
                    await store.rename(old, new, f"Branch: renamed {old} to {new}")
            except ReftableError:
                return False
            return True

        ok = self._run(move)
        assert ok == (expected is not None), (old, new, copy, self.model)
        if expected is not None:
            self.model = expected

    @rule(name=st.sampled_from(NAMES))
    def expire_reflog(self, name: str) -> None:
        """``git reflog expire --expire=all``: the reflog is empty but still exists."""

        async def expire(store: Any) -> tuple[list[Any], bool]:
            await store.expire_reflog(name, ExpirePolicy(expire=1 << 40))
            return await store.reflog(name), await store.reflog_exists(name)

        entries, exists = self._run(expire)
        assert entries == []
        proc = self.git.run("reflog", "show", "--format=%H", name, "--", cwd=self.repo, check=False)
        assert proc.stdout == b""
        if exists:
            self.git("reflog", "exists", name, cwd=self.repo)

    @rule(auto=st.booleans())
    def compact(self, auto: bool) -> None:
        async def pack(store: Any) -> None:
            await store.optimize(auto=auto)

        self._run(pack)
        if not auto:
            lines = (self.repo / ".git" / "reftable" / "tables.list").read_text().splitlines()
            assert len(lines) == 1

    @invariant()
    def agrees_with_model_and_git(self) -> None:
        async def read(store: Any) -> tuple[dict[str, str | None], list[Any]]:
            refs = {r.name: r.oid async for r in store.iterate()}
            return refs, await store.verify()

        ours, findings = self._run(read)
        assert ours == self.model
        assert findings == []
        fmt = "--format=%(refname) %(objectname)"
        listed = self.git("for-each-ref", fmt, cwd=self.repo).splitlines()
        assert listed == [f"{name} {oid}" for name, oid in sorted(self.model.items())]


def test_ref_store_state_machine(git: Git) -> None:
    RefStoreMachine.git = git
    # untyped in older hypothesis (6.170.0 still), typed in newer ones
    run_state_machine_as_test(  # type: ignore[no-untyped-call,unused-ignore]
        RefStoreMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
