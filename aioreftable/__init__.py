"""aioreftable: git's reftable ref storage for async Python (asyncio and trio, via anyio).

The codec lives in :mod:`aioreftable.lowlevel` (sync, no anyio). The async stack and ref
store are imported lazily so that ``import aioreftable.lowlevel`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    ChecksumError,
    DecompressionError,
    EmptyTableError,
    EntryTooBigError,
    ExpectedSymrefError,
    FormatError,
    IncorrectOldValueError,
    InvalidNewValueError,
    InvalidObjectIdError,
    KeyOrderError,
    LimitsError,
    LockError,
    MissingObjectError,
    NameConflictError,
    NotExistError,
    OutdatedError,
    RefExistsError,
    RefMissingError,
    RefnameError,
    ReftableError,
    TransactionError,
    UpdateIndexError,
    UsageError,
    WorktreeNotFoundError,
)
from ._repo import (
    NotARepositoryError,
    RepositoryLayout,
    UnsupportedRepositoryError,
    discover,
)

__version__ = "0.1.0"

# name -> module that defines it; loaded on first attribute access (PEP 562).
_LAZY: dict[str, str] = {
    "Addition": "._stack",
    "LogExpiry": "._stack",
    "OS": "._stack",
    "Snapshot": "._stack",
    "Stack": "._stack",
    "StackOptions": "._stack",
    "StackStatistics": "._stack",
    "open_stack": "._stack",
    "Batch": "._refs",
    "BatchResult": "._refs",
    "ExpirePolicy": "._refs",
    "RejectReason": "._refs",
    "Ref": "._refs",
    "RefStore": "._refs",
    "ReflogEntry": "._refs",
    "Transaction": "._refs",
    "open_ref_store": "._refs",
    "init_repo": "._refs",
    "default_branch": "._refs",
    "check_refname_format": "._refs",
    "refname_is_safe": "._refs",
    "VerifyFinding": "._refs._maintenance",
    "ObjectDatabase": "._refs._peel",
    "ObjectInfo": "._refs._peel",
    "DwimMatch": "._refs._dwim",
    "DwimResult": "._refs._dwim",
    "GitMessage": "._refs._objectname",
    "ObjectName": "._refs._objectname",
    "SymrefDepthError": "._refs",
    "ConfigError": "._refs",
    "DateError": "._refs",
    "UnsupportedConfigWarning": "._refs._config",
    "ChangeFeed": "._refs._feed",
    "ChangeFeedGapError": "._refs._feed",
    "RefChange": "._refs._feed",
    "GroupCommit": "._refs._group",
    "GroupStatistics": "._refs._group",
    "migrate_refs": "._refs._migrate",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._refs import Batch as Batch
    from ._refs import BatchResult as BatchResult
    from ._refs import ConfigError as ConfigError
    from ._refs import DateError as DateError
    from ._refs import ExpirePolicy as ExpirePolicy
    from ._refs import Ref as Ref
    from ._refs import ReflogEntry as ReflogEntry
    from ._refs import RefStore as RefStore
    from ._refs import RejectReason as RejectReason
    from ._refs import SymrefDepthError as SymrefDepthError
    from ._refs import Transaction as Transaction
    from ._refs import check_refname_format as check_refname_format
    from ._refs import default_branch as default_branch
    from ._refs import init_repo as init_repo
    from ._refs import open_ref_store as open_ref_store
    from ._refs import refname_is_safe as refname_is_safe
    from ._refs._config import UnsupportedConfigWarning as UnsupportedConfigWarning
    from ._refs._dwim import DwimMatch as DwimMatch
    from ._refs._dwim import DwimResult as DwimResult
    from ._refs._feed import ChangeFeed as ChangeFeed
    from ._refs._feed import ChangeFeedGapError as ChangeFeedGapError
    from ._refs._feed import RefChange as RefChange
    from ._refs._group import GroupCommit as GroupCommit
    from ._refs._group import GroupStatistics as GroupStatistics
    from ._refs._maintenance import VerifyFinding as VerifyFinding
    from ._refs._migrate import migrate_refs as migrate_refs
    from ._refs._objectname import GitMessage as GitMessage
    from ._refs._objectname import ObjectName as ObjectName
    from ._refs._peel import ObjectDatabase as ObjectDatabase
    from ._refs._peel import ObjectInfo as ObjectInfo
    from ._stack import OS as OS
    from ._stack import Addition as Addition
    from ._stack import LogExpiry as LogExpiry
    from ._stack import Snapshot as Snapshot
    from ._stack import Stack as Stack
    from ._stack import StackOptions as StackOptions
    from ._stack import StackStatistics as StackStatistics
    from ._stack import open_stack as open_stack

__all__ = [
    "Addition",
    "Batch",
    "BatchResult",
    "ChangeFeed",
    "ChangeFeedGapError",
    "ChecksumError",
    "ConfigError",
    "DateError",
    "DecompressionError",
    "DwimMatch",
    "DwimResult",
    "EmptyTableError",
    "EntryTooBigError",
    "ExpectedSymrefError",
    "ExpirePolicy",
    "FormatError",
    "GitMessage",
    "GroupCommit",
    "GroupStatistics",
    "IncorrectOldValueError",
    "InvalidNewValueError",
    "InvalidObjectIdError",
    "KeyOrderError",
    "LimitsError",
    "LockError",
    "LogExpiry",
    "OS",
    "MissingObjectError",
    "NameConflictError",
    "NotARepositoryError",
    "NotExistError",
    "ObjectDatabase",
    "ObjectInfo",
    "ObjectName",
    "OutdatedError",
    "RefExistsError",
    "RefMissingError",
    "Ref",
    "RefChange",
    "RefStore",
    "ReflogEntry",
    "RefnameError",
    "RejectReason",
    "ReftableError",
    "Snapshot",
    "Stack",
    "StackOptions",
    "StackStatistics",
    "SymrefDepthError",
    "Transaction",
    "TransactionError",
    "RepositoryLayout",
    "UnsupportedRepositoryError",
    "UnsupportedConfigWarning",
    "UpdateIndexError",
    "UsageError",
    "VerifyFinding",
    "WorktreeNotFoundError",
    "check_refname_format",
    "discover",
    "default_branch",
    "init_repo",
    "migrate_refs",
    "open_ref_store",
    "open_stack",
    "refname_is_safe",
]


def __dir__() -> list[str]:
    """The public names (lazy ones included), so that ``dir()`` and ``help()`` show them."""
    return sorted({*__all__, "__version__"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aioreftable' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
