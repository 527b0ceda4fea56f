"""`aioreftable dump`: header, footer, blocks and records of tables, as text or JSON."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from .. import FormatError, StackOptions, discover, open_stack
from ..lowlevel import (
    SHA1,
    SHA256,
    HashAlgorithm,
    IndexRecord,
    LogRecord,
    ObjRecord,
    RefRecord,
    RefValueType,
    TableReader,
    WriteOptions,
)

_TYPES = {0x72: "ref", 0x67: "log", 0x6F: "obj", 0x69: "index"}


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="backslashreplace")


def _record(rec: Any) -> dict[str, Any]:
    if isinstance(rec, RefRecord):
        out: dict[str, Any] = {
            "refname": _text(rec.refname),
            "update_index": rec.update_index,
            "type": rec.value_type.name.lower(),
        }
        if rec.value_type in (RefValueType.VAL1, RefValueType.VAL2):
            out["value"] = rec.oid.hex()
        if rec.peeled is not None:
            out["target_value"] = rec.peeled.hex()
        if rec.value_type == RefValueType.SYMREF:
            out["target"] = _text(rec.symref_target)
        return out
    if isinstance(rec, LogRecord):
        out = {
            "refname": _text(rec.refname),
            "update_index": rec.update_index,
            "type": rec.value_type.name.lower(),
        }
        if not rec.is_deletion:
            out.update(
                old_id=rec.old_id.hex(),
                new_id=rec.new_id.hex(),
                name=_text(rec.name),
                email=_text(rec.email),
                time=rec.time,
                tz_offset=rec.tz_offset,
                message=_text(rec.message),
            )
        return out
    if isinstance(rec, ObjRecord):
        return {"prefix": rec.prefix.hex(), "count": rec.cnt, "offsets": list(rec.offsets)}
    assert isinstance(rec, IndexRecord)
    return {"last_key": rec.last_key.hex(), "offset": rec.offset}


def describe(path: Path, records: bool = True) -> dict[str, Any]:
    """Everything about one table file as plain data; a format error names the file (what
    is not a regular file is refused by ``TableReader.from_path``, never waited on)."""
    with TableReader.from_path(path) as reader:
        return describe_reader(reader, records)


def describe_reader(reader: TableReader, records: bool = True) -> dict[str, Any]:
    """Everything about one open table as plain data; a format error names the table."""
    try:
        return _describe(reader, records)
    except FormatError as e:
        raise e.located(reader.name) from None


def _describe(r: TableReader, records: bool) -> dict[str, Any]:
    blocks = []
    for blk in r.blocks():
        kind = _TYPES.get(blk.typ)
        if kind is None:
            raise FormatError(f"unknown block type {blk.typ:#04x}", offset=blk.offset)
        entry: dict[str, Any] = {
            "offset": blk.offset,
            "type": kind,
            "block_len": len(blk.data),
            "on_disk_size": blk.on_disk_size,
            "restarts": blk.restart_count,
        }
        recs = list(blk.records())
        entry["records"] = len(recs)
        if records:
            entry["record_list"] = [_record(x) for x in recs]
        blocks.append(entry)
    return {
        "path": r.name,
        "size": r.file_size,
        "version": r.version,
        "hash": r.hash_name,
        "block_size": r.block_size,
        "min_update_index": r.min_update_index,
        "max_update_index": r.max_update_index,
        "ref_index_position": r.ref_index_position,
        "obj_position": r.obj_position,
        "obj_id_len": r.obj_id_len,
        "obj_index_position": r.obj_index_position,
        "log_position": r.log_position,
        "log_index_position": r.log_index_position,
        "blocks": blocks,
    }


async def _describe_stack(
    stack: Path, algorithm: HashAlgorithm | None, records: bool
) -> list[dict[str, Any]]:
    """The tables of one stack directory, read through the stack (its tables.list rules, its
    OS seam); no lock is taken and nothing is written. An unknown hash (a bare stack
    directory) is tried as SHA-1, then SHA-256; the first error is the one reported."""
    first: FormatError | None = None
    for algo in (SHA1, SHA256) if algorithm is None else (algorithm,):
        options = StackOptions(auto_compact=False, write_options=WriteOptions(hash=algo.name))
        try:
            async with open_stack(stack, options) as opened:
                snap = await opened.snapshot()
                return await anyio.to_thread.run_sync(_describe_all, snap.readers, records)
        except FormatError as e:
            first = first or e
    assert first is not None
    raise first


def _stacks(path: Path) -> list[tuple[Path, HashAlgorithm | None]]:
    """The stack directories ``path`` names, with their hash when known: a stack directory,
    or a repository's main stack and, in a linked worktree, the worktree's own stack."""
    if (path / "tables.list").exists():
        return [(path, None)]
    is_repo = (path / ".git").exists() or (path / "HEAD").exists()
    if not is_repo and (path / "reftable" / "tables.list").exists():
        return [(path / "reftable", None)]  # a copy of a reftable/ directory's parent
    layout = discover(path)
    stacks = [layout.main_stack]
    if layout.worktree_stack is not None:
        stacks.append(layout.worktree_stack)
    return [(stack, layout.hash_algorithm) for stack in stacks]


def _describe_all(readers: Sequence[TableReader], records: bool) -> list[dict[str, Any]]:
    return [describe_reader(r, records) for r in readers]


async def _describe_stacks(
    stacks: list[tuple[Path, HashAlgorithm | None]], records: bool
) -> list[dict[str, Any]]:
    return [info for stack, algo in stacks for info in await _describe_stack(stack, algo, records)]


def _describe_path(path: Path, records: bool) -> list[dict[str, Any]]:
    """A table file, or the tables of a stack directory or of a repository."""
    if not stat.S_ISDIR(os.stat(path).st_mode):  # a missing path is an OS error naming it
        return [describe(path, records)]
    return anyio.run(_describe_stacks, _stacks(path), records)


def _print_text(info: dict[str, Any]) -> None:
    print(f"table {info['path']}")
    print(
        f"  size {info['size']}  version {info['version']} ({info['hash']})  "
        f"block_size {info['block_size']}  update_index {info['min_update_index']}.."
        f"{info['max_update_index']}"
    )
    print(
        f"  footer: ref_index {info['ref_index_position']}  obj {info['obj_position']} "
        f"(id len {info['obj_id_len']})  obj_index {info['obj_index_position']}  "
        f"log {info['log_position']}  log_index {info['log_index_position']}"
    )
    for blk in info["blocks"]:
        print(
            f"  block @{blk['offset']} {blk['type']}: len {blk['block_len']}, on disk "
            f"{blk['on_disk_size']}, {blk['records']} records, {blk['restarts']} restarts"
        )
        for rec in blk.get("record_list", ()):
            print("    " + " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                                  for k, v in rec.items()))  # fmt: skip


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dump", help="print a table or a reftable/ directory")
    p.add_argument("path", help="a .ref file, a reftable/ dir, a repository or a worktree")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-records", action="store_true", help="blocks only")
    p.set_defaults(run=run_dump)


def run_dump(args: argparse.Namespace) -> int:
    """Errors propagate to the entry point, which prints them as one ``fatal:`` line."""
    infos = _describe_path(Path(args.path), records=not args.no_records)
    if args.json:
        json.dump(infos, sys.stdout, indent=1)
        print()
    else:
        for info in infos:
            _print_text(info)
    return 0
