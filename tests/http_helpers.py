"""Helpers for tests/test_http_git.py: the example git HTTP server as a subprocess, git clients.

``GitHttpServer(root)`` starts ``examples/git_http_server.py --root ROOT --port 0`` on
127.0.0.1 and waits for its ``listening on`` line; ``Client`` is a git work tree cloned
over HTTP; ``run_all`` runs git commands at the same time (one thread each) and returns
their results; ``barrier_hook`` is a pre-push hook that holds every pusher of a round
until all have read the server's refs, so that their pushes race on the server.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from conftest import Git

SERVER = Path(__file__).resolve().parent.parent / "examples" / "git_http_server.py"
LISTENING = re.compile(rb"^listening on (http://127\.0\.0\.1:\d+/)")


class GitHttpServer:
    """``with GitHttpServer(root, *options) as server``: the example server on a free port;
    ``server.url(path)`` is a repository's URL. Stopped with SIGTERM on exit (killed after
    10 s); its stderr is kept for failure messages (``server.stderr()``)."""

    def __init__(self, root: Path, *options: str, timeout: float = 20.0) -> None:
        self.root = root
        self.options = options
        self.timeout = timeout
        self.base = ""
        self.errlog = root.parent / f"{root.name}.server-stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GitHttpServer:
        err = self.errlog.open("wb")
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(SERVER),
                    "--root",
                    str(self.root),
                    "--port",
                    "0",
                    *self.options,
                ],
                stdout=subprocess.PIPE,
                stderr=err,
            )
        finally:
            err.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.stop()
                    raise AssertionError(
                        f"server did not start in {self.timeout} s: {self.stderr()}"
                    )
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    self.stop()
                    raise AssertionError(f"server exited: {self.stderr()}")
                line += chunk
        found = LISTENING.match(line)
        assert found, line
        self.base = found.group(1).decode()
        return self

    def url(self, path: str) -> str:
        return self.base + path

    def stderr(self) -> str:
        return self.errlog.read_text(errors="replace") if self.errlog.exists() else ""

    def stop(self) -> int:
        """Stop the server; its exit status (0 after a clean SIGTERM)."""
        assert self.proc is not None
        if self.proc.poll() is None:  # (idempotent: a second call only reports)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.proc.returncode

    def __exit__(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class Result:
    """One finished git command: exit status and its output (stderr is where push reports)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def run_git(
    git: Git, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Result:
    proc = git.run(*args, cwd=cwd, check=False, env=env)
    return Result(
        args,
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def run_all(jobs: Sequence[Callable[[], Result]]) -> list[Result]:
    """Run every job at the same time (one thread each); their results in order."""
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return list(pool.map(lambda job: job(), jobs))


@dataclass
class Client:
    """A git work tree cloned (or initialised) beside the server, pushing to ``url``."""

    git: Git
    path: Path
    url: str
    counter: list[int] = field(default_factory=lambda: [0])

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> str:
        return self.git(*args, cwd=self.path, env=env)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_git(self.git, *args, cwd=self.path, env=env)

    def commit(self, message: str) -> str:
        """A new commit on HEAD with a file of its own (unique even at a fixed date)."""
        self.counter[0] += 1
        name = f"{self.path.name}-{self.counter[0]}.txt"
        (self.path / name).write_text(message + "\n")
        self("add", name)
        self("commit", "-q", "-m", message)
        return self("rev-parse", "HEAD").strip()


def clone(git: Git, url: str, path: Path, *args: str) -> Client:
    git("clone", "-q", *args, url, str(path))
    return Client(git, path, url)


def server_refs(git: Git, repo: Path) -> dict[str, str]:
    """git's view of the server repository's refs: name -> object id (for-each-ref)."""
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo)
    return dict(line.split(" ", 1) for line in out.splitlines())


def remote_refs(git: Git, url: str) -> dict[str, str]:
    """What ``git ls-remote`` over HTTP shows (without HEAD and peeled ``^{}`` lines)."""
    out = git("ls-remote", url)
    pairs = (line.split("\t", 1) for line in out.splitlines())
    return {
        name: oid for oid, name in pairs if name.startswith("refs/") and not name.endswith("^{}")
    }


def assert_clean(git: Git, repo: Path) -> None:
    """``git refs verify`` and ``git fsck`` find nothing on the server repository."""
    for args in (("refs", "verify"), ("fsck", "--no-progress", "--no-dangling", "--strict")):
        result = run_git(git, *args, cwd=repo)
        assert result.returncode == 0 and result.text.strip() == "", (args, result.text)


def barrier_hook(client: Client, barrier: Path, parties: int, timeout: float = 20.0) -> None:
    """Install a pre-push hook that waits until ``parties`` pushers have reached ``barrier``
    (a directory; one file per pusher). git runs pre-push after reading the server's refs
    and before sending its commands, so every pusher sends the same expected old value."""
    hook = client.path / ".git" / "hooks" / "pre-push"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        "#!/bin/sh\n"
        f"touch '{barrier}/{client.path.name}'\n"
        f"end=$(( $(date +%s) + {int(timeout)} ))\n"
        f"while [ \"$(ls '{barrier}' | wc -l)\" -lt {parties} ]; do\n"
        '    [ "$(date +%s)" -lt "$end" ] || exit 0\n'
        "    sleep 0.02\n"
        "done\n"
        "cat >/dev/null\n"
    )
    hook.chmod(0o755)
