"""The exception tree, mirroring git's reftable-error.h; OS errors are never wrapped."""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DecompressionError",
    "EmptyTableError",
    "EntryTooBigError",
    "ExpectedSymrefError",
    "FormatError",
    "IncorrectOldValueError",
    "InvalidNewValueError",
    "InvalidObjectIdError",
    "KeyOrderError",
    "LimitsError",
    "LockError",
    "MissingObjectError",
    "NameConflictError",
    "NotExistError",
    "OutdatedError",
    "RefExistsError",
    "RefMissingError",
    "RefnameError",
    "ReftableError",
    "TransactionError",
    "UpdateIndexError",
    "UsageError",
    "WorktreeNotFoundError",
]


class ReftableError(Exception):
    """Base class of every error aioreftable raises on purpose."""


class FormatError(ReftableError):
    """A table or tables.list is not valid reftable data (git: REFTABLE_FORMAT_ERROR).

    ``path`` and ``offset`` say where, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None):
        self.reason = message
        self.path = path
        self.offset = offset
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path is not None:
            where.append(str(self.path))
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{': '.join(where)}: {self.reason}" if where else self.reason

    def located(self, path: str | None) -> FormatError:
        """Attach a file name to an error raised by path-less code; returns self."""
        if self.path is None and path is not None:
            self.path = path
            self.args = (self._render(),)
        return self


class ChecksumError(FormatError):
    """The footer CRC-32 does not match."""


class DecompressionError(FormatError):
    """A log block's zlib stream is broken (git: REFTABLE_ZLIB_ERROR)."""


class UsageError(ReftableError):
    """The API was called in a way git's library rejects (git: REFTABLE_API_ERROR)."""


class KeyOrderError(UsageError):
    """Records were added out of order, duplicated, or refs after logs."""


class LimitsError(UsageError):
    """set_limits() was called after a record was added, or with min > max."""


class UpdateIndexError(UsageError):
    """A record's update index lies outside the writer's limits."""


class EntryTooBigError(UsageError):
    """A record does not fit into an empty block (git: REFTABLE_ENTRY_TOO_BIG_ERROR)."""


class EmptyTableError(UsageError):
    """finish() was called on a writer with no records (git: REFTABLE_EMPTY_TABLE_ERROR)."""


class LockError(ReftableError):
    """A lock file is held by someone else (git: REFTABLE_LOCK_ERROR). Retryable."""

    def __init__(self, message: str, *, lock_path: str | None = None, waited: float = 0.0):
        self.lock_path = lock_path
        self.waited = waited
        super().__init__(message)


class OutdatedError(ReftableError):
    """The stack changed under us (git: REFTABLE_OUTDATED_ERROR). Retryable."""


class NotExistError(ReftableError):
    """A table listed in tables.list is missing and the list did not change (git: -4)."""


class TransactionError(ReftableError):
    """A ref transaction was refused; nothing of it was committed (for the stack it touched).

    ``refnames`` names the ref(s) concerned."""

    def __init__(self, message: str, *refnames: str):
        self.refnames = refnames
        super().__init__(message)


class RefExistsError(TransactionError):
    """A ref that must not exist (create, or verify with an absent expected value) exists."""


class RefMissingError(TransactionError):
    """A ref that must exist (an expected old value was given) does not."""


class IncorrectOldValueError(TransactionError):
    """A ref's current value differs from the expected old value."""


class ExpectedSymrefError(IncorrectOldValueError):
    """An expected symref target was given, but the ref is a regular ref (git:
    REF_TRANSACTION_ERROR_EXPECTED_SYMREF)."""


class NameConflictError(TransactionError):
    """A directory/file conflict: ``refs/heads/a`` versus ``refs/heads/a/b``."""


class RefnameError(TransactionError):
    """An invalid or unsafe refname (git's check_refname_format / refname_is_safe)."""


class WorktreeNotFoundError(RefnameError):
    """A ``worktrees/<id>/...`` name whose worktree (or its reftable stack) does not exist.

    ``worktree`` is the id."""

    def __init__(self, message: str, *refnames: str, worktree: str):
        self.worktree = worktree
        super().__init__(message, *refnames)


class InvalidNewValueError(TransactionError):
    """A new value git refuses: an object the repository lacks, or a non-commit object for a
    branch (git: REF_TRANSACTION_ERROR_INVALID_NEW_VALUE)."""


class MissingObjectError(InvalidNewValueError):
    """A new value names an object that is not in the object database."""


class InvalidObjectIdError(ReftableError, ValueError):
    """A malformed object id (wrong length or not lowercase hex digits); also a ValueError."""
