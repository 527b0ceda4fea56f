"""The async stack (layer 3): tables.list, locks, reload, additions and compaction."""

from .._fs import OS
from ._addition import Addition
from ._options import LogExpiry, StackOptions
from ._snapshot import Snapshot
from ._stack import Stack, open_stack
from ._stats import StackStatistics

__all__ = [
    "Addition",
    "LogExpiry",
    "OS",
    "Snapshot",
    "Stack",
    "StackOptions",
    "StackStatistics",
    "open_stack",
]
