"""Helpers shared by the codec tests: manifest access and re-encoding a table."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from conftest import DATA

from aioreftable.lowlevel import TableReader, TableWriter, WriteOptions


@cache
def manifest() -> dict[str, Any]:
    return dict(json.loads((DATA / "manifest.json").read_text()))


def options_for(name: str, reader: TableReader) -> WriteOptions:
    wo = manifest()[name]["writer_options"]
    return WriteOptions(
        block_size=wo["block_size"],
        restart_interval=wo["restart_interval"],
        index_objects=not wo["skip_index_objects"],
        hash=reader.hash_name,  # type: ignore[arg-type]
    )


def reencode(reader: TableReader, options: WriteOptions) -> bytes:
    """Write ``reader``'s records again (tombstones included) with ``options``."""
    writer = TableWriter(options)
    writer.set_limits(reader.min_update_index, reader.max_update_index)
    for ref in reader.seek_refs():
        writer.add_ref(ref)
    for log in reader.seek_logs():
        writer.add_log(log)
    return writer.finish(allow_empty=True)


def inflated_blocks(reader: TableReader) -> list[tuple[int, int, bytes]]:
    """(offset, type, uncompressed bytes) of every block: compares log blocks independently
    of the zlib build."""
    return [(b.offset, b.typ, bytes(b.data)) for b in reader.blocks()]
