"""`aioreftable.migrate_refs` and `refs migrate` against git 2.55's `git refs migrate` (which
migrates reflogs) on twin repositories, both directions, sha1 and sha256."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GIT_ENV, Git
from migrate_helpers import (
    TEMP_NAME,
    assert_healthy,
    build_source,
    config_text,
    files_tree,
    git_view,
    ours,
    table_records,
    theirs,
    twin,
    without_peeled,
)

from aioreftable import migrate_refs
from aioreftable.cli import main
from aioreftable.lowlevel import RefValueType

pytestmark = [pytest.mark.anyio, pytest.mark.git]

FORMATS = ["sha1", "sha256"]


@pytest.mark.parametrize("object_format", FORMATS)
async def test_round_trip_matches_git(git_new: Git, tmp_path: Path, object_format: str) -> None:
    """files -> reftable -> files: git's view of the source before migration is what git
    sees after each step; each step equals git's own migration of a twin (the same reftable
    records apart from the peeled ids git drops, the same files apart from packed-refs'
    ^ lines), and git's verify and fsck are clean."""
    source = build_source(git_new, tmp_path / "source", object_format)
    before = git_view(git_new, source)
    assert before["reflogs"]["refs/heads/loose"].count("\n") == 2  # the zones are there
    assert "-1200" in before["reflogs"]["refs/heads/loose"]
    assert before["symrefs"] == ["refs/heads/main\n", "refs/heads/side\n", "refs/heads/nope\n"]

    ours_rt, git_rt = twin(source, "ours"), twin(source, "git")
    assert await migrate_refs(ours_rt, to="reftable") is None
    git_new("refs", "migrate", "--ref-format=reftable", cwd=git_rt)
    assert git_view(git_new, ours_rt) == before
    assert config_text(ours_rt) == config_text(git_rt)
    assert_healthy(git_new, ours_rt, object_format)
    assert sorted(p.name for p in (ours_rt / ".git").iterdir()) == sorted(
        p.name for p in (git_rt / ".git").iterdir()
    )
    assert (ours_rt / ".git/HEAD").read_bytes() == (git_rt / ".git/HEAD").read_bytes()
    assert (ours_rt / ".git/refs/heads").read_bytes() == (git_rt / ".git/refs/heads").read_bytes()
    our_refs, our_logs = await table_records(ours_rt, object_format)
    git_refs, git_logs = await table_records(git_rt, object_format)
    assert our_logs == git_logs  # update indexes, committers, zones, messages
    peeled = [r for r in our_refs if r.value_type == RefValueType.VAL2]
    assert {r.refname for r in peeled} == {b"refs/tags/v1", b"refs/tags/v2", b"refs/tags/v1-again"}
    # git 2.55 writes every ref as VAL1 (its migration never peels): all else is the same
    assert [r._replace(value_type=RefValueType.VAL1, target_value=None) if r in peeled else r
            for r in our_refs] == git_refs  # fmt: skip

    # back to files, from our reftable: ours and git's on twins
    ours_back, git_back = twin(ours_rt, "ours-back"), twin(ours_rt, "git-back")
    assert await migrate_refs(ours_back, to="files") is None
    git_new("refs", "migrate", "--ref-format=files", cwd=git_back)
    assert git_view(git_new, ours_back) == before
    assert config_text(ours_back) == config_text(git_back) == config_text(source)
    assert_healthy(git_new, ours_back, object_format)
    mine, gits = files_tree(ours_back / ".git"), files_tree(git_back / ".git")
    packed = mine.pop("packed-refs")
    assert without_peeled(packed) == gits.pop("packed-refs")
    assert mine == gits  # loose refs, root refs, logs/ byte for byte
    assert packed.startswith(b"# pack-refs with: peeled fully-peeled sorted \n")
    assert packed.count(b"\n^") == 3  # v1, v2, v1-again peel
    assert sorted(p.name for p in (ours_back / ".git").iterdir()) == sorted(
        p.name for p in (git_back / ".git").iterdir()
    )
    # the reflog files read the same as the ones git wrote in the source
    original = files_tree(source / ".git")
    for name, data in mine.items():
        if name.startswith("logs/"):
            assert data == original[name], name


@pytest.mark.parametrize("object_format", FORMATS)
async def test_reftable_source_written_by_git(
    git_new: Git, tmp_path: Path, object_format: str
) -> None:
    """A reftable repository git built (many tables) to files and back, beside git."""
    source = build_source(git_new, tmp_path / "source", object_format, ref_format="reftable")
    before = git_view(git_new, source)
    ours_f, git_f = twin(source, "ours"), twin(source, "git")
    await migrate_refs(ours_f, to="files")
    git_new("refs", "migrate", "--ref-format=files", cwd=git_f)
    assert git_view(git_new, ours_f) == before
    mine, gits = files_tree(ours_f / ".git"), files_tree(git_f / ".git")
    assert without_peeled(mine.pop("packed-refs")) == gits.pop("packed-refs")
    assert mine == gits
    assert config_text(ours_f) == config_text(git_f)
    assert_healthy(git_new, ours_f, object_format)
    await migrate_refs(ours_f, to="reftable")
    assert git_view(git_new, ours_f) == before
    assert_healthy(git_new, ours_f, object_format)


async def test_no_reflog(git_new: Git, tmp_path: Path) -> None:
    """reflogs=False (--no-reflog) migrates the refs only, as git does."""
    source = build_source(git_new, tmp_path / "source")
    mine, gits = twin(source, "ours"), twin(source, "git")
    await migrate_refs(mine, to="reftable", reflogs=False)
    git_new("refs", "migrate", "--ref-format=reftable", "--no-reflog", cwd=gits)
    assert git_view(git_new, mine) == git_view(git_new, gits)
    assert git_new("reflog", "list", cwd=mine) == ""
    assert (await table_records(mine))[1] == []
    back, git_back = twin(mine, "back"), twin(mine, "git-back")
    await migrate_refs(back, to="files", reflogs=False)
    git_new("refs", "migrate", "--ref-format=files", "--no-reflog", cwd=git_back)
    assert not (back / ".git" / "logs").exists()
    assert git_view(git_new, back)["refs"] == git_view(git_new, source)["refs"]
    ours_files, git_files = files_tree(back / ".git"), files_tree(git_back / ".git")
    assert without_peeled(ours_files.pop("packed-refs")) == git_files.pop("packed-refs")
    assert ours_files == git_files


async def test_the_older_git_reads_the_result(git: Git, git_new: Git, tmp_path: Path) -> None:
    """git 2.47 (the suite's main git) sees the same refs and reflogs in our results."""
    source = build_source(git_new, tmp_path / "source")
    before = git_view(git, source)
    await migrate_refs(source, to="reftable")
    assert git_view(git, source) == before
    await migrate_refs(source, to="files")
    assert git_view(git, source) == before


@pytest.mark.parametrize("to", ["reftable", "files"])
def test_cli_dry_run_beside_git(git_new: Git, tmp_path: Path, to: str) -> None:
    """--dry-run: git's line on stdout, the repository untouched, the new store left in
    the directory named."""
    ref_format = "files" if to == "reftable" else "reftable"
    source = build_source(git_new, tmp_path / "source", ref_format=ref_format)
    before, config = git_view(git_new, source), config_text(source)
    mine, gits = twin(source, "ours"), twin(source, "git")
    (mine / "sub").mkdir()
    (gits / "sub").mkdir()
    code, out, err = ours(mine / "sub", f"--ref-format={to}", "--dry-run")
    theirs_code, theirs_out, theirs_err = theirs(
        git_new, gits / "sub", f"--ref-format={to}", "--dry-run"
    )
    assert (code, TEMP_NAME.sub("X", out), err) == (
        theirs_code, TEMP_NAME.sub("X", theirs_out), theirs_err,
    )  # fmt: skip
    assert out.startswith("Finished dry-run migration of refs, the result can be found at '.git/")
    assert git_view(git_new, mine) == before and config_text(mine) == config
    (temp,) = (mine / ".git").glob("ref_migration.*")
    assert temp.name in out
    if to == "reftable":
        assert (temp / "reftable" / "tables.list").read_text().strip()
    else:
        assert (temp / "packed-refs").is_file() and (temp / "logs" / "HEAD").is_file()


def test_cli_migrates_and_prints_nothing(git_new: Git, tmp_path: Path) -> None:
    source = build_source(git_new, tmp_path / "source")
    before = git_view(git_new, source)
    mine, gits = twin(source, "ours"), twin(source, "git")
    assert ours(mine, "--ref-format=reftable", "-q") == theirs(
        git_new, gits, "--ref-format=reftable"
    )
    assert ours(mine, "--ref-format=files") == theirs(git_new, gits, "--ref-format=files")
    assert git_view(git_new, mine) == before


REFUSALS = [
    (),
    ("--ref-format=files",),
    ("--ref-format=bogus",),
    ("--ref-format=reftable", "extra"),
    ("--dry-run",),
]


@pytest.mark.parametrize("args", REFUSALS, ids=lambda a: " ".join(a) or "none")
def test_cli_refusals_beside_git(git_new: Git, tmp_path: Path, args: tuple[str, ...]) -> None:
    """Usage errors (129) and refusals (error: ..., 255): git's text, nothing changed."""
    source = build_source(git_new, tmp_path / "source")
    before = git_view(git_new, source)
    assert ours(source, *args) == theirs(git_new, source, *args)
    assert ours(source, *args)[0] in (129, 255)
    assert git_view(git_new, source) == before
    assert not list((source / ".git").glob("ref_migration.*"))


@pytest.mark.parametrize("ref_format", ["files", "reftable"])
def test_cli_refuses_worktrees_like_git(git_new: Git, tmp_path: Path, ref_format: str) -> None:
    source = build_source(git_new, tmp_path / "source", ref_format=ref_format)
    git_new("worktree", "add", "-q", str(tmp_path / "wt"), "side", cwd=source)
    to = "reftable" if ref_format == "files" else "files"
    mine = ours(source, f"--ref-format={to}")
    assert mine == theirs(git_new, source, f"--ref-format={to}")
    assert mine == (255, "", "error: migrating repositories with worktrees is not supported yet\n")
    assert ours(tmp_path / "wt", f"--ref-format={to}") == theirs(
        git_new, tmp_path / "wt", f"--ref-format={to}"
    )


def test_entry_point_beside_git(git_new: Git, tmp_path: Path) -> None:
    """The installed command (a whole process) migrates as git does and prints nothing."""
    source = build_source(git_new, tmp_path / "source")
    before = git_view(git_new, source)
    mine, gits = twin(source, "ours"), twin(source, "git")
    proc = subprocess.run(
        [sys.executable, "-m", "aioreftable", "-C", str(mine), "refs", "migrate",
         "--ref-format=reftable"],
        capture_output=True, env={**os.environ, **GIT_ENV}, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    git_new("refs", "migrate", "--ref-format=reftable", cwd=gits)
    assert git_view(git_new, mine) == git_view(git_new, gits) == before


@pytest.mark.parametrize(
    "args",
    [["--ref-format"], ["--bogus"], ["--no-ref-format"], ["--ref-format=files", "x"]],
    ids=lambda a: " ".join(a),
)
def test_usage_errors_through_the_command_line(
    git_new: Git, tmp_path: Path, args: list[str]
) -> None:
    """Through ``aioreftable.cli.main``: git's status and first line (the usage text after
    it is ours)."""
    source = build_source(git_new, tmp_path / "source")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-C", str(source), "refs", "migrate", *args])
    proc = git_new.run("refs", "migrate", *args, cwd=source, check=False)
    assert code == proc.returncode == 129
    assert out.getvalue() == proc.stdout.decode() == ""
    assert err.getvalue().splitlines()[0] == proc.stderr.decode().splitlines()[0]


@pytest.mark.parametrize("where", ["bare", "GIT_DIR"])
def test_dry_run_names_the_directory_as_git(
    git_new: Git, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    source = build_source(git_new, tmp_path / "source")
    if where == "bare":
        git_new("clone", "-q", "--bare", str(source), str(tmp_path / "bare.git"))
        mine, gits, env = tmp_path / "bare.git", twin(tmp_path / "bare.git", "git.git"), {}
    else:
        mine, gits, env = tmp_path, tmp_path, {"GIT_DIR": "ours/.git"}
        twin(source, "ours")
        monkeypatch.setenv("GIT_DIR", "ours/.git")
    code, out, err = ours(mine, "--ref-format=reftable", "--dry-run")
    if where == "GIT_DIR":
        env = {"GIT_DIR": "source/.git"}
        out = out.replace("ours/.git", "source/.git")
    proc = git_new.run("refs", "migrate", "--ref-format=reftable", "--dry-run", cwd=gits, env=env)
    assert (code, TEMP_NAME.sub("X", out), err) == (0, TEMP_NAME.sub("X", proc.stdout.decode()), "")
    prefix = "./" if where == "bare" else "source/.git/"
    assert f"can be found at '{prefix}ref_migration." in out


def test_outside_a_repository_like_git(git_new: Git, tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    proc = git_new.run("refs", "migrate", "--ref-format=reftable", cwd=nowhere, check=False,
                       env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})  # fmt: skip
    expected = (proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    assert ours(nowhere, "--ref-format=reftable") == expected
    assert expected[0] == 128
