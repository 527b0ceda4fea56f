"""A blocking-call detector for the tests: library code that blocks an event loop thread fails.

blockbuster (PyPI) only looks for a running asyncio loop, so it is blind under trio; this
checker wraps the same kind of functions (file system, sleep, sockets, subprocess waits) and
treats a thread as an event loop thread when asyncio runs a loop in it or trio runs in it.
Worker threads (``anyio.to_thread``, the OS seam's helpers) may block.

A call is checked when the nearest frame of ours (the package or tests/) is the package's:
tests may do setup I/O on the loop, a library call made from a test is still checked.
``ALLOWED`` names the one documented exception: the inline stat of tables.list.
"""

from __future__ import annotations

import asyncio.events
import builtins
import inspect
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import forbiddenfruit  # type: ignore[import-untyped]
import trio.lowlevel

import aioreftable

PACKAGE = str(Path(aioreftable.__file__).resolve().parent) + os.sep
TESTS = str(Path(__file__).resolve().parent) + os.sep

# wrapped function -> frames (file suffix, function name) in whose call it may block the loop
ALLOWED: dict[str, set[tuple[str, str]]] = {
    # Stack.snapshot's reload fast path: one stat of tables.list (docs/concurrency.md)
    "os.stat": {("aioreftable/_fs.py", "list_key")},
}


# frames that may block wherever they are called from: importing a module (the package's
# function-local imports) and reading source lines for a traceback
def _always_allowed(filename: str) -> bool:
    return filename.startswith(("<frozen importlib._bootstrap", "<frozen linecache")) or (
        filename.endswith(os.sep + "linecache.py")
    )


_OS_FUNCTIONS = [
    *("stat", "lstat", "open", "read", "write", "pread", "pwrite", "fsync", "fdatasync"),
    *("listdir", "scandir", "rename", "replace", "unlink", "remove", "rmdir", "mkdir"),
    *("link", "symlink", "readlink", "access", "chmod", "utime", "truncate", "ftruncate"),
    *("statvfs", "getcwd"),
]
_SOCKET_METHODS = [
    *("connect", "accept", "send", "sendall", "sendto"),
    *("recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg"),
]


_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


class BlockingCallError(Exception):
    """Library code called a blocking function on an event loop thread."""


def _in_trio_run() -> bool:  # trio.lowlevel.in_trio_run() from trio 0.26 on
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


_in_trio = getattr(trio.lowlevel, "in_trio_run", _in_trio_run)


def on_loop_thread() -> bool:
    """Whether this thread runs an asyncio event loop or a trio run right now (a worker
    thread of either does not)."""
    return asyncio.events._get_running_loop() is not None or _in_trio()


def _nonblocking_fd(fd: Any, *_: Any, **__: Any) -> bool:
    try:
        return not os.get_blocking(fd)
    except (OSError, TypeError):
        return False


def _nonblocking_file(file: io.FileIO, *_: Any, **__: Any) -> bool:
    return _nonblocking_fd(file.fileno())


def _nonblocking_socket(sock: socket.socket, *_: Any, **__: Any) -> bool:
    return not sock.getblocking()


def _where(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"


class Detector:
    """Wraps the blocking functions while active; records (and raises) each violation."""

    def __init__(self, scanned: tuple[str, ...] = (PACKAGE,)) -> None:
        self.scanned = scanned
        self.violations: list[str] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._curses: list[tuple[type, str, Any]] = []
        self._busy = threading.local()

    # -- the check ---------------------------------------------------------------------------
    def _violation(self, name: str, frame: FrameType | None) -> str | None:
        """The violation message, or None if this call may block.

        Walks out from the caller to the nearest frame in tests/: the call is checked when a
        coroutine or async generator of the package runs on the way (a sync library function
        that a test calls itself, such as ``TableReader.from_path``, is the test's I/O)."""
        innermost: FrameType | None = None
        coroutine: FrameType | None = None
        while frame is not None:
            filename = frame.f_code.co_filename
            if _always_allowed(filename):
                return None
            if filename.startswith(TESTS):
                break
            if filename.startswith(self.scanned):
                innermost = innermost or frame
                if coroutine is None and frame.f_code.co_flags & _ASYNC_FLAGS:
                    coroutine = frame
                function = frame.f_code.co_name
                if any(
                    function == allowed and filename.replace(os.sep, "/").endswith(suffix)
                    for suffix, allowed in ALLOWED.get(name, ())
                ):
                    return None
            frame = frame.f_back
        if innermost is None or coroutine is None:
            return None
        message = f"{name} on the event loop from {_where(innermost)}"
        if coroutine is not innermost:
            message += f", called in {_where(coroutine)}"
        return message

    def _wrap(
        self, name: str, func: Callable[..., Any], exempt: Callable[..., bool] | None
    ) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._busy, "on", False) or not on_loop_thread():
                return func(*args, **kwargs)
            self._busy.on = True
            try:
                if exempt is not None and exempt(*args, **kwargs):
                    message = None
                else:
                    message = self._violation(name, sys._getframe(1))
            finally:
                self._busy.on = False
            if message is not None:
                self.violations.append(message)
                raise BlockingCallError(message)
            return func(*args, **kwargs)

        checked.__wrapped__ = func  # type: ignore[attr-defined]
        return checked

    def _patch(
        self, owner: ModuleType | type, attr: str, name: str, exempt: Callable[..., bool] | None
    ) -> None:
        original = getattr(owner, attr, None)
        if original is None:
            return
        setattr(owner, attr, self._wrap(name, original, exempt))
        self._patches.append((owner, attr, original))

    def _curse(self, owner: type, attr: str, exempt: Callable[..., bool] | None) -> None:
        """Wraps a method of a built-in type (forbiddenfruit, as blockbuster does)."""
        original = getattr(owner, attr)
        wrapped = self._wrap(f"io.{owner.__name__}.{attr}", original, exempt)
        forbiddenfruit.curse(owner, attr, wrapped)
        self._curses.append((owner, attr, original))

    # -- lifetime ----------------------------------------------------------------------------
    def activate(self) -> None:
        for attr in _OS_FUNCTIONS:
            exempt = _nonblocking_fd if attr in ("read", "write") else None
            self._patch(os, attr, f"os.{attr}", exempt)
        self._patch(time, "sleep", "time.sleep", None)
        self._patch(builtins, "open", "open", None)
        self._patch(io, "open", "io.open", None)
        for attr in ("run", "call", "check_call", "check_output"):
            self._patch(subprocess, attr, f"subprocess.{attr}", None)
        for attr in ("wait", "communicate"):
            self._patch(subprocess.Popen, attr, f"subprocess.Popen.{attr}", None)
        for attr in _SOCKET_METHODS:
            self._patch(socket.socket, attr, f"socket.socket.{attr}", _nonblocking_socket)
        # every buffered or text read of a file ends in one of these (stdin included)
        for attr in ("read", "readall", "readinto"):
            self._curse(io.FileIO, attr, _nonblocking_file)

    def deactivate(self) -> None:
        while self._curses:
            owner, attr, original = self._curses.pop()
            forbiddenfruit.curse(owner, attr, original)
        while self._patches:
            owner, attr, original = self._patches.pop()
            setattr(owner, attr, original)

    @contextmanager
    def expect(self) -> Iterator[list[str]]:
        """Collects the violations of the block instead of failing the test with them."""
        start = len(self.violations)
        caught: list[str] = []
        try:
            yield caught
        finally:
            caught.extend(self.violations[start:])
            del self.violations[start:]
