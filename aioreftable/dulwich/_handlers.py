"""dulwich's protocol handlers for Backend: receive-pack with old values checked, Repos released."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from dulwich.errors import ApplyDeltaError, ChecksumMismatch, ObjectFormatException
from dulwich.objects import ObjectID
from dulwich.protocol import CAPABILITY_SIDE_BAND_64K, SIDE_BAND_CHANNEL_PROGRESS
from dulwich.refs import Ref, check_ref_format
from dulwich.server import ReceivePackHandler as DulwichReceivePackHandler
from dulwich.server import UploadArchiveHandler as DulwichUploadArchiveHandler
from dulwich.server import UploadPackHandler as DulwichUploadPackHandler

from .. import ReftableError
from ._container import ReftableRefsContainer, RefUpdate

__all__ = ["HANDLERS", "ReceivePackHandler", "UploadArchiveHandler", "UploadPackHandler"]

# what dulwich's receive-pack reports as a failed unpack instead of raising
_UNPACK_ERRORS = (
    OSError,
    ChecksumMismatch,
    ApplyDeltaError,
    AssertionError,
    zlib.error,
    ObjectFormatException,
)

#: git receive-pack's reasons (``ng <ref> <reason>``)
FAILED = b"failed to update ref"
ATOMIC_FAILED = b"atomic transaction failed"
ATOMIC_OTHER = b"atomic push failure"


def _funny(ref: bytes) -> bool:
    """git's rule for pushed names: only well-formed refs under refs/."""
    return not ref.startswith(b"refs/") or not check_ref_format(Ref(ref))


class _Releasing:
    """A handler that gives its Repo back to the backend when the request is done
    (``Backend.release``: the Repo's object store is closed); dulwich's own handlers never
    close theirs."""

    def handle(self) -> None:
        try:
            super().handle()  # type: ignore[misc]
        finally:
            release = getattr(getattr(self, "backend", None), "release", None)
            if release is not None:
                release(getattr(self, "repo", None))


class UploadPackHandler(_Releasing, DulwichUploadPackHandler):
    """dulwich's upload-pack (fetch, clone) releasing its Repo when done."""


class UploadArchiveHandler(_Releasing, DulwichUploadArchiveHandler):
    """dulwich's upload-archive releasing its Repo when done."""


class ReceivePackHandler(_Releasing, DulwichReceivePackHandler):
    """dulwich's receive-pack whose ref updates keep the client's expected old values.

    dulwich's own handler ignores what ``set_if_equals`` returns, so of two pushes racing
    to fast-forward one branch both are told ``ok`` and one commit is lost. Here the
    commands of one push are one :meth:`ReftableRefsContainer.update_refs` call (one
    table): with ``--atomic`` one transaction (a failed check rejects every command, as
    git's ``atomic transaction failed``), else a batch (each command on its own checks;
    a failed one is git's ``failed to update ref``). On another refs container each
    command is a ``set_if_equals``/``remove_if_equals`` whose result is reported. The
    Repo is released when the request is done."""

    def _apply_pack(
        self, refs: list[tuple[ObjectID, ObjectID, Ref]]
    ) -> Iterator[tuple[bytes, bytes]]:
        zero = ObjectID(b"0" * self.repo.object_format.hex_length)
        if any(new != zero for _, new, _ in refs):
            limit = getattr(self, "_receive_max_input_size", None)  # dulwich >= 1.2.21
            options = {} if limit is None else {"max_input_size": limit()}
            try:
                self.repo.object_store.add_thin_pack(  # type: ignore[attr-defined]
                    self.proto.read, getattr(self.proto, "recv", None), **options
                )
            except _UNPACK_ERRORS as e:
                yield (b"unpack", str(e).replace("\n", "").encode("utf-8"))
                return
        yield (b"unpack", b"ok")
        atomic = self.has_capability(b"atomic")
        status: dict[bytes, bytes] = {}
        wanted: list[tuple[ObjectID, ObjectID, Ref]] = []
        for old, new, ref in refs:
            if _funny(ref):
                status[ref] = b"funny refname"
                continue
            hook_error = self._on_update(ref, old, new)
            if hook_error:
                status[ref] = hook_error
                continue
            wanted.append((old, new, ref))
        if atomic and status:
            for _, _, ref in refs:
                yield (ref, status.get(ref, ATOMIC_OTHER))
            return
        status.update(self._update(wanted, atomic, zero))
        for _, _, ref in refs:
            yield (ref, status.get(ref, b"ok"))

    def _update(
        self, wanted: list[tuple[ObjectID, ObjectID, Ref]], atomic: bool, zero: ObjectID
    ) -> dict[bytes, bytes]:
        container = self.repo.refs
        reason = ATOMIC_FAILED if atomic else FAILED
        if isinstance(container, ReftableRefsContainer):
            updates = [
                RefUpdate(ref, old, None if new == zero else new) for old, new, ref in wanted
            ]
            try:
                results = container.update_refs(updates, message=b"push", atomic=atomic)
            except (ReftableError, OSError) as exc:  # e.g. the lock stayed taken
                self._remote_error(str(exc))
                return {u.name: reason for u in updates}
            for error in results.values():
                if error is not None and error != "atomic transaction failed":
                    self._remote_error(error)
            return {ref: reason for ref, error in results.items() if error is not None}
        out: dict[bytes, bytes] = {}
        for old, new, ref in wanted:
            if new == zero:
                ok = container.remove_if_equals(ref, old)
            else:
                ok = container.set_if_equals(ref, old, new)
            if not ok:
                out[ref] = FAILED
        return out

    def _remote_error(self, message: str) -> None:
        """git's rp_error: the client prints it as ``remote: error: <message>``."""
        if self.has_capability(CAPABILITY_SIDE_BAND_64K):
            line = f"error: {message}\n".encode("utf-8", "replace")
            self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, line)


#: The handlers to give dulwich's servers with a :class:`Backend`, e.g.
#: ``make_wsgi_chain(backend, handlers=HANDLERS)`` or
#: ``TCPGitServer(backend, host, port, handlers=HANDLERS)``.
HANDLERS: dict[bytes, type] = {
    b"git-upload-pack": UploadPackHandler,
    b"git-receive-pack": ReceivePackHandler,
    b"git-upload-archive": UploadArchiveHandler,
}
