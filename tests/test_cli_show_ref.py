"""`aioreftable show-ref` against `git show-ref`: same stdout, stderr and exit status."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Git

from aioreftable.cli import main


def ours(cwd: Path, *args: str) -> tuple[int, str, str]:
    """Our show-ref in this process (an interpreter start per call would dominate the
    suite's time; test_cli_errors runs whole processes)."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["show-ref", *args])
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def theirs(git: Git, cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = git.run("show-ref", *args, cwd=cwd, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


ARGS = [
    (),
    ("--head",),
    ("-d",),
    ("--head", "-d"),
    ("-s",),
    ("--hash", "-d", "--head"),
    ("main",),
    ("v1",),
    ("heads/main", "v2"),
    ("ain",),  # not a tail match: no output, exit 1
    ("--branches",),
    ("--tags", "-d"),
    ("--heads",),
    ("--verify", "refs/heads/main"),
    ("--verify", "-d", "refs/tags/v2"),
    ("--verify", "HEAD"),
    ("--verify", "main"),  # short names are not refs for --verify
    ("--verify", "refs/heads/nope"),
    ("--verify", "-q", "refs/heads/nope"),
    ("--verify", "-s", "refs/heads/main", "refs/tags/v1"),
    ("--verify",),
    ("--exists", "refs/heads/main"),
    ("--exists", "refs/heads/dangling"),  # a dangling symref exists
    ("--exists", "refs/heads/nope"),
    ("--exists",),
    ("--exists", "HEAD", "refs/heads/main"),
    ("--exists", "refs/heads/"),  # names git's raw read simply does not find
    ("--exists", "refs//heads/main"),
    ("--exists", "worktrees/nope/HEAD"),
    ("--verify", "refs/remotes/origin/HEAD"),
    ("origin/HEAD",),
    ("deep/path/x",),
]


def populate(git: Git, repo: Path) -> None:
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "two", cwd=repo)
    git("tag", "v1", "HEAD~1", cwd=repo)
    git("tag", "-a", "-m", "annotated", "v2", cwd=repo)
    git("tag", "-a", "-m", "tag of a tag", "v3", "v2", cwd=repo)
    git("branch", "feature/deep/path/x", cwd=repo)
    git("branch", "deep/path/x", cwd=repo)
    git("update-ref", "refs/remotes/origin/main", "HEAD", cwd=repo)
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main", cwd=repo)
    git("symbolic-ref", "refs/heads/dangling", "refs/heads/does-not-exist", cwd=repo)
    git("branch", "gone", cwd=repo)
    git("branch", "-D", "gone", cwd=repo)


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_show_ref_matches_git(
    git: Git,
    git_repo: Callable[..., Path],
    object_format: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = git_repo(object_format=object_format)
    populate(git, repo)
    sub = repo / "sub" / "dir"
    sub.mkdir(parents=True)
    for args in ARGS:
        want = theirs(git, repo, *args)
        assert ours(repo, *args) == want, args
    # discovery from a subdirectory and through -C
    assert ours(sub, "--head") == theirs(git, repo, "--head")
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "-C", str(repo), "show-ref", "-d"],
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == theirs(git, repo, "-d")
    # -C repeated: each relative to the one before; -C "" is ignored, as in git
    monkeypatch.chdir(repo.parent)
    assert main(["-C", repo.name, "-C", "sub", "-C", "", "show-ref", "--head"]) == 0
    assert capsys.readouterr().out == theirs(git, repo, "--head")[1]


def test_show_ref_in_bare_repo_gitfile_and_worktree(
    git: Git, git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = git_repo()
    populate(git, repo)
    bare = tmp_path / "bare.git"
    git("clone", "-q", "--bare", "--ref-format=reftable", str(repo), str(bare))
    for args in [("--head", "-d"), ("--verify", "HEAD"), ("v2",)]:
        assert ours(bare, *args) == theirs(git, bare, *args), args
    # a linked worktree: HEAD lives in the worktree's own stack
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "wt-branch", str(wt), "v1", cwd=repo)
    git("update-ref", "refs/bisect/bad", "HEAD", cwd=wt)
    assert (wt / ".git").is_file()
    for args in [("--head",), ("--verify", "HEAD"), ("-d",), ("--exists", "refs/bisect/bad")]:
        assert ours(wt, *args) == theirs(git, wt, *args), args
    assert ours(repo, "--exists", "refs/bisect/bad") == theirs(
        git, repo, "--exists", "refs/bisect/bad"
    )


def test_show_ref_outside_a_repository(tmp_path: Path) -> None:
    code, out, err = ours(tmp_path, "--head")
    assert code == 128 and out == "" and err.startswith("fatal: not a git repository")


def test_show_ref_refuses_files_backend(git: Git, tmp_path: Path) -> None:
    git("init", "-q", "--ref-format=files", str(tmp_path / "files"))
    code, _, err = ours(tmp_path / "files", "--head")
    assert code == 128 and "'files' ref storage" in err


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_show_ref_dies_on_a_ref_to_a_missing_object(
    git: Git, git_repo: Callable[..., Path], object_format: str
) -> None:
    import anyio

    from aioreftable import open_ref_store

    repo = git_repo(object_format=object_format)
    populate(git, repo)
    missing = "1" * (40 if object_format == "sha1" else 64)

    async def write() -> None:
        async with (
            open_ref_store(repo) as store,
            store.transaction(message="x", skip_object_check=True) as tx,
        ):
            tx.create("refs/heads/missing-object", missing)

    anyio.run(write)
    for args in [
        ("--head",),
        ("-d",),
        ("--verify", "refs/heads/missing-object"),
        ("-q", "--verify", "refs/heads/missing-object"),
        ("--exists", "refs/heads/missing-object"),
        ("main",),
    ]:
        want = theirs(git, repo, *args)
        assert ours(repo, *args) == want, args
    assert theirs(git, repo, "--head")[2].startswith("fatal: git show-ref: bad ref")


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_show_ref_symref_chains_stop_at_gits_depth(
    git: Git, git_repo: Callable[..., Path], object_format: str
) -> None:
    """git follows at most 5 refs (SYMREF_MAXDEPTH): a chain of 4 symrefs resolves, one of
    5 or 6 does not (--verify dies, the listing skips it as broken)."""
    repo = git_repo(object_format=object_format)
    populate(git, repo)
    git("symbolic-ref", "refs/heads/chain/1", "refs/heads/main", cwd=repo)
    for i in range(2, 7):
        git("symbolic-ref", f"refs/heads/chain/{i}", f"refs/heads/chain/{i - 1}", cwd=repo)
    git("symbolic-ref", "refs/heads/loop/a", "refs/heads/loop/b", cwd=repo)
    git("symbolic-ref", "refs/heads/loop/b", "refs/heads/loop/a", cwd=repo)
    cases: list[tuple[str, ...]] = [("--verify", f"refs/heads/chain/{i}") for i in (4, 5, 6)]
    cases += [("--verify", "-q", "refs/heads/chain/5"), ("--verify", "refs/heads/loop/a")]
    cases += [(), ("chain/4",), ("chain/5",), ("--exists", "refs/heads/chain/6")]
    for args in cases:
        assert ours(repo, *args) == theirs(git, repo, *args), args
    # the boundary itself, as git reports it
    assert theirs(git, repo, "--verify", "refs/heads/chain/4")[0] == 0
    assert theirs(git, repo, "--verify", "refs/heads/chain/5")[0] == 128


def test_show_ref_peels_like_git(git: Git, git_repo: Callable[..., Path]) -> None:
    """In a listing the peeled id comes from the ref's own record (a symref to an annotated
    tag has none); --verify and --head peel through the object database."""
    import anyio

    from aioreftable import open_ref_store

    repo = git_repo()
    populate(git, repo)
    git("symbolic-ref", "refs/tags/alias", "refs/tags/v2", cwd=repo)
    git("update-ref", "refs/notes/on-tag", "v2", cwd=repo)
    tag = git("rev-parse", "v3", cwd=repo).strip()

    async def write_unpeeled() -> None:
        # without an object database the tag is stored unpeeled (a plain value record)
        async with (
            open_ref_store(repo, object_database=False) as store,
            store.transaction(message="x") as tx,
        ):
            tx.create("refs/notes/unpeeled", tag)

    anyio.run(write_unpeeled)
    for args in [
        ("-d",),
        ("-d", "alias"),
        ("-d", "--head"),
        ("--verify", "-d", "refs/tags/alias"),
        ("--verify", "-d", "HEAD", "refs/notes/on-tag", "refs/tags/v3"),
        ("-d", "unpeeled"),
        ("--verify", "-d", "refs/notes/unpeeled"),
    ]:
        assert ours(repo, *args) == theirs(git, repo, *args), args


def test_show_ref_checks_objects_without_parsing_them(
    git: Git,
    git_repo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """git's has_object neither parses objects nor opens more than the pack indexes: with
    every object present (loose, packed, or in an alternate) no object is parsed and
    dulwich's store is not even opened; the output is git's. (Only peeling outside a
    listing, ``--verify -d`` and ``--head -d``, reads objects, as git does.)"""
    import dulwich.object_store
    import dulwich.objects

    from aioreftable.cli import main

    repo = git_repo()
    populate(git, repo)
    lines = [f"create refs/heads/many/{i} HEAD\n" for i in range(300)]
    git("update-ref", "--stdin", cwd=repo, input="".join(lines))
    git("commit", "-q", "--allow-empty", "-m", "loose", cwd=repo)
    git("repack", "-q", "-d", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "still loose", cwd=repo)
    shared = tmp_path / "shared"
    git("clone", "-q", "--shared", "--ref-format=reftable", str(repo), str(shared))
    git("update-ref", "refs/heads/from-alternate", "main~1", cwd=shared)
    assert (shared / ".git" / "objects" / "info" / "alternates").is_file()

    opened: list[object] = []
    parsed: list[object] = []
    real_init = dulwich.object_store.DiskObjectStore.__init__
    real_from_file = dulwich.objects.ShaFile.from_file

    def counting_init(self: dulwich.object_store.DiskObjectStore, *args: Any, **kw: Any) -> None:
        opened.append(args)
        real_init(self, *args, **kw)

    def counting_from_file(cls: type, /, f: object, *args: object, **kw: object) -> object:
        parsed.append(f)
        return real_from_file.__func__(cls, f, *args, **kw)  # type: ignore[attr-defined]

    monkeypatch.setattr(dulwich.object_store.DiskObjectStore, "__init__", counting_init)
    monkeypatch.setattr(dulwich.objects.ShaFile, "from_file", classmethod(counting_from_file))
    cases = [
        (repo, ("--head",)),
        (repo, ("-d",)),  # in a listing the peeled ids come from the table
        (repo, ("--verify", "refs/heads/many/7", "refs/heads/main", "refs/tags/v3")),
        (shared, ("--head",)),
        (shared, ("-d",)),
        (shared, ("--verify", "refs/heads/from-alternate", "refs/remotes/origin/many/7")),
    ]
    for where, args in cases:
        monkeypatch.chdir(where)
        assert main(["show-ref", *args]) == 0
        assert capsys.readouterr().out == theirs(git, where, *args)[1], (where, args)
    assert opened == [] and parsed == []


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_show_ref_abbreviates_like_git(
    git: Git, git_repo: Callable[..., Path], tmp_path: Path, object_format: str
) -> None:
    """--hash=N, -sN, --abbrev=N: the shortest prefix of at least N digits that no other
    object shares, among packed objects, loose ones and an alternate's (2,000 packed and
    600 loose blobs make many 4- and 5-digit prefixes ambiguous)."""
    repo = git_repo(object_format=object_format)
    populate(git, repo)
    stream = "".join(f"blob\nmark :{i}\ndata {len(str(i)) + 1}\n{i}\n" for i in range(1, 2001))
    git("fast-import", "--quiet", cwd=repo, input=stream)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    paths = []
    for i in range(600):
        (blobs / f"b{i}").write_text(f"loose {i}\n")
        paths.append(str(blobs / f"b{i}"))
    loose = git("hash-object", "-w", "--stdin-paths", cwd=repo, input="\n".join(paths)).split()
    packed = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=repo).split()
    lines = [f"create refs/x/loose{i} {oid}\n" for i, oid in enumerate(loose[:150])]
    lines += [f"create refs/x/packed{i} {oid}\n" for i, oid in enumerate(packed[::10])]
    git("update-ref", "--stdin", cwd=repo, input="".join(lines))
    lengths = {len(line.split()[0]) for line in theirs(git, repo, "--hash=4")[1].splitlines()}
    assert {4, 5} <= lengths  # the case is not trivial
    for args in [
        ("--hash=4",),
        ("-s5", "-d"),
        ("--abbrev=4", "-d", "--head"),
        ("--abbrev=2", "--tags"),  # raised to git's minimum, 4
        ("--verify", "--abbrev=7", "refs/x/loose3", "refs/tags/v2"),
        ("--hash=9", "--abbrev=0"),  # the last one wins: full ids
        ("--abbrev=100",),
    ]:
        assert ours(repo, *args) == theirs(git, repo, *args), args
    shared = tmp_path / "shared"
    git("clone", "-q", "--shared", "--ref-format=reftable", str(repo), str(shared))
    git("update-ref", "refs/x/blob", loose[0], cwd=shared)
    git("update-ref", "refs/x/packed", packed[7], cwd=shared)
    assert ours(shared, "--abbrev=4") == theirs(git, shared, "--abbrev=4")


def test_show_ref_writes_non_utf8_names_as_bytes(git: Git, git_repo: Callable[..., Path]) -> None:
    """A ref name that is not UTF-8 comes out as git writes it (raw bytes), also where
    Python's streams are strict UTF-8 (PYTHONIOENCODING=utf-8), and never as a traceback."""
    repo = git_repo()
    populate(git, repo)
    name = os.fsdecode(b"refs/heads/caf\xe9")
    git("update-ref", name, "HEAD", cwd=repo)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    for args in [("-d",), ("--verify", name), ("--verify", name + "x")]:
        proc = subprocess.run(
            [sys.executable, "-m", "aioreftable", "show-ref", *args],
            cwd=repo,
            capture_output=True,
            env=env,
        )
        want = git.run("show-ref", *args, cwd=repo, check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            want.returncode,
            want.stdout,
            want.stderr,
        ), args
    assert b"caf\xe9" in want.stderr


def test_show_ref_exclude_existing(
    git: Git, git_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--exclude-existing[=pattern]: the stdin lines whose ref does not exist (git's fgets
    loop: the last word, ``^{}`` dropped, invalid names warned about, NULs and lines of more
    than 1023 bytes as git cuts them); broken symrefs do not exist."""
    repo = git_repo()
    populate(git, repo)
    git("symbolic-ref", "refs/heads/chain/1", "refs/heads/main", cwd=repo)
    for i in range(2, 6):
        git("symbolic-ref", f"refs/heads/chain/{i}", f"refs/heads/chain/{i - 1}", cwd=repo)
    lines = [
        b"abc refs/heads/main",
        b"abc refs/heads/new",
        b"refs/tags/v2^{}",
        b"x\trefs/tags/zz^{}",
        b"",
        b"HEAD",
        b"abc refs/heads/a..b",
        b"  refs/heads/main  ",
        b"refs/remotes/origin/HEAD",
        b"refs/heads/dangling",
        b"refs/heads/chain/4",
        b"refs/heads/chain/5",
        b"abc\0 refs/heads/after-nul",
        b"a" * 1500 + b" refs/heads/long",
        b"q " * 600 + b"refs/heads/main",
        b"caf\xe9 refs/heads/caf\xe9",
        b"no-newline refs/tags/last",
    ]
    data = b"\n".join(lines)
    for args in [
        ("--exclude-existing",),
        ("--exclude-existing=refs/tags",),
        ("--exclude-existing=",),
        ("--exclude-existing", "-d", "main"),
        ("--exclude-existing", "--verify"),
        ("--exists", "--exclude-existing=x"),
        ("--verify", "--exists", "--exclude-existing"),
    ]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        got = ours(repo, *args)
        want = git.run("show-ref", *args, cwd=repo, input=data, check=False)
        assert got == (want.returncode, os.fsdecode(want.stdout), os.fsdecode(want.stderr)), args


def test_verify_root_ref_with_non_ascii_capitals_like_git(
    git: Git, git_repo: Callable[..., Path]
) -> None:
    """git's refname_is_safe takes only ASCII capitals for a root ref: a record named
    ``ÉTÉ`` (written by someone else) is 'not a valid ref' to --verify, though it exists."""
    from aioreftable.lowlevel import RefRecord, TableReader, TableWriter, WriteOptions

    repo = git_repo()
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    head = bytes.fromhex(git("rev-parse", "HEAD", cwd=repo).strip())
    stack = repo / ".git" / "reftable"
    listed = (stack / "tables.list").read_text().split()
    index = max(TableReader.from_path(stack / n).max_update_index for n in listed) + 1
    writer = TableWriter(WriteOptions())
    writer.set_limits(index, index)
    writer.add_ref(RefRecord.val1("ÉTÉ".encode(), index, head))
    name = f"0x{index:012x}-0x{index:012x}-0badcafe.ref"
    (stack / name).write_bytes(writer.finish())
    (stack / "tables.list").write_text("".join(n + "\n" for n in [*listed, name]))
    for args in (("--verify", "ÉTÉ"), ("--verify", "-q", "ÉTÉ"), ("--verify", "HEAD")):
        assert ours(repo, *args) == theirs(git, repo, *args), args
    assert ours(repo, "--verify", "ÉTÉ")[0] == 128
