"""`aioreftable update-ref --stdin`: git's stdin protocol (builtin/update-ref.c) on RefStore."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import BinaryIO, NoReturn

import anyio
import anyio.to_thread

from .. import (
    Batch,
    BatchResult,
    LockError,
    RefStore,
    ReftableError,
    RejectReason,
    Transaction,
    TransactionError,
    WorktreeNotFoundError,
    check_refname_format,
)

__all__ = ["Die", "ObjectNames", "StdinSession", "bytes_text", "die_text", "reason", "report"]

_C_SPACE = frozenset(b" \t\n\v\f\r")  # C's isspace
_CHUNK = 65536
_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("f"): 12,
    ord("n"): 10,
    ord("r"): 13,
    ord("t"): 9,
    ord("v"): 11,
    ord("\\"): ord("\\"),
    ord('"'): ord('"'),
}


def bytes_text(data: bytes) -> str:
    """Bytes as the CLI prints them (undecodable ones as surrogates, written back as is)."""
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _cstr(data: bytes) -> bytes:
    """What C's ``%s`` prints of a buffer: up to its first NUL."""
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


class Die(Exception):
    """git's die(): ``fatal: <message>`` and exit status 128 (the message as bytes)."""

    def __init__(self, message: bytes):
        super().__init__(message)
        self.message = message


_CONTROL = bytes(c for c in [*range(32), 127] if c not in b"\t\n")
_SANE = bytes.maketrans(_CONTROL, b"?" * len(_CONTROL))  # git's iscntrl but TAB and LF
_REPORT_MAX = 4095  # git's vfreportf formats into char msg[4096], the LF included


def report(prefix: str, message: bytes | str) -> str:
    """One line as git's die/error/warning write it (vfreportf): control characters but
    TAB and LF as ``?``, at most 4095 bytes, then LF."""
    raw = message if isinstance(message, bytes) else _encode(message)
    line = (_encode(prefix) + raw.split(b"\0", 1)[0])[:_REPORT_MAX]
    return bytes_text(line.translate(_SANE)) + "\n"


def die_text(message: bytes) -> str:
    return report("fatal: ", message)


def _die(message: bytes) -> NoReturn:
    raise Die(message)


def unquote_c_style(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    """git's unquote_c_style from the ``"`` at ``pos``: (the text, the position after the
    closing quote), or None when the quoting is bad."""
    out = bytearray()
    i = pos + 1
    n = len(buf)
    while True:
        j = i
        while j < n and buf[j] not in b'"\\\0':
            j += 1
        out += buf[i:j]
        if j >= n or buf[j] == 0:
            return None
        if buf[j] == ord('"'):
            return bytes(out), j + 1
        ch = buf[j + 1] if j + 1 < n else 0
        i = j + 2
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
            continue
        if ord("0") <= ch <= ord("3"):
            digits = buf[j + 1 : j + 4]
            if len(digits) < 3 or any(not ord("0") <= d <= ord("7") for d in digits[1:]):
                return None
            out.append((digits[0] - 48) << 6 | (digits[1] - 48) << 3 | (digits[2] - 48))
            i = j + 4
            continue
        return None


def reason(exc: ReftableError) -> str:
    """git's text for a failed commit: ours, but where git's backend says less (a stack
    locked by someone else; a write into a linked worktree that does not exist)."""
    if isinstance(exc, LockError):
        return "cannot lock references"
    if isinstance(exc, WorktreeNotFoundError):
        return "reftable: transaction prepare: I/O error"
    return str(exc)


def _printing_order(result: BatchResult) -> tuple[int, int]:
    """When git 2.55 prints a rejection: a missing or non-commit new value when the update
    is queued, the checks of prepare in update order, the D/F checks after all of them
    (only the NAME_CONFLICT of two updates through one symref comes from the loop; the
    order is all this reads of the message)."""
    if result.reason is RejectReason.INVALID_NEW_VALUE:
        return 0, result.index
    if result.reason is RejectReason.NAME_CONFLICT and not (result.error or "").startswith(
        "multiple updates for "
    ):
        return 2, result.index
    return 1, result.index


class ObjectNames:
    """The object names update-ref accepts for <new-oid>/<old-oid>: git's repo_get_oid
    through ``RefStore.get_oid`` (a full id of the repository's hash, a ref by git's dwim
    rules with ``@`` as HEAD, a unique abbreviated id), its warnings and errors printed as
    git prints them. Revision expressions (``HEAD~1``, ``x^{}``, ``x@{1}``, ``@{-1}``) are
    not resolved: they read as git reads a name that resolves to nothing."""

    def __init__(self, store: RefStore, warn: Callable[[str], None]):
        self.store = store
        self.warn = warn
        self.hexsz = store.hash_algorithm.hex_size
        self.null = store.hash_algorithm.null_hex

    async def get(self, name: bytes) -> str | None:
        """The hex id ``name`` stands for, or None."""
        found = await self.store.get_oid(bytes_text(name))
        for message in found.messages:
            if message.level in ("warning", "error"):
                self.warn(report(f"{message.level}: ", message.text))
            else:
                self.warn(message.render())
        return found.oid


class State(enum.IntEnum):
    """git's update_refs_state."""

    OPEN = 0
    STARTED = 1
    PREPARED = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True)
class Command:
    name: bytes
    args: int
    state: State


_COMMANDS = (
    Command(b"update", 3, State.OPEN),
    Command(b"create", 2, State.OPEN),
    Command(b"delete", 2, State.OPEN),
    Command(b"verify", 2, State.OPEN),
    Command(b"symref-update", 4, State.OPEN),
    Command(b"symref-create", 2, State.OPEN),
    Command(b"symref-delete", 2, State.OPEN),
    Command(b"symref-verify", 2, State.OPEN),
    Command(b"option", 1, State.OPEN),
    Command(b"start", 0, State.STARTED),
    Command(b"prepare", 0, State.PREPARED),
    Command(b"abort", 0, State.CLOSED),
    Command(b"commit", 0, State.CLOSED),
)


class _Aborted(Exception):
    """Leaves a transaction's block so that it commits nothing."""


class Records:
    """stdin read as git's strbuf_getwholeline does: records ending at the terminator
    (included), the last one possibly without.

    A pipe or terminal is waited on by the event loop and read when ready, so that an
    interrupted session ends at once; a regular file (or /dev/null, which cannot be
    polled) is read in a worker thread; a stream without a descriptor is read directly
    (it is in memory)."""

    def __init__(self, stream: BinaryIO, term: int):
        self.stream = stream
        self.term = bytes([term])
        self.buffer = bytearray()
        self.eof = False
        try:
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.BytesIO and the like
            self.fd = None
        self.pollable = self.fd is not None

    async def _read(self) -> bytes:
        fd = self.fd
        if fd is None:
            read = getattr(self.stream, "read1", self.stream.read)
            chunk: bytes = read(_CHUNK)
            return chunk
        while self.pollable:
            try:
                await anyio.wait_readable(fd)
            except OSError:  # a regular file or /dev/null: epoll refuses them
                self.pollable = False
                break
            try:
                return os.read(fd, _CHUNK)  # ready: does not block
            except BlockingIOError:  # a non-blocking descriptor woken for nothing
                continue
        return await anyio.to_thread.run_sync(os.read, fd, _CHUNK)

    async def next(self) -> bytes | None:
        while True:
            end = self.buffer.find(self.term)
            if end >= 0:
                record = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return record
            if self.eof:
                if not self.buffer:
                    return None
                record = bytes(self.buffer)
                self.buffer.clear()
                return record
            chunk = await self._read()
            self.eof = not chunk
            self.buffer += chunk


Queue = Transaction | Batch


class StdinSession:
    """One ``update-ref --stdin`` run: commands read and answered one by one, queued on a
    transaction (or a batch with ``--batch-updates``) that commits at ``commit`` or at
    the end of input.

    ``prepare`` is git's ref_transaction_prepare (``Transaction.prepare``/``Batch.prepare``:
    the locks are taken and every check runs; ``fatal: prepare: <reason>`` on failure);
    the locks are held until ``commit`` or ``abort`` (or the end of input)."""

    def __init__(
        self,
        store: RefStore,
        *,
        nul: bool,
        batch: bool,
        message: str,
        create_reflog: bool,
        no_deref: bool,
        out: Callable[[str], None],
        err: Callable[[str], None],
    ):
        self.store = store
        self.term = 0 if nul else ord("\n")
        self.batch_mode = batch
        self.message = message
        self.create_reflog = create_reflog
        self.default_no_deref = no_deref
        self.no_deref = no_deref
        self.out = out
        self.err = err
        self.names = ObjectNames(store, err)
        self.null = store.hash_algorithm.null_hex
        self.state = State.OPEN
        self.context: AbstractAsyncContextManager[Queue] | None = None
        self.queue: Queue | None = None
        self.creates: set[int] = set()  # the calls of a batch that were `create`

    # -- the transaction ---------------------------------------------------------------
    async def _begin(self) -> Queue:
        if self.queue is None:
            if self.batch_mode:
                context: AbstractAsyncContextManager[Queue] = self.store.batch(
                    self.message, create_reflog=self.create_reflog
                )
            else:
                context = self.store.transaction(self.message, create_reflog=self.create_reflog)
            self.queue = await context.__aenter__()
            self.context = context
            self.creates = set()
        return self.queue

    async def _end(self, exc: BaseException | None) -> list[BatchResult]:
        """Leave the transaction's block: commit it (``exc`` None) or drop it."""
        context, queue = self.context, self.queue
        self.context = self.queue = None
        if context is None:
            return []
        if exc is None:
            await context.__aexit__(None, None, None)
            return queue.rejected if isinstance(queue, Batch) else []
        await context.__aexit__(type(exc), exc, exc.__traceback__)
        return []

    async def _commit(self, prefix: str) -> None:
        """Commit; git's die with ``prefix`` on failure; print a batch's rejections."""
        try:
            rejected = await self._end(None)
        except ReftableError as exc:
            _die(_encode(f"{prefix}{reason(exc)}"))
        for result in sorted(rejected, key=_printing_order):
            if result.error:
                self.err(report("error: ", result.error))
            line = result.rejected_line()
            if result.index in self.creates and result.reason is RejectReason.INVALID_NEW_VALUE:
                line = f"rejected {result.refname} {result.new} (null) {result.reason.value}"
            self.out(line + "\n")

    async def _queue(self, call: Callable[[Queue], None]) -> None:
        """Queue one update: git dies on a refused name (also with --batch-updates: it is
        git's generic error)."""
        queue = await self._begin()
        try:
            call(queue)
        except TransactionError as exc:
            _die(_encode(str(exc)))
        refused = getattr(queue.calls[-1], "error", None)  # a batch's RefusedName
        if refused is not None:
            _die(_encode(str(refused)))
        self.no_deref = self.default_no_deref

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stream: BinaryIO) -> None:
        records = Records(stream, self.term)
        try:
            while (record := await records.next()) is not None:
                await self._dispatch(record, records)
            if self.state is State.OPEN:
                await self._commit("")
            else:
                await self._end(_Aborted())
        except BaseException as exc:
            await self._end(exc)
            raise

    async def _dispatch(self, buf: bytes, records: Records) -> None:
        term = self.term
        if buf[0] == term:
            _die(b"empty command in input")
        if buf[0] in _C_SPACE:
            _die(b"whitespace before command: " + _cstr(buf))
        command = None
        for cand in _COMMANDS:
            n = len(cand.name)
            if not buf.startswith(cand.name):
                continue
            follower = ord(" ") if cand.args else term
            if (buf[n] if n < len(buf) else 0) != follower:
                continue
            command = cand
            break
        if command is None:
            _die(b"unknown command: " + _cstr(buf))
        if term == 0:
            for _ in range(1, command.args):
                more = await records.next()
                if more is None:
                    break
                buf += more
        self._transition(command.state)
        handler = getattr(self, "cmd_" + command.name.decode().replace("-", "_"))
        parser = Parser(buf, len(command.name) + (1 if command.args else 0), term, self.names)
        await handler(parser)

    def _transition(self, target: State) -> None:
        state = self.state
        if state in (State.OPEN, State.STARTED):
            if state is State.STARTED and target is State.STARTED:
                _die(b"cannot restart ongoing transaction")
            if target >= state:
                self.state = target
        elif state is State.PREPARED:
            if target is not State.CLOSED:
                _die(b"prepared transactions can only be closed")
            self.state = target
        else:
            if target is not State.STARTED:
                _die(b"transaction is closed")
            self.state = target

    # -- the commands (git's parse_cmd_*) -------------------------------------------------
    async def cmd_update(self, p: Parser) -> None:
        ref = p.refname()
        if ref is None:
            _die(b"update: missing <ref>")
        new = await p.next_oid(b"update", ref, old=False, allow_empty=True)
        if new is None:
            _die(b"update " + ref + b": missing <new-oid>")
        old = await p.next_oid(b"update", ref, old=True)
        p.end(b"update " + ref)
        name, no_deref = bytes_text(ref), self.no_deref
        await self._queue(lambda q: q.update(name, new, old=old, no_deref=no_deref))

    async def cmd_create(self, p: Parser) -> None:
        ref = p.refname()
        if ref is None:
            _die(b"create: missing <ref>")
        new = await p.next_oid(b"create", ref, old=False)
        if new is None:
            _die(b"create " + ref + b": missing <new-oid>")
        if new == self.null:
            _die(b"create " + ref + b": zero <new-oid>")
        p.end(b"create " + ref)
        name, no_deref, null = bytes_text(ref), self.no_deref, self.null
        queue = await self._begin()
        self.creates.add(len(queue.calls))
        await self._queue(lambda q: q.update(name, new, old=null, no_deref=no_deref))

    async def cmd_delete(self, p: Parser) -> None:
        ref = p.refname()
        if ref is None:
            _die(b"delete: missing <ref>")
        old = await p.next_oid(b"delete", ref, old=True)
        if old == self.null:
            _die(b"delete " + ref + b": zero <old-oid>")
        p.end(b"delete " + ref)
        name, no_deref = bytes_text(ref), self.no_deref
        await self._queue(lambda q: q.delete(name, old=old, no_deref=no_deref))

    async def cmd_verify(self, p: Parser) -> None:
        ref = p.refname()
        if ref is None:
            _die(b"verify: missing <ref>")
        old = await p.next_oid(b"verify", ref, old=True)
        p.end(b"verify " + ref)
        name, no_deref = bytes_text(ref), self.no_deref
        await self._queue(lambda q: q.verify(name, old, no_deref=no_deref))

    async def cmd_symref_update(self, p: Parser) -> None:
        ref = p.refname()
        if ref is None:
            _die(b"symref-update: missing <ref>")
        what = b"symref-update " + ref
        target = p.next_refname()
        if target is None:
            _die(what + b": missing <new-target>")
        old_oid: str | None = None
        old_target: bytes | None = None
        kind = p.next_arg()
        if kind is not None:
            old_target = p.next_arg()
            if old_target is None:
                _die(what + b": expected old value")
            if kind == b"oid":
                old_oid = await self.names.get(old_target)
                if old_oid is None:
                    _die(what + b": invalid oid: " + old_target)
                old_target = None
            elif kind == b"ref":
                if not check_refname_format(bytes_text(old_target), allow_onelevel=True):
                    _die(what + b": invalid ref: " + old_target)
            else:
                _die(what + b": invalid arg '" + kind + b"' for old value")
        p.end(what)
        name, new, no_deref = bytes_text(ref), bytes_text(target), self.no_deref
        expected = None if old_target is None else bytes_text(old_target)
        await self._queue(
            lambda q: q.symref_update(
                name, new, old_target=expected, old=old_oid, no_deref=no_deref
            )
        )

    async def cmd_symref_create(self, p: Parser) -> None:
        ref = p.refname()
        if ref is None:
            _die(b"symref-create: missing <ref>")
        target = p.next_refname()
        if target is None:
            _die(b"symref-create " + ref + b": missing <new-target>")
        p.end(b"symref-create " + ref)
        name, new, no_deref, null = bytes_text(ref), bytes_text(target), self.no_deref, self.null
        await self._queue(lambda q: q.symref_update(name, new, old=null, no_deref=no_deref))

    async def cmd_symref_delete(self, p: Parser) -> None:
        if not self.no_deref:
            _die(b"symref-delete: cannot operate with deref mode")
        ref = p.refname()
        if ref is None:
            _die(b"symref-delete: missing <ref>")
        target = p.next_refname()
        p.end(b"symref-delete " + ref)
        name = bytes_text(ref)
        old = None if target is None else bytes_text(target)
        await self._queue(lambda q: q.symref_delete(name, old_target=old))

    async def cmd_symref_verify(self, p: Parser) -> None:
        if not self.no_deref:
            _die(b"symref-verify: cannot operate with deref mode")
        ref = p.refname()
        if ref is None:
            _die(b"symref-verify: missing <ref>")
        target = p.next_refname()
        p.end(b"symref-verify " + ref)
        name = bytes_text(ref)
        old = None if target is None else bytes_text(target)
        await self._queue(lambda q: q.symref_verify(name, old))

    async def cmd_option(self, p: Parser) -> None:
        rest = p.rest()
        if rest.startswith(b"no-deref") and p.at(p.pos + len(b"no-deref")) == self.term:
            self.no_deref = True
            return
        _die(b"option unknown: " + _cstr(rest))

    async def cmd_start(self, p: Parser) -> None:
        p.end(b"start")
        self._ok("start")

    async def cmd_prepare(self, p: Parser) -> None:
        p.end(b"prepare")
        queue = await self._begin()  # git prepares an empty transaction too
        try:
            await queue.prepare()
        except ReftableError as exc:
            _die(_encode(f"prepare: {reason(exc)}"))
        self._ok("prepare")

    async def cmd_abort(self, p: Parser) -> None:
        p.end(b"abort")
        await self._end(_Aborted())
        self._ok("abort")

    async def cmd_commit(self, p: Parser) -> None:
        p.end(b"commit")
        await self._commit("commit: ")
        self._ok("commit")

    def _ok(self, command: str) -> None:
        self.out(f"{command}: ok\n")


class Parser:
    """The arguments of one command in ``buf`` from ``pos`` (git's parse_refname,
    parse_next_refname, parse_next_arg, parse_next_oid on a NUL-terminated buffer)."""

    def __init__(self, buf: bytes, pos: int, term: int, names: ObjectNames):
        self.buf = buf
        self.pos = pos
        self.term = term
        self.names = names

    def at(self, i: int) -> int:
        """The byte at ``i`` (0 past the end, as C's terminating NUL)."""
        return self.buf[i] if i < len(self.buf) else 0

    def rest(self) -> bytes:
        return self.buf[self.pos :]

    def _arg(self) -> bytes:
        """git's parse_arg (text mode) or everything up to the next NUL (-z)."""
        buf = self.buf
        if self.term == 0:
            end = buf.find(b"\0", self.pos)
            end = len(buf) if end < 0 else end
            arg = buf[self.pos : end]
            self.pos = end
            return arg
        if self.at(self.pos) == ord('"'):
            start = self.pos
            result = unquote_c_style(buf, start)
            if result is None:
                _die(b"badly quoted argument: " + _cstr(buf[start:]))
            arg, self.pos = result
            if self.at(self.pos) and self.at(self.pos) not in _C_SPACE:
                _die(b"unexpected character after quoted argument: " + _cstr(buf[start:]))
            return arg
        end = self.pos
        while end < len(buf) and buf[end] and buf[end] not in _C_SPACE:
            end += 1
        arg = buf[self.pos : end]
        self.pos = end
        return arg

    def refname(self) -> bytes | None:
        ref = self._arg()
        if not ref:
            return None
        ref = _cstr(ref)  # a C string from here on
        if not check_refname_format(bytes_text(ref), allow_onelevel=True):
            _die(b"invalid ref format: " + ref)
        return ref

    def _delimiter(self, what: bytes = b"") -> bool:
        """Skip the delimiter before a next argument; False when there is none."""
        c = self.at(self.pos)
        if self.term:
            if not c or c == self.term:
                return False
            if c != ord(" "):
                _die(what + b"expected SP but got: " + _cstr(self.rest()))
        elif c:
            return False
        self.pos += 1
        return True

    def next_refname(self) -> bytes | None:
        if not self._delimiter():
            return None
        return self.refname()

    def next_arg(self) -> bytes | None:
        if not self._delimiter():
            return None
        arg = self._arg()
        return _cstr(arg) if arg else None

    async def next_oid(
        self, command: bytes, ref: bytes, *, old: bool, allow_empty: bool = False
    ) -> str | None:
        """git's parse_next_oid: the hex id, None when the argument is absent; dies on a
        bad value or a missing one at the end of input."""
        what = command + b" " + ref
        which = b"<old-oid>" if old else b"<new-oid>"
        if self.pos >= len(self.buf):
            _die(what + b": unexpected end of input when reading " + which)
        c = self.at(self.pos)
        if self.term:
            if not c or c == self.term:
                return None
            if c != ord(" "):
                _die(what + b": expected SP but got: " + _cstr(self.rest()))
            self.pos += 1
            arg = self._arg()
            if not arg:
                return self.names.null
        else:
            if c:
                _die(what + b": expected NUL but got: " + _cstr(self.rest()))
            self.pos += 1
            if self.pos >= len(self.buf):
                _die(what + b": unexpected end of input when reading " + which)
            arg = self._arg()
            if not arg:
                if not allow_empty:
                    return None
                self.names.warn(
                    report("warning: ", what + b": missing <new-oid>, treating as zero")
                )
                return self.names.null
        arg = _cstr(arg)
        oid = await self.names.get(arg)
        if oid is None:
            _die(what + b": invalid " + which + b": " + arg)
        return oid

    def end(self, what: bytes) -> None:
        """git's ``if (*next != line_termination) die("<what>: extra input: %s", next)``."""
        if self.at(self.pos) != self.term:
            _die(what + b": extra input: " + _cstr(self.rest()))
