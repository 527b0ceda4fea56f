"""An async refs service: HTTP + JSON over the ref stores of every repository under a root.

    python examples/refs_service.py --root DIR [--port 8000] [--host 127.0.0.1] [--no-group-commit]

serves the reftable repository ``DIR/<name>`` (bare, or a work tree with ``.git``) at
``/repos/<name>/``. Port 0 picks a free port; the service prints ``listening on
http://HOST:PORT/`` once it accepts connections and stops cleanly on SIGINT or SIGTERM.

* ``GET /repos/{name}/refs?prefix=refs/heads/`` -> ``[{"name", "value" | "target",
  "peeled"?}]``: the refs below ``prefix`` (default: all of ``refs/``), sorted; a symref
  has ``target`` instead of ``value``; ``peeled`` is an annotated tag's peeled id.
* ``POST /repos/{name}/refs`` with ``{"updates": [{"ref", "new", "old"?}, ...],
  "message"?}``: one atomic transaction; every update is a compare-and-swap: ``old``
  absent, ``null`` or the null id means "must not exist"; ``new`` ``null`` (or the null
  id) deletes. 200 ``{"update_index": N}`` (the transaction's update index, the ``id`` of
  its events below; null when nothing changed); 409 ``{"error": "conflict", "conflicts":
  [{"ref", "expected", "actual"}], "refs": [...]}`` when a check failed (nothing is
  applied; ``conflicts``: the refs of the request whose value differs from ``old`` now,
  ``refs``: the names the failed check named, which may lie outside the request for a
  D/F conflict); 422 for a bad ref name, a malformed id, an id whose object does not
  exist (or a non-commit on a branch) or a malformed request; 400 for a body that is not
  JSON (or nested too deeply to parse); 413 for a body over ``MAX_BODY`` (16 MiB); 503
  (with ``Retry-After``) when the stack's lock stayed taken.
* ``GET /repos/{name}/events?prefix=`` -> ``text/event-stream``: the change feed
  (``store.watch``), one event per ref change, changes by git or any other process
  included, in update-index order. ``data`` is ``{"ref", "old", "new", "update_index",
  "message"}`` (ids; ``null`` for a missing ref; ``ref:<target>`` for a symref). The first
  event is ``event: ready`` whose ``id`` is the update index the stream starts after.
  ``id:`` is the update index and is sent with the **last** change of each index only:
  a transaction of several refs is several events, and a client that resumes from its
  last event id (``Last-Event-ID``, as a browser's EventSource does, or ``?since=N``)
  gets again the changes of a transaction it saw only part of, never a partial one.
  When the stack can no longer resume there (a compaction merged the tables around it and
  a ref there has no reflog to replay from), the answer is 410 ``{"error": "gap",
  "message", "since", "covers": [first, last]}`` with the feed's ``ChangeFeedGapError``
  text: resume from ``first - 1`` to receive that table's changes again, or from
  ``last`` to skip them (or list the refs and start afresh). A comment line is sent after
  15 s of silence (``--heartbeat``) so that proxies and clients see a live stream.

404 for a name that is not a reftable repository directly under the root (a symlink
leading out of the root included); 400 for a name that could leave it (a leading dot,
``/``, anything outside ``[A-Za-z0-9._-]``).

One ``RefStore`` per repository, opened on its first request (``open_ref_store`` with
group commit on unless ``--no-group-commit``), kept open and closed when the service stops.
A store is a context manager with a task group of its own (background compaction), so it
cannot be opened inside one request and closed in another task: each store lives in a
task of the service's lifespan task group, which opens it, hands it over and closes it
at shutdown. Concurrent requests on one repository therefore share its group commit:
transactions that arrive together are written as one table, each with its own update
index (docs/refstore.md).

Why Starlette on uvicorn: the ref store is anyio code, and Starlette is built on anyio
(its request handling, task groups and streaming), so the store's tasks, cancellation and
the change feed's watch run in the server's own event loop with no bridge; routing,
JSON and the lifespan hooks that own the stores come with it, the events endpoint is a
plain ASGI response of ~60 lines, and nothing else is pulled in. uvicorn is the usual
ASGI server (uvloop when installed) and can be started from Python on a socket we bind
ourselves, which gives the "listening on" line with the real port. (hypercorn would run
on trio too, which the store supports; uvicorn's loop is asyncio only.)

Uses only the public API of aioreftable.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import aioreftable
from aioreftable import (
    ChangeFeed,
    ChangeFeedGapError,
    IncorrectOldValueError,
    InvalidNewValueError,
    InvalidObjectIdError,
    LockError,
    NameConflictError,
    NotARepositoryError,
    RefChange,
    RefExistsError,
    RefMissingError,
    RefnameError,
    RefStore,
    ReftableError,
    TransactionError,
    UnsupportedRepositoryError,
)

log = logging.getLogger("refs_service")

#: A repository name: one path component that cannot climb out of the root.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}\Z")
#: Seconds of silence after which an event stream sends a comment line (``--heartbeat``).
HEARTBEAT = 15.0
#: The most updates one request may carry.
MAX_UPDATES = 10_000
MAX_BODY = 16 << 20  # bytes of a POST body (10,000 updates of long names fit)
#: The environment variables that would point discovery at another repository.
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")


class ServiceError(Exception):
    """An answer other than success: its status and JSON body."""

    def __init__(self, status: int, error: str, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}
        self.headers: dict[str, str] = {}


# -- the stores ----------------------------------------------------------------------------
@dataclass
class _Entry:
    ready: anyio.Event = field(default_factory=anyio.Event)
    store: RefStore | None = None
    error: Exception | None = None


class Stores:
    """One open ref store per repository under ``root``, each owned by a task of the
    lifespan task group (opened on first use, closed at shutdown)."""

    def __init__(self, root: Path, *, group_commit: bool = True):
        self.root = root
        self.group_commit = group_commit
        self.env = {k: v for k, v in os.environ.items() if k not in _REPO_VARS}
        self._entries: dict[str, _Entry] = {}
        self._tasks: TaskGroup | None = None
        self._closing: anyio.Event | None = None  # set at shutdown: owners close their stores

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._closing = anyio.Event()
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield
            finally:
                self._tasks = None
                self._closing.set()

    async def get(self, name: str) -> RefStore:
        """The open store of repository ``name`` (ServiceError 400/404/503)."""
        if not NAME.match(name):
            raise ServiceError(400, "bad-name", f"invalid repository name {name!r}")
        entry = self._entries.get(name)
        if entry is None:
            if self._tasks is None:
                raise ServiceError(503, "stopping", "the service is stopping")
            entry = self._entries[name] = _Entry()
            self._tasks.start_soon(self._own, name, entry)
        await entry.ready.wait()
        if entry.store is not None:
            return entry.store
        if isinstance(entry.error, NotARepositoryError | UnsupportedRepositoryError):
            raise ServiceError(404, "not-found", f"no reftable repository named {name!r}")
        if entry.error is not None:
            raise entry.error
        raise ServiceError(503, "stopping", "the service is stopping")

    async def _own(self, name: str, entry: _Entry) -> None:
        assert self._closing is not None
        try:
            path = await anyio.to_thread.run_sync(self._locate, name)
            async with aioreftable.open_ref_store(
                path, env=self.env, group_commit=self.group_commit
            ) as store:
                entry.store = store
                entry.ready.set()
                await self._closing.wait()
        except Exception as exc:  # never let one repository stop the service
            if entry.store is None:
                entry.error = exc
                self._entries.pop(name, None)
            else:
                log.exception("closing the refs of %s", name)
        finally:
            entry.ready.set()

    def _locate(self, name: str) -> Path:
        """``root/name`` if it is itself a repository (not a directory inside another one,
        nor a linked worktree); else NotARepositoryError. Runs in a worker thread."""
        path = self.root / name
        real, root = path.resolve(), self.root.resolve()
        if root not in real.parents:  # a symlink out of the root
            raise NotARepositoryError(f"{name} is not inside the root")
        layout = aioreftable.discover(path, self.env)
        if layout.git_dir not in (real, real / ".git"):
            raise NotARepositoryError(f"{name} is not a repository")
        return path


# -- requests ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Update:
    ref: str
    new: str  # the null id: delete
    old: str  # the null id: must not exist


def parse_updates(body: object, null: str) -> tuple[list[Update], str]:
    """The updates and the reflog message of a POST body (ServiceError 422 when malformed;
    names and ids are checked by the transaction)."""

    def bad(message: str) -> ServiceError:
        return ServiceError(422, "bad-request", message)

    if not isinstance(body, dict) or not isinstance(body.get("updates"), list):
        raise bad('expected {"updates": [{"ref": ..., "new": ..., "old": ...}, ...]}')
    unknown = set(body) - {"updates", "message"}
    if unknown:
        raise bad(f"unknown fields {sorted(unknown)}")
    message = body.get("message", "refs service")
    if not isinstance(message, str):
        raise bad('"message" must be a string')
    items = body["updates"]
    if not items or len(items) > MAX_UPDATES:
        raise bad(f"between 1 and {MAX_UPDATES} updates per request")
    updates = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("ref"), str) or "new" not in item:
            raise bad(f'update {n}: expected {{"ref": str, "new": str | null, "old"?: ...}}')
        if set(item) - {"ref", "new", "old"}:
            raise bad(f"update {n}: unknown fields {sorted(set(item) - {'ref', 'new', 'old'})}")
        new, old = item["new"], item.get("old")
        if not isinstance(new, str | None) or not isinstance(old, str | None):
            raise bad(f'update {n}: "new" and "old" must be strings or null')
        if new == "" or old == "":  # not an id; null is the way to say "none"
            raise bad(f'update {n}: "new" and "old" must be ids or null, not ""')
        updates.append(Update(item["ref"], new or null, old or null))
    return updates, message


async def _repository(request: Request) -> RefStore:
    stores: Stores = request.app.state.stores
    return await stores.get(request.path_params["name"])


async def list_refs(request: Request) -> Response:
    store = await _repository(request)
    prefix = request.query_params.get("prefix", "")
    out = []
    async for ref in store.iterate(prefix):
        item: dict[str, str] = {"name": ref.name}
        if ref.target is not None:
            item["target"] = ref.target
        else:
            item["value"] = str(ref.oid)
        if ref.peeled is not None:
            item["peeled"] = ref.peeled
        out.append(item)
    return JSONResponse(out)


async def _read_body(request: Request) -> bytes:
    """The body of a POST, at most MAX_BODY bytes (ServiceError 413 beyond)."""
    too_large = ServiceError(413, "too-large", f"the body is larger than {MAX_BODY} bytes")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:  # gone before the whole body came: nobody reads the answer
        raise ServiceError(400, "disconnected", "the client went away") from None
    return b"".join(chunks)


async def update_refs(request: Request) -> Response:
    store = await _repository(request)
    try:
        body = json.loads(await _read_body(request))
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise ServiceError(400, "bad-json", f"the body is not JSON: {exc}") from None
    updates, message = parse_updates(body, store.null_oid)
    try:
        async with store.transaction(message=message) as tx:
            for u in updates:
                tx.update(u.ref, u.new, old=u.old)
    except (IncorrectOldValueError, RefExistsError, RefMissingError, NameConflictError) as exc:
        conflicts = await _conflicts(store, updates)
        raise ServiceError(
            409, "conflict", str(exc), conflicts=conflicts, refs=list(exc.refnames)
        ) from None
    except (RefnameError, InvalidNewValueError, InvalidObjectIdError) as exc:
        raise ServiceError(422, "invalid", str(exc)) from None
    except TransactionError as exc:  # e.g. two updates of one ref
        raise ServiceError(422, "invalid", str(exc)) from None
    except LockError as exc:
        err = ServiceError(503, "locked", str(exc))
        err.headers["Retry-After"] = "1"
        raise err from None
    return JSONResponse({"update_index": tx.update_index})


def _shown(ref: aioreftable.Ref | None) -> str | None:
    if ref is None:
        return None
    return f"ref:{ref.target}" if ref.target is not None else ref.oid


async def _conflicts(store: RefStore, updates: list[Update]) -> list[dict[str, str | None]]:
    """The refs of the request whose current value is not the expected old one."""
    out = []
    for u in updates:
        actual = _shown(await store.read(u.ref))
        expected = None if u.old == store.null_oid else u.old
        if actual != expected:
            out.append({"ref": u.ref, "expected": expected, "actual": actual})
    return out


# -- events ----------------------------------------------------------------------------------
async def events(request: Request) -> Response:
    store = await _repository(request)
    since = _since(request)
    feed = store.watch(request.query_params.get("prefix", ""), since=since)
    try:
        start = await feed.start()
    except ChangeFeedGapError as exc:
        await feed.aclose()
        raise ServiceError(410, "gap", str(exc), since=exc.since, covers=list(exc.covers)) from None
    except BaseException:
        await feed.aclose()
        raise
    service: Service = request.app.state.service
    assert service.streams_closing is not None
    return EventStream(feed, start, store.null_oid, service.streams_closing, service.heartbeat)


def _since(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise ServiceError(400, "bad-event-id", f"not an update index: {raw!r}")
    return int(raw)


class EventStream(Response):
    """An ASGI response: the change feed as server-sent events until the client leaves or
    the service stops. One task reads the feed into a memory stream; this one writes."""

    def __init__(
        self,
        feed: ChangeFeed,
        start: int,
        null: str,
        closing: anyio.Event,
        heartbeat: float = HEARTBEAT,
    ):
        super().__init__(media_type="text/event-stream")
        self.heartbeat = heartbeat
        self.feed = feed
        self.start = start
        self.null = null
        self.closing = closing
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        inbox, outbox = anyio.create_memory_object_stream[RefChange | Exception](math.inf)
        async with self.feed, inbox, anyio.create_task_group() as tasks:
            tasks.start_soon(self._read_feed, inbox)
            tasks.start_soon(self._until_disconnect, receive, tasks)
            tasks.start_soon(self._until_closing, tasks)
            await self._write(send, outbox)
            tasks.cancel_scope.cancel()
        if not self.disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _read_feed(self, inbox: MemoryObjectSendStream[RefChange | Exception]) -> None:
        # The feed returns the queued changes of the tables it read without suspending,
        # so the writer runs only when every change of each update index it read is in
        # the stream: seeing the stream empty, it knows it has the last one of its index.
        async with inbox:
            try:
                async for change in self.feed:
                    inbox.send_nowait(change)
            except (ReftableError, OSError) as exc:
                inbox.send_nowait(exc)

    async def _until_disconnect(self, receive: Receive, tasks: TaskGroup) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        tasks.cancel_scope.cancel()

    async def _until_closing(self, tasks: TaskGroup) -> None:
        await self.closing.wait()
        tasks.cancel_scope.cancel()

    async def _write(
        self, send: Send, outbox: MemoryObjectReceiveStream[RefChange | Exception]
    ) -> None:
        ready = json.dumps({"update_index": self.start})
        pending = [f"event: ready\nid: {self.start}\ndata: {ready}\n\n"]
        held: RefChange | None = None  # sent once we know whether it ends its index
        while True:
            try:
                item = outbox.receive_nowait()
            except anyio.WouldBlock:
                if held is not None:
                    pending.append(self._event(held, last=True))
                    held = None
                if pending:
                    await self._send(send, pending)
                    continue
                with anyio.move_on_after(self.heartbeat) as idle:
                    item = await outbox.receive()
                if idle.cancelled_caught:
                    pending.append(": keep-alive\n\n")
                    continue
            except anyio.EndOfStream:
                break
            if isinstance(item, Exception):
                if held is not None:
                    pending.append(self._event(held, last=True))
                error = json.dumps({"error": type(item).__name__, "message": str(item)})
                pending.append(f"event: error\ndata: {error}\n\n")
                break
            if held is not None:
                pending.append(self._event(held, last=held.update_index != item.update_index))
            held = item
        if held is not None:
            pending.append(self._event(held, last=True))
        if pending:
            await self._send(send, pending)

    async def _send(self, send: Send, pending: list[str]) -> None:
        body = "".join(pending).encode()
        pending.clear()
        await send({"type": "http.response.body", "body": body, "more_body": True})

    def _event(self, change: RefChange, *, last: bool) -> str:
        data = json.dumps(
            {
                "ref": change.refname,
                "old": None if change.old == self.null else change.old,
                "new": None if change.new == self.null else change.new,
                "update_index": change.update_index,
                "message": change.message,
            }
        )
        return (f"id: {change.update_index}\n" if last else "") + f"data: {data}\n\n"


# -- the application -----------------------------------------------------------------------
class Service:
    """The application's state: the stores, and the event that ends the event streams
    when the server is asked to stop (``stop_requested`` is polled)."""

    def __init__(
        self,
        root: Path,
        *,
        group_commit: bool = True,
        stop_requested: Callable[[], bool] | None = None,
        heartbeat: float = HEARTBEAT,
    ):
        self.stores = Stores(root, group_commit=group_commit)
        self.stop_requested = stop_requested
        self.heartbeat = heartbeat
        self.streams_closing: anyio.Event | None = None

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.streams_closing = closing = anyio.Event()
        async with self.stores.running(), anyio.create_task_group() as tasks:
            tasks.start_soon(self._watch_stop)
            try:
                yield
            finally:
                closing.set()
                tasks.cancel_scope.cancel()

    async def _watch_stop(self) -> None:
        if self.stop_requested is None or self.streams_closing is None:
            return
        # uvicorn's signal handler only sets a flag, which its own main loop polls too
        while not self.stop_requested():  # noqa: ASYNC110
            await anyio.sleep(0.1)
        self.streams_closing.set()


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=500)


def create_app(
    root: str | os.PathLike[str],
    *,
    group_commit: bool = True,
    stop_requested: Callable[[], bool] | None = None,
    heartbeat: float = HEARTBEAT,
) -> Starlette:
    """The ASGI application serving the repositories under ``root``; ``stop_requested``
    (polled) ends the event streams, ``heartbeat`` is their comment interval."""
    service = Service(
        Path(root), group_commit=group_commit, stop_requested=stop_requested, heartbeat=heartbeat
    )
    app = Starlette(
        routes=[
            Route("/repos/{name}/refs", list_refs, methods=["GET"]),
            Route("/repos/{name}/refs", update_refs, methods=["POST"]),
            Route("/repos/{name}/events", events, methods=["GET"]),
        ],
        exception_handlers={ServiceError: _service_error, ReftableError: _store_error},
        lifespan=service.lifespan,
    )
    app.state.service = service
    app.state.stores = service.stores
    return app


class _Server(uvicorn.Server):
    """uvicorn's server that prints where it listens once it accepts connections, and
    whose exit after SIGTERM/SIGINT is a clean one (status 0, the signal not re-raised)."""

    def __init__(self, config: uvicorn.Config, url: str):
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"listening on {self.url}", flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="serve the repositories in this directory")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: a free one; default 8000)")
    parser.add_argument(
        "--no-group-commit",
        dest="group_commit",
        action="store_false",
        help="commit every transaction on its own (one lock and one table each)",
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=HEARTBEAT,
        help=f"seconds of silence before an event stream sends a comment (default {HEARTBEAT:g})",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn's log level")
    args = parser.parse_args(argv)
    if not args.heartbeat > 0:
        parser.error("--heartbeat must be positive")
    root = Path(args.root)
    if not root.is_dir():
        print(f"fatal: not a directory: {root}", file=sys.stderr)
        return 128
    logging.basicConfig(level=args.log_level.upper(), format="%(name)s: %(message)s")
    try:
        sock = socket.create_server((args.host, args.port), backlog=2048)
    except OSError as exc:
        print(f"fatal: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 128
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server: _Server | None = None
    app = create_app(
        root,
        group_commit=args.group_commit,
        heartbeat=args.heartbeat,
        stop_requested=lambda: server is not None and server.should_exit,
    )
    config = uvicorn.Config(
        app, log_level=args.log_level, access_log=False, timeout_graceful_shutdown=5
    )
    server = _Server(config, f"http://{shown}:{port}/")
    with sock:
        server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
