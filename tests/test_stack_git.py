"""Interop with a real git (>= 2.45) on one live repository: both write, both read."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from conftest import Git
from stack_helpers import PausingOS, add_ref, listed, stray_files

from aioreftable import LockError, StackOptions, open_stack
from aioreftable._format._writer import HashName
from aioreftable._refs._maintenance import valid_table_name
from aioreftable.lowlevel import RefRecord, WriteOptions

pytestmark = [pytest.mark.anyio, pytest.mark.git]

GENEROUS = StackOptions(lock_timeout=300.0)


def repo_with_commit(
    git: Git, git_repo: Callable[..., Path], fmt: HashName = "sha1"
) -> tuple[Path, bytes]:
    repo = git_repo(object_format=fmt)
    git("commit", "-q", "--allow-empty", "-m", "first", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    return repo, bytes.fromhex(head)


def git_refs(git: Git, repo: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo)
    return dict(line.split(" ") for line in out.splitlines())


def verify(git: Git, repo: Path) -> None:
    proc = git.run("refs", "verify", cwd=repo, check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr.decode()


async def test_we_read_what_git_wrote(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, head = repo_with_commit(git, git_repo)
    git("branch", "topic", cwd=repo)
    git("tag", "-a", "-m", "tag", "v1", cwd=repo)
    async with open_stack(repo / ".git" / "reftable") as stack:
        snap = await stack.snapshot()
        names = [r.refname for r in snap.iter_refs(b"refs/")]
        assert names == [b"refs/heads/main", b"refs/heads/topic", b"refs/tags/v1"]
        main = snap.ref(b"refs/heads/main")
        assert main is not None and main.value == head
        tag = snap.ref(b"refs/tags/v1")
        assert tag is not None and tag.target_value == head  # peeled (VAL2)
        symref = snap.ref(b"HEAD")
        assert symref is not None and symref.target == b"refs/heads/main"
        assert any(log.new_id == head for log in snap.iter_logs(b"refs/heads/main"))


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
async def test_git_reads_what_we_wrote(
    git: Git, git_repo: Callable[..., Path], fmt: HashName
) -> None:
    repo, head = repo_with_commit(git, git_repo, fmt)
    opts = StackOptions(write_options=WriteOptions(hash=fmt))
    async with open_stack(repo / ".git" / "reftable", opts) as stack:
        for i in range(5):
            await add_ref(stack, f"refs/heads/aio-{i}".encode(), head, log=True)
        await stack.wait_idle()
        await stack.compact_all()  # may find a single table already (auto-compaction)
        assert len(await stack.snapshot()) == 1
    refs = git_refs(git, repo)
    assert {f"refs/heads/aio-{i}" for i in range(5)} <= set(refs)
    assert all(v == head.hex() for v in refs.values())
    assert "msg" in git("reflog", "show", "refs/heads/aio-3", cwd=repo)
    verify(git, repo)
    git("update-ref", "refs/heads/after", head.hex(), cwd=repo)
    assert "refs/heads/after" in git_refs(git, repo)


async def test_many_concurrent_writers_git_and_us(git: Git, git_repo: Callable[..., Path]) -> None:
    """t0610 "many concurrent writers", half of them git processes, half our tasks."""
    repo, head = repo_with_commit(git, git_repo)
    n = 50
    git("config", "reftable.lockTimeout", "300000", cwd=repo)
    env = {**git.env}
    git_path: str = git.path

    async def git_writer(i: int) -> None:
        cmd = [git_path, "update-ref", f"refs/heads/git-{i}", head.hex()]
        result = await anyio.run_process(cmd, cwd=repo, env=env, check=False)
        assert result.returncode == 0, result.stderr.decode()

    async with open_stack(repo / ".git" / "reftable", GENEROUS) as stack:
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(git_writer, i)
                tg.start_soon(add_ref, stack, f"refs/heads/aio-{i}".encode(), head)
        await stack.wait_idle()
        snap = await stack.snapshot()
        ours = {r.refname for r in snap.iter_refs(b"refs/heads/")}
    expected = {f"refs/heads/{who}-{i}" for who in ("git", "aio") for i in range(n)}
    assert expected <= {name.decode() for name in ours}
    assert expected <= set(git_refs(git, repo))
    verify(git, repo)
    assert stray_files(repo / ".git" / "reftable") == []


async def test_git_pack_refs_fails_on_our_table_locks_and_appends_survive(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    repo, head = repo_with_commit(git, git_repo)
    rt = repo / ".git" / "reftable"
    fs = PausingOS()
    opts = StackOptions(auto_compact=False)
    async with open_stack(rt, opts, fs=fs) as stack:
        for i in range(3):
            await add_ref(stack, f"refs/heads/aio-{i}".encode(), head)
        fs.armed = True
        async with anyio.create_task_group() as tg:
            tg.start_soon(stack.compact_all)
            await anyio.to_thread.run_sync(fs.paused.wait, 30)
            assert any(n.endswith(".ref.lock") for n in os.listdir(rt))
            packed = git.run("pack-refs", cwd=repo, check=False)
            assert packed.returncode != 0
            assert b"data is locked" in packed.stderr
            # git's appends go through while we merge (the list lock is free)
            git("update-ref", "refs/heads/git-during", head.hex(), cwd=repo)
            fs.resume.set()
        snap = await stack.snapshot()
        assert snap.ref(b"refs/heads/git-during") is not None
        assert len(snap) == 2  # our compacted table and git's table on top of it
    refs = git_refs(git, repo)
    assert {"refs/heads/git-during", "refs/heads/aio-0", "refs/heads/aio-2"} <= set(refs)
    verify(git, repo)
    git("pack-refs", cwd=repo)
    assert len(listed(rt)) == 1 and stray_files(rt) == []


async def test_our_pack_fails_on_git_held_list_lock(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    repo, head = repo_with_commit(git, git_repo)
    rt = repo / ".git" / "reftable"
    (rt / "tables.list.lock").touch()  # as a git process would hold it
    async with open_stack(rt, StackOptions(lock_timeout=0.05)) as stack:
        with pytest.raises(LockError) as info:
            await add_ref(stack, b"refs/heads/x", head)
        assert info.value.lock_path == str(rt / "tables.list.lock")
        assert info.value.waited >= 0.05
    (rt / "tables.list.lock").unlink()
    git("update-ref", "refs/heads/y", head.hex(), cwd=repo)


async def test_reader_sees_git_commit_on_next_read(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, head = repo_with_commit(git, git_repo)
    async with open_stack(repo / ".git" / "reftable") as stack:
        assert (await stack.snapshot()).ref(b"refs/heads/new") is None
        git("update-ref", "refs/heads/new", head.hex(), cwd=repo)
        got = (await stack.snapshot()).ref(b"refs/heads/new")
        assert got is not None and got.value == head
        git("update-ref", "-d", "refs/heads/new", cwd=repo)
        assert (await stack.snapshot()).ref(b"refs/heads/new") is None


async def test_iterator_survives_git_compaction_deleting_its_tables(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    repo, head = repo_with_commit(git, git_repo)
    rt = repo / ".git" / "reftable"
    env = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
    for i in range(20):
        git.run("update-ref", f"refs/heads/b{i:02d}", head.hex(), cwd=repo, env=env)
    async with open_stack(rt, StackOptions(auto_compact=False)) as stack:
        snap = await stack.snapshot()
        assert len(snap) > 5
        old_tables = set(snap.table_names)
        it = snap.iter_refs(b"refs/heads/")
        first = [next(it).refname for _ in range(3)]
        git("pack-refs", cwd=repo)
        assert not old_tables & set(os.listdir(rt))  # git deleted every table we iterate
        rest = [r.refname for r in it]
        assert first + rest == [f"refs/heads/b{i:02d}".encode() for i in range(20)] + [
            b"refs/heads/main"
        ]
        fresh = await stack.snapshot()
        assert len(fresh) == 1 and fresh.generation > snap.generation
        assert len(list(fresh.iter_refs(b"refs/heads/"))) == 21


async def test_our_compaction_while_git_appends_loses_nothing(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    repo, head = repo_with_commit(git, git_repo)
    rt = repo / ".git" / "reftable"
    env = {**git.env, "GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
    git_path: str = git.path
    git("config", "reftable.lockTimeout", "300000", cwd=repo)

    async def git_appender() -> None:
        for i in range(30):
            cmd = [git_path, "update-ref", f"refs/heads/git-{i}", head.hex()]
            await anyio.run_process(cmd, cwd=repo, env=env)

    async with open_stack(rt, StackOptions(lock_timeout=300.0, auto_compact=False)) as stack:
        async with anyio.create_task_group() as tg:
            tg.start_soon(git_appender)
            for i in range(30):
                await add_ref(stack, f"refs/heads/aio-{i}".encode(), head)
                await stack.compact_all()
        await stack.compact_all()
        snap = await stack.snapshot()
        assert len(snap) == 1
        names = {r.refname.decode() for r in snap.iter_refs(b"refs/heads/")}
    expected = {f"refs/heads/{w}-{i}" for w in ("git", "aio") for i in range(30)}
    assert expected <= names and expected <= set(git_refs(git, repo))
    verify(git, repo)


async def test_git_lock_timeout_on_our_held_lock(git: Git, git_repo: Callable[..., Path]) -> None:
    repo, head = repo_with_commit(git, git_repo)
    rt = repo / ".git" / "reftable"
    async with open_stack(rt) as stack, stack.addition() as add:
        failed = await anyio.to_thread.run_sync(
            lambda: git.run("update-ref", "refs/heads/g", head.hex(), cwd=repo, check=False)
        )
        assert failed.returncode != 0 and b"cannot lock references" in failed.stderr
        add.writer.add_ref(RefRecord.val1(b"refs/heads/ours", add.update_index, head))
    assert "refs/heads/ours" in git_refs(git, repo)
    verify(git, repo)


async def test_every_name_git_writes_is_a_valid_table_name(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    repo, _ = repo_with_commit(git, git_repo)
    rt = repo / ".git" / "reftable"
    seen: set[str] = set()
    for i in range(12):
        git("branch", f"b{i}", cwd=repo)
        seen |= {n for n in os.listdir(rt) if n.endswith(".ref")}
        if i % 5 == 4:
            git("pack-refs", cwd=repo)
    assert len(seen) >= 5
    for name in seen:
        assert valid_table_name(name), name  # what verify() checks, as git fsck does
    async with open_stack(rt) as stack:
        assert len(list((await stack.snapshot()).iter_refs(b"refs/heads/"))) == 13
