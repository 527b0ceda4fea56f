"""git ref semantics over the stack: refnames, config, identities, init, the ref store."""

from ._batch import Batch, BatchResult, RejectReason
from ._config import ConfigError, RepoConfig, load_config
from ._ident import DateError, Identity, committer_identity, parse_date
from ._init import default_branch, init_repo
from ._peel import ObjectDatabase, ObjectInfo, Peeler, PeelFunction
from ._reflogs import ExpirePolicy, PruneFunction
from ._refname import (
    check_refname_format,
    is_per_worktree_ref,
    is_pseudo_ref,
    is_root_ref_syntax,
    parse_worktree_ref,
    reflog_message,
    refname_is_safe,
)
from ._store import Ref, ReflogEntry, RefStore, SymrefDepthError, open_ref_store
from ._transaction import Transaction

__all__ = [
    "Batch",
    "BatchResult",
    "ExpirePolicy",
    "PruneFunction",
    "RejectReason",
    "ObjectDatabase",
    "ObjectInfo",
    "PeelFunction",
    "Peeler",
    "Ref",
    "RefStore",
    "ReflogEntry",
    "SymrefDepthError",
    "Transaction",
    "open_ref_store",
    "ConfigError",
    "DateError",
    "Identity",
    "RepoConfig",
    "check_refname_format",
    "committer_identity",
    "default_branch",
    "init_repo",
    "is_per_worktree_ref",
    "is_pseudo_ref",
    "is_root_ref_syntax",
    "load_config",
    "parse_date",
    "parse_worktree_ref",
    "refname_is_safe",
    "reflog_message",
]
