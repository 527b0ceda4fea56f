"""`aioreftable stats [--json]`: each table of the stacks (blocks, records, tombstones, index
depth, update indexes) and the compaction git's geometric heuristic would do next."""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.to_thread

from .. import Stack, open_ref_store
from ..lowlevel import SectionStats, TableReader, suggest_compaction_segment
from ._progress import Progress, progress

__all__ = ["add_parser", "run_stats", "stack_stats", "table_stats"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("stats", help="tables, blocks, records and the next compaction (ours)",
                       description=__doc__)  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_stats)


def _section(section: SectionStats, tombstones: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"blocks": section.blocks, "records": section.records}
    if tombstones is not None:
        out["tombstones"] = tombstones
    out["index_blocks"] = section.index_blocks
    out["index_levels"] = section.index_levels
    return out


def table_stats(reader: TableReader) -> dict[str, Any]:
    """One table as plain data (decodes every block: O(table size), run it in a thread)."""
    st = reader.stats()
    ref_tombstones = sum(1 for rec in reader.iter_refs() if rec.is_deletion)
    log_tombstones = sum(1 for rec in reader.iter_logs() if rec.is_deletion)
    return {
        "name": os.path.basename(reader.name or ""),
        "size": st.size,
        "version": st.version,
        "hash": reader.hash_name,
        "block_size": st.block_size,
        "min_update_index": st.min_update_index,
        "max_update_index": st.max_update_index,
        "refs": _section(st.refs, ref_tombstones),
        "objs": {**_section(st.objs, None), "id_len": st.obj_id_len},
        "logs": _section(st.logs, log_tombstones),
    }


async def stack_stats(stack: Stack, bar: Progress) -> dict[str, Any]:
    """The tables of one stack and git's next auto-compaction of it."""
    snap = await stack.snapshot()
    factor = stack.options.geometric_factor
    tables = []
    for reader in snap.readers:
        tables.append(await anyio.to_thread.run_sync(table_stats, reader))
        bar.advance()
    segment = suggest_compaction_segment(snap.effective_sizes, factor)
    nxt = None
    if segment is not None:
        start, end = segment
        nxt = {"start": start, "end": end, "tables": list(snap.table_names[start:end])}
    return {
        "path": stack.path,
        "hash": snap.hash.name,
        "tables": tables,
        "bytes": sum(snap.file_sizes),
        "max_update_index": snap.max_update_index,
        "geometric_factor": factor,
        "effective_sizes": list(snap.effective_sizes),
        "next_compaction": nxt,
    }


async def _collect(quiet: bool) -> list[dict[str, Any]]:
    async with open_ref_store(".", object_database=False) as store, AsyncExitStack() as scope:
        stacks = [await store.stack_for("main", scope)]
        if store.layout.is_linked_worktree:
            stacks.append(await store.stack_for("current", scope))
        total = 0
        for stack in stacks:
            total += len(await stack.snapshot())
        with progress(total, "Reading tables", quiet) as bar:
            return [await stack_stats(stack, bar) for stack in stacks]


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _print_section(name: str, s: dict[str, Any]) -> None:
    dead = f" ({_n(s['tombstones'], 'tombstone')})" if "tombstones" in s else ""
    index = ""
    if s["index_levels"]:
        index = f", index {_n(s['index_blocks'], 'block')} in {_n(s['index_levels'], 'level')}"
    print(f"    {name}: {_n(s['records'], 'record')}{dead} in {_n(s['blocks'], 'block')}{index}")


def _print_text(stacks: list[dict[str, Any]]) -> None:
    for st in stacks:
        print(f"stack {st['path']} ({st['hash']})")
        print(f"  {_n(len(st['tables']), 'table')}, {st['bytes']} bytes, "
              f"max update index {st['max_update_index']}")  # fmt: skip
        for t in st["tables"]:
            print(f"  table {t['name']}")
            print(f"    {t['size']} bytes, version {t['version']}, block size "
                  f"{t['block_size']}, update index {t['min_update_index']}.."
                  f"{t['max_update_index']}")  # fmt: skip
            _print_section("refs", t["refs"])
            if t["objs"]["blocks"]:
                _print_section("objs", t["objs"])
            _print_section("logs", t["logs"])
        nxt = st["next_compaction"]
        factor = st["geometric_factor"]
        if nxt is None:
            print(f"  next auto-compaction (factor {factor}): none, the stack is geometric")
        else:
            span = f"{nxt['start']}..{nxt['end'] - 1} of {len(st['tables'])}"
            print(f"  next auto-compaction (factor {factor}): tables {span} (0 is the oldest) "
                  "into one")  # fmt: skip


def run_stats(args: argparse.Namespace) -> int:
    stacks = anyio.run(_collect, args.quiet)
    if args.json:
        json.dump({"stacks": stacks}, sys.stdout, indent=1)
        print()
    else:
        _print_text(stacks)
    return 0
