"""TableReader: validated random access to one table (lookups, prefix scans, logs, obj index)."""

from __future__ import annotations

import bisect
import itertools
import os
import struct
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import ChecksumError, FormatError
from ._block import Block, inflate_log_block
from ._blocksource import BlockSource, BytesSource, MmapSource
from ._cache import BlockCache, process_cache
from ._layout import (
    BLOCK_TYPE_INDEX,
    BLOCK_TYPE_LOG,
    BLOCK_TYPE_OBJ,
    BLOCK_TYPE_REF,
    BLOCK_TYPES,
    FOOTER_FIELDS,
    MAGIC,
    SHA1,
    VERSIONS,
    HashAlgorithm,
    HashName,
    footer_size,
    header_size,
)
from ._records import (
    LogRecord,
    ObjRecord,
    RefRecord,
    RefValueType,
    log_key,
)

__all__ = ["SectionStats", "TableReader", "TableStats"]


@dataclass(frozen=True, slots=True)
class SectionStats:
    """Blocks and records of one section (refs, objs or logs) and its index."""

    blocks: int
    records: int
    index_blocks: int
    index_levels: int


@dataclass(frozen=True, slots=True)
class TableStats:
    size: int
    version: int
    block_size: int
    min_update_index: int
    max_update_index: int
    refs: SectionStats
    objs: SectionStats
    logs: SectionStats
    obj_id_len: int


class TableReader:
    """A validated, immutable table. Sync methods; safe to share between threads for reads
    (the block cache takes a lock; parsed blocks are immutable apart from idempotent caches).

    Parsed blocks live in one :class:`BlockCache` per process (``cache`` gives another;
    ``cache_blocks``, the older knob, gives this reader its own cache of that many blocks).
    Lookups and seeks keep what they load there; scans read through it without filling it.

    Every read raises only FormatError (or a subclass) on damaged data, naming the file (when
    the reader has a name) and the offset.
    """

    def __init__(
        self,
        source: BlockSource,
        *,
        name: str | None = None,
        cache_blocks: int | None = None,
        cache: BlockCache | None = None,
    ):
        self.source = source
        self.name = name
        try:
            self._parse_footer()
        except FormatError as e:
            raise e.located(name) from None
        if cache_blocks is not None:
            cache = BlockCache(max_bytes=1 << 62, max_blocks=max(1, cache_blocks))
        self._cache = process_cache() if cache is None else cache
        self._owner = BlockCache.new_owner()
        # the first block of a run that has no second block (a one-block top index level),
        # by (offset, type): where every seek starts, kept out of the cache
        self._alone: dict[tuple[int, int], Block] = {}
        # a reader dropped without close() gives its blocks back too (at the next put: a
        # collection may run while this thread holds the cache's lock)
        weakref.finalize(self, self._cache.discard_later, self._owner)
        self._ref_range: tuple[bytes, bytes] | Literal[False] | None = False

    @classmethod
    def from_bytes(
        cls,
        data: bytes | bytearray | memoryview,
        name: str | None = None,
        cache_blocks: int | None = None,
        *,
        cache: BlockCache | None = None,
    ) -> TableReader:
        return cls(BytesSource(data), name=name, cache_blocks=cache_blocks, cache=cache)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> TableReader:
        source = MmapSource(path)
        try:
            return cls(source, name=os.fspath(path))
        except BaseException:
            source.close()
            raise

    def close(self) -> None:
        self._alone.clear()
        self._cache.discard(self._owner)
        self.source.close()

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        span = f"{self.min_update_index}..{self.max_update_index}"
        return f"<TableReader {self.name or '(bytes)'} {span}>"

    # -- header and footer -------------------------------------------------------------
    def _parse_footer(self) -> None:
        src = self.source
        file_size = src.size
        head = src.read(0, 29)
        if len(head) < 29 and file_size >= 29:
            raise FormatError("short read of the file header", offset=0)
        if len(head) < 4 or head[: len(MAGIC)] != MAGIC:
            raise FormatError("not a reftable file (bad magic)", offset=0)
        version = head[4] if len(head) > 4 else 0
        if version not in VERSIONS:
            raise FormatError(f"unsupported reftable version {version}", offset=4)
        hsize = header_size(version)
        fsize = footer_size(version)
        if file_size < hsize + fsize:
            raise FormatError(f"file of {file_size} bytes is too small", offset=0)
        foot_at = file_size - fsize
        footer = src.read(foot_at, fsize)
        if len(footer) != fsize:
            raise FormatError("short read of the footer", offset=foot_at)
        if footer[:hsize] != head[:hsize]:
            raise FormatError("footer does not repeat the file header", offset=foot_at)
        crc_at = hsize + 40
        (crc,) = struct.unpack_from(">I", footer, crc_at)
        if zlib.crc32(footer[:crc_at]) & 0xFFFFFFFF != crc:
            raise ChecksumError("footer CRC-32 mismatch", offset=foot_at + crc_at)
        self.version = version
        self.header_size = hsize
        self.block_size = int.from_bytes(head[5:8], "big")
        limits: tuple[int, int] = struct.unpack_from(">QQ", head, 8)
        self.min_update_index, self.max_update_index = limits
        self.hash: HashAlgorithm = self._header_hash(version, head)
        fields: tuple[int, int, int, int, int] = struct.unpack_from(">QQQQQ", footer, hsize)
        (
            self.ref_index_position,
            obj_field,
            self.obj_index_position,
            self.log_position,
            self.log_index_position,
        ) = fields
        self.obj_position = obj_field >> 5
        self.obj_id_len = obj_field & 31
        if self.obj_position and not self.obj_id_len:
            raise FormatError("object index with obj_id_len 0", offset=foot_at + hsize + 8)
        self.file_size = file_size
        self.size = foot_at  # end of the block data
        self.footer_offset = foot_at
        first = head[hsize] if len(head) > hsize else 0
        if foot_at > hsize and first not in (BLOCK_TYPE_REF, BLOCK_TYPE_LOG):
            # git writes refs first, else logs; git's reader would show an empty table
            raise FormatError(
                f"first block has type {first:#04x}, not a ref or log block", offset=hsize
            )
        self.has_refs = first == BLOCK_TYPE_REF
        self.has_logs = first == BLOCK_TYPE_LOG or self.log_position > 0
        self.has_objs = self.obj_position > 0
        for i, (what, pos) in enumerate(zip(FOOTER_FIELDS, self.footer_positions(), strict=True)):
            if pos >= self.size and pos:
                raise FormatError(
                    f"{what} position {pos} lies past the data",
                    offset=self.footer_field_offset(i),
                )

    @staticmethod
    def _header_hash(version: int, head: bytes) -> HashAlgorithm:
        """The hash the header names: SHA-1 for version 1 (it has no hash id), else the
        version 2 hash id's."""
        if version == 1:
            return SHA1
        (hash_id,) = struct.unpack_from(">I", head, 24)
        algorithm = HashAlgorithm.by_format_id(hash_id)
        if algorithm is None:
            raise FormatError(f"unknown hash id {hash_id:#010x}", offset=24)
        return algorithm

    @property
    def hash_name(self) -> HashName:
        """The hash's name, ``"sha1"`` or ``"sha256"`` (``hash.name``)."""
        return self.hash.name

    @property
    def hash_size(self) -> int:
        """Bytes of a raw object id (``hash.size``)."""
        return self.hash.size

    def footer_positions(self) -> tuple[int, int, int, int, int]:
        """The footer's five positions, in the order of FOOTER_FIELDS."""
        return (
            self.ref_index_position,
            self.obj_position,
            self.obj_index_position,
            self.log_position,
            self.log_index_position,
        )

    def footer_field_offset(self, i: int) -> int:
        """File offset of the footer field ``FOOTER_FIELDS[i]``."""
        return self.footer_offset + self.header_size + 8 * i

    # -- blocks ------------------------------------------------------------------------
    def _block(
        self, offset: int, want: int | None, required: bool, keep: bool = True
    ) -> Block | None:
        """The block at ``offset``; None at the end of the data or (unless ``required``) when
        its type differs from ``want``. A block loaded here goes to the cache if ``keep``."""
        if offset >= self.size:
            if required:
                raise FormatError(
                    f"block offset {offset} lies past the data", path=self.name, offset=offset
                )
            return None
        blk = self._cache.get(self._owner, offset)
        if blk is None:
            if want is not None and not required and self._other_type_at(offset, want):
                return None  # as git: a section ends at a block of another type, unread
            try:
                blk = self._load_block(offset)
            except FormatError as e:
                raise e.located(self.name) from None
            if keep:
                self._cache.put(self._owner, offset, blk)
        if want is not None and blk.typ != want:
            if required:
                raise FormatError(
                    f"expected a {chr(want)!r} block, found {chr(blk.typ)!r}",
                    path=self.name,
                    offset=offset,
                )
            return None
        return blk

    def _other_type_at(self, offset: int, want: int) -> bool:
        """Whether the block at ``offset`` is of a valid type other than ``want``, by its
        type byte alone (a log block after the refs is not inflated to end a ref scan)."""
        typ = self.source.read(offset + (self.header_size if offset == 0 else 0), 1)
        return len(typ) == 1 and typ[0] != want and typ[0] in BLOCK_TYPES

    def _req(self, offset: int, want: int | None) -> Block:
        """The block at ``offset``, which must exist (and be of type ``want``)."""
        blk = self._block(offset, want, True)
        if blk is None:  # pragma: no cover - _block raises when required
            raise FormatError(f"no block at {offset}", path=self.name, offset=offset)
        return blk

    def _load_block(self, offset: int) -> Block:
        header_off = self.header_size if offset == 0 else 0
        src = self.source
        head = src.read(offset + header_off, 4)
        if len(head) < 4 or offset + header_off + 4 > self.size:
            raise FormatError("truncated block header", offset=offset)
        typ = head[0]
        if typ not in BLOCK_TYPES:
            raise FormatError(f"invalid block type {typ:#04x}", offset=offset + header_off)
        block_len = int.from_bytes(head[1:4], "big")
        if block_len < header_off + 6:
            raise FormatError(f"block_len {block_len} is too small", offset=offset)
        if typ == BLOCK_TYPE_LOG:
            start = offset + header_off + 4
            inflated, consumed = inflate_log_block(
                src.read, start, self.size, block_len - header_off - 4
            )
            data = src.read(offset, header_off + 4) + inflated
            on_disk = header_off + 4 + consumed
        else:
            if offset + block_len > self.size:
                raise FormatError(
                    f"block_len {block_len} runs past the end of the data", offset=offset
                )
            data = src.read(offset, block_len)
            on_disk = self._on_disk_size(offset, block_len)
        return Block(typ, data, offset, header_off, on_disk, self.hash.size, self.min_update_index)

    def _on_disk_size(self, offset: int, block_len: int) -> int:
        bs = self.block_size
        if bs == 0 or block_len >= bs:
            return block_len
        after = offset + block_len
        if after < self.file_size and self.source.read(after, 1) != b"\0":
            return block_len  # unpadded block (or the last one before logs/footer)
        return bs

    def _next_block(self, blk: Block, want: int, keep: bool = True) -> Block | None:
        return self._block(blk.offset + blk.on_disk_size, want, False, keep)

    def _section_start(self, typ: int) -> int | None:
        if typ == BLOCK_TYPE_REF:
            return 0 if self.has_refs else None
        if typ == BLOCK_TYPE_LOG:
            if self.log_position:
                return self.log_position
            return 0 if self.has_logs else None
        return self.obj_position or None

    def _index_start(self, typ: int) -> int:
        if typ == BLOCK_TYPE_REF:
            return self.ref_index_position
        if typ == BLOCK_TYPE_LOG:
            return self.log_index_position
        return self.obj_index_position

    # -- seeking and iteration ---------------------------------------------------------
    def _linear_seek(self, start: int, typ: int, want: bytes) -> Block:
        alone = self._alone.get((start, typ))
        if alone is not None:
            return alone
        blk = self._req(start, typ)
        nxt = self._next_block(blk, typ)
        if nxt is None:  # always this block (a top index level is one block): remember it
            self._alone[start, typ] = blk
            return blk
        while True:
            if nxt is None or nxt.first_key() > want:
                return blk
            blk = nxt
            nxt = self._next_block(blk, typ)

    def _seek(self, typ: int, want: bytes) -> tuple[Block, int, bytes] | None:
        """Locate the first record of section ``typ`` with key >= ``want``."""
        try:
            return self._seek_unlocated(typ, want)
        except FormatError as e:
            raise e.located(self.name) from None

    def _seek_unlocated(self, typ: int, want: bytes) -> tuple[Block, int, bytes] | None:
        start = self._section_start(typ)
        if start is None:
            return None
        index_at = self._index_start(typ)
        if not index_at:
            blk = self._linear_seek(start, typ, want)
            pos, prev = blk.seek(want)
            return blk, pos, prev
        blk = self._linear_seek(index_at, BLOCK_TYPE_INDEX, want)
        while True:
            keys, offsets = blk.index_entries()
            i = bisect.bisect_left(keys, want)
            if i < len(keys):
                target = offsets[i]
            else:  # past this block: the first entry of the next one at this level, if any
                nxt = self._next_block(blk, BLOCK_TYPE_INDEX)
                if nxt is None:
                    return None  # want sorts after every key of the section
                first = nxt.index_entries()[1]
                if not first:
                    raise FormatError("empty index block", path=self.name, offset=nxt.offset)
                target = first[0]
            child = self._req(target, None)
            if child.typ == typ:
                pos, prev = child.seek(want)
                return child, pos, prev
            if child.typ != BLOCK_TYPE_INDEX or child.offset >= blk.offset:
                raise FormatError(
                    f"index record points at a {chr(child.typ)!r} block at {child.offset}",
                    path=self.name,
                    offset=blk.offset,
                )
            blk = child

    def _iter_from(self, blk: Block, pos: int | None, prev: bytes) -> Iterator[Any]:
        typ = blk.typ
        while True:
            try:
                yield from blk.records(pos, prev)
            except FormatError as e:
                raise e.located(self.name) from None
            nxt = self._next_block(blk, typ, keep=False)  # a scan does not fill the cache
            if nxt is None:
                return
            blk, pos, prev = nxt, None, b""

    def _iter_section(self, typ: int) -> Iterator[Any]:
        start = self._section_start(typ)
        if start is None:
            return iter(())
        blk = self._req(start, typ)
        return self._iter_from(blk, None, b"")

    def _iter_seek(self, typ: int, want: bytes) -> Iterator[Any]:
        found = self._seek(typ, want)
        if found is None:
            return iter(())
        return self._iter_from(*found)

    def ref_range(self) -> tuple[bytes, bytes] | None:
        """(first, last) refname stored in this table (tombstones included), or None."""
        cached = self._ref_range
        if cached is False:
            cached = self._ref_range = self._compute_ref_range()
        return cached

    def _compute_ref_range(self) -> tuple[bytes, bytes] | None:
        try:
            return self._ref_range_unlocated()
        except FormatError as e:
            raise e.located(self.name) from None

    def _ref_range_unlocated(self) -> tuple[bytes, bytes] | None:
        if not self.has_refs:
            return None
        first = self._req(0, BLOCK_TYPE_REF)
        top = self.ref_index_position
        if top:  # the last entry of the top index level names the section's last key
            blk = self._req(top, BLOCK_TYPE_INDEX)
            while (nxt := self._next_block(blk, BLOCK_TYPE_INDEX)) is not None:
                blk = nxt
            keys = blk.index_entries()[0]
        else:
            blk = first
            while (nxt := self._next_block(blk, BLOCK_TYPE_REF)) is not None:
                blk = nxt
            keys = [rec.refname for rec in blk.records()]
        if not keys:
            raise FormatError("empty block at the end of the ref section", offset=blk.offset)
        return first.first_key(), keys[-1]

    # -- public reads ------------------------------------------------------------------
    def ref(self, refname: bytes) -> RefRecord | None:
        """The record stored for ``refname`` (a DELETION record for a tombstone), or None."""
        found = self._seek(BLOCK_TYPE_REF, refname)
        if found is None:
            return None
        blk, pos, prev = found
        rec: RefRecord | None
        if pos < blk.restart_off:  # decode one record, not the rest of its block
            try:
                rec = blk.record_at(pos, prev)
            except FormatError as e:
                raise e.located(self.name) from None
        else:
            rec = next(self._iter_from(blk, pos, prev), None)
        return rec if rec is not None and rec.refname == refname else None

    def seek_refs(self, start: bytes = b"") -> Iterator[RefRecord]:
        """All ref records (tombstones included) with refname >= ``start``."""
        if not start:
            return self._iter_section(BLOCK_TYPE_REF)
        return self._iter_seek(BLOCK_TYPE_REF, start)

    def iter_refs(self, prefix: bytes = b"") -> Iterator[RefRecord]:
        """Ref records (tombstones included) whose name starts with ``prefix``, sorted.

        The scan path: a block's records come a block at a time from the compiled decoder
        (as ``seek_refs(prefix)`` would give them, up to the first name without the prefix).
        """
        return itertools.chain.from_iterable(self.ref_chunks(prefix))

    def ref_chunks(self, prefix: bytes = b"") -> Iterator[list[RefRecord]]:
        """:meth:`iter_refs` in lists (a block's records at a time, as the compiled decoder
        gives them; one record at a time where the reference decodes): the same records
        in the same order, and a damaged record raises after every list before it."""
        if prefix:
            found = self._seek(BLOCK_TYPE_REF, prefix)
            if found is None:
                return
            blk, pos, prev = found
            at: int | None = pos
        else:
            start = self._section_start(BLOCK_TYPE_REF)
            if start is None:
                return
            blk, at, prev = self._req(start, BLOCK_TYPE_REF), None, b""
        while True:
            try:
                recs, rest = blk.ref_chunk(at, prev, prefix)  # names with the prefix
                if recs:
                    yield recs
                if rest is not None:
                    for rec in rest:
                        if prefix and not rec[0].startswith(prefix):
                            return
                        yield [rec]
            except FormatError as e:
                raise e.located(self.name) from None
            nxt = self._next_block(blk, BLOCK_TYPE_REF, keep=False)
            if nxt is None:
                return
            blk, at, prev = nxt, None, b""

    def seek_logs(self, start: bytes = b"") -> Iterator[LogRecord]:
        """All log records with key >= ``start`` (a log key: refname NUL be64(~index))."""
        if not start:
            return self._iter_section(BLOCK_TYPE_LOG)
        return self._iter_seek(BLOCK_TYPE_LOG, start)

    def iter_logs(self, refname: bytes | None = None) -> Iterator[LogRecord]:
        """Log records (tombstones included): of one ref newest first, or all, by refname."""
        if refname is None:
            yield from self.seek_logs()
            return
        for rec in self.seek_logs(log_key(refname, (1 << 64) - 1)):
            if rec.refname != refname:
                return
            yield rec

    def log(self, refname: bytes, update_index: int) -> LogRecord | None:
        """The log record of ``refname`` at exactly ``update_index``, or None."""
        key = log_key(refname, update_index)
        rec: LogRecord | None = next(self.seek_logs(key), None)
        return rec if rec is not None and rec.key == key else None

    def refs_for(self, oid: bytes) -> Iterator[RefRecord]:
        """Refs whose value (or peeled value) is ``oid``; uses the obj index when present."""
        if not self.has_refs:
            return
        blocks: list[int] | None = None
        if self.has_objs:
            obj: ObjRecord | None = next(
                self._iter_seek(BLOCK_TYPE_OBJ, oid[: self.obj_id_len]), None
            )
            if obj is None or obj.prefix != oid[: self.obj_id_len]:
                return
            if obj.cnt:
                blocks = list(obj.offsets)
        if blocks is None:
            candidates: Iterator[RefRecord] = self._iter_section(BLOCK_TYPE_REF)
        else:
            candidates = self._iter_blocks(blocks)
        for rec in candidates:
            vt = rec.value_type
            if (vt == RefValueType.VAL1 and rec.value == oid) or (
                vt == RefValueType.VAL2 and oid in (rec.value, rec.target_value)
            ):
                yield rec

    def _iter_blocks(self, offsets: list[int]) -> Iterator[RefRecord]:
        for off in offsets:
            blk = self._req(off, BLOCK_TYPE_REF)
            try:
                yield from blk.records()
            except FormatError as e:
                raise e.located(self.name) from None

    # -- statistics --------------------------------------------------------------------
    def _section_stats(self, typ: int) -> SectionStats:
        blocks = records = 0
        start = self._section_start(typ)
        end = None  # where the section's data blocks end
        if start is not None:
            blk: Block | None = self._req(start, typ)
            while blk is not None:
                blocks += 1
                records += blk.record_count()
                end = blk.offset + blk.on_disk_size
                blk = self._next_block(blk, typ)
        index_blocks = levels = 0
        top = self._index_start(typ)
        if top:
            if end is None:
                field = FOOTER_FIELDS.index({BLOCK_TYPE_REF: "ref index",
                    BLOCK_TYPE_OBJ: "obj index", BLOCK_TYPE_LOG: "log index"}[typ])  # fmt: skip
                raise FormatError(
                    f"{FOOTER_FIELDS[field]} at {top} but the table has no such section",
                    offset=self.footer_field_offset(field),
                )
            # Walk down the first entry of each level to count levels (always backwards,
            # so this ends), then count the index blocks that follow the section data.
            blk = self._req(top, BLOCK_TYPE_INDEX)
            while blk.typ == BLOCK_TYPE_INDEX:
                levels += 1
                offsets = blk.index_entries()[1]
                if not offsets:
                    raise FormatError("empty index block", offset=blk.offset)
                if offsets[0] >= blk.offset:
                    raise FormatError(
                        f"index record points forward, at {offsets[0]}", offset=blk.offset
                    )
                blk = self._req(offsets[0], None)
            blk = self._block(end, BLOCK_TYPE_INDEX, True)
            while blk is not None:
                index_blocks += 1
                blk = self._next_block(blk, BLOCK_TYPE_INDEX)
        return SectionStats(blocks, records, index_blocks, levels)

    def stats(self) -> TableStats:
        """Counts per section (decodes every block: O(table size))."""
        try:
            return self._stats()
        except FormatError as e:
            raise e.located(self.name) from None

    def _stats(self) -> TableStats:
        return TableStats(
            size=self.file_size,
            version=self.version,
            block_size=self.block_size,
            min_update_index=self.min_update_index,
            max_update_index=self.max_update_index,
            refs=self._section_stats(BLOCK_TYPE_REF),
            objs=self._section_stats(BLOCK_TYPE_OBJ),
            logs=self._section_stats(BLOCK_TYPE_LOG),
            obj_id_len=self.obj_id_len,
        )

    def blocks(self) -> Iterator[Block]:
        """Every block in file order (for dumps and deep verification)."""
        off = 0 if self.size > self.header_size else self.size
        while off < self.size:
            blk = self._req(off, None)
            yield blk
            off += blk.on_disk_size
