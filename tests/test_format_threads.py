"""Readers shared by threads: the block cache (per reader, or the process's shared one)
stays consistent under eviction."""

from __future__ import annotations

import gc
import random
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest

from aioreftable._format._cache import BlockCache
from aioreftable.lowlevel import RefRecord, TableReader, TableWriter, WriteOptions

THREADS = 4
CACHE = 3  # blocks: far fewer than the table has, so nearly every lookup evicts one


def _table(n: int) -> tuple[bytes, dict[bytes, bytes]]:
    w = TableWriter(WriteOptions(block_size=512))
    w.set_limits(1, 1)
    refs = {b"refs/heads/b%06d" % i: (i * 2654435761).to_bytes(20, "big") for i in range(n)}
    for name, oid in refs.items():
        w.add_ref(RefRecord.val1(name, 1, oid))
    return w.finish(), refs


class _SlowHits(OrderedDict[Any, Any]):
    """A cache mapping that hands the GIL to other threads right after each hit, where an
    unlocked cache is most fragile (a hit is followed by an LRU update)."""

    def get(self, key: Any, default: Any = None) -> Any:
        value = super().get(key, default)
        time.sleep(0)
        return value


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def hammer(reader: TableReader, refs: dict[bytes, bytes], lookups: int) -> list[str]:
    """Look refs up from THREADS threads at once; the problems seen (exceptions, wrong
    answers)."""
    names = sorted(refs)
    problems: list[str] = []
    start = threading.Barrier(THREADS)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(lookups):
                name = rng.choice(names)
                rec = reader.ref(name)
                if rec is None or rec.value != refs[name]:
                    problems.append(f"wrong answer for {name!r}: {rec}")
                if rng.random() < 0.02 and not list(reader.iter_refs(name)):
                    problems.append(f"iter_refs({name!r}) is empty")
        except Exception as e:
            problems.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return problems


@pytest.mark.usefixtures("tiny_switch_interval")
def test_lookups_from_threads_share_one_reader() -> None:
    data, refs = _table(3000)
    reader = TableReader.from_bytes(data, cache_blocks=CACHE)
    assert reader.stats().refs.blocks > 20 * CACHE
    assert hammer(reader, refs, 1500) == []


@pytest.mark.usefixtures("tiny_switch_interval")
def test_thread_switch_between_cache_hit_and_lru_update() -> None:
    """The race the stress test above hits only sometimes, made likely: another thread
    runs between a cache hit and its LRU update (an unlocked cache raised KeyError)."""
    data, refs = _table(3000)
    cache = BlockCache(max_blocks=CACHE)
    cache._entries = _SlowHits()
    reader = TableReader.from_bytes(data, cache=cache)
    assert hammer(reader, refs, 150) == []
    assert len(cache) == CACHE and cache.hits and cache.misses


@pytest.mark.usefixtures("tiny_switch_interval")
def test_readers_share_one_cache_bounded_in_bytes_from_threads() -> None:
    """Two tables, one cache of a few blocks' bytes, four threads: right answers, and the
    cache never holds more than its budget."""
    budget = 4 * 700
    cache = BlockCache(max_bytes=budget)
    (data1, refs1), (data2, refs2) = _table(2000), _table(1500)
    readers = [
        TableReader.from_bytes(data1, cache=cache),
        TableReader.from_bytes(data2, cache=cache),
    ]
    seen: list[int] = []

    def work() -> list[str]:
        out = hammer(readers[0], refs1, 300) + hammer(readers[1], refs2, 300)
        seen.append(cache.size_bytes)
        return out

    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(work())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[], []]
    assert 0 < max(seen) <= budget and 0 < cache.size_bytes <= budget
    readers[0].close()
    assert len(cache) <= 4
    readers[1].close()
    assert len(cache) == 0 and cache.size_bytes == 0


def test_a_collected_reader_gives_its_blocks_back_without_taking_the_lock() -> None:
    """A reader dropped without close() is discarded by its finalizer, which the garbage
    collector may run while this very thread holds the cache's lock (inside put): taking
    the lock there deadlocked. The blocks go at the next put instead."""
    data, refs = _table(500)
    cache = BlockCache()
    reader = TableReader.from_bytes(data, cache=cache)
    for name in list(refs)[:50]:
        reader.ref(name)
    held = len(cache)
    assert held > 0
    with cache._lock:  # as if a collection ran inside put()
        del reader
        gc.collect()  # the finalizer must not wait for the lock
    assert len(cache) == held
    other = TableReader.from_bytes(data, cache=cache)
    other.ref(next(iter(refs)))
    assert 0 < len(cache) < held
