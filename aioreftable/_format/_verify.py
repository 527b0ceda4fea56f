"""Deep checks of one table: every block decodes, keys are ordered, indexes are right."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._errors import FormatError
from ._block import Block
from ._reader import TableReader
from ._records import (
    BLOCK_TYPE_INDEX,
    BLOCK_TYPE_LOG,
    BLOCK_TYPE_OBJ,
    BLOCK_TYPE_REF,
    IndexRecord,
    LogRecord,
    ObjRecord,
    RefRecord,
    RefValueType,
)

__all__ = ["Finding", "check_table", "iter_findings"]

_Add = Callable[[int | None, str], None]

_NAMES = {
    BLOCK_TYPE_REF: "ref",
    BLOCK_TYPE_LOG: "log",
    BLOCK_TYPE_OBJ: "obj",
    BLOCK_TYPE_INDEX: "index",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a table: where (file offset, if known) and what."""

    path: str | None
    offset: int | None
    message: str

    def __str__(self) -> str:
        where = self.path or "(table)"
        if self.offset is not None:
            where += f" @{self.offset}"
        return f"{where}: {self.message}"


def _key(rec: RefRecord | LogRecord | ObjRecord | IndexRecord) -> bytes:
    if isinstance(rec, RefRecord):
        return rec.refname
    if isinstance(rec, LogRecord):
        return rec.key
    if isinstance(rec, ObjRecord):
        return rec.prefix
    return rec.last_key


def check_table(reader: TableReader) -> list[Finding]:
    """All findings for ``reader`` (empty when the table is sound). Never raises
    FormatError: a block that does not decode becomes a finding."""
    findings: list[Finding] = []

    def add(offset: int | None, message: str) -> None:
        findings.append(Finding(reader.name, offset, message))

    try:
        blocks = list(reader.blocks())
    except FormatError as e:
        add(e.offset, f"blocks do not decode: {e.reason}")
        return findings
    last_key: dict[int, bytes] = {}
    block_last: dict[int, bytes] = {}
    ref_blocks: dict[int, list[RefRecord]] = {}
    decoded: list[tuple[Block, list[Any]]] = []
    for blk in blocks:
        try:
            records = list(blk.records())
        except FormatError as e:
            add(e.offset, f"{_NAMES[blk.typ]} block does not decode: {e.reason}")
            continue
        if not records:
            add(blk.offset, f"empty {_NAMES[blk.typ]} block")
            continue
        decoded.append((blk, records))
        _check_block_records(reader, blk, records, last_key, add)
        block_last[blk.offset] = _key(records[-1])
        if blk.typ == BLOCK_TYPE_REF:
            ref_blocks[blk.offset] = records
        if blk.typ != BLOCK_TYPE_INDEX:
            last_key[blk.typ] = _key(records[-1])
    by_offset = {b.offset: b for b in blocks}
    for blk, records in decoded:
        if blk.typ == BLOCK_TYPE_INDEX:
            _check_index_block(blk, records, block_last, by_offset, add)
        elif blk.typ == BLOCK_TYPE_OBJ:
            _check_obj_block(blk, records, ref_blocks, add)
    return findings


def _check_block_records(
    reader: TableReader,
    blk: Block,
    records: list[RefRecord | LogRecord | ObjRecord | IndexRecord],
    last_key: dict[int, bytes],
    add: _Add,
) -> None:
    typ = blk.typ
    prev = last_key.get(typ) if typ != BLOCK_TYPE_INDEX else None
    for rec in records:
        key = _key(rec)
        if prev is not None and key <= prev:
            add(blk.offset, f"{_NAMES[typ]} keys out of order: {prev!r} then {key!r}")
        prev = key
        if isinstance(rec, RefRecord) and not (
            reader.min_update_index <= rec.update_index <= reader.max_update_index
        ):
            add(blk.offset, f"ref {rec.refname!r} has update index {rec.update_index} outside "
                f"{reader.min_update_index}..{reader.max_update_index}")  # fmt: skip
        if (
            isinstance(rec, LogRecord)
            and not rec.is_deletion
            and rec.update_index > reader.max_update_index
        ):
            add(blk.offset, f"log {rec.refname!r}@{rec.update_index} is above the table's max")
        if isinstance(rec, RefRecord) and rec.value_type == RefValueType.SYMREF and not rec.target:
            add(blk.offset, f"symref {rec.refname!r} has an empty target")


def _check_index_block(
    blk: Block,
    records: list[IndexRecord],
    block_last: dict[int, bytes],
    by_offset: dict[int, Block],
    add: _Add,
) -> None:
    for rec in records:
        child = by_offset.get(rec.offset)
        if child is None:
            add(blk.offset, f"index entry points at {rec.offset}, which is not a block")
            continue
        if child.offset >= blk.offset:
            add(blk.offset, f"index entry points forward, at {rec.offset}")
        if block_last.get(child.offset) != rec.last_key:
            add(blk.offset, f"index entry for block {rec.offset} names {rec.last_key!r}, "
                f"the block ends with {block_last.get(child.offset)!r}")  # fmt: skip


def _check_obj_block(
    blk: Block, records: list[ObjRecord], ref_blocks: dict[int, list[RefRecord]], add: _Add
) -> None:
    for obj in records:
        for off in obj.offsets:
            refs = ref_blocks.get(off)
            if refs is None:
                add(blk.offset, f"obj {obj.prefix.hex()} points at {off}, not a ref block")
                continue
            if not any(_mentions(r, obj.prefix) for r in refs):
                add(blk.offset, f"obj {obj.prefix.hex()}: no ref in block {off} has that id")


def _mentions(rec: RefRecord, prefix: bytes) -> bool:
    return any(v is not None and v.startswith(prefix) for v in (rec.value, rec.target_value))


def iter_findings(readers: list[TableReader]) -> Iterator[Finding]:
    """Findings of several tables, plus their update-index order (oldest first)."""
    prev: TableReader | None = None
    for reader in readers:
        yield from check_table(reader)
        if prev is not None and reader.min_update_index <= prev.max_update_index:
            yield Finding(
                reader.name,
                None,
                f"update indexes {reader.min_update_index}..{reader.max_update_index} overlap "
                f"the table below ({prev.min_update_index}..{prev.max_update_index})",
            )
        prev = reader
