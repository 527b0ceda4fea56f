"""dulwich on the ref store: a RefsContainer, open_repo and a server Backend.

``open_repo(path)`` is a ``dulwich.repo.Repo`` whose refs live in aioreftable's ref store
(git's reftable backend, with its locks: every ``set_if_equals`` is a compare-and-swap
checked under the stack's lock). ``Backend(root)`` serves the repositories under ``root``
that way to dulwich's git servers. The API is synchronous, backed by a :class:`StoreLoop`
(an event loop in a background thread); it may be called from any thread except one that
runs an event loop (RuntimeError). See docs/dulwich.md.
"""

from ._container import CAS_FAILURES, ReftableRefsContainer, RefUpdate
from ._handlers import HANDLERS, ReceivePackHandler, UploadArchiveHandler, UploadPackHandler
from ._loop import StoreLoop
from ._repo import Backend, ReftableRepo, open_repo

__all__ = [
    "CAS_FAILURES",
    "HANDLERS",
    "Backend",
    "ReceivePackHandler",
    "RefUpdate",
    "ReftableRefsContainer",
    "ReftableRepo",
    "StoreLoop",
    "UploadArchiveHandler",
    "UploadPackHandler",
    "open_repo",
]
