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
``/<path>/git-{upload,receive}-pack`` itself, as ``dulwich.aiohttp.server`` does for one
repository (the blocking dulwich handler runs in a worker thread, request and response
buffered in memory, bounded by ``--max-request-mb``), and receives with
:class:`CasReceivePackHandler`:

* on a reftable repository the commands of one push are one
  ``ReftableRefsContainer.update_refs`` call, i.e. one table: a batch in which each
  command's expected old value is checked under the stack's lock, or with ``--atomic``
  one transaction (concurrent pushes share tables through the store's group commit);
* on a files repository every command is a compare-and-swap of dulwich's container
  (``add_if_new`` for a creation, ``set_if_equals`` for an update, ``remove_if_equals``
  for a deletion), and an ``--atomic`` push is checked and applied under a per-repository
  lock of this server (atomic among the pushes this server receives, not against other
  writers of the repository);
* a failed check is git's ``ng <ref> failed to update ref`` (the client shows
  ``! [remote rejected] ... (failed to update ref)``), with git's ``error: cannot lock
  ref ...`` on the progress channel (``remote: error: ...``); a failed atomic push
  applies nothing and every ref gets git's ``atomic transaction failed``.

As git's ``receive-pack``: refs outside ``refs/`` or with a name ``git check-ref-format``
refuses get ``funny refname``, an ``update`` hook may refuse a ref, and the reflog message
is ``push``.
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
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.file import FileLocked
from dulwich.objects import ObjectID
from dulwich.protocol import (
    CAPABILITY_ATOMIC,
    CAPABILITY_SIDE_BAND_64K,
    SIDE_BAND_CHANNEL_PROGRESS,
    ReceivableProtocol,
)
from dulwich.refs import Ref, check_ref_format
from dulwich.server import ReceivePackHandler, UploadPackHandler

from aioreftable import ReftableError
from aioreftable.dulwich import Backend as ReftableBackend
from aioreftable.dulwich import ReftableRefsContainer, RefUpdate

log = logging.getLogger("git_http_server")

REFLOG_MESSAGE = b"push"
ATOMIC_FAILED = b"atomic transaction failed"
UPDATE_FAILED = b"failed to update ref"

# Atomic pushes to files repositories: one lock per repository path, this process only.
ATOMIC_LOCKS: dict[str, threading.Lock] = {}
ATOMIC_LOCKS_GUARD = threading.Lock()


# --------------------------------------------------------------------------- repositories


def make_backend(root: Path, group_commit: bool = True) -> ReftableBackend:
    """Every repository under ``root``: reftable ones through aioreftable.dulwich (one
    ref store per repository, shared by the requests), files ones through dulwich."""
    return ReftableBackend(root, allow_files=True, group_commit=group_commit)


# --------------------------------------------------------------------------- receive-pack


Command = tuple[ObjectID, ObjectID, Ref]  # (old, new, name) as the client sends it


class CasReceivePackHandler(ReceivePackHandler):
    """dulwich's receive-pack with every ref command a compare-and-swap (see the module
    docstring); ``atomic`` pushes are applied all or nothing."""

    def _apply_pack(self, refs: list[Command]) -> Iterator[tuple[bytes, bytes]]:
        zero = ObjectID(b"0" * self.repo.object_format.hex_length)
        if any(new != zero for _, new, _ in refs):
            try:
                self.repo.object_store.add_thin_pack(  # type: ignore[attr-defined]
                    self.proto.read,
                    getattr(self.proto, "recv", None),
                    max_input_size=self._receive_max_input_size(),
                )
            except Exception as e:  # reported to the client as git's unpacker does
                log.warning("unpack failed: %r", e)
                yield (b"unpack", str(e).replace("\n", " ").encode("utf-8", "replace"))
                return
        yield (b"unpack", b"ok")

        refused: dict[Ref, bytes] = {}
        for old, new, ref in refs:
            if not ref.startswith(b"refs/") or not check_ref_format(ref):
                refused[ref] = b"funny refname"
            elif (hook_error := self._on_update(ref, old, new)) is not None:
                refused[ref] = hook_error
        atomic = self.has_capability(CAPABILITY_ATOMIC)
        if atomic and refused:
            for _, _, ref in refs:
                yield (ref, refused.get(ref, ATOMIC_FAILED))
            return
        errors = self._update([c for c in refs if c[2] not in refused], atomic, zero)
        for line in errors.values():
            if line != ATOMIC_FAILED.decode():
                self._remote_error(line)
        for _, _, ref in refs:
            if ref in refused:
                yield (ref, refused[ref])
            elif errors:
                yield (ref, ATOMIC_FAILED if atomic else UPDATE_FAILED if ref in errors else b"ok")
            else:
                yield (ref, b"ok")

    def _update(self, commands: list[Command], atomic: bool, zero: ObjectID) -> dict[Ref, str]:
        """Apply the commands; git's error line for each that failed."""
        refs = self.repo.refs
        if isinstance(refs, ReftableRefsContainer):
            # one table: with ``atomic`` one transaction, else a batch checking each
            updates = [
                RefUpdate(ref, old, None if new == zero else new) for old, new, ref in commands
            ]
            try:
                results = refs.update_refs(updates, message=REFLOG_MESSAGE, atomic=atomic)
            except Exception as e:  # e.g. the lock stayed taken: every command failed
                log.warning("update_refs failed: %r", e)
                return {u.name: f"cannot lock ref '{_text(u.name)}': {_reason(e)}" for u in updates}
            return {name: reason for name, reason in results.items() if reason is not None}
        if atomic:
            return self._atomic_under_lock(commands, zero)
        errors = {ref: self._cas(old, new, ref, zero) for old, new, ref in commands}
        return {ref: error for ref, error in errors.items() if error is not None}

    def _cas(self, old: ObjectID, new: ObjectID, ref: Ref, zero: ObjectID) -> str | None:
        """One compare-and-swap through the refs container; git's error line if it failed."""
        refs = self.repo.refs
        try:
            if new == zero:
                done = refs.remove_if_equals(ref, old, message=REFLOG_MESSAGE)
            elif old == zero:
                done = refs.add_if_new(ref, new, message=REFLOG_MESSAGE)
            else:
                done = refs.set_if_equals(ref, old, new, message=REFLOG_MESSAGE)
        except Exception as e:  # one ref's failure is reported as git's ng line
            log.warning("update of %s failed: %r", _text(ref), e)
            return f"cannot lock ref '{_text(ref)}': {_reason(e)}"
        return None if done else self._stale_message(ref, old, zero)

    def _atomic_under_lock(self, commands: list[Command], zero: ObjectID) -> dict[Ref, str]:
        """All or nothing on a files repository: checked and applied under this server's
        lock for the repository (other writers can still interleave)."""
        key = os.path.realpath(self.repo.controldir())  # type: ignore[attr-defined]
        with ATOMIC_LOCKS_GUARD:
            lock = ATOMIC_LOCKS.setdefault(key, threading.Lock())
        with lock:
            for old, _, ref in commands:
                if _current(self.repo.refs, ref, zero) != old:
                    return {ref: self._stale_message(ref, old, zero)}
            applied: list[Command] = []
            for old, new, ref in commands:
                error = self._cas(old, new, ref, zero)
                if error is not None:
                    for a_old, a_new, a_ref in reversed(applied):  # undo, as far as we can
                        self._cas(a_new, a_old, a_ref, zero)
                    return {ref: error}
                applied.append((old, new, ref))
        return {}

    def _stale_message(self, ref: Ref, old: ObjectID, zero: ObjectID) -> str:
        """git's message for an expected old value that did not hold."""
        name = _text(ref)
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


def _text(name: bytes) -> str:
    return name.decode("utf-8", "replace")


def _reason(error: Exception) -> str:
    """An exception as the end of git's ``cannot lock ref`` message."""
    if isinstance(error, FileLocked):
        return f"Unable to create '{os.fsdecode(error.lockfilename)}': File exists."
    return str(error) or type(error).__name__


def _current(refs: Any, ref: Ref, zero: ObjectID) -> ObjectID:
    value = refs.read_ref(ref)
    return zero if value is None or value.startswith(b"ref: ") else ObjectID(value)


# --------------------------------------------------------------------------- HTTP

HANDLERS: dict[str, type] = {
    "git-upload-pack": UploadPackHandler,
    "git-receive-pack": CasReceivePackHandler,
}
# --receive-pack dulwich: dulwich's own handler, which loses racing pushes (for comparison)
DULWICH_HANDLERS: dict[str, type] = {**HANDLERS, "git-receive-pack": ReceivePackHandler}
NO_CACHE = {
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
    "Pragma": "no-cache",
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
}


def run_handler(
    backend: ReftableBackend, handler_cls: type, service: str, path: str, body: bytes | None
) -> bytes:
    """Run one dulwich protocol handler (blocking, in a worker thread); its whole output.

    ``body`` None: the ref advertisement of ``GET info/refs``; else a POSTed request."""
    out = BytesIO()
    proto = ReceivableProtocol(BytesIO(body or b"").read, out.write)
    advertise = body is None
    handler = handler_cls(backend, [path], proto, stateless_rpc=True, advertise_refs=advertise)
    try:
        if advertise:
            proto.write_pkt_line(b"# service=" + service.encode() + b"\n")
            proto.write_pkt_line(None)
        with contextlib.suppress(HangupException):
            handler.handle()
    finally:
        backend.release(handler.repo)  # this request's object store (the refs stay open)
    return out.getvalue()


class GitHttpApp:
    """The aiohttp application: smart HTTP only (no dumb protocol)."""

    def __init__(
        self,
        root: Path,
        threads: int,
        max_request_mb: int,
        group_commit: bool = True,
        handlers: dict[str, type] = HANDLERS,
    ) -> None:
        self.backend = make_backend(root, group_commit)
        self.handlers = handlers
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
        if service not in self.handlers:
            raise web.HTTPForbidden(
                text="only smart HTTP is served (?service=git-upload-pack|git-receive-pack)\n"
            )
        path = request.match_info["repo"]
        try:
            body = await self._run(
                lambda: run_handler(self.backend, self.handlers[service], service, path, None)
            )
        except NotGitRepository as e:
            raise web.HTTPNotFound(text=f"{e}\n") from None
        except ReftableError as e:  # e.g. a corrupt table: one line in the log, not a traceback
            raise _unreadable(request, e) from None
        headers = {"Content-Type": f"application/x-{service}-advertisement", **NO_CACHE}
        return web.Response(body=body, headers=headers)

    async def service(self, request: web.Request) -> web.Response:
        service = request.match_info["service"]
        if request.content_type != f"application/x-{service}-request":
            raise web.HTTPForbidden(text="bad Content-Type\n")
        path = request.match_info["repo"]
        try:
            data = await request.read()
        except ConnectionResetError:  # the client went away before sending the whole body
            raise web.HTTPBadRequest(text="request body cut short\n") from None
        try:
            body = await self._run(
                lambda: run_handler(self.backend, self.handlers[service], service, path, data)
            )
        except NotGitRepository as e:
            raise web.HTTPNotFound(text=f"{e}\n") from None
        except GitProtocolError as e:  # a request that is not git's protocol
            raise web.HTTPBadRequest(text=f"{e}\n") from None
        except ReftableError as e:
            raise _unreadable(request, e) from None
        headers = {"Content-Type": f"application/x-{service}-result", **NO_CACHE}
        return web.Response(body=body, headers=headers)


def _unreadable(request: web.Request, error: Exception) -> web.HTTPInternalServerError:
    """A repository whose ref store failed (a corrupt table...): logged in one line, and
    the reason for the client (git shows it as ``remote: ...``)."""
    log.error("%s %s: %s", request.method, request.path, error)
    return web.HTTPInternalServerError(text=f"the repository's refs failed: {error}\n")


async def serve(git_app: GitHttpApp, args: argparse.Namespace) -> None:
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
    parser.add_argument(
        "--no-group-commit",
        dest="group_commit",
        action="store_false",
        help="commit every push to a reftable repository on its own (no shared tables)",
    )
    parser.add_argument(
        "--receive-pack",
        choices=["cas", "dulwich"],
        default="cas",
        help="cas (default): every push checked as git does; dulwich: dulwich's own"
        " handler, which tells racing pushes 'ok' and loses commits (for comparison only)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        print(f"fatal: --root {args.root}: not a directory", file=sys.stderr)
        return 128
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    # The backend's sync API may not be used on the event loop's thread: made and closed here.
    handlers = DULWICH_HANDLERS if args.receive_pack == "dulwich" else HANDLERS
    git_app = GitHttpApp(
        Path(args.root), args.threads, args.max_request_mb, args.group_commit, handlers
    )
    try:
        asyncio.run(serve(git_app, args))
    finally:
        git_app.backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
