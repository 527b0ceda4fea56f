"""RefStore.verify() reports, naming table and offset, the damage that makes its reads fail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Git
from format_helpers import footer_field, mutation_tables, refooter
from refs_helpers import ENV

from aioreftable import FormatError, open_ref_store
from aioreftable.lowlevel import TableReader

pytestmark = pytest.mark.anyio

TABLE = "py_logindex_bs512"  # update indexes 1..3, refs, logs and a log index
NAME = "0x000000000001-0x000000000003-0badc0de.ref"
REF = "refs/heads/nnnnnnnnnn00001"  # in the first restart interval


def wrong_log_index(data: bytearray) -> int:
    r = TableReader.from_bytes(bytes(data))
    refooter(data, 4, r.log_position)
    return footer_field(data, 4)


def first_restart_off_by_one(data: bytearray) -> int:
    r = TableReader.from_bytes(bytes(data))
    blk = next(r.blocks())
    at = blk.restart_off
    data[at : at + 3] = (int.from_bytes(data[at : at + 3], "big") + 1).to_bytes(3, "big")
    return at


def no_damage(data: bytearray) -> int:
    return -1


@pytest.mark.parametrize("damage", [no_damage, wrong_log_index, first_restart_off_by_one])
async def test_verify_reports_damage_that_breaks_reads(
    git: Git, tmp_path: Path, damage: Callable[[bytearray], int]
) -> None:
    repo = tmp_path / "repo"
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(repo))
    stack = repo / ".git" / "reftable"
    for old in stack.glob("*.ref"):
        old.unlink()
    data = bytearray(mutation_tables()[TABLE])
    offset = damage(data)
    (stack / NAME).write_bytes(bytes(data))
    (stack / "tables.list").write_text(NAME + "\n")
    async with open_ref_store(repo, env=ENV) as store:
        failed = []
        for read in (store.read(REF), store.reflog(REF)):
            try:
                await read
            except FormatError as e:
                failed.append(e)
        got = [f for f in await store.verify() if f.severity == "error"]
    if offset < 0:
        assert failed == [] and got == []
        return
    assert failed and all(e.offset is not None and NAME in str(e) for e in failed)
    assert got and got[0].path == NAME and f"at offset {offset}" in got[0].message, got
