"""BlockCache: the parsed blocks of every open table of a process, one LRU bounded in bytes."""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict

from .._errors import UsageError
from ._block import Block

__all__ = ["CACHE_BYTES_ENV", "DEFAULT_CACHE_BYTES", "BlockCache", "process_cache"]

# A 1M-ref table (36 MB, 7,768 ref blocks of 4 KiB) keeps every block, with the packed key
# index of each hot one (about 8 KiB more per block), in 128 MiB.
DEFAULT_CACHE_BYTES = 128 << 20
CACHE_BYTES_ENV = "AIOREFTABLE_BLOCK_CACHE_BYTES"

_owners = itertools.count(1)


class BlockCache:
    """An LRU of parsed blocks keyed by (table, offset), bounded by ``max_bytes`` (what a
    block holds: its bytes and its decoded keys, ``Block.nbytes``) and, if given, by
    ``max_blocks``. Thread-safe: every access takes one lock.

    A block's cost grows when seeks make it hot (its keys are decoded); the cache charges
    the new cost the next time it hands the block out.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, max_blocks: int | None = None):
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, int], tuple[Block, int]] = OrderedDict()
        self._by_owner: dict[int, set[int]] = {}
        self._dead: list[int] = []  # owners collected by the GC, dropped at the next put
        self._bytes = 0
        self.max_bytes = 0
        self.max_blocks = max_blocks
        self.hits = self.misses = 0
        self.resize(max_bytes, max_blocks)

    @staticmethod
    def new_owner() -> int:
        """A key no other table of the process uses (for one reader's blocks)."""
        return next(_owners)

    def resize(self, max_bytes: int, max_blocks: int | None = None) -> None:
        """Change the bounds (evicting at once what no longer fits)."""
        if max_bytes < 0 or (max_blocks is not None and max_blocks < 1):
            raise UsageError(f"bad block cache bounds: {max_bytes} bytes, {max_blocks} blocks")
        with self._lock:
            self.max_bytes = max_bytes
            self.max_blocks = max_blocks
            self._evict()

    @property
    def size_bytes(self) -> int:
        """Bytes charged for the blocks held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, owner: int, offset: int) -> Block | None:
        key = (owner, offset)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            blk, charged = entry
            self._entries.move_to_end(key)
            cost = blk.nbytes
            if cost != charged:  # it turned hot since: charge its decoded keys too
                self._entries[key] = (blk, cost)
                self._bytes += cost - charged
                self._evict()
            return blk

    def put(self, owner: int, offset: int, blk: Block) -> None:
        key = (owner, offset)
        cost = blk.nbytes
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (blk, cost)
            self._by_owner.setdefault(owner, set()).add(offset)
            self._bytes += cost
            while self._dead:
                self._drop(self._dead.pop())
            self._evict()

    def discard(self, owner: int) -> None:
        """Drop every block of one table (it was closed)."""
        with self._lock:
            self._drop(owner)

    def discard_later(self, owner: int) -> None:
        """discard() for a garbage-collected reader: it takes no lock (a collection can run
        while this thread holds it), the next put() drops the blocks."""
        self._dead.append(owner)

    def _drop(self, owner: int) -> None:
        for offset in self._by_owner.pop(owner, ()):
            entry = self._entries.pop((owner, offset), None)
            if entry is not None:
                self._bytes -= entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_owner.clear()
            self._dead.clear()
            self._bytes = 0

    def _evict(self) -> None:
        """Drop least recently used blocks until the bounds hold (the lock is held)."""
        entries = self._entries
        limit = self.max_blocks
        while entries and (self._bytes > self.max_bytes or (limit and len(entries) > limit)):
            (owner, offset), (_, cost) = entries.popitem(last=False)
            self._bytes -= cost
            offsets = self._by_owner.get(owner)
            if offsets is not None:
                offsets.discard(offset)
                if not offsets:
                    del self._by_owner[owner]


def _default_bytes() -> int:
    raw = os.environ.get(CACHE_BYTES_ENV, "")
    try:
        return max(0, int(raw)) if raw else DEFAULT_CACHE_BYTES
    except ValueError:
        return DEFAULT_CACHE_BYTES


_PROCESS_CACHE = BlockCache(_default_bytes())


def process_cache() -> BlockCache:
    """The cache every TableReader of this process shares unless given another one
    (``AIOREFTABLE_BLOCK_CACHE_BYTES`` sets its budget at start, ``resize`` later)."""
    return _PROCESS_CACHE
