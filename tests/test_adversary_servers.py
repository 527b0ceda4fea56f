"""The example servers (examples/git_http_server.py, examples/refs_service.py) against
hostile input: repository paths and names that try to leave the root (``..``, encoded
dots, symlinks, NUL, very long, non-UTF-8, ``.lock``), malformed, oversized, deeply nested
and abandoned requests, and a server killed with SIGKILL in the middle of pushes. Every
answer is a 4xx (never a 500 or a traceback in the log), the server keeps serving, and
the repositories stay clean for ``git refs verify`` and ``git fsck``."""

from __future__ import annotations

import http.client
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Git
from http_helpers import Client, GitHttpServer, assert_clean, clone, remote_refs, run_git
from test_refs_service import Service

pytestmark = pytest.mark.git

LONG = "a" * 5000


def _status(base: str, method: str, path: str, body: bytes | None = None, **headers: str) -> int:
    """The status of one request sent as is (no normalisation of ``..`` or ``%2e``)."""
    host, port = base.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _hostile_root(git: Git, tmp_path: Path) -> tuple[Path, Path]:
    """A root with one reftable repository ``r.git``, and beside it (outside) another one
    reachable through symlinks in the root; (root, outside repository)."""
    root = tmp_path / "root"
    root.mkdir()
    for path in (root / "r.git", tmp_path / "outside.git"):
        git("init", "-q", "--bare", "--ref-format=reftable", "-b", "main", str(path))
    (root / "out").symlink_to(tmp_path / "outside.git")
    (root / "up").symlink_to("/")
    (root / "dots").symlink_to("..")
    return root, tmp_path / "outside.git"


def test_git_server_refuses_hostile_paths(git: Git, tmp_path: Path) -> None:
    root, outside = _hostile_root(git, tmp_path)
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=work)
    git("push", "-q", str(outside), "main", cwd=work)
    paths = [
        "/../outside.git",
        "/%2e%2e/outside.git",
        "/r.git/../../outside.git",
        "/out",
        "/dots/outside.git",
        f"/up{outside}",
        "/r.git%00",
        "/r.git%00/../out",
        f"/{LONG}",
        "/%C3%A9.git",
        "/%ff%fe",
        "/r.git.lock",
        "/r.git/reftable",
        "/r.git/objects",
    ]
    with GitHttpServer(root) as server:
        for path in paths:
            for service in ("git-upload-pack", "git-receive-pack"):
                status = _status(server.base, "GET", f"{path}/info/refs?service={service}")
                assert status == 404, (path, status)
                post = _status(
                    server.base,
                    "POST",
                    f"{path}/{service}",
                    b"0000",
                    **{"Content-Type": f"application/x-{service}-request"},
                )
                assert post == 404, (path, post)
        assert _status(server.base, "GET", "/r.git/reftable/tables.list") == 404
        assert _status(server.base, "GET", "/r.git/info/refs") == 403  # dumb protocol
        assert remote_refs(git, server.url("r.git")) == {}  # still serving
        assert "Traceback" not in server.stderr(), server.stderr()
    assert server.proc is not None and server.proc.returncode == 0


def test_refs_service_refuses_hostile_names(git: Git, tmp_path: Path) -> None:
    root, _ = _hostile_root(git, tmp_path)
    names = {
        "..": 400,
        "%2e%2e": 400,
        ".": 400,
        "r.git%00": 400,
        "%ff": 400,
        "%C3%A9.git": 400,
        LONG: 400,
        "out": 404,  # a symlink out of the root
        "up": 404,
        "dots": 404,
        "r.git.lock": 404,
        "nothing": 404,
    }
    with Service(root) as svc:
        for name, expected in names.items():
            for route in ("refs", "events"):
                status = _status(svc.url, "GET", f"/repos/{name}/{route}")
                assert status == expected, (name, route, status)
        assert _status(svc.url, "GET", "/repos/r.git/refs") == 200
    assert svc.status == 0 and "Traceback" not in svc.stderr(), svc.stderr()


def test_refs_service_bad_bodies(git: Git, tmp_path: Path) -> None:
    root, _ = _hostile_root(git, tmp_path)
    oid = git("rev-parse", "HEAD", cwd=_one_commit(git, root / "r.git", tmp_path)).strip()
    url = "/repos/r.git/refs"
    json_ = {"Content-Type": "application/json"}
    bodies: list[tuple[bytes, int]] = [
        (b"[" * 200_000, 400),  # nested beyond the parser's recursion limit
        (b"\xff\xfe\x00", 400),
        (b'{"updates": [{"ref": "refs/heads/x", "new": ""}]}', 422),  # "" is no id
        (b'{"updates": [{"ref": "refs/heads/main", "new": "%s", "old": ""}]}' % oid.encode(), 422),
        (b'{"updates": [{"ref": "refs/heads/x.lock", "new": "%s"}]}' % oid.encode(), 422),
        (b'{"updates": [{"ref": "refs/heads/a\\u0000b", "new": null}]}', 422),
        (b'{"updates": [{"ref": "refs/heads/\\ud800", "new": null}]}', 422),
        (b'{"updates": [{"ref": "refs/heads/x", "new": null, "old": 5}]}', 422),
        (b'{"updates": {}}', 422),
        (b" " * (17 << 20), 413),  # larger than the service reads
    ]
    with Service(root) as svc:
        for body, expected in bodies:
            status = _status(svc.url, "POST", url, body, **json_)
            assert status == expected, (body[:60], status)
        # a body announced but never sent in full: the client gives up, the service goes on
        with socket.create_connection(_address(svc.url), timeout=10) as sock:
            sock.sendall(
                b"POST /repos/r.git/refs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b'\r\nContent-Length: 1000000\r\n\r\n{"updates": ['
            )
        assert _status(svc.url, "GET", url) == 200
    assert svc.status == 0 and "Traceback" not in svc.stderr(), svc.stderr()
    assert run_git(git, "for-each-ref", cwd=root / "r.git").stdout.split() == [
        oid,
        "commit",
        "refs/heads/main",
    ]


def _one_commit(git: Git, bare: Path, tmp_path: Path) -> Path:
    """Push one commit to ``bare``'s main; the work tree it was made in."""
    work = tmp_path / f"{bare.name}.work"
    git("init", "-q", "-b", "main", str(work))
    git("commit", "-q", "--allow-empty", "-m", "c", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    return work


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").rstrip("/").split(":")
    return host, int(port)


def test_git_server_malformed_and_abandoned_requests(git: Git, tmp_path: Path) -> None:
    root, _ = _hostile_root(git, tmp_path)
    _one_commit(git, root / "r.git", tmp_path)
    receive = {"Content-Type": "application/x-git-receive-pack-request"}
    upload = {"Content-Type": "application/x-git-upload-pack-request"}
    with GitHttpServer(root, "--max-request-mb", "1") as server:
        before = remote_refs(git, server.url("r.git"))
        for body, headers in [
            (b"\xff" * 1000, receive),
            (b"0000", receive),
            (b"00ffshort", receive),  # a pkt-line longer than the body
            (b"zzzz" * 10, receive),
            (b"\xff" * 1000, upload),
            (b"0032want " + b"1" * 40 + b"\n0000", upload),  # an object nobody has
            (b"0009done\n", upload),
        ]:
            status = _status(server.base, "POST", f"/r.git/{_service(headers)}", body, **headers)
            assert status in (200, 400), (body[:20], status)
        too_big = b"0" * (2 << 20)
        assert _status(server.base, "POST", "/r.git/git-receive-pack", too_big, **receive) == 413
        # clients that go away mid-request: headers only, half a body, a slow trickle
        for part in (b"", b"00a4", b"0" * 4096):
            with socket.create_connection(_address(server.base), timeout=10) as sock:
                sock.sendall(
                    b"POST /r.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/x-git-receive-pack-request\r\n"
                    b"Content-Length: 100000\r\n\r\n" + part
                )
                time.sleep(0.05)
        assert remote_refs(git, server.url("r.git")) == before
        assert "Traceback" not in server.stderr(), server.stderr()
    assert_clean(git, root / "r.git")


def _service(headers: dict[str, str]) -> str:
    return headers["Content-Type"].removeprefix("application/x-").removesuffix("-request")


def test_git_server_killed_mid_push_then_restarted(git: Git, tmp_path: Path) -> None:
    """SIGKILL while 8 pushes are in flight (as soon as the first has written its table),
    3 rounds: afterwards git sees a clean repository, a lock left behind is named by
    ``refs verify --deep`` and removing it (docs/concurrency.md) is all the recovery
    needed, every ref a client was told ``ok`` about holds its commit, and a restarted
    server takes pushes again."""
    root, _ = _hostile_root(git, tmp_path)
    repo = root / "r.git"
    _one_commit(git, repo, tmp_path)
    tables = repo / "reftable" / "tables.list"
    clients: list[Client] = []
    for rnd in range(3):
        with GitHttpServer(root) as server:
            if not clients:
                clients = [clone(git, server.url("r.git"), tmp_path / f"c{n}") for n in range(8)]
            heads = [c.commit(f"r{rnd} c{n}") for n, c in enumerate(clients)]
            results = [-1] * len(clients)

            url = server.url("r.git")
            threads = [
                threading.Thread(target=_push, args=(results, n, c, url, f"r{rnd}-{n}"))
                for n, c in enumerate(clients)
            ]
            before = tables.read_bytes()
            for t in threads:
                t.start()
            deadline = time.monotonic() + 20
            while tables.read_bytes() == before and time.monotonic() < deadline:
                time.sleep(0.002)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
            for t in threads:
                t.join(30)
        _recover(repo)
        assert_clean(git, repo)
        refs = _refs(git, repo)
        for n, status in enumerate(results):
            if status == 0:  # told ok: the commit is there
                assert refs[f"refs/heads/r{rnd}-{n}"] == heads[n], (rnd, n)
    with GitHttpServer(root) as again:
        result = clients[0].run("push", "-f", again.url("r.git"), "HEAD:refs/heads/after")
        assert result.returncode == 0, result.text
        assert "Traceback" not in again.stderr(), again.stderr()
    assert_clean(git, repo)
    assert _refs(git, repo)["refs/heads/after"] == heads[0]


def _push(results: list[int], n: int, client: Client, url: str, branch: str) -> None:
    results[n] = client.run("push", url, f"HEAD:refs/heads/{branch}").returncode


def _recover(repo: Path) -> None:
    """A lock left by the kill (it came while a commit held it): docs/concurrency.md,
    "What a crash leaves behind": ``refs verify --deep`` names it, a human removes it."""
    locks = [p for p in (repo / "reftable").iterdir() if p.name.endswith(".lock")]
    if locks:
        verify = subprocess.run(
            [sys.executable, "-m", "aioreftable", "-C", str(repo), "refs", "verify", "--deep"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "reftableLockPresent" in verify.stdout + verify.stderr, verify
        for lock in locks:
            lock.unlink()


def _refs(git: Git, repo: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo)
    return dict(line.split() for line in out.splitlines())


def test_a_corrupt_table_is_one_error_not_a_traceback(git: Git, tmp_path: Path) -> None:
    """A table whose first ref record does not decode: both servers answer 500 with the
    reason (the git client shows it), log one line, and go on serving the others."""
    root, _ = _hostile_root(git, tmp_path)
    _one_commit(git, root / "r.git", tmp_path)
    bad = root / "bad.git"
    git("init", "-q", "--bare", "--ref-format=reftable", "-b", "main", str(bad))
    table = next((bad / "reftable").glob("*.ref"))
    data = bytearray(table.read_bytes())
    data[24 + 4] = 0x7F  # the first record's prefix length: longer than no key
    table.write_bytes(bytes(data))
    with GitHttpServer(root) as server:
        result = run_git(git, "ls-remote", server.url("bad.git"))
        assert result.returncode != 0 and "record key prefix" in result.text, result.text
        assert remote_refs(git, server.url("r.git"))  # the others are served
        assert "Traceback" not in server.stderr(), server.stderr()
    with Service(root) as svc:
        assert _status(svc.url, "GET", "/repos/bad.git/refs") == 500
        assert _status(svc.url, "GET", "/repos/r.git/refs") == 200
    assert svc.status == 0 and "Traceback" not in svc.stderr(), svc.stderr()


def test_git_beside_the_server_and_clients_killed_mid_push(git: Git, tmp_path: Path) -> None:
    """git update-ref writes into the served repository in a loop while 6 clients push,
    each killed (SIGKILL) after a random short time, 2 rounds: git's writes all succeed,
    every push a client saw succeed holds its commit, no lock is left, git finds the
    repository clean and the server logged no traceback."""
    root, _ = _hostile_root(git, tmp_path)
    repo = root / "r.git"
    _one_commit(git, repo, tmp_path)
    rng = random.Random(16)
    with GitHttpServer(root) as server:
        url = server.url("r.git")
        clients = [clone(git, url, tmp_path / f"k{n}") for n in range(6)]
        heads = [c.commit(f"k{n}") for n, c in enumerate(clients)]
        stop = threading.Event()
        side_failures: list[str] = []

        def side_writer() -> None:
            n = 0
            while not stop.is_set():
                r = run_git(git, "update-ref", f"refs/heads/side{n % 5}", "main", cwd=repo)
                if r.returncode != 0:
                    side_failures.append(r.text)
                n += 1

        writer = threading.Thread(target=side_writer)
        writer.start()
        told_ok: list[str] = []
        try:
            for rnd in range(2):
                procs = [
                    (
                        f"k{n}-{rnd}",
                        subprocess.Popen(
                            [git.path, "push", "-q", url, f"HEAD:refs/heads/k{n}-{rnd}"],
                            cwd=c.path,
                            env=git.env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        ),
                    )
                    for n, c in enumerate(clients)
                ]
                time.sleep(rng.uniform(0.05, 0.4))
                for _, proc in procs:
                    if rng.random() < 0.5:
                        proc.kill()
                for branch, proc in procs:
                    if proc.wait(30) == 0:
                        told_ok.append(branch)
        finally:
            stop.set()
            writer.join(30)
        assert remote_refs(git, url)  # still serving
        assert "Traceback" not in server.stderr(), server.stderr()
    assert side_failures == []
    assert not [p for p in (repo / "reftable").iterdir() if p.name.endswith(".lock")]
    assert_clean(git, repo)
    refs = _refs(git, repo)
    for branch in told_ok:
        assert refs[f"refs/heads/{branch}"] == heads[int(branch[1 : branch.index("-")])]
