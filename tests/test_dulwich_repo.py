"""open_repo and Backend: what they open and refuse, real git pushes racing through our
receive-pack, and the reason this module exists (dulwich's own reftable code)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dulwich
import pytest
from conftest import Git
from dulwich import porcelain
from dulwich.errors import NotGitRepository
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich_helpers import ENV, commit_kwargs, git_daemon, git_view, make_repo

from aioreftable import NotARepositoryError, UnsupportedRepositoryError
from aioreftable.dulwich import HANDLERS, Backend, ReftableRefsContainer, ReftableRepo, open_repo


def test_open_repo_refuses_what_it_cannot_serve(git: Git, tmp_path: Path) -> None:
    files = make_repo(git, tmp_path / "files", ref_format="files")
    with pytest.raises(UnsupportedRepositoryError, match="'files' ref storage"):
        open_repo(files)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(NotARepositoryError):
        open_repo(empty, env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    odd = make_repo(git, tmp_path / "odd")
    (odd / ".git" / "refs" / "heads").unlink()
    (odd / ".git" / "refs" / "heads").mkdir()  # dulwich's Repo would rmtree it
    with pytest.raises(UnsupportedRepositoryError, match="dulwich's Repo would delete it"):
        open_repo(odd)
    assert (odd / ".git" / "refs" / "heads").is_dir()


def test_open_repo_is_a_dulwich_repo_on_the_store(git: Git, tmp_path: Path) -> None:
    path = make_repo(git, tmp_path / "r", commits=2)
    bare = make_repo(git, tmp_path / "b.git", bare=True)
    with open_repo(path, env=ENV) as repo:
        assert isinstance(repo, ReftableRepo) and isinstance(repo.refs, ReftableRefsContainer)
        assert repo.head() == git("rev-parse", "HEAD", cwd=path).strip().encode()
        assert repo.path == str(path) and not repo.bare
        assert [e.message for e in repo.read_reflog(b"refs/heads/main")] == [
            b"commit (initial): c0",
            b"commit: c1",
        ]
        entry = next(iter(repo.read_reflog(b"HEAD")))
        assert entry.committer == b"C O Mitter <committer@example.com>"
        assert (entry.timestamp, entry.timezone) == (1112354055, 7200)
    repo.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        repo.refs.allkeys()
    with open_repo(bare / "refs" / "..") as repo:  # a bare repository by its git dir
        assert repo.bare and repo.refs.allkeys() == {b"HEAD", b"refs/heads/main"}


def test_open_repo_in_a_linked_worktree(git: Git, tmp_path: Path) -> None:
    """HEAD is the worktree's own (its stack): a commit there moves its branch and its
    HEAD's reflog, not the main worktree's."""
    main = make_repo(git, tmp_path / "main")
    git("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "side", cwd=main)
    with open_repo(tmp_path / "wt", env=ENV) as repo:
        assert repo.refs.read_loose_ref(Ref(b"HEAD")) == b"ref: refs/heads/side"
        new = porcelain.commit(repo, message=b"in wt", **commit_kwargs(3))
    assert git("rev-parse", "side", cwd=main).strip().encode() == new
    assert git("rev-parse", "HEAD", cwd=main).strip() == git("rev-parse", "main", cwd=main).strip()
    assert git_view(git, tmp_path / "wt").reflog_messages("HEAD")[0] == "commit: in wt"
    assert git_view(git, main).reflog_messages("HEAD") == ["commit (initial): c0"]
    assert git_view(git, main).verify == 0


def test_a_repo_nobody_closed_lets_the_interpreter_exit(git: Git, tmp_path: Path) -> None:
    """The loop thread is a daemon closed by an atexit hook: forgetting close() neither
    hangs the exit nor leaves a lock behind."""
    path = make_repo(git, tmp_path / "r")
    code = (
        "import sys\n"
        "from aioreftable.dulwich import open_repo\n"
        "repo = open_repo(sys.argv[1])\n"
        "repo.refs.set_if_equals(b'refs/heads/x', None, repo.refs[b'HEAD'])\n"
        "print(len(repo.refs.allkeys()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "3\n", "")
    assert not list((path / ".git" / "reftable").glob("*.lock"))
    assert git_view(git, path).verify == 0


def test_backend_serves_only_repositories_under_its_root(git: Git, tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_repo(git, root / "a.git", bare=True)
    make_repo(git, root / "group" / "b")
    make_repo(git, root / "f.git", bare=True, ref_format="files")
    outside = make_repo(git, tmp_path / "outside.git", bare=True)
    os.symlink(outside, root / "link.git")
    with Backend(root) as backend:
        a = backend.open_repository("/a.git")
        assert isinstance(a, ReftableRepo)
        again = backend.open_repository("a.git")  # a Repo per request, one store
        assert again is not a and isinstance(again, ReftableRepo) and again.refs is a.refs
        backend.release(again)  # its object store closes, the ref store stays open
        assert a.refs.allkeys() == {b"HEAD", b"refs/heads/main"}
        assert isinstance(backend.open_repository("/group/b"), ReftableRepo)
        for bad in ("/../outside.git", "/link.git", "/group", "/a.git/refs", "/missing"):
            with pytest.raises(NotGitRepository):
                backend.open_repository(bad)
        with pytest.raises(NotGitRepository, match="'files' ref storage"):
            backend.open_repository("/f.git")
        a_refs = a.refs
    with pytest.raises(ValueError, match="closed"):
        a_refs.allkeys()  # closed with the backend
    with Backend(root, allow_files=True) as backend:
        f = backend.open_repository("/f.git")
        assert type(f) is Repo  # dulwich's own, files backend


def test_racing_git_pushes_exactly_one_wins(git: Git, tmp_path: Path) -> None:
    """Real git clients push different commits onto main at once over git:// (dulwich's
    server, our Backend and receive-pack): per round exactly one is accepted, the others
    are refused (by git's client or by our compare-and-swap), nothing is lost."""
    pushers, rounds = 5, 3
    root = tmp_path / "srv"
    server = make_repo(git, root / "r.git", bare=True)
    clones = [tmp_path / f"c{n}" for n in range(pushers)]
    with Backend(root) as backend, git_daemon(backend) as url:
        history: list[str] = []
        for r in range(rounds):
            procs = []
            for n, clone in enumerate(clones):
                if r == 0:
                    git("clone", "-q", f"{url}/r.git", str(clone))
                else:
                    git("fetch", "-q", "origin", cwd=clone)
                    git("reset", "-q", "--hard", "origin/main", cwd=clone)
                git("commit", "-q", "--allow-empty", "-m", f"r{r} c{n}", cwd=clone)
            for clone in clones:
                procs.append(
                    subprocess.Popen(
                        [git.path, "push", "origin", "HEAD:refs/heads/main"],
                        cwd=clone,
                        env=git.env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                    )
                )
            outcomes = [p.communicate(timeout=60)[0].decode() for p in procs]
            codes = [p.returncode for p in procs]
            assert codes.count(0) == 1, outcomes
            winner = clones[codes.index(0)]
            tip = git("rev-parse", "HEAD", cwd=winner).strip()
            assert git("rev-parse", "main", cwd=server).strip() == tip
            history.append(tip)
    # every accepted commit is in main's history: nothing was lost
    first_parents = git("rev-list", "--first-parent", "main", cwd=server).split()
    assert first_parents[: len(history)] == history[::-1]
    assert git_view(git, server).verify == 0
    assert git.run("fsck", cwd=server).returncode == 0


def test_push_checks_old_values_under_the_lock(git: Git, tmp_path: Path) -> None:
    """Between git's advertisement and our update, the repository's update hook moves
    main with git itself (another process, git's lock): the stale command is refused by
    our compare-and-swap. ``--atomic`` refuses the whole push (git's "atomic transaction
    failed"); without it the other command is applied."""
    root = tmp_path / "srv"
    server = make_repo(git, root / "r.git", bare=True, commits=2)
    moved = git("rev-parse", "main~1", cwd=server).strip()
    hook = server / "hooks" / "update"
    hook.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = refs/heads/side ]; then "{git.path}" update-ref refs/heads/main {moved}; fi\n'
    )
    hook.chmod(0o755)
    work = tmp_path / "work"
    with Backend(root) as backend, git_daemon(backend) as url:
        git("clone", "-q", f"{url}/r.git", str(work))
        git("commit", "-q", "--allow-empty", "-m", "mine", cwd=work)
        mine = git("rev-parse", "HEAD", cwd=work).strip()
        push = ["push", "--porcelain", "origin", "HEAD:refs/heads/main", "HEAD:refs/heads/side"]
        atomic = git.run(*push[:1], "--atomic", *push[1:], cwd=work, check=False)
        assert atomic.returncode != 0
        assert atomic.stdout.decode().count("(atomic transaction failed)") == 2
        assert git("rev-parse", "main", cwd=server).strip() == moved  # the hook's, not ours
        assert git.run("rev-parse", "--verify", "-q", "side", cwd=server, check=False).stdout == b""
        git(
            "update-ref",
            "refs/heads/main",
            git("rev-parse", "HEAD~1", cwd=work).strip(),
            cwd=server,
        )
        single = git.run(*push, cwd=work, check=False)
        assert single.returncode != 0
        assert "!\tHEAD:refs/heads/main\t[remote rejected] (failed to update ref)" in (
            single.stdout.decode()
        )
        assert (  # git's rp_error line, through the side band
            f"remote: error: cannot lock ref 'refs/heads/main': is at {moved} but expected "
            in single.stderr.decode()
        )
        assert git("rev-parse", "side", cwd=server).strip() == mine  # applied
        assert git("rev-parse", "main", cwd=server).strip() == moved
    assert git_view(git, server).verify == 0


def test_dulwichs_own_reftable_code_is_why_this_module_exists(git: Git, tmp_path: Path) -> None:
    """The reason for aioreftable.dulwich: on a reftable repository dulwich's ``Repo``
    uses ``dulwich/reftable.py``, which reads only a table's first ref block. With 600
    branches packed by git, dulwich 1.2.21 sees 159 of the 602 refs, and not
    refs/heads/main, so ``head()`` fails; through open_repo every ref is there.

    The numbers of dulwich's own code are asserted only for the version they were observed
    with; any other version is only recorded (in the test output), never depended on."""
    path = make_repo(git, tmp_path / "big")
    lines = "".join(f"create refs/heads/branch-{n:03} HEAD\n" for n in range(1, 601))
    git("update-ref", "--stdin", cwd=path, input=lines)
    git("pack-refs", "--all", cwd=path)
    expected = {f"refs/heads/branch-{n:03}".encode() for n in range(1, 601)}
    expected |= {b"HEAD", b"refs/heads/main"}
    head = git("rev-parse", "HEAD", cwd=path).strip().encode()
    with open_repo(path, env=ENV) as ours:
        assert ours.refs.allkeys() == expected
        assert ours.head() == head
        assert len(ours.get_refs()) == 602
    own = Repo(str(path))
    try:
        seen = len(own.refs.allkeys())
        try:
            own_head: bytes | None = own.head()
        except KeyError:
            own_head = None
        print(f"dulwich {dulwich.__version__}: its own reftable code sees {seen} of 602 refs")
        if dulwich.__version__ == (1, 2, 21):
            assert type(own.refs).__module__ == "dulwich.reftable"
            assert seen == 159 and own_head is None
            with pytest.raises(KeyError):
                own.refs[Ref(b"refs/heads/main")]
    finally:
        own.close()


@contextmanager
def _aiohttp_server(repo: Repo) -> Iterator[str]:
    """dulwich's own smart-HTTP server on aiohttp for ``repo``, in a thread with its loop."""
    from aiohttp import web
    from dulwich.aiohttp.server import create_repo_app

    runner = web.AppRunner(create_repo_app(repo, handlers=HANDLERS))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_dulwichs_aiohttp_server_calls_from_its_worker_threads(git: Git, tmp_path: Path) -> None:
    """dulwich.aiohttp.server runs each git request in ``asyncio.to_thread``: the container
    works there. Its dumb-HTTP fallback reads refs on the event loop itself: the container
    refuses (RuntimeError, a 500) instead of blocking the loop."""
    server = make_repo(git, tmp_path / "r.git", bare=True, commits=1)
    work = tmp_path / "work"
    with open_repo(server, env=ENV) as repo, _aiohttp_server(repo) as url:
        git("clone", "-q", url, str(work))
        git("commit", "-q", "--allow-empty", "-m", "over http", cwd=work)
        git("push", "-q", "origin", "HEAD:refs/heads/main", "HEAD:refs/heads/new", cwd=work)
        listed = git("ls-remote", url).split()
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(url + "info/refs", timeout=30)  # no ?service=: dumb
        caught.value.close()
        assert caught.value.code == 500
    tip = git("rev-parse", "HEAD", cwd=work).strip()
    assert listed == [tip, "HEAD", tip, "refs/heads/main", tip, "refs/heads/new"]
    assert git("for-each-ref", "--format=%(objectname) %(refname)", cwd=server).split() == [
        tip,
        "refs/heads/main",
        tip,
        "refs/heads/new",
    ]
    assert git_view(git, server).verify == 0


def test_the_module_needs_no_sniffio(git: Git, tmp_path: Path) -> None:
    """anyio >= 4.12 no longer installs sniffio, and nothing else of ours declares it: the
    module imports without it, and its sync API still refuses an asyncio or a trio loop
    and works from a plain thread (a new user's ``pip install '.[examples]'`` had no
    sniffio and the HTTP server died on its import)."""
    repo = make_repo(git, tmp_path / "r")
    code = f"""
import sys
import asyncio, trio  # trio needs sniffio; it is the only one here
sys.modules["sniffio"] = None  # any later import sniffio: ImportError
from aioreftable.dulwich import open_repo
def check():
    try:
        open_repo({str(repo)!r})
    except RuntimeError as e:
        assert "would block" in str(e), e
        return "refused"
    return "opened"
async def on_loop():
    return check()
print(asyncio.run(on_loop()), trio.run(on_loop))
with open_repo({str(repo)!r}) as r:
    print(r.refs[b"HEAD"] is not None)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=ENV
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "refused", "True"]
