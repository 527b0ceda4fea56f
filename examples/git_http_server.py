"""A smart-HTTP git server for every repository under a root, with compare-and-swap on push.

    python examples/git_http_server.py --root DIR [--port 8000] [--host 127.0.0.1]

serves the repository ``DIR/<path>`` at ``http://HOST:PORT/<path>`` to real git clients:
``git clone``, ``git fetch``, ``git ls-remote`` and ``git push`` (also ``--atomic``).
Port 0 picks a free port; the server prints ``listening on http://HOST:PORT/`` once it
accepts connections, and stops cleanly on SIGINT or SIGTERM.

Repositories whose refs are stored in reftable (``git init --ref-format=reftable``) are
opened through :mod:`aioreftable.dulwich` (a dulwich ``Repo`` whose ``refs`` is our ref
store); repositories with the files backend through dulwich's own ``Repo`` (its
``DiskRefsContainer``), so one server can compare both.

Why dulwich's protocol handlers on aiohttp, and not ``dulwich.aiohttp.server`` or
``dulwich.web`` as they are: ``dulwich.aiohttp.server.create_repo_app`` serves one
repository, and ``dulwich.web`` is WSGI (it would need a thread-per-request WSGI server);
both use dulwich's ``ReceivePackHandler``, whose receive path ignores the result of
``set_if_equals``: two ``git push`` racing to fast-forward one branch both report success
while one commit is lost. So this module routes ``/<path>/info/refs`` and
``/<path>/git-{upload,receive}-pack`` itself (as ``dulwich.aiohttp.server`` does for one
repository: the blocking dulwich handler runs in a worker thread, request and response
buffered in memory, bounded by ``--max-request-mb``) and receives with
:class:`CasReceivePackHandler`:

* every command is a compare-and-swap against the old value the client sent
  (``add_if_new`` for a creation, ``set_if_equals`` for an update, ``remove_if_equals``
  for a deletion); a failed check is git's ``ng <ref> failed to update ref`` (the client
  shows ``! [remote rejected] ... (failed to update ref)``) with git's
  ``error: cannot lock ref ...`` on the progress channel;
* an ``--atomic`` push is one transaction: on a reftable repository one ref-store
  transaction (all checks under the stack's lock, one table), else the checks and
  updates under a per-repository lock of this server (atomic among the pushes this server
  receives, not against other writers of a files repository); if anything fails, nothing
  is applied and every ref gets git's ``atomic transaction failed``.

The receive side follows git's ``receive-pack``: refs outside ``refs/`` or with a name
``git check-ref-format`` refuses get ``funny refname``; the reflog message is ``push``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import Any

from aiohttp import web
from dulwich.errors import HangupException, NotGitRepository
from dulwich.file import FileLocked
from dulwich.objects import ObjectID
from dulwich.protocol import (
    CAPABILITY_ATOMIC,
    CAPABILITY_SIDE_BAND_64K,
    SIDE_BAND_CHANNEL_PROGRESS,
    ReceivableProtocol,
)
from dulwich.refs import Ref, check_ref_format
from dulwich.repo import Repo
from dulwich.server import (
    Backend,
    BackendRepo,
    ReceivePackHandler,
    UploadPackHandler,
)

import aioreftable

log = logging.getLogger("git_http_server")

REFLOG_MESSAGE = b"push"
ATOMIC_FAILED = b"atomic transaction failed"
UPDATE_FAILED = b"failed to update ref"
DELETE_FAILED = b"failed to delete"

# Atomic pushes to files repositories: one lock per repository path, this process only.
ATOMIC_LOCKS: dict[str, threading.Lock] = {}
ATOMIC_LOCKS_GUARD = threading.Lock()


# --------------------------------------------------------------------------- repositories


def ref_format(gitdir: Path) -> str:
    """The ref storage of a repository as git decides it: reftable iff its config says so."""
    try:
        text = (gitdir / "config").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "files"
    in_extensions = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("["):
            in_extensions = line.lower().startswith("[extensions]")
            continue
        if in_extensions and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if key.lower() == "refstorage":
                return value.strip('"').lower()
    return "files"


def reftable_backend(root: Path) -> Backend:
    """The backend for reftable repositories: aioreftable.dulwich's (one line to switch)."""
    from aioreftable.dulwich import Backend as ReftableBackend

    return ReftableBackend(str(root))


class RootBackend(Backend):
    """Every repository under ``root``: reftable ones through aioreftable.dulwich, others
    through dulwich's own ``Repo``. Paths outside the root are not git repositories."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._reftable: Backend | None = None
        self._reftable_lock = threading.Lock()

    def locate(self, path: str) -> Path:
        """The git directory for a request path, or NotGitRepository."""
        rel = path.strip("/")
        target = (self.root / rel).resolve()
        if target != self.root and self.root not in target.parents:
            raise NotGitRepository(f"{path!r} is outside the served root")
        for gitdir in (target / ".git", target):
            if (gitdir / "HEAD").is_file() and (gitdir / "objects").is_dir():
                return gitdir
        raise NotGitRepository(f"no git repository at {path!r}")

    def open_repository(self, path: str) -> BackendRepo:
        gitdir = self.locate(path)
        if ref_format(gitdir) == "reftable":
            with self._reftable_lock:
                if self._reftable is None:
                    self._reftable = reftable_backend(self.root)
            return self._reftable.open_repository(str(gitdir.relative_to(self.root)))
        return Repo(str(gitdir))


# --------------------------------------------------------------------------- receive-pack


class AtomicFailure(Exception):
    """An atomic push was refused; ``reason`` is the error line git would print."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CasReceivePackHandler(ReceivePackHandler):
    """dulwich's receive-pack with every ref command a compare-and-swap (see the module
    docstring); ``atomic`` pushes are applied all or nothing."""

    def _apply_pack(
        self, refs: list[tuple[ObjectID, ObjectID, Ref]]
    ) -> Iterator[tuple[bytes, bytes]]:
        zero = ObjectID(b"0" * self.repo.object_format.hex_length)
        if any(new != zero for _, new, _ in refs):
            try:
                self.repo.object_store.add_thin_pack(  # type: ignore[attr-defined]
                    self.proto.read,
                    getattr(self.proto, "recv", None),
                    max_input_size=self._receive_max_input_size(),
                )
            except Exception as e:  # reported to the client as git's unpacker does
                log.warning("unpack failed: %s", e)
                yield (b"unpack", str(e).replace("\n", " ").encode("utf-8", "replace"))
                return
        yield (b"unpack", b"ok")

        checked: list[tuple[ObjectID, ObjectID, Ref, bytes | None]] = []
        for old, new, ref in refs:
            if not ref.startswith(b"refs/") or not check_ref_format(ref):
                checked.append((old, new, ref, b"funny refname"))
            else:
                checked.append((old, new, ref, self._on_update(ref, old, new)))

        if self.has_capability(CAPABILITY_ATOMIC):
            yield from self._apply_atomic(checked, zero)
            return
        for old, new, ref, error in checked:
            if error is None:
                error = self._apply_one(old, new, ref, zero)
            yield (ref, b"ok" if error is None else error)

    # -- one ref at a time

    def _apply_one(self, old: ObjectID, new: ObjectID, ref: Ref, zero: ObjectID) -> bytes | None:
        refs = self.repo.refs
        try:
            if new == zero:
                done = refs.remove_if_equals(ref, old, message=REFLOG_MESSAGE)
            elif old == zero:
                done = refs.add_if_new(ref, new, message=REFLOG_MESSAGE)
            else:
                done = refs.set_if_equals(ref, old, new, message=REFLOG_MESSAGE)
        except Exception as e:  # one ref's failure is reported as git's ng line
            log.warning("update of %s failed: %r", ref.decode(errors="replace"), e)
            self._remote_error(f"cannot lock ref '{ref.decode(errors='replace')}': {_reason(e)}")
            return DELETE_FAILED if new == zero else UPDATE_FAILED
        if done:
            return None
        self._remote_error(self._stale_message(ref, old, zero))
        return DELETE_FAILED if new == zero else UPDATE_FAILED

    # -- all or nothing

    def _apply_atomic(
        self, checked: list[tuple[ObjectID, ObjectID, Ref, bytes | None]], zero: ObjectID
    ) -> Iterator[tuple[bytes, bytes]]:
        if any(error is not None for *_, error in checked):
            for *_, ref, error in checked:
                yield (ref, ATOMIC_FAILED if error is None else error)
            return
        commands = [(old, new, ref) for old, new, ref, _ in checked]
        try:
            store_path = self._reftable_path()
            if store_path is not None:
                _atomic_on_store(store_path, commands, zero)
            else:
                self._atomic_under_lock(commands, zero)
        except AtomicFailure as e:
            self._remote_error(e.reason)
            for _, _, ref in commands:
                yield (ref, ATOMIC_FAILED)
            return
        for _, _, ref in commands:
            yield (ref, b"ok")

    def _reftable_path(self) -> str | None:
        """The repository's git directory if its refs are in reftable, else None."""
        path = self.repo.controldir()  # type: ignore[attr-defined]
        assert isinstance(path, str)
        return path if ref_format(Path(path)) == "reftable" else None

    def _atomic_under_lock(
        self, commands: list[tuple[ObjectID, ObjectID, Ref]], zero: ObjectID
    ) -> None:
        key = os.path.realpath(self.repo.controldir())  # type: ignore[attr-defined]
        with ATOMIC_LOCKS_GUARD:
            lock = ATOMIC_LOCKS.setdefault(key, threading.Lock())
        refs = self.repo.refs
        with lock:
            for old, _, ref in commands:
                if _current(refs, ref, zero) != old:
                    raise AtomicFailure(self._stale_message(ref, old, zero))
            applied: list[tuple[ObjectID, ObjectID, Ref]] = []
            for old, new, ref in commands:
                if self._apply_one(old, new, ref, zero) is not None:
                    for a_old, a_new, a_ref in reversed(applied):  # undo, as far as we still can
                        self._apply_one(a_new, a_old, a_ref, zero)
                    raise AtomicFailure(f"cannot update ref '{ref.decode(errors='replace')}'")
                applied.append((old, new, ref))

    # -- messages

    def _stale_message(self, ref: Ref, old: ObjectID, zero: ObjectID) -> str:
        name = ref.decode(errors="replace")
        current = _current(self.repo.refs, ref, zero)
        if old == zero:
            return f"cannot lock ref '{name}': reference already exists"
        if current == zero:
            return f"cannot lock ref '{name}': unable to resolve reference '{name}'"
        return f"cannot lock ref '{name}': is at {current.decode()} but expected {old.decode()}"

    def _remote_error(self, message: str) -> None:
        """git's rp_error: shown by the client as ``remote: error: ...``."""
        if self.has_capability(CAPABILITY_SIDE_BAND_64K):
            self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, f"error: {message}\n".encode())


def _reason(error: Exception) -> str:
    """An exception as the end of git's ``cannot lock ref`` message."""
    if isinstance(error, FileLocked):
        return f"Unable to create '{os.fsdecode(error.lockfilename)}': File exists."
    return str(error) or type(error).__name__


def _current(refs: Any, ref: Ref, zero: ObjectID) -> ObjectID:
    value = refs.read_ref(ref)
    return zero if value is None or value.startswith(b"ref: ") else ObjectID(value)


def _atomic_on_store(
    gitdir: str, commands: list[tuple[ObjectID, ObjectID, Ref]], zero: ObjectID
) -> None:
    """One ref-store transaction for an atomic push (called from a worker thread)."""
    import anyio

    async def commit() -> None:
        async with aioreftable.open_ref_store(gitdir) as store:
            try:
                async with store.transaction(message=REFLOG_MESSAGE.decode()) as tx:
                    for old, new, ref in commands:
                        name = ref.decode("utf-8", "surrogateescape")
                        if new == zero:
                            tx.delete(name, old=old.decode())
                        elif old == zero:
                            tx.create(name, new.decode())
                        else:
                            tx.update(name, new.decode(), old=old.decode())
            except aioreftable.TransactionError as e:
                raise AtomicFailure(str(e)) from e

    anyio.run(commit)


# --------------------------------------------------------------------------- HTTP

HANDLERS: dict[str, type] = {
    "git-upload-pack": UploadPackHandler,
    "git-receive-pack": CasReceivePackHandler,
}
NO_CACHE = {
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
    "Pragma": "no-cache",
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
}


def run_handler(backend: Backend, service: str, path: str, body: bytes | None) -> bytes:
    """Run one dulwich protocol handler (blocking, in a worker thread); its whole output.

    ``body`` None: the ref advertisement of ``GET info/refs``; else a POSTed request."""
    out = BytesIO()
    proto = ReceivableProtocol(BytesIO(body or b"").read, out.write)
    handler_cls = HANDLERS[service]
    advertise = body is None
    handler = handler_cls(backend, [path], proto, stateless_rpc=True, advertise_refs=advertise)
    try:
        if advertise:
            proto.write_pkt_line(b"# service=" + service.encode() + b"\n")
            proto.write_pkt_line(None)
        with contextlib.suppress(HangupException):
            handler.handle()
    finally:
        close = getattr(handler.repo, "close", None)
        if close is not None:
            close()
    return out.getvalue()


class GitHttpApp:
    """The aiohttp application: smart HTTP only (no dumb protocol)."""

    def __init__(self, root: Path, threads: int, max_request_mb: int) -> None:
        self.backend = RootBackend(root)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="git-http")
        self.app = web.Application(client_max_size=max_request_mb * 1024 * 1024)
        self.app.router.add_get("/{repo:.+}/info/refs", self.info_refs)
        self.app.router.add_post(
            "/{repo:.+}/{service:git-upload-pack|git-receive-pack}", self.service
        )

    async def _run(self, fn: Callable[[], bytes]) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def info_refs(self, request: web.Request) -> web.Response:
        service = request.query.get("service", "")
        if service not in HANDLERS:
            raise web.HTTPForbidden(
                text="only smart HTTP is served (?service=git-upload-pack|git-receive-pack)\n"
            )
        path = request.match_info["repo"]
        try:
            body = await self._run(lambda: run_handler(self.backend, service, path, None))
        except NotGitRepository as e:
            raise web.HTTPNotFound(text=f"{e}\n") from None
        headers = {"Content-Type": f"application/x-{service}-advertisement", **NO_CACHE}
        return web.Response(body=body, headers=headers)

    async def service(self, request: web.Request) -> web.Response:
        service = request.match_info["service"]
        if request.content_type != f"application/x-{service}-request":
            raise web.HTTPForbidden(text="bad Content-Type\n")
        path = request.match_info["repo"]
        data = await request.read()
        try:
            body = await self._run(lambda: run_handler(self.backend, service, path, data))
        except NotGitRepository as e:
            raise web.HTTPNotFound(text=f"{e}\n") from None
        headers = {"Content-Type": f"application/x-{service}-result", **NO_CACHE}
        return web.Response(body=body, headers=headers)


async def serve(args: argparse.Namespace) -> None:
    git_app = GitHttpApp(Path(args.root), args.threads, args.max_request_mb)
    runner = web.AppRunner(git_app.app, access_log=log if args.verbose else None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    site = web.SockSite(runner, sock)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on http://{shown}:{port}/ (root {git_app.backend.root})", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        git_app.executor.shutdown(wait=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="serve every repository under this directory")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port (0: pick a free one; default 8000)"
    )
    parser.add_argument(
        "--threads", type=int, default=32, help="worker threads for dulwich (default 32)"
    )
    parser.add_argument(
        "--max-request-mb", type=int, default=1024, help="largest request body (MiB)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        print(f"fatal: --root {args.root}: not a directory", file=sys.stderr)
        return 128
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
