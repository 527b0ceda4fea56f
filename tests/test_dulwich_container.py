"""ReftableRefsContainer: reads against git, compare-and-swap semantics, one table per
update, races between threads, and the sync façade from asyncio and trio tasks."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from conftest import Git
from dulwich.objects import ObjectID
from dulwich.refs import Ref, SymrefLoop
from dulwich_helpers import ENV, git_view, make_commits, make_repo, table_count, update_index

from aioreftable import MissingObjectError, NameConflictError
from aioreftable.dulwich import ReftableRefsContainer, RefUpdate

FORMATS = ["sha1", "sha256"]


def _refs(path: Path) -> ReftableRefsContainer:
    return ReftableRefsContainer(path, env=ENV)


def _rev(git: Git, path: Path, spec: str) -> bytes:
    return git("rev-parse", spec, cwd=path).strip().encode()


@pytest.mark.parametrize("object_format", FORMATS)
def test_reads_agree_with_git(git: Git, tmp_path: Path, object_format: str) -> None:
    path = make_repo(git, tmp_path / "r", object_format=object_format, commits=2)
    git("branch", "topic", "main~1", cwd=path)
    git("tag", "light", "main~1", cwd=path)
    git("tag", "-a", "-m", "annotated", "v1", "main", cwd=path)
    git("update-ref", "refs/remotes/origin/main", "main", cwd=path)
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main", cwd=path)
    git("symbolic-ref", "refs/heads/dangling", "refs/heads/nowhere", cwd=path)
    git("update-ref", "ORIG_HEAD", "main~1", cwd=path)  # a root ref: not among dulwich's keys
    null = b"0" * len(_rev(git, path, "main"))
    shown = git("show-ref", "--head", "--dereference", cwd=path).splitlines()
    expected = {}
    for line in shown:
        oid, name = line.split(" ")
        if not name.endswith("^{}"):
            expected[Ref(name.encode())] = oid.encode()
    with _refs(path) as refs:
        assert refs.as_dict() == expected  # symrefs resolved, the dangling one left out
        assert refs.allkeys() == set(expected) | {Ref(b"refs/heads/dangling")}
        assert refs.keys(Ref(b"refs/heads")) == {b"main", b"topic", b"dangling"}
        assert refs.subkeys(Ref(b"refs/tags/")) == {b"light", b"v1"}
        assert refs.as_dict(Ref(b"refs/remotes/origin")) == {
            b"HEAD": expected[Ref(b"refs/remotes/origin/main")],
            b"main": expected[Ref(b"refs/remotes/origin/main")],
        }
        assert refs.get_symrefs() == {
            b"HEAD": b"refs/heads/main",
            b"refs/remotes/origin/HEAD": b"refs/remotes/origin/main",
            b"refs/heads/dangling": b"refs/heads/nowhere",
        }
        assert refs.read_loose_ref(Ref(b"HEAD")) == b"ref: refs/heads/main"
        assert refs.read_ref(Ref(b"refs/heads/topic")) == _rev(git, path, "topic")
        assert refs.follow(Ref(b"refs/remotes/origin/HEAD")) == (
            [b"refs/remotes/origin/HEAD", b"refs/remotes/origin/main"],
            _rev(git, path, "main"),
        )
        assert refs.follow(Ref(b"refs/heads/dangling")) == (
            [b"refs/heads/dangling", b"refs/heads/nowhere"],
            None,
        )
        assert refs.get_peeled(Ref(b"refs/tags/v1")) == _rev(git, path, "v1^{}")
        assert refs.get_peeled(Ref(b"refs/tags/light")) is None  # not a tag: no second value
        assert refs.get_packed_refs() == {}
        assert Ref(b"refs/heads/main") in refs
        assert refs.read_ref(Ref(b"ORIG_HEAD")) == _rev(git, path, "main~1")  # but readable
        assert Ref(b"refs/heads/nowhere") not in refs
        with pytest.raises(KeyError):
            refs[Ref(b"refs/heads/dangling")]
        assert null not in refs.as_dict().values()
        for odd in (b"nonsense name", b"refs/heads/../x", b"", b"main"):  # names no ref has
            assert Ref(odd) not in refs and refs.read_loose_ref(Ref(odd)) is None
            assert refs.follow(Ref(odd)) == ([odd], None)


def test_symref_loop_is_dulwichs_error(git: Git, tmp_path: Path) -> None:
    path = make_repo(git, tmp_path / "r")
    git("symbolic-ref", "refs/heads/a", "refs/heads/b", cwd=path)
    git("symbolic-ref", "refs/heads/b", "refs/heads/a", cwd=path)
    with _refs(path) as refs:
        with pytest.raises(SymrefLoop):
            refs.follow(Ref(b"refs/heads/a"))
        assert b"refs/heads/a" not in refs.as_dict()


@pytest.mark.parametrize("object_format", FORMATS)
def test_compare_and_swap(git: Git, tmp_path: Path, object_format: str) -> None:
    path = make_repo(git, tmp_path / "r", object_format=object_format)
    c1, c2, c3 = (ObjectID(c.encode()) for c in make_commits(git, path, 3))
    null = ObjectID(b"0" * len(c1))
    main = Ref(b"refs/heads/main")
    with _refs(path) as refs:
        start = refs[main]
        index = update_index(path)
        # a wrong expected value: False, nothing written (not even a table)
        assert refs.set_if_equals(main, c1, c2, message=b"x") is False
        assert refs.set_if_equals(main, null, c2) is False  # must not exist, but does
        assert refs.add_if_new(main, c2) is False
        assert refs.remove_if_equals(main, c1) is False
        assert refs[main] == start and update_index(path) == index
        # the right one: True, one table each
        assert refs.set_if_equals(main, start, c1, message=b"cas: one") is True
        assert refs.set_if_equals(Ref(b"HEAD"), c1, c2, message=b"cas: via HEAD") is True
        assert refs[main] == c2 and update_index(path) == index + 2
        assert refs.set_if_equals(Ref(b"refs/heads/new"), null, c1) is True
        assert refs.set_if_equals(Ref(b"refs/heads/new"), None, c3) is True  # no check
        assert refs.add_if_new(Ref(b"refs/heads/other"), c1, message=b"created") is True
        # remove_if_equals never follows a symref: HEAD itself goes, main stays
        assert refs.remove_if_equals(Ref(b"refs/heads/new"), c3) is True
        assert refs.remove_if_equals(Ref(b"refs/heads/gone"), null) is True  # nothing to do
        refs.set_symbolic_ref(Ref(b"refs/heads/link"), main, message=b"link")
        assert refs.remove_if_equals(Ref(b"refs/heads/link"), None) is True
        assert refs[main] == c2
        # add_if_new follows symrefs: HEAD -> an unborn branch creates the branch
        refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/unborn"))
        assert refs.add_if_new(Ref(b"HEAD"), c3, message=b"born") is True
        assert refs.add_if_new(Ref(b"HEAD"), c1) is False
        assert refs.read_loose_ref(Ref(b"HEAD")) == b"ref: refs/heads/unborn"
        assert refs[Ref(b"refs/heads/unborn")] == c3
        with pytest.raises(ValueError):
            refs.set_if_equals(main, None, ObjectID(b"not an id"))  # dulwich's own value check
        with pytest.raises(NameConflictError):  # git's D/F rule, not a failed check
            refs.set_if_equals(Ref(b"refs/heads/main/sub"), None, c1)
        with pytest.raises(MissingObjectError):
            refs.set_if_equals(main, None, ObjectID(b"1" * len(c1)))
        assert refs[main] == c2
    view = git_view(git, path)
    assert view.verify == 0, view.verify_output
    assert view.reflog_messages("refs/heads/main")[:2] == ["cas: via HEAD", "cas: one"]
    assert view.reflog_messages("HEAD")[:2] == ["born", "cas: via HEAD"]  # git mirrors HEAD
    assert view.reflog_messages("refs/heads/other") == ["created"]
    assert "refs/heads/new" not in view.reflogs  # deleted with its ref


def test_update_refs_is_one_table_atomic_or_batch(git: Git, tmp_path: Path) -> None:
    path = make_repo(git, tmp_path / "r")
    c1, c2 = (ObjectID(c.encode()) for c in make_commits(git, path, 2))
    null = ObjectID(b"0" * len(c1))
    with _refs(path) as refs:
        main = refs[Ref(b"refs/heads/main")]
        index = update_index(path)
        stale = [
            RefUpdate(Ref(b"refs/heads/a"), null, c1),
            RefUpdate(Ref(b"refs/heads/main"), c2, c1),  # main is not at c2
            RefUpdate(Ref(b"refs/heads/b"), null, c2),
        ]
        result = refs.update_refs(stale, atomic=True)
        assert result[Ref(b"refs/heads/main")] is not None
        assert "expected" in str(result[Ref(b"refs/heads/main")])
        assert result[Ref(b"refs/heads/a")] == "atomic transaction failed"
        assert update_index(path) == index and Ref(b"refs/heads/a") not in refs
        result = refs.update_refs(stale, atomic=False)  # a batch: the others commit
        assert [r is None for r in result.values()] == [True, False, True]
        assert update_index(path) == index + 1
        assert refs[Ref(b"refs/heads/a")] == c1 and refs[Ref(b"refs/heads/b")] == c2
        result = refs.update_refs(
            [
                RefUpdate(Ref(b"refs/heads/a"), c1, None),  # delete
                RefUpdate(Ref(b"refs/heads/main"), main, c2),
            ],
            message=b"push",
        )
        assert result == {b"refs/heads/a": None, b"refs/heads/main": None}
        assert update_index(path) == index + 2
    view = git_view(git, path)
    assert view.reflog_messages("refs/heads/main")[0] == "push"
    assert view.verify == 0


def test_import_refs_and_pack_refs(git: Git, tmp_path: Path) -> None:
    path = make_repo(git, tmp_path / "r")
    c1, c2 = (ObjectID(c.encode()) for c in make_commits(git, path, 2))
    base = Ref(b"refs/remotes/origin")
    with _refs(path) as refs:
        refs.import_refs(base, {Ref(b"a"): c1, Ref(b"b"): c1, Ref(b"c"): c2}, message=b"f1")
        index = update_index(path)
        refs.import_refs(base, {Ref(b"a"): c2, Ref(b"b"): None}, message=b"f2", prune=True)
        assert update_index(path) == index + 1  # one transaction
        assert refs.as_dict(base) == {b"a": c2}
        refs.pack_refs(all=True)
        assert table_count(path) == 1
        assert refs.as_dict(base) == {b"a": c2}
    view = git_view(git, path)
    assert view.reflog_messages("refs/remotes/origin/a") == ["f2", "f1"]
    assert view.verify == 0


def test_racing_set_if_equals_exactly_one_wins(git: Git, tmp_path: Path) -> None:
    """Threads read the same value, then all try to swap it: one wins per round, the
    others get False, and the reflog chains every winner (nothing lost)."""
    threads, rounds = 6, 8
    path = make_repo(git, tmp_path / "r")
    commits = [ObjectID(c.encode()) for c in make_commits(git, path, threads * rounds)]
    ref = Ref(b"refs/heads/main")
    start = threading.Barrier(threads)
    won: list[list[ObjectID]] = [[] for _ in range(rounds)]
    lost = [0] * rounds
    lock = threading.Lock()
    with _refs(path) as refs:
        first = refs[ref]

        def worker(t: int) -> None:
            for r in range(rounds):
                seen = refs[ref]
                start.wait()  # everyone has read before anyone writes
                new = commits[r * threads + t]
                ok = refs.set_if_equals(ref, seen, new, message=b"race")
                with lock:
                    if ok:
                        won[r].append(new)
                    else:
                        lost[r] += 1
                start.wait()  # the round is over before anyone reads again

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join(60)
        assert [len(w) for w in won] == [1] * rounds
        assert lost == [threads - 1] * rounds
        assert refs[ref] == won[-1][0]
        entries = refs.read_reflog(ref)[-rounds:]  # oldest first
        assert [e.new.encode() for e in entries] == [w[0] for w in won]
        assert [e.old.encode() for e in entries] == [first] + [w[0] for w in won[:-1]]
    assert git_view(git, path).verify == 0


def test_many_threads_at_once(git: Git, tmp_path: Path) -> None:
    path = make_repo(git, tmp_path / "r")
    (c1,) = (ObjectID(c.encode()) for c in make_commits(git, path, 1))
    errors: list[BaseException] = []
    with _refs(path) as refs:

        def worker(t: int) -> None:
            try:
                for i in range(5):
                    assert refs.add_if_new(Ref(b"refs/heads/t%d/%d" % (t, i)), c1)
                    assert len(refs.subkeys(Ref(b"refs/heads/t%d" % t))) == i + 1
            except BaseException as exc:  # reported below
                errors.append(exc)

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for th in pool:
            th.start()
        for th in pool:
            th.join(60)
        assert errors == []
        assert len(refs.subkeys(Ref(b"refs/heads"))) == 1 + 16 * 5
    out = git("for-each-ref", "--format=%(refname)", "refs/heads/", cwd=path).split()
    assert len(out) == 1 + 16 * 5


@pytest.mark.anyio
async def test_the_facade_from_tasks_never_blocks_the_loop(git: Git, tmp_path: Path) -> None:
    """From a task: through a worker thread, while the loop keeps running (the blocking
    detector watches it); called on the loop itself: RuntimeError, nothing blocks."""
    path = make_repo(git, tmp_path / "r")
    commits = [ObjectID(c.encode()) for c in make_commits(git, path, 40)]
    refs = await anyio.to_thread.run_sync(_refs, path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.001)
            ticks += 1

    try:
        with pytest.raises(RuntimeError, match="would block"):
            refs.allkeys()
        with pytest.raises(RuntimeError, match="would block"):
            ReftableRefsContainer(path)
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            for n in range(8):  # one after the other
                name = Ref(b"refs/heads/seq%d" % n)
                assert await anyio.to_thread.run_sync(refs.add_if_new, name, commits[n])

            async def add(n: int) -> None:
                name = Ref(b"refs/heads/par%d" % n)
                assert await anyio.to_thread.run_sync(refs.add_if_new, name, commits[n])

            async with anyio.create_task_group() as inner:  # 32 at once
                for n in range(8, 40):
                    inner.start_soon(add, n)
            tg.cancel_scope.cancel()
        keys = await anyio.to_thread.run_sync(refs.subkeys, Ref(b"refs/heads"))
        assert len(keys) == 41
        assert ticks > 0
    finally:
        await anyio.to_thread.run_sync(refs.close)
    with pytest.raises(ValueError, match="closed"):
        await anyio.to_thread.run_sync(refs.allkeys)


def test_symbolic_refs_as_git_writes_them(git: Git, tmp_path: Path) -> None:
    """set_symbolic_ref on HEAD and on another name, against git symbolic-ref -m on a twin:
    the same targets, the same reflog entries (ids and messages)."""
    ours, twin = (make_repo(git, tmp_path / n, commits=2) for n in ("ours", "twin"))
    for path in (ours, twin):
        git("branch", "topic", "main~1", cwd=path)
    git("symbolic-ref", "-m", "switch to topic", "HEAD", "refs/heads/topic", cwd=twin)
    git("symbolic-ref", "-m", "alias", "refs/heads/alias", "refs/heads/main", cwd=twin)
    with _refs(ours) as refs:
        refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/topic"), message=b"switch to topic")
        refs.set_symbolic_ref(Ref(b"refs/heads/alias"), Ref(b"refs/heads/main"), message=b"alias")
        assert refs[Ref(b"refs/heads/alias")] == refs[Ref(b"refs/heads/main")]
    mine, theirs = git_view(git, ours), git_view(git, twin)
    assert mine.refs == theirs.refs
    assert mine.reflogs == theirs.reflogs
    assert mine.reflog_messages("HEAD")[0] == "switch to topic"
    for name in ("HEAD", "refs/heads/alias"):
        assert git("symbolic-ref", name, cwd=ours) == git("symbolic-ref", name, cwd=twin)
    assert mine.verify == 0
