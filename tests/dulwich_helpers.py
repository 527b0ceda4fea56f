"""Helpers for the aioreftable.dulwich tests: repositories made by git, a git:// server on
our Backend, and git's view of a repository's refs, reflogs and checks to compare."""

from __future__ import annotations

import os
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import GIT_ENV, Git
from dulwich.server import Backend as DulwichBackend
from dulwich.server import TCPGitServer

from aioreftable.dulwich import HANDLERS

#: the committer of reflog entries (GIT_ENV's), as open_repo(env=ENV) writes it
ENV = {**os.environ, **GIT_ENV}
IDENT = b"C O Mitter <committer@example.com>"
AUTHOR = b"A U Thor <author@example.com>"
WHEN = 1112354055  # GIT_ENV's date, +0200
TZ = 7200


def commit_kwargs(n: int = 0) -> dict[str, Any]:
    """porcelain.commit arguments giving the same commit on every run and twin."""
    return {
        "author": AUTHOR,
        "committer": IDENT,
        "author_timestamp": WHEN + n,
        "commit_timestamp": WHEN + n,
        "author_timezone": TZ,
        "commit_timezone": TZ,
    }


def make_repo(
    git: Git,
    path: Path,
    *,
    object_format: str = "sha1",
    ref_format: str = "reftable",
    bare: bool = False,
    commits: int = 1,
) -> Path:
    """A repository made by git with ``commits`` empty commits on main; its path."""
    args = ["init", "-q", f"--ref-format={ref_format}", f"--object-format={object_format}"]
    git(*args, "-b", "main", *(["--bare"] if bare else []), str(path))
    if bare:
        work = path.parent / (path.name + ".work")
        git("init", "-q", f"--object-format={object_format}", "-b", "main", str(work))
        for n in range(commits):
            git("commit", "-q", "--allow-empty", "-m", f"c{n}", cwd=work)
        if commits:
            git("push", "-q", str(path), "main", cwd=work)
        return path
    for n in range(commits):
        git("commit", "-q", "--allow-empty", "-m", f"c{n}", cwd=path)
    return path


def make_commits(git: Git, path: Path, n: int) -> list[str]:
    """``n`` new commits (a chain, empty trees) made by one git fast-import; their ids.
    No ref is left behind."""
    stream = []
    for i in range(n):
        body = f"c{i}\n".encode()
        stream.append(b"commit refs/heads/fast-import-tmp\n")
        stream.append(f"mark :{i + 1}\ncommitter C <c@e> {WHEN + i} +0000\n".encode())
        stream.append(b"data %d\n" % len(body) + body)
        stream.append(b"deleteall\n" if i == 0 else f"from :{i}\n".encode())
    marks = path / "fast-import-marks"
    git.run("fast-import", "--quiet", f"--export-marks={marks}", cwd=path, input=b"".join(stream))
    ids = dict(line.split(" ") for line in marks.read_text().splitlines())
    marks.unlink()
    git("update-ref", "-d", "refs/heads/fast-import-tmp", cwd=path)
    return [ids[f":{i + 1}"] for i in range(n)]


def _tables(path: Path) -> list[str]:
    git_dir = path if (path / "reftable").is_dir() else path / ".git"
    return (git_dir / "reftable" / "tables.list").read_text().split()


def table_count(path: Path) -> int:
    """How many tables the main stack of the repository at ``path`` lists."""
    return len(_tables(path))


def update_index(path: Path) -> int:
    """The main stack's newest update index (from its newest table's name): it grows by
    one per committed transaction, whatever auto-compaction did to the tables."""
    return int(_tables(path)[-1].split("-")[1], 16)


@dataclass(frozen=True)
class GitView:
    """What git says about a repository's refs."""

    refs: list[str]  # for-each-ref lines
    reflogs: dict[str, list[str]]  # ref -> "new-id message" lines, newest first
    verify: int  # git refs verify's exit status
    verify_output: str

    def reflog_messages(self, ref: str) -> list[str]:
        return [line.partition(" ")[2] for line in self.reflogs.get(ref, [])]


def git_view(git: Git, path: Path, *, reflogs_of: tuple[str, ...] = ()) -> GitView:
    """for-each-ref, the reflogs of every ref plus HEAD (and ``reflogs_of``), refs verify."""
    refs = git("for-each-ref", "--format=%(objectname) %(objecttype) %(refname)", cwd=path)
    lines = refs.splitlines()
    names = ["HEAD", *(line.split(" ")[2] for line in lines), *reflogs_of]
    logs: dict[str, list[str]] = {}
    for name in names:
        if git.run("reflog", "exists", name, cwd=path, check=False).returncode != 0:
            continue
        logs[name] = git("reflog", "show", "--format=%H %gs", name, "--", cwd=path).splitlines()
    proc = git.run("refs", "verify", "--verbose", cwd=path, check=False)
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    return GitView(lines, logs, proc.returncode, output)


def reflog_idents(git: Git, path: Path, name: str) -> list[str]:
    """``name <email> date`` of each reflog entry of ``name``, newest first."""
    out = git("reflog", "show", "--format=%gn <%ge> %gd", "--date=raw", name, "--", cwd=path)
    return out.splitlines()


class _ThreadingGitServer(socketserver.ThreadingMixIn, TCPGitServer):
    daemon_threads = True


@contextmanager
def git_daemon(backend: DulwichBackend) -> Iterator[str]:
    """dulwich's git:// server on ``backend`` (our receive-pack) at 127.0.0.1; its URL."""
    server = _ThreadingGitServer(backend, "127.0.0.1", 0, handlers=HANDLERS)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"git://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
