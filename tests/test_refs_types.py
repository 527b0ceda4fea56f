"""The types of the ref core (issue 11 item 5): the hash algorithm of a store (a SHA-256
store against git on a twin: transactions, rename, batches, pseudo-refs, null ids in the
reflog), the worktree kinds and stack keys, the update flags (one ``enum.IntFlag``), and
the typed rejections of a batch."""

from __future__ import annotations

import enum
import typing
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from conftest import Git
from refs_helpers import ENV, Op, git_apply, make_twins, object_ids, our_apply
from test_refs_differential import assert_same as assert_same_live
from test_refs_reflog_ops import NO_COMPACT, all_records, assert_same, no_autocompact

import aioreftable._errors as errors
from aioreftable import RejectReason, open_ref_store, open_stack
from aioreftable._refs import RepoConfig, parse_worktree_ref
from aioreftable._refs._batch import REASONS, Batch, BatchResult, classify
from aioreftable._refs._core import RefCore, WorktreeKey
from aioreftable._refs._refname import OtherWorktreeRef, WorktreeKind, WorktreeRef
from aioreftable._refs._transaction import Commit, RefusedName, Update, UpdateFlag, UpdateQueue
from aioreftable._repo import discover
from aioreftable.lowlevel import SHA1, SHA256

pytestmark = [pytest.mark.anyio]
__all__ = ["no_autocompact"]  # the fixture, imported for its side effect

F = UpdateFlag


@asynccontextmanager
async def core_of(path: Path) -> AsyncIterator[RefCore]:
    """A ref core on the repository at ``path`` (its stacks open), no object database."""
    layout = await anyio.to_thread.run_sync(discover, path, ENV)
    config = RepoConfig(object_format=layout.object_format)
    options = config.stack_options()
    async with AsyncExitStack() as scope:
        main = await scope.enter_async_context(open_stack(layout.main_stack, options, create=False))
        worktree = None
        if layout.worktree_stack is not None:
            worktree = await scope.enter_async_context(
                open_stack(layout.worktree_stack, options, create=False)
            )
        yield RefCore(layout, config, ENV, main, worktree, None, False)


# -- the hash algorithm ------------------------------------------------------------------------
@pytest.mark.git
@pytest.mark.parametrize(("fmt", "algorithm"), [("sha1", SHA1), ("sha256", SHA256)])
async def test_the_core_takes_the_repository_hash(
    git_repo: typing.Callable[..., Path], fmt: str, algorithm: object
) -> None:
    async with core_of(git_repo(object_format=fmt)) as core:
        assert core.hash is algorithm
        # the older names other modules read are the algorithm's parts
        assert (core.hash_name, core.hexsz, core.null_oid) == (
            core.hash.name,
            core.hash.hex_size,
            core.hash.null_hex,
        )
        assert core.hexsz == (64 if fmt == "sha256" else 40)
        queue = UpdateQueue(core, "m", False)
        queue.delete("refs/heads/x")
        assert queue.queued[0].new_oid == core.hash.null_id == bytes(core.hash.size)
        # an id of the other hash's length is refused as it is queued
        other = "1" * (40 if fmt == "sha256" else 64)
        with pytest.raises(errors.InvalidObjectIdError, match=f"{core.hexsz}-digit"):
            queue.update("refs/heads/x", other)


@pytest.mark.git
async def test_sha256_transaction_like_git(git: Git, tmp_path: Path) -> None:
    theirs, ours = make_twins(git, tmp_path, "sha256")
    ids = object_ids(git, theirs)
    c0, c1 = ids["c0"], ids["c1"]
    assert len(c0) == 64
    steps = [
        [Op("create", "refs/heads/new", c0), Op("update", "HEAD", c1)],  # HEAD via its branch
        [Op("update", "refs/heads/new", c1, c0), Op("delete", "refs/tags/lw")],
        [Op("symref", "refs/heads/alias", "refs/heads/new")],
        [Op("verify", "refs/heads/absent", "0" * 64), Op("create", "refs/heads/z", c1)],
    ]
    for n, ops in enumerate(steps):
        expected = git_apply(git, theirs, ops, f"step {n}")
        async with open_ref_store(ours, env=ENV) as store:
            got = await our_apply(store, ops, f"step {n}")
        assert (got, expected) == (None, None)
    await assert_same_live(git, theirs, ours)  # git compacts as it goes: live records
    # the created ref's first entry comes from git's null id: 32 zero bytes in both
    for repo in (theirs, ours):
        _, logs = await all_records(repo, deletions=False)
        created = [log for log in logs if log.refname == b"refs/heads/new"]
        assert created[-1].old_id == SHA256.null_id
        assert created[0].old_id == bytes.fromhex(c0)


@pytest.mark.git
async def test_sha256_rename_like_git(git: Git, tmp_path: Path, no_autocompact: None) -> None:
    theirs, ours = make_twins(git, tmp_path, "sha256")
    git("branch", "-m", "main", "renamed", cwd=theirs, env=NO_COMPACT)
    message = "Branch: renamed refs/heads/main to refs/heads/renamed"
    async with open_ref_store(ours, env=ENV) as store:
        await store.rename("refs/heads/main", "refs/heads/renamed", message)
        async with store.transaction(message=message) as tx:
            tx.symref_update("HEAD", "refs/heads/renamed")
    await assert_same(git, theirs, ours)
    _, logs = await all_records(ours, deletions=False)
    # the deletion entries (value -> null) and the creation entry (null -> value)
    nulls = [log for log in logs if SHA256.null_id in (log.old_id, log.new_id)]
    assert {log.refname for log in nulls} >= {b"HEAD", b"refs/heads/renamed"}
    assert all(len(log.old_id) == len(log.new_id) == SHA256.size for log in logs)


@pytest.mark.git
async def test_sha256_batch(git: Git, tmp_path: Path) -> None:
    _, ours = make_twins(git, tmp_path, "sha256")
    ids = object_ids(git, ours)
    c0, c1 = ids["c0"], ids["c1"]
    async with open_ref_store(ours, env=ENV) as store:
        async with store.batch(message="batch") as b:
            b.create("refs/heads/fresh", c0)
            b.update("refs/heads/main", c0, old=c0)  # wrong old value: rejected
            b.delete("refs/heads/nope/../x")  # a bad name: rejected as the call comes
            b.create("refs/heads/other", c1)
        assert [r.reason for r in b.results] == [
            None,
            RejectReason.INCORRECT_OLD_VALUE,
            RejectReason.INVALID_NAME,
            None,
        ]
        assert b.results[1].rejected_line() == (
            f"rejected refs/heads/main {c0} {c0} incorrect old value provided"
        )
        assert b.results[2].rejected_line() == (
            "rejected refs/heads/nope/../x (null) (null) invalid refname"
        )
        entries = await store.reflog("refs/heads/fresh")
        assert [(e.old, e.new) for e in entries] == [(SHA256.null_hex, c0)]
    assert git("rev-parse", "refs/heads/fresh", "refs/heads/other", cwd=ours).split() == [c0, c1]


@pytest.mark.git
@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
async def test_pseudo_refs_are_read_with_the_repository_hash(
    git: Git, tmp_path: Path, fmt: str
) -> None:
    """FETCH_HEAD through the repository seam: an id of the repository's length is read, one
    of the other hash's length is broken (None), like git's parse_loose_ref_contents."""
    _, repo = make_twins(git, tmp_path, fmt)
    ids = object_ids(git, repo)
    own = ids["c1"]
    other = "ab" * (20 if fmt == "sha256" else 32)
    fetch_head = repo / ".git" / "FETCH_HEAD"
    for content, expected in [
        (f"{own}\t\tbranch 'main' of somewhere\n", own),
        (f"{other}\t\tbranch 'main' of somewhere\n", None),
        (f"{own}", own),
    ]:
        fetch_head.write_text(content)
        proc = git.run("rev-parse", "--verify", "-q", "FETCH_HEAD", cwd=repo, check=False)
        theirs = proc.stdout.decode().strip() if proc.returncode == 0 else None
        async with open_ref_store(repo, env=ENV) as store:
            ref = await store.read("FETCH_HEAD")
        assert (None if ref is None else ref.oid) == theirs == expected
    fetch_head.unlink()
    fetch_head.mkdir()  # a directory reads as no ref, as for git
    async with open_ref_store(repo, env=ENV) as store:
        assert await store.read("FETCH_HEAD") is None
    assert git.run("rev-parse", "--verify", "-q", "FETCH_HEAD", cwd=repo, check=False).returncode


# -- worktree kinds and stack keys --------------------------------------------------------------
def test_worktree_kinds_are_typed_variants() -> None:
    assert set(typing.get_args(WorktreeKind)) == {"current", "main", "other", "shared"}
    cases = {
        "HEAD": WorktreeRef("current", None, "HEAD"),
        "refs/bisect/bad": WorktreeRef("current", None, "refs/bisect/bad"),
        "refs/heads/x": WorktreeRef("shared", None, "refs/heads/x"),
        "main-worktree/HEAD": WorktreeRef("main", None, "HEAD"),
        "main-worktree/refs/heads/x": WorktreeRef("shared", None, "main-worktree/refs/heads/x"),
        "worktrees/wt/HEAD": OtherWorktreeRef("other", "wt", "HEAD"),
        "worktrees/wt/refs/heads/x": WorktreeRef("shared", None, "worktrees/wt/refs/heads/x"),
    }
    for name, expected in cases.items():
        parsed = parse_worktree_ref(name)
        assert type(parsed) is type(expected) and parsed == expected, name
        assert parsed.kind in typing.get_args(WorktreeKind)
        # only the "other" kind names a worktree; the tuples compare as before
        assert (parsed.worktree is not None) == (parsed.kind == "other")
        assert parsed == (parsed.kind, parsed.worktree, parsed.bare)


@pytest.fixture
def repo(git: Git, git_repo: typing.Callable[..., Path]) -> Path:
    """A repository with one commit on main (HEAD -> refs/heads/main)."""
    path = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=path)
    return path


@pytest.mark.git
async def test_stack_keys_from_the_main_worktree_and_a_linked_one(git: Git, repo: Path) -> None:
    wt = repo.parent / "wt"
    git("worktree", "add", "-q", str(wt), cwd=repo)
    async with core_of(repo) as core:
        assert core.worktree is None and core.own_stack is core.main
        assert core.route("HEAD") == ("main", "HEAD")
        assert core.route("main-worktree/HEAD") == ("main", "HEAD")
        assert core.route("worktrees/wt/HEAD") == (WorktreeKey("wt"), "HEAD")
        assert core.worktree_stack_dir(WorktreeKey("wt")) == wt_dir(repo, "wt")
    async with core_of(wt) as core:
        assert core.worktree is not None and core.own_stack is core.worktree
        assert core.route("HEAD") == ("current", "HEAD")
        assert core.route("worktrees/wt/refs/bisect/x") == ("current", "refs/bisect/x")
        assert core.route("main-worktree/HEAD") == ("main", "HEAD")
        assert core.route("refs/heads/main") == ("main", "refs/heads/main")
        assert core.worktree_stack_dir("current") == core.own_stack_dir == wt_dir(repo, "wt")
        async with AsyncExitStack() as scope:
            assert await core.stack_for("current", scope) is core.worktree
            assert await core.stack_for("main", scope) is core.main
        # a core whose stacks do not match its layout cannot be built
        with pytest.raises(ValueError, match="worktree stack"):
            RefCore(core.layout, core.config, ENV, core.main, None, None, False)


def wt_dir(repo: Path, wid: str) -> Path:
    return repo / ".git" / "worktrees" / wid / "reftable"


# -- update flags --------------------------------------------------------------------------------
def test_update_flags_are_one_int_flag() -> None:
    assert issubclass(UpdateFlag, enum.IntFlag)
    values = [flag.value for flag in UpdateFlag]
    assert len(values) == 7 and all(v & (v - 1) == 0 for v in values)  # distinct bits
    assert sum(values) == (1 << 7) - 1


@pytest.mark.git
async def test_queued_updates_carry_their_flags(git_repo: typing.Callable[..., Path]) -> None:
    async with core_of(git_repo()) as core:
        oid = "1" * core.hexsz
        queue = UpdateQueue(core, "m", False)
        queue.create("refs/heads/a", oid)
        queue.update("refs/heads/b", oid, no_deref=True, skip_object_check=True)
        queue.update("refs/heads/c", oid, old=oid)
        queue.delete("refs/heads/d")
        queue.verify("refs/heads/e", None)
        queue.symref_update("HEAD", "refs/heads/a")
        queue.symref_verify("refs/heads/f", "refs/heads/a")
        flags = [u.flags for u in queue.queued]
        assert all(isinstance(f, UpdateFlag) for f in flags)
        assert flags == [
            F.HAVE_NEW | F.HAVE_OLD,
            F.HAVE_NEW | F.NO_DEREF | F.SKIP_OID_VERIFICATION,
            F.HAVE_NEW | F.HAVE_OLD,
            F.HAVE_NEW,
            F.HAVE_OLD,
            F.HAVE_NEW | F.NO_DEREF,
            F.HAVE_OLD | F.NO_DEREF,
        ]
        forced = UpdateQueue(core, "m", True, skip_object_check=True)
        forced.verify("refs/heads/a", None)
        assert forced.queued[0].flags == F.HAVE_OLD | F.FORCE_CREATE_REFLOG | (
            F.SKIP_OID_VERIFICATION
        )


@pytest.mark.git
async def test_derived_updates_get_log_only_and_via_head(git: Git, repo: Path) -> None:
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    async with core_of(repo) as core:
        # an update of HEAD goes to its referent (VIA_HEAD); HEAD keeps only its log
        queue = UpdateQueue(core, "m", False)
        queue.update("HEAD", head, old=head)
        commit: Commit[None] = Commit(core, queue.queued)
        await commit.run()
        by_name = {u.refname: u.flags for u in commit.updates}
        assert by_name["HEAD"] == F.HAVE_NEW | F.LOG_ONLY | F.NO_DEREF
        assert by_name["refs/heads/main"] == F.HAVE_NEW | F.HAVE_OLD | F.VIA_HEAD
        # an update of HEAD's referent writes HEAD's log too (LOG_ONLY, NO_DEREF)
        queue = UpdateQueue(core, "m", False)
        queue.update("refs/heads/main", head)
        commit = Commit(core, queue.queued)
        await commit.run()
        by_name = {u.refname: u.flags for u in commit.updates}
        assert by_name == {
            "refs/heads/main": F.HAVE_NEW,
            "HEAD": F.HAVE_NEW | F.LOG_ONLY | F.NO_DEREF,
        }


# -- batch rejections --------------------------------------------------------------------------
def test_reasons_list_a_subclass_before_its_base() -> None:
    kinds = [kind for kind, _ in REASONS]
    for n, kind in enumerate(kinds):
        for base in kinds[:n]:
            assert not issubclass(kind, base), f"{kind.__name__} after its base {base.__name__}"
    # every exception type of the tree that is a TransactionError gets its nearest base's
    # reason (or none: the whole batch fails)
    for cls in vars(errors).values():
        if not (isinstance(cls, type) and issubclass(cls, errors.TransactionError)):
            continue
        exc: errors.TransactionError = (
            errors.WorktreeNotFoundError("x", "refs/x", worktree="w")
            if cls is errors.WorktreeNotFoundError
            else cls("x", "refs/x")
        )
        nearest = next((r for k, r in REASONS if isinstance(exc, k)), None)
        assert classify(exc) is nearest
    assert classify(errors.TransactionError("x")) is None


@pytest.mark.git
async def test_a_batch_is_a_queue_that_refuses_names(
    git_repo: typing.Callable[..., Path],
) -> None:
    async with core_of(git_repo()) as core:
        batch = Batch(core, "m", False)
        assert isinstance(batch, UpdateQueue) and batch.refuses_names
        batch.create("refs/heads/ok", "1" * core.hexsz)
        batch.delete("refs/heads/../x")
        batch.update("FETCH_HEAD", "2" * core.hexsz)
        assert [type(c) for c in batch.calls] == [Update, RefusedName, RefusedName]
        refused = [c for c in batch.calls if isinstance(c, RefusedName)]
        assert [c.refname for c in refused] == ["refs/heads/../x", "FETCH_HEAD"]
        assert all(isinstance(c.error, errors.RefnameError) for c in refused)
        # a transaction's queue raises instead
        queue = UpdateQueue(core, "m", False)
        with pytest.raises(errors.RefnameError, match="pseudoref"):
            queue.update("FETCH_HEAD", "2" * core.hexsz)
        assert queue.calls == []


def test_rejected_line_of_an_applied_update_is_an_error() -> None:
    applied = BatchResult(0, "refs/heads/x", "a", "b")
    with pytest.raises(ValueError, match="not rejected"):
        applied.rejected_line()
