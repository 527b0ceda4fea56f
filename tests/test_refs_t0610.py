"""git's t/t0610-reftable-basics.sh, ref and reflog behaviours ported to the Python API;
every result is also read back by git. (Permissions and pack-refs ports live in
test_refs_maintenance.py.)"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from conftest import Git
from refs_helpers import ENV, make_twins, object_ids

import aioreftable
from aioreftable import (
    IncorrectOldValueError,
    LockError,
    NameConflictError,
    RefnameError,
    ReftableError,
    TransactionError,
    open_ref_store,
)

pytestmark = [pytest.mark.anyio, pytest.mark.git]

ZERO = "0" * 40


@pytest.fixture
def repo(git: Git, tmp_path: Path) -> Path:
    return make_twins(git, tmp_path)[1]


def listed(repo: Path) -> list[str]:
    return (repo / ".git" / "reftable" / "tables.list").read_text().splitlines()


async def test_init_creates_basic_reftable_structures(git: Git, tmp_path: Path) -> None:
    for fmt in ("sha1", "sha256"):
        path = tmp_path / fmt
        await aioreftable.init_repo(path, object_format=fmt)
        assert (path / ".git" / "reftable" / "tables.list").is_file()
        assert git("rev-parse", "--show-ref-format", cwd=path).strip() == "reftable"
        assert git("rev-parse", "--show-object-format", cwd=path).strip() == fmt
        assert git.run("show-ref", cwd=path, check=False).returncode == 1  # empty repository
        git("checkout", "-q", "-b", "main", cwd=path)  # can check out the unborn branch
        async with open_ref_store(path, env=ENV) as store:
            assert await store.read("HEAD") == aioreftable.Ref("HEAD", None, "refs/heads/main")


async def test_peeled_tags_are_stored(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    git("tag", "-m", "annotated tag", "test_tag", "HEAD", cwd=repo)
    tag = git("rev-parse", "refs/tags/test_tag", cwd=repo).strip()
    git("update-ref", "-d", "refs/tags/test_tag", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store, store.transaction() as tx:
        tx.create("refs/tags/test_tag", tag)
    shown = git("show-ref", "-d", "refs/tags/test_tag", cwd=repo).splitlines()
    assert shown == [f"{tag} refs/tags/test_tag", f"{ids['c2']} refs/tags/test_tag^{{}}"]
    fmt = "--format=%(symref)"
    async with open_ref_store(repo, env=ENV) as store, store.transaction() as tx:
        tx.symref_update("refs/heads/sym", "refs/heads/main")
    assert git("for-each-ref", fmt, "refs/heads/sym", cwd=repo).strip() == "refs/heads/main"


async def test_reflog_can_switch_to_previous_branch(git: Git, repo: Path) -> None:
    """``git checkout -b`` done through our API; ``git switch -`` parses our HEAD reflog."""
    async with open_ref_store(repo, env=ENV) as store:
        for prev, branch in (("main", "branch1"), ("branch1", "branch2")):
            head = await store.resolve("HEAD")
            assert head is not None
            async with store.transaction(message="branch: Created from HEAD") as tx:
                tx.create(f"refs/heads/{branch}", head)
            async with store.transaction(message=f"checkout: moving from {prev} to {branch}") as tx:
                tx.symref_update("HEAD", f"refs/heads/{branch}")
            if branch == "branch1":
                git("commit", "-q", "--allow-empty", "-m", "file2", cwd=repo)
    git("switch", "-q", "-", cwd=repo)
    assert (
        git("rev-parse", "--symbolic-full-name", "HEAD", cwd=repo).strip() == "refs/heads/branch1"
    )


async def test_reflog_updates_via_head_update_head_reflog(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        for oid, msg in ((ids["c0"], "one"), (ids["c1"], "two")):
            async with store.transaction(message=msg) as tx:
                tx.update("HEAD", oid)
    assert git("rev-parse", "HEAD@{1}", cwd=repo).strip() == ids["c0"]
    assert git("rev-parse", "main@{1}", cwd=repo).strip() == ids["c0"]
    assert git("reflog", "show", "--format=%gs", "-1", "HEAD", cwd=repo).strip() == "two"


async def test_ref_deletion(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    before = git("show-ref", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(IncorrectOldValueError):
            async with store.transaction() as tx:
                tx.delete("refs/tags/lw", old="deadbeef" * 5)
        assert git("show-ref", cwd=repo) == before
        async with store.transaction() as tx:
            tx.delete("refs/tags/lw", old=ids["c0"])
    assert "refs/tags/lw" not in git("show-ref", cwd=repo)
    assert git.run("show-ref", "--verify", "refs/tags/lw", cwd=repo, check=False).returncode


async def test_df_conflicts(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(NameConflictError) as e1:
            async with store.transaction() as tx:
                tx.create("refs/heads/main/forbidden", ids["c0"])
        assert (
            str(e1.value) == "'refs/heads/main' exists; cannot create 'refs/heads/main/forbidden'"
        )
        with pytest.raises(NameConflictError) as e2:
            async with store.transaction() as tx:
                tx.symref_update("refs/heads", "refs/heads/foo")
        assert str(e2.value) == "'refs/heads/main' exists; cannot create 'refs/heads'"
        with pytest.raises(NameConflictError):  # a symref blocks a ref below it, too
            async with store.transaction() as tx:
                tx.symref_update("refs/heads/s", "refs/heads/main")
                tx.create("refs/heads/s/x", ids["c0"])
    proc = git.run("symbolic-ref", "refs/heads", "refs/heads/foo", cwd=repo, check=False)
    assert proc.stderr.decode().strip() == f"error: {e2.value!s}"
    assert git.run(
        "show-ref", "--verify", "refs/heads/main/forbidden", cwd=repo, check=False
    ).returncode


async def test_refused_names_and_duplicates(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(RefnameError, match="refusing to update ref with bad name"):
            async with store.transaction() as tx:
                tx.delete("../../my-private-file")
        with pytest.raises(TransactionError) as e:
            async with store.transaction() as tx:
                tx.update("refs/heads/main", ids["c2"])
                tx.update("refs/heads/main", ids["c2"])
    assert str(e.value) == "multiple updates for ref 'refs/heads/main' not allowed"


async def test_symbolic_self_reference(git: Git, repo: Path) -> None:
    git("symbolic-ref", "refs/heads/self", "refs/heads/self", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(NameConflictError) as e:
            async with store.transaction() as tx:
                tx.delete("refs/heads/self")
        assert str(e.value) == (
            "multiple updates for 'refs/heads/self' (including one via symref "
            "'refs/heads/self') are not allowed"
        )
        async with store.transaction() as tx:
            tx.delete("refs/heads/self", no_deref=True)
        assert await store.read("refs/heads/self") is None
    assert git.run("symbolic-ref", "-q", "refs/heads/self", cwd=repo, check=False).returncode
    git("symbolic-ref", "refs/heads/self", "refs/heads/self", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store, store.transaction() as tx:
        tx.symref_delete("refs/heads/self")  # git symbolic-ref -d
    assert git.run("symbolic-ref", "-q", "refs/heads/self", cwd=repo, check=False).returncode


async def test_dangling_symrefs(git: Git, repo: Path) -> None:
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction(message="dangle") as tx:
            tx.symref_update("refs/heads/dangling", "refs/heads/unborn")
            tx.symref_update("HEAD", "refs/heads/unborn")
        assert await store.resolve("refs/heads/dangling") is None
        assert await store.resolve("HEAD") is None
    assert git("symbolic-ref", "refs/heads/dangling", cwd=repo).strip() == "refs/heads/unborn"
    assert git("symbolic-ref", "HEAD", cwd=repo).strip() == "refs/heads/unborn"
    assert git.run("rev-parse", "--verify", "-q", "HEAD", cwd=repo, check=False).returncode
    # the move to a dangling target writes no HEAD reflog entry (git: no resolvable new id)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=repo)
    subjects = git("reflog", "show", "--format=%gs", "HEAD", cwd=repo)
    assert "dangle" not in subjects


async def test_empty_transaction_in_empty_repo(git: Git, repo: Path) -> None:
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction() as tx:
            tx.delete("refs/heads/main")
        async with store.transaction() as tx:
            tx.delete("HEAD", no_deref=True)
        assert await store.read("HEAD") is None
        await store._main.wait_idle()
        before = listed(repo)
        async with store.transaction():
            pass
    assert listed(repo) == before
    assert git("for-each-ref", "refs/heads/", cwd=repo) == ""


@pytest.mark.parametrize("what", ["tables", "tables.list"])
async def test_corrupted_tables_cause_failure(git: Git, repo: Path, what: str) -> None:
    """Tables truncated to 0 bytes, or a garbage tables.list (t0610 corrupts them between
    two git processes; so do we: a store opened afterwards fails, git fails too)."""
    c0 = object_ids(git, repo)["c0"]
    d = repo / ".git" / "reftable"
    if what == "tables":
        for name in listed(repo):
            (d / name).write_bytes(b"")
    else:
        (d / "tables.list").write_text("garbage\n")
    with pytest.raises(ReftableError):
        async with open_ref_store(repo, env=ENV):
            pass
    assert git.run("update-ref", "refs/heads/main", c0, cwd=repo, check=False).returncode


async def test_lock_timeout_and_retry(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    lock = repo / ".git" / "reftable" / "tables.list.lock"
    lock.touch()
    proc = git.run("update-ref", "refs/heads/branch", "HEAD", cwd=repo, check=False)
    assert b"cannot lock references" in proc.stderr
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(LockError):
            async with store.transaction() as tx:
                tx.create("refs/heads/branch", ids["c0"])
    git("config", "reftable.lockTimeout", "5000", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store, anyio.create_task_group() as tg:

        async def unlock() -> None:
            await anyio.sleep(0.5)
            lock.unlink()

        tg.start_soon(unlock)
        async with store.transaction() as tx:
            tx.create("refs/heads/branch", ids["c0"])
    assert git("rev-parse", "refs/heads/branch", cwd=repo).strip() == ids["c0"]


async def test_auto_compaction_and_its_failure(git: Git, tmp_path: Path) -> None:
    """'writes cause auto-compaction' (one table stays one table) and 'fails gracefully
    when auto compaction fails' (all tables locked after each write: the stack grows), on
    twins: git's branch -f vs our transactions."""
    theirs, ours = make_twins(git, tmp_path)
    ids = object_ids(git, ours)
    for repo in (theirs, ours):
        git("pack-refs", cwd=repo)
    async with open_ref_store(ours, env=ENV) as store:
        for n in range(5):
            git("update-ref", f"refs/heads/b{n}", ids["c0"], cwd=theirs)
            async with store.transaction() as tx:
                tx.create(f"refs/heads/b{n}", ids["c0"])
            await store._main.wait_idle()
            assert len(listed(ours)) == len(listed(theirs)) <= 2
        for n in range(10):
            git("update-ref", f"refs/heads/l{n}", ids["c1"], cwd=theirs)
            async with store.transaction() as tx:
                tx.create(f"refs/heads/l{n}", ids["c1"])
            await store._main.wait_idle()
            for repo in (theirs, ours):
                for name in listed(repo):
                    (repo / ".git" / "reftable" / f"{name}.lock").touch()
            assert len(listed(ours)) == len(listed(theirs))
    assert len(listed(ours)) == 10  # the first write still compacted, as in t0610
    assert git("show-ref", cwd=ours) == git("show-ref", cwd=theirs)


async def test_missing_object_ids_are_not_flagged(git: Git, repo: Path) -> None:
    bad = "deadbeef" * 5
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction() as tx:
            tx.create("refs/heads/broken-hash", bad, skip_object_check=True)
        names = {r.name: r.oid async for r in store.iterate("refs/heads/")}
    assert names["refs/heads/broken-hash"] == bad
    git("update-ref", "--stdin", cwd=repo, input=f"verify refs/heads/broken-hash {bad}\n")


async def test_worktree_refs_go_to_their_stacks(git: Git, repo: Path) -> None:
    """'worktree: creating shared ref updates main stack' / 'per-worktree ref updates
    worktree stack' / 'can create shared and per-worktree ref in one transaction'."""
    ids = object_ids(git, repo)
    wt = repo.parent / "wt"
    git("worktree", "add", "-q", str(wt), cwd=repo)
    wt_list = repo / ".git" / "worktrees" / "wt" / "reftable" / "tables.list"
    main_before, wt_before = listed(repo), wt_list.read_text()
    async with open_ref_store(wt, env=ENV) as store, store.transaction() as tx:
        tx.create("refs/heads/shared", ids["c0"])
        tx.create("refs/bisect/per-worktree", ids["c1"])
    assert listed(repo) != main_before and wt_list.read_text() != wt_before
    assert git("rev-parse", "refs/heads/shared", cwd=repo).strip() == ids["c0"]
    assert git("rev-parse", "refs/bisect/per-worktree", cwd=wt).strip() == ids["c1"]
    assert git.run("rev-parse", "-q", "--verify", "refs/bisect/per-worktree", cwd=repo,
                   check=False).returncode  # fmt: skip


# -- reflogs, rename and copy (store.create_reflog, expire_reflog, rename, copy, ...) -------
async def test_reflog_can_delete_separate_entries(git: Git, repo: Path) -> None:
    assert "c1" in git("reflog", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        await store.delete_reflog_entry("HEAD", 1)
    assert "c1" not in git("reflog", cwd=repo) and "c2" in git("reflog", cwd=repo)


async def test_reflog_copying_branch_writes_reflog_entry(git: Git, repo: Path) -> None:
    git("branch", "src", cwd=repo)
    oid = git("rev-parse", "--short", "HEAD", cwd=repo).strip()
    async with open_ref_store(repo, env=ENV) as store:
        await store.copy(
            "refs/heads/src", "refs/heads/dst", "Branch: copied refs/heads/src to refs/heads/dst"
        )
    assert git("reflog", "dst", cwd=repo).splitlines() == [
        f"{oid} dst@{{0}}: Branch: copied refs/heads/src to refs/heads/dst",
        f"{oid} dst@{{1}}: branch: Created from main",
    ]


async def test_reflog_renaming_branch_writes_reflog_entry(git: Git, repo: Path) -> None:
    expected = git("show-ref", cwd=repo).replace("refs/heads/main", "refs/heads/after")
    async with open_ref_store(repo, env=ENV) as store:
        await store.rename("refs/heads/main", "refs/heads/after", "Branch: renamed")
        async with store.transaction(message="Branch: renamed") as tx:  # as branch.c does
            tx.symref_update("HEAD", "refs/heads/after")
    assert git("show-ref", cwd=repo) == expected
    assert git("symbolic-ref", "HEAD", cwd=repo).strip() == "refs/heads/after"
    assert git("reflog", "show", "--format=%gs", "-1", "after", cwd=repo).strip() == (
        "Branch: renamed"
    )


async def test_reflog_can_store_empty_logs(git: Git, repo: Path) -> None:
    name = "refs/heads/branch"
    async with open_ref_store(repo, env=ENV) as store:
        assert not await store.reflog_exists(name)
        assert await store.create_reflog(name)
        assert await store.reflog_exists(name)
        assert await store.reflog(name) == []
    git("reflog", "exists", name, cwd=repo)


async def test_reflog_expiry_empties_reflog(git: Git, repo: Path) -> None:
    git("checkout", "-q", "-b", "branch", cwd=repo)
    for name in ("fileA", "fileB"):
        git("commit", "-q", "--allow-empty", "-m", name, cwd=repo)
    fmt = "--format=%gs"
    assert git("reflog", "show", fmt, "refs/heads/branch", cwd=repo).splitlines() == [
        "commit: fileB",
        "commit: fileA",
        "branch: Created from HEAD",
    ]
    async with open_ref_store(repo, env=ENV) as store:
        pruned = await store.expire_reflog("refs/heads/branch", aioreftable.ExpirePolicy(1 << 40))
        assert len(pruned) == 3
        assert await store.reflog_exists("refs/heads/branch")
    assert git("reflog", "show", fmt, "refs/heads/branch", cwd=repo) == ""
    git("reflog", "exists", "refs/heads/branch", cwd=repo)


async def test_reflog_can_be_deleted(git: Git, repo: Path) -> None:
    git("reflog", "exists", "refs/heads/main", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        assert await store.delete_reflog("refs/heads/main")
        assert not await store.reflog_exists("refs/heads/main")
    assert git.run("reflog", "exists", "refs/heads/main", cwd=repo, check=False).returncode


async def test_branch_copy_and_move_with_df_conflict(git: Git, repo: Path) -> None:
    git("branch", "branch", cwd=repo)
    git("branch", "conflict", cwd=repo)
    before = git("show-ref", cwd=repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(NameConflictError) as e1:
            await store.copy("refs/heads/branch", "refs/heads/branch/moved", "copy")
        with pytest.raises(NameConflictError) as e2:
            await store.rename("refs/heads/branch", "refs/heads/conflict/moved", "move")
    for exc, args in (
        (e1, ["-c", "branch", "branch/moved"]),
        (e2, ["-m", "branch", "conflict/moved"]),
    ):
        proc = git.run("branch", *args, cwd=repo, check=False)
        assert proc.stderr.decode().splitlines()[0] == f"error: {exc.value}"
    assert git("show-ref", cwd=repo) == before
