"""examples/refs_service.py, started for real on 127.0.0.1 and driven with httpx: listing,
atomic compare-and-swap updates (200/409/422/404/400), 32 concurrent clients on distinct
refs and racing on one (exactly the winners applied, as git's reflog shows), the change
feed as server-sent events (every change once, in order; resumed with Last-Event-ID; a
gap is a 410), git writing beside the service, and a clean stop on SIGTERM. Afterwards
``git refs verify`` is clean on every repository."""

from __future__ import annotations

import itertools
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import TaskGroup, TaskStatus
from conftest import GIT_ENV, Git
from refs_helpers import refs_verify

pytestmark = [pytest.mark.anyio, pytest.mark.git]

SERVICE = Path(__file__).resolve().parent.parent / "examples" / "refs_service.py"
LISTENING = re.compile(rb"^listening on (http://127\.0\.0\.1:\d+/)\n\Z")
Z = "0" * 40
CLIENTS = 32


class Service:
    """``with Service(root) as svc``: the example service on a free port of 127.0.0.1;
    stopped with SIGTERM on exit (its exit status and stderr are kept)."""

    def __init__(self, root: Path, *args: str, timeout: float = 20.0):
        self.root = root
        self.args = args
        self.timeout = timeout
        self.url = ""
        self.errlog = root.parent / f"{root.name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.status: int | None = None

    def __enter__(self) -> Service:
        with self.errlog.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(SERVICE), "--root", str(self.root), "--port", "0", *self.args],
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, **GIT_ENV},
            )
        assert self.proc.stdout is not None
        line = b""
        deadline = time.monotonic() + self.timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                chunk = os.read(self.proc.stdout.fileno(), 1) if sel.select(max(left, 0)) else b""
                if not chunk:
                    self.stop()
                    raise AssertionError(f"the service did not start: {self.stderr()}")
                line += chunk
        found = LISTENING.match(line)
        assert found, line
        self.url = found.group(1).decode()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        if self.proc is not None and self.status is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.status = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.status = self.proc.wait()
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        assert self.status is not None
        return self.status

    def stderr(self) -> str:
        return self.errlog.read_text(errors="replace") if self.errlog.exists() else ""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("service") / "repos"
    root.mkdir()
    with Service(root, "--heartbeat", "0.3") as svc:
        yield svc
    assert svc.status == 0, svc.stderr()
    assert "Traceback" not in svc.stderr(), svc.stderr()


_names = itertools.count()


@dataclass
class Repo:
    path: Path
    name: str
    commits: list[str]  # ids of commits in it; refs/heads/main is at the last one


def make_repo(
    git: Git, service: Service, *, bare: bool = True, commits: int = 4, fmt: str = "sha1"
) -> Repo:
    """A reftable repository under the service's root with ``commits`` commits (one
    fast-import, on refs/heads/main)."""
    name = f"r{next(_names)}"
    path = service.root / name
    options = ["-b", "main", f"--object-format={fmt}", *(["--bare"] if bare else [])]
    git("init", "-q", "--ref-format=reftable", *options, str(path))
    stream = "".join(
        f"commit refs/heads/main\nmark :{n + 1}\n"
        f"committer C O Mitter <committer@example.com> {1112354055 + n} +0200\n"
        f"data {len(f'c{n}')}\nc{n}\n"
        for n in range(commits)
    )
    marks = service.root.parent / f"{name}.marks"
    git("fast-import", "--quiet", f"--export-marks={marks}", cwd=path, input=stream)
    ids = dict(line.split() for line in marks.read_text().splitlines())
    return Repo(path, name, [ids[f":{n + 1}"] for n in range(commits)])


def for_each_ref(git: Git, repo: Repo, prefix: str = "refs/") -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", prefix, cwd=repo.path)
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=2 * CLIENTS, max_keepalive_connections=2 * CLIENTS)
    async with httpx.AsyncClient(base_url=service.url, timeout=20, limits=limits) as c:
        yield c


def upd(ref: str, new: str | None, old: str | None = None) -> dict[str, str | None]:
    out: dict[str, str | None] = {"ref": ref, "new": new}
    if old is not None:
        out["old"] = old
    return out


async def post(client: httpx.AsyncClient, repo: Repo, *updates: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/repos/{repo.name}/refs", json={"updates": list(updates)})


# -- listing and updates -------------------------------------------------------------------
async def test_list_refs_as_git_sees_them(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    repo = make_repo(git, service, bare=False)
    c = repo.commits
    git("tag", "-a", "-m", "annotated", "v1", c[1], cwd=repo.path)
    git("update-ref", "refs/heads/side", c[0], cwd=repo.path)
    git("symbolic-ref", "refs/heads/alias", "refs/heads/side", cwd=repo.path)
    tag = git("rev-parse", "v1", cwd=repo.path).strip()

    r = await client.get(f"/repos/{repo.name}/refs")
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"name": "refs/heads/alias", "target": "refs/heads/side"},
        {"name": "refs/heads/main", "value": c[-1]},
        {"name": "refs/heads/side", "value": c[0]},
        {"name": "refs/tags/v1", "value": tag, "peeled": c[1]},
    ]
    r = await client.get(f"/repos/{repo.name}/refs", params={"prefix": "refs/tags/"})
    assert r.json() == [{"name": "refs/tags/v1", "value": tag, "peeled": c[1]}]
    r = await client.get(f"/repos/{repo.name}/refs", params={"prefix": "refs/nothing/"})
    assert r.status_code == 200 and r.json() == []
    refs_verify(git, repo.path)


async def test_update_is_one_atomic_compare_and_swap(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    repo = make_repo(git, service, bare=False)
    c = repo.commits
    r = await client.post(
        f"/repos/{repo.name}/refs",
        json={
            "updates": [upd("refs/heads/a", c[0]), upd("refs/heads/main", c[1], c[3])],
            "message": "two at once",
        },
    )
    assert r.status_code == 200, r.text
    first = r.json()["update_index"]
    assert for_each_ref(git, repo, "refs/heads/") == {
        "refs/heads/a": c[0],
        "refs/heads/main": c[1],
    }
    log = git("reflog", "show", "--format=%H %gs", "refs/heads/main", cwd=repo.path)
    assert log.splitlines()[0] == f"{c[1]} two at once"

    # one failed check: nothing of the transaction is applied
    r = await post(
        client,
        repo,
        upd("refs/heads/b", c[2]),
        upd("refs/heads/a", c[1], c[2]),  # a is at c[0]
        upd("refs/heads/main", None, c[1]),
    )
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "conflict"
    assert body["conflicts"] == [{"ref": "refs/heads/a", "expected": c[2], "actual": c[0]}]
    assert body["refs"] == ["refs/heads/a"]
    assert for_each_ref(git, repo, "refs/heads/") == {
        "refs/heads/a": c[0],
        "refs/heads/main": c[1],
    }
    # "old" absent: must not exist
    r = await post(client, repo, upd("refs/heads/a", c[3]))
    assert r.status_code == 409
    assert r.json()["conflicts"] == [{"ref": "refs/heads/a", "expected": None, "actual": c[0]}]
    # a D/F conflict names the ref in the way
    r = await post(client, repo, upd("refs/heads/a/b", c[3]))
    assert r.status_code == 409 and "refs/heads/a" in r.json()["message"], r.text

    # a deletion and a move in one transaction: the next update index
    r = await post(client, repo, upd("refs/heads/a", None, c[0]), upd("refs/heads/b", c[2], Z))
    assert r.status_code == 200, r.text
    assert r.json()["update_index"] == first + 1
    assert for_each_ref(git, repo, "refs/heads/") == {
        "refs/heads/b": c[2],
        "refs/heads/main": c[1],
    }
    refs_verify(git, repo.path)


async def test_sha256_repository(git: Git, service: Service, client: httpx.AsyncClient) -> None:
    repo = make_repo(git, service, fmt="sha256")
    c = repo.commits
    assert len(c[0]) == 64
    async with anyio.create_task_group() as tg:
        stream = await open_stream(client, tg, repo)
        r = await post(client, repo, upd("refs/heads/a", c[0], "0" * 64))
        assert r.status_code == 200, r.text
        index = r.json()["update_index"]
        assert (await post(client, repo, upd("refs/heads/a", c[1]))).status_code == 409
        r = await post(client, repo, upd("refs/heads/b", c[0][:40]))  # a SHA-1-sized id
        assert r.status_code == 422, r.text
        await stream.reader.wait_for(1)
        assert stream.reader.changes() == [("refs/heads/a", None, c[0], index, str(index))]
        stream.scope.cancel()
    r = await client.get(f"/repos/{repo.name}/refs")
    assert r.json() == [
        {"name": "refs/heads/a", "value": c[0]},
        {"name": "refs/heads/main", "value": c[-1]},
    ]
    refs_verify(git, repo.path)


async def test_bad_requests(git: Git, service: Service, client: httpx.AsyncClient) -> None:
    repo = make_repo(git, service)
    c = repo.commits
    before = for_each_ref(git, repo)
    tree = git("rev-parse", f"{c[0]}^{{tree}}", cwd=repo.path).strip()
    unprocessable = [
        [upd("refs/heads/a..b", c[0])],  # bad name
        [upd("refs/heads/x.lock", c[0])],
        [upd("refs/heads/ok", c[0]), upd("refs/heads/sp ace", c[1])],
        [upd("refs/heads/x", "123abc")],  # malformed id
        [upd("refs/heads/x", c[0], "xyz")],
        [upd("refs/heads/x", "1" * 40)],  # no such object
        [upd("refs/heads/x", tree)],  # not a commit, on a branch
        [upd("refs/heads/x", c[0]), upd("refs/heads/x", c[1])],  # twice
        [upd("FETCH_HEAD", c[0])],
        [],
        [{"ref": "refs/heads/x"}],
        [{"ref": 1, "new": c[0]}],
        [{"ref": "refs/heads/x", "new": c[0], "extra": 1}],
    ]
    for updates in unprocessable:
        r = await client.post(f"/repos/{repo.name}/refs", json={"updates": updates})
        assert r.status_code == 422, (updates, r.text)
    bodies: list[object] = [
        {"update": []},
        [],
        {"updates": [upd("refs/heads/x", c[0])], "message": 3},
    ]
    for body in bodies:
        r = await client.post(f"/repos/{repo.name}/refs", json=body)
        assert r.status_code == 422, (body, r.text)
    r = await client.post(f"/repos/{repo.name}/refs", content=b"{not json")
    assert r.status_code == 400, r.text
    assert for_each_ref(git, repo) == before

    (service.root / "plain").mkdir(exist_ok=True)
    files = service.root / "files"
    if not files.exists():
        git("init", "-q", "--bare", "--ref-format=files", str(files))
    for name in ("nope", "plain", "files"):
        for method in ("GET", "POST"):
            r = await client.request(method, f"/repos/{name}/refs", json={"updates": []})
            assert r.status_code == 404, (name, method, r.text)
            assert r.json()["error"] == "not-found"
    r = await client.get("/repos/nope/events")
    assert r.status_code == 404
    # names that could leave the root (percent-encoded so that no client normalizes them)
    for raw in ("%2E%2E", "%2E", ".hidden", "a%00b", "a%20b", "%C3%A9"):
        r = await client.get(httpx.URL(service.url + f"repos/{raw}/refs"))
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["error"] == "bad-name"
    for raw in ("..%2F..%2Fetc", "%2E%2E%2F" + repo.name):
        r = await client.get(httpx.URL(service.url + f"repos/{raw}/refs"))
        assert r.status_code == 404, (raw, r.text)
    r = await client.get(f"/repos/{repo.name}/events", headers={"Last-Event-ID": "-1"})
    assert r.status_code == 400

    # the stack's lock held by someone else past git's lock timeout: 503, nothing applied
    lock = repo.path / "reftable" / "tables.list.lock"
    lock.write_bytes(b"")
    try:
        r = await post(client, repo, upd("refs/heads/x", c[0]))
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1" and r.json()["error"] == "locked"
    finally:
        lock.unlink()
    assert for_each_ref(git, repo) == before
    assert (await post(client, repo, upd("refs/heads/x", c[0]))).status_code == 200
    refs_verify(git, repo.path)


async def test_32_clients_on_distinct_refs(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    """Every update applied, each with an update index of its own, and an event stream
    watching meanwhile sees each of them once, in update-index order."""
    repo = make_repo(git, service, bare=False)  # reflogs: steps survive compaction
    c = repo.commits
    rounds = 3
    sent: dict[int, tuple[str, str | None, str]] = {}

    async def one(n: int) -> None:
        ref, old = f"refs/heads/c{n:02d}", None
        for i in range(rounds):
            new = c[(n + i) % len(c)]
            r = await post(client, repo, upd(ref, new, old))
            assert r.status_code == 200, r.text
            sent[r.json()["update_index"]] = (ref, old, new)
            old = new

    async with anyio.create_task_group() as streams:
        stream = await open_stream(client, streams, repo)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for n in range(CLIENTS):
                    tg.start_soon(one, n)
        # every transaction has its own update index, even when group commit shares a table
        assert len(sent) == CLIENTS * rounds
        await stream.reader.wait_for(CLIENTS * rounds)
        assert stream.reader.changes() == [
            (*sent[index], index, str(index)) for index in sorted(sent)
        ]
        stream.scope.cancel()
    expected = {f"refs/heads/c{n:02d}": c[(n + rounds - 1) % len(c)] for n in range(CLIENTS)}
    assert for_each_ref(git, repo, "refs/heads/") == {"refs/heads/main": c[-1], **expected}
    refs_verify(git, repo.path)


async def test_32_clients_racing_on_one_ref(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    repo = make_repo(git, service, bare=False, commits=CLIENTS + 1)
    c = repo.commits
    rounds = 3
    current = c[-1]  # refs/heads/main
    winners: list[str] = []
    for _ in range(rounds):
        values = [x for x in c if x != current]
        codes: dict[str, int] = {}

        async def race(new: str, old: str, codes: dict[str, int]) -> None:
            r = await post(client, repo, upd("refs/heads/main", new, old))
            codes[new] = r.status_code
            if r.status_code == 409:
                assert r.json()["conflicts"][0]["actual"] != old

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for new in values:
                    tg.start_soon(race, new, current, codes)
        won = [new for new, code in codes.items() if code == 200]
        assert len(won) == 1 and sorted(codes.values()) == [200] + [409] * (CLIENTS - 1)
        current = won[0]
        winners.append(current)
    assert git("rev-parse", "refs/heads/main", cwd=repo.path).strip() == current
    # exactly the winners were applied, in order
    log = git("reflog", "show", "--format=%H", "refs/heads/main", cwd=repo.path).split()
    assert log[: rounds + 1] == [*reversed(winners), c[-1]]
    refs_verify(git, repo.path)


# -- events --------------------------------------------------------------------------------
class EventReader:
    """A browser-free EventSource: parses ``text/event-stream`` and keeps the last event
    id as a browser does (an event without ``id:`` leaves it unchanged)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.last_id: str | None = None
        self.ready = anyio.Event()
        self.changed = anyio.Event()

    async def read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.comments += 1
                self._wake()
                continue
            if line:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[name] = fields[name] + "\n" + value if name in fields else value
                continue
            if "id" in fields:
                self.last_id = fields["id"]
            if "data" in fields:
                event = {"type": fields.get("event", "message"), "id": fields.get("id")}
                event["data"] = json.loads(fields["data"])
                self.events.append(event)
                if event["type"] == "ready":
                    self.ready.set()
                self._wake()
            fields = {}

    def _wake(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def changes(self) -> list[tuple[str, str | None, str | None, int, str | None]]:
        """(ref, old, new, update index, the event's id) of every change event."""
        return [
            (
                e["data"]["ref"],
                e["data"]["old"],
                e["data"]["new"],
                e["data"]["update_index"],
                e["id"],
            )
            for e in self.events
            if e["type"] == "message"
        ]

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(15):
            while len(self.changes()) < count:
                await self.changed.wait()

    async def wait_for_comment(self) -> None:
        with anyio.fail_after(15):
            while not self.comments:
                await self.changed.wait()


@dataclass
class Stream:
    reader: EventReader
    scope: anyio.CancelScope


async def open_stream(
    client: httpx.AsyncClient,
    tg: TaskGroup,
    repo: Repo,
    last_id: str | None = None,
    *,
    since: int | None = None,
    prefix: str | None = None,
) -> Stream:
    """An event stream read by a task of ``tg`` (``Last-Event-ID: last_id`` or
    ``?since=``), once its ``ready`` event arrived."""
    reader = EventReader()
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    query = {"since": since, "prefix": prefix}
    params = {key: str(value) for key, value in query.items() if value is not None}
    url = f"/repos/{repo.name}/events"

    async def run(*, task_status: TaskStatus[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            async with client.stream("GET", url, headers=headers, params=params) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                task_status.started(scope)
                await reader.read(r)

    scope = await tg.start(run)
    with anyio.fail_after(10):
        await reader.ready.wait()
    return Stream(reader, scope)


async def test_events_every_change_once_in_order(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    repo = make_repo(git, service, bare=False)
    c = repo.commits
    async with anyio.create_task_group() as tg:
        stream = await open_stream(client, tg, repo)
        reader = stream.reader
        start = reader.events[0]
        assert start["type"] == "ready" and start["id"] == str(start["data"]["update_index"])

        async def write(*updates: dict[str, Any]) -> int:
            r = await post(client, repo, *updates)
            assert r.status_code == 200, r.text
            index: int = r.json()["update_index"]
            return index

        i1 = await write(upd("refs/heads/a", c[0]))
        await reader.wait_for(1)
        i2 = await write(
            upd("refs/heads/b3", c[2]), upd("refs/heads/b1", c[0]), upd("refs/heads/b2", c[1])
        )
        await reader.wait_for(4)
        # git beside the service
        await anyio.to_thread.run_sync(
            lambda: git("update-ref", "-m", "by git", "refs/heads/g", c[3], cwd=repo.path)
        )
        await reader.wait_for(5)
        i4 = await write(upd("refs/heads/a", c[1], c[0]))
        await reader.wait_for(6)
        i5 = await write(upd("refs/heads/b3", None, c[2]))
        await reader.wait_for(7)
        i3 = reader.changes()[4][3]
        assert reader.changes() == [
            ("refs/heads/a", None, c[0], i1, str(i1)),
            # one transaction: the id comes with its last change only
            ("refs/heads/b1", None, c[0], i2, None),
            ("refs/heads/b2", None, c[1], i2, None),
            ("refs/heads/b3", None, c[2], i2, str(i2)),
            ("refs/heads/g", None, c[3], i3, str(i3)),
            ("refs/heads/a", c[0], c[1], i4, str(i4)),
            ("refs/heads/b3", c[2], None, i5, str(i5)),
        ]
        assert [i1, i2, i3, i4, i5] == list(range(i1, i1 + 5))
        messages = [e["data"]["message"] for e in reader.events[1:5]]
        assert messages == ["refs service"] * 4 and reader.events[5]["data"]["message"] == "by git"
        stream.scope.cancel()
    # what git wrote is in the listing too
    r = await client.get(f"/repos/{repo.name}/refs", params={"prefix": "refs/heads/g"})
    assert r.json() == [{"name": "refs/heads/g", "value": c[3]}]
    refs_verify(git, repo.path)


async def test_events_resume_with_last_event_id(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    repo = make_repo(git, service, bare=False)
    c = repo.commits
    async with anyio.create_task_group() as tg:
        first = await open_stream(client, tg, repo)
        assert (await post(client, repo, upd("refs/heads/a", c[0]))).status_code == 200
        r = await post(client, repo, upd("refs/heads/b1", c[0]), upd("refs/heads/b2", c[1]))
        i2 = r.json()["update_index"]
        await first.reader.wait_for(2)
        first.scope.cancel()  # left in the middle of a transaction (b1 seen, b2 not)
    seen = first.reader.changes()[:2]
    assert [ch[0] for ch in seen] == ["refs/heads/a", "refs/heads/b1"]
    last_id = seen[0][4]
    assert last_id is not None and seen[1][4] is None

    # changes while nobody listens, git's included
    git("update-ref", "refs/heads/g", c[2], cwd=repo.path)
    r = await post(client, repo, upd("refs/heads/a", c[3], c[0]))
    i4 = r.json()["update_index"]

    async with anyio.create_task_group() as tg:
        again = await open_stream(client, tg, repo, last_id)
        assert again.reader.events[0]["id"] == last_id
        await again.reader.wait_for(4)
        got = again.reader.changes()
        assert got == [
            ("refs/heads/b1", None, c[0], i2, None),
            ("refs/heads/b2", None, c[1], i2, str(i2)),
            ("refs/heads/g", None, c[2], i2 + 1, str(i2 + 1)),
            ("refs/heads/a", c[0], c[3], i4, str(i4)),
        ]
        again.scope.cancel()
    assert again.reader.last_id == str(i4)

    # from the newest id: only what comes next; ?since= does the same as the header
    async with anyio.create_task_group() as tg:
        last = await open_stream(client, tg, repo, again.reader.last_id)
        r = await post(client, repo, upd("refs/heads/z", c[1]))
        await last.reader.wait_for(1)
        assert last.reader.changes() == [("refs/heads/z", None, c[1], i4 + 1, str(i4 + 1))]
        last.scope.cancel()
    async with anyio.create_task_group() as tg:
        query = await open_stream(client, tg, repo, since=i4)
        await query.reader.wait_for(1)
        assert query.reader.changes() == [("refs/heads/z", None, c[1], i4 + 1, str(i4 + 1))]
        query.scope.cancel()
    refs_verify(git, repo.path)


async def test_events_gap_after_compaction(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    repo = make_repo(git, service)  # bare: no reflogs to replay tags from
    c = repo.commits
    indexes = []
    for old, new in ((None, c[0]), (c[0], c[1]), (c[1], c[2])):
        r = await post(client, repo, upd("refs/tags/t", new, old))
        indexes.append(r.json()["update_index"])
    # one table: t's intermediate values are gone (retried while the service's own
    # background compaction holds a table lock: git's pack-refs then fails)
    for _ in range(50):
        if git.run("pack-refs", cwd=repo.path, check=False).returncode == 0:
            break
        await anyio.sleep(0.1)
    assert len((repo.path / "reftable" / "tables.list").read_text().split()) == 1
    r = await client.get(f"/repos/{repo.name}/events", headers={"Last-Event-ID": str(indexes[0])})
    assert r.status_code == 410, r.text
    body = r.json()
    assert body["error"] == "gap" and body["since"] == indexes[0]
    low, high = body["covers"]
    assert low <= indexes[0] < indexes[-1] <= high
    assert "cannot resume after update index" in body["message"]
    # replaying the whole merged table works: t once, from nothing to its newest value
    async with anyio.create_task_group() as tg:
        stream = await open_stream(client, tg, repo, str(low - 1))
        await stream.reader.wait_for(3)  # HEAD, main and t
        changes = stream.reader.changes()
        assert ("refs/tags/t", None, c[2], high, str(high)) in changes
        stream.scope.cancel()
    refs_verify(git, repo.path)


async def test_events_streams_side_by_side_with_prefix_and_heartbeat(
    git: Git, service: Service, client: httpx.AsyncClient
) -> None:
    """Three streams at once, one of them with a prefix: each sees its changes; a quiet
    stream gets comment lines (the module's service sends one after 0.3 s of silence)."""
    repo = make_repo(git, service, bare=False)
    c = repo.commits
    async with anyio.create_task_group() as tg:
        everything = [await open_stream(client, tg, repo) for _ in range(2)]
        only_b = await open_stream(client, tg, repo, prefix="refs/heads/b")
        await only_b.reader.wait_for_comment()
        r = await post(client, repo, upd("refs/heads/a", c[0]), upd("refs/heads/b1", c[1]))
        i1 = r.json()["update_index"]
        r = await post(client, repo, *(upd(f"refs/heads/b{n}", c[n], None) for n in (2, 3)))
        i2 = r.json()["update_index"]
        for stream in everything:
            await stream.reader.wait_for(4)
            assert stream.reader.changes() == [
                ("refs/heads/a", None, c[0], i1, None),
                ("refs/heads/b1", None, c[1], i1, str(i1)),
                ("refs/heads/b2", None, c[2], i2, None),
                ("refs/heads/b3", None, c[3], i2, str(i2)),
            ]
        await only_b.reader.wait_for(3)
        assert only_b.reader.changes() == [
            ("refs/heads/b1", None, c[1], i1, str(i1)),
            ("refs/heads/b2", None, c[2], i2, None),
            ("refs/heads/b3", None, c[3], i2, str(i2)),
        ]
        for stream in (*everything, only_b):
            stream.scope.cancel()
    refs_verify(git, repo.path)


def test_stops_cleanly_with_open_streams(git: Git, tmp_path: Path) -> None:
    """SIGTERM ends the event streams, closes the stores and exits 0 within seconds,
    leaving no lock behind."""
    root = tmp_path / "repos"
    root.mkdir()
    repo = root / "r"
    git("init", "-q", "--bare", "--ref-format=reftable", str(repo))
    blob = git("hash-object", "-w", "--stdin", cwd=repo, input="x\n").strip()
    with Service(root, "--no-group-commit") as svc:
        proc = svc.proc
        assert proc is not None

        async def listen() -> list[str]:
            lines = []
            async with (
                httpx.AsyncClient(base_url=svc.url, timeout=20) as client,
                client.stream("GET", "/repos/r/events") as r,
            ):
                async for line in r.aiter_lines():
                    lines.append(line)
                    if line == "" and lines.count("") == 1:  # ready: write something
                        update = {"ref": "refs/tags/x", "new": blob}
                        answer = await client.post("/repos/r/refs", json={"updates": [update]})
                        assert answer.status_code == 200
                    elif line == "":  # its event: stop the service
                        proc.send_signal(signal.SIGTERM)
            return lines

        started = time.monotonic()
        lines = anyio.run(listen)
        assert lines[0] == "event: ready"
        assert json.loads(lines[-2].removeprefix("data: "))["ref"] == "refs/tags/x"
        assert svc.stop() == 0, svc.stderr()
        assert time.monotonic() - started < 10
    assert "Traceback" not in svc.stderr()
    assert not list((repo / "reftable").glob("*.lock"))
    assert git("show-ref", cwd=repo).split() == [blob, "refs/tags/x"]
    refs_verify(git, repo)
