"""Hostile refnames (issue 10, items 1-3): every RefStore operation that takes a name refuses
what git refuses for it with a RefnameError (WorktreeNotFoundError for a missing worktree)
and writes nothing; routing never leaves ``<common dir>/worktrees/<id>``; the accept/refuse
verdicts match git's update-ref (--stdin too) and branch -m on a twin."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Git
from hypothesis import given, settings
from hypothesis import strategies as st
from refs_helpers import ENV, live_records

from aioreftable import (
    ExpirePolicy,
    RefMissingError,
    RefnameError,
    RefStore,
    Transaction,
    TransactionError,
    WorktreeNotFoundError,
    open_ref_store,
)
from aioreftable._refs._store import WorktreeKey
from aioreftable.lowlevel import LogRecord, RefRecord, TableReader, TableWriter, WriteOptions

pytestmark = [pytest.mark.anyio, pytest.mark.git]

# -- the names ---------------------------------------------------------------------------------
#: Refused by every operation: neither a valid refname nor a safe one (git never reads them).
REFUSED = [
    "refs/heads/\x00",
    "refs/heads/x\x00y",
    "HEAD\x00",
    "\x00",
    "worktrees/../refs/bisect/x",
    "worktrees/../HEAD",
    "worktrees/./refs/bisect/x",
    "worktrees//refs/bisect/x",
    "worktrees/wt/../../refs/bisect/x",
    "main-worktree/../refs/bisect/x",
    "..",
    ".",
    "",
    "/",
    "refs/",
    "refs/heads/",
    "/refs/heads/x",
    "refs/heads//x",
    "refs/heads/./x",
    "refs/heads/a/../b",
    "refs/../refs/heads/x",
    "refs/heads/\ud800",  # a lone surrogate: no bytes at all
    "HEAD\x01",
]
#: Valid names of a worktree that does not exist ("main" and "current" are not stacks here).
MISSING_WORKTREE = [
    "worktrees/nope/refs/bisect/y",
    "worktrees/main/refs/bisect/y",
    "worktrees/current/HEAD",
]
#: Safe but malformed: git deletes, verifies and reads them, but gives them no value (nor a
#: symref target: update-ref --stdin refuses them; only ``git symbolic-ref`` writes them).
MALFORMED = [
    "refs/heads/\x01",
    "refs/heads/\x1f",
    "refs/heads/\x7f",
    "refs/heads/a..b",
    "refs/heads/x.lock",
    "refs/heads/a b",
    "refs/heads/a@{1}",
    "refs/heads/.x",
    "refs/heads/a:b",
    "refs/heads/a\\b",
    "refs/heads/*",
]
#: Valid but unsafe: git gives it a value, but refuses to delete, verify or symref it.
UNSAFE_VALID = ["foo", "worktrees/wt"]
#: Accepted by every operation, like git (U+0085 is a C1 control; its UTF-8 bytes are fine).
ACCEPTED = ["refs/heads/\u0085", "refs/heads/\udcff", "refs/heads/ok"]


# -- the operations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    """One public operation on one name; ``rule`` is the name check git applies to it."""

    id: str
    rule: str  # "format", "safe", "symref" (both) or "readable"
    run: Callable[[RefStore, str, str], Awaitable[Any]]  # (store, name, commit id)


def _tx(fn: Callable[[Any, str, str], None]) -> Callable[[RefStore, str, str], Awaitable[None]]:
    async def run(store: RefStore, name: str, oid: str) -> None:
        async with store.transaction("m") as tx:
            fn(tx, name, oid)

    return run


def _batch(fn: Callable[[Any, str, str], None]) -> Callable[[RefStore, str, str], Awaitable[None]]:
    async def run(store: RefStore, name: str, oid: str) -> None:
        async with store.batch("m") as b:
            fn(b, name, oid)
        for result in b.rejected:  # a rejection stands for the error it records
            if result.reason is not None and result.reason.name == "INVALID_NAME":
                raise RefnameError(result.error or "", name)
            raise TransactionError(result.error or "", name)

    return run


_QUEUED: list[tuple[str, str, Callable[[Any, str, str], None]]] = [
    ("create", "format", lambda t, n, c: t.create(n, c)),
    ("update", "format", lambda t, n, c: t.update(n, c)),
    ("delete", "safe", lambda t, n, c: t.delete(n)),
    ("verify", "safe", lambda t, n, c: t.verify(n, None)),
    ("symref_update", "symref", lambda t, n, c: t.symref_update(n, "refs/heads/main")),
    ("symref_create", "symref", lambda t, n, c: t.symref_create(n, "refs/heads/main")),
    ("symref_delete", "safe", lambda t, n, c: t.symref_delete(n)),
    ("symref_verify", "safe", lambda t, n, c: t.symref_verify(n, None)),
    ("symref_target", "format", lambda t, n, c: t.symref_update("refs/heads/sym", n)),
]

OPS = [
    Op("read", "readable", lambda s, n, c: s.read(n)),
    Op("reflog", "readable", lambda s, n, c: s.reflog(n)),
    Op("reflog_exists", "readable", lambda s, n, c: s.reflog_exists(n)),
    Op("create_reflog", "format", lambda s, n, c: s.create_reflog(n)),
    Op("delete_reflog", "readable", lambda s, n, c: s.delete_reflog(n)),
    Op("delete_reflog_entry", "readable", lambda s, n, c: s.delete_reflog_entry(n, 0)),
    Op(
        "expire_reflog",
        "readable",
        lambda s, n, c: s.expire_reflog(n, ExpirePolicy(expire=1 << 40)),
    ),
    Op("rename_old", "format", lambda s, n, c: s.rename(n, "refs/heads/renamed", "m")),
    Op("rename_new", "format", lambda s, n, c: s.rename("refs/heads/main", n, "m")),
    Op("copy_old", "format", lambda s, n, c: s.copy(n, "refs/heads/copied", "m")),
    Op("copy_new", "format", lambda s, n, c: s.copy("refs/heads/main", n, "m")),
    *(Op(f"tx.{i}", rule, _tx(fn)) for i, rule, fn in _QUEUED),
    *(Op(f"batch.{i}", rule, _batch(fn)) for i, rule, fn in _QUEUED),
]


def expected(op: Op, name: str) -> type[Exception] | None:
    """The error ``op`` must raise for ``name``; None: any outcome but a RefnameError."""
    if name in REFUSED:
        return RefnameError
    if name in MISSING_WORKTREE:
        if op.rule in ("safe", "symref"):  # git: "refusing to update ref with bad name"
            return RefnameError
        if op.id in ("rename_old", "copy_old"):  # git reads it from the new name's stack
            return RefMissingError
        return WorktreeNotFoundError
    if name in MALFORMED:
        return RefnameError if op.rule in ("format", "symref") else None
    if name in UNSAFE_VALID:
        return RefnameError if op.rule in ("safe", "symref") else None
    return None


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(git: Git, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with a linked worktree ``wt`` (so ``.git/worktrees`` exists) and a main
    worktree reflog for ``refs/bisect/x``."""
    base = tmp_path_factory.mktemp("hostile")
    repo = base / "repo"
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(repo))
    git("commit", "-q", "--allow-empty", "-m", "c0", cwd=repo)
    git("worktree", "add", "-q", str(base / "wt"), cwd=repo)
    git("update-ref", "--create-reflog", "refs/bisect/x", "HEAD", cwd=repo)
    return repo


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def state(repo: Path) -> dict[str, bytes]:
    """Every file of the repository's git dir but its objects: what a refusal must keep."""
    gitdir = repo / ".git"
    return {
        str(p.relative_to(gitdir)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(gitdir.rglob("*"))
        if p.relative_to(gitdir).parts[0] != "objects"
    }


def head_id(git: Git, repo: Path) -> str:
    return git("rev-parse", "HEAD", cwd=repo).strip()


async def outcome(op: Op, store: RefStore, name: str, oid: str) -> Exception | None:
    try:
        await op.run(store, name, oid)
    except (TransactionError, ValueError) as exc:
        return exc
    return None


# -- every operation, every hostile name -------------------------------------------------------
@pytest.mark.parametrize("op", OPS, ids=[op.id for op in OPS])
async def test_every_operation_refuses_hostile_names(git: Git, repo: Path, op: Op) -> None:
    oid = head_id(git, repo)
    wrong: list[str] = []
    async with open_ref_store(repo, env=ENV) as store:
        for name in [*REFUSED, *MISSING_WORKTREE, *MALFORMED, *UNSAFE_VALID, *ACCEPTED]:
            want = expected(op, name)
            before = state(repo)
            got = await outcome(op, store, name, oid)
            if want is None:
                if isinstance(got, RefnameError):
                    wrong.append(f"{name!r}: refused ({got!r}), git accepts it")
                continue
            if not isinstance(got, want):
                wrong.append(f"{name!r}: {got!r}, expected {want.__name__}")
            elif state(repo) != before:
                wrong.append(f"{name!r}: refused but the repository changed")
    assert wrong == []
    # git can still read every ref (a NUL or unsafe name would make it die)
    assert git.run("for-each-ref", cwd=repo, check=False).returncode == 0
    assert git.run("show-ref", "--head", cwd=repo, check=False).returncode == 0


async def test_resolve_answers_none_for_names_git_cannot_resolve(git: Git, repo: Path) -> None:
    """git's refs_resolve_ref_unsafe: NULL for a malformed name (the CLI relies on it)."""
    async with open_ref_store(repo, env=ENV) as store:
        for name in [*REFUSED, *MALFORMED]:
            assert await store.resolve(name) is None, name
        with pytest.raises(WorktreeNotFoundError):
            await store.resolve("worktrees/nope/refs/bisect/y")
        assert await store.resolve("HEAD") == head_id(git, repo)


# -- item 1: NUL ---------------------------------------------------------------------------------
async def test_nul_names_are_refused_and_git_keeps_working(git: Git, repo: Path) -> None:
    before = state(repo)
    async with open_ref_store(repo, env=ENV) as store:
        for name in ("refs/heads/\x00", "refs/heads/x\x00y"):
            with pytest.raises(RefnameError, match=r"bad name 'refs/heads/"):
                async with store.transaction() as tx:
                    tx.symref_update(name, "refs/heads/main")
            queues: list[Callable[[Transaction, str], object]] = [
                lambda tx, n: tx.verify(n, None),
                lambda tx, n: tx.delete(n),
            ]
            for queue in queues:
                with pytest.raises(RefnameError):
                    async with store.transaction() as tx:
                        queue(tx, name)
            with pytest.raises(RefnameError):
                await store.delete_reflog(name)
    assert state(repo) == before
    for cmd in (["for-each-ref"], ["show-ref"], ["fsck", "--no-progress"]):
        assert git.run(*cmd, cwd=repo, check=False).returncode == 0, cmd


# -- item 2: worktrees/../ -----------------------------------------------------------------------
async def test_worktrees_dotdot_does_not_reach_the_main_stack(git: Git, repo: Path) -> None:
    reflog = git("reflog", "show", "refs/bisect/x", cwd=repo)
    assert reflog
    name = "worktrees/../refs/bisect/x"
    async with open_ref_store(repo, env=ENV) as store:
        assert await store.read("refs/bisect/x") is not None
        for call in (store.delete_reflog, store.read, store.reflog, store.reflog_exists):
            with pytest.raises(RefnameError):
                await call(name)
    assert git("reflog", "show", "refs/bisect/x", cwd=repo) == reflog
    # git refuses it too
    assert git.run("reflog", "exists", name, cwd=repo, check=False).returncode == 128


def test_worktree_keys_are_single_components() -> None:
    assert WorktreeKey("wt").id == "wt"
    for bad in ("", ".", "..", "a/b", "../x", "x\x00", ".hidden", "x.lock"):
        with pytest.raises(ValueError):
            WorktreeKey(bad)


_PIECES = st.sampled_from(
    ["worktrees", "main-worktree", "refs", "bisect", "heads", "HEAD", "wt", "x", "..", ".", ""]
)
_NAMES = st.one_of(
    st.lists(_PIECES, min_size=1, max_size=6).map("/".join),
    st.text(st.sampled_from("/.\x00wtrefs"), max_size=24),
)


async def test_routing_never_leaves_the_worktree_directories(repo: Path) -> None:
    """Any name routes to the main stack, this worktree's, or ``worktrees/<id>/reftable``
    with ``<id>`` one plain component, or is refused with RefnameError."""
    async with open_ref_store(repo, env=ENV) as store:
        gitdir = (repo / ".git").resolve()

        @settings(max_examples=300, deadline=None, derandomize=True)
        @given(_NAMES)
        def check(name: str) -> None:
            try:
                key, _ = store.route(name)
            except RefnameError:
                return
            path = store.worktree_stack_dir(key).resolve()
            if isinstance(key, WorktreeKey):
                assert path == gitdir / "worktrees" / key.id / "reftable"
            else:
                assert path == gitdir / "reftable"

        check()


async def test_worktree_named_main_gets_its_own_stack(
    git: Git, template: Path, tmp_path: Path
) -> None:
    """``worktrees/main/...`` and ``worktrees/current/...`` name the worktrees with those
    ids, not the main stack: the same tables as git's on a twin."""
    dumps = []
    for side in ("theirs", "ours"):
        repo = tmp_path / side / "repo"
        shutil.copytree(template, repo, symlinks=True)
        oid = head_id(git, repo)
        for wid in ("main", "current"):
            git("worktree", "add", "-q", "--detach", str(tmp_path / side / wid), cwd=repo)
        names = [f"worktrees/{wid}/refs/bisect/q" for wid in ("main", "current")]
        if side == "theirs":
            git(
                "update-ref",
                "--stdin",
                cwd=repo,
                input="".join(f"create {n} {oid}\n" for n in names),
            )
        else:
            async with open_ref_store(repo, env=ENV) as store, store.transaction() as tx:
                for name in names:
                    tx.create(name, oid)
        dump = {}
        for stack in ("reftable", "worktrees/main/reftable", "worktrees/current/reftable"):
            refs, _ = await live_records(repo / ".git" / stack)
            dump[stack] = sorted(r.refname for r in refs)
        dumps.append(dump)
    assert dumps[0] == dumps[1]
    assert dumps[1]["worktrees/main/reftable"] != []


# -- item 3: a missing worktree ------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda s, n, c: s.create_reflog(n),
        lambda s, n, c: s.delete_reflog(n),
        lambda s, n, c: s.rename("refs/heads/main", n, "m"),
        lambda s, n, c: s.copy("refs/heads/main", n, "m"),
        _tx(lambda t, n, c: t.create(n, c)),
        lambda s, n, c: s.read(n),
        lambda s, n, c: s.reflog(n),
    ],
    ids=["create_reflog", "delete_reflog", "rename", "copy", "transaction", "read", "reflog"],
)
async def test_missing_worktree_is_one_typed_error(
    git: Git, repo: Path, call: Callable[[RefStore, str, str], Awaitable[Any]]
) -> None:
    before = state(repo)
    async with open_ref_store(repo, env=ENV) as store:
        with pytest.raises(WorktreeNotFoundError) as info:
            await call(store, "worktrees/nope/refs/bisect/y", head_id(git, repo))
    assert info.value.worktree == "nope"
    assert isinstance(info.value, RefnameError) and isinstance(info.value, TransactionError)
    assert state(repo) == before
    assert not (repo / ".git" / "worktrees" / "nope").exists()


# -- the same verdicts as git ------------------------------------------------------------------
GIT_NAMES = [
    n
    for n in [*REFUSED, *MISSING_WORKTREE, *MALFORMED, *UNSAFE_VALID, *ACCEPTED]
    if "\x00" not in n and n and not any(0xD800 <= ord(c) <= 0xDFFF for c in n)
]


@dataclass(frozen=True)
class Twin:
    """Our operation and git's command for the same thing."""

    id: str
    ours: Callable[[RefStore, str, str], Awaitable[Any]]
    git: Callable[[str, str], list[str] | None]  # (name, oid) -> argv, None: not comparable
    undo: Callable[[str], list[str] | None] = lambda n: None
    stdin: Callable[[str], str | None] = lambda n: None


async def _reflog_delete(store: RefStore, name: str, oid: str) -> None:
    """``git reflog delete name@{0}``, which fails when there is no such entry."""
    if not await store.delete_reflog_entry(name, 0):
        raise RefMissingError(f"no reflog for '{name}@{{0}}'", name)


def _branch(name: str) -> str | None:
    short = name.removeprefix("refs/heads/")
    return short if short != name else None


TWINS = [
    Twin("update-ref", _tx(lambda t, n, c: t.update(n, c)), lambda n, c: ["update-ref", n, c]),
    Twin("update-ref -d", _tx(lambda t, n, c: t.delete(n)), lambda n, c: ["update-ref", "-d", n]),
    Twin(
        "update-ref --stdin symref-update",
        _tx(lambda t, n, c: t.symref_update(n, "refs/heads/main")),
        lambda n, c: None if " " in n else ["update-ref", "--stdin"],
        stdin=lambda n: f"symref-update {n} refs/heads/main\n",
    ),
    Twin(
        "branch -m",
        lambda s, n, c: s.rename("refs/heads/main", n, "m"),
        lambda n, c: None if _branch(n) is None else ["branch", "-m", "main", str(_branch(n))],
        lambda n: None if _branch(n) is None else ["branch", "-m", str(_branch(n)), "main"],
    ),
    Twin("reflog delete", _reflog_delete, lambda n, c: ["reflog", "delete", f"{n}@{{0}}"]),
]


@pytest.mark.parametrize("twin", TWINS, ids=[t.id for t in TWINS])
async def test_accept_and_refuse_like_git(
    git: Git, template: Path, tmp_path: Path, twin: Twin
) -> None:
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    shutil.copytree(template, theirs, symlinks=True)
    shutil.copytree(template, ours, symlinks=True)
    oid = head_id(git, theirs)
    verdicts: dict[str, tuple[bool, bool]] = {}
    async with open_ref_store(ours, env=ENV) as store:
        for name in [*GIT_NAMES, "refs/bisect/x", "HEAD"]:  # the last two have reflogs
            argv = twin.git(name, oid)
            if argv is None:
                continue
            data = twin.stdin(name)
            git_ok = git.run(*argv, cwd=theirs, input=data, check=False).returncode == 0
            our_ok = await outcome(Op(twin.id, "", twin.ours), store, name, oid) is None
            verdicts[name] = (git_ok, our_ok)
            undo = twin.undo(name)
            if undo is not None:
                git.run(*undo, cwd=theirs, check=False)
                if our_ok:
                    await store.rename(name, "refs/heads/main", "m")
    assert {n: v for n, v in verdicts.items() if v[0] != v[1]} == {}
    assert set(verdicts.values()) == {(True, True), (False, False)}  # both kinds compared


# -- verify(): names in a table written by someone else ------------------------------------------
def add_foreign_table(stack: Path, refs: list[RefRecord], logs: list[LogRecord]) -> None:
    """Append a table made with the low-level TableWriter, as another program would."""
    names = (stack / "tables.list").read_text().split()
    with TableReader.from_path(stack / names[-1]) as last:
        n = last.max_update_index + 1
    writer = TableWriter(WriteOptions(hash="sha1"))
    writer.set_limits(n, n)
    writer.add_refs(sorted(r._replace(update_index=n) for r in refs))
    writer.add_logs(log._replace(update_index=n) for log in logs)
    name = f"0x{n:012x}-0x{n:012x}-0badcafe.ref"
    (stack / name).write_bytes(writer.finish())
    (stack / "tables.list").write_text("".join(f"{x}\n" for x in [*names, name]))


async def test_verify_reports_names_git_cannot_read(git: Git, repo: Path) -> None:
    oid = bytes.fromhex(head_id(git, repo))
    null = bytes(20)
    add_foreign_table(
        repo / ".git" / "reftable",
        refs=[
            RefRecord.val1(b"refs/heads/x\x00y", 0, oid),
            RefRecord.symref(b"refs/../x", 0, b"refs/heads/main"),
            RefRecord.val1(b"refs/heads/a..b", 0, oid),
        ],
        logs=[LogRecord(b"refs/heads/\x00", 0, old_id=null, new_id=oid, message=b"m\n")],
    )
    async with open_ref_store(repo, env=ENV) as store:
        found = [str(f) for f in await store.verify() if f.code == "badRefName"]
    assert found == [
        "error: refs/heads/\\x00: badRefName: reflog name contains a NUL byte "
        "(git reads it as 'refs/heads/')",
        "error: refs/../x: badRefName: ref name is neither a valid nor a safe refname "
        "(git dies on it)",
        "warning: refs/heads/a..b: badRefName: ref name is not a valid refname (git ignores it)",
        "error: refs/heads/x\\x00y: badRefName: ref name contains a NUL byte "
        "(git reads it as 'refs/heads/x')",
    ]
    # what the errors warn about: git dies on the unsafe name
    proc = git.run("for-each-ref", cwd=repo, check=False)
    assert proc.returncode == 128 and b"refname is dangerous" in proc.stderr
