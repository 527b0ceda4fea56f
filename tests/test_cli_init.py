"""`aioreftable init` against `git init --ref-format=reftable`: same stdout, stderr and exit
status (paths normalised), a repository git accepts, laid out as git's (``--template=``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from cli_scenarios import Outcome, run_git, run_ours
from conftest import GIT_ENV, Git

# Each case: the command lines run one after the other in an empty directory (the last
# ones re-initialize); git's get --ref-format=reftable added.
CASES: list[list[list[str]]] = [
    [["init", "-b", "main"]],
    [["init", "-b", "main", "repo"]],
    [["init", "-b", "trunk", "a/b/c"]],
    [["init", "-q", "-b", "main", "repo"]],
    [["init", "--bare", "-b", "main", "repo.git"]],
    [["init", "--bare", "-q", "--initial-branch=x", "repo.git"]],
    [["init", "--object-format=sha256", "-b", "main", "repo"]],
    [["init", "--object-format", "sha1", "-b", "main"]],
    [["init", "--object-format=md5", "repo"]],
    [["init", "-b", "a..b", "repo"]],
    [["init", "-b", "", "repo"]],
    [["init", "--initial-branch=", "repo"]],
    [["init", "-b", "a b", "repo"]],
    [["init", "-b", "x.lock", "repo"]],
    [["init", "-b", "HEAD", "repo"]],
    [["init", "-b", "main", "repo"], ["init", "repo"]],
    [["init", "-b", "main", "repo"], ["init", "-b", "other", "repo"]],
    [["init", "-b", "main", "repo"], ["init", "-q", "-b", "other", "repo"]],
    [["init", "-b", "main", "repo"], ["init", "--object-format=sha256", "repo"]],
    [["init", "-b", "main", "repo"], ["init", "--object-format=sha1", "repo"]],
    [["init", "--object-format=sha256", "-b", "m", "r"], ["init", "--object-format=sha256", "r"]],
    [["init", "--bare", "-b", "main", "r"], ["init", "--bare", "r"]],
]
# Without -b git advises on the default branch; the advice changed after 2.47: git_new.
NEW_CASES: list[list[list[str]]] = [
    [["init"]],
    [["init", "repo"]],
    [["init", "-q", "repo"]],
    [["init", "--bare", "repo"]],
]


def _normal(outcome: Outcome, root: Path) -> Outcome:
    out, err, code = outcome
    raw = str(root).encode()
    return out.replace(raw, b"ROOT"), err.replace(raw, b"ROOT"), code


def _run_case(git: Git, tmp_path: Path, steps: Sequence[Sequence[str]]) -> None:
    ours_root, git_root = tmp_path / "ours", tmp_path / "git"
    ours_root.mkdir()
    git_root.mkdir()
    for argv in steps:
        ours = _normal(run_ours(ours_root, argv), ours_root)
        theirs = _normal(run_git(git, git_root, [*argv, "--ref-format=reftable"]), git_root)
        assert ours == theirs, argv


@pytest.mark.parametrize("steps", CASES, ids=lambda s: " ; ".join(map(" ".join, s)))
def test_init_matches_git(git: Git, tmp_path: Path, steps: list[list[str]]) -> None:
    _run_case(git, tmp_path, steps)


@pytest.mark.parametrize("steps", NEW_CASES, ids=lambda s: " ; ".join(map(" ".join, s)))
def test_init_default_branch_advice_matches_git_new(
    git_new: Git, tmp_path: Path, steps: list[list[str]]
) -> None:
    _run_case(git_new, tmp_path, steps)


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for a directory); table names vary."""
    found: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.suffix == ".ref":
            rel = str(Path(rel).parent / "TABLE.ref")
        found[rel] = None if p.is_dir() else p.read_bytes()
        if p.name == "tables.list":
            found[rel] = b"names of " + str(len(p.read_bytes().splitlines())).encode()
    return found


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
@pytest.mark.parametrize("bare", [False, True])
def test_init_makes_what_git_makes(git: Git, tmp_path: Path, fmt: str, bare: bool) -> None:
    """Byte for byte git's repository made without templates, first table included; and
    git is happy with it (status, refs verify, fsck, the ref format, a first commit)."""
    flags = ["--bare"] if bare else []
    argv = ["init", "-q", f"--object-format={fmt}", "-b", "main", *flags]
    assert run_ours(tmp_path, [*argv, "ours"]) == (b"", b"", 0)
    git("-C", str(tmp_path), *argv, "--template=", "--ref-format=reftable", "theirs")
    assert _tree(tmp_path / "ours") == _tree(tmp_path / "theirs")
    repo = tmp_path / "ours"
    assert git("rev-parse", "--show-ref-format", cwd=repo) == "reftable\n"
    assert git("rev-parse", "--show-object-format", cwd=repo) == f"{fmt}\n"
    assert git("rev-parse", "--is-bare-repository", cwd=repo) == f"{str(bare).lower()}\n"
    git("refs", "verify", "--strict", cwd=repo)
    git("fsck", "--no-progress", cwd=repo)
    assert git("symbolic-ref", "HEAD", cwd=repo) == "refs/heads/main\n"
    if not bare:
        assert "No commits yet" in git("status", cwd=repo)
        git("commit", "-q", "--allow-empty", "-m", "first", cwd=repo)
        assert git("for-each-ref", "--format=%(refname)", cwd=repo) == "refs/heads/main\n"
        git("refs", "verify", "--strict", cwd=repo)


def test_init_reinitializes_a_git_repository_and_git_one_of_ours(git: Git, tmp_path: Path) -> None:
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(tmp_path / "g"))
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=tmp_path / "g")
    before = git("for-each-ref", cwd=tmp_path / "g")
    out, err, code = run_ours(tmp_path, ["init", "-b", "x", "g"])
    assert (out, err, code) == (
        f"Reinitialized existing Git repository in {tmp_path}/g/.git/\n".encode(),
        b"warning: re-init: ignored --initial-branch=x\n",
        0,
    )
    assert git("for-each-ref", cwd=tmp_path / "g") == before
    assert run_ours(tmp_path, ["init", "-q", "-b", "main", "o"]) == (b"", b"", 0)
    proc = git.run("init", "--ref-format=reftable", str(tmp_path / "o"))
    assert proc.stdout == f"Reinitialized existing Git repository in {tmp_path}/o/.git/\n".encode()


def test_init_refuses_a_files_repository_and_a_file(git: Git, tmp_path: Path) -> None:
    git("init", "-q", "--ref-format=files", "-b", "main", str(tmp_path / "f"))
    ours = run_ours(tmp_path, ["init", "f"])
    assert ours == run_git(git, tmp_path, ["init", "--ref-format=reftable", "f"])
    assert ours[2] == 128 and b"different reference storage format" in ours[1]
    (tmp_path / "file").write_bytes(b"")
    ours = run_ours(tmp_path, ["init", "-b", "main", "file"])
    assert ours == run_git(git, tmp_path, ["init", "-b", "main", "--ref-format=reftable", "file"])
    assert ours == (b"", b"fatal: cannot mkdir file: File exists\n", 128)


def test_init_through_the_entry_point(git: Git, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "-C", str(tmp_path), "init", "-b", "main", "r"],
        capture_output=True,
        env={**GIT_ENV, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert proc.stdout == f"Initialized empty Git repository in {tmp_path}/r/.git/\n".encode()
    git("refs", "verify", cwd=tmp_path / "r")


@pytest.mark.parametrize(
    ("config", "argv"),
    [
        ("[init]\n\tdefaultBranch = trunk\n", ["init", "repo"]),
        ("[init]\n\tdefaultBranch = trunk\n", ["init", "-q", "--bare", "repo"]),
        ("[init]\n\tdefaultBranch = trunk\n", ["init", "-b", "given", "repo"]),
        ("[init]\n\tdefaultBranch = a..b\n", ["init", "repo"]),
        ("[init]\n\tdefaultBranch = one\n\tdefaultBranch = two\n", ["init", "repo"]),
    ],
)
def test_init_takes_init_default_branch_from_the_global_config(
    git: Git, tmp_path: Path, config: str, argv: list[str]
) -> None:
    (tmp_path / "gitconfig").write_text(config)
    env = {"GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")}
    ours_root, git_root = tmp_path / "ours", tmp_path / "git"
    ours_root.mkdir()
    git_root.mkdir()
    ours = _normal(run_ours(ours_root, argv, env=env), ours_root)
    theirs = _normal(run_git(git, git_root, [*argv, "--ref-format=reftable"], env=env), git_root)
    assert ours == theirs
    if theirs[2] == 0:
        head = ["symbolic-ref", "HEAD"]
        repo = "repo"
        assert run_git(git, ours_root / repo, head) == run_git(git, git_root / repo, head)
