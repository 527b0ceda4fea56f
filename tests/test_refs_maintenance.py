"""Object checks (skip_object_check), the public check_refname_format, pack_refs/optimize
against git pack-refs on a twin, and verify() against t0614's expectations."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Git
from refs_helpers import ENV, make_twins, object_ids, reflog_dump, show_refs

import aioreftable
from aioreftable import LockError, TransactionError, open_ref_store, open_stack
from aioreftable._format._records import BLOCK_TYPE_LOG
from aioreftable._refs._maintenance import valid_table_name
from aioreftable.lowlevel import RefRecord, TableReader

pytestmark = [pytest.mark.anyio, pytest.mark.git]

MISSING = "deadbeef" * 5
_TABLE = re.compile(r"^0x([0-9a-f]{12})-0x([0-9a-f]{12})-[0-9a-f]{8}\.ref$")


def stack_dir(repo: Path) -> Path:
    return repo / ".git" / "reftable"


def listed(repo: Path) -> list[str]:
    return (stack_dir(repo) / "tables.list").read_text().splitlines()


def normalized(names: list[str]) -> list[str]:
    """Table names without their random part (twins get different ones)."""
    out = []
    for name in names:
        m = _TABLE.match(name)
        out.append(f"{m.group(1)}-{m.group(2)}" if m else name)
    return sorted(out)


# -- section 5: the public refname check -----------------------------------------------------
def test_check_refname_format_is_public() -> None:
    from aioreftable._refs._refname import check_refname_format

    assert aioreftable.check_refname_format is check_refname_format
    assert "check_refname_format" in aioreftable.__all__
    code = (
        "import sys, aioreftable\n"
        "assert 'anyio' not in sys.modules and 'dulwich' not in sys.modules\n"
        "assert aioreftable.check_refname_format('refs/heads/x')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "name,flags",
    [
        ("HEAD", []),
        ("HEAD", ["--allow-onelevel"]),
        ("refs/heads/*", ["--refspec-pattern"]),
        ("refs/heads/a..b", []),
        ("refs/heads/x.lock", []),
        ("refs/heads/@{x}", []),
    ],
)
def test_check_refname_format_flags_match_git(git: Git, name: str, flags: list[str]) -> None:
    ok = git.run("check-ref-format", *flags, name, check=False).returncode == 0
    got = aioreftable.check_refname_format(
        name,
        allow_onelevel="--allow-onelevel" in flags,
        refspec_pattern="--refspec-pattern" in flags,
    )
    assert got == ok


# -- section 4: object checks ---------------------------------------------------------------
@pytest.fixture
def repo(git: Git, tmp_path: Path) -> Path:
    return make_twins(git, tmp_path)[1]


async def test_object_checks_match_git(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    cases = [("refs/heads/x", MISSING), ("refs/heads/t", ids["tree"]), ("refs/tags/t", ids["tree"])]
    for name, oid in cases:
        proc = git.run("update-ref", name, oid, cwd=repo, check=False)
        git_err = proc.stderr.decode().strip()
        if proc.returncode == 0:
            git("update-ref", "-d", name, cwd=repo)
        async with open_ref_store(repo, env=ENV) as store:
            try:
                async with store.transaction() as tx:
                    tx.update(name, oid)
            except TransactionError as exc:
                assert git_err.endswith(str(exc)), (git_err, str(exc))
            else:
                assert proc.returncode == 0, git_err
                assert git("rev-parse", name, cwd=repo).strip() == oid


async def test_skip_object_check(git: Git, repo: Path) -> None:
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction() as tx:  # per update
            tx.create("refs/heads/missing", MISSING, skip_object_check=True)
            tx.update("refs/heads/tree", ids["tree"], skip_object_check=True)
        with pytest.raises(TransactionError, match="nonexistent object"):
            async with store.transaction() as tx:  # the flag does not leak to others
                tx.create("refs/heads/ok", ids["c0"], skip_object_check=True)
                tx.create("refs/heads/bad", MISSING)
        async with store.transaction(skip_object_check=True) as tx:  # per transaction
            tx.create("refs/tags/missing", MISSING)
            tx.update("refs/heads/main", MISSING)  # through HEAD as well
        assert await store.resolve("HEAD") == MISSING
    # git reads what we wrote (git's REF_SKIP_OID_VERIFICATION gives the same records)
    for name, oid in [
        ("refs/heads/missing", MISSING),
        ("refs/heads/tree", ids["tree"]),
        ("refs/tags/missing", MISSING),
        ("HEAD", MISSING),
    ]:
        verify = f"verify {name} {oid}\n"
        git("update-ref", "--stdin", cwd=repo, input=verify)
    git("update-ref", "--stdin", cwd=repo, input=f"verify refs/heads/ok {'0' * 40}\n")


async def test_no_object_database(git: Git, repo: Path) -> None:
    """Without an object database (object_database=False, or a caller's peel function)
    nothing is verified; verify_objects=False keeps the database for peeling only."""
    ids = object_ids(git, repo)
    async with open_ref_store(repo, env=ENV, object_database=False) as store:
        async with store.transaction() as tx:
            tx.create("refs/heads/anything", MISSING)
        assert store.peeler is None and not store.verify_objects
    async with (
        open_ref_store(repo, env=ENV, peel=lambda oid: None) as store,
        store.transaction() as tx,
    ):
        tx.create("refs/heads/other", MISSING)
    async with open_ref_store(repo, env=ENV, verify_objects=False) as store:
        async with store.transaction() as tx:
            tx.create("refs/heads/third", MISSING)
            tx.create("refs/tags/annotated", ids["tag"])
        tag = await store.read("refs/tags/annotated")
        assert tag is not None and tag.peeled == ids["c1"]


# -- section 6: pack_refs / optimize ---------------------------------------------------------
async def test_pack_refs_matches_git_pack_refs(git: Git, tmp_path: Path) -> None:
    theirs, ours = make_twins(git, tmp_path)
    for repo in (theirs, ours):
        d = stack_dir(repo)
        names = listed(repo)
        assert len(names) >= 2
        shutil.copy(d / names[0], d / "0x000000000001-0x000000000001-0badf00d.ref")  # stale
        no_auto = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
        for branch in ("b1", "b2", "gone"):
            git("update-ref", f"refs/heads/{branch}", "HEAD", cwd=repo, env=no_auto)
        newest = listed(repo)[-1]
        (d / "tables.list").write_text("".join(n + "\n" for n in listed(repo)[:-1]))
        (d / "stale-table.ref").touch()
        (d / "garbage").touch()
        assert newest not in listed(repo)
    git("pack-refs", cwd=theirs)
    async with open_ref_store(ours, env=ENV) as store:
        assert await store.pack_refs()
        assert not await store.pack_refs()  # one table: nothing to do
    for repo in (theirs, ours):
        assert len(listed(repo)) == 1
    assert normalized(os.listdir(stack_dir(ours))) == normalized(os.listdir(stack_dir(theirs)))
    assert "0badf00d" not in " ".join(os.listdir(stack_dir(ours)))
    assert show_refs(git, ours) == show_refs(git, theirs)
    assert reflog_dump(git, ours) == reflog_dump(git, theirs)


@pytest.mark.parametrize("lock", ["tables.list.lock", "table.lock"])
async def test_pack_refs_raises_lock_errors(git: Git, tmp_path: Path, lock: str) -> None:
    theirs, ours = make_twins(git, tmp_path)
    for repo in (theirs, ours):
        name = "tables.list.lock" if lock == "tables.list.lock" else listed(repo)[0] + ".lock"
        (stack_dir(repo) / name).touch()
    proc = git.run("pack-refs", cwd=theirs, check=False)
    assert proc.returncode and b"unable to compact stack: data is locked" in proc.stderr
    before = listed(ours)
    async with open_ref_store(ours, env=ENV) as store:
        with pytest.raises(LockError):
            await store.pack_refs()
    assert listed(ours) == before


async def test_optimize_auto_like_git(git: Git, tmp_path: Path) -> None:
    """t0610 'pack-refs: auto compaction': a no-op on a geometric stack; with the old tables
    locked new ones compact among themselves; after unlocking --auto compacts to one."""
    theirs, ours = make_twins(git, tmp_path)
    for repo in (theirs, ours):
        git("pack-refs", cwd=repo)
        git("branch", "A", cwd=repo)
    before = listed(ours)
    assert len(before) == 2
    git("pack-refs", "--auto", cwd=theirs)
    async with open_ref_store(ours, env=ENV) as store:
        assert not await store.optimize()
    assert listed(ours) == before and normalized(listed(theirs)) == normalized(before)
    for repo in (theirs, ours):
        for name in listed(repo):
            (stack_dir(repo) / (name + ".lock")).touch()
        git("branch", "B", cwd=repo)
        git("branch", "C", cwd=repo)
        assert len(listed(repo)) == 3
        for lock in stack_dir(repo).glob("*.lock"):
            lock.unlink()
    git("pack-refs", "--auto", cwd=theirs)
    async with open_ref_store(ours, env=ENV) as store:
        assert await store.optimize(auto=True)
    assert normalized(listed(ours)) == normalized(listed(theirs))
    assert len(listed(ours)) == 1


async def test_pack_refs_in_worktree_packs_worktree_stack(git: Git, repo: Path) -> None:
    wt = repo.parent / "wt"
    git("worktree", "add", "-q", str(wt), cwd=repo)
    wt_stack = repo / ".git" / "worktrees" / "wt" / "reftable"
    for n in range(2):
        git("update-ref", f"refs/bisect/b{n}", "HEAD", cwd=wt)
        git("update-ref", f"refs/heads/b{n}", "HEAD", cwd=repo)
    main_before = listed(repo)
    async with open_ref_store(wt, env=ENV) as store:
        await store.pack_refs()
    assert len((wt_stack / "tables.list").read_text().splitlines()) == 1
    assert listed(repo) == main_before


# -- section 6: verify -----------------------------------------------------------------------
def test_valid_table_name_follows_strtoull() -> None:
    assert valid_table_name("0x000000000001-0x000000000002-e4d12d59.ref")
    assert valid_table_name("1-2-3.log")
    assert valid_table_name("--.ref")  # strtoull converts nothing and git accepts that
    assert valid_table_name(" +0x1-2-3.ref")
    for bad in [
        "foo-bar-e4d12d59.ref",
        "0x00000000zzzz-0x00000000zzzz-e4d12d59.ref",
        "0x000000000001-0x000000000002-e4d12d59.abc",
        "0x000000000001-0x000000000002-e4d12d59.refabc",
        "broken.ref",
        "1" * 17 + "-1-1.ref",  # overflows 64 bits: ERANGE
    ]:
        assert not valid_table_name(bad), bad


async def findings(repo: Path) -> list[str]:
    async with open_ref_store(repo, env=ENV) as store:
        return [str(f) for f in await store.verify()]


async def test_verify_well_formed_repository(git: Git, repo: Path) -> None:
    for n in range(20):
        env = {"GIT_TEST_REFTABLE_AUTOCOMPACTION": "false"}
        git("update-ref", f"refs/heads/branch-{n}", "HEAD", cwd=repo, env=env)
    assert len(listed(repo)) > 1
    assert await findings(repo) == []
    async with open_ref_store(repo, env=ENV) as store:
        async with store.transaction(message="x") as tx:
            tx.symref_update("refs/heads/sym", "refs/heads/main")
            tx.symref_update("refs/heads/root", "ORIG_HEAD")  # a root ref target is fine
        assert await store.verify() == []


async def test_verify_reports_lock_files(git: Git, repo: Path) -> None:
    d = stack_dir(repo)
    (d / "tables.list.lock").touch()
    (d / (listed(repo)[0] + ".lock")).touch()
    got = await findings(repo)
    assert [line.split(": ")[:3] for line in got] == [
        ["warning", f"{listed(repo)[0]}.lock", "reftableLockPresent"],
        ["warning", "tables.list.lock", "reftableLockPresent"],
    ]
    # git agrees that the stack is locked
    assert (
        b"cannot lock references"
        in git.run("update-ref", "refs/heads/x", "HEAD", cwd=repo, check=False).stderr
    )
    for lock in d.glob("*.lock"):
        lock.unlink()
    assert await findings(repo) == []


@pytest.mark.parametrize(
    "table_name",
    [
        "foo-bar-e4d12d59.ref",
        "0x00000000zzzz-0x00000000zzzz-e4d12d59.ref",
        "0x000000000001-0x000000000002-e4d12d59.abc",
        "0x000000000001-0x000000000002-e4d12d59.refabc",
    ],
)
async def test_verify_table_names(repo: Path, table_name: str) -> None:
    d = stack_dir(repo)
    names = listed(repo)
    (d / names[0]).rename(d / table_name)
    (d / "tables.list").write_text("".join(n + "\n" for n in [table_name, *names[1:]]))
    assert await findings(repo) == [
        f"warning: {table_name}: badReftableTableName: invalid reftable table name"
    ]


async def test_verify_symref_targets(git: Git, repo: Path) -> None:
    git("symbolic-ref", "refs/heads/symref", "garbage", cwd=repo)
    assert await findings(repo) == [
        "error: refs/heads/symref: badReferentName: points to invalid refname 'garbage'"
    ]
    git("symbolic-ref", "-d", "refs/heads/symref", cwd=repo)
    git("symbolic-ref", "HEAD", "refs/tags/v1", cwd=repo)
    assert await findings(repo) == [
        "error: HEAD: badHeadTarget: HEAD points to non-branch 'refs/tags/v1'"
    ]


async def test_verify_null_oid_and_non_ref_target(repo: Path) -> None:
    async with open_stack(stack_dir(repo), create=False) as stack, stack.addition() as add:
        ts = add.update_index
        add.writer.add_ref(RefRecord.val1(b"refs/heads/null", ts, bytes(20)))
        add.writer.add_ref(RefRecord.symref(b"refs/heads/odd", ts, b"odd/target"))
    assert await findings(repo) == [
        f"error: refs/heads/null: badRefOid: points to invalid object ID '{'0' * 40}'",
        "warning: refs/heads/odd: symrefTargetIsNotARef: points to non-ref target 'odd/target'",
    ]


async def test_verify_worktree_stacks(git: Git, repo: Path) -> None:
    wt = repo.parent / "worktree"
    git("worktree", "add", "-q", str(wt), cwd=repo)
    assert await findings(wt) == []
    d = repo / ".git" / "worktrees" / "worktree" / "reftable"
    existing = (d / "tables.list").read_text().splitlines()[0]
    (d / existing).rename(d / "broken.ref")
    for where in (repo, wt):
        (d / "tables.list").write_text("broken.ref\n")
        assert await findings(where) == [
            "warning: broken.ref: badReftableTableName: invalid reftable table name"
        ]
        (d / "tables.list").write_text("garbage\n")
        async with open_ref_store(repo, env=ENV) as store:
            got = await store.verify()
        assert next(f.message for f in got if f.severity == "error") == (
            "reftable stack for worktree 'worktree' is broken"
        )
        assert [f.code for f in got] == ["badReftableStack", "badReftableTable"]


async def test_verify_reports_corruption_instead_of_crashing(git: Git, repo: Path) -> None:
    """t0610's corrupted tables (truncated to 0 bytes) and tables.list (garbage); a flipped
    byte in a log block and in a footer CRC."""
    d = stack_dir(repo)
    names = listed(repo)

    def replace(path: Path, data: bytes) -> None:
        # a new inode: the open store's mapped tables stay intact (no SIGBUS), while
        # verify(), which reads the files afresh, sees the damage
        tmp = repo / "replacement.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async with open_ref_store(repo, env=ENV) as store:
        for name in names:
            with TableReader.from_path(d / name) as reader:
                logs = [b.offset for b in reader.blocks() if b.typ == BLOCK_TYPE_LOG]
            if logs:
                break
        data = bytearray((d / name).read_bytes())
        data[logs[0] + 12] ^= 0xFF
        replace(d / name, bytes(data))
        got = await store.verify()
        assert got and {f.code for f in got} == {"badReftableTable"}
        assert got[0].path == name and "log block" in got[0].message
        data[-1] ^= 0xFF  # the footer's CRC-32
        replace(d / name, bytes(data))
        got = await store.verify()
        assert [f.code for f in got] == ["badReftableStack", "badReftableTable"]
        assert got[0].message == "reftable stack for worktree 'main' is broken"
        for name in names:
            replace(d / name, b"")
        got = await store.verify()
        assert [f.code for f in got] == ["badReftableStack"] + ["badReftableTable"] * len(names)
        assert git.run("update-ref", "refs/heads/main", "HEAD", cwd=repo, check=False).returncode
        replace(d / "tables.list", b"garbage\n")
        got = await store.verify()
        assert [(f.code, f.path) for f in got] == [
            ("badReftableStack", "reftable"),
            ("badReftableTable", "garbage"),
        ]
        assert got[1].message == "listed in tables.list but missing"


async def test_verify_update_index_order_and_unlisted_tables(git: Git, repo: Path) -> None:
    d = stack_dir(repo)
    git("pack-refs", cwd=repo)
    git("update-ref", "refs/heads/x", "HEAD", cwd=repo)
    first, second = listed(repo)
    (d / "tables.list").write_text(f"{second}\n{first}\n")
    got = await findings(repo)
    assert len(got) == 1 and got[0].startswith(f"error: {first}: badReftableUpdateIndex:")
    (d / "tables.list").write_text(f"{first}\n")
    shutil.copy(d / first, d / "0x000000000001-0x000000000001-0badf00d.ref")
    got = await findings(repo)
    assert [g.split(": ")[1:3] for g in got] == [
        ["0x000000000001-0x000000000001-0badf00d.ref", "staleReftableTable"],
        [second, "unlistedReftableTable"],
    ]


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o027])
@pytest.mark.parametrize("shared", ["umask", "group", "world"])
def test_permissions_honor_shared_repository(
    git: Git, tmp_path: Path, umask: int, shared: str
) -> None:
    """t0610 'init/pack-refs: honors --shared=<x> with umask <u>', with our writes."""
    expect = {
        ("umask", 0o002): 0o664,
        ("umask", 0o022): 0o644,
        ("umask", 0o027): 0o640,
        ("group", 0o002): 0o664,
        ("group", 0o022): 0o664,
        ("group", 0o027): 0o660,
    }.get((shared, umask), 0o664)
    repo = tmp_path / "repo"
    code = (
        "import os, sys, subprocess, anyio, aioreftable\n"
        f"os.umask({umask})\n"
        f"subprocess.run([{git.path!r}, 'init', '-q', '--ref-format=reftable', "
        f"'--shared={shared}', {str(repo)!r}], check=True)\n"
        "async def main():\n"
        f"    async with aioreftable.open_ref_store({str(repo)!r}) as store:\n"
        "        async with store.transaction(skip_object_check=True) as tx:\n"
        f"            tx.create('refs/heads/a', {MISSING!r})\n"
        "        await store.pack_refs()\n"
        "        async with store.transaction(skip_object_check=True) as tx:\n"
        f"            tx.create('refs/heads/b', {MISSING!r})\n"
        "anyio.run(main)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    files = [stack_dir(repo) / "tables.list", *stack_dir(repo).glob("*.ref")]
    assert len(files) >= 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == expect, (path.name, oct(path.stat().st_mode))
