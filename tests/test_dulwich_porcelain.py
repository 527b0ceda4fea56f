"""dulwich porcelain on a reftable repository through aioreftable.dulwich, against git.

Each operation runs on three twins made by git with the same first commit: the reftable
repository through ``open_repo`` (ours), a files repository through dulwich's own
``Repo`` (the same objects: fixed dates), and a reftable repository where git itself
does the equivalent command. After each step git's ``for-each-ref`` of ours equals the
dulwich twin's, the reflog of every ref (messages and ids) equals what git wrote for the
equivalent command, the entries carry git's committer identity, and ``git refs verify``
is clean. Clone, fetch and push run over git:// against our Backend (dulwich's local
transport would reopen the path with dulwich's own reftable code)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import Git
from dulwich import porcelain
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich_helpers import (
    AUTHOR,
    ENV,
    TZ,
    WHEN,
    commit_kwargs,
    git_daemon,
    git_view,
    make_repo,
    reflog_idents,
)

from aioreftable import InvalidObjectIdError
from aioreftable.dulwich import Backend, open_repo

FORMATS = ["sha1", "sha256"]


def _same_refs(git: Git, ours: Path, twin: Path) -> None:
    assert git_view(git, ours).refs == git_view(git, twin).refs


def _reflogs_as_git(git: Git, ours: Path, by_git: Path) -> None:
    """Our reflogs have git's messages (ids differ: dulwich's objects are not git's), and
    the same refs have reflogs."""
    mine, theirs = git_view(git, ours), git_view(git, by_git)
    assert sorted(mine.reflogs) == sorted(theirs.reflogs)
    for ref in mine.reflogs:
        assert mine.reflog_messages(ref) == theirs.reflog_messages(ref), ref
    assert mine.verify == 0, mine.verify_output


def _tag_create(repo: Repo, object_format: str) -> bool:
    """porcelain.tag_create of an annotated tag; False when dulwich named the tag by a SHA-1
    id in a SHA-256 repository (dulwich 1.2.21: its files backend stores that broken ref,
    which git then ignores; the ref store refuses it and writes nothing)."""
    try:
        porcelain.tag_create(
            repo, "v1", author=AUTHOR, message=b"tag v1", annotated=True,
            tag_time=WHEN, tag_timezone=TZ,
        )  # fmt: skip
    except InvalidObjectIdError as exc:
        assert object_format == "sha256"
        assert "expected a 64-digit hex object id" in str(exc)
        assert Ref(b"refs/tags/v1") not in repo.refs
        return False
    return True


@pytest.mark.parametrize("object_format", FORMATS)
def test_commit_branch_tag_as_git_writes_them(git: Git, tmp_path: Path, object_format: str) -> None:
    ours = make_repo(git, tmp_path / "ours", object_format=object_format)
    files = make_repo(git, tmp_path / "files", object_format=object_format, ref_format="files")
    by_git = make_repo(git, tmp_path / "git", object_format=object_format)
    _same_refs(git, ours, files)
    with open_repo(ours, env=ENV) as repo, Repo(str(files)) as twin:
        # commit
        for r in (repo, twin):
            porcelain.commit(r, message=b"two", **commit_kwargs(1))
        git("commit", "-q", "--allow-empty", "-m", "two", cwd=by_git)
        _same_refs(git, ours, files)
        _reflogs_as_git(git, ours, by_git)
        head = repo.refs[Ref(b"HEAD")].decode()
        assert git_view(git, ours).reflogs["HEAD"][0] == f"{head} commit: two"
        # branch_create
        for r in (repo, twin):
            porcelain.branch_create(r, "feature")
        git("branch", "feature", "HEAD", cwd=by_git)  # dulwich names the start point HEAD
        _same_refs(git, ours, files)
        _reflogs_as_git(git, ours, by_git)
        # annotated tag_create: no reflog for a tag, as git (logAllRefUpdates=true)
        if not _tag_create(repo, object_format):
            for path in (ours, files):  # the tag made by git instead, the same in both
                git("tag", "-a", "-m", "tag v1", "v1", cwd=path)
        else:
            _tag_create(twin, object_format)
        git("tag", "-a", "-m", "tag v1", "v1", cwd=by_git)
        _same_refs(git, ours, files)
        _reflogs_as_git(git, ours, by_git)
        lines = git_view(git, ours).refs
        assert any(line.endswith(" tag refs/tags/v1") for line in lines), lines
        peeled = repo.refs.get_peeled(Ref(b"refs/tags/v1"))
        assert peeled is not None and peeled.decode() == head  # stored with the tag (VAL2)
        # branch_delete: the ref and its reflog go
        for r in (repo, twin):
            porcelain.branch_delete(r, "feature")
        git("branch", "-D", "feature", cwd=by_git)
        _same_refs(git, ours, files)
        _reflogs_as_git(git, ours, by_git)
        assert "refs/heads/feature" not in git_view(git, ours).reflogs
        # dulwich reads the reflog back from the store, oldest first
        entries = list(repo.read_reflog(b"HEAD"))
        assert [e.message for e in entries] == [b"commit (initial): c0", b"commit: two"]
        assert entries[-1].new_sha == head.encode()
        assert {e.committer for e in entries} == {b"C O Mitter <committer@example.com>"}
    # the committer of every entry we wrote is git's (GIT_COMMITTER_*, fixed date)
    for line in reflog_idents(git, ours, "HEAD"):
        assert line.startswith("C O Mitter <committer@example.com> HEAD@{"), line
    assert git("reflog", "show", "--format=%gd", "--date=raw", "HEAD", cwd=ours).split() == [
        "HEAD@{1112354055",
        "+0200}",
        "HEAD@{1112354055",
        "+0200}",
    ]


@pytest.mark.parametrize("object_format", FORMATS)
def test_clone_from_a_reftable_repository(git: Git, tmp_path: Path, object_format: str) -> None:
    root = tmp_path / "srv"
    src = make_repo(git, root / "src.git", object_format=object_format, bare=True, commits=2)
    git("branch", "topic", "main~1", cwd=src)
    git("tag", "-a", "-m", "t", "v1", "main", cwd=src)
    with Backend(root) as backend, git_daemon(backend) as url:
        cloned = porcelain.clone(f"{url}/src.git", str(tmp_path / "clone"), errstream=io.BytesIO())
        cloned.close()
        git("clone", "-q", f"{url}/src.git", str(tmp_path / "by-git"))
    mine = git_view(git, tmp_path / "clone").refs
    theirs = git_view(git, tmp_path / "by-git").refs
    assert mine == theirs  # main, remotes origin/main and origin/topic, the tag
    heads = git("for-each-ref", "--format=%(objectname) %(refname:lstrip=2)", "refs/heads", cwd=src)
    remotes = git(
        "for-each-ref", "--format=%(objectname) %(refname:lstrip=3)", "refs/remotes/origin/",
        cwd=tmp_path / "clone",
    )  # fmt: skip
    tracking = [line for line in remotes.splitlines() if not line.endswith(" HEAD")]
    assert sorted(tracking) == sorted(heads.splitlines())
    assert git_view(git, src).verify == 0


@pytest.mark.parametrize("object_format", FORMATS)
def test_fetch_into_a_reftable_repository(git: Git, tmp_path: Path, object_format: str) -> None:
    upstream = make_repo(
        git, tmp_path / "up", object_format=object_format, ref_format="files", commits=3
    )
    git("branch", "topic", "main~2", cwd=upstream)
    git("tag", "-a", "-m", "t", "v1", "main~1", cwd=upstream)
    ours = make_repo(git, tmp_path / "ours", object_format=object_format, commits=0)
    by_git = make_repo(git, tmp_path / "git", object_format=object_format, commits=0)
    for r in (ours, by_git):
        git("remote", "add", "origin", str(upstream), cwd=r)
    with open_repo(ours, env=ENV) as repo:
        porcelain.fetch(repo, "origin", errstream=io.BytesIO())
        # fetching again changes nothing and writes no entry
        porcelain.fetch(repo, "origin", errstream=io.BytesIO())
    git("fetch", "-q", "origin", cwd=by_git)
    mine, theirs = git_view(git, ours), git_view(git, by_git)
    assert mine.refs == theirs.refs  # origin/main, origin/topic, v1 (git's view: by id)
    assert sorted(mine.reflogs) == sorted(theirs.reflogs)  # remotes have reflogs, tags not
    for ref in ("refs/remotes/origin/main", "refs/remotes/origin/topic"):
        # one entry each, dulwich's message (git's is "fetch origin: storing head")
        new = git("rev-parse", ref, cwd=ours).strip()
        assert mine.reflogs[ref] == [f"{new} fetch: from {upstream}"]
        assert len(theirs.reflogs[ref]) == 1
    assert mine.verify == 0, mine.verify_output


def _push(git: Git, work: Path, remote: str, refspecs: list[bytes], *, dulwich: bool) -> None:
    if dulwich:
        with Repo(str(work)) as w:
            porcelain.push(w, remote, refspecs, errstream=io.BytesIO())
    else:
        git("push", "-q", remote, *(r.decode() for r in refspecs), cwd=work)


@pytest.mark.parametrize("object_format", FORMATS)
def test_push_to_a_reftable_repository(git: Git, tmp_path: Path, object_format: str) -> None:
    """dulwich pushes to ours over git:// (our Backend, our receive-pack), git pushes the
    same refspecs to a twin through its own receive-pack; then both agree. On SHA-256 the
    pusher is git: dulwich 1.2.21's client pushing a SHA-256 pack to dulwich's server
    hangs (its own files backend too), so only the server side is dulwich's there."""
    root = tmp_path / "srv"
    dst = make_repo(git, root / "dst.git", object_format=object_format, bare=True)
    twin = make_repo(git, tmp_path / "twin.git", object_format=object_format, bare=True)
    work = tmp_path / "work"
    git("clone", "-q", str(twin), str(work))
    with Repo(str(work)) as w:
        porcelain.commit(w, message=b"pushed", **commit_kwargs(5))
    git("tag", "-a", "-m", "v2", "v2", cwd=work)
    git("branch", "side", "main~1", cwd=work)
    by_dulwich = object_format == "sha1"
    steps: list[list[bytes]] = [
        [b"refs/heads/main", b"refs/heads/side"],  # a fast-forward and a new branch
        [b"refs/tags/v2"],  # an annotated tag
        [b":refs/heads/side"],  # a deletion
    ]
    with Backend(root) as backend, git_daemon(backend) as url:
        for refspecs in steps:
            _push(git, work, f"{url}/dst.git", refspecs, dulwich=by_dulwich)
            _push(git, work, f"file://{twin}", refspecs, dulwich=False)
            mine, theirs = git_view(git, dst), git_view(git, twin)
            assert mine.refs == theirs.refs
            assert mine.reflogs == theirs.reflogs == {}  # bare: no reflogs, as git's
            assert mine.verify == 0, mine.verify_output
    assert [line.split(" ")[2] for line in mine.refs] == ["refs/heads/main", "refs/tags/v2"]
    assert git.run("fsck", cwd=dst).returncode == 0
