"""Damaged tables: whatever makes a read fail, check_table (and so verify()) reports first,
with a file offset; reads raise nothing but FormatError, naming file and offset.

The harness (``format_helpers.Mutator``) damages our own and git's tables in ways that keep
them openable (footer fields with the CRC recomputed, restart tables, block lengths and types,
index and object record offsets, bytes inside deflated log blocks). Run it larger by hand:
``python tests/test_format_mutations.py 300 7`` (mutants per table, seed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import Git
from format_helpers import (
    Probes,
    footer_field,
    mutation_tables,
    read_everything,
    refooter,
    run_mutations,
    time_limit,
)

from aioreftable import FormatError
from aioreftable.lowlevel import TableReader, check_table, get_varint, put_varint


@pytest.mark.parametrize("name", sorted(mutation_tables()))
def test_undamaged_tables_are_clean_and_read(name: str) -> None:
    data = mutation_tables()[name]
    reader = TableReader.from_bytes(data, "t.ref")
    assert check_table(reader) == []
    assert read_everything(reader, Probes.of(reader)) == []


def test_seeded_mutants() -> None:
    """A few hundred mutants in a few seconds (CI); by hand it ran 5,400 (see module doc)."""
    report = run_mutations(check_table, per_table=8, seed=2026, sample=8)
    assert report.misses == [], report
    assert report.crashed == report.verify_missed == report.unlocated == 0, report
    assert report.read_failing > report.tried // 3, report  # the damage does reach reads


def test_wrong_log_index_position_is_reported() -> None:
    """From the issue: every reflog read fails, verify said nothing."""
    data = bytearray(mutation_tables()["git_503refs_bs1000.ref"])
    good = TableReader.from_bytes(bytes(data))
    refooter(data, 4, good.log_position)  # the log index "starts" at the first log block
    bad = TableReader.from_bytes(bytes(data), "t.ref")
    with pytest.raises(FormatError) as err:
        list(bad.iter_logs(b"refs/heads/main"))
    assert err.value.path == "t.ref" and err.value.offset is not None
    findings = check_table(bad)
    assert [(f.path, f.offset) for f in findings] == [("t.ref", footer_field(data, 4))]
    assert "log index position" in findings[0].message


def test_first_restart_offset_off_by_one_is_reported() -> None:
    """From the issue: lookups fail, verify said nothing (records decode from the start of
    the block; only seeks use the restart table)."""
    data = bytearray(mutation_tables()["git_503refs_sha1_bs4096.ref"])
    good = TableReader.from_bytes(bytes(data))
    blk = next(b for b in good.blocks() if b.offset == 4096)
    at = blk.offset + blk.restart_off
    data[at : at + 3] = (int.from_bytes(data[at : at + 3], "big") + 1).to_bytes(3, "big")
    bad = TableReader.from_bytes(bytes(data), "t.ref")
    with pytest.raises(FormatError) as err:
        for name in Probes.of(good).refnames:
            bad.ref(name)
    assert err.value.path == "t.ref" and err.value.offset is not None
    assert len(list(bad.seek_refs())) == len(Probes.of(good).refnames)  # scans still work
    findings = check_table(bad)
    assert [f.offset for f in findings] == [at] and "restart 0" in findings[0].message


def test_stats_on_log_index_without_logs_raises_format_error() -> None:
    """stats() raised AssertionError on a footer naming a log index but no log section."""
    data = bytearray(mutation_tables()["git_503refs_restart3_noindexobjects.ref"])
    refooter(data, 3, 0)  # log position 0: the table "has no logs"
    bad = TableReader.from_bytes(bytes(data), "t.ref")
    with pytest.raises(FormatError) as err:
        bad.stats()
    assert (err.value.path, err.value.offset) == ("t.ref", footer_field(data, 4))
    assert check_table(bad)


def test_stats_on_self_pointing_index_raises_instead_of_looping() -> None:
    """stats() followed the first entry of each index level down and looped forever when
    the top level's first entry pointed at its own block."""
    data = bytearray(mutation_tables()["py_objindex_bs200_r2"])  # a two-level ref index
    good = TableReader.from_bytes(bytes(data))
    top = good.ref_index_position
    blk = next(b for b in good.blocks() if b.offset == top)
    vpos = blk._key_at(blk.first_pos, b"")[2]
    end = get_varint(blk.data, vpos, blk.restart_off)[1]
    assert len(put_varint(top)) == end - vpos
    data[top + vpos : top + end] = put_varint(top)
    bad = TableReader.from_bytes(bytes(data), "t.ref")
    with time_limit(5.0), pytest.raises(FormatError) as err:
        bad.stats()
    assert (err.value.path, err.value.offset) == ("t.ref", top)
    assert [f.offset for f in check_table(bad)] == [top]


def test_fresh_git_tables_are_clean_and_damage_is_found(git: Git, tmp_path: Path) -> None:
    """Tables a live git writes with 256-byte blocks (several index levels per section, an
    object index) and restart interval 1: clean; damaged, no failing read goes unreported."""
    repo = tmp_path / "repo"
    git("init", "-q", "--ref-format=reftable", "-b", "main", str(repo))
    for key, value in (("blockSize", "256"), ("restartInterval", "1")):
        git("config", f"reftable.{key}", value, cwd=repo)
    git("config", "core.logAllRefUpdates", "always", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "c0", cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "c1", cwd=repo)
    ids = git("rev-parse", "HEAD", "HEAD~1", cwd=repo).split()
    lines = [f"create refs/heads/topic/branch{i:04d} {ids[i % 2]}\n" for i in range(400)]
    git("update-ref", "--stdin", cwd=repo, input="".join(lines))
    git("tag", "-a", "-m", "annotated", "v1", cwd=repo)
    git("pack-refs", "--all", cwd=repo)
    git("update-ref", "-d", "refs/heads/topic/branch0007", cwd=repo)
    tables = {p.name: p.read_bytes() for p in (repo / ".git" / "reftable").glob("*.ref")}
    assert len(tables) == 2
    for name, data in tables.items():
        assert check_table(TableReader.from_bytes(data, name)) == []
    big = max(tables, key=lambda n: len(tables[n]))
    stats = TableReader.from_bytes(tables[big]).stats()
    assert stats.refs.index_levels >= 2 and stats.objs.blocks and stats.logs.index_levels >= 2
    report = run_mutations(check_table, per_table=15, seed=10, sample=8, tables=tables)
    assert report.misses == [], report
    assert report.read_failing > report.tried // 3, report


if __name__ == "__main__":  # a larger run by hand
    per_table, seed = (int(a) for a in sys.argv[1:3])
    rep = run_mutations(check_table, per_table, seed, sample=25)
    print(rep)
    print("\n".join(rep.misses[:50]))


@pytest.mark.parametrize("accelerated", [True, False])
def test_a_damaged_log_block_does_not_stop_reading_refs(
    git: Git, tmp_path: Path, accelerated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As git: a scan of the refs ends at the first block of another type without reading
    it, so a log block whose zlib stream is broken fails log reads only."""
    from aioreftable._format import _accel, _block

    if not accelerated:
        monkeypatch.setattr(_block, "_speedups", None)
    elif _accel.speedups is None:
        pytest.skip("the compiled decoder is not built")
    repo = tmp_path / "r"
    git("init", "-q", "--ref-format=reftable", str(repo))
    git("-C", str(repo), "commit", "-q", "--allow-empty", "-m", "x")
    for i in range(3):
        git("-C", str(repo), "branch", f"b{i}")
    git("-C", str(repo), "pack-refs")
    (path,) = (repo / ".git" / "reftable").glob("*.ref")
    with TableReader.from_path(path) as reader:
        logs = [b.offset for b in reader.blocks() if b.typ == ord("g")]
        want = [rec.refname for rec in reader.iter_refs()]
    data = bytearray(path.read_bytes())
    data[logs[0] + 10] ^= 0xFF  # inside the deflate stream
    data[logs[0] + 12] ^= 0xFF
    path.write_bytes(bytes(data))
    with TableReader.from_path(path) as reader:
        assert [rec.refname for rec in reader.iter_refs()] == want
        assert [rec.refname for rec in reader.seek_refs()] == want
        assert reader.ref(b"refs/heads/b2") is not None
        with pytest.raises(FormatError, match="zlib"):
            list(reader.iter_logs())
    listed = git("-C", str(repo), "for-each-ref", "--format=%(refname)").split()
    assert [n.encode() for n in listed] == [n for n in want if n.startswith(b"refs/")]
