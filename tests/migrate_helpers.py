"""Helpers of the migration tests: a source repository with every kind of ref, git's view
of a repository, our `refs migrate` run in this process, the table records to compare."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

from conftest import Git

from aioreftable import StackOptions, open_stack
from aioreftable.cli import _migrate
from aioreftable.cli._usage import GitArgumentParser
from aioreftable.lowlevel import WriteOptions

TEMP_NAME = re.compile(r"ref_migration\.[A-Za-z0-9]{6}")


def build_source(
    git: Git, path: Path, object_format: str = "sha1", ref_format: str = "files"
) -> Path:
    """A repository with packed and loose branches, light, annotated and nested tags, a
    symref, a dangling symref, a root ref, notes, and reflogs in several zones with
    messages git normalizes (runs of spaces, a tab) and one without a message."""
    git("init", "-q", f"--ref-format={ref_format}", f"--object-format={object_format}",
        "-b", "main", str(path))  # fmt: skip
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=path)
    git.run("commit", "-q", "--allow-empty", "-m", "two   spaced", cwd=path,
            env={"GIT_COMMITTER_DATE": "1112354100 -0530"})  # fmt: skip
    git("tag", "light", "HEAD~1", cwd=path)
    git("tag", "-a", "-m", "annotated", "v1", cwd=path)
    git.run("tag", "-a", "-m", "nested", "v2", "v1", cwd=path)
    git("branch", "side", "HEAD~1", cwd=path)
    git("pack-refs", "--all", cwd=path)
    git.run("branch", "loose", cwd=path, env={"GIT_COMMITTER_DATE": "1112354200 +1400"})
    git.run("update-ref", "-m", "moved\twith  tab", "refs/heads/loose", "HEAD~1", cwd=path,
            env={"GIT_COMMITTER_DATE": "1112354300 -1200"})  # fmt: skip
    git("update-ref", "refs/heads/nomsg", "HEAD", cwd=path)
    git("update-ref", "ORIG_HEAD", "HEAD~1", cwd=path)
    git("symbolic-ref", "refs/heads/sym", "refs/heads/side", cwd=path)
    git("symbolic-ref", "refs/heads/dangling", "refs/heads/nope", cwd=path)
    git("notes", "add", "-m", "a note", "HEAD", cwd=path)
    git("update-ref", "refs/tags/v1-again", "refs/tags/v1", cwd=path)
    git.run("checkout", "-q", "side", cwd=path, env={"GIT_COMMITTER_DATE": "1112354400 +0000"})
    git.run("checkout", "-q", "main", cwd=path, env={"GIT_COMMITTER_DATE": "1112354500 +0530"})
    return path


def git_view(git: Git, repo: Path) -> dict[str, Any]:
    """What git shows of a repository's refs: every ref with its id, peeled id and symref
    target (root refs included), show-ref -d, HEAD's target, every reflog with dates and
    zones."""
    refs = git("for-each-ref", "--include-root-refs",
               "--format=%(refname) %(objectname) %(*objectname) %(symref)", cwd=repo)  # fmt: skip
    names = git("reflog", "list", cwd=repo).split()
    fmt = "--format=%gD %H %gn <%ge> %gs"
    logs = {n: git("reflog", "show", "--date=raw", fmt, n, "--", cwd=repo) for n in sorted(names)}
    return {
        "refs": refs,
        "show-ref": git.run("show-ref", "-d", "--head", cwd=repo, check=False).stdout.decode(),
        "symrefs": [
            git.run("symbolic-ref", name, cwd=repo, check=False).stdout.decode()
            for name in ("HEAD", "refs/heads/sym", "refs/heads/dangling")
        ],
        "reflogs": logs,
    }


DANGLING = "error: refs/heads/dangling: invalid {} pointer {}\n"


def assert_healthy(git: Git, repo: Path, object_format: str = "sha1") -> None:
    """git refs verify finds nothing; git fsck finds only the dangling symref of
    ``build_source`` (as in the source repository)."""
    proc = git.run("refs", "verify", cwd=repo, check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr.decode()
    proc = git.run("fsck", "--no-progress", "--no-dangling", cwd=repo, check=False)
    null = "0" * (40 if object_format == "sha1" else 64)
    assert proc.stderr.decode() == DANGLING.format("sha1", null)  # git says sha1 for both
    assert proc.stdout == b""


def twin(source: Path, name: str) -> Path:
    target = source.parent / name
    shutil.copytree(source, target, symlinks=True)
    return target


def config_text(repo: Path) -> str:
    return (repo / ".git" / "config").read_text()


def files_tree(git_dir: Path) -> dict[str, bytes]:
    """The files backend's files of a git dir by relative path."""
    out: dict[str, bytes] = {}
    for sub in ("refs", "logs"):
        for path in sorted((git_dir / sub).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(git_dir))] = path.read_bytes()
    for path in sorted(git_dir.iterdir()):
        if path.is_file() and (path.name.endswith("HEAD") or path.name == "packed-refs"):
            out[path.name] = path.read_bytes()
    return out


def without_peeled(packed: bytes) -> bytes:
    return b"".join(line for line in packed.splitlines(keepends=True) if not line.startswith(b"^"))


async def table_records(repo: Path, object_format: str = "sha1") -> tuple[list[Any], list[Any]]:
    """The ref and log records of the repository's reftable stack, update indexes included."""
    options = StackOptions(write_options=WriteOptions(hash=object_format))  # type: ignore[arg-type]
    async with open_stack(repo / ".git" / "reftable", options) as stack:
        snap = await stack.snapshot()
        return list(snap.iter_refs()), list(snap.iter_logs())


def migrate_parser() -> GitArgumentParser:
    parser = GitArgumentParser(prog="aioreftable refs")
    sub = parser.add_subparsers(dest="refs_command")
    _migrate.add_parser(sub)
    return parser


def ours(cwd: Path, *args: str) -> tuple[int, str, str]:
    """Our `refs migrate` in this process, through the module's own parser and run."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            parsed: argparse.Namespace = migrate_parser().parse_args(["migrate", *args])
            code = parsed.run(parsed)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def theirs(git: Git, cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = git.run("refs", "migrate", *args, cwd=cwd, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()
