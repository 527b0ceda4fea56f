"""Deep checks of one table: everything a read can touch decodes and agrees with the footer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .._errors import FormatError
from ._block import Block
from ._layout import BLOCK_TYPE_INDEX, BLOCK_TYPE_LOG, BLOCK_TYPE_OBJ, BLOCK_TYPE_REF, FOOTER_FIELDS
from ._reader import TableReader
from ._records import (
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
    """All findings for ``reader`` (empty when the table is sound); every finding has a file
    offset. Never raises FormatError: what does not decode becomes a finding.

    The checks cover everything a read can touch, so that a read failing with FormatError
    implies a finding here: every block in file order (type, length, zlib stream, restart
    table, every record), the order of blocks against the footer's positions, every level
    of every index, the object index, key order and update-index limits.
    """
    findings: list[Finding] = []

    def add(offset: int | None, message: str) -> None:
        findings.append(Finding(reader.name, offset, message))

    try:
        _check(reader, add)
    except FormatError as e:  # pragma: no cover - a safety net: the checks catch their own
        add(e.offset if e.offset is not None else reader.footer_offset, e.reason)
    return findings


def _check(reader: TableReader, add: _Add) -> None:
    blocks: list[Block] = []
    off = 0 if reader.size > reader.header_size else reader.size
    try:
        for blk in reader.blocks():
            blocks.append(blk)
            off = blk.offset + blk.on_disk_size
    except FormatError as e:
        add(e.offset if e.offset is not None else off, f"blocks do not decode: {e.reason}")
        return
    last_key: dict[int, bytes] = {}
    decoded: dict[int, list[Any]] = {}
    for blk in blocks:
        records = _check_block(blk, add)
        if records is None:
            continue
        decoded[blk.offset] = records
        _check_block_records(reader, blk, records, last_key, add)
        if blk.typ != BLOCK_TYPE_INDEX:
            last_key[blk.typ] = _key(records[-1])
    sections = _check_layout(reader, blocks, add)
    if sections is None:
        return
    for data, index, field in sections.values():
        if index:
            _check_index(reader, data, index, field, decoded, add)
    if BLOCK_TYPE_OBJ in sections:
        objs = sections[BLOCK_TYPE_OBJ][0]
        refs = sections[BLOCK_TYPE_REF][0] if BLOCK_TYPE_REF in sections else []
        _check_objects(reader, objs, refs, decoded, add)


def _file_offset(blk: Block, pos: int) -> int:
    """File offset of position ``pos`` of a block (the block's offset for inflated logs)."""
    return blk.offset if blk.typ == BLOCK_TYPE_LOG else blk.offset + pos


def _check_block(blk: Block, add: _Add) -> list[Any] | None:
    """Decode every record of ``blk`` and check its restart table; the records, or None."""
    name = _NAMES[blk.typ]
    try:
        records = list(blk.records())
        positions = blk.keys_and_positions()[1][:-1]
    except FormatError as e:
        add(e.offset, f"{name} block does not decode: {e.reason}")
        return None
    if not records:
        add(blk.offset, f"empty {name} block")
        return None
    _check_restarts(blk, positions, add)
    return records


def _check_restarts(blk: Block, positions: list[int], add: _Add) -> None:
    """Seeks bisect the restart table: each entry must be the start of a record with no
    shared prefix, in increasing order, and the first record must be one."""
    name = _NAMES[blk.typ]
    restarts = blk.restart_offsets()
    starts = set(positions)
    prev = -1
    for j, r in enumerate(restarts):
        at = _file_offset(blk, blk.restart_off + 3 * j)
        if r not in starts:
            add(at, f"{name} block restart {j} ({r}) is not the start of a record")
            return
        if blk.data[r] != 0:
            add(at, f"{name} block restart {j} ({r}) points at a prefix-compressed record")
            return
        if r <= prev:
            add(at, f"{name} block restart offsets are not increasing ({prev}, then {r})")
            return
        prev = r
    if not restarts or restarts[0] != positions[0]:
        at = _file_offset(blk, blk.restart_off)
        add(at, f"the first record of a {name} block is not a restart point")


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


# section type -> (its data blocks, its index blocks, the footer field naming its index)
_Sections = dict[int, tuple[list[Block], list[Block], int]]


def _check_layout(reader: TableReader, blocks: list[Block], add: _Add) -> _Sections | None:
    """Blocks come as refs, ref index, objs, obj index, logs, log index (each optional),
    and the footer's positions name the first block of each section and index level."""
    runs: list[list[Block]] = []
    for blk in blocks:
        if runs and runs[-1][0].typ == blk.typ:
            runs[-1].append(blk)
        else:
            runs.append([blk])
    pos = reader.footer_positions()
    sections: _Sections = {}
    i = 0
    for typ, start_field, index_field in (
        (BLOCK_TYPE_REF, None, 0),
        (BLOCK_TYPE_OBJ, 1, 2),
        (BLOCK_TYPE_LOG, 3, 4),
    ):
        name = _NAMES[typ]
        run = runs[i] if i < len(runs) else None
        here = run is not None and run[0].typ == typ
        if start_field is None:  # refs start the file when there are any
            pass
        elif pos[start_field]:
            if not here or run is None or run[0].offset != pos[start_field]:
                found = f"a {_NAMES[run[0].typ]} block" if run else "no block"
                where = run[0].offset if run else reader.size
                add(
                    reader.footer_field_offset(start_field),
                    f"footer's {FOOTER_FIELDS[start_field]} position {pos[start_field]} is not "
                    f"the start of the {name} blocks (at {where} there is {found})",
                )
                return None
        elif here and run is not None and not (typ == BLOCK_TYPE_LOG and run[0].offset == 0):
            add(
                reader.footer_field_offset(start_field),
                f"{name} blocks at {run[0].offset}, but the footer's "
                f"{FOOTER_FIELDS[start_field]} position is 0",
            )
            return None
        if not here or run is None:
            if pos[index_field]:
                add(
                    reader.footer_field_offset(index_field),
                    f"footer's {FOOTER_FIELDS[index_field]} position {pos[index_field]} "
                    f"names an index of a table with no {name} blocks",
                )
                return None
            continue
        i += 1
        index: list[Block] = []
        nxt = runs[i] if i < len(runs) else None
        if pos[index_field]:
            if nxt is None or nxt[0].typ != BLOCK_TYPE_INDEX:
                add(
                    reader.footer_field_offset(index_field),
                    f"footer's {FOOTER_FIELDS[index_field]} position {pos[index_field]}, "
                    f"but no index blocks follow the {name} blocks",
                )
                return None
            index = nxt
            i += 1
        elif nxt is not None and nxt[0].typ == BLOCK_TYPE_INDEX:
            add(
                nxt[0].offset,
                f"index blocks after the {name} blocks, but the footer's "
                f"{FOOTER_FIELDS[index_field]} position is 0",
            )
            return None
        sections[typ] = (run, index, index_field)
    if i < len(runs):
        blk = runs[i][0]
        add(blk.offset, f"unexpected {_NAMES[blk.typ]} block after the table's last section")
        return None
    return sections


def _check_index(
    reader: TableReader,
    data: list[Block],
    index: list[Block],
    field: int,
    decoded: dict[int, list[Any]],
    add: _Add,
) -> None:
    """Level by level from the bottom: the entries of each level name, in order, every
    block of the level below and its last key; the footer names the top level's first block."""
    if any(b.offset not in decoded for b in (*data, *index)):
        return  # an undecodable block below or here has its own finding
    what = FOOTER_FIELDS[field]
    below = [(b.offset, _key(decoded[b.offset][-1])) for b in data]
    level, i = 1, 0
    while True:
        first = i
        n = 0
        while i < len(index) and n < len(below):
            blk = index[i]
            for rec in decoded[blk.offset]:
                if n >= len(below):
                    add(blk.offset, f"{what} level {level} has more entries than blocks below")
                    return
                off, key = below[n]
                if rec.offset != off:
                    add(blk.offset, f"{what} entry {n} (level {level}) points at {rec.offset}, "
                        f"expected the block at {off}")  # fmt: skip
                    return
                if rec.last_key != key:
                    add(blk.offset, f"{what} entry for the block at {off} names {rec.last_key!r}, "
                        f"the block ends with {key!r}")  # fmt: skip
                    return
                n += 1
            i += 1
        if n < len(below):
            add(index[-1].offset, f"{what} level {level} covers {n} of {len(below)} blocks")
            return
        top = index[first:i]
        if i == len(index):
            break
        below = [(b.offset, _key(decoded[b.offset][-1])) for b in top]
        level += 1
    expected = top[0].offset
    position = reader.footer_positions()[field]
    if position != expected:
        add(reader.footer_field_offset(field), f"footer's {what} position {position} is not "
            f"the first block of the top index level ({expected})")  # fmt: skip


def _check_objects(
    reader: TableReader,
    objs: list[Block],
    refs: list[Block],
    decoded: dict[int, list[Any]],
    add: _Add,
) -> None:
    """Object records have obj_id_len keys and point at ref blocks holding such an id;
    every id of every ref is listed with its block."""
    id_len = reader.obj_id_len
    ids: dict[int, set[bytes]] = {}  # ref block -> the id prefixes its refs carry
    for blk in refs:
        ids[blk.offset] = {
            oid[:id_len]
            for rec in decoded.get(blk.offset, ())
            for oid in (rec.value, rec.target_value)
            if oid is not None
        }
    listed: dict[bytes, set[int] | None] = {}
    for blk in objs:
        for obj in decoded.get(blk.offset, ()):
            if len(obj.prefix) != id_len:
                add(blk.offset, f"obj {obj.prefix.hex()} is not {id_len} bytes (obj_id_len)")
                return
            listed[obj.prefix] = set(obj.offsets) if obj.cnt else None
            for off in obj.offsets:
                if off not in ids or off not in decoded:
                    add(blk.offset, f"obj {obj.prefix.hex()} points at {off}, not a ref block")
                    return
                if obj.prefix not in ids[off]:
                    add(blk.offset, f"obj {obj.prefix.hex()}: no ref in block {off} has that id")
                    return
    for blk in refs:
        for prefix in sorted(ids[blk.offset]):
            if prefix not in listed:
                add(blk.offset, f"id {prefix.hex()}... of a ref in this block is missing from "
                    "the object index")  # fmt: skip
                return
            offsets = listed[prefix]
            if offsets is not None and blk.offset not in offsets:
                add(blk.offset, f"the object index entry {prefix.hex()} does not list this "
                    "block, whose refs carry that id")  # fmt: skip
                return


def iter_findings(readers: list[TableReader]) -> Iterator[Finding]:
    """Findings of several tables, plus their update-index order (oldest first)."""
    prev: TableReader | None = None
    for reader in readers:
        yield from check_table(reader)
        if prev is not None and reader.min_update_index <= prev.max_update_index:
            yield Finding(
                reader.name,
                reader.footer_offset,
                f"update indexes {reader.min_update_index}..{reader.max_update_index} overlap "
                f"the table below ({prev.min_update_index}..{prev.max_update_index})",
            )
        prev = reader
