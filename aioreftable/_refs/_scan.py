"""Scans in lists: the refs under a prefix as lists of Ref, decoded in worker threads."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from contextlib import AsyncExitStack

import anyio
import anyio.to_thread

from .._format._accel import speedups
from .._format._records import RefRecord, RefValueType
from ._core import Ref, RefCore, decode_name, encode_name, is_root_ref, ref_from_record

__all__ = ["CHUNK_REFS", "refs_of", "scan_refs"]

CHUNK_REFS = 4096  # refs decoded per trip to a worker thread (a few milliseconds of work)
_MERGED_BATCH = 1024  # records of a merged (several tables) scan converted at once
_DELETION = RefValueType.DELETION

# the compiled converter when the decoder is built and Ref's slots are plain members
_speedups = speedups if speedups is not None and speedups.configure_ref(Ref) else None


def _listed(name: str, include_root_refs: bool) -> bool:
    """RefStore.iterate's rule: ``refs/*``, and root refs if asked."""
    return name.startswith("refs/") or (include_root_refs and is_root_ref(name))


def refs_of(records: list[RefRecord], include_root_refs: bool) -> list[Ref]:
    """The Ref of each live record RefStore.iterate lists (``ref_from_record``; tombstones
    are skipped, names outside ``refs/`` kept only if root refs are asked for). The
    compiled converter makes the refs under ``refs/``; any other record is judged (and a
    record of an unknown shape converted, or refused) here."""
    if _speedups is None:
        out: list[Ref] = []
        for rec in records:
            if rec[2] != _DELETION:
                name = decode_name(rec[0])
                if _listed(name, include_root_refs):
                    out.append(ref_from_record(name, rec))
        return out
    out, i = _speedups.refs_from_records(records, 0, b"refs/")
    while i < len(records):
        rec = records[i]
        if rec[2] != _DELETION:
            name = decode_name(rec[0])
            if _listed(name, include_root_refs):
                out.append(ref_from_record(name, rec))
        more, i = _speedups.refs_from_records(records, i + 1, b"refs/")
        out += more
    return out


def _batched(records: Iterator[RefRecord]) -> Iterator[list[RefRecord]]:
    """Records in lists; a damaged record raises after the list of those before it."""
    batch: list[RefRecord] = []
    try:
        for rec in records:
            batch.append(rec)
            if len(batch) == _MERGED_BATCH:
                yield batch
                batch = []
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


class _Batches:
    """Lists of at least ``size`` refs (the last may be shorter), one per call of
    :meth:`next` (in a worker thread). An error comes after the refs decoded before it."""

    def __init__(self, chunks: Iterator[list[RefRecord]], include_root_refs: bool, size: int):
        self.chunks = chunks
        self.include_root_refs = include_root_refs
        self.size = size
        self.error: Exception | None = None
        self.done = False

    def next(self) -> list[Ref]:
        if self.error is not None:
            error, self.error = self.error, None
            self.done = True
            raise error
        out: list[Ref] = []
        try:
            for records in self.chunks:
                out += refs_of(records, self.include_root_refs)
                if len(out) >= self.size:
                    return out
        except Exception as e:
            if not out:
                self.done = True
                raise
            self.error = e
            return out
        self.done = True
        return out


async def scan_refs(
    core: RefCore, prefix: str, include_root_refs: bool, size: int | None = None
) -> AsyncGenerator[list[Ref], None]:
    """RefStore.scan: lists of the refs RefStore.iterate yields, in its order (at least
    ``size`` refs a list but the last; CHUNK_REFS by default)."""
    raw = encode_name(prefix)
    async with AsyncExitStack() as scope:  # main and current only: nothing enters it
        view = core.view(scope)
        if core.worktree is None:
            main = await view.snapshot("main")
            if len(main.readers) == 1:  # no merge: a block's records at a time
                chunks = main.readers[0].ref_chunks(raw)
            else:
                chunks = _batched(main.iter_refs(raw))
        else:
            chunks = _batched(await view.records(prefix))
    batches = _Batches(chunks, include_root_refs, CHUNK_REFS if size is None else size)
    while not batches.done:
        refs = await anyio.to_thread.run_sync(batches.next)
        if refs:
            yield refs
