"""Transaction internals: the D/F check of large transactions (NameSet), two-phase
transactions (``tx.prepare()``) and ``tx.update_index``, against git."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from conftest import Git
from hypothesis import given, settings
from hypothesis import strategies as st
from refs_helpers import (
    ENV,
    Op,
    apply_ours,
    git_apply,
    live_records,
    make_twins,
    object_ids,
    refs_verify,
    show_refs,
)

from aioreftable import (
    IncorrectOldValueError,
    NameConflictError,
    RefExistsError,
    TransactionError,
    open_ref_store,
)
from aioreftable._refs._core import NameSet

pytestmark = [pytest.mark.anyio]

_NAMES = st.lists(
    st.text(alphabet="ab/", min_size=1, max_size=6), max_size=30
)  # short names over a small alphabet: many prefixes and collisions


@settings(max_examples=200, deadline=None)
@given(
    names=_NAMES,
    removed=_NAMES,
    prefix=st.text(alphabet="ab/", max_size=4),
)
def test_nameset_is_a_sorted_set(names: list[str], removed: list[str], prefix: str) -> None:
    model = set(names)
    index = NameSet(names[: len(names) // 2])
    for name in names[len(names) // 2 :]:
        index.add(name)
    for name in removed:
        index.discard(name)
        model.discard(name)
    assert list(index) == sorted(model) and len(index) == len(model)
    assert all(name in index for name in model)
    assert not any(name in index for name in set(removed) - model)
    under = sorted(name for name in model if name.startswith(prefix))
    assert index.first_with_prefix(prefix) == (under[0] if under else None)


_SIZE = 3000  # creates per transaction


@pytest.mark.git
@pytest.mark.parametrize(
    "extra",
    [
        "refs/heads/d7",  # a directory of names created in the same transaction
        "refs/heads/d7/b7/x",  # below a name created in the same transaction
        "refs/heads/main/x",  # below an existing ref
        "refs/heads",  # a directory of everything
        "refs/heads/d9/b2999z",  # no conflict
    ],
)
async def test_df_in_a_large_transaction_as_git(git: Git, tmp_path: Path, extra: str) -> None:
    theirs, ours = make_twins(git, tmp_path)
    oid = object_ids(git, theirs)["c1"]
    ops = [Op("create", f"refs/heads/d{i % 50}/b{i}", oid) for i in range(_SIZE)]
    for at in (0, _SIZE // 2, _SIZE):  # the conflicting name first, amid, last
        batch = [*ops[:at], Op("create", extra, oid), *ops[at:]]
        expected = git_apply(git, theirs, batch, "big")
        got = await apply_ours(ours, batch, "big")
        assert got == expected
        assert show_refs(git, ours) == show_refs(git, theirs)
        if expected is None:  # both committed (no conflict): once is enough
            assert len(show_refs(git, ours).splitlines()) == _SIZE + 6
            break


# -- two-phase transactions ------------------------------------------------------------------
def _lock(repo: Path) -> Path:
    return repo / ".git" / "reftable" / "tables.list.lock"


def _git_update(git: Git, repo: Path, name: str, oid: str) -> tuple[int, str]:
    proc = git.run("update-ref", name, oid, cwd=repo, check=False)
    return proc.returncode, proc.stderr.decode()


@pytest.mark.git
@pytest.mark.parametrize("group_commit", [True, False])
async def test_prepare_holds_the_lock_until_the_block_ends(
    git: Git, tmp_path: Path, group_commit: bool
) -> None:
    """While prepared, git's update-ref on the same stack fails with its lock error after
    reftable.lockTimeout; after our commit it succeeds, and our updates are there."""
    _, repo = make_twins(git, tmp_path)
    ids = object_ids(git, repo)
    git("config", "reftable.lockTimeout", "100", cwd=repo)
    async with open_ref_store(repo, env=ENV, group_commit=group_commit) as store:
        async with store.transaction("two-phase") as tx:
            tx.create("refs/heads/prepared", ids["c0"])
            tx.update("refs/heads/main", ids["c1"], old=ids["c2"])
            await tx.prepare()
            assert _lock(repo).exists()
            assert tx.update_index is None  # not committed yet
            started = anyio.current_time()
            with anyio.fail_after(30):
                status, err = await anyio.to_thread.run_sync(
                    _git_update, git, repo, "refs/heads/theirs", ids["c0"]
                )
            assert anyio.current_time() - started >= 0.09  # it waited its lockTimeout
            assert status == 128
            assert err == (
                "fatal: update_ref failed for ref 'refs/heads/theirs': cannot lock references\n"
            )
            with pytest.raises(TransactionError, match="closed"):
                tx.create("refs/heads/late", ids["c0"])  # nothing queued after prepare
        assert not _lock(repo).exists()
        assert tx.update_index is not None
        stats = store.group_statistics
        assert stats is None or stats.batches == 0  # it bypassed the batcher
    assert git("rev-parse", "refs/heads/prepared", "refs/heads/main", cwd=repo).split() == [
        ids["c0"],
        ids["c1"],
    ]
    assert _git_update(git, repo, "refs/heads/theirs", ids["c0"]) == (0, "")
    shown = git("reflog", "show", "--format=%gs", "refs/heads/main", cwd=repo).splitlines()
    assert shown[0] == "two-phase"
    refs_verify(git, repo)


@pytest.mark.git
async def test_an_exception_after_prepare_aborts(git: Git, tmp_path: Path) -> None:
    _, repo = make_twins(git, tmp_path)
    ids = object_ids(git, repo)
    git("config", "reftable.lockTimeout", "100", cwd=repo)
    before = show_refs(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(KeyError):
            async with store.transaction() as tx:
                tx.create("refs/heads/aborted", ids["c0"])
                await tx.prepare()
                assert _lock(repo).exists()
                raise KeyError("boom")
        assert not _lock(repo).exists()
        assert tx.update_index is None
        assert await store.read("refs/heads/aborted") is None
        # the stack is free for git and for us
        assert _git_update(git, repo, "refs/heads/theirs", ids["c1"]) == (0, "")
        async with store.transaction() as tx:
            tx.create("refs/heads/after", ids["c0"])
    assert show_refs(git, repo) != before
    assert "refs/heads/aborted" not in show_refs(git, repo)
    refs_verify(git, repo)


@pytest.mark.git
async def test_cancelled_after_prepare_leaves_no_lock(git: Git, tmp_path: Path) -> None:
    _, repo = make_twins(git, tmp_path)
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        prepared = anyio.Event()
        with anyio.CancelScope() as scope:

            async def hold() -> None:
                async with store.transaction() as tx:
                    tx.create("refs/heads/cancelled", ids["c0"])
                    await tx.prepare()
                    prepared.set()
                    await anyio.sleep_forever()

            async with anyio.create_task_group() as tg:
                tg.start_soon(hold)
                await prepared.wait()
                assert _lock(repo).exists()
                scope.cancel()
        assert scope.cancelled_caught
        assert not _lock(repo).exists()
        assert await store.read("refs/heads/cancelled") is None
        async with store.transaction() as tx:  # our own next writer is not blocked
            tx.create("refs/heads/next", ids["c0"])
    assert _git_update(git, repo, "refs/heads/theirs", ids["c1"]) == (0, "")
    assert list((repo / ".git" / "reftable").glob("*.lock")) == []
    refs_verify(git, repo)


@pytest.mark.git
@pytest.mark.parametrize(
    ("queue", "error", "text"),
    [
        (
            lambda tx, ids: tx.create("refs/heads/main", ids["c0"]),
            RefExistsError,
            "cannot lock ref 'refs/heads/main': reference already exists",
        ),
        (
            lambda tx, ids: tx.update("refs/heads/main", ids["c0"], old=ids["c1"]),
            IncorrectOldValueError,
            "cannot lock ref 'refs/heads/main': is at {c2} but expected {c1}",
        ),
        (
            lambda tx, ids: tx.create("refs/heads/main/x", ids["c0"]),
            NameConflictError,
            "'refs/heads/main' exists; cannot create 'refs/heads/main/x'",
        ),
    ],
)
async def test_prepare_raises_what_the_commit_would(
    git: Git, tmp_path: Path, queue: object, error: type[Exception], text: str
) -> None:
    theirs, ours = make_twins(git, tmp_path)
    ids = object_ids(git, ours)
    assert callable(queue)
    async with open_ref_store(ours, env=ENV) as store:
        with pytest.raises(error) as one_step:
            async with store.transaction() as tx:
                queue(tx, ids)
        with pytest.raises(error) as two_step:
            async with store.transaction() as tx:
                queue(tx, ids)
                try:
                    await tx.prepare()
                finally:
                    assert not _lock(ours).exists()  # released before it raised
        # the block went on after a failed prepare: it commits nothing
        async with store.transaction() as tx:
            queue(tx, ids)
            with pytest.raises(error):
                await tx.prepare()
            with pytest.raises(TransactionError, match="already prepared"):
                await tx.prepare()
        assert tx.update_index is None
    assert str(one_step.value) == str(two_step.value) == text.format(**ids)
    assert show_refs(git, ours) == show_refs(git, theirs)


# -- update_index ----------------------------------------------------------------------------
@pytest.mark.git
@pytest.mark.parametrize("group_commit", [True, False])
async def test_update_index_is_where_the_records_are(
    git: Git, tmp_path: Path, group_commit: bool
) -> None:
    _, repo = make_twins(git, tmp_path)
    ids = object_ids(git, repo)
    found: dict[str, int | None] = {}
    async with open_ref_store(repo, env=ENV, group_commit=group_commit) as store:

        async def write(n: int) -> None:
            async with store.transaction(f"w{n}") as tx:
                tx.create(f"refs/heads/w{n}", ids["c0"])
                tx.create(f"refs/tags/w{n}", ids["c1"])
            found[f"w{n}"] = tx.update_index

        async with anyio.create_task_group() as tg:
            for n in range(24):
                tg.start_soon(write, n)
        async with store.transaction() as tx:  # writes nothing: no index
            tx.verify("refs/heads/w0", ids["c0"])
            tx.update("refs/heads/w1", ids["c0"])
        assert tx.update_index is None
        async with store.transaction() as tx:  # prepared
            tx.delete("refs/heads/main")
            await tx.prepare()
        found["delete"] = tx.update_index
        stats = store.group_statistics
        if group_commit:
            assert stats is not None and stats.largest > 1  # several shared a table
    refs, logs = await live_records(repo / ".git" / "reftable")
    at = {r.refname.decode(): r.update_index for r in refs}
    log_at = {log.refname.decode(): log.update_index for log in logs}
    for n in range(24):
        index = found[f"w{n}"]
        assert index is not None
        assert at[f"refs/heads/w{n}"] == at[f"refs/tags/w{n}"] == index
        assert log_at[f"refs/heads/w{n}"] == index
    assert len({found[f"w{n}"] for n in range(24)}) == 24
    assert found["delete"] == max(found[f"w{n}"] or 0 for n in range(24)) + 1
    refs_verify(git, repo)


@pytest.mark.git
async def test_a_large_batch_rejects_exactly_the_failing_updates(git: Git, tmp_path: Path) -> None:
    """3,000 creates, every third of an existing ref: those are rejected, the rest written
    (rejections used to cost a scan of the whole batch each)."""
    _, repo = make_twins(git, tmp_path)
    ids = object_ids(git, repo)
    names = [f"refs/heads/d{i % 50}/b{i}" for i in range(_SIZE)]
    existing = names[::3]
    git.run(
        "update-ref", "--stdin", cwd=repo,
        input="".join(f"create {name} {ids['c2']}\n" for name in existing),
    )  # fmt: skip
    async with open_ref_store(repo, env=ENV) as store, store.batch("big") as batch:
        for name in names:
            batch.create(name, ids["c0"])
    rejected = [r.refname for r in batch.rejected]
    assert rejected == existing
    assert {r.error for r in batch.rejected} == {
        f"cannot lock ref '{name}': reference already exists" for name in existing
    }
    listed = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/", cwd=repo)
    listed = listed.replace(f"refs/heads/main {ids['c2']}\n", "")
    want = {f"{n} {ids['c2'] if n in set(existing) else ids['c0']}" for n in names}
    assert set(listed.splitlines()) == want
    refs_verify(git, repo)


@pytest.mark.git
async def test_a_prepared_batch(git: Git, tmp_path: Path) -> None:
    _, repo = make_twins(git, tmp_path)
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        async with store.batch("prepared") as batch:
            batch.create("refs/heads/new", ids["c0"])
            batch.create("refs/heads/main", ids["c0"])  # exists: rejected alone
            await batch.prepare()
            assert _lock(repo).exists()
            assert batch.results == []  # after the block
        assert not _lock(repo).exists()
        assert [(r.refname, r.ok) for r in batch.results] == [
            ("refs/heads/new", True),
            ("refs/heads/main", False),
        ]
        with pytest.raises(KeyError):
            async with store.batch("aborted") as batch:
                batch.create("refs/heads/aborted", ids["c0"])
                await batch.prepare()
                raise KeyError("boom")
        assert not _lock(repo).exists()
        assert batch.results == []
        assert await store.read("refs/heads/aborted") is None
    assert git("rev-parse", "refs/heads/new", "refs/heads/main", cwd=repo).split() == [
        ids["c0"],
        ids["c2"],
    ]
    refs_verify(git, repo)


@pytest.mark.git
async def test_group_commits_wait_for_a_prepared_transaction(git: Git, tmp_path: Path) -> None:
    """Other tasks' transactions queue behind a prepared one (it holds the list lock) and
    commit, batched, once it is done; each gets its own update index after its."""
    _, repo = make_twins(git, tmp_path)
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        indexes: dict[str, int | None] = {}

        async def write(n: int) -> None:
            async with store.transaction(f"w{n}") as tx:
                tx.create(f"refs/heads/w{n}", ids["c0"])
            indexes[f"w{n}"] = tx.update_index

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg, store.transaction("first") as first:
                first.create("refs/heads/first", ids["c1"])
                await first.prepare()
                for n in range(8):
                    tg.start_soon(write, n)
                await anyio.sleep(0.2)
                assert indexes == {}  # they wait for our lock
                assert await store.read("refs/heads/w0") is None
            # the transaction committed as the block ended, then the task group waited
        first_index = first.update_index
        assert first_index is not None
        written = [indexes[f"w{n}"] for n in range(8)]
        assert all(i is not None and i > first_index for i in written)
        assert len(set(written)) == 8
        stats = store.group_statistics
        assert stats is not None and stats.transactions == 8 and stats.largest > 1
    refs_verify(git, repo)
